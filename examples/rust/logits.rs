//! Writes the logits of a prompt and of each decode step to a safetensors file.
//!
//! ```text
//! cargo run --release --example logits -- --model DIR --prompt-ids 3,17,42 --decode-ids 5,9 --out OUT.safetensors
//! ```
//! Output: f32 `prefill_logits` [T, V] (one prefill of the prompt) and `decode_logits` [N, V] (each decode
//! id fed through the cache after the prompt), and one JSON line on stdout with `kv_cache_bytes` and
//! `tokens` (T + N). `--precision f32|bf16|int8` sets how activations meet the weights (default f32,
//! exact: the correctness contract). `--kv-dtype f32|bf16|int8` sets the precision the session's
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
    let args = args::Args::parse(&["dense"])?;
    let model_dir = args.get("model").ok_or("--model DIR is required")?;
    let prompt = args.ids("prompt-ids")?.ok_or("--prompt-ids is required")?;
    let decode = args.ids("decode-ids")?.unwrap_or_default();
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
    let mut opts = LoadOptions::default();
    if precision != Precision::F32 {
        opts = opts.with_compute(ComputeOptions::new(None, precision));
    }
    let model = Arc::new(Model::load_with(model_dir, opts).map_err(|e| e.to_string())?);
    let v = model.vocab_size();
    let mut session = Session::new(model, &params).map_err(|e| e.to_string())?;
    let prefill = session
        .prefill(&prompt, LogitsMode::All)
        .map_err(|e| e.to_string())?;
    let mut decoded = Vec::with_capacity(decode.len() * v);
    for &id in &decode {
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

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
