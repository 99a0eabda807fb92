//! Streams generated text (or token ids) from a model.
//!
//! ```text
//! cargo run --release --example generate                      # the shipped demo model, a Python prompt
//! cargo run --release --example generate -- --prompt "import os\n" --max-tokens 64 --temperature 0.7 --seed 1
//! cargo run --release --example generate -- --model DIR --prompt-ids 1,2,3 --max-tokens 16
//! cargo run --release --example generate -- --model DIR --chat --prompt "Hello"
//! ```
//! Sampler options: --temperature T (0 = greedy), --top-k K, --top-p P, --min-p P, --repetition-penalty R,
//! --seed S; --stop STRING ends generation before STRING; --max-context N.

#[path = "common/args.rs"]
mod args;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use moe_core::{ChatMessage, TextGenerator, TextOptions};
use moe_core::{
    GenerateOptions, Generator, LoadOptions, Model, SamplerParams, Session, SessionParams,
};

const DEFAULT_PROMPT: &str = "import os\n\n\ndef ";

fn default_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tiny-deepseek-pycode")
}

fn run() -> Result<(), String> {
    let args = args::Args::parse(&["chat"])?;
    args.reject_unknown(&[
        "model",
        "prompt",
        "prompt-ids",
        "max-tokens",
        "max-context",
        "stop",
        "temperature",
        "top-k",
        "top-p",
        "min-p",
        "repetition-penalty",
        "seed",
    ])?;
    let dir = args
        .get("model")
        .map(PathBuf::from)
        .unwrap_or_else(default_model);

    let started = Instant::now();
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("loading {msg} [{bar:30}] {pos}/{len} layers")
            .map_err(|e| e.to_string())?,
    );
    bar.set_message(dir.display().to_string());
    let mut progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let model = Model::load_with(&dir, LoadOptions::default().with_progress(&mut progress))
        .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    let model = Arc::new(model);
    eprintln!(
        "loaded {} ({}, {} layers) in {:.2?}",
        dir.display(),
        model.config().architecture,
        model.config().num_layers,
        started.elapsed()
    );

    // The library's generation policy (generation_config.json, end-of-sequence ids), then the flags.
    let policy = GenerateOptions::for_model(&model);
    let defaults = policy.sampler.clone();
    let mut sampler = SamplerParams::default();
    sampler.temperature = args.parse_or("temperature", defaults.temperature)?;
    sampler.top_k = args.parse_or("top-k", defaults.top_k)?;
    sampler.top_p = args.parse_or("top-p", defaults.top_p)?;
    sampler.min_p = args.parse_or("min-p", defaults.min_p)?;
    sampler.repetition_penalty =
        args.parse_or("repetition-penalty", defaults.repetition_penalty)?;
    sampler.seed = args.parse_or("seed", defaults.seed)?;
    let max_new_tokens = args.parse_or(
        "max-tokens",
        model.generation_config().max_new_tokens.unwrap_or(64),
    )?;
    let generate = GenerateOptions::new(max_new_tokens)
        .with_sampler(sampler)
        .with_stop_tokens(policy.stop_tokens);
    let max_context = args
        .get("max-context")
        .map(|v| v.parse())
        .transpose()
        .map_err(|_| "bad --max-context")?;
    let params = SessionParams::default().with_max_context(max_context);
    let session = Session::new(model.clone(), &params).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    let t0 = Instant::now();
    let mut first_token: Option<std::time::Duration> = None;

    let produced = match (args.ids("prompt-ids")?, model.tokenizer()) {
        (Some(ids), _) => {
            let gen = Generator::new(session, &ids, generate).map_err(|e| e.to_string())?;
            stream(gen, &mut out, &mut first_token, t0, |tok| format!("{tok} "))?
        }
        (None, Some(tok)) => {
            let text = unescape(args.get("prompt").unwrap_or(DEFAULT_PROMPT));
            let ids = if args.flag("chat") {
                let msgs = [ChatMessage::new("user", text.clone())];
                tok.encode_chat(&msgs, true).map_err(|e| e.to_string())?
            } else {
                write!(out, "{text}").map_err(|e| e.to_string())?;
                tok.encode(&text, true).map_err(|e| e.to_string())?
            };
            let stops = args
                .get("stop")
                .map(|s| vec![unescape(s)])
                .unwrap_or_default();
            let opts = TextOptions::new(generate)
                .with_stop_strings(stops)
                .with_skip_special_tokens(true);
            let gen =
                TextGenerator::new(session, tok.clone(), &ids, opts).map_err(|e| e.to_string())?;
            stream(gen, &mut out, &mut first_token, t0, |piece| piece)?
        }
        (None, None) => return Err("this model has no tokenizer.json: give --prompt-ids".into()),
    };
    let total = t0.elapsed();
    eprintln!(
        "{produced} tokens in {total:.2?}; time to first token {:.2?}",
        first_token.unwrap_or(total)
    );
    Ok(())
}

/// Prints each item of a generator as it comes; returns how many were printed.
fn stream<T>(
    gen: impl Iterator<Item = moe_core::Result<T>>,
    out: &mut impl Write,
    first_token: &mut Option<std::time::Duration>,
    t0: Instant,
    show: impl Fn(T) -> String,
) -> Result<usize, String> {
    let mut n = 0;
    for item in gen {
        let item = item.map_err(|e| e.to_string())?;
        first_token.get_or_insert(t0.elapsed());
        write!(out, "{}", show(item))
            .and_then(|_| out.flush())
            .map_err(|e| e.to_string())?;
        n += 1;
    }
    writeln!(out).map_err(|e| e.to_string())?;
    Ok(n)
}

/// Lets `\n` and `\t` be typed on a command line.
fn unescape(s: &str) -> String {
    s.replace("\\n", "\n").replace("\\t", "\t")
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
