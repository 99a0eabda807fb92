//! DeepSeek V4's manifold-constrained hyper-connections: the residual stream holds `n` copies
//! `x[T, n, H]`. Before a block, weights computed from the RMS-normed flattened streams collapse them
//! (`pre`); after it, the block's output is spread back (`post`) and added to the streams mixed by a
//! Sinkhorn-normalised (doubly stochastic) `comb`:
//!
//! ```text
//! [pre | post | comb] = RMS(x)·fnᵀ;  pre = σ(pre·s₀ + b) + ε;  post = 2σ(post·s₁ + b)
//! comb = Sinkhorn(softmax_rows(comb·s₂ + b) + ε);  x'_k = post_k·f(Σ_j pre_j x_j) + Σ_j comb_jk x_j
//! ```

use crate::error::Result;
use crate::kernels;
use crate::layers::{Linear, Orientation};
use crate::weights::WeightSource;

/// The weights of one hyper-connection (`hc_attn_*` or `hc_ffn_*`).
#[derive(Debug, Clone)]
pub(crate) struct HyperConnection {
    /// `[(2+n)·n, n·H]`.
    pub proj: Linear,
    base: Vec<f32>,
    scale: Vec<f32>,
    n: usize,
    iters: usize,
    eps: f32,
    norm_eps: f32,
}

/// Per token: the collapsed block input `[T, H]`, `post [T, n]` and `comb [T, n, n]`.
pub(crate) struct HcWeights {
    pub collapsed: Vec<f32>,
    post: Vec<f32>,
    comb: Vec<f32>,
}

impl HyperConnection {
    /// Loads `{prefix}_fn`, `{prefix}_base`, `{prefix}_scale` from the layer scope `src`.
    pub(crate) fn load(
        src: &WeightSource,
        prefix: &str,
        n: usize,
        hidden: usize,
        iters: usize,
        eps: f32,
        norm_eps: f32,
    ) -> Result<Self> {
        let rows = (2 + n) * n;
        let w = src.get(&format!("{prefix}_fn"), &[rows, n * hidden])?;
        Ok(HyperConnection {
            proj: Linear::from_tensor(w, Orientation::OutIn, None),
            base: src.get_f32(&format!("{prefix}_base"), &[rows])?,
            scale: src.get_f32(&format!("{prefix}_scale"), &[3])?,
            n,
            iters,
            eps,
            norm_eps,
        })
    }

    /// The weights for the streams `x[T, n·H]`.
    pub(crate) fn weights(&self, x: &[f32], t: usize) -> HcWeights {
        let n = self.n;
        let h = x.len() / (t * n).max(1);
        let mut normed = x.to_vec();
        kernels::rms_norm_plain(&mut normed, n * h, self.norm_eps);
        let mixes = self.proj.forward(&normed, t); // [T, (2+n)·n]
        let rows = (2 + n) * n;
        let mut collapsed = vec![0.0f32; t * h];
        let mut post = vec![0.0f32; t * n];
        let mut comb = vec![0.0f32; t * n * n];
        for i in 0..t {
            let m = &mixes[i * rows..(i + 1) * rows];
            let xs = &x[i * n * h..(i + 1) * n * h];
            for j in 0..n {
                let pre = kernels::sigmoid(m[j] * self.scale[0] + self.base[j]) + self.eps;
                kernels::axpy_f32(
                    pre,
                    &xs[j * h..(j + 1) * h],
                    &mut collapsed[i * h..(i + 1) * h],
                );
                post[i * n + j] =
                    2.0 * kernels::sigmoid(m[n + j] * self.scale[1] + self.base[n + j]);
            }
            let c = &mut comb[i * n * n..(i + 1) * n * n];
            for (k, v) in c.iter_mut().enumerate() {
                *v = m[2 * n + k] * self.scale[2] + self.base[2 * n + k];
            }
            for row in c.chunks_exact_mut(n) {
                kernels::softmax(row);
                row.iter_mut().for_each(|v| *v += self.eps);
            }
            normalize_columns(c, n, self.eps);
            for _ in 1..self.iters {
                for row in c.chunks_exact_mut(n) {
                    let s: f32 = row.iter().sum::<f32>() + self.eps;
                    row.iter_mut().for_each(|v| *v /= s);
                }
                normalize_columns(c, n, self.eps);
            }
        }
        HcWeights {
            collapsed,
            post,
            comb,
        }
    }

    /// `x'_k = post_k·out + Σ_j comb_jk·x_j` in place, for `out[T, H]`.
    pub(crate) fn combine(&self, x: &mut [f32], w: &HcWeights, out: &[f32], t: usize) {
        let n = self.n;
        let h = out.len() / t.max(1);
        let mut next = vec![0.0f32; n * h];
        for i in 0..t {
            let xs = &mut x[i * n * h..(i + 1) * n * h];
            let c = &w.comb[i * n * n..(i + 1) * n * n];
            next.fill(0.0);
            for k in 0..n {
                let dst = &mut next[k * h..(k + 1) * h];
                kernels::axpy_f32(w.post[i * n + k], &out[i * h..(i + 1) * h], dst);
                for j in 0..n {
                    kernels::axpy_f32(c[j * n + k], &xs[j * h..(j + 1) * h], dst);
                }
            }
            xs.copy_from_slice(&next);
        }
    }
}

fn normalize_columns(c: &mut [f32], n: usize, eps: f32) {
    for k in 0..n {
        let s: f32 = (0..n).map(|j| c[j * n + k]).sum::<f32>() + eps;
        for j in 0..n {
            c[j * n + k] /= s;
        }
    }
}

/// The final collapse of the streams before the model's norm (`hc_head`).
#[derive(Debug, Clone)]
pub(crate) struct HyperHead {
    proj: Linear,
    base: Vec<f32>,
    scale: f32,
    n: usize,
    eps: f32,
    norm_eps: f32,
}

impl HyperHead {
    /// Loads `{prefix}fn`, `{prefix}base`, `{prefix}scale` (`hc_head.hc_*` as transformers names
    /// them, or `hc_head_*` at the root of DeepSeek's own checkpoints).
    pub(crate) fn load(
        src: &WeightSource,
        prefix: &str,
        n: usize,
        hidden: usize,
        eps: f32,
        norm_eps: f32,
    ) -> Result<Self> {
        let w = src.get(&format!("{prefix}fn"), &[n, n * hidden])?;
        Ok(HyperHead {
            proj: Linear::from_tensor(w, Orientation::OutIn, None),
            base: src.get_f32(&format!("{prefix}base"), &[n])?,
            scale: src.get_f32(&format!("{prefix}scale"), &[1])?[0],
            n,
            eps,
            norm_eps,
        })
    }

    /// `y[T, H] = Σ_j pre_j·x_j` for the streams `x[T, n·H]`.
    pub(crate) fn forward(&self, x: &[f32], t: usize) -> Vec<f32> {
        let n = self.n;
        let h = x.len() / (t * n).max(1);
        let mut normed = x.to_vec();
        kernels::rms_norm_plain(&mut normed, n * h, self.norm_eps);
        let mixes = self.proj.forward(&normed, t); // [T, n]
        let mut y = vec![0.0f32; t * h];
        for i in 0..t {
            for j in 0..n {
                let pre = kernels::sigmoid(mixes[i * n + j] * self.scale + self.base[j]) + self.eps;
                kernels::axpy_f32(
                    pre,
                    &x[i * n * h + j * h..i * n * h + (j + 1) * h],
                    &mut y[i * h..(i + 1) * h],
                );
            }
        }
        y
    }
}
