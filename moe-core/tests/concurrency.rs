//! One model shared by 8 threads, each with its own sessions, computes exactly (bit for bit) what the
//! same calls compute one after another; and random orders of prefill, decode, truncate, reset and
//! dropping sessions, run on 8 threads at once, replay identically on one thread.

mod common;

use std::sync::{Arc, Barrier};

use common::own_fixtures;
use moe_core::{LogitsMode, Model, Session, SessionParams};

const THREADS: usize = 8;

/// splitmix64: a tiny deterministic generator, one per thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One thread's script: a random sequence of operations on its own sessions. Returns every logit
/// it saw and every error message, in order, so two runs can be compared exactly.
fn script(model: &Arc<Model>, seed: u64, steps: usize) -> Vec<Vec<u32>> {
    let mut rng = Rng(seed);
    let v = model.vocab_size();
    let params = SessionParams::default().with_max_context(Some(48));
    let mut session = Session::new(model.clone(), &params).unwrap();
    let mut seen: Vec<Vec<u32>> = vec![];
    let mut record = |r: moe_core::Result<Vec<f32>>| {
        seen.push(match r {
            Ok(l) => l.iter().map(|x| x.to_bits()).collect(),
            Err(e) => e.to_string().bytes().map(u32::from).collect(),
        })
    };
    for _ in 0..steps {
        match rng.below(10) {
            0..=2 => {
                let n = 1 + rng.below(12);
                // Now and then an id past the vocabulary: an error, and nothing changes.
                let ids: Vec<u32> = (0..n).map(|_| rng.below(v + v / 16) as u32).collect();
                let mode = if rng.below(2) == 0 {
                    LogitsMode::All
                } else {
                    LogitsMode::Last
                };
                record(session.prefill(&ids, mode));
            }
            3..=6 => {
                let id = rng.below(v) as u32;
                record(session.decode(id));
            }
            7 => {
                let len = rng.below(session.len() + 2);
                record(session.truncate(len).map(|()| vec![session.len() as f32]));
            }
            8 => {
                session.reset();
                record(Ok(vec![session.kv_cache_bytes() as f32]));
            }
            _ => {
                // Drop the session (freeing its caches) and start a new one.
                session = Session::new(model.clone(), &params).unwrap();
                record(Ok(vec![]));
            }
        }
    }
    seen
}

#[test]
fn eight_threads_share_one_model_bit_for_bit() {
    for family in ["deepseek_v32", "qwen3_moe", "gpt_oss"] {
        let model = Arc::new(Model::load(own_fixtures().join(family)).unwrap());
        let prompt: Vec<u32> = (1..=20).collect();
        let sequential = |i: usize| {
            let mut s = Session::new(model.clone(), &SessionParams::default()).unwrap();
            // Each thread its own prompt prefix and continuation, so states differ.
            let mut out = s.prefill(&prompt[..4 + i], LogitsMode::All).unwrap();
            for t in 0..4 {
                out.extend(s.decode((7 * i + t) as u32).unwrap());
            }
            out
        };
        let want: Vec<Vec<f32>> = (0..THREADS).map(sequential).collect();
        let barrier = Barrier::new(THREADS);
        let got: Vec<Vec<f32>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|i| {
                    let (barrier, sequential) = (&barrier, &sequential);
                    scope.spawn(move || {
                        barrier.wait();
                        sequential(i)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for i in 0..THREADS {
            assert!(
                got[i]
                    .iter()
                    .map(|x| x.to_bits())
                    .eq(want[i].iter().map(|x| x.to_bits())),
                "{family}: thread {i} differs from its sequential run"
            );
        }
    }
}

#[test]
fn random_orders_on_eight_threads_replay_identically() {
    for family in ["deepseek_v3", "mixtral"] {
        let model = Arc::new(Model::load(own_fixtures().join(family)).unwrap());
        let steps = 60;
        let barrier = Barrier::new(THREADS);
        let concurrent: Vec<Vec<Vec<u32>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|i| {
                    let (model, barrier) = (&model, &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        script(model, 1000 + i as u64, steps)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, got) in concurrent.iter().enumerate() {
            let want = script(&model, 1000 + i as u64, steps);
            assert_eq!(got.len(), want.len());
            for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    a == b,
                    "{family}: thread {i} step {k} differs from its replay"
                );
            }
        }
    }
}
