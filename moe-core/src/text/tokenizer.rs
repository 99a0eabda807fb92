//! A checkpoint's tokenizer: `tokenizer.json` through the Hugging Face `tokenizers` crate, plus the
//! special tokens and chat template of `tokenizer_config.json`.

use std::path::Path;

use super::chat::{ChatMessage, ChatTemplate};
use crate::error::{Error, Result};

/// A checkpoint's tokenizer: encode text to ids and back, and render chat templates.
///
/// ```no_run
/// use moe_core::{ChatMessage, Model};
/// let model = Model::load("models/tiny-deepseek-pycode")?;
/// let tok = model.tokenizer().expect("the demo model ships tokenizer.json");
/// let ids = tok.encode("def f(x):", true)?;
/// assert_eq!(tok.decode(&ids, true)?, "def f(x):");
/// // A chat prompt (when tokenizer_config.json has a template): the template writes its own
/// // special tokens, so none are added.
/// if tok.has_chat_template() {
///     let _prompt = tok.encode_chat(&[ChatMessage::new("user", "Hello")], true)?;
/// }
/// # Ok::<(), moe_core::Error>(())
/// ```
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    chat_template: Option<ChatTemplate>,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("chat_template", &self.chat_template.is_some())
            .finish()
    }
}

fn tok_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(format!("{what}: {e}"))
}

/// Parses a `tokenizer.json`. The `tokenizers` crate panics on some malformed files instead of
/// failing (found by fuzzing: a truncated `{"decoder":` hits an `expect` in its decoder
/// deserializer), so its panic is caught here and reported as the file being unreadable.
fn parse_tokenizer_file(path: &Path) -> Result<tokenizers::Tokenizer> {
    let what = path.display().to_string();
    match std::panic::catch_unwind(|| tokenizers::Tokenizer::from_file(path)) {
        Ok(parsed) => parsed.map_err(|e| tok_err(&what, e)),
        Err(_) => Err(tok_err(
            &what,
            "not a valid tokenizer.json (the parser failed)",
        )),
    }
}

impl Tokenizer {
    /// Loads `dir/tokenizer.json` (and `tokenizer_config.json` when present); `Ok(None)` when the
    /// directory has no tokenizer.
    pub fn from_dir(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Ok(None);
        }
        let inner = parse_tokenizer_file(&path)?;
        let mut tok = Tokenizer {
            inner,
            chat_template: None,
            bos_token: None,
            eos_token: None,
        };
        let cfg_path = dir.join("tokenizer_config.json");
        if cfg_path.is_file() {
            let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
            let cfg: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| tok_err(&format!("{}: not valid JSON", cfg_path.display()), e))?;
            tok.bos_token = special_token(&cfg, "bos_token");
            tok.eos_token = special_token(&cfg, "eos_token");
            tok.chat_template = ChatTemplate::from_config(&cfg)?;
        }
        Ok(Some(tok))
    }

    /// Loads a `tokenizer.json` file alone.
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::NotFound(path.to_path_buf()));
        }
        let inner = parse_tokenizer_file(path)?;
        Ok(Tokenizer {
            inner,
            chat_template: None,
            bos_token: None,
            eos_token: None,
        })
    }

    /// Sets (or replaces) the chat template.
    pub fn set_chat_template(&mut self, source: &str) -> Result<()> {
        self.chat_template = Some(ChatTemplate::new(source)?);
        Ok(())
    }

    /// Token ids of `text`, with the tokenizer's special tokens (BOS...) when `add_special_tokens`.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| tok_err("encode", e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`; special tokens are dropped when `skip_special_tokens`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        let size = self.vocab_size();
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= size) {
            return Err(Error::TokenOutOfRange {
                token: bad,
                vocab_size: size,
            });
        }
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| tok_err("decode", e))
    }

    /// Number of ids the tokenizer knows (added tokens included).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token string, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The id of `tokenizer_config.json`'s `eos_token`, if any.
    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos_token.as_deref().and_then(|t| self.token_to_id(t))
    }

    /// Whether tokenizer_config.json gives a chat template.
    pub fn has_chat_template(&self) -> bool {
        self.chat_template.is_some()
    }

    /// Renders the chat template over `messages` as Hugging Face does.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let tpl = self
            .chat_template
            .as_ref()
            .ok_or_else(|| Error::Tokenizer("this model has no chat template".into()))?;
        tpl.render(
            messages,
            add_generation_prompt,
            self.bos_token.as_deref().unwrap_or(""),
            self.eos_token.as_deref().unwrap_or(""),
        )
    }
}

impl Tokenizer {
    /// The prompt ids of a chat: the template rendered over `messages` (with the assistant's turn
    /// header when `add_generation_prompt`), encoded without adding special tokens, because the
    /// template writes its own (BOS included), as transformers' `apply_chat_template(tokenize=True)`
    /// does. The one chat-prompt policy of every binding.
    pub fn encode_chat(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>> {
        let text = self.apply_chat_template(messages, add_generation_prompt)?;
        self.encode(&text, false)
    }
}

/// A special token in tokenizer_config.json: a string or `{"content": ...}`.
fn special_token(cfg: &serde_json::Value, key: &str) -> Option<String> {
    match cfg.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}
