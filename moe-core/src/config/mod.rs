//! `config.json` turned into a typed [`ModelConfig`], with every family default applied once here.

mod family;
mod gqa;
mod mla;
mod quant;
mod raw;
mod rope;

use std::path::Path;

pub use family::Family;
pub use quant::{PackScheme, Quantization};
pub use rope::{RopeConfig, RopeScaling};

use crate::error::{Error, Result};
use raw::Raw;

/// Which half of a head's dimensions pair up for rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Pairs `(x_j, x_{j+D/2})` ("rotate half", NeoX).
    Half,
    /// Pairs `(x_{2j}, x_{2j+1})` (GPT-J, complex multiplication).
    Interleaved,
}

/// Query/key normalisation before (or after) RoPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QkNorm {
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
pub struct GqaConfig {
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub qkv_bias: bool,
    pub o_bias: bool,
    pub qk_norm: QkNorm,
    /// Number of leading dims of each head that rotate (`head_dim * partial_rotary_factor`).
    pub rotary_dim: usize,
    pub rope_layout: RopeLayout,
    /// Per-head learned sink logits in the softmax denominator (gpt-oss).
    pub sinks: bool,
}

/// DeepSeek sparse-attention indexer settings.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexerConfig {
    pub n_heads: usize,
    pub head_dim: usize,
    pub topk: usize,
    pub rope_layout: RopeLayout,
}

/// Multi-head latent attention settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MlaConfig {
    pub num_heads: usize,
    pub q_lora_rank: Option<usize>,
    pub kv_lora_rank: usize,
    pub qk_nope_head_dim: usize,
    pub qk_rope_head_dim: usize,
    pub v_head_dim: usize,
    pub rope_layout: RopeLayout,
    /// `(qk_nope + qk_rope)^-0.5`, times `mscale_all_dim`-derived yarn factor squared.
    pub softmax_scale: f32,
    pub indexer: Option<IndexerConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AttentionConfig {
    Gqa(GqaConfig),
    Mla(MlaConfig),
}

/// Which keys a query may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
pub struct TemperatureTuning {
    pub floor_scale: f64,
    pub attn_scale: f64,
}

/// What a layer's DSA indexer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexerRole {
    /// No sparse attention.
    None,
    /// Runs the indexer and selects top-k keys.
    Full,
    /// Reuses the selection of the most recent full layer (GLM-5).
    Shared,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FfnKind {
    Dense,
    Moe,
}

/// Per-layer choices.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerConfig {
    pub ffn: FfnKind,
    pub mask: AttentionMask,
    pub use_rope: bool,
    pub temperature_tuning: Option<TemperatureTuning>,
    pub indexer: IndexerRole,
}

/// Expert-selection policy (ARCHITECTURES.md section 3).
#[derive(Debug, Clone, PartialEq)]
pub enum RouterKind {
    /// softmax over all experts, top-k, optional renormalisation, optional group-limited choice
    /// (group score = max, DeepSeek V2), weights times `scaling` (Qwen2/3, Mixtral, DeepSeek V2).
    Softmax {
        norm_topk_prob: bool,
        groups: Option<(usize, usize)>,
        scaling: f32,
    },
    /// sigmoid scores, correction bias for the choice only, group-limited top-k with
    /// top-2-sum group scores, optional renormalisation, times `scaling` (DeepSeek V3, GLM, MiniMax).
    SigmoidBiased {
        n_group: usize,
        topk_group: usize,
        norm_topk_prob: bool,
        scaling: f32,
    },
    /// top-k of the raw logits; the expert's input is scaled by sigmoid(logit) (Llama 4).
    Llama4,
    /// logits with a bias, top-k, softmax over the selected (gpt-oss).
    TopKSoftmax,
}

/// The expert MLP's activation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExpertActivation {
    SwiGlu,
    /// gpt-oss: `(clamp(up)+1) * g*sigmoid(alpha*g)` with `g = min(gate, limit)`.
    ClampedSwiGlu {
        alpha: f32,
        limit: f32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct SharedExpertConfig {
    pub intermediate_size: usize,
    /// Qwen2-MoE: the shared output is multiplied by `sigmoid(x·w_gate)`.
    pub gated: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MoeConfig {
    pub num_experts: usize,
    pub top_k: usize,
    pub intermediate_size: usize,
    pub router: RouterKind,
    pub activation: ExpertActivation,
    pub shared: Option<SharedExpertConfig>,
}

/// Everything about a model that is read from config.json.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub family: Family,
    /// `architectures[0]`, or the model type when absent.
    pub architecture: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub rms_norm_eps: f32,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Prefix of the text model's tensors (`""`, or `"language_model."` for multimodal checkpoints).
    pub weight_prefix: String,
    pub rope: RopeConfig,
    pub attention: AttentionConfig,
    pub layers: Vec<LayerConfig>,
    /// Dense-MLP intermediate size (dense layers).
    pub intermediate_size: usize,
    pub moe: Option<MoeConfig>,
    pub bos_token_id: Option<u32>,
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

        // Multimodal wrappers (Llama 4, Kimi K2.5) keep the text model under text_config.
        let (text_raw, weight_prefix) = match top.opt_obj("text_config")? {
            Some(t) => (t, "language_model.".to_string()),
            None => (top, String::new()),
        };
        let family = match text_raw.opt_str("model_type")? {
            Some(mt) => Family::from_model_type(mt).unwrap_or(family),
            None => family,
        };
        let architecture = architectures
            .first()
            .map(|s| s.to_string())
            .unwrap_or_else(|| family.name().to_string());
        let raw_value = serde_json::Value::Object(text_raw.map.clone());
        let mut cfg = Self::parse_text(family, &text_raw)?;
        cfg.architecture = architecture;
        cfg.weight_prefix = weight_prefix;
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
        let max_pos = raw.usize_or("max_position_embeddings", 4096)?;
        let rope = RopeConfig::parse(raw, family.default_rope_theta(), max_pos)?;
        let num_layers = raw.req_usize("num_hidden_layers")?;
        let hidden_size = raw.req_usize("hidden_size")?;
        let base = ModelConfig {
            family,
            architecture: String::new(),
            vocab_size: raw.req_usize("vocab_size")?,
            hidden_size,
            num_layers,
            rms_norm_eps: raw.f64_or("rms_norm_eps", 1e-6)? as f32,
            max_position_embeddings: max_pos,
            tie_word_embeddings: raw.bool_or("tie_word_embeddings", false)?,
            weight_prefix: String::new(),
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
            }),
            layers: vec![],
            intermediate_size: raw.usize_or("intermediate_size", 0)?,
            moe: None,
            bos_token_id: raw.opt_usize("bos_token_id")?.map(|b| b as u32),
            eos_token_ids: raw.token_ids("eos_token_id")?,
            fp8_block: (128, 128),
            quant: Quantization::None,
            raw: serde_json::Value::Null,
        };
        if family.is_mla() {
            mla::parse(base, raw)
        } else {
            gqa::parse(base, raw)
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
