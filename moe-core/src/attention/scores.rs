//! Softmax over a query's visible keys, with an optional sink logit in the denominator.

/// Turns `scores` into probabilities in place: `p_t = exp(s_t - m) / (Σ exp(s - m) + exp(sink - m))`,
/// with `m` the max over the scores and the sink (gpt-oss), or a plain softmax without a sink.
pub(crate) fn softmax_with_sink(scores: &mut [f32], sink: Option<f32>) {
    let mut max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if let Some(s) = sink {
        max = max.max(s);
    }
    let mut sum = 0.0f32;
    for v in scores.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    if let Some(s) = sink {
        sum += (s - max).exp();
    }
    let inv = 1.0 / sum;
    scores.iter_mut().for_each(|v| *v *= inv);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_takes_probability_mass() {
        let mut a = vec![0.0, 0.0];
        softmax_with_sink(&mut a, Some(0.0));
        assert!((a[0] - 1.0 / 3.0).abs() < 1e-6 && (a[1] - 1.0 / 3.0).abs() < 1e-6);
        let mut b = vec![0.0, 0.0];
        softmax_with_sink(&mut b, None);
        assert!((b[0] - 0.5).abs() < 1e-6);
    }
}
