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
    /// Plain RoPE.
    Default,
    /// Positions divided by `factor`.
    Linear {
        /// Position divisor.
        factor: f64,
    },
    /// Dynamic NTK: the base grows past the trained length.
    Dynamic {
        /// Context extension factor.
        factor: f64,
    },
    /// YaRN: frequency-band interpolation with a magnitude correction.
    Yarn {
        /// Context extension factor.
        factor: f64,
        /// The trained context.
        original_max_position_embeddings: usize,
        /// Rotations above which frequencies are kept.
        beta_fast: f64,
        /// Rotations below which frequencies are interpolated.
        beta_slow: f64,
        /// Magnitude-correction coefficient.
        mscale: f64,
        /// Magnitude-correction coefficient of the attention scale (DeepSeek).
        mscale_all_dim: f64,
        /// Explicit attention factor, overriding the computed one.
        attention_factor: Option<f64>,
        /// Whether the correction range is rounded to whole dimensions.
        truncate: bool,
    },
    /// Llama 3: low frequencies scaled, high kept, a smooth band between.
    Llama3 {
        /// Context extension factor.
        factor: f64,
        /// Wavelength bound of the low-frequency band.
        low_freq_factor: f64,
        /// Wavelength bound of the high-frequency band.
        high_freq_factor: f64,
        /// The trained context.
        original_max_position_embeddings: usize,
    },
}

/// RoPE base and scaling, shared by every layer that rotates.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RopeConfig {
    /// RoPE base (`rope_theta`).
    pub theta: f64,
    /// Position scaling.
    pub scaling: RopeScaling,
    /// `max_position_embeddings`, needed by dynamic NTK scaling.
    pub max_position_embeddings: usize,
    /// `partial_rotary_factor` when it is nested in `rope_parameters` (GLM-5.x).
    pub nested_partial_rotary_factor: Option<f64>,
}
