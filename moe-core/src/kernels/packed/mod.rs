//! Products with packed low-bit weights, decoded in registers: no dequantized copy of a weight exists
//! at any time.
//!
//! A [`PackedRef`] borrows the codes (from the checkpoint map) and their per-group scales. Element `j`
//! of row `r` is `(code(r, j) - zero(r, g)) · scale(r, g)` with `g = j / group`, where `code` is:
//! - MXFP4 (gpt-oss): an e2m1 nibble, two per byte, the even element in the low nibble; the scale is
//!   e8m0 (`2^(s-127)`) per 32 elements; no zero.
//! - int4 (compressed-tensors `pack-quantized`): a nibble stored `+8`, eight per little-endian i32
//!   word with element `i` at bits `4i..4i+3` (so, in bytes, the same nibble order as MXFP4).
//! - int8: a byte stored `+128`, four per i32 word.
//! - FP8 e4m3 (`quant_method: fp8`): one byte per element, scales `weight_scale_inv` per block of
//!   `row_block × group` (the 7 magnitude bits placed at bits 20..27 of an f32, times 2^120, give the
//!   value exactly, subnormals included; the NaN codes 0x7f/0xff, absent from checkpoints, read as ±480).
//!
//! Every integer and 4-bit format decodes through the same step: 16 codes → 16 signed bytes (a 16-entry byte table
//! applied by a shuffle for nibbles: `2·e2m1` for MXFP4, `n - 8` for int4; `b ^ 0x80` for int8) →
//! f32 lanes, minus the group's zero, times the group's scale (halved for MXFP4's doubled table).
//! Decoded values equal the exactly dequantized weights (the products of a small integer and a
//! bf16/f16/f32 or power-of-two scale are exact in f32), and sums are f32: this is the exact mode, which
//! matches a float reference on the dequantized weights up to summation order, at
//! [`Precision::F32`] and [`Precision::Bf16`] alike. [`Precision::Int8`] selects the int8-activation
//! mode for int4/int8 codes (`int8act`: VNNI, AVX2 or NEON, with its stated precision).
//!
//! `scalar` is the reference; `x86` (AVX-512, AVX2) and `neon` the fast paths, picked by [`Isa`].
//! Rows are split over the current rayon pool as in [`matmul_t_with`](super::matmul_t_with).

// Some of its kernels exist only on x86-64 (VNNI, AVX2) or aarch64 (NEON).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
mod int8act;
#[cfg(target_arch = "aarch64")]
mod neon;
mod quantize;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::ops::Range;

use half::{bf16, f16};
use rayon::prelude::*;

use super::{Isa, Precision, YPtr, PAR_THRESHOLD};

pub(crate) use quantize::{quantize_matrix, quantize_scales, OwnedScales};

/// `2·e2m1` of each nibble: 0, .5, 1, 1.5, 2, 3, 4, 6, then the same negated.
const MXFP4_TABLE: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];
/// `n - 8` of each nibble.
const INT4_TABLE: [i8; 16] = [-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7];

/// How codes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeKind {
    /// e2m1, two per byte, low nibble first.
    Mxfp4,
    /// 4-bit integers stored `+8`, two per byte, low nibble first (i32 words, little-endian).
    Int4,
    /// 8-bit integers stored `+128`.
    Int8,
    /// FP8 e4m3fn bytes.
    E4M3,
}

impl CodeKind {
    pub(crate) fn bits(self) -> usize {
        match self {
            CodeKind::Mxfp4 | CodeKind::Int4 => 4,
            CodeKind::Int8 | CodeKind::E4M3 => 8,
        }
    }

    /// The signed byte of each nibble (nibble formats; unused for int8).
    pub(crate) fn table(self) -> &'static [i8; 16] {
        match self {
            CodeKind::Mxfp4 => &MXFP4_TABLE,
            CodeKind::Int4 | CodeKind::Int8 | CodeKind::E4M3 => &INT4_TABLE,
        }
    }

    /// The factor folded into the scale (MXFP4's table holds doubled values).
    pub(crate) fn factor(self) -> f32 {
        match self {
            CodeKind::Mxfp4 => 0.5,
            CodeKind::Int4 | CodeKind::Int8 | CodeKind::E4M3 => 1.0,
        }
    }

    /// The value that the stored zero-point code means "zero" at (the storage offset).
    fn offset(self) -> i32 {
        match self {
            CodeKind::Mxfp4 | CodeKind::E4M3 => 0,
            CodeKind::Int4 => 8,
            CodeKind::Int8 => 128,
        }
    }
}

/// Per-group scales, borrowed in their stored dtype: `[rows, groups]`.
#[derive(Clone, Copy)]
pub(crate) enum Scales<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    BF16(&'a [bf16]),
    /// e8m0: `2^(s-127)` (255 is NaN).
    E8M0(&'a [u8]),
}

impl Scales<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Scales::F32(s) => s.len(),
            Scales::F16(s) => s.len(),
            Scales::BF16(s) => s.len(),
            Scales::E8M0(s) => s.len(),
        }
    }

    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> f32 {
        match self {
            Scales::F32(s) => s[i],
            Scales::F16(s) => s[i].to_f32(),
            Scales::BF16(s) => s[i].to_f32(),
            Scales::E8M0(s) => e8m0(s[i]),
        }
    }
}

/// `2^(s-127)` as f32 (`s = 0` is the subnormal 2^-127, `s = 255` NaN).
#[inline]
pub(crate) fn e8m0(s: u8) -> f32 {
    match s {
        0 => f32::from_bits(0x0040_0000),
        255 => f32::NAN,
        s => f32::from_bits((s as u32) << 23),
    }
}

/// `2^120`: moves an e4m3 exponent (bias 7) placed in an f32 (bias 127) to its value.
pub(crate) const E4M3_RESCALE: f32 = f32::from_bits((120 + 127) << 23);

/// An e4m3fn byte as f32 by the bit placement the SIMD paths use (0x7f/0xff read as ±480, not NaN).
#[inline]
pub(crate) fn e4m3(b: u8) -> f32 {
    let bits = (((b & 0x7f) as u32) << 20) | (((b & 0x80) as u32) << 24);
    f32::from_bits(bits) * E4M3_RESCALE
}

/// A packed weight matrix `[rows, cols]` used as `y = x·Wᵀ`.
#[derive(Clone, Copy)]
pub(crate) struct PackedRef<'a> {
    pub kind: CodeKind,
    /// Codes, `[rows, row_bytes]`.
    pub codes: &'a [u8],
    pub row_bytes: usize,
    pub rows: usize,
    pub cols: usize,
    /// Elements per scale along `cols` (the last group may be shorter).
    pub group: usize,
    /// Rows sharing one row of scales (FP8 blocks; 1 for the other formats).
    pub row_block: usize,
    /// `[rows.div_ceil(row_block), cols.div_ceil(group)]`.
    pub scales: Scales<'a>,
    /// Zero points packed like the codes but along rows: i32 words `[rows.div_ceil(32/bits), groups]`
    /// as little-endian bytes, row `r` at bits `(r % (32/bits))·bits` (compressed-tensors).
    pub zeros: Option<&'a [u8]>,
}

/// Offsets of one row's scales and zero points (see [`PackedRef::row_params`]).
#[derive(Clone, Copy)]
pub(crate) struct RowParams {
    scale_base: usize,
    zero_base: usize,
    zero_shift: u32,
}

/// Why a packed view cannot be built over the given buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LayoutError(pub String);

impl<'a> PackedRef<'a> {
    /// Checks that the buffers cover the matrix.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        kind: CodeKind,
        codes: &'a [u8],
        row_bytes: usize,
        rows: usize,
        cols: usize,
        group: usize,
        scales: Scales<'a>,
        zeros: Option<&'a [u8]>,
    ) -> Result<Self, LayoutError> {
        let groups = cols.div_ceil(group.max(1));
        let need_row = (cols * kind.bits()).div_ceil(8);
        if group == 0 || row_bytes < need_row || codes.len() != rows * row_bytes {
            return Err(LayoutError(format!(
                "{} code bytes ({row_bytes} a row) do not hold {rows}x{cols} {}-bit codes",
                codes.len(),
                kind.bits()
            )));
        }
        if kind == CodeKind::Mxfp4 && (group != 32 || !cols.is_multiple_of(32)) {
            return Err(LayoutError(format!(
                "MXFP4 needs groups of 32 and a multiple of 32 columns, got {cols} columns"
            )));
        }
        if scales.len() != rows * groups {
            return Err(LayoutError(format!(
                "{} scales for {rows}x{groups} groups",
                scales.len()
            )));
        }
        if let Some(z) = zeros {
            let per_word = 32 / kind.bits();
            if kind == CodeKind::Mxfp4 || z.len() != rows.div_ceil(per_word) * groups * 4 {
                return Err(LayoutError(format!(
                    "{} zero-point bytes for {rows}x{groups} groups",
                    z.len()
                )));
            }
        }
        Ok(PackedRef {
            kind,
            codes,
            row_bytes,
            rows,
            cols,
            group,
            row_block: 1,
            scales,
            zeros,
        })
    }

    /// FP8 e4m3 `[rows, cols]` with f32 block scales `[ceil(rows/br), ceil(cols/bc)]`.
    pub(crate) fn fp8(
        codes: &'a [u8],
        rows: usize,
        cols: usize,
        (br, bc): (usize, usize),
        scales: &'a [f32],
    ) -> Result<Self, LayoutError> {
        if br == 0 || bc == 0 || codes.len() != rows * cols {
            return Err(LayoutError(format!(
                "{} FP8 bytes for {rows}x{cols} (blocks {br}x{bc})",
                codes.len()
            )));
        }
        if scales.len() != rows.div_ceil(br) * cols.div_ceil(bc) {
            return Err(LayoutError(format!(
                "{} FP8 block scales for {rows}x{cols} in {br}x{bc} blocks",
                scales.len()
            )));
        }
        Ok(PackedRef {
            kind: CodeKind::E4M3,
            codes,
            row_bytes: cols,
            rows,
            cols,
            group: bc,
            row_block: br,
            scales: Scales::F32(scales),
            zeros: None,
        })
    }

    pub(crate) fn groups(&self) -> usize {
        self.cols.div_ceil(self.group)
    }

    /// The codes of row `r`.
    #[inline]
    pub(crate) fn row(&self, r: usize) -> &'a [u8] {
        &self.codes[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    /// Where row `r`'s scales and zero points start (the divisions, hoisted out of group loops).
    #[inline]
    pub(crate) fn row_params(&self, r: usize, groups: usize) -> RowParams {
        let per_word = 32 / self.kind.bits();
        RowParams {
            scale_base: (r / self.row_block) * groups,
            zero_base: (r / per_word) * groups,
            zero_shift: ((r % per_word) * self.kind.bits()) as u32,
        }
    }

    /// `(zero, scale)` of group `g` of the row `p` was made for.
    #[inline(always)]
    pub(crate) fn params(&self, p: RowParams, g: usize) -> (f32, f32) {
        let scale = self.scales.get(p.scale_base + g) * self.kind.factor();
        let zero = match self.zeros {
            None => 0.0,
            Some(z) => {
                let w = (p.zero_base + g) * 4;
                let word = u32::from_le_bytes([z[w], z[w + 1], z[w + 2], z[w + 3]]);
                let stored = (word >> p.zero_shift) & ((1 << self.kind.bits()) - 1);
                (stored as i32 - self.kind.offset()) as f32
            }
        };
        (zero, scale)
    }

    /// `(zero, scale)` of group `g` of row `r`: element = `(table value - zero) · scale`.
    #[inline]
    pub(crate) fn group_params(&self, r: usize, g: usize) -> (f32, f32) {
        self.params(self.row_params(r, self.groups()), g)
    }

    /// The table value of element `j` of a row's codes (before zero and scale).
    #[inline]
    pub(crate) fn code(&self, row: &[u8], j: usize) -> f32 {
        match self.kind {
            CodeKind::Int8 => ((row[j] ^ 0x80) as i8) as f32,
            CodeKind::E4M3 => e4m3(row[j]),
            k => {
                let b = row[j / 2];
                let n = if j.is_multiple_of(2) {
                    b & 0x0f
                } else {
                    b >> 4
                };
                k.table()[n as usize] as f32
            }
        }
    }

    /// Element `(r, j)` exactly dequantized (tests and references only; products never call this).
    pub(crate) fn value(&self, r: usize, j: usize) -> f32 {
        let (zero, scale) = self.group_params(r, j / self.group);
        (self.code(self.row(r), j) - zero) * scale
    }
}

/// How one product runs.
enum Mode {
    /// f32 activations at an instruction-set level.
    Exact(Isa),
    /// Int8 activations, AVX512-VNNI.
    #[cfg(target_arch = "x86_64")]
    Vnni(int8act::QuantAct),
    /// Int8 activations, AVX2.
    #[cfg(target_arch = "x86_64")]
    Avx2Int8(int8act::QuantAct),
    /// Int8 activations, NEON.
    #[cfg(target_arch = "aarch64")]
    NeonInt8(int8act::QuantAct),
}

/// Computes rows `rows` of `y[i·ldy + r] = W[r,:]·x[i,:]` for every token `i < t`.
///
/// # Safety
/// `y` must be valid for writes at those elements and no other thread may access them meanwhile;
/// the mode's level must be supported; `x` holds `t·cols` values.
unsafe fn rows_kernel(
    mode: &Mode,
    w: &PackedRef<'_>,
    rows: Range<usize>,
    x: &[f32],
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    // SAFETY: (whole block) the caller's guarantees, and levels were checked by `Isa::supported`
    // (VNNI by `int8act::vnni::supported`, with a usable layout).
    unsafe {
        match mode {
            #[cfg(target_arch = "x86_64")]
            Mode::Vnni(a) => int8act::vnni::rows(w, rows, a, t, y, ldy),
            #[cfg(target_arch = "x86_64")]
            Mode::Avx2Int8(a) => int8act::avx2::rows(w, rows, a, t, y, ldy),
            #[cfg(target_arch = "aarch64")]
            Mode::NeonInt8(a) => int8act::neon::rows(w, rows, a, t, y, ldy),
            #[cfg(target_arch = "x86_64")]
            Mode::Exact(Isa::Avx512 | Isa::Avx512Bf16) => x86::rows_512(w, rows, x, t, y, ldy),
            #[cfg(target_arch = "x86_64")]
            Mode::Exact(Isa::Avx2) => x86::rows_256(w, rows, x, t, y, ldy),
            #[cfg(target_arch = "aarch64")]
            Mode::Exact(Isa::Neon) => neon::rows(w, rows, x, t, y, ldy),
            Mode::Exact(_) => scalar::rows(w, rows, x, t, y, ldy),
        }
    }
}

/// The mode of a product at `isa` and `precision`: [`Precision::Int8`] takes an int8-activation
/// kernel where one exists for this level and layout; everything else is exact.
fn mode(isa: Isa, precision: Precision, w: &PackedRef<'_>, x: &[f32], t: usize) -> Mode {
    if precision == Precision::Int8 {
        let quantized = || int8act::quantize(x, t, w.cols);
        match int8act::kernel_for(isa, w) {
            #[cfg(target_arch = "x86_64")]
            Some(int8act::Kernel::Vnni) => return Mode::Vnni(quantized()),
            #[cfg(target_arch = "x86_64")]
            Some(int8act::Kernel::Avx2) => return Mode::Avx2Int8(quantized()),
            #[cfg(target_arch = "aarch64")]
            Some(int8act::Kernel::Neon) => return Mode::NeonInt8(quantized()),
            _ => {}
        }
    }
    let _ = (w, x, t);
    Mode::Exact(isa)
}

/// `y[T, rows] = x[T, cols]·Wᵀ` at level `isa` and `precision`, rows split over the current pool.
pub(crate) fn packed_matmul_t_with(
    isa: Isa,
    precision: Precision,
    w: &PackedRef<'_>,
    x: &[f32],
    t: usize,
    y: &mut [f32],
) {
    assert_eq!(x.len(), t * w.cols, "activations do not match the weight");
    assert_eq!(y.len(), t * w.rows, "output does not match the weight");
    let isa = if isa.supported() { isa } else { Isa::Scalar };
    if w.rows == 0 || t == 0 {
        return;
    }
    let mode = mode(isa, precision, w, x, t);
    let yp = YPtr(y.as_mut_ptr());
    let threads = rayon::current_num_threads();
    if w.rows * w.cols * t < PAR_THRESHOLD || threads == 1 {
        // SAFETY: `y` is exclusively borrowed and has t·rows elements.
        unsafe { rows_kernel(&mode, w, 0..w.rows, x, t, yp, w.rows) };
        return;
    }
    let min_rows = (PAR_THRESHOLD / (w.cols * t).max(1)).max(1);
    let split = if t == 1 { 2 } else { 4 };
    let per = w.rows.div_ceil(threads * split).max(min_rows).div_ceil(16) * 16;
    let tasks = w.rows.div_ceil(per);
    (0..tasks).into_par_iter().for_each(|c| {
        let rows = c * per..((c + 1) * per).min(w.rows);
        // SAFETY: tasks own disjoint row ranges of `y`, which outlives the parallel loop.
        unsafe { rows_kernel(&mode, w, rows, x, t, yp, w.rows) };
    });
}

/// `y[T, rows] = x[T, cols]·Wᵀ` at the process's kernel level and the thread's precision.
pub(crate) fn packed_matmul_t(w: &PackedRef<'_>, x: &[f32], t: usize, y: &mut [f32]) {
    packed_matmul_t_with(super::isa(), super::current_precision(), w, x, t, y);
}

#[cfg(test)]
mod tests;
