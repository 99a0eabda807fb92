//! Mixture-of-experts: routers, experts (per-expert or fused storage) and the block composing them.

mod block;
mod experts;
mod mxfp4;
mod router;

pub use block::{MoeBlock, SharedExpert};
pub use experts::{load_experts, Expert, ExpertNames, FusedLayout, GateUpSplit};
pub use router::{top_k_indices, Router, Routing};
