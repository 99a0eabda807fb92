//! `moe run`: generate from a prompt or chat, streaming text to stdout with the library's text
//! generation; `--logprobs N` prints one JSON object per generated token instead.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use moe_core::{
    ChatMessage, Generator, LogitsMode, Precision, Session, SessionParams, TextGenerator,
    TextOptions,
};

use crate::common::{load_model, model_dir, unescape, SamplingArgs};
use crate::output::Stopped;
use crate::sequence::{openai_finish_reason, Sequence};

const DEFAULT_PROMPT: &str = "import os\n\n\ndef ";

/// `moe run` options.
#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// Checkpoint folder (config.json + safetensors); default: the shipped demo model.
    #[arg(long, short)]
    model: Option<PathBuf>,
    /// The prompt (`\n` and `\t` are unescaped); with --chat, the user's message.
    #[arg(long, short)]
    prompt: Option<String>,
    /// Prompt token ids instead of text, comma-separated (prints token ids).
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["prompt", "chat"])]
    prompt_ids: Option<Vec<u32>>,
    /// Apply the model's chat template to the prompt as one user message.
    #[arg(long)]
    chat: bool,
    /// A system message before the user's (with --chat).
    #[arg(long, requires = "chat")]
    system: Option<String>,
    /// End generation before this string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// How activations meet bf16 weights: f32 (the exact mode), bf16 or int8 (default: the
    /// library's, bf16 activations for bf16 weights).
    #[arg(long, value_name = "f32|bf16|int8")]
    precision: Option<Precision>,
    /// Most tokens of context (default: the model's).
    #[arg(long)]
    max_context: Option<usize>,
    /// Print one JSON line per generated token with its log-probability and the N most likely
    /// tokens', then a summary line (no echo of the prompt).
    #[arg(long, value_name = "N", conflicts_with = "prompt_ids")]
    logprobs: Option<usize>,
    /// Do not print the prompt before the generated text.
    #[arg(long)]
    no_echo: bool,
}

pub(crate) fn run(a: RunArgs) -> Result<(), Stopped> {
    let dir = model_dir(&a.model);
    let model = load_model(&dir, a.threads, a.precision)?;
    let generate = a.sampling.options(&model);
    let params = SessionParams::default().with_max_context(a.max_context);
    let session = Session::new(model.clone(), &params).map_err(|e| e.to_string())?;
    let stops: Vec<String> = a.stop.iter().map(|s| unescape(s)).collect();
    let mut out = std::io::stdout().lock();
    let t0 = Instant::now();

    if let Some(ids) = &a.prompt_ids {
        let gen = Generator::new(session, ids, generate).map_err(|e| e.to_string())?;
        let mut n = 0;
        for tok in gen {
            let tok = tok.map_err(|e| e.to_string())?;
            write!(out, "{tok} ").and_then(|_| out.flush())?;
            n += 1;
        }
        writeln!(out)?;
        eprintln!("{n} tokens in {:.2?}", t0.elapsed());
        return Ok(());
    }
    let tok = model
        .tokenizer()
        .ok_or("this model has no tokenizer.json: give --prompt-ids")?
        .clone();
    let text = unescape(a.prompt.as_deref().unwrap_or(DEFAULT_PROMPT));
    let ids = if a.chat {
        let mut msgs = Vec::new();
        if let Some(s) = &a.system {
            msgs.push(ChatMessage::new("system", unescape(s)));
        }
        msgs.push(ChatMessage::new("user", text.clone()));
        tok.encode_chat(&msgs, true).map_err(|e| e.to_string())?
    } else {
        tok.encode(&text, true).map_err(|e| e.to_string())?
    };

    if let Some(n) = a.logprobs {
        // One session stepped alone (prefill, then decode), each token's logits kept.
        let mut session = session;
        let mut seq = Sequence::new(generate, Some(tok.clone()), stops, Some(n))
            .map_err(|e| e.to_string())?;
        let mut logits = session
            .prefill(&ids, LogitsMode::Last)
            .map_err(|e| e.to_string())?;
        let mut all = String::new();
        while !seq.wants_no_tokens() {
            let step = seq
                .step(&logits, session.tokens(), session.max_context())
                .map_err(|e| e.to_string())?;
            all.push_str(&step.text);
            if let (Some(t), Some(lp)) = (step.token, &step.logprobs) {
                let top: Vec<serde_json::Value> = lp
                    .top
                    .iter()
                    .map(|&(id, l)| serde_json::json!({"id": id, "logprob": l}))
                    .collect();
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"id": t, "text": step.text, "logprob": lp.logprob, "top_logprobs": top})
                )?;
            }
            if step.finish.is_some() {
                break;
            }
            if let Some(t) = step.token {
                logits = session.decode(t).map_err(|e| e.to_string())?;
            }
        }
        let reason = seq.finish_reason().map_or("length", openai_finish_reason);
        writeln!(
            out,
            "{}",
            serde_json::json!({"text": all, "finish_reason": reason, "prompt_tokens": ids.len(), "completion_tokens": seq.produced()})
        )?;
        return Ok(());
    }

    if !a.chat && !a.no_echo {
        write!(out, "{text}")?;
    }
    let opts = TextOptions::new(generate)
        .with_stop_strings(stops)
        .with_skip_special_tokens(true);
    let mut gen = TextGenerator::new(session, tok, &ids, opts).map_err(|e| e.to_string())?;
    let mut first: Option<std::time::Duration> = None;
    while let Some(piece) = gen.next_piece().map_err(|e| e.to_string())? {
        first.get_or_insert(t0.elapsed());
        write!(out, "{piece}").and_then(|_| out.flush())?;
    }
    writeln!(out)?;
    let total = t0.elapsed();
    eprintln!(
        "{} tokens in {total:.2?}; time to first token {:.2?}; finish: {}",
        gen.produced(),
        first.unwrap_or(total),
        gen.finish_reason().map_or("-", |r| r.as_str())
    );
    Ok(())
}
