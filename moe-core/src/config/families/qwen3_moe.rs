//! Qwen3-MoE: GQA with per-head q/k RMSNorm, softmax top-k router, no shared expert.

use crate::config::spec::*;
use crate::config::{Family, QkNorm};
use crate::rope::RopeLayout;

pub(crate) const SPEC: FamilySpec = FamilySpec {
    family: Family::Qwen3Moe,
    model_types: &["qwen3_moe"],
    architectures: &["Qwen3MoeForCausalLM"],
    default_rope_theta: 10_000.0,
    default_rms_norm_eps: 1e-6,
    dense_intermediate: ("intermediate_size", 0),
    attention: AttentionSpec::Gqa(GqaSpec {
        head_dim: HeadDimRule::HiddenOverHeads,
        attention_bias_default: false,
        qkv_bias: BiasRule::AttentionBias,
        o_bias: BiasRule::AttentionBias,
        partial_rotary: PartialRotaryRule {
            rotary_dim_key: false,
            default_factor: 1.0,
        },
        qk_norm: QkNormRule {
            norm: QkNorm::PerHead,
            switch: None,
        },
        rope_layout: RopeLayout::Half,
        sinks: false,
        output_gate: false,
    }),
    layers: LayerSpec {
        moe_layers: MoeLayerRule::SparseStep,
        default_mask: MaskRule::SlidingWhenEnabled,
        rotary: RotaryLayersRule::All,
        mixers: MixerRule::Attention,
    },
    moe: MoeSpec {
        num_experts_keys: &["num_local_experts", "num_experts", "n_routed_experts"],
        num_experts_default: None,
        top_k_default: None,
        intermediate: ("moe_intermediate_size", 768),
        router: RouterRule::Softmax {
            norm_topk_prob: FlagRule::Key("norm_topk_prob", false),
        },
        shared: SharedExpertRule::None,
        activation: ActivationRule::SwiGlu,
    },
    ffn_names: BASE_FFN_NAMES,
    norm_weight_offset: 0.0,
    wrapper: WrapperLayout::LanguageModel,
};
