//! `moe_checkpoint_quantize`: writes a float checkpoint quantized as a compressed-tensors
//! `pack-quantized` checkpoint.

use std::ffi::{c_char, c_void};

use crate::args::path_arg;
use crate::boundary::ffi_boundary;
use crate::last_error::status_of;
use crate::model::{moe_quantize_scope, moe_quantize_scope_arg, quantize_options};
use crate::status::moe_status;

/// Called while a checkpoint is quantized, after each source tensor, with the source bytes done so
/// far and their total. `user_data` is the pointer given in `moe_quantize_params`. It runs on the
/// calling thread and must return normally.
#[allow(non_camel_case_types)]
pub type moe_quantize_progress_fn =
    Option<unsafe extern "C" fn(bytes_done: usize, bytes_total: usize, user_data: *mut c_void)>;

/// Options of `moe_checkpoint_quantize`. Get the defaults from `moe_quantize_default_params()` and
/// change fields, so programs keep compiling when fields are added.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct moe_quantize_params {
    /// 4 or 8 (default 4).
    pub bits: u32,
    /// Elements per scale along a matrix's input dimension: 0 (the default) is 32; otherwise a
    /// multiple of 8. Matrices whose input width it does not divide stay in their dtype.
    pub group_size: u32,
    /// `MOE_QUANTIZE_SCOPE_EXPERTS` (the default) or `MOE_QUANTIZE_SCOPE_LINEAR`.
    pub scope: moe_quantize_scope_arg,
    /// Progress callback, or NULL for none (the default).
    pub progress: moe_quantize_progress_fn,
    /// Passed unchanged to `progress`; the library never dereferences it.
    pub progress_user_data: *mut c_void,
}

const DEFAULT_PARAMS: moe_quantize_params = moe_quantize_params {
    bits: 4,
    group_size: 0,
    scope: moe_quantize_scope::MOE_QUANTIZE_SCOPE_EXPERTS as moe_quantize_scope_arg,
    progress: None,
    progress_user_data: std::ptr::null_mut(),
};

/// The default quantization parameters: int4, group 32, routed experts, no progress callback.
///
/// Thread-safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn moe_quantize_default_params() -> moe_quantize_params {
    ffi_boundary! { on_panic = DEFAULT_PARAMS; DEFAULT_PARAMS }
}

/// Quantizes the bf16/f16/f32 checkpoint in directory `src` into directory `dst` (absent or empty;
/// created) as a compressed-tensors `pack-quantized` checkpoint: the linear layers in
/// `params->scope` become int4/int8 codes with per-group scales (the same codes `moe_model_load`
/// computes with `quantize_bits`), everything else is copied, `config.json` gains its
/// `quantization_config`, and the tokenizer and other files are copied. Works tensor by tensor, so
/// memory holds about one tensor at a time. `moe_model_load` then maps the result like any
/// checkpoint.
///
/// `params` may be NULL for the defaults. Fails with `MOE_ERR_UNSUPPORTED_QUANTIZATION` for an already
/// quantized checkpoint or fused expert tensors, `MOE_ERR_INVALID_ARGUMENT` for bad options or a
/// non-empty `dst`.
///
/// Thread-safety: may be called from any thread.
///
/// # Safety
/// `src` and `dst` must be NULL or NUL-terminated strings; `params` NULL or a valid
/// `moe_quantize_params`.
#[no_mangle]
pub unsafe extern "C" fn moe_checkpoint_quantize(
    src: *const c_char,
    dst: *const c_char,
    params: *const moe_quantize_params,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: `src` and `dst` are NULL or NUL-terminated (caller's promise); NULL is refused.
            let src = unsafe { path_arg(src, "src") }?;
            // SAFETY: as above.
            let dst = unsafe { path_arg(dst, "dst") }?;
            // SAFETY: `params` is NULL or points to a valid `moe_quantize_params` (caller's promise).
            let params = unsafe { params.as_ref() }
                .copied()
                .unwrap_or_else(|| moe_quantize_default_params());
            let opts = quantize_options(params.bits, params.group_size, params.scope)?;
            let mut report = |done: usize, total: usize| {
                if let Some(f) = params.progress {
                    // SAFETY: the caller supplied `f` as a function of this signature and vouches
                    // for its user data.
                    unsafe { f(done, total, params.progress_user_data) }
                }
            };
            let progress = params
                .progress
                .is_some()
                .then_some(&mut report as &mut dyn FnMut(usize, usize));
            moe_core::quantize_checkpoint(&src, &dst, opts, progress)?;
            Ok(())
        })
    }
}
