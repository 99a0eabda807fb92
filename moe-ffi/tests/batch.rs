//! `moe_batch_prefill` / `moe_batch_decode`: sessions stepped together through the C ABI get the
//! logits each gets stepping alone through `moe_session_prefill` / `moe_session_decode` (within
//! 1e-5), for every fixture family, with sessions joining and leaving between steps; and misuse
//! (aliasing handles, mixed models, bad lengths) fails with nothing changed.

mod common;

use common::{fixture, last_error, max_abs_diff, ok, CModel, CSession, Reference, FAMILIES};
use moe::moe_status;

const TOL: f32 = 1e-5;

/// `moe_batch_prefill` over `sessions` with one chunk each; `logits_len` floats out.
fn batch_prefill(
    sessions: &[&CSession],
    chunks: &[&[u32]],
    logits_len: usize,
) -> (moe_status, Vec<f32>) {
    let ptrs: Vec<_> = sessions.iter().map(|s| s.ptr).collect();
    let cptrs: Vec<*const u32> = chunks.iter().map(|c| c.as_ptr()).collect();
    let lens: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
    let mut out = vec![-7.0f32; logits_len];
    // SAFETY: live handles; arrays of the stated lengths.
    let s = unsafe {
        moe::moe_batch_prefill(
            ptrs.as_ptr(),
            cptrs.as_ptr(),
            lens.as_ptr(),
            ptrs.len(),
            out.as_mut_ptr(),
            out.len(),
        )
    };
    (s, out)
}

/// `moe_batch_decode` over `sessions`; `[n, V]` out.
fn batch_decode(sessions: &[&CSession], tokens: &[u32], v: usize) -> (moe_status, Vec<f32>) {
    let ptrs: Vec<_> = sessions.iter().map(|s| s.ptr).collect();
    let mut out = vec![-7.0f32; tokens.len() * v];
    // SAFETY: live handles; arrays of the stated lengths.
    let s = unsafe {
        moe::moe_batch_decode(
            ptrs.as_ptr(),
            tokens.as_ptr(),
            tokens.len(),
            out.as_mut_ptr(),
            out.len(),
        )
    };
    (s, out)
}

#[test]
fn every_family_batches_like_sessions_alone() {
    for family in FAMILIES {
        let dir = fixture(family);
        let reference = Reference::load(&dir);
        let p = &reference.ids["input_ids"];
        let d = &reference.ids["decode_ids"];
        let m = CModel::load(&dir);
        let v = m.vocab();
        let next = |t: u32| (t + 1) % v as u32;
        let (mut a0, mut a1, mut a2) = (m.session(), m.session(), m.session());
        let (b0, b1, b2) = (m.session(), m.session(), m.session());

        // Step 1: two whole prompts, every position.
        let (s, got) = batch_prefill(&[&b0, &b1], &[p, &p[..7]], (p.len() + 7) * v);
        ok(s);
        let mut want = a0.prefill_all(p);
        want.extend(a1.prefill_all(&p[..7]));
        assert!(max_abs_diff(&got, &want) <= TOL, "{family}: batch prefill");
        // Then decode steps; sequence 2 joins with a prompt chunk (last position only) at step 2,
        // sequence 1 leaves after step 3.
        for (step, &tok) in d.iter().enumerate() {
            let mut sessions: Vec<&CSession> = vec![&b0];
            let mut want = a0.decode(tok);
            if step < 3 {
                sessions.push(&b1);
                want.extend(a1.decode(next(tok)));
            }
            let got = if step == 2 {
                sessions.push(&b2);
                let chunk = &p[3..12];
                let mut all = a2.prefill_all(chunk);
                want.extend(all.split_off((chunk.len() - 1) * v));
                let toks = [tok, next(tok)];
                let chunks: Vec<&[u32]> = vec![&toks[..1], &toks[1..], chunk];
                let (s, got) = batch_prefill(&sessions, &chunks, 3 * v);
                ok(s);
                got
            } else {
                if step > 2 {
                    sessions.push(&b2);
                    want.extend(a2.decode(tok));
                }
                let toks: Vec<u32> = (0..sessions.len())
                    .map(|i| if i == 1 && step < 3 { next(tok) } else { tok })
                    .collect();
                let (s, got) = batch_decode(&sessions, &toks, v);
                ok(s);
                got
            };
            let diff = max_abs_diff(&got, &want);
            assert!(diff <= TOL, "{family}: step {step}: max abs diff {diff}");
        }
        assert_eq!(
            (b0.len(), b1.len(), b2.len()),
            (a0.len(), a1.len(), a2.len())
        );
    }
}

#[test]
fn misuse_fails_and_changes_nothing() {
    let m = CModel::load(&fixture("mixtral"));
    let other = CModel::load(&fixture("mixtral"));
    let v = m.vocab();
    let (a, b, c) = (m.session(), m.session(), other.session());
    let fail = |(s, out): (moe_status, Vec<f32>), want: moe_status, needle: &str| {
        assert_eq!(s, want, "{}", last_error());
        assert!(last_error().contains(needle), "{}", last_error());
        assert!(out.iter().all(|&x| x == -7.0), "logits written on failure");
    };
    use moe_status::*;
    // The same session twice: refused before any borrow.
    fail(
        batch_decode(&[&a, &b, &a], &[1, 2, 3], v),
        MOE_ERR_INVALID_ARGUMENT,
        "entry 2 repeats",
    );
    fail(
        batch_decode(&[&a, &c], &[1, 2], v),
        MOE_ERR_INVALID_ARGUMENT,
        "another model",
    );
    fail(
        batch_decode(&[], &[], v),
        MOE_ERR_INVALID_ARGUMENT,
        "at least one",
    );
    fail(
        batch_prefill(&[&a, &b], &[&[1, 2], &[3]], 2 * v + 1),
        MOE_ERR_BUFFER_SIZE,
        "logits_len",
    );
    fail(
        batch_prefill(&[&a, &b], &[&[1, 2], &[]], 2 * v),
        MOE_ERR_EMPTY_PROMPT,
        "",
    );
    fail(
        batch_decode(&[&a, &b], &[1, v as u32], v),
        MOE_ERR_TOKEN_OUT_OF_RANGE,
        "out of range",
    );
    // A NULL entry and NULL arrays.
    let ptrs = [a.ptr, std::ptr::null_mut()];
    let mut out = vec![0.0f32; 2 * v];
    // SAFETY: arrays of the stated lengths; the NULL entry is refused before use.
    let s = unsafe {
        moe::moe_batch_decode(
            ptrs.as_ptr(),
            [1, 2].as_ptr(),
            2,
            out.as_mut_ptr(),
            out.len(),
        )
    };
    assert_eq!(s, MOE_ERR_NULL_ARGUMENT);
    assert!(last_error().contains("sessions[1]"), "{}", last_error());
    // SAFETY: NULL arrays are refused.
    let s =
        unsafe { moe::moe_batch_decode(std::ptr::null(), [1].as_ptr(), 1, out.as_mut_ptr(), v) };
    assert_eq!(s, MOE_ERR_NULL_ARGUMENT);
    assert_eq!((a.len(), b.len(), c.len()), (0, 0, 0));
    // Then a good step, computing no logits.
    let ptrs = [a.ptr, b.ptr];
    // SAFETY: live handles; `logits_len` 0 writes nothing.
    ok(unsafe {
        moe::moe_batch_decode(ptrs.as_ptr(), [1, 2].as_ptr(), 2, std::ptr::null_mut(), 0)
    });
    assert_eq!((a.len(), b.len()), (1, 1));
}
