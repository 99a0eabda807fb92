//! Text in, text out: the shipped demo model, UTF-8-safe streaming, chat templates, stop strings.

mod common;

use std::sync::Arc;

use common::{max_abs_diff, repo_root, Reference};
use moe_core::{ChatMessage, StreamDecoder, TextGenerator, TextOptions, Tokenizer};
use moe_core::{GenerateOptions, LogitsMode, Model, Session, SessionParams};

fn demo() -> Arc<Model> {
    Arc::new(common::load_exact(repo_root().join("models/tiny-deepseek-pycode")).unwrap())
}

#[test]
fn demo_model_matches_its_reference_logits() {
    let model = demo();
    let r = Reference::load(&repo_root().join("models/tiny-deepseek-pycode/reference.safetensors"));
    let v = model.vocab_size();
    let prompt = &r.ids["input_ids"];
    let tok = model.tokenizer().expect("demo model ships a tokenizer");
    assert_eq!(
        &tok.encode("def fibonacci(n):\n    ", true).unwrap(),
        prompt
    );
    let mut s = Session::new(model.clone(), &SessionParams::default()).unwrap();
    let got = s.prefill(prompt, LogitsMode::All).unwrap();
    assert!(max_abs_diff(&got, &r.f32("prefill_logits").1) < 1e-3);
    let want = &r.f32("decode_logits").1;
    for (i, &id) in r.ids["decode_ids"].iter().enumerate() {
        let got = s.decode(id).unwrap();
        assert!(
            max_abs_diff(&got, &want[i * v..(i + 1) * v]) < 1e-3,
            "decode step {i}"
        );
    }
}

#[test]
fn demo_model_greedy_continuation_decodes_to_the_documented_text() {
    let model = demo();
    let tok = model.tokenizer().unwrap().clone();
    let ids = tok.encode("def fibonacci(n):\n    ", true).unwrap();
    let opts = TextOptions::new(GenerateOptions::new(16).with_stop_tokens(model.eos_token_ids()));
    let session = Session::new(model, &SessionParams::default()).unwrap();
    let text: String = TextGenerator::new(session, tok, &ids, opts)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(text, " z = z.zip.Z == zipfile.ZipFile");
}

#[test]
fn streaming_never_emits_broken_utf8_and_concatenates_to_the_whole() {
    let model = demo();
    let tok = model.tokenizer().unwrap().clone();
    let text = "naïve café — 日本語 ✓ 🐍 done\n\tx = 'ü'";
    let ids = tok.encode(text, false).unwrap();
    assert!(ids.len() > 10);
    let mut dec = StreamDecoder::new(tok.clone(), false);
    let mut pieces = vec![];
    for &id in &ids {
        if let Some(p) = dec.push(id).unwrap() {
            pieces.push(p);
        }
    }
    pieces.extend(dec.flush().unwrap());
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
    assert_eq!(pieces.concat(), tok.decode(&ids, false).unwrap());
    assert_eq!(pieces.concat(), text);
    // Byte-level BPE splits the emoji over several tokens: some pushes must have produced nothing.
    assert!(pieces.len() < ids.len());
}

#[test]
fn stop_strings_end_generation_before_the_match() {
    let model = demo();
    let tok = model.tokenizer().unwrap().clone();
    let ids = tok.encode("import os\n\n\ndef ", true).unwrap();
    let run = |stop: Vec<String>| -> String {
        let opts = TextOptions::new(GenerateOptions::new(40))
            .with_stop_strings(stop)
            .with_skip_special_tokens(true);
        let session = Session::new(model.clone(), &SessionParams::default()).unwrap();
        TextGenerator::new(session, tok.clone(), &ids, opts)
            .unwrap()
            .collect::<Result<String, _>>()
            .unwrap()
    };
    let full = run(vec![]);
    let cut = full.find('(').expect("the greedy text has a parenthesis");
    let stopped = run(vec!["(".into()]);
    assert_eq!(stopped, full[..cut]);
}

#[test]
fn chat_template_renders_like_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let demo = repo_root().join("models/tiny-deepseek-pycode");
    std::fs::copy(
        demo.join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    let template = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] | trim }}{{ eos_token }}\n{% endfor %}\
{% if add_generation_prompt %}<|assistant|>{% endif %}";
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        serde_json::json!({"eos_token": "<|endoftext|>", "chat_template": template}).to_string(),
    )
    .unwrap();
    let tok = Tokenizer::from_dir(dir.path()).unwrap().unwrap();
    assert!(tok.has_chat_template());
    let msgs = [
        ChatMessage::new("system", "Be brief. "),
        ChatMessage::new("user", "Hi"),
    ];
    assert_eq!(
        tok.apply_chat_template(&msgs, true).unwrap(),
        "<|system|>Be brief.<|endoftext|>\n<|user|>Hi<|endoftext|>\n<|assistant|>"
    );
    assert_eq!(
        tok.apply_chat_template(&msgs, false).unwrap(),
        "<|system|>Be brief.<|endoftext|>\n<|user|>Hi<|endoftext|>\n"
    );
    // Python string methods and raise_exception, as HF templates use them.
    let mut t2 = Tokenizer::from_dir(dir.path()).unwrap().unwrap();
    t2.set_chat_template("{% if messages[0]['role'] != 'user' %}{{ raise_exception('first must be user') }}{% endif %}{{ messages[0]['content'].upper() }}").unwrap();
    assert_eq!(
        t2.apply_chat_template(&[ChatMessage::new("user", "hi")], false)
            .unwrap(),
        "HI"
    );
    let e = t2.apply_chat_template(&msgs, false).unwrap_err();
    assert!(e.to_string().contains("first must be user"), "{e}");
    // No template: a typed error.
    let plain = Tokenizer::from_file(&demo.join("tokenizer.json")).unwrap();
    assert!(plain.apply_chat_template(&msgs, true).is_err());
}
