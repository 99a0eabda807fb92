//! Decode-step time against context length for DeepSeek sparse attention (DSA) versus the dense option,
//! on a synthetic model with DeepSeek-V3.2 attention dimensions (hidden 7168, 128 heads, q LoRA 1536,
//! kv LoRA 512, rope 64, nope 128, v 128, indexer 64 heads × 128, top-2048) and a few layers.
//!
//! ```text
//! cargo run --release --example dsa_bench -- [--layers 2] [--contexts 1024,4096,16384,32768] [--reps 3] [--dir /tmp/moe-dsa-bench]
//! ```
//! The caches are filled with random latent / rope / indexer rows (what a prefill would leave, without
//! spending minutes on one), then one token is decoded at position `context` in each mode; medians of
//! `--reps` runs. Prints a markdown table.

#[path = "common/args.rs"]
mod args;
#[path = "common/synthetic.rs"]
mod synthetic;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use moe_core::internals::{self, KvCache, ModelCache};
use moe_core::{LogitsMode, Model, SparseMode};

fn v32_config(layers: usize) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["DeepseekV32ForCausalLM"], "model_type": "deepseek_v32",
        "vocab_size": 1024, "hidden_size": 7168, "intermediate_size": 256, "moe_intermediate_size": 256,
        "num_hidden_layers": layers, "first_k_dense_replace": layers,
        "num_attention_heads": 128, "num_key_value_heads": 128,
        "q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
        "index_n_heads": 64, "index_head_dim": 128, "index_topk": 2048,
        "n_routed_experts": 8, "num_experts_per_tok": 2, "n_shared_experts": 1, "n_group": 1, "topk_group": 1,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 163840,
        "torch_dtype": "bfloat16"
    })
}

fn v32_tensors(layers: usize) -> BTreeMap<String, Vec<usize>> {
    let (h, v, inter) = (7168, 1024, 256);
    let mut t = BTreeMap::new();
    t.insert("model.embed_tokens.weight".into(), vec![v, h]);
    t.insert("model.norm.weight".into(), vec![h]);
    t.insert("lm_head.weight".into(), vec![v, h]);
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        let a = format!("{p}.self_attn");
        for (name, shape) in [
            ("input_layernorm.weight", vec![h]),
            ("post_attention_layernorm.weight", vec![h]),
            ("mlp.gate_proj.weight", vec![inter, h]),
            ("mlp.up_proj.weight", vec![inter, h]),
            ("mlp.down_proj.weight", vec![h, inter]),
        ] {
            t.insert(format!("{p}.{name}"), shape);
        }
        for (name, shape) in [
            ("q_a_proj.weight", vec![1536, h]),
            ("q_a_layernorm.weight", vec![1536]),
            ("q_b_proj.weight", vec![128 * 192, 1536]),
            ("kv_a_proj_with_mqa.weight", vec![512 + 64, h]),
            ("kv_a_layernorm.weight", vec![512]),
            ("kv_b_proj.weight", vec![128 * 256, 512]),
            ("o_proj.weight", vec![h, 128 * 128]),
            ("indexer.wq_b.weight", vec![64 * 128, 1536]),
            ("indexer.wk.weight", vec![128, h]),
            ("indexer.k_norm.weight", vec![128]),
            ("indexer.k_norm.bias", vec![128]),
            ("indexer.weights_proj.weight", vec![64, h]),
        ] {
            t.insert(format!("{a}.{name}"), shape);
        }
    }
    t
}

/// Fills every layer's caches with `n` random rows.
fn fill(cache: &mut ModelCache, n: usize, rng: &mut synthetic::Rng) {
    internals::fill_mla_cache(cache, n, &mut || rng.uniform(1.7));
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn run() -> Result<(), String> {
    let args = args::Args::parse(&[])?;
    args.reject_unknown(&["layers", "reps", "contexts", "dir"])?;
    let layers: usize = args.parse_or("layers", 2)?;
    let reps: usize = args.parse_or("reps", 3)?;
    let contexts: Vec<usize> = args
        .ids("contexts")?
        .map(|v| v.into_iter().map(|x| x as usize).collect())
        .unwrap_or_else(|| vec![1024, 4096, 16384, 32768]);
    let dir = args
        .get("dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("moe-dsa-bench-{layers}")));
    if !dir.join("model.safetensors").is_file() {
        eprintln!(
            "writing synthetic V3.2-attention checkpoint ({layers} layers) to {}",
            dir.display()
        );
        synthetic::write_checkpoint(&dir, &v32_config(layers), &v32_tensors(layers), 1)
            .map_err(|e| e.to_string())?;
    }
    let model = Model::load(&dir).map_err(|e| e.to_string())?;
    let mut rng = synthetic::Rng::new(7);
    // Baseline: a step at a 16-token context, where attention costs almost nothing; what a longer
    // context adds on top of it is the attention and indexer cost. Both modes run the indexer (dense
    // ignores its choice), so its separately timed cost is taken out of both attention columns.
    let base = step_times(&model, 16, reps, &mut rng)?.0;
    println!("Decode step with {layers} layers; baseline (16-token context) {base:.1} ms.\n");
    println!("| context | DSA step (ms) | dense step (ms) | DSA indexer (ms) | DSA attention without indexer (ms) | dense attention (ms) | dense / DSA attention | KV cache per layer (MB) |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for &ctx in &contexts {
        let (s, d, ix, bytes) = step_times(&model, ctx, reps, &mut rng)?;
        let (sa, da) = ((s - base - ix).max(0.0), (d - base - ix).max(0.0));
        println!(
            "| {ctx} | {s:.1} | {d:.1} | {ix:.1} | {sa:.1} | {da:.1} | {:.1} | {:.1} |",
            da / sa.max(0.1),
            bytes / layers as f64 / 1e6
        );
    }
    Ok(())
}

/// Median decode-step times (sparse, dense) in ms at context `ctx`, and the cache bytes.
fn step_times(
    model: &Model,
    ctx: usize,
    reps: usize,
    rng: &mut synthetic::Rng,
) -> Result<(f64, f64, f64, f64), String> {
    {
        let mut cache = internals::new_cache(model);
        fill(&mut cache, ctx, rng);
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        // Round 0 is untimed: the first touch of the mapped weights is not attention.
        for rep in 0..=reps {
            // Alternate the modes so machine noise hits both alike.
            for (m, mode) in [SparseMode::Sparse, SparseMode::Dense]
                .into_iter()
                .enumerate()
            {
                let t0 = Instant::now();
                let logits =
                    internals::forward(model, &[1], ctx, &mut cache, LogitsMode::Last, mode)
                        .map_err(|e| e.to_string())?;
                if rep > 0 {
                    times[m].push(t0.elapsed().as_secs_f64() * 1e3);
                }
                assert_eq!(logits.len(), 1024);
                cache.truncate(ctx).map_err(|e| e.to_string())?;
            }
            // The indexer alone (projections, scan over every cached key, top-k), all layers.
            let t0 = Instant::now();
            run_indexers(model, &mut cache, ctx, rng);
            if rep > 0 {
                times[2].push(t0.elapsed().as_secs_f64() * 1e3);
            }
            cache.truncate(ctx).map_err(|e| e.to_string())?;
        }
        let [s, d, ix] = times.map(median);
        Ok((s, d, ix, cache.bytes() as f64))
    }
}

/// Runs each layer's indexer for one query at position `ctx` on random inputs.
fn run_indexers(model: &Model, cache: &mut ModelCache, ctx: usize, rng: &mut synthetic::Rng) {
    for selected in internals::run_indexers(model, cache, ctx, &mut || rng.uniform(1.7)) {
        assert_eq!(selected, model_topk(model).min(ctx + 1));
    }
}

/// The indexer's `index_topk`.
fn model_topk(model: &Model) -> usize {
    match &model.config().attention {
        moe_core::config::AttentionConfig::Mla(m) => m.indexer.as_ref().map_or(0, |i| i.topk),
        _ => 0,
    }
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
