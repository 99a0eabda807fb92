//! The malformed-input corpus (`tools/malformed_corpus.py`): every case loads to the typed error its
//! manifest names, mapped and copied, never a panic or an abort. The same corpus runs through the C
//! ABI (moe-ffi/tests/malformed.rs) and Python (moe-py/tests/test_malformed.py).

use std::path::{Path, PathBuf};
use std::process::Command;

use moe_core::{Error, LoadOptions, Model};

/// Writes the corpus into a fresh temporary folder; returns it with the manifest's cases.
fn corpus() -> (tempfile::TempDir, Vec<(String, PathBuf, String)>) {
    let tmp = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/malformed_corpus.py");
    let status = Command::new("python3")
        .arg(&script)
        .arg(tmp.path())
        .status()
        .expect("python3 runs the corpus generator");
    assert!(status.success(), "{} failed", script.display());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("manifest.json")).unwrap())
            .unwrap();
    let cases = manifest
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                PathBuf::from(c["dir"].as_str().unwrap()),
                c["expect"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (tmp, cases)
}

/// The manifest's name for an error kind.
fn kind(e: &Error) -> &'static str {
    match e {
        Error::NotFound(_) => "not_found",
        Error::Config { .. } => "config",
        Error::InconsistentConfig(_) => "inconsistent",
        Error::UnsupportedArchitecture(_) => "unsupported",
        Error::Format { .. } => "format",
        Error::MissingTensor(_) => "missing_tensor",
        Error::Shape { .. } => "shape",
        Error::Dtype { .. } => "dtype",
        Error::Tokenizer(_) => "tokenizer",
        Error::UnsupportedQuantization { .. } => "unsupported_quantization",
        _ => "other",
    }
}

/// Whether `got` satisfies the manifest's expectation.
fn meets(expect: &str, got: &Result<Model, Error>) -> bool {
    match (expect, got) {
        ("any", _) => true,
        ("error", Err(_)) => true,
        (want, Err(e)) => kind(e) == want,
        (_, Ok(_)) => false,
    }
}

#[test]
fn every_malformed_case_is_its_typed_error() {
    let (_tmp, cases) = corpus();
    assert!(cases.len() > 150, "only {} cases", cases.len());
    let mut failures = vec![];
    for (name, dir, expect) in &cases {
        for copied in [false, true] {
            let got = std::panic::catch_unwind(|| {
                Model::load_with(dir, LoadOptions::default().with_copied_weights(copied))
            });
            match got {
                Err(_) => failures.push(format!("{name} (copied: {copied}): panicked")),
                Ok(r) if !meets(expect, &r) => failures.push(format!(
                    "{name} (copied: {copied}): expected {expect}, got {}",
                    match &r {
                        Ok(_) => "a loaded model".to_string(),
                        Err(e) => format!("{} ({e})", kind(e)),
                    }
                )),
                Ok(Err(e)) => assert!(!e.to_string().is_empty(), "{name}: empty message"),
                Ok(Ok(_)) => {}
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
