//! Writes the logits of a prompt and of each decode step to a safetensors file.
//!
//! ```text
//! cargo run --release --example logits -- --model DIR --prompt-ids 3,17,42 --decode-ids 5,9 --out OUT.safetensors
//! ```
//! Output: f32 `prefill_logits` [T, V] (one prefill of the prompt) and `decode_logits` [N, V] (each decode
//! id fed through the cache after the prompt), and one JSON line on stdout with `kv_cache_bytes` and
//! `tokens` (T + N). `--precision f32|bf16|int8` sets how activations meet the weights (default f32,
//! exact: the correctness contract, although the library's default is bf16 activations for bf16
//! weights).
//!
//! Several sequences: repeat `--prompt-ids` (and `--decode-ids`, once per prompt, or not at all).
//! Sequence `i` writes `prefill_logits.<i>` [T_i, V] and `decode_logits.<i>` [N_i, V]; the JSON line
//! sums `kv_cache_bytes` and `tokens` and lists each sequence's in `sequences`. Without `--batch`
//! each sequence runs alone, one after another; with `--batch` all prompts are prefilled as one batch
//! step, then every sequence with decode ids left feeds its next one, all stepping together, a
//! sequence leaving when its ids run out (`Session::prefill_batch`, `Session::decode_batch`). One
//! pair without `--batch` writes the single-sequence names above. An unknown option is an error.
//! `--kv-dtype f32|bf16|int8` sets the precision the session's
//! caches store rows in (default f32, exact), which `kv_cache_bytes` reflects.

#[path = "common/args.rs"]
mod args;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use moe_core::{
    ComputeOptions, KvDType, LoadOptions, LogitsMode, Model, Precision, Session, SessionParams,
    SparseMode,
};
use safetensors::tensor::{Dtype, TensorView};

fn run() -> Result<(), String> {
    let args = args::Args::parse(&["dense", "batch"])?;
    args.reject_unknown(&[
        "model",
        "prompt-ids",
        "decode-ids",
        "out",
        "max-context",
        "precision",
        "kv-dtype",
    ])?;
    let model_dir = args.get("model").ok_or("--model DIR is required")?;
    let prompts = args.all_ids("prompt-ids")?;
    if prompts.is_empty() {
        return Err("--prompt-ids is required".into());
    }
    let mut decodes = args.all_ids("decode-ids")?;
    if decodes.is_empty() {
        decodes = vec![vec![]; prompts.len()];
    } else if decodes.len() != prompts.len() {
        return Err(format!(
            "--decode-ids given {} times for {} --prompt-ids (give it once per prompt, or not at all)",
            decodes.len(),
            prompts.len()
        ));
    }
    let batch = args.flag("batch");
    let out = args.get("out").ok_or("--out FILE is required")?;
    let max_context = args
        .get("max-context")
        .map(|v| v.parse())
        .transpose()
        .map_err(|_| "bad --max-context")?;
    let kv_dtype = KvDType::parse(args.get("kv-dtype").unwrap_or("f32"))
        .map_err(|_| "--kv-dtype must be f32, bf16 or int8")?;
    let params = SessionParams::default()
        .with_kv_dtype(kv_dtype)
        .with_max_context(max_context)
        .with_sparse_mode(if args.flag("dense") {
            SparseMode::Dense
        } else {
            SparseMode::Sparse
        });

    let precision = match args.get("precision").unwrap_or("f32") {
        "f32" => Precision::F32,
        "bf16" => Precision::Bf16,
        "int8" => Precision::Int8,
        p => return Err(format!("--precision must be f32, bf16 or int8, not {p}")),
    };
    // Always explicit: the library's default is bf16 activations, this example's is the exact mode.
    let opts = LoadOptions::default().with_compute(ComputeOptions::new(None, precision));
    let model = Arc::new(Model::load_with(model_dir, opts).map_err(|e| e.to_string())?);
    if batch || prompts.len() > 1 {
        return run_many(model, &params, &prompts, &decodes, batch, out);
    }
    let (prompt, decode) = (&prompts[0], &decodes[0]);
    let v = model.vocab_size();
    let mut session = Session::new(model, &params).map_err(|e| e.to_string())?;
    let prefill = session
        .prefill(prompt, LogitsMode::All)
        .map_err(|e| e.to_string())?;
    let mut decoded = Vec::with_capacity(decode.len() * v);
    for &id in decode {
        decoded.extend(session.decode(id).map_err(|e| e.to_string())?);
    }

    let to_bytes = |x: &[f32]| x.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    let (pb, db) = (to_bytes(&prefill), to_bytes(&decoded));
    let mut tensors = HashMap::new();
    tensors.insert(
        "prefill_logits".to_string(),
        TensorView::new(Dtype::F32, vec![prompt.len(), v], &pb).map_err(|e| e.to_string())?,
    );
    tensors.insert(
        "decode_logits".to_string(),
        TensorView::new(Dtype::F32, vec![decode.len(), v], &db).map_err(|e| e.to_string())?,
    );
    safetensors::serialize_to_file(&tensors, &None, std::path::Path::new(out))
        .map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::json!({
            "kv_cache_bytes": session.kv_cache_bytes(),
            "tokens": session.len(),
            "vocab_size": v,
            "out": out,
        })
    );
    Ok(())
}

/// Logits of several sequences: prefill `[T_i, V]` and decode `[N_i, V]` of each.
type SeqLogits = (Vec<f32>, Vec<f32>);

/// Every sequence alone, one after another, or (`batch`) all stepping together.
fn run_many(
    model: Arc<Model>,
    params: &SessionParams,
    prompts: &[Vec<u32>],
    decodes: &[Vec<u32>],
    batch: bool,
    out: &str,
) -> Result<(), String> {
    let v = model.vocab_size();
    let err = |e: moe_core::Error| e.to_string();
    let mut sessions = prompts
        .iter()
        .map(|_| Session::new(model.clone(), params))
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let mut logits: Vec<SeqLogits> = vec![(vec![], vec![]); prompts.len()];
    if batch {
        // One batch step of every prompt, then the decode ids one per step, all sequences with ids
        // left stepping together.
        let mut refs: Vec<&mut Session> = sessions.iter_mut().collect();
        let chunks: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
        let all = Session::prefill_batch(&mut refs, &chunks, LogitsMode::All).map_err(err)?;
        let flat = all.as_slice().ok_or("logits not contiguous")?;
        let mut at = 0;
        for (l, p) in logits.iter_mut().zip(prompts) {
            l.0 = flat[at * v..(at + p.len()) * v].to_vec();
            at += p.len();
        }
        for step in 0.. {
            let active: Vec<usize> = (0..decodes.len())
                .filter(|&i| step < decodes[i].len())
                .collect();
            if active.is_empty() {
                break;
            }
            let tokens: Vec<u32> = active.iter().map(|&i| decodes[i][step]).collect();
            let mut refs: Vec<&mut Session> = sessions
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| step < decodes[*i].len())
                .map(|(_, s)| s)
                .collect();
            let rows = Session::decode_batch(&mut refs, &tokens).map_err(err)?;
            for (&i, row) in active.iter().zip(rows.rows()) {
                logits[i].1.extend(row.iter());
            }
        }
    } else {
        for ((s, l), (p, d)) in sessions
            .iter_mut()
            .zip(&mut logits)
            .zip(prompts.iter().zip(decodes))
        {
            l.0 = s.prefill(p, LogitsMode::All).map_err(err)?;
            for &id in d {
                l.1.extend(s.decode(id).map_err(err)?);
            }
        }
    }

    let to_bytes = |x: &[f32]| x.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    let bytes: Vec<(Vec<u8>, Vec<u8>)> = logits
        .iter()
        .map(|(p, d)| (to_bytes(p), to_bytes(d)))
        .collect();
    let mut tensors = HashMap::new();
    for (i, ((pb, db), (p, d))) in bytes.iter().zip(prompts.iter().zip(decodes)).enumerate() {
        tensors.insert(
            format!("prefill_logits.{i}"),
            TensorView::new(Dtype::F32, vec![p.len(), v], pb).map_err(|e| e.to_string())?,
        );
        tensors.insert(
            format!("decode_logits.{i}"),
            TensorView::new(Dtype::F32, vec![d.len(), v], db).map_err(|e| e.to_string())?,
        );
    }
    safetensors::serialize_to_file(&tensors, &None, std::path::Path::new(out))
        .map_err(|e| e.to_string())?;
    let seqs: Vec<serde_json::Value> = sessions
        .iter()
        .map(|s| serde_json::json!({"kv_cache_bytes": s.kv_cache_bytes(), "tokens": s.len()}))
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "kv_cache_bytes": sessions.iter().map(Session::kv_cache_bytes).sum::<usize>(),
            "tokens": sessions.iter().map(Session::len).sum::<usize>(),
            "vocab_size": v,
            "out": out,
            "batch": batch,
            "sequences": seqs,
        })
    );
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
