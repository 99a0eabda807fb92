//! Tokenizer and chat-template loading: `Tokenizer::from_file` on a file written from the input,
//! then `set_chat_template` with template text from the input and `apply_chat_template` over
//! messages from the input; a tokenizer that loads also encodes and decodes some of the text.
//!
//! Input: sections joined by `moe_fuzz::SEPARATOR`: `tokenizer.json`, the chat template, then
//! message texts (roles alternate user / assistant; a section starting with `system:` is a system
//! message).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use moe_core::{ChatMessage, Tokenizer};
use moe_fuzz::{let_caught_dependency_panics_unwind, split_sections, Scratch};

static SCRATCH: OnceLock<Scratch> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let_caught_dependency_panics_unwind();
    let scratch = SCRATCH.get_or_init(|| Scratch::new("tokenizer"));
    let sections = split_sections(data);
    let path = scratch.write("tokenizer.json", sections[0], 0);
    let Ok(mut tok) = Tokenizer::from_file(&path) else {
        return;
    };
    let text = |i: usize| {
        sections
            .get(i)
            .map(|s| String::from_utf8_lossy(s).into_owned())
    };
    let messages: Vec<ChatMessage> = (2..sections.len().min(8))
        .map(|i| {
            let t = text(i).unwrap_or_default();
            match t.strip_prefix("system:") {
                Some(rest) => ChatMessage::new("system", rest),
                None => ChatMessage::new(if i % 2 == 0 { "user" } else { "assistant" }, t),
            }
        })
        .collect();
    if let Ok(ids) = tok.encode(&text(2).unwrap_or_default(), true) {
        let _ = tok.decode(&ids, false);
    }
    // Ids past the vocabulary are a typed error.
    let past = u32::try_from(tok.vocab_size()).unwrap_or(u32::MAX);
    assert!(tok.decode(&[past], true).is_err() || past == u32::MAX);
    if let Some(template) = text(1) {
        if tok.set_chat_template(&template).is_ok() {
            assert!(tok.has_chat_template());
            for add_generation_prompt in [false, true] {
                let _ = tok.apply_chat_template(&messages, add_generation_prompt);
            }
        }
    }
});
