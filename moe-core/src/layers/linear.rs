//! A linear layer whose weight stays in the checkpoint's dtype.

use super::fp8::Fp8Matrix;
use super::packed::PackedMatrix;
use crate::error::Result;
use crate::kernels::{self, MatRef};
use crate::weights::{DType, Tensor, WeightSource};

/// How the stored matrix is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Orientation {
    /// Stored `[out, in]`, `y = x·Wᵀ` (`nn.Linear`).
    OutIn,
    /// Stored `[in, out]`, `y = x·W` (fused experts of gpt-oss and Llama 4).
    InOut,
}

#[derive(Debug, Clone)]
pub(crate) struct Linear {
    /// The stored weight (F8_E4M3 bytes when `fp8` is set).
    pub weight: Tensor,
    /// FP8 block-scaled weights (published FP8 checkpoints); `None` for bf16/f16/f32.
    pub fp8: Option<Box<Fp8Matrix>>,
    /// Packed low-bit weights (compressed-tensors int4/int8, MXFP4); `weight` holds their codes.
    pub(crate) packed: Option<Box<PackedMatrix>>,
    pub bias: Option<Vec<f32>>,
    pub in_dim: usize,
    pub out_dim: usize,
    orientation: Orientation,
}

impl Linear {
    /// Loads `name.weight` of shape `[out, in]` (and `name.bias` `[out]` when `bias`).
    pub(crate) fn load(
        src: &WeightSource,
        name: &str,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> Result<Self> {
        let s = src.pp(name);
        if s.contains("weight_packed") {
            let bias = bias.then(|| s.get_f32("bias", &[out_dim])).transpose()?;
            return Ok(Self::from_packed(
                PackedMatrix::load(&s, out_dim, in_dim)?,
                bias,
            ));
        }
        if let Some(plan) = s.quantize_plan() {
            if plan.covers(s.prefix(), in_dim) {
                let w = s.get("weight", &[out_dim, in_dim])?;
                let bias = bias.then(|| s.get_f32("bias", &[out_dim])).transpose()?;
                let m =
                    PackedMatrix::quantize(s.prefix(), &w, plan.opts.bits, plan.opts.group_size)?;
                return Ok(Self::from_packed(m, bias));
            }
        }
        let (weight, fp8) = if s.dtype_of("weight") == Some(DType::F8E4M3) {
            let m = Fp8Matrix::load(&s, out_dim, in_dim, s.fp8_block())?;
            (m.weight.clone(), Some(Box::new(m)))
        } else {
            (s.get("weight", &[out_dim, in_dim])?, None)
        };
        let bias = if bias {
            Some(s.get_f32("bias", &[out_dim])?)
        } else {
            None
        };
        Ok(Linear {
            weight,
            fp8,
            packed: None,
            bias,
            in_dim,
            out_dim,
            orientation: Orientation::OutIn,
        })
    }

    /// The same layer with FP8 weights dequantised to f32 once (for weights used in slices, like
    /// MLA's `kv_b_proj`); float layers are returned unchanged.
    pub(crate) fn into_float(mut self) -> Self {
        if let Some(m) = self.fp8.take() {
            self.weight = m.dequantize();
        }
        if let Some(m) = self.packed.take() {
            self.weight = m.dequantize();
        }
        self
    }

    /// A linear layer over an already-sliced 2-D tensor.
    pub(crate) fn from_tensor(
        weight: Tensor,
        orientation: Orientation,
        bias: Option<Vec<f32>>,
    ) -> Self {
        let (a, b) = (weight.shape()[0], weight.shape()[1]);
        let (out_dim, in_dim) = match orientation {
            Orientation::OutIn => (a, b),
            Orientation::InOut => (b, a),
        };
        Linear {
            weight,
            fp8: None,
            packed: None,
            bias,
            in_dim,
            out_dim,
            orientation,
        }
    }

    fn mat(&self) -> MatRef<'_> {
        let data = self
            .weight
            .float_data()
            .expect("dtype checked at load by WeightSource::get");
        let s = self.weight.shape();
        MatRef::new(data, s[0], s[1])
    }

    /// `y[T, out] = x[T, in]·Wᵀ + b`.
    pub(crate) fn forward(&self, x: &[f32], t: usize) -> Vec<f32> {
        let mut y = vec![0.0; t * self.out_dim];
        self.forward_into(x, t, &mut y);
        y
    }

    pub(crate) fn forward_into(&self, x: &[f32], t: usize, y: &mut [f32]) {
        match (&self.fp8, self.orientation) {
            _ if self.packed.is_some() => self.packed.iter().for_each(|m| m.matmul_t(x, t, y)),
            (Some(m), _) => m.matmul_t(x, t, y),
            (None, Orientation::OutIn) => kernels::matmul_t(self.mat(), x, t, y),
            (None, Orientation::InOut) => kernels::matmul_n(self.mat(), x, t, y),
        }
        if let Some(b) = &self.bias {
            for row in y.chunks_exact_mut(self.out_dim) {
                kernels::add_assign(row, b);
            }
        }
    }

    /// Bytes of weight data.
    pub(crate) fn weight_bytes(&self) -> usize {
        self.weight.bytes().len() + self.packed.as_ref().map_or(0, |m| m.side_bytes())
    }
}
