//! Stepping several sessions of one model as one forward: batched decode and continuous batching.
//!
//! Each call takes whichever sessions step now, so sessions join and leave between steps, and a
//! long prompt can be fed in chunks interleaved with the decode steps of the others. Each session
//! keeps its own caches and position; the weights of a step are read once for all of them.

use ndarray::Array2;

use super::Session;
use crate::error::{Error, Result};
use crate::model::{LogitsMode, SeqStep};

impl Session {
    /// Feeds `tokens[i]` to `sessions[i]`, all in one forward; returns the next-token logits
    /// `[B, V]`, row `i` for `sessions[i]` (what `sessions[i].decode(tokens[i])` returns, to f32
    /// rounding). Fails, changing no session, as [`prefill_batch`](Self::prefill_batch) does.
    pub fn decode_batch(sessions: &mut [&mut Session], tokens: &[u32]) -> Result<Array2<f32>> {
        let chunks: Vec<&[u32]> = tokens.iter().map(std::slice::from_ref).collect();
        Self::prefill_batch(sessions, &chunks, LogitsMode::Last)
    }

    /// Feeds `chunks[i]` (a prompt chunk or one token) to `sessions[i]`, all in one forward. Returns
    /// the logits of each chunk's last position `[B, V]` (`LogitsMode::Last`), of every new position
    /// `[Σ Tᵢ, V]`, the chunks' rows one after another (`All`), or `[0, V]` (`None`); each
    /// session's rows are what it would get from [`prefill`](Self::prefill) alone (to f32 rounding).
    ///
    /// Fails, changing no session, when the batch is empty or `chunks` does not match `sessions` in
    /// length ([`Error::InvalidArgument`]), when a session runs another model than the first
    /// ([`Error::MixedModels`]), or on a chunk [`prefill`](Self::prefill) would refuse (empty, out
    /// of the vocabulary, [`Error::ContextFull`]).
    pub fn prefill_batch(
        sessions: &mut [&mut Session],
        chunks: &[&[u32]],
        logits: LogitsMode,
    ) -> Result<Array2<f32>> {
        Self::step_batch(sessions, chunks, logits).map(|(l, _)| l)
    }

    /// [`prefill_batch`](Self::prefill_batch), also returning the bytes of routed-expert weights
    /// the step read (per MoE layer, each expert chosen by any row, once).
    pub(crate) fn step_batch(
        sessions: &mut [&mut Session],
        chunks: &[&[u32]],
        logits: LogitsMode,
    ) -> Result<(Array2<f32>, usize)> {
        let Some(first) = sessions.first() else {
            return Err(Error::InvalidArgument("a batch needs a session".into()));
        };
        if chunks.len() != sessions.len() {
            return Err(Error::InvalidArgument(format!(
                "{} chunks for {} sessions",
                chunks.len(),
                sessions.len()
            )));
        }
        let model = first.model.clone();
        for (index, (s, chunk)) in sessions.iter().zip(chunks).enumerate() {
            if !std::sync::Arc::ptr_eq(&s.model, &model) {
                return Err(Error::MixedModels { index });
            }
            s.check(chunk)?;
        }
        let mut steps: Vec<SeqStep<'_>> = sessions
            .iter_mut()
            .zip(chunks)
            .map(|(s, ids)| SeqStep {
                ids,
                cache: &mut s.cache,
                mode: s.sparse_mode,
            })
            .collect();
        let out = model.forward_batch(&mut steps, logits)?;
        drop(steps);
        for (s, chunk) in sessions.iter_mut().zip(chunks) {
            s.tokens.extend_from_slice(chunk);
        }
        let v = model.vocab_size();
        let n = out.logits.len() / v;
        let l = Array2::from_shape_vec((n, v), out.logits)
            .map_err(|e| Error::InvalidArgument(format!("logits shape: {e}")))?;
        Ok((l, out.expert_bytes))
    }
}
