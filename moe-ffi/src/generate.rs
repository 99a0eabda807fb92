//! Text generation on a session: the prompt (text or chat messages) is tokenized and prefilled, then
//! tokens are sampled and each complete UTF-8 piece of text is handed to the caller's callback,
//! which may stop generation.

use std::ffi::{c_char, c_void};

use moe_core::{GenerateOptions, Session, TextGenerator, TextOptions};

use crate::args::{array_in, cstr_arg, out_ptr, text_arg, write_out};
use crate::boundary::ffi_boundary;
use crate::finish::{finish_of, moe_finish_reason};
use crate::last_error::{status_of, FfiResult};
use crate::model::{model_ref, moe_model};
use crate::sampler::{moe_sampler_params, GREEDY};
use crate::session::{handle_mut, moe_session};
use crate::status::moe_status;
use crate::text::{chat_messages, moe_chat_message, tokenizer_of};

/// Receives each piece of generated text: `piece_len` bytes of complete UTF-8 at `piece`, followed by
/// a NUL (so `piece` is also a C string when the text holds no NUL). `piece` is valid only during the
/// call; copy it to keep it. Return true to go on, false to stop generation after this piece.
///
/// It runs on the generating thread, must return normally (no longjmp, no C++ exception), and may use
/// any handle except the generating session (such calls answer `MOE_ERR_BUSY`).
#[allow(non_camel_case_types)]
pub type moe_piece_fn = Option<
    unsafe extern "C" fn(piece: *const c_char, piece_len: usize, user_data: *mut c_void) -> bool,
>;

/// Options of `moe_session_generate` / `moe_session_generate_chat`. Start from
/// `moe_generate_default_params()` or `moe_model_default_generate_params()` and change fields, so
/// programs keep compiling when fields are added.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct moe_generate_params {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// How to pick each token (default: greedy).
    pub sampler: moe_sampler_params,
    /// Generation ends before the first occurrence of any of these NUL-terminated UTF-8 strings (the
    /// stop string itself is not delivered). NULL when `n_stop_strings` is 0; read during the call only.
    pub stop_strings: *const *const c_char,
    pub n_stop_strings: usize,
    /// Generation ends after any of these token ids (delivered unless special and skipped). NULL when
    /// `n_stop_tokens` is 0; read during the call only.
    pub stop_tokens: *const u32,
    pub n_stop_tokens: usize,
    /// Also stop at the model's end-of-sequence ids (`moe_model_eos_tokens`). Default true.
    pub stop_at_eos: bool,
    /// Tokenize a text prompt with the tokenizer's special tokens (e.g. BOS). Default true. Chat
    /// prompts are encoded as the template renders them, without added special tokens (the template
    /// writes its own), as transformers' `apply_chat_template` does.
    pub add_special_tokens: bool,
    /// Leave special tokens (e.g. end-of-sequence) out of the delivered text. Default true.
    pub skip_special_tokens: bool,
}

fn default_params(sampler: moe_sampler_params, max_new_tokens: usize) -> moe_generate_params {
    moe_generate_params {
        max_new_tokens,
        sampler,
        stop_strings: std::ptr::null(),
        n_stop_strings: 0,
        stop_tokens: std::ptr::null(),
        n_stop_tokens: 0,
        stop_at_eos: true,
        add_special_tokens: true,
        skip_special_tokens: true,
    }
}

/// Generation defaults that do not depend on a model: 128 tokens, greedy, stop at end-of-sequence,
/// special tokens added to the prompt and left out of the text.
///
/// Thread-safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn moe_generate_default_params() -> moe_generate_params {
    ffi_boundary! {
        // Stand-in should computing the defaults panic: the same values, spelled out.
        on_panic = default_params(GREEDY, 128);
        default_params(GREEDY, GenerateOptions::default().max_new_tokens)
    }
}

/// The model's generation defaults: `moe_generate_default_params()` with the sampling settings and
/// `max_new_tokens` of its generation_config.json where it gives them (greedy unless it sets
/// `do_sample`). Writes `*out` on success only.
///
/// Thread-safety: may be called from any thread.
///
/// # Safety
/// `model` must be NULL or a model handle not being freed during the call; `out` NULL or valid for
/// one write.
#[no_mangle]
pub unsafe extern "C" fn moe_model_default_generate_params(
    model: *const moe_model,
    out: *mut moe_generate_params,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise.
            let m = unsafe { model_ref(model) }?;
            let out = out_ptr(out, "out")?;
            let g = m.model.generation_config();
            let params = default_params(
                g.sampler_defaults().into(),
                g.max_new_tokens.unwrap_or(GenerateOptions::default().max_new_tokens),
            );
            // SAFETY: checked by `out_ptr`.
            unsafe { write_out(out, params) };
            Ok(())
        })
    }
}

/// Turns C generation parameters into the engine's options, checking everything first.
///
/// # Safety
/// The arrays and strings in `p` must be valid as documented on `moe_generate_params`.
unsafe fn text_options(p: &moe_generate_params, eos: Vec<u32>) -> FfiResult<TextOptions> {
    let sampler: moe_core::SamplerParams = p.sampler.into();
    sampler.validate()?;
    // SAFETY: forwarded caller promise.
    let strings = unsafe { array_in(p.stop_strings, p.n_stop_strings, "stop_strings") }?;
    let mut stop_strings = Vec::with_capacity(strings.len());
    for (i, &s) in strings.iter().enumerate() {
        // SAFETY: forwarded caller promise about each string.
        let s = unsafe { cstr_arg(s, &format!("stop_strings[{i}]")) }?;
        stop_strings.push(s.to_string());
    }
    // SAFETY: forwarded caller promise.
    let mut stop_tokens =
        unsafe { array_in(p.stop_tokens, p.n_stop_tokens, "stop_tokens") }?.to_vec();
    if p.stop_at_eos {
        stop_tokens.extend(eos);
    }
    let generate = GenerateOptions::new(p.max_new_tokens)
        .with_sampler(sampler)
        .with_stop_tokens(stop_tokens);
    Ok(TextOptions::new(generate)
        .with_stop_strings(stop_strings)
        .with_skip_special_tokens(p.skip_special_tokens))
}

/// The prompt of a generation, still to be rendered and tokenized.
enum Prompt<'a> {
    Text(&'a str),
    Chat(Vec<moe_core::ChatMessage>),
}

/// Clears a session's busy mark when generation ends, panics included.
struct BusyGuard(*mut moe_session);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        // SAFETY: the session cannot be freed while busy (`moe_session_free` refuses), so the pointer
        // is live; no reference to it is held by the generating frame at this point.
        unsafe { (*self.0).busy = false }
    }
}

/// Tokenizes and prefills `prompt`, then streams pieces to `on_piece` until the end, a stop, or
/// the callback's refusal. Returns the number of tokens generated.
///
/// # Safety
/// `session` as for `handle_mut`; `params` NULL or valid; `on_piece` and `user_data` as documented.
unsafe fn generate(
    session: *mut moe_session,
    prompt: Prompt<'_>,
    params: *const moe_generate_params,
    on_piece: moe_piece_fn,
    user_data: *mut c_void,
) -> FfiResult<usize> {
    let (mut generator, guard, stop_strings) = {
        // SAFETY: forwarded caller promise; refuses a busy session.
        let h = unsafe { handle_mut(session) }?;
        let model = h.session.model().clone();
        let tok = tokenizer_of(&model)?.clone();
        // SAFETY: `params` is NULL or valid (caller's promise).
        let p = unsafe { params.as_ref() }
            .copied()
            .unwrap_or_else(|| moe_generate_default_params());
        // SAFETY: forwarded caller promise about the arrays in `p`.
        let opts = unsafe { text_options(&p, model.eos_token_ids()) }?;
        let stop_strings = opts.stop_strings.clone();
        let ids = match prompt {
            Prompt::Text(t) => tok.encode(t, p.add_special_tokens)?,
            Prompt::Chat(messages) => tok.encode_chat(&messages, true)?,
        };
        // Checked before the session is handed to the generator (which would drop it on failure),
        // so that a failing call leaves the session as it was.
        h.session.check_tokens(&ids)?;
        let stand_in = Session::new(model, &h.params)?;
        let owned = std::mem::replace(&mut h.session, stand_in);
        h.busy = true;
        h.finish = (moe_finish_reason::MOE_FINISH_NONE, usize::MAX);
        let guard = BusyGuard(session);
        (
            TextGenerator::new(owned, tok, &ids, opts)?,
            guard,
            stop_strings,
        )
    };
    // No reference into the handle lives from here until the session is put back, so the callback's
    // calls on it (refused as busy) alias nothing.
    let mut result = Ok(());
    while let Some(piece) = generator.next_piece().transpose() {
        let piece = match piece {
            Ok(p) => p,
            Err(e) => {
                result = Err(e.into());
                break;
            }
        };
        let Some(f) = on_piece else { continue };
        let mut bytes = piece.into_bytes();
        let len = bytes.len();
        bytes.push(0);
        // SAFETY: the caller supplied `f` with this signature; the piece stays alive during the call.
        if !unsafe { f(bytes.as_ptr().cast(), len, user_data) } {
            generator.stop();
        }
    }
    let produced = generator.produced();
    let finish = finish_of(generator.finish_reason(), &stop_strings);
    // SAFETY: the session is still live (busy sessions cannot be freed) and no other reference to
    // it is held; putting the session back before the guard clears the busy mark.
    unsafe {
        (*session).finish = finish;
        (*session).session = generator.into_session();
    }
    drop(guard);
    result.map(|()| produced)
}

/// An out-pointer that may be NULL, checked before any work.
fn optional_out(ptr: *mut usize) -> FfiResult<Option<*mut usize>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        out_ptr(ptr, "n_generated").map(Some)
    }
}

/// Writes through an out-pointer from [`optional_out`], if any.
///
/// # Safety
/// A `Some` pointer must be valid for one write.
unsafe fn write_optional(ptr: Option<*mut usize>, value: usize) {
    if let Some(p) = ptr {
        // SAFETY: checked by `out_ptr`; writable by the caller's promise.
        unsafe { write_out(p, value) }
    }
}

/// Generates text after `prompt` (`prompt_len` bytes of UTF-8, no NUL needed), which is tokenized
/// and fed after what the session already holds; each piece of new text goes to `on_piece` (may be
/// NULL) with `user_data`, as it is produced. Ends at `max_new_tokens`, a stop string or token, or
/// when `on_piece` returns false. `params` may be NULL for `moe_generate_default_params()`.
///
/// On success the session holds the prompt and the generated tokens (read them with
/// `moe_session_tokens`), and `*n_generated` (if not NULL) receives the number of tokens generated.
/// `moe_session_finish_reason` then says why generation ended: an end-of-sequence or stop token, a
/// stop string, `max_new_tokens`, a full context (which ends generation, it is not an error), or the
/// callback's refusal. Errors found before generation starts (`MOE_ERR_NO_TOKENIZER`,
/// `MOE_ERR_EMPTY_PROMPT`, `MOE_ERR_CONTEXT_FULL` for a prompt longer than the room left, invalid
/// sampler parameters, ...) change nothing. An error during generation ends it: the pieces already
/// delivered stay delivered and the session keeps the tokens generated so far; `*n_generated` is not
/// written.
///
/// Ownership: all arguments stay the caller's; nothing is kept after the call. Thread-safety: one
/// thread at a time per session; sessions of one model may generate in parallel.
///
/// # Safety
/// `session` must be NULL or a session not used elsewhere during the call; `prompt` NULL or
/// `prompt_len` readable bytes; `params` NULL or valid, with its arrays as documented; `on_piece`
/// NULL or a function of that type; `n_generated` NULL or valid for one write.
#[no_mangle]
pub unsafe extern "C" fn moe_session_generate(
    session: *mut moe_session,
    prompt: *const c_char,
    prompt_len: usize,
    params: *const moe_generate_params,
    on_piece: moe_piece_fn,
    user_data: *mut c_void,
    n_generated: *mut usize,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            let n_out = optional_out(n_generated)?;
            // SAFETY: forwarded caller promise.
            let text = unsafe { text_arg(prompt, prompt_len, "prompt") }?;
            // SAFETY: forwarded caller promises.
            let n = unsafe { generate(session, Prompt::Text(text), params, on_piece, user_data) }?;
            // SAFETY: forwarded caller promise; checked by `optional_out`.
            unsafe { write_optional(n_out, n) };
            Ok(())
        })
    }
}

/// Like `moe_session_generate`, with the prompt made by the model's chat template from
/// `n_messages` messages and the assistant's turn header (see `moe_model_apply_chat_template`).
/// A model without a chat template answers `MOE_ERR_TOKENIZER`, changing nothing.
///
/// Ownership and thread-safety as for `moe_session_generate`.
///
/// # Safety
/// As for `moe_session_generate`; `messages` NULL or `n_messages` messages with NUL-terminated
/// strings.
#[no_mangle]
pub unsafe extern "C" fn moe_session_generate_chat(
    session: *mut moe_session,
    messages: *const moe_chat_message,
    n_messages: usize,
    params: *const moe_generate_params,
    on_piece: moe_piece_fn,
    user_data: *mut c_void,
    n_generated: *mut usize,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            let n_out = optional_out(n_generated)?;
            // SAFETY: forwarded caller promise.
            let messages = unsafe { chat_messages(messages, n_messages) }?;
            // SAFETY: forwarded caller promises.
            let n = unsafe { generate(session, Prompt::Chat(messages), params, on_piece, user_data) }?;
            // SAFETY: forwarded caller promise; checked by `optional_out`.
            unsafe { write_optional(n_out, n) };
            Ok(())
        })
    }
}

/// Why the last `moe_session_generate*` call on `session` ended: `*reason` receives the
/// `moe_finish_reason` (`MOE_FINISH_NONE` before any generation, or when the last one failed), and
/// `*stop_index` (if not NULL) the index in `stop_strings` of the stop string that matched, or
/// `SIZE_MAX` for any other reason.
///
/// Thread-safety: as for the session's other calls (one thread at a time).
///
/// # Safety
/// `session` must be NULL or a session handle not being freed during the call; `reason` NULL or
/// valid for one write; `stop_index` NULL or valid for one write.
#[no_mangle]
pub unsafe extern "C" fn moe_session_finish_reason(
    session: *const moe_session,
    reason: *mut moe_finish_reason,
    stop_index: *mut usize,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            let reason = out_ptr(reason, "reason")?;
            let stop_out = optional_out(stop_index)?;
            // SAFETY: forwarded caller promise; a shared read of a handle that is not generating.
            let h = unsafe { crate::session::handle_ref(session) }?;
            let (r, i) = h.finish;
            // SAFETY: checked by `out_ptr` / `optional_out`; writable by the caller's promise.
            unsafe {
                write_out(reason, r);
                write_optional(stop_out, i);
            }
            Ok(())
        })
    }
}
