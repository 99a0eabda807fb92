//! Session snapshots, forks and cache precision on every fixture family: a restored or forked session
//! continues with the logits of the original (or of a fresh session fed the same tokens), forks share
//! their prefix's cache, and every damaged snapshot is a typed error.

mod common;

use std::sync::Arc;

use common::own_fixtures;
use moe_core::internals::hash64;
use moe_core::{Error, KvDType, LogitsMode, Model, Session, SessionParams, SNAPSHOT_VERSION};

/// Every fixture family of the project (folders with a checkpoint).
fn families() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(own_fixtures())
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            p.join("config.json")
                .is_file()
                .then(|| p.file_name().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    v.sort();
    assert!(v.len() >= 10, "fixture families: {v:?}");
    v
}

fn load(family: &str) -> (Arc<Model>, Vec<u32>) {
    let dir = own_fixtures().join(family);
    let r = common::Reference::load(&dir.join("reference.safetensors"));
    let mut ids = r.ids["input_ids"].clone();
    ids.extend(&r.ids["decode_ids"]);
    (Arc::new(common::load_exact(&dir).unwrap()), ids)
}

/// A session in `dtype`, with room for the long prefill after a fork (some fixtures declare 64
/// positions; positions past that are computed all the same).
fn session(model: &Arc<Model>, dtype: KvDType) -> Session {
    let params = SessionParams::default()
        .with_kv_dtype(dtype)
        .with_max_context(Some(160));
    Session::new(model.clone(), &params).unwrap()
}

/// Asserts `got == want` bit for bit, printing only the largest difference.
fn same(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    if got != want {
        panic!(
            "{what}: differs by up to {}",
            common::max_abs_diff(got, want)
        );
    }
}

/// Logits of feeding `ids` one at a time `[N, V]`.
fn decode_all(s: &mut Session, ids: &[u32]) -> Vec<f32> {
    ids.iter().flat_map(|&t| s.decode(t).unwrap()).collect()
}

#[test]
fn restored_sessions_continue_with_identical_logits_on_every_family_and_precision() {
    for family in families() {
        let (model, ids) = load(&family);
        // Past gpt-oss's window of 8, so its sliding layers have evicted keys when saved.
        let k = 20;
        for dtype in KvDType::ALL {
            let mut a = session(&model, dtype);
            a.prefill(&ids[..k], LogitsMode::None).unwrap();
            let snap = a.snapshot();
            let mut b = Session::restore(model.clone(), &snap).unwrap();
            assert_eq!(b.tokens(), a.tokens(), "{family} {dtype}");
            assert_eq!(b.kv_dtype(), dtype);
            assert_eq!(b.max_context(), a.max_context());
            assert_eq!(b.kv_cache_bytes(), a.kv_cache_bytes(), "{family} {dtype}");
            assert_eq!(
                b.snapshot(),
                snap,
                "{family} {dtype}: a restored session saves the same bytes"
            );
            let want = decode_all(&mut a, &ids[k..]);
            let got = decode_all(&mut b, &ids[k..]);
            same(
                &got,
                &want,
                &format!("{family} {dtype}: logits after restoring"),
            );
        }
    }
}

#[test]
fn snapshots_round_trip_through_files() {
    let (model, ids) = load("deepseek_v32");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.moesnap");
    let mut a = session(&model, KvDType::Bf16);
    a.prefill(&ids[..17], LogitsMode::None).unwrap();
    a.save(&path).unwrap();
    let mut b = Session::restore_file(model.clone(), &path).unwrap();
    assert_eq!(
        decode_all(&mut b, &ids[17..]),
        decode_all(&mut a, &ids[17..])
    );
    // A truncated file and a missing one.
    let bytes = std::fs::read(&path).unwrap();
    for cut in [0, 5, 30, 56, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let e = Session::restore_file(model.clone(), &path).err().unwrap();
        assert!(
            matches!(e, Error::SnapshotTruncated { .. }),
            "cut {cut}: {e}"
        );
    }
    assert!(matches!(
        Session::restore_file(model, dir.path().join("none")),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn forked_sessions_equal_fresh_sessions_fed_the_same_tokens() {
    for family in families() {
        let (model, ids) = load(&family);
        for dtype in [KvDType::F32, KvDType::Int8] {
            let k = 18;
            let mut parent = session(&model, dtype);
            parent.prefill(&ids[..k], LogitsMode::None).unwrap();
            let mut a = parent.fork();
            let mut b = parent.fork();
            let tail_a: Vec<u32> = ids[k..].to_vec();
            let tail_b: Vec<u32> = ids[k..].iter().rev().copied().collect();
            let got_p = decode_all(&mut parent, &tail_a[..3]);
            let got_a = decode_all(&mut a, &tail_a);
            let got_b = decode_all(&mut b, &tail_b);
            // A fork of a fork, after its parent moved on.
            let mut c = a.fork();
            let got_c = decode_all(&mut c, &tail_b[..2]);
            // Truncating a fork into the shared prefix (refused by windowed caches) and going on.
            let trunc = b.truncate(k - 3).is_ok();
            let got_bt = trunc.then(|| decode_all(&mut b, &tail_a[..4]));
            for (name, fed, got) in [
                ("parent", [&ids[..k], &tail_a[..3]].concat(), got_p),
                ("a", [&ids[..k], &tail_a[..]].concat(), got_a),
                ("b", [&ids[..k], &tail_b[..]].concat(), got_b),
                ("c", [&ids[..k], &tail_a[..], &tail_b[..2]].concat(), got_c),
            ] {
                let mut fresh = session(&model, dtype);
                fresh.prefill(&ids[..k], LogitsMode::None).unwrap();
                let want = decode_all(&mut fresh, &fed[k..]);
                // Only the tokens the fork itself decoded (c's first ones were a's).
                let want = &want[want.len() - got.len()..];
                same(&got, want, &format!("{family} {dtype}: fork {name}"));
            }
            if let Some(got) = got_bt {
                let mut fresh = session(&model, dtype);
                fresh.prefill(&ids[..k], LogitsMode::None).unwrap();
                fresh.truncate(k - 3).unwrap();
                let want = decode_all(&mut fresh, &tail_a[..4]);
                same(&got, &want, &format!("{family} {dtype}: truncated fork"));
            }
            // A long prefill after a fork: the tiled GQA and expanded MLA paths over shared blocks.
            let long: Vec<u32> = ids.iter().cycle().take(70).copied().collect();
            let mut d = parent.fork();
            let got = d.prefill(&long, LogitsMode::All).unwrap();
            let mut fresh = session(&model, dtype);
            fresh.prefill(&ids[..k], LogitsMode::None).unwrap();
            fresh.prefill(&tail_a[..3], LogitsMode::None).unwrap();
            let want = fresh.prefill(&long, LogitsMode::All).unwrap();
            same(
                &got,
                &want,
                &format!("{family} {dtype}: long prefill on a fork"),
            );
            // A fork's snapshot (rows in shared blocks and a private tail) restores like any other.
            let snap = c.snapshot();
            let mut r = Session::restore(model.clone(), &snap).unwrap();
            let (got, want) = (decode_all(&mut r, &ids[..2]), decode_all(&mut c, &ids[..2]));
            same(&got, &want, &format!("{family} {dtype}: restored fork"));
        }
    }
}

#[test]
fn forks_hold_the_shared_prefix_once() {
    let (model, ids) = load("qwen3_moe");
    let per = model.kv_cache_bytes_per_token();
    let k = 24;
    let mut parent = session(&model, KvDType::F32);
    parent.prefill(&ids[..k], LogitsMode::None).unwrap();
    assert_eq!(parent.kv_cache_bytes(), k * per);
    assert_eq!(parent.kv_cache_shared_bytes(), 0);
    let mut forks: Vec<Session> = (0..4).map(|_| parent.fork()).collect();
    for (i, f) in forks.iter_mut().enumerate() {
        decode_all(f, &ids[k..k + 1 + i]);
        assert_eq!(f.kv_cache_bytes(), (k + 1 + i) * per);
        assert_eq!(f.kv_cache_shared_bytes(), k * per);
    }
    assert_eq!(parent.kv_cache_shared_bytes(), k * per);
    // Held in all: the prefix once plus every private tail (1 + 2 + 3 + 4 tokens).
    let sessions: Vec<&Session> = forks.iter().chain([&parent]).collect();
    let private: usize = sessions
        .iter()
        .map(|s| s.kv_cache_bytes() - s.kv_cache_shared_bytes())
        .sum();
    assert_eq!(private + k * per, (k + 10) * per);
    drop(forks);
    assert_eq!(parent.kv_cache_shared_bytes(), 0);
    assert_eq!(parent.kv_cache_bytes(), k * per);
}

#[test]
fn compact_precisions_shrink_the_cache_and_stay_close_to_f32() {
    for family in ["qwen3_moe", "deepseek_v32", "gpt_oss"] {
        let (model, ids) = load(family);
        let mut bytes = vec![];
        let mut logits = vec![];
        for dtype in KvDType::ALL {
            let mut s = session(&model, dtype);
            logits.push(s.prefill(&ids[..24], LogitsMode::Last).unwrap());
            logits
                .last_mut()
                .unwrap()
                .extend(decode_all(&mut s, &ids[24..]));
            bytes.push(s.kv_cache_bytes());
            assert_eq!(s.kv_dtype(), dtype);
        }
        assert_eq!(bytes[1] * 2, bytes[0], "{family}: bf16 is half of f32");
        assert!(
            bytes[2] * 3 < bytes[0],
            "{family}: int8 {} vs f32 {}",
            bytes[2],
            bytes[0]
        );
        let v = model.vocab_size();
        for (i, name) in [(1, "bf16"), (2, "int8")] {
            let kl = mean_kl(&logits[0], &logits[i], v);
            eprintln!("{family} {name}: mean KL {kl:.3e}");
            assert!(kl > 0.0, "{family} {name}: rounding changed nothing?");
            assert!(kl < 5e-2, "{family} {name}: KL {kl}");
        }
    }
}

/// Mean KL(p‖q) over rows of `[N, V]` logits.
fn mean_kl(p: &[f32], q: &[f32], v: usize) -> f64 {
    let logp = |row: &[f32]| {
        let m = row.iter().copied().fold(f32::MIN, f32::max) as f64;
        let z = row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln() + m;
        row.iter().map(|&x| x as f64 - z).collect::<Vec<f64>>()
    };
    let rows = p.len() / v;
    (0..rows)
        .map(|r| {
            let (a, b) = (logp(&p[r * v..(r + 1) * v]), logp(&q[r * v..(r + 1) * v]));
            a.iter()
                .zip(&b)
                .map(|(x, y)| x.exp() * (x - y))
                .sum::<f64>()
        })
        .sum::<f64>()
        / rows as f64
}

#[test]
fn another_model_and_another_version_are_typed_errors() {
    let (qwen3, ids) = load("qwen3_moe");
    let (twin, _) = load("qwen3_moe_tf5style");
    let (qwen2, _) = load("qwen2_moe");
    let again = Arc::new(common::load_exact(own_fixtures().join("qwen3_moe")).unwrap());
    assert_eq!(again.fingerprint(), qwen3.fingerprint());
    let mut s = session(&qwen3, KvDType::F32);
    s.prefill(&ids[..5], LogitsMode::None).unwrap();
    let snap = s.snapshot();
    for other in [twin, qwen2] {
        assert_ne!(other.fingerprint(), qwen3.fingerprint());
        match Session::restore(other.clone(), &snap) {
            Err(Error::SnapshotModelMismatch { expected, found }) => {
                assert_eq!(
                    (expected, found),
                    (other.fingerprint(), qwen3.fingerprint())
                );
            }
            r => panic!("{:?}", r.err()),
        }
    }
    Session::restore(again, &snap).unwrap();
    let mut v2 = snap.clone();
    v2[8..12].copy_from_slice(&(SNAPSHOT_VERSION + 1).to_le_bytes());
    assert!(matches!(
        Session::restore(qwen3, &v2),
        Err(Error::SnapshotVersion { found, supported }) if found == SNAPSHOT_VERSION + 1 && supported == SNAPSHOT_VERSION
    ));
}

#[test]
fn every_truncation_and_bit_flip_is_a_typed_error() {
    for family in [
        "gpt_oss",
        "deepseek_v32",
        "deepseek_v2",
        "qwen3_5_moe",
        "deepseek_v4",
    ] {
        let (model, ids) = load(family);
        for dtype in KvDType::ALL {
            let mut s = session(&model, dtype);
            s.prefill(&ids[..12], LogitsMode::None).unwrap();
            let snap = s.snapshot();
            for cut in 0..snap.len() {
                match Session::restore(model.clone(), &snap[..cut]) {
                    Err(Error::SnapshotTruncated { len, needed }) => {
                        assert_eq!(len, cut as u64);
                        assert!(needed > len);
                    }
                    r => panic!("{family} {dtype}: cut at {cut}: {:?}", r.err()),
                }
            }
            for i in 0..snap.len() {
                let mut bad = snap.clone();
                bad[i] ^= 1 << (i % 8);
                match Session::restore(model.clone(), &bad) {
                    Err(Error::SnapshotVersion { .. }) if (8..12).contains(&i) => {}
                    Err(Error::SnapshotCorrupt(_)) => {}
                    r => panic!("{family} {dtype}: flip in byte {i}: {:?}", r.err()),
                }
            }
            let mut long = snap.clone();
            long.push(0);
            assert!(matches!(
                Session::restore(model.clone(), &long),
                Err(Error::SnapshotCorrupt(_))
            ));
        }
    }
}

/// Re-signs a snapshot whose header or payload was edited, so only the semantic checks stand.
fn resign(b: &mut [u8]) {
    let h = hash64(&b[..48]);
    b[48..56].copy_from_slice(&h.to_le_bytes());
    let n = b.len();
    let p = hash64(&b[56..n - 8]);
    b[n - 8..].copy_from_slice(&p.to_le_bytes());
}

#[test]
fn hostile_snapshots_with_valid_checksums_are_refused_without_allocating() {
    let (model, ids) = load("gpt_oss");
    let mut s = session(&model, KvDType::F32);
    s.prefill(&ids[..12], LogitsMode::None).unwrap();
    let snap = s.snapshot();
    let put = |at: usize, val: u64| {
        let mut b = snap.clone();
        b[at..at + 8].copy_from_slice(&val.to_le_bytes());
        resign(&mut b);
        b
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("huge context", put(24, u64::MAX)),
        (
            "more tokens than context",
            put(32, s.max_context() as u64 + 1),
        ),
        ("huge token count", put(32, 1 << 60)),
        ("huge payload length", put(40, u64::MAX)),
        ("fewer tokens", put(32, 11)),
        // The first layer's first table: its start past the window, then a huge row count.
        ("start past the window", put(56 + 12 * 4 + 4 + 1, 11)),
        ("huge row count", put(56 + 12 * 4 + 4 + 1 + 8, u64::MAX - 3)),
        ("token outside the vocabulary", {
            let mut b = snap.clone();
            b[56..60].copy_from_slice(&u32::MAX.to_le_bytes());
            resign(&mut b);
            b
        }),
        ("layer kind", {
            let mut b = snap.clone();
            b[56 + 12 * 4 + 4] = 7;
            resign(&mut b);
            b
        }),
        ("layer count", {
            let mut b = snap.clone();
            b[56 + 12 * 4..56 + 12 * 4 + 4].copy_from_slice(&1000u32.to_le_bytes());
            resign(&mut b);
            b
        }),
        ("precision code", {
            let mut b = snap.clone();
            b[12] = 9;
            resign(&mut b);
            b
        }),
    ];
    for (name, b) in cases {
        match Session::restore(model.clone(), &b) {
            Err(Error::SnapshotCorrupt(_) | Error::SnapshotTruncated { .. }) => {}
            r => panic!("{name}: {:?}", r.err()),
        }
    }
}

#[test]
fn hostile_deltanet_and_compressed_layers_are_refused_without_allocating() {
    // The first layer's kind: the gated DeltaNet state (3), DeepSeek V4's compressed cache (4).
    let at = 56 + 12 * 4 + 4;
    for (family, kind) in [("qwen3_5_moe", 3u8), ("deepseek_v4", 4)] {
        let (model, ids) = load(family);
        let mut s = session(&model, KvDType::F32);
        s.prefill(&ids[..12], LogitsMode::None).unwrap();
        let snap = s.snapshot();
        assert_eq!(snap[at], kind, "{family}: the first layer's kind");
        let count = u64::from_le_bytes(snap[at + 1..at + 9].try_into().unwrap());
        let put = |off: usize, val: u64| {
            let mut b = snap.clone();
            b[at + off..at + off + 8].copy_from_slice(&val.to_le_bytes());
            resign(&mut b);
            b
        };
        // DeltaNet: the convolution's value count; V4: the window's start, then its row count.
        let cases = if kind == 3 {
            vec![
                ("huge value count", put(1, u64::MAX - 3)),
                ("one value fewer", put(1, count - 1)),
                ("no state", put(1, 0)),
            ]
        } else {
            vec![
                ("start past the window", put(1, 12)),
                ("huge row count", put(9, u64::MAX - 3)),
                ("one row more", put(9, 13 - count)),
            ]
        };
        for (name, b) in cases {
            match Session::restore(model.clone(), &b) {
                Err(Error::SnapshotCorrupt(_) | Error::SnapshotTruncated { .. }) => {}
                r => panic!("{family} {name}: {:?}", r.err()),
            }
        }
    }
}
