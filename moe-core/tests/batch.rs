//! Batched stepping: sessions stepped together (`Session::prefill_batch`, `Session::decode_batch`)
//! get the logits each would get stepping alone, within 1e-5, on every fixture family — whole
//! prompts, prompt chunks mixed with decode steps, sessions joining and leaving — and bad batches
//! are typed errors that change no session.

mod common;

use std::sync::Arc;

use common::{fixture_dirs, max_abs_diff, Reference};
use moe_core::{Error, LogitsMode, Model, Session, SessionParams};

const TOL: f32 = 1e-5;

/// One sequence of a schedule: when it joins, and the chunks it feeds, one per step.
struct Plan {
    join: usize,
    chunks: Vec<Vec<u32>>,
}

/// A prompt cut into chunks of `size` (one chunk when `size` is 0), then one decode id per step.
fn plan(join: usize, prompt: &[u32], size: usize, decode: &[u32]) -> Plan {
    let mut chunks: Vec<Vec<u32>> = if size == 0 {
        vec![prompt.to_vec()]
    } else {
        prompt.chunks(size).map(<[u32]>::to_vec).collect()
    };
    chunks.extend(decode.iter().map(|&t| vec![t]));
    Plan { join, chunks }
}

/// The mode of step `s`: every position on even steps, the last one on odd steps.
fn mode(step: usize) -> LogitsMode {
    if step.is_multiple_of(2) {
        LogitsMode::All
    } else {
        LogitsMode::Last
    }
}

/// Which sequences step at `step`, with their chunk index.
fn active(plans: &[Plan], step: usize) -> Vec<(usize, usize)> {
    plans
        .iter()
        .enumerate()
        .filter(|(_, p)| step >= p.join && step - p.join < p.chunks.len())
        .map(|(i, p)| (i, step - p.join))
        .collect()
}

fn check_family(family: &str) {
    for dir in fixture_dirs(family) {
        let reference = Reference::load(&dir.join("reference.safetensors"));
        let model = Arc::new(common::load_exact(&dir).unwrap());
        let v = model.vocab_size();
        let p = &reference.ids["input_ids"];
        let d = &reference.ids["decode_ids"];
        let rev = |x: &[u32]| x.iter().rev().copied().collect::<Vec<_>>();
        let long: Vec<u32> = d.iter().chain(p.iter()).copied().collect();
        let plans = [
            // Whole prompts prefilled together, then decoding together.
            plan(0, p, 0, d),
            plan(0, &rev(p), 0, &rev(d)),
            // Joins at step 1 with chunks of 3, interleaved with the others' decode steps.
            plan(1, &long, 3, &d[..4]),
            // Joins late with chunks of 5 (leaves last); one shorter sequence that leaves early.
            plan(3, &p[..11], 5, d),
            plan(2, &p[5..9], 2, &d[..2]),
        ];
        let steps = plans
            .iter()
            .map(|pl| pl.join + pl.chunks.len())
            .max()
            .unwrap();

        // Alone: each session feeds its chunks by itself, step by step.
        let mut want: Vec<Vec<Vec<f32>>> = plans.iter().map(|_| vec![]).collect();
        let mut alone: Vec<Session> = plans
            .iter()
            .map(|_| Session::new(model.clone(), &SessionParams::default()).unwrap())
            .collect();
        for step in 0..steps {
            for (i, c) in active(&plans, step) {
                let l = alone[i].prefill(&plans[i].chunks[c], mode(step)).unwrap();
                want[i].push(l);
            }
        }

        // Together: one batch forward per step over the sessions stepping now.
        let mut batch: Vec<Session> = plans
            .iter()
            .map(|_| Session::new(model.clone(), &SessionParams::default()).unwrap())
            .collect();
        let mut worst = 0.0f32;
        let mut took = vec![0usize; plans.len()];
        for step in 0..steps {
            let act = active(&plans, step);
            let chunks: Vec<&[u32]> = act
                .iter()
                .map(|&(i, c)| plans[i].chunks[c].as_slice())
                .collect();
            let decode_only = chunks.iter().all(|c| c.len() == 1);
            let mut refs: Vec<&mut Session> = batch
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| act.iter().any(|&(j, _)| j == *i))
                .map(|(_, s)| s)
                .collect();
            let got = if decode_only && mode(step) == LogitsMode::Last {
                let toks: Vec<u32> = chunks.iter().map(|c| c[0]).collect();
                Session::decode_batch(&mut refs, &toks).unwrap()
            } else {
                Session::prefill_batch(&mut refs, &chunks, mode(step)).unwrap()
            };
            let rows_of = |n: usize| if mode(step) == LogitsMode::All { n } else { 1 };
            let total: usize = chunks.iter().map(|c| rows_of(c.len())).sum();
            assert_eq!(got.shape(), &[total, v], "{}: step {step}", dir.display());
            let flat = got.as_slice().unwrap();
            let mut at = 0;
            for (&(i, c), chunk) in act.iter().zip(&chunks) {
                let n = rows_of(chunk.len()) * v;
                let w = &want[i][c];
                let diff = max_abs_diff(&flat[at..at + n], w);
                assert!(
                    diff <= TOL,
                    "{}: step {step}, sequence {i}, chunk {c} ({} tokens, {} in the batch): \
                     max abs diff {diff}",
                    dir.display(),
                    chunk.len(),
                    act.len()
                );
                worst = worst.max(diff);
                at += n;
                took[i] += 1;
            }
        }
        for (i, s) in batch.iter().enumerate() {
            assert_eq!(took[i], plans[i].chunks.len());
            assert_eq!(s.tokens(), alone[i].tokens());
            assert_eq!(s.kv_cache_bytes(), alone[i].kv_cache_bytes());
        }
        eprintln!(
            "{}: {steps} batch steps, max abs diff {worst:.1e}",
            dir.display()
        );
    }
}

macro_rules! batched {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { check_family(stringify!($name)); })*
    };
}

batched!(
    deepseek_v2,
    deepseek_v3,
    deepseek_v32,
    deepseek_v4,
    glm4_moe,
    glm_moe_dsa,
    gpt_oss,
    llama4_text,
    minimax_m2,
    mixtral,
    qwen2_moe,
    qwen3_moe,
    qwen3_moe_tf5style,
    qwen3_5_moe,
    qwen3_5_moe_wrapped,
);

#[test]
fn every_fixture_family_is_covered() {
    let mut families: Vec<String> = std::fs::read_dir(common::own_fixtures())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("reference.safetensors").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    families.sort();
    let src = include_str!("batch.rs");
    for f in families {
        assert!(
            src.contains(&format!("    {f},\n")),
            "fixture family {f} has no batched test"
        );
    }
}

fn load_mixtral() -> Arc<Model> {
    Arc::new(common::load_exact(common::own_fixtures().join("mixtral")).unwrap())
}

#[test]
fn bad_batches_are_typed_errors_that_change_nothing() {
    let (m1, m2) = (load_mixtral(), load_mixtral());
    let params = SessionParams::default().with_max_context(Some(4));
    let mut a = Session::new(m1.clone(), &params).unwrap();
    let mut b = Session::new(m1.clone(), &params).unwrap();
    let mut other = Session::new(m2, &params).unwrap();
    a.prefill(&[1, 2], LogitsMode::None).unwrap();

    // Sessions of different models.
    let e = Session::decode_batch(&mut [&mut a, &mut other], &[3, 4]).unwrap_err();
    assert!(matches!(e, Error::MixedModels { index: 1 }), "{e}");
    // Context full: b has room, a does not (2 + 3 > 4).
    let e = Session::prefill_batch(
        &mut [&mut b, &mut a],
        &[&[1, 2], &[3, 4, 5]],
        LogitsMode::Last,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::ContextFull {
                needed: 5,
                max_context: 4
            }
        ),
        "{e}"
    );
    // Token out of range, empty chunk, mismatched lengths, empty batch.
    let e = Session::decode_batch(&mut [&mut a, &mut b], &[3, 1 << 30]).unwrap_err();
    assert!(matches!(e, Error::TokenOutOfRange { .. }), "{e}");
    let e =
        Session::prefill_batch(&mut [&mut a, &mut b], &[&[3], &[]], LogitsMode::Last).unwrap_err();
    assert!(matches!(e, Error::EmptyPrompt), "{e}");
    let e = Session::decode_batch(&mut [&mut a, &mut b], &[3]).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    let e = Session::decode_batch(&mut [], &[]).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    // Nothing moved.
    assert_eq!((a.len(), b.len(), other.len()), (2, 0, 0));
    assert_eq!(b.kv_cache_bytes(), 0);

    // And a good step still works afterwards; `None` returns no rows.
    let l =
        Session::prefill_batch(&mut [&mut a, &mut b], &[&[3], &[1, 2]], LogitsMode::None).unwrap();
    assert_eq!(l.shape(), &[0, m1.vocab_size()]);
    assert_eq!((a.len(), b.len()), (3, 2));
    // Filling the context exactly is allowed; one more is not.
    let l = Session::decode_batch(&mut [&mut a, &mut b], &[4, 3]).unwrap();
    assert_eq!(l.shape(), &[2, m1.vocab_size()]);
    let e = Session::decode_batch(&mut [&mut b, &mut a], &[4, 5]).unwrap_err();
    assert!(matches!(e, Error::ContextFull { needed: 5, .. }), "{e}");
    assert_eq!((a.len(), b.len()), (4, 3));
}

#[test]
fn a_batch_of_one_is_a_decode() {
    let m = load_mixtral();
    let mut a = Session::new(m.clone(), &SessionParams::default()).unwrap();
    let mut b = Session::new(m, &SessionParams::default()).unwrap();
    a.prefill(&[5, 6, 7], LogitsMode::None).unwrap();
    b.prefill(&[5, 6, 7], LogitsMode::None).unwrap();
    let want = a.decode(9).unwrap();
    let got = Session::decode_batch(&mut [&mut b], &[9]).unwrap();
    assert_eq!(got.as_slice().unwrap(), want.as_slice());
}

#[test]
fn the_demo_model_on_a_pool_batches_like_alone() {
    // The shipped model is large enough for its products to split over the pool's workers.
    let dir = common::repo_root().join("models/tiny-deepseek-pycode");
    let opts = moe_core::LoadOptions::default().with_compute(moe_core::ComputeOptions::new(
        Some(2),
        moe_core::Precision::F32,
    ));
    let model = Arc::new(Model::load_with(&dir, opts).unwrap());
    let prompts: [&[u32]; 4] = [
        &[1, 2, 3, 4, 5],
        &[7, 8],
        &[9, 10, 11, 12, 13, 14, 15],
        &[16],
    ];
    let new = |_| Session::new(model.clone(), &SessionParams::default()).unwrap();
    let mut alone: Vec<Session> = (0..4).map(new).collect();
    let mut batch: Vec<Session> = (0..4).map(new).collect();
    let mut want = vec![];
    for (s, p) in alone.iter_mut().zip(prompts) {
        want.extend(s.prefill(p, LogitsMode::Last).unwrap());
    }
    let mut refs: Vec<&mut Session> = batch.iter_mut().collect();
    let got = Session::prefill_batch(&mut refs, &prompts, LogitsMode::Last).unwrap();
    assert!(max_abs_diff(got.as_slice().unwrap(), &want) <= TOL);
    for step in 0..6u32 {
        let toks: Vec<u32> = (0..4).map(|i| 20 + 3 * step + i).collect();
        let want: Vec<f32> = alone
            .iter_mut()
            .zip(&toks)
            .flat_map(|(s, &t)| s.decode(t).unwrap())
            .collect();
        let got = Session::decode_batch(&mut refs, &toks).unwrap();
        let d = max_abs_diff(got.as_slice().unwrap(), &want);
        assert!(d <= TOL, "decode step {step}: max abs diff {d}");
    }
}

#[test]
fn long_chunks_take_the_expanded_and_tiled_paths_in_a_batch_too() {
    // 80-token chunks: MLA expands its latents (glm_moe_dsa, with the DSA selection narrowing most
    // queries) and GQA attends tiled (qwen3_moe, llama4_text's chunked mask), beside decode steps.
    for family in ["glm_moe_dsa", "qwen3_moe", "llama4_text"] {
        let model = Arc::new(common::load_exact(common::own_fixtures().join(family)).unwrap());
        let v = model.vocab_size() as u32;
        let long: Vec<u32> = (0..80u32).map(|i| (i * 37 + 11) % v).collect();
        let new = || Session::new(model.clone(), &SessionParams::default()).unwrap();
        let (mut a, mut b) = (new(), new());
        let (mut a2, mut b2) = (new(), new());
        let mut want = a.prefill(&[3, 4, 5], LogitsMode::All).unwrap();
        want.extend(b.prefill(&long[..70], LogitsMode::All).unwrap());
        want.extend(a.prefill(&[6], LogitsMode::All).unwrap());
        want.extend(b.prefill(&long[70..], LogitsMode::All).unwrap());
        let mut got = Session::prefill_batch(
            &mut [&mut a2, &mut b2],
            &[&[3, 4, 5], &long[..70]],
            LogitsMode::All,
        )
        .unwrap()
        .into_raw_vec_and_offset()
        .0;
        got.extend(
            Session::prefill_batch(
                &mut [&mut a2, &mut b2],
                &[&[6], &long[70..]],
                LogitsMode::All,
            )
            .unwrap()
            .into_raw_vec_and_offset()
            .0,
        );
        let d = max_abs_diff(&got, &want);
        assert!(d <= TOL, "{family}: max abs diff {d}");
    }
}
