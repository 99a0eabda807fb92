//! Request bodies of `/v1/completions` and `/v1/chat/completions`, parsed from JSON by hand so that
//! every wrong type or out-of-range value is a 400 naming its parameter (never a crash).

use moe_core::ChatMessage;
use serde_json::{Map, Value};

use super::error::ApiError;

/// Which endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Completions,
    Chat,
}

/// What to continue.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Prompt {
    Text(String),
    Ids(Vec<u32>),
    Chat(Vec<ChatMessage>),
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CompletionRequest {
    pub(crate) endpoint: Endpoint,
    pub(crate) model: String,
    pub(crate) prompt: Prompt,
    pub(crate) max_tokens: Option<usize>,
    pub(crate) temperature: Option<f32>,
    pub(crate) top_p: Option<f32>,
    pub(crate) top_k: Option<usize>,
    pub(crate) seed: Option<u64>,
    pub(crate) stop: Vec<String>,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
    /// How many most-likely tokens to report per token, when log-probabilities are asked for.
    pub(crate) logprobs: Option<usize>,
    /// Generate past the end-of-sequence token (vLLM's extension).
    pub(crate) ignore_eos: bool,
}

/// Most stop strings, and their longest length in bytes.
const MAX_STOPS: usize = 16;
const MAX_STOP_BYTES: usize = 1024;
/// Most `top_logprobs` (OpenAI's limit for chat; completions allow 5).
const MAX_TOP_LOGPROBS: usize = 20;
/// Most chat messages.
const MAX_MESSAGES: usize = 4096;

type Obj = Map<String, Value>;

/// `obj[name]`, with JSON `null` read as absent.
fn field<'a>(obj: &'a Obj, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn opt_bool(obj: &Obj, name: &str) -> Result<Option<bool>, ApiError> {
    field(obj, name)
        .map(|v| {
            v.as_bool()
                .ok_or_else(|| ApiError::invalid(name, format!("'{name}' must be a boolean")))
        })
        .transpose()
}

fn opt_f32(obj: &Obj, name: &str, lo: f64, hi: f64) -> Result<Option<f32>, ApiError> {
    field(obj, name)
        .map(|v| {
            let x = v
                .as_f64()
                .ok_or_else(|| ApiError::invalid(name, format!("'{name}' must be a number")))?;
            if !(lo..=hi).contains(&x) {
                return Err(ApiError::invalid(
                    name,
                    format!("'{name}' must be between {lo} and {hi}, not {x}"),
                ));
            }
            Ok(x as f32)
        })
        .transpose()
}

fn opt_uint(obj: &Obj, name: &str, max: u64) -> Result<Option<u64>, ApiError> {
    field(obj, name)
        .map(|v| {
            let x = v.as_u64().ok_or_else(|| {
                ApiError::invalid(name, format!("'{name}' must be a non-negative integer"))
            })?;
            if x > max {
                return Err(ApiError::invalid(
                    name,
                    format!("'{name}' must be at most {max}, not {x}"),
                ));
            }
            Ok(x)
        })
        .transpose()
}

/// `stop`: a string or an array of strings.
fn stops(obj: &Obj) -> Result<Vec<String>, ApiError> {
    let bad = || ApiError::invalid("stop", "'stop' must be a string or an array of strings");
    let list: Vec<String> = match field(obj, "stop") {
        None => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad()),
    };
    if list.len() > MAX_STOPS || list.iter().any(|s| s.len() > MAX_STOP_BYTES) {
        return Err(ApiError::invalid(
            "stop",
            format!("at most {MAX_STOPS} stop strings of at most {MAX_STOP_BYTES} bytes each"),
        ));
    }
    Ok(list)
}

/// `prompt`: a string, an array of one string, or an array of token ids.
fn prompt(obj: &Obj) -> Result<Prompt, ApiError> {
    let bad = |m: &str| ApiError::invalid("prompt", m);
    match field(obj, "prompt") {
        None => Err(bad("'prompt' is required")),
        Some(Value::String(s)) => Ok(Prompt::Text(s.clone())),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
            Ok(Prompt::Text(a[0].as_str().unwrap_or_default().to_string()))
        }
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_number) => a
            .iter()
            .map(|v| {
                v.as_u64()
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or_else(|| bad("token ids in 'prompt' must be integers below 2^32"))
            })
            .collect::<Result<Vec<u32>, _>>()
            .map(Prompt::Ids),
        Some(Value::Array(a)) if a.len() > 1 => Err(bad(
            "one prompt per request (a batch of prompts is not supported; send them concurrently)",
        )),
        Some(_) => Err(bad(
            "'prompt' must be a string, an array of one string, or an array of token ids",
        )),
    }
}

/// The text of a message's `content`: a string, or an array of `{"type": "text", "text": ...}` parts.
fn content(v: Option<&Value>, i: usize) -> Result<String, ApiError> {
    let param = format!("messages[{i}].content");
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for p in parts {
                match (p.get("type").and_then(Value::as_str), p.get("text")) {
                    (Some("text"), Some(Value::String(t))) => text.push_str(t),
                    _ => {
                        return Err(ApiError::invalid(
                            &param,
                            "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported",
                        ))
                    }
                }
            }
            Ok(text)
        }
        Some(_) => Err(ApiError::invalid(
            &param,
            "content must be a string or an array of text parts",
        )),
    }
}

fn messages(obj: &Obj) -> Result<Prompt, ApiError> {
    let Some(Value::Array(list)) = field(obj, "messages") else {
        return Err(ApiError::invalid(
            "messages",
            "'messages' is required and must be an array",
        ));
    };
    if list.is_empty() || list.len() > MAX_MESSAGES {
        return Err(ApiError::invalid(
            "messages",
            format!("'messages' must hold 1 to {MAX_MESSAGES} messages"),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let m = m.as_object().ok_or_else(|| {
                ApiError::invalid(&format!("messages[{i}]"), "a message must be an object")
            })?;
            let role = m.get("role").and_then(Value::as_str).ok_or_else(|| {
                ApiError::invalid(
                    &format!("messages[{i}].role"),
                    "every message needs a string 'role'",
                )
            })?;
            Ok(ChatMessage::new(role, content(m.get("content"), i)?))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Prompt::Chat)
}

/// Parses a request body for `endpoint`.
pub(crate) fn parse(endpoint: Endpoint, body: &[u8]) -> Result<CompletionRequest, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("", format!("the body is not valid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| ApiError::invalid("", "the body must be a JSON object"))?;
    let model = match field(obj, "model") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::invalid("model", "'model' must be a string")),
        None => return Err(ApiError::invalid("model", "'model' is required")),
    };
    let prompt = match endpoint {
        Endpoint::Completions => prompt(obj)?,
        Endpoint::Chat => messages(obj)?,
    };
    if let Some(n) = opt_uint(obj, "n", u64::MAX)? {
        if n != 1 {
            return Err(ApiError::invalid("n", "only n = 1 is supported"));
        }
    }
    if opt_bool(obj, "echo")? == Some(true) {
        return Err(ApiError::invalid("echo", "'echo' is not supported"));
    }
    for name in ["presence_penalty", "frequency_penalty"] {
        if opt_f32(obj, name, -2.0, 2.0)?.is_some_and(|x| x != 0.0) {
            return Err(ApiError::invalid(
                name,
                format!("'{name}' is not supported"),
            ));
        }
    }
    let max_tokens = match opt_uint(obj, "max_completion_tokens", u32::MAX as u64)? {
        Some(n) => Some(n),
        None => opt_uint(obj, "max_tokens", u32::MAX as u64)?,
    }
    .map(|n| n as usize);
    let logprobs = match endpoint {
        // Completions: `logprobs` is the number of most likely tokens (0 = the chosen one only).
        Endpoint::Completions => {
            opt_uint(obj, "logprobs", MAX_TOP_LOGPROBS as u64)?.map(|n| n as usize)
        }
        // Chat: `logprobs: true`, with `top_logprobs` most likely tokens.
        Endpoint::Chat => {
            let top = opt_uint(obj, "top_logprobs", MAX_TOP_LOGPROBS as u64)?;
            match opt_bool(obj, "logprobs")? {
                Some(true) => Some(top.unwrap_or(0) as usize),
                _ if top.is_some_and(|t| t > 0) => {
                    return Err(ApiError::invalid(
                        "top_logprobs",
                        "'top_logprobs' needs 'logprobs': true",
                    ))
                }
                _ => None,
            }
        }
    };
    let include_usage = match field(obj, "stream_options") {
        None => false,
        Some(Value::Object(o)) => opt_bool(o, "include_usage")?.unwrap_or(false),
        Some(_) => {
            return Err(ApiError::invalid(
                "stream_options",
                "'stream_options' must be an object",
            ))
        }
    };
    Ok(CompletionRequest {
        endpoint,
        model,
        prompt,
        max_tokens,
        temperature: opt_f32(obj, "temperature", 0.0, 2.0)?,
        top_p: opt_f32(obj, "top_p", f64::MIN_POSITIVE, 1.0)?,
        top_k: opt_uint(obj, "top_k", u32::MAX as u64)?.map(|k| k as usize),
        seed: match field(obj, "seed") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .or_else(|| v.as_i64().map(|x| x as u64))
                    .ok_or_else(|| ApiError::invalid("seed", "'seed' must be an integer"))?,
            ),
        },
        stop: stops(obj)?,
        stream: opt_bool(obj, "stream")?.unwrap_or(false),
        include_usage,
        logprobs,
        ignore_eos: opt_bool(obj, "ignore_eos")?.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn completion(body: &str) -> Result<CompletionRequest, ApiError> {
        parse(Endpoint::Completions, body.as_bytes())
    }

    fn chat(body: &str) -> Result<CompletionRequest, ApiError> {
        parse(Endpoint::Chat, body.as_bytes())
    }

    fn param_of(r: Result<CompletionRequest, ApiError>) -> Option<String> {
        let e = r.unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.kind, "invalid_request_error");
        e.param
    }

    #[test]
    fn a_full_completion_request_parses() {
        let r = completion(
            r#"{"model": "m", "prompt": "def f", "max_tokens": 7, "temperature": 0.5,
                "top_p": 0.9, "seed": 3, "stop": ["\n", "x"], "stream": true,
                "stream_options": {"include_usage": true}, "logprobs": 2, "user": "ignored"}"#,
        )
        .unwrap();
        assert_eq!(r.prompt, Prompt::Text("def f".into()));
        assert_eq!(r.max_tokens, Some(7));
        assert_eq!(
            (r.temperature, r.top_p, r.seed),
            (Some(0.5), Some(0.9), Some(3))
        );
        assert_eq!(r.stop, vec!["\n".to_string(), "x".to_string()]);
        assert!(r.stream && r.include_usage);
        assert_eq!(r.logprobs, Some(2));
        let r = completion(r#"{"model": "m", "prompt": [1, 2, 3], "stop": "END"}"#).unwrap();
        assert_eq!(r.prompt, Prompt::Ids(vec![1, 2, 3]));
        assert_eq!(r.stop, vec!["END".to_string()]);
        assert!(!r.stream);
        assert_eq!(r.logprobs, None);
    }

    #[test]
    fn chat_requests_parse_messages_and_logprobs() {
        let r = chat(
            r#"{"model": "m", "messages": [{"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "!"}]}],
                "logprobs": true, "top_logprobs": 3, "max_completion_tokens": 5}"#,
        )
        .unwrap();
        assert_eq!(
            r.prompt,
            Prompt::Chat(vec![
                ChatMessage::new("system", "be brief"),
                ChatMessage::new("user", "hi!")
            ])
        );
        assert_eq!((r.logprobs, r.max_tokens), (Some(3), Some(5)));
        assert_eq!(
            param_of(chat(r#"{"model": "m", "messages": [], "top_logprobs": 2}"#)),
            Some("messages".into())
        );
        assert_eq!(
            param_of(chat(
                r#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}"#
            )),
            Some("top_logprobs".into())
        );
        assert_eq!(
            param_of(chat(r#"{"model": "m", "messages": [{"content": "x"}]}"#)),
            Some("messages[0].role".into())
        );
        assert_eq!(
            param_of(chat(
                r#"{"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}"#
            )),
            Some("messages[0].content".into())
        );
    }

    #[test]
    fn wrong_types_and_ranges_name_their_parameter() {
        let cases = [
            (
                r#"{"model": "m", "prompt": "x", "temperature": "hot"}"#,
                "temperature",
            ),
            (
                r#"{"model": "m", "prompt": "x", "temperature": 2.5}"#,
                "temperature",
            ),
            (r#"{"model": "m", "prompt": "x", "top_p": 0}"#, "top_p"),
            (
                r#"{"model": "m", "prompt": "x", "max_tokens": -1}"#,
                "max_tokens",
            ),
            (
                r#"{"model": "m", "prompt": "x", "max_tokens": 1.5}"#,
                "max_tokens",
            ),
            (r#"{"model": "m", "prompt": "x", "stop": 5}"#, "stop"),
            (r#"{"model": "m", "prompt": "x", "stop": ["a", 1]}"#, "stop"),
            (
                r#"{"model": "m", "prompt": "x", "stream": "yes"}"#,
                "stream",
            ),
            (
                r#"{"model": "m", "prompt": "x", "logprobs": 21}"#,
                "logprobs",
            ),
            (r#"{"model": "m", "prompt": "x", "n": 2}"#, "n"),
            (r#"{"model": "m", "prompt": "x", "seed": "s"}"#, "seed"),
            (r#"{"model": "m", "prompt": "x", "echo": true}"#, "echo"),
            (
                r#"{"model": "m", "prompt": "x", "presence_penalty": 1}"#,
                "presence_penalty",
            ),
            (r#"{"model": "m", "prompt": 5}"#, "prompt"),
            (r#"{"model": "m", "prompt": ["a", "b"]}"#, "prompt"),
            (r#"{"model": "m", "prompt": [1, -2]}"#, "prompt"),
            (r#"{"model": "m", "prompt": [4294967296]}"#, "prompt"),
            (r#"{"model": "m"}"#, "prompt"),
            (r#"{"prompt": "x"}"#, "model"),
            (r#"{"model": 3, "prompt": "x"}"#, "model"),
        ];
        for (body, param) in cases {
            assert_eq!(
                param_of(completion(body)),
                Some(param.to_string()),
                "{body}"
            );
        }
        let too_many: Vec<String> = (0..17).map(|i| i.to_string()).collect();
        let body = serde_json::json!({"model": "m", "prompt": "x", "stop": too_many}).to_string();
        assert_eq!(param_of(completion(&body)), Some("stop".into()));
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_400s_without_a_param() {
        for body in [
            "",
            "{",
            "[1, 2]",
            "null",
            "\"x\"",
            "{\"model\": \"m\", \"prompt\": \"\u{0}",
        ] {
            assert_eq!(param_of(completion(body)), None, "{body:?}");
        }
        // Deeply nested JSON is refused by the parser's recursion limit, not a stack overflow.
        let deep = "[".repeat(100_000);
        assert_eq!(param_of(completion(&deep)), None);
    }

    #[test]
    fn nulls_read_as_absent() {
        let r = completion(r#"{"model": "m", "prompt": "x", "temperature": null, "stop": null}"#)
            .unwrap();
        assert_eq!((r.temperature, r.stop.len()), (None, 0));
    }
}
