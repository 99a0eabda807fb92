//! GLM-4.5/4.6/4.7: GQA with q/k/v bias, half partial RoPE and optional per-head q/k norm; sigmoid
//! grouped router as DeepSeek V3; first layers dense; a shared expert.

use crate::config::spec::*;
use crate::config::{Family, QkNorm};
use crate::rope::RopeLayout;

pub(crate) const SPEC: FamilySpec = FamilySpec {
    family: Family::Glm4Moe,
    model_types: &["glm4_moe"],
    architectures: &["Glm4MoeForCausalLM"],
    default_rope_theta: 10_000.0,
    default_rms_norm_eps: 1e-6,
    dense_intermediate: ("intermediate_size", 0),
    attention: AttentionSpec::Gqa(GqaSpec {
        head_dim: HeadDimRule::HiddenOverHeads,
        attention_bias_default: false,
        qkv_bias: BiasRule::AttentionBias,
        o_bias: BiasRule::Never,
        partial_rotary: PartialRotaryRule {
            rotary_dim_key: false,
            default_factor: 0.5,
        },
        qk_norm: QkNormRule {
            norm: QkNorm::PerHead,
            switch: Some(("use_qk_norm", false)),
        },
        rope_layout: RopeLayout::Half,
        sinks: false,
        output_gate: false,
    }),
    layers: LayerSpec {
        moe_layers: MoeLayerRule::FirstKDense(1),
        default_mask: MaskRule::Causal,
        rotary: RotaryLayersRule::All,
        mixers: MixerRule::Attention,
    },
    moe: MoeSpec {
        num_experts_keys: &["num_local_experts", "num_experts", "n_routed_experts"],
        num_experts_default: None,
        top_k_default: None,
        intermediate: ("moe_intermediate_size", 1408),
        router: RouterRule::SigmoidBiasedGrouped,
        shared: SharedExpertRule::Count(1),
        activation: ActivationRule::SwiGlu,
    },
    ffn_names: FfnNames {
        correction_bias: GATE_CORRECTION_BIAS,
        shared: Some("shared_experts"),
        ..BASE_FFN_NAMES
    },
    norm_weight_offset: 0.0,
    wrapper: WrapperLayout::LanguageModel,
};
