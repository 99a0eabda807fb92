//! Rotation tables: inverse frequencies for every scaling type and the two pair layouts.

use super::{RopeConfig, RopeLayout, RopeScaling};

/// `0.1·m·ln(s) + 1` for `s > 1`, else 1 (YaRN's magnitude correction).
pub(crate) fn yarn_get_mscale(scale: f64, m: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * m * scale.ln() + 1.0
    }
}

/// Rotation tables for one rotary dimension `D`.
#[derive(Debug, Clone)]
pub(crate) struct Rope {
    /// `inv[j]`, `j < D/2`.
    inv_freq: Vec<f32>,
    /// Multiplies cos and sin (YaRN's attention factor; 1 otherwise).
    attention_factor: f32,
    /// Rotated dims per head.
    pub dim: usize,
    pub layout: RopeLayout,
    /// Dynamic NTK: (base, factor, max_position_embeddings) to recompute past the trained length.
    dynamic: Option<(f64, f64, usize)>,
}

impl Rope {
    pub(crate) fn new(cfg: &RopeConfig, dim: usize, layout: RopeLayout) -> Self {
        let base = cfg.theta;
        let half = dim / 2;
        let default: Vec<f64> = (0..half)
            .map(|j| 1.0 / base.powf((2 * j) as f64 / dim as f64))
            .collect();
        let mut attention_factor = 1.0;
        let mut dynamic = None;
        let inv: Vec<f64> = match &cfg.scaling {
            RopeScaling::Default => default,
            RopeScaling::Linear { factor } => default.iter().map(|v| v / factor).collect(),
            RopeScaling::Dynamic { factor } => {
                dynamic = Some((base, *factor, cfg.max_position_embeddings));
                default
            }
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings,
                beta_fast,
                beta_slow,
                mscale,
                mscale_all_dim,
                attention_factor: af,
                truncate,
            } => {
                attention_factor = match af {
                    Some(a) => *a,
                    None if *mscale != 0.0 && *mscale_all_dim != 0.0 => {
                        yarn_get_mscale(*factor, *mscale)
                            / yarn_get_mscale(*factor, *mscale_all_dim)
                    }
                    None => yarn_get_mscale(*factor, 1.0),
                };
                let orig = *original_max_position_embeddings as f64;
                let corr = |rot: f64| {
                    dim as f64 * (orig / (rot * 2.0 * std::f64::consts::PI)).ln()
                        / (2.0 * base.ln())
                };
                let (mut lo, mut hi) = (corr(*beta_fast), corr(*beta_slow));
                if *truncate {
                    lo = lo.floor();
                    hi = hi.ceil();
                }
                lo = lo.max(0.0);
                hi = hi.min(dim as f64 - 1.0);
                if lo == hi {
                    hi += 0.001;
                }
                default
                    .iter()
                    .enumerate()
                    .map(|(j, extrap)| {
                        let ramp = ((j as f64 - lo) / (hi - lo)).clamp(0.0, 1.0);
                        extrap / factor * ramp + extrap * (1.0 - ramp)
                    })
                    .collect()
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                let orig = *original_max_position_embeddings as f64;
                let low_wavelen = orig / low_freq_factor;
                let high_wavelen = orig / high_freq_factor;
                default
                    .iter()
                    .map(|&inv| {
                        let wavelen = 2.0 * std::f64::consts::PI / inv;
                        if wavelen > low_wavelen {
                            inv / factor
                        } else if wavelen < high_wavelen {
                            inv
                        } else {
                            let s = (orig / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - s) * inv / factor + s * inv
                        }
                    })
                    .collect()
            }
        };
        Rope {
            inv_freq: inv.iter().map(|v| *v as f32).collect(),
            attention_factor: attention_factor as f32,
            dim,
            layout,
            dynamic,
        }
    }

    /// Inverse frequencies in force for a forward whose largest position is `max_pos`
    /// (differs from the base table only under dynamic NTK past the trained length).
    fn inv_for(&self, max_pos: usize) -> std::borrow::Cow<'_, [f32]> {
        match self.dynamic {
            Some((base, factor, trained)) if max_pos + 1 > trained => {
                let d = self.dim as f64;
                let len = (max_pos + 1) as f64;
                let base =
                    base * ((factor * len / trained as f64) - (factor - 1.0)).powf(d / (d - 2.0));
                (0..self.dim / 2)
                    .map(|j| (1.0 / base.powf((2 * j) as f64 / d)) as f32)
                    .collect::<Vec<_>>()
                    .into()
            }
            _ => (&self.inv_freq[..]).into(),
        }
    }

    /// `(cos, sin)` tables `[positions.len(), D/2]`, already times the attention factor.
    pub(crate) fn tables(&self, positions: &[usize]) -> (Vec<f32>, Vec<f32>) {
        let inv = self.inv_for(positions.iter().copied().max().unwrap_or(0));
        let half = self.dim / 2;
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(positions.len() * half);
        for &p in positions {
            for f in inv.iter() {
                let angle = p as f32 * f;
                cos.push(angle.cos() * self.attention_factor);
                sin.push(angle.sin() * self.attention_factor);
            }
        }
        (cos, sin)
    }

    /// Rotates `dim` dims starting at `offset` inside each of the `n_heads` heads of width `head_stride`,
    /// for each token `i` of `x` [T, n_heads*head_stride], with the tables of [`tables`](Self::tables).
    pub(crate) fn apply(
        &self,
        x: &mut [f32],
        n_heads: usize,
        head_stride: usize,
        offset: usize,
        cos: &[f32],
        sin: &[f32],
    ) {
        let half = self.dim / 2;
        for (i, tok) in x.chunks_exact_mut(n_heads * head_stride).enumerate() {
            let (c, s) = (
                &cos[i * half..(i + 1) * half],
                &sin[i * half..(i + 1) * half],
            );
            for head in tok.chunks_exact_mut(head_stride) {
                let v = &mut head[offset..offset + self.dim];
                for j in 0..half {
                    let (a, b) = match self.layout {
                        RopeLayout::Half => (j, j + half),
                        RopeLayout::Interleaved => (2 * j, 2 * j + 1),
                    };
                    let (x0, x1) = (v[a], v[b]);
                    v[a] = x0 * c[j] - x1 * s[j];
                    v[b] = x1 * c[j] + x0 * s[j];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(scaling: RopeScaling) -> RopeConfig {
        RopeConfig {
            theta: 10000.0,
            scaling,
            max_position_embeddings: 64,
            nested_partial_rotary_factor: None,
        }
    }

    #[test]
    fn rotation_preserves_norm_and_position_zero_is_identity() {
        let r = Rope::new(&cfg(RopeScaling::Default), 8, RopeLayout::Half);
        let mut x: Vec<f32> = (0..16).map(|i| i as f32 * 0.1 - 0.7).collect();
        let orig = x.clone();
        let (c, s) = r.tables(&[0, 5]);
        r.apply(&mut x, 1, 8, 0, &c, &s);
        assert_eq!(&x[..8], &orig[..8]);
        let n0: f32 = orig[8..].iter().map(|v| v * v).sum();
        let n1: f32 = x[8..].iter().map(|v| v * v).sum();
        assert!((n0 - n1).abs() < 1e-5);
        assert_ne!(&x[8..], &orig[8..]);
    }

    #[test]
    fn linear_scaling_divides_frequencies() {
        let a = Rope::new(&cfg(RopeScaling::Default), 8, RopeLayout::Half);
        let b = Rope::new(
            &cfg(RopeScaling::Linear { factor: 4.0 }),
            8,
            RopeLayout::Half,
        );
        for (x, y) in a.inv_freq.iter().zip(&b.inv_freq) {
            assert!((x / 4.0 - y).abs() < 1e-9);
        }
    }
}
