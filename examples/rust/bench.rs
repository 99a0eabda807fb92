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
use moe_core::{argmax, ComputeOptions, LogitsMode, Model, Precision, Session, SessionParams};

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
fn run_once(model: &Arc<Model>, prompt: &[u32], gen: usize) -> Result<(f64, f64), String> {
    let params = SessionParams::default().with_max_context(Some(prompt.len() + gen + 1));
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
    let prompt: Vec<u32> = (0..n_prompt)
        .map(|_| {
            st = st
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((st >> 33) % v) as u32
        })
        .collect();

    // Warm-up: the first forward pages the mapped weights in (cold when the page cache is cold).
    let (wp, wd) = run_once(&model, &prompt, gen.min(8))?;
    println!(
        "load {load_s:.3} s; warm-up prefill {n_prompt}: {wp:.2} tok/s ({:.2} s to its first logits incl. {} decode steps at {wd:.2} tok/s)",
        n_prompt as f64 / wp,
        gen.min(8)
    );
    let (mut pp, mut tg) = (vec![], vec![]);
    for _ in 0..reps {
        let (p, d) = run_once(&model, &prompt, gen)?;
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

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
