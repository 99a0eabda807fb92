//! RoPE parameters from either key style: published (`rope_theta`, `rope_scaling`) or
//! transformers-5 (`rope_parameters` holding `rope_theta`, `rope_type`, ...).

use super::raw::Raw;
use crate::error::{Error, Result};
use crate::rope::{RopeConfig, RopeScaling};

impl RopeConfig {
    pub(crate) fn parse(raw: &Raw, default_theta: f64, max_pos: usize) -> Result<Self> {
        // transformers-5 style nests everything in rope_parameters; published style uses rope_scaling.
        let params = raw.opt_obj("rope_parameters")?;
        let scaling_obj = match raw.opt_obj("rope_scaling")? {
            Some(s) => Some(s),
            None => params.as_ref().map(|p| Raw {
                map: p.map,
                path: p.path,
            }),
        };
        let theta = match raw.opt_f64("rope_theta")? {
            Some(t) => t,
            None => match &params {
                Some(p) => p.f64_or("rope_theta", default_theta)?,
                None => default_theta,
            },
        };
        let nested_partial_rotary_factor = match &params {
            Some(p) => p.opt_f64("partial_rotary_factor")?,
            None => None,
        };
        let scaling = match scaling_obj {
            None => RopeScaling::Default,
            Some(s) => parse_scaling(raw, &s, max_pos)?,
        };
        if theta.is_nan() || theta <= 0.0 {
            return Err(Error::InconsistentConfig(format!(
                "rope_theta must be positive, got {theta}"
            )));
        }
        Ok(RopeConfig {
            theta,
            scaling,
            max_position_embeddings: max_pos,
            nested_partial_rotary_factor,
        })
    }
}

pub(super) fn parse_scaling(top: &Raw, s: &Raw, max_pos: usize) -> Result<RopeScaling> {
    let kind = match s.opt_str("rope_type")? {
        Some(k) => k,
        None => s.opt_str("type")?.unwrap_or("default"),
    };
    // A top-level original_max_position_embeddings takes priority (transformers' standardize_rope_params).
    let orig = match top.opt_usize("original_max_position_embeddings")? {
        Some(o) => o,
        None => s.usize_or("original_max_position_embeddings", max_pos)?,
    };
    let factor = s.opt_f64("factor")?;
    let need_factor = |name: &str| {
        factor.filter(|f| *f > 0.0).ok_or_else(|| {
            Error::InconsistentConfig(format!(
                "rope_scaling of type {name} needs a positive \"factor\""
            ))
        })
    };
    Ok(match kind {
        "default" => RopeScaling::Default,
        "linear" => RopeScaling::Linear {
            factor: need_factor("linear")?,
        },
        "dynamic" => RopeScaling::Dynamic {
            factor: need_factor("dynamic")?,
        },
        "yarn" => RopeScaling::Yarn {
            factor: match factor {
                Some(f) => f,
                None => max_pos as f64 / orig as f64,
            },
            original_max_position_embeddings: orig,
            beta_fast: s.f64_or("beta_fast", 32.0)?,
            beta_slow: s.f64_or("beta_slow", 1.0)?,
            mscale: s.f64_or("mscale", 0.0)?,
            mscale_all_dim: s.f64_or("mscale_all_dim", 0.0)?,
            attention_factor: s.opt_f64("attention_factor")?,
            truncate: s.bool_or("truncate", true)?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: need_factor("llama3")?,
            low_freq_factor: s.f64_or("low_freq_factor", 1.0)?,
            high_freq_factor: s.f64_or("high_freq_factor", 4.0)?,
            original_max_position_embeddings: orig,
        },
        other => {
            return Err(Error::InconsistentConfig(format!(
                "unsupported rope type {other:?}"
            )));
        }
    })
}
