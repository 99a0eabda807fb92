//! Rotary position embedding in one place: the scaling types read from config.json, the inverse
//! frequencies for every scaling type (ARCHITECTURES.md section 4), YaRN's magnitude correction and
//! the rotation of the two pair layouts.

mod tables;

pub(crate) use tables::{yarn_get_mscale, Rope};

/// Which half of a head's dimensions pair up for rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RopeLayout {
    /// Pairs `(x_j, x_{j+D/2})` ("rotate half", NeoX).
    Half,
    /// Pairs `(x_{2j}, x_{2j+1})` (GPT-J, complex multiplication).
    Interleaved,
}

/// How positions are scaled before rotation (ARCHITECTURES.md section 4).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RopeScaling {
    Default,
    Linear {
        factor: f64,
    },
    Dynamic {
        factor: f64,
    },
    Yarn {
        factor: f64,
        original_max_position_embeddings: usize,
        beta_fast: f64,
        beta_slow: f64,
        mscale: f64,
        mscale_all_dim: f64,
        attention_factor: Option<f64>,
        truncate: bool,
    },
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
}

/// RoPE base and scaling, shared by every layer that rotates.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RopeConfig {
    pub theta: f64,
    pub scaling: RopeScaling,
    /// `max_position_embeddings`, needed by dynamic NTK scaling.
    pub max_position_embeddings: usize,
    /// `partial_rotary_factor` when it is nested in `rope_parameters` (GLM-5.x).
    pub nested_partial_rotary_factor: Option<f64>,
}
