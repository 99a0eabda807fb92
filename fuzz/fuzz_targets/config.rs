//! `ModelConfig::from_json_str` on arbitrary text: a typed error or a config whose sizes are
//! consistent, never a panic, an abort or a huge allocation.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use moe_core::ModelConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = ModelConfig::from_json_str(text, Path::new("fuzz/config.json")) {
        // What the loader relies on after parsing.
        assert!(config.vocab_size > 0 && config.hidden_size > 0 && config.num_layers > 0);
        assert!(config.num_moe_layers() <= config.num_layers);
    }
});
