//! Grouped-query attention with every published variant: q/k/v/o biases, q/k norms (per head, whole
//! projection, weightless L2), partial rotary, NoPE layers with temperature tuning, sinks, sliding
//! window and chunked masks (ARCHITECTURES.md 2.1–2.2).

use rayon::prelude::*;

use super::scores::softmax_with_sink;
use crate::cache::GqaCache;
use crate::config::{AttentionMask, GqaConfig, LayerConfig, QkNorm, RopeConfig, TemperatureTuning};
use crate::error::Result;
use crate::kernels::{self, FloatData, MatRef};
use crate::layers::{Linear, RmsNorm};
use crate::rope::Rope;
use crate::weights::WeightSource;

#[derive(Debug, Clone)]
pub(crate) struct Gqa {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    /// Per-head sink logits `[nh]` (gpt-oss).
    pub sinks: Option<Vec<f32>>,
    /// `q_proj` yields `[query | gate]` per head; the output is gated by `sigmoid(gate)` (Qwen3.5).
    output_gate: bool,
    qk_norm: QkNorm,
    rope: Option<Rope>,
    mask: AttentionMask,
    temperature: Option<TemperatureTuning>,
    nh: usize,
    nkv: usize,
    d: usize,
    eps: f32,
    /// Forwards of at least this many tokens use the tiled (flash-style) attention, which reads each
    /// KV head's keys once for all the query heads sharing it; shorter ones attend per (token, head)
    /// (every query head re-reads its keys). The default, 1, sends decode through the tiled path
    /// too; a larger value is only for comparisons.
    pub tiled_min_tokens: usize,
}

/// Default of [`Gqa::tiled_min_tokens`].
pub(crate) const GQA_TILED_MIN_TOKENS: usize = 1;
/// Keys per block of the tiled attention.
const KEY_BLOCK: usize = 256;
/// Query rows (tokens × heads of one KV group) per task of the tiled attention.
const QUERY_ROWS: usize = 128;
/// Up to this many query rows per task (decode: one token's heads of a KV group), the tiled
/// attention weights the values as they are stored instead of transposing them first.
const FEW_ROWS: usize = 16;

/// `(q, k, v, output gate)` of [`Gqa::project`].
pub(crate) type Projected = (Vec<f32>, Vec<f32>, Vec<f32>, Option<Vec<f32>>);

impl Gqa {
    /// Loads `self_attn.*` of one layer.
    pub(crate) fn load(
        src: &WeightSource,
        cfg: &GqaConfig,
        layer: &LayerConfig,
        rope: &RopeConfig,
        hidden: usize,
        eps: f32,
        norm_offset: f32,
    ) -> Result<Self> {
        let (nh, nkv, d) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
        let (q_norm, k_norm) = match cfg.qk_norm {
            QkNorm::PerHead => (
                Some(RmsNorm::load_offset(src, "q_norm", d, eps, norm_offset)?),
                Some(RmsNorm::load_offset(src, "k_norm", d, eps, norm_offset)?),
            ),
            QkNorm::WholeProjection => (
                Some(RmsNorm::load(src, "q_norm", nh * d, eps)?),
                Some(RmsNorm::load(src, "k_norm", nkv * d, eps)?),
            ),
            QkNorm::None | QkNorm::L2 => (None, None),
        };
        Ok(Gqa {
            q_proj: Linear::load(
                src,
                "q_proj",
                hidden,
                nh * d * if cfg.output_gate { 2 } else { 1 },
                cfg.qkv_bias,
            )?,
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
            output_gate: cfg.output_gate,
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
            tiled_min_tokens: GQA_TILED_MIN_TOKENS,
        })
    }

    /// A fresh cache for this layer.
    pub(crate) fn new_cache(&self) -> GqaCache {
        GqaCache::new(self.nkv * self.d, self.mask)
    }

    /// `out[T, H]` for `x[T, H]` (already normed) at absolute `positions`; appends to `cache`.
    pub(crate) fn forward(&self, x: &[f32], positions: &[usize], cache: &mut GqaCache) -> Vec<f32> {
        let (q, k, v, gate) = self.project(x, positions);
        let attn = self.attend(&q, &k, &v, positions, cache);
        self.output(attn, gate.as_deref(), positions.len())
    }

    /// The row-wise half of [`forward`](Self::forward): `q[T, nh·d]`, `k[T, nkv·d]`, `v[T, nkv·d]`
    /// for `x[T, H]` at `positions` (projections, q/k norms, RoPE, temperature tuning), and the
    /// output gate `[T, nh·d]` where the layer has one. Rows are independent, so the rows of several
    /// sequences go through as one product (batched decode).
    pub(crate) fn project(&self, x: &[f32], positions: &[usize]) -> Projected {
        let t = positions.len();
        let (nh, nkv, d) = (self.nh, self.nkv, self.d);
        let mut q = self.q_proj.forward(x, t); // [T, nh*d], or [T, nh, 2d] with the output gate
        let gate = if self.output_gate {
            // Per head [query | gate]: split into q [T, nh*d] and gate [T, nh*d].
            let mut qs = Vec::with_capacity(t * nh * d);
            let mut gs = Vec::with_capacity(t * nh * d);
            for head in q.chunks_exact(2 * d) {
                qs.extend_from_slice(&head[..d]);
                gs.extend_from_slice(&head[d..]);
            }
            q = qs;
            Some(gs)
        } else {
            None
        };
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
        (q, k, v, gate)
    }

    /// The per-sequence half of [`forward`](Self::forward): appends `k`, `v` to `cache` and returns
    /// `attn[T, nh·d]` (before `o_proj`) of the queries `q` at `positions`.
    pub(crate) fn attend(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        positions: &[usize],
        cache: &mut GqaCache,
    ) -> Vec<f32> {
        let t = positions.len();
        let (nh, nkv, d) = (self.nh, self.nkv, self.d);
        cache.append(k, v);

        let scale = (d as f32).powf(-0.5);
        let group = nh / nkv;
        if t >= self.tiled_min_tokens {
            let attn = self.attend_tiled(q, positions, cache, scale);
            cache.evict();
            return attn;
        }
        // The held keys and values [len - k0, nkv*d] as f32, read once (borrowed when stored as f32
        // in one piece; decoded once, not per head, when compact or shared with a fork).
        let k0 = cache.k.start();
        let (keys, vals) = (
            cache.k.rows(k0..cache.k.len()),
            cache.v.rows(k0..cache.v.len()),
        );
        let kw = nkv * d;
        // attn[T, nh*d]: each (token, head) attends over its visible keys.
        let mut attn = vec![0.0f32; t * nh * d];
        attn.par_chunks_mut(d).enumerate().for_each(|(idx, out)| {
            let (i, h) = (idx / nh, idx % nh);
            let p = positions[i];
            let kvh = h / group;
            let lo = self.first_visible(p).max(cache.k.start());
            let qh = &q[i * nh * d + h * d..i * nh * d + (h + 1) * d];
            let mut scores: Vec<f32> = (lo..=p)
                .map(|tk| {
                    let r = (tk - k0) * kw;
                    scale * kernels::dot_f32(qh, &keys[r + kvh * d..r + (kvh + 1) * d])
                })
                .collect();
            softmax_with_sink(&mut scores, self.sinks.as_ref().map(|s| s[h]));
            for (tk, w) in (lo..=p).zip(&scores) {
                let r = (tk - k0) * kw;
                let vr = &vals[r + kvh * d..r + (kvh + 1) * d];
                kernels::axpy_f32(*w, vr, out);
            }
        });
        cache.evict();
        attn
    }

    /// `o_proj(attn ⊙ sigmoid(gate))` for `attn[T, nh·d]`, or `o_proj(attn)` without an output gate.
    pub(crate) fn output(&self, mut attn: Vec<f32>, gate: Option<&[f32]>, t: usize) -> Vec<f32> {
        if let Some(g) = gate {
            for (a, g) in attn.iter_mut().zip(g) {
                *a *= kernels::sigmoid(*g);
            }
        }
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

    /// Flash-style attention: per KV head and block of queries (the tokens × the heads sharing that
    /// KV head; at decode one task per KV head, the tasks split over the pool), keys in blocks of
    /// [`KEY_BLOCK`]: scores as one product, an online softmax (running max and sum per query row),
    /// and the weighted values as one product. Each block of keys and values is read once per task,
    /// straight from the cache's stored rows (bf16/int8 rows decoded block by block, only this KV
    /// head's columns: no full-context copy). Memory is O(block²) whatever the context. Returns
    /// `attn[T, nh·d]`.
    fn attend_tiled(
        &self,
        q: &[f32],
        positions: &[usize],
        cache: &GqaCache,
        scale: f32,
    ) -> Vec<f32> {
        let t = positions.len();
        let (nh, nkv, d) = (self.nh, self.nkv, self.d);
        let group = nh / nkv;
        let qb = (QUERY_ROWS / group).max(1); // tokens per task
        let k0s = cache.k.start();
        let tasks: Vec<(usize, usize)> = (0..nkv)
            .flat_map(|g| (0..t).step_by(qb).map(move |i0| (g, i0)))
            .collect();
        let outs: Vec<Vec<f32>> = tasks
            .par_iter()
            .map(|&(g, i0)| {
                let i1 = (i0 + qb).min(t);
                let rows = (i1 - i0) * group; // row = (token - i0)·group + head-in-group
                let mut qm = Vec::with_capacity(rows * d);
                for i in i0..i1 {
                    qm.extend_from_slice(
                        &q[i * nh * d + g * group * d..i * nh * d + (g + 1) * group * d],
                    );
                }
                let lo_of = |i: usize| self.first_visible(positions[i]).max(k0s);
                let k_lo = (i0..i1).map(lo_of).min().unwrap_or(0);
                let k_hi = positions[i0..i1].iter().max().map_or(0, |p| p + 1);
                let mut m = vec![f32::NEG_INFINITY; rows];
                let mut l = vec![0.0f32; rows];
                let mut o = vec![0.0f32; rows * d];
                // This KV head's keys and values of one block as f32 `[nk, d]`: copied from f32
                // rows, decoded from bf16/int8 ones (only this head's columns, only this block).
                let mut kb_buf = Vec::with_capacity(KEY_BLOCK * d);
                let mut vb_buf = Vec::with_capacity(KEY_BLOCK * d);
                let mut vt = vec![0.0f32; d * KEY_BLOCK];
                for k0 in (k_lo..k_hi).step_by(KEY_BLOCK) {
                    let k1 = (k0 + KEY_BLOCK).min(k_hi);
                    let nk = k1 - k0;
                    kb_buf.clear();
                    vb_buf.clear();
                    cache
                        .k
                        .decode_cols_into(k0..k1, g * d..(g + 1) * d, &mut kb_buf);
                    cache
                        .v
                        .decode_cols_into(k0..k1, g * d..(g + 1) * d, &mut vb_buf);
                    let mut sc = vec![0.0f32; rows * nk];
                    let km = MatRef::new(FloatData::F32(&kb_buf), nk, d);
                    kernels::matmul_t(km, &qm, rows, &mut sc);
                    for (r, row) in sc.chunks_exact_mut(nk).enumerate() {
                        let i = i0 + r / group;
                        // Visible keys of this query inside the block: [a, b).
                        let a = lo_of(i).clamp(k0, k1) - k0;
                        let b = (positions[i] + 1).clamp(k0, k1) - k0;
                        if a >= b {
                            row.fill(0.0);
                            continue;
                        }
                        row[..a].fill(0.0);
                        row[b..].fill(0.0);
                        let vis = &mut row[a..b];
                        let bmax = scale * vis.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let m_new = m[r].max(bmax);
                        let corr = (m[r] - m_new).exp();
                        let sum = kernels::exp_sum(vis, scale, m_new);
                        l[r] = l[r] * corr + sum;
                        m[r] = m_new;
                        if corr != 1.0 {
                            o[r * d..(r + 1) * d].iter_mut().for_each(|x| *x *= corr);
                        }
                    }
                    let mut pv = vec![0.0f32; rows * d];
                    if rows <= FEW_ROWS {
                        // Decode: a few query rows meet each value row once, as it is stored.
                        let vm = MatRef::new(FloatData::F32(&vb_buf), nk, d);
                        kernels::matmul_n(vm, &sc, rows, &mut pv);
                    } else {
                        // vᵀ[d, nk], so that many query rows use the tiled row-major product.
                        for (tk, v) in vb_buf.chunks_exact(d).enumerate() {
                            for (c, x) in v.iter().enumerate() {
                                vt[c * nk + tk] = *x;
                            }
                        }
                        let vm = MatRef::new(FloatData::F32(&vt[..d * nk]), d, nk);
                        kernels::matmul_t(vm, &sc, rows, &mut pv);
                    }
                    kernels::add_assign(&mut o, &pv);
                }
                for r in 0..rows {
                    let h = g * group + r % group;
                    // The sink joins the denominator: rescale to max(m, sink) first.
                    let (mut lr, mut scale_o) = (l[r], 1.0f32);
                    if let Some(sink) = self.sinks.as_ref().map(|s| s[h]) {
                        let m_fin = m[r].max(sink);
                        scale_o = (m[r] - m_fin).exp();
                        lr = lr * scale_o + (sink - m_fin).exp();
                    }
                    let inv = if lr > 0.0 { scale_o / lr } else { 0.0 };
                    o[r * d..(r + 1) * d].iter_mut().for_each(|x| *x *= inv);
                }
                o
            })
            .collect();
        let mut attn = vec![0.0f32; t * nh * d];
        for (&(g, i0), o) in tasks.iter().zip(&outs) {
            for (j, chunk) in o.chunks_exact(group * d).enumerate() {
                let i = i0 + j;
                attn[i * nh * d + g * group * d..i * nh * d + (g + 1) * group * d]
                    .copy_from_slice(chunk);
            }
        }
        attn
    }
}

#[cfg(test)]
mod tests;
