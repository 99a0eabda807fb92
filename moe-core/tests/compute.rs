//! Thread pools and precision: a model with its own pool of 1 or 2 workers gives the logits of the
//! default (global pool) model; bf16 activations in prefill stay close to them.

mod common;

use std::sync::Arc;

use common::{max_abs_diff, own_fixtures, Reference};
use moe_core::internals::set_attention_thresholds;
use moe_core::{ComputeOptions, Precision};
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
            m.set_compute(ComputeOptions::new(Some(threads), Precision::F32))
                .unwrap();
            assert_eq!(m.threads(), threads);
            let got = logits(m, ids, dec);
            let d = max_abs_diff(&got, &base);
            assert!(d < 1e-4, "{family} threads={threads}: {d}");
        }
        let mut m = Model::load(&dir).unwrap();
        m.set_compute(ComputeOptions::new(Some(2), Precision::Bf16))
            .unwrap();
        let got = logits(m, ids, dec);
        // Relative L2 error over all logits: rounding may flip a routing choice at some position
        // (a discontinuity no tolerance on the maximum would survive), not the bulk of the logits.
        let err: f32 = got.iter().zip(&base).map(|(a, b)| (a - b) * (a - b)).sum();
        let norm: f32 = base.iter().map(|v| v * v).sum();
        let rel = (err / norm).sqrt();
        eprintln!(
            "{family} bf16 prefill: relative L2 error {rel:.2e}, max abs {}",
            max_abs_diff(&got, &base)
        );
        assert!(rel < 1e-2, "{family} bf16 prefill: relative L2 error {rel}");
    }
}

#[test]
fn zero_threads_is_rejected() {
    let mut m = Model::load(own_fixtures().join("qwen3_moe")).unwrap();
    assert!(m
        .set_compute(ComputeOptions::new(Some(0), Precision::F32))
        .is_err());
}

/// MLA's expanded attention (long prompts) and latent attention (decode, short prompts) agree.
#[test]
fn mla_expanded_and_latent_attention_agree() {
    for family in ["deepseek_v2", "deepseek_v3"] {
        let dir = own_fixtures().join(family);
        let r = Reference::load(&dir.join("reference.safetensors"));
        let (ids, dec) = (&r.ids["input_ids"], &r.ids["decode_ids"]);
        let run = |min_tokens: usize, precision: Precision| {
            let mut m = Model::load(&dir).unwrap();
            m.set_compute(ComputeOptions::new(Some(2), precision))
                .unwrap();
            set_attention_thresholds(&mut m, None, Some(min_tokens));
            logits(m, ids, dec)
        };
        let latent = run(usize::MAX, Precision::F32);
        let expanded = run(2, Precision::F32);
        let d = max_abs_diff(&latent, &expanded);
        assert!(d < 1e-4, "{family}: expanded vs latent {d}");
        let (_, want) = r.f32("prefill_logits");
        let d = max_abs_diff(&expanded[..want.len()], want);
        assert!(d < 1e-3, "{family}: expanded vs reference {d}");
    }
}

/// GQA's tiled (flash-style) attention and the per-(token, head) attention agree, with every mask,
/// sinks, NoPE layers and qk norms of the GQA families.
#[test]
fn gqa_tiled_and_per_head_attention_agree() {
    for family in [
        "qwen3_moe",
        "gpt_oss",
        "llama4_text",
        "mixtral",
        "minimax_m2",
        "qwen2_moe",
    ] {
        let dir = own_fixtures().join(family);
        let r = Reference::load(&dir.join("reference.safetensors"));
        let (ids, dec) = (&r.ids["input_ids"], &r.ids["decode_ids"]);
        let run = |min_tokens: usize| {
            let mut m = Model::load(&dir).unwrap();
            m.set_compute(ComputeOptions::new(Some(2), Precision::F32))
                .unwrap();
            set_attention_thresholds(&mut m, Some(min_tokens), None);
            logits(m, ids, dec)
        };
        let per_head = run(usize::MAX);
        let tiled = run(2);
        let d = max_abs_diff(&per_head, &tiled);
        assert!(d < 1e-4, "{family}: tiled vs per-head {d}");
        let (_, want) = r.f32("prefill_logits");
        let d = max_abs_diff(&tiled[..want.len()], want);
        assert!(d < 1e-3, "{family}: tiled vs reference {d}");
    }
}

/// The same on a long prompt fed in two pieces: several key blocks and query tasks, a cache that
/// already holds keys, and sliding-window / chunked caches that evicted some.
#[test]
fn gqa_tiled_attention_agrees_on_long_prompts() {
    for family in ["qwen3_moe", "gpt_oss", "llama4_text"] {
        let dir = own_fixtures().join(family);
        let run = |min_tokens: usize| {
            let mut m = Model::load(&dir).unwrap();
            m.set_compute(ComputeOptions::new(Some(2), Precision::F32))
                .unwrap();
            set_attention_thresholds(&mut m, Some(min_tokens), None);
            let v = m.vocab_size() as u32;
            let ids: Vec<u32> = (0..600u32).map(|i| (i * 7919 + 13) % v).collect();
            let params = SessionParams::default().with_max_context(Some(700));
            let mut s = Session::new(Arc::new(m), &params).unwrap();
            let mut out = s.prefill(&ids[..400], LogitsMode::All).unwrap();
            out.extend(s.prefill(&ids[400..], LogitsMode::All).unwrap());
            out.extend(s.decode(1).unwrap());
            out
        };
        let d = max_abs_diff(&run(usize::MAX), &run(2));
        assert!(d < 1e-4, "{family}: tiled vs per-head on 600 tokens {d}");
    }
}
