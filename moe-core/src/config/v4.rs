//! DeepSeek V4's config: the per-layer attention types (`layer_types`, or the legacy
//! `compress_ratios`), compress rates, hash-routed layers (`mlp_layer_types`, or `num_hash_layers`),
//! the two RoPEs (`rope_parameters` with `main` and `compress`, or the legacy flat keys with
//! `compress_rope_theta`), hyper-connections and the MoE.

use super::raw::Raw;
use super::rope::parse_scaling;
use super::spec::FamilySpec;
use super::*;

pub(super) fn parse(mut cfg: ModelConfig, raw: &Raw, spec: &FamilySpec) -> Result<ModelConfig> {
    let n = cfg.num_layers;
    let head_dim = raw.usize_or("head_dim", 512)?;
    let partial = match raw.opt_f64("partial_rotary_factor")? {
        Some(p) => p,
        None => match raw.opt_usize("qk_rope_head_dim")? {
            Some(r) if head_dim > 0 => r as f64 / head_dim as f64,
            _ => 64.0 / 512.0,
        },
    };
    let (main, compress) = ropes(raw, cfg.max_position_embeddings)?;
    let partial = main.nested_partial_rotary_factor.unwrap_or(partial);
    cfg.rope = main;

    // compress_rates {"compressed_sparse_attention": m, "heavily_compressed_attention": m'}.
    let (mut csa, mut hca) = (4, 128);
    if let Some(r) = raw.opt_obj("compress_rates")? {
        csa = r.usize_or("compressed_sparse_attention", csa)?;
        hca = r.usize_or("heavily_compressed_attention", hca)?;
    }
    csa = raw.usize_or("compress_rate_csa", csa)?;
    hca = raw.usize_or("compress_rate_hca", hca)?;
    let kind = |t: &str| -> Result<KvCompression> {
        Ok(match t {
            "sliding_attention" => KvCompression::None,
            "compressed_sparse_attention" => KvCompression::Sparse(csa),
            "heavily_compressed_attention" => KvCompression::Heavy(hca),
            other => {
                return Err(Error::InconsistentConfig(format!(
                    "unknown DeepSeek V4 layer type {other:?}"
                )))
            }
        })
    };
    let compression: Vec<KvCompression> = match raw.opt_str_list("layer_types")? {
        Some(t) => t.iter().map(|t| kind(t)).collect::<Result<_>>()?,
        None => match raw.opt_usize_list("compress_ratios")? {
            Some(r) => r
                .iter()
                .map(|&r| match r {
                    0 => Ok(KvCompression::None),
                    4 => Ok(KvCompression::Sparse(csa)),
                    128 => Ok(KvCompression::Heavy(hca)),
                    other => Err(Error::InconsistentConfig(format!(
                        "compress_ratios entry {other} is not 0, 4 or 128"
                    ))),
                })
                .collect::<Result<_>>()?,
            None => (0..n)
                .map(|i| match i {
                    0 | 1 => KvCompression::Heavy(hca),
                    i if (i - 2) % 2 == 1 => KvCompression::Sparse(csa),
                    _ => KvCompression::Heavy(hca),
                })
                .collect(),
        },
    };
    let hash: Vec<bool> = match raw.opt_str_list("mlp_layer_types")? {
        Some(t) => t
            .iter()
            .map(|t| match *t {
                "hash_moe" => Ok(true),
                "moe" => Ok(false),
                other => Err(Error::InconsistentConfig(format!(
                    "unknown DeepSeek V4 mlp layer type {other:?}"
                ))),
            })
            .collect::<Result<_>>()?,
        None => {
            let k = raw.usize_or("num_hash_layers", 3)?;
            (0..n).map(|i| i < k).collect()
        }
    };
    if compression.len() < n || hash.len() < n {
        return Err(Error::InconsistentConfig(format!(
            "layer_types / mlp_layer_types have {} / {} entries for {n} layers",
            compression.len(),
            hash.len()
        )));
    }
    cfg.attention = AttentionConfig::Compressed(CompressedAttentionConfig {
        num_heads: raw.usize_or("num_attention_heads", 64)?,
        head_dim,
        rope_dim: (head_dim as f64 * partial) as usize,
        q_lora_rank: raw.usize_or("q_lora_rank", 1024)?,
        o_groups: raw.usize_or("o_groups", 8)?,
        o_lora_rank: raw.usize_or("o_lora_rank", 1024)?,
        sliding_window: raw.usize_or("sliding_window", 128)?,
        index_heads: raw.usize_or("index_n_heads", 64)?,
        index_head_dim: raw.usize_or("index_head_dim", 128)?,
        index_topk: raw.usize_or("index_topk", 512)?,
        compress_rope: compress,
    });
    cfg.hyper_connections = Some(HyperConnectionConfig {
        streams: raw.usize_or("hc_mult", 4)?,
        sinkhorn_iters: raw.usize_or("hc_sinkhorn_iters", 20)?.min(1000),
        eps: raw.f64_or("hc_eps", 1e-6)? as f32,
    });
    cfg.layers = (0..n)
        .map(|i| LayerConfig {
            ffn: FfnKind::Moe,
            mask: AttentionMask::Causal,
            use_rope: true,
            temperature_tuning: None,
            indexer: IndexerRole::None,
            mixer: TokenMixer::Attention,
            compression: compression[i],
            hash_routing: hash[i],
        })
        .collect();
    cfg.moe = Some(super::moe::parse(&spec.moe, raw)?);
    Ok(cfg)
}

/// `(main, compress)`: from `rope_parameters.{main, compress}`, or the legacy flat keys
/// (`rope_theta` plain for `main`; `compress_rope_theta` with `rope_scaling` / a flat
/// `rope_parameters` for `compress`, whose YaRN then has no magnitude correction unless given).
fn ropes(raw: &Raw, max_pos: usize) -> Result<(RopeConfig, RopeConfig)> {
    let params = raw.opt_obj("rope_parameters")?;
    let nested = match &params {
        Some(p) => match (p.opt_obj("main")?, p.opt_obj("compress")?) {
            (Some(m), Some(c)) => Some((m, c)),
            _ => None,
        },
        None => None,
    };
    // transformers gives the flat style's compressed YaRN no magnitude correction
    // (`attention_factor` 1); nested sub-dictionaries are taken as written.
    let one = |s: &Raw, default_theta: f64, flat: bool| -> Result<RopeConfig> {
        let theta = s.f64_or("rope_theta", default_theta)?;
        if theta.is_nan() || theta <= 0.0 {
            return Err(Error::InconsistentConfig(format!(
                "rope_theta must be positive, got {theta}"
            )));
        }
        let mut scaling = parse_scaling(raw, s, max_pos)?;
        if let RopeScaling::Yarn {
            attention_factor, ..
        } = &mut scaling
        {
            if flat {
                attention_factor.get_or_insert(1.0);
            }
        }
        Ok(RopeConfig {
            theta,
            scaling,
            max_position_embeddings: max_pos,
            nested_partial_rotary_factor: s.opt_f64("partial_rotary_factor")?,
        })
    };
    let main_theta = raw.f64_or("rope_theta", 10_000.0)?;
    let compress_theta = raw.f64_or("compress_rope_theta", 160_000.0)?;
    match nested {
        Some((m, c)) => Ok((one(&m, main_theta, false)?, one(&c, compress_theta, false)?)),
        None => {
            let main = RopeConfig {
                theta: main_theta,
                scaling: RopeScaling::Default,
                max_position_embeddings: max_pos,
                nested_partial_rotary_factor: None,
            };
            // The flat scaling dict (rope_scaling, or rope_parameters without main/compress) is
            // the compressed layers' YaRN; its rope_theta, if any, is the main one.
            let flat = match raw.opt_obj("rope_scaling")? {
                Some(s) => Some(s),
                None => params,
            };
            let mut compress = match flat {
                Some(s) => one(&s, compress_theta, true)?,
                None => RopeConfig {
                    theta: compress_theta,
                    scaling: RopeScaling::Default,
                    max_position_embeddings: max_pos,
                    nested_partial_rotary_factor: None,
                },
            };
            compress.theta = compress_theta;
            Ok((main, compress))
        }
    }
}
