//! GLM-5: DeepSeek V3.2's attention with layers that reuse the latest indexer selection.

use super::deepseek_v3::{DEEPSEEK_FFN_NAMES, SIGMOID_MLA_MOE};
use crate::config::spec::*;
use crate::config::Family;
use crate::rope::RopeLayout;

pub(crate) const SPEC: FamilySpec = FamilySpec {
    family: Family::GlmMoeDsa,
    model_types: &["glm_moe_dsa"],
    architectures: &["GlmMoeDsaForCausalLM"],
    default_rope_theta: 10_000.0,
    default_rms_norm_eps: 1e-6,
    dense_intermediate: ("intermediate_size", 0),
    attention: AttentionSpec::Mla(MlaSpec {
        rope_layout: RopeLayoutRule::Fixed(RopeLayout::Interleaved),
        indexer: Some(IndexerSpec {
            default_heads: 32,
            default_rope_interleave: true,
            roles: IndexerRolesRule::FullOrShared,
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
