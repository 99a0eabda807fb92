//! Multi-head latent attention (DeepSeek V2/V3, Kimi K2, GLM-5), attending in latent space: the cache
//! holds only `c_kv` and `k_pe`; the key up-projection is absorbed into the query and the value
//! up-projection applied after the weighted sum (ARCHITECTURES.md 2.3–2.4). With an indexer (DSA) each
//! query attends only to its selected keys, gathered from the cache.

use rayon::prelude::*;

use super::indexer::{Indexer, Selection};
use super::scores::softmax_with_sink;
use crate::cache::{IndexerCache, MlaCache};
use crate::config::{IndexerRole, LayerConfig, MlaConfig, RopeConfig};
use crate::error::Result;
use crate::kernels::{self, MatRef};
use crate::layers::{Linear, RmsNorm, Rope};
use crate::weights::WeightSource;

/// How the query is produced.
#[derive(Debug, Clone)]
pub enum QueryProj {
    /// `q = q_b_proj(RMSNorm(q_a_proj(x)))`.
    LoRa {
        q_a_proj: Linear,
        q_a_layernorm: RmsNorm,
        q_b_proj: Linear,
    },
    /// `q = q_proj(x)` (V2-Lite, Moonlight).
    Full { q_proj: Linear },
}

#[derive(Debug, Clone)]
pub struct Mla {
    pub q: QueryProj,
    pub kv_a_proj_with_mqa: Linear,
    pub kv_a_layernorm: RmsNorm,
    /// `[nh·(dn+dv), c]`: per head `W_UK` (dn rows) then `W_UV` (dv rows).
    pub kv_b_proj: Linear,
    pub o_proj: Linear,
    pub indexer: Option<Indexer>,
    role: IndexerRole,
    rope: Rope,
    nh: usize,
    dn: usize,
    dr: usize,
    dv: usize,
    c: usize,
    scale: f32,
}

/// Whether DSA layers restrict attention to the indexer's selection or attend to every key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SparseMode {
    /// Attend only to the selected keys (the model's definition; the default).
    #[default]
    Sparse,
    /// Ignore the selection and attend densely (for comparison and benchmarks).
    Dense,
}

impl Mla {
    pub fn load(
        src: &WeightSource,
        cfg: &MlaConfig,
        layer: &LayerConfig,
        rope: &RopeConfig,
        hidden: usize,
    ) -> Result<Self> {
        let (nh, dn, dr, dv, c) = (
            cfg.num_heads,
            cfg.qk_nope_head_dim,
            cfg.qk_rope_head_dim,
            cfg.v_head_dim,
            cfg.kv_lora_rank,
        );
        let bias = src.contains("kv_a_proj_with_mqa.bias");
        let q = match cfg.q_lora_rank {
            Some(r) => QueryProj::LoRa {
                q_a_proj: Linear::load(src, "q_a_proj", hidden, r, bias)?,
                q_a_layernorm: RmsNorm::load(src, "q_a_layernorm", r, 1e-6)?,
                q_b_proj: Linear::load(src, "q_b_proj", r, nh * (dn + dr), false)?,
            },
            None => QueryProj::Full {
                q_proj: Linear::load(src, "q_proj", hidden, nh * (dn + dr), false)?,
            },
        };
        let indexer = match (&cfg.indexer, layer.indexer, cfg.q_lora_rank) {
            (Some(ic), IndexerRole::Full, Some(r)) => {
                Some(Indexer::load(&src.pp("indexer"), ic, rope, dr, hidden, r)?)
            }
            _ => None,
        };
        Ok(Mla {
            q,
            kv_a_proj_with_mqa: Linear::load(src, "kv_a_proj_with_mqa", hidden, c + dr, bias)?,
            kv_a_layernorm: RmsNorm::load(src, "kv_a_layernorm", c, 1e-6)?,
            kv_b_proj: Linear::load(src, "kv_b_proj", c, nh * (dn + dv), false)?,
            o_proj: Linear::load(src, "o_proj", nh * dv, hidden, bias)?,
            indexer,
            role: layer.indexer,
            rope: Rope::new(rope, dr, cfg.rope_layout),
            nh,
            dn,
            dr,
            dv,
            c,
            scale: cfg.softmax_scale,
        })
    }

    pub fn new_cache(&self) -> (MlaCache, Option<IndexerCache>) {
        (
            MlaCache::new(self.c, self.dr),
            self.indexer.as_ref().map(|i| i.new_cache()),
        )
    }

    /// `out[T, H]` for normed `x[T, H]`. `selection` carries the most recent full indexer layer's choice
    /// to shared layers (GLM-5); a full layer replaces it.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x: &[f32],
        positions: &[usize],
        cache: &mut MlaCache,
        indexer_cache: Option<&mut IndexerCache>,
        selection: &mut Option<Selection>,
        mode: SparseMode,
    ) -> Vec<f32> {
        let t = positions.len();
        let (nh, dn, dr, dv, c) = (self.nh, self.dn, self.dr, self.dv, self.c);
        let dq = dn + dr;

        // q[T, nh*(dn+dr)], and the query latent cq[T, q_lora] the indexer reads.
        let (mut q, cq) = match &self.q {
            QueryProj::LoRa {
                q_a_proj,
                q_a_layernorm,
                q_b_proj,
            } => {
                let mut cq = q_a_proj.forward(x, t);
                q_a_layernorm.forward(&mut cq);
                (q_b_proj.forward(&cq, t), Some(cq))
            }
            QueryProj::Full { q_proj } => (q_proj.forward(x, t), None),
        };
        // a[T, c+dr] = [c_kv | k_pe];  c_kv = RMSNorm(a[:c]).
        let a = self.kv_a_proj_with_mqa.forward(x, t);
        let mut latent = Vec::with_capacity(t * c); // [T, c]
        let mut k_pe = Vec::with_capacity(t * dr); // [T, dr]
        for row in a.chunks_exact(c + dr) {
            latent.extend_from_slice(&row[..c]);
            k_pe.extend_from_slice(&row[c..]);
        }
        self.kv_a_layernorm.forward(&mut latent);
        let (cos, sin) = self.rope.tables(positions);
        self.rope.apply(&mut q, nh, dq, dn, &cos, &sin); // rope slice is LAST in each q head
        self.rope.apply(&mut k_pe, 1, dr, 0, &cos, &sin);
        cache.append(&latent, &k_pe);

        match (&self.indexer, cq.as_ref(), indexer_cache) {
            (Some(ix), Some(cq), Some(ic)) => *selection = Some(ix.select(x, cq, positions, ic)),
            _ if self.role == IndexerRole::None => *selection = None,
            _ => {} // shared layer: keep the previous full layer's selection
        }
        let sel = match (mode, self.role) {
            (SparseMode::Sparse, IndexerRole::Full | IndexerRole::Shared) => selection.as_ref(),
            _ => None,
        };

        let wkv = self
            .kv_b_proj
            .weight
            .float_data()
            .expect("dtype checked at load");
        let head_rows = dn + dv;
        // o[T, nh*dv]: per (token, head), attention in latent space.
        let mut o = vec![0.0f32; t * nh * dv];
        o.par_chunks_mut(dv).enumerate().for_each(|(idx, out)| {
            let (i, h) = (idx / nh, idx % nh);
            let p = positions[i];
            let qh = &q[i * nh * dq + h * dq..i * nh * dq + (h + 1) * dq];
            let (q_nope, q_pe) = qh.split_at(dn);
            // q̃ = W_UK[h]ᵀ q_nope  [c]
            let w_uk = MatRef::new(
                wkv.slice(h * head_rows * c..(h * head_rows + dn) * c),
                dn,
                c,
            );
            let mut q_lat = vec![0.0f32; c];
            kernels::matmul_n(w_uk, q_nope, 1, &mut q_lat);
            let keys: Vec<usize> = match sel {
                Some(s) => s[i].clone(),
                None => (0..=p).collect(),
            };
            // logit_t = scale·(q̃·c_t + q_pe·k_pe_t)
            let mut scores: Vec<f32> = keys
                .iter()
                .map(|&tk| {
                    self.scale
                        * (kernels::scalar::dot_f32(&q_lat, cache.latent.row(tk))
                            + kernels::scalar::dot_f32(q_pe, cache.k_pe.row(tk)))
                })
                .collect();
            softmax_with_sink(&mut scores, None);
            // ō = Σ_t P_t c_t  [c];  o_h = W_UV[h] ō  [dv]
            let mut o_lat = vec![0.0f32; c];
            for (&tk, w) in keys.iter().zip(&scores) {
                o_lat
                    .iter_mut()
                    .zip(cache.latent.row(tk))
                    .for_each(|(a, b)| *a += w * b);
            }
            let w_uv = MatRef::new(
                wkv.slice((h * head_rows + dn) * c..(h + 1) * head_rows * c),
                dv,
                c,
            );
            kernels::matvec_t(w_uv, &o_lat, out);
        });
        self.o_proj.forward(&o, t)
    }
}
