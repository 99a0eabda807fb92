//! `moe bench`: prefill and decode throughput of a checkpoint (as examples/rust/bench.rs measures
//! it): one warm-up, then `--reps` runs of a random prompt and greedy decode steps; medians.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use moe_core::{argmax, LogitsMode, Model, Precision, Session, SessionParams};

use crate::common::{load_model, model_dir};

/// `moe bench` options.
#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// Checkpoint folder; default: the shipped demo model.
    #[arg(long, short)]
    model: Option<PathBuf>,
    /// Prompt tokens to prefill.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    prompt: u32,
    /// Tokens to decode after the prompt.
    #[arg(long, default_value_t = 128)]
    gen: u32,
    /// Measured repetitions after one warm-up (medians are printed).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    reps: u32,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// How activations meet bf16 weights: f32 (the exact mode), bf16 or int8 (default: the
    /// library's, bf16 activations for bf16 weights).
    #[arg(long, value_name = "f32|bf16|int8")]
    precision: Option<Precision>,
    /// Seed of the random prompt ids.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also print one JSON line with the figures.
    #[arg(long)]
    json: bool,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// One prefill of `prompt` and `gen` greedy decode steps: (prefill tok/s, decode tok/s).
fn run_once(model: &Arc<Model>, prompt: &[u32], gen: usize) -> Result<(f64, f64), String> {
    let params = SessionParams::default().with_max_context(Some(prompt.len() + gen + 1));
    let mut s = Session::new(model.clone(), &params).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let logits = s
        .prefill(prompt, LogitsMode::Last)
        .map_err(|e| e.to_string())?;
    let prefill = prompt.len() as f64 / t0.elapsed().as_secs_f64().max(1e-9);
    let mut next = argmax(&logits) as u32;
    let t1 = Instant::now();
    for _ in 0..gen {
        let l = s.decode(next).map_err(|e| e.to_string())?;
        next = argmax(&l) as u32;
    }
    let decode = gen as f64 / t1.elapsed().as_secs_f64().max(1e-9);
    Ok((prefill, decode))
}

pub(crate) fn bench(a: BenchArgs) -> Result<(), String> {
    let dir = model_dir(&a.model);
    let t_load = Instant::now();
    let model = load_model(&dir, a.threads, a.precision)?;
    let load_s = t_load.elapsed().as_secs_f64();
    let (n_prompt, gen) = (a.prompt as usize, a.gen as usize);
    if n_prompt + gen + 1 > model.config().max_position_embeddings {
        return Err(format!(
            "--prompt {n_prompt} + --gen {gen} exceed the model's context of {} tokens",
            model.config().max_position_embeddings
        ));
    }
    // Random prompt ids from a fixed LCG, as the bench example and llama-bench use.
    let v = model.vocab_size() as u64;
    let mut st = a.seed;
    let prompt: Vec<u32> = (0..n_prompt)
        .map(|_| {
            st = st
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((st >> 33) % v) as u32
        })
        .collect();
    println!(
        "model {} ({}, {} layers), {:.3} GB mapped; {} threads; precision {}; load {load_s:.3} s",
        dir.display(),
        model.config().architecture,
        model.config().num_layers,
        model.checkpoint_bytes() as f64 / 1e9,
        model.threads(),
        model.precision(),
    );
    run_once(&model, &prompt, gen.min(8))?;
    let (mut pp, mut tg) = (vec![], vec![]);
    for _ in 0..a.reps {
        let (p, d) = run_once(&model, &prompt, gen)?;
        pp.push(p);
        tg.push(d);
    }
    let (pm, dm) = (median(&pp), median(&tg));
    println!("prefill {n_prompt}: median {pm:.2} tok/s");
    if gen > 0 {
        println!("decode {gen}: median {dm:.2} tok/s");
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "model": dir.display().to_string(),
                "threads": model.threads(),
                "precision": model.precision().name(),
                "prompt": n_prompt,
                "gen": gen,
                "load_s": load_s,
                "prefill_tok_s": pp,
                "decode_tok_s": tg,
                "prefill_median": pm,
                "decode_median": dm,
            })
        );
    }
    Ok(())
}
