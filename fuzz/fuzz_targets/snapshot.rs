//! Session snapshots: `Session::restore` over bytes that are either raw input or a real snapshot of
//! each cache kind (windowed GQA: gpt-oss; MLA with the DSA indexer: DeepSeek V3.2) edited by the
//! input — byte flips, a cut, and optionally the checksums recomputed so the edits reach the checks
//! of lengths, windows and tokens against the model. Every outcome is a session that runs a decode
//! step and saves the same bytes again, or one of the typed snapshot errors.
//!
//! Input: byte 0 picks the mode (bits 0-1: raw, edited, edited and re-signed), the precision
//! (bits 2-3) and the model (bit 4); then edits of 5
//! bytes each (u32 LE offset, xor mask); in edited modes the last two bytes are a cut (u16 LE, applied
//! when smaller than the snapshot).
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use moe_core::internals::hash64;
use moe_core::{Error, KvDType, LogitsMode, Model, Session, SessionParams};

/// Per model: the model and one snapshot in each cache precision.
struct Case {
    model: Arc<Model>,
    snaps: Vec<Vec<u8>>,
}

static CASES: OnceLock<Vec<Case>> = OnceLock::new();

fn cases() -> &'static [Case] {
    CASES.get_or_init(|| {
        ["fixtures/gpt_oss", "fixtures/deepseek_v32"]
            .iter()
            .map(|dir| {
                let path = format!("{}/../{dir}", env!("CARGO_MANIFEST_DIR"));
                let model = Arc::new(Model::load(path).expect("fixture loads"));
                let snaps = KvDType::ALL
                    .iter()
                    .map(|&d| {
                        let params = SessionParams::default().with_kv_dtype(d);
                        let mut s = Session::new(model.clone(), &params).expect("session");
                        let ids: Vec<u32> = (1..=12).collect();
                        s.prefill(&ids, LogitsMode::None).expect("prefill");
                        s.snapshot()
                    })
                    .collect();
                Case { model, snaps }
            })
            .collect()
    })
}

/// Recomputes the header and payload checksums (the layout of `moe_core`'s session/snapshot.rs).
fn resign(b: &mut [u8]) {
    if b.len() < 64 {
        return;
    }
    let h = hash64(&b[..48]);
    b[48..56].copy_from_slice(&h.to_le_bytes());
    let n = b.len();
    let p = hash64(&b[56..n - 8]);
    b[n - 8..].copy_from_slice(&p.to_le_bytes());
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let cases = cases();
    let case = &cases[usize::from((head >> 4) & 1) % cases.len()];
    let bytes = match head & 3 {
        0 | 3 => rest.to_vec(),
        mode => {
            let mut b = case.snaps[usize::from((head >> 2) & 3) % case.snaps.len()].clone();
            let (edits, cut) = rest.split_at(rest.len().saturating_sub(2));
            for e in edits.chunks_exact(5) {
                let at = u32::from_le_bytes([e[0], e[1], e[2], e[3]]) as usize;
                let n = b.len().max(1);
                if let Some(x) = b.get_mut(at % n) {
                    *x ^= e[4];
                }
            }
            if mode == 2 {
                resign(&mut b);
            }
            if let [lo, hi] = cut {
                let n = usize::from(u16::from_le_bytes([*lo, *hi]));
                if n < b.len() {
                    b.truncate(n);
                }
            }
            b
        }
    };
    match Session::restore(case.model.clone(), &bytes) {
        Ok(mut s) => {
            let again = s.snapshot();
            assert_eq!(
                again, bytes,
                "a restored session saves the bytes it came from"
            );
            let _ = s.decode(1);
        }
        Err(
            Error::SnapshotCorrupt(_)
            | Error::SnapshotTruncated { .. }
            | Error::SnapshotVersion { .. }
            | Error::SnapshotModelMismatch { .. },
        ) => {}
        Err(e) => panic!("restore answered a non-snapshot error: {e}"),
    }
});
