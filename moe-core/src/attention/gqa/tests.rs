//! Decode through the grouped (tiled) attention against the per-(token, head) computation.

use super::*;
use crate::attention::Attention;
use crate::cache::KvDType;
use crate::kernels::{build_pool, Precision};
use crate::model::Model;

/// Layer 0's GQA of a fixture model.
fn fixture_gqa(name: &str) -> Gqa {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name);
    let model = Model::load(&dir).unwrap();
    match &model.layers[0].self_attn {
        Attention::Gqa(g) => g.clone(),
        _ => panic!("{name} layer 0 is not GQA"),
    }
}

fn uniform(n: usize, seed: &mut u64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `attn[T, nh·d]` of each (token, head) straight from the definition: scores against every
/// visible f32-decoded key, softmax with the head's sink, weighted sum of the values.
fn reference(g: &Gqa, q: &[f32], positions: &[usize], cache: &GqaCache) -> Vec<f32> {
    let (nh, nkv, d) = (g.nh, g.nkv, g.d);
    let group = nh / nkv;
    let k0 = cache.k.start();
    let (keys, vals) = (
        cache.k.rows(k0..cache.k.len()),
        cache.v.rows(k0..cache.v.len()),
    );
    let scale = (d as f32).powf(-0.5);
    let mut attn = vec![0.0f32; positions.len() * nh * d];
    for (i, &p) in positions.iter().enumerate() {
        for h in 0..nh {
            let kvh = h / group;
            let lo = g.first_visible(p).max(k0);
            let qh = &q[i * nh * d + h * d..i * nh * d + (h + 1) * d];
            let row = |tk: usize, t: &[f32]| {
                let r = (tk - k0) * nkv * d + kvh * d;
                t[r..r + d].to_vec()
            };
            let mut sc: Vec<f32> = (lo..=p)
                .map(|tk| {
                    scale
                        * qh.iter()
                            .zip(row(tk, &keys))
                            .map(|(a, b)| a * b)
                            .sum::<f32>()
                })
                .collect();
            softmax_with_sink(&mut sc, g.sinks.as_ref().map(|s| s[h]));
            let out = &mut attn[i * nh * d + h * d..i * nh * d + (h + 1) * d];
            for (tk, w) in (lo..=p).zip(&sc) {
                for (o, v) in out.iter_mut().zip(row(tk, &vals)) {
                    *o += w * v;
                }
            }
        }
    }
    attn
}

#[test]
fn grouped_decode_equals_the_per_head_computation() {
    let pool = build_pool(Some(2), Precision::F32).unwrap();
    let mut seed = 3;
    let base = fixture_gqa("qwen3_moe");
    let (nh, kw) = (base.nh, base.nkv * base.d);
    let masks = [
        AttentionMask::Causal,
        AttentionMask::SlidingWindow(40),
        AttentionMask::Chunked(96),
    ];
    for mask in masks {
        for sinks in [false, true] {
            let mut g = base.clone();
            g.mask = mask;
            g.sinks = sinks.then(|| uniform(nh, &mut seed));
            for dtype in KvDType::ALL {
                for fork in [false, true] {
                    for t in [1usize, 3] {
                        let n = 600; // keys before the queries: more than two key blocks
                        let mut cache = GqaCache::new(kw, mask);
                        cache.k.set_dtype(dtype);
                        cache.v.set_dtype(dtype);
                        cache.append(
                            &uniform(n / 2 * kw, &mut seed),
                            &uniform(n / 2 * kw, &mut seed),
                        );
                        cache.evict();
                        if fork {
                            cache.k.freeze();
                            cache.v.freeze();
                        }
                        let _other = cache.clone();
                        cache.append(
                            &uniform(n / 2 * kw, &mut seed),
                            &uniform(n / 2 * kw, &mut seed),
                        );
                        cache.evict();
                        let positions: Vec<usize> = (n..n + t).collect();
                        let q: Vec<f32> = uniform(t * nh * base.d, &mut seed)
                            .iter()
                            .map(|v| v * 4.0)
                            .collect();
                        let (k, v) = (uniform(t * kw, &mut seed), uniform(t * kw, &mut seed));
                        let mut want_cache = cache.clone();
                        want_cache.append(&k, &v);
                        let want = reference(&g, &q, &positions, &want_cache);
                        for min_tokens in [1, usize::MAX] {
                            // 1: the grouped (tiled) path decode takes; MAX: per (token, head).
                            g.tiled_min_tokens = min_tokens;
                            let mut c = cache.clone();
                            let got = pool.install(|| g.attend(&q, &k, &v, &positions, &mut c));
                            let scale = want.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                            let err = got
                                .iter()
                                .zip(&want)
                                .fold(0.0f32, |a, (x, y)| a.max((x - y).abs()));
                            assert!(
                                err <= 5e-5 * scale.max(1e-3),
                                "{mask:?} sinks={sinks} {dtype} fork={fork} t={t} \
                                 min_tokens={min_tokens}: {err}"
                            );
                        }
                    }
                }
            }
        }
    }
}
