//! The attention strategies: GQA, MLA, MLA with the DSA indexer, and gated DeltaNet linear
//! attention.

mod compressed;
mod deltanet;
mod gqa;
mod indexer;
mod mla;
mod scores;

pub(crate) use compressed::CompressedAttention;
pub(crate) use deltanet::GatedDeltaNet;
pub(crate) use gqa::Gqa;
pub(crate) use indexer::Selection;
pub use mla::SparseMode;
pub(crate) use mla::{Mla, QueryProj};

/// One layer's attention.
// One value per layer, built once and never moved in the hot path: the size difference is harmless.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(crate) enum Attention {
    Gqa(Gqa),
    Mla(Mla),
    DeltaNet(GatedDeltaNet),
    Compressed(Box<CompressedAttention>),
}

impl Attention {
    /// Bytes of the weights one token streams through this attention (projections and indexer).
    pub(crate) fn weight_bytes(&self) -> usize {
        match self {
            Attention::Gqa(g) => {
                g.q_proj.weight_bytes()
                    + g.k_proj.weight_bytes()
                    + g.v_proj.weight_bytes()
                    + g.o_proj.weight_bytes()
            }
            Attention::Mla(m) => {
                let q = match &m.q {
                    QueryProj::LoRa {
                        q_a_proj, q_b_proj, ..
                    } => q_a_proj.weight_bytes() + q_b_proj.weight_bytes(),
                    QueryProj::Full { q_proj } => q_proj.weight_bytes(),
                };
                let ix = m.indexer.as_ref().map_or(0, |i| {
                    i.wq_b.weight_bytes() + i.wk.weight_bytes() + i.weights_proj.weight_bytes()
                });
                q + m.kv_a_proj_with_mqa.weight_bytes()
                    + m.kv_b_proj.weight_bytes()
                    + m.o_proj.weight_bytes()
                    + ix
            }
            Attention::DeltaNet(d) => d.weight_bytes(),
            Attention::Compressed(c) => c.weight_bytes(),
        }
    }
}
