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
pub(super) mod vnni;

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2;

#[cfg(target_arch = "aarch64")]
pub(super) mod neon;
