//! What is particular to each family's checkpoint: where the feed-forward lives and what its tensors
//! are called. Everything else is shared.

use crate::config::Family;
use crate::moe::{ExpertNames, FusedLayout};

/// Tensor names of one family's feed-forward (relative to `model.layers.N`).
#[derive(Debug, Clone, Copy)]
pub struct FfnNames {
    /// Module of the dense MLP and of the MoE block (`mlp`, `feed_forward`, `block_sparse_moe`).
    pub dense: &'static str,
    pub moe: &'static str,
    /// Where the MoE block lives in transformers-5 fused checkpoints when it differs (`mlp`).
    pub moe_fused_alt: Option<&'static str>,
    /// Router module inside the MoE block (`gate` or `router`).
    pub router: &'static str,
    /// Whether the router linear has a bias (gpt-oss).
    pub router_bias: bool,
    /// `e_score_correction_bias` path inside the MoE block, for sigmoid routers.
    pub correction_bias: Option<&'static str>,
    pub experts: ExpertNames,
    /// Shared expert module and, for Qwen2-MoE, its scalar gate.
    pub shared: Option<&'static str>,
    pub shared_gate: Option<&'static str>,
}

const SWIGLU: [&str; 3] = ["gate_proj", "up_proj", "down_proj"];

pub fn ffn_names(f: Family) -> FfnNames {
    let base = FfnNames {
        dense: "mlp",
        moe: "mlp",
        moe_fused_alt: None,
        router: "gate",
        router_bias: false,
        correction_bias: None,
        experts: ExpertNames {
            per_expert: SWIGLU,
            fused: FusedLayout::OutIn,
        },
        shared: None,
        shared_gate: None,
    };
    match f {
        Family::Qwen3Moe => base,
        Family::Qwen2Moe => FfnNames {
            shared: Some("shared_expert"),
            shared_gate: Some("shared_expert_gate"),
            ..base
        },
        Family::Mixtral => FfnNames {
            moe: "block_sparse_moe",
            moe_fused_alt: Some("mlp"),
            experts: ExpertNames {
                per_expert: ["w1", "w3", "w2"],
                fused: FusedLayout::OutIn,
            },
            ..base
        },
        Family::MiniMaxM2 => FfnNames {
            moe: "block_sparse_moe",
            moe_fused_alt: Some("mlp"),
            correction_bias: Some("e_score_correction_bias"),
            experts: ExpertNames {
                per_expert: ["w1", "w3", "w2"],
                fused: FusedLayout::OutIn,
            },
            ..base
        },
        Family::Glm4Moe | Family::DeepseekV3 | Family::DeepseekV32 | Family::GlmMoeDsa => {
            FfnNames {
                correction_bias: Some("gate.e_score_correction_bias"),
                shared: Some("shared_experts"),
                ..base
            }
        }
        Family::DeepseekV2 => FfnNames {
            shared: Some("shared_experts"),
            ..base
        },
        Family::Llama4 => FfnNames {
            dense: "feed_forward",
            moe: "feed_forward",
            router: "router",
            experts: ExpertNames {
                per_expert: SWIGLU,
                fused: FusedLayout::InOut,
            },
            shared: Some("shared_expert"),
            ..base
        },
        Family::GptOss => FfnNames {
            router: "router",
            router_bias: true,
            experts: ExpertNames {
                per_expert: SWIGLU,
                fused: FusedLayout::InOutInterleavedBiased,
            },
            ..base
        },
    }
}
