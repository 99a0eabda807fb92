//! The malformed-input corpus (`tools/malformed_corpus.py`) through the C ABI: `moe_model_load`
//! returns each case's status with a message, never `MOE_ERR_PANIC`, and writes no handle on failure.

mod common;

use std::ffi::CString;
use std::path::PathBuf;
use std::process::Command;

use common::{last_error, repo_root};
use moe::moe_status::{self, *};

/// The status the manifest's error kind maps to.
fn status_of(kind: &str) -> Option<moe_status> {
    Some(match kind {
        "not_found" => MOE_ERR_NOT_FOUND,
        "config" => MOE_ERR_CONFIG,
        "inconsistent" => MOE_ERR_INCONSISTENT_CONFIG,
        "unsupported" => MOE_ERR_UNSUPPORTED_ARCHITECTURE,
        "format" => MOE_ERR_FORMAT,
        "missing_tensor" => MOE_ERR_MISSING_TENSOR,
        "shape" => MOE_ERR_SHAPE,
        "dtype" => MOE_ERR_DTYPE,
        "tokenizer" => MOE_ERR_TOKENIZER,
        "unsupported_quantization" => MOE_ERR_UNSUPPORTED_QUANTIZATION,
        _ => return None,
    })
}

#[test]
fn every_malformed_case_is_its_status_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let script = repo_root().join("tools/malformed_corpus.py");
    let ok = Command::new("python3")
        .arg(&script)
        .arg(tmp.path())
        .status()
        .expect("python3 runs the corpus generator");
    assert!(ok.success());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("manifest.json")).unwrap())
            .unwrap();
    let cases = manifest.as_array().unwrap();
    assert!(cases.len() > 150);
    let mut failures = vec![];
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let expect = case["expect"].as_str().unwrap();
        let dir = PathBuf::from(case["dir"].as_str().unwrap());
        let path = CString::new(dir.to_str().unwrap()).unwrap();
        let mut m = std::ptr::null_mut();
        // SAFETY: a valid C string, NULL params (the defaults) and a valid out-pointer.
        let s = unsafe { moe::moe_model_load(path.as_ptr(), std::ptr::null(), &mut m) };
        if s == MOE_OK {
            // SAFETY: the handle was just returned by moe_model_load.
            unsafe { moe::moe_model_free(m) };
        } else if !m.is_null() {
            failures.push(format!("{name}: a handle was written on failure"));
        }
        let good = match (expect, status_of(expect)) {
            ("any", _) => s != MOE_ERR_PANIC,
            ("error", _) => s != MOE_OK && s != MOE_ERR_PANIC,
            (_, Some(want)) => s == want,
            (other, None) => panic!("unknown expectation {other}"),
        };
        if !good {
            failures.push(format!(
                "{name}: expected {expect}, got {s:?}: {}",
                last_error()
            ));
        } else if s != MOE_OK && last_error().is_empty() {
            failures.push(format!("{name}: {s:?} without a message"));
        }
    }
    let _: moe_status = MOE_OK;
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
