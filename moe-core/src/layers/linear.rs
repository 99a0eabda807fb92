//! A linear layer whose weight stays in the checkpoint's dtype.

use crate::error::Result;
use crate::kernels::{self, MatRef};
use crate::weights::{Tensor, WeightSource};

/// How the stored matrix is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientation {
    /// Stored `[out, in]`, `y = x·Wᵀ` (`nn.Linear`).
    OutIn,
    /// Stored `[in, out]`, `y = x·W` (fused experts of gpt-oss and Llama 4).
    InOut,
}

#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Vec<f32>>,
    pub in_dim: usize,
    pub out_dim: usize,
    orientation: Orientation,
}

impl Linear {
    /// Loads `name.weight` of shape `[out, in]` (and `name.bias` `[out]` when `bias`).
    pub fn load(
        src: &WeightSource,
        name: &str,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> Result<Self> {
        let s = src.pp(name);
        let weight = s.get("weight", &[out_dim, in_dim])?;
        let bias = if bias {
            Some(s.get_f32("bias", &[out_dim])?)
        } else {
            None
        };
        Ok(Linear {
            weight,
            bias,
            in_dim,
            out_dim,
            orientation: Orientation::OutIn,
        })
    }

    /// A linear layer over an already-sliced 2-D tensor.
    pub fn from_tensor(weight: Tensor, orientation: Orientation, bias: Option<Vec<f32>>) -> Self {
        let (a, b) = (weight.shape()[0], weight.shape()[1]);
        let (out_dim, in_dim) = match orientation {
            Orientation::OutIn => (a, b),
            Orientation::InOut => (b, a),
        };
        Linear {
            weight,
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
    pub fn forward(&self, x: &[f32], t: usize) -> Vec<f32> {
        let mut y = vec![0.0; t * self.out_dim];
        self.forward_into(x, t, &mut y);
        y
    }

    pub fn forward_into(&self, x: &[f32], t: usize, y: &mut [f32]) {
        match self.orientation {
            Orientation::OutIn => kernels::matmul_t(self.mat(), x, t, y),
            Orientation::InOut => kernels::matmul_n(self.mat(), x, t, y),
        }
        if let Some(b) = &self.bias {
            for row in y.chunks_exact_mut(self.out_dim) {
                kernels::add_assign(row, b);
            }
        }
    }

    /// Bytes of weight data.
    pub fn weight_bytes(&self) -> usize {
        self.weight.bytes().len()
    }
}
