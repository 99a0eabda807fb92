//! Text through the C ABI: tokenize / detokenize with the buffer-size protocol, chat templates, and
//! streamed generation, each compared with moe-core's own text API on the shipped model.

mod common;

use std::ffi::{c_char, c_void, CString};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{fixture, last_error, ok, repo_root, CModel};
use moe::{moe_chat_message, moe_generate_params, moe_status};
use moe_core::{ChatMessage, TextGenerator, TextOptions};
use moe_core::{GenerateOptions, Model, SamplerParams, Session, SessionParams};

fn demo_dir() -> PathBuf {
    repo_root().join("models/tiny-deepseek-pycode")
}

const PROMPT: &str = "def fibonacci(n):\n    ";

fn c_tokenize(m: &CModel, text: &str) -> Vec<u32> {
    let mut n = 0usize;
    // SAFETY: live model; text of the stated length; NULL buffer with capacity 0 asks for the size.
    let s = unsafe {
        moe::moe_model_tokenize(
            m.0,
            text.as_ptr().cast(),
            text.len(),
            true,
            std::ptr::null_mut(),
            0,
            &mut n,
        )
    };
    if n == 0 {
        // Nothing to write: even the size query succeeds.
        ok(s);
        return vec![];
    }
    assert_eq!(s, moe_status::MOE_ERR_BUFFER_TOO_SMALL, "{}", last_error());
    let mut ids = vec![u32::MAX; n];
    let mut got = 0usize;
    // SAFETY: `ids` holds `n` ids.
    ok(unsafe {
        moe::moe_model_tokenize(
            m.0,
            text.as_ptr().cast(),
            text.len(),
            true,
            ids.as_mut_ptr(),
            n,
            &mut got,
        )
    });
    assert_eq!(got, n);
    ids
}

fn c_detokenize(m: &CModel, ids: &[u32], skip_special: bool) -> String {
    let mut len = 0usize;
    // SAFETY: live model; `ids` of the stated length; size query.
    let s = unsafe {
        moe::moe_model_detokenize(
            m.0,
            ids.as_ptr(),
            ids.len(),
            skip_special,
            std::ptr::null_mut(),
            0,
            &mut len,
        )
    };
    assert_eq!(s, moe_status::MOE_ERR_BUFFER_TOO_SMALL);
    let mut buf = vec![0x55u8; len + 1];
    // Exactly one byte short: refused, buffer untouched.
    // SAFETY: `buf` holds `len + 1` bytes.
    let s = unsafe {
        moe::moe_model_detokenize(
            m.0,
            ids.as_ptr(),
            ids.len(),
            skip_special,
            buf.as_mut_ptr().cast(),
            len,
            &mut len,
        )
    };
    assert_eq!(s, moe_status::MOE_ERR_BUFFER_TOO_SMALL);
    assert!(buf.iter().all(|&b| b == 0x55));
    // SAFETY: as above.
    ok(unsafe {
        moe::moe_model_detokenize(
            m.0,
            ids.as_ptr(),
            ids.len(),
            skip_special,
            buf.as_mut_ptr().cast(),
            len + 1,
            &mut len,
        )
    });
    assert_eq!(buf[len], 0);
    String::from_utf8(buf[..len].to_vec()).unwrap()
}

#[test]
fn tokenize_and_detokenize_match_the_rust_tokenizer() {
    let c = CModel::load(&demo_dir());
    let rust = common::rust_exact(demo_dir()).unwrap();
    let tok = rust.tokenizer().unwrap();
    for text in [
        PROMPT,
        "",
        "héllo wörld ✓ — 日本語 🦀",
        "import os\n\n\nclass A:\n\tpass",
    ] {
        let ids = c_tokenize(&c, text);
        assert_eq!(ids, tok.encode(text, true).unwrap(), "{text:?}");
        assert_eq!(
            c_detokenize(&c, &ids, true),
            tok.decode(&ids, true).unwrap()
        );
        assert_eq!(c_detokenize(&c, &ids, false), text);
    }
    let bad = [0xffu8, b'a'];
    let mut n = 0usize;
    // SAFETY: `bad` holds 2 bytes.
    let s = unsafe {
        moe::moe_model_tokenize(
            c.0,
            bad.as_ptr().cast(),
            2,
            true,
            std::ptr::null_mut(),
            0,
            &mut n,
        )
    };
    assert_eq!(s, moe_status::MOE_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("UTF-8"));
    let out_of_range = [tok.vocab_size() as u32];
    let mut len = 7usize;
    // SAFETY: one id; size query.
    let s = unsafe {
        moe::moe_model_detokenize(
            c.0,
            out_of_range.as_ptr(),
            1,
            true,
            std::ptr::null_mut(),
            0,
            &mut len,
        )
    };
    assert_eq!((s, len), (moe_status::MOE_ERR_TOKEN_OUT_OF_RANGE, 7));
}

#[test]
fn models_without_a_tokenizer_say_so() {
    let c = CModel::load(&fixture("deepseek_v3"));
    // SAFETY: live model.
    assert!(!unsafe { moe::moe_model_has_tokenizer(c.0) });
    let mut n = 0usize;
    // SAFETY: text of the stated length; size query.
    let s = unsafe {
        moe::moe_model_tokenize(c.0, c"a".as_ptr(), 1, true, std::ptr::null_mut(), 0, &mut n)
    };
    assert_eq!((s, n), (moe_status::MOE_ERR_NO_TOKENIZER, 0));
    let mut session = c.session();
    // SAFETY: live session; prompt of the stated length; NULL params, callback and count.
    let s = unsafe {
        moe::moe_session_generate(
            session.ptr,
            c"a".as_ptr(),
            1,
            std::ptr::null(),
            None,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(s, moe_status::MOE_ERR_NO_TOKENIZER);
    assert_eq!(session.len(), 0);
    session.prefill_all(&[1]);
}

/// What a generation callback saw.
#[derive(Default)]
struct Pieces {
    pieces: Vec<String>,
    stop_after: Option<usize>,
    session: Option<*mut moe::moe_session>,
    busy_seen: Vec<moe_status>,
}

unsafe extern "C" fn collect(piece: *const c_char, len: usize, user: *mut c_void) -> bool {
    // SAFETY: `user` is the `Pieces` passed by the test; `piece` holds `len` bytes and a NUL.
    let (p, bytes) = unsafe {
        (
            &mut *(user as *mut Pieces),
            std::slice::from_raw_parts(piece.cast::<u8>(), len + 1),
        )
    };
    assert_eq!(bytes[len], 0, "pieces are NUL-terminated");
    p.pieces.push(
        std::str::from_utf8(&bytes[..len])
            .expect("pieces are UTF-8")
            .to_string(),
    );
    if let Some(s) = p.session {
        // Calls on the generating session from its own callback are refused.
        // SAFETY: the session is live; the library refuses it as busy without touching it.
        p.busy_seen.push(unsafe { moe::moe_session_reset(s) });
        // SAFETY: as above; a busy session is not freed.
        unsafe { moe::moe_session_free(s) };
        p.busy_seen.push(if last_error().contains("generating") {
            moe_status::MOE_ERR_BUSY
        } else {
            moe_status::MOE_OK
        });
    }
    p.stop_after.is_none_or(|n| p.pieces.len() < n)
}

fn c_generate(
    session: *mut moe::moe_session,
    prompt: &str,
    params: &moe_generate_params,
    pieces: &mut Pieces,
) -> (moe_status, usize) {
    let mut n = usize::MAX;
    // SAFETY: live session; prompt of the stated length; `pieces` outlives the call.
    let s = unsafe {
        moe::moe_session_generate(
            session,
            prompt.as_ptr().cast(),
            prompt.len(),
            params,
            Some(collect),
            (pieces as *mut Pieces).cast(),
            &mut n,
        )
    };
    (s, n)
}

fn rust_generate(model: &Arc<Model>, prompt_ids: &[u32], opts: TextOptions) -> Vec<String> {
    let session = Session::new(model.clone(), &SessionParams::default()).unwrap();
    let tok = model.tokenizer().unwrap().clone();
    TextGenerator::new(session, tok, prompt_ids, opts)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn greedy_generation_streams_the_documented_text() {
    let c = CModel::load(&demo_dir());
    let session = c.session();
    let mut p = moe::moe_generate_default_params();
    p.max_new_tokens = 16;
    let mut pieces = Pieces::default();
    let (s, n) = c_generate(session.ptr, PROMPT, &p, &mut pieces);
    ok(s);
    assert_eq!(n, 16);
    assert_eq!(pieces.pieces.concat(), " z = z.zip.Z == zipfile.ZipFile");
    assert!(pieces.pieces.len() > 1, "streamed in pieces");
    assert_eq!(session.len(), c_tokenize(&c, PROMPT).len() + 16);
}

#[test]
fn sampled_generation_with_stop_strings_matches_rust() {
    let c = CModel::load(&demo_dir());
    let rust = Arc::new(common::rust_exact(demo_dir()).unwrap());
    let prompt = "import os\n\n\ndef ";
    let ids = rust.tokenizer().unwrap().encode(prompt, true).unwrap();
    let sampler = SamplerParams::default()
        .with_temperature(0.8)
        .with_top_k(40)
        .with_top_p(0.95)
        .with_min_p(0.02)
        .with_repetition_penalty(1.1)
        .with_seed(7);
    let mut lengths = vec![];
    for stops in [vec![], vec!["\n\n".to_string(), "return".to_string()]] {
        let c_stops: Vec<CString> = stops
            .iter()
            .map(|s| CString::new(s.as_str()).unwrap())
            .collect();
        let ptrs: Vec<*const c_char> = c_stops.iter().map(|s| s.as_ptr()).collect();
        let mut p = moe::moe_generate_default_params();
        p.max_new_tokens = 48;
        p.sampler = sampler.clone().into();
        p.stop_strings = ptrs.as_ptr();
        p.n_stop_strings = ptrs.len();
        let mut pieces = Pieces::default();
        let session = c.session();
        ok(c_generate(session.ptr, prompt, &p, &mut pieces).0);
        let want = rust_generate(
            &rust,
            &ids,
            TextOptions::new(
                GenerateOptions::new(48)
                    .with_sampler(sampler.clone())
                    .with_stop_tokens(rust.eos_token_ids()),
            )
            .with_stop_strings(stops.clone())
            .with_skip_special_tokens(true),
        );
        assert_eq!(pieces.pieces, want, "stops {stops:?}");
        let text = pieces.pieces.concat();
        for s in &stops {
            assert!(!text.contains(s.as_str()));
        }
        lengths.push(text.len());
    }
    // The stop strings did cut the text short (so the comparison above covered them).
    assert!(lengths[1] < lengths[0], "{lengths:?}");
}

#[test]
fn the_callback_stops_generation_and_cannot_touch_its_session() {
    let c = CModel::load(&demo_dir());
    let session = c.session();
    let mut p = moe::moe_generate_default_params();
    p.max_new_tokens = 16;
    let mut pieces = Pieces {
        stop_after: Some(3),
        session: Some(session.ptr),
        ..Default::default()
    };
    let (s, n) = c_generate(session.ptr, PROMPT, &p, &mut pieces);
    ok(s);
    assert_eq!(pieces.pieces.len(), 3);
    assert!((3..16).contains(&n), "{n}");
    assert!(
        pieces
            .busy_seen
            .iter()
            .all(|&s| s == moe_status::MOE_ERR_BUSY),
        "{:?}",
        pieces.busy_seen
    );
    // The session survived the callback's attempts, holds prompt + generated tokens, and is idle.
    assert_eq!(session.len(), c_tokenize(&c, PROMPT).len() + n);
    // SAFETY: live, idle session.
    ok(unsafe { moe::moe_session_reset(session.ptr) });
}

#[test]
fn failures_before_generation_change_nothing() {
    let c = CModel::load(&demo_dir());
    let mut session = c.session();
    session.prefill_all(&[5, 6]);
    let mut p = moe::moe_generate_default_params();
    let mut pieces = Pieces::default();
    p.sampler.temperature = -1.0;
    assert_eq!(
        c_generate(session.ptr, PROMPT, &p, &mut pieces),
        (moe_status::MOE_ERR_INVALID_ARGUMENT, usize::MAX)
    );
    p = moe::moe_generate_default_params();
    assert_eq!(
        c_generate(session.ptr, "", &p, &mut pieces).0,
        moe_status::MOE_ERR_EMPTY_PROMPT
    );
    let long = "x = 1\n".repeat(400);
    assert_eq!(
        c_generate(session.ptr, &long, &p, &mut pieces).0,
        moe_status::MOE_ERR_CONTEXT_FULL
    );
    p.n_stop_strings = 1;
    assert_eq!(
        c_generate(session.ptr, PROMPT, &p, &mut pieces).0,
        moe_status::MOE_ERR_NULL_ARGUMENT
    );
    assert!(pieces.pieces.is_empty());
    assert_eq!(session.len(), 2);
}

/// A copy of the demo model directory with a chat template.
fn chat_model_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("moe-ffi-chat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = demo_dir();
    for f in [
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "model.safetensors",
    ] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let template = "{% for m in messages %}# {{ m.role }}\n{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}# assistant\n{% endif %}";
    let cfg = serde_json_string(template);
    std::fs::write(
        dir.join("tokenizer_config.json"),
        format!(r#"{{"eos_token": "<|endoftext|>", "chat_template": {cfg}}}"#),
    )
    .unwrap();
    dir
}

fn serde_json_string(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn chat_templates_and_chat_generation_match_rust() {
    let dir = RemoveOnDrop(chat_model_dir());
    let c = CModel::load(&dir.0);
    let rust = Arc::new(common::rust_exact(&dir.0).unwrap());
    // SAFETY: live models.
    unsafe {
        assert!(moe::moe_model_has_chat_template(c.0));
        let demo = CModel::load(Path::new(&demo_dir()));
        assert!(!moe::moe_model_has_chat_template(demo.0));
    }
    let (role, sys, user, content) = (
        c"system",
        c"You write Python.",
        c"user",
        c"A function that sorts a list.",
    );
    let messages = [
        moe_chat_message {
            role: role.as_ptr(),
            content: sys.as_ptr(),
        },
        moe_chat_message {
            role: user.as_ptr(),
            content: content.as_ptr(),
        },
    ];
    let rust_messages = [
        ChatMessage::new("system", "You write Python."),
        ChatMessage::new("user", "A function that sorts a list."),
    ];
    let want = rust
        .tokenizer()
        .unwrap()
        .apply_chat_template(&rust_messages, true)
        .unwrap();
    let mut len = 0usize;
    // SAFETY: two messages with NUL-terminated strings; size query.
    let s = unsafe {
        moe::moe_model_apply_chat_template(
            c.0,
            messages.as_ptr(),
            2,
            true,
            std::ptr::null_mut(),
            0,
            &mut len,
        )
    };
    assert_eq!((s, len), (moe_status::MOE_ERR_BUFFER_TOO_SMALL, want.len()));
    let mut buf = vec![0u8; len + 1];
    // SAFETY: `buf` holds `len + 1` bytes.
    ok(unsafe {
        moe::moe_model_apply_chat_template(
            c.0,
            messages.as_ptr(),
            2,
            true,
            buf.as_mut_ptr().cast(),
            len + 1,
            &mut len,
        )
    });
    assert_eq!(std::str::from_utf8(&buf[..len]).unwrap(), want);
    assert!(want.ends_with("# assistant\n"));

    let mut p = moe::moe_generate_default_params();
    p.max_new_tokens = 24;
    let mut pieces = Pieces::default();
    let session = c.session();
    let mut n = 0usize;
    // SAFETY: live session; two messages; `pieces` outlives the call.
    ok(unsafe {
        moe::moe_session_generate_chat(
            session.ptr,
            messages.as_ptr(),
            2,
            &p,
            Some(collect),
            (&mut pieces as *mut Pieces).cast(),
            &mut n,
        )
    });
    let ids = rust.tokenizer().unwrap().encode(&want, true).unwrap();
    let rust_pieces = rust_generate(
        &rust,
        &ids,
        TextOptions::new(GenerateOptions::new(24).with_stop_tokens(rust.eos_token_ids()))
            .with_skip_special_tokens(true),
    );
    assert_eq!(pieces.pieces, rust_pieces);
    assert!(!pieces.pieces.is_empty());

    let bad = [moe_chat_message {
        role: role.as_ptr(),
        content: std::ptr::null(),
    }];
    // SAFETY: the NULL content is refused.
    let s = unsafe {
        moe::moe_model_apply_chat_template(
            c.0,
            bad.as_ptr(),
            1,
            true,
            std::ptr::null_mut(),
            0,
            &mut len,
        )
    };
    assert_eq!(s, moe_status::MOE_ERR_NULL_ARGUMENT);
    assert!(last_error().contains("messages[0].content"));
}
