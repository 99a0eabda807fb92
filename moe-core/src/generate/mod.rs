//! Token generation over a session: prefill the prompt, then sample and feed one token at a time,
//! stopping at a stop token or after `max_new_tokens`. An owning iterator, so bindings can hold it.

#[cfg(feature = "text")]
mod text;

#[cfg(feature = "text")]
pub use text::{TextGenerator, TextOptions};

use crate::error::Result;
use crate::model::LogitsMode;
use crate::sampler::{Sampler, SamplerParams};
use crate::session::Session;

/// What to generate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampler: SamplerParams,
    /// Generation ends after producing one of these (it is yielded). Defaults to none; callers usually
    /// pass the model's end-of-sequence ids.
    pub stop_tokens: Vec<u32>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 128,
            sampler: SamplerParams::default(),
            stop_tokens: Vec::new(),
        }
    }
}

impl GenerateOptions {
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
}

impl Generator {
    /// Prefills `prompt` (after whatever `session` holds) and gets ready to sample.
    pub fn new(mut session: Session, prompt: &[u32], opts: GenerateOptions) -> Result<Self> {
        let sampler = Sampler::new(opts.sampler.clone())?;
        let logits = session.prefill(prompt, LogitsMode::Last)?;
        Ok(Generator {
            session,
            sampler,
            next_logits: (opts.max_new_tokens > 0).then_some(logits),
            produced: 0,
            opts,
        })
    }

    /// The next token, or `None` when generation has ended. A full context ends generation with an error.
    pub fn next_token(&mut self) -> Result<Option<u32>> {
        let Some(logits) = self.next_logits.take() else {
            return Ok(None);
        };
        let token = self.sampler.sample(&logits, self.session.tokens())?;
        self.produced += 1;
        let stop =
            self.opts.stop_tokens.contains(&token) || self.produced >= self.opts.max_new_tokens;
        if stop {
            // Record the token so the session holds the whole sequence, without computing unused logits.
            if self.session.len() < self.session.max_context() {
                self.session.prefill(&[token], LogitsMode::None)?;
            }
        } else {
            self.next_logits = Some(self.session.decode(token)?);
        }
        Ok(Some(token))
    }

    /// Ends generation early.
    pub fn stop(&mut self) {
        self.next_logits = None;
    }

    /// Number of tokens produced so far.
    pub fn produced(&self) -> usize {
        self.produced
    }

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
