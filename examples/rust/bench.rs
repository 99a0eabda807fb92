//! Prefill and decode throughput of a checkpoint, with the weight bytes a decoded token reads.
//!
//! ```text
//! cargo run --release --example bench -- --model DIR --prompt 512 --gen 128 --threads 2
//! ```
//! Options: --reps N (measured repetitions after one warm-up, default 3; medians are printed),
//! --precision f32|bf16|int8 (how activations meet bf16 weights in products; without it, the
//! library's default, bf16 activations for bf16 weights as llama.cpp's BF16 path and PyTorch bf16
//! do; f32 is the exact mode; the mode in effect is printed and in the JSON line), --seed S (random prompt ids), --json (one JSON
//! line on stdout as well), --gqa-tiled-min N / --mla-expand-min N (ablations: prompt length from which
//! GQA uses tiled attention / MLA expands its latents). The kernel level can be forced with --kernels scalar|avx2|avx512|avx512bf16.
//! --kv-dtype f32|bf16|int8 sets the precision the session's KV caches store (default f32).
//!
//! --depth N measures decode at a context depth, like `llama-bench -p 0 -n GEN -d N`: N random
//! tokens are prefilled once (untimed, progress on stderr; its time is printed separately as
//! `depth_prefill_s`), then every repetition forks that session ([`Session::fork`]: the depth is
//! shared, not re-prefilled) and times `--gen` greedy decode steps from there. No prompt is
//! prefilled and timed in this mode (`--prompt` is ignored; the JSON reports `prompt` 0, an empty
//! `prefill_tok_s` and a null `prefill_median`).
//!
//! Bytes per decoded token count the weights one token streams: every non-expert matrix (attention,
//! routers, shared experts, dense MLPs), `top_k` routed experts per MoE layer, the lm_head and one
//! embedding row. The implied GB/s is those bytes times the median decode rate. Resident memory
//! (`/proc/self/status`) is printed after load and after the runs: mapped weights count once touched.

#[path = "common/args.rs"]
mod args;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use moe_core::internals::{kernels, set_attention_thresholds};
use moe_core::{
    argmax, ComputeOptions, KvDType, LogitsMode, Model, Precision, Session, SessionParams,
};

fn default_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tiny-deepseek-pycode")
}

/// Resident memory from `/proc/self/status` (Linux; zeros elsewhere), in bytes: `(VmRSS, VmHWM,
/// RssAnon, RssFile)`. Mapped weights count in RSS (and RssFile) once their pages are touched.
fn resident() -> [u64; 4] {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |k| k * 1024)
    };
    [kb("VmRSS:"), kb("VmHWM:"), kb("RssAnon:"), kb("RssFile:")]
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

fn fmt_runs(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One prefill of `prompt` and `gen` greedy decode steps; returns (prefill tok/s, decode tok/s).
fn run_once(
    model: &Arc<Model>,
    prompt: &[u32],
    gen: usize,
    kv: KvDType,
) -> Result<(f64, f64), String> {
    let params = SessionParams::default()
        .with_max_context(Some(prompt.len() + gen + 1))
        .with_kv_dtype(kv);
    let mut s = Session::new(model.clone(), &params).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let logits = s
        .prefill(prompt, LogitsMode::Last)
        .map_err(|e| e.to_string())?;
    let prefill = prompt.len() as f64 / t0.elapsed().as_secs_f64();
    let mut next = argmax(&logits) as u32;
    let t1 = Instant::now();
    for _ in 0..gen {
        let l = s.decode(next).map_err(|e| e.to_string())?;
        next = argmax(&l) as u32;
    }
    let decode = gen as f64 / t1.elapsed().as_secs_f64().max(1e-9);
    Ok((prefill, decode))
}

/// `gen` greedy decode steps from a fork of `base` (which holds the depth), starting with `first`;
/// returns decode tok/s.
fn decode_from(base: &mut Session, first: u32, gen: usize) -> Result<f64, String> {
    let mut s = base.fork();
    let mut next = first;
    let t0 = Instant::now();
    for _ in 0..gen {
        let l = s.decode(next).map_err(|e| e.to_string())?;
        next = argmax(&l) as u32;
    }
    Ok(gen as f64 / t0.elapsed().as_secs_f64().max(1e-9))
}

/// Prefills `ids` into a fresh session (progress on stderr), untimed by the caller's figures;
/// returns the session, the first token to decode and the seconds the prefill took.
fn prefill_depth(
    model: &Arc<Model>,
    ids: &[u32],
    gen: usize,
    kv: KvDType,
) -> Result<(Session, u32, f64), String> {
    let params = SessionParams::default()
        .with_max_context(Some(ids.len() + gen + 16))
        .with_kv_dtype(kv);
    let mut s = Session::new(model.clone(), &params).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let logits = s
        .prefill_with_progress(ids, LogitsMode::Last, 512, &mut |done, total| {
            if total > 512 {
                eprint!("\rprefilling depth {done}/{total}");
                if done == total {
                    eprintln!();
                }
            }
            true
        })
        .map_err(|e| e.to_string())?;
    Ok((s, argmax(&logits) as u32, t0.elapsed().as_secs_f64()))
}

fn run() -> Result<(), String> {
    let args = args::Args::parse(&["json"])?;
    args.reject_unknown(&[
        "model",
        "prompt",
        "gen",
        "reps",
        "threads",
        "seed",
        "precision",
        "kernels",
        "gqa-tiled-min",
        "mla-expand-min",
        "depth",
        "kv-dtype",
    ])?;
    if let Some(level) = args.get("kernels") {
        kernels::force_isa(level)?;
    }
    let dir = args
        .get("model")
        .map(PathBuf::from)
        .unwrap_or_else(default_model);
    let n_prompt: usize = args.parse_or("prompt", 512)?;
    let gen: usize = args.parse_or("gen", 128)?;
    let reps: usize = args.parse_or("reps", 3)?;
    let threads: Option<usize> = args.opt("threads")?;
    let seed: u64 = args.parse_or("seed", 1)?;
    // Without --precision: the library's default (Precision::default()).
    let precision: Precision = match args.get("precision") {
        Some(p) => p
            .parse()
            .map_err(|_| format!("--precision must be bf16, f32 or int8, not {p}"))?,
        None => Precision::default(),
    };
    let kv = KvDType::parse(args.get("kv-dtype").unwrap_or("f32")).map_err(|e| e.to_string())?;
    let depth: usize = args.parse_or("depth", 0)?;
    if n_prompt == 0 || reps == 0 {
        return Err("--prompt and --reps must be at least 1".into());
    }

    let t_load = Instant::now();
    let mut model = Model::load(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    model
        .set_compute(ComputeOptions::new(threads, precision))
        .map_err(|e| e.to_string())?;
    // Ablations: the prompt lengths from which attention switches to its tiled / expanded forms.
    let gqa_tiled: Option<usize> = args.opt("gqa-tiled-min")?;
    let mla_expand: Option<usize> = args.opt("mla-expand-min")?;
    set_attention_thresholds(&mut model, gqa_tiled, mla_expand);
    let load_s = t_load.elapsed().as_secs_f64();
    let rss_load = resident();
    let model = Arc::new(model);
    let bpt = model.weight_bytes_per_token();
    let precision = model.precision(); // the mode in effect
                                       // The measured kernel choice for bf16 weights (kernels/choice.rs), per product kind.
    let prefill_kernel = kernels::choose(kernels::ProductKind::Prefill, precision);
    let decode_kernel = kernels::choose(kernels::ProductKind::Decode, precision);
    println!(
        "model {} ({}, {} layers), {:.2} GB mapped; threads {}, kernels {} (bf16 weights: prefill {}, decode {}; {}), precision {:?}",
        dir.display(),
        model.config().architecture,
        model.config().num_layers,
        model.checkpoint_bytes() as f64 / 1e9,
        model.threads(),
        kernels::isa(),
        prefill_kernel,
        decode_kernel,
        kernels::cpu_id(),
        precision
    );

    // Random prompt ids (a fixed LCG), as llama-bench and the PyTorch script use.
    let v = model.vocab_size() as u64;
    let mut st = seed;
    let mut random_ids = |n: usize| -> Vec<u32> {
        (0..n)
            .map(|_| {
                st = st
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((st >> 33) % v) as u32
            })
            .collect()
    };
    if depth > 0 {
        let ids = random_ids(depth);
        return run_depth(
            &model,
            &dir,
            &ids,
            gen,
            reps,
            kv,
            precision,
            load_s,
            rss_load,
            args.flag("json"),
            (prefill_kernel, decode_kernel),
        );
    }
    let prompt: Vec<u32> = random_ids(n_prompt);

    // Warm-up: the first forward pages the mapped weights in (cold when the page cache is cold).
    let (wp, wd) = run_once(&model, &prompt, gen.min(8), kv)?;
    println!(
        "load {load_s:.3} s; warm-up prefill {n_prompt}: {wp:.2} tok/s ({:.2} s to its first logits incl. {} decode steps at {wd:.2} tok/s)",
        n_prompt as f64 / wp,
        gen.min(8)
    );
    let (mut pp, mut tg) = (vec![], vec![]);
    for _ in 0..reps {
        let (p, d) = run_once(&model, &prompt, gen, kv)?;
        pp.push(p);
        tg.push(d);
    }
    let (pm, dm) = (median(&pp), median(&tg));
    println!(
        "prefill {n_prompt}: median {pm:.2} tok/s  (runs {})",
        fmt_runs(&pp)
    );
    if gen > 0 {
        println!(
            "decode {gen}: median {dm:.2} tok/s  (runs {})",
            fmt_runs(&tg)
        );
    }
    println!(
        "weights read per decoded token: {:.4} GB -> {:.1} GB/s at the median decode rate",
        bpt as f64 / 1e9,
        bpt as f64 * dm / 1e9
    );
    let [rss, rss_peak, rss_anon, rss_file] = resident();
    println!(
        "resident: {:.2} GB after load, {:.2} GB now (anonymous {:.2}, file-backed {:.2}), peak {:.2}",
        rss_load[0] as f64 / 1e9,
        rss as f64 / 1e9,
        rss_anon as f64 / 1e9,
        rss_file as f64 / 1e9,
        rss_peak as f64 / 1e9
    );
    if args.flag("json") {
        println!(
            "{}",
            serde_json::json!({
                "model": dir.display().to_string(),
                "threads": model.threads(),
                "kernels": kernels::isa().to_string(),
                "kernel_prefill": prefill_kernel.to_string(),
                "kernel_decode": decode_kernel.to_string(),
                "cpu": kernels::cpu_id().to_string(),
                "precision": format!("{precision:?}"),
                "prompt": n_prompt,
                "gen": gen,
                "depth": 0,
                "kv_dtype": kv.name(),
                "load_s": load_s,
                "prefill_tok_s": pp,
                "decode_tok_s": tg,
                "prefill_median": pm,
                "decode_median": dm,
                "bytes_per_token": bpt,
                "decode_gb_s": bpt as f64 * dm / 1e9,
                "rss_after_load": rss_load[0],
                "rss": rss,
                "rss_peak": rss_peak,
                "rss_anon": rss_anon,
                "rss_file": rss_file,
                "checkpoint_bytes": model.checkpoint_bytes(),
            })
        );
    }
    Ok(())
}

/// `--depth`: decode `gen` tokens from forks of one session holding `ids`, `reps` times (after a
/// warm-up of up to 8 steps); prints the figures and, with `json`, one JSON line.
#[allow(clippy::too_many_arguments)]
fn run_depth(
    model: &Arc<Model>,
    dir: &std::path::Path,
    ids: &[u32],
    gen: usize,
    reps: usize,
    kv: KvDType,
    precision: Precision,
    load_s: f64,
    rss_load: [u64; 4],
    json: bool,
    (prefill_kernel, decode_kernel): (impl std::fmt::Display, impl std::fmt::Display),
) -> Result<(), String> {
    if gen == 0 {
        return Err("--depth needs --gen of at least 1".into());
    }
    let depth = ids.len();
    let (mut base, first, depth_s) = prefill_depth(model, ids, gen, kv)?;
    let wd = decode_from(&mut base, first, gen.min(8))?;
    println!(
        "load {load_s:.3} s; depth {depth} prefilled once in {depth_s:.2} s (kv cache {kv}; not part of the figures below); warm-up {} decode steps at {wd:.2} tok/s",
        gen.min(8)
    );
    let mut tg = vec![];
    for _ in 0..reps {
        tg.push(decode_from(&mut base, first, gen)?);
    }
    let dm = median(&tg);
    println!(
        "decode {gen} at depth {depth}: median {dm:.2} tok/s  (runs {})",
        fmt_runs(&tg)
    );
    let bpt = model.weight_bytes_per_token();
    println!(
        "weights read per decoded token: {:.4} GB -> {:.1} GB/s at the median decode rate",
        bpt as f64 / 1e9,
        bpt as f64 * dm / 1e9
    );
    let [rss, rss_peak, rss_anon, rss_file] = resident();
    println!(
        "resident: {:.2} GB after load, {:.2} GB now (anonymous {:.2}, file-backed {:.2}), peak {:.2}",
        rss_load[0] as f64 / 1e9,
        rss as f64 / 1e9,
        rss_anon as f64 / 1e9,
        rss_file as f64 / 1e9,
        rss_peak as f64 / 1e9
    );
    if json {
        println!(
            "{}",
            serde_json::json!({
                "model": dir.display().to_string(),
                "threads": model.threads(),
                "kernels": kernels::isa().to_string(),
                "kernel_prefill": prefill_kernel.to_string(),
                "kernel_decode": decode_kernel.to_string(),
                "cpu": kernels::cpu_id().to_string(),
                "precision": format!("{precision:?}"),
                "prompt": 0,
                "gen": gen,
                "depth": depth,
                "kv_dtype": kv.name(),
                "depth_prefill_s": depth_s,
                "load_s": load_s,
                "prefill_tok_s": Vec::<f64>::new(),
                "decode_tok_s": tg,
                "prefill_median": serde_json::Value::Null,
                "decode_median": dm,
                "bytes_per_token": bpt,
                "decode_gb_s": bpt as f64 * dm / 1e9,
                "rss_after_load": rss_load[0],
                "rss": rss,
                "rss_peak": rss_peak,
                "rss_anon": rss_anon,
                "rss_file": rss_file,
                "checkpoint_bytes": model.checkpoint_bytes(),
            })
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
