//! AVX2: 32 codes of one block as bytes in a ymm; `vpmaddubsw` (unsigned codes × signed
//! activations, pairs summed to i16) then `vpmaddwd` by ones (to i32), one pass per token.
//! int4: the stored nibbles (0..15) are the unsigned operand and `-z·Σq` is added to lane 0;
//! symmetric int8: `|w|` is the unsigned operand and the activations take `w`'s sign.

#![allow(clippy::needless_range_loop)] // accumulators are indexed by token

use std::arch::x86_64::*;
use std::ops::Range;

use super::{unsigned_params, QuantAct, BLOCK};
use crate::kernels::packed::{CodeKind, PackedRef};
use crate::kernels::YPtr;

/// Tokens sharing one loaded block of codes.
const TB: usize = 4;

#[target_feature(enable = "avx2")]
#[inline]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
}

/// Row `r` for the `N` tokens from `i0`.
///
/// # Safety
/// As [`rows`]; tokens `i0..i0+N` exist.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const INT4: bool, const N: usize>(
    w: &PackedRef<'_>,
    r: usize,
    a: &QuantAct,
    i0: usize,
    y: YPtr,
    ldy: usize,
) {
    let nb = w.cols / BLOCK;
    let row = w.row(r).as_ptr(); // [row_bytes]
    let p = w.row_params(r, w.groups());
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); N];
    for b in 0..nb {
        let (z, ws) = unsigned_params(w, p, b * BLOCK / w.group);
        // SAFETY: block b lies inside the row; activation rows hold `cols` bytes.
        unsafe {
            // Unsigned operand: the nibbles (int4), or |u - 128| (symmetric int8).
            let (wv, signs) = if INT4 {
                let v = _mm_loadu_si128(row.add(b * BLOCK / 2) as *const __m128i);
                let m = _mm_set1_epi8(0x0f);
                let lo = _mm_and_si128(v, m);
                let hi = _mm_and_si128(_mm_srli_epi16::<4>(v), m);
                let u = _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi));
                (u, _mm256_setzero_si256())
            } else {
                let u = _mm256_loadu_si256(row.add(b * BLOCK) as *const __m256i);
                let s = _mm256_xor_si256(u, _mm256_set1_epi8(-128)); // u - 128 as i8
                (_mm256_abs_epi8(s), s)
            };
            for k in 0..N {
                let i = (i0 + k) * nb + b;
                let mut xv = _mm256_loadu_si256(
                    a.q.as_ptr().add((i0 + k) * w.cols + b * BLOCK) as *const __m256i
                );
                if !INT4 {
                    xv = _mm256_sign_epi8(xv, signs);
                }
                let d = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xv), ones);
                let d = if INT4 {
                    // Lane 0 gets -z·Σq, so the lanes sum to Σ (u - z)·q exactly.
                    _mm256_add_epi32(d, _mm256_set_epi32(0, 0, 0, 0, 0, 0, 0, -z * a.sum[i]))
                } else {
                    d
                };
                let s = _mm256_set1_ps(ws * a.scale[i]);
                acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), s, acc[k]);
            }
        }
    }
    for k in 0..N {
        // SAFETY: (i0 + k, r) is inside the caller's region.
        unsafe { *y.0.add((i0 + k) * ldy + r) = hsum(acc[k]) };
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn rows_k<const INT4: bool>(
    w: &PackedRef<'_>,
    rows: Range<usize>,
    a: &QuantAct,
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    for r in rows {
        let mut i0 = 0;
        while i0 < t {
            let n = (t - i0).min(TB);
            // SAFETY: tokens i0..i0+n exist; the rest is the caller's guarantee.
            unsafe {
                match n {
                    1 => tile::<INT4, 1>(w, r, a, i0, y, ldy),
                    2 => tile::<INT4, 2>(w, r, a, i0, y, ldy),
                    3 => tile::<INT4, 3>(w, r, a, i0, y, ldy),
                    _ => tile::<INT4, 4>(w, r, a, i0, y, ldy),
                }
            }
            i0 += n;
        }
    }
}

/// Rows `rows` of `y[i·ldy + r]` for every token `i < t` from quantized activations `a`.
///
/// # Safety
/// AVX2 and FMA present; [`kernel_for`](super::kernel_for) chose this kernel for `w`; `a`
/// quantizes `t` tokens of `w.cols`; `y` is valid for writes at those elements and no other thread
/// accesses them meanwhile.
pub(in crate::kernels::packed) unsafe fn rows(
    w: &PackedRef<'_>,
    rows: Range<usize>,
    a: &QuantAct,
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    // SAFETY: the caller's guarantees.
    unsafe {
        if w.kind == CodeKind::Int4 {
            rows_k::<true>(w, rows, a, t, y, ldy)
        } else {
            rows_k::<false>(w, rows, a, t, y, ldy)
        }
    }
}
