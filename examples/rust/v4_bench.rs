//! Decode-step time against context length for DeepSeek V4's three attention types, on synthetic
//! one-kind models with DeepSeek-V4-Flash attention dimensions (hidden 4096, 64 heads × 512 with one
//! shared K=V head, rope 64, q LoRA 1024, 8 output groups × 1024, sliding window 128, indexer 64
//! heads × 128, top-512, compress rates 4 and 128, 4 hyper-connection streams) and small MoE layers.
//!
//! ```text
//! cargo run --release --example v4_bench -- [--layers 1] [--contexts 4096,16384,65536] [--reps 3] [--dir /tmp/moe-v4-bench]
//! ```
//! Each cache is given the state `context` tokens leave (random window rows, compressed entries and
//! indexer keys, what a prefill would leave without spending minutes on one), then one token is
//! decoded at position `context`; medians of `--reps` runs on a fresh copy of the cache. A sliding
//! layer attends to 128 keys, a compressed sparse layer to 128 + 512 (its indexer scans context/4
//! keys), a heavily compressed layer to 128 + context/128. Prints a markdown table.

#[path = "common/args.rs"]
mod args;
#[path = "common/synthetic.rs"]
mod synthetic;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use moe_core::internals::{self, KvCache};
use moe_core::{LogitsMode, Model, SparseMode};

const KINDS: [(&str, usize); 3] = [("sliding", 0), ("CSA", 4), ("HCA", 128)];

fn config(layers: usize, ratio: usize) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["DeepseekV4ForCausalLM"], "model_type": "deepseek_v4",
        "vocab_size": 1024, "hidden_size": 4096, "moe_intermediate_size": 256,
        "num_hidden_layers": layers, "num_attention_heads": 64, "num_key_value_heads": 1,
        "head_dim": 512, "qk_rope_head_dim": 64, "q_lora_rank": 1024, "o_groups": 8, "o_lora_rank": 1024,
        "sliding_window": 128, "compress_ratios": vec![ratio; layers], "num_hash_layers": 0,
        "index_n_heads": 64, "index_head_dim": 128, "index_topk": 512,
        "n_routed_experts": 8, "num_experts_per_tok": 2, "n_shared_experts": 1,
        "hc_mult": 4, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "compress_rope_theta": 160000.0,
        "max_position_embeddings": 1048576, "torch_dtype": "bfloat16"
    })
}

fn tensors(layers: usize, ratio: usize) -> BTreeMap<String, Vec<usize>> {
    let (h, v, inter, e, hc) = (4096, 1024, 256, 8, 4);
    let (nh, d, ql, g, r) = (64, 512, 1024, 8, 1024);
    let mut t = BTreeMap::new();
    t.insert("model.embed_tokens.weight".into(), vec![v, h]);
    t.insert("model.norm.weight".into(), vec![h]);
    t.insert("head.weight".into(), vec![v, h]);
    t.insert("model.hc_head.hc_fn".into(), vec![hc, hc * h]);
    t.insert("model.hc_head.hc_base".into(), vec![hc]);
    t.insert("model.hc_head.hc_scale".into(), vec![1]);
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        let mut add = |name: String, shape: Vec<usize>| {
            t.insert(format!("{p}.{name}"), shape);
        };
        add("attn_norm.weight".into(), vec![h]);
        add("ffn_norm.weight".into(), vec![h]);
        for s in ["hc_attn", "hc_ffn"] {
            add(format!("{s}_fn"), vec![(2 + hc) * hc, hc * h]);
            add(format!("{s}_base"), vec![(2 + hc) * hc]);
            add(format!("{s}_scale"), vec![3]);
        }
        for (name, shape) in [
            ("wq_a.weight", vec![ql, h]),
            ("q_norm.weight", vec![ql]),
            ("wq_b.weight", vec![nh * d, ql]),
            ("wkv.weight", vec![d, h]),
            ("norm.weight", vec![d]),
            ("wo_a.weight", vec![g * r, nh * d / g]),
            ("wo_b.weight", vec![h, g * r]),
            ("attn_sink", vec![nh]),
        ] {
            add(format!("attn.{name}"), shape);
        }
        let mut compressor = |prefix: &str, dim: usize, overlap: bool| {
            let w = if overlap { 2 * dim } else { dim };
            add(format!("{prefix}.wkv.weight"), vec![w, h]);
            add(format!("{prefix}.wgate.weight"), vec![w, h]);
            add(format!("{prefix}.ape"), vec![ratio, w]);
            add(format!("{prefix}.norm.weight"), vec![dim]);
        };
        match ratio {
            0 => {}
            4 => {
                compressor("attn.compressor", d, true);
                compressor("attn.indexer.compressor", 128, true);
                add("attn.indexer.wq_b.weight".into(), vec![64 * 128, ql]);
                add("attn.indexer.weights_proj.weight".into(), vec![64, h]);
            }
            _ => compressor("attn.compressor", d, false),
        }
        add("ffn.gate.weight".into(), vec![e, h]);
        add("ffn.gate.bias".into(), vec![e]);
        for x in 0..e {
            add(format!("ffn.experts.{x}.w1.weight"), vec![inter, h]);
            add(format!("ffn.experts.{x}.w3.weight"), vec![inter, h]);
            add(format!("ffn.experts.{x}.w2.weight"), vec![h, inter]);
        }
        add("ffn.shared_experts.w1.weight".into(), vec![inter, h]);
        add("ffn.shared_experts.w3.weight".into(), vec![inter, h]);
        add("ffn.shared_experts.w2.weight".into(), vec![h, inter]);
    }
    t
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The model of one attention kind, written on first use.
fn model(dir: &Path, layers: usize, kind: &str, ratio: usize) -> Result<Model, String> {
    let dir = dir.join(format!("{kind}-{layers}"));
    if !dir.join("model.safetensors").is_file() {
        eprintln!(
            "writing synthetic V4 {kind} checkpoint ({layers} layers) to {}",
            dir.display()
        );
        synthetic::write_checkpoint(&dir, &config(layers, ratio), &tensors(layers, ratio), 1)
            .map_err(|e| e.to_string())?;
    }
    Model::load(&dir).map_err(|e| e.to_string())
}

/// Median decode-step time in ms at context `ctx`, and the cache bytes.
fn step(
    model: &Model,
    ctx: usize,
    reps: usize,
    rng: &mut synthetic::Rng,
) -> Result<(f64, f64), String> {
    let mut cache = internals::new_cache(model);
    internals::fill_compressed_cache(&mut cache, ctx, &mut || rng.uniform(1.7));
    let mut times = Vec::new();
    // Round 0 is untimed: the first touch of the mapped weights is not attention.
    for rep in 0..=reps {
        let mut c = cache.clone();
        let t0 = Instant::now();
        let logits = internals::forward(
            model,
            &[1],
            ctx,
            &mut c,
            LogitsMode::Last,
            SparseMode::Sparse,
        )
        .map_err(|e| e.to_string())?;
        if rep > 0 {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        assert_eq!(logits.len(), 1024);
    }
    Ok((median(times), cache.bytes() as f64))
}

fn run() -> Result<(), String> {
    let args = args::Args::parse(&[])?;
    let layers: usize = args.parse_or("layers", 1)?;
    let reps: usize = args.parse_or("reps", 3)?;
    let contexts: Vec<usize> = args
        .ids("contexts")?
        .map(|v| v.into_iter().map(|x| x as usize).collect())
        .unwrap_or_else(|| vec![4096, 16384, 65536]);
    let dir = args
        .get("dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("moe-v4-bench"));
    let mut rng = synthetic::Rng::new(7);
    let models = KINDS
        .iter()
        .map(|&(kind, ratio)| model(&dir, layers, kind, ratio))
        .collect::<Result<Vec<_>, _>>()?;
    // Baseline: a step at a 16-token context; what a longer context adds is the attention's cost.
    let base = models
        .iter()
        .map(|m| step(m, 16, reps, &mut rng).map(|s| s.0))
        .collect::<Result<Vec<_>, _>>()?;
    println!(
        "Decode step with {layers} layer(s) of each kind; baselines (16-token context): sliding {:.1}, CSA {:.1}, HCA {:.1} ms.\n",
        base[0], base[1], base[2]
    );
    println!("| context | sliding: attention (ms) | CSA: attention + indexer (ms) | HCA: attention (ms) | keys attended: sliding / CSA / HCA | cache per layer: sliding / CSA / HCA (MB) |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for &ctx in &contexts {
        let mut cols = vec![];
        let mut mb = vec![];
        for (m, b) in models.iter().zip(&base) {
            let (t, bytes) = step(m, ctx, reps, &mut rng)?;
            cols.push((t - b).max(0.0));
            mb.push(bytes / layers as f64 / 1e6);
        }
        let keys = [
            128.min(ctx + 1),
            128.min(ctx + 1) + 512.min(ctx / 4),
            128.min(ctx + 1) + ctx / 128,
        ];
        println!(
            "| {ctx} | {:.1} | {:.1} | {:.1} | {} / {} / {} | {:.1} / {:.1} / {:.1} |",
            cols[0], cols[1], cols[2], keys[0], keys[1], keys[2], mb[0], mb[1], mb[2]
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
