//! DeepSeek V4's caches: what each layer holds after `n` tokens (the sliding window's last `W − 1`
//! shared K=V rows; for compressed layers one entry per closed window of `m` tokens, the tail of the
//! open window's projected K/V and gate rows, and for compressed sparse attention the previous
//! window's overlap half, all twice: for the attention and the indexer), prefill in chunks that cut
//! windows carrying the compressor state across calls, and a truncation that would need a rewound
//! compressor refused.

mod common;

use std::sync::Arc;

use common::{max_abs_diff, own_fixtures, Reference};
use moe_core::config::{AttentionConfig, KvCompression};
use moe_core::{LogitsMode, Model, Session, SessionParams};

fn load() -> (Arc<Model>, Reference) {
    let dir = own_fixtures().join("deepseek_v4");
    (
        Arc::new(common::load_exact(&dir).unwrap()),
        Reference::load(&dir.join("reference.safetensors")),
    )
}

/// Bytes one layer's cache holds after `n` tokens (f32 values × 4), from the fixture's sizes:
/// head_dim d = 32, window W = 8, index_head_dim 16, sparse rate 4, heavy rate 8.
fn layer_bytes(kind: KvCompression, n: usize) -> usize {
    let (d, w, di) = (32, 8, 16);
    let window = n.min(w - 1) * d;
    let compressor = |dim: usize, m: usize, overlap: bool| {
        let width = if overlap { 2 * dim } else { dim };
        let entries = (n / m) * dim;
        let tail = (n % m) * 2 * width; // K/V and gate rows of the open window
        let prior = if overlap && n >= m { 2 * m * dim } else { 0 };
        entries + tail + prior
    };
    4 * match kind {
        KvCompression::None => window,
        KvCompression::Heavy(m) => window + compressor(d, m, false),
        KvCompression::Sparse(m) => window + compressor(d, m, true) + compressor(di, m, true),
        _ => unreachable!(),
    }
}

#[test]
fn each_layer_states_its_cache_bytes() {
    let (model, r) = load();
    let kinds: Vec<KvCompression> = model
        .config()
        .layers
        .iter()
        .map(|l| l.compression)
        .collect();
    use KvCompression::{Heavy, None as Sliding, Sparse};
    assert_eq!(kinds, [Sliding, Sparse(4), Heavy(8), Sparse(4)]);
    assert!(matches!(
        model.config().attention,
        AttentionConfig::Compressed(_)
    ));
    // Per token: the window row (32 values) on every layer, plus 32/4 + 16/4 on sparse layers and
    // 32/8 on the heavy one: (32 + 44 + 36 + 44) · 4 bytes.
    assert_eq!(model.kv_cache_bytes_per_token(), (32 + 44 + 36 + 44) * 4);
    assert_eq!(model.kv_cache_fixed_bytes(), 0);

    let total = |n: usize| kinds.iter().map(|&k| layer_bytes(k, n)).sum::<usize>();
    let mut s = Session::new(model, &SessionParams::default()).unwrap();
    let prompt = &r.ids["input_ids"];
    s.prefill(prompt, LogitsMode::None).unwrap();
    assert_eq!(s.kv_cache_bytes(), total(prompt.len()));
    for (i, &id) in r.ids["decode_ids"].iter().enumerate() {
        s.decode(id).unwrap();
        assert_eq!(
            s.kv_cache_bytes(),
            total(prompt.len() + i + 1),
            "after decode {i}"
        );
    }
}

#[test]
fn chunked_prefill_carries_the_compressor_state() {
    let (model, r) = load();
    let prompt = &r.ids["input_ids"];
    let want = &r.f32("prefill_logits").1;
    // Chunks of 3 and 5 cut the windows of 4 and 8 anywhere: tails and overlaps cross calls.
    for chunk in [3, 5] {
        let mut s = Session::new(model.clone(), &SessionParams::default()).unwrap();
        let got = s
            .prefill_with_progress(prompt, LogitsMode::All, chunk, &mut |_, _| true)
            .unwrap();
        let d = max_abs_diff(&got, want);
        assert!(d < 1e-3, "chunks of {chunk}: {d}");
    }
}

#[test]
fn truncation_into_the_compressed_state_is_refused() {
    let (model, r) = load();
    let prompt = &r.ids["input_ids"];
    let v = model.vocab_size();
    let mut s = Session::new(model, &SessionParams::default()).unwrap();
    s.prefill(prompt, LogitsMode::None).unwrap();
    let before = s.kv_cache_bytes();
    assert!(s.truncate(prompt.len() - 1).is_err());
    assert_eq!((s.len(), s.kv_cache_bytes()), (prompt.len(), before));
    let got = s.decode(r.ids["decode_ids"][0]).unwrap();
    assert!(max_abs_diff(&got, &r.f32("decode_logits").1[..v]) < 1e-3);
    s.truncate(0).unwrap();
    assert_eq!(s.kv_cache_bytes(), 0);
}

#[test]
fn deepseeks_own_tensor_layout_loads_the_same() {
    // DeepSeek's checkpoints keep the decoder at the root: `embed.weight`, `layers.N.…`,
    // `norm.weight`, `hc_head_fn` / `_base` / `_scale` (transformers puts them under `model.`).
    let tmp = tempfile::tempdir().unwrap();
    let src = own_fixtures().join("deepseek_v4");
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    let file = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let rename = |k: &str| -> String {
        match k {
            "model.embed_tokens.weight" => "embed.weight".into(),
            "model.norm.weight" => "norm.weight".into(),
            _ if k.starts_with("model.hc_head.hc_") => k.replace("model.hc_head.hc_", "hc_head_"),
            _ => k.replacen("model.layers.", "layers.", 1),
        }
    };
    let renamed: serde_json::Map<_, _> = header
        .into_iter()
        .map(|(k, v)| {
            if k == "__metadata__" {
                (k, v)
            } else {
                (rename(&k), v)
            }
        })
        .collect();
    assert!(
        renamed.contains_key("hc_head_fn") && renamed.contains_key("layers.0.attn.wq_a.weight")
    );
    let mut h = serde_json::to_vec(&renamed).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(&file, out).unwrap();

    let (_, r) = load();
    let model = Arc::new(common::load_exact(tmp.path()).unwrap());
    let mut s = Session::new(model, &SessionParams::default()).unwrap();
    let got = s.prefill(&r.ids["input_ids"], LogitsMode::All).unwrap();
    assert!(max_abs_diff(&got, &r.f32("prefill_logits").1) < 1e-3);
    // Every tensor counts as the text model's in both layouts.
    let est = |dir: &std::path::Path| Model::estimate_memory(dir, None).unwrap().weight_bytes;
    let all = std::fs::metadata(&file).unwrap().len() as usize - 8 - h.len();
    assert_eq!(est(tmp.path()), all);
    assert_eq!(est(&src), all);
}
