//! The model families this engine runs, decided once from `model_type` / `architectures`.

use crate::error::{Error, Result};

/// A model family: decides tensor names, attention kind, routing policy and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Qwen3Moe,
    Qwen2Moe,
    Mixtral,
    MiniMaxM2,
    Glm4Moe,
    Llama4,
    GptOss,
    DeepseekV2,
    DeepseekV3,
    DeepseekV32,
    GlmMoeDsa,
}

impl Family {
    /// From `model_type`, falling back to the `architectures` class name.
    pub fn detect(model_type: Option<&str>, architectures: &[&str]) -> Result<Self> {
        if let Some(mt) = model_type {
            if let Some(f) = Self::from_model_type(mt) {
                return Ok(f);
            }
        }
        for a in architectures {
            if let Some(f) = Self::from_architecture(a) {
                return Ok(f);
            }
        }
        let name = model_type
            .map(str::to_string)
            .or_else(|| architectures.first().map(|s| s.to_string()))
            .unwrap_or_else(|| "<none: config has neither model_type nor architectures>".into());
        Err(Error::UnsupportedArchitecture(name))
    }

    pub fn from_model_type(s: &str) -> Option<Self> {
        Some(match s {
            "qwen3_moe" => Family::Qwen3Moe,
            "qwen2_moe" => Family::Qwen2Moe,
            "mixtral" => Family::Mixtral,
            "minimax_m2" => Family::MiniMaxM2,
            "glm4_moe" => Family::Glm4Moe,
            "llama4" | "llama4_text" => Family::Llama4,
            "gpt_oss" => Family::GptOss,
            "deepseek_v2" => Family::DeepseekV2,
            "deepseek_v3" | "kimi_k2" => Family::DeepseekV3,
            "deepseek_v32" => Family::DeepseekV32,
            "glm_moe_dsa" => Family::GlmMoeDsa,
            _ => return None,
        })
    }

    fn from_architecture(s: &str) -> Option<Self> {
        Some(match s {
            "Qwen3MoeForCausalLM" => Family::Qwen3Moe,
            "Qwen2MoeForCausalLM" => Family::Qwen2Moe,
            "MixtralForCausalLM" => Family::Mixtral,
            "MiniMaxM2ForCausalLM" => Family::MiniMaxM2,
            "Glm4MoeForCausalLM" => Family::Glm4Moe,
            "Llama4ForCausalLM" | "Llama4ForConditionalGeneration" => Family::Llama4,
            "GptOssForCausalLM" => Family::GptOss,
            "DeepseekV2ForCausalLM" => Family::DeepseekV2,
            "DeepseekV3ForCausalLM" => Family::DeepseekV3,
            "DeepseekV32ForCausalLM" => Family::DeepseekV32,
            "GlmMoeDsaForCausalLM" => Family::GlmMoeDsa,
            _ => return None,
        })
    }

    /// The canonical `model_type` string.
    pub fn name(self) -> &'static str {
        match self {
            Family::Qwen3Moe => "qwen3_moe",
            Family::Qwen2Moe => "qwen2_moe",
            Family::Mixtral => "mixtral",
            Family::MiniMaxM2 => "minimax_m2",
            Family::Glm4Moe => "glm4_moe",
            Family::Llama4 => "llama4_text",
            Family::GptOss => "gpt_oss",
            Family::DeepseekV2 => "deepseek_v2",
            Family::DeepseekV3 => "deepseek_v3",
            Family::DeepseekV32 => "deepseek_v32",
            Family::GlmMoeDsa => "glm_moe_dsa",
        }
    }

    /// Families whose attention is multi-head latent attention.
    pub fn is_mla(self) -> bool {
        matches!(
            self,
            Family::DeepseekV2 | Family::DeepseekV3 | Family::DeepseekV32 | Family::GlmMoeDsa
        )
    }

    /// `rope_theta` when the config gives none (transformers' class defaults).
    pub fn default_rope_theta(self) -> f64 {
        match self {
            Family::Llama4 => 500_000.0,
            Family::GptOss => 150_000.0,
            Family::MiniMaxM2 => 5e6,
            _ => 10_000.0,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
