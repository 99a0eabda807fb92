//! Helpers shared by the moe-ffi integration tests: fixture locations, references, and safe
//! wrappers that call the C ABI exactly as a C program would.

#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use moe::{moe_model, moe_session, moe_status};
use moe_core::internals::read_safetensors_file;
use moe_core::{ComputeOptions, LoadOptions, Model, Precision};

/// Loads `dir` through moe-core in the exact mode, as [`CModel::load`] does through the C ABI.
pub fn rust_exact(dir: impl AsRef<Path>) -> moe_core::Result<Model> {
    Model::load_with(
        dir,
        LoadOptions::default().with_compute(ComputeOptions::new(None, Precision::F32)),
    )
}

pub const TOL: f32 = 1e-3;

pub const FAMILIES: [&str; 15] = [
    "deepseek_v2",
    "deepseek_v3",
    "deepseek_v32",
    "glm4_moe",
    "glm_moe_dsa",
    "gpt_oss",
    "llama4_text",
    "minimax_m2",
    "mixtral",
    "qwen2_moe",
    "qwen3_moe",
    "qwen3_moe_tf5style",
    "qwen3_5_moe",
    "qwen3_5_moe_wrapped",
    "deepseek_v4",
];

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn fixture(family: &str) -> PathBuf {
    let d = repo_root().join("fixtures").join(family);
    assert!(d.is_dir(), "missing fixture {}", d.display());
    d
}

/// `reference.safetensors`: token ids and f32 logits by name.
pub struct Reference {
    pub ids: HashMap<String, Vec<u32>>,
    pub floats: HashMap<String, Vec<f32>>,
}

impl Reference {
    pub fn load(dir: &Path) -> Reference {
        let (mut ids, mut floats) = (HashMap::new(), HashMap::new());
        for t in read_safetensors_file(&dir.join("reference.safetensors")).unwrap() {
            if let Ok(v) = t.to_i64_vec() {
                ids.insert(t.name().into(), v.into_iter().map(|x| x as u32).collect());
            } else {
                floats.insert(t.name().into(), t.to_f32_vec().unwrap());
            }
        }
        Reference { ids, floats }
    }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn last_error() -> String {
    // SAFETY: moe_last_error returns a valid NUL-terminated string; copied at once.
    unsafe { CStr::from_ptr(moe::moe_last_error()) }
        .to_string_lossy()
        .into_owned()
}

#[track_caller]
pub fn ok(s: moe_status) {
    assert_eq!(s, moe_status::MOE_OK, "{}", last_error());
}

/// A model loaded through `moe_model_load`, freed on drop.
pub struct CModel(pub *mut moe_model);

// SAFETY: the C API documents a model handle as usable from any thread at once.
unsafe impl Send for CModel {}
// SAFETY: as above.
unsafe impl Sync for CModel {}

impl CModel {
    /// Loads `dir` in the exact mode (`precision = MOE_PRECISION_F32`): the golden tests compare
    /// with f32 references and the library's default is bf16 activations for bf16 weights.
    pub fn load(dir: &Path) -> CModel {
        Self::load_with_threads(dir, 0)
    }

    /// Loads `dir` with NULL params: the library's defaults (bf16 activations).
    pub fn load_default(dir: &Path) -> CModel {
        let path = CString::new(dir.to_str().unwrap()).unwrap();
        let mut m = std::ptr::null_mut();
        // SAFETY: valid C string, NULL params, valid out-pointer.
        ok(unsafe { moe::moe_model_load(path.as_ptr(), std::ptr::null(), &mut m) });
        CModel(m)
    }

    /// Loads in the exact mode with `threads` workers for the model's products (0: every core).
    pub fn load_with_threads(dir: &Path, threads: u32) -> CModel {
        let path = CString::new(dir.to_str().unwrap()).unwrap();
        let mut params = moe::moe_model_default_params();
        params.threads = threads;
        params.precision = moe::moe_precision::MOE_PRECISION_F32 as u32;
        let mut m = std::ptr::null_mut();
        // SAFETY: valid C string, valid params, valid out-pointer.
        ok(unsafe { moe::moe_model_load(path.as_ptr(), &params, &mut m) });
        CModel(m)
    }

    /// `moe_model_precision` (a `moe_precision` value).
    pub fn precision(&self) -> u32 {
        let mut p = u32::MAX;
        // SAFETY: live handle, valid out-pointer.
        ok(unsafe { moe::moe_model_precision(self.0, &mut p) });
        p
    }

    pub fn threads(&self) -> u32 {
        // SAFETY: live handle.
        unsafe { moe::moe_model_threads(self.0) }
    }

    pub fn vocab(&self) -> usize {
        // SAFETY: live handle.
        unsafe { moe::moe_model_vocab_size(self.0) as usize }
    }

    pub fn session(&self) -> CSession {
        let mut s = std::ptr::null_mut();
        // SAFETY: live handle, NULL params, valid out-pointer.
        ok(unsafe { moe::moe_session_new(self.0, std::ptr::null(), &mut s) });
        CSession {
            ptr: s,
            vocab: self.vocab(),
        }
    }
}

impl Drop for CModel {
    fn drop(&mut self) {
        // SAFETY: live handle, freed once.
        unsafe { moe::moe_model_free(self.0) }
    }
}

/// A session made through `moe_session_new`, freed on drop.
pub struct CSession {
    pub ptr: *mut moe_session,
    pub vocab: usize,
}

impl CSession {
    /// Prefill returning every position's logits.
    pub fn prefill_all(&mut self, tokens: &[u32]) -> Vec<f32> {
        let mut out = vec![f32::NAN; tokens.len() * self.vocab];
        // SAFETY: live handle; arrays of the stated lengths.
        ok(unsafe {
            moe::moe_session_prefill(
                self.ptr,
                tokens.as_ptr(),
                tokens.len(),
                out.as_mut_ptr(),
                out.len(),
            )
        });
        out
    }

    pub fn decode(&mut self, token: u32) -> Vec<f32> {
        let mut out = vec![f32::NAN; self.vocab];
        // SAFETY: live handle; array of the stated length.
        ok(unsafe { moe::moe_session_decode(self.ptr, token, out.as_mut_ptr(), out.len()) });
        out
    }

    pub fn len(&self) -> usize {
        // SAFETY: live handle.
        unsafe { moe::moe_session_len(self.ptr) }
    }
}

impl Drop for CSession {
    fn drop(&mut self) {
        // SAFETY: live handle, freed once.
        unsafe { moe::moe_session_free(self.ptr) }
    }
}

/// Greedy sampling through `moe_sampler_sample` with the default (greedy) parameters.
pub fn c_greedy(logits: &[f32]) -> u32 {
    let mut sampler = std::ptr::null_mut();
    let mut token = u32::MAX;
    // SAFETY: NULL params, valid out-pointers, arrays of the stated lengths; freed once.
    unsafe {
        ok(moe::moe_sampler_new(std::ptr::null(), &mut sampler));
        ok(moe::moe_sampler_sample(
            sampler,
            logits.as_ptr(),
            logits.len(),
            std::ptr::null(),
            0,
            &mut token,
        ));
        moe::moe_sampler_free(sampler);
    }
    token
}
