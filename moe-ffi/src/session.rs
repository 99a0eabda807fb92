//! `moe_session`: the caches and position of one sequence, run through prefill and decode.

use std::ffi::c_void;

use moe_core::{KvDType, LogitsMode, Session, SessionParams, SparseMode};

use crate::args::{array_in, array_out, out_ptr, write_out};
use crate::boundary::ffi_boundary;
use crate::handle::{self, Handle, Kind};
use crate::last_error::{status_of, value_or, FfiError, FfiResult};
use crate::model::{model_ref, moe_model};
use crate::status::moe_status;

/// One sequence's state (opaque): the KV caches and the tokens fed so far. A session is used by one
/// thread at a time (it may move between threads between calls); make one session per thread to run
/// a shared model in parallel.
#[allow(non_camel_case_types)]
pub struct moe_session {
    pub(crate) session: Session,
    /// What the session was made with (to make an empty stand-in while a generation owns it).
    pub(crate) params: SessionParams,
    /// True while `moe_session_generate*` runs; calls from its callback are refused.
    pub(crate) busy: bool,
    /// Why the last generation ended, and the index of its stop string (`usize::MAX` if none).
    pub(crate) finish: (crate::finish::moe_finish_reason, usize),
}

impl Handle for moe_session {
    const KIND: Kind = Kind::Session;
    const NAME: &'static str = "moe_session";
}

/// Options of `moe_session_new`. Get the defaults from `moe_session_default_params()` and change
/// fields, so programs keep compiling when fields are added.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct moe_session_params {
    /// Most tokens the session may hold; 0 (the default) means the model's maximum context.
    pub max_context: usize,
    /// For DeepSeek sparse-attention layers: attend to every key instead of the indexer's selection
    /// (for comparison; the default, false, is the model's definition). No effect on other models.
    pub dense_attention: bool,
    /// The precision the caches store rows in: `MOE_KV_DTYPE_F32` (the default, exact),
    /// `MOE_KV_DTYPE_BF16` or `MOE_KV_DTYPE_INT8` (one f32 scale a row). Other values are
    /// `MOE_ERR_INVALID_ARGUMENT`.
    pub kv_dtype: moe_kv_dtype_arg,
}

/// Values of `moe_session_params.kv_dtype`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum moe_kv_dtype {
    /// 4 bytes a value, exact (the default).
    MOE_KV_DTYPE_F32 = 0,
    /// 2 bytes a value (bf16, rounded to nearest even).
    MOE_KV_DTYPE_BF16 = 1,
    /// 1 byte a value plus one f32 scale a row.
    MOE_KV_DTYPE_INT8 = 2,
}

/// The raw integer a C caller stores in `moe_session_params.kv_dtype` (checked before use). Shown as
/// `moe_kv_dtype` in the header.
#[allow(non_camel_case_types)]
pub type moe_kv_dtype_arg = u32;

fn kv_dtype_of(raw: moe_kv_dtype_arg) -> FfiResult<KvDType> {
    match raw {
        r if r == moe_kv_dtype::MOE_KV_DTYPE_F32 as u32 => Ok(KvDType::F32),
        r if r == moe_kv_dtype::MOE_KV_DTYPE_BF16 as u32 => Ok(KvDType::Bf16),
        r if r == moe_kv_dtype::MOE_KV_DTYPE_INT8 as u32 => Ok(KvDType::Int8),
        other => Err(FfiError::invalid(format!(
            "kv_dtype {other} is not MOE_KV_DTYPE_F32 (0), MOE_KV_DTYPE_BF16 (1) or \
             MOE_KV_DTYPE_INT8 (2)"
        ))),
    }
}

/// The default session parameters: the model's maximum context, sparse attention as defined.
///
/// Thread-safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn moe_session_default_params() -> moe_session_params {
    ffi_boundary! { on_panic = DEFAULT_PARAMS; DEFAULT_PARAMS }
}

const DEFAULT_PARAMS: moe_session_params = moe_session_params {
    max_context: 0,
    dense_attention: false,
    kv_dtype: moe_kv_dtype::MOE_KV_DTYPE_F32 as moe_kv_dtype_arg,
};

/// Starts an empty session on `model`. `params` may be NULL for the defaults.
///
/// On success `*out` receives a new session that the caller owns and releases with
/// `moe_session_free`; it keeps the model's weights alive on its own. On failure `*out` is left
/// untouched. Thread-safety: several threads may create sessions from one model at the same time.
///
/// # Safety
/// `model` must be NULL or a model handle not being freed during the call; `params` NULL or a valid
/// `moe_session_params`; `out` NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn moe_session_new(
    model: *const moe_model,
    params: *const moe_session_params,
    out: *mut *mut moe_session,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise about `model`.
            let m = unsafe { model_ref(model) }?;
            let out = out_ptr(out, "out")?;
            // SAFETY: `params` is NULL or valid (caller's promise).
            let p = unsafe { params.as_ref() }
                .copied()
                .unwrap_or_else(|| moe_session_default_params());
            let mut params = SessionParams::default();
            params.max_context = (p.max_context > 0).then_some(p.max_context);
            params.sparse_mode = if p.dense_attention {
                SparseMode::Dense
            } else {
                SparseMode::Sparse
            };
            params.kv_dtype = kv_dtype_of(p.kv_dtype)?;
            let session = Session::new(m.model.clone(), &params)?;
            let handle = register(session);
            // SAFETY: checked by `out_ptr`; written only on success.
            unsafe { write_out(out, handle) };
            Ok(())
        })
    }
}

/// Registers `session` as a new handle the caller owns.
pub(crate) fn register(session: Session) -> *mut moe_session {
    let params = SessionParams::default()
        .with_max_context(Some(session.max_context()))
        .with_sparse_mode(session.sparse_mode())
        .with_kv_dtype(session.kv_dtype());
    handle::register(moe_session {
        session,
        params,
        busy: false,
        finish: (
            crate::finish::moe_finish_reason::MOE_FINISH_NONE,
            usize::MAX,
        ),
    })
}

/// Frees a session and its caches. NULL is a no-op; a pointer that is not a live session (e.g.
/// freed twice) is left alone and reported through `moe_last_error()`.
///
/// Thread-safety: no other call may be using this session at the same time.
///
/// # Safety
/// `session` must be NULL or a pointer returned by `moe_session_new`.
#[no_mangle]
pub unsafe extern "C" fn moe_session_free(session: *mut moe_session) {
    ffi_boundary! {
        value_or((), || {
            if session.is_null() {
                return Ok(());
            }
            // SAFETY: not used concurrently (documented contract); the registry refuses stale
            // pointers, and a busy session is refused before release.
            unsafe {
                handle_mut(session)?;
                handle::release(session, "session")
            }
        })
    }
}

fn not_busy(h: &moe_session) -> FfiResult<()> {
    if h.busy {
        return Err(FfiError::new(
            moe_status::MOE_ERR_BUSY,
            "the session is generating; its generation callback may not use or free it",
        ));
    }
    Ok(())
}

/// The handle object behind a live, idle session handle.
///
/// # Safety
/// `session` must not be freed or used by another thread during the borrow.
pub(crate) unsafe fn handle_mut<'a>(session: *mut moe_session) -> FfiResult<&'a mut moe_session> {
    // SAFETY: the registry checks the handle; exclusive use is the caller's promise.
    let h = unsafe { handle::get_mut(session, "session") }?;
    not_busy(h)?;
    Ok(h)
}

/// The session behind a live, idle handle, for changing it.
///
/// # Safety
/// `session` must not be freed or used by another thread during the borrow.
pub(crate) unsafe fn session_mut<'a>(session: *mut moe_session) -> FfiResult<&'a mut Session> {
    // SAFETY: forwarded caller promise.
    Ok(&mut unsafe { handle_mut(session) }?.session)
}

/// The session behind a live, idle handle, for reading it.
///
/// # Safety
/// `session` must not be freed or changed by another thread during the borrow.
pub(crate) unsafe fn session_ref<'a>(session: *const moe_session) -> FfiResult<&'a Session> {
    // SAFETY: the registry checks the handle; no concurrent writer (caller's promise).
    let h = unsafe { handle::get(session, "session") }?;
    not_busy(h)?;
    Ok(&h.session)
}

/// A live, idle session handle, for reading its fields.
///
/// # Safety
/// `session` must not be freed or written by another thread during the borrow.
pub(crate) unsafe fn handle_ref<'a>(session: *const moe_session) -> FfiResult<&'a moe_session> {
    // SAFETY: the registry checks the handle; no concurrent writer (caller's promise).
    let h = unsafe { handle::get(session, "session") }?;
    not_busy(h)?;
    Ok(h)
}

/// Which logits `logits_len` asks for when `n` tokens are fed.
fn logits_mode(session: &Session, n: usize, logits_len: usize) -> FfiResult<LogitsMode> {
    let v = session.model().vocab_size();
    if logits_len == 0 {
        Ok(LogitsMode::None)
    } else if logits_len == v {
        Ok(LogitsMode::Last)
    } else if Some(logits_len) == n.checked_mul(v) {
        Ok(LogitsMode::All)
    } else {
        Err(FfiError::new(
            moe_status::MOE_ERR_BUFFER_SIZE,
            format!(
                "logits_len is {logits_len}; it must be 0, vocab ({v}) or n_tokens * vocab ({n} * {v})"
            ),
        ))
    }
}

/// Feeds `tokens` after what the session holds and writes logits into `logits`:
/// `logits_len == n_tokens * vocab` fills every new position (row-major, one row of `vocab` floats per
/// token), `logits_len == vocab` only the last one, and `logits_len == 0` (with `logits` NULL or not)
/// none. Any other length is `MOE_ERR_BUFFER_SIZE`.
///
/// Fails with `MOE_ERR_EMPTY_PROMPT` for `n_tokens == 0`, `MOE_ERR_TOKEN_OUT_OF_RANGE` for an id
/// `>= vocab`, `MOE_ERR_CONTEXT_FULL` past the session's `max_context`; on any failure the session and
/// `logits` are unchanged.
///
/// Ownership: `tokens` and `logits` stay the caller's; they are not kept after the call.
/// Thread-safety: one thread at a time per session; sessions of one model may run in parallel.
///
/// # Safety
/// `session` must be NULL or a session not used elsewhere during the call; `tokens` NULL or
/// `n_tokens` readable ids; `logits` NULL or `logits_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn moe_session_prefill(
    session: *mut moe_session,
    tokens: *const u32,
    n_tokens: usize,
    logits: *mut f32,
    logits_len: usize,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise about `session`.
            let s = unsafe { session_mut(session) }?;
            // SAFETY: forwarded caller promise about `tokens`; NULL and alignment are checked.
            let tokens = unsafe { array_in(tokens, n_tokens, "tokens") }?;
            // SAFETY: forwarded caller promise about `logits`.
            unsafe { feed(s, tokens, logits, logits_len) }
        })
    }
}

/// Feeds one token and writes the next-token logits: `logits_len == vocab` fills them,
/// `logits_len == 0` computes none (the token only enters the cache). Other lengths are
/// `MOE_ERR_BUFFER_SIZE`. Errors as for `moe_session_prefill`; on failure nothing changes.
///
/// Ownership: `logits` stays the caller's. Thread-safety: one thread at a time per session.
///
/// # Safety
/// `session` must be NULL or a session not used elsewhere during the call; `logits` NULL or
/// `logits_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn moe_session_decode(
    session: *mut moe_session,
    token: u32,
    logits: *mut f32,
    logits_len: usize,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise about `session`.
            let s = unsafe { session_mut(session) }?;
            // SAFETY: forwarded caller promise about `logits`.
            unsafe { feed(s, &[token], logits, logits_len) }
        })
    }
}

/// Checks the output buffer, runs the tokens and copies the logits out.
///
/// # Safety
/// `logits` must be NULL or valid for `logits_len` writes.
unsafe fn feed(
    s: &mut Session,
    tokens: &[u32],
    logits: *mut f32,
    logits_len: usize,
) -> FfiResult<()> {
    let mode = logits_mode(s, tokens.len(), logits_len)?;
    // SAFETY: forwarded caller promise; checked for NULL and alignment.
    let out = unsafe { array_out(logits, logits_len, "logits") }?;
    let got = s.prefill(tokens, mode)?;
    out.copy_from_slice(&got);
    Ok(())
}

/// Called by `moe_session_prefill_progress` after each chunk with the tokens done so far and the
/// total; return false to cancel the rest. `user_data` is the pointer given to the call. It runs on
/// the calling thread and must return normally (no longjmp, no C++ exception).
#[allow(non_camel_case_types)]
pub type moe_prefill_progress_fn =
    Option<unsafe extern "C" fn(done: usize, total: usize, user_data: *mut c_void) -> bool>;

/// Like `moe_session_prefill`, `chunk` tokens at a time (`chunk` >= 1), calling `progress` (may be
/// NULL) after each chunk. When `progress` returns false the rest is cancelled: the call answers
/// `MOE_ERR_CANCELLED`, the session keeps the chunks done (`moe_session_len` says how many) and
/// `logits` is not written. The logits equal prefilling the chunks one after another.
///
/// Ownership: `tokens` and `logits` stay the caller's. Thread-safety: one thread at a time per
/// session.
///
/// # Safety
/// As for `moe_session_prefill`; `progress` NULL or a function of that type.
#[allow(clippy::too_many_arguments)]
#[no_mangle]
pub unsafe extern "C" fn moe_session_prefill_progress(
    session: *mut moe_session,
    tokens: *const u32,
    n_tokens: usize,
    logits: *mut f32,
    logits_len: usize,
    chunk: usize,
    progress: moe_prefill_progress_fn,
    user_data: *mut c_void,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise about `session`.
            let s = unsafe { session_mut(session) }?;
            // SAFETY: forwarded caller promise about `tokens`; NULL and alignment are checked.
            let tokens = unsafe { array_in(tokens, n_tokens, "tokens") }?;
            let mode = logits_mode(s, tokens.len(), logits_len)?;
            // SAFETY: forwarded caller promise; checked for NULL and alignment.
            let out = unsafe { array_out(logits, logits_len, "logits") }?;
            let mut report = |done: usize, total: usize| match progress {
                // SAFETY: the caller supplied `f` with this signature and vouches for `user_data`.
                Some(f) => unsafe { f(done, total, user_data) },
                None => true,
            };
            let got = s.prefill_with_progress(tokens, mode, chunk, &mut report)?;
            out.copy_from_slice(&got);
            Ok(())
        })
    }
}

/// Forgets every token: the session is empty again, as new. Fails only for a bad handle.
///
/// Thread-safety: one thread at a time per session.
///
/// # Safety
/// `session` must be NULL or a session not used elsewhere during the call.
#[no_mangle]
pub unsafe extern "C" fn moe_session_reset(session: *mut moe_session) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise.
            unsafe { session_mut(session) }?.reset();
            Ok(())
        })
    }
}

/// Keeps only the first `n_tokens` tokens (no-op when the session holds no more). Fails with
/// `MOE_ERR_INVALID_ARGUMENT`, changing nothing, when a sliding-window cache already dropped
/// positions that would be needed.
///
/// Thread-safety: one thread at a time per session.
///
/// # Safety
/// `session` must be NULL or a session not used elsewhere during the call.
#[no_mangle]
pub unsafe extern "C" fn moe_session_truncate(
    session: *mut moe_session,
    n_tokens: usize,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise.
            Ok(unsafe { session_mut(session) }?.truncate(n_tokens)?)
        })
    }
}

/// The number of tokens the session holds. Returns 0 (and sets `moe_last_error()`) if `session` is
/// not a live session.
///
/// Thread-safety: not concurrently with a call that changes the session.
///
/// # Safety
/// `session` must be NULL or a session not changed elsewhere during the call.
#[no_mangle]
pub unsafe extern "C" fn moe_session_len(session: *const moe_session) -> usize {
    ffi_boundary! {
        value_or(0, || {
            // SAFETY: forwarded caller promise.
            let s = unsafe { session_ref(session) }?;
            Ok(s.len())
        })
    }
}

/// The most tokens the session may hold. Returns 0 (and sets `moe_last_error()`) if `session` is not
/// a live session.
///
/// Thread-safety: not concurrently with a call that frees the session.
///
/// # Safety
/// `session` must be NULL or a session not freed during the call.
#[no_mangle]
pub unsafe extern "C" fn moe_session_max_context(session: *const moe_session) -> usize {
    ffi_boundary! {
        value_or(0, || {
            // SAFETY: forwarded caller promise.
            let s = unsafe { session_ref(session) }?;
            Ok(s.max_context())
        })
    }
}

/// Bytes held by the session's caches now. Returns 0 (and sets `moe_last_error()`) if `session` is
/// not a live session.
///
/// Thread-safety: not concurrently with a call that changes the session.
///
/// # Safety
/// `session` must be NULL or a session not changed elsewhere during the call.
#[no_mangle]
pub unsafe extern "C" fn moe_session_kv_cache_bytes(session: *const moe_session) -> usize {
    ffi_boundary! {
        value_or(0, || {
            // SAFETY: forwarded caller promise.
            let s = unsafe { session_ref(session) }?;
            Ok(s.kv_cache_bytes())
        })
    }
}

/// The tokens fed so far (prompt and generated), e.g. as the history for `moe_sampler_sample`.
/// On success `*tokens` points to `*n_tokens` ids (`*tokens` may be NULL when there are none); on
/// failure both are left untouched.
///
/// Ownership: the array belongs to the session and stays valid until the next call that changes
/// or frees the session; do not free it. Thread-safety: one thread at a time per session.
///
/// # Safety
/// `session` must be NULL or a session not changed elsewhere during the call; `tokens` and
/// `n_tokens` NULL or valid for one write each.
#[no_mangle]
pub unsafe extern "C" fn moe_session_tokens(
    session: *const moe_session,
    tokens: *mut *const u32,
    n_tokens: *mut usize,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise.
            let s = unsafe { session_ref(session) }?;
            let tokens = out_ptr(tokens, "tokens")?;
            let n_tokens = out_ptr(n_tokens, "n_tokens")?;
            let held = s.tokens();
            let ptr = if held.is_empty() { std::ptr::null() } else { held.as_ptr() };
            // SAFETY: both checked by `out_ptr`; written only once everything is checked.
            unsafe {
                write_out(tokens, ptr);
                write_out(n_tokens, held.len());
            }
            Ok(())
        })
    }
}
