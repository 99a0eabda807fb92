//! Golden tests: prefill logits at every position and decode logits at every step match the reference
//! implementation (transformers, f32) within 1e-3, for every family, on the project's own fixtures and on
//! `../shared/fixtures` and `../shared/fixtures-frontier` when present.

mod common;

use std::sync::Arc;

use common::{fixture_dirs, max_abs_diff, Reference};
use moe_core::{LogitsMode, Session, SessionParams};

const TOL: f32 = 1e-3;

fn check_family(family: &str) {
    for dir in fixture_dirs(family) {
        let reference = Reference::load(&dir.join("reference.safetensors"));
        let model =
            Arc::new(common::load_exact(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())));
        let v = model.vocab_size();
        let prompt = &reference.ids["input_ids"];
        let decode_ids = &reference.ids["decode_ids"];

        // Prefill: logits of every position, with the per-layer residual stream for diagnosis.
        let mut session = Session::new(model.clone(), &SessionParams::default()).unwrap();
        // One stacked `hidden_states` [L+1, T, H], or (DeepSeek V4, whose residual stream holds
        // several copies) one `hidden_states.i` per entry.
        let stacked = reference.tensors.get("hidden_states");
        let entry_of = |entry: usize| -> Option<&[f32]> {
            match stacked {
                Some((shape, hs)) => {
                    let n = shape[1] * shape[2];
                    (entry < shape[0]).then(|| &hs[entry * n..(entry + 1) * n])
                }
                None => reference
                    .tensors
                    .get(&format!("hidden_states.{entry}"))
                    .map(|(_, v)| v.as_slice()),
            }
        };
        let mut layer_diffs = vec![];
        let mut hook = |i: usize, x: &[f32]| {
            let entry = i + 1;
            if let Some(want) = entry_of(entry).filter(|w| w.len() == x.len()) {
                layer_diffs.push((entry, max_abs_diff(x, want)));
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
    deepseek_v4,
);
