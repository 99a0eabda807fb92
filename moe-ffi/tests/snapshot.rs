//! Forks, snapshots and cache precision through the C ABI on every fixture family: restored and
//! forked sessions continue with the logits of the original, and each damaged snapshot is its status.

mod common;

use std::ffi::CString;

use common::{fixture, last_error, ok, CModel, CSession, Reference, FAMILIES};
use moe::moe_status::{self, *};
use moe::{moe_kv_dtype, moe_session};

fn session_with(model: &CModel, kv: moe_kv_dtype) -> CSession {
    let mut p = moe::moe_session_default_params();
    p.kv_dtype = kv as u32;
    let mut s = std::ptr::null_mut();
    // SAFETY: live model, valid params and out-pointer.
    ok(unsafe { moe::moe_session_new(model.0, &p, &mut s) });
    CSession {
        ptr: s,
        vocab: model.vocab(),
    }
}

fn snapshot(s: &CSession) -> Vec<u8> {
    let mut need = 0;
    // SAFETY: live session; NULL with capacity 0 asks for the size.
    let st = unsafe { moe::moe_session_snapshot(s.ptr, std::ptr::null_mut(), 0, &mut need) };
    assert_eq!(st, MOE_ERR_BUFFER_TOO_SMALL);
    let mut buf = vec![0u8; need];
    let mut len = 0;
    // SAFETY: `buf` holds `need` bytes.
    ok(unsafe { moe::moe_session_snapshot(s.ptr, buf.as_mut_ptr(), buf.len(), &mut len) });
    assert_eq!(len, need);
    buf
}

fn restore(model: &CModel, bytes: &[u8]) -> Result<CSession, moe_status> {
    let mut out: *mut moe_session = std::ptr::null_mut();
    // SAFETY: live model; `bytes` readable; valid out-pointer.
    let st = unsafe { moe::moe_session_restore(model.0, bytes.as_ptr(), bytes.len(), &mut out) };
    if st != MOE_OK {
        assert!(out.is_null(), "out written on failure");
        assert!(!last_error().is_empty());
        return Err(st);
    }
    Ok(CSession {
        ptr: out,
        vocab: model.vocab(),
    })
}

fn fork(s: &mut CSession) -> CSession {
    let mut out = std::ptr::null_mut();
    // SAFETY: live session, valid out-pointer.
    ok(unsafe { moe::moe_session_fork(s.ptr, &mut out) });
    CSession {
        ptr: out,
        vocab: s.vocab,
    }
}

fn decode_all(s: &mut CSession, ids: &[u32]) -> Vec<f32> {
    ids.iter().flat_map(|&t| s.decode(t)).collect()
}

#[test]
fn restored_and_forked_sessions_continue_exactly_on_every_family() {
    for family in FAMILIES {
        let dir = fixture(family);
        let model = CModel::load(&dir);
        let r = Reference::load(&dir);
        let (prompt, next) = (&r.ids["input_ids"], &r.ids["decode_ids"]);
        for kv in [
            moe_kv_dtype::MOE_KV_DTYPE_F32,
            moe_kv_dtype::MOE_KV_DTYPE_BF16,
            moe_kv_dtype::MOE_KV_DTYPE_INT8,
        ] {
            let mut a = session_with(&model, kv);
            a.prefill_all(prompt);
            let snap = snapshot(&a);
            let mut b = restore(&model, &snap).unwrap();
            assert_eq!(b.len(), prompt.len());
            let mut f = fork(&mut a);
            let (want, got, forked) = (
                decode_all(&mut a, next),
                decode_all(&mut b, next),
                decode_all(&mut f, next),
            );
            assert!(want == got, "{family} {kv:?}: restored");
            assert!(want == forked, "{family} {kv:?}: forked");
        }
    }
}

#[test]
fn shared_bytes_precision_files_and_snapshot_errors() {
    let dir = fixture("qwen3_moe");
    let model = CModel::load(&dir);
    let prompt: Vec<u32> = (1..=16).collect();
    let mut bytes = vec![];
    for kv in [
        moe_kv_dtype::MOE_KV_DTYPE_F32,
        moe_kv_dtype::MOE_KV_DTYPE_BF16,
        moe_kv_dtype::MOE_KV_DTYPE_INT8,
    ] {
        let mut s = session_with(&model, kv);
        s.prefill_all(&prompt);
        // SAFETY: live session.
        bytes.push(unsafe { moe::moe_session_kv_cache_bytes(s.ptr) });
    }
    assert_eq!(bytes[1] * 2, bytes[0]);
    assert!(bytes[2] * 3 < bytes[0]);

    let mut parent = model.session();
    parent.prefill_all(&prompt);
    let mut kids: Vec<CSession> = (0..3).map(|_| fork(&mut parent)).collect();
    for k in &mut kids {
        k.decode(3);
        // SAFETY: live sessions.
        let (all, shared) = unsafe {
            (
                moe::moe_session_kv_cache_bytes(k.ptr),
                moe::moe_session_kv_cache_shared_bytes(k.ptr),
            )
        };
        assert_eq!(shared, bytes[0]);
        assert_eq!(all, bytes[0] * 17 / 16);
    }
    drop(kids);
    // SAFETY: live session.
    assert_eq!(
        unsafe { moe::moe_session_kv_cache_shared_bytes(parent.ptr) },
        0
    );

    // Files.
    let tmp = tempfile::tempdir().unwrap();
    let path = CString::new(tmp.path().join("s.snap").to_str().unwrap()).unwrap();
    // SAFETY: live session, valid C string.
    ok(unsafe { moe::moe_session_save(parent.ptr, path.as_ptr()) });
    let mut out = std::ptr::null_mut();
    // SAFETY: live model, valid C string and out-pointer.
    ok(unsafe { moe::moe_session_restore_file(model.0, path.as_ptr(), &mut out) });
    let mut back = CSession {
        ptr: out,
        vocab: model.vocab(),
    };
    assert!(back.decode(9) == parent.decode(9));

    // Errors: truncated, corrupted, another version, another model.
    let snap = snapshot(&parent);
    assert_eq!(
        restore(&model, &snap[..snap.len() - 1]).err(),
        Some(MOE_ERR_SNAPSHOT_TRUNCATED)
    );
    let mut bad = snap.clone();
    bad[snap.len() - 20] ^= 4;
    assert_eq!(restore(&model, &bad).err(), Some(MOE_ERR_SNAPSHOT_CORRUPT));
    let mut v = snap.clone();
    v[8] = 99;
    assert_eq!(restore(&model, &v).err(), Some(MOE_ERR_SNAPSHOT_VERSION));
    let other = CModel::load(&fixture("qwen2_moe"));
    assert_eq!(
        restore(&other, &snap).err(),
        Some(MOE_ERR_SNAPSHOT_MODEL_MISMATCH)
    );
    assert!(restore(&model, &snap).is_ok());
}
