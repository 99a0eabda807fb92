//! Checkpoint directory loading: config.json, generation_config.json, an optional
//! model.safetensors.index.json and safetensors shards, all from one input, written to a scratch
//! directory and loaded both mapped and copied. A checkpoint that loads also runs one prefill and one
//! decode step, so shapes the loader accepts are shapes the forward can use.
//!
//! Input: sections joined by `moe_fuzz::SEPARATOR`:
//! `config.json`, `model.safetensors.index.json` (absent when empty), `generation_config.json`
//! (absent when empty), then each shard as `<file name>\n<u32 LE zero padding><bytes>`: the file
//! holds the bytes followed by `padding % 1 MiB` zero bytes (the tensor data, which the loader does
//! not interpret, so the input stays small). `fuzz/seeds.py` builds such inputs from `fixtures/`.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use moe_core::{LoadOptions, LogitsMode, Model, Session, SessionParams};
use moe_fuzz::{plain_file_name, split_sections, Scratch};

const CONFIG: &str = "config.json";
const INDEX: &str = "model.safetensors.index.json";
const GENERATION: &str = "generation_config.json";
const MAX_PADDING: u32 = 1 << 20;
const MAX_SHARDS: usize = 4;

/// The scratch directory and the names of the files the last input wrote there.
static SCRATCH: OnceLock<Mutex<(Scratch, Vec<String>)>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let mut guard = SCRATCH
        .get_or_init(|| Mutex::new((Scratch::new("loader"), Vec::new())))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let (scratch, written) = &mut *guard;
    scratch.remove(written);
    written.clear();
    let sections = split_sections(data);
    let mut write = |name: &str, bytes: &[u8], zeros: u64| {
        scratch.write(name, bytes, zeros);
        written.push(name.to_string());
    };
    write(CONFIG, sections[0], 0);
    if let Some(index) = sections.get(1).filter(|s| !s.is_empty()) {
        write(INDEX, index, 0);
    }
    if let Some(gen) = sections.get(2).filter(|s| !s.is_empty()) {
        write(GENERATION, gen, 0);
    }
    for (i, shard) in sections.iter().skip(3).take(MAX_SHARDS).enumerate() {
        let (name, rest) = match shard.iter().position(|&b| b == b'\n') {
            Some(at) => (&shard[..at], &shard[at + 1..]),
            None => (&[][..], &shard[..]),
        };
        let default = format!("model-{i:05}.safetensors");
        let name = plain_file_name(name, &[CONFIG, INDEX, GENERATION]).unwrap_or(&default);
        let (padding, bytes) = match rest.split_first_chunk::<4>() {
            Some((p, bytes)) => (u32::from_le_bytes(*p) % MAX_PADDING, bytes),
            None => (0, rest),
        };
        write(name, bytes, u64::from(padding));
    }

    let mapped = Model::load(scratch.dir());
    let copied = Model::load_with(
        scratch.dir(),
        LoadOptions::default().with_copied_weights(true),
    );
    match (mapped, copied) {
        (Ok(mapped), Ok(copied)) => {
            assert_eq!(mapped.config().vocab_size, copied.config().vocab_size);
            run_a_token(mapped);
        }
        (Err(_), Err(_)) => {}
        (mapped, copied) => panic!(
            "mapped and copied loads disagree: mapped {:?}, copied {:?}",
            mapped.err(),
            copied.err()
        ),
    }
});

/// One prefill of token 0 and one decode of the argmax: finite or not, the logits have the
/// vocabulary's length.
fn run_a_token(model: Model) {
    let vocab = model.vocab_size();
    let model = Arc::new(model);
    let params = SessionParams::default().with_max_context(Some(4));
    let Ok(mut session) = Session::new(model, &params) else {
        return;
    };
    if let Ok(logits) = session.prefill(&[0], LogitsMode::Last) {
        assert_eq!(logits.len(), vocab);
        let next = moe_core::argmax(&logits) as u32;
        if let Ok(logits) = session.decode(next) {
            assert_eq!(logits.len(), vocab);
        }
    }
}
