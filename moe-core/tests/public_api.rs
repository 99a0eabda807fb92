//! Every public entry point of the sealed API, called with bad arguments: each answers a typed error
//! (or a documented neutral value), never a panic. Loading and session errors on real files are
//! covered in more depth by `bad_input.rs`.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::own_fixtures;
use moe_core::{
    argmax, ChatMessage, ComputeOptions, Error, Family, GenerateOptions, GenerationConfig,
    Generator, KvDType, LoadOptions, LogitsMode, Model, ModelConfig, Precision, Sampler,
    SamplerParams, Session, SessionParams, StopMatcher, StreamDecoder, TextGenerator, TextOptions,
    Tokenizer,
};

fn demo_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tiny-deepseek-pycode")
}

fn mixtral() -> Arc<Model> {
    Arc::new(Model::load(own_fixtures().join("mixtral")).unwrap())
}

#[test]
fn model_load_and_load_with() {
    assert!(matches!(
        Model::load("/nonexistent/moe-model"),
        Err(Error::NotFound(_))
    ));
    let file = own_fixtures().join("mixtral/config.json");
    assert!(matches!(Model::load(&file), Err(Error::NotFound(_))));
    let opts = LoadOptions::default().with_compute(ComputeOptions::new(Some(0), Precision::F32));
    assert!(matches!(
        Model::load_with(own_fixtures().join("mixtral"), opts),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn model_set_compute() {
    let mut m = Model::load(own_fixtures().join("mixtral")).unwrap();
    // The library's default: bf16 activations for bf16 weights; the exact mode is one option away.
    assert_eq!(m.precision(), Precision::Bf16);
    assert_eq!(Precision::default(), Precision::Bf16);
    assert_eq!(ComputeOptions::default().precision, Precision::Bf16);
    for bad in [0, 1 << 20, usize::MAX] {
        let e = m.set_compute(ComputeOptions::new(Some(bad), Precision::Bf16));
        assert!(matches!(e, Err(Error::InvalidArgument(_))), "{bad}");
    }
    // A failed call keeps the model usable.
    m.set_compute(ComputeOptions::new(Some(1), Precision::F32))
        .unwrap();
    assert_eq!(m.threads(), 1);
    assert_eq!(m.precision(), Precision::F32);
}

#[test]
fn model_config_from_json_str() {
    let p = Path::new("config.json");
    for bad in [
        "",
        "not json",
        "[1, 2]",
        "{}",
        r#"{"model_type": "no_such_family"}"#,
        r#"{"model_type": "mixtral"}"#,
        r#"{"model_type": "mixtral", "vocab_size": -1, "hidden_size": 8, "num_hidden_layers": 1}"#,
        r#"{"model_type": "mixtral", "vocab_size": "8", "hidden_size": 8, "num_hidden_layers": 1}"#,
        r#"{"model_type": "mixtral", "vocab_size": 8, "hidden_size": 8, "num_hidden_layers": 0,
            "num_attention_heads": 2, "num_experts_per_tok": 1, "num_local_experts": 2}"#,
    ] {
        let e = ModelConfig::from_json_str(bad, p).expect_err(bad);
        assert!(
            matches!(
                e,
                Error::Config { .. }
                    | Error::InconsistentConfig(_)
                    | Error::UnsupportedArchitecture(_)
            ),
            "{bad}: {e:?}"
        );
    }
}

#[test]
fn model_config_load() {
    assert!(matches!(
        ModelConfig::load(Path::new("/nonexistent")),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn family_detect_and_from_model_type() {
    assert!(matches!(
        Family::detect(None, &[]),
        Err(Error::UnsupportedArchitecture(_))
    ));
    assert!(matches!(
        Family::detect(Some("nope"), &["NopeForCausalLM"]),
        Err(Error::UnsupportedArchitecture(n)) if n == "nope"
    ));
    assert_eq!(Family::from_model_type(""), None);
    assert_eq!(
        Family::detect(None, &["MixtralForCausalLM"]).unwrap(),
        Family::Mixtral
    );
}

#[test]
fn generation_config_load() {
    let tmp = tempfile::tempdir().unwrap();
    // Absent: empty defaults.
    assert_eq!(
        GenerationConfig::load(tmp.path()).unwrap(),
        GenerationConfig::default()
    );
    std::fs::write(tmp.path().join("generation_config.json"), "{oops").unwrap();
    assert!(matches!(
        GenerationConfig::load(tmp.path()),
        Err(Error::Config { .. })
    ));
}

#[test]
fn session_new() {
    let m = mixtral();
    let e = Session::new(m, &SessionParams::default().with_max_context(Some(0)));
    assert!(matches!(e, Err(Error::InvalidArgument(_))));
}

#[test]
fn session_prefill_prefill_with_hook_and_decode() {
    let m = mixtral();
    let v = m.vocab_size() as u32;
    let mut s = Session::new(m, &SessionParams::default().with_max_context(Some(4))).unwrap();
    assert!(matches!(
        s.prefill(&[], LogitsMode::Last),
        Err(Error::EmptyPrompt)
    ));
    assert!(matches!(
        s.prefill(&[1, v], LogitsMode::All),
        Err(Error::TokenOutOfRange { token, .. }) if token == v
    ));
    assert!(matches!(
        s.prefill_with_hook(&[u32::MAX], LogitsMode::None, &mut |_, _| {}),
        Err(Error::TokenOutOfRange { .. })
    ));
    assert!(matches!(s.decode(v), Err(Error::TokenOutOfRange { .. })));
    assert!(matches!(
        s.prefill(&[1; 5], LogitsMode::Last),
        Err(Error::ContextFull { .. })
    ));
    // Nothing was consumed by the failures.
    assert_eq!(s.len(), 0);
    s.prefill(&[1, 2], LogitsMode::Last).unwrap();
    assert_eq!(s.len(), 2);
}

#[test]
fn session_truncate_and_reset() {
    let m = mixtral();
    let mut s = Session::new(m, &SessionParams::default()).unwrap();
    s.prefill(&[1, 2, 3], LogitsMode::None).unwrap();
    // Past the end is a no-op, not an error.
    s.truncate(usize::MAX).unwrap();
    assert_eq!(s.len(), 3);
    s.truncate(0).unwrap();
    assert!(s.is_empty());
    s.reset();
    assert_eq!(s.kv_cache_bytes(), 0);
}

#[test]
fn session_fork_snapshot_restore_and_kv_dtype() {
    let model = mixtral();
    // Forking an empty session, snapshots of nothing, garbage bytes and files.
    let mut empty = Session::new(model.clone(), &SessionParams::default()).unwrap();
    let mut f = empty.fork();
    assert_eq!(
        (f.len(), f.kv_cache_bytes(), f.kv_cache_shared_bytes()),
        (0, 0, 0)
    );
    assert!(f.decode(1).is_ok());
    let back = Session::restore(model.clone(), &empty.snapshot()).unwrap();
    assert!(back.is_empty());
    for garbage in [&b""[..], b"MOESNAP", b"not a snapshot at all", &[0xff; 100]] {
        assert!(matches!(
            Session::restore(model.clone(), garbage),
            Err(Error::SnapshotTruncated { .. } | Error::SnapshotCorrupt(_))
        ));
    }
    assert!(matches!(
        Session::restore_file(model.clone(), "/nonexistent/moe.snap"),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        Session::restore_file(model.clone(), own_fixtures()),
        Err(Error::Io { .. } | Error::SnapshotTruncated { .. })
    ));
    assert!(empty.save("/nonexistent/dir/moe.snap").is_err());
    // Cache precision names.
    for d in KvDType::ALL {
        assert_eq!(KvDType::parse(d.name()).unwrap(), d);
    }
    assert!(matches!(
        KvDType::parse("fp8"),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(KvDType::default(), KvDType::F32);
}

#[test]
fn sampler_new_and_validate() {
    let base = SamplerParams::default();
    for bad in [
        base.clone().with_temperature(f32::NAN),
        base.clone().with_temperature(-1.0),
        base.clone().with_temperature(f32::INFINITY),
        base.clone().with_top_p(0.0),
        base.clone().with_top_p(1.5),
        base.clone().with_min_p(-0.1),
        base.clone().with_repetition_penalty(0.0),
        base.clone().with_repetition_penalty(f32::NAN),
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
        assert!(
            matches!(Sampler::new(bad.clone()), Err(Error::InvalidArgument(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn sampler_sample() {
    let mut greedy = Sampler::new(SamplerParams::default()).unwrap();
    assert!(matches!(
        greedy.sample(&[], &[]),
        Err(Error::InvalidArgument(_))
    ));
    let p = SamplerParams::default()
        .with_temperature(0.7)
        .with_top_k(2)
        .with_repetition_penalty(1.3);
    let mut s = Sampler::new(p).unwrap();
    // Out-of-range history ids are ignored; non-finite logits still give an id in range.
    let t = s.sample(&[0.5, 1.0, 0.1], &[u32::MAX, 7, 1]).unwrap();
    assert!(t < 3);
    for logits in [
        vec![f32::NAN; 4],
        vec![f32::NEG_INFINITY; 4],
        vec![f32::INFINITY, 0.0, f32::NAN, 1.0],
    ] {
        assert!(s.sample(&logits, &[]).unwrap() < 4, "{logits:?}");
        assert!(greedy.sample(&logits, &[]).unwrap() < 4, "{logits:?}");
    }
}

#[test]
fn argmax_of_nothing_is_zero() {
    assert_eq!(argmax(&[]), 0);
    assert_eq!(argmax(&[f32::NAN, 1.0]), 0);
}

#[test]
fn generator_new_and_next_token() {
    let m = mixtral();
    let v = m.vocab_size() as u32;
    let s = || Session::new(m.clone(), &SessionParams::default()).unwrap();
    assert!(matches!(
        Generator::new(s(), &[], GenerateOptions::new(2)).err(),
        Some(Error::EmptyPrompt)
    ));
    assert!(matches!(
        Generator::new(s(), &[v], GenerateOptions::new(2)).err(),
        Some(Error::TokenOutOfRange { .. })
    ));
    let bad_sampler =
        GenerateOptions::new(2).with_sampler(SamplerParams::default().with_top_p(2.0));
    assert!(matches!(
        Generator::new(s(), &[1], bad_sampler).err(),
        Some(Error::InvalidArgument(_))
    ));
    // Zero new tokens ends at once; asking again after the end keeps answering `None`.
    let mut g = Generator::new(s(), &[1], GenerateOptions::new(0)).unwrap();
    while g.next_token().unwrap().is_some() {}
    assert_eq!(g.next_token().unwrap(), None);
}

#[test]
fn tokenizer_from_dir_and_from_file() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(Tokenizer::from_dir(tmp.path()).unwrap().is_none());
    std::fs::write(tmp.path().join("tokenizer.json"), b"\x00\xffgarbage").unwrap();
    assert!(matches!(
        Tokenizer::from_dir(tmp.path()),
        Err(Error::Tokenizer(_))
    ));
    assert!(Tokenizer::from_file(&tmp.path().join("tokenizer.json")).is_err());
    assert!(Tokenizer::from_file(&tmp.path().join("absent.json")).is_err());
}

#[test]
fn tokenizer_decode_template_and_chat() {
    let mut tok = Tokenizer::from_dir(&demo_dir()).unwrap().unwrap();
    // Ids beyond the vocabulary are an error or skipped, never a panic.
    let _ = tok.decode(&[u32::MAX, 0, 5], false);
    assert!(matches!(
        tok.set_chat_template("{% for %}"),
        Err(Error::Tokenizer(_))
    ));
    tok.set_chat_template("{{ raise_exception('no system role') }}")
        .unwrap();
    let msgs = [ChatMessage::new("system", "hi")];
    assert!(matches!(
        tok.apply_chat_template(&msgs, true),
        Err(Error::Tokenizer(_))
    ));
}

#[test]
fn stream_decoder_push_and_stop_matcher() {
    let tok = Arc::new(Tokenizer::from_dir(&demo_dir()).unwrap().unwrap());
    let mut d = StreamDecoder::new(tok, true);
    let _ = d.push(u32::MAX);
    let _ = d.flush();
    // Empty stop strings are ignored rather than stopping at once.
    let mut stops = StopMatcher::new(vec![String::new()]);
    assert_eq!(stops.push("abc"), ("abc".to_string(), false));
}

#[test]
fn text_generator_new() {
    let m = Arc::new(Model::load(demo_dir()).unwrap());
    let tok = m.tokenizer().unwrap().clone();
    let s = Session::new(m.clone(), &SessionParams::default()).unwrap();
    assert!(matches!(
        TextGenerator::new(s, tok.clone(), &[], TextOptions::default()).err(),
        Some(Error::EmptyPrompt)
    ));
    let s = Session::new(m.clone(), &SessionParams::default()).unwrap();
    let v = m.vocab_size() as u32;
    assert!(matches!(
        TextGenerator::new(s, tok, &[v], TextOptions::default()).err(),
        Some(Error::TokenOutOfRange { .. })
    ));
}

#[test]
fn raw_forward_checks_its_preconditions() {
    use moe_core::internals::{forward, new_cache, KvCache};
    use moe_core::SparseMode;
    let (a, b) = (mixtral(), mixtral());
    let v = a.vocab_size() as u32;
    let run = |ids: &[u32], start, cache: &mut _| {
        forward(&a, ids, start, cache, LogitsMode::Last, SparseMode::Sparse)
    };
    let mut own = new_cache(&a);
    assert!(matches!(run(&[], 0, &mut own), Err(Error::EmptyPrompt)));
    assert!(matches!(
        run(&[v], 0, &mut own),
        Err(Error::TokenOutOfRange { .. })
    ));
    assert!(matches!(
        run(&[1], 3, &mut own),
        Err(Error::InvalidArgument(_))
    ));
    // A cache built by another model (even of the same checkpoint) is refused.
    let mut foreign = new_cache(&b);
    assert!(matches!(
        run(&[1], 0, &mut foreign),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(own.len() + foreign.len(), 0);
    assert_eq!(run(&[1, 2], 0, &mut own).unwrap().len(), v as usize);
    assert_eq!(own.len(), 2);
}

#[test]
fn copied_weights_give_the_mapped_logits_and_survive_the_file_changing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = own_fixtures().join("qwen3_moe");
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    let mapped = Arc::new(Model::load(tmp.path()).unwrap());
    let copied = Arc::new(
        Model::load_with(tmp.path(), LoadOptions::default().with_copied_weights(true)).unwrap(),
    );
    let run = |m: &Arc<Model>| {
        let mut s = Session::new(m.clone(), &SessionParams::default()).unwrap();
        s.prefill(&[1, 2, 3, 4], LogitsMode::All).unwrap()
    };
    let want = run(&mapped);
    drop(mapped);
    assert_eq!(run(&copied), want);
    // The copy does not depend on the file any more: truncate it and compute again.
    std::fs::write(tmp.path().join("model.safetensors"), b"").unwrap();
    assert_eq!(run(&copied), want);
}

#[test]
fn session_max_context_beyond_the_address_space_is_refused() {
    let m = mixtral();
    let per_token = m.kv_cache_bytes_per_token();
    // Mixtral fixture: 3 layers of K and V rows [num_kv_heads·head_dim] in f32.
    let cfg = m.config();
    let moe_core::config::AttentionConfig::Gqa(g) = &cfg.attention else {
        panic!("mixtral is GQA")
    };
    assert_eq!(
        per_token,
        cfg.num_layers * 2 * g.num_kv_heads * g.head_dim * 4
    );
    for huge in [usize::MAX, usize::MAX / per_token + 1] {
        let e = Session::new(
            m.clone(),
            &SessionParams::default().with_max_context(Some(huge)),
        );
        assert!(matches!(e, Err(Error::InvalidArgument(_))), "{huge}");
    }
    // A long but addressable context is fine: caches grow only as tokens arrive.
    let s = Session::new(m, &SessionParams::default().with_max_context(Some(1 << 30))).unwrap();
    assert_eq!(s.kv_cache_bytes(), 0);
}

#[test]
fn sampling_many_nan_logits_never_panics() {
    // Found by fuzzing: a sort over NaN logits used an inconsistent order, which the standard sort
    // rejects with a panic on longer slices.
    let logits: Vec<f32> = (0..300)
        .map(|i| {
            if i % 2 == 0 {
                f32::NAN
            } else {
                i as f32 / 100.0
            }
        })
        .collect();
    for p in [
        SamplerParams::default(),
        SamplerParams::default().with_temperature(0.9),
        SamplerParams::default()
            .with_temperature(0.9)
            .with_top_k(50)
            .with_top_p(0.8)
            .with_min_p(0.05)
            .with_repetition_penalty(1.2),
    ] {
        let mut s = Sampler::new(p).unwrap();
        for _ in 0..20 {
            let t = s.sample(&logits, &[1, 2, 3]).unwrap();
            assert!((t as usize) < logits.len());
        }
    }
}

#[test]
fn a_truncated_tokenizer_json_is_a_tokenizer_error() {
    // Found by fuzzing: the tokenizers crate panics on this prefix of a file.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tokenizer.json");
    std::fs::write(&path, br#"{"decoder":"#).unwrap();
    assert!(matches!(
        Tokenizer::from_file(&path),
        Err(Error::Tokenizer(_))
    ));
    assert!(matches!(
        Tokenizer::from_dir(tmp.path()),
        Err(Error::Tokenizer(_))
    ));
}

#[test]
fn session_prefill_batch_and_decode_batch() {
    let m = mixtral();
    let mut a = Session::new(m.clone(), &SessionParams::default()).unwrap();
    let mut b = Session::new(mixtral(), &SessionParams::default()).unwrap();
    assert!(matches!(
        Session::decode_batch(&mut [], &[]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Session::decode_batch(&mut [&mut a], &[]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Session::decode_batch(&mut [&mut a], &[u32::MAX]),
        Err(Error::TokenOutOfRange { .. })
    ));
    assert!(matches!(
        Session::prefill_batch(&mut [&mut a], &[&[]], LogitsMode::All),
        Err(Error::EmptyPrompt)
    ));
    assert!(matches!(
        Session::decode_batch(&mut [&mut a, &mut b], &[1, 1]),
        Err(Error::MixedModels { index: 1 })
    ));
    assert_eq!(a.len() + b.len(), 0);
}
