//! Config of the grouped-query-attention families: Qwen3-MoE, Qwen2-MoE, Mixtral, MiniMax-M2,
//! GLM-4.5, Llama 4, gpt-oss.

use super::raw::Raw;
use super::*;

pub(super) fn parse(mut cfg: ModelConfig, raw: &Raw) -> Result<ModelConfig> {
    let f = cfg.family;
    let nh = raw.req_usize("num_attention_heads")?;
    let nkv = raw.usize_or("num_key_value_heads", nh)?;
    let default_head_dim = match f {
        Family::GptOss => 64,
        Family::MiniMaxM2 | Family::Llama4 => 128,
        _ => cfg.hidden_size / nh.max(1),
    };
    let head_dim = raw.usize_or("head_dim", default_head_dim)?;
    let attention_bias = raw.bool_or("attention_bias", f == Family::GptOss)?;

    let partial = match f {
        Family::MiniMaxM2 => match raw.opt_usize("rotary_dim")? {
            Some(r) => r as f64 / head_dim as f64,
            None => raw.f64_or("partial_rotary_factor", 1.0)?,
        },
        Family::Glm4Moe => raw.f64_or("partial_rotary_factor", 0.5)?,
        _ => raw.f64_or("partial_rotary_factor", 1.0)?,
    };
    let partial = cfg.rope.nested_partial_rotary_factor.unwrap_or(partial);
    let rotary_dim = (head_dim as f64 * partial) as usize;

    let qk_norm = match f {
        Family::Qwen3Moe => QkNorm::PerHead,
        Family::Glm4Moe if raw.bool_or("use_qk_norm", false)? => QkNorm::PerHead,
        Family::MiniMaxM2 => QkNorm::WholeProjection,
        Family::Llama4 if raw.bool_or("use_qk_norm", true)? => QkNorm::L2,
        _ => QkNorm::None,
    };
    let (qkv_bias, o_bias) = match f {
        Family::Qwen2Moe => (raw.bool_or("qkv_bias", true)?, false),
        Family::Glm4Moe => (attention_bias, false),
        Family::Qwen3Moe | Family::Llama4 | Family::GptOss => (attention_bias, attention_bias),
        _ => (false, false),
    };
    cfg.attention = AttentionConfig::Gqa(GqaConfig {
        num_heads: nh,
        num_kv_heads: nkv,
        head_dim,
        qkv_bias,
        o_bias,
        qk_norm,
        rotary_dim,
        rope_layout: if f == Family::Llama4 {
            RopeLayout::Interleaved
        } else {
            RopeLayout::Half
        },
        sinks: f == Family::GptOss,
    });
    cfg.layers = layers(f, raw, cfg.num_layers)?;
    cfg.moe = Some(moe(f, raw)?);
    if f == Family::Llama4 {
        cfg.intermediate_size = raw.usize_or("intermediate_size_mlp", 16384)?;
    }
    Ok(cfg)
}

fn layers(f: Family, raw: &Raw, n: usize) -> Result<Vec<LayerConfig>> {
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
    let moe_layers: Vec<bool> = match f {
        Family::Llama4 => match raw.opt_usize_list("moe_layers")? {
            Some(l) => (0..n).map(|i| l.contains(&i)).collect(),
            None => {
                let step = raw.usize_or("interleave_moe_layer_step", 1)?.max(1);
                (0..n).map(|i| (i + 1) % step == 0).collect()
            }
        },
        Family::Qwen3Moe | Family::Qwen2Moe => {
            let only = raw.opt_usize_list("mlp_only_layers")?.unwrap_or_default();
            let step = raw.usize_or("decoder_sparse_step", 1)?.max(1);
            let experts = raw.usize_or("num_experts", raw.usize_or("num_local_experts", 1)?)?;
            (0..n)
                .map(|i| !only.contains(&i) && experts > 0 && (i + 1) % step == 0)
                .collect()
        }
        Family::Glm4Moe => {
            let k = raw.usize_or("first_k_dense_replace", 1)?;
            (0..n).map(|i| i >= k).collect()
        }
        _ => vec![true; n],
    };
    let tuning = if f == Family::Llama4 && raw.bool_or("attn_temperature_tuning", true)? {
        Some(TemperatureTuning {
            floor_scale: raw.f64_or("floor_scale", 8192.0)?,
            attn_scale: raw.f64_or("attn_scale", 0.1)?,
        })
    } else {
        None
    };

    (0..n)
        .map(|i| {
            let use_rope = f != Family::Llama4 || no_rope_layers.get(i).copied().unwrap_or(1) != 0;
            let mask = match &explicit_types {
                Some(t) => mask_from_layer_type(t[i], window, chunk)?,
                None => default_mask(f, raw, i, use_rope, window, chunk)?,
            };
            Ok(LayerConfig {
                ffn: if moe_layers[i] {
                    FfnKind::Moe
                } else {
                    FfnKind::Dense
                },
                mask,
                use_rope,
                temperature_tuning: if use_rope { None } else { tuning },
                indexer: IndexerRole::None,
            })
        })
        .collect()
}

/// The mask transformers derives when config.json has no `layer_types`.
fn default_mask(
    f: Family,
    raw: &Raw,
    i: usize,
    use_rope: bool,
    window: Option<usize>,
    chunk: Option<usize>,
) -> Result<AttentionMask> {
    Ok(match (f, window) {
        (Family::GptOss, Some(w)) if i.is_multiple_of(2) => AttentionMask::SlidingWindow(w),
        (Family::Mixtral, Some(w)) => AttentionMask::SlidingWindow(w),
        (Family::Qwen3Moe, Some(w)) if raw.bool_or("use_sliding_window", false)? => {
            AttentionMask::SlidingWindow(w)
        }
        (Family::Qwen2Moe, Some(w))
            if raw.bool_or("use_sliding_window", false)?
                && i.is_multiple_of(2)
                && i < raw.usize_or("max_window_layers", 28)? =>
        {
            AttentionMask::SlidingWindow(w)
        }
        (Family::Llama4, _) if use_rope => match chunk {
            Some(c) if c > 0 => AttentionMask::Chunked(c),
            _ => AttentionMask::Causal,
        },
        _ => AttentionMask::Causal,
    })
}

fn moe(f: Family, raw: &Raw) -> Result<MoeConfig> {
    let num_experts = match raw.opt_usize("num_local_experts")? {
        Some(e) => e,
        None => raw.opt_usize("num_experts")?.or(raw.opt_usize("n_routed_experts")?).ok_or_else(|| {
            Error::Config {
                path: raw.path.to_path_buf(),
                message: "missing the number of experts (num_experts / num_local_experts / n_routed_experts)"
                    .into(),
            }
        })?,
    };
    let top_k = raw.req_usize("num_experts_per_tok")?;
    let moe_inter = raw.opt_usize("moe_intermediate_size")?;
    let inter = raw.opt_usize("intermediate_size")?;
    let (intermediate_size, router, shared) = match f {
        Family::Qwen3Moe => (
            moe_inter.unwrap_or(768),
            RouterKind::Softmax {
                norm_topk_prob: raw.bool_or("norm_topk_prob", false)?,
                groups: None,
                scaling: 1.0,
            },
            None,
        ),
        Family::Qwen2Moe => (
            moe_inter.unwrap_or(1408),
            RouterKind::Softmax {
                norm_topk_prob: raw.bool_or("norm_topk_prob", false)?,
                groups: None,
                scaling: 1.0,
            },
            match raw.usize_or("shared_expert_intermediate_size", 5632)? {
                0 => None,
                s => Some(SharedExpertConfig {
                    intermediate_size: s,
                    gated: true,
                }),
            },
        ),
        Family::Mixtral => (
            inter.unwrap_or(14336),
            RouterKind::Softmax {
                norm_topk_prob: true,
                groups: None,
                scaling: 1.0,
            },
            None,
        ),
        Family::MiniMaxM2 => (
            inter.unwrap_or(1536),
            RouterKind::SigmoidBiased {
                n_group: 1,
                topk_group: 1,
                norm_topk_prob: true,
                scaling: 1.0,
            },
            None,
        ),
        Family::Glm4Moe => (
            moe_inter.unwrap_or(1408),
            RouterKind::SigmoidBiased {
                n_group: raw.usize_or("n_group", 1)?,
                topk_group: raw.usize_or("topk_group", 1)?,
                norm_topk_prob: raw.bool_or("norm_topk_prob", true)?,
                scaling: raw.f64_or("routed_scaling_factor", 1.0)? as f32,
            },
            match raw.usize_or("n_shared_experts", 1)? {
                0 => None,
                n => Some(SharedExpertConfig {
                    intermediate_size: moe_inter.unwrap_or(1408) * n,
                    gated: false,
                }),
            },
        ),
        Family::Llama4 => {
            let i = inter.unwrap_or(8192);
            (
                i,
                RouterKind::Llama4,
                Some(SharedExpertConfig {
                    intermediate_size: i,
                    gated: false,
                }),
            )
        }
        Family::GptOss => (inter.unwrap_or(2880), RouterKind::TopKSoftmax, None),
        _ => unreachable!("MLA families are parsed in config::mla"),
    };
    let activation = if f == Family::GptOss {
        ExpertActivation::ClampedSwiGlu {
            alpha: raw.f64_or("swiglu_alpha", 1.702)? as f32,
            limit: raw.f64_or("swiglu_limit", 7.0)? as f32,
        }
    } else {
        ExpertActivation::SwiGlu
    };
    Ok(MoeConfig {
        num_experts,
        top_k,
        intermediate_size,
        router,
        activation,
        shared,
    })
}
