//! DeepSeek V4: a sliding-window shared K=V head plus compressed entries per layer (compressed
//! sparse attention with a lightning indexer, or heavily compressed attention), attention sinks, a
//! grouped low-rank output projection, hyper-connections, hash-routed first MoE layers and
//! sqrt-softplus routing with clamped SwiGLU. Tensor names are the checkpoint's own (`attn.wq_a`,
//! `ffn.experts.N.w1`, `hc_attn_fn`, `head.weight`, ...).

use crate::config::spec::*;
use crate::config::Family;

pub(crate) const SPEC: FamilySpec = FamilySpec {
    family: Family::DeepseekV4,
    model_types: &["deepseek_v4"],
    architectures: &["DeepseekV4ForCausalLM"],
    default_rope_theta: 10_000.0,
    default_rms_norm_eps: 1e-6,
    dense_intermediate: ("intermediate_size", 0),
    attention: AttentionSpec::Compressed,
    layers: LayerSpec {
        moe_layers: MoeLayerRule::All,
        default_mask: MaskRule::Causal,
        rotary: RotaryLayersRule::All,
        mixers: MixerRule::Attention,
    },
    moe: MoeSpec {
        num_experts_keys: &["n_routed_experts", "num_local_experts"],
        num_experts_default: Some(256),
        top_k_default: Some(6),
        intermediate: ("moe_intermediate_size", 2048),
        router: RouterRule::SqrtSoftplus,
        shared: SharedExpertRule::Count(1),
        activation: ActivationRule::ClampedSilu { limit: 10.0 },
    },
    ffn_names: FfnNames {
        dense: "ffn",
        moe: "ffn",
        correction_bias: Some(["gate.bias", "gate.e_score_correction_bias"]),
        experts: ExpertNames {
            per_expert: ["w1", "w3", "w2"],
            fused: FusedLayout::OutIn,
        },
        shared: Some("shared_experts"),
        ..BASE_FFN_NAMES
    },
    norm_weight_offset: 0.0,
    wrapper: WrapperLayout::LanguageModel,
};
