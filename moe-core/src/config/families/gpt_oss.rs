//! gpt-oss: GQA with biases and sinks, sliding window on even layers; biased router with softmax over
//! the selected; clamped SwiGLU over interleaved fused experts.

use crate::config::spec::*;
use crate::config::{Family, QkNorm};
use crate::rope::RopeLayout;

pub(crate) const SPEC: FamilySpec = FamilySpec {
    family: Family::GptOss,
    model_types: &["gpt_oss"],
    architectures: &["GptOssForCausalLM"],
    default_rope_theta: 150_000.0,
    default_rms_norm_eps: 1e-6,
    dense_intermediate: ("intermediate_size", 0),
    attention: AttentionSpec::Gqa(GqaSpec {
        head_dim: HeadDimRule::Fixed(64),
        attention_bias_default: true,
        qkv_bias: BiasRule::AttentionBias,
        o_bias: BiasRule::AttentionBias,
        partial_rotary: PartialRotaryRule {
            rotary_dim_key: false,
            default_factor: 1.0,
        },
        qk_norm: QkNormRule {
            norm: QkNorm::None,
            switch: None,
        },
        rope_layout: RopeLayout::Half,
        sinks: true,
        output_gate: false,
    }),
    layers: LayerSpec {
        moe_layers: MoeLayerRule::All,
        default_mask: MaskRule::SlidingEven,
        rotary: RotaryLayersRule::All,
        mixers: MixerRule::Attention,
    },
    moe: MoeSpec {
        num_experts_keys: &["num_local_experts", "num_experts", "n_routed_experts"],
        num_experts_default: None,
        top_k_default: None,
        intermediate: ("intermediate_size", 2880),
        router: RouterRule::TopKSoftmax,
        shared: SharedExpertRule::None,
        activation: ActivationRule::ClampedSwiGlu {
            alpha: 1.702,
            limit: 7.0,
        },
    },
    ffn_names: FfnNames {
        router: "router",
        router_bias: true,
        experts: ExpertNames {
            per_expert: SWIGLU,
            fused: FusedLayout::InOutInterleavedBiased,
        },
        ..BASE_FFN_NAMES
    },
    norm_weight_offset: 0.0,
    wrapper: WrapperLayout::LanguageModel,
};
