//! Qwen3.5-MoE's gated DeltaNet layers: what each layer's cache holds (bytes per token for the full
//! attention layers, a fixed state for the linear ones, constant whatever the context), the estimate
//! agreeing with a live session, chunked prefill carrying the convolution and recurrent state across
//! calls, a truncation that would need a rewound state refused (changing nothing), and the multimodal
//! wrapper's vision tower left out of the weights.

mod common;

use std::sync::Arc;

use common::{max_abs_diff, own_fixtures, Reference};
use moe_core::config::TokenMixer;
use moe_core::{LogitsMode, Model, Session, SessionParams};

fn load(name: &str) -> (Arc<Model>, Reference) {
    let dir = own_fixtures().join(name);
    (
        Arc::new(common::load_exact(&dir).unwrap()),
        Reference::load(&dir.join("reference.safetensors")),
    )
}

#[test]
fn each_layer_states_its_cache_bytes() {
    let (model, r) = load("qwen3_5_moe");
    let cfg = model.config();
    let mixers: Vec<TokenMixer> = cfg.layers.iter().map(|l| l.mixer).collect();
    use TokenMixer::{Attention as Full, GatedDeltaNet as Linear};
    assert_eq!(mixers, [Linear, Full, Linear, Full]);
    // Full attention layers: K and V, 2 kv heads × head_dim 32, f32: 2·2·32·4 = 512 bytes per token.
    // Linear layers: (conv kernel 4 − 1) × conv_dim (2·2·16 + 4·8 = 96) + 4 value heads × [16, 8]
    // state = 288 + 512 = 800 f32 = 3200 bytes, fixed.
    assert_eq!(model.kv_cache_bytes_per_token(), 2 * 512);
    assert_eq!(model.kv_cache_fixed_bytes(), 2 * 3200);

    let mut s = Session::new(model.clone(), &SessionParams::default()).unwrap();
    assert_eq!(s.kv_cache_bytes(), 0);
    let prompt = &r.ids["input_ids"];
    s.prefill(prompt, LogitsMode::None).unwrap();
    assert_eq!(s.kv_cache_bytes(), prompt.len() * 1024 + 6400);
    for (i, &id) in r.ids["decode_ids"].iter().enumerate() {
        s.decode(id).unwrap();
        // The linear layers' share stays 6400 bytes: only the full-attention layers grow.
        assert_eq!(s.kv_cache_bytes(), (prompt.len() + i + 1) * 1024 + 6400);
    }

    let dir = own_fixtures().join("qwen3_5_moe");
    let est = Model::estimate_memory(&dir, Some(1000)).unwrap();
    assert_eq!(est.kv_cache_bytes_per_token, 1024);
    assert_eq!(est.kv_cache_fixed_bytes, 6400);
    assert_eq!(est.kv_cache_bytes, 1000 * 1024 + 6400);
    // Other families hold no fixed state.
    let qwen3 = common::load_exact(own_fixtures().join("qwen3_moe")).unwrap();
    assert_eq!(qwen3.kv_cache_fixed_bytes(), 0);
}

#[test]
fn chunked_prefill_and_decode_carry_the_state() {
    let (model, r) = load("qwen3_5_moe");
    let prompt = &r.ids["input_ids"];
    let v = model.vocab_size();
    let mut one = Session::new(model.clone(), &SessionParams::default()).unwrap();
    let whole = one.prefill(prompt, LogitsMode::All).unwrap();
    // Chunks of 7 (not a multiple of the conv kernel) and single tokens continue the same state.
    let mut chunked = Session::new(model.clone(), &SessionParams::default()).unwrap();
    let parts = chunked
        .prefill_with_progress(prompt, LogitsMode::All, 7, &mut |_, _| true)
        .unwrap();
    let d = max_abs_diff(&whole, &parts);
    assert!(d < 1e-4, "chunked prefill differs by {d}");
    let mut stepwise = Session::new(model, &SessionParams::default()).unwrap();
    let mut last = vec![];
    for &id in prompt.iter() {
        last = stepwise.decode(id).unwrap();
    }
    let d = max_abs_diff(&last, &whole[(prompt.len() - 1) * v..]);
    assert!(d < 1e-4, "token-by-token prefill differs by {d}");
}

#[test]
fn truncation_needing_a_rewound_state_is_refused() {
    let (model, r) = load("qwen3_5_moe");
    let prompt = &r.ids["input_ids"];
    let decode_ids = &r.ids["decode_ids"];
    let want = &r.f32("decode_logits").1;
    let v = model.vocab_size();
    let mut s = Session::new(model, &SessionParams::default()).unwrap();
    s.prefill(prompt, LogitsMode::None).unwrap();
    let err = s.truncate(prompt.len() - 3).unwrap_err();
    assert!(err.to_string().contains("cannot be rewound"), "{err}");
    // Nothing changed: decoding continues as the reference.
    assert_eq!(s.len(), prompt.len());
    let got = s.decode(decode_ids[0]).unwrap();
    assert!(max_abs_diff(&got, &want[..v]) < 1e-3);
    // Truncating to nothing is a reset, and the same prompt gives the same continuation.
    s.truncate(0).unwrap();
    assert_eq!((s.len(), s.kv_cache_bytes()), (0, 0));
    s.prefill(prompt, LogitsMode::None).unwrap();
    let got = s.decode(decode_ids[0]).unwrap();
    assert!(max_abs_diff(&got, &want[..v]) < 1e-3);
}

#[test]
fn wrapper_reads_text_config_and_skips_the_vision_tower() {
    let (text, _) = load("qwen3_5_moe");
    let (wrapped, _) = load("qwen3_5_moe_wrapped");
    let cfg = wrapped.config();
    assert_eq!(cfg.architecture, "Qwen3_5MoeForConditionalGeneration");
    assert_eq!(cfg.body_prefix, "model.language_model.");
    assert_eq!(cfg.weight_prefix, "");
    // The wrapper gives no layer_types: full_attention_interval 2 derives the same layers.
    assert_eq!(cfg.layers, text.config().layers);
    assert_eq!(cfg.linear_attention, text.config().linear_attention);
    let est = |name: &str| Model::estimate_memory(own_fixtures().join(name), None).unwrap();
    // Same text weights; the vision tower's tensors are in the file but not counted.
    assert_eq!(
        est("qwen3_5_moe").weight_bytes,
        est("qwen3_5_moe_wrapped").weight_bytes
    );
    assert!(wrapped.checkpoint_bytes() > text.checkpoint_bytes());
}
