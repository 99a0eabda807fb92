//! A model family as data: every choice the engine makes per family, in one [`FamilySpec`] per family
//! (`config/families/*.rs`). Parsing (`config/gqa.rs`, `config/mla.rs`) and loading (`model`) read
//! these rules and never match on the family themselves, so adding a family is one new spec the
//! compiler checks (every field is required) plus its fixtures.

use super::{Family, QkNorm};
use crate::rope::RopeLayout;

/// Everything particular to one family.
#[derive(Debug)]
pub(crate) struct FamilySpec {
    /// The family this spec describes (checked against `Family::spec` by a test).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) family: Family,
    /// `model_type` values, the canonical one first.
    pub(crate) model_types: &'static [&'static str],
    /// `architectures` class names.
    pub(crate) architectures: &'static [&'static str],
    /// `rope_theta` when the config gives none (transformers' class default).
    pub(crate) default_rope_theta: f64,
    /// `rms_norm_eps` when the config gives none.
    pub(crate) default_rms_norm_eps: f64,
    /// Config key and default of the dense MLP's intermediate size.
    pub(crate) dense_intermediate: (&'static str, usize),
    pub(crate) attention: AttentionSpec,
    pub(crate) layers: LayerSpec,
    pub(crate) moe: MoeSpec,
    pub(crate) ffn_names: FfnNames,
    /// Added to every stored RMSNorm weight of the residual stream and the q/k norms: 0, or 1 for
    /// zero-centred norms that compute `x·(1 + w)` (Qwen3.5).
    pub(crate) norm_weight_offset: f32,
    /// Where a multimodal wrapper (`text_config`) keeps the text model's tensors.
    pub(crate) wrapper: WrapperLayout,
}

/// Tensor layout of a multimodal checkpoint whose config nests the text model under `text_config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WrapperLayout {
    /// `language_model.model.*` and `language_model.lm_head` (Llama 4, Kimi K2.5).
    LanguageModel,
    /// `model.language_model.*` and `lm_head` at the root (Qwen3.5).
    ModelLanguageModel,
}

/// The attention strategy and its per-family rules.
#[derive(Debug)]
pub(crate) enum AttentionSpec {
    Gqa(GqaSpec),
    Mla(MlaSpec),
    /// DeepSeek V4's sliding-window + compressed attention with hyper-connections (`config/v4.rs`).
    Compressed,
}

/// Grouped-query attention rules.
#[derive(Debug)]
pub(crate) struct GqaSpec {
    /// `head_dim` when the config gives none.
    pub(crate) head_dim: HeadDimRule,
    /// `attention_bias` when the config gives none.
    pub(crate) attention_bias_default: bool,
    /// Which q/k/v and o projections carry a bias.
    pub(crate) qkv_bias: BiasRule,
    pub(crate) o_bias: BiasRule,
    pub(crate) partial_rotary: PartialRotaryRule,
    pub(crate) qk_norm: QkNormRule,
    pub(crate) rope_layout: RopeLayout,
    /// Learned per-head sink logits in the softmax denominator.
    pub(crate) sinks: bool,
    /// `q_proj` also yields a per-head gate, `out *= sigmoid(gate)` before `o_proj` (Qwen3.5).
    pub(crate) output_gate: bool,
}

/// Default `head_dim`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HeadDimRule {
    /// `hidden_size / num_attention_heads`.
    HiddenOverHeads,
    Fixed(usize),
}

/// Where a projection's bias flag comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BiasRule {
    Never,
    /// The `attention_bias` key.
    AttentionBias,
    /// A key of its own, with its default.
    Key(&'static str, bool),
}

/// Rotated share of each head: `rotary_dim / head_dim` or `partial_rotary_factor`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PartialRotaryRule {
    /// An absolute `rotary_dim` key takes precedence (MiniMax-M2).
    pub(crate) rotary_dim_key: bool,
    /// `partial_rotary_factor` when the config gives none.
    pub(crate) default_factor: f64,
}

/// Query/key normalisation, optionally switched by a config key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QkNormRule {
    pub(crate) norm: QkNorm,
    /// `(key, default)`: the norm applies only when the key is true.
    pub(crate) switch: Option<(&'static str, bool)>,
}

/// Multi-head latent attention rules.
#[derive(Debug)]
pub(crate) struct MlaSpec {
    pub(crate) rope_layout: RopeLayoutRule,
    /// The DSA indexer, for families with sparse attention.
    pub(crate) indexer: Option<IndexerSpec>,
    /// eps of `q_a_layernorm` and `kv_a_layernorm` (fixed in the reference code, not in config.json).
    pub(crate) latent_norm_eps: f32,
}

/// RoPE pair layout, fixed or switched by a key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RopeLayoutRule {
    Fixed(RopeLayout),
    /// Interleaved when `key` (default `default`) is true, else half.
    InterleavedKey(&'static str, bool),
}

/// DeepSeek sparse-attention indexer rules.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexerSpec {
    /// `index_n_heads` when the config gives none.
    pub(crate) default_heads: usize,
    /// `indexer_rope_interleave` when the config gives none.
    pub(crate) default_rope_interleave: bool,
    pub(crate) roles: IndexerRolesRule,
    /// eps of the indexer's key LayerNorm (fixed in the reference code).
    pub(crate) norm_eps: f32,
}

/// Which layers run the indexer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum IndexerRolesRule {
    /// Every layer (DeepSeek V3.2).
    EveryLayer,
    /// `indexer_types`, `index_topk_pattern`, or `index_topk_freq`/`index_skip_topk_offset`; the other
    /// layers reuse the latest selection (GLM-5).
    FullOrShared,
}

/// Per-layer rules: which layers are MoE, default masks, which layers rotate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerSpec {
    pub(crate) moe_layers: MoeLayerRule,
    /// The mask of each layer when config.json has no `layer_types`.
    pub(crate) default_mask: MaskRule,
    pub(crate) rotary: RotaryLayersRule,
    pub(crate) mixers: MixerRule,
}

/// Which layers mix tokens by attention and which by a linear recurrence.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MixerRule {
    /// Every layer attends.
    Attention,
    /// Gated DeltaNet layers (`linear_attention` in `layer_types`), or, without `layer_types`, every
    /// layer but each `full_attention_interval`-th (default given) (Qwen3.5).
    GatedDeltaNetInterval(usize),
}

/// Which layers have an MoE feed-forward.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MoeLayerRule {
    /// `mlp_only_layers` and `decoder_sparse_step` (Qwen).
    SparseStep,
    /// All but the first `first_k_dense_replace` (default given).
    FirstKDense(usize),
    /// `moe_layers`, or every `interleave_moe_layer_step`-th (Llama 4).
    Interleaved,
    All,
}

/// Default attention mask per layer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MaskRule {
    Causal,
    /// Every layer slides when `sliding_window` is set (Mixtral).
    SlidingAll,
    /// Even layers slide when `sliding_window` is set (gpt-oss).
    SlidingEven,
    /// Every layer slides when `use_sliding_window` is true (Qwen3).
    SlidingWhenEnabled,
    /// Even layers below `max_window_layers` slide when `use_sliding_window` is true (Qwen2).
    SlidingEvenBelowMaxWindowLayers,
    /// Rotating layers are chunked by `attention_chunk_size` (Llama 4).
    ChunkedOnRotaryLayers,
}

/// Which layers apply RoPE.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RotaryLayersRule {
    All,
    /// `no_rope_layers` / `no_rope_layer_interval`, with temperature tuning on the NoPE layers.
    NoRopeLayers,
}

/// MoE block rules.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MoeSpec {
    /// Keys naming the number of experts, in order of precedence, and the default.
    pub(crate) num_experts_keys: &'static [&'static str],
    pub(crate) num_experts_default: Option<usize>,
    /// `num_experts_per_tok` when the config gives none (`None`: required).
    pub(crate) top_k_default: Option<usize>,
    /// Key and default of the expert intermediate size.
    pub(crate) intermediate: (&'static str, usize),
    pub(crate) router: RouterRule,
    pub(crate) shared: SharedExpertRule,
    pub(crate) activation: ActivationRule,
}

/// How the router's settings are read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RouterRule {
    /// Softmax top-k; `norm_topk_prob` fixed or read with a default.
    Softmax {
        norm_topk_prob: FlagRule,
    },
    /// Softmax, greedy or group-limited by `topk_method`, scaled, never renormalised (DeepSeek V2).
    SoftmaxTopkMethod,
    /// Sigmoid with correction bias, one group, renormalised, unscaled (MiniMax-M2).
    SigmoidBiasedUngrouped,
    /// Sigmoid with correction bias; `n_group`, `topk_group`, `norm_topk_prob` and
    /// `routed_scaling_factor` from the config (DeepSeek V3, GLM).
    SigmoidBiasedGrouped,
    Llama4,
    TopKSoftmax,
    /// `sqrt(softplus)` scores with `routed_scaling_factor` (DeepSeek V4).
    SqrtSoftplus,
}

/// A boolean setting: fixed, or a key with its default.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FlagRule {
    Fixed(bool),
    Key(&'static str, bool),
}

/// The shared expert's size.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SharedExpertRule {
    None,
    /// Its own size key and default (0 = none), output gated by `sigmoid(x·w)` (Qwen2-MoE).
    GatedSize(&'static str, usize),
    /// `n_shared_experts` (default given) times the expert intermediate size.
    Count(usize),
    /// One expert of the routed experts' size (Llama 4).
    OneExpert,
}

/// The expert activation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ActivationRule {
    SwiGlu,
    /// `swiglu_alpha` and `swiglu_limit` with their defaults (gpt-oss).
    ClampedSwiGlu {
        alpha: f64,
        limit: f64,
    },
    /// `swiglu_limit` with its default (DeepSeek V4).
    ClampedSilu {
        limit: f64,
    },
}

/// Tensor names of one family's feed-forward (relative to `model.layers.N`), with their fallbacks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FfnNames {
    /// Module of the dense MLP (`mlp`, `feed_forward`).
    pub(crate) dense: &'static str,
    /// Module of the MoE block (`mlp`, `feed_forward`, `block_sparse_moe`).
    pub(crate) moe: &'static str,
    /// Where transformers-5 fused checkpoints keep the MoE block when it differs (`mlp`).
    pub(crate) moe_fused_alt: Option<&'static str>,
    /// Router module inside the MoE block (`gate` or `router`).
    pub(crate) router: &'static str,
    /// Whether the router linear has a bias (gpt-oss).
    pub(crate) router_bias: bool,
    /// `e_score_correction_bias` inside the MoE block for sigmoid routers: the published place, then
    /// the other place some exports use.
    pub(crate) correction_bias: Option<[&'static str; 2]>,
    pub(crate) experts: ExpertNames,
    /// Shared expert module and, for Qwen2-MoE, its scalar gate.
    pub(crate) shared: Option<&'static str>,
    pub(crate) shared_gate: Option<&'static str>,
}

/// Names of one family's expert tensors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExpertNames {
    /// Per-expert projection names: gate, up, down (`gate_proj`.. or Mixtral's `w1`, `w3`, `w2`).
    pub(crate) per_expert: [&'static str; 3],
    /// The fused layout tried when per-expert tensors are absent.
    pub(crate) fused: FusedLayout,
}

/// Layout of fused expert tensors in a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FusedLayout {
    /// `gate_up_proj [E, 2I, H]`, `down_proj [E, H, I]`, used as `x·Wᵀ` (transformers-5 in-memory names).
    OutIn,
    /// `gate_up_proj [E, H, 2I]` (halves), `down_proj [E, I, H]`, used as `x·W` (Llama 4).
    InOut,
    /// gpt-oss: `[E, H, 2I]` interleaved gate/up columns with `_bias` tensors.
    InOutInterleavedBiased,
}

/// The SwiGLU projection names most families use.
pub(crate) const SWIGLU: [&str; 3] = ["gate_proj", "up_proj", "down_proj"];

/// Names shared by most families; specs override what differs.
pub(crate) const BASE_FFN_NAMES: FfnNames = FfnNames {
    dense: "mlp",
    moe: "mlp",
    moe_fused_alt: None,
    router: "gate",
    router_bias: false,
    correction_bias: None,
    experts: ExpertNames {
        per_expert: SWIGLU,
        fused: FusedLayout::OutIn,
    },
    shared: None,
    shared_gate: None,
};

/// DeepSeek V3 and GLM keep the correction bias in the gate; some exports put it in the block.
pub(crate) const GATE_CORRECTION_BIAS: Option<[&str; 2]> =
    Some(["gate.e_score_correction_bias", "e_score_correction_bias"]);
