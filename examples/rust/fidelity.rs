//! How much a quantized (or any other) weight set, or a precision mode, changes a model's
//! predictions: the same token stream through the reference and the candidate, printed as one JSON
//! line with the mean and largest per-position KL(reference ‖ candidate), top-1 agreement, both
//! perplexities and both weight bytes per decoded token.
//!
//! ```text
//! cargo run --release --example fidelity -- --model DIR [--quantize q4|q8 | --against DIR2]
//!     [--precision f32|bf16|int8] [--group 32] [--scope experts|linear] [--text FILE | --tokens N]
//!     [--limit 512] [--seed 0]
//! ```
//!
//! The reference is always `--model` in the exact mode (`Precision::F32`). The candidate runs at
//! `--precision` (default f32, the exact mode, so that `--quantize` / `--against` measure the weights
//! alone); `--precision bf16` without `--quantize` or `--against` compares the library's default mode
//! (bf16 activations for bf16 weights) with the exact mode on the same checkpoint.
//!
//! The stream is `--text` (default: examples/data/fidelity.txt, built in) through the model's
//! tokenizer, cut to `--limit` tokens, or `--tokens N` seeded random ids (the default for a model
//! without a tokenizer).

#[path = "common/args.rs"]
mod args;

use std::process::ExitCode;
use std::sync::Arc;

use moe_core::{
    fidelity, ComputeOptions, LoadOptions, Model, Precision, QuantizeOptions, QuantizeScope,
    DEFAULT_GROUP_SIZE,
};

const USAGE: &str = "usage: fidelity --model DIR [--quantize q4|q8 | --against DIR2] \
                     [--precision f32|bf16|int8] [--group N] [--scope experts|linear] \
                     [--text FILE | --tokens N] [--limit N] [--seed S]";
const SAMPLE: &str = include_str!("../data/fidelity.txt");

fn random_ids(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut s = seed ^ 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % vocab as u64) as u32
        })
        .collect()
}

fn run() -> Result<(), String> {
    let args = args::Args::parse(&[])?;
    args.reject_unknown(&[
        "model",
        "quantize",
        "against",
        "precision",
        "group",
        "scope",
        "text",
        "tokens",
        "limit",
        "seed",
    ])?;
    let dir = args.get("model").ok_or(USAGE)?;
    let err = |e: moe_core::Error| e.to_string();
    let exact = ComputeOptions::new(None, Precision::F32);
    let reference =
        Arc::new(Model::load_with(dir, LoadOptions::default().with_compute(exact)).map_err(err)?);
    let precision: Option<Precision> = args
        .get("precision")
        .map(|p| {
            p.parse()
                .map_err(|_| format!("--precision must be f32, bf16 or int8, not {p}"))
        })
        .transpose()?;
    let compute = ComputeOptions::new(None, precision.unwrap_or(Precision::F32));
    let group: usize = args.parse_or("group", DEFAULT_GROUP_SIZE)?;
    let scope: QuantizeScope = args
        .get("scope")
        .unwrap_or("experts")
        .parse()
        .map_err(err)?;
    let (candidate, label) = match (args.get("quantize"), args.get("against")) {
        (Some(_), Some(_)) => return Err("--quantize and --against exclude each other".into()),
        (None, None) => match precision {
            Some(p) => (
                Model::load_with(dir, LoadOptions::default().with_compute(compute)).map_err(err)?,
                format!("precision:{p}"),
            ),
            None => {
                return Err(format!(
                    "one of --quantize, --against or --precision is needed\n{USAGE}"
                ))
            }
        },
        (None, Some(other)) => (
            Model::load_with(other, LoadOptions::default().with_compute(compute)).map_err(err)?,
            other.to_string(),
        ),
        (Some(q), None) => {
            let bits = match q {
                "q4" => 4,
                "q8" => 8,
                other => return Err(format!("--quantize {other:?}: expected q4 or q8")),
            };
            let opts = QuantizeOptions::new(bits)
                .with_group_size(group)
                .with_scope(scope);
            let m = Model::load_with(
                dir,
                LoadOptions::default()
                    .with_quantization(opts)
                    .with_compute(compute),
            )
            .map_err(err)?;
            (m, q.to_string())
        }
    };
    let candidate = Arc::new(candidate);
    let limit: usize = args.parse_or("limit", 512)?;
    let seed: u64 = args.parse_or("seed", 0)?;
    let vocab = reference.vocab_size();
    let (ids, stream) = match (args.get("text"), args.opt::<usize>("tokens")?) {
        (Some(_), Some(_)) => return Err("--text and --tokens exclude each other".into()),
        (None, Some(n)) => (random_ids(n, vocab, seed), format!("random:{n}:{seed}")),
        (text_file, None) => match reference.tokenizer() {
            Some(tok) => {
                let text = match text_file {
                    Some(f) => std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"))?,
                    None => SAMPLE.to_string(),
                };
                let mut ids = tok.encode(&text, false).map_err(err)?;
                ids.truncate(limit);
                let name = text_file.unwrap_or("examples/data/fidelity.txt");
                (ids, name.to_string())
            }
            None if text_file.is_some() => {
                return Err("--text needs a model with a tokenizer.json".into())
            }
            None => (random_ids(256, vocab, seed), format!("random:256:{seed}")),
        },
    };
    let f = fidelity(&reference, &candidate, &ids).map_err(err)?;
    let q = args.get("quantize").is_some();
    let round = |v: f64, digits: i32| {
        let p = 10f64.powi(digits);
        (v * p).round() / p
    };
    let line = serde_json::json!({
        "model": dir,
        "candidate": label,
        "precision": candidate.precision().name(),
        "reference_precision": reference.precision().name(),
        "group": if q { Some(group) } else { None },
        "scope": if q { Some(scope.as_str()) } else { None },
        "stream": stream,
        "tokens": f.tokens,
        "kl_mean": round(f.kl_mean, 6),
        "kl_max": round(f.kl_max, 6),
        "top1_agreement": round(f.top1_agreement, 4),
        "ppl_ref": round(f.ppl_ref, 4),
        "ppl": round(f.ppl, 4),
        "bytes_per_token_ref": f.bytes_per_token_ref,
        "bytes_per_token": f.bytes_per_token,
    });
    println!("{line}");
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
