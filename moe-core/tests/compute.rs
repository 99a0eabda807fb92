//! Thread pools and precision: a model with its own pool of 1 or 2 workers gives the logits of the
//! default (global pool) model; bf16 activations in prefill stay close to them.

mod common;

use std::sync::Arc;

use common::{max_abs_diff, own_fixtures, Reference};
use moe_core::kernels::Precision;
use moe_core::{LogitsMode, Model, Session, SessionParams};

fn logits(model: Model, ids: &[u32], decode: &[u32]) -> Vec<f32> {
    let mut s = Session::new(Arc::new(model), &SessionParams::default()).unwrap();
    let mut out = s.prefill(ids, LogitsMode::All).unwrap();
    for &d in decode {
        out.extend(s.decode(d).unwrap());
    }
    out
}

#[test]
fn dedicated_pools_match_the_global_pool_and_bf16_prefill_stays_close() {
    // (Not a DSA family for the bf16 check: rounding may flip the indexer's top-k choice, which changes
    // the attended keys discontinuously.)
    for family in ["qwen3_moe", "deepseek_v2", "gpt_oss"] {
        let dir = own_fixtures().join(family);
        let r = Reference::load(&dir.join("reference.safetensors"));
        let (ids, dec) = (&r.ids["input_ids"], &r.ids["decode_ids"]);
        let base = logits(Model::load(&dir).unwrap(), ids, dec);
        for threads in [1, 2] {
            let mut m = Model::load(&dir).unwrap();
            m.set_compute(Some(threads), Precision::F32).unwrap();
            assert_eq!(m.threads(), threads);
            let got = logits(m, ids, dec);
            let d = max_abs_diff(&got, &base);
            assert!(d < 1e-4, "{family} threads={threads}: {d}");
        }
        let mut m = Model::load(&dir).unwrap();
        m.set_compute(Some(2), Precision::Bf16).unwrap();
        let got = logits(m, ids, dec);
        let d = max_abs_diff(&got, &base);
        assert!(d < 5e-2, "{family} bf16 prefill: {d}");
    }
}

#[test]
fn zero_threads_is_rejected() {
    let mut m = Model::load(own_fixtures().join("qwen3_moe")).unwrap();
    assert!(m.set_compute(Some(0), Precision::F32).is_err());
}
