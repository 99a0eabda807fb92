//! Mixtral: GQA (optional sliding window on every layer), softmax top-k renormalised, `w1/w3/w2`.

use crate::config::spec::*;
use crate::config::{Family, QkNorm};
use crate::rope::RopeLayout;

pub(crate) const SPEC: FamilySpec = FamilySpec {
    family: Family::Mixtral,
    model_types: &["mixtral"],
    architectures: &["MixtralForCausalLM"],
    default_rope_theta: 10_000.0,
    default_rms_norm_eps: 1e-6,
    dense_intermediate: ("intermediate_size", 0),
    attention: AttentionSpec::Gqa(GqaSpec {
        head_dim: HeadDimRule::HiddenOverHeads,
        attention_bias_default: false,
        qkv_bias: BiasRule::Never,
        o_bias: BiasRule::Never,
        partial_rotary: PartialRotaryRule {
            rotary_dim_key: false,
            default_factor: 1.0,
        },
        qk_norm: QkNormRule {
            norm: QkNorm::None,
            switch: None,
        },
        rope_layout: RopeLayout::Half,
        sinks: false,
        output_gate: false,
    }),
    layers: LayerSpec {
        moe_layers: MoeLayerRule::All,
        default_mask: MaskRule::SlidingAll,
        rotary: RotaryLayersRule::All,
        mixers: MixerRule::Attention,
    },
    moe: MoeSpec {
        num_experts_keys: &["num_local_experts", "num_experts", "n_routed_experts"],
        num_experts_default: None,
        top_k_default: None,
        intermediate: ("intermediate_size", 14336),
        router: RouterRule::Softmax {
            norm_topk_prob: FlagRule::Fixed(true),
        },
        shared: SharedExpertRule::None,
        activation: ActivationRule::SwiGlu,
    },
    ffn_names: FfnNames {
        moe: "block_sparse_moe",
        moe_fused_alt: Some("mlp"),
        experts: ExpertNames {
            per_expert: ["w1", "w3", "w2"],
            fused: FusedLayout::OutIn,
        },
        ..BASE_FFN_NAMES
    },
    norm_weight_offset: 0.0,
    wrapper: WrapperLayout::LanguageModel,
};
