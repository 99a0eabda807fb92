//! Symmetric int4/int8 group quantization of float weights, rounded exactly as compressed-tensors
//! computes it (`calculate_qparams` + `quantize` + `pack_to_int32`), so a matrix quantized here is
//! bit for bit what compressed-tensors writes for the same weights:
//! - per row and group of `group` columns, `scale = absmax / (range / 2)` with `range = qmax - qmin`
//!   (15 for int4, 255 for int8: `absmax / 7.5`, `absmax / 127.5`), computed in f32 and rounded to
//!   the weight's dtype (bf16, f16 or f32), which is the dtype the scale is stored in; a zero scale
//!   becomes that dtype's epsilon;
//! - `q = round_half_even(clamp(x / scale, qmin, qmax))` with the quotient rounded to the weight's
//!   dtype first (torch divides a bf16 tensor in f32 and rounds the result to bf16);
//! - codes stored `+8` (int4, eight per little-endian i32 word, element `i` at bits `4i..4i+3`) or
//!   `+128` (int8, four per word).

use half::{bf16, f16};
use rayon::prelude::*;

use crate::kernels::FloatData;

/// Per-group scales in the dtype of the weights they came from, `[rows, cols / group]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OwnedScales {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
}

impl OwnedScales {
    /// The little-endian bytes of the scales.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        match self {
            OwnedScales::F32(v) => bytemuck::cast_slice(v).to_vec(),
            OwnedScales::F16(v) => bytemuck::cast_slice(v).to_vec(),
            OwnedScales::BF16(v) => bytemuck::cast_slice(v).to_vec(),
        }
    }
}

/// The weight's float format: rounds an f32 to it and back.
#[derive(Clone, Copy)]
enum Round {
    F32,
    F16,
    BF16,
}

impl Round {
    fn of(w: &FloatData<'_>) -> Self {
        match w {
            FloatData::F32(_) => Round::F32,
            FloatData::F16(_) => Round::F16,
            FloatData::BF16(_) => Round::BF16,
        }
    }

    #[inline]
    fn round(self, v: f32) -> f32 {
        match self {
            Round::F32 => v,
            Round::F16 => f16::from_f32(v).to_f32(),
            Round::BF16 => bf16::from_f32(v).to_f32(),
        }
    }

    /// `torch.finfo(dtype).eps`.
    fn eps(self) -> f32 {
        match self {
            Round::F32 => f32::EPSILON,
            Round::F16 => f16::EPSILON.to_f32(),
            Round::BF16 => bf16::EPSILON.to_f32(),
        }
    }
}

/// `(qmin, qmax)` of signed `bits`-bit integers.
fn range(bits: u32) -> (f32, f32) {
    let half = (1u32 << (bits - 1)) as f32;
    (-half, half - 1.0)
}

/// The scales of `w` (`[rows, cols]`, `cols` a multiple of `group`), as f32 values of the weight's
/// dtype, `[rows, cols / group]`. Rows are split over the current rayon pool.
fn scales_f32(w: &FloatData<'_>, rows: usize, cols: usize, bits: u32, group: usize) -> Vec<f32> {
    let r = Round::of(w);
    let (qmin, qmax) = range(bits);
    let half_range = r.round((qmax - qmin) / 2.0);
    let groups = cols / group;
    let mut out = vec![0.0f32; rows * groups];
    out.par_chunks_mut(groups.max(1))
        .enumerate()
        .for_each(|(row, out)| {
            for (g, s) in out.iter_mut().enumerate() {
                let start = row * cols + g * group;
                let absmax = (start..start + group)
                    .map(|i| w.get(i).abs())
                    .fold(0.0f32, f32::max);
                let v = r.round(absmax / half_range);
                *s = if v == 0.0 { r.eps() } else { v };
            }
        });
    out
}

/// The per-group scales of `w` `[rows, cols]` in the weight's dtype, `[rows, cols / group]`.
pub(crate) fn quantize_scales(
    w: &FloatData<'_>,
    rows: usize,
    cols: usize,
    bits: u32,
    group: usize,
) -> OwnedScales {
    let s = scales_f32(w, rows, cols, bits, group);
    match Round::of(w) {
        Round::F32 => OwnedScales::F32(s),
        Round::F16 => OwnedScales::F16(s.into_iter().map(f16::from_f32).collect()),
        Round::BF16 => OwnedScales::BF16(s.into_iter().map(bf16::from_f32).collect()),
    }
}

/// Quantizes `w` `[rows, cols]` to `bits` (4 or 8) with one scale per `group` columns; `cols` must be
/// a multiple of `group` and `group` a multiple of 8 (callers check). Returns the packed codes
/// `[rows, cols·bits/32]` i32 words and the scales `[rows, cols / group]`.
pub(crate) fn quantize_matrix(
    w: &FloatData<'_>,
    rows: usize,
    cols: usize,
    bits: u32,
    group: usize,
) -> (Vec<i32>, OwnedScales) {
    debug_assert!(bits == 4 || bits == 8);
    debug_assert!(group > 0 && cols.is_multiple_of(group) && group.is_multiple_of(8));
    debug_assert_eq!(w.len(), rows * cols);
    let r = Round::of(w);
    let (qmin, qmax) = range(bits);
    let offset = 1i32 << (bits - 1);
    let mask = (1u32 << bits) - 1;
    let per_word = 32 / bits as usize;
    let scales = scales_f32(w, rows, cols, bits, group);
    let groups = cols / group;
    let words = cols / per_word;
    let mut codes = vec![0i32; rows * words];
    codes
        .par_chunks_mut(words.max(1))
        .enumerate()
        .for_each(|(row, out)| {
            for j in 0..cols {
                let s = scales[row * groups + j / group];
                let q = r
                    .round(w.get(row * cols + j) / s)
                    .clamp(qmin, qmax)
                    .round_ties_even();
                // NaN weights clamp to NaN and convert to 0 (saturating cast): code `offset`, value 0.
                let code = ((q as i32 + offset) as u32) & mask;
                let shift = (j % per_word) as u32 * bits;
                out[j / per_word] |= (code << shift) as i32;
            }
        });
    let scales = match r {
        Round::F32 => OwnedScales::F32(scales),
        Round::F16 => OwnedScales::F16(scales.into_iter().map(f16::from_f32).collect()),
        Round::BF16 => OwnedScales::BF16(scales.into_iter().map(bf16::from_f32).collect()),
    };
    (codes, scales)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unpack(codes: &[i32], bits: u32, cols: usize, row: usize, j: usize) -> i32 {
        let per_word = 32 / bits as usize;
        let words = cols / per_word;
        let w = codes[row * words + j / per_word] as u32;
        let c = (w >> ((j % per_word) as u32 * bits)) & ((1 << bits) - 1);
        c as i32 - (1 << (bits - 1))
    }

    #[test]
    fn int4_matches_compressed_tensors_rounding() {
        // One group of 8: absmax 1.5 → scale 0.2 (bf16 0.2001953125), quotients rounded half-even,
        // the positive extreme clamped to 7 and the negative one reaching -8.
        let vals = [1.5f32, -1.5, 0.1, -0.3, 0.0, 0.7, -0.05, 1.0];
        let w: Vec<bf16> = vals.iter().map(|&v| bf16::from_f32(v)).collect();
        let (codes, scales) = quantize_matrix(&FloatData::BF16(&w), 1, 8, 4, 8);
        let s = bf16::from_f32(1.5 / 7.5).to_f32();
        assert_eq!(scales, OwnedScales::BF16(vec![bf16::from_f32(s)]));
        let q: Vec<i32> = (0..8).map(|j| unpack(&codes, 4, 8, 0, j)).collect();
        let want: Vec<i32> = w
            .iter()
            .map(|v| {
                bf16::from_f32(v.to_f32() / s)
                    .to_f32()
                    .clamp(-8.0, 7.0)
                    .round_ties_even() as i32
            })
            .collect();
        assert_eq!(q, want);
        assert_eq!(q[0], 7);
        assert_eq!(q[1], -8);
        assert_eq!(q[4], 0);
    }

    #[test]
    fn zero_group_gets_eps_scale_and_zero_codes() {
        let w = vec![0.0f32; 16];
        let (codes, scales) = quantize_matrix(&FloatData::F32(&w), 2, 8, 8, 8);
        assert_eq!(scales, OwnedScales::F32(vec![f32::EPSILON; 2]));
        // Every byte is the offset 128 (value 0).
        assert!(codes.iter().all(|&c| c as u32 == 0x8080_8080));
    }

    #[test]
    fn values_within_half_a_step_plus_rounding() {
        let mut s = 7u64;
        let (rows, cols, group) = (5, 64, 16);
        let w: Vec<f32> = (0..rows * cols)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.0
            })
            .collect();
        for bits in [4, 8] {
            let (codes, scales) = quantize_matrix(&FloatData::F32(&w), rows, cols, bits, group);
            let OwnedScales::F32(sc) = scales else {
                panic!("f32 weights keep f32 scales")
            };
            for r in 0..rows {
                for j in 0..cols {
                    let sc = sc[r * (cols / group) + j / group];
                    let v = unpack(&codes, bits, cols, r, j) as f32 * sc;
                    let err = (v - w[r * cols + j]).abs();
                    assert!(
                        err <= 0.5 * sc * (1.0 + 1e-4),
                        "{bits} bits: {err} > {sc}/2"
                    );
                }
            }
        }
    }
}
