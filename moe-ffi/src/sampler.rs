//! `moe_sampler`: picks the next token from logits (greedy, temperature, top-k, top-p, min-p,
//! repetition penalty), deterministic for a seed.

use moe_core::{Sampler, SamplerParams};

use crate::args::{array_in, out_ptr, write_out};
use crate::boundary::ffi_boundary;
use crate::handle::{self, Handle, Kind};
use crate::last_error::{status_of, value_or, FfiError};
use crate::status::moe_status;

/// A token sampler (opaque) with its own random state. Used by one thread at a time; make one per
/// thread (samplers are cheap).
#[allow(non_camel_case_types)]
pub struct moe_sampler {
    sampler: Sampler,
}

impl Handle for moe_sampler {
    const KIND: Kind = Kind::Sampler;
    const NAME: &'static str = "moe_sampler";
}

/// Options of `moe_sampler_new`. Get the defaults from `moe_sampler_default_params()` and change
/// fields, so programs keep compiling when fields are added.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
#[allow(non_camel_case_types)]
pub struct moe_sampler_params {
    /// 0 is greedy (always the most likely token; the default); otherwise logits are divided by it.
    /// Must be finite and >= 0.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; 0 (the default) keeps all.
    pub top_k: u32,
    /// Keep the smallest set of tokens whose probability reaches `top_p`, in (0, 1]; 1 (the default)
    /// keeps all.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one, in [0, 1]; 0 (the default)
    /// drops none.
    pub min_p: f32,
    /// Penalise tokens of the history (divide positive, multiply negative logits), > 0; 1 (the
    /// default) is off.
    pub repetition_penalty: f32,
    /// Seed of the random state (same seed, same logits and history: same tokens). Default 0.
    pub seed: u64,
}

impl From<moe_sampler_params> for SamplerParams {
    fn from(p: moe_sampler_params) -> Self {
        SamplerParams::default()
            .with_temperature(p.temperature)
            .with_top_k(p.top_k as usize)
            .with_top_p(p.top_p)
            .with_min_p(p.min_p)
            .with_repetition_penalty(p.repetition_penalty)
            .with_seed(p.seed)
    }
}

impl From<SamplerParams> for moe_sampler_params {
    fn from(p: SamplerParams) -> Self {
        moe_sampler_params {
            temperature: p.temperature,
            top_k: p.top_k.min(u32::MAX as usize) as u32,
            top_p: p.top_p,
            min_p: p.min_p,
            repetition_penalty: p.repetition_penalty,
            seed: p.seed,
        }
    }
}

/// The default sampler parameters: greedy, no filtering, no penalty, seed 0.
///
/// Thread-safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn moe_sampler_default_params() -> moe_sampler_params {
    ffi_boundary! { on_panic = GREEDY; SamplerParams::default().into() }
}

/// Greedy sampling, spelled out so that it can stand in when computing the defaults panicked.
pub(crate) const GREEDY: moe_sampler_params = moe_sampler_params {
    temperature: 0.0,
    top_k: 0,
    top_p: 1.0,
    min_p: 0.0,
    repetition_penalty: 1.0,
    seed: 0,
};

/// Makes a sampler. `params` may be NULL for the defaults (greedy). Out-of-range parameters fail
/// with `MOE_ERR_INVALID_ARGUMENT`.
///
/// On success `*out` receives a new sampler that the caller owns and releases with
/// `moe_sampler_free`; on failure `*out` is left untouched. Thread-safety: may be called from any
/// thread.
///
/// # Safety
/// `params` must be NULL or a valid `moe_sampler_params`; `out` NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn moe_sampler_new(
    params: *const moe_sampler_params,
    out: *mut *mut moe_sampler,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            let out = out_ptr(out, "out")?;
            // SAFETY: `params` is NULL or valid (caller's promise).
            let p = unsafe { params.as_ref() }.copied().unwrap_or_else(|| moe_sampler_default_params());
            let sampler = Sampler::new(p.into())?;
            let handle = handle::register(moe_sampler { sampler });
            // SAFETY: checked by `out_ptr`; written only on success.
            unsafe { write_out(out, handle) };
            Ok(())
        })
    }
}

/// Frees a sampler. NULL is a no-op; a pointer that is not a live sampler (e.g. freed twice) is left
/// alone and reported through `moe_last_error()`.
///
/// Thread-safety: no other call may be using this sampler at the same time.
///
/// # Safety
/// `sampler` must be NULL or a pointer returned by `moe_sampler_new`.
#[no_mangle]
pub unsafe extern "C" fn moe_sampler_free(sampler: *mut moe_sampler) {
    ffi_boundary! {
        value_or((), || {
            // SAFETY: not used concurrently (documented contract); the registry refuses stale
            // pointers.
            unsafe { handle::release(sampler, "sampler") }
        })
    }
}

/// Picks the next token from `logits` (`logits_len` floats, one per vocabulary entry, as written by
/// `moe_session_prefill` / `moe_session_decode` with `logits_len == vocab`), penalising the ids in
/// `history` (`n_history` ids; NULL when 0; `moe_session_tokens` gives the session's). Writes the id
/// to `*out_token`; on failure `*out_token` is left untouched and the random state does not advance.
///
/// Ownership: all arrays stay the caller's. Thread-safety: one thread at a time per sampler.
///
/// # Safety
/// `sampler` must be NULL or a sampler not used elsewhere during the call; `logits` NULL or
/// `logits_len` readable floats; `history` NULL or `n_history` readable ids; `out_token` NULL or
/// valid for one write.
#[no_mangle]
pub unsafe extern "C" fn moe_sampler_sample(
    sampler: *mut moe_sampler,
    logits: *const f32,
    logits_len: usize,
    history: *const u32,
    n_history: usize,
    out_token: *mut u32,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: registry-checked handle, exclusive use promised by the caller.
            let s = unsafe { handle::get_mut(sampler, "sampler") }?;
            let out = out_ptr(out_token, "out_token")?;
            if logits_len == 0 {
                return Err(FfiError::new(
                    moe_status::MOE_ERR_BUFFER_SIZE,
                    "logits_len is 0; sampling needs at least one logit",
                ));
            }
            if logits_len > u32::MAX as usize {
                return Err(FfiError::new(
                    moe_status::MOE_ERR_BUFFER_SIZE,
                    format!("logits_len {logits_len} exceeds the token id range"),
                ));
            }
            // SAFETY: forwarded caller promises; NULL and alignment are checked.
            let logits = unsafe { array_in(logits, logits_len, "logits") }?;
            // SAFETY: as above.
            let history = unsafe { array_in(history, n_history, "history") }?;
            let token = s.sampler.sample(logits, history)?;
            // SAFETY: checked by `out_ptr`; written only on success.
            unsafe { write_out(out, token) };
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_engine_default_and_greedy() {
        assert_eq!(moe_sampler_default_params(), GREEDY);
        assert_eq!(SamplerParams::from(GREEDY), SamplerParams::default());
    }
}
