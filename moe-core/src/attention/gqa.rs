//! Grouped-query attention with every published variant: q/k/v/o biases, q/k norms (per head, whole
//! projection, weightless L2), partial rotary, NoPE layers with temperature tuning, sinks, sliding
//! window and chunked masks (ARCHITECTURES.md 2.1–2.2).

use rayon::prelude::*;

use super::scores::softmax_with_sink;
use crate::cache::GqaCache;
use crate::config::{AttentionMask, GqaConfig, LayerConfig, QkNorm, RopeConfig, TemperatureTuning};
use crate::error::Result;
use crate::kernels;
use crate::layers::{Linear, RmsNorm, Rope};
use crate::weights::WeightSource;

#[derive(Debug, Clone)]
pub struct Gqa {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    /// Per-head sink logits `[nh]` (gpt-oss).
    pub sinks: Option<Vec<f32>>,
    qk_norm: QkNorm,
    rope: Option<Rope>,
    mask: AttentionMask,
    temperature: Option<TemperatureTuning>,
    nh: usize,
    nkv: usize,
    d: usize,
    eps: f32,
}

impl Gqa {
    /// Loads `self_attn.*` of one layer.
    pub fn load(
        src: &WeightSource,
        cfg: &GqaConfig,
        layer: &LayerConfig,
        rope: &RopeConfig,
        hidden: usize,
        eps: f32,
    ) -> Result<Self> {
        let (nh, nkv, d) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
        let (q_norm, k_norm) = match cfg.qk_norm {
            QkNorm::PerHead => (
                Some(RmsNorm::load(src, "q_norm", d, eps)?),
                Some(RmsNorm::load(src, "k_norm", d, eps)?),
            ),
            QkNorm::WholeProjection => (
                Some(RmsNorm::load(src, "q_norm", nh * d, eps)?),
                Some(RmsNorm::load(src, "k_norm", nkv * d, eps)?),
            ),
            QkNorm::None | QkNorm::L2 => (None, None),
        };
        Ok(Gqa {
            q_proj: Linear::load(src, "q_proj", hidden, nh * d, cfg.qkv_bias)?,
            k_proj: Linear::load(src, "k_proj", hidden, nkv * d, cfg.qkv_bias)?,
            v_proj: Linear::load(src, "v_proj", hidden, nkv * d, cfg.qkv_bias)?,
            o_proj: Linear::load(src, "o_proj", nh * d, hidden, cfg.o_bias)?,
            q_norm,
            k_norm,
            sinks: if cfg.sinks {
                Some(src.get_f32("sinks", &[nh])?)
            } else {
                None
            },
            qk_norm: cfg.qk_norm,
            rope: layer
                .use_rope
                .then(|| Rope::new(rope, cfg.rotary_dim, cfg.rope_layout)),
            mask: layer.mask,
            temperature: layer.temperature_tuning,
            nh,
            nkv,
            d,
            eps,
        })
    }

    /// A fresh cache for this layer.
    pub fn new_cache(&self) -> GqaCache {
        GqaCache::new(self.nkv * self.d, self.mask)
    }

    /// `out[T, H]` for `x[T, H]` (already normed) at absolute `positions`; appends to `cache`.
    pub fn forward(&self, x: &[f32], positions: &[usize], cache: &mut GqaCache) -> Vec<f32> {
        let t = positions.len();
        let (nh, nkv, d) = (self.nh, self.nkv, self.d);
        let mut q = self.q_proj.forward(x, t); // [T, nh*d]
        let mut k = self.k_proj.forward(x, t); // [T, nkv*d]
        let v = self.v_proj.forward(x, t); // [T, nkv*d]

        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            qn.forward(&mut q); // per head ([d]) or whole projection ([nh*d]) rows
            kn.forward(&mut k);
        }
        if let Some(rope) = &self.rope {
            let (cos, sin) = rope.tables(positions);
            rope.apply(&mut q, nh, d, 0, &cos, &sin);
            rope.apply(&mut k, nkv, d, 0, &cos, &sin);
            if self.qk_norm == QkNorm::L2 {
                kernels::rms_norm_plain(&mut q, d, self.eps);
                kernels::rms_norm_plain(&mut k, d, self.eps);
            }
        }
        if let Some(tt) = self.temperature {
            // q *= log1p(floor((p+1)/floor_scale))·attn_scale + 1   (Llama 4 NoPE layers)
            for (row, &p) in q.chunks_exact_mut(nh * d).zip(positions) {
                let s = (((p as f64 + 1.0) / tt.floor_scale).floor().ln_1p() * tt.attn_scale + 1.0)
                    as f32;
                row.iter_mut().for_each(|v| *v *= s);
            }
        }
        cache.append(&k, &v);

        let scale = (d as f32).powf(-0.5);
        let group = nh / nkv;
        // attn[T, nh*d]: each (token, head) attends over its visible keys.
        let mut attn = vec![0.0f32; t * nh * d];
        attn.par_chunks_mut(d).enumerate().for_each(|(idx, out)| {
            let (i, h) = (idx / nh, idx % nh);
            let p = positions[i];
            let kvh = h / group;
            let lo = self.first_visible(p).max(cache.k.start());
            let qh = &q[i * nh * d + h * d..i * nh * d + (h + 1) * d];
            let mut scores: Vec<f32> = (lo..=p)
                .map(|tk| scale * kernels::dot_f32(qh, &cache.k.row(tk)[kvh * d..(kvh + 1) * d]))
                .collect();
            softmax_with_sink(&mut scores, self.sinks.as_ref().map(|s| s[h]));
            for (tk, w) in (lo..=p).zip(&scores) {
                let vr = &cache.v.row(tk)[kvh * d..(kvh + 1) * d];
                kernels::axpy_f32(*w, vr, out);
            }
        });
        cache.evict();
        self.o_proj.forward(&attn, t)
    }

    /// First key position a query at `p` may see under this layer's mask.
    fn first_visible(&self, p: usize) -> usize {
        match self.mask {
            AttentionMask::Causal => 0,
            AttentionMask::SlidingWindow(w) => (p + 1).saturating_sub(w),
            AttentionMask::Chunked(c) => (p / c) * c,
        }
    }
}
