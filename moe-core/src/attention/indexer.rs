//! The DSA "lightning indexer" (DeepSeek V3.2, GLM-5): scores past tokens for each query and keeps the
//! top `index_topk` (ARCHITECTURES.md 2.5).
//!
//! `score[i,t] = Σ_h w[i,h] · ReLU(dI^-0.5 · qI[i,h]·kI[t])`,  `w = weights_proj(x)·nI^-0.5`.

use crate::cache::IndexerCache;
use crate::config::{IndexerConfig, RopeConfig};
use crate::error::Result;
use crate::kernels::{self, MatRef};
use crate::layers::{LayerNorm, Linear};
use crate::rope::Rope;
use crate::weights::WeightSource;

/// For each query token of a forward, the sorted key positions it attends to.
pub(crate) type Selection = Vec<Vec<usize>>;

#[derive(Debug, Clone)]
pub(crate) struct Indexer {
    pub wq_b: Linear,
    pub wk: Linear,
    pub k_norm: LayerNorm,
    pub weights_proj: Linear,
    rope: Rope,
    rope_dim: usize,
    n_heads: usize,
    head_dim: usize,
    topk: usize,
}

impl Indexer {
    /// Loads `self_attn.indexer.*`.
    pub(crate) fn load(
        src: &WeightSource,
        cfg: &IndexerConfig,
        rope: &RopeConfig,
        rope_dim: usize,
        hidden: usize,
        q_lora_rank: usize,
    ) -> Result<Self> {
        Ok(Indexer {
            wq_b: Linear::load(src, "wq_b", q_lora_rank, cfg.n_heads * cfg.head_dim, false)?,
            wk: Linear::load(src, "wk", hidden, cfg.head_dim, false)?,
            k_norm: LayerNorm::load(src, "k_norm", cfg.head_dim, cfg.norm_eps)?,
            weights_proj: Linear::load(src, "weights_proj", hidden, cfg.n_heads, false)?,
            rope: Rope::new(rope, rope_dim, cfg.rope_layout),
            rope_dim,
            n_heads: cfg.n_heads,
            head_dim: cfg.head_dim,
            topk: cfg.topk,
        })
    }

    pub(crate) fn new_cache(&self) -> IndexerCache {
        IndexerCache::new(self.head_dim)
    }

    /// Appends this forward's indexer keys and selects, for each query, the keys to attend to.
    /// `x[T, H]` is the normed attention input, `cq[T, q_lora]` the query latent.
    pub(crate) fn select(
        &self,
        x: &[f32],
        cq: &[f32],
        positions: &[usize],
        cache: &mut IndexerCache,
    ) -> Selection {
        let t = positions.len();
        let (nh, dh) = (self.n_heads, self.head_dim);
        let mut q = self.wq_b.forward(cq, t); // [T, nI*dI]
        let mut k = self.wk.forward(x, t); // [T, dI]
        self.k_norm.forward(&mut k);
        // RoPE on the FIRST rope_dim dims of each head (MLA puts its rope slice last).
        let (cos, sin) = self.rope.tables(positions);
        self.rope.apply(&mut q, nh, dh, 0, &cos, &sin);
        self.rope.apply(&mut k, 1, dh, 0, &cos, &sin);
        debug_assert!(self.rope_dim <= dh);
        cache.keys.append(&k);

        let w = self.weights_proj.forward(x, t); // [T, nI]
                                                 // Every cached key [len, dI], read once (lent in its stored f32/bf16 form when in one piece).
        let all_keys = cache.keys.table(cache.keys.start()..cache.keys.len());
        let w_scale = (nh as f32).powf(-0.5);
        let s_scale = (dh as f32).powf(-0.5);
        (0..t)
            .map(|i| {
                let p = positions[i];
                if p < self.topk {
                    // Fewer causal keys than top-k: every one is selected (identical to dense).
                    return (0..=p).collect();
                }
                let qi = &q[i * nh * dh..(i + 1) * nh * dh];
                let wi = &w[i * nh..(i + 1) * nh];
                // dots[h, t] = qI[i,h]·KI[t] for every causal key, as one product with the keys as
                // the matrix: [nI, p+1] = Q_i [nI, dI] · KIᵀ.
                let keys = MatRef::new(all_keys.data().slice(0..(p + 1) * dh), p + 1, dh);
                let mut dots = vec![0.0f32; nh * (p + 1)];
                kernels::matmul_t(keys, qi, nh, &mut dots);
                // score[t] = Σ_h w[h]·nI^-0.5 · ReLU(dI^-0.5 · dots[h, t])
                let mut scores = vec![0.0f32; p + 1];
                for (row, wh) in dots.chunks_exact(p + 1).zip(wi) {
                    let wh = wh * w_scale;
                    for (s, d) in scores.iter_mut().zip(row) {
                        *s += wh * (s_scale * d).max(0.0);
                    }
                }
                let mut sel = kernels::top_k_indices(&scores, self.topk);
                sel.sort_unstable();
                sel
            })
            .collect()
    }
}
