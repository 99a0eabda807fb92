//! Decode-step time against context depth for the attention of the two long-context benchmark
//! shapes, on synthetic one-layer models (random bf16 weights, a tiny MoE): Qwen3-30B-A3B's GQA
//! (32 query heads, 4 KV heads, head_dim 128, hidden 2048) and DeepSeek-V2-Lite's MLA (16 heads,
//! kv_lora_rank 512, rope 64, nope 128, v 128, hidden 2048).
//!
//! ```text
//! cargo run --release --example attn_bench -- [--depths 512,4096,16384] [--reps 5] [--kv-dtype f32|bf16|int8] [--threads 2] [--gqa-tiled-min N] [--dir /tmp/moe-attn-bench]
//! ```
//! The caches are filled with `depth` random rows (no prefill), then one token is decoded at that
//! position, `--reps` times after a warm-up (median, ms). The step minus a 16-token baseline is what
//! the context adds: attention. `--gqa-tiled-min` above 1 sends GQA decode through the per-(token,
//! head) path instead of the grouped (tiled) one, for comparisons. A guide while working on the
//! kernels, not a benchmark of record: the figures of record are `bench --depth` on the real models.

#[path = "common/args.rs"]
mod args;
#[path = "common/synthetic.rs"]
mod synthetic;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use moe_core::internals::{self, KvCache, ModelCache};
use moe_core::{ComputeOptions, KvDType, LogitsMode, Model, Precision, SparseMode};

const HIDDEN: usize = 2048;
const VOCAB: usize = 256;

fn common(arch: &str, kind: &str) -> serde_json::Value {
    serde_json::json!({
        "architectures": [arch], "model_type": kind,
        "vocab_size": VOCAB, "hidden_size": HIDDEN, "intermediate_size": 64, "moe_intermediate_size": 64,
        "num_hidden_layers": 1, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "max_position_embeddings": 65536, "torch_dtype": "bfloat16", "tie_word_embeddings": false,
    })
}

/// Qwen3-MoE config and tensors with Qwen3-30B-A3B's attention.
fn gqa_model() -> (serde_json::Value, BTreeMap<String, Vec<usize>>) {
    let mut c = common("Qwen3MoeForCausalLM", "qwen3_moe");
    let extra = serde_json::json!({
        "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128,
        "num_experts": 4, "num_experts_per_tok": 2, "norm_topk_prob": true, "decoder_sparse_step": 1,
        "mlp_only_layers": [],
    });
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let mut t = base_tensors();
    let a = "model.layers.0.self_attn";
    for (name, shape) in [
        ("q_proj.weight", vec![32 * 128, HIDDEN]),
        ("k_proj.weight", vec![4 * 128, HIDDEN]),
        ("v_proj.weight", vec![4 * 128, HIDDEN]),
        ("o_proj.weight", vec![HIDDEN, 32 * 128]),
        ("q_norm.weight", vec![128]),
        ("k_norm.weight", vec![128]),
    ] {
        t.insert(format!("{a}.{name}"), shape);
    }
    let m = "model.layers.0.mlp";
    t.insert(format!("{m}.gate.weight"), vec![4, HIDDEN]);
    for e in 0..4 {
        for (name, shape) in [
            ("gate_proj.weight", vec![64, HIDDEN]),
            ("up_proj.weight", vec![64, HIDDEN]),
            ("down_proj.weight", vec![HIDDEN, 64]),
        ] {
            t.insert(format!("{m}.experts.{e}.{name}"), shape);
        }
    }
    (c, t)
}

/// DeepSeek-V2 config and tensors with V2-Lite's attention (a dense MLP layer).
fn mla_model() -> (serde_json::Value, BTreeMap<String, Vec<usize>>) {
    let mut c = common("DeepseekV2ForCausalLM", "deepseek_v2");
    let extra = serde_json::json!({
        "num_attention_heads": 16, "num_key_value_heads": 16, "q_lora_rank": null,
        "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
        "first_k_dense_replace": 1, "n_routed_experts": 4, "num_experts_per_tok": 2,
        "n_shared_experts": 1, "n_group": 1, "topk_group": 1, "topk_method": "greedy",
    });
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let mut t = base_tensors();
    let a = "model.layers.0.self_attn";
    for (name, shape) in [
        ("q_proj.weight", vec![16 * 192, HIDDEN]),
        ("kv_a_proj_with_mqa.weight", vec![512 + 64, HIDDEN]),
        ("kv_a_layernorm.weight", vec![512]),
        ("kv_b_proj.weight", vec![16 * 256, 512]),
        ("o_proj.weight", vec![HIDDEN, 16 * 128]),
    ] {
        t.insert(format!("{a}.{name}"), shape);
    }
    let m = "model.layers.0.mlp";
    for (name, shape) in [
        ("gate_proj.weight", vec![64, HIDDEN]),
        ("up_proj.weight", vec![64, HIDDEN]),
        ("down_proj.weight", vec![HIDDEN, 64]),
    ] {
        t.insert(format!("{m}.{name}"), shape);
    }
    (c, t)
}

fn base_tensors() -> BTreeMap<String, Vec<usize>> {
    let mut t = BTreeMap::new();
    t.insert("model.embed_tokens.weight".into(), vec![VOCAB, HIDDEN]);
    t.insert("model.norm.weight".into(), vec![HIDDEN]);
    t.insert("lm_head.weight".into(), vec![VOCAB, HIDDEN]);
    for name in ["input_layernorm.weight", "post_attention_layernorm.weight"] {
        t.insert(format!("model.layers.0.{name}"), vec![HIDDEN]);
    }
    t
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median ms of one decode step at depth `depth`.
fn step_ms(
    model: &Model,
    depth: usize,
    reps: usize,
    kv: KvDType,
    rng: &mut synthetic::Rng,
) -> Result<f64, String> {
    let mut cache: ModelCache = internals::new_cache(model);
    internals::set_cache_dtype(&mut cache, kv);
    internals::fill_gqa_cache(&mut cache, depth, &mut || rng.uniform(1.0));
    internals::fill_mla_cache(&mut cache, depth, &mut || rng.uniform(1.0));
    let mut times = Vec::new();
    for rep in 0..=reps {
        let t0 = Instant::now();
        internals::forward(
            model,
            &[1],
            depth,
            &mut cache,
            LogitsMode::Last,
            SparseMode::Sparse,
        )
        .map_err(|e| e.to_string())?;
        if rep > 0 {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        cache.truncate(depth).map_err(|e| e.to_string())?;
    }
    Ok(median(times))
}

fn load(dir: &Path, which: &str, threads: Option<usize>) -> Result<Model, String> {
    let (config, tensors) = if which == "gqa" {
        gqa_model()
    } else {
        mla_model()
    };
    if !dir.join("model.safetensors").is_file() {
        synthetic::write_checkpoint(dir, &config, &tensors, 1).map_err(|e| e.to_string())?;
    }
    let mut model = Model::load(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    model
        .set_compute(ComputeOptions::new(threads, Precision::F32))
        .map_err(|e| e.to_string())?;
    Ok(model)
}

fn run() -> Result<(), String> {
    let args = args::Args::parse(&[])?;
    args.reject_unknown(&[
        "depths",
        "reps",
        "kv-dtype",
        "threads",
        "gqa-tiled-min",
        "dir",
    ])?;
    let depths: Vec<usize> = args
        .ids("depths")?
        .map(|v| v.into_iter().map(|x| x as usize).collect())
        .unwrap_or_else(|| vec![512, 4096, 16384]);
    let reps: usize = args.parse_or("reps", 5)?;
    let threads: Option<usize> = args.opt("threads")?;
    let kv = KvDType::parse(args.get("kv-dtype").unwrap_or("f32")).map_err(|e| e.to_string())?;
    let gqa_tiled: Option<usize> = args.opt("gqa-tiled-min")?;
    let root = args
        .get("dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("moe-attn-bench"));
    let mut rng = synthetic::Rng::new(7);
    println!("| shape | kv | depth | step (ms) | attention above 16 tokens (ms) |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for which in ["gqa", "mla"] {
        let mut model = load(&root.join(which), which, threads)?;
        internals::set_attention_thresholds(&mut model, gqa_tiled, None);
        let base = step_ms(&model, 16, reps, kv, &mut rng)?;
        for &d in &depths {
            let ms = step_ms(&model, d, reps, kv, &mut rng)?;
            println!(
                "| {which} | {kv} | {d} | {ms:.2} | {:.2} |",
                (ms - base).max(0.0)
            );
        }
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
