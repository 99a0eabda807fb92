//! Incremental detokenisation for streaming: emits text only once it is complete UTF-8 and stable, so a
//! byte-level BPE token that holds half a character never produces a broken piece.

use std::sync::Arc;

use super::Tokenizer;
use crate::error::Result;

/// Turns a stream of ids into text pieces whose concatenation equals `decode(all ids)`.
#[derive(Debug)]
pub struct StreamDecoder {
    tokenizer: Arc<Tokenizer>,
    ids: Vec<u32>,
    /// Start of the ids re-decoded for context (so spacing rules see the previous token).
    prefix_offset: usize,
    /// Ids before this index have been emitted.
    read_offset: usize,
    skip_special_tokens: bool,
}

impl StreamDecoder {
    /// A decoder over `tokenizer`, leaving special tokens out when `skip_special_tokens`.
    pub fn new(tokenizer: Arc<Tokenizer>, skip_special_tokens: bool) -> Self {
        StreamDecoder {
            tokenizer,
            ids: Vec::new(),
            prefix_offset: 0,
            read_offset: 0,
            skip_special_tokens,
        }
    }

    /// Adds one id; returns the new text it completes, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let prefix = self.tokenizer.decode(
            &self.ids[self.prefix_offset..self.read_offset],
            self.skip_special_tokens,
        )?;
        let full = self
            .tokenizer
            .decode(&self.ids[self.prefix_offset..], self.skip_special_tokens)?;
        if full.len() > prefix.len() && !full.ends_with('\u{FFFD}') && full.starts_with(&prefix) {
            let piece = full[prefix.len()..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            Ok(Some(piece))
        } else {
            Ok(None)
        }
    }

    /// Whatever is still held back (e.g. an incomplete character at the very end).
    pub fn flush(&mut self) -> Result<Option<String>> {
        if self.read_offset == self.ids.len() {
            return Ok(None);
        }
        let prefix = self.tokenizer.decode(
            &self.ids[self.prefix_offset..self.read_offset],
            self.skip_special_tokens,
        )?;
        let full = self
            .tokenizer
            .decode(&self.ids[self.prefix_offset..], self.skip_special_tokens)?;
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        let piece = full.get(prefix.len()..).unwrap_or("").to_string();
        Ok((!piece.is_empty()).then_some(piece))
    }
}
