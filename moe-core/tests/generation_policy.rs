//! One generation policy for every binding: `TextOptions::for_model` / `GenerateOptions::for_model`
//! and `Tokenizer::encode_chat` reproduce `fixtures/generation_policy/expected.json`, which the C and
//! Python tests reproduce too (same ids, text and finish reason for the same seed, templated chat
//! included).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use moe_core::{
    ChatMessage, ComputeOptions, FinishReason, GenerateOptions, Generator, LoadOptions, Model,
    Precision, SamplerParams, Session, SessionParams, TextGenerator, TextOptions,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The demo model with the policy fixture's chat template, in a temporary folder.
fn templated_demo() -> (tempfile::TempDir, Arc<Model>) {
    let tmp = tempfile::tempdir().unwrap();
    let demo = repo().join("models/tiny-deepseek-pycode");
    for f in [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
    ] {
        std::fs::copy(demo.join(f), tmp.path().join(f)).unwrap();
    }
    let template =
        std::fs::read_to_string(repo().join("fixtures/generation_policy/chat_template.jinja"))
            .unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(demo.join("tokenizer_config.json")).unwrap())
            .unwrap();
    cfg["bos_token"] = "<|endoftext|>".into();
    cfg["chat_template"] = template.into();
    std::fs::write(tmp.path().join("tokenizer_config.json"), cfg.to_string()).unwrap();
    // The exact mode: the expectation was computed with f32 activations, and sampling turns the
    // smallest change of a logit into other tokens.
    let exact = LoadOptions::default().with_compute(ComputeOptions::new(None, Precision::F32));
    let model = Arc::new(Model::load_with(tmp.path(), exact).unwrap());
    (tmp, model)
}

/// The sampling every sampled case uses.
fn sampled() -> SamplerParams {
    SamplerParams::default()
        .with_temperature(0.8)
        .with_top_k(40)
        .with_top_p(0.95)
        .with_seed(7)
}

/// Runs one case: prompt ids, generated ids, text, finish reason.
fn run(model: &Arc<Model>, prompt: &[u32], opts: TextOptions) -> serde_json::Value {
    let tok = model.tokenizer().unwrap().clone();
    // Ids through the token generator, text through the text generator: both must agree.
    let session = Session::new(model.clone(), &SessionParams::default()).unwrap();
    let mut ids = Generator::new(session, prompt, opts.generate.clone()).unwrap();
    let generated: Vec<u32> = ids.by_ref().collect::<Result<_, _>>().unwrap();
    let session = Session::new(model.clone(), &SessionParams::default()).unwrap();
    let mut text = TextGenerator::new(session, tok, prompt, opts).unwrap();
    let pieces: String = text.by_ref().collect::<Result<_, _>>().unwrap();
    let reason = text.finish_reason().unwrap().clone();
    if !matches!(reason, FinishReason::Stop { .. }) {
        assert_eq!(ids.finish_reason(), Some(&reason));
    }
    serde_json::json!({
        "prompt_ids": prompt,
        "generated_ids": generated,
        "text": pieces,
        "finish_reason": reason.as_str(),
        "stop_string": match &reason {
            FinishReason::Stop { string } => Some(string.clone()),
            _ => None,
        },
    })
}

fn computed() -> serde_json::Value {
    let (_tmp, model) = templated_demo();
    let tok = model.tokenizer().unwrap().clone();
    let prompt = tok.encode("def fibonacci(n):\n    ", true).unwrap();

    let mut text = TextOptions::for_model(&model);
    text.generate.sampler = sampled();
    text.generate.max_new_tokens = 24;

    let messages = [
        ChatMessage::new("system", "You write Python."),
        ChatMessage::new("user", "A queue class, please."),
    ];
    let chat_ids = tok.encode_chat(&messages, true).unwrap();

    let mut stopped = text.clone();
    stopped.stop_strings = vec!["never there".into(), "dictionary".into()];

    serde_json::json!({
        "sampled_text": run(&model, &prompt, text.clone()),
        "sampled_chat": run(&model, &chat_ids, text),
        "defaults": run(&model, &prompt, TextOptions::for_model(&model)),
        "stop_strings": run(&model, &prompt, stopped),
    })
}

#[test]
fn the_policy_reproduces_the_shared_expectation() {
    let got = computed();
    let path = repo().join("fixtures/generation_policy/expected.json");
    let want: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or(serde_json::Value::Null);
    assert!(
        got == want,
        "{} differs; this run computed:\n{}",
        path.display(),
        serde_json::to_string_pretty(&got).unwrap()
    );
}

#[test]
fn for_model_applies_generation_config_and_end_of_sequence() {
    let (_tmp, model) = templated_demo();
    let g = GenerateOptions::for_model(&model);
    assert_eq!(g.stop_tokens, model.eos_token_ids());
    assert!(!g.stop_tokens.is_empty());
    assert_eq!(
        g.max_new_tokens,
        model
            .generation_config()
            .max_new_tokens
            .unwrap_or(moe_core::DEFAULT_MAX_NEW_TOKENS)
    );
    assert_eq!(g.sampler, model.generation_config().sampler_defaults());
    let t = TextOptions::for_model(&model);
    assert!(t.skip_special_tokens && t.stop_strings.is_empty());
    // The chat policy: the template writes BOS itself, so encoding adds none (no doubled BOS).
    let tok = model.tokenizer().unwrap();
    let ids = tok
        .encode_chat(&[ChatMessage::new("user", "hi")], true)
        .unwrap();
    let bos = tok.token_to_id("<|endoftext|>").unwrap();
    assert_eq!(ids[0], bos);
    assert_ne!(ids[1], bos);
}

#[test]
fn a_full_context_ends_generation_with_context() {
    let (_tmp, model) = templated_demo();
    let params = SessionParams::default().with_max_context(Some(6));
    let session = Session::new(model.clone(), &params).unwrap();
    let opts = GenerateOptions::new(100);
    let mut g = Generator::new(session, &[5, 6, 7], opts).unwrap();
    let ids: Vec<u32> = g.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(ids.len(), 3, "three tokens fit after the prompt");
    assert_eq!(g.finish_reason(), Some(&FinishReason::Context));
    assert_eq!(
        g.session().len(),
        6,
        "every yielded token is in the session"
    );
    let mut g = Generator::new(
        Session::new(model, &SessionParams::default()).unwrap(),
        &[5],
        GenerateOptions::new(3),
    )
    .unwrap();
    assert!(g.next_token().unwrap().is_some());
    g.stop();
    assert_eq!(g.finish_reason(), Some(&FinishReason::Cancelled));
}
