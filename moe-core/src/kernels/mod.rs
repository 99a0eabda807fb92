//! The hot math: products of stored-dtype weights with f32 activations, and the small pointwise ops.
//!
//! Weights arrive as [`FloatData`] (bf16 / f16 / f32 borrowed from the checkpoint map); activations and
//! accumulators are f32. `scalar` holds the reference implementations.

pub mod scalar;

use rayon::prelude::*;

use crate::weights::FloatData;

/// Below this many multiply-adds a product runs on the calling thread.
const PAR_THRESHOLD: usize = 1 << 16;

/// A row-major weight matrix borrowed in its stored dtype.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: FloatData<'a>,
    pub rows: usize,
    pub cols: usize,
}

impl<'a> MatRef<'a> {
    pub fn new(data: FloatData<'a>, rows: usize, cols: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "matrix data does not match {rows}x{cols}"
        );
        MatRef { data, rows, cols }
    }

    #[inline]
    pub fn row(&self, r: usize) -> FloatData<'a> {
        self.data.slice(r * self.cols..(r + 1) * self.cols)
    }
}

/// `y[T, rows] = x[T, cols] · Wᵀ` for a weight stored `[rows, cols]` (a `nn.Linear` weight).
pub fn matmul_t(w: MatRef<'_>, x: &[f32], t: usize, y: &mut [f32]) {
    debug_assert_eq!(x.len(), t * w.cols);
    debug_assert_eq!(y.len(), t * w.rows);
    if t == 1 {
        return matvec_t(w, x, y);
    }
    // Each worker takes a block of weight rows, widens each row once and dots it with every token.
    let rows_per_task = (PAR_THRESHOLD / (w.cols * t).max(1)).clamp(1, w.rows.max(1));
    let blocks: Vec<(usize, Vec<f32>)> = (0..w.rows)
        .step_by(rows_per_task)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|r0| {
            let r1 = (r0 + rows_per_task).min(w.rows);
            let mut out = vec![0.0f32; (r1 - r0) * t];
            let mut row = vec![0.0f32; w.cols];
            for r in r0..r1 {
                w.data.widen_into(r * w.cols..(r + 1) * w.cols, &mut row);
                for i in 0..t {
                    out[i * (r1 - r0) + (r - r0)] =
                        scalar::dot_f32(&row, &x[i * w.cols..(i + 1) * w.cols]);
                }
            }
            (r0, out)
        })
        .collect();
    for (r0, out) in blocks {
        let n = out.len() / t;
        for i in 0..t {
            y[i * w.rows + r0..i * w.rows + r0 + n].copy_from_slice(&out[i * n..(i + 1) * n]);
        }
    }
}

/// `y[rows] = W · x` for a weight stored `[rows, cols]`.
pub fn matvec_t(w: MatRef<'_>, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), w.cols);
    debug_assert_eq!(y.len(), w.rows);
    if w.rows * w.cols < PAR_THRESHOLD {
        for (r, o) in y.iter_mut().enumerate() {
            *o = scalar::dot(w.row(r), x);
        }
        return;
    }
    let chunk = (PAR_THRESHOLD / w.cols.max(1)).max(1);
    y.par_chunks_mut(chunk).enumerate().for_each(|(c, ys)| {
        for (j, o) in ys.iter_mut().enumerate() {
            *o = scalar::dot(w.row(c * chunk + j), x);
        }
    });
}

/// `y[T, cols] = x[T, rows] · W` for a weight stored `[rows = in, cols = out]` (fused expert tensors
/// of gpt-oss and Llama 4).
pub fn matmul_n(w: MatRef<'_>, x: &[f32], t: usize, y: &mut [f32]) {
    debug_assert_eq!(x.len(), t * w.rows);
    debug_assert_eq!(y.len(), t * w.cols);
    y.fill(0.0);
    for i in 0..t {
        let yi = &mut y[i * w.cols..(i + 1) * w.cols];
        for r in 0..w.rows {
            scalar::axpy(x[i * w.rows + r], w.row(r), yi);
        }
    }
}

/// In-place RMSNorm of each `w.len()`-sized row: `x = w ⊙ x / sqrt(mean(x²) + eps)`.
pub fn rms_norm(x: &mut [f32], w: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(w.len()) {
        let inv = rms_inv(row, eps);
        for (v, g) in row.iter_mut().zip(w) {
            *v = *v * inv * g;
        }
    }
}

/// In-place weightless RMS (L2) norm of each `dim`-sized row.
pub fn rms_norm_plain(x: &mut [f32], dim: usize, eps: f32) {
    for row in x.chunks_exact_mut(dim) {
        let inv = rms_inv(row, eps);
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

fn rms_inv(row: &[f32], eps: f32) -> f32 {
    let ms = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
    1.0 / (ms + eps).sqrt()
}

/// In-place LayerNorm of each row with affine weight and bias.
pub fn layer_norm(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let n = w.len() as f32;
    for row in x.chunks_exact_mut(w.len()) {
        let mean = row.iter().sum::<f32>() / n;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), bb) in row.iter_mut().zip(w).zip(b) {
            *v = (*v - mean) * inv * g + bb;
        }
    }
}

/// In-place softmax.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    x.iter_mut().for_each(|v| *v /= sum);
}

#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[inline]
pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// `a += b`.
pub fn add_assign(a: &mut [f32], b: &[f32]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    fn rand_vec(n: usize, seed: &mut u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    #[test]
    fn matmul_t_matches_naive_on_ragged_shapes() {
        let mut seed = 7;
        for &(rows, cols, t) in &[
            (1, 1, 1),
            (3, 7, 1),
            (17, 33, 5),
            (300, 260, 3),
            (65, 1031, 2),
        ] {
            let w32 = rand_vec(rows * cols, &mut seed);
            let wb: Vec<bf16> = w32.iter().map(|v| bf16::from_f32(*v)).collect();
            let x = rand_vec(t * cols, &mut seed);
            let mut y = vec![0.0; t * rows];
            matmul_t(MatRef::new(FloatData::BF16(&wb), rows, cols), &x, t, &mut y);
            for i in 0..t {
                for r in 0..rows {
                    let want: f64 = (0..cols)
                        .map(|c| wb[r * cols + c].to_f64() * x[i * cols + c] as f64)
                        .sum();
                    assert!(
                        (y[i * rows + r] as f64 - want).abs() < 1e-4,
                        "{rows}x{cols} t={t}"
                    );
                }
            }
        }
    }

    #[test]
    fn matmul_n_is_the_transpose_of_matmul_t() {
        let mut seed = 3;
        let (rows, cols, t) = (9, 13, 4);
        let w = rand_vec(rows * cols, &mut seed);
        let mut wt = vec![0.0; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                wt[c * rows + r] = w[r * cols + c];
            }
        }
        let x = rand_vec(t * rows, &mut seed);
        let (mut a, mut b) = (vec![0.0; t * cols], vec![0.0; t * cols]);
        matmul_n(MatRef::new(FloatData::F32(&w), rows, cols), &x, t, &mut a);
        matmul_t(MatRef::new(FloatData::F32(&wt), cols, rows), &x, t, &mut b);
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-5);
        }
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut x = vec![1.0, 3.0, 2.0, -100.0];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[1] > x[2] && x[2] > x[0] && x[3] < 1e-40);
    }
}
