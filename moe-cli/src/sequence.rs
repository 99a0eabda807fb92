//! One generated sequence, stepped from outside: given the logits for its next token, it samples
//! with the library's [`Sampler`], applies the stop tokens and `max_new_tokens` of its
//! [`GenerateOptions`] and the context limit as [`moe_core::Generator`] does, and turns tokens into
//! text with [`StreamDecoder`] and [`StopMatcher`] as [`moe_core::TextGenerator`] does. The server
//! steps many of these with one batched forward; `moe run --logprobs` steps one with its own session.

use std::sync::Arc;

use moe_core::{FinishReason, GenerateOptions, Sampler, StopMatcher, StreamDecoder, Tokenizer};

use crate::logprobs::{token_logprobs, TokenLogprobs};

/// What one step produced.
#[derive(Debug)]
pub(crate) struct Step {
    /// The sampled token (`None` when the context was already full).
    pub(crate) token: Option<u32>,
    /// Its log-probabilities, when asked for.
    pub(crate) logprobs: Option<TokenLogprobs>,
    /// Text that became final with this step (may be empty).
    pub(crate) text: String,
    /// Set when the sequence ended with this step.
    pub(crate) finish: Option<FinishReason>,
}

/// The generation state of one sequence.
pub(crate) struct Sequence {
    sampler: Sampler,
    opts: GenerateOptions,
    decoder: Option<StreamDecoder>,
    stops: StopMatcher,
    /// `top_logprobs` count when log-probabilities are asked for.
    logprobs: Option<usize>,
    produced: usize,
    finish: Option<FinishReason>,
}

impl Sequence {
    /// A sequence generating with `opts`, as text when `tokenizer` is given (special tokens left
    /// out, ending before any of `stop_strings`).
    pub(crate) fn new(
        opts: GenerateOptions,
        tokenizer: Option<Arc<Tokenizer>>,
        stop_strings: Vec<String>,
        logprobs: Option<usize>,
    ) -> moe_core::Result<Self> {
        Ok(Sequence {
            sampler: Sampler::new(opts.sampler.clone())?,
            opts,
            decoder: tokenizer.map(|t| StreamDecoder::new(t, true)),
            stops: StopMatcher::new(stop_strings),
            logprobs,
            produced: 0,
            finish: None,
        })
    }

    /// Tokens generated so far.
    pub(crate) fn produced(&self) -> usize {
        self.produced
    }

    /// Why the sequence ended (`None` while it goes on).
    pub(crate) fn finish_reason(&self) -> Option<&FinishReason> {
        self.finish.as_ref()
    }

    /// Whether it asks for nothing more (`max_new_tokens == 0`).
    pub(crate) fn wants_no_tokens(&self) -> bool {
        self.opts.max_new_tokens == 0
    }

    /// Steps on `logits` `[V]` of the next token; `history` is what the session holds, `max_context`
    /// its limit. After a step with `finish` set, the caller must not step again.
    pub(crate) fn step(
        &mut self,
        logits: &[f32],
        history: &[u32],
        max_context: usize,
    ) -> moe_core::Result<Step> {
        if history.len() >= max_context {
            return self.end_without_token(FinishReason::Context);
        }
        let token = self.sampler.sample(logits, history)?;
        self.produced += 1;
        let logprobs = self.logprobs.map(|n| token_logprobs(logits, token, n));
        let mut finish = if self.opts.stop_tokens.contains(&token) {
            Some(FinishReason::Eos { token })
        } else if self.produced >= self.opts.max_new_tokens {
            Some(FinishReason::Length)
        } else {
            None
        };
        let mut text = String::new();
        if let Some(decoder) = self.decoder.as_mut() {
            let mut pieces = Vec::new();
            pieces.extend(decoder.push(token)?);
            if finish.is_some() {
                pieces.extend(decoder.flush()?);
            }
            for piece in pieces {
                let (out, stopped) = self.stops.push(&piece);
                text.push_str(&out);
                if stopped {
                    let string = self.stops.matched().unwrap_or_default().to_string();
                    finish = Some(FinishReason::Stop { string });
                    break;
                }
            }
            if finish.is_some() && !matches!(finish, Some(FinishReason::Stop { .. })) {
                text.push_str(&self.stops.finish());
            }
        }
        self.finish = finish.clone();
        Ok(Step {
            token: Some(token),
            logprobs,
            text,
            finish,
        })
    }

    /// Ends early: the client went away or the server stops.
    pub(crate) fn cancel(&mut self) {
        self.finish.get_or_insert(FinishReason::Cancelled);
    }

    fn end_without_token(&mut self, reason: FinishReason) -> moe_core::Result<Step> {
        let mut text = String::new();
        if let Some(decoder) = self.decoder.as_mut() {
            if let Some(piece) = decoder.flush()? {
                let (out, stopped) = self.stops.push(&piece);
                text.push_str(&out);
                if !stopped {
                    text.push_str(&self.stops.finish());
                }
            } else {
                text.push_str(&self.stops.finish());
            }
        }
        self.finish = Some(reason.clone());
        Ok(Step {
            token: None,
            logprobs: None,
            text,
            finish: Some(reason),
        })
    }
}

/// The OpenAI `finish_reason` of a library one.
pub(crate) fn openai_finish_reason(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Length | FinishReason::Context => "length",
        _ => "stop",
    }
}
