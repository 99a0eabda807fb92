//! x86-64 kernels: AVX-512 (with VDPBF16PS for bf16 weights where the CPU has AVX512_BF16) and
//! AVX2+FMA. Each `rows_*` function computes `y[i·ldy + r] = W[r,:]·x[i,:]` for the rows `rows` and
//! every token `i < t`, in register tiles of 4 weight rows × up to 6 (AVX-512) or 2 (AVX2) tokens that
//! walk the shared `cols` dimension; `x` is read in token blocks sized to stay in L2 while the weight
//! rows stream through.
//!
//! All functions here are `unsafe` because they require CPU features; the dispatcher in `mod.rs` calls
//! them only after `is_x86_feature_detected!` confirmed those features, and with slices whose lengths
//! it checked (`w.len() >= rows.end·cols`, `x.len() >= t·cols`, `y` covering `(t-1)·ldy + rows.end`).

#![allow(clippy::needless_range_loop, clippy::too_many_arguments)] // tile loops index [row][token]

use std::arch::x86_64::*;
use std::ops::Range;

use half::{bf16, f16};

use super::YPtr;

/// Rows per register tile.
const R: usize = 4;
/// Bytes of activations a token block may keep in L2 while weight rows stream past.
const X_BLOCK_BYTES: usize = 384 * 1024;

/// Tokens per block: a multiple of the tile width `n_tile`, at least one tile.
fn token_block(cols: usize, bytes_per_elem: usize, n_tile: usize) -> usize {
    let tb = X_BLOCK_BYTES / (cols * bytes_per_elem).max(1);
    (tb / n_tile).max(1) * n_tile
}

/// Row indices of the tile starting at `r`, the last valid row repeated past `end` (its results are
/// computed and dropped, so edge tiles need no separate code).
#[inline(always)]
fn tile_rows(r: usize, end: usize) -> [usize; R] {
    [
        r,
        (r + 1).min(end - 1),
        (r + 2).min(end - 1),
        (r + 3).min(end - 1),
    ]
}

/// Prefetch addresses: the same columns of the rows one tile further on (rows are contiguous, so
/// this runs 4 rows ahead of the loads). Prefetches never fault; the addresses are formed with
/// wrapping arithmetic because they may point past the matrix.
#[inline(always)]
fn next_tile<T>(w: [*const T; R], cols: usize) -> [*const T; R] {
    w.map(|p| p.wrapping_add(R * cols))
}

/// Writes a tile's results for the rows below `end`.
///
/// # Safety
/// `y` must be valid for writes at `i·ldy + r` for every stored `(i, r)`.
#[inline(always)]
unsafe fn store_tile<const N: usize>(
    res: &[[f32; N]; R],
    r: usize,
    end: usize,
    i: usize,
    y: YPtr,
    ldy: usize,
) {
    for (j, row) in res.iter().enumerate() {
        if r + j < end {
            for (n, v) in row.iter().enumerate() {
                // SAFETY: the caller guarantees (i + n, r + j) is inside `y`.
                unsafe { *y.0.add((i + n) * ldy + r + j) = *v };
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AVX-512 BF16: bf16 weights · bf16 activations (optionally hi + lo halves of the f32 activations)
// ---------------------------------------------------------------------------------------------

/// The horizontal sums of four accumulators, `[Σa, Σb, Σc, Σd]`, with a shuffle tree (11 operations
/// instead of four separate reductions).
#[target_feature(enable = "avx512f")]
#[inline]
fn reduce4(a: __m512, b: __m512, c: __m512, d: __m512) -> [f32; 4] {
    // 128-bit blocks: ab = [a0+a2, a1+a3, b0+b2, b1+b3], cd likewise.
    let ab = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
        _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
    );
    let cd = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0b01_00_01_00>(c, d),
        _mm512_shuffle_f32x4::<0b11_10_11_10>(c, d),
    );
    // Block j holds four partial sums of accumulator j.
    let v = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0b10_00_10_00>(ab, cd),
        _mm512_shuffle_f32x4::<0b11_01_11_01>(ab, cd),
    );
    let v = _mm512_add_ps(v, _mm512_permute_ps::<0b10_11_00_01>(v));
    let v = _mm512_add_ps(v, _mm512_permute_ps::<0b01_00_11_10>(v));
    let lanes = _mm512_permutexvar_ps(
        _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        v,
    );
    let mut out = [0.0f32; 4];
    // SAFETY: storing 4 floats into a 4-float array.
    unsafe { _mm_storeu_ps(out.as_mut_ptr(), _mm512_castps512_ps128(lanes)) };
    out
}

/// Splits f32 activations into bf16 `hi` (round to nearest even) and, when `lo` is given, the bf16
/// of the remainder `x - hi`, so that `w·hi + w·lo` carries ~16 bits of each activation.
pub(crate) fn split_bf16(x: &[f32], hi: &mut [u16], lo: Option<&mut [u16]>) {
    for (h, v) in hi.iter_mut().zip(x) {
        *h = bf16::from_f32(*v).to_bits();
    }
    if let Some(lo) = lo {
        for ((l, h), v) in lo.iter_mut().zip(hi.iter()).zip(x) {
            *l = bf16::from_f32(v - bf16::from_bits(*h).to_f32()).to_bits();
        }
    }
}

/// One 4×N tile over the whole `cols` dimension with VDPBF16PS; `LO` adds the low halves in
/// accumulators of their own (summed with the high ones at the end, as [`row_dot_bf16dp`] does).
///
/// # Safety
/// AVX512F/BW/BF16 available; `w[j]` valid for `cols` elements, `xh`/`xl` for `N·cols`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
#[inline]
unsafe fn tile_bf16dp<const N: usize, const LO: bool>(
    w: [*const u16; R],
    pf: [*const u16; R],
    xh: *const u16,
    xl: *const u16,
    cols: usize,
) -> [[f32; N]; R] {
    let mut acc_lo = [[_mm512_setzero_ps(); N]; R];
    let mut acc = [[_mm512_setzero_ps(); N]; R];
    let mut k = 0;
    // SAFETY: (whole block) loads stay below `cols` per row (full 32-lane loads only while
    // k + 32 <= cols, masked loads for the tail), as the caller guarantees.
    unsafe {
        while k + 32 <= cols {
            for p in pf {
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(k) as *const i8);
            }
            let wv: [__m512bh; R] =
                std::array::from_fn(|j| std::mem::transmute(_mm512_loadu_si512(w[j].add(k) as _)));
            for n in 0..N {
                let xv: __m512bh =
                    std::mem::transmute(_mm512_loadu_si512(xh.add(n * cols + k) as _));
                for j in 0..R {
                    acc[j][n] = _mm512_dpbf16_ps(acc[j][n], wv[j], xv);
                }
                if LO {
                    let xv: __m512bh =
                        std::mem::transmute(_mm512_loadu_si512(xl.add(n * cols + k) as _));
                    for j in 0..R {
                        acc_lo[j][n] = _mm512_dpbf16_ps(acc_lo[j][n], wv[j], xv);
                    }
                }
            }
            k += 32;
        }
        if k < cols {
            let m: __mmask32 = (1u32 << (cols - k)) - 1;
            let wv: [__m512bh; R] = std::array::from_fn(|j| {
                std::mem::transmute(_mm512_maskz_loadu_epi16(m, w[j].add(k) as *const i16))
            });
            for n in 0..N {
                let xv: __m512bh =
                    std::mem::transmute(_mm512_maskz_loadu_epi16(m, xh.add(n * cols + k) as _));
                for j in 0..R {
                    acc[j][n] = _mm512_dpbf16_ps(acc[j][n], wv[j], xv);
                }
                if LO {
                    let xv: __m512bh =
                        std::mem::transmute(_mm512_maskz_loadu_epi16(m, xl.add(n * cols + k) as _));
                    for j in 0..R {
                        acc_lo[j][n] = _mm512_dpbf16_ps(acc_lo[j][n], wv[j], xv);
                    }
                }
            }
        }
    }
    let mut out = [[0.0f32; N]; R];
    for n in 0..N {
        let v: [__m512; R] = std::array::from_fn(|j| {
            if LO {
                _mm512_add_ps(acc[j][n], acc_lo[j][n])
            } else {
                acc[j][n]
            }
        });
        let sums = reduce4(v[0], v[1], v[2], v[3]);
        for j in 0..R {
            out[j][n] = sums[j];
        }
    }
    out
}

/// One row's dot product for a single token (decode), read as one sequential stream with a
/// software prefetch a page ahead. Per output it computes exactly what [`tile_bf16dp`] computes
/// (one accumulator for the high halves, one for the low halves, k in order, summed at the end), so
/// a token's result does not depend on how many tokens share the product.
///
/// # Safety
/// AVX512F/BW/BF16 available; `w` valid for `cols` elements, `xh`/`xl` for `cols`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
#[inline]
unsafe fn row_dot_bf16dp<const LO: bool>(
    w: *const u16,
    xh: *const u16,
    xl: *const u16,
    cols: usize,
) -> f32 {
    const PF: usize = 2048; // elements (4 KiB) ahead: the next page of the stream
    let mut a = _mm512_setzero_ps();
    let mut b = _mm512_setzero_ps();
    let mut k = 0;
    // SAFETY: (whole block) full loads only while in bounds, masked loads for the tail; prefetch
    // addresses are formed with wrapping arithmetic and never fault.
    unsafe {
        let ld = |p: *const u16| -> __m512bh { std::mem::transmute(_mm512_loadu_si512(p as _)) };
        while k + 32 <= cols {
            _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(k + PF) as *const i8);
            let wv = ld(w.add(k));
            a = _mm512_dpbf16_ps(a, wv, ld(xh.add(k)));
            if LO {
                b = _mm512_dpbf16_ps(b, wv, ld(xl.add(k)));
            }
            k += 32;
        }
        if k < cols {
            let m: __mmask32 = (1u32 << (cols - k)) - 1;
            let mz = |p: *const u16| -> __m512bh {
                std::mem::transmute(_mm512_maskz_loadu_epi16(m, p as *const i16))
            };
            let wv = mz(w.add(k));
            a = _mm512_dpbf16_ps(a, wv, mz(xh.add(k)));
            if LO {
                b = _mm512_dpbf16_ps(b, wv, mz(xl.add(k)));
            }
        }
    }
    let v = if LO { _mm512_add_ps(a, b) } else { a };
    // The same reduction tree as the tiles (lanes of `reduce4` are independent).
    reduce4(v, v, v, v)[0]
}

/// `y[i·ldy + r] = Σ_k w[r,k]·x[i,k]` with bf16 weights and bf16 activations `xh` (+ `xl`).
///
/// # Safety
/// AVX512F/BW/VL/BF16 available; `w.len() >= rows.end·cols`, `xh` (and `xl`) `>= t·cols`; `y` valid
/// for writes at `i·ldy + r` for `i < t`, `r ∈ rows`, and no other thread writes those elements.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
pub(crate) unsafe fn rows_bf16dp(
    w: &[bf16],
    cols: usize,
    rows: Range<usize>,
    xh: &[u16],
    xl: Option<&[u16]>,
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    if rows.is_empty() || t == 0 {
        return;
    }
    let wp = w.as_ptr() as *const u16;
    let xl_ptr = xl.map_or(std::ptr::null(), |s| s.as_ptr());
    if t == 1 {
        for r in rows {
            // SAFETY: row r < rows.end has `cols` elements; one token of activations; (0, r) is ours.
            unsafe {
                let wr = wp.add(r * cols);
                let v = if xl.is_some() {
                    row_dot_bf16dp::<true>(wr, xh.as_ptr(), xl_ptr, cols)
                } else {
                    row_dot_bf16dp::<false>(wr, xh.as_ptr(), xl_ptr, cols)
                };
                *y.0.add(r) = v;
            }
        }
        return;
    }
    let passes = if xl.is_some() { 2 } else { 1 };
    let tb = token_block(cols, 2 * passes, 6);
    for i0 in (0..t).step_by(tb) {
        let i1 = (i0 + tb).min(t);
        for r in rows.clone().step_by(R) {
            // SAFETY: rows < rows.end, so each row pointer has `cols` valid elements.
            let w4 = tile_rows(r, rows.end).map(|q| unsafe { wp.add(q * cols) });
            let pf = next_tile(w4, cols);
            let mut i = i0;
            // With the low halves each output has two accumulators: at most 3 tokens per tile.
            let n_max = if xl.is_some() { 3 } else { 6 };
            while i < i1 {
                let n = (i1 - i).min(n_max);
                // SAFETY: token `i + n <= t`, so `n·cols` activations from `i·cols` are valid.
                let (h, l) = unsafe {
                    (
                        xh.as_ptr().add(i * cols),
                        if xl_ptr.is_null() {
                            xl_ptr
                        } else {
                            xl_ptr.add(i * cols)
                        },
                    )
                };
                macro_rules! go {
                    ($n:literal) => {{
                        let res = if xl.is_some() {
                            // SAFETY: the tile's rows and tokens exist and hold `cols` values.
                            unsafe { tile_bf16dp::<$n, true>(w4, pf, h, l, cols) }
                        } else {
                            // SAFETY: as above.
                            unsafe { tile_bf16dp::<$n, false>(w4, pf, h, l, cols) }
                        };
                        // SAFETY: (i..i+n, r..min(r+4,end)) lie in the caller's region.
                        unsafe { store_tile(&res, r, rows.end, i, y, ldy) };
                    }};
                }
                match n {
                    1 => go!(1),
                    2 => go!(2),
                    3 => go!(3),
                    4 => go!(4),
                    5 => go!(5),
                    _ => go!(6),
                }
                i += n;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AVX-512F: f32 / f16 / bf16 weights widened to f32, f32 activations, FMA
// ---------------------------------------------------------------------------------------------

/// A weight element type the AVX-512 FMA kernels can widen 16 at a time.
trait Wide512: Copy {
    /// 16 elements from `p` widened to f32.
    unsafe fn load16(p: *const Self) -> __m512;
    /// The first `bits.count_ones()` elements from `p` (mask of low bits), zeros elsewhere.
    unsafe fn load16_mask(p: *const Self, m: __mmask16) -> __m512;
}

impl Wide512 for f32 {
    #[inline(always)]
    unsafe fn load16(p: *const Self) -> __m512 {
        // SAFETY: caller guarantees 16 readable elements and AVX512F.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load16_mask(p: *const Self, m: __mmask16) -> __m512 {
        // SAFETY: masked-off lanes are not read.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }
}

impl Wide512 for f16 {
    #[inline(always)]
    unsafe fn load16(p: *const Self) -> __m512 {
        // SAFETY: 16 readable halves; F16C conversion is part of AVX512F.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
    }
    #[inline(always)]
    unsafe fn load16_mask(p: *const Self, m: __mmask16) -> __m512 {
        // SAFETY: masked-off lanes are not read (AVX512BW+VL masked 16-bit load).
        unsafe { _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p as *const i16)) }
    }
}

impl Wide512 for bf16 {
    #[inline(always)]
    unsafe fn load16(p: *const Self) -> __m512 {
        // SAFETY: 16 readable bf16; widening is a zero-extend and a 16-bit shift.
        unsafe {
            let v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const __m256i));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(v))
        }
    }
    #[inline(always)]
    unsafe fn load16_mask(p: *const Self, m: __mmask16) -> __m512 {
        // SAFETY: masked-off lanes are not read.
        unsafe {
            let v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p as *const i16));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(v))
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
unsafe fn tile_fma512<T: Wide512, const N: usize>(
    w: [*const T; R],
    pf: [*const T; R],
    x: *const f32,
    cols: usize,
) -> [[f32; N]; R] {
    let mut acc = [[_mm512_setzero_ps(); N]; R];
    let mut k = 0;
    // SAFETY: (whole block) full loads only while k + 16 <= cols, masked loads for the tail.
    unsafe {
        while k + 16 <= cols {
            if k % 32 == 0 {
                for p in pf {
                    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(k) as *const i8);
                }
            }
            let wv: [__m512; R] = std::array::from_fn(|j| T::load16(w[j].add(k)));
            for n in 0..N {
                let xv = _mm512_loadu_ps(x.add(n * cols + k));
                for j in 0..R {
                    acc[j][n] = _mm512_fmadd_ps(wv[j], xv, acc[j][n]);
                }
            }
            k += 16;
        }
        if k < cols {
            let m: __mmask16 = ((1u32 << (cols - k)) - 1) as u16;
            let wv: [__m512; R] = std::array::from_fn(|j| T::load16_mask(w[j].add(k), m));
            for n in 0..N {
                let xv = _mm512_maskz_loadu_ps(m, x.add(n * cols + k));
                for j in 0..R {
                    acc[j][n] = _mm512_fmadd_ps(wv[j], xv, acc[j][n]);
                }
            }
        }
    }
    let mut out = [[0.0f32; N]; R];
    for n in 0..N {
        let sums = reduce4(acc[0][n], acc[1][n], acc[2][n], acc[3][n]);
        for j in 0..R {
            out[j][n] = sums[j];
        }
    }
    out
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn rows_fma512_t<T: Wide512>(
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
    let wp = w.as_ptr();
    let tb = token_block(cols, 4, 6);
    for i0 in (0..t).step_by(tb) {
        let i1 = (i0 + tb).min(t);
        for r in rows.clone().step_by(R) {
            // SAFETY: every tile row is < rows.end.
            let w4 = tile_rows(r, rows.end).map(|q| unsafe { wp.add(q * cols) });
            let pf = next_tile(w4, cols);
            let mut i = i0;
            while i < i1 {
                let n = (i1 - i).min(6);
                // SAFETY: tokens i..i+n exist.
                let xp = unsafe { x.as_ptr().add(i * cols) };
                macro_rules! go {
                    ($n:literal) => {{
                        // SAFETY: the tile's rows and tokens exist and hold `cols` values.
                        let res = unsafe { tile_fma512::<T, $n>(w4, pf, xp, cols) };
                        // SAFETY: inside the caller's region.
                        unsafe { store_tile(&res, r, rows.end, i, y, ldy) };
                    }};
                }
                match n {
                    1 => go!(1),
                    2 => go!(2),
                    3 => go!(3),
                    4 => go!(4),
                    5 => go!(5),
                    _ => go!(6),
                }
                i += n;
            }
        }
    }
}

/// AVX-512F rows kernel for f32 weights. Same contract as [`rows_bf16dp`] with f32 activations.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(crate) unsafe fn rows_fma512_f32(
    w: &[f32],
    cols: usize,
    rows: Range<usize>,
    x: &[f32],
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    // SAFETY: same contract.
    unsafe { rows_fma512_t(w, cols, rows, x, t, y, ldy) }
}

/// AVX-512F rows kernel for f16 weights.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(crate) unsafe fn rows_fma512_f16(
    w: &[f16],
    cols: usize,
    rows: Range<usize>,
    x: &[f32],
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    // SAFETY: same contract.
    unsafe { rows_fma512_t(w, cols, rows, x, t, y, ldy) }
}

/// AVX-512F rows kernel for bf16 weights (CPUs without AVX512_BF16).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(crate) unsafe fn rows_fma512_bf16(
    w: &[bf16],
    cols: usize,
    rows: Range<usize>,
    x: &[f32],
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    // SAFETY: same contract.
    unsafe { rows_fma512_t(w, cols, rows, x, t, y, ldy) }
}

/// Weight rows per block of the `x·W` kernel: a block stays in L2 while every column tile and
/// token group of the task passes over it.
const N_ROW_BLOCK: usize = 128;
/// Column vectors (of 16) per `x·W` register tile.
const NCV: usize = 4;
/// Tokens per `x·W` register tile (`NCV · NTOK` = 24 accumulators).
const NTOK: usize = 6;

/// `y[i, c] += Σ_r x[i, r]·W[r, c]` for the columns `c` of one tile (`masks`: the live lanes of
/// each of its `NCV` vectors from column `c0`), the tokens `i0..i0 + N` and the weight rows
/// `r0..r1`, accumulating in registers in row order (each output adds the rows one after another,
/// as an axpy per row would).
///
/// # Safety
/// AVX512F/BW/VL available; `w` holds `[.., cols]` rows up to `r1`, `x` `[.., xs]` rows up to
/// `i0 + N`, `y` `[.., ldy]` rows up to `i0 + N`, every masked-in column inside; no other thread
/// writes those outputs meanwhile.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn n_tile<T: Wide512, const N: usize>(
    w: *const T,
    cols: usize,
    rows: Range<usize>,
    c0: usize,
    masks: [__mmask16; NCV],
    x: *const f32,
    xs: usize,
    i0: usize,
    y: *mut f32,
    ldy: usize,
) {
    // SAFETY: the caller's contract covers every address formed here; masked-off lanes are not
    // touched.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); NCV]; N];
        for (n, a) in acc.iter_mut().enumerate() {
            for (v, m) in masks.iter().enumerate() {
                if *m != 0 {
                    a[v] = _mm512_maskz_loadu_ps(*m, y.add((i0 + n) * ldy + c0 + v * 16));
                }
            }
        }
        for r in rows {
            let wr = w.add(r * cols + c0);
            let wv: [__m512; NCV] = std::array::from_fn(|v| match masks[v] {
                0xFFFF => T::load16(wr.add(v * 16)),
                0 => _mm512_setzero_ps(),
                m => T::load16_mask(wr.add(v * 16), m),
            });
            for (n, a) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_ps(*x.add((i0 + n) * xs + r));
                for v in 0..NCV {
                    a[v] = _mm512_fmadd_ps(xv, wv[v], a[v]);
                }
            }
        }
        for (n, a) in acc.iter().enumerate() {
            for (v, m) in masks.iter().enumerate() {
                if *m != 0 {
                    _mm512_mask_storeu_ps(y.add((i0 + n) * ldy + c0 + v * 16), *m, a[v]);
                }
            }
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn n_fma512_t<T: Wide512>(
    w: &[T],
    rows: usize,
    cols: usize,
    cr: Range<usize>,
    x: &[f32],
    t: usize,
    y: YPtr,
) {
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    for r0 in (0..rows).step_by(N_ROW_BLOCK) {
        let rb = r0..(r0 + N_ROW_BLOCK).min(rows);
        let mut c0 = cr.start;
        while c0 < cr.end {
            let nc = (cr.end - c0).min(NCV * 16);
            let masks: [__mmask16; NCV] = std::array::from_fn(|v| {
                let live = nc.saturating_sub(v * 16).min(16);
                ((1u32 << live) - 1) as u16
            });
            let mut i0 = 0;
            while i0 < t {
                let n = (t - i0).min(NTOK);
                macro_rules! go {
                    ($n:literal) => {
                        // SAFETY: rows `rb` < rows, tokens i0..i0+n < t, columns inside `cr`,
                        // which this task owns; AVX-512 was checked by the caller.
                        unsafe {
                            n_tile::<T, $n>(
                                wp,
                                cols,
                                rb.clone(),
                                c0,
                                masks,
                                xp,
                                rows,
                                i0,
                                y.0,
                                cols,
                            )
                        }
                    };
                }
                match n {
                    1 => go!(1),
                    2 => go!(2),
                    3 => go!(3),
                    4 => go!(4),
                    5 => go!(5),
                    _ => go!(6),
                }
                i0 += n;
            }
            c0 += nc;
        }
    }
}

/// `y[i, cr] += x[i, :]·W[:, cr]` for every token `i < t`: `W` `[rows, cols]`, `x` `[t, rows]`, `y`
/// `[t, cols]`; register tiles of 64 columns × 6 tokens over blocks of weight rows.
///
/// # Safety
/// AVX512F/BW/VL available; the shapes hold; no other thread writes columns `cr` of `y` meanwhile.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(crate) unsafe fn n_fma512(
    w: super::FloatData<'_>,
    rows: usize,
    cols: usize,
    cr: Range<usize>,
    x: &[f32],
    t: usize,
    y: YPtr,
) {
    // SAFETY: same contract.
    unsafe {
        match w {
            super::FloatData::F32(d) => n_fma512_t(d, rows, cols, cr, x, t, y),
            super::FloatData::F16(d) => n_fma512_t(d, rows, cols, cr, x, t, y),
            super::FloatData::BF16(d) => n_fma512_t(d, rows, cols, cr, x, t, y),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AVX2 + FMA (+F16C): 8 lanes, 4×2 tiles, scalar tails
// ---------------------------------------------------------------------------------------------

trait Wide256: Copy {
    unsafe fn load8(p: *const Self) -> __m256;
    fn widen(self) -> f32;
}

impl Wide256 for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> __m256 {
        // SAFETY: 8 readable floats, AVX available (caller).
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl Wide256 for f16 {
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> __m256 {
        // SAFETY: 8 readable halves, F16C available (caller).
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

impl Wide256 for bf16 {
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> __m256 {
        // SAFETY: 8 readable bf16, AVX2 available (caller).
        unsafe {
            let v = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i));
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(v))
        }
    }
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn hsum256(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
    _mm_cvtss_f32(s)
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn tile_fma256<T: Wide256, const N: usize>(
    w: [*const T; R],
    x: *const f32,
    cols: usize,
) -> [[f32; N]; R] {
    let mut acc = [[_mm256_setzero_ps(); N]; R];
    let mut k = 0;
    let mut out = [[0.0f32; N]; R];
    // SAFETY: (whole block) vector loads only while k + 8 <= cols; the tail is scalar.
    unsafe {
        while k + 8 <= cols {
            let wv: [__m256; R] = std::array::from_fn(|j| T::load8(w[j].add(k)));
            for n in 0..N {
                let xv = _mm256_loadu_ps(x.add(n * cols + k));
                for j in 0..R {
                    acc[j][n] = _mm256_fmadd_ps(wv[j], xv, acc[j][n]);
                }
            }
            k += 8;
        }
        for kk in k..cols {
            for j in 0..R {
                let wv = (*w[j].add(kk)).widen();
                for n in 0..N {
                    out[j][n] += wv * *x.add(n * cols + kk);
                }
            }
        }
    }
    for j in 0..R {
        for n in 0..N {
            out[j][n] += hsum256(acc[j][n]);
        }
    }
    out
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_fma256_t<T: Wide256>(
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
    let wp = w.as_ptr();
    let tb = token_block(cols, 4, 2);
    for i0 in (0..t).step_by(tb) {
        let i1 = (i0 + tb).min(t);
        for r in rows.clone().step_by(R) {
            // SAFETY: every tile row is < rows.end.
            // SAFETY: tile rows are clamped below `rows.end`, inside the weight.
            let w4 = tile_rows(r, rows.end).map(|q| unsafe { wp.add(q * cols) });
            let mut i = i0;
            while i < i1 {
                // SAFETY: tokens i..i+n exist; outputs inside the caller's region.
                let xp = unsafe { x.as_ptr().add(i * cols) };
                if i1 - i >= 2 {
                    // SAFETY: two tokens from `i` exist; the tile's rows hold `cols` values.
                    let res = unsafe { tile_fma256::<T, 2>(w4, xp, cols) };
                    // SAFETY: inside the caller's region.
                    unsafe { store_tile(&res, r, rows.end, i, y, ldy) };
                    i += 2;
                } else {
                    // SAFETY: token `i` exists; the tile's rows hold `cols` values.
                    let res = unsafe { tile_fma256::<T, 1>(w4, xp, cols) };
                    // SAFETY: inside the caller's region.
                    unsafe { store_tile(&res, r, rows.end, i, y, ldy) };
                    i += 1;
                }
            }
        }
    }
}

/// AVX2+FMA rows kernel for f32 weights. Same contract as [`rows_bf16dp`] with f32 activations and
/// AVX2, FMA and F16C instead of AVX-512.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn rows_fma256_f32(
    w: &[f32],
    cols: usize,
    rows: Range<usize>,
    x: &[f32],
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    // SAFETY: same contract.
    unsafe { rows_fma256_t(w, cols, rows, x, t, y, ldy) }
}

/// AVX2+FMA rows kernel for f16 weights.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn rows_fma256_f16(
    w: &[f16],
    cols: usize,
    rows: Range<usize>,
    x: &[f32],
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    // SAFETY: same contract.
    unsafe { rows_fma256_t(w, cols, rows, x, t, y, ldy) }
}

/// AVX2+FMA rows kernel for bf16 weights.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn rows_fma256_bf16(
    w: &[bf16],
    cols: usize,
    rows: Range<usize>,
    x: &[f32],
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    // SAFETY: same contract.
    unsafe { rows_fma256_t(w, cols, rows, x, t, y, ldy) }
}

// ---------------------------------------------------------------------------------------------
// f32 vector helpers for attention (dot products and axpy over cache rows)
// ---------------------------------------------------------------------------------------------

/// `Σ a[i]·b[i]` (AVX-512F).
///
/// # Safety
/// AVX512F available; `a.len() == b.len()`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn dot_f32_512(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc0 = _mm512_setzero_ps();
    let mut acc1 = _mm512_setzero_ps();
    let mut k = 0;
    // SAFETY: all loads below `n`.
    unsafe {
        while k + 32 <= n {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(k)), _mm512_loadu_ps(pb.add(k)), acc0);
            acc1 = _mm512_fmadd_ps(
                _mm512_loadu_ps(pa.add(k + 16)),
                _mm512_loadu_ps(pb.add(k + 16)),
                acc1,
            );
            k += 32;
        }
        while k < n {
            let m: __mmask16 = ((1u32 << (n - k).min(16)) - 1) as u16;
            acc0 = _mm512_fmadd_ps(
                _mm512_maskz_loadu_ps(m, pa.add(k)),
                _mm512_maskz_loadu_ps(m, pb.add(k)),
                acc0,
            );
            k += 16;
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
}

/// `y += a·x` (AVX-512F).
///
/// # Safety
/// AVX512F available; `x.len() == y.len()`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn axpy_f32_512(a: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let (px, py) = (x.as_ptr(), y.as_mut_ptr());
    let av = _mm512_set1_ps(a);
    let mut k = 0;
    // SAFETY: all accesses below `n`.
    unsafe {
        while k < n {
            let m: __mmask16 = ((1u32 << (n - k).min(16)) - 1) as u16;
            let v = _mm512_fmadd_ps(
                av,
                _mm512_maskz_loadu_ps(m, px.add(k)),
                _mm512_maskz_loadu_ps(m, py.add(k)),
            );
            _mm512_mask_storeu_ps(py.add(k), m, v);
            k += 16;
        }
    }
}

/// `Σ a[i]·b[i]` (AVX2+FMA).
///
/// # Safety
/// AVX2 and FMA available; `a.len() == b.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_f32_256(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = _mm256_setzero_ps();
    let mut k = 0;
    let mut tail = 0.0;
    // SAFETY: all loads below `n`.
    unsafe {
        while k + 8 <= n {
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(k)), _mm256_loadu_ps(pb.add(k)), acc);
            k += 8;
        }
        for kk in k..n {
            tail += *pa.add(kk) * *pb.add(kk);
        }
    }
    hsum256(acc) + tail
}

/// `y += a·x` (AVX2+FMA).
///
/// # Safety
/// AVX2 and FMA available.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn axpy_f32_256(a: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let (px, py) = (x.as_ptr(), y.as_mut_ptr());
    let av = _mm256_set1_ps(a);
    let mut k = 0;
    // SAFETY: all accesses below `n`.
    unsafe {
        while k + 8 <= n {
            let v = _mm256_fmadd_ps(av, _mm256_loadu_ps(px.add(k)), _mm256_loadu_ps(py.add(k)));
            _mm256_storeu_ps(py.add(k), v);
            k += 8;
        }
        for kk in k..n {
            *py.add(kk) += a * *px.add(kk);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Softmax numerators and activation splitting
// ---------------------------------------------------------------------------------------------

/// `e^x` for 16 lanes: `2^n·p(r)` with `n = round(x·log2 e)`, `r = x - n·ln 2` (two-part ln 2) and
/// the degree-6 Taylor polynomial on |r| ≤ ln2/2 (relative error ~1e-7); inputs clamped to
/// [-104, 88.7] (results underflow to 0 and stay finite).
#[target_feature(enable = "avx512f")]
#[inline]
fn exp512(x: __m512) -> __m512 {
    let x = _mm512_min_ps(
        _mm512_max_ps(x, _mm512_set1_ps(-104.0)),
        _mm512_set1_ps(88.7),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(
        n,
        _mm512_set1_ps(f32::from_bits(0x3f31_7200)), /* ln 2 high part, exact */
        x,
    );
    let r = _mm512_fnmadd_ps(
        n,
        _mm512_set1_ps(1.428_606_8e-6), /* ln 2 - high part */
        r,
    );
    let mut p = _mm512_set1_ps(1.0 / 720.0);
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    _mm512_scalef_ps(p, n)
}

/// `v[i] = e^(v[i]·scale - shift)`; returns `Σ v[i]` (AVX-512F).
///
/// # Safety
/// AVX512F available.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn exp_sum_512(v: &mut [f32], scale: f32, shift: f32) -> f32 {
    let n = v.len();
    let p = v.as_mut_ptr();
    let (sv, hv) = (_mm512_set1_ps(scale), _mm512_set1_ps(shift));
    let mut acc = _mm512_setzero_ps();
    let mut k = 0;
    // SAFETY: masked accesses below `n`.
    unsafe {
        while k < n {
            let m: __mmask16 = ((1u32 << (n - k).min(16)) - 1) as u16;
            let x = _mm512_fmsub_ps(_mm512_maskz_loadu_ps(m, p.add(k)), sv, hv);
            let e = _mm512_maskz_mov_ps(m, exp512(x));
            _mm512_mask_storeu_ps(p.add(k), m, e);
            acc = _mm512_add_ps(acc, e);
            k += 16;
        }
    }
    _mm512_reduce_add_ps(acc)
}

/// [`split_bf16`] with AVX512_BF16's round-to-nearest-even conversion, 16 values at a time.
///
/// # Safety
/// AVX512F/BW/VL/BF16 available; `hi` (and `lo`) at least as long as `x`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
pub(crate) unsafe fn split_bf16_512(x: &[f32], hi: &mut [u16], lo: Option<&mut [u16]>) {
    let n = x.len().min(hi.len());
    let lo_ptr = lo.map(|l| l.as_mut_ptr());
    let mut k = 0;
    // SAFETY: full vectors only while k + 16 <= n; the tail goes through the scalar path.
    unsafe {
        while k + 16 <= n {
            let v = _mm512_loadu_ps(x.as_ptr().add(k));
            let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
            _mm256_storeu_si256(hi.as_mut_ptr().add(k) as *mut __m256i, h);
            if let Some(lp) = lo_ptr {
                let back = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)));
                let l: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(_mm512_sub_ps(v, back)));
                _mm256_storeu_si256(lp.add(k) as *mut __m256i, l);
            }
            k += 16;
        }
        let lo_tail = lo_ptr.map(|lp| std::slice::from_raw_parts_mut(lp.add(k), n - k));
        split_bf16(&x[k..n], &mut hi[k..n], lo_tail);
    }
}
