//! Text through a model's tokenizer: tokenize, detokenize and chat templates, into caller buffers
//! that report the size needed when they are too short.

use std::ffi::c_char;
use std::sync::Arc;

use moe_core::{ChatMessage, Tokenizer};

use crate::args::{array_in, cstr_arg, text_arg};
use crate::boundary::ffi_boundary;
use crate::last_error::{status_of, value_or, FfiError, FfiResult};
use crate::model::{model_ref, moe_model};
use crate::out_buffer::{write_ids, write_text};
use crate::status::moe_status;

/// The tokenizer of a model, or `MOE_ERR_NO_TOKENIZER`.
pub(crate) fn tokenizer_of(m: &moe_core::Model) -> FfiResult<&Arc<Tokenizer>> {
    m.tokenizer().ok_or_else(|| {
        FfiError::new(
            moe_status::MOE_ERR_NO_TOKENIZER,
            "the model directory has no tokenizer.json",
        )
    })
}

/// One chat turn: a role ("system", "user", "assistant", ...) and its text, both NUL-terminated
/// UTF-8. The library only reads them during the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct moe_chat_message {
    pub role: *const c_char,
    pub content: *const c_char,
}

/// The messages of a C array, checked and copied.
///
/// # Safety
/// `messages` must be NULL or point to `n` messages whose strings are NUL-terminated.
pub(crate) unsafe fn chat_messages(
    messages: *const moe_chat_message,
    n: usize,
) -> FfiResult<Vec<ChatMessage>> {
    // SAFETY: forwarded caller promise; NULL and alignment are checked.
    let list = unsafe { array_in(messages, n, "messages") }?;
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            // SAFETY: forwarded caller promise about each string.
            let role = unsafe { cstr_arg(m.role, &format!("messages[{i}].role")) }?;
            // SAFETY: as above.
            let content = unsafe { cstr_arg(m.content, &format!("messages[{i}].content")) }?;
            Ok(ChatMessage::new(role, content))
        })
        .collect()
}

/// Whether the model directory has a tokenizer (tokenizer.json), which the text functions need.
/// Returns false (and sets `moe_last_error()`) if `model` is not a live model.
///
/// Thread-safety: may be called from any thread.
///
/// # Safety
/// `model` must be NULL or a model handle not being freed during the call.
#[no_mangle]
pub unsafe extern "C" fn moe_model_has_tokenizer(model: *const moe_model) -> bool {
    ffi_boundary! {
        value_or(false, || {
            // SAFETY: forwarded caller promise.
            Ok(unsafe { model_ref(model) }?.model.tokenizer().is_some())
        })
    }
}

/// Whether the model has a chat template (the `chat_template` of tokenizer_config.json).
/// Returns false (and sets `moe_last_error()`) if `model` is not a live model.
///
/// Thread-safety: may be called from any thread.
///
/// # Safety
/// `model` must be NULL or a model handle not being freed during the call.
#[no_mangle]
pub unsafe extern "C" fn moe_model_has_chat_template(model: *const moe_model) -> bool {
    ffi_boundary! {
        value_or(false, || {
            // SAFETY: forwarded caller promise.
            let m = unsafe { model_ref(model) }?;
            Ok(m.model.tokenizer().is_some_and(|t| t.has_chat_template()))
        })
    }
}

/// Encodes `text_len` bytes of UTF-8 `text` (no NUL needed) into token ids, with the tokenizer's
/// special tokens (e.g. BOS) when `add_special_tokens`.
///
/// Writes the ids to `tokens` (room for `capacity` ids) and their number to `*n_tokens`. If
/// `capacity` is too small, only `*n_tokens` is written (the number needed) and the call answers
/// `MOE_ERR_BUFFER_TOO_SMALL`: call with `tokens` NULL and `capacity` 0 to ask for the size.
/// Other failures (`MOE_ERR_NO_TOKENIZER`, invalid UTF-8: `MOE_ERR_INVALID_ARGUMENT`) write nothing.
///
/// Ownership: all buffers stay the caller's. Thread-safety: may be called from any thread,
/// concurrently with other calls on the model.
///
/// # Safety
/// `model` must be NULL or a model handle not being freed during the call; `text` NULL or
/// `text_len` readable bytes; `tokens` NULL or `capacity` writable ids; `n_tokens` NULL or valid
/// for one write.
#[no_mangle]
pub unsafe extern "C" fn moe_model_tokenize(
    model: *const moe_model,
    text: *const c_char,
    text_len: usize,
    add_special_tokens: bool,
    tokens: *mut u32,
    capacity: usize,
    n_tokens: *mut usize,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise.
            let m = unsafe { model_ref(model) }?;
            let tok = tokenizer_of(&m.model)?;
            // SAFETY: forwarded caller promise.
            let text = unsafe { text_arg(text, text_len, "text") }?;
            let ids = tok.encode(text, add_special_tokens)?;
            // SAFETY: forwarded caller promises about `tokens` and `n_tokens`.
            unsafe { write_ids(&ids, tokens, capacity, n_tokens) }
        })
    }
}

/// Decodes `n_tokens` ids into UTF-8 text, dropping special tokens (such as end-of-sequence) when
/// `skip_special_tokens`.
///
/// Writes the text and a terminating NUL to `text` (room for `capacity` bytes) and the text's length
/// in bytes, without the NUL, to `*text_len`. If `capacity <= length`, only `*text_len` is written and
/// the call answers `MOE_ERR_BUFFER_TOO_SMALL`: allocate `*text_len + 1` bytes and call again (call
/// with `text` NULL and `capacity` 0 to ask for the size). Ids outside the tokenizer's vocabulary
/// answer `MOE_ERR_TOKEN_OUT_OF_RANGE` and write nothing.
///
/// Ownership: all buffers stay the caller's. Thread-safety: may be called from any thread,
/// concurrently with other calls on the model.
///
/// # Safety
/// `model` must be NULL or a model handle not being freed during the call; `tokens` NULL or
/// `n_tokens` readable ids; `text` NULL or `capacity` writable bytes; `text_len` NULL or valid for
/// one write.
#[no_mangle]
pub unsafe extern "C" fn moe_model_detokenize(
    model: *const moe_model,
    tokens: *const u32,
    n_tokens: usize,
    skip_special_tokens: bool,
    text: *mut c_char,
    capacity: usize,
    text_len: *mut usize,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise.
            let m = unsafe { model_ref(model) }?;
            let tok = tokenizer_of(&m.model)?;
            // SAFETY: forwarded caller promise.
            let ids = unsafe { array_in(tokens, n_tokens, "tokens") }?;
            let decoded = tok.decode(ids, skip_special_tokens)?;
            // SAFETY: forwarded caller promises about `text` and `text_len`.
            unsafe { write_text(&decoded, text, capacity, text_len) }
        })
    }
}

/// Renders the model's chat template over `n_messages` messages, as Hugging Face's
/// `apply_chat_template` does, ending with the assistant's turn header when
/// `add_generation_prompt`. The result is the prompt text to tokenize (with `add_special_tokens`
/// true, as the Rust API does) or to pass to `moe_session_generate`.
///
/// Buffer convention as for `moe_model_detokenize`: text plus NUL into `text` (`capacity` bytes),
/// the length without the NUL into `*text_len`; a short buffer gets only `*text_len` and
/// `MOE_ERR_BUFFER_TOO_SMALL`. A model without a chat template answers `MOE_ERR_TOKENIZER`.
///
/// Ownership: all buffers stay the caller's. Thread-safety: may be called from any thread.
///
/// # Safety
/// `model` must be NULL or a model handle not being freed during the call; `messages` NULL or
/// `n_messages` messages with NUL-terminated strings; `text` NULL or `capacity` writable bytes;
/// `text_len` NULL or valid for one write.
#[no_mangle]
pub unsafe extern "C" fn moe_model_apply_chat_template(
    model: *const moe_model,
    messages: *const moe_chat_message,
    n_messages: usize,
    add_generation_prompt: bool,
    text: *mut c_char,
    capacity: usize,
    text_len: *mut usize,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise.
            let m = unsafe { model_ref(model) }?;
            let tok = tokenizer_of(&m.model)?;
            // SAFETY: forwarded caller promise.
            let messages = unsafe { chat_messages(messages, n_messages) }?;
            let rendered = tok.apply_chat_template(&messages, add_generation_prompt)?;
            // SAFETY: forwarded caller promises about `text` and `text_len`.
            unsafe { write_text(&rendered, text, capacity, text_len) }
        })
    }
}
