//! Measures which kernel multiplies bf16 weights fastest on this CPU — VDPBF16PS (`avx512bf16`) or
//! widen + FMA (`avx512`) — for prefill and decode products at f32 and bf16 precision, alternating
//! the candidates, and prints the rows for `moe-core/src/kernels/choice.rs`'s `TABLE`. Both kinds'
//! rows name the prefill winner of their precision (batched decode must compute what decoding alone
//! does); a decode measured faster with the other level is noted. One matrix is not a model: confirm
//! a close call on a real checkpoint (`tools/bench/formats.sh qwen-bf16-exact qwen-bf16-exact-dp`
//! alternates the two levels) before adding the rows — on a Zen 5 this matrix favoured widen + FMA
//! for exact prefill and the Qwen 8-layer model did not.
//!
//! ```text
//! bash tools/calibrate_kernels.sh            # or: cargo run --release --example calibrate -- [--threads 2] [--rounds 7]
//! ```

#[path = "common/args.rs"]
mod args;

use std::process::ExitCode;
use std::time::Instant;

use half::bf16;
use moe_core::internals::kernels::{
    build_pool, cpu_id, lookup, matmul_t_with, supported_isas, FloatData, Isa, MatRef, Precision,
    ProductKind,
};

const COLS: usize = 4096;
/// Prefill: [4096, COLS] bf16 weights (32 MiB) against 128 tokens: arithmetic-bound.
const PREFILL_ROWS: usize = 4096;
const PREFILL_TOKENS: usize = 128;
/// Decode: [32768, COLS] bf16 weights (256 MiB, far past any cache) against one token:
/// bandwidth-bound, as a decode step streaming a model's matrices is.
const DECODE_ROWS: usize = 32768;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn run() -> Result<(), String> {
    let args = args::Args::parse(&[])?;
    args.reject_unknown(&["threads", "rounds"])?;
    let threads: usize = args.parse_or("threads", 2)?;
    let rounds: usize = args.parse_or("rounds", 7)?;
    if !supported_isas().contains(&Isa::Avx512Bf16) {
        println!(
            "This CPU ({}) has no AVX512_BF16: bf16 weights have one kernel, nothing to choose.",
            cpu_id()
        );
        return Ok(());
    }
    let mut s = 1u64;
    let w: Vec<bf16> = (0..DECODE_ROWS * COLS)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            bf16::from_f32(((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5)
        })
        .collect();
    let cpu = cpu_id();
    println!("CPU: {cpu}; {threads} threads; median of {rounds} alternating rounds\n");
    println!("| product | precision | avx512 (widen + FMA) | avx512bf16 (VDPBF16PS) | table now |");
    println!("| --- | --- | ---: | ---: | --- |");
    let mut rows = vec![];
    for (kind, rows_n, t, reps) in [
        (ProductKind::Prefill, PREFILL_ROWS, PREFILL_TOKENS, 2),
        (ProductKind::Decode, DECODE_ROWS, 1, 4),
    ] {
        let m = MatRef::new(FloatData::BF16(&w[..rows_n * COLS]), rows_n, COLS);
        for precision in [Precision::F32, Precision::Bf16] {
            let pool = build_pool(Some(threads), precision).map_err(|e| e.to_string())?;
            let x: Vec<f32> = (0..t * COLS)
                .map(|i| ((i % 97) as f32) / 97.0 - 0.5)
                .collect();
            let mut y = vec![0f32; t * rows_n];
            let candidates = [Isa::Avx512, Isa::Avx512Bf16];
            let mut times = [vec![], vec![]];
            for round in 0..=rounds {
                for (c, &level) in candidates.iter().enumerate() {
                    let t0 = Instant::now();
                    pool.install(|| {
                        for _ in 0..reps {
                            matmul_t_with(level, precision, m, &x, t, &mut y);
                        }
                    });
                    if round > 0 {
                        times[c].push(t0.elapsed().as_secs_f64() / reps as f64);
                    }
                }
            }
            let [a, b] = times.map(median);
            // Prefill: multiply-adds per second; decode: weight bytes streamed per second.
            let (unit, scale) = match kind {
                ProductKind::Prefill => ("GFLOP/s", 2.0 * (rows_n * COLS * t) as f64 / 1e9),
                ProductKind::Decode => ("GB/s", (rows_n * COLS * 2) as f64 / 1e9),
            };
            let now = lookup(&cpu, kind, precision).unwrap_or(Isa::Avx512Bf16);
            println!(
                "| {kind:?} | {precision:?} | {:.1} {unit} | {:.1} {unit} | {now} |",
                scale / a,
                scale / b
            );
            let winner = if a < b { Isa::Avx512 } else { Isa::Avx512Bf16 };
            rows.push((kind, precision, winner, scale / a, scale / b, unit));
        }
    }
    // One level per precision for both kinds (batched decode rows must compute what single rows
    // do; see `TABLE`): the prefill winner, prefill being the arithmetic-bound kind.
    let winners: Vec<(Precision, Isa)> = rows
        .iter()
        .filter(|r| r.0 == ProductKind::Prefill)
        .map(|r| (r.1, r.2))
        .collect();
    let prefill_winner = |p: Precision| winners.iter().find(|w| w.0 == p).map(|w| w.1);
    for r in rows.iter_mut().filter(|r| r.0 == ProductKind::Decode) {
        if let Some(w) = prefill_winner(r.1) {
            if w != r.2 {
                println!(
                    "note: decode at {:?} measured faster with {}; the row follows prefill ({w})",
                    r.1, r.2
                );
            }
            r.2 = w;
        }
    }
    println!("\nRows for TABLE (kernels/choice.rs):\n");
    for (kind, precision, winner, a, b, unit) in rows {
        println!(
            "    Row {{\n        vendor: {:?},\n        family: {:#x},\n        model: Some({:#x}),\n        kind: ProductKind::{kind:?},\n        precision: Precision::{precision:?},\n        isa: Isa::{winner:?},\n        measured: \"avx512 {a:.1} {unit} vs avx512bf16 {b:.1} {unit}\",\n    }},",
            cpu.vendor, cpu.family, cpu.model
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
