//! The model families this engine runs, decided once from `model_type` / `architectures`. What each
//! family is lives in its spec (`families/*.rs`); this file only names them.

use super::families;
use super::spec::FamilySpec;
use crate::error::{Error, Result};

/// A model family: decides tensor names, attention kind, routing policy and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Family {
    /// Qwen3-MoE (`qwen3_moe`).
    Qwen3Moe,
    /// Qwen1.5/2-MoE (`qwen2_moe`).
    Qwen2Moe,
    /// Mixtral (`mixtral`).
    Mixtral,
    /// MiniMax-M2 (`minimax_m2`).
    MiniMaxM2,
    /// GLM-4.5 / 4.6 / 4.7 (`glm4_moe`).
    Glm4Moe,
    /// Llama 4 Scout / Maverick, text part (`llama4_text`, `llama4`).
    Llama4,
    /// gpt-oss (`gpt_oss`).
    GptOss,
    /// DeepSeek V2 / V2-Lite (`deepseek_v2`).
    DeepseekV2,
    /// DeepSeek V3 / R1, Kimi K2, Moonlight (`deepseek_v3`, `kimi_k2`).
    DeepseekV3,
    /// DeepSeek V3.2 (`deepseek_v32`).
    DeepseekV32,
    /// GLM-5 (`glm_moe_dsa`).
    GlmMoeDsa,
    /// Qwen3.5-MoE (`qwen3_5_moe_text`, or the multimodal `qwen3_5_moe` wrapper).
    Qwen35Moe,
    /// DeepSeek V4 (`deepseek_v4`).
    DeepseekV4,
}

impl Family {
    /// Every family, in the order detection tries them.
    pub const ALL: [Family; 13] = [
        Family::Qwen3Moe,
        Family::Qwen2Moe,
        Family::Mixtral,
        Family::MiniMaxM2,
        Family::Glm4Moe,
        Family::Llama4,
        Family::GptOss,
        Family::DeepseekV2,
        Family::DeepseekV3,
        Family::DeepseekV32,
        Family::GlmMoeDsa,
        Family::Qwen35Moe,
        Family::DeepseekV4,
    ];

    /// The family's spec: every per-family rule.
    pub(crate) fn spec(self) -> &'static FamilySpec {
        match self {
            Family::Qwen3Moe => &families::qwen3_moe::SPEC,
            Family::Qwen2Moe => &families::qwen2_moe::SPEC,
            Family::Mixtral => &families::mixtral::SPEC,
            Family::MiniMaxM2 => &families::minimax_m2::SPEC,
            Family::Glm4Moe => &families::glm4_moe::SPEC,
            Family::Llama4 => &families::llama4::SPEC,
            Family::GptOss => &families::gpt_oss::SPEC,
            Family::DeepseekV2 => &families::deepseek_v2::SPEC,
            Family::DeepseekV3 => &families::deepseek_v3::SPEC,
            Family::DeepseekV32 => &families::deepseek_v32::SPEC,
            Family::GlmMoeDsa => &families::glm_moe_dsa::SPEC,
            Family::Qwen35Moe => &families::qwen3_5_moe::SPEC,
            Family::DeepseekV4 => &families::deepseek_v4::SPEC,
        }
    }

    /// From `model_type`, falling back to the `architectures` class name.
    pub fn detect(model_type: Option<&str>, architectures: &[&str]) -> Result<Self> {
        if let Some(f) = model_type.and_then(Self::from_model_type) {
            return Ok(f);
        }
        let by_class = architectures.iter().find_map(|a| {
            Self::ALL
                .into_iter()
                .find(|f| f.spec().architectures.contains(a))
        });
        if let Some(f) = by_class {
            return Ok(f);
        }
        let name = model_type
            .map(str::to_string)
            .or_else(|| architectures.first().map(|s| s.to_string()))
            .unwrap_or_else(|| "<none: config has neither model_type nor architectures>".into());
        Err(Error::UnsupportedArchitecture(name))
    }

    /// The family whose `model_type` (or one of its aliases) is `s`.
    pub fn from_model_type(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.spec().model_types.contains(&s))
    }

    /// The canonical `model_type` string.
    pub fn name(self) -> &'static str {
        self.spec().model_types[0]
    }

    /// Whether the family's attention is multi-head latent attention.
    pub fn is_mla(self) -> bool {
        matches!(self.spec().attention, super::spec::AttentionSpec::Mla(_))
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_its_own_spec_and_names() {
        let mut names = std::collections::HashSet::new();
        for f in Family::ALL {
            assert_eq!(f.spec().family, f, "{f:?} points at another family's spec");
            assert!(!f.spec().model_types.is_empty() && !f.spec().architectures.is_empty());
            for mt in f.spec().model_types {
                assert!(names.insert(*mt), "model_type {mt} claimed twice");
                assert_eq!(Family::from_model_type(mt), Some(f));
            }
            for a in f.spec().architectures {
                assert_eq!(Family::detect(None, &[a]).unwrap(), f);
            }
        }
    }
}
