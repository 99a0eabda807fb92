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
        Self::load_offset(src, name, dim, eps, 0.0)
    }

    /// Loads `name.weight` `[dim]` plus `offset` (1 for zero-centred norms, `x·(1 + w)`).
    pub(crate) fn load_offset(
        src: &WeightSource,
        name: &str,
        dim: usize,
        eps: f32,
        offset: f32,
    ) -> Result<Self> {
        let mut weight = src.pp(name).get_f32("weight", &[dim])?;
        if offset != 0.0 {
            weight.iter_mut().for_each(|w| *w += offset);
        }
        Ok(RmsNorm { weight, eps })
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
