//! Mixture-of-experts: routers, experts (per-expert or fused storage) and the block composing them.

mod block;
mod experts;
mod router;

pub(crate) use block::{MoeBlock, SharedExpert};
pub(crate) use experts::{load_experts, Expert};
pub(crate) use router::Router;
