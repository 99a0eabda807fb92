//! Session behaviour: last vs all logits, reset, truncate, windowed caches, cache sizes.

mod common;

use std::sync::Arc;

use common::{max_abs_diff, own_fixtures, Reference};
use moe_core::config::AttentionConfig;
use moe_core::{Error, LogitsMode, Model, Session, SessionParams, SparseMode};

fn load(family: &str) -> (Arc<Model>, Reference) {
    let dir = own_fixtures().join(family);
    (
        Arc::new(common::load_exact(&dir).unwrap()),
        Reference::load(&dir.join("reference.safetensors")),
    )
}

#[test]
fn last_logits_equal_the_last_row_of_all() {
    let (model, r) = load("qwen2_moe");
    let ids = &r.ids["input_ids"];
    let v = model.vocab_size();
    let mut a = Session::new(model.clone(), &SessionParams::default()).unwrap();
    let all = a.prefill(ids, LogitsMode::All).unwrap();
    let mut b = Session::new(model, &SessionParams::default()).unwrap();
    let last = b.prefill(ids, LogitsMode::Last).unwrap();
    assert_eq!(last.len(), v);
    assert!(max_abs_diff(&last, &all[(ids.len() - 1) * v..]) < 1e-5);
}

#[test]
fn prefill_in_pieces_equals_one_prefill_and_reset_truncate_restore_state() {
    for family in ["gpt_oss", "llama4_text", "deepseek_v32", "glm_moe_dsa"] {
        let (model, r) = load(family);
        let ids = &r.ids["input_ids"];
        let (_, want) = r.f32("prefill_logits");
        let v = model.vocab_size();
        let mut s = Session::new(model, &SessionParams::default()).unwrap();
        let mut got = s.prefill(&ids[..10], LogitsMode::All).unwrap();
        got.extend(s.prefill(&ids[10..], LogitsMode::All).unwrap());
        assert!(max_abs_diff(&got, want) < 1e-3, "{family}: chunked prefill");

        s.reset();
        assert_eq!(s.len(), 0);
        assert_eq!(s.kv_cache_bytes(), 0);
        let again = s.prefill(ids, LogitsMode::All).unwrap();
        assert!(max_abs_diff(&again, want) < 1e-3, "{family}: after reset");

        // Truncate back to 20 tokens (inside every window of these fixtures? not for gpt-oss's window of 8).
        match s.truncate(20) {
            Ok(()) => {
                assert_eq!(s.len(), 20);
                let re = s.prefill(&ids[20..], LogitsMode::All).unwrap();
                assert!(
                    max_abs_diff(&re, &want[20 * v..]) < 1e-3,
                    "{family}: after truncate"
                );
            }
            Err(Error::InvalidArgument(_)) => {
                assert_eq!(
                    s.len(),
                    ids.len(),
                    "{family}: failed truncate changes nothing"
                );
                assert!(
                    family == "gpt_oss" || family == "llama4_text",
                    "{family}: only windowed caches refuse"
                );
            }
            Err(e) => panic!("{family}: {e}"),
        }
    }
}

#[test]
fn windowed_caches_keep_only_what_future_queries_see() {
    // gpt-oss: sliding window 8 on even layers; full attention on odd layers.
    let (model, r) = load("gpt_oss");
    let AttentionConfig::Gqa(g) = &model.config().attention else {
        panic!()
    };
    let row = g.num_kv_heads * g.head_dim * 4 * 2; // K and V, f32
    let ids = &r.ids["input_ids"];
    let mut s = Session::new(model.clone(), &SessionParams::default()).unwrap();
    s.prefill(ids, LogitsMode::None).unwrap();
    let t = ids.len();
    let windowed = model
        .config()
        .layers
        .iter()
        .filter(|l| l.mask != moe_core::config::AttentionMask::Causal)
        .count();
    let full = model.config().num_layers - windowed;
    let window = match model.config().layers[0].mask {
        moe_core::config::AttentionMask::SlidingWindow(w) => w,
        m => panic!("{m:?}"),
    };
    assert_eq!(
        s.kv_cache_bytes(),
        full * t * row + windowed * (window - 1) * row
    );
}

#[test]
fn mla_and_dsa_cache_hold_only_latent_rope_key_and_indexer_key() {
    for family in ["deepseek_v2", "deepseek_v3", "deepseek_v32", "glm_moe_dsa"] {
        let (model, r) = load(family);
        let AttentionConfig::Mla(m) = &model.config().attention else {
            panic!()
        };
        let ids = &r.ids["input_ids"];
        let decode = &r.ids["decode_ids"];
        let mut s = Session::new(model.clone(), &SessionParams::default()).unwrap();
        s.prefill(ids, LogitsMode::None).unwrap();
        for &d in decode {
            s.decode(d).unwrap();
        }
        let tokens = ids.len() + decode.len();
        let full_indexer_layers = model
            .config()
            .layers
            .iter()
            .filter(|l| l.indexer == moe_core::config::IndexerRole::Full)
            .count();
        let per_token = model.config().num_layers * (m.kv_lora_rank + m.qk_rope_head_dim)
            + full_indexer_layers * m.indexer.as_ref().map_or(0, |i| i.head_dim);
        assert_eq!(s.kv_cache_bytes(), tokens * per_token * 4, "{family}");
    }
}

#[test]
fn dense_option_differs_from_sparse_only_past_index_topk() {
    let (model, r) = load("deepseek_v32");
    let topk = match &model.config().attention {
        AttentionConfig::Mla(m) => m.indexer.as_ref().unwrap().topk,
        _ => unreachable!(),
    };
    let ids = &r.ids["input_ids"];
    let v = model.vocab_size();
    let run = |mode| {
        let mut s = Session::new(
            model.clone(),
            &SessionParams::default().with_sparse_mode(mode),
        )
        .unwrap();
        s.prefill(ids, LogitsMode::All).unwrap()
    };
    let (sparse, dense) = (run(SparseMode::Sparse), run(SparseMode::Dense));
    assert!(
        max_abs_diff(&sparse[..topk * v], &dense[..topk * v]) < 1e-5,
        "identical while T <= topk"
    );
    assert!(
        max_abs_diff(&sparse, &dense) > 1e-3,
        "sparse selection must matter past topk"
    );
}

/// The estimate made before loading agrees with what a loaded model and a session really hold.
#[test]
fn memory_estimate_before_loading_matches_the_loaded_model() {
    for family in [
        "mixtral",
        "gpt_oss",
        "llama4_text",
        "deepseek_v3",
        "deepseek_v32",
        "glm_moe_dsa",
    ] {
        let dir = common::own_fixtures().join(family);
        let tokens = 40;
        let est = Model::estimate_memory(&dir, Some(tokens)).unwrap();
        let model = Arc::new(common::load_exact(&dir).unwrap());
        assert_eq!(
            est.kv_cache_bytes_per_token,
            model.kv_cache_bytes_per_token(),
            "{family}"
        );
        assert!(est.weight_bytes > 0 && est.weight_bytes <= model.checkpoint_bytes());
        assert_eq!(est.total_bytes, est.weight_bytes + est.kv_cache_bytes);
        let mut s = Session::new(model.clone(), &SessionParams::default()).unwrap();
        let ids: Vec<u32> = (0..tokens as u32).map(|i| i % 50 + 1).collect();
        s.prefill(&ids, LogitsMode::None).unwrap();
        // Windowed layers keep about their window (evicting in steps), the others every token.
        let windowed = model
            .config()
            .layers
            .iter()
            .any(|l| l.mask != moe_core::config::AttentionMask::Causal);
        if windowed {
            assert!(
                s.kv_cache_bytes() <= tokens * est.kv_cache_bytes_per_token,
                "{family}"
            );
            assert!(
                est.kv_cache_bytes <= tokens * est.kv_cache_bytes_per_token,
                "{family}"
            );
        } else {
            assert_eq!(s.kv_cache_bytes(), est.kv_cache_bytes, "{family}");
        }
    }
    assert!(matches!(
        Model::estimate_memory("/no/such/dir", None),
        Err(moe_core::Error::NotFound(_))
    ));
}

/// A chunked prefill reports progress, equals prefilling its chunks in turn, and its callback can
/// cancel the rest (the session keeping the chunks done).
#[test]
fn prefill_with_progress_reports_and_cancels() {
    let (model, r) = load("qwen3_moe");
    let ids = &r.ids["input_ids"];
    let mut chunked = Session::new(model.clone(), &SessionParams::default()).unwrap();
    let mut seen = vec![];
    let all = chunked
        .prefill_with_progress(ids, LogitsMode::All, 3, &mut |d, t| {
            seen.push((d, t));
            true
        })
        .unwrap();
    let n = ids.len();
    let want: Vec<(usize, usize)> = (1..=n.div_ceil(3)).map(|k| ((3 * k).min(n), n)).collect();
    assert_eq!(seen, want);
    let mut by_hand = Session::new(model.clone(), &SessionParams::default()).unwrap();
    let mut expect = vec![];
    for part in ids.chunks(3) {
        expect.extend(by_hand.prefill(part, LogitsMode::All).unwrap());
    }
    assert_eq!(all, expect);
    let mut one = Session::new(model.clone(), &SessionParams::default()).unwrap();
    assert!(max_abs_diff(&all, &one.prefill(ids, LogitsMode::All).unwrap()) < 1e-4);

    let mut s = Session::new(model, &SessionParams::default()).unwrap();
    let e = s.prefill_with_progress(ids, LogitsMode::Last, 4, &mut |d, _| d < 4);
    assert!(matches!(e, Err(Error::Cancelled { done: 4 })), "{e:?}");
    assert_eq!(s.tokens(), &ids[..4]);
    assert!(matches!(
        s.prefill_with_progress(ids, LogitsMode::Last, 0, &mut |_, _| true),
        Err(Error::InvalidArgument(_))
    ));
}
