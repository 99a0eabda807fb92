//! Compressed checkpoints through the C ABI: on the project's own `fixtures/quant` (MXFP4, int4, W4A16,
//! W8A16, FP8) and on `../shared/fixtures-quant` (skipped with a note when absent), logits from
//! `moe_session_prefill` / `moe_session_decode` equal moe-core's exactly and the reference within 1e-3
//! at every prefill position and decode step.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{fixture, max_abs_diff, repo_root, CModel, Reference, TOL};
use moe_core::{LogitsMode, Session, SessionParams};

const QUANT_OWN: [&str; 5] = [
    "gpt_oss_mxfp4",
    "deepseek_v3_int4",
    "qwen3_moe_w4a16",
    "qwen3_moe_w8a16",
    "deepseek_v3_fp8",
];

const QUANT: [&str; 4] = [
    "gpt_oss_mxfp4",
    "deepseek_v3_int4",
    "qwen3_moe_w4a16",
    "deepseek_v3_fp8",
];

#[test]
fn own_quant_fixtures_match_through_the_c_abi() {
    check_set(&fixture("quant"), &QUANT_OWN);
}

#[test]
fn shared_quant_fixtures_match_through_the_c_abi() {
    let root = repo_root().join("..").join("shared").join("fixtures-quant");
    if !root.is_dir() {
        eprintln!(
            "note: {} absent, shared quant fixtures skipped",
            root.display()
        );
        return;
    }
    check_set(&root, &QUANT);
}

fn check_set(root: &Path, names: &[&str]) {
    for &name in names {
        let dir = root.join(name);
        let reference = Reference::load(&dir);
        let prompt = &reference.ids["input_ids"];
        let c_model = CModel::load(&dir);
        let v = c_model.vocab();
        let mut c = c_model.session();
        let mut r = Session::new(
            Arc::new(common::rust_exact(&dir).unwrap()),
            &SessionParams::default(),
        )
        .unwrap();
        let got = c.prefill_all(prompt);
        assert_eq!(got, r.prefill(prompt, LogitsMode::All).unwrap(), "{name}");
        let d = max_abs_diff(&got, &reference.floats["prefill_logits"]);
        assert!(d <= TOL, "{name}: prefill max abs diff {d}");
        let want = &reference.floats["decode_logits"];
        for (s, &id) in reference.ids["decode_ids"].iter().enumerate() {
            let got = c.decode(id);
            assert_eq!(got, r.decode(id).unwrap(), "{name}: C decode {s} differs");
            let d = max_abs_diff(&got, &want[s * v..(s + 1) * v]);
            assert!(d <= TOL, "{name}: decode step {s} max abs diff {d}");
        }
    }
}
