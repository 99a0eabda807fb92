//! Text generation: token generation plus UTF-8-safe streaming and stop strings.

use std::sync::Arc;

use super::{GenerateOptions, Generator};
use crate::error::Result;
use crate::session::Session;
use crate::text::{StopMatcher, StreamDecoder, Tokenizer};

/// Text-level options on top of [`GenerateOptions`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TextOptions {
    pub generate: GenerateOptions,
    /// Generation ends before the first occurrence of any of these (the stop string is not returned).
    pub stop_strings: Vec<String>,
    /// Drop special tokens (such as the end-of-sequence token) from the text.
    pub skip_special_tokens: bool,
}

impl TextOptions {
    /// Text generation with `generate`'s token options, no stop strings, special tokens kept.
    pub fn new(generate: GenerateOptions) -> Self {
        TextOptions {
            generate,
            ..Default::default()
        }
    }

    /// These options ending before the first of `stop_strings`.
    pub fn with_stop_strings(mut self, stop_strings: Vec<String>) -> Self {
        self.stop_strings = stop_strings;
        self
    }

    /// These options dropping (`true`) or keeping special tokens in the text.
    pub fn with_skip_special_tokens(mut self, skip: bool) -> Self {
        self.skip_special_tokens = skip;
        self
    }
}

/// Yields text pieces as tokens are generated.
pub struct TextGenerator {
    tokens: Generator,
    decoder: StreamDecoder,
    stops: StopMatcher,
    done: bool,
}

impl TextGenerator {
    /// Prefills `prompt_ids` into `session` and gets ready to generate.
    pub fn new(
        session: Session,
        tokenizer: Arc<Tokenizer>,
        prompt_ids: &[u32],
        opts: TextOptions,
    ) -> Result<Self> {
        Ok(TextGenerator {
            tokens: Generator::new(session, prompt_ids, opts.generate)?,
            decoder: StreamDecoder::new(tokenizer, opts.skip_special_tokens),
            stops: StopMatcher::new(opts.stop_strings),
            done: false,
        })
    }

    /// The next non-empty text piece, or `None` at the end.
    pub fn next_piece(&mut self) -> Result<Option<String>> {
        while !self.done {
            match self.tokens.next_token()? {
                Some(id) => {
                    if let Some(piece) = self.decoder.push(id)? {
                        let (out, stopped) = self.stops.push(&piece);
                        if stopped {
                            self.finish();
                            return Ok((!out.is_empty()).then_some(out));
                        }
                        if !out.is_empty() {
                            return Ok(Some(out));
                        }
                    }
                }
                None => {
                    self.done = true;
                    let mut rest = String::new();
                    if let Some(p) = self.decoder.flush()? {
                        let (out, stopped) = self.stops.push(&p);
                        rest.push_str(&out);
                        if !stopped {
                            rest.push_str(&self.stops.finish());
                        }
                    } else {
                        rest.push_str(&self.stops.finish());
                    }
                    return Ok((!rest.is_empty()).then_some(rest));
                }
            }
        }
        Ok(None)
    }

    fn finish(&mut self) {
        self.done = true;
        self.tokens.stop();
    }

    /// Ends generation early (e.g. a caller's callback asked to stop).
    pub fn stop(&mut self) {
        self.finish();
    }

    /// Tokens generated so far.
    pub fn produced(&self) -> usize {
        self.tokens.produced()
    }

    pub fn into_session(self) -> Session {
        self.tokens.into_session()
    }
}

impl Iterator for TextGenerator {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_piece().transpose()
    }
}
