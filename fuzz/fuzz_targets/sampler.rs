//! The sampler: parameters from the input through the builder methods, `Sampler::new`, then
//! `sample` over arbitrary logits (NaN and infinities included) and histories (ids past the
//! logits included). Valid parameters give a sampler; every sample is a typed error or an id
//! inside the logits; the same seed gives the same tokens.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moe_core::{Sampler, SamplerParams};
use moe_fuzz::Reader;

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let params = SamplerParams::default()
        .with_temperature(r.param())
        .with_top_k(match r.u8() % 3 {
            0 => 0,
            1 => usize::from(r.u8()),
            _ => r.u64() as usize,
        })
        .with_top_p(r.param())
        .with_min_p(r.param())
        .with_repetition_penalty(r.param())
        .with_seed(r.u64());
    let valid = params.validate().is_ok();
    let Ok(mut sampler) = Sampler::new(params.clone()) else {
        assert!(!valid, "validate accepts what Sampler::new refuses");
        return;
    };
    assert!(valid, "Sampler::new accepts what validate refuses");
    let mut twin = Sampler::new(params).expect("the same parameters again");
    for _ in 0..4 {
        if r.is_empty() {
            break;
        }
        let n = r.len(512);
        let logits: Vec<f32> = (0..n)
            .map(|_| match r.u8() % 4 {
                0 => r.f32(),
                1 => [
                    f32::NAN,
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                    f32::MAX,
                    f32::MIN,
                ][usize::from(r.u8() % 5)],
                _ => f32::from(r.u8() as i8) / 8.0,
            })
            .collect();
        let h = r.len(32);
        let history: Vec<u32> = (0..h)
            .map(|_| if r.bool() { r.u32() } else { u32::from(r.u8()) })
            .collect();
        let a = sampler.sample(&logits, &history);
        let b = twin.sample(&logits, &history);
        match (&a, &b) {
            (Ok(x), Ok(y)) => {
                assert!((*x as usize) < n, "token {x} out of {n} logits");
                assert_eq!(x, y, "same seed, same inputs, different tokens");
            }
            (Err(_), Err(_)) => assert!(n == 0, "error on {n} logits: {a:?}"),
            _ => panic!("same seed, different outcomes: {a:?} / {b:?}"),
        }
    }
});
