//! AVX512-VNNI: 32 codes of one block as unsigned bytes in a ymm, one `vpdpbusd` per token.

#![allow(clippy::needless_range_loop)] // accumulators are indexed by token

use std::arch::x86_64::*;
use std::ops::Range;

use super::{unsigned_params, QuantAct, BLOCK};
use crate::kernels::packed::{CodeKind, PackedRef};
use crate::kernels::YPtr;

/// Tokens sharing one loaded block of codes.
const TB: usize = 4;

/// Whether this CPU has what the kernel needs.
pub(in crate::kernels::packed) fn supported() -> bool {
    crate::kernels::Isa::Avx512.supported() && is_x86_feature_detected!("avx512vnni")
}

/// The 32 codes of block `b` as unsigned bytes, in element order.
///
/// # Safety
/// The row holds the block's bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
#[inline]
unsafe fn codes32(kind: CodeKind, row: *const u8, b: usize) -> __m256i {
    // SAFETY: reads the block's 16 (int4) or 32 (int8) bytes, inside the row.
    unsafe {
        if kind == CodeKind::Int4 {
            let v = _mm_loadu_si128(row.add(b * BLOCK / 2) as *const __m128i);
            let m = _mm_set1_epi8(0x0f);
            let lo = _mm_and_si128(v, m);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(v), m);
            _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi))
        } else {
            _mm256_loadu_si256(row.add(b * BLOCK) as *const __m256i)
        }
    }
}

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
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn tile<const N: usize>(
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
    let mut acc = [_mm256_setzero_ps(); N];
    for b in 0..nb {
        let (z, ws) = unsigned_params(w, p, b * BLOCK / w.group);
        // SAFETY: block b lies inside the row; activation rows hold `cols` bytes.
        unsafe {
            let wv = codes32(w.kind, row, b);
            for k in 0..N {
                let i = (i0 + k) * nb + b;
                // Lane 0 starts at -z·Σq, so the lanes sum to Σ (u - z)·q exactly.
                let init = _mm256_set_epi32(0, 0, 0, 0, 0, 0, 0, -z * a.sum[i]);
                let xv = _mm256_loadu_si256(
                    a.q.as_ptr().add((i0 + k) * w.cols + b * BLOCK) as *const __m256i
                );
                let d = _mm256_dpbusd_epi32(init, wv, xv);
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

/// Rows `rows` of `y[i·ldy + r]` for every token `i < t` from quantized activations `a`.
///
/// # Safety
/// [`supported`] is true; `w` is [`usable`](super::usable); `a` quantizes `t` tokens of `w.cols`;
/// `y` is valid for writes at those elements and no other thread accesses them meanwhile.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
pub(in crate::kernels::packed) unsafe fn rows(
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
                    1 => tile::<1>(w, r, a, i0, y, ldy),
                    2 => tile::<2>(w, r, a, i0, y, ldy),
                    3 => tile::<3>(w, r, a, i0, y, ldy),
                    _ => tile::<4>(w, r, a, i0, y, ldy),
                }
            }
            i0 += n;
        }
    }
}
