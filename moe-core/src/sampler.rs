//! A seeded sampler: greedy, temperature, top-k, top-p, min-p and repetition penalty.

use crate::error::{Error, Result};

/// Sampling options. `temperature == 0` is greedy.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SamplerParams {
    /// Softmax temperature; 0 is greedy.
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches `top_p` (1 = all).
    pub top_p: f32,
    /// Drop tokens whose probability is below `min_p` times the top one (0 = none).
    pub min_p: f32,
    /// Divide positive / multiply negative logits of already-seen tokens (1 = off), as transformers does.
    pub repetition_penalty: f32,
    /// Random seed (same seed, logits and history: same token).
    pub seed: u64,
}

impl Default for SamplerParams {
    fn default() -> Self {
        SamplerParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            seed: 0,
        }
    }
}

impl SamplerParams {
    /// With softmax temperature `t` (0 = greedy).
    pub fn with_temperature(mut self, t: f32) -> Self {
        self.temperature = t;
        self
    }

    /// Keeping the `k` most likely tokens (0 = all).
    pub fn with_top_k(mut self, k: usize) -> Self {
        self.top_k = k;
        self
    }

    /// Keeping the smallest set whose probability reaches `p`.
    pub fn with_top_p(mut self, p: f32) -> Self {
        self.top_p = p;
        self
    }

    /// Dropping tokens below `p` times the top probability.
    pub fn with_min_p(mut self, p: f32) -> Self {
        self.min_p = p;
        self
    }

    /// With repetition penalty `r` (1 = off).
    pub fn with_repetition_penalty(mut self, r: f32) -> Self {
        self.repetition_penalty = r;
        self
    }

    /// With random seed `seed`.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks ranges; a sampler is only built from valid parameters.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidArgument(m.into()));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("temperature must be a finite number >= 0");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p must be in (0, 1]");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p must be in [0, 1]");
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad("repetition_penalty must be a positive number");
        }
        Ok(())
    }
}

/// Picks tokens from logits; deterministic for a given seed.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplerParams,
    state: u64,
}

impl Sampler {
    /// A sampler with `params` (checked by [`SamplerParams::validate`]).
    pub fn new(params: SamplerParams) -> Result<Self> {
        params.validate()?;
        let state = params.seed ^ 0x9E37_79B9_7F4A_7C15;
        Ok(Sampler { params, state })
    }

    /// The parameters this sampler was built with.
    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// splitmix64 → uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Chooses the next token from `logits` `[V]`, penalising tokens in `history`. Fails on empty
    /// logits or more than `u32::MAX` of them.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> Result<u32> {
        if logits.is_empty() || u32::try_from(logits.len()).is_err() {
            return Err(Error::InvalidArgument(format!(
                "cannot sample from {} logits",
                logits.len()
            )));
        }
        Ok(self.sample_nonempty(logits, history))
    }

    fn sample_nonempty(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let mut z = logits.to_vec();
        let p = &self.params;
        if p.repetition_penalty != 1.0 {
            let mut seen = vec![false; z.len()];
            for &t in history {
                if let Some(s) = seen.get_mut(t as usize) {
                    *s = true;
                }
            }
            for (v, s) in z.iter_mut().zip(seen) {
                if s {
                    *v = if *v > 0.0 {
                        *v / p.repetition_penalty
                    } else {
                        *v * p.repetition_penalty
                    };
                }
            }
        }
        if p.temperature == 0.0 {
            return argmax(&z) as u32;
        }
        // Candidates sorted by logit, largest first (ties: lower id first).
        let mut idx: Vec<usize> = (0..z.len()).collect();
        idx.sort_by(|&a, &b| crate::kernels::descending(z[a], z[b]).then(a.cmp(&b)));
        if p.top_k > 0 {
            idx.truncate(p.top_k);
        }
        let max = z[idx[0]];
        let mut probs: Vec<f64> = idx
            .iter()
            .map(|&i| (((z[i] - max) / p.temperature) as f64).exp())
            .collect();
        let sum: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|q| *q /= sum);
        let mut keep = probs.len();
        if p.min_p > 0.0 {
            let floor = probs[0] * p.min_p as f64;
            keep = keep.min(probs.iter().take_while(|&&q| q >= floor).count().max(1));
        }
        if p.top_p < 1.0 {
            let mut acc = 0.0;
            let mut n = 0;
            for q in &probs[..keep] {
                acc += q;
                n += 1;
                if acc >= p.top_p as f64 {
                    break;
                }
            }
            keep = n.max(1);
        }
        let total: f64 = probs[..keep].iter().sum();
        let mut r = self.next_f64() * total;
        for (j, q) in probs[..keep].iter().enumerate() {
            r -= q;
            if r < 0.0 {
                return idx[j] as u32;
            }
        }
        idx[keep - 1] as u32
    }
}

/// Index of the largest value (first one on ties).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_picks_argmax_and_penalty_can_change_it() {
        let mut s = Sampler::new(SamplerParams::default()).unwrap();
        assert_eq!(s.sample(&[0.1, 2.0, 1.9], &[]).unwrap(), 1);
        let mut s = Sampler::new(SamplerParams {
            repetition_penalty: 2.0,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.sample(&[0.1, 2.0, 1.9], &[1]).unwrap(), 2);
    }

    #[test]
    fn same_seed_same_tokens_and_top_k_one_is_greedy() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let p = SamplerParams {
            temperature: 1.0,
            seed: 42,
            ..Default::default()
        };
        let a: Vec<u32> = {
            let mut s = Sampler::new(p.clone()).unwrap();
            (0..20).map(|_| s.sample(&logits, &[]).unwrap()).collect()
        };
        let b: Vec<u32> = {
            let mut s = Sampler::new(p.clone()).unwrap();
            (0..20).map(|_| s.sample(&logits, &[]).unwrap()).collect()
        };
        assert_eq!(a, b);
        assert!(a.iter().any(|&t| t != a[0]), "temperature 1 should vary");
        let mut s = Sampler::new(SamplerParams { top_k: 1, ..p }).unwrap();
        assert_eq!(s.sample(&logits, &[]).unwrap() as usize, argmax(&logits));
    }

    #[test]
    fn top_p_and_min_p_cut_the_tail() {
        let logits = [10.0, 9.0, -10.0, -10.0];
        for params in [
            SamplerParams {
                temperature: 1.0,
                top_p: 0.5,
                seed: 1,
                ..Default::default()
            },
            SamplerParams {
                temperature: 1.0,
                min_p: 0.5,
                seed: 1,
                ..Default::default()
            },
        ] {
            let mut s = Sampler::new(params).unwrap();
            for _ in 0..200 {
                assert!(s.sample(&logits, &[]).unwrap() < 2);
            }
        }
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        assert!(Sampler::new(SamplerParams {
            temperature: -1.0,
            ..Default::default()
        })
        .is_err());
        assert!(Sampler::new(SamplerParams {
            top_p: 0.0,
            ..Default::default()
        })
        .is_err());
        assert!(Sampler::new(SamplerParams {
            repetition_penalty: 0.0,
            ..Default::default()
        })
        .is_err());
    }
}
