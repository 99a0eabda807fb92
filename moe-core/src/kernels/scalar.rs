//! Plain scalar kernels: the reference every faster path is tested against.

use super::FloatData;

/// `Σ_i w[i]·x[i]` with the weight widened to f32 (8 partial sums, so the compiler can vectorise).
pub(crate) fn dot(w: FloatData<'_>, x: &[f32]) -> f32 {
    debug_assert_eq!(w.len(), x.len());
    match w {
        FloatData::F32(w) => dot_by(w, x, |v| *v),
        FloatData::F16(w) => dot_by(w, x, |v| v.to_f32()),
        FloatData::BF16(w) => dot_by(w, x, |v| v.to_f32()),
    }
}

#[inline(always)]
fn dot_by<T>(w: &[T], x: &[f32], widen: impl Fn(&T) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut wc = w.chunks_exact(8);
    let mut xc = x.chunks_exact(8);
    for (wb, xb) in (&mut wc).zip(&mut xc) {
        for l in 0..8 {
            acc[l] += widen(&wb[l]) * xb[l];
        }
    }
    let mut tail = 0.0;
    for (a, b) in wc.remainder().iter().zip(xc.remainder()) {
        tail += widen(a) * b;
    }
    acc.iter().sum::<f32>() + tail
}

/// `y += a·w` with the weight widened to f32.
pub(crate) fn axpy(a: f32, w: FloatData<'_>, y: &mut [f32]) {
    debug_assert_eq!(w.len(), y.len());
    match w {
        FloatData::F32(w) => y.iter_mut().zip(w).for_each(|(o, v)| *o += a * v),
        FloatData::F16(w) => y.iter_mut().zip(w).for_each(|(o, v)| *o += a * v.to_f32()),
        FloatData::BF16(w) => y.iter_mut().zip(w).for_each(|(o, v)| *o += a * v.to_f32()),
    }
}

/// f32 dot product.
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    dot(FloatData::F32(a), b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    /// Values exact in f16 and bf16 (multiples of 1/8 in [-1, 1)), so every dtype computes the same
    /// products.
    fn exact(n: usize, k: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * k + 3) % 16) as f32 / 8.0 - 1.0)
            .collect()
    }

    #[test]
    fn dot_and_axpy_match_the_naive_loop_for_every_dtype_and_ragged_lengths() {
        for n in [0, 1, 7, 8, 9, 16, 23, 33] {
            let w = exact(n, 5);
            let x = exact(n, 3);
            let w16: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
            let wb: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
            let naive: f32 = w.iter().zip(&x).map(|(a, b)| a * b).sum();
            for data in [
                FloatData::F32(&w),
                FloatData::F16(&w16),
                FloatData::BF16(&wb),
            ] {
                // Products of multiples of 1/8 and their sums are exact in f32: any order agrees.
                assert_eq!(dot(data, &x), naive, "dot, n = {n}");
                let mut y = x.clone();
                axpy(0.5, data, &mut y);
                let want: Vec<f32> = x.iter().zip(&w).map(|(y, w)| y + 0.5 * w).collect();
                assert_eq!(y, want, "axpy, n = {n}");
            }
            assert_eq!(dot_f32(&w, &x), naive);
        }
    }

    #[test]
    fn scalar_products_fill_every_output_serially_and_split_over_a_pool() {
        use crate::kernels::{build_pool, matmul_t_with, Isa, MatRef, Precision};
        // The second shape has 2^16 multiply-adds or more: its rows are split into tasks that write
        // disjoint parts of `y` through a raw pointer on two workers (what Miri checks here).
        let pool = build_pool(Some(2), Precision::F32).unwrap();
        for (rows, cols, t) in [(5, 7, 3), (40, 64, 26)] {
            let w = exact(rows * cols, 5);
            let x = exact(t * cols, 3);
            let mut y = vec![f32::NAN; t * rows];
            let m = MatRef::new(FloatData::F32(&w), rows, cols);
            pool.install(|| matmul_t_with(Isa::Scalar, Precision::F32, m, &x, t, &mut y));
            for i in 0..t {
                for r in 0..rows {
                    let want = dot_f32(&w[r * cols..(r + 1) * cols], &x[i * cols..(i + 1) * cols]);
                    assert_eq!(y[i * rows + r], want, "{rows}x{cols} t={t} ({i}, {r})");
                }
            }
        }
    }

    #[test]
    fn dot_propagates_nan_and_infinity() {
        let mut x = vec![1.0f32; 11];
        let w = vec![1.0f32; 11];
        x[9] = f32::INFINITY;
        assert_eq!(dot_f32(&w, &x), f32::INFINITY);
        x[2] = f32::NAN;
        assert!(dot_f32(&w, &x).is_nan());
    }
}
