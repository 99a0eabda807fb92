//! Quantizes a bf16/f16/f32 checkpoint to a compressed-tensors `pack-quantized` checkpoint (int4 or
//! int8, symmetric groups), tensor by tensor, with a progress bar; moe loads the result zero-copy and
//! compressed-tensors/vLLM read it.
//!
//! ```text
//! cargo run --release --example quantize -- --model IN --out OUT --bits 4|8 [--group 32] [--scope experts|linear]
//! ```

#[path = "common/args.rs"]
mod args;

use std::process::ExitCode;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use moe_core::{quantize_checkpoint, QuantizeOptions, QuantizeScope, DEFAULT_GROUP_SIZE};

const USAGE: &str =
    "usage: quantize --model IN --out OUT --bits 4|8 [--group 32] [--scope experts|linear]";

fn run() -> Result<(), String> {
    let args = args::Args::parse(&[])?;
    args.reject_unknown(&["model", "out", "bits", "group", "scope"])?;
    let model = args.get("model").ok_or(USAGE)?;
    let out = args.get("out").ok_or(USAGE)?;
    let bits: u32 = args.get("bits").ok_or(USAGE)?.parse().map_err(|_| USAGE)?;
    let group: usize = args.parse_or("group", DEFAULT_GROUP_SIZE)?;
    let scope: QuantizeScope = args
        .get("scope")
        .unwrap_or("experts")
        .parse()
        .map_err(|e: moe_core::Error| e.to_string())?;
    let opts = QuantizeOptions::new(bits)
        .with_group_size(group)
        .with_scope(scope);
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("a valid template"),
    );
    let mut progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let t0 = Instant::now();
    let s =
        quantize_checkpoint(model, out, opts, Some(&mut progress)).map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    eprintln!(
        "wrote {out}: {} linear layers int{bits} (group {group}, scope {}), {} tensors copied, \
         {} shard(s), {:.1} MB -> {:.1} MB in {:.1?}",
        s.quantized,
        scope.as_str(),
        s.copied,
        s.shards,
        s.bytes_in as f64 / 1e6,
        s.bytes_out as f64 / 1e6,
        t0.elapsed()
    );
    if !s.ungrouped.is_empty() {
        eprintln!(
            "left in their dtype (input width not a multiple of {group}): {}",
            s.ungrouped.join(", ")
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
