//! NEON: the 32 codes of one block as signed table bytes (`u - offset`, as the exact kernel
//! decodes them), widening products with the activations (`smull`, exact in i16 since
//! `|w|, |q| <= 128`) accumulated pairwise into i32 (`sadalp`); a zero point adds
//! `-(z - offset)·Σq` to lane 0.

#![allow(clippy::needless_range_loop)] // accumulators are indexed by token

use std::arch::aarch64::*;
use std::ops::Range;

use super::{QuantAct, BLOCK};
use crate::kernels::packed::neon::codes16;
use crate::kernels::packed::PackedRef;
use crate::kernels::YPtr;

/// Tokens sharing one loaded block of codes.
const TB: usize = 4;

/// Row `r` for the `N` tokens from `i0`.
///
/// # Safety
/// As [`rows`]; tokens `i0..i0+N` exist.
#[inline(always)]
unsafe fn tile<const N: usize>(
    w: &PackedRef<'_>,
    lut: int8x16_t,
    r: usize,
    a: &QuantAct,
    i0: usize,
    y: YPtr,
    ldy: usize,
) {
    let nb = w.cols / BLOCK;
    let row = w.row(r).as_ptr(); // [row_bytes]
    let p = w.row_params(r, w.groups());
    // SAFETY: NEON is baseline on aarch64.
    let mut acc = [unsafe { vdupq_n_f32(0.0) }; N];
    for b in 0..nb {
        let (zero, ws) = w.params(p, b * BLOCK / w.group);
        let zero = zero as i32; // table domain: z - offset
                                // SAFETY: block b lies inside the row; activation rows hold `cols` bytes.
        unsafe {
            let c0 = codes16(w.kind, lut, row, b * BLOCK);
            let c1 = codes16(w.kind, lut, row, b * BLOCK + 16);
            for k in 0..N {
                let i = (i0 + k) * nb + b;
                let q = a.q.as_ptr().add((i0 + k) * w.cols + b * BLOCK);
                let (x0, x1) = (vld1q_s8(q), vld1q_s8(q.add(16)));
                let mut d = vsetq_lane_s32::<0>(-zero * a.sum[i], vdupq_n_s32(0));
                d = vpadalq_s16(d, vmull_s8(vget_low_s8(c0), vget_low_s8(x0)));
                d = vpadalq_s16(d, vmull_high_s8(c0, x0));
                d = vpadalq_s16(d, vmull_s8(vget_low_s8(c1), vget_low_s8(x1)));
                d = vpadalq_s16(d, vmull_high_s8(c1, x1));
                let s = vdupq_n_f32(ws * a.scale[i]);
                acc[k] = vfmaq_f32(acc[k], vcvtq_f32_s32(d), s);
            }
        }
    }
    for k in 0..N {
        // SAFETY: (i0 + k, r) is inside the caller's region; NEON is baseline.
        unsafe { *y.0.add((i0 + k) * ldy + r) = vaddvq_f32(acc[k]) };
    }
}

/// Rows `rows` of `y[i·ldy + r]` for every token `i < t` from quantized activations `a`.
///
/// # Safety
/// [`kernel_for`](super::kernel_for) chose this kernel for `w`; `a` quantizes `t` tokens of
/// `w.cols`; `y` is valid for writes at those elements and no other thread accesses them meanwhile.
pub(in crate::kernels::packed) unsafe fn rows(
    w: &PackedRef<'_>,
    rows: Range<usize>,
    a: &QuantAct,
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    // SAFETY: the table has 16 bytes.
    let lut = unsafe { vld1q_s8(w.kind.table().as_ptr()) };
    for r in rows {
        let mut i0 = 0;
        while i0 < t {
            let n = (t - i0).min(TB);
            // SAFETY: tokens i0..i0+n exist; the rest is the caller's guarantee.
            unsafe {
                match n {
                    1 => tile::<1>(w, lut, r, a, i0, y, ldy),
                    2 => tile::<2>(w, lut, r, a, i0, y, ldy),
                    3 => tile::<3>(w, lut, r, a, i0, y, ldy),
                    _ => tile::<4>(w, lut, r, a, i0, y, ldy),
                }
            }
            i0 += n;
        }
    }
}
