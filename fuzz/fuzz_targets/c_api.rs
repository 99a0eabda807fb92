//! The C entry points of moe-ffi with random arguments: NULL pointers, handles of the wrong kind,
//! freed handles and integers cast to handles (the registry must refuse them), valid buffers of
//! random lengths, out-of-range ids and sizes, and random orders of calls. Two models are loaded once
//! per process: `fixtures/mixtral` (no tokenizer) and `models/tiny-deepseek-pycode` (tokenizer).
//!
//! It never passes a random non-NULL pointer as a buffer: that breaks the C contract rather than
//! finding a bug. Besides crashes, it checks the documented conventions: a failed call leaves its
//! out-parameters untouched and sets a message, and a session's length follows its calls.
//!
//! Input: a sequence of operations, each an opcode byte followed by its arguments (see `step`).
#![no_main]

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr::{null, null_mut};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use moe::*;
use moe_fuzz::Reader;

/// A pointer the library must never write through or return: out-parameters start as this and are
/// compared afterwards.
const SENTINEL_U32: u32 = 0xDEAD_BEEF;
const MAX_SESSIONS: usize = 4;
const MAX_SAMPLERS: usize = 3;
const MAX_TOKENS: usize = 12;

struct Models {
    /// fixtures/mixtral: vocabulary 256, no tokenizer.
    mixtral: usize,
    /// models/tiny-deepseek-pycode: a tokenizer.
    text: usize,
}

fn load(dir: &str) -> usize {
    let path = CString::new(format!("{}/../{dir}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let mut out = null_mut();
    // SAFETY: `path` is a NUL-terminated string, `params` NULL (defaults), `out` a valid slot.
    let status = unsafe { moe_model_load(path.as_ptr(), null(), &mut out) };
    assert_eq!(
        status,
        moe_status::MOE_OK,
        "cannot load {dir}: {}",
        last_error()
    );
    out as usize
}

fn models() -> &'static Models {
    static MODELS: OnceLock<Models> = OnceLock::new();
    MODELS.get_or_init(|| Models {
        mixtral: load("fixtures/mixtral"),
        text: load("models/tiny-deepseek-pycode"),
    })
}

fn last_error() -> String {
    // SAFETY: moe_last_error never returns NULL and its string lives until the next failing call
    // on this thread; it is copied at once.
    unsafe { CStr::from_ptr(moe_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// After a failed call: a message is set, and it is not empty.
fn failed(status: moe_status) -> bool {
    if status == moe_status::MOE_OK {
        return false;
    }
    assert!(
        !last_error().is_empty(),
        "{status:?} without a message from moe_last_error"
    );
    true
}

/// The objects one input made; all are freed at its end.
#[derive(Default)]
struct State {
    sessions: Vec<*mut moe_session>,
    samplers: Vec<*mut moe_sampler>,
    /// Handles freed during this input (not live any more unless the allocator reused them).
    freed: Vec<usize>,
    /// The length each live session should have, when known.
    lens: Vec<Option<usize>>,
}

impl State {
    fn live(&self) -> Vec<usize> {
        let m = models();
        let mut v = vec![m.mixtral, m.text];
        v.extend(self.sessions.iter().map(|&p| p as usize));
        v.extend(self.samplers.iter().map(|&p| p as usize));
        v
    }

    /// A handle argument: NULL, a live object of any kind, a freed one, or an integer. Integers and
    /// freed values that are in fact live (the allocator may reuse addresses, and libFuzzer may
    /// learn the registry's keys) are left for the free calls to avoid: see `dead`.
    fn handle(&self, r: &mut Reader) -> usize {
        let live = self.live();
        match r.u8() % 6 {
            0 => 0,
            1 | 2 => live[usize::from(r.u8()) % live.len()],
            3 => self
                .freed
                .get(usize::from(r.u8()) % self.freed.len().max(1))
                .copied()
                .unwrap_or(8),
            4 => r.u64() as usize,
            _ => live[usize::from(r.u8()) % live.len()].wrapping_add(usize::from(r.u8() % 16) + 1),
        }
    }

    /// A handle to pass to a free function: anything but a live object of this input's models,
    /// sessions or samplers (freeing those is the harness's job, at the end).
    fn dead(&self, r: &mut Reader) -> usize {
        let h = self.handle(r);
        if self.live().contains(&h) {
            0
        } else {
            h
        }
    }

    fn model(&self, r: &mut Reader) -> *const moe_model {
        let m = models();
        match r.u8() % 4 {
            0 => m.mixtral as *const moe_model,
            1 => m.text as *const moe_model,
            _ => self.handle(r) as *const moe_model,
        }
    }

    /// A session argument, with its index when it is one of this input's live sessions (an
    /// arbitrary handle may be one too).
    fn session(&self, r: &mut Reader) -> (Option<usize>, *mut moe_session) {
        let h = if !self.sessions.is_empty() && !r.u8().is_multiple_of(4) {
            self.sessions[usize::from(r.u8()) % self.sessions.len()]
        } else {
            self.handle(r) as *mut moe_session
        };
        (self.sessions.iter().position(|&p| p == h), h)
    }

    fn sampler(&self, r: &mut Reader) -> *mut moe_sampler {
        if !self.samplers.is_empty() && !r.u8().is_multiple_of(4) {
            self.samplers[usize::from(r.u8()) % self.samplers.len()]
        } else {
            self.handle(r) as *mut moe_sampler
        }
    }
}

fn tokens(r: &mut Reader) -> Vec<u32> {
    let n = r.len(MAX_TOKENS);
    (0..n)
        .map(|_| match r.u8() % 4 {
            0 => r.u32(),
            _ => u32::from(r.u8()),
        })
        .collect()
}

/// A length for a float buffer of a model with vocabulary `vocab` and `n` new tokens: 0, vocab,
/// n * vocab or something else.
fn logits_len(r: &mut Reader, vocab: usize, n: usize) -> usize {
    match r.u8() % 5 {
        0 => 0,
        1 | 2 => vocab,
        3 => n * vocab,
        _ => r.len(3 * vocab),
    }
}

/// A C string from the input, NULs dropped.
fn c_string(r: &mut Reader, max: usize) -> CString {
    let n = r.len(max);
    CString::new(
        r.bytes(n)
            .iter()
            .copied()
            .filter(|&b| b != 0)
            .collect::<Vec<u8>>(),
    )
    .unwrap()
}

/// The generation callback: checks the piece and counts down the budget at `user_data`.
///
/// # Safety
/// `piece` must hold `len` bytes and a NUL; `user_data` must point to a `u32` no one else uses.
unsafe extern "C" fn on_piece(piece: *const c_char, len: usize, user_data: *mut c_void) -> bool {
    // SAFETY: the library passes `len` readable bytes followed by a NUL.
    let bytes = unsafe { std::slice::from_raw_parts(piece.cast::<u8>(), len + 1) };
    assert_eq!(bytes[len], 0, "a piece without its NUL");
    assert!(
        std::str::from_utf8(&bytes[..len]).is_ok(),
        "a piece that is not UTF-8"
    );
    // SAFETY: `user_data` is the `u32` budget the harness passed; only this thread uses it.
    let budget = unsafe { &mut *user_data.cast::<u32>() };
    *budget = budget.saturating_sub(1);
    *budget > 0
}

fn step(r: &mut Reader, s: &mut State) {
    let vocab = 256; // fixtures/mixtral; calls on other handles only check statuses.
    match r.u8() % 20 {
        0 => {
            // Model queries on any handle.
            let m = s.model(r);
            // SAFETY (all below): `m` is NULL, a live model, or a value the registry must refuse;
            // no handle is freed meanwhile (one thread).
            unsafe {
                let v = moe_model_vocab_size(m);
                let t = moe_model_threads(m);
                let c = moe_model_max_context(m);
                let a = moe_model_architecture(m);
                let f = moe_model_family(m);
                let live = v != 0;
                assert_eq!(live, t != 0);
                assert_eq!(live, c != 0);
                assert_eq!(live, !a.is_null());
                assert_eq!(live, !f.is_null());
                moe_model_has_tokenizer(m);
                moe_model_has_chat_template(m);
                let (mut ids, mut n) = (null::<u32>(), usize::MAX);
                let st = moe_model_eos_tokens(m, &mut ids, &mut n);
                if failed(st) {
                    assert!(ids.is_null() && n == usize::MAX);
                } else {
                    assert!(n == 0 || !ids.is_null());
                }
                let mut p = moe_generate_default_params();
                p.max_new_tokens = 77;
                let st = moe_model_default_generate_params(
                    m,
                    if r.bool() { &mut p } else { null_mut() },
                );
                if failed(st) {
                    assert_eq!(p.max_new_tokens, 77, "out written on failure");
                }
            }
        }
        1 => {
            // New session on any model handle.
            if s.sessions.len() >= MAX_SESSIONS {
                return;
            }
            let m = s.model(r);
            let mut params = moe_session_default_params();
            params.max_context = match r.u8() % 4 {
                0 => 0,
                1 => r.len(64),
                2 => r.u64() as usize,
                _ => params.max_context,
            };
            params.dense_attention = r.bool();
            let mut out: *mut moe_session = null_mut();
            let p = if r.u8().is_multiple_of(8) {
                null()
            } else {
                &params as *const _
            };
            let o = if r.u8().is_multiple_of(8) {
                null_mut()
            } else {
                &mut out as *mut _
            };
            // SAFETY: `m` as in op 0; `p` NULL or a valid struct; `o` NULL or a valid slot.
            let st = unsafe { moe_session_new(m, p, o) };
            if !failed(st) {
                assert!(!o.is_null() && !out.is_null());
                s.sessions.push(out);
                s.lens.push(Some(0));
            } else {
                assert!(out.is_null(), "out written on failure");
            }
        }
        2 | 3 => {
            // Prefill.
            let (i, sess) = s.session(r);
            let ids = tokens(r);
            let len = logits_len(r, vocab, ids.len());
            let mut logits = vec![f32::from_bits(SENTINEL_U32); len];
            let ids_ptr = if ids.is_empty() && r.bool() {
                null()
            } else {
                ids.as_ptr()
            };
            let logits_ptr = if len == 0 && r.bool() {
                null_mut()
            } else {
                logits.as_mut_ptr()
            };
            // SAFETY: `sess` as in op 0; `ids_ptr` NULL or `ids.len()` ids; `logits_ptr` NULL or
            // `len` floats.
            let st = unsafe { moe_session_prefill(sess, ids_ptr, ids.len(), logits_ptr, len) };
            if failed(st) {
                assert!(
                    logits.iter().all(|x| x.to_bits() == SENTINEL_U32),
                    "logits written on failure"
                );
            } else if let Some(i) = i {
                s.lens[i] = s.lens[i].map(|l| l + ids.len());
            }
        }
        4 | 5 => {
            // Decode.
            let (i, sess) = s.session(r);
            let token = tokens(r).first().copied().unwrap_or(0);
            let len = logits_len(r, vocab, 1);
            let mut logits = vec![f32::from_bits(SENTINEL_U32); len];
            let logits_ptr = if len == 0 && r.bool() {
                null_mut()
            } else {
                logits.as_mut_ptr()
            };
            // SAFETY: `sess` as in op 0; `logits_ptr` NULL or `len` floats.
            let st = unsafe { moe_session_decode(sess, token, logits_ptr, len) };
            if failed(st) {
                assert!(
                    logits.iter().all(|x| x.to_bits() == SENTINEL_U32),
                    "logits written on failure"
                );
            } else if let Some(i) = i {
                s.lens[i] = s.lens[i].map(|l| l + 1);
            }
        }
        6 => {
            // Reset or truncate.
            let (i, sess) = s.session(r);
            if r.bool() {
                // SAFETY: `sess` as in op 0.
                let st = unsafe { moe_session_reset(sess) };
                if let (false, Some(i)) = (failed(st), i) {
                    s.lens[i] = Some(0);
                }
            } else {
                let n = if r.bool() {
                    r.len(16)
                } else {
                    r.u64() as usize
                };
                // SAFETY: `sess` as in op 0.
                let st = unsafe { moe_session_truncate(sess, n) };
                if let (false, Some(i)) = (failed(st), i) {
                    s.lens[i] = s.lens[i].map(|l| l.min(n));
                }
            }
        }
        7 => {
            // Session queries; a known length must match.
            let (i, sess) = s.session(r);
            // SAFETY: `sess` as in op 0; the out-parameters are NULL or valid slots.
            unsafe {
                let len = moe_session_len(sess);
                moe_session_max_context(sess);
                moe_session_kv_cache_bytes(sess);
                let (mut ids, mut n) = (null::<u32>(), usize::MAX);
                let st = moe_session_tokens(
                    sess,
                    if r.bool() { &mut ids } else { null_mut() },
                    if r.bool() { &mut n } else { null_mut() },
                );
                if !failed(st) && n != usize::MAX {
                    assert_eq!(n, len);
                }
                if let Some(Some(want)) = i.map(|i| s.lens[i]) {
                    assert_eq!(len, want, "session length");
                }
                let mut reason = moe_finish_reason::MOE_FINISH_NONE;
                let mut index = 0usize;
                moe_session_finish_reason(
                    sess,
                    &mut reason,
                    if r.bool() { &mut index } else { null_mut() },
                );
            }
        }
        8 => {
            // New sampler from arbitrary parameters.
            if s.samplers.len() >= MAX_SAMPLERS {
                return;
            }
            let mut p = moe_sampler_default_params();
            p.temperature = r.param();
            p.top_k = r.u32() % 300;
            p.top_p = r.param();
            p.min_p = r.param();
            p.repetition_penalty = r.param();
            p.seed = r.u64();
            let mut out: *mut moe_sampler = null_mut();
            let pp = if r.u8().is_multiple_of(8) {
                null()
            } else {
                &p as *const _
            };
            // SAFETY: `pp` NULL or a valid struct; `out` a valid slot.
            let st = unsafe { moe_sampler_new(pp, &mut out) };
            if !failed(st) {
                s.samplers.push(out);
            } else {
                assert!(out.is_null());
            }
        }
        9 => {
            // Sample from arbitrary logits.
            let smp = s.sampler(r);
            let n = r.len(300);
            let logits: Vec<f32> = (0..n)
                .map(|_| if r.bool() { r.f32() } else { f32::from(r.u8()) })
                .collect();
            let history = tokens(r);
            let mut out = SENTINEL_U32;
            let lp = if n == 0 && r.bool() {
                null()
            } else {
                logits.as_ptr()
            };
            // SAFETY: `smp` NULL, live or refused; arrays of their lengths; `out` a valid slot.
            let st = unsafe {
                moe_sampler_sample(smp, lp, n, history.as_ptr(), history.len(), &mut out)
            };
            if failed(st) {
                assert_eq!(out, SENTINEL_U32);
            } else {
                assert!((out as usize) < n, "sampled {out} of {n} logits");
            }
        }
        10 => {
            // Free something that is not live: NULL, freed, foreign or wrong-kind handles.
            let h = s.dead(r);
            // SAFETY: `h` is not a live object of this input (see `State::dead`): the registry
            // must refuse it (or it is NULL, a no-op).
            unsafe {
                match r.u8() % 3 {
                    0 => moe_model_free(h as *mut moe_model),
                    1 => moe_session_free(h as *mut moe_session),
                    _ => moe_sampler_free(h as *mut moe_sampler),
                }
            }
        }
        11 => {
            // Free one of this input's sessions or samplers.
            if r.bool() && !s.sessions.is_empty() {
                let i = usize::from(r.u8()) % s.sessions.len();
                let h = s.sessions.swap_remove(i);
                s.lens.swap_remove(i);
                // SAFETY: `h` is a live session of this input, removed from the lists.
                unsafe { moe_session_free(h) };
                s.freed.push(h as usize);
            } else if !s.samplers.is_empty() {
                let h = s
                    .samplers
                    .swap_remove(usize::from(r.u8()) % s.samplers.len());
                // SAFETY: `h` is a live sampler of this input, removed from the list.
                unsafe { moe_sampler_free(h) };
                s.freed.push(h as usize);
            }
        }
        12 | 13 => {
            // Tokenize.
            let m = s.model(r);
            let n = r.len(64);
            let text = r.bytes(n);
            let cap = r.len(48);
            let mut buf = vec![SENTINEL_U32; cap];
            let mut n_out = usize::MAX;
            let tp = if text.is_empty() && r.bool() {
                null()
            } else {
                text.as_ptr().cast::<c_char>()
            };
            let bp = if cap == 0 && r.bool() {
                null_mut()
            } else {
                buf.as_mut_ptr()
            };
            let np = if r.u8().is_multiple_of(8) {
                null_mut()
            } else {
                &mut n_out as *mut usize
            };
            // SAFETY: `m` as in op 0; each buffer NULL or of its given length.
            let st = unsafe { moe_model_tokenize(m, tp, text.len(), r.bool(), bp, cap, np) };
            if st == moe_status::MOE_OK {
                assert!(n_out <= cap);
            } else if st == moe_status::MOE_ERR_BUFFER_TOO_SMALL {
                assert!(n_out > cap && n_out != usize::MAX);
                assert!(buf.iter().all(|&x| x == SENTINEL_U32));
            } else {
                failed(st);
                assert_eq!(n_out, usize::MAX);
                assert!(buf.iter().all(|&x| x == SENTINEL_U32));
            }
        }
        14 => {
            // Detokenize.
            let m = s.model(r);
            let ids = tokens(r);
            let cap = r.len(96);
            let mut buf = vec![0x5Au8; cap];
            let mut len = usize::MAX;
            let bp = if cap == 0 && r.bool() {
                null_mut()
            } else {
                buf.as_mut_ptr().cast::<c_char>()
            };
            let ip = if ids.is_empty() && r.bool() {
                null()
            } else {
                ids.as_ptr()
            };
            // SAFETY: `m` as in op 0; each buffer NULL or of its given length.
            let st = unsafe { moe_model_detokenize(m, ip, ids.len(), r.bool(), bp, cap, &mut len) };
            check_text_out(st, &buf, cap, len);
        }
        15 => {
            // Chat template over arbitrary messages.
            let m = s.model(r);
            let n = r.len(3);
            let strings: Vec<(CString, CString)> =
                (0..n).map(|_| (c_string(r, 12), c_string(r, 40))).collect();
            let msgs: Vec<moe_chat_message> = strings
                .iter()
                .map(|(role, content)| moe_chat_message {
                    role: if r.u8().is_multiple_of(16) {
                        null()
                    } else {
                        role.as_ptr()
                    },
                    content: content.as_ptr(),
                })
                .collect();
            let cap = r.len(256);
            let mut buf = vec![0x5Au8; cap];
            let mut len = usize::MAX;
            let mp = if n == 0 && r.bool() {
                null()
            } else {
                msgs.as_ptr()
            };
            // SAFETY: `m` as in op 0; `mp` NULL or `n` messages of NULL or NUL-terminated strings;
            // `buf` of `cap` bytes.
            let st = unsafe {
                moe_model_apply_chat_template(
                    m,
                    mp,
                    n,
                    r.bool(),
                    buf.as_mut_ptr().cast(),
                    cap,
                    &mut len,
                )
            };
            check_text_out(st, &buf, cap, len);
        }
        16 => {
            // Generate on a session (with the text model it runs; others fail without a tokenizer).
            let (i, sess) = s.session(r);
            let prompt = c_string(r, 24);
            let mut p = moe_generate_default_params();
            p.max_new_tokens = r.len(3);
            p.sampler.temperature = r.param();
            p.sampler.top_p = r.param();
            p.sampler.seed = r.u64();
            let stop = [c_string(r, 4)];
            let stop_ptrs: Vec<*const c_char> = stop.iter().map(|c| c.as_ptr()).collect();
            if r.bool() {
                p.stop_strings = stop_ptrs.as_ptr();
                p.n_stop_strings = stop_ptrs.len();
            }
            let stop_ids = tokens(r);
            if r.bool() {
                p.stop_tokens = stop_ids.as_ptr();
                p.n_stop_tokens = stop_ids.len();
            }
            p.stop_at_eos = r.bool();
            let mut budget: u32 = u32::from(r.u8() % 4) + 1;
            let mut n_gen = usize::MAX;
            let cb: moe_piece_fn = if r.bool() { Some(on_piece) } else { None };
            // SAFETY: `sess` as in op 0; `prompt` holds its length in bytes; `p`'s arrays live
            // through the call; `budget` is a u32 for `on_piece`.
            let st = unsafe {
                moe_session_generate(
                    sess,
                    prompt.as_ptr(),
                    prompt.as_bytes().len(),
                    &p,
                    cb,
                    (&mut budget as *mut u32).cast(),
                    &mut n_gen,
                )
            };
            if let Some(i) = i {
                s.lens[i] = None; // the prompt's token count is the tokenizer's business
            }
            if !failed(st) {
                assert!(n_gen <= p.max_new_tokens);
            }
        }
        17 => {
            // Loading: NULL and missing paths, NULL out, odd parameters.
            let mut params = moe_model_default_params();
            params.threads = r.u32() % 4;
            params.precision = r.u32() % 4;
            params.copy_weights = r.bool();
            let path = match r.u8() % 3 {
                0 => None,
                1 => Some(c_string(r, 16)),
                _ => Some(CString::new("/nonexistent/moe-fuzz").unwrap()),
            };
            let mut out: *mut moe_model = null_mut();
            let o = if r.bool() {
                &mut out as *mut _
            } else {
                null_mut()
            };
            // SAFETY: `path` NULL or NUL-terminated; `params` valid; `o` NULL or a valid slot.
            let st =
                unsafe { moe_model_load(path.as_ref().map_or(null(), |p| p.as_ptr()), &params, o) };
            if st == moe_status::MOE_OK {
                // A short relative path may name a checkpoint: free what was loaded.
                // SAFETY: `out` is a model this call created.
                unsafe { moe_model_free(out) };
            } else {
                failed(st);
                assert!(out.is_null());
            }
        }
        _ => {
            // Static strings.
            // SAFETY: both return static NUL-terminated strings, never NULL.
            unsafe {
                assert!(!CStr::from_ptr(moe_status_str(r.u32()))
                    .to_bytes()
                    .is_empty());
                assert!(!CStr::from_ptr(moe_version()).to_bytes().is_empty());
            }
        }
    }
}

/// The text-buffer convention: on success the text, its NUL and `len < cap`; a short buffer gets
/// only the length needed; other failures write nothing.
fn check_text_out(st: moe_status, buf: &[u8], cap: usize, len: usize) {
    if st == moe_status::MOE_OK {
        assert!(len < cap, "len {len}, capacity {cap}");
        assert_eq!(buf[len], 0, "no NUL after the text");
        assert!(std::str::from_utf8(&buf[..len]).is_ok());
    } else if st == moe_status::MOE_ERR_BUFFER_TOO_SMALL {
        assert!(len >= cap && len != usize::MAX);
        assert!(
            buf.iter().all(|&b| b == 0x5A),
            "buffer written when too small"
        );
    } else {
        failed(st);
        assert_eq!(len, usize::MAX);
        assert!(buf.iter().all(|&b| b == 0x5A), "buffer written on failure");
    }
}

fuzz_target!(|data: &[u8]| {
    models();
    let mut r = Reader::new(data);
    let mut s = State::default();
    let mut steps = 0;
    while !r.is_empty() && steps < 64 {
        step(&mut r, &mut s);
        steps += 1;
    }
    for h in s.sessions.drain(..) {
        // SAFETY: a live session of this input, freed once.
        unsafe { moe_session_free(h) };
    }
    for h in s.samplers.drain(..) {
        // SAFETY: a live sampler of this input, freed once.
        unsafe { moe_sampler_free(h) };
    }
});
