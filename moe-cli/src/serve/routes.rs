//! The HTTP handlers: `/health`, `/metrics`, `/v1/models`, `/v1/completions`,
//! `/v1/chat/completions`. A completion request is parsed and checked here (limits, tokenizer,
//! chat template), handed to the scheduler, and answered from its events: collected into one JSON
//! body, or streamed as server-sent events ending in `data: [DONE]`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use moe_core::{GenerateOptions, Model};
use serde_json::json;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::api::{self, CompletionRequest, Endpoint, Prompt};
use super::error::ApiError;
use super::metrics::Metrics;
use super::response::{Logprobs, Shape};
use super::scheduler::{Event, Handle, Job};

/// Limits on what one request may ask.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Largest request body in bytes (413 beyond).
    pub(crate) body_bytes: usize,
    /// Most tokens one request may generate.
    pub(crate) max_tokens: usize,
    /// Most tokens of prompt plus completion.
    pub(crate) max_context: usize,
}

/// What every handler shares.
pub(crate) struct AppState {
    pub(crate) model: Arc<Model>,
    pub(crate) model_id: String,
    pub(crate) scheduler: Handle,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) limits: Limits,
    pub(crate) api_key: Option<String>,
    pub(crate) started: u64,
    pub(crate) next_id: std::sync::atomic::AtomicU64,
}

type Shared = State<Arc<AppState>>;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix seconds now (for `created`).
pub(crate) fn now() -> u64 {
    unix_now()
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &state.api_key else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compared in time independent of where the strings differ.
    let ok = given.is_some_and(|g| {
        g.len() == key.len()
            && g.bytes()
                .zip(key.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

pub(crate) async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub(crate) async fn metrics(State(state): Shared, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state, &headers) {
        return e.into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

pub(crate) async fn models(State(state): Shared, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state, &headers) {
        return e.into_response();
    }
    Json(json!({
        "object": "list",
        "data": [{
            "id": state.model_id,
            "object": "model",
            "created": state.started,
            "owned_by": "moe",
            "max_model_len": state.limits.max_context,
        }],
    }))
    .into_response()
}

pub(crate) async fn completions(State(state): Shared, headers: HeaderMap, body: Body) -> Response {
    answer(state, Endpoint::Completions, headers, body).await
}

pub(crate) async fn chat_completions(
    State(state): Shared,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(state, Endpoint::Chat, headers, body).await
}

/// 404 for paths the server does not have, as JSON.
pub(crate) async fn not_found() -> ApiError {
    ApiError::invalid("", "no such endpoint")
        .with_status(StatusCode::NOT_FOUND)
        .with_code("not_found")
}

async fn answer(
    state: Arc<AppState>,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let arrived = Instant::now();
    match start(&state, endpoint, &headers, body, arrived).await {
        Ok(r) => {
            state.metrics.requests.fetch_add(1, Ordering::Relaxed);
            r
        }
        Err(e) => {
            let counter = if e.status == StatusCode::SERVICE_UNAVAILABLE {
                &state.metrics.rejected_overloaded
            } else {
                &state.metrics.rejected_invalid
            };
            counter.fetch_add(1, Ordering::Relaxed);
            e.into_response()
        }
    }
}

async fn read_body(limit: usize, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::invalid("", format!("the request body exceeds {limit} bytes"))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
            .with_code("request_too_large")
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map(|b| b.to_vec())
        .map_err(|_| too_large())
}

/// Checks the request, tokenizes its prompt and builds the scheduler job's options.
fn prepare(
    state: &AppState,
    req: &CompletionRequest,
) -> Result<(Vec<u32>, GenerateOptions, usize), ApiError> {
    if req.model != state.model_id {
        return Err(ApiError::invalid(
            "model",
            format!(
                "the model '{}' does not exist; this server serves '{}'",
                req.model, state.model_id
            ),
        )
        .with_status(StatusCode::NOT_FOUND)
        .with_code("model_not_found"));
    }
    let model = &state.model;
    let tok = model
        .tokenizer()
        .ok_or_else(|| ApiError::invalid("", "this model has no tokenizer.json"))?;
    let ids = match &req.prompt {
        Prompt::Text(t) => tok
            .encode(t, true)
            .map_err(|e| ApiError::invalid("prompt", e.to_string()))?,
        Prompt::Ids(ids) => {
            if let Some(bad) = ids.iter().find(|&&i| i as usize >= model.vocab_size()) {
                return Err(ApiError::invalid(
                    "prompt",
                    format!(
                        "token id {bad} is outside the vocabulary of {}",
                        model.vocab_size()
                    ),
                ));
            }
            ids.clone()
        }
        Prompt::Chat(msgs) => {
            if !tok.has_chat_template() {
                return Err(ApiError::invalid(
                    "messages",
                    format!(
                        "the model '{}' has no chat template (tokenizer_config.json has no \
                         chat_template), so /v1/chat/completions cannot format a conversation; \
                         use /v1/completions with a plain prompt",
                        state.model_id
                    ),
                )
                .with_code("chat_template_missing"));
            }
            tok.encode_chat(msgs, true)
                .map_err(|e| ApiError::invalid("messages", e.to_string()))?
        }
    };
    if ids.is_empty() {
        return Err(ApiError::invalid("prompt", "the prompt is empty"));
    }
    let limits = state.limits;
    let context_error = |asked: usize| {
        ApiError::invalid(
            "max_tokens",
            format!(
                "this model's maximum context length is {} tokens; the request asks for {} \
                 ({} in the prompt, {asked} to generate)",
                limits.max_context,
                ids.len() + asked,
                ids.len()
            ),
        )
        .with_code("context_length_exceeded")
    };
    if ids.len() >= limits.max_context {
        return Err(context_error(1).with_param("prompt"));
    }
    let room = limits.max_context - ids.len();
    let policy = GenerateOptions::for_model(model);
    let max_tokens = match req.max_tokens {
        Some(n) if n > limits.max_tokens => {
            return Err(ApiError::invalid(
                "max_tokens",
                format!("max_tokens is at most {} on this server", limits.max_tokens),
            ))
        }
        Some(n) if n > room => return Err(context_error(n)),
        Some(n) => n,
        None => policy.max_new_tokens.min(room).min(limits.max_tokens),
    };
    let mut sampler = policy.sampler.clone();
    if let Some(t) = req.temperature {
        sampler = sampler.with_temperature(t);
    }
    if let Some(p) = req.top_p {
        sampler = sampler.with_top_p(p);
    }
    if let Some(k) = req.top_k {
        sampler = sampler.with_top_k(k);
    }
    if let Some(s) = req.seed {
        sampler = sampler.with_seed(s);
    }
    sampler
        .validate()
        .map_err(|e| ApiError::invalid("", e.to_string()))?;
    let stop_tokens = if req.ignore_eos {
        vec![]
    } else {
        policy.stop_tokens
    };
    let opts = GenerateOptions::new(max_tokens)
        .with_sampler(sampler)
        .with_stop_tokens(stop_tokens);
    Ok((ids, opts, limits.max_context))
}

async fn start(
    state: &Arc<AppState>,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: Body,
    arrived: Instant,
) -> Result<Response, ApiError> {
    authorize(state, headers)?;
    let bytes = read_body(state.limits.body_bytes, headers, body).await?;
    let req = api::parse(endpoint, &bytes)?;
    let (prompt, opts, max_context) = prepare(state, &req)?;
    let tokenizer = state
        .model
        .tokenizer()
        .cloned()
        .ok_or_else(|| ApiError::internal("no tokenizer"))?;
    let n = state.next_id.fetch_add(1, Ordering::Relaxed);
    let shape = Shape {
        endpoint,
        id: match endpoint {
            Endpoint::Completions => format!("cmpl-{n}"),
            Endpoint::Chat => format!("chatcmpl-{n}"),
        },
        created: now(),
        model: state.model_id.clone(),
        tokenizer,
        prompt_tokens: prompt.len(),
    };
    let (tx, rx) = unbounded_channel();
    state.scheduler.submit(Job {
        prompt,
        opts,
        stop_strings: req.stop.clone(),
        logprobs: req.logprobs,
        max_context,
        arrived,
        events: tx,
    })?;
    if req.stream {
        Ok(stream(shape, rx, req.logprobs.is_some(), req.include_usage))
    } else {
        collect(shape, rx, req.logprobs.is_some()).await
    }
}

/// Waits for the whole completion.
async fn collect(
    shape: Shape,
    mut rx: UnboundedReceiver<Event>,
    want_logprobs: bool,
) -> Result<Response, ApiError> {
    let mut text = String::new();
    let mut lps = Logprobs::default();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Token {
                text: piece,
                logprobs,
                ..
            } => {
                if let Some(lp) = &logprobs {
                    shape.push_logprobs(&mut lps, lp, text.len());
                }
                text.push_str(&piece);
            }
            Event::Done {
                finish_reason,
                completion_tokens,
            } => {
                let lp = want_logprobs.then_some(&lps);
                return Ok(
                    Json(shape.complete(&text, lp, finish_reason, completion_tokens))
                        .into_response(),
                );
            }
            Event::Failed(e) => return Err(ApiError::internal(format!("generation failed: {e}"))),
        }
    }
    Err(ApiError::internal("generation ended without a result"))
}

/// Streams chunks as server-sent events. When the client goes away the response body (and with it
/// the event receiver) is dropped, which the scheduler sees as a cancellation.
fn stream(
    shape: Shape,
    rx: UnboundedReceiver<Event>,
    want_logprobs: bool,
    usage: bool,
) -> Response {
    struct St {
        shape: Shape,
        rx: UnboundedReceiver<Event>,
        pending: VecDeque<String>,
        done: bool,
        first: bool,
        offset: usize,
        want_logprobs: bool,
        usage: bool,
    }
    let st = St {
        shape,
        rx,
        pending: VecDeque::new(),
        done: false,
        first: true,
        offset: 0,
        want_logprobs,
        usage,
    };
    let events = futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(data) = st.pending.pop_front() {
                return Some((Ok::<_, Infallible>(SseEvent::default().data(data)), st));
            }
            if st.done {
                return None;
            }
            match st.rx.recv().await {
                Some(Event::Token { text, logprobs, .. }) => {
                    let mut lps = Logprobs::default();
                    if let Some(lp) = &logprobs {
                        st.shape.push_logprobs(&mut lps, lp, st.offset);
                    }
                    st.offset += text.len();
                    if !text.is_empty() || (st.want_logprobs && logprobs.is_some()) || st.first {
                        let lp = (st.want_logprobs && logprobs.is_some()).then_some(&lps);
                        let chunk = st.shape.chunk(&text, lp, None, st.first);
                        st.first = false;
                        st.pending.push_back(chunk.to_string());
                    }
                }
                Some(Event::Done {
                    finish_reason,
                    completion_tokens,
                }) => {
                    let chunk = st.shape.chunk("", None, Some(finish_reason), st.first);
                    st.pending.push_back(chunk.to_string());
                    if st.usage {
                        let u = st.shape.usage_chunk(completion_tokens);
                        st.pending.push_back(u.to_string());
                    }
                    st.pending.push_back("[DONE]".into());
                    st.done = true;
                }
                Some(Event::Failed(e)) => {
                    let err = ApiError::internal(format!("generation failed: {e}"));
                    st.pending.push_back(err.body().to_string());
                    st.pending.push_back("[DONE]".into());
                    st.done = true;
                }
                None => {
                    let err = ApiError::internal("generation ended without a result");
                    st.pending.push_back(err.body().to_string());
                    st.pending.push_back("[DONE]".into());
                    st.done = true;
                }
            }
        }
    });
    Sse::new(events).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::{default_model, load_model};

    fn state(max_context: usize, max_tokens: usize) -> AppState {
        let model = load_model(&default_model(), Some(1), None).unwrap();
        let metrics = Arc::new(Metrics::default());
        let config = super::super::scheduler::Config {
            max_batch: 1,
            max_queue: 1,
            prefill_chunk: 16,
        };
        AppState {
            scheduler: super::super::scheduler::spawn(model.clone(), config, metrics.clone())
                .unwrap(),
            model,
            model_id: "demo".into(),
            metrics,
            limits: Limits {
                body_bytes: 1 << 20,
                max_tokens,
                max_context,
            },
            api_key: None,
            started: 0,
            next_id: Default::default(),
        }
    }

    fn check(
        state: &AppState,
        endpoint: Endpoint,
        body: serde_json::Value,
    ) -> Result<(Vec<u32>, GenerateOptions, usize), ApiError> {
        let req = api::parse(endpoint, body.to_string().as_bytes())?;
        prepare(state, &req)
    }

    #[test]
    fn limits_and_the_model_are_checked_before_generation() {
        let s = state(64, 40);
        let (ids, opts, ctx) = check(
            &s,
            Endpoint::Completions,
            json!({"model": "demo", "prompt": "def f():", "max_tokens": 5, "seed": 9, "temperature": 0.5}),
        )
        .unwrap();
        assert!(!ids.is_empty() && ctx == 64);
        assert_eq!(opts.max_new_tokens, 5);
        assert_eq!((opts.sampler.seed, opts.sampler.temperature), (9, 0.5));
        // The model's end-of-sequence id stops generation unless ignore_eos.
        assert_eq!(opts.stop_tokens, s.model.eos_token_ids());
        let (_, opts, _) = check(
            &s,
            Endpoint::Completions,
            json!({"model": "demo", "prompt": "x", "ignore_eos": true}),
        )
        .unwrap();
        assert!(opts.stop_tokens.is_empty());
        // No max_tokens: the policy's, capped by the room in the context and the server's limit.
        assert!(opts.max_new_tokens <= 40);

        let err = |body: serde_json::Value, endpoint| check(&s, endpoint, body).unwrap_err();
        let e = err(
            json!({"model": "other", "prompt": "x"}),
            Endpoint::Completions,
        );
        assert_eq!(
            (e.status, e.code),
            (StatusCode::NOT_FOUND, Some("model_not_found"))
        );
        let e = err(
            json!({"model": "demo", "prompt": "x", "max_tokens": 41}),
            Endpoint::Completions,
        );
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        let long = "def f(x):\n    return x\n".repeat(20);
        let e = err(
            json!({"model": "demo", "prompt": long}),
            Endpoint::Completions,
        );
        assert_eq!(
            (e.param.as_deref(), e.code),
            (Some("prompt"), Some("context_length_exceeded"))
        );
        let e = err(
            json!({"model": "demo", "prompt": vec![7; 30], "max_tokens": 35}),
            Endpoint::Completions,
        );
        assert_eq!(
            (e.param.as_deref(), e.code),
            (Some("max_tokens"), Some("context_length_exceeded"))
        );
        let e = err(
            json!({"model": "demo", "prompt": [1, 5000]}),
            Endpoint::Completions,
        );
        assert_eq!(e.param.as_deref(), Some("prompt"));
        let e = err(
            json!({"model": "demo", "prompt": ""}),
            Endpoint::Completions,
        );
        assert_eq!(e.param.as_deref(), Some("prompt"));
        let e = err(
            json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]}),
            Endpoint::Chat,
        );
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, Some("chat_template_missing"))
        );
    }

    #[test]
    fn the_api_key_is_a_bearer_token() {
        let mut s = state(64, 40);
        let mut h = HeaderMap::new();
        assert!(authorize(&s, &h).is_ok());
        s.api_key = Some("k3y".into());
        assert_eq!(
            authorize(&s, &h).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        h.insert(header::AUTHORIZATION, "Bearer k3x".parse().unwrap());
        assert!(authorize(&s, &h).is_err());
        h.insert(header::AUTHORIZATION, "k3y".parse().unwrap());
        assert!(authorize(&s, &h).is_err());
        h.insert(header::AUTHORIZATION, "Bearer k3y".parse().unwrap());
        assert!(authorize(&s, &h).is_ok());
    }
}
