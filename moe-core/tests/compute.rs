//! Thread pools and precision: a model with its own pool of 1 or 2 workers gives the logits of the
//! exact mode over every core; bf16 activations (the library's default) stay close to them.

mod common;

use std::sync::Arc;

use common::{max_abs_diff, own_fixtures, repo_root, Reference};
use moe_core::internals::kernels::{build_pool, choose, Isa, ProductKind};
use moe_core::internals::set_attention_thresholds;
use moe_core::{fidelity, ComputeOptions, LoadOptions, Precision};
use moe_core::{LogitsMode, Model, Session, SessionParams};

fn logits(model: Model, ids: &[u32], decode: &[u32]) -> Vec<f32> {
    logits_of(&Arc::new(model), ids, decode)
}

fn logits_of(model: &Arc<Model>, ids: &[u32], decode: &[u32]) -> Vec<f32> {
    let mut s = Session::new(model.clone(), &SessionParams::default()).unwrap();
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
        let base = logits(common::load_exact(&dir).unwrap(), ids, dec);
        for threads in [1, 2] {
            let mut m = common::load_exact(&dir).unwrap();
            m.set_compute(ComputeOptions::new(Some(threads), Precision::F32))
                .unwrap();
            assert_eq!(m.threads(), threads);
            let got = logits(m, ids, dec);
            let d = max_abs_diff(&got, &base);
            assert!(d < 1e-4, "{family} threads={threads}: {d}");
        }
        let mut m = common::load_exact(&dir).unwrap();
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

/// Whether bf16-weight products in bf16 mode use bf16 arithmetic on this CPU (AVX512_BF16, where the
/// measured choice of kernels/choice.rs keeps it); elsewhere they keep f32 activations.
fn bf16_mode_rounds() -> bool {
    [ProductKind::Prefill, ProductKind::Decode]
        .into_iter()
        .any(|k| choose(k, Precision::Bf16) == Isa::Avx512Bf16)
}

/// A model loaded with the defaults computes bf16 activations for bf16 weights, on every path (its
/// caller's thread, rayon's global pool, a caller that is a worker of an exact model's pool); the
/// exact mode is one option away and matches the reference. The demo model's weights are bf16.
#[test]
fn the_default_is_bf16_activations_and_the_exact_mode_is_one_option_away() {
    assert_eq!(Precision::default(), Precision::Bf16);
    assert_eq!(Precision::DEFAULT, Precision::default());
    assert_eq!(ComputeOptions::default().precision, Precision::Bf16);
    let dir = repo_root().join("models/tiny-deepseek-pycode");
    let r = Reference::load(&dir.join("reference.safetensors"));
    let (ids, dec) = (&r.ids["input_ids"], &r.ids["decode_ids"]);
    let default = Model::load(&dir).unwrap();
    assert_eq!(default.precision(), Precision::Bf16);
    let exact = common::load_exact(&dir).unwrap();
    assert_eq!(exact.precision(), Precision::F32);
    let (default, exact) = (Arc::new(default), Arc::new(exact));
    let want = logits_of(&exact, ids, dec);
    let (_, reference) = r.f32("prefill_logits");
    let d = max_abs_diff(&want[..reference.len()], reference);
    assert!(d < 1e-3, "exact vs reference {d}");
    let got = logits_of(&default, ids, dec);
    assert_eq!(
        want,
        logits_of(&exact, ids, dec),
        "the exact mode is deterministic"
    );
    // Close in distribution (a rounding may flip a routing choice at some position, which moves
    // that position's logits by more than any bound on the largest difference would allow).
    let stream: Vec<u32> = ids.iter().chain(dec.iter()).copied().collect();
    let f = fidelity(&exact, &default, &stream).unwrap();
    eprintln!(
        "default (bf16) vs exact: mean KL {:.2e}, max KL {:.2e}, top-1 {:.3}, max abs {:.2e}",
        f.kl_mean,
        f.kl_max,
        f.top1_agreement,
        max_abs_diff(&got, &want)
    );
    assert!(f.kl_mean < 3e-2, "default vs exact: mean KL {}", f.kl_mean);
    assert!(f.top1_agreement >= 0.9, "top-1 {}", f.top1_agreement);
    if bf16_mode_rounds() {
        assert_ne!(got, want, "the default computed the exact logits");
        assert!(f.kl_mean > 0.0);
    }
    // The same from a worker of an exact model's pool (its threads hold f32): still bf16.
    let pool = build_pool(Some(2), Precision::F32).unwrap();
    let inside = pool.install(|| logits(Model::load(&dir).unwrap(), ids, dec));
    assert_eq!(inside, got, "a default model called from an f32 pool");
    let inside = pool.install(|| logits_of(&default, ids, dec));
    assert_eq!(inside, got, "a default model called from an f32 pool");
    // Threads alone keep the default precision; the exact mode on 2 threads gives the exact logits.
    let two = Model::load_with(
        &dir,
        LoadOptions::default().with_compute(ComputeOptions::new(Some(2), Precision::default())),
    )
    .unwrap();
    assert_eq!(two.precision(), Precision::Bf16);
    let mut e2 = Model::load(&dir).unwrap();
    e2.set_compute(ComputeOptions::new(Some(2), Precision::F32))
        .unwrap();
    let d = max_abs_diff(&logits(e2, ids, dec), &want);
    assert!(d < 1e-4, "exact on 2 threads vs exact {d}");
    let d = max_abs_diff(&logits(two, ids, dec), &got);
    assert!(d < 1e-4, "the default on 2 threads vs the default {d}");
}

#[test]
fn zero_threads_is_rejected() {
    let mut m = common::load_exact(own_fixtures().join("qwen3_moe")).unwrap();
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
            let mut m = common::load_exact(&dir).unwrap();
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
            let mut m = common::load_exact(&dir).unwrap();
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
            let mut m = common::load_exact(&dir).unwrap();
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
