//! What a checkpoint needs in memory, from config.json and the safetensors headers alone (no weight
//! is read), so a caller can decide before loading.

use std::path::Path;

use crate::config::{
    AttentionConfig, AttentionMask, IndexerRole, KvCompression, ModelConfig, TokenMixer,
};
use crate::error::{Error, Result};
use crate::weights::Checkpoint;

/// Memory a model and one session of a given context need (see [`Model::estimate_memory`]).
///
/// [`Model::estimate_memory`]: crate::Model::estimate_memory
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryEstimate {
    /// Bytes of the text model's weights as stored (multi-token-prediction layers and other
    /// modalities' towers excluded). Mapped weights are paged in as they are used; copied ones
    /// (`LoadOptions::with_copied_weights`) are resident at once.
    pub weight_bytes: usize,
    /// Bytes a session's caches grow by per token (until sliding windows fill).
    pub kv_cache_bytes_per_token: usize,
    /// Bytes a session's caches hold whatever the context (linear-attention state; 0 for families
    /// without it). Included in `kv_cache_bytes`.
    pub kv_cache_fixed_bytes: usize,
    /// Tokens of context the cache figure is for.
    pub context: usize,
    /// Cache bytes of one session holding `context` tokens (windowed layers capped at their window).
    pub kv_cache_bytes: usize,
    /// `weight_bytes + kv_cache_bytes`.
    pub total_bytes: usize,
}

impl MemoryEstimate {
    /// Estimates for the checkpoint in `dir` and a session of `context` tokens (`None`: the model's
    /// `max_position_embeddings`).
    pub(crate) fn for_checkpoint(dir: &Path, context: Option<usize>) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::NotFound(dir.to_path_buf()));
        }
        let config = ModelConfig::load(dir)?;
        let checkpoint = Checkpoint::open(dir)?;
        let context = context.unwrap_or(config.max_position_embeddings);
        let weight_bytes = checkpoint
            .names()
            .filter(|name| used_by_text_model(&config, name))
            .filter_map(|name| checkpoint.get(name))
            .map(|t| t.bytes().len())
            .fold(0usize, usize::saturating_add);
        let per_layer = layer_rows(&config);
        let per_token = per_layer
            .iter()
            .map(|&(width, _, every)| width * 4 / every)
            .fold(0usize, usize::saturating_add);
        let fixed = fixed_bytes(&config);
        let kv_cache_bytes = per_layer
            .iter()
            .map(|&(width, window, every)| {
                let rows = window.map_or(context, |w| w.min(context)) / every;
                rows.saturating_mul(width).saturating_mul(4)
            })
            .fold(fixed, usize::saturating_add);
        Ok(MemoryEstimate {
            weight_bytes,
            kv_cache_bytes_per_token: per_token,
            kv_cache_fixed_bytes: fixed,
            context,
            kv_cache_bytes,
            total_bytes: weight_bytes.saturating_add(kv_cache_bytes),
        })
    }
}

/// Bytes of the constant-size state of every linear-attention layer.
fn fixed_bytes(config: &ModelConfig) -> usize {
    let per_layer = config
        .linear_attention
        .as_ref()
        .map_or(0, |la| la.state_values() * 4);
    config
        .layers
        .iter()
        .filter(|l| l.mixer == TokenMixer::GatedDeltaNet)
        .count()
        .saturating_mul(per_layer)
}

/// Per layer, its kinds of rows: f32 values per row, the most positions it keeps (`None`: all), and
/// how many tokens make one row (1, or a compress rate).
fn layer_rows(config: &ModelConfig) -> Vec<(usize, Option<usize>, usize)> {
    config
        .layers
        .iter()
        .flat_map(|layer| match &config.attention {
            _ if layer.mixer == TokenMixer::GatedDeltaNet => vec![],
            AttentionConfig::Gqa(g) => {
                let window = match layer.mask {
                    AttentionMask::Causal => None,
                    AttentionMask::SlidingWindow(w) | AttentionMask::Chunked(w) => Some(w),
                };
                vec![(2 * g.num_kv_heads * g.head_dim, window, 1)]
            }
            AttentionConfig::Mla(m) => {
                let indexer = match (&m.indexer, layer.indexer) {
                    (Some(ix), IndexerRole::Full) => ix.head_dim,
                    _ => 0,
                };
                vec![(m.kv_lora_rank + m.qk_rope_head_dim + indexer, None, 1)]
            }
            AttentionConfig::Compressed(c) => {
                let window = (c.head_dim, Some(c.sliding_window), 1);
                match layer.compression {
                    KvCompression::None => vec![window],
                    KvCompression::Heavy(m) => vec![window, (c.head_dim, None, m.max(1))],
                    KvCompression::Sparse(m) => {
                        vec![window, (c.head_dim + c.index_head_dim, None, m.max(1))]
                    }
                }
            }
        })
        .collect()
}

/// Whether tensor `name` belongs to the text model's layers, embedding, norm or lm_head (not to an
/// MTP layer past `num_layers` or another modality's tower).
fn used_by_text_model(config: &ModelConfig, name: &str) -> bool {
    if name
        .strip_prefix(config.weight_prefix.as_str())
        .is_some_and(|rest| rest.starts_with("lm_head."))
    {
        return true;
    }
    // DeepSeek V4's own checkpoints keep the decoder at the root (`embed.weight`, `layers.N`,
    // `norm.weight`, `hc_head_*`; `mtp.*` is not part of it), and its lm_head is `head`.
    let own_v4 = config.hyper_connections.is_some()
        && ["embed.", "norm.", "hc_head_", "head."]
            .iter()
            .any(|p| name.starts_with(p));
    if own_v4 {
        return true;
    }
    let body = match name.strip_prefix(config.body_prefix.as_str()) {
        Some(rest) => Some(rest),
        None if config.hyper_connections.is_some() && name.starts_with("layers.") => Some(name),
        None => None,
    };
    let Some(rest) = body else {
        return false;
    };
    match rest.strip_prefix("layers.") {
        Some(layer) => layer
            .split('.')
            .next()
            .and_then(|i| i.parse::<usize>().ok())
            .is_some_and(|i| i < config.num_layers),
        None => true,
    }
}
