//! Gated DeltaNet linear attention (Qwen3.5's `linear_attention` layers): q/k/v from one projection
//! through a short depthwise causal convolution and SiLU, L2-normalised queries and keys, and per
//! value head a `[dk, dv]` state updated by the gated delta rule
//!
//! ```text
//! S ← exp(g)·S;   S ← S + k ⊗ β·(v − Sᵀk);   o = Sᵀq·dk^-½
//! g = −exp(A_log)·softplus(a + dt_bias),  β = sigmoid(b)
//! ```
//!
//! then an RMSNorm per head gated by `silu(z)` and the output projection. Prefill runs the same
//! recurrence token by token (the reference's chunked form is the same sum reordered), so the cache
//! is the state itself: constant in size whatever the context.

use rayon::prelude::*;

use crate::cache::DeltaNetCache;
use crate::config::LinearAttentionConfig;
use crate::error::Result;
use crate::kernels;
use crate::layers::{Linear, RmsNorm};
use crate::weights::WeightSource;

/// eps of the in-kernel L2 normalisation of queries and keys (fixed in the reference).
const L2_EPS: f32 = 1e-6;

#[derive(Debug, Clone)]
pub(crate) struct GatedDeltaNet {
    /// `[conv_dim, H]`: queries, keys, values.
    pub in_proj_qkv: Linear,
    /// `[nv·dv, H]`: the output gate.
    pub in_proj_z: Linear,
    /// `[nv, H]`: the write strength β (before the sigmoid).
    pub in_proj_b: Linear,
    /// `[nv, H]`: the decay input.
    pub in_proj_a: Linear,
    /// `[conv_dim, K]`: depthwise convolution taps, oldest input first.
    conv: Vec<f32>,
    /// `[nv]`.
    dt_bias: Vec<f32>,
    /// `[nv]`: `−exp(A_log)`.
    neg_a: Vec<f32>,
    /// Per-head RMSNorm `[dv]` before the gate.
    norm: RmsNorm,
    /// `[H, nv·dv]`.
    pub out_proj: Linear,
    nk: usize,
    nv: usize,
    dk: usize,
    dv: usize,
    kernel: usize,
}

impl GatedDeltaNet {
    /// Loads `linear_attn.*` of one layer (`src` is scoped to it).
    pub(crate) fn load(
        src: &WeightSource,
        cfg: &LinearAttentionConfig,
        hidden: usize,
        eps: f32,
    ) -> Result<Self> {
        let (nk, nv, dk, dv, kernel) = (
            cfg.num_key_heads,
            cfg.num_value_heads,
            cfg.key_head_dim,
            cfg.value_head_dim,
            cfg.conv_kernel,
        );
        let conv_dim = cfg.conv_dim();
        let a_log = src.get_f32("A_log", &[nv])?;
        Ok(GatedDeltaNet {
            in_proj_qkv: Linear::load(src, "in_proj_qkv", hidden, conv_dim, false)?,
            in_proj_z: Linear::load(src, "in_proj_z", hidden, nv * dv, false)?,
            in_proj_b: Linear::load(src, "in_proj_b", hidden, nv, false)?,
            in_proj_a: Linear::load(src, "in_proj_a", hidden, nv, false)?,
            conv: src.pp("conv1d").get_f32("weight", &[conv_dim, 1, kernel])?,
            dt_bias: src.get_f32("dt_bias", &[nv])?,
            neg_a: a_log.iter().map(|a| -a.exp()).collect(),
            norm: RmsNorm::load(src, "norm", dv, eps)?,
            out_proj: Linear::load(src, "out_proj", nv * dv, hidden, false)?,
            nk,
            nv,
            dk,
            dv,
            kernel,
        })
    }

    /// Bytes of the weights one token streams through this layer.
    pub(crate) fn weight_bytes(&self) -> usize {
        self.in_proj_qkv.weight_bytes()
            + self.in_proj_z.weight_bytes()
            + self.in_proj_b.weight_bytes()
            + self.in_proj_a.weight_bytes()
            + self.out_proj.weight_bytes()
    }

    fn conv_dim(&self) -> usize {
        2 * self.nk * self.dk + self.nv * self.dv
    }

    /// An empty state for this layer.
    pub(crate) fn new_cache(&self) -> DeltaNetCache {
        DeltaNetCache::new(
            (self.kernel - 1) * self.conv_dim(),
            self.nv * self.dk * self.dv,
        )
    }

    /// `out[T, H]` for `x[T, H]` (already normed), continuing the state in `cache`.
    pub(crate) fn forward(&self, x: &[f32], t: usize, cache: &mut DeltaNetCache) -> Vec<f32> {
        let (nk, nv, dk, dv) = (self.nk, self.nv, self.dk, self.dv);
        let c = self.conv_dim();
        cache.ensure();
        let qkv = self.in_proj_qkv.forward(x, t); // [T, C]
        let z = self.in_proj_z.forward(x, t); // [T, nv·dv]
        let b = self.in_proj_b.forward(x, t); // [T, nv]
        let a = self.in_proj_a.forward(x, t); // [T, nv]

        // Causal depthwise convolution over [conv state (K-1 rows) ; qkv (T rows)], then SiLU.
        let past = self.kernel - 1;
        let mut ext = Vec::with_capacity((past + t) * c); // [K-1+T, C]
        ext.extend_from_slice(&cache.conv);
        ext.extend_from_slice(&qkv);
        let mut mixed = vec![0.0f32; t * c]; // [T, C]
        mixed.par_chunks_mut(c).enumerate().for_each(|(i, row)| {
            for (ch, out) in row.iter_mut().enumerate() {
                let taps = &self.conv[ch * self.kernel..(ch + 1) * self.kernel];
                let s: f32 = taps
                    .iter()
                    .enumerate()
                    .map(|(j, w)| w * ext[(i + j) * c + ch])
                    .sum();
                *out = kernels::silu(s);
            }
        });
        cache
            .conv
            .copy_from_slice(&ext[(ext.len() / c - past) * c..]);

        // L2-normalise each query and key head; queries also scaled by dk^-½.
        let q_scale = (dk as f32).powf(-0.5);
        for row in mixed.chunks_exact_mut(c) {
            for (hd, head) in row[..2 * nk * dk].chunks_exact_mut(dk).enumerate() {
                let inv = 1.0 / (head.iter().map(|v| v * v).sum::<f32>() + L2_EPS).sqrt();
                let s = if hd < nk { inv * q_scale } else { inv };
                head.iter_mut().for_each(|v| *v *= s);
            }
        }

        // The recurrence, one value head per task: o[h] is [T, dv].
        let group = nv / nk;
        let outs: Vec<Vec<f32>> = cache
            .state
            .par_chunks_mut(dk * dv)
            .enumerate()
            .map(|(h, s)| {
                let kh = h / group;
                let mut o = vec![0.0f32; t * dv];
                let mut kv_mem = vec![0.0f32; dv];
                for i in 0..t {
                    let row = &mixed[i * c..(i + 1) * c];
                    let q = &row[kh * dk..(kh + 1) * dk];
                    let k = &row[nk * dk + kh * dk..nk * dk + (kh + 1) * dk];
                    let v = &row[2 * nk * dk + h * dv..2 * nk * dk + (h + 1) * dv];
                    let g = self.neg_a[h] * softplus(a[i * nv + h] + self.dt_bias[h]);
                    let decay = g.exp();
                    let beta = kernels::sigmoid(b[i * nv + h]);
                    s.iter_mut().for_each(|x| *x *= decay);
                    // kv_mem = Sᵀk;  delta = β(v − kv_mem);  S += k ⊗ delta
                    kv_mem.fill(0.0);
                    for (ki, srow) in k.iter().zip(s.chunks_exact(dv)) {
                        kernels::axpy_f32(*ki, srow, &mut kv_mem);
                    }
                    for (m, vj) in kv_mem.iter_mut().zip(v) {
                        *m = (vj - *m) * beta;
                    }
                    for (ki, srow) in k.iter().zip(s.chunks_exact_mut(dv)) {
                        kernels::axpy_f32(*ki, &kv_mem, srow);
                    }
                    let oi = &mut o[i * dv..(i + 1) * dv];
                    for (qi, srow) in q.iter().zip(s.chunks_exact(dv)) {
                        kernels::axpy_f32(*qi, srow, oi);
                    }
                }
                o
            })
            .collect();
        cache.advance(t);

        // Gated per-head RMSNorm: norm(o) · silu(z), into [T, nv·dv].
        let mut core = vec![0.0f32; t * nv * dv];
        for (h, o) in outs.iter().enumerate() {
            for i in 0..t {
                core[i * nv * dv + h * dv..i * nv * dv + (h + 1) * dv]
                    .copy_from_slice(&o[i * dv..(i + 1) * dv]);
            }
        }
        self.norm.forward(&mut core);
        for (v, g) in core.iter_mut().zip(&z) {
            *v *= kernels::silu(*g);
        }
        self.out_proj.forward(&core, t)
    }
}

/// `log(1 + e^x)`, linear above 20 as in PyTorch.
fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softplus_matches_its_definition() {
        assert!((softplus(0.0) - 2f32.ln()).abs() < 1e-7);
        assert_eq!(softplus(30.0), 30.0);
        assert!((softplus(-5.0) - (1.0 + (-5f32).exp()).ln()).abs() < 1e-7);
    }
}
