//! Token generation over a session: prefill the prompt, then sample and feed one token at a time,
//! stopping at a stop token, after `max_new_tokens`, or when the context is full. An owning iterator,
//! so bindings can hold it. `GenerateOptions::for_model` is the one generation policy every binding
//! uses.

mod finish;
#[cfg(feature = "text")]
mod text;

pub use finish::FinishReason;
#[cfg(feature = "text")]
pub use text::{TextGenerator, TextOptions};

use crate::error::Result;
use crate::model::{LogitsMode, Model};
use crate::sampler::{Sampler, SamplerParams};
use crate::session::Session;

/// What to generate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GenerateOptions {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// How each token is picked.
    pub sampler: SamplerParams,
    /// Generation ends after producing one of these (it is yielded). Defaults to none; callers usually
    /// pass the model's end-of-sequence ids.
    pub stop_tokens: Vec<u32>,
}

/// `max_new_tokens` when neither the caller nor generation_config.json gives one.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 128;

impl Default for GenerateOptions {
    /// Model-independent defaults: 128 tokens, greedy, no stop tokens. Prefer
    /// [`GenerateOptions::for_model`], which also stops at the model's end-of-sequence ids.
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: DEFAULT_MAX_NEW_TOKENS,
            sampler: SamplerParams::default(),
            stop_tokens: Vec::new(),
        }
    }
}

impl GenerateOptions {
    /// The generation policy every binding uses: `max_new_tokens` and the sampling settings of the
    /// model's generation_config.json (greedy unless it sets `do_sample`; seed 0), else 128 tokens,
    /// greedy; stopping at the model's end-of-sequence ids.
    pub fn for_model(model: &Model) -> Self {
        let g = model.generation_config();
        GenerateOptions {
            max_new_tokens: g.max_new_tokens.unwrap_or(DEFAULT_MAX_NEW_TOKENS),
            sampler: g.sampler_defaults(),
            stop_tokens: model.eos_token_ids(),
        }
    }

    /// At most `max_new_tokens` tokens, greedy, with no stop tokens.
    pub fn new(max_new_tokens: usize) -> Self {
        GenerateOptions {
            max_new_tokens,
            ..Default::default()
        }
    }

    /// These options sampling with `sampler`.
    pub fn with_sampler(mut self, sampler: SamplerParams) -> Self {
        self.sampler = sampler;
        self
    }

    /// These options ending after any of `stop_tokens`.
    pub fn with_stop_tokens(mut self, stop_tokens: Vec<u32>) -> Self {
        self.stop_tokens = stop_tokens;
        self
    }
}

/// Yields generated token ids one by one.
pub struct Generator {
    session: Session,
    sampler: Sampler,
    /// Logits for the next token `[V]`; `None` once finished.
    next_logits: Option<Vec<f32>>,
    produced: usize,
    opts: GenerateOptions,
    /// Set when generation ends.
    finish: Option<FinishReason>,
}

impl Generator {
    /// Prefills `prompt` (after whatever `session` holds) and gets ready to sample.
    pub fn new(mut session: Session, prompt: &[u32], opts: GenerateOptions) -> Result<Self> {
        let sampler = Sampler::new(opts.sampler.clone())?;
        let logits = session.prefill(prompt, LogitsMode::Last)?;
        let done = opts.max_new_tokens == 0;
        Ok(Generator {
            session,
            sampler,
            next_logits: (!done).then_some(logits),
            produced: 0,
            opts,
            finish: done.then_some(FinishReason::Length),
        })
    }

    /// The next token, or `None` when generation has ended ([`finish_reason`](Self::finish_reason)
    /// says why). Every token yielded is in the session: when the context has no room for the next
    /// one, generation ends with [`FinishReason::Context`] instead.
    pub fn next_token(&mut self) -> Result<Option<u32>> {
        let Some(logits) = self.next_logits.take() else {
            return Ok(None);
        };
        if self.session.len() >= self.session.max_context() {
            self.end(FinishReason::Context);
            return Ok(None);
        }
        let token = self.sampler.sample(&logits, self.session.tokens())?;
        self.produced += 1;
        let end = if self.opts.stop_tokens.contains(&token) {
            Some(FinishReason::Eos { token })
        } else if self.produced >= self.opts.max_new_tokens {
            Some(FinishReason::Length)
        } else {
            None
        };
        match end {
            Some(reason) => {
                // Record the token so the session holds the whole sequence, without unused logits.
                self.session.prefill(&[token], LogitsMode::None)?;
                self.end(reason);
            }
            None => self.next_logits = Some(self.session.decode(token)?),
        }
        Ok(Some(token))
    }

    /// Ends generation early ([`FinishReason::Cancelled`] unless it had already ended).
    pub fn stop(&mut self) {
        self.end(FinishReason::Cancelled);
    }

    /// Ends generation with `reason` unless it had already ended.
    pub(crate) fn end(&mut self, reason: FinishReason) {
        self.next_logits = None;
        if self.finish.is_none() {
            log::debug!("generation ended: {reason} after {} tokens", self.produced);
            self.finish = Some(reason);
        }
    }

    /// Why generation ended; `None` while it goes on.
    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.finish.as_ref()
    }

    /// Number of tokens produced so far.
    pub fn produced(&self) -> usize {
        self.produced
    }

    /// The session being generated into.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Gives the session back (with the prompt and generated tokens in its cache).
    pub fn into_session(self) -> Session {
        self.session
    }
}

impl Iterator for Generator {
    type Item = Result<u32>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_token().transpose()
    }
}
