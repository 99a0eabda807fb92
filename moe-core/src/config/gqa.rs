//! Config of the grouped-query-attention families (Qwen3-MoE, Qwen2-MoE, Mixtral, MiniMax-M2,
//! GLM-4.5, Llama 4, gpt-oss), read through the family's [`GqaSpec`].

use super::raw::Raw;
use super::spec::{
    BiasRule, FamilySpec, GqaSpec, HeadDimRule, MaskRule, MixerRule, RotaryLayersRule,
};
use super::*;

pub(super) fn parse(
    mut cfg: ModelConfig,
    raw: &Raw,
    spec: &FamilySpec,
    g: &GqaSpec,
) -> Result<ModelConfig> {
    let nh = raw.req_usize("num_attention_heads")?;
    let nkv = raw.usize_or("num_key_value_heads", nh)?;
    let default_head_dim = match g.head_dim {
        HeadDimRule::Fixed(d) => d,
        HeadDimRule::HiddenOverHeads => cfg.hidden_size / nh.max(1),
    };
    let head_dim = raw.usize_or("head_dim", default_head_dim)?;
    let attention_bias = raw.bool_or("attention_bias", g.attention_bias_default)?;
    let bias = |rule: BiasRule| -> Result<bool> {
        Ok(match rule {
            BiasRule::Never => false,
            BiasRule::AttentionBias => attention_bias,
            BiasRule::Key(key, default) => raw.bool_or(key, default)?,
        })
    };

    let rotary_dim_key = if g.partial_rotary.rotary_dim_key {
        raw.opt_usize("rotary_dim")?
    } else {
        None
    };
    let partial = match rotary_dim_key {
        Some(r) => r as f64 / head_dim as f64,
        None => raw.f64_or("partial_rotary_factor", g.partial_rotary.default_factor)?,
    };
    let partial = cfg.rope.nested_partial_rotary_factor.unwrap_or(partial);
    let rotary_dim = (head_dim as f64 * partial) as usize;

    let qk_norm = match g.qk_norm.switch {
        Some((key, default)) if !raw.bool_or(key, default)? => QkNorm::None,
        _ => g.qk_norm.norm,
    };
    cfg.attention = AttentionConfig::Gqa(GqaConfig {
        num_heads: nh,
        num_kv_heads: nkv,
        head_dim,
        qkv_bias: bias(g.qkv_bias)?,
        o_bias: bias(g.o_bias)?,
        qk_norm,
        rotary_dim,
        rope_layout: g.rope_layout,
        sinks: g.sinks,
        output_gate: g.output_gate,
    });
    cfg.layers = layers(spec, raw, cfg.num_layers)?;
    if cfg
        .layers
        .iter()
        .any(|l| l.mixer == TokenMixer::GatedDeltaNet)
    {
        cfg.linear_attention = Some(LinearAttentionConfig {
            num_key_heads: raw.usize_or("linear_num_key_heads", 16)?,
            num_value_heads: raw.usize_or("linear_num_value_heads", 32)?,
            key_head_dim: raw.usize_or("linear_key_head_dim", 128)?,
            value_head_dim: raw.usize_or("linear_value_head_dim", 128)?,
            conv_kernel: raw.usize_or("linear_conv_kernel_dim", 4)?,
        });
    }
    cfg.moe = Some(super::moe::parse(&spec.moe, raw)?);
    Ok(cfg)
}

fn layers(spec: &FamilySpec, raw: &Raw, n: usize) -> Result<Vec<LayerConfig>> {
    let window = raw.opt_usize("sliding_window")?.filter(|w| *w > 0);
    let chunk = raw.opt_usize("attention_chunk_size")?;
    let explicit_types = raw.opt_str_list("layer_types")?;
    if let Some(t) = &explicit_types {
        if t.len() != n {
            return Err(Error::InconsistentConfig(format!(
                "layer_types has {} entries for {n} layers",
                t.len()
            )));
        }
    }
    let rotary = rotary_layers(spec.layers.rotary, raw, n)?;
    let moe_layers = super::moe::moe_layer_flags(spec.layers.moe_layers, raw, n)?;
    let linear_interval = match spec.layers.mixers {
        MixerRule::Attention => None,
        MixerRule::GatedDeltaNetInterval(d) => {
            Some(raw.usize_or("full_attention_interval", d)?.max(1))
        }
    };
    (0..n)
        .map(|i| {
            let (use_rope, tuning) = rotary[i];
            let explicit = explicit_types.as_ref().map(|t| t[i]);
            let mixer = match (explicit, linear_interval) {
                (Some("linear_attention"), Some(_)) => TokenMixer::GatedDeltaNet,
                (None, Some(every)) if (i + 1) % every != 0 => TokenMixer::GatedDeltaNet,
                _ => TokenMixer::Attention,
            };
            let mask = match explicit {
                _ if mixer == TokenMixer::GatedDeltaNet => AttentionMask::Causal,
                Some(t) => mask_from_layer_type(t, window, chunk)?,
                None => default_mask(spec.layers.default_mask, raw, i, use_rope, window, chunk)?,
            };
            Ok(LayerConfig {
                ffn: if moe_layers[i] {
                    FfnKind::Moe
                } else {
                    FfnKind::Dense
                },
                mask,
                use_rope,
                temperature_tuning: tuning,
                indexer: IndexerRole::None,
                mixer,
                compression: KvCompression::None,
                hash_routing: false,
            })
        })
        .collect()
}

/// Per layer: whether it rotates, and the NoPE temperature tuning of the layers that do not.
fn rotary_layers(
    rule: RotaryLayersRule,
    raw: &Raw,
    n: usize,
) -> Result<Vec<(bool, Option<TemperatureTuning>)>> {
    match rule {
        RotaryLayersRule::All => Ok(vec![(true, None); n]),
        RotaryLayersRule::NoRopeLayers => {
            // Llama 4: no_rope_layers[i] == 1 means the layer rotates (and is chunked).
            let no_rope_layers = match raw.opt_usize_list("no_rope_layers")? {
                Some(l) if !l.is_empty() => l,
                _ => {
                    let interval = raw.usize_or("no_rope_layer_interval", 4)?.max(1);
                    (0..n)
                        .map(|i| usize::from((i + 1) % interval != 0))
                        .collect()
                }
            };
            let tuning = if raw.bool_or("attn_temperature_tuning", true)? {
                Some(TemperatureTuning {
                    floor_scale: raw.f64_or("floor_scale", 8192.0)?,
                    attn_scale: raw.f64_or("attn_scale", 0.1)?,
                })
            } else {
                None
            };
            Ok((0..n)
                .map(|i| {
                    let rotates = no_rope_layers.get(i).copied().unwrap_or(1) != 0;
                    (rotates, if rotates { None } else { tuning })
                })
                .collect())
        }
    }
}

/// The mask transformers derives when config.json has no `layer_types`.
fn default_mask(
    rule: MaskRule,
    raw: &Raw,
    i: usize,
    use_rope: bool,
    window: Option<usize>,
    chunk: Option<usize>,
) -> Result<AttentionMask> {
    let sliding = match (rule, window) {
        (MaskRule::SlidingAll, Some(w)) => Some(w),
        (MaskRule::SlidingEven, Some(w)) if i.is_multiple_of(2) => Some(w),
        (MaskRule::SlidingWhenEnabled, Some(w)) if raw.bool_or("use_sliding_window", false)? => {
            Some(w)
        }
        (MaskRule::SlidingEvenBelowMaxWindowLayers, Some(w))
            if raw.bool_or("use_sliding_window", false)?
                && i.is_multiple_of(2)
                && i < raw.usize_or("max_window_layers", 28)? =>
        {
            Some(w)
        }
        (MaskRule::ChunkedOnRotaryLayers, _) if use_rope => {
            return Ok(match chunk {
                Some(c) if c > 0 => AttentionMask::Chunked(c),
                _ => AttentionMask::Causal,
            })
        }
        (
            MaskRule::Causal
            | MaskRule::SlidingAll
            | MaskRule::SlidingEven
            | MaskRule::SlidingWhenEnabled
            | MaskRule::SlidingEvenBelowMaxWindowLayers
            | MaskRule::ChunkedOnRotaryLayers,
            _,
        ) => None,
    };
    Ok(match sliding {
        Some(w) => AttentionMask::SlidingWindow(w),
        None => AttentionMask::Causal,
    })
}
