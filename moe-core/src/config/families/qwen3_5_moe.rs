//! Qwen3.5-MoE: gated DeltaNet linear attention interleaved with gated full attention (q/k norms,
//! partial rotary, an output gate from `q_proj`), zero-centred RMSNorms, softmax top-k router
//! renormalised, a sigmoid-gated shared expert. Published as a multimodal wrapper (`qwen3_5_moe`,
//! `model.language_model.*`) or as the text model alone (`qwen3_5_moe_text`).

use crate::config::spec::*;
use crate::config::{Family, QkNorm};
use crate::rope::RopeLayout;

pub(crate) const SPEC: FamilySpec = FamilySpec {
    family: Family::Qwen35Moe,
    model_types: &["qwen3_5_moe_text", "qwen3_5_moe"],
    architectures: &[
        "Qwen3_5MoeForCausalLM",
        "Qwen3_5MoeForConditionalGeneration",
    ],
    default_rope_theta: 10_000.0,
    default_rms_norm_eps: 1e-6,
    dense_intermediate: ("intermediate_size", 0),
    attention: AttentionSpec::Gqa(GqaSpec {
        head_dim: HeadDimRule::Fixed(256),
        attention_bias_default: false,
        qkv_bias: BiasRule::AttentionBias,
        o_bias: BiasRule::AttentionBias,
        partial_rotary: PartialRotaryRule {
            rotary_dim_key: false,
            default_factor: 0.25,
        },
        qk_norm: QkNormRule {
            norm: QkNorm::PerHead,
            switch: None,
        },
        rope_layout: RopeLayout::Half,
        sinks: false,
        output_gate: true,
    }),
    layers: LayerSpec {
        moe_layers: MoeLayerRule::All,
        default_mask: MaskRule::Causal,
        rotary: RotaryLayersRule::All,
        mixers: MixerRule::GatedDeltaNetInterval(4),
    },
    moe: MoeSpec {
        num_experts_keys: &["num_experts", "num_local_experts"],
        num_experts_default: Some(256),
        top_k_default: Some(8),
        intermediate: ("moe_intermediate_size", 512),
        router: RouterRule::Softmax {
            norm_topk_prob: FlagRule::Fixed(true),
        },
        shared: SharedExpertRule::GatedSize("shared_expert_intermediate_size", 512),
        activation: ActivationRule::SwiGlu,
    },
    ffn_names: FfnNames {
        shared: Some("shared_expert"),
        shared_gate: Some("shared_expert_gate"),
        ..BASE_FFN_NAMES
    },
    norm_weight_offset: 1.0,
    wrapper: WrapperLayout::ModelLanguageModel,
};
