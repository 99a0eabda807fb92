//! aarch64 NEON kernels: f32 and bf16 weights widened to f32, f32 activations, 4-lane FMA in tiles of
//! 4 weight rows × up to 2 tokens. (f16 weights use the scalar path: the f16 conversion intrinsics
//! are not stable in Rust.) Same contract as the x86 `rows_*` kernels.

#![allow(clippy::needless_range_loop, clippy::too_many_arguments)] // tile loops index [row][token]

use std::arch::aarch64::*;
use std::ops::Range;

use half::bf16;

use super::YPtr;

const R: usize = 4;

trait Wide128: Copy {
    unsafe fn load4(p: *const Self) -> float32x4_t;
    fn widen(self) -> f32;
}

impl Wide128 for f32 {
    #[inline(always)]
    unsafe fn load4(p: *const Self) -> float32x4_t {
        // SAFETY: 4 readable floats (caller); NEON is baseline on aarch64.
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl Wide128 for bf16 {
    #[inline(always)]
    unsafe fn load4(p: *const Self) -> float32x4_t {
        // SAFETY: 4 readable bf16 (caller); widening is a 16-bit left shift into 32-bit lanes.
        unsafe { vreinterpretq_f32_u32(vshll_n_u16::<16>(vld1_u16(p as *const u16))) }
    }
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

#[inline(always)]
unsafe fn tile<T: Wide128, const N: usize>(
    w: [*const T; R],
    x: *const f32,
    cols: usize,
) -> [[f32; N]; R] {
    let mut out = [[0.0f32; N]; R];
    // SAFETY: (whole block) vector loads only while k + 4 <= cols; the tail is scalar.
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); N]; R];
        let mut k = 0;
        while k + 4 <= cols {
            let wv: [float32x4_t; R] = std::array::from_fn(|j| T::load4(w[j].add(k)));
            for n in 0..N {
                let xv = vld1q_f32(x.add(n * cols + k));
                for j in 0..R {
                    acc[j][n] = vfmaq_f32(acc[j][n], wv[j], xv);
                }
            }
            k += 4;
        }
        for kk in k..cols {
            for j in 0..R {
                let wv = (*w[j].add(kk)).widen();
                for n in 0..N {
                    out[j][n] += wv * *x.add(n * cols + kk);
                }
            }
        }
        for j in 0..R {
            for n in 0..N {
                out[j][n] += vaddvq_f32(acc[j][n]);
            }
        }
    }
    out
}

unsafe fn rows_t<T: Wide128>(
    w: &[T],
    cols: usize,
    rows: Range<usize>,
    x: &[f32],
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    if rows.is_empty() || t == 0 {
        return;
    }
    let end = rows.end;
    for r in rows.step_by(R) {
        let rr = [
            r,
            (r + 1).min(end - 1),
            (r + 2).min(end - 1),
            (r + 3).min(end - 1),
        ];
        // SAFETY: each tile row is < end, so `cols` elements are readable from it.
        let w4 = rr.map(|q| unsafe { w.as_ptr().add(q * cols) });
        let mut i = 0;
        while i < t {
            let n = (t - i).min(2);
            // SAFETY: tokens i..i+n exist.
            let xp = unsafe { x.as_ptr().add(i * cols) };
            let store = |res: &[[f32; 2]; R], n: usize| {
                for (j, row) in res.iter().enumerate() {
                    if r + j < end {
                        for (m, v) in row.iter().take(n).enumerate() {
                            // SAFETY: (i + m, r + j) is inside the caller's region.
                            unsafe { *y.0.add((i + m) * ldy + r + j) = *v };
                        }
                    }
                }
            };
            if n == 2 {
                // SAFETY: two tokens from `i` exist; the tile's rows hold `cols` values.
                let res = unsafe { tile::<T, 2>(w4, xp, cols) };
                store(&res, 2);
            } else {
                // SAFETY: token `i` exists; the tile's rows hold `cols` values.
                let one = unsafe { tile::<T, 1>(w4, xp, cols) };
                let res: [[f32; 2]; R] = std::array::from_fn(|j| [one[j][0], 0.0]);
                store(&res, 1);
            }
            i += n;
        }
    }
}

/// NEON rows kernel for f32 weights.
///
/// # Safety
/// `w.len() >= rows.end·cols`, `x.len() >= t·cols`, `y` valid and exclusively ours at
/// `i·ldy + r` for `i < t`, `r ∈ rows`.
pub(super) unsafe fn rows_f32(
    w: &[f32],
    cols: usize,
    rows: Range<usize>,
    x: &[f32],
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    // SAFETY: same contract.
    unsafe { rows_t(w, cols, rows, x, t, y, ldy) }
}

/// NEON rows kernel for bf16 weights. Same contract as [`rows_f32`].
pub(super) unsafe fn rows_bf16(
    w: &[bf16],
    cols: usize,
    rows: Range<usize>,
    x: &[f32],
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    // SAFETY: same contract.
    unsafe { rows_t(w, cols, rows, x, t, y, ldy) }
}

/// `Σ a[i]·b[i]` (NEON).
pub(super) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let mut k = 0;
    let mut tail = 0.0;
    // SAFETY: loads below `n`.
    unsafe {
        let mut acc = vdupq_n_f32(0.0);
        while k + 4 <= n {
            acc = vfmaq_f32(
                acc,
                vld1q_f32(a.as_ptr().add(k)),
                vld1q_f32(b.as_ptr().add(k)),
            );
            k += 4;
        }
        for kk in k..n {
            tail += a[kk] * b[kk];
        }
        vaddvq_f32(acc) + tail
    }
}

/// `y += a·x` (NEON).
pub(super) fn axpy_f32(a: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let mut k = 0;
    // SAFETY: accesses below `n`.
    unsafe {
        let av = vdupq_n_f32(a);
        while k + 4 <= n {
            let p = y.as_mut_ptr().add(k);
            vst1q_f32(p, vfmaq_f32(vld1q_f32(p), av, vld1q_f32(x.as_ptr().add(k))));
            k += 4;
        }
    }
    for kk in k..n {
        y[kk] += a * x[kk];
    }
}
