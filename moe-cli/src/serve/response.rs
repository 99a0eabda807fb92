//! Response bodies in OpenAI's shapes: whole completions, stream chunks, and log-probabilities
//! (the legacy `{tokens, token_logprobs, top_logprobs, text_offset}` of completions, the
//! `{content: [{token, logprob, bytes, top_logprobs}]}` of chat).

use std::sync::Arc;

use moe_core::Tokenizer;
use serde_json::{json, Value};

use super::api::Endpoint;
use crate::logprobs::TokenLogprobs;

/// What every chunk and response of one request shares.
pub(crate) struct Shape {
    pub(crate) endpoint: Endpoint,
    pub(crate) id: String,
    pub(crate) created: u64,
    pub(crate) model: String,
    pub(crate) tokenizer: Arc<Tokenizer>,
    pub(crate) prompt_tokens: usize,
}

/// Log-probabilities gathered for a response.
#[derive(Default)]
pub(crate) struct Logprobs {
    tokens: Vec<String>,
    token_logprobs: Vec<f64>,
    top: Vec<Vec<(String, f64)>>,
    offsets: Vec<usize>,
}

impl Shape {
    fn token_text(&self, id: u32) -> String {
        self.tokenizer.decode(&[id], false).unwrap_or_default()
    }

    /// Adds one token's log-probabilities at text offset `offset`.
    pub(crate) fn push_logprobs(&self, into: &mut Logprobs, lp: &TokenLogprobs, offset: usize) {
        into.tokens.push(self.token_text(lp.token));
        into.token_logprobs.push(lp.logprob);
        into.top.push(
            lp.top
                .iter()
                .map(|&(id, l)| (self.token_text(id), l))
                .collect(),
        );
        into.offsets.push(offset);
    }

    /// The `logprobs` object of a choice.
    pub(crate) fn logprobs_json(&self, lp: &Logprobs) -> Value {
        match self.endpoint {
            Endpoint::Completions => {
                let top: Vec<Value> = lp
                    .top
                    .iter()
                    .map(|t| Value::Object(t.iter().map(|(s, l)| (s.clone(), json!(l))).collect()))
                    .collect();
                json!({
                    "tokens": lp.tokens,
                    "token_logprobs": lp.token_logprobs,
                    "top_logprobs": top,
                    "text_offset": lp.offsets,
                })
            }
            Endpoint::Chat => {
                let entry =
                    |s: &str, l: f64| json!({"token": s, "logprob": l, "bytes": s.as_bytes()});
                let content: Vec<Value> = (0..lp.tokens.len())
                    .map(|i| {
                        let mut e = entry(&lp.tokens[i], lp.token_logprobs[i]);
                        e["top_logprobs"] = lp.top[i].iter().map(|(s, l)| entry(s, *l)).collect();
                        e
                    })
                    .collect();
                json!({ "content": content })
            }
        }
    }

    fn usage(&self, completion_tokens: usize) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        })
    }

    /// A whole (non-streamed) response.
    pub(crate) fn complete(
        &self,
        text: &str,
        logprobs: Option<&Logprobs>,
        finish_reason: &str,
        completion_tokens: usize,
    ) -> Value {
        let lp = logprobs.map(|l| self.logprobs_json(l));
        let choice = match self.endpoint {
            Endpoint::Completions => json!({
                "index": 0, "text": text, "logprobs": lp, "finish_reason": finish_reason,
            }),
            Endpoint::Chat => json!({
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": lp,
                "finish_reason": finish_reason,
            }),
        };
        json!({
            "id": self.id,
            "object": match self.endpoint {
                Endpoint::Completions => "text_completion",
                Endpoint::Chat => "chat.completion",
            },
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": self.usage(completion_tokens),
        })
    }

    /// A stream chunk with one choice: `text` (chat: `delta`), its log-probabilities and, on the
    /// last one, the finish reason. `first` marks the chat chunk that carries the role.
    pub(crate) fn chunk(
        &self,
        text: &str,
        logprobs: Option<&Logprobs>,
        finish_reason: Option<&str>,
        first: bool,
    ) -> Value {
        let lp = logprobs.map(|l| self.logprobs_json(l));
        let choice = match self.endpoint {
            Endpoint::Completions => json!({
                "index": 0, "text": text, "logprobs": lp, "finish_reason": finish_reason,
            }),
            Endpoint::Chat => {
                let delta = match (first, finish_reason.is_some() && text.is_empty()) {
                    (true, _) => json!({"role": "assistant", "content": text}),
                    (false, true) => json!({}),
                    (false, false) => json!({"content": text}),
                };
                json!({"index": 0, "delta": delta, "logprobs": lp, "finish_reason": finish_reason})
            }
        };
        json!({
            "id": self.id,
            "object": self.chunk_object(),
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        })
    }

    /// The last chunk when `stream_options.include_usage` asks for it: no choice, the usage.
    pub(crate) fn usage_chunk(&self, completion_tokens: usize) -> Value {
        json!({
            "id": self.id,
            "object": self.chunk_object(),
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": self.usage(completion_tokens),
        })
    }

    fn chunk_object(&self) -> &'static str {
        match self.endpoint {
            Endpoint::Completions => "text_completion",
            Endpoint::Chat => "chat.completion.chunk",
        }
    }
}
