//! The Rust path of examples/c/generate.c, for comparing the two: the same arguments and the same
//! "prompt:" / "token ID LOGIT" lines, computed with moe-core directly (no C ABI).
//!
//!   cargo run --release -p moe-ffi --example rust_greedy -- MODEL_DIR N_NEW TOKEN_ID...

use std::sync::Arc;

use moe_core::{LogitsMode, Model, Sampler, SamplerParams, Session, SessionParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err("usage: rust_greedy MODEL_DIR N_NEW TOKEN_ID...".into());
    }
    let n_new: usize = args[1].parse()?;
    let prompt = args[2..]
        .iter()
        .map(|s| s.parse::<u32>())
        .collect::<Result<Vec<_>, _>>()?;
    let model = Arc::new(Model::load(&args[0])?);
    println!(
        "model: {} ({}, {}, vocab {}, context {}, moe {})",
        args[0],
        model.config().architecture,
        model.config().family,
        model.vocab_size(),
        model.config().max_position_embeddings,
        moe_core::VERSION
    );
    let ids: Vec<String> = prompt.iter().map(u32::to_string).collect();
    println!("prompt: {}", ids.join(" "));
    let mut session = Session::new(model, &SessionParams::default())?;
    let mut sampler = Sampler::new(SamplerParams::default())?;
    let mut logits = session.prefill(&prompt, LogitsMode::Last)?;
    for i in 0..n_new {
        let token = sampler.sample(&logits, session.tokens())?;
        println!("token {token} {:.6}", logits[token as usize]);
        if i + 1 < n_new {
            logits = session.decode(token)?;
        }
    }
    Ok(())
}
