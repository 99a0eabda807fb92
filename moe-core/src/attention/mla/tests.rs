//! The batched-heads latent attention against the per-head computation it replaced.

use super::*;
use crate::attention::Attention;
use crate::cache::KvDType;
use crate::kernels::{build_pool, Precision};
use crate::model::Model;

/// Layer `layer`'s MLA of a fixture model.
fn fixture_mla(name: &str, layer: usize) -> Mla {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name);
    let model = Model::load(&dir).unwrap();
    match &model.layers[layer].self_attn {
        Attention::Mla(m) => m.clone(),
        _ => panic!("{name} layer {layer} is not MLA"),
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

/// The per-head latent attention (each head runs its own products over the whole f32-decoded
/// table), as it was before the heads were stacked: `o[T, nh·dv]`.
fn per_head_reference(
    m: &Mla,
    q: &[f32],
    positions: &[usize],
    cache: &MlaCache,
    sel: Option<&Selection>,
) -> Vec<f32> {
    let t = positions.len();
    let (nh, dn, dr, dv, c) = (m.nh, m.dn, m.dr, m.dv, m.c);
    let dq = dn + dr;
    let n = cache.latent.len();
    let (lat, pe) = (cache.latent.rows(0..n), cache.k_pe.rows(0..n));
    let lat_m = MatRef::new(FloatData::F32(&lat), n, c);
    let mut o = vec![0.0f32; t * nh * dv];
    for h in 0..nh {
        let (w_uk, w_uv) = m.head_weights(h);
        let mut o_lat = vec![0.0f32; t * c];
        for i in 0..t {
            let qh = &q[i * nh * dq + h * dq..i * nh * dq + (h + 1) * dq];
            let mut ql = vec![0.0f32; c];
            kernels::matmul_n(w_uk, &qh[..dn], 1, &mut ql);
            let keys: Vec<usize> = match sel {
                Some(s) => s[i].clone(),
                None => (0..=positions[i]).collect(),
            };
            let mut sc: Vec<f32> = keys
                .iter()
                .map(|&tk| {
                    let dot =
                        |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
                    m.scale
                        * (dot(&ql, &lat[tk * c..(tk + 1) * c])
                            + dot(&qh[dn..], &pe[tk * dr..(tk + 1) * dr]))
                })
                .collect();
            softmax_with_sink(&mut sc, None);
            let mut p = vec![0.0f32; n];
            for (&tk, w) in keys.iter().zip(&sc) {
                p[tk] = *w;
            }
            kernels::matmul_n(lat_m, &p, 1, &mut o_lat[i * c..(i + 1) * c]);
        }
        let mut oh = vec![0.0f32; t * dv];
        kernels::matmul_t_with(kernels::isa(), Precision::F32, w_uv, &o_lat, t, &mut oh);
        for i in 0..t {
            o[i * nh * dv + h * dv..i * nh * dv + (h + 1) * dv]
                .copy_from_slice(&oh[i * dv..(i + 1) * dv]);
        }
    }
    o
}

/// A cache of `n` random rows in `dtype`; with `fork`, the first `n / 2` rows sit in a frozen
/// segment shared with another cache (so the table is not one piece).
fn random_cache(m: &Mla, n: usize, dtype: KvDType, fork: bool, seed: &mut u64) -> MlaCache {
    let (mut cache, _) = m.new_cache();
    cache.latent.set_dtype(dtype);
    cache.k_pe.set_dtype(dtype);
    let half = if fork { n / 2 } else { n };
    cache.append(&uniform(half * m.c, seed), &uniform(half * m.dr, seed));
    if fork {
        cache.latent.freeze();
        cache.k_pe.freeze();
        let _other = cache.clone();
        cache.append(
            &uniform((n - half) * m.c, seed),
            &uniform((n - half) * m.dr, seed),
        );
    }
    cache
}

#[test]
fn stacked_heads_equal_the_per_head_computation() {
    let pool = build_pool(Some(2), Precision::F32).unwrap();
    let mut seed = 5;
    for (fixture, layer) in [("deepseek_v2", 0), ("deepseek_v32", 0)] {
        let m = fixture_mla(fixture, layer);
        let dq = m.dn + m.dr;
        for dtype in KvDType::ALL {
            for fork in [false, true] {
                for t in [1usize, 3] {
                    let n = 300;
                    let cache = random_cache(&m, n, dtype, fork, &mut seed);
                    let positions: Vec<usize> = (n - t..n).collect();
                    // Queries scaled up so that the softmax is far from uniform.
                    let q: Vec<f32> = uniform(t * m.nh * dq, &mut seed)
                        .iter()
                        .map(|v| v * 4.0)
                        .collect();
                    // DSA: the first query narrowed to a few keys, the others see all theirs.
                    let narrowed: Selection = positions
                        .iter()
                        .enumerate()
                        .map(|(i, &p)| {
                            if i == 0 {
                                (0..=p).filter(|k| k % 7 == 3).collect()
                            } else {
                                (0..=p).collect()
                            }
                        })
                        .collect();
                    for sel in [None, Some(&narrowed)] {
                        let got =
                            pool.install(|| m.attend_latent(&q, &positions, &cache, sel, false));
                        let want =
                            pool.install(|| per_head_reference(&m, &q, &positions, &cache, sel));
                        let scale = want.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                        // bf16 rows go to the bf16 kernels (activations split hi/lo in exact mode).
                        let tol = if dtype == KvDType::Bf16 { 2e-4 } else { 5e-5 };
                        let err = got
                            .iter()
                            .zip(&want)
                            .fold(0.0f32, |a, (x, y)| a.max((x - y).abs()));
                        assert!(
                            err <= tol * scale.max(1e-3),
                            "{fixture} {dtype} fork={fork} t={t} sparse={}: {err} (scale {scale})",
                            sel.is_some()
                        );
                        if sel.is_some() {
                            // skip_full leaves the full queries' rows to the expanded path.
                            let part =
                                pool.install(|| m.attend_latent(&q, &positions, &cache, sel, true));
                            let row = m.nh * m.dv;
                            assert!(part[row..].iter().all(|v| *v == 0.0));
                            assert_eq!(part[..row], got[..row]);
                        }
                    }
                }
            }
        }
    }
}
