//! Config of the multi-head-latent-attention families: DeepSeek V2, V3 (Kimi K2, Moonlight),
//! V3.2 and GLM-5 (the last two with the DSA indexer).

use super::raw::Raw;
use super::*;

pub(super) fn parse(mut cfg: ModelConfig, raw: &Raw) -> Result<ModelConfig> {
    let f = cfg.family;
    let nh = raw.req_usize("num_attention_heads")?;
    let qk_nope = raw.usize_or("qk_nope_head_dim", 128)?;
    let qk_rope = raw.usize_or("qk_rope_head_dim", 64)?;
    let rope_layout = match f {
        Family::DeepseekV3 if !raw.bool_or("rope_interleave", true)? => RopeLayout::Half,
        _ => RopeLayout::Interleaved,
    };
    let indexer = match f {
        Family::DeepseekV32 | Family::GlmMoeDsa => {
            let interleave_default = f == Family::GlmMoeDsa;
            Some(IndexerConfig {
                n_heads: raw.usize_or(
                    "index_n_heads",
                    if f == Family::GlmMoeDsa { 32 } else { 64 },
                )?,
                head_dim: raw.usize_or("index_head_dim", 128)?,
                topk: raw.usize_or("index_topk", 2048)?,
                rope_layout: if raw.bool_or("indexer_rope_interleave", interleave_default)? {
                    RopeLayout::Interleaved
                } else {
                    RopeLayout::Half
                },
            })
        }
        _ => None,
    };
    let q_lora_rank = raw.opt_usize("q_lora_rank")?;
    if indexer.is_some() && q_lora_rank.is_none() {
        return Err(Error::InconsistentConfig(
            "sparse attention (DSA) needs q_lora_rank: the indexer reads the query latent".into(),
        ));
    }
    cfg.attention = AttentionConfig::Mla(MlaConfig {
        num_heads: nh,
        q_lora_rank,
        kv_lora_rank: raw.usize_or("kv_lora_rank", 512)?,
        qk_nope_head_dim: qk_nope,
        qk_rope_head_dim: qk_rope,
        v_head_dim: raw.usize_or("v_head_dim", 128)?,
        rope_layout,
        softmax_scale: softmax_scale(qk_nope + qk_rope, &cfg.rope.scaling),
        indexer,
    });
    cfg.layers = layers(f, raw, cfg.num_layers)?;
    cfg.moe = Some(moe(f, raw)?);
    Ok(cfg)
}

/// `dq^-0.5`, times `mscale(factor, mscale_all_dim)^2` under yarn (transformers' `yarn_apply_mscale`).
fn softmax_scale(qk_head_dim: usize, scaling: &RopeScaling) -> f32 {
    let mut scale = (qk_head_dim as f64).powf(-0.5);
    if let RopeScaling::Yarn {
        factor,
        mscale_all_dim,
        ..
    } = scaling
    {
        if *mscale_all_dim != 0.0 {
            let m = crate::layers::rope::yarn_get_mscale(*factor, *mscale_all_dim);
            scale *= m * m;
        }
    }
    scale as f32
}

fn layers(f: Family, raw: &Raw, n: usize) -> Result<Vec<LayerConfig>> {
    let dense_k = raw.usize_or(
        "first_k_dense_replace",
        if f == Family::DeepseekV2 { 0 } else { 3 },
    )?;
    let mlp_types = raw.opt_str_list("mlp_layer_types")?;
    if let Some(t) = &mlp_types {
        if t.len() != n {
            return Err(Error::InconsistentConfig(format!(
                "mlp_layer_types has {} entries for {n} layers",
                t.len()
            )));
        }
    }
    let roles = indexer_roles(f, raw, n)?;
    (0..n)
        .map(|i| {
            let ffn = match &mlp_types {
                Some(t) => match t[i] {
                    "dense" => FfnKind::Dense,
                    "sparse" | "moe" => FfnKind::Moe,
                    other => {
                        return Err(Error::InconsistentConfig(format!(
                            "unknown mlp layer type {other:?}"
                        )))
                    }
                },
                None if i < dense_k => FfnKind::Dense,
                None => FfnKind::Moe,
            };
            Ok(LayerConfig {
                ffn,
                mask: AttentionMask::Causal,
                use_rope: true,
                temperature_tuning: None,
                indexer: roles[i],
            })
        })
        .collect()
}

/// Per-layer indexer roles: V3.2 runs it everywhere; GLM-5 reads `indexer_types`, an
/// `index_topk_pattern`, or derives them from `index_topk_freq` / `index_skip_topk_offset`.
fn indexer_roles(f: Family, raw: &Raw, n: usize) -> Result<Vec<IndexerRole>> {
    let parse_role = |s: &str| match s {
        "full" | "F" => Ok(IndexerRole::Full),
        "shared" | "S" => Ok(IndexerRole::Shared),
        other => Err(Error::InconsistentConfig(format!(
            "unknown indexer type {other:?}"
        ))),
    };
    let roles: Vec<IndexerRole> = match f {
        Family::DeepseekV32 => vec![IndexerRole::Full; n],
        Family::GlmMoeDsa => {
            if let Some(t) = raw.opt_str_list("indexer_types")? {
                t.into_iter().map(parse_role).collect::<Result<_>>()?
            } else if let Some(p) = raw.opt_str("index_topk_pattern").ok().flatten() {
                p.chars()
                    .map(|c| parse_role(&c.to_string()))
                    .collect::<Result<_>>()?
            } else if let Some(p) = raw.opt_str_list("index_topk_pattern").ok().flatten() {
                p.into_iter().map(parse_role).collect::<Result<_>>()?
            } else {
                let freq = raw.usize_or("index_topk_freq", 1)?.max(1);
                let offset = raw.usize_or("index_skip_topk_offset", 2)?;
                (0..n)
                    .map(|i| {
                        if (i + 1).saturating_sub(offset) % freq == 0 {
                            IndexerRole::Full
                        } else {
                            IndexerRole::Shared
                        }
                    })
                    .collect()
            }
        }
        _ => vec![IndexerRole::None; n],
    };
    if roles.len() != n {
        return Err(Error::InconsistentConfig(format!(
            "indexer_types has {} entries for {n} layers",
            roles.len()
        )));
    }
    Ok(roles)
}

fn moe(f: Family, raw: &Raw) -> Result<MoeConfig> {
    let num_experts = match raw.opt_usize("n_routed_experts")? {
        Some(e) => e,
        None => raw.usize_or("num_local_experts", 256)?,
    };
    let moe_inter = raw.usize_or("moe_intermediate_size", 2048)?;
    let n_group = raw.usize_or("n_group", 1)?;
    let topk_group = raw.usize_or("topk_group", 1)?;
    let scaling = raw.f64_or("routed_scaling_factor", 1.0)? as f32;
    let router = if f == Family::DeepseekV2 {
        // transformers' DeepseekV2TopkRouter: softmax, greedy or group-limited (group max), never renormalised.
        let groups = match raw.opt_str("topk_method")?.unwrap_or("greedy") {
            "greedy" => None,
            "group_limited_greedy" => Some((n_group, topk_group)),
            other => {
                return Err(Error::InconsistentConfig(format!(
                    "unsupported topk_method {other:?}"
                )))
            }
        };
        RouterKind::Softmax {
            norm_topk_prob: false,
            groups,
            scaling,
        }
    } else {
        RouterKind::SigmoidBiased {
            n_group,
            topk_group,
            norm_topk_prob: raw.bool_or("norm_topk_prob", true)?,
            scaling,
        }
    };
    let n_shared = raw.usize_or("n_shared_experts", 1)?;
    Ok(MoeConfig {
        num_experts,
        top_k: raw.usize_or("num_experts_per_tok", 8)?,
        intermediate_size: moe_inter,
        router,
        activation: ExpertActivation::SwiGlu,
        shared: (n_shared > 0).then_some(SharedExpertConfig {
            intermediate_size: moe_inter * n_shared,
            gated: false,
        }),
    })
}
