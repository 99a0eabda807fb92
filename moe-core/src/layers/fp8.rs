//! FP8 e4m3 weights with block scales (DeepSeek V3/V3.2, Kimi K2 and other FP8 checkpoints):
//! `W[r, c] = e4m3(Wq[r, c]) · S[r / block_rows, c / block_cols]`, where `S` is the `weight_scale_inv`
//! tensor (a multiplier despite its name). Products decode the bytes in registers
//! (the crate-private `kernels::packed`): an FP8 matrix is read at one byte per weight.

use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::kernels::packed::{packed_matmul_t, PackedRef};
use crate::weights::{DType, Tensor, WeightSource};

/// The 256 values of an e4m3fn byte (`s eeee mmm`, bias 7, no infinities, `0x7f`/`0xff` NaN).
fn lut() -> &'static [f32; 256] {
    static LUT: OnceLock<[f32; 256]> = OnceLock::new();
    LUT.get_or_init(|| std::array::from_fn(|b| decode_e4m3(b as u8)))
}

/// Decodes one e4m3fn byte.
pub fn decode_e4m3(b: u8) -> f32 {
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = ((b >> 3) & 0x0f) as i32;
    let m = (b & 0x07) as f32;
    if e == 15 && m == 7.0 {
        return f32::NAN;
    }
    if e == 0 {
        sign * (m / 8.0) * 2f32.powi(-6)
    } else {
        sign * (1.0 + m / 8.0) * 2f32.powi(e - 7)
    }
}

/// An FP8 matrix `[rows, cols]` and its block scales `[ceil(rows/br), ceil(cols/bc)]`.
#[derive(Debug, Clone)]
pub(crate) struct Fp8Matrix {
    pub weight: Tensor,
    pub scale_inv: Vec<f32>,
    pub block: (usize, usize),
    pub rows: usize,
    pub cols: usize,
}

impl Fp8Matrix {
    /// Loads `weight` (F8_E4M3 `[rows, cols]`) and `weight_scale_inv` from the scope `src` (the layer).
    pub(crate) fn load(
        src: &WeightSource,
        rows: usize,
        cols: usize,
        block: (usize, usize),
    ) -> Result<Self> {
        let weight = src.get_any("weight", &[rows, cols])?;
        if weight.dtype() != DType::F8E4M3 {
            return Err(Error::Dtype {
                name: weight.name().to_string(),
                expected: "F8_E4M3".into(),
                found: weight.dtype().to_string(),
            });
        }
        let (br, bc) = block;
        let grid = [rows.div_ceil(br), cols.div_ceil(bc)];
        let scale_inv = src.get_f32("weight_scale_inv", &grid)?;
        Ok(Fp8Matrix {
            weight,
            scale_inv,
            block,
            rows,
            cols,
        })
    }

    /// Rows `r0..r1` dequantised into `out` `[r1-r0, cols]`.
    pub(crate) fn dequantize_rows(&self, r0: usize, r1: usize, out: &mut [f32]) {
        let lut = lut();
        let bytes = self.weight.bytes();
        let (br, bc) = self.block;
        let grid_cols = self.cols.div_ceil(bc);
        for r in r0..r1 {
            let row = &bytes[r * self.cols..(r + 1) * self.cols];
            let scales = &self.scale_inv[(r / br) * grid_cols..(r / br + 1) * grid_cols];
            let o = &mut out[(r - r0) * self.cols..(r - r0 + 1) * self.cols];
            for (c, (v, b)) in o.iter_mut().zip(row).enumerate() {
                *v = lut[*b as usize] * scales[c / bc];
            }
        }
    }

    /// `y[T, rows] = x[T, cols] · Wᵀ`, the e4m3 bytes decoded in registers by the packed kernels
    /// (no dequantized copy).
    pub(crate) fn matmul_t(&self, x: &[f32], t: usize, y: &mut [f32]) {
        let w = PackedRef::fp8(
            self.weight.bytes(),
            self.rows,
            self.cols,
            self.block,
            &self.scale_inv,
        )
        .expect("shapes checked at load");
        packed_matmul_t(&w, x, t, y);
    }

    /// The whole matrix in f32 (for weights that are used in pieces, such as MLA's `kv_b_proj`).
    pub(crate) fn dequantize(&self) -> Tensor {
        let mut out = vec![0.0f32; self.rows * self.cols];
        self.dequantize_rows(0, self.rows, &mut out);
        Tensor::from_f32(self.weight.name(), vec![self.rows, self.cols], &out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e4m3_decoding_matches_the_format() {
        assert_eq!(decode_e4m3(0x00), 0.0);
        assert_eq!(decode_e4m3(0x38), 1.0); // e = 7, m = 0
        assert_eq!(decode_e4m3(0xb8), -1.0);
        assert_eq!(decode_e4m3(0x7e), 448.0); // the largest finite value
        assert_eq!(decode_e4m3(0x01), 2f32.powi(-9)); // smallest subnormal
        assert!(decode_e4m3(0x7f).is_nan() && decode_e4m3(0xff).is_nan());
        assert_eq!(decode_e4m3(0x3c), 1.5);
    }
}
