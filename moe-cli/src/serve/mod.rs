//! `moe serve`: an OpenAI-compatible HTTP server (axum + tokio) over one model. Requests are
//! parsed and checked on the async side; one scheduler thread owns the model and steps every
//! active sequence together (continuous batching on the batch API), streaming tokens back.

mod api;
mod error;
mod metrics;
mod response;
mod routes;
mod scheduler;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use clap::Args;

use moe_core::Precision;

use crate::common::{load_model, model_dir};
use metrics::Metrics;
use routes::{AppState, Limits};

/// `moe serve` options.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Checkpoint folder; default: the shipped demo model.
    #[arg(long, short)]
    model: Option<PathBuf>,
    /// Address to listen on. Anything but a loopback address needs --api-key.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Worker threads of the model (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// How activations meet bf16 weights: f32 (the exact mode), bf16 or int8 (default: the
    /// library's, bf16 activations for bf16 weights).
    #[arg(long, value_name = "f32|bf16|int8")]
    precision: Option<Precision>,
    /// Most sequences stepped together.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    max_batch: u32,
    /// Most requests waiting for a place in the batch; beyond, 503 with Retry-After.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_queue: u32,
    /// Most tokens of context per request, prompt plus completion (default: the model's).
    #[arg(long)]
    max_context: Option<usize>,
    /// Most tokens one request may generate (default: the context).
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Most prompt tokens a sequence prefills per step, so prompts interleave with decoding.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    prefill_chunk: u32,
    /// Require `Authorization: Bearer KEY` on /v1/* and /metrics.
    #[arg(long)]
    api_key: Option<String>,
    /// The model id clients pass as `model` (default: the checkpoint folder's name).
    #[arg(long)]
    served_model_name: Option<String>,
}

pub(crate) fn serve(a: ServeArgs) -> Result<(), String> {
    let dir = model_dir(&a.model);
    let model = load_model(&dir, a.threads, a.precision)?;
    let trained = model.config().max_position_embeddings;
    let max_context = a.max_context.unwrap_or(trained);
    if max_context < 2 {
        return Err("--max-context must be at least 2".into());
    }
    let model_id = match a.served_model_name.clone() {
        Some(n) => n,
        None => dir
            .canonicalize()
            .unwrap_or(dir.clone())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "moe".into()),
    };
    let metrics = Arc::new(Metrics::default());
    let scheduler = scheduler::spawn(
        model.clone(),
        scheduler::Config {
            max_batch: a.max_batch as usize,
            max_queue: a.max_queue as usize,
            prefill_chunk: a.prefill_chunk as usize,
        },
        metrics.clone(),
    )
    .map_err(|e| format!("cannot start the scheduler thread: {e}"))?;
    let state = Arc::new(AppState {
        model: model.clone(),
        model_id: model_id.clone(),
        scheduler,
        metrics,
        limits: Limits {
            body_bytes: a.max_body_bytes,
            max_tokens: a.max_tokens.unwrap_or(max_context),
            max_context,
        },
        api_key: a.api_key.clone(),
        started: routes::now(),
        next_id: Default::default(),
    });
    let app = router(state);

    // A small runtime: HTTP work is light, the cores belong to the model.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind((a.host.as_str(), a.port))
            .await
            .map_err(|e| format!("cannot listen on {}:{}: {e}", a.host, a.port))?;
        let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
        if !addr.ip().is_loopback() && a.api_key.is_none() {
            return Err(format!(
                "refusing to listen on {addr} without --api-key: anything but a loopback address \
                 is reachable from other machines"
            ));
        }
        eprintln!(
            "moe serve: listening on http://{addr} (model '{model_id}' from {}, {} threads, batch {}, queue {}, context {max_context})",
            dir.display(),
            model.threads(),
            a.max_batch,
            a.max_queue,
        );
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| e.to_string())
    })
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(routes::health))
        .route("/metrics", get(routes::metrics))
        .route("/v1/models", get(routes::models))
        .route("/v1/completions", post(routes::completions))
        .route("/v1/chat/completions", post(routes::chat_completions))
        .fallback(routes::not_found)
        // The handlers read the body themselves, with the configured limit and a JSON 413.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}
