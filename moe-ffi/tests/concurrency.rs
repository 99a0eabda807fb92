//! Through the C ABI: one model handle shared by 8 threads, each with its own sessions, computes bit
//! for bit what the same calls compute one after another; and random orders of prefill, decode,
//! truncate, reset and free on 8 threads at once replay identically on one thread.

mod common;

use std::sync::Barrier;

use common::{fixture, CModel};
use moe::moe_status;

const THREADS: usize = 8;

/// splitmix64, one per thread.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// A raw session: created, used and freed with the C calls directly (statuses are recorded, not
/// asserted, so errors are part of what is compared).
struct Raw(*mut moe::moe_session);

impl Raw {
    fn new(model: &CModel, max_context: usize) -> Raw {
        let mut params = moe::moe_session_default_params();
        params.max_context = max_context;
        let mut s = std::ptr::null_mut();
        // SAFETY: live model handle, valid params and out-pointer.
        let st = unsafe { moe::moe_session_new(model.0, &params, &mut s) };
        assert_eq!(st, moe_status::MOE_OK);
        Raw(s)
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: a live session handle, freed once.
        unsafe { moe::moe_session_free(self.0) }
    }
}

/// One thread's random script; returns statuses and logits bits in order.
fn script(model: &CModel, seed: u64, steps: usize) -> Vec<Vec<u32>> {
    let mut rng = Rng(seed);
    let v = model.vocab();
    let mut s = Raw::new(model, 48);
    let mut seen = vec![];
    for _ in 0..steps {
        match rng.below(10) {
            0..=2 => {
                let n = 1 + rng.below(12);
                let ids: Vec<u32> = (0..n).map(|_| rng.below(v + v / 16) as u32).collect();
                let mut out = vec![0f32; v];
                // SAFETY: live handle; arrays of the stated lengths (last position's logits).
                let st = unsafe {
                    moe::moe_session_prefill(s.0, ids.as_ptr(), n, out.as_mut_ptr(), out.len())
                };
                seen.push(vec![st as u32]);
                seen.push(out.iter().map(|x| x.to_bits()).collect());
            }
            3..=6 => {
                let mut out = vec![0f32; v];
                let id = rng.below(v) as u32;
                // SAFETY: live handle; array of the stated length.
                let st = unsafe { moe::moe_session_decode(s.0, id, out.as_mut_ptr(), v) };
                seen.push(vec![st as u32]);
                seen.push(out.iter().map(|x| x.to_bits()).collect());
            }
            7 => {
                // SAFETY: live handle.
                let len = unsafe { moe::moe_session_len(s.0) };
                let to = rng.below(len + 2);
                // SAFETY: live handle.
                let st = unsafe { moe::moe_session_truncate(s.0, to) };
                // SAFETY: live handle.
                seen.push(vec![st as u32, unsafe { moe::moe_session_len(s.0) } as u32]);
            }
            8 => {
                // SAFETY: live handle.
                let st = unsafe { moe::moe_session_reset(s.0) };
                seen.push(vec![st as u32]);
            }
            _ => {
                // Free the session and start a new one.
                s = Raw::new(model, 48);
                seen.push(vec![]);
            }
        }
    }
    seen
}

#[test]
fn eight_threads_share_one_model_handle_bit_for_bit() {
    for family in ["deepseek_v32", "qwen3_moe"] {
        let model = CModel::load(&fixture(family));
        let prompt: Vec<u32> = (1..=20).collect();
        let sequential = |i: usize| {
            let mut s = model.session();
            let mut out = s.prefill_all(&prompt[..4 + i]);
            for t in 0..4 {
                out.extend(s.decode((7 * i + t) as u32));
            }
            out
        };
        let want: Vec<Vec<f32>> = (0..THREADS).map(sequential).collect();
        let barrier = Barrier::new(THREADS);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|i| {
                    let (barrier, sequential) = (&barrier, &sequential);
                    scope.spawn(move || {
                        barrier.wait();
                        sequential(i)
                    })
                })
                .collect();
            for (i, h) in handles.into_iter().enumerate() {
                let got = h.join().unwrap();
                assert!(
                    got.iter()
                        .map(|x| x.to_bits())
                        .eq(want[i].iter().map(|x| x.to_bits())),
                    "{family}: thread {i} differs from its sequential run"
                );
            }
        });
    }
}

#[test]
fn random_orders_on_eight_threads_replay_identically() {
    let model = CModel::load(&fixture("deepseek_v3"));
    let steps = 60;
    let barrier = Barrier::new(THREADS);
    let concurrent: Vec<Vec<Vec<u32>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (model, barrier) = (&model, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    script(model, 77 + i as u64, steps)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, got) in concurrent.iter().enumerate() {
        let want = script(&model, 77 + i as u64, steps);
        assert!(got == &want, "thread {i} differs from its replay");
        // Both outcomes occurred: some calls failed (ids past the vocabulary, a full context).
        assert!(got.iter().any(|e| e.len() == 1 && e[0] != 0));
    }
}
