//! Text generation: token generation plus UTF-8-safe streaming and stop strings.

use std::sync::Arc;

use super::{FinishReason, GenerateOptions, Generator};
use crate::error::Result;
use crate::model::Model;
use crate::session::Session;
use crate::text::{StopMatcher, StreamDecoder, Tokenizer};

/// Text-level options on top of [`GenerateOptions`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TextOptions {
    /// The token-level options.
    pub generate: GenerateOptions,
    /// Generation ends before the first occurrence of any of these (the stop string is not returned).
    pub stop_strings: Vec<String>,
    /// Drop special tokens (such as the end-of-sequence token) from the text.
    pub skip_special_tokens: bool,
}

impl TextOptions {
    /// The text generation policy every binding uses: [`GenerateOptions::for_model`], no stop
    /// strings, special tokens (such as the end-of-sequence token) left out of the text.
    pub fn for_model(model: &Model) -> Self {
        TextOptions {
            generate: GenerateOptions::for_model(model),
            stop_strings: Vec::new(),
            skip_special_tokens: true,
        }
    }

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
                            self.finish_at_stop_string();
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
                        if stopped {
                            self.finish_at_stop_string();
                        } else {
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

    /// Ends at the stop string the matcher found (overriding a token-level reason: the text ends
    /// at the string).
    fn finish_at_stop_string(&mut self) {
        self.done = true;
        let string = self.stops.matched().unwrap_or_default().to_string();
        self.tokens.finish = None;
        self.tokens.end(FinishReason::Stop { string });
    }

    /// Ends generation early (e.g. a caller's callback asked to stop): [`FinishReason::Cancelled`].
    pub fn stop(&mut self) {
        self.done = true;
        self.tokens.stop();
    }

    /// Why generation ended; `None` while it goes on.
    pub fn finish_reason(&self) -> Option<&FinishReason> {
        if self.done {
            self.tokens.finish_reason()
        } else {
            None
        }
    }

    /// Tokens generated so far.
    pub fn produced(&self) -> usize {
        self.tokens.produced()
    }

    /// The session being generated into.
    pub fn session(&self) -> &Session {
        self.tokens.session()
    }

    /// Gives the session back (with the prompt and generated tokens in its cache).
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
