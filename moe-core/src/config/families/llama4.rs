//! Llama 4 (text): GQA with interleaved RoPE, chunked attention on rotating layers, NoPE layers with
//! temperature tuning and L2 q/k norm; top-1 sigmoid router scaling the expert input; a shared expert.

use crate::config::spec::*;
use crate::config::{Family, QkNorm};
use crate::rope::RopeLayout;

pub(crate) const SPEC: FamilySpec = FamilySpec {
    family: Family::Llama4,
    model_types: &["llama4_text", "llama4"],
    architectures: &["Llama4ForCausalLM", "Llama4ForConditionalGeneration"],
    default_rope_theta: 500_000.0,
    default_rms_norm_eps: 1e-6,
    dense_intermediate: ("intermediate_size_mlp", 16384),
    attention: AttentionSpec::Gqa(GqaSpec {
        head_dim: HeadDimRule::Fixed(128),
        attention_bias_default: false,
        qkv_bias: BiasRule::AttentionBias,
        o_bias: BiasRule::AttentionBias,
        partial_rotary: PartialRotaryRule {
            rotary_dim_key: false,
            default_factor: 1.0,
        },
        qk_norm: QkNormRule {
            norm: QkNorm::L2,
            switch: Some(("use_qk_norm", true)),
        },
        rope_layout: RopeLayout::Interleaved,
        sinks: false,
        output_gate: false,
    }),
    layers: LayerSpec {
        moe_layers: MoeLayerRule::Interleaved,
        default_mask: MaskRule::ChunkedOnRotaryLayers,
        rotary: RotaryLayersRule::NoRopeLayers,
        mixers: MixerRule::Attention,
    },
    moe: MoeSpec {
        num_experts_keys: &["num_local_experts", "num_experts", "n_routed_experts"],
        num_experts_default: None,
        top_k_default: None,
        intermediate: ("intermediate_size", 8192),
        router: RouterRule::Llama4,
        shared: SharedExpertRule::OneExpert,
        activation: ActivationRule::SwiGlu,
    },
    ffn_names: FfnNames {
        dense: "feed_forward",
        moe: "feed_forward",
        router: "router",
        experts: ExpertNames {
            per_expert: SWIGLU,
            fused: FusedLayout::InOut,
        },
        shared: Some("shared_expert"),
        ..BASE_FFN_NAMES
    },
    norm_weight_offset: 0.0,
    wrapper: WrapperLayout::LanguageModel,
};
