//! Text in, text out: the checkpoint's tokenizer (`tokenizer.json`, Hugging Face `tokenizers`), chat
//! templates (`tokenizer_config.json`, rendered with minijinja), UTF-8-safe streaming and stop
//! strings. Text generation itself (a session driven to text) is `generate::text`.

mod chat;
mod stop;
mod stream;
mod tokenizer;

pub use chat::ChatMessage;
pub use stop::StopMatcher;
pub use stream::StreamDecoder;
pub use tokenizer::Tokenizer;
