//! Golden tests: prefill logits at every position and decode logits at every step match the reference
//! implementation (transformers, f32) within 1e-3, for every family, on the project's own fixtures and on
//! `../shared/fixtures` and `../shared/fixtures-frontier` when present.

mod common;

use std::sync::Arc;

use common::{fixture_dirs, max_abs_diff, Reference};
use moe_core::{LogitsMode, Model, Session, SessionParams};

const TOL: f32 = 1e-3;

fn check_family(family: &str) {
    for dir in fixture_dirs(family) {
        let reference = Reference::load(&dir.join("reference.safetensors"));
        let model =
            Arc::new(Model::load(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())));
        let v = model.vocab_size();
        let prompt = &reference.ids["input_ids"];
        let decode_ids = &reference.ids["decode_ids"];

        // Prefill: logits of every position, with the per-layer residual stream for diagnosis.
        let mut session = Session::new(model.clone(), &SessionParams::default()).unwrap();
        let (hs_shape, hs) = reference.f32("hidden_states");
        let (t, hdim) = (hs_shape[1], hs_shape[2]);
        let mut layer_diffs = vec![];
        let mut hook = |i: usize, x: &[f32]| {
            let entry = i + 1;
            if entry < hs_shape[0] && x.len() == t * hdim {
                layer_diffs.push((
                    entry,
                    max_abs_diff(x, &hs[entry * t * hdim..(entry + 1) * t * hdim]),
                ));
            }
        };
        let logits = session
            .prefill_with_hook(prompt, LogitsMode::All, &mut hook)
            .unwrap();
        let (_, want) = reference.f32("prefill_logits");
        let d = max_abs_diff(&logits, want);
        assert!(
            d <= TOL,
            "{}: prefill max abs diff {d} (per-layer residual diffs {layer_diffs:?})",
            dir.display()
        );

        // Decode: each id through the cache after the prompt.
        let (_, want) = reference.f32("decode_logits");
        for (s, &id) in decode_ids.iter().enumerate() {
            let got = session.decode(id).unwrap();
            let d = max_abs_diff(&got, &want[s * v..(s + 1) * v]);
            assert!(
                d <= TOL,
                "{}: decode step {s} max abs diff {d}",
                dir.display()
            );
        }
        eprintln!(
            "{}: prefill max diff {d:.2e} (residual diffs per layer {layer_diffs:?}) over {} logits, {} decode steps ok",
            dir.display(),
            logits.len(),
            decode_ids.len()
        );
    }
}

macro_rules! golden {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { check_family(stringify!($name)); })*
    };
}

golden!(
    qwen3_moe,
    qwen2_moe,
    mixtral,
    minimax_m2,
    glm4_moe,
    llama4_text,
    gpt_oss,
    deepseek_v2,
    deepseek_v3,
    deepseek_v32,
    glm_moe_dsa,
    qwen3_moe_tf5style,
    qwen3_5_moe,
    qwen3_5_moe_wrapped,
);
