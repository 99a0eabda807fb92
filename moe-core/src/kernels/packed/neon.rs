//! aarch64 NEON packed kernel: 16 codes at a time become 16 signed bytes (nibbles through a 16-entry
//! byte table by `tbl`, int8 by flipping the sign bit), widened to four f32x4, minus the group's zero,
//! times its scale, one FMA per token and quarter. Same contract as the x86 kernels.

#![allow(clippy::needless_range_loop, clippy::too_many_arguments)] // accumulators are indexed by token

use std::arch::aarch64::*;
use std::ops::Range;

use super::{CodeKind, PackedRef, E4M3_RESCALE};
use crate::kernels::YPtr;

/// Tokens that share one decoded vector.
const TB: usize = 4;

/// The 16 codes from element `j` (even for nibble formats) as signed table bytes.
///
/// # Safety
/// `row` must be readable at the bytes holding elements `j..j+16`.
#[inline(always)]
pub(super) unsafe fn codes16(
    kind: CodeKind,
    lut: int8x16_t,
    row: *const u8,
    j: usize,
) -> int8x16_t {
    // SAFETY: the loads read exactly the bytes the caller guarantees readable; NEON is baseline.
    unsafe {
        match kind {
            CodeKind::Int8 | CodeKind::E4M3 => {
                vreinterpretq_s8_u8(veorq_u8(vld1q_u8(row.add(j)), vdupq_n_u8(0x80)))
            }
            CodeKind::Mxfp4 | CodeKind::Int4 => {
                let b = vld1_u8(row.add(j / 2));
                let lo = vand_u8(b, vdup_n_u8(0x0f));
                let hi = vshr_n_u8::<4>(b);
                let idx = vcombine_u8(vzip1_u8(lo, hi), vzip2_u8(lo, hi));
                vqtbl1q_s8(lut, idx)
            }
        }
    }
}

/// 16 values from element `j` as four f32x4, before zero and scale (e4m3: magnitude bits at 20..27,
/// sign at 31, × 2^120).
///
/// # Safety
/// As [`codes16`].
#[inline(always)]
unsafe fn values16(kind: CodeKind, lut: int8x16_t, row: *const u8, j: usize) -> [float32x4_t; 4] {
    // SAFETY: the caller's guarantee on `row`; NEON is baseline.
    unsafe {
        if kind == CodeKind::E4M3 {
            let b = vld1q_u8(row.add(j));
            let (l, h) = (vmovl_u8(vget_low_u8(b)), vmovl_high_u8(b));
            [
                vmovl_u16(vget_low_u16(l)),
                vmovl_high_u16(l),
                vmovl_u16(vget_low_u16(h)),
                vmovl_high_u16(h),
            ]
            .map(|v| {
                let mag = vshlq_n_u32::<20>(vandq_u32(v, vdupq_n_u32(0x7f)));
                let sign = vshlq_n_u32::<24>(vandq_u32(v, vdupq_n_u32(0x80)));
                vmulq_f32(
                    vreinterpretq_f32_u32(vorrq_u32(mag, sign)),
                    vdupq_n_f32(E4M3_RESCALE),
                )
            })
        } else {
            let c = codes16(kind, lut, row, j);
            let l = vmovl_s8(vget_low_s8(c));
            let h = vmovl_high_s8(c);
            [
                vmovl_s16(vget_low_s16(l)),
                vmovl_high_s16(l),
                vmovl_s16(vget_low_s16(h)),
                vmovl_high_s16(h),
            ]
            .map(|v| vcvtq_f32_s32(v))
        }
    }
}

/// Row `r` for the `N` tokens from `i0` (a compile-time tile, so the accumulators stay in registers).
///
/// # Safety
/// The module's contract; tokens `i0..i0+N` exist.
#[inline(always)]
unsafe fn tile<const N: usize>(
    w: &PackedRef<'_>,
    lut: int8x16_t,
    r: usize,
    x: &[f32],
    i0: usize,
    y: YPtr,
    ldy: usize,
) {
    let (cols, groups) = (w.cols, w.groups());
    let row = w.row(r); // [row_bytes]
    let rp = w.row_params(r, groups);
    let xp = x.as_ptr();
    // SAFETY: NEON is baseline on aarch64.
    let mut acc = [unsafe { vdupq_n_f32(0.0) }; N];
    let mut tail = [0.0f32; N];
    for g in 0..groups {
        let (zero, scale) = w.params(rp, g);
        let end = ((g + 1) * w.group).min(cols);
        let mut j = g * w.group;
        if w.kind.bits() == 8 || j.is_multiple_of(2) {
            while j + 16 <= end {
                // SAFETY: elements j..j+16 < cols lie inside the row; x rows hold `cols`.
                unsafe {
                    let (zv, sv) = (vdupq_n_f32(zero), vdupq_n_f32(scale));
                    let q = values16(w.kind, lut, row.as_ptr(), j)
                        .map(|v| vmulq_f32(vsubq_f32(v, zv), sv));
                    for k in 0..N {
                        let p = xp.add((i0 + k) * cols + j);
                        for (n, v) in q.iter().enumerate() {
                            acc[k] = vfmaq_f32(acc[k], *v, vld1q_f32(p.add(4 * n)));
                        }
                    }
                }
                j += 16;
            }
        }
        for j in j..end {
            let v = (w.code(row, j) - zero) * scale;
            for k in 0..N {
                tail[k] += v * x[(i0 + k) * cols + j];
            }
        }
    }
    for k in 0..N {
        // SAFETY: (i0 + k, r) is inside the caller's region; NEON is baseline.
        unsafe { *y.0.add((i0 + k) * ldy + r) = vaddvq_f32(acc[k]) + tail[k] };
    }
}

/// # Safety
/// The module's contract on `x` and `y`.
pub(super) unsafe fn rows(
    w: &PackedRef<'_>,
    rows: Range<usize>,
    x: &[f32],
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
                    1 => tile::<1>(w, lut, r, x, i0, y, ldy),
                    2 => tile::<2>(w, lut, r, x, i0, y, ldy),
                    3 => tile::<3>(w, lut, r, x, i0, y, ldy),
                    _ => tile::<4>(w, lut, r, x, i0, y, ldy),
                }
            }
            i0 += n;
        }
    }
}
