//! How a model computes: its worker threads and the precision of its products.

use crate::kernels::Precision;

/// Threads and precision of a model's products (see [`Model::set_compute`](crate::Model::set_compute)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ComputeOptions {
    /// Worker threads of the model's dedicated pool; `None` uses every core. Must not be 0.
    pub threads: Option<usize>,
    /// How activations meet bf16 weights in products ([`Precision::Bf16`] by default; [`Precision::F32`]
    /// is the exact mode).
    pub precision: Precision,
}

impl ComputeOptions {
    /// `threads` workers (`None`: every core) at `precision`.
    pub fn new(threads: Option<usize>, precision: Precision) -> Self {
        ComputeOptions { threads, precision }
    }
}
