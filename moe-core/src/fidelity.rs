//! How far a model's predictions moved from a reference's: the same token stream through both, with
//! per-position KL divergence of the next-token distributions (as `llama-perplexity
//! --kl-divergence` reports it), top-1 agreement and both perplexities.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::{LogitsMode, Model};
use crate::session::{Session, SessionParams};

/// Positions run per prefill (bounds the logits held: `CHUNK × vocab` floats per model).
const CHUNK: usize = 64;

/// The fidelity of a candidate model to a reference over one token stream.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Fidelity {
    /// Positions compared (the stream's length).
    pub tokens: usize,
    /// Mean over positions of `KL(reference ‖ candidate)` of the softmaxed logits, in nats.
    pub kl_mean: f64,
    /// The largest per-position KL, in nats.
    pub kl_max: f64,
    /// Share of positions where both models' most likely next token is the same.
    pub top1_agreement: f64,
    /// The reference's perplexity on the stream (each token predicted from those before it).
    pub ppl_ref: f64,
    /// The candidate's perplexity on the stream.
    pub ppl: f64,
    /// Weight bytes the reference streams per decoded token ([`Model::weight_bytes_per_token`]).
    pub bytes_per_token_ref: usize,
    /// Weight bytes the candidate streams per decoded token.
    pub bytes_per_token: usize,
}

/// `log_softmax(x)` in f64.
fn log_softmax(x: &[f32]) -> Vec<f64> {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let sum: f64 = x.iter().map(|&v| (v as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    x.iter().map(|&v| v as f64 - lse).collect()
}

fn argmax(x: &[f64]) -> usize {
    crate::sampler::argmax(&x.iter().map(|&v| v as f32).collect::<Vec<_>>())
}

/// Runs `tokens` (at least 2, within both models' context) through `reference` and `candidate` (same
/// vocabulary) and compares their next-token distributions at every position.
pub fn fidelity(
    reference: &Arc<Model>,
    candidate: &Arc<Model>,
    tokens: &[u32],
) -> Result<Fidelity> {
    if tokens.len() < 2 {
        return Err(Error::InvalidArgument(
            "fidelity needs a stream of at least 2 tokens".into(),
        ));
    }
    let v = reference.vocab_size();
    if candidate.vocab_size() != v {
        return Err(Error::InvalidArgument(format!(
            "the models' vocabularies differ ({v} and {})",
            candidate.vocab_size()
        )));
    }
    let params = SessionParams::default();
    let mut a = Session::new(reference.clone(), &params)?;
    let mut b = Session::new(candidate.clone(), &params)?;
    let (mut kl_sum, mut kl_max, mut agree) = (0.0f64, 0.0f64, 0usize);
    let (mut nll_ref, mut nll) = (0.0f64, 0.0f64);
    for (c, chunk) in tokens.chunks(CHUNK).enumerate() {
        let la = a.prefill(chunk, LogitsMode::All)?; // [T, V]
        let lb = b.prefill(chunk, LogitsMode::All)?; // [T, V]
        for (i, (ra, rb)) in la.chunks_exact(v).zip(lb.chunks_exact(v)).enumerate() {
            let (pa, pb) = (log_softmax(ra), log_softmax(rb));
            let kl: f64 = pa
                .iter()
                .zip(&pb)
                .map(|(&x, &y)| x.exp() * (x - y))
                .sum::<f64>()
                .max(0.0);
            kl_sum += kl;
            kl_max = kl_max.max(kl);
            agree += usize::from(argmax(&pa) == argmax(&pb));
            if let Some(&next) = tokens.get(c * CHUNK + i + 1) {
                nll_ref -= pa[next as usize];
                nll -= pb[next as usize];
            }
        }
    }
    let n = tokens.len() as f64;
    let predicted = n - 1.0;
    Ok(Fidelity {
        tokens: tokens.len(),
        kl_mean: kl_sum / n,
        kl_max,
        top1_agreement: agree as f64 / n,
        ppl_ref: (nll_ref / predicted).exp(),
        ppl: (nll / predicted).exp(),
        bytes_per_token_ref: reference.weight_bytes_per_token(),
        bytes_per_token: candidate.weight_bytes_per_token(),
    })
}
