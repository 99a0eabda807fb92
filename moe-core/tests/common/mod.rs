//! Helpers shared by the integration tests: where the fixture sets live and how to read references.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use moe_core::internals::read_safetensors_file;
use moe_core::{ComputeOptions, LoadOptions, Model, Precision};

/// The exact mode ([`Precision::F32`] on a pool over every core): the golden tests compare with f32
/// references, and the library's default is bf16 activations for bf16 weights.
pub fn exact() -> ComputeOptions {
    ComputeOptions::new(None, Precision::F32)
}

/// Loads `dir` in the exact mode (see [`exact`]).
pub fn load_exact(dir: impl AsRef<Path>) -> moe_core::Result<Model> {
    Model::load_with(dir, LoadOptions::default().with_compute(exact()))
}

/// The repository root (parent of moe-core).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The project's own fixtures.
pub fn own_fixtures() -> PathBuf {
    repo_root().join("fixtures")
}

/// The independent set beside the checkout, when present.
pub fn shared_fixtures() -> Option<PathBuf> {
    let p = repo_root().join("..").join("shared").join("fixtures");
    p.is_dir().then_some(p)
}

/// The independent set of the newest families (DeepSeek V4, Qwen3.5-MoE) beside the checkout, when
/// present.
pub fn frontier_fixtures() -> Option<PathBuf> {
    let p = repo_root()
        .join("..")
        .join("shared")
        .join("fixtures-frontier");
    p.is_dir().then_some(p)
}

/// A fixture family's folder in every set that has it (own first).
pub fn fixture_dirs(family: &str) -> Vec<PathBuf> {
    let mut v = vec![];
    let own = own_fixtures().join(family);
    assert!(own.is_dir(), "missing project fixture {}", own.display());
    v.push(own);
    for set in [shared_fixtures(), frontier_fixtures()]
        .into_iter()
        .flatten()
    {
        let d = set.join(family);
        if d.is_dir() {
            v.push(d);
        }
    }
    v
}

/// `reference.safetensors` as name → (shape, f32 data or i64 data widened to f32).
pub struct Reference {
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub ids: HashMap<String, Vec<u32>>,
}

impl Reference {
    pub fn load(path: &Path) -> Reference {
        let mut tensors = HashMap::new();
        let mut ids = HashMap::new();
        for t in read_safetensors_file(path).unwrap() {
            if let Ok(v) = t.to_i64_vec() {
                ids.insert(
                    t.name().to_string(),
                    v.into_iter().map(|x| x as u32).collect(),
                );
            } else {
                tensors.insert(
                    t.name().to_string(),
                    (t.shape().to_vec(), t.to_f32_vec().unwrap()),
                );
            }
        }
        Reference { tensors, ids }
    }

    pub fn f32(&self, name: &str) -> &(Vec<usize>, Vec<f32>) {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("reference lacks {name}"))
    }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
