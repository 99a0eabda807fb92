//! Mixture-of-experts: routers, experts (per-expert, fused, or gpt-oss MXFP4 storage) and the block
//! composing them.

mod block;
mod experts;
mod mxfp4;
mod router;

pub(crate) use block::{MoeBlock, SharedExpert};
pub(crate) use experts::Expert;
pub(crate) use router::Router;

use crate::config::spec::ExpertNames;
use crate::error::Result;
use crate::weights::WeightSource;

/// Loads `n` experts of hidden size `h` and intermediate size `i` from `src` (the `experts` scope):
/// gpt-oss MXFP4 blocks when the checkpoint has them, else per-expert or fused tensors.
pub(crate) fn load_experts(
    src: &WeightSource,
    names: &ExpertNames,
    n: usize,
    h: usize,
    i: usize,
) -> Result<Vec<Expert>> {
    if src.contains("gate_up_proj_blocks") {
        mxfp4::load_experts(src, names, n, h, i)
    } else {
        experts::load_experts(src, names, n, h, i)
    }
}
