//! Log-probabilities from logits: `log_softmax` in f64, the chosen token's and the `n` most likely.

/// The log-probabilities of one generated token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TokenLogprobs {
    /// The chosen token and its log-probability.
    pub(crate) token: u32,
    pub(crate) logprob: f64,
    /// The `n` most likely tokens, most likely first (ties: lower id first).
    pub(crate) top: Vec<(u32, f64)>,
}

/// `log Σ exp(logits)` in f64 (`-inf` for no logits or all `-inf`).
fn log_sum_exp(logits: &[f32]) -> f64 {
    let max = logits
        .iter()
        .map(|&x| x as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    max + sum.ln()
}

/// The log-probability of `token` and of the `n` most likely tokens under `softmax(logits)` (the
/// model's distribution, before temperature or truncation).
pub(crate) fn token_logprobs(logits: &[f32], token: u32, n: usize) -> TokenLogprobs {
    let lse = log_sum_exp(logits);
    let lp = |i: usize| logits.get(i).map_or(f64::NEG_INFINITY, |&x| x as f64 - lse);
    let mut order: Vec<usize> = (0..logits.len()).collect();
    let n = n.min(logits.len());
    let by_logit = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b));
    if n > 0 && n < order.len() {
        order.select_nth_unstable_by(n - 1, by_logit);
    }
    order.truncate(n);
    order.sort_by(by_logit);
    TokenLogprobs {
        token,
        logprob: lp(token as usize),
        top: order.into_iter().map(|i| (i as u32, lp(i))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_probabilities_are_normalised_and_ordered() {
        let logits = [1.0f32, 3.0, 2.0, 3.0, -1.0];
        let t = token_logprobs(&logits, 2, 3);
        let total: f64 = (0..5)
            .map(|i| token_logprobs(&logits, i, 0).logprob.exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-12);
        let z: f64 = logits.iter().map(|&x| (x as f64).exp()).sum();
        assert!((t.logprob - (2.0 - z.ln())).abs() < 1e-12);
        let ids: Vec<u32> = t.top.iter().map(|&(i, _)| i).collect();
        assert_eq!(ids, vec![1, 3, 2]);
        assert!(t.top[0].1 >= t.top[2].1);
    }

    #[test]
    fn large_logits_do_not_overflow() {
        let t = token_logprobs(&[1000.0, 1000.0], 0, 5);
        assert!((t.logprob - 0.5f64.ln()).abs() < 1e-12);
        assert_eq!(t.top.len(), 2);
    }
}
