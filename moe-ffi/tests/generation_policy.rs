//! The C ABI follows moe-core's one generation policy: the same ids, text and finish reasons as
//! `fixtures/generation_policy/expected.json` (which the Rust and Python tests reproduce too), and
//! `moe_model_params.precision` selects the product precision.

mod common;

use std::ffi::{c_char, c_void, CString};
use std::path::Path;

use common::{ok, repo_root};
use moe::moe_finish_reason::{self, *};
use moe::moe_status::*;
use moe_core::internals::kernels::{choose, Isa, ProductKind};
use moe_core::Precision;

/// The demo model with the policy fixture's chat template, in a temporary folder.
fn templated_demo() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let demo = repo_root().join("models/tiny-deepseek-pycode");
    for f in [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
    ] {
        std::fs::copy(demo.join(f), tmp.path().join(f)).unwrap();
    }
    let template =
        std::fs::read_to_string(repo_root().join("fixtures/generation_policy/chat_template.jinja"))
            .unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(demo.join("tokenizer_config.json")).unwrap())
            .unwrap();
    cfg["bos_token"] = "<|endoftext|>".into();
    cfg["chat_template"] = template.into();
    std::fs::write(tmp.path().join("tokenizer_config.json"), cfg.to_string()).unwrap();
    tmp
}

unsafe extern "C" fn collect(piece: *const c_char, len: usize, user: *mut c_void) -> bool {
    // SAFETY: `user` is the String passed below; `piece` holds `len` bytes of UTF-8 for the call.
    unsafe {
        let out = &mut *(user as *mut String);
        let bytes = std::slice::from_raw_parts(piece as *const u8, len);
        out.push_str(std::str::from_utf8(bytes).unwrap());
    }
    true
}

unsafe extern "C" fn refuse(_: *const c_char, _: usize, _: *mut c_void) -> bool {
    false
}

struct Outcome {
    tokens: Vec<u32>,
    generated: usize,
    text: String,
    reason: moe_finish_reason,
    stop_index: usize,
}

/// Generates on a fresh session: a text prompt, or a chat when `chat` is given.
fn generate(
    model: *mut moe::moe_model,
    prompt: &str,
    chat: Option<&[(&str, &str)]>,
    params: &moe::moe_generate_params,
) -> Outcome {
    let mut s = std::ptr::null_mut();
    // SAFETY: a live model, NULL params, a valid out-pointer; every pointer below is valid for its
    // call and the session is freed once.
    unsafe {
        ok(moe::moe_session_new(model, std::ptr::null(), &mut s));
        let mut text = String::new();
        let mut n = 0usize;
        let user = &mut text as *mut String as *mut c_void;
        match chat {
            None => ok(moe::moe_session_generate(
                s,
                prompt.as_ptr().cast(),
                prompt.len(),
                params,
                Some(collect),
                user,
                &mut n,
            )),
            Some(msgs) => {
                let owned: Vec<(CString, CString)> = msgs
                    .iter()
                    .map(|(r, c)| (CString::new(*r).unwrap(), CString::new(*c).unwrap()))
                    .collect();
                let cmsgs: Vec<moe::moe_chat_message> = owned
                    .iter()
                    .map(|(r, c)| moe::moe_chat_message {
                        role: r.as_ptr(),
                        content: c.as_ptr(),
                    })
                    .collect();
                ok(moe::moe_session_generate_chat(
                    s,
                    cmsgs.as_ptr(),
                    cmsgs.len(),
                    params,
                    Some(collect),
                    user,
                    &mut n,
                ))
            }
        }
        let (mut ptr, mut len) = (std::ptr::null(), 0usize);
        ok(moe::moe_session_tokens(s, &mut ptr, &mut len));
        let tokens = std::slice::from_raw_parts(ptr, len).to_vec();
        let (mut reason, mut stop_index) = (MOE_FINISH_NONE, 0usize);
        ok(moe::moe_session_finish_reason(
            s,
            &mut reason,
            &mut stop_index,
        ));
        moe::moe_session_free(s);
        Outcome {
            tokens,
            generated: n,
            text,
            reason,
            stop_index,
        }
    }
}

fn reason_name(r: moe_finish_reason) -> &'static str {
    match r {
        MOE_FINISH_NONE => "none",
        MOE_FINISH_EOS => "eos",
        MOE_FINISH_STOP => "stop",
        MOE_FINISH_LENGTH => "length",
        MOE_FINISH_CONTEXT => "context",
        MOE_FINISH_CANCELLED => "cancelled",
    }
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn load(dir: &Path, precision: u32) -> (moe::moe_status, *mut moe::moe_model) {
    let path = CString::new(dir.to_str().unwrap()).unwrap();
    let mut params = moe::moe_model_default_params();
    params.precision = precision;
    let mut m = std::ptr::null_mut();
    // SAFETY: valid C string, params and out-pointer.
    let s = unsafe { moe::moe_model_load(path.as_ptr(), &params, &mut m) };
    (s, m)
}

#[test]
fn the_c_api_reproduces_the_shared_expectation() {
    let tmp = templated_demo();
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("fixtures/generation_policy/expected.json"))
            .unwrap(),
    )
    .unwrap();
    let (s, model) = load(tmp.path(), moe::moe_precision::MOE_PRECISION_F32 as u32);
    assert_eq!(s, MOE_OK);
    let prompt = "def fibonacci(n):\n    ";
    let mut defaults = moe::moe_generate_default_params();
    // SAFETY: a live model and a valid out-pointer.
    ok(unsafe { moe::moe_model_default_generate_params(model, &mut defaults) });
    let mut sampled = defaults;
    sampled.sampler.temperature = 0.8;
    sampled.sampler.top_k = 40;
    sampled.sampler.top_p = 0.95;
    sampled.sampler.seed = 7;
    sampled.max_new_tokens = 24;
    let chat = [
        ("system", "You write Python."),
        ("user", "A queue class, please."),
    ];
    let stops = [
        CString::new("never there").unwrap(),
        CString::new("dictionary").unwrap(),
    ];
    let stop_ptrs: Vec<*const c_char> = stops.iter().map(|s| s.as_ptr()).collect();
    let mut stopped = sampled;
    stopped.stop_strings = stop_ptrs.as_ptr();
    stopped.n_stop_strings = stop_ptrs.len();

    for (case, out) in [
        ("sampled_text", generate(model, prompt, None, &sampled)),
        ("sampled_chat", generate(model, "", Some(&chat), &sampled)),
        ("defaults", generate(model, prompt, None, &defaults)),
        ("stop_strings", generate(model, prompt, None, &stopped)),
    ] {
        let w = &want[case];
        let n_prompt = out.tokens.len() - out.generated;
        assert_eq!(
            out.tokens[..n_prompt],
            ids(&w["prompt_ids"])[..],
            "{case}: prompt ids"
        );
        if case != "stop_strings" {
            // (The token stream of the expectation runs past the stop string.)
            assert_eq!(
                out.tokens[n_prompt..],
                ids(&w["generated_ids"])[..],
                "{case}: ids"
            );
        }
        assert_eq!(out.text, w["text"].as_str().unwrap(), "{case}: text");
        assert_eq!(
            reason_name(out.reason),
            w["finish_reason"],
            "{case}: reason"
        );
        let index = if case == "stop_strings" {
            1
        } else {
            usize::MAX
        };
        assert_eq!(out.stop_index, index, "{case}: stop string index");
    }
    // SAFETY: a live model, freed once.
    unsafe { moe::moe_model_free(model) };
}

#[test]
fn cancelled_and_context_reasons() {
    let tmp = templated_demo();
    let (s, model) = load(tmp.path(), 0);
    assert_eq!(s, MOE_OK);
    let params = moe::moe_generate_default_params();
    let prompt = "import os\n";
    let mut session = std::ptr::null_mut();
    // SAFETY: live handles, valid pointers; every handle freed once.
    unsafe {
        ok(moe::moe_session_new(model, std::ptr::null(), &mut session));
        let mut reason = MOE_FINISH_EOS;
        ok(moe::moe_session_finish_reason(
            session,
            &mut reason,
            std::ptr::null_mut(),
        ));
        assert_eq!(reason, MOE_FINISH_NONE, "before any generation");
        ok(moe::moe_session_generate(
            session,
            prompt.as_ptr().cast(),
            prompt.len(),
            &params,
            Some(refuse),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        ));
        ok(moe::moe_session_finish_reason(
            session,
            &mut reason,
            std::ptr::null_mut(),
        ));
        assert_eq!(reason, MOE_FINISH_CANCELLED);
        moe::moe_session_free(session);

        let mut sp = moe::moe_session_default_params();
        sp.max_context = 8;
        ok(moe::moe_session_new(model, &sp, &mut session));
        let mut n = 0usize;
        ok(moe::moe_session_generate(
            session,
            prompt.as_ptr().cast(),
            prompt.len(),
            &params,
            None,
            std::ptr::null_mut(),
            &mut n,
        ));
        ok(moe::moe_session_finish_reason(
            session,
            &mut reason,
            std::ptr::null_mut(),
        ));
        assert_eq!(
            reason, MOE_FINISH_CONTEXT,
            "a full context ends generation, not an error"
        );
        assert_eq!(moe::moe_session_len(session), 8);
        assert!(n > 0);
        assert_eq!(
            moe::moe_session_finish_reason(session, std::ptr::null_mut(), std::ptr::null_mut()),
            MOE_ERR_NULL_ARGUMENT
        );
        moe::moe_session_free(session);
        moe::moe_model_free(model);
    }
}

#[test]
fn precision_is_a_model_parameter() {
    let dir = common::fixture("qwen3_moe");
    let (s, _) = load(&dir, 7);
    assert_eq!(s, MOE_ERR_INVALID_ARGUMENT);
    assert!(common::last_error().contains("precision"));
    let run = |precision: u32| {
        let (s, m) = load(&dir, precision);
        assert_eq!(s, MOE_OK);
        let model = common::CModel(m);
        let out = model.session().prefill_all(&[1, 2, 3, 4, 5, 6, 7, 8]);
        drop(model);
        out
    };
    let (exact, bf16) = (run(0), run(1));
    let d = common::max_abs_diff(&exact, &bf16);
    // bf16 activations change the numbers a little (about three significant digits) where the CPU
    // has bf16 products, never a lot.
    assert!(d < 0.1, "f32 vs bf16 max abs diff {d}");
}

/// Mean over positions of KL(softmax(p) ‖ softmax(q)) for logits rows of `v`.
fn mean_kl(p: &[f32], q: &[f32], v: usize) -> f64 {
    let log_softmax = |row: &[f32]| {
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &x| a.max(x as f64));
        let z = row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln() + m;
        row.iter().map(|&x| x as f64 - z).collect::<Vec<f64>>()
    };
    let rows = p.len() / v;
    let mut total = 0.0;
    for (a, b) in p.chunks_exact(v).zip(q.chunks_exact(v)) {
        let (la, lb) = (log_softmax(a), log_softmax(b));
        total += la
            .iter()
            .zip(&lb)
            .map(|(x, y)| x.exp() * (x - y))
            .sum::<f64>();
    }
    total / rows as f64
}

/// The defaults (`moe_model_default_params()` or NULL params) are bf16 activations for bf16 weights;
/// `precision = MOE_PRECISION_F32` is the exact mode, which matches the reference. On the demo model
/// (bf16 weights) the two differ a little where the CPU has bf16 arithmetic.
#[test]
fn the_default_precision_is_bf16_and_f32_is_the_exact_mode() {
    use moe::moe_precision::{MOE_PRECISION_BF16, MOE_PRECISION_F32};
    assert_eq!(
        moe::moe_model_default_params().precision,
        MOE_PRECISION_BF16 as u32
    );
    let dir = common::repo_root().join("models/tiny-deepseek-pycode");
    let reference = common::Reference::load(&dir);
    let prompt = &reference.ids["input_ids"];
    let default = common::CModel::load_default(&dir);
    assert_eq!(default.precision(), MOE_PRECISION_BF16 as u32);
    let (s, m) = load(&dir, MOE_PRECISION_BF16 as u32);
    assert_eq!(s, MOE_OK);
    assert_eq!(common::CModel(m).precision(), MOE_PRECISION_BF16 as u32);
    let exact = common::CModel::load(&dir);
    assert_eq!(exact.precision(), MOE_PRECISION_F32 as u32);
    let (mut sd, mut se) = (default.session(), exact.session());
    let mut got = sd.prefill_all(prompt);
    let mut want = se.prefill_all(prompt);
    let d = common::max_abs_diff(&want, &reference.floats["prefill_logits"]);
    assert!(d < common::TOL, "exact vs reference {d}");
    let token = reference.ids["decode_ids"][0];
    got.extend(sd.decode(token));
    want.extend(se.decode(token));
    // Close in distribution: a rounding may flip a routing choice at some position, which moves that
    // position's logits by more than a bound on the largest difference would allow.
    let v = default.vocab();
    let kl = mean_kl(&want, &got, v);
    assert!(kl < 3e-2, "default vs exact: mean KL {kl}");
    let rounds = [ProductKind::Prefill, ProductKind::Decode]
        .into_iter()
        .any(|k| choose(k, Precision::Bf16) == Isa::Avx512Bf16);
    if rounds {
        assert!(got != want, "the default computed the exact logits");
    }
    let mut p = 0u32;
    // SAFETY: NULL is refused with a status, never dereferenced.
    let s = unsafe { moe::moe_model_precision(std::ptr::null(), &mut p) };
    assert_eq!(s, MOE_ERR_NULL_ARGUMENT);
    // SAFETY: a live handle; a NULL out-pointer is refused.
    let s = unsafe { moe::moe_model_precision(exact.0, std::ptr::null_mut()) };
    assert_eq!(s, MOE_ERR_NULL_ARGUMENT);
}

#[test]
fn memory_estimate_before_loading() {
    let dir = common::fixture("deepseek_v3");
    let path = CString::new(dir.to_str().unwrap()).unwrap();
    let mut e = moe::moe_memory_estimate::default();
    // SAFETY: a valid C string and out-pointer.
    ok(unsafe { moe::moe_estimate_memory(path.as_ptr(), 40, &mut e) });
    let want = moe_core::Model::estimate_memory(&dir, Some(40)).unwrap();
    assert_eq!(
        (
            e.weight_bytes,
            e.kv_cache_bytes_per_token,
            e.context,
            e.kv_cache_bytes
        ),
        (
            want.weight_bytes,
            want.kv_cache_bytes_per_token,
            want.context,
            want.kv_cache_bytes
        )
    );
    assert_eq!(e.total_bytes, e.weight_bytes + e.kv_cache_bytes);
    let missing = CString::new("/no/such/model").unwrap();
    // SAFETY: as above.
    let s = unsafe { moe::moe_estimate_memory(missing.as_ptr(), 0, &mut e) };
    assert_eq!(s, MOE_ERR_NOT_FOUND);
}

unsafe extern "C" fn stop_after_first(done: usize, _total: usize, user: *mut c_void) -> bool {
    // SAFETY: `user` is the Vec passed below, alive for the call.
    unsafe { (*(user as *mut Vec<usize>)).push(done) };
    false
}

#[test]
fn a_prefill_is_cancelled_through_its_progress_callback() {
    let model = common::CModel::load(&common::fixture("qwen3_moe"));
    let v = model.vocab();
    let s = model.session();
    let ids: Vec<u32> = (1..=10).collect();
    let mut logits = vec![0f32; v];
    let mut seen: Vec<usize> = vec![];
    // SAFETY: live session; arrays of the stated lengths; `seen` outlives the call.
    let st = unsafe {
        moe::moe_session_prefill_progress(
            s.ptr,
            ids.as_ptr(),
            ids.len(),
            logits.as_mut_ptr(),
            v,
            4,
            Some(stop_after_first),
            &mut seen as *mut Vec<usize> as *mut c_void,
        )
    };
    assert_eq!(st, MOE_ERR_CANCELLED);
    assert_eq!(seen, vec![4]);
    assert_eq!(s.len(), 4, "the session keeps the chunk done");
    // Without a callback it is a chunked prefill.
    let s2 = model.session();
    // SAFETY: as above, no callback.
    ok(unsafe {
        moe::moe_session_prefill_progress(
            s2.ptr,
            ids.as_ptr(),
            ids.len(),
            logits.as_mut_ptr(),
            v,
            3,
            None,
            std::ptr::null_mut(),
        )
    });
    assert_eq!(s2.len(), 10);
}
