//! The one thread that owns the model: continuous batching over [`Session::decode_batch`] /
//! [`Session::prefill_batch`]. Each step feeds every active sequence at once — one token for those
//! generating, the next prompt chunk for those still prefilling — then samples each finished row
//! and streams its token back over the request's channel. New requests join between steps (up to
//! `max_batch` sequences); a request whose receiver is gone (the client disconnected) is cancelled.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use moe_core::{GenerateOptions, LogitsMode, Model, Session, SessionParams};
use tokio::sync::mpsc::UnboundedSender;

use super::error::ApiError;
use super::metrics::Metrics;
use crate::logprobs::TokenLogprobs;
use crate::sequence::{openai_finish_reason, Sequence};

/// What the scheduler sends back for a request.
#[derive(Debug)]
pub(crate) enum Event {
    /// A generated token's text (may be empty: held back by the UTF-8 decoder or a possible stop
    /// string; or text released at the end without a new token) and log-probabilities.
    Token {
        text: String,
        logprobs: Option<TokenLogprobs>,
    },
    /// Generation ended.
    Done {
        finish_reason: &'static str,
        completion_tokens: usize,
    },
    /// The step failed; the sequence is dropped.
    Failed(String),
}

/// One request for the scheduler.
pub(crate) struct Job {
    pub(crate) prompt: Vec<u32>,
    pub(crate) opts: GenerateOptions,
    pub(crate) stop_strings: Vec<String>,
    pub(crate) logprobs: Option<usize>,
    pub(crate) max_context: usize,
    pub(crate) arrived: Instant,
    pub(crate) events: UnboundedSender<Event>,
}

/// Scheduler settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    /// Most sequences stepped together.
    pub(crate) max_batch: usize,
    /// Most requests waiting (a full queue answers 503).
    pub(crate) max_queue: usize,
    /// Most prompt tokens one sequence feeds per step.
    pub(crate) prefill_chunk: usize,
}

/// The submitting side; cloned into every request handler.
#[derive(Clone)]
pub(crate) struct Handle {
    jobs: SyncSender<Job>,
    metrics: Arc<Metrics>,
}

impl Handle {
    /// Queues `job`, or refuses it with 503 when the queue is full.
    pub(crate) fn submit(&self, job: Job) -> Result<(), ApiError> {
        self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
                match e {
                    TrySendError::Full(_) => Err(ApiError::overloaded()),
                    TrySendError::Disconnected(_) => {
                        Err(ApiError::internal("the scheduler has stopped"))
                    }
                }
            }
        }
    }
}

/// Starts the scheduler thread for `model`.
pub(crate) fn spawn(
    model: Arc<Model>,
    config: Config,
    metrics: Arc<Metrics>,
) -> std::io::Result<Handle> {
    let (jobs, rx) = std::sync::mpsc::sync_channel(config.max_queue.max(1));
    let m = metrics.clone();
    std::thread::Builder::new()
        .name("moe-scheduler".into())
        .spawn(move || run(model, rx, config, m))?;
    Ok(Handle { jobs, metrics })
}

/// A sequence being served.
struct Active {
    session: Session,
    seq: Sequence,
    prompt: Vec<u32>,
    /// Prompt tokens already fed.
    fed: usize,
    /// The token to feed next once the prompt is in.
    next: Option<u32>,
    arrived: Instant,
    first_token_seen: bool,
    events: UnboundedSender<Event>,
}

impl Active {
    fn prefilling(&self) -> bool {
        self.fed < self.prompt.len()
    }

    /// What this sequence feeds in the coming step.
    fn chunk(&self, size: usize) -> &[u32] {
        if self.prefilling() {
            let end = (self.fed + size.max(1)).min(self.prompt.len());
            &self.prompt[self.fed..end]
        } else {
            self.next.as_slice()
        }
    }
}

fn admit(model: &Arc<Model>, job: Job, metrics: &Metrics) -> Option<Active> {
    let params = SessionParams::default().with_max_context(Some(job.max_context));
    let built = Session::new(model.clone(), &params).and_then(|session| {
        let tokenizer = model.tokenizer().cloned();
        let seq = Sequence::new(job.opts, tokenizer, job.stop_strings, job.logprobs)?;
        Ok((session, seq))
    });
    let (session, seq) = match built {
        Ok(x) => x,
        Err(e) => {
            let _ = job.events.send(Event::Failed(e.to_string()));
            return None;
        }
    };
    if seq.wants_no_tokens() {
        let _ = job.events.send(Event::Done {
            finish_reason: "length",
            completion_tokens: 0,
        });
        return None;
    }
    metrics
        .prompt_tokens
        .fetch_add(job.prompt.len() as u64, Ordering::Relaxed);
    Some(Active {
        session,
        seq,
        prompt: job.prompt,
        fed: 0,
        next: None,
        arrived: job.arrived,
        first_token_seen: false,
        events: job.events,
    })
}

fn run(model: Arc<Model>, jobs: Receiver<Job>, config: Config, metrics: Arc<Metrics>) {
    let mut active: Vec<Active> = Vec::new();
    loop {
        // New requests join between steps; with nothing to do, wait for one.
        while active.len() < config.max_batch {
            let job = if active.is_empty() {
                match jobs.recv() {
                    Ok(j) => j,
                    Err(_) => return, // every handle dropped: the server stopped
                }
            } else {
                match jobs.try_recv() {
                    Ok(j) => j,
                    Err(_) => break,
                }
            };
            metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
            if job.events.is_closed() {
                metrics.cancelled.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            active.extend(admit(&model, job, &metrics));
        }
        // Clients that went away cancel their sequences.
        active.retain_mut(|a| {
            let gone = a.events.is_closed();
            if gone {
                a.seq.cancel();
                metrics.cancelled.fetch_add(1, Ordering::Relaxed);
            }
            !gone
        });
        if active.is_empty() {
            continue;
        }
        step(&mut active, config, &metrics);
    }
}

/// One forward over every active sequence, then sampling and streaming.
fn step(active: &mut Vec<Active>, config: Config, metrics: &Metrics) {
    let chunks: Vec<Vec<u32>> = active
        .iter()
        .map(|a| a.chunk(config.prefill_chunk).to_vec())
        .collect();
    let all_decoding = active.iter().all(|a| !a.prefilling());
    let result = {
        let mut sessions: Vec<&mut Session> = active.iter_mut().map(|a| &mut a.session).collect();
        if all_decoding {
            let tokens: Vec<u32> = chunks.iter().map(|c| c[0]).collect();
            Session::decode_batch(&mut sessions, &tokens)
        } else {
            let refs: Vec<&[u32]> = chunks.iter().map(Vec::as_slice).collect();
            Session::prefill_batch(&mut sessions, &refs, LogitsMode::Last)
        }
    };
    metrics
        .batch_size
        .store(active.len() as u64, Ordering::Relaxed);
    metrics.steps.fetch_add(1, Ordering::Relaxed);
    metrics
        .batch_rows
        .fetch_add(active.len() as u64, Ordering::Relaxed);
    let logits = match result {
        Ok(l) => l,
        Err(e) => {
            // A failed step changes no session; it cannot be retried sensibly, so every sequence of
            // the step gets the error.
            for a in active.drain(..) {
                let _ = a.events.send(Event::Failed(e.to_string()));
            }
            return;
        }
    };
    let mut finished = vec![false; active.len()];
    for (i, a) in active.iter_mut().enumerate() {
        if a.prefilling() {
            a.fed += chunks[i].len();
            if a.prefilling() {
                continue; // the rest of the prompt comes in later steps
            }
        }
        let row = logits.row(i);
        let row: Vec<f32> = row.iter().copied().collect();
        let step = match a
            .seq
            .step(&row, a.session.tokens(), a.session.max_context())
        {
            Ok(s) => s,
            Err(e) => {
                let _ = a.events.send(Event::Failed(e.to_string()));
                finished[i] = true;
                continue;
            }
        };
        if step.token.is_some() {
            metrics.completion_tokens.fetch_add(1, Ordering::Relaxed);
            if !a.first_token_seen {
                a.first_token_seen = true;
                metrics.observe_ttft(a.arrived.elapsed().as_secs_f64());
            }
        }
        let sent = (step.token.is_none() && step.text.is_empty())
            || a.events
                .send(Event::Token {
                    text: step.text,
                    logprobs: step.logprobs,
                })
                .is_ok();
        if !sent {
            a.seq.cancel();
            metrics.cancelled.fetch_add(1, Ordering::Relaxed);
            finished[i] = true;
            continue;
        }
        match &step.finish {
            Some(reason) => {
                let _ = a.events.send(Event::Done {
                    finish_reason: openai_finish_reason(reason),
                    completion_tokens: a.seq.produced(),
                });
                finished[i] = true;
            }
            None => a.next = step.token,
        }
    }
    let mut i = 0;
    active.retain(|_| {
        i += 1;
        !finished[i - 1]
    });
}
