//! RMSNorm and LayerNorm with f32 weights.

use crate::error::Result;
use crate::kernels;
use crate::weights::WeightSource;

/// `y = w ⊙ x / sqrt(mean(x²) + eps)`.
#[derive(Debug, Clone)]
pub(crate) struct RmsNorm {
    pub weight: Vec<f32>,
    pub eps: f32,
}

impl RmsNorm {
    /// Loads `name.weight` `[dim]`.
    pub(crate) fn load(src: &WeightSource, name: &str, dim: usize, eps: f32) -> Result<Self> {
        Ok(RmsNorm {
            weight: src.pp(name).get_f32("weight", &[dim])?,
            eps,
        })
    }

    /// Normalises each `dim`-sized row of `x` in place.
    pub(crate) fn forward(&self, x: &mut [f32]) {
        kernels::rms_norm(x, &self.weight, self.eps);
    }
}

/// `y = w ⊙ (x - mean)/sqrt(var + eps) + b`.
#[derive(Debug, Clone)]
pub(crate) struct LayerNorm {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub eps: f32,
}

impl LayerNorm {
    pub(crate) fn load(src: &WeightSource, name: &str, dim: usize, eps: f32) -> Result<Self> {
        let s = src.pp(name);
        Ok(LayerNorm {
            weight: s.get_f32("weight", &[dim])?,
            bias: s.get_f32("bias", &[dim])?,
            eps,
        })
    }

    pub(crate) fn forward(&self, x: &mut [f32]) {
        kernels::layer_norm(x, &self.weight, &self.bias, self.eps);
    }
}
