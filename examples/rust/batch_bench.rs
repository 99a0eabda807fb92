//! Aggregate decode throughput of B concurrent sequences stepped as one batch, beside the bound the
//! bytes actually read set at the memory bandwidth.
//!
//! ```text
//! cargo run --release --example batch_bench -- --model DIR --batches 1,4,8,16,32 --steps 32 --threads 16
//! ```
//! Options: --prompt N (prompt tokens per sequence, random ids, prefilled as one batch step before
//! timing; default 32), --steps N (timed decode steps after 2 warm-up steps; default 32), --seed S,
//! --precision f32|bf16|int8 (default: the library's, bf16 activations for bf16 weights; f32 is the
//! exact mode; the mode in effect is printed and in the JSON), --bw GBps (the bandwidth of the bound; without it a streaming read of
//! --bw-mib MiB (default 1024) over the model's threads measures it, best of 5), --json FILE (also
//! write the results there; they are printed as one JSON line on stdout in any case).
//!
//! The first line is one session decoding alone through `Session::decode` (the single-session path);
//! "vs one" is each batch's aggregate rate over it.
//!
//! Bytes per step: every non-expert weight once (attention, routers, shared experts, dense MLPs,
//! lm_head) plus, per MoE layer, each routed expert chosen by any sequence in that step, once — the
//! union of the batch's choices, counted by the batch forward's grouping of rows by expert. The bound
//! is `B / (bytes per step / bandwidth)` tokens/s: what a step that only streamed its weights at the
//! bandwidth would reach. Attention over the caches and compute are not in it.

#[path = "common/args.rs"]
mod args;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use moe_core::internals::{decode_batch_counted, non_expert_bytes_per_step};
use moe_core::{argmax, ComputeOptions, LoadOptions, LogitsMode, Model, Precision, Session};

fn default_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tiny-deepseek-pycode")
}

/// A small xorshift generator for prompt ids.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// GB/s of a streaming read of `mib` MiB split over `threads` threads (best of 5 passes).
fn measure_bandwidth(mib: usize, threads: usize) -> f64 {
    let words = mib * (1 << 20) / 8;
    let buf: Vec<u64> = (0..words as u64).collect();
    let per = words.div_ceil(threads.max(1));
    let mut best = 0.0f64;
    for _ in 0..5 {
        let t = Instant::now();
        let total: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = buf
                .chunks(per)
                .map(|c| s.spawn(move || c.iter().fold(0u64, |a, &x| a.wrapping_add(x))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(0))
                .fold(0u64, u64::wrapping_add)
        });
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(total);
        best = best.max((words * 8) as f64 / secs / 1e9);
    }
    best
}

/// One batch size's results.
struct Row {
    batch: usize,
    tok_s: f64,
    bytes_per_step: f64,
    bound_tok_s: f64,
}

/// `steps` timed decode steps of `b` sequences (after a batch prefill and 2 warm-up steps).
fn run_batch(
    model: &Arc<Model>,
    b: usize,
    prompt: usize,
    steps: usize,
    rng: &mut Rng,
) -> Result<(f64, f64), String> {
    let err = |e: moe_core::Error| e.to_string();
    let v = model.vocab_size() as u64;
    let params = moe_core::SessionParams::default().with_max_context(Some(prompt + steps + 3));
    let mut sessions = (0..b)
        .map(|_| Session::new(model.clone(), &params))
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let prompts: Vec<Vec<u32>> = (0..b)
        .map(|_| (0..prompt).map(|_| (rng.next() % v) as u32).collect())
        .collect();
    let mut refs: Vec<&mut Session> = sessions.iter_mut().collect();
    let chunks: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
    let logits = Session::prefill_batch(&mut refs, &chunks, LogitsMode::Last).map_err(err)?;
    let greedy = |l: &moe_core::ndarray::Array2<f32>| -> Vec<u32> {
        l.rows()
            .into_iter()
            .map(|r| argmax(r.as_slice().unwrap_or(&[])) as u32)
            .collect()
    };
    let mut next = greedy(&logits);
    for _ in 0..2 {
        let (l, _) = decode_batch_counted(&mut refs, &next).map_err(err)?;
        next = greedy(&l);
    }
    let mut expert_bytes = 0usize;
    let t = Instant::now();
    for _ in 0..steps {
        let (l, read) = decode_batch_counted(&mut refs, &next).map_err(err)?;
        expert_bytes += read;
        next = greedy(&l);
    }
    let secs = t.elapsed().as_secs_f64();
    Ok((
        (b * steps) as f64 / secs,
        expert_bytes as f64 / steps as f64,
    ))
}

/// The same decode steps for one sequence through `Session::decode` (the single-session path).
fn run_single(
    model: &Arc<Model>,
    prompt: usize,
    steps: usize,
    rng: &mut Rng,
) -> Result<f64, String> {
    let err = |e: moe_core::Error| e.to_string();
    let v = model.vocab_size() as u64;
    let params = moe_core::SessionParams::default().with_max_context(Some(prompt + steps + 3));
    let mut s = Session::new(model.clone(), &params).map_err(err)?;
    let ids: Vec<u32> = (0..prompt).map(|_| (rng.next() % v) as u32).collect();
    let mut next = argmax(&s.prefill(&ids, LogitsMode::Last).map_err(err)?) as u32;
    for _ in 0..2 {
        next = argmax(&s.decode(next).map_err(err)?) as u32;
    }
    let t = Instant::now();
    for _ in 0..steps {
        next = argmax(&s.decode(next).map_err(err)?) as u32;
    }
    Ok(steps as f64 / t.elapsed().as_secs_f64())
}

fn run() -> Result<(), String> {
    let args = args::Args::parse(&[])?;
    args.reject_unknown(&[
        "model",
        "batches",
        "steps",
        "prompt",
        "seed",
        "threads",
        "precision",
        "bw",
        "bw-mib",
        "json",
    ])?;
    let dir = args
        .get("model")
        .map(PathBuf::from)
        .unwrap_or_else(default_model);
    let batches: Vec<usize> = args
        .get("batches")
        .unwrap_or("1,4,8,16,32")
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("--batches: bad {s:?}"))
        })
        .collect::<Result<_, _>>()?;
    if batches.contains(&0) {
        return Err("--batches: a batch needs at least one sequence".into());
    }
    let steps: usize = args.parse_or("steps", 32)?;
    let prompt: usize = args.parse_or("prompt", 32)?;
    if steps == 0 || prompt == 0 {
        return Err("--steps and --prompt must be at least 1".into());
    }
    let threads: Option<usize> = args.opt("threads")?;
    // Without --precision: the library's default (Precision::default()).
    let precision: Precision = match args.get("precision") {
        Some(p) => p
            .parse()
            .map_err(|_| format!("--precision must be f32, bf16 or int8, not {p}"))?,
        None => Precision::default(),
    };
    let opts = LoadOptions::default().with_compute(ComputeOptions::new(threads, precision));
    let model = Arc::new(Model::load_with(&dir, opts).map_err(|e| e.to_string())?);
    let precision = model.precision(); // the mode in effect
    let (bw, bw_source) = match args.opt::<f64>("bw")? {
        Some(g) if g > 0.0 => (g, "given"),
        Some(_) => return Err("--bw must be positive".into()),
        None => (
            measure_bandwidth(args.parse_or("bw-mib", 1024)?, model.threads()),
            "measured",
        ),
    };
    let dense = non_expert_bytes_per_step(&model) as f64;
    let mut rng = Rng(args
        .parse_or::<u64>("seed", 0)?
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        | 1);

    println!(
        "{} ({} threads, {:?}): {prompt}-token prompts, {steps} decode steps; bandwidth {bw:.1} GB/s ({bw_source})",
        dir.display(),
        model.threads(),
        precision
    );
    println!(
        "{:>4} {:>12} {:>14} {:>14} {:>9} {:>8}",
        "B", "tok/s", "MB/step", "bound tok/s", "of bound", "vs one"
    );
    let single = run_single(&model, prompt, steps, &mut rng)?;
    println!(
        "{:>4} {single:>12.1}   (one session through Session::decode)",
        "1"
    );
    let mut rows: Vec<Row> = vec![];
    for &b in &batches {
        let (tok_s, expert) = run_batch(&model, b, prompt, steps, &mut rng)?;
        let bytes = dense + expert;
        let bound = b as f64 / (bytes / (bw * 1e9));
        rows.push(Row {
            batch: b,
            tok_s,
            bytes_per_step: bytes,
            bound_tok_s: bound,
        });
        println!(
            "{b:>4} {tok_s:>12.1} {:>14.2} {bound:>14.1} {:>8.0}% {:>7.2}x",
            bytes / 1e6,
            100.0 * tok_s / bound,
            tok_s / single
        );
    }
    let json = serde_json::json!({
        "model": dir.display().to_string(),
        "threads": model.threads(),
        "precision": format!("{precision:?}"),
        "prompt": prompt,
        "steps": steps,
        "bandwidth_gbps": bw,
        "bandwidth_source": bw_source,
        "non_expert_bytes_per_step": dense,
        "single_session_tok_s": single,
        "results": rows.iter().map(|r| serde_json::json!({
            "batch": r.batch,
            "tok_s": r.tok_s,
            "bytes_per_step": r.bytes_per_step,
            "bound_tok_s": r.bound_tok_s,
            "fraction_of_bound": r.tok_s / r.bound_tok_s,
            "speedup_vs_single": r.tok_s / single,
        })).collect::<Vec<_>>(),
    });
    println!("{json}");
    if let Some(path) = args.get("json") {
        std::fs::write(path, format!("{json}\n")).map_err(|e| format!("{path}: {e}"))?;
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
