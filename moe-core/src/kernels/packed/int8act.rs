//! The int8-activation mode of packed int4/int8 products ([`Precision::Int8`](crate::kernels::Precision)):
//! activations are quantized per token and block of 32 columns (symmetric, `s = max|x|/127`, rounded
//! to nearest), and each block's dot product with the stored unsigned codes is an exact integer sum
//! `Σ (u - z)·q` (AVX512-VNNI `vpdpbusd`, AVX2 `vpmaddubsw`/`vpmaddwd` or NEON `smull`/`sadalp`,
//! with `-z·Σq` folded into the accumulator), scaled by the weight group's and the activation
//! block's scales in f32.
//!
//! Precision: the only error is the activations' rounding, at most `s/2` per element (2^-8 of each
//! block's largest magnitude), so `|Δy| <= Σ_j |w_j|·s_b(j)/2` for each output (tested). On the random
//! test models that is ~4e-2 on first-position logits, more where it flips an expert choice: it is
//! not the exact mode and runs only when chosen. Used where the layout fits (int4/int8 codes, groups
//! a multiple of 32; for AVX2, int8 only when symmetric) on AVX-512 with VNNI, AVX-512, AVX2 or
//! NEON; everything else keeps the exact mode.

use super::{CodeKind, PackedRef, RowParams};

/// Columns per activation scale.
pub(super) const BLOCK: usize = 32;

/// Activations quantized for one product.
pub(super) struct QuantAct {
    /// `[T, cols]`.
    pub q: Vec<i8>,
    /// `[T, cols/32]`: the scale of each block.
    pub scale: Vec<f32>,
    /// `[T, cols/32]`: `Σ q` of each block.
    pub sum: Vec<i32>,
}

/// Quantizes `x [T, cols]` (cols a multiple of 32).
pub(super) fn quantize(x: &[f32], t: usize, cols: usize) -> QuantAct {
    let nb = cols / BLOCK;
    let mut a = QuantAct {
        q: vec![0; t * cols],
        scale: vec![0.0; t * nb],
        sum: vec![0; t * nb],
    };
    for (b, (xs, qs)) in x
        .chunks_exact(BLOCK)
        .zip(a.q.chunks_exact_mut(BLOCK))
        .enumerate()
    {
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        if amax == 0.0 || !amax.is_finite() {
            continue;
        }
        let s = amax / 127.0;
        let inv = 127.0 / amax;
        let mut sum = 0;
        for (q, v) in qs.iter_mut().zip(xs) {
            *q = (v * inv).round().clamp(-127.0, 127.0) as i8;
            sum += *q as i32;
        }
        a.scale[b] = s;
        a.sum[b] = sum;
    }
    a
}

/// An int8-activation kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kernel {
    /// AVX512-VNNI `vpdpbusd`.
    Vnni,
    /// AVX2 `vpmaddubsw` + `vpmaddwd`: int4 codes (any zero), int8 codes only when symmetric (the
    /// pair sums must fit i16: `|w|·|q|·2 <= 128·127·2`).
    Avx2,
    /// NEON `smull` + `sadalp` (widening products, pairwise accumulation).
    Neon,
}

/// The int8-activation kernel for products of `w` at level `isa` on this CPU, if any.
pub(super) fn kernel_for(isa: crate::kernels::Isa, w: &PackedRef<'_>) -> Option<Kernel> {
    use crate::kernels::Isa;
    if !usable(w) || !isa.supported() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::Avx512 | Isa::Avx512Bf16) && vnni::supported() {
        return Some(Kernel::Vnni);
    }
    if isa == Isa::Neon {
        return Some(Kernel::Neon);
    }
    let avx2_fits = w.kind == CodeKind::Int4 || w.zeros.is_none();
    (matches!(isa, Isa::Avx2 | Isa::Avx512 | Isa::Avx512Bf16) && avx2_fits).then_some(Kernel::Avx2)
}

/// Whether the layout fits the int8-activation kernels.
pub(super) fn usable(w: &PackedRef<'_>) -> bool {
    matches!(w.kind, CodeKind::Int4 | CodeKind::Int8)
        && w.cols.is_multiple_of(BLOCK)
        && w.group.is_multiple_of(BLOCK)
        && w.row_block == 1
}

/// The zero of group `g` of the row `p` was made for, in the stored (unsigned) domain, and the
/// group's scale.
#[inline(always)]
pub(super) fn unsigned_params(w: &PackedRef<'_>, p: RowParams, g: usize) -> (i32, f32) {
    let (zero, scale) = w.params(p, g);
    (zero as i32 + w.kind.offset(), scale)
}

/// The stored unsigned code of element `j` of a row.
#[cfg(test)]
pub(super) fn unsigned_code(w: &PackedRef<'_>, row: &[u8], j: usize) -> i32 {
    match w.kind {
        CodeKind::Int4 => {
            let b = row[j / 2];
            (if j.is_multiple_of(2) {
                b & 0x0f
            } else {
                b >> 4
            }) as i32
        }
        _ => row[j] as i32,
    }
}

/// The same arithmetic without SIMD: the reference of the VNNI kernel (tests).
#[cfg(test)]
pub(super) fn rows_reference(w: &PackedRef<'_>, a: &QuantAct, t: usize) -> Vec<f32> {
    let nb = w.cols / BLOCK;
    let mut y = vec![0.0f32; t * w.rows];
    for r in 0..w.rows {
        let row = w.row(r);
        let p = w.row_params(r, w.groups());
        for i in 0..t {
            let mut acc = 0.0f32;
            for b in 0..nb {
                let (z, ws) = unsigned_params(w, p, b * BLOCK / w.group);
                let d: i32 = (b * BLOCK..(b + 1) * BLOCK)
                    .map(|j| (unsigned_code(w, row, j) - z) * a.q[i * w.cols + j] as i32)
                    .sum();
                acc += d as f32 * (ws * a.scale[i * nb + b]);
            }
            y[i * w.rows + r] = acc;
        }
    }
    y
}

#[cfg(target_arch = "x86_64")]
pub(super) mod vnni {
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
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2 {
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
                        a.q.as_ptr().add((i0 + k) * w.cols + b * BLOCK) as *const __m256i,
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
}

#[cfg(target_arch = "aarch64")]
pub(super) mod neon {
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
}
