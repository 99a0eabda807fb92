//! `moe_model`: a loaded checkpoint, immutable and shared by sessions on any number of threads.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use moe_core::{ComputeOptions, LoadOptions, Model, Precision, QuantizeOptions};

use crate::args::{out_ptr, path_arg, write_out};
use crate::boundary::ffi_boundary;
use crate::handle::{self, Handle, Kind};
use crate::last_error::{status_of, value_or, FfiResult};
use crate::status::moe_status;

// The C API lets several threads use one model at once; that needs a `Send + Sync` model.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Model>();
    assert_send_sync::<moe_model>();
};

/// A loaded model (opaque). Immutable once loaded: every function taking a `const moe_model *` may be
/// called from several threads at the same time. Sessions keep the weights alive, so the handle may
/// be freed while sessions made from it are still in use.
#[allow(non_camel_case_types)]
pub struct moe_model {
    pub(crate) model: Arc<Model>,
    architecture: CString,
    family: CString,
    eos: Vec<u32>,
}

impl Handle for moe_model {
    const KIND: Kind = Kind::Model;
    const NAME: &'static str = "moe_model";
}

/// Called while a model loads, after each layer, with the layers done so far and the total.
/// `user_data` is the pointer given in `moe_model_params`. It runs on the loading thread, must
/// return normally (no longjmp, no C++ exception) and must not call `moe_model_free` on the model
/// being loaded (it has no handle yet).
#[allow(non_camel_case_types)]
pub type moe_progress_fn =
    Option<unsafe extern "C" fn(layers_done: usize, layers_total: usize, user_data: *mut c_void)>;

/// Options of `moe_model_load`. Get the defaults from `moe_model_default_params()` and change
/// fields, so programs keep compiling when fields are added.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct moe_model_params {
    /// Progress callback, or NULL for none (the default).
    pub progress: moe_progress_fn,
    /// Passed unchanged to `progress`; the library never dereferences it.
    pub progress_user_data: *mut c_void,
    /// Worker threads for this model's products (prefill and decode split rows across them);
    /// 0 (the default) uses a thread per core: one shared pool at the default precision, a pool of
    /// the model's own at another (`MOE_PRECISION_F32`).
    pub threads: u32,
    /// Read the safetensors files into memory instead of mapping them (default false). A mapped file
    /// that is truncated or rewritten while the model lives crashes the process with SIGBUS on the
    /// next access; a copy is immune, for files on unreliable storage, at the cost of their size in
    /// RAM.
    pub copy_weights: bool,
    /// How activations meet bf16 weights in products: `MOE_PRECISION_BF16` (the default of
    /// `moe_model_default_params()`: activations rounded to bf16 in products with bf16 weights, as
    /// llama.cpp's BF16 path and PyTorch bf16 do; faster, about three significant digits),
    /// `MOE_PRECISION_F32` (the exact mode: matches the reference) or `MOE_PRECISION_INT8` (int8
    /// activations for packed int4/int8 weights). Other values are `MOE_ERR_INVALID_ARGUMENT`. A
    /// zero-filled struct holds `MOE_PRECISION_F32`: start from `moe_model_default_params()`.
    pub precision: moe_precision_arg,
    /// Quantize the checkpoint's bf16/f16/f32 linear layers while loading: 0 (the default) keeps
    /// every weight in its stored dtype, 4 or 8 quantizes to symmetric int4/int8 groups (the layout
    /// and rounding of compressed-tensors `pack-quantized`). Other values, or a checkpoint that is
    /// already quantized, fail (`MOE_ERR_INVALID_ARGUMENT`, `MOE_ERR_UNSUPPORTED_QUANTIZATION`).
    pub quantize_bits: u32,
    /// Elements per scale when quantizing: 0 (the default) is 32; otherwise a multiple of 8.
    pub quantize_group_size: u32,
    /// Which layers are quantized: `MOE_QUANTIZE_SCOPE_EXPERTS` (the default: routed experts) or
    /// `MOE_QUANTIZE_SCOPE_LINEAR` (every linear layer but routers, embedding and lm_head).
    pub quantize_scope: moe_quantize_scope_arg,
}

/// Values of `moe_model_params.quantize_scope` and `moe_quantize_params.scope`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum moe_quantize_scope {
    /// The routed experts only.
    MOE_QUANTIZE_SCOPE_EXPERTS = 0,
    /// Every linear layer of the decoder layers except routers.
    MOE_QUANTIZE_SCOPE_LINEAR = 1,
}

/// The raw integer a C caller stores in a `quantize_scope` field (checked before use). Shown as
/// `moe_quantize_scope` in the header.
#[allow(non_camel_case_types)]
pub type moe_quantize_scope_arg = u32;

/// The quantization options of `bits`, `group` (0: default) and `scope`, checked.
pub(crate) fn quantize_options(
    bits: u32,
    group: u32,
    scope: moe_quantize_scope_arg,
) -> FfiResult<QuantizeOptions> {
    let scope = match scope {
        s if s == moe_quantize_scope::MOE_QUANTIZE_SCOPE_EXPERTS as u32 => {
            moe_core::QuantizeScope::Experts
        }
        s if s == moe_quantize_scope::MOE_QUANTIZE_SCOPE_LINEAR as u32 => {
            moe_core::QuantizeScope::Linear
        }
        other => {
            return Err(crate::last_error::FfiError::invalid(format!(
                "quantize scope {other} is not MOE_QUANTIZE_SCOPE_EXPERTS (0) or \
                 MOE_QUANTIZE_SCOPE_LINEAR (1)"
            )))
        }
    };
    let mut q = QuantizeOptions::new(bits).with_scope(scope);
    if group > 0 {
        q = q.with_group_size(group as usize);
    }
    q.validate()?;
    Ok(q)
}

/// Values of `moe_model_params.precision`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum moe_precision {
    /// The exact mode: f32 activations, products match the reference implementation.
    MOE_PRECISION_F32 = 0,
    /// Activations rounded to bf16 in products with bf16 weights, as llama.cpp's BF16 path and
    /// PyTorch bf16 do (the default of `moe_model_default_params()`).
    MOE_PRECISION_BF16 = 1,
    /// Activations quantized to int8 (per token and block of 32) in products with packed int4/int8
    /// weights, with integer dot products; not exact.
    MOE_PRECISION_INT8 = 2,
}

/// The raw integer a C caller stores in `moe_model_params.precision` (checked before use). Shown as
/// `moe_precision` in the header.
#[allow(non_camel_case_types)]
pub type moe_precision_arg = u32;

fn precision_of(raw: moe_precision_arg) -> FfiResult<Precision> {
    match raw {
        r if r == moe_precision::MOE_PRECISION_F32 as u32 => Ok(Precision::F32),
        r if r == moe_precision::MOE_PRECISION_BF16 as u32 => Ok(Precision::Bf16),
        r if r == moe_precision::MOE_PRECISION_INT8 as u32 => Ok(Precision::Int8),
        other => Err(crate::last_error::FfiError::invalid(format!(
            "precision {other} is not MOE_PRECISION_F32 (0), MOE_PRECISION_BF16 (1) or \
             MOE_PRECISION_INT8 (2)"
        ))),
    }
}

/// The default model parameters: no progress callback, every core, mapped weights, no quantization,
/// `MOE_PRECISION_BF16` (set `precision = MOE_PRECISION_F32` for the exact mode).
///
/// Thread-safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn moe_model_default_params() -> moe_model_params {
    ffi_boundary! { on_panic = DEFAULT_PARAMS; DEFAULT_PARAMS }
}

const DEFAULT_PARAMS: moe_model_params = moe_model_params {
    progress: None,
    progress_user_data: std::ptr::null_mut(),
    threads: 0,
    copy_weights: false,
    precision: moe_precision::MOE_PRECISION_BF16 as moe_precision_arg,
    quantize_bits: 0,
    quantize_group_size: 0,
    quantize_scope: moe_quantize_scope::MOE_QUANTIZE_SCOPE_EXPERTS as moe_quantize_scope_arg,
};

/// Loads the checkpoint directory `path` (config.json and safetensors, sharded or not).
///
/// `params` may be NULL for the defaults. On success `*out` receives a new model that the caller owns
/// and releases with `moe_model_free`. On failure `*out` is left untouched and `moe_last_error()`
/// says why (e.g. `MOE_ERR_NOT_FOUND`, `MOE_ERR_UNSUPPORTED_ARCHITECTURE`).
///
/// The safetensors files are memory-mapped: they must not be modified or truncated while the model
/// (or any session made from it) lives, unless `params->copy_weights` reads them into memory
/// instead. Thread-safety: may be called from any thread; loads on different threads are independent.
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string; `params` NULL or a valid `moe_model_params`;
/// `out` NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn moe_model_load(
    path: *const c_char,
    params: *const moe_model_params,
    out: *mut *mut moe_model,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: `path` is NULL or NUL-terminated (caller's promise); NULL is refused.
            let dir = unsafe { path_arg(path, "path") }?;
            let out = out_ptr(out, "out")?;
            // SAFETY: `params` is NULL or points to a valid `moe_model_params` (caller's promise).
            let params = unsafe { params.as_ref() }
                .copied()
                .unwrap_or_else(|| moe_model_default_params());
            let mut report = |done: usize, total: usize| {
                if let Some(f) = params.progress {
                    // SAFETY: the caller supplied `f` as a function of this signature and vouches
                    // for its user data.
                    unsafe { f(done, total, params.progress_user_data) }
                }
            };
            let mut opts = LoadOptions::default().with_copied_weights(params.copy_weights);
            opts.progress = params
                .progress
                .is_some()
                .then_some(&mut report as &mut dyn FnMut(usize, usize));
            let precision = precision_of(params.precision)?;
            if params.threads > 0 || precision != Precision::DEFAULT {
                let threads = (params.threads > 0).then_some(params.threads as usize);
                opts.compute = Some(ComputeOptions::new(threads, precision));
            }
            if params.quantize_bits != 0 {
                opts.quantize = Some(quantize_options(
                    params.quantize_bits,
                    params.quantize_group_size,
                    params.quantize_scope,
                )?);
            }
            let model = Model::load_with(&dir, opts)?;
            let handle = handle::register(moe_model::new(model));
            // SAFETY: `out` was checked by `out_ptr`; written only on success.
            unsafe { write_out(out, handle) };
            Ok(())
        })
    }
}

impl moe_model {
    fn new(model: Model) -> Self {
        let c = |s: &str| CString::new(s.replace('\0', "")).unwrap_or_default();
        moe_model {
            architecture: c(&model.config().architecture),
            family: c(model.config().family.name()),
            eos: model.eos_token_ids(),
            model: Arc::new(model),
        }
    }
}

/// Frees a model handle. NULL is a no-op. Sessions already made from the model keep working (they
/// hold the weights); strings returned for this model become invalid. A pointer that is not a live
/// model (e.g. freed twice) is left alone and reported through `moe_last_error()`.
///
/// Thread-safety: no other call may be using this handle at the same time.
///
/// # Safety
/// `model` must be NULL or a pointer returned by `moe_model_load`.
#[no_mangle]
pub unsafe extern "C" fn moe_model_free(model: *mut moe_model) {
    ffi_boundary! {
        value_or((), || {
            // SAFETY: not used concurrently (documented contract); the registry refuses stale
            // pointers.
            unsafe { handle::release(model, "model") }
        })
    }
}

/// The model behind a live handle.
///
/// # Safety
/// `model` must not be freed during the borrow.
pub(crate) unsafe fn model_ref<'a>(model: *const moe_model) -> FfiResult<&'a moe_model> {
    // SAFETY: the registry checks the handle; not freed meanwhile (caller's promise).
    unsafe { handle::get(model, "model") }
}

/// The vocabulary size: valid token ids are `0 .. vocab_size - 1`, and logits arrays hold this many
/// floats per position. Returns 0 (and sets `moe_last_error()`) if `model` is not a live model.
///
/// Thread-safety: may be called from any thread, concurrently with other calls on the model.
///
/// # Safety
/// `model` must be NULL or a model handle not being freed during the call.
#[no_mangle]
pub unsafe extern "C" fn moe_model_vocab_size(model: *const moe_model) -> u32 {
    ffi_boundary! {
        value_or(0, || {
            // SAFETY: forwarded caller promise.
            let m = unsafe { model_ref(model) }?;
            Ok(m.model.vocab_size() as u32)
        })
    }
}

/// Worker threads this model's products are split over (`moe_model_params.threads`, or the shared
/// pool's size). Returns 0 (and sets `moe_last_error()`) if `model` is not a live model.
///
/// Thread-safety: may be called from any thread, concurrently with other calls on the model.
///
/// # Safety
/// `model` must be NULL or a model handle not being freed during the call.
#[no_mangle]
pub unsafe extern "C" fn moe_model_threads(model: *const moe_model) -> u32 {
    ffi_boundary! {
        value_or(0, || {
            // SAFETY: forwarded caller promise.
            let m = unsafe { model_ref(model) }?;
            Ok(m.model.threads() as u32)
        })
    }
}

/// How this model's products meet bf16 weights (`moe_model_params.precision`), written to `*out`:
/// `MOE_PRECISION_BF16` for a model loaded with the defaults, `MOE_PRECISION_F32` in the exact mode.
/// Fails with `MOE_ERR_NULL_ARGUMENT` for a NULL `model` or `out` and `MOE_ERR_INVALID_HANDLE` for a
/// pointer that is not a live model, leaving `*out` untouched.
///
/// Thread-safety: may be called from any thread, concurrently with other calls on the model.
///
/// # Safety
/// `model` must be NULL or a model handle not being freed during the call; `out` NULL or valid for
/// writing one `moe_precision`.
#[no_mangle]
pub unsafe extern "C" fn moe_model_precision(
    model: *const moe_model,
    out: *mut moe_precision_arg,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise.
            let m = unsafe { model_ref(model) }?;
            let out = out_ptr(out, "out")?;
            let p = match m.model.precision() {
                Precision::F32 => moe_precision::MOE_PRECISION_F32,
                Precision::Bf16 => moe_precision::MOE_PRECISION_BF16,
                Precision::Int8 => moe_precision::MOE_PRECISION_INT8,
            };
            // SAFETY: `out` was checked by `out_ptr`.
            unsafe { write_out(out, p as moe_precision_arg) };
            Ok(())
        })
    }
}

/// The model's maximum context (`max_position_embeddings`), the default `max_context` of its
/// sessions. Returns 0 (and sets `moe_last_error()`) if `model` is not a live model.
///
/// Thread-safety: may be called from any thread, concurrently with other calls on the model.
///
/// # Safety
/// `model` must be NULL or a model handle not being freed during the call.
#[no_mangle]
pub unsafe extern "C" fn moe_model_max_context(model: *const moe_model) -> usize {
    ffi_boundary! {
        value_or(0, || {
            // SAFETY: forwarded caller promise.
            let m = unsafe { model_ref(model) }?;
            Ok(m.model.config().max_position_embeddings)
        })
    }
}

/// The architecture name from config.json (`architectures[0]`, e.g. "DeepseekV3ForCausalLM").
/// Returns NULL (and sets `moe_last_error()`) if `model` is not a live model.
///
/// Ownership: the string belongs to the model handle and stays valid until `moe_model_free`; do not
/// free it. Thread-safety: may be called from any thread.
///
/// # Safety
/// `model` must be NULL or a model handle not being freed during the call.
#[no_mangle]
pub unsafe extern "C" fn moe_model_architecture(model: *const moe_model) -> *const c_char {
    ffi_boundary! {
        value_or(std::ptr::null(), || {
            // SAFETY: forwarded caller promise.
            let m = unsafe { model_ref(model) }?;
            Ok(m.architecture.as_ptr())
        })
    }
}

/// The model family as the engine names it (the canonical `model_type`, e.g. "deepseek_v3").
/// Returns NULL (and sets `moe_last_error()`) if `model` is not a live model.
///
/// Ownership: the string belongs to the model handle and stays valid until `moe_model_free`; do not
/// free it. Thread-safety: may be called from any thread.
///
/// # Safety
/// `model` must be NULL or a model handle not being freed during the call.
#[no_mangle]
pub unsafe extern "C" fn moe_model_family(model: *const moe_model) -> *const c_char {
    ffi_boundary! {
        value_or(std::ptr::null(), || {
            // SAFETY: forwarded caller promise.
            let m = unsafe { model_ref(model) }?;
            Ok(m.family.as_ptr())
        })
    }
}

/// The end-of-sequence token ids (from generation_config.json, else config.json, else the
/// tokenizer's eos token; possibly none).
/// On success `*tokens` points to `*n_tokens` ids (NULL when there are none). On failure both are left untouched.
///
/// Ownership: the array belongs to the model handle and stays valid until `moe_model_free`; do not
/// free it. Thread-safety: may be called from any thread.
///
/// # Safety
/// `model` must be NULL or a model handle not being freed during the call; `tokens` and `n_tokens`
/// NULL or valid for one write each.
#[no_mangle]
pub unsafe extern "C" fn moe_model_eos_tokens(
    model: *const moe_model,
    tokens: *mut *const u32,
    n_tokens: *mut usize,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: forwarded caller promise.
            let m = unsafe { model_ref(model) }?;
            let tokens = out_ptr(tokens, "tokens")?;
            let n_tokens = out_ptr(n_tokens, "n_tokens")?;
            let ptr = if m.eos.is_empty() { std::ptr::null() } else { m.eos.as_ptr() };
            // SAFETY: both checked by `out_ptr`; written only once everything is checked.
            unsafe {
                write_out(tokens, ptr);
                write_out(n_tokens, m.eos.len());
            }
            Ok(())
        })
    }
}

/// What a checkpoint needs in memory (see `moe_estimate_memory`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct moe_memory_estimate {
    /// Bytes of the text model's weights as stored.
    pub weight_bytes: usize,
    /// Bytes a session's caches grow by per token (until sliding windows fill).
    pub kv_cache_bytes_per_token: usize,
    /// Tokens of context the cache figure is for.
    pub context: usize,
    /// Cache bytes of one session holding `context` tokens.
    pub kv_cache_bytes: usize,
    /// `weight_bytes + kv_cache_bytes`.
    pub total_bytes: usize,
}

/// Estimates what the checkpoint in `path` needs in memory, from config.json and the safetensors
/// headers, without loading any weight: the weights, and one session's caches at `context` tokens
/// (0: the model's maximum context). Writes `*out` on success only.
///
/// Thread-safety: may be called from any thread.
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string; `out` NULL or valid for one write.
#[no_mangle]
pub unsafe extern "C" fn moe_estimate_memory(
    path: *const c_char,
    context: usize,
    out: *mut moe_memory_estimate,
) -> moe_status {
    ffi_boundary! {
        status_of(|| {
            // SAFETY: `path` is NULL or NUL-terminated (caller's promise); NULL is refused.
            let dir = unsafe { path_arg(path, "path") }?;
            let out = out_ptr(out, "out")?;
            let e = Model::estimate_memory(&dir, (context > 0).then_some(context))?;
            let estimate = moe_memory_estimate {
                weight_bytes: e.weight_bytes,
                kv_cache_bytes_per_token: e.kv_cache_bytes_per_token,
                context: e.context,
                kv_cache_bytes: e.kv_cache_bytes,
                total_bytes: e.total_bytes,
            };
            // SAFETY: checked by `out_ptr`; written only on success.
            unsafe { write_out(out, estimate) };
            Ok(())
        })
    }
}
