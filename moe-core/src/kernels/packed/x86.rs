//! x86-64 packed kernels: 16 codes at a time become 16 signed bytes (nibbles through a 16-entry byte
//! table by `pshufb`, int8 by flipping the sign bit) and then f32 lanes — or, for e4m3, f32 lanes
//! built from the bits directly — minus the group's zero, times its scale, and one FMA per token
//! against the activations. A tile of `N` tokens (a compile-time size, so its accumulators stay in
//! registers) shares each decoded vector. Columns that do not fill 16 lanes inside a group go through
//! the scalar decode.
//!
//! The functions require CPU features; `mod.rs` calls them only at a level `Isa::supported` confirmed,
//! with `x` of `t·cols` values and `y` covering `(t-1)·ldy + rows.end`.

#![allow(clippy::needless_range_loop, clippy::too_many_arguments)] // accumulators are indexed by token

use std::arch::x86_64::*;
use std::ops::Range;

use super::{CodeKind, PackedRef, E4M3_RESCALE};
use crate::kernels::YPtr;

/// Decode families, as const parameters (one monomorphic kernel each).
const NIBBLE: u8 = 0;
const BYTE: u8 = 1;
const FP8: u8 = 2;

fn family(kind: CodeKind) -> u8 {
    match kind {
        CodeKind::Mxfp4 | CodeKind::Int4 => NIBBLE,
        CodeKind::Int8 => BYTE,
        CodeKind::E4M3 => FP8,
    }
}

/// Whether a group starting at element `j` may use the 16-lane decode (nibble loads need an even start).
#[inline(always)]
fn vector_start_ok<const K: u8>(j: usize) -> bool {
    K != NIBBLE || j.is_multiple_of(2)
}

/// The 16 codes from element `j` of a row as signed table bytes (nibble and byte families).
///
/// # Safety
/// `row` must be readable at the bytes holding elements `j..j+16` (8 bytes from `j/2` for nibbles).
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn codes16<const K: u8>(lut: __m128i, row: *const u8, j: usize) -> __m128i {
    // SAFETY: the loads read exactly the bytes the caller guarantees readable.
    unsafe {
        if K == NIBBLE {
            let b = _mm_loadl_epi64(row.add(j / 2) as *const __m128i);
            let m = _mm_set1_epi8(0x0f);
            let lo = _mm_and_si128(b, m);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(b), m);
            // Bytes lo0, hi0, lo1, hi1, ...: elements j..j+16 in order.
            _mm_shuffle_epi8(lut, _mm_unpacklo_epi8(lo, hi))
        } else {
            _mm_xor_si128(
                _mm_loadu_si128(row.add(j) as *const __m128i),
                _mm_set1_epi8(-128),
            )
        }
    }
}

/// 16 values from element `j` (table values, or e4m3 values: magnitude bits at 20..27, sign at 31,
/// × 2^120), before zero and scale.
///
/// # Safety
/// As [`codes16`] (16 bytes from `j` for e4m3).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
#[inline]
unsafe fn values16_512<const K: u8>(lut: __m128i, row: *const u8, j: usize) -> __m512 {
    // SAFETY: the caller's guarantee on `row`.
    unsafe {
        if K == FP8 {
            let b = _mm512_cvtepu8_epi32(_mm_loadu_si128(row.add(j) as *const __m128i));
            let mag = _mm512_slli_epi32::<20>(_mm512_and_si512(b, _mm512_set1_epi32(0x7f)));
            let sign = _mm512_slli_epi32::<24>(_mm512_and_si512(b, _mm512_set1_epi32(0x80)));
            _mm512_mul_ps(
                _mm512_castsi512_ps(_mm512_or_si512(mag, sign)),
                _mm512_set1_ps(E4M3_RESCALE),
            )
        } else {
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(codes16::<K>(lut, row, j)))
        }
    }
}

/// 8 e4m3 bytes from `row + j` as f32 (see [`values16_512`]).
///
/// # Safety
/// `row` readable at `j..j+8`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn e4m3_8(row: *const u8, j: usize) -> __m256 {
    // SAFETY: reads the 8 bytes the caller guarantees readable.
    let b = unsafe { _mm256_cvtepu8_epi32(_mm_loadl_epi64(row.add(j) as *const __m128i)) };
    let mag = _mm256_slli_epi32::<20>(_mm256_and_si256(b, _mm256_set1_epi32(0x7f)));
    let sign = _mm256_slli_epi32::<24>(_mm256_and_si256(b, _mm256_set1_epi32(0x80)));
    _mm256_mul_ps(
        _mm256_castsi256_ps(_mm256_or_si256(mag, sign)),
        _mm256_set1_ps(E4M3_RESCALE),
    )
}

/// 16 values from element `j` as two 8-lane halves (AVX2).
///
/// # Safety
/// As [`values16_512`].
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn values16_256<const K: u8>(lut: __m128i, row: *const u8, j: usize) -> (__m256, __m256) {
    // SAFETY: the caller's guarantee on `row`.
    unsafe {
        if K == FP8 {
            (e4m3_8(row, j), e4m3_8(row, j + 8))
        } else {
            let c = codes16::<K>(lut, row, j);
            (
                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c)),
                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(c))),
            )
        }
    }
}

#[target_feature(enable = "avx2,fma")]
#[inline]
fn hsum256(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
    _mm_cvtss_f32(s)
}

/// Row `r` for the `N` tokens from `i0`, AVX-512.
///
/// # Safety
/// The module's contract; tokens `i0..i0+N` exist.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn tile_512<const K: u8, const N: usize>(
    w: &PackedRef<'_>,
    lut: __m128i,
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
    let mut acc = [_mm512_setzero_ps(); N];
    let mut tail = [0.0f32; N];
    for g in 0..groups {
        let (zero, scale) = w.params(rp, g);
        let (zv, sv) = (_mm512_set1_ps(zero), _mm512_set1_ps(scale));
        let end = ((g + 1) * w.group).min(cols);
        let mut j = g * w.group;
        if vector_start_ok::<K>(j) {
            while j + 16 <= end {
                // SAFETY: elements j..j+16 < cols lie inside the row; x rows hold `cols`.
                unsafe {
                    let v = values16_512::<K>(lut, row.as_ptr(), j);
                    let v = _mm512_mul_ps(_mm512_sub_ps(v, zv), sv);
                    for k in 0..N {
                        let xv = _mm512_loadu_ps(xp.add((i0 + k) * cols + j));
                        acc[k] = _mm512_fmadd_ps(v, xv, acc[k]);
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
        // SAFETY: (i0 + k, r) is inside the caller's region.
        unsafe { *y.0.add((i0 + k) * ldy + r) = _mm512_reduce_add_ps(acc[k]) + tail[k] };
    }
}

/// Row `r` against one token (decode), for layouts whose groups are whole multiples of 32 with no
/// zero points: per group two partial sums of `code·x`, then one FMA by the group's scale into one of
/// two accumulators (even and odd groups), so no FMA waits on the one before (the tile's single
/// accumulator made decode latency-bound). Same products as [`tile_512`], summed in another order.
///
/// # Safety
/// The module's contract; `x` holds `cols` values; `w.group % 32 == 0`, `w.cols % w.group == 0`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn dot_512<const K: u8>(w: &PackedRef<'_>, lut: __m128i, r: usize, x: &[f32]) -> f32 {
    let groups = w.groups();
    let row = w.row(r).as_ptr(); // [row_bytes]
    let rp = w.row_params(r, groups);
    let xp = x.as_ptr();
    let gs = w.group;
    let mut acc = [_mm512_setzero_ps(); 2];
    for g in 0..groups {
        let (_, scale) = w.params(rp, g);
        let j0 = g * gs;
        let (mut p0, mut p1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut j = j0;
        while j < j0 + gs {
            // SAFETY: elements j..j+32 lie inside the row (whole groups); x holds `cols`.
            unsafe {
                let v0 = values16_512::<K>(lut, row, j);
                let v1 = values16_512::<K>(lut, row, j + 16);
                p0 = _mm512_fmadd_ps(v0, _mm512_loadu_ps(xp.add(j)), p0);
                p1 = _mm512_fmadd_ps(v1, _mm512_loadu_ps(xp.add(j + 16)), p1);
            }
            j += 32;
        }
        acc[g & 1] = _mm512_fmadd_ps(_mm512_add_ps(p0, p1), _mm512_set1_ps(scale), acc[g & 1]);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]))
}

/// Row `r` for the `N` tokens from `i0`, AVX2.
///
/// # Safety
/// The module's contract; tokens `i0..i0+N` exist.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_256<const K: u8, const N: usize>(
    w: &PackedRef<'_>,
    lut: __m128i,
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
    let mut acc = [_mm256_setzero_ps(); N];
    let mut tail = [0.0f32; N];
    for g in 0..groups {
        let (zero, scale) = w.params(rp, g);
        let (zv, sv) = (_mm256_set1_ps(zero), _mm256_set1_ps(scale));
        let end = ((g + 1) * w.group).min(cols);
        let mut j = g * w.group;
        if vector_start_ok::<K>(j) {
            while j + 16 <= end {
                // SAFETY: elements j..j+16 < cols lie inside the row; x rows hold `cols`.
                unsafe {
                    let (lo, hi) = values16_256::<K>(lut, row.as_ptr(), j);
                    let lo = _mm256_mul_ps(_mm256_sub_ps(lo, zv), sv);
                    let hi = _mm256_mul_ps(_mm256_sub_ps(hi, zv), sv);
                    for k in 0..N {
                        let p = xp.add((i0 + k) * cols + j);
                        acc[k] = _mm256_fmadd_ps(lo, _mm256_loadu_ps(p), acc[k]);
                        acc[k] = _mm256_fmadd_ps(hi, _mm256_loadu_ps(p.add(8)), acc[k]);
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
        // SAFETY: (i0 + k, r) is inside the caller's region.
        unsafe { *y.0.add((i0 + k) * ldy + r) = hsum256(acc[k]) + tail[k] };
    }
}

/// Every row of `rows` for every token, in tiles of up to 8 tokens.
///
/// # Safety
/// AVX-512 F/BW/VL, AVX2 and FMA present; the module's contract on `x` and `y`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn rows_512_k<const K: u8>(
    w: &PackedRef<'_>,
    rows: Range<usize>,
    x: &[f32],
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    // SAFETY: the table has 16 bytes.
    let lut = unsafe { _mm_loadu_si128(w.kind.table().as_ptr() as *const __m128i) };
    if t == 1 && w.zeros.is_none() && w.group.is_multiple_of(32) && w.cols.is_multiple_of(w.group) {
        for r in rows {
            // SAFETY: the layout condition above; (0, r) is inside the caller's region.
            unsafe { *y.0.add(r) = dot_512::<K>(w, lut, r, x) };
        }
        let _ = ldy;
        return;
    }
    for r in rows {
        let mut i0 = 0;
        while i0 < t {
            let n = (t - i0).min(8);
            // SAFETY: tokens i0..i0+n exist; the rest is the caller's guarantee.
            unsafe {
                match n {
                    1 => tile_512::<K, 1>(w, lut, r, x, i0, y, ldy),
                    2 => tile_512::<K, 2>(w, lut, r, x, i0, y, ldy),
                    3 => tile_512::<K, 3>(w, lut, r, x, i0, y, ldy),
                    4 => tile_512::<K, 4>(w, lut, r, x, i0, y, ldy),
                    5 => tile_512::<K, 5>(w, lut, r, x, i0, y, ldy),
                    6 => tile_512::<K, 6>(w, lut, r, x, i0, y, ldy),
                    7 => tile_512::<K, 7>(w, lut, r, x, i0, y, ldy),
                    _ => tile_512::<K, 8>(w, lut, r, x, i0, y, ldy),
                }
            }
            i0 += n;
        }
    }
}

/// Every row of `rows` for every token, in tiles of up to 4 tokens.
///
/// # Safety
/// AVX2 and FMA present; the module's contract on `x` and `y`.
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_256_k<const K: u8>(
    w: &PackedRef<'_>,
    rows: Range<usize>,
    x: &[f32],
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    // SAFETY: the table has 16 bytes.
    let lut = unsafe { _mm_loadu_si128(w.kind.table().as_ptr() as *const __m128i) };
    for r in rows {
        let mut i0 = 0;
        while i0 < t {
            let n = (t - i0).min(4);
            // SAFETY: tokens i0..i0+n exist; the rest is the caller's guarantee.
            unsafe {
                match n {
                    1 => tile_256::<K, 1>(w, lut, r, x, i0, y, ldy),
                    2 => tile_256::<K, 2>(w, lut, r, x, i0, y, ldy),
                    3 => tile_256::<K, 3>(w, lut, r, x, i0, y, ldy),
                    _ => tile_256::<K, 4>(w, lut, r, x, i0, y, ldy),
                }
            }
            i0 += n;
        }
    }
}

/// AVX-512: 16 lanes.
///
/// # Safety
/// AVX-512 F/BW/VL, AVX2 and FMA present; the module's contract on `x` and `y`.
pub(super) unsafe fn rows_512(
    w: &PackedRef<'_>,
    rows: Range<usize>,
    x: &[f32],
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    // SAFETY: the caller's guarantees.
    unsafe {
        match family(w.kind) {
            NIBBLE => rows_512_k::<NIBBLE>(w, rows, x, t, y, ldy),
            BYTE => rows_512_k::<BYTE>(w, rows, x, t, y, ldy),
            _ => rows_512_k::<FP8>(w, rows, x, t, y, ldy),
        }
    }
}

/// AVX2 + FMA: two 8-lane halves per 16 codes.
///
/// # Safety
/// AVX2 and FMA present; the module's contract on `x` and `y`.
pub(super) unsafe fn rows_256(
    w: &PackedRef<'_>,
    rows: Range<usize>,
    x: &[f32],
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    // SAFETY: the caller's guarantees.
    unsafe {
        match family(w.kind) {
            NIBBLE => rows_256_k::<NIBBLE>(w, rows, x, t, y, ldy),
            BYTE => rows_256_k::<BYTE>(w, rows, x, t, y, ldy),
            _ => rows_256_k::<FP8>(w, rows, x, t, y, ldy),
        }
    }
}
