//! `config.json` turned into a typed [`ModelConfig`], with every family default applied once here.

mod families;
mod family;
mod generation;
mod gqa;
mod mla;
mod moe;
mod quant;
pub(crate) mod quantize;
mod raw;
mod rope;
pub(crate) mod spec;
mod v4;

use std::path::Path;

pub use crate::rope::{RopeConfig, RopeLayout, RopeScaling};
pub use family::Family;
pub use generation::GenerationConfig;
pub use quant::{PackScheme, Quantization};

use crate::error::{Error, Result};
use raw::Raw;

/// Query/key normalisation before (or after) RoPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QkNorm {
    /// No query/key norm.
    None,
    /// RMSNorm with a `[head_dim]` weight, per head, before RoPE (Qwen3, GLM-4.5).
    PerHead,
    /// RMSNorm over the whole projected vector (`[nh*d]`, `[nkv*d]`), before RoPE (MiniMax-M2).
    WholeProjection,
    /// Weightless L2-RMS norm after RoPE, only on layers that rotate (Llama 4).
    L2,
}

/// Grouped-query attention settings shared by all layers.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GqaConfig {
    /// Query heads (`num_attention_heads`).
    pub num_heads: usize,
    /// Key/value heads (`num_key_value_heads`); each serves `num_heads / num_kv_heads` query heads.
    pub num_kv_heads: usize,
    /// Dimensions per head.
    pub head_dim: usize,
    /// Whether the q, k and v projections have biases.
    pub qkv_bias: bool,
    /// Whether the output projection has a bias.
    pub o_bias: bool,
    /// Query/key normalisation.
    pub qk_norm: QkNorm,
    /// Number of leading dims of each head that rotate (`head_dim * partial_rotary_factor`).
    pub rotary_dim: usize,
    /// Which dimensions pair up for rotation.
    pub rope_layout: RopeLayout,
    /// Per-head learned sink logits in the softmax denominator (gpt-oss).
    pub sinks: bool,
    /// `q_proj` yields `[query | gate]` per head and the attention output is multiplied by
    /// `sigmoid(gate)` before `o_proj` (Qwen3.5).
    pub output_gate: bool,
}

/// Gated DeltaNet linear-attention settings (Qwen3.5): a short causal convolution over the q/k/v
/// projections and a `[key_head_dim, value_head_dim]` recurrent state per value head.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LinearAttentionConfig {
    /// Query/key heads (`linear_num_key_heads`).
    pub num_key_heads: usize,
    /// Value heads (`linear_num_value_heads`), a multiple of the key heads.
    pub num_value_heads: usize,
    /// Dimensions per query/key head (`linear_key_head_dim`).
    pub key_head_dim: usize,
    /// Dimensions per value head (`linear_value_head_dim`).
    pub value_head_dim: usize,
    /// Taps of the depthwise causal convolution (`linear_conv_kernel_dim`).
    pub conv_kernel: usize,
}

impl LinearAttentionConfig {
    /// Channels of the convolution: queries, keys and values.
    pub fn conv_dim(&self) -> usize {
        2 * self.num_key_heads * self.key_head_dim + self.num_value_heads * self.value_head_dim
    }

    /// f32 values of one layer's state: the convolution's last `conv_kernel - 1` inputs and the
    /// recurrent state of every value head. Constant whatever the context.
    pub fn state_values(&self) -> usize {
        self.conv_kernel.saturating_sub(1) * self.conv_dim()
            + self.num_value_heads * self.key_head_dim * self.value_head_dim
    }
}

/// How a layer mixes information across tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenMixer {
    /// The model's attention (`ModelConfig::attention`), with a cache growing per token.
    Attention,
    /// Gated DeltaNet linear attention (`ModelConfig::linear_attention`), with a constant-size state.
    GatedDeltaNet,
}

/// DeepSeek sparse-attention indexer settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct IndexerConfig {
    /// Indexer heads (`index_n_heads`).
    pub n_heads: usize,
    /// Dimensions per indexer head (`index_head_dim`).
    pub head_dim: usize,
    /// Keys each query attends to (`index_topk`).
    pub topk: usize,
    /// Pair layout of the indexer's rotary part.
    pub rope_layout: RopeLayout,
    /// eps of the indexer's key LayerNorm.
    pub norm_eps: f32,
}

/// Multi-head latent attention settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MlaConfig {
    /// Attention heads.
    pub num_heads: usize,
    /// Rank of the query down-projection (`None`: a full query projection, DeepSeek V2-Lite).
    pub q_lora_rank: Option<usize>,
    /// Width of the cached key/value latent.
    pub kv_lora_rank: usize,
    /// Per-head query/key dimensions without RoPE.
    pub qk_nope_head_dim: usize,
    /// Per-head query/key dimensions with RoPE (the cached rope key is this wide).
    pub qk_rope_head_dim: usize,
    /// Per-head value dimensions.
    pub v_head_dim: usize,
    /// Which dimensions pair up for rotation.
    pub rope_layout: RopeLayout,
    /// `(qk_nope + qk_rope)^-0.5`, times `mscale_all_dim`-derived yarn factor squared.
    pub softmax_scale: f32,
    /// eps of `q_a_layernorm` and `kv_a_layernorm`.
    pub latent_norm_eps: f32,
    /// The DSA indexer (DeepSeek V3.2, GLM-5).
    pub indexer: Option<IndexerConfig>,
}

/// DeepSeek V4's attention: one shared K=V head over a sliding window, plus (per layer) compressed
/// entries pooled from every `m` tokens, chosen by a lightning indexer (compressed sparse attention)
/// or all visible (heavily compressed attention); per-head sinks and a grouped low-rank output
/// projection.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CompressedAttentionConfig {
    /// Query heads.
    pub num_heads: usize,
    /// Width of each head and of the shared K=V head.
    pub head_dim: usize,
    /// Trailing dims of each head that rotate (interleaved pairs).
    pub rope_dim: usize,
    /// Rank of the query down-projection.
    pub q_lora_rank: usize,
    /// Head groups of the output projection (`o_groups`).
    pub o_groups: usize,
    /// Per-group width of the output projection (`o_lora_rank`).
    pub o_lora_rank: usize,
    /// Keys of the sliding window (`sliding_window`), the query included.
    pub sliding_window: usize,
    /// Indexer heads (`index_n_heads`).
    pub index_heads: usize,
    /// Indexer head width (`index_head_dim`).
    pub index_head_dim: usize,
    /// Compressed entries each query keeps (`index_topk`).
    pub index_topk: usize,
    /// RoPE of the compressed layers and their compressors (`rope_parameters.compress`, or
    /// `compress_rope_theta` with the legacy flat keys); sliding-only layers use `ModelConfig::rope`.
    pub compress_rope: RopeConfig,
}

/// DeepSeek V4's manifold-constrained hyper-connections: the residual stream is `streams` copies,
/// collapsed before and expanded after each attention and feed-forward through learned weights, the
/// stream mixing matrix made doubly stochastic by Sinkhorn iterations.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HyperConnectionConfig {
    /// Residual streams (`hc_mult`).
    pub streams: usize,
    /// Sinkhorn-Knopp iterations (`hc_sinkhorn_iters`).
    pub sinkhorn_iters: usize,
    /// Floor added in the normalisations (`hc_eps`).
    pub eps: f32,
}

/// What a DeepSeek V4 layer adds to its sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KvCompression {
    /// The sliding window only (or a family without compression).
    None,
    /// Compressed sparse attention: overlapping windows of `m` tokens, indexer top-k.
    Sparse(usize),
    /// Heavily compressed attention: disjoint windows of `m` tokens, all visible.
    Heavy(usize),
}

/// The attention strategy and its settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AttentionConfig {
    /// Grouped-query attention.
    Gqa(GqaConfig),
    /// Multi-head latent attention (DeepSeek), optionally with the DSA indexer.
    Mla(MlaConfig),
    /// DeepSeek V4's sliding-window + compressed attention.
    Compressed(CompressedAttentionConfig),
}

/// Which keys a query may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttentionMask {
    /// Every earlier key and itself.
    Causal,
    /// The query and the `W-1` keys before it.
    SlidingWindow(usize),
    /// Causal within the aligned chunk of `C` positions holding the query.
    Chunked(usize),
}

/// Llama 4 NoPE-layer query scaling: `q *= log1p(floor((p+1)/floor_scale))*attn_scale + 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct TemperatureTuning {
    /// `floor_scale` of the formula.
    pub floor_scale: f64,
    /// `attn_scale` of the formula.
    pub attn_scale: f64,
}

/// What a layer's DSA indexer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexerRole {
    /// No sparse attention.
    None,
    /// Runs the indexer and selects top-k keys.
    Full,
    /// Reuses the selection of the most recent full layer (GLM-5).
    Shared,
}

/// The feed-forward of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FfnKind {
    /// A dense MLP.
    Dense,
    /// A mixture-of-experts block.
    Moe,
}

/// Per-layer choices.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LayerConfig {
    /// Dense or MoE feed-forward.
    pub ffn: FfnKind,
    /// Which keys the layer's queries see.
    pub mask: AttentionMask,
    /// Whether the layer applies RoPE (Llama 4's NoPE layers do not).
    pub use_rope: bool,
    /// Query scaling of NoPE layers (Llama 4).
    pub temperature_tuning: Option<TemperatureTuning>,
    /// What the layer's DSA indexer does.
    pub indexer: IndexerRole,
    /// Attention, or a linear recurrence (Qwen3.5's `linear_attention` layers).
    pub mixer: TokenMixer,
    /// DeepSeek V4: the layer's compressed entries.
    pub compression: KvCompression,
    /// DeepSeek V4's hash-routed MoE layers: experts chosen by token id (`tid2eid`).
    pub hash_routing: bool,
}

/// Expert-selection policy (ARCHITECTURES.md section 3).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RouterKind {
    /// softmax over all experts, top-k, optional renormalisation, optional group-limited choice
    /// (group score = max, DeepSeek V2), weights times `scaling` (Qwen2/3, Mixtral, DeepSeek V2).
    Softmax {
        /// Renormalise the selected weights to sum to 1.
        norm_topk_prob: bool,
        /// Group-limited choice: `(n_group, topk_group)`.
        groups: Option<(usize, usize)>,
        /// Multiplies the routing weights (`routed_scaling_factor`).
        scaling: f32,
    },
    /// sigmoid scores, correction bias for the choice only, group-limited top-k with
    /// top-2-sum group scores, optional renormalisation, times `scaling` (DeepSeek V3, GLM, MiniMax).
    SigmoidBiased {
        /// Expert groups.
        n_group: usize,
        /// Groups the top-k is chosen from.
        topk_group: usize,
        /// Renormalise the selected weights to sum to 1.
        norm_topk_prob: bool,
        /// Multiplies the routing weights (`routed_scaling_factor`).
        scaling: f32,
    },
    /// top-k of the raw logits; the expert's input is scaled by sigmoid(logit) (Llama 4).
    Llama4,
    /// `sqrt(softplus(logit))` scores, an optional correction bias for the choice, the chosen
    /// scores renormalised times `scaling` (DeepSeek V4; hash-routed layers take the experts from
    /// `tid2eid` and weight them the same way).
    SqrtSoftplus {
        /// Multiplies the routing weights (`routed_scaling_factor`).
        scaling: f32,
    },
    /// logits with a bias, top-k, softmax over the selected (gpt-oss).
    TopKSoftmax,
}

/// The expert MLP's activation.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum ExpertActivation {
    /// `silu(gate) * up`.
    SwiGlu,
    /// gpt-oss: `(clamp(up)+1) * g*sigmoid(alpha*g)` with `g = min(gate, limit)`.
    ClampedSwiGlu {
        /// Sigmoid slope.
        alpha: f32,
        /// Clamp of gate and up.
        limit: f32,
    },
    /// DeepSeek V4: `silu(min(gate, limit)) * clamp(up, -limit, limit)`, shared experts included.
    ClampedSilu {
        /// Clamp of gate and up (`swiglu_limit`).
        limit: f32,
    },
}

/// The shared expert applied to every token.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SharedExpertConfig {
    /// Intermediate size of its MLP.
    pub intermediate_size: usize,
    /// Qwen2-MoE: the shared output is multiplied by `sigmoid(x·w_gate)`.
    pub gated: bool,
}

/// Mixture-of-experts settings of the MoE layers.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MoeConfig {
    /// Routed experts per MoE layer.
    pub num_experts: usize,
    /// Experts each token is routed to (`num_experts_per_tok`).
    pub top_k: usize,
    /// Intermediate size of each routed expert.
    pub intermediate_size: usize,
    /// How experts are chosen and weighted.
    pub router: RouterKind,
    /// The experts' activation.
    pub activation: ExpertActivation,
    /// The shared expert, if the family has one.
    pub shared: Option<SharedExpertConfig>,
}

/// Everything about a model that is read from config.json.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ModelConfig {
    /// The model family.
    pub family: Family,
    /// `architectures[0]`, or the model type when absent.
    pub architecture: String,
    /// Vocabulary size (rows of the embedding and the lm_head).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Decoder layers.
    pub num_layers: usize,
    /// eps of the layer norms.
    pub rms_norm_eps: f32,
    /// The trained context; the default `max_context` of sessions.
    pub max_position_embeddings: usize,
    /// Whether the lm_head reuses the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Prefix of the text model's tensors (`""`, or `"language_model."` for multimodal checkpoints
    /// that keep `language_model.model.*` and `language_model.lm_head`); the `lm_head` is under it.
    pub weight_prefix: String,
    /// Prefix of the decoder's tensors (embedding, layers, final norm): `"model."`,
    /// `"language_model.model."`, or `"model.language_model."` (Qwen3.5's multimodal wrapper).
    pub body_prefix: String,
    /// Added to every stored RMSNorm weight of the residual stream and the q/k norms: 0, or 1 for
    /// zero-centred norms computing `x·(1 + w)` (Qwen3.5).
    pub norm_weight_offset: f32,
    /// RoPE base and scaling.
    pub rope: RopeConfig,
    /// The attention strategy.
    pub attention: AttentionConfig,
    /// The linear attention of the layers whose mixer is [`TokenMixer::GatedDeltaNet`].
    pub linear_attention: Option<LinearAttentionConfig>,
    /// DeepSeek V4's hyper-connections (`None`: one residual stream).
    pub hyper_connections: Option<HyperConnectionConfig>,
    /// Per-layer choices, one entry per layer.
    pub layers: Vec<LayerConfig>,
    /// Dense-MLP intermediate size (dense layers).
    pub intermediate_size: usize,
    /// Mixture-of-experts settings (`None` without MoE layers).
    pub moe: Option<MoeConfig>,
    /// Beginning-of-sequence token id.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token ids.
    pub eos_token_ids: Vec<u32>,
    /// Block shape of FP8 weight scales (`quantization_config.weight_block_size`, default 128×128).
    pub fp8_block: (usize, usize),
    /// The weight format declared by `quantization_config` (checked to be one this engine runs).
    pub quant: Quantization,
    /// The (text) config object as read, for callers that want other keys.
    pub raw: serde_json::Value,
}

impl ModelConfig {
    /// Reads `dir/config.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        Self::from_json_str(&text, &path)
    }

    /// Parses config.json text; `path` only names the file in errors.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: format!("not valid JSON: {e}"),
        })?;
        let top = value.as_object().ok_or_else(|| Error::Config {
            path: path.to_path_buf(),
            message: "top level is not a JSON object".into(),
        })?;
        let top = Raw { map: top, path };
        let architectures: Vec<&str> = top.opt_str_list("architectures")?.unwrap_or_default();
        let family = Family::detect(top.opt_str("model_type")?, &architectures)?;

        // Multimodal wrappers (Llama 4, Kimi K2.5, Qwen3.5) keep the text model under text_config.
        let wrapped = top.opt_obj("text_config")?;
        let text_raw = wrapped.unwrap_or(top);
        let family = match text_raw.opt_str("model_type")? {
            Some(mt) => Family::from_model_type(mt).unwrap_or(family),
            None => family,
        };
        let (weight_prefix, body_prefix) = match (wrapped.is_some(), family.spec().wrapper) {
            (false, _) => ("", "model."),
            (true, spec::WrapperLayout::LanguageModel) => {
                ("language_model.", "language_model.model.")
            }
            (true, spec::WrapperLayout::ModelLanguageModel) => ("", "model.language_model."),
        };
        let architecture = architectures
            .first()
            .map(|s| s.to_string())
            .unwrap_or_else(|| family.name().to_string());
        let raw_value = serde_json::Value::Object(text_raw.map.clone());
        let mut cfg = Self::parse_text(family, &text_raw)?;
        cfg.architecture = architecture;
        cfg.weight_prefix = weight_prefix.to_string();
        cfg.body_prefix = body_prefix.to_string();
        cfg.raw = raw_value;
        if cfg.eos_token_ids.is_empty() {
            cfg.eos_token_ids = top.token_ids("eos_token_id")?;
        }
        if let Some(q) = top.opt_obj("quantization_config")? {
            cfg.quant = quant::parse(&q)?;
            if let Some(b) = q.opt_usize_list("weight_block_size")? {
                match b.as_slice() {
                    [r, c] if *r > 0 && *c > 0 => cfg.fp8_block = (*r, *c),
                    _ => {
                        return Err(Error::InconsistentConfig(format!(
                            "weight_block_size {b:?} is not two positive sizes"
                        )))
                    }
                }
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn parse_text(family: Family, raw: &Raw) -> Result<Self> {
        let spec = family.spec();
        let max_pos = raw.usize_or("max_position_embeddings", 4096)?;
        let rope = RopeConfig::parse(raw, spec.default_rope_theta, max_pos)?;
        let num_layers = raw.req_usize("num_hidden_layers")?;
        let hidden_size = raw.req_usize("hidden_size")?;
        let base = ModelConfig {
            family,
            architecture: String::new(),
            vocab_size: raw.req_usize("vocab_size")?,
            hidden_size,
            num_layers,
            rms_norm_eps: raw.f64_or("rms_norm_eps", spec.default_rms_norm_eps)? as f32,
            max_position_embeddings: max_pos,
            tie_word_embeddings: raw.bool_or("tie_word_embeddings", false)?,
            weight_prefix: String::new(),
            body_prefix: "model.".to_string(),
            norm_weight_offset: spec.norm_weight_offset,
            rope,
            attention: AttentionConfig::Gqa(GqaConfig {
                num_heads: 0,
                num_kv_heads: 0,
                head_dim: 0,
                qkv_bias: false,
                o_bias: false,
                qk_norm: QkNorm::None,
                rotary_dim: 0,
                rope_layout: RopeLayout::Half,
                sinks: false,
                output_gate: false,
            }),
            linear_attention: None,
            hyper_connections: None,
            layers: vec![],
            intermediate_size: raw
                .usize_or(spec.dense_intermediate.0, spec.dense_intermediate.1)?,
            moe: None,
            bos_token_id: raw.opt_token_id("bos_token_id")?,
            eos_token_ids: raw.token_ids("eos_token_id")?,
            fp8_block: (128, 128),
            quant: Quantization::None,
            raw: serde_json::Value::Null,
        };
        match &spec.attention {
            spec::AttentionSpec::Gqa(g) => gqa::parse(base, raw, spec, g),
            spec::AttentionSpec::Mla(m) => mla::parse(base, raw, spec, m),
            spec::AttentionSpec::Compressed => v4::parse(base, raw, spec),
        }
    }

    /// Checks that sizes are non-zero and consistent.
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InconsistentConfig(m));
        if self.vocab_size == 0 || self.hidden_size == 0 || self.num_layers == 0 {
            return bad("vocab_size, hidden_size and num_hidden_layers must be positive".into());
        }
        if self.layers.len() != self.num_layers {
            return bad(format!(
                "{} per-layer entries for {} layers",
                self.layers.len(),
                self.num_layers
            ));
        }
        match &self.attention {
            AttentionConfig::Gqa(g) => {
                if g.num_heads == 0 || g.num_kv_heads == 0 || g.head_dim == 0 {
                    return bad("attention heads and head_dim must be positive".into());
                }
                if g.num_heads % g.num_kv_heads != 0 {
                    return bad(format!(
                        "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                        g.num_heads, g.num_kv_heads
                    ));
                }
                if g.rotary_dim % 2 != 0 || g.rotary_dim > g.head_dim {
                    return bad(format!(
                        "rotary dim {} does not fit head_dim {}",
                        g.rotary_dim, g.head_dim
                    ));
                }
            }
            AttentionConfig::Mla(m) => {
                if m.num_heads == 0 || m.kv_lora_rank == 0 || m.v_head_dim == 0 {
                    return bad("MLA heads, kv_lora_rank and v_head_dim must be positive".into());
                }
                if m.qk_rope_head_dim % 2 != 0 {
                    return bad("qk_rope_head_dim must be even".into());
                }
                if let Some(ix) = &m.indexer {
                    if ix.head_dim < m.qk_rope_head_dim || ix.n_heads == 0 || ix.topk == 0 {
                        return bad(
                            "indexer dims must be positive and index_head_dim >= qk_rope_head_dim"
                                .into(),
                        );
                    }
                }
                if self.layers.first().map(|l| l.indexer) == Some(IndexerRole::Shared) {
                    return bad("layer 0 cannot reuse an earlier layer's indexer selection".into());
                }
            }
            AttentionConfig::Compressed(c) => {
                if c.num_heads == 0
                    || c.head_dim == 0
                    || c.q_lora_rank == 0
                    || c.o_groups == 0
                    || c.o_lora_rank == 0
                    || c.sliding_window == 0
                    || c.index_heads == 0
                    || c.index_head_dim == 0
                    || c.index_topk == 0
                {
                    return bad("DeepSeek V4 attention sizes must be positive".into());
                }
                if c.rope_dim % 2 != 0 || c.rope_dim > c.head_dim || c.rope_dim > c.index_head_dim {
                    return bad(format!(
                        "rope dim {} must be even and fit head_dim {} and index_head_dim {}",
                        c.rope_dim, c.head_dim, c.index_head_dim
                    ));
                }
                if (c.num_heads * c.head_dim) % c.o_groups != 0 {
                    return bad(format!(
                        "o_groups {} does not divide the {} attention outputs",
                        c.o_groups,
                        c.num_heads * c.head_dim
                    ));
                }
                if self.layers.iter().any(|l| {
                    matches!(
                        l.compression,
                        KvCompression::Sparse(0) | KvCompression::Heavy(0)
                    )
                }) {
                    return bad("compress rates must be positive".into());
                }
                match &self.hyper_connections {
                    Some(h) if h.streams > 0 && h.streams <= 64 => {}
                    _ => return bad("hc_mult must be between 1 and 64".into()),
                }
            }
        }
        let linear_layers = self
            .layers
            .iter()
            .any(|l| l.mixer == TokenMixer::GatedDeltaNet);
        match &self.linear_attention {
            None if linear_layers => {
                return bad("linear_attention layers without linear attention settings".into())
            }
            Some(la) => {
                if la.num_key_heads == 0
                    || la.num_value_heads == 0
                    || la.key_head_dim == 0
                    || la.value_head_dim == 0
                    || la.conv_kernel == 0
                {
                    return bad(
                        "linear attention heads, head dims and conv kernel must be positive".into(),
                    );
                }
                if la.num_value_heads % la.num_key_heads != 0 {
                    return bad(format!(
                        "linear_num_value_heads {} is not a multiple of linear_num_key_heads {}",
                        la.num_value_heads, la.num_key_heads
                    ));
                }
                // The recurrent state is allocated whole: it must be addressable (2^34 values, 64 GiB).
                let state = (la.num_value_heads as u128)
                    * (la.key_head_dim as u128)
                    * (la.value_head_dim as u128)
                    + (la.conv_kernel as u128) * (la.conv_dim() as u128);
                if state > 1 << 34 {
                    return bad(format!(
                        "a linear attention state of {state} values per layer is too large"
                    ));
                }
            }
            None => {}
        }
        if let Some(moe) = &self.moe {
            if moe.num_experts == 0 || moe.top_k == 0 || moe.top_k > moe.num_experts {
                return bad(format!(
                    "num_experts_per_tok {} must be between 1 and the number of experts {}",
                    moe.top_k, moe.num_experts
                ));
            }
            if let RouterKind::SigmoidBiased {
                n_group,
                topk_group,
                ..
            }
            | RouterKind::Softmax {
                groups: Some((n_group, topk_group)),
                ..
            } = &moe.router
            {
                if *n_group == 0
                    || moe.num_experts % n_group != 0
                    || *topk_group > *n_group
                    || *topk_group == 0
                {
                    return bad(format!(
                        "n_group {n_group} / topk_group {topk_group} do not divide {} experts",
                        moe.num_experts
                    ));
                }
            }
        }
        if self.layers.iter().any(|l| l.ffn == FfnKind::Moe) && self.moe.is_none() {
            return bad("MoE layers without expert settings".into());
        }
        if self.layers.iter().any(|l| l.ffn == FfnKind::Dense) && self.intermediate_size == 0 {
            return bad("dense layers need a positive intermediate_size".into());
        }
        if self.max_position_embeddings == 0 {
            return bad("max_position_embeddings must be positive".into());
        }
        Ok(())
    }

    /// Number of layers whose feed-forward is an MoE block.
    pub fn num_moe_layers(&self) -> usize {
        self.layers.iter().filter(|l| l.ffn == FfnKind::Moe).count()
    }
}

/// Mask of one layer from a transformers-5 `layer_types` entry.
pub(crate) fn mask_from_layer_type(
    t: &str,
    window: Option<usize>,
    chunk: Option<usize>,
) -> Result<AttentionMask> {
    Ok(match t {
        "full_attention" | "indexed_attention" => AttentionMask::Causal,
        "sliding_attention" => match window {
            Some(w) if w > 0 => AttentionMask::SlidingWindow(w),
            _ => {
                return Err(Error::InconsistentConfig(
                    "sliding_attention layer without sliding_window".into(),
                ))
            }
        },
        "chunked_attention" => match chunk {
            Some(c) if c > 0 => AttentionMask::Chunked(c),
            _ => {
                return Err(Error::InconsistentConfig(
                    "chunked_attention layer without attention_chunk_size".into(),
                ))
            }
        },
        other => {
            return Err(Error::InconsistentConfig(format!(
                "unknown layer type {other:?}"
            )))
        }
    })
}
