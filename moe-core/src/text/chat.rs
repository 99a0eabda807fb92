//! Chat templates: the Jinja `chat_template` of tokenizer_config.json, rendered with minijinja the way
//! transformers' `apply_chat_template` does (`messages`, `add_generation_prompt`, `bos_token`,
//! `eos_token`, `raise_exception`, Python string methods).

use crate::error::{Error, Result};

/// One chat turn.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or what the template knows.
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message from `role` saying `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

pub(crate) struct ChatTemplate {
    env: minijinja::Environment<'static>,
}

const NAME: &str = "chat";

impl ChatTemplate {
    pub(crate) fn new(source: &str) -> Result<Self> {
        let mut env = minijinja::Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        // HF templates are written with trim_blocks / lstrip_blocks.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| Error::Tokenizer(format!("chat template does not parse: {e}")))?;
        Ok(ChatTemplate { env })
    }

    /// The template of a tokenizer_config.json: a string, or a list of `{name, template}` whose
    /// `default` entry is used.
    pub(crate) fn from_config(cfg: &serde_json::Value) -> Result<Option<Self>> {
        match cfg.get("chat_template") {
            Some(serde_json::Value::String(s)) => Self::new(s).map(Some),
            Some(serde_json::Value::Array(list)) => {
                let default = list
                    .iter()
                    .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                    .or_else(|| list.first());
                match default
                    .and_then(|t| t.get("template"))
                    .and_then(|t| t.as_str())
                {
                    Some(s) => Self::new(s).map(Some),
                    None => Ok(None),
                }
            }
            _ => Ok(None),
        }
    }

    pub(crate) fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String> {
        let tpl = self
            .env
            .get_template(NAME)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        tpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => bos_token,
            eos_token => eos_token,
        })
        .map_err(|e| Error::Tokenizer(format!("chat template failed: {e}")))
    }
}
