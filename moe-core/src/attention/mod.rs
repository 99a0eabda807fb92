//! The three attention strategies: GQA, MLA, and MLA with the DSA indexer.

mod gqa;
mod indexer;
mod mla;
mod scores;

pub use gqa::Gqa;
pub use indexer::{Indexer, Selection};
pub use mla::{Mla, QueryProj, SparseMode};
pub use scores::softmax_with_sink;

/// One layer's attention.
// One value per layer, built once and never moved in the hot path: the size difference is harmless.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Attention {
    Gqa(Gqa),
    Mla(Mla),
}
