//! DeepSeek V2 / V2-Lite: MLA (with or without q LoRA), softmax router greedy or group-limited,
//! shared experts.

use crate::config::spec::*;
use crate::config::Family;
use crate::rope::RopeLayout;

pub(crate) const SPEC: FamilySpec = FamilySpec {
    family: Family::DeepseekV2,
    model_types: &["deepseek_v2"],
    architectures: &["DeepseekV2ForCausalLM"],
    default_rope_theta: 10_000.0,
    default_rms_norm_eps: 1e-6,
    dense_intermediate: ("intermediate_size", 0),
    attention: AttentionSpec::Mla(MlaSpec {
        rope_layout: RopeLayoutRule::Fixed(RopeLayout::Interleaved),
        indexer: None,
        latent_norm_eps: 1e-6,
    }),
    layers: LayerSpec {
        moe_layers: MoeLayerRule::FirstKDense(0),
        default_mask: MaskRule::Causal,
        rotary: RotaryLayersRule::All,
        mixers: MixerRule::Attention,
    },
    moe: MLA_MOE,
    ffn_names: FfnNames {
        shared: Some("shared_experts"),
        ..BASE_FFN_NAMES
    },
    norm_weight_offset: 0.0,
    wrapper: WrapperLayout::LanguageModel,
};

/// The MoE settings DeepSeek-style configs share (the router differs).
pub(super) const MLA_MOE: MoeSpec = MoeSpec {
    num_experts_keys: &["n_routed_experts", "num_local_experts"],
    num_experts_default: Some(256),
    top_k_default: Some(8),
    intermediate: ("moe_intermediate_size", 2048),
    router: RouterRule::SoftmaxTopkMethod,
    shared: SharedExpertRule::Count(1),
    activation: ActivationRule::SwiGlu,
};
