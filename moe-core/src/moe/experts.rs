//! Routed experts, stored per expert (`experts.{e}.gate_proj.weight`, ...) or fused in 3-D tensors
//! (`experts.gate_up_proj`, `experts.down_proj`); one interface over both.

use crate::config::spec::{ExpertNames, FusedLayout};
use crate::config::ExpertActivation;
use crate::error::{Error, Result};
use crate::layers::{swiglu, Linear, Orientation};
use crate::weights::WeightSource;

/// How a fused gate/up output of width `2I` splits into gate and up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GateUpSplit {
    /// First `I` = gate, last `I` = up.
    Halves,
    /// Even = gate, odd = up (gpt-oss).
    Interleaved,
}

#[derive(Debug, Clone)]
enum GateUp {
    Separate { gate: Linear, up: Linear },
    Fused { gate_up: Linear, split: GateUpSplit },
}

/// One expert MLP.
#[derive(Debug, Clone)]
pub(crate) struct Expert {
    gate_up: GateUp,
    down: Linear,
}

impl Expert {
    /// An expert whose gate and up projections are one layer of `2I` outputs.
    pub(crate) fn fused(gate_up: Linear, split: GateUpSplit, down: Linear) -> Self {
        Expert {
            gate_up: GateUp::Fused { gate_up, split },
            down,
        }
    }

    /// `y[T, H]` for inputs `x[T, H]`.
    pub(crate) fn forward(&self, x: &[f32], t: usize, act: ExpertActivation) -> Vec<f32> {
        let (mut gate, up) = match &self.gate_up {
            GateUp::Separate { gate, up } => (gate.forward(x, t), up.forward(x, t)),
            GateUp::Fused { gate_up, split } => {
                let gu = gate_up.forward(x, t); // [T, 2I]
                let i2 = gate_up.out_dim;
                let i = i2 / 2;
                let (mut g, mut u) = (vec![0.0; t * i], vec![0.0; t * i]);
                for (r, row) in gu.chunks_exact(i2).enumerate() {
                    for j in 0..i {
                        let (a, b) = match split {
                            GateUpSplit::Halves => (j, i + j),
                            GateUpSplit::Interleaved => (2 * j, 2 * j + 1),
                        };
                        g[r * i + j] = row[a];
                        u[r * i + j] = row[b];
                    }
                }
                (g, u)
            }
        };
        swiglu(&mut gate, &up, act);
        self.down.forward(&gate, t)
    }

    pub(crate) fn weight_bytes(&self) -> usize {
        let gu = match &self.gate_up {
            GateUp::Separate { gate, up } => gate.weight_bytes() + up.weight_bytes(),
            GateUp::Fused { gate_up, .. } => gate_up.weight_bytes(),
        };
        gu + self.down.weight_bytes()
    }
}

/// Loads `n` experts of hidden size `h` and intermediate size `i` from `src` (the `experts` scope).
pub(crate) fn load_experts(
    src: &WeightSource,
    names: &ExpertNames,
    n: usize,
    h: usize,
    i: usize,
) -> Result<Vec<Expert>> {
    let [g, u, d] = names.per_expert;
    if src.contains(&format!("0.{g}.weight")) || src.contains(&format!("0.{g}.weight_packed")) {
        return (0..n)
            .map(|e| {
                let s = src.pp(e);
                Ok(Expert {
                    gate_up: GateUp::Separate {
                        gate: Linear::load(&s, g, h, i, false)?,
                        up: Linear::load(&s, u, h, i, false)?,
                    },
                    down: Linear::load(&s, d, i, h, false)?,
                })
            })
            .collect();
    }
    if !src.contains("gate_up_proj") {
        return Err(Error::MissingTensor(format!(
            "{} (per-expert) or {} (fused)",
            src.full_name(&format!("0.{g}.weight")),
            src.full_name("gate_up_proj")
        )));
    }
    if src.quantize_plan().is_some() {
        return Err(Error::UnsupportedQuantization {
            what: format!(
                "quantizing fused expert tensors ({}); only per-expert checkpoints \
                 (experts.N.{g}.weight) can be quantized",
                src.full_name("gate_up_proj")
            ),
        });
    }
    let (gu_shape, down_shape, orient, split, biased) = match names.fused {
        FusedLayout::OutIn => (
            [n, 2 * i, h],
            [n, h, i],
            Orientation::OutIn,
            GateUpSplit::Halves,
            false,
        ),
        FusedLayout::InOut => (
            [n, h, 2 * i],
            [n, i, h],
            Orientation::InOut,
            GateUpSplit::Halves,
            false,
        ),
        FusedLayout::InOutInterleavedBiased => (
            [n, h, 2 * i],
            [n, i, h],
            Orientation::InOut,
            GateUpSplit::Interleaved,
            true,
        ),
    };
    let gate_up = src.get("gate_up_proj", &gu_shape)?;
    let down = src.get("down_proj", &down_shape)?;
    let (gu_bias, down_bias) = if biased {
        (
            Some(src.get_f32("gate_up_proj_bias", &[n, 2 * i])?),
            Some(src.get_f32("down_proj_bias", &[n, h])?),
        )
    } else {
        (None, None)
    };
    Ok((0..n)
        .map(|e| Expert {
            gate_up: GateUp::Fused {
                gate_up: Linear::from_tensor(
                    gate_up.index_first(e),
                    orient,
                    gu_bias
                        .as_ref()
                        .map(|b| b[e * 2 * i..(e + 1) * 2 * i].to_vec()),
                ),
                split,
            },
            down: Linear::from_tensor(
                down.index_first(e),
                orient,
                down_bias.as_ref().map(|b| b[e * h..(e + 1) * h].to_vec()),
            ),
        })
        .collect())
}
