//! Forking sessions and saving or restoring them: `moe_session_fork`, `moe_session_snapshot`,
//! `moe_session_save`, `moe_session_restore`, `moe_session_restore_file`.

use std::ffi::c_char;

use moe_core::Session;

use crate::args::{array_in, array_out, out_ptr, path_arg, write_out};
use crate::boundary::ffi_boundary;
use crate::last_error::{status_of, value_or, FfiError, FfiResult};
use crate::model::{model_ref, moe_model};
use crate::session::{moe_session, register, session_mut, session_ref};
use crate::status::moe_status;

/// Makes `*out` a new session holding the same tokens and caches as `session`, continuing
/// independently of it. The caches are not copied: what `session` holds now becomes read-only blocks
/// both share (N forks of one long prompt hold its cache once); each appends to its own tail. Logits
/// equal those of a fresh session fed the same tokens.
///
/// Ownership: the caller owns the new session and frees it with `moe_session_free`; freeing either
/// session leaves the other intact. On failure `*out` is untouched. Thread-safety: `session` is used
/// by one thread at a time; the fork may then move to another thread.
///
/// # Safety
/// `session` must be NULL or a session not used elsewhere during the call; `out` NULL or valid for
/// writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn moe_session_fork(
    session: *mut moe_session,
    out: *mut *mut moe_session,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise.
            let s = unsafe { session_mut(session) }?;
            let out = out_ptr(out, "out")?;
            let fork = s.fork();
            // SAFETY: checked by `out_ptr`; written only on success.
            unsafe { write_out(out, register(fork)) };
            Ok(())
        })
    }
}

/// Of `moe_session_kv_cache_bytes`, the bytes in blocks another session (a fork, or the session it
/// was forked from) also references: sessions sharing a prefix hold the sum of
/// `kv_cache_bytes - kv_cache_shared_bytes` plus the shared blocks once. Returns 0 (and sets
/// `moe_last_error()`) if `session` is not a live session.
///
/// # Safety
/// `session` must be NULL or a session not changed elsewhere during the call.
#[no_mangle]
pub unsafe extern "C" fn moe_session_kv_cache_shared_bytes(session: *const moe_session) -> usize {
    ffi_boundary! {
        value_or(0, || {
            // SAFETY: forwarded caller promise.
            let s = unsafe { session_ref(session) }?;
            Ok(s.kv_cache_shared_bytes())
        })
    }
}

/// Writes the session's snapshot (its tokens, options and every cache, with a versioned header, the
/// model's fingerprint and checksums; the layout is in docs/design.md) into `buf` (`capacity`
/// bytes) and its length into `*len`. When `capacity` is too small, writes only `*len` (the size needed) and fails with
/// `MOE_ERR_BUFFER_TOO_SMALL`; `buf` NULL with `capacity` 0 asks for the size.
///
/// Ownership: `buf` stays the caller's. Thread-safety: not concurrently with a call that changes the
/// session.
///
/// # Safety
/// `session` must be NULL or a session not changed elsewhere during the call; `buf` NULL or valid
/// for `capacity` byte writes; `len` NULL or valid for one write.
#[no_mangle]
pub unsafe extern "C" fn moe_session_snapshot(
    session: *const moe_session,
    buf: *mut u8,
    capacity: usize,
    len: *mut usize,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise.
            let s = unsafe { session_ref(session) }?;
            let len = out_ptr(len, "len")?;
            let bytes = s.snapshot();
            if capacity < bytes.len() {
                // SAFETY: checked by `out_ptr`; the size needed is the documented output.
                unsafe { write_out(len, bytes.len()) };
                return Err(FfiError::new(
                    moe_status::MOE_ERR_BUFFER_TOO_SMALL,
                    format!(
                        "the snapshot needs {} bytes, the buffer holds {capacity}",
                        bytes.len()
                    ),
                ));
            }
            // SAFETY: forwarded caller promise; NULL and alignment are checked.
            let out = unsafe { array_out(buf, capacity, "buf") }?;
            out[..bytes.len()].copy_from_slice(&bytes);
            // SAFETY: checked by `out_ptr`.
            unsafe { write_out(len, bytes.len()) };
            Ok(())
        })
    }
}

/// Writes the session's snapshot (as `moe_session_snapshot` makes it) to the file `path`, replacing
/// it. Fails with `MOE_ERR_IO` / `MOE_ERR_NOT_FOUND` when the file cannot be written.
///
/// # Safety
/// `session` must be NULL or a session not changed elsewhere during the call; `path` NULL or a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn moe_session_save(
    session: *const moe_session,
    path: *const c_char,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise.
            let s = unsafe { session_ref(session) }?;
            // SAFETY: `path` is NULL or NUL-terminated (caller's promise); NULL is refused.
            let path = unsafe { path_arg(path, "path") }?;
            s.save(path)?;
            Ok(())
        })
    }
}

fn finish_restore(
    restored: moe_core::Result<Session>,
    out: *mut *mut moe_session,
) -> FfiResult<()> {
    let session = restored?;
    // SAFETY: `out` was checked by `out_ptr` before the restore; written only on success.
    unsafe { write_out(out, register(session)) };
    Ok(())
}

/// Makes `*out` the session a snapshot of `len` bytes at `bytes` holds, over `model` (the model that
/// made it), with the snapshot's maximum context, attention mode and cache precision; it continues
/// with the logits the saved session would have produced. Fails with
/// `MOE_ERR_SNAPSHOT_MODEL_MISMATCH` (another model), `MOE_ERR_SNAPSHOT_VERSION`,
/// `MOE_ERR_SNAPSHOT_TRUNCATED` or `MOE_ERR_SNAPSHOT_CORRUPT`; `*out` is then untouched.
///
/// Ownership: `bytes` stays the caller's; the caller owns the new session (`moe_session_free`).
///
/// # Safety
/// `model` must be NULL or a live model handle; `bytes` NULL or `len` readable bytes; `out` NULL or
/// valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn moe_session_restore(
    model: *const moe_model,
    bytes: *const u8,
    len: usize,
    out: *mut *mut moe_session,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise about `model`.
            let m = unsafe { model_ref(model) }?;
            let out = out_ptr(out, "out")?;
            // SAFETY: forwarded caller promise; NULL (with len > 0) and alignment are checked.
            let bytes = unsafe { array_in(bytes, len, "bytes") }?;
            finish_restore(Session::restore(m.model.clone(), bytes), out)
        })
    }
}

/// `moe_session_restore` from a file `moe_session_save` wrote. The header is read and checked
/// before the rest, which is read only when its declared length fits the model and the file.
///
/// # Safety
/// `model` must be NULL or a live model handle; `path` NULL or a NUL-terminated string; `out` NULL
/// or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn moe_session_restore_file(
    model: *const moe_model,
    path: *const c_char,
    out: *mut *mut moe_session,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise about `model`.
            let m = unsafe { model_ref(model) }?;
            // SAFETY: `path` is NULL or NUL-terminated (caller's promise); NULL is refused.
            let path = unsafe { path_arg(path, "path") }?;
            let out = out_ptr(out, "out")?;
            finish_restore(Session::restore_file(m.model.clone(), path), out)
        })
    }
}
