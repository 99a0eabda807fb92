//! Text in, text out: the checkpoint's tokenizer (`tokenizer.json`, Hugging Face `tokenizers`), chat
//! templates (`tokenizer_config.json`, rendered with minijinja), generation defaults
//! (`generation_config.json`), UTF-8-safe streaming, and text generation with stop strings.

mod chat;
mod generation_config;
mod stop;
mod stream;
mod text_generator;
mod tokenizer;

pub use chat::ChatMessage;
pub use generation_config::GenerationConfig;
pub use stop::StopMatcher;
pub use stream::StreamDecoder;
pub use text_generator::{TextGenerator, TextOptions};
pub use tokenizer::Tokenizer;
