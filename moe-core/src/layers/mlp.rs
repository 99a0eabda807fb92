//! The SwiGLU feed-forward: `down(silu(gate(x)) ⊙ up(x))`, and gpt-oss's clamped variant.

use super::Linear;
use crate::config::ExpertActivation;
use crate::error::Result;
use crate::kernels;
use crate::weights::WeightSource;

/// A dense SwiGLU MLP with separate gate/up/down projections (`gate_proj`, `up_proj`, `down_proj`).
#[derive(Debug, Clone)]
pub(crate) struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Mlp {
    /// Loads `{gate,up,down}_proj` (or Mixtral's `w1`, `w3`, `w2` when `names` says so).
    pub(crate) fn load(
        src: &WeightSource,
        hidden: usize,
        inter: usize,
        names: [&str; 3],
    ) -> Result<Self> {
        Ok(Mlp {
            gate_proj: Linear::load(src, names[0], hidden, inter, false)?,
            up_proj: Linear::load(src, names[1], hidden, inter, false)?,
            down_proj: Linear::load(src, names[2], inter, hidden, false)?,
        })
    }

    /// Bytes of the three projections' weights.
    pub(crate) fn weight_bytes(&self) -> usize {
        self.gate_proj.weight_bytes() + self.up_proj.weight_bytes() + self.down_proj.weight_bytes()
    }

    /// `y[T, H]`.
    pub(crate) fn forward(&self, x: &[f32], t: usize) -> Vec<f32> {
        self.forward_act(x, t, ExpertActivation::SwiGlu)
    }

    /// `y[T, H]` with the activation `act` (DeepSeek V4's shared experts are clamped).
    pub(crate) fn forward_act(&self, x: &[f32], t: usize, act: ExpertActivation) -> Vec<f32> {
        let mut g = self.gate_proj.forward(x, t); // [T, I]
        let u = self.up_proj.forward(x, t); // [T, I]
        swiglu(&mut g, &u, act);
        self.down_proj.forward(&g, t)
    }
}

/// `gate = act(gate, up)` elementwise: `silu(g)·u`, or gpt-oss's clamped `(u+1)·g·σ(αg)`.
pub(crate) fn swiglu(gate: &mut [f32], up: &[f32], act: ExpertActivation) {
    match act {
        ExpertActivation::SwiGlu => {
            for (g, u) in gate.iter_mut().zip(up) {
                *g = kernels::silu(*g) * u;
            }
        }
        ExpertActivation::ClampedSwiGlu { alpha, limit } => {
            for (g, u) in gate.iter_mut().zip(up) {
                let gc = g.min(limit);
                let uc = u.clamp(-limit, limit);
                *g = (uc + 1.0) * gc * kernels::sigmoid(alpha * gc);
            }
        }
        ExpertActivation::ClampedSilu { limit } => {
            for (g, u) in gate.iter_mut().zip(up) {
                *g = kernels::silu(g.min(limit)) * u.clamp(-limit, limit);
            }
        }
    }
}
