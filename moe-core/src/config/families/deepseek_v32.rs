//! DeepSeek V3.2: DeepSeek V3 plus the DSA indexer on every layer (sparse attention).

use super::deepseek_v3::{DEEPSEEK_FFN_NAMES, SIGMOID_MLA_MOE};
use crate::config::spec::*;
use crate::config::Family;
use crate::rope::RopeLayout;

pub(crate) const SPEC: FamilySpec = FamilySpec {
    family: Family::DeepseekV32,
    model_types: &["deepseek_v32"],
    architectures: &["DeepseekV32ForCausalLM"],
    default_rope_theta: 10_000.0,
    default_rms_norm_eps: 1e-6,
    dense_intermediate: ("intermediate_size", 0),
    attention: AttentionSpec::Mla(MlaSpec {
        rope_layout: RopeLayoutRule::Fixed(RopeLayout::Interleaved),
        indexer: Some(IndexerSpec {
            default_heads: 64,
            default_rope_interleave: false,
            roles: IndexerRolesRule::EveryLayer,
            norm_eps: 1e-6,
        }),
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
