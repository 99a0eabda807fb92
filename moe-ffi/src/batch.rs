//! `moe_batch_*`: several sessions of one model stepped as one forward (batched decode, continuous
//! batching: each call names the sessions that step now).

use moe_core::{LogitsMode, Session};

use crate::args::{array_in, array_out};
use crate::boundary::ffi_boundary;
use crate::last_error::{status_of, FfiError, FfiResult};
use crate::session::{handle_mut, moe_session};
use crate::status::moe_status;

/// The sessions behind `n` handles at `sessions`, each live, idle and named once.
///
/// # Safety
/// `sessions` must be NULL or `n` readable pointers; none of the sessions may be used elsewhere
/// during the borrow.
unsafe fn sessions_mut<'a>(
    sessions: *const *mut moe_session,
    n: usize,
) -> FfiResult<Vec<&'a mut Session>> {
    if n == 0 {
        return Err(FfiError::invalid(
            "a batch needs at least one session (n is 0)",
        ));
    }
    // SAFETY: forwarded caller promise; NULL, alignment and size are checked.
    let ptrs = unsafe { array_in(sessions, n, "sessions") }?;
    // Aliasing handles would make two exclusive borrows of one session: refuse them first.
    let mut seen = std::collections::HashSet::with_capacity(n);
    for (index, &p) in ptrs.iter().enumerate() {
        if p.is_null() {
            return Err(FfiError::null(&format!("sessions[{index}]")));
        }
        if !seen.insert(p as usize) {
            return Err(moe_core::Error::DuplicateSession { index }.into());
        }
    }
    ptrs.iter()
        .map(|&p| {
            // SAFETY: distinct live handles (checked above and by the registry), not used
            // elsewhere during the call (caller's promise).
            unsafe { handle_mut(p) }.map(|h| &mut h.session)
        })
        .collect()
}

/// Feeds `tokens[i]` to `sessions[i]` for every `i < n`, all as one forward (each session keeps its
/// own caches and position; the weights are read once for the batch), and writes the next-token
/// logits: `logits_len == n * vocab` fills `n` rows of `vocab` floats, row `i` for `sessions[i]`
/// (what `moe_session_decode` would give it); `logits_len == 0` computes none. Other lengths are
/// `MOE_ERR_BUFFER_SIZE`.
///
/// Sessions may differ from call to call (they join and leave a batch between steps). Fails, with
/// no session changed and `logits` untouched, with `MOE_ERR_INVALID_ARGUMENT` for `n == 0`, a
/// session named twice or sessions of different models, `MOE_ERR_NULL_ARGUMENT` for a NULL array
/// or entry, `MOE_ERR_INVALID_HANDLE` for an entry that is not a live session, and as
/// `moe_session_decode` does for a token or a full context.
///
/// Ownership: the arrays stay the caller's; nothing is kept after the call. Thread-safety: the
/// sessions must not be used by other threads during the call.
///
/// # Safety
/// `sessions` must be NULL or `n` readable session pointers; `tokens` NULL or `n` readable ids;
/// `logits` NULL or `logits_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn moe_batch_decode(
    sessions: *const *mut moe_session,
    tokens: *const u32,
    n: usize,
    logits: *mut f32,
    logits_len: usize,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise about `sessions`.
            let mut s = unsafe { sessions_mut(sessions, n) }?;
            // SAFETY: forwarded caller promise about `tokens`; NULL and alignment are checked.
            let tokens = unsafe { array_in(tokens, n, "tokens") }?;
            let chunks: Vec<&[u32]> = tokens.iter().map(std::slice::from_ref).collect();
            // SAFETY: forwarded caller promise about `logits`.
            unsafe { step(&mut s, &chunks, logits, logits_len) }
        })
    }
}

/// Feeds chunk `i` (`chunk_lens[i]` ids at `chunks[i]`: a prompt chunk or one token) to
/// `sessions[i]` for every `i < n`, all as one forward, so a long prompt can be fed in chunks
/// between the decode steps of other sessions. Writes `logits_len == n * vocab`: each chunk's last
/// position, row `i` for `sessions[i]`; `logits_len == (Σ chunk_lens) * vocab`: every new position,
/// chunk after chunk; `logits_len == 0`: none. Other lengths are `MOE_ERR_BUFFER_SIZE`. Errors as
/// for `moe_batch_decode`, and `MOE_ERR_EMPTY_PROMPT` for an empty chunk.
///
/// Ownership: the arrays stay the caller's. Thread-safety: as for `moe_batch_decode`.
///
/// # Safety
/// `sessions` must be NULL or `n` readable session pointers; `chunks` and `chunk_lens` NULL or `n`
/// readable entries, each chunk NULL or `chunk_lens[i]` readable ids; `logits` NULL or
/// `logits_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn moe_batch_prefill(
    sessions: *const *mut moe_session,
    chunks: *const *const u32,
    chunk_lens: *const usize,
    n: usize,
    logits: *mut f32,
    logits_len: usize,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise about `sessions`.
            let mut s = unsafe { sessions_mut(sessions, n) }?;
            // SAFETY: forwarded caller promise about `chunks` and `chunk_lens`.
            let (ptrs, lens) = unsafe {
                (array_in(chunks, n, "chunks")?, array_in(chunk_lens, n, "chunk_lens")?)
            };
            let chunks = ptrs
                .iter()
                .zip(lens)
                .map(|(&p, &len)| {
                    // SAFETY: forwarded caller promise about each chunk.
                    unsafe { array_in(p, len, "chunks[i]") }
                })
                .collect::<FfiResult<Vec<&[u32]>>>()?;
            // SAFETY: forwarded caller promise about `logits`.
            unsafe { step(&mut s, &chunks, logits, logits_len) }
        })
    }
}

/// Checks the output buffer, runs the batch step and copies the logits out.
///
/// # Safety
/// `logits` must be NULL or valid for `logits_len` writes.
unsafe fn step(
    sessions: &mut [&mut Session],
    chunks: &[&[u32]],
    logits: *mut f32,
    logits_len: usize,
) -> FfiResult<()> {
    let v = sessions[0].model().vocab_size();
    let n = chunks.len();
    let rows: usize = chunks.iter().map(|c| c.len()).sum();
    let mode = if logits_len == 0 {
        LogitsMode::None
    } else if Some(logits_len) == n.checked_mul(v) {
        LogitsMode::Last
    } else if Some(logits_len) == rows.checked_mul(v) {
        LogitsMode::All
    } else {
        return Err(FfiError::new(
            moe_status::MOE_ERR_BUFFER_SIZE,
            format!(
                "logits_len is {logits_len}; it must be 0, n * vocab ({n} * {v}) or the chunks' \
                 total length * vocab ({rows} * {v})"
            ),
        ));
    };
    // SAFETY: forwarded caller promise; checked for NULL and alignment.
    let out = unsafe { array_out(logits, logits_len, "logits") }?;
    let got = Session::prefill_batch(sessions, chunks, mode)?;
    let got = got
        .as_slice()
        .ok_or_else(|| FfiError::invalid("logits are not contiguous"))?;
    out.copy_from_slice(got);
    Ok(())
}
