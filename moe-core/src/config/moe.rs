//! The MoE part of config.json, read through the family's [`MoeSpec`]: which layers are MoE, the
//! number and size of experts, the router, the shared expert and the activation.

use super::raw::Raw;
use super::spec::{ActivationRule, FlagRule, MoeLayerRule, MoeSpec, RouterRule, SharedExpertRule};
use super::{ExpertActivation, MoeConfig, RouterKind, SharedExpertConfig};
use crate::error::{Error, Result};

/// Whether each of the `n` layers has an MoE feed-forward.
pub(super) fn moe_layer_flags(rule: MoeLayerRule, raw: &Raw, n: usize) -> Result<Vec<bool>> {
    Ok(match rule {
        MoeLayerRule::Interleaved => match raw.opt_usize_list("moe_layers")? {
            Some(l) => (0..n).map(|i| l.contains(&i)).collect(),
            None => {
                let step = raw.usize_or("interleave_moe_layer_step", 1)?.max(1);
                (0..n).map(|i| (i + 1) % step == 0).collect()
            }
        },
        MoeLayerRule::SparseStep => {
            let only = raw.opt_usize_list("mlp_only_layers")?.unwrap_or_default();
            let step = raw.usize_or("decoder_sparse_step", 1)?.max(1);
            let experts = raw.usize_or("num_experts", raw.usize_or("num_local_experts", 1)?)?;
            (0..n)
                .map(|i| !only.contains(&i) && experts > 0 && (i + 1) % step == 0)
                .collect()
        }
        MoeLayerRule::FirstKDense(default) => {
            let k = raw.usize_or("first_k_dense_replace", default)?;
            (0..n).map(|i| i >= k).collect()
        }
        MoeLayerRule::All => vec![true; n],
    })
}

pub(super) fn parse(spec: &MoeSpec, raw: &Raw) -> Result<MoeConfig> {
    let mut num_experts = None;
    for key in spec.num_experts_keys {
        if let Some(e) = raw.opt_usize(key)? {
            num_experts = Some(e);
            break;
        }
    }
    let num_experts = num_experts
        .or(spec.num_experts_default)
        .ok_or_else(|| Error::Config {
            path: raw.path.to_path_buf(),
            message: format!(
                "missing the number of experts ({})",
                spec.num_experts_keys.join(" / ")
            ),
        })?;
    let top_k = match spec.top_k_default {
        Some(d) => raw.usize_or("num_experts_per_tok", d)?,
        None => raw.req_usize("num_experts_per_tok")?,
    };
    let (size_key, size_default) = spec.intermediate;
    let intermediate_size = raw.usize_or(size_key, size_default)?;
    let flag = |rule: FlagRule| -> Result<bool> {
        Ok(match rule {
            FlagRule::Fixed(b) => b,
            FlagRule::Key(key, default) => raw.bool_or(key, default)?,
        })
    };
    let router = match spec.router {
        RouterRule::Softmax { norm_topk_prob } => RouterKind::Softmax {
            norm_topk_prob: flag(norm_topk_prob)?,
            groups: None,
            scaling: 1.0,
        },
        RouterRule::SoftmaxTopkMethod => {
            // transformers' DeepseekV2TopkRouter: softmax, greedy or group-limited (group max),
            // never renormalised.
            let (n_group, topk_group, scaling) = group_keys(raw)?;
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
        }
        RouterRule::SigmoidBiasedUngrouped => RouterKind::SigmoidBiased {
            n_group: 1,
            topk_group: 1,
            norm_topk_prob: true,
            scaling: 1.0,
        },
        RouterRule::SigmoidBiasedGrouped => {
            let (n_group, topk_group, scaling) = group_keys(raw)?;
            RouterKind::SigmoidBiased {
                n_group,
                topk_group,
                norm_topk_prob: raw.bool_or("norm_topk_prob", true)?,
                scaling,
            }
        }
        RouterRule::Llama4 => RouterKind::Llama4,
        RouterRule::TopKSoftmax => RouterKind::TopKSoftmax,
        RouterRule::SqrtSoftplus => {
            match raw.opt_str("scoring_func")?.unwrap_or("sqrtsoftplus") {
                "sqrtsoftplus" => {}
                other => {
                    return Err(Error::InconsistentConfig(format!(
                        "unsupported scoring_func {other:?} (DeepSeek V4 routes with sqrtsoftplus)"
                    )))
                }
            }
            RouterKind::SqrtSoftplus {
                scaling: raw.f64_or("routed_scaling_factor", 1.5)? as f32,
            }
        }
    };
    let shared = match spec.shared {
        SharedExpertRule::None => None,
        SharedExpertRule::GatedSize(key, default) => match raw.usize_or(key, default)? {
            0 => None,
            s => Some(SharedExpertConfig {
                intermediate_size: s,
                gated: true,
            }),
        },
        SharedExpertRule::Count(default) => match raw.usize_or("n_shared_experts", default)? {
            0 => None,
            n => Some(SharedExpertConfig {
                intermediate_size: intermediate_size * n,
                gated: false,
            }),
        },
        SharedExpertRule::OneExpert => Some(SharedExpertConfig {
            intermediate_size,
            gated: false,
        }),
    };
    let activation = match spec.activation {
        ActivationRule::SwiGlu => ExpertActivation::SwiGlu,
        ActivationRule::ClampedSwiGlu { alpha, limit } => ExpertActivation::ClampedSwiGlu {
            alpha: raw.f64_or("swiglu_alpha", alpha)? as f32,
            limit: raw.f64_or("swiglu_limit", limit)? as f32,
        },
        ActivationRule::ClampedSilu { limit } => ExpertActivation::ClampedSilu {
            limit: raw.f64_or("swiglu_limit", limit)? as f32,
        },
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

/// `n_group`, `topk_group` and `routed_scaling_factor` (defaults 1, 1, 1.0).
fn group_keys(raw: &Raw) -> Result<(usize, usize, f32)> {
    Ok((
        raw.usize_or("n_group", 1)?,
        raw.usize_or("topk_group", 1)?,
        raw.f64_or("routed_scaling_factor", 1.0)? as f32,
    ))
}
