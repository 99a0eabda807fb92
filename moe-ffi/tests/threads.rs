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
            let d = common::max_abs_diff(&got, &want);
            assert!(d <= 1e-5, "thread {i}: max abs diff {d}");
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
