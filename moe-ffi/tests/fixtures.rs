//! The C ABI gives the same numbers as the Rust path: for every fixture family, logits from
//! `moe_session_prefill` / `moe_session_decode` equal moe-core's own exactly and the reference
//! (transformers) within 1e-3, and greedy sampling through `moe_sampler_sample` reproduces the
//! reference's greedy continuation.

mod common;

use std::sync::Arc;

use common::{c_greedy, fixture, max_abs_diff, CModel, Reference, FAMILIES, TOL};
use moe_core::{LogitsMode, Session, SessionParams};

fn check(family: &str) {
    let dir = fixture(family);
    let reference = Reference::load(&dir);
    let prompt = &reference.ids["input_ids"];
    let decode_ids = &reference.ids["decode_ids"];

    let c_model = CModel::load(&dir);
    let v = c_model.vocab();
    let mut c = c_model.session();
    let rust_model = Arc::new(common::rust_exact(&dir).unwrap());
    assert_eq!(v, rust_model.vocab_size());
    let mut r = Session::new(rust_model, &SessionParams::default()).unwrap();

    let got = c.prefill_all(prompt);
    let want_rust = r.prefill(prompt, LogitsMode::All).unwrap();
    assert_eq!(got, want_rust, "{family}: C prefill differs from moe-core");
    let d = max_abs_diff(&got, &reference.floats["prefill_logits"]);
    assert!(d <= TOL, "{family}: prefill max abs diff {d}");

    let want = &reference.floats["decode_logits"];
    let mut next = c_greedy(&got[(prompt.len() - 1) * v..]);
    for (s, &id) in decode_ids.iter().enumerate() {
        assert_eq!(next, id, "{family}: greedy token {s}");
        let got = c.decode(id);
        assert_eq!(got, r.decode(id).unwrap(), "{family}: C decode {s} differs");
        let d = max_abs_diff(&got, &want[s * v..(s + 1) * v]);
        assert!(d <= TOL, "{family}: decode step {s} max abs diff {d}");
        next = c_greedy(&got);
    }
    assert_eq!(c.len(), prompt.len() + decode_ids.len());
}

#[test]
fn every_family_matches_rust_and_the_reference() {
    for family in FAMILIES {
        check(family);
    }
}
