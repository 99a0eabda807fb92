//! Packed low-bit weight matrices as published, borrowed from the checkpoint map and multiplied by
//! [`kernels::packed`](crate::kernels::packed) without ever being dequantized:
//! - compressed-tensors `pack-quantized` modules: `weight_packed` i32 `[out, in·bits/32]`,
//!   `weight_scale` `[out, in/group]` (bf16/f16/f32), `weight_shape` `[2]`, and for asymmetric schemes
//!   `weight_zero_point` i32 `[out·bits/32, in/group]`;
//! - MXFP4 (gpt-oss experts): `_blocks` u8 `[out, in/32, 16]` and `_scales` u8 `[out, in/32]` (e8m0).

use super::{Linear, Orientation};
use crate::error::{Error, Result};
use crate::kernels::packed::{
    packed_matmul_t, quantize_matrix, CodeKind, OwnedScales, PackedRef, Scales,
};
use crate::kernels::FloatData;
use crate::weights::{DType, Tensor, WeightSource};

/// A packed matrix `[rows, cols]` used as `y = x·Wᵀ`.
#[derive(Debug, Clone)]
pub(crate) struct PackedMatrix {
    kind: CodeKind,
    /// Codes, `[rows, row_bytes]` as stored (I32 words or U8 blocks).
    codes: Tensor,
    /// `[rows, groups]`: BF16/F16/F32, or U8 e8m0 for MXFP4.
    scales: Tensor,
    /// Packed zero points (asymmetric compressed-tensors schemes).
    zeros: Option<Tensor>,
    row_bytes: usize,
    rows: usize,
    cols: usize,
    group: usize,
}

fn expect_dtype(t: &Tensor, want: &[DType]) -> Result<()> {
    if want.contains(&t.dtype()) {
        Ok(())
    } else {
        Err(Error::Dtype {
            name: t.name().to_string(),
            expected: want
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(" or "),
            found: t.dtype().to_string(),
        })
    }
}

impl PackedMatrix {
    /// Loads the compressed-tensors module `s` (a `Linear` with `weight_packed`) of shape `[rows, cols]`.
    pub(crate) fn load(s: &WeightSource, rows: usize, cols: usize) -> Result<Self> {
        let module = s.prefix();
        let scheme = s.quant().pack_scheme().ok_or_else(|| {
            Error::InconsistentConfig(format!(
                "{module} is stored packed (weight_packed) but quantization_config does not \
                 declare compressed-tensors pack-quantized"
            ))
        })?;
        if scheme.ignores(module) {
            return Err(Error::InconsistentConfig(format!(
                "{module} is stored packed but quantization_config's ignore list names it"
            )));
        }
        let kind = if scheme.bits == 4 {
            CodeKind::Int4
        } else {
            CodeKind::Int8
        };
        let bits = scheme.bits as usize;
        let group = scheme.group_size.unwrap_or(cols).max(1);
        let groups = cols.div_ceil(group);
        let shape_t = s.get_any("weight_shape", &[2])?;
        let found: Vec<usize> = shape_t
            .to_i64_vec()?
            .into_iter()
            .map(|v| usize::try_from(v).unwrap_or(usize::MAX))
            .collect();
        if found != [rows, cols] {
            return Err(Error::Shape {
                name: shape_t.name().to_string(),
                expected: vec![rows, cols],
                found,
            });
        }
        let words = (cols * bits).div_ceil(32);
        let codes = s.get_any("weight_packed", &[rows, words])?;
        expect_dtype(&codes, &[DType::I32])?;
        let scales = s.get("weight_scale", &[rows, groups])?;
        let zeros = if scheme.symmetric {
            None
        } else {
            let z = s.get_any("weight_zero_point", &[rows.div_ceil(32 / bits), groups])?;
            expect_dtype(&z, &[DType::I32])?;
            Some(z)
        };
        Self::checked(kind, codes, scales, zeros, words * 4, rows, cols, group)
    }

    /// The float matrix `w` `[rows, cols]` quantized to `bits` with one scale per `group` columns
    /// (`cols` a multiple of `group`), held in owned memory in exactly the layout
    /// [`PackedMatrix::load`] reads from a compressed-tensors checkpoint (so the same kernels run and
    /// a saved copy reloads to the same bytes). `module` names the codes and scales in errors.
    pub(crate) fn quantize(module: &str, w: &Tensor, bits: u32, group: usize) -> Result<Self> {
        let (rows, cols) = match w.shape() {
            [r, c] => (*r, *c),
            s => {
                return Err(Error::Shape {
                    name: w.name().to_string(),
                    expected: vec![0, 0],
                    found: s.to_vec(),
                })
            }
        };
        let (codes, scales) = quantize_matrix(&w.float_data()?, rows, cols, bits, group);
        let words = cols * bits as usize / 32;
        let codes = Tensor::from_bytes(
            &format!("{module}.weight_packed"),
            DType::I32,
            vec![rows, words],
            bytemuck::cast_slice(&codes),
        );
        let dtype = match scales {
            OwnedScales::F32(_) => DType::F32,
            OwnedScales::F16(_) => DType::F16,
            OwnedScales::BF16(_) => DType::BF16,
        };
        let scales = Tensor::from_bytes(
            &format!("{module}.weight_scale"),
            dtype,
            vec![rows, cols / group],
            &scales.to_bytes(),
        );
        let kind = if bits == 4 {
            CodeKind::Int4
        } else {
            CodeKind::Int8
        };
        Self::checked(kind, codes, scales, None, words * 4, rows, cols, group)
    }

    /// An MXFP4 matrix from one expert's `blocks` `[rows, cols/32, 16]` and `scales` `[rows, cols/32]`.
    pub(crate) fn mxfp4(blocks: Tensor, scales: Tensor, rows: usize, cols: usize) -> Result<Self> {
        expect_dtype(&blocks, &[DType::U8])?;
        expect_dtype(&scales, &[DType::U8])?;
        Self::checked(
            CodeKind::Mxfp4,
            blocks,
            scales,
            None,
            cols / 2,
            rows,
            cols,
            32,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn checked(
        kind: CodeKind,
        codes: Tensor,
        scales: Tensor,
        zeros: Option<Tensor>,
        row_bytes: usize,
        rows: usize,
        cols: usize,
        group: usize,
    ) -> Result<Self> {
        let m = PackedMatrix {
            kind,
            codes,
            scales,
            zeros,
            row_bytes,
            rows,
            cols,
            group,
        };
        m.try_view()
            .map_err(|e| Error::InconsistentConfig(format!("{}: {e}", m.codes.name())))?;
        Ok(m)
    }

    fn try_view(&self) -> std::result::Result<PackedRef<'_>, String> {
        let scales = if self.kind == CodeKind::Mxfp4 {
            Scales::E8M0(self.scales.bytes())
        } else {
            match self.scales.float_data().map_err(|e| e.to_string())? {
                FloatData::F32(s) => Scales::F32(s),
                FloatData::F16(s) => Scales::F16(s),
                FloatData::BF16(s) => Scales::BF16(s),
            }
        };
        PackedRef::new(
            self.kind,
            self.codes.bytes(),
            self.row_bytes,
            self.rows,
            self.cols,
            self.group,
            scales,
            self.zeros.as_ref().map(|z| z.bytes()),
        )
        .map_err(|e| e.0)
    }

    fn view(&self) -> PackedRef<'_> {
        self.try_view()
            .expect("layout checked when the matrix was built")
    }

    /// `y[T, rows] = x[T, cols]·Wᵀ`, decoding the codes in registers.
    pub(crate) fn matmul_t(&self, x: &[f32], t: usize, y: &mut [f32]) {
        packed_matmul_t(&self.view(), x, t, y);
    }

    /// The whole matrix dequantized to f32 (only for weights used in slices, like MLA's `kv_b_proj`).
    pub(crate) fn dequantize(&self) -> Tensor {
        let v = self.view();
        let data: Vec<f32> = (0..self.rows * self.cols)
            .map(|i| v.value(i / self.cols, i % self.cols))
            .collect();
        Tensor::from_f32(self.codes.name(), vec![self.rows, self.cols], &data)
    }

    /// Bytes of scales and zero points (the codes are the layer's `weight`).
    pub(crate) fn side_bytes(&self) -> usize {
        self.scales.bytes().len() + self.zeros.as_ref().map_or(0, |z| z.bytes().len())
    }

    /// The codes tensor (the layer's stored `weight`).
    pub(crate) fn codes(&self) -> &Tensor {
        &self.codes
    }
}

impl Linear {
    /// A `y = x·Wᵀ (+ b)` layer over packed weights.
    pub(crate) fn from_packed(m: PackedMatrix, bias: Option<Vec<f32>>) -> Linear {
        let mut l = Linear::from_tensor(m.codes().clone(), Orientation::OutIn, bias);
        l.in_dim = m.cols;
        l.out_dim = m.rows;
        l.packed = Some(Box::new(m));
        l
    }

    /// Whether the weights are packed low-bit codes.
    pub(crate) fn is_packed(&self) -> bool {
        self.packed.is_some()
    }
}
