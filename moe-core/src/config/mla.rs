//! Config of the multi-head-latent-attention families: DeepSeek V2, V3 (Kimi K2, Moonlight),
//! V3.2 and GLM-5 (the last two with the DSA indexer).

use super::raw::Raw;
use super::spec::{FamilySpec, IndexerRolesRule, MlaSpec, RopeLayoutRule};
use super::*;

pub(super) fn parse(
    mut cfg: ModelConfig,
    raw: &Raw,
    spec: &FamilySpec,
    m: &MlaSpec,
) -> Result<ModelConfig> {
    let nh = raw.req_usize("num_attention_heads")?;
    let qk_nope = raw.usize_or("qk_nope_head_dim", 128)?;
    let qk_rope = raw.usize_or("qk_rope_head_dim", 64)?;
    let interleaved = |rule: RopeLayoutRule| -> Result<RopeLayout> {
        Ok(match rule {
            RopeLayoutRule::Fixed(l) => l,
            RopeLayoutRule::InterleavedKey(key, default) if raw.bool_or(key, default)? => {
                RopeLayout::Interleaved
            }
            RopeLayoutRule::InterleavedKey(..) => RopeLayout::Half,
        })
    };
    let rope_layout = interleaved(m.rope_layout)?;
    let indexer = match &m.indexer {
        Some(ix) => Some(IndexerConfig {
            n_heads: raw.usize_or("index_n_heads", ix.default_heads)?,
            head_dim: raw.usize_or("index_head_dim", 128)?,
            topk: raw.usize_or("index_topk", 2048)?,
            rope_layout: interleaved(RopeLayoutRule::InterleavedKey(
                "indexer_rope_interleave",
                ix.default_rope_interleave,
            ))?,
            norm_eps: ix.norm_eps,
        }),
        None => None,
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
        latent_norm_eps: m.latent_norm_eps,
        indexer,
    });
    let roles = match m.indexer {
        Some(ix) => indexer_roles(ix.roles, raw, cfg.num_layers)?,
        None => vec![IndexerRole::None; cfg.num_layers],
    };
    cfg.layers = layers(spec, raw, cfg.num_layers, roles)?;
    cfg.moe = Some(super::moe::parse(&spec.moe, raw)?);
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
            let m = crate::rope::yarn_get_mscale(*factor, *mscale_all_dim);
            scale *= m * m;
        }
    }
    scale as f32
}

fn layers(
    spec: &FamilySpec,
    raw: &Raw,
    n: usize,
    roles: Vec<IndexerRole>,
) -> Result<Vec<LayerConfig>> {
    let moe_layers = super::moe::moe_layer_flags(spec.layers.moe_layers, raw, n)?;
    let mlp_types = raw.opt_str_list("mlp_layer_types")?;
    if let Some(t) = &mlp_types {
        if t.len() != n {
            return Err(Error::InconsistentConfig(format!(
                "mlp_layer_types has {} entries for {n} layers",
                t.len()
            )));
        }
    }
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
                None if moe_layers[i] => FfnKind::Moe,
                None => FfnKind::Dense,
            };
            Ok(LayerConfig {
                ffn,
                mask: AttentionMask::Causal,
                use_rope: true,
                temperature_tuning: None,
                indexer: roles[i],
                mixer: TokenMixer::Attention,
                compression: KvCompression::None,
                hash_routing: false,
            })
        })
        .collect()
}

/// Per-layer indexer roles: V3.2 runs it everywhere; GLM-5 reads `indexer_types`, an
/// `index_topk_pattern`, or derives them from `index_topk_freq` / `index_skip_topk_offset`.
fn indexer_roles(rule: IndexerRolesRule, raw: &Raw, n: usize) -> Result<Vec<IndexerRole>> {
    let parse_role = |s: &str| match s {
        "full" | "F" => Ok(IndexerRole::Full),
        "shared" | "S" => Ok(IndexerRole::Shared),
        other => Err(Error::InconsistentConfig(format!(
            "unknown indexer type {other:?}"
        ))),
    };
    let roles: Vec<IndexerRole> = match rule {
        IndexerRolesRule::EveryLayer => vec![IndexerRole::Full; n],
        IndexerRolesRule::FullOrShared => {
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
    };
    if roles.len() != n {
        return Err(Error::InconsistentConfig(format!(
            "indexer_types has {} entries for {n} layers",
            roles.len()
        )));
    }
    Ok(roles)
}
