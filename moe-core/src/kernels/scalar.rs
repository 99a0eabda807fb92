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
