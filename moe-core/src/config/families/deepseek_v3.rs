//! DeepSeek V3 / R1, Kimi K2, Moonlight: MLA with q LoRA, sigmoid grouped router with correction
//! bias, shared experts, first layers dense.

use crate::config::spec::*;
use crate::config::Family;

pub(crate) const SPEC: FamilySpec = FamilySpec {
    family: Family::DeepseekV3,
    model_types: &["deepseek_v3", "kimi_k2"],
    architectures: &["DeepseekV3ForCausalLM"],
    default_rope_theta: 10_000.0,
    default_rms_norm_eps: 1e-6,
    dense_intermediate: ("intermediate_size", 0),
    attention: AttentionSpec::Mla(MlaSpec {
        rope_layout: RopeLayoutRule::InterleavedKey("rope_interleave", true),
        indexer: None,
        latent_norm_eps: 1e-6,
    }),
    layers: LayerSpec {
        moe_layers: MoeLayerRule::FirstKDense(3),
        default_mask: MaskRule::Causal,
        rotary: RotaryLayersRule::All,
        mixers: MixerRule::Attention,
    },
    moe: SIGMOID_MLA_MOE,
    ffn_names: DEEPSEEK_FFN_NAMES,
    norm_weight_offset: 0.0,
    wrapper: WrapperLayout::LanguageModel,
};

/// DeepSeek V3's MoE settings, shared by V3.2 and GLM-5.
pub(super) const SIGMOID_MLA_MOE: MoeSpec = MoeSpec {
    router: RouterRule::SigmoidBiasedGrouped,
    ..super::deepseek_v2::MLA_MOE
};

/// DeepSeek V3's feed-forward names, shared by V3.2 and GLM-5.
pub(super) const DEEPSEEK_FFN_NAMES: FfnNames = FfnNames {
    correction_bias: GATE_CORRECTION_BIAS,
    shared: Some("shared_experts"),
    ..BASE_FFN_NAMES
};
