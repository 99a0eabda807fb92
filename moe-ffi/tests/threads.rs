//! One model shared by sessions on several threads gives every thread the single-threaded numbers,
//! and the model handle may be freed while its sessions still run.

mod common;

use std::sync::Barrier;

use common::{fixture, CModel, Reference};

#[test]
fn one_model_many_threads() {
    let dir = fixture("deepseek_v3");
    let reference = Reference::load(&dir);
    let prompt = &reference.ids["input_ids"];
    let model = CModel::load(&dir);
    let want = model.session().prefill_all(prompt);

    const THREADS: usize = 4;
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (model, barrier, prompt) = (&model, &barrier, prompt);
                scope.spawn(move || {
                    // Different prefixes per thread, so the sessions really hold different states.
                    let cut = 1 + i * 3;
                    let mut s = model.session();
                    barrier.wait();
                    let mut got = s.prefill_all(&prompt[..cut]);
                    got.extend(s.prefill_all(&prompt[cut..]));
                    got
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            let got = h.join().unwrap();
            // Prefills split at different points run the products with different token counts,
            // hence different (SIMD) summation orders: equal to f32 rounding, not bit for bit.
            let d = common::max_abs_diff(&got, &want);
            assert!(d <= 1e-4, "thread {i}: max abs diff {d}");
        }
    });
}

#[test]
fn sessions_outlive_their_model_handle() {
    let dir = fixture("mixtral");
    let reference = Reference::load(&dir);
    let prompt = &reference.ids["input_ids"];
    let model = CModel::load(&dir);
    let want = model.session().prefill_all(prompt);
    let mut s = model.session();
    drop(model);
    assert_eq!(s.prefill_all(prompt), want);
}

#[test]
fn thread_count_parameter_sets_the_pool_and_keeps_the_numbers() {
    let dir = fixture("qwen3_moe");
    let reference = Reference::load(&dir);
    let prompt = &reference.ids["input_ids"];
    let shared = CModel::load(&dir);
    let want = shared.session().prefill_all(prompt);
    for threads in [1, 2, 3] {
        let model = CModel::load_with_threads(&dir, threads);
        assert_eq!(model.threads(), threads);
        let got = model.session().prefill_all(prompt);
        let d = common::max_abs_diff(&got, &want);
        assert!(d <= 1e-5, "threads {threads}: max abs diff {d}");
    }
    // SAFETY: NULL is refused with a status, never dereferenced.
    assert_eq!(unsafe { moe::moe_model_threads(std::ptr::null()) }, 0);
}
