//! `moe inspect DIR`: what a checkpoint is and needs, from config.json and the safetensors headers
//! (no weight is read): family, parameters (total and active per token), weight formats, cache
//! bytes per token, memory at a context, whether moe runs it, and the kernels it would use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use moe_core::config::Quantization;
use moe_core::internals::kernels::{choose, cpu_id, isa, ProductKind};
use moe_core::internals::Checkpoint;
use moe_core::{Model, ModelConfig, Precision};

use crate::common::default_model;

/// `moe inspect` options.
#[derive(Args, Debug)]
pub(crate) struct InspectArgs {
    /// Checkpoint folder; default: the shipped demo model.
    dir: Option<PathBuf>,
    /// Tokens of context for the memory figure (default: the model's trained context).
    #[arg(long)]
    context: Option<usize>,
    /// Also load the model (maps the weights and checks every tensor), the full support check.
    #[arg(long)]
    load: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Parameter counts of the text model's tensors.
#[derive(Debug, Default, PartialEq)]
struct Params {
    total: u64,
    /// Of `total`, the routed experts' parameters.
    routed: u64,
}

/// Whether a tensor holds scales, zero points or shapes rather than parameters.
fn is_side_tensor(name: &str) -> bool {
    [
        "weight_scale",
        "weight_scale_inv",
        "weight_zero_point",
        "weight_shape",
        "_scales",
        "weight_global_scale",
        "input_scale",
    ]
    .iter()
    .any(|s| name.ends_with(s))
}

/// Parameters stored in a tensor: packed int4/int8 words and MXFP4 blocks hold several each.
fn params_in(name: &str, elems: u64, quant: &Quantization) -> u64 {
    if name.ends_with("weight_packed") {
        let bits = quant.pack_scheme().map_or(4, |s| s.bits.max(1)) as u64;
        elems * (32 / bits)
    } else if name.ends_with("_blocks") {
        elems * 2
    } else {
        elems
    }
}

/// Whether tensor `name` is one of the routed experts (not a shared one).
fn is_routed_expert(name: &str) -> bool {
    name.contains(".experts.") || name.contains(".experts_") || name.ends_with(".experts")
}

/// Whether `name` is part of the text model (not a multi-token-prediction layer past `num_layers`).
fn in_text_model(config: &ModelConfig, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(config.weight_prefix.as_str()) else {
        return false;
    };
    match rest.split_once("layers.") {
        Some((_, tail)) => tail
            .split('.')
            .next()
            .and_then(|i| i.parse::<usize>().ok())
            .is_none_or(|i| i < config.num_layers),
        None => true,
    }
}

fn count(config: &ModelConfig, ck: &Checkpoint) -> (Params, BTreeMap<String, u64>) {
    let mut p = Params::default();
    let mut dtypes: BTreeMap<String, u64> = BTreeMap::new();
    for name in ck.names() {
        if !in_text_model(config, name) {
            continue;
        }
        let Some(t) = ck.get(name) else { continue };
        *dtypes.entry(format!("{:?}", t.dtype())).or_default() += t.bytes().len() as u64;
        if is_side_tensor(name) {
            continue;
        }
        let n = params_in(name, t.elem_count() as u64, &config.quant);
        p.total += n;
        if is_routed_expert(name) {
            p.routed += n;
        }
    }
    (p, dtypes)
}

fn format_name(q: &Quantization) -> String {
    match q {
        Quantization::None => "float (no quantization_config)".into(),
        Quantization::Fp8 { block } => format!("FP8 e4m3, {}x{} block scales", block.0, block.1),
        Quantization::Mxfp4 { .. } => "MXFP4 (routed experts)".into(),
        Quantization::PackQuantized(s) => format!(
            "compressed-tensors pack-quantized int{}, {}, {}",
            s.bits,
            s.group_size
                .map_or("per channel".to_string(), |g| format!("groups of {g}")),
            if s.symmetric {
                "symmetric"
            } else {
                "asymmetric"
            }
        ),
    }
}

fn gib(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2}M", n as f64 / 1e6),
        n => format!("{n}"),
    }
}

pub(crate) fn inspect(a: InspectArgs) -> Result<(), String> {
    let dir = a.dir.clone().unwrap_or_else(default_model);
    let config = match ModelConfig::load(&dir) {
        Ok(c) => c,
        Err(e) => {
            let mt = model_type(&dir);
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({"dir": dir.display().to_string(), "model_type": mt, "supported": false, "reason": e.to_string()})
                );
            } else {
                println!("model        {}", dir.display());
                println!("model_type   {}", mt.as_deref().unwrap_or("?"));
                println!("supported    no: {e}");
            }
            return Err(format!("{} is not supported: {e}", dir.display()));
        }
    };
    let ck = Checkpoint::open(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let est = Model::estimate_memory(&dir, a.context).map_err(|e| e.to_string())?;
    let (params, dtypes) = count(&config, &ck);
    let (active, experts, top_k) = match &config.moe {
        Some(m) if m.num_experts > 0 => {
            let inactive = params.routed as f64 * (1.0 - m.top_k as f64 / m.num_experts as f64);
            (
                params.total - inactive.round() as u64,
                m.num_experts,
                m.top_k,
            )
        }
        _ => (params.total, 0, 0),
    };
    let load = if a.load {
        Some(Model::load(&dir).map(|_| ()).map_err(|e| e.to_string()))
    } else {
        None
    };
    let supported = !matches!(load, Some(Err(_)));
    let precision = Precision::default();
    let kernels = format!(
        "{} (bf16 products: prefill {}, decode {}; {})",
        isa(),
        choose(ProductKind::Prefill, precision),
        choose(ProductKind::Decode, precision),
        cpu_id()
    );
    let total_bytes: u64 = dtypes.values().sum();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "dir": dir.display().to_string(),
                "family": config.family.name(),
                "architecture": config.architecture,
                "layers": config.num_layers,
                "hidden_size": config.hidden_size,
                "vocab_size": config.vocab_size,
                "context": config.max_position_embeddings,
                "experts": experts,
                "experts_per_token": top_k,
                "parameters_total": params.total,
                "parameters_active": active,
                "format": format_name(&config.quant),
                "dtype_bytes": dtypes,
                "kv_cache_bytes_per_token": est.kv_cache_bytes_per_token,
                "memory_context": est.context,
                "memory_weight_bytes": est.weight_bytes,
                "memory_kv_cache_bytes": est.kv_cache_bytes,
                "memory_total_bytes": est.total_bytes,
                "supported": supported,
                "loaded": load.as_ref().map(|r| r.is_ok()),
                "load_error": load.as_ref().and_then(|r| r.as_ref().err()),
                "kernels": kernels,
            })
        );
    } else {
        println!("model        {}", dir.display());
        println!(
            "family       {} ({}), {} layers, hidden {}, vocab {}, context {}",
            config.family.name(),
            config.architecture,
            config.num_layers,
            config.hidden_size,
            config.vocab_size,
            config.max_position_embeddings
        );
        if experts > 0 {
            println!("experts      {experts} routed, {top_k} per token");
        }
        println!(
            "parameters   {} total, {} active per token",
            human(params.total),
            human(active)
        );
        println!("format       {}", format_name(&config.quant));
        let shares: Vec<String> = dtypes
            .iter()
            .map(|(d, b)| {
                format!(
                    "{d} {} ({:.0}%)",
                    gib(*b),
                    100.0 * *b as f64 / total_bytes.max(1) as f64
                )
            })
            .collect();
        println!("dtypes       {}", shares.join(", "));
        println!(
            "kv cache     {} bytes per token",
            est.kv_cache_bytes_per_token
        );
        println!(
            "memory       {} weights + {} cache at {} tokens = {}",
            gib(est.weight_bytes as u64),
            gib(est.kv_cache_bytes as u64),
            est.context,
            gib(est.total_bytes as u64)
        );
        println!(
            "supported    {}",
            match &load {
                None => "yes (config and weight format; --load checks every tensor)".to_string(),
                Some(Ok(())) => "yes (loaded)".to_string(),
                Some(Err(e)) => format!("no: {e}"),
            }
        );
        println!("kernels      {kernels}");
    }
    match load {
        Some(Err(e)) => Err(format!("{} does not load: {e}", dir.display())),
        _ => Ok(()),
    }
}

/// `model_type` of a config.json moe cannot parse, for the report.
fn model_type(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("model_type")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_model_counts_its_parameters() {
        let dir = default_model();
        let config = ModelConfig::load(&dir).unwrap();
        let ck = Checkpoint::open(&dir).unwrap();
        let (p, dtypes) = count(&config, &ck);
        // 6.1M parameters (models/tiny-deepseek-pycode/README.md), all bf16.
        assert!((6_000_000..6_200_000).contains(&p.total), "{p:?}");
        assert!(p.routed > 0 && p.routed < p.total);
        assert_eq!(dtypes.keys().collect::<Vec<_>>(), vec!["BF16"]);
    }

    #[test]
    fn packed_and_side_tensors_are_counted_as_parameters_or_not() {
        assert!(is_side_tensor(
            "model.layers.0.mlp.gate_proj.weight_scale_inv"
        ));
        assert!(!is_side_tensor("model.layers.0.mlp.gate_proj.weight"));
        assert_eq!(params_in("x.weight_packed", 10, &Quantization::None), 80);
        assert_eq!(
            params_in("x.gate_up_proj_blocks", 10, &Quantization::None),
            20
        );
        assert!(is_routed_expert(
            "model.layers.1.mlp.experts.3.up_proj.weight"
        ));
        assert!(!is_routed_expert(
            "model.layers.1.mlp.shared_experts.up_proj.weight"
        ));
    }
}
