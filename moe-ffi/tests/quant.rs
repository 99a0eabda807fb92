//! Compressed checkpoints through the C ABI: on `../shared/fixtures-quant` (MXFP4, int4, W4A16, FP8),
//! logits from `moe_session_prefill` / `moe_session_decode` equal moe-core's exactly and the reference
//! within 1e-3 at every prefill position and decode step. Skipped with a note when the set is absent.

mod common;

use std::sync::Arc;

use common::{max_abs_diff, repo_root, CModel, Reference, TOL};
use moe_core::{LogitsMode, Model, Session, SessionParams};

const QUANT: [&str; 4] = [
    "gpt_oss_mxfp4",
    "deepseek_v3_int4",
    "qwen3_moe_w4a16",
    "deepseek_v3_fp8",
];

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
    for name in QUANT {
        let dir = root.join(name);
        let reference = Reference::load(&dir);
        let prompt = &reference.ids["input_ids"];
        let c_model = CModel::load(&dir);
        let v = c_model.vocab();
        let mut c = c_model.session();
        let mut r = Session::new(
            Arc::new(Model::load(&dir).unwrap()),
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
