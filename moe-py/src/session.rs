//! `moe.Session`: one sequence's KV cache over a shared model, with numpy logits out.

use std::sync::{Mutex, MutexGuard};

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes};

use moe_core::{Error, KvDType, LogitsMode, Session};

use crate::args;
use crate::errors::PyResultExt;
use crate::loaded::PyModel;
use crate::options::GenArgs;
use crate::prompt::Prompt;
use crate::running::SessionHome;
use crate::text::{chat_messages, tokenizer_of, PyTextStream};

/// The state of one sequence (its KV cache and the tokens fed so far) over a model.
///
/// Make one per conversation and per thread; the model behind it is shared. Calls on one session from
/// several threads are serialised. While a stream from `generate` / `chat` runs, the stream holds the
/// session: other calls raise `moe.InvalidArgumentError` until it ends, is closed or is dropped.
#[pyclass(module = "moe", name = "Session", frozen)]
pub struct PySession {
    model: Py<PyModel>,
    /// `None` while a generation holds the session.
    inner: Mutex<Option<Session>>,
    vocab_size: usize,
}

/// A generation started by `Session.generate` hands the session back to its `moe.Session`.
impl SessionHome for Py<PySession> {
    fn put_back(&self, session: Session) {
        *self.get().lock() = Some(session);
    }
}

pub(crate) fn busy() -> Error {
    Error::InvalidArgument(
        "this session is generating: exhaust, close() or drop its stream first".into(),
    )
}

impl PySession {
    /// A new session over `model`, with the model's defaults overridden by the arguments.
    pub(crate) fn create(
        model: &Bound<'_, PyModel>,
        max_context: Option<i64>,
        sparse: Option<bool>,
        kv_dtype: &str,
    ) -> PyResult<Self> {
        let py = model.py();
        let m = model.get();
        let params = m
            .session_params(max_context, sparse)?
            .with_kv_dtype(KvDType::parse(kv_dtype).py_err(py)?);
        let session = Session::new(m.inner.clone(), &params).py_err(py)?;
        Ok(Self::wrap(model, session))
    }

    /// `session` (over `model`'s weights) as a `moe.Session`.
    fn wrap(model: &Bound<'_, PyModel>, session: Session) -> Self {
        PySession {
            model: model.clone().unbind(),
            inner: Mutex::new(Some(session)),
            vocab_size: model.get().inner.config().vocab_size,
        }
    }

    /// The session slot, even if a previous holder panicked (the engine reports errors, not panics).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Option<Session>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the session with the GIL released, so that waiting for another thread's call on
    /// this session, or computing, never blocks other Python threads. Fails while generating.
    fn with<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Session) -> R + Send,
    ) -> PyResult<R> {
        py.detach(|| self.lock().as_mut().map(f).ok_or_else(busy))
            .py_err(py)
    }

    /// Takes the session for a generation. `prompt(session)` says what to feed (and may reset the
    /// session first); it is checked against the session before the session leaves, so a failing
    /// prompt leaves it in place.
    fn take_for(
        &self,
        py: Python<'_>,
        prompt: impl FnOnce(&mut Session) -> Vec<u32> + Send,
    ) -> PyResult<(Session, Vec<u32>)> {
        py.detach(|| {
            let mut slot = self.lock();
            let s = slot.as_mut().ok_or_else(busy)?;
            let ids = prompt(s);
            s.check_tokens(&ids)?;
            let session = slot.take().ok_or_else(busy)?;
            Ok((session, ids))
        })
        .py_err(py)
    }

    /// The `moe.Session` object to hand the session back to.
    fn home(slf: &Bound<'_, Self>) -> Option<Box<dyn SessionHome>> {
        Some(Box::new(slf.clone().unbind()))
    }
}

#[pymethods]
impl PySession {
    /// Same as `model.session(max_context=..., sparse=..., kv_dtype=...)`.
    #[new]
    #[pyo3(signature = (model, *, max_context = None, sparse = None, kv_dtype = "f32"))]
    fn new(
        model: &Bound<'_, PyModel>,
        max_context: Option<i64>,
        sparse: Option<bool>,
        kv_dtype: &str,
    ) -> PyResult<Self> {
        Self::create(model, max_context, sparse, kv_dtype)
    }

    /// A new session holding the same tokens and caches, continuing independently of this one.
    /// The caches are not copied: what this session holds becomes read-only blocks both share (N
    /// forks of one long prompt hold its cache once); each appends to its own tail. Logits equal
    /// those of a fresh session fed the same tokens.
    fn fork(slf: &Bound<'_, Self>, py: Python<'_>) -> PyResult<PySession> {
        let this = slf.get();
        let forked = this.with(py, |s| s.fork())?;
        Ok(Self::wrap(this.model.bind(py), forked))
    }

    /// The session as `bytes`: its tokens, options (max_context, sparse, kv_dtype) and every cache,
    /// under a versioned header with the model's fingerprint and checksums.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self.with(py, |s| s.snapshot())?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Writes `snapshot()` to the file `path` (replacing it).
    fn save(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        self.with(py, |s| s.save(&path))?.py_err(py)
    }

    /// The session a `snapshot()` holds, over `model` (the model that made it). Raises
    /// `moe.SnapshotModelMismatchError`, `moe.SnapshotVersionError`, `moe.SnapshotTruncatedError`
    /// or `moe.SnapshotCorruptError` (all `moe.SnapshotError`s).
    #[staticmethod]
    fn restore(model: &Bound<'_, PyModel>, data: &[u8]) -> PyResult<PySession> {
        let py = model.py();
        let m = model.get().inner.clone();
        let session = py.detach(|| Session::restore(m, data)).py_err(py)?;
        Ok(Self::wrap(model, session))
    }

    /// `restore` from a file `save` wrote.
    #[staticmethod]
    fn restore_file(model: &Bound<'_, PyModel>, path: std::path::PathBuf) -> PyResult<PySession> {
        let py = model.py();
        let m = model.get().inner.clone();
        let session = py.detach(|| Session::restore_file(m, &path)).py_err(py)?;
        Ok(Self::wrap(model, session))
    }

    /// Feeds `ids` (a list of ints or a 1-D integer numpy array) after what the session holds.
    ///
    /// Returns the logits of the last position, float32 `[V]`, or of every new position, float32
    /// `[T, V]`, with `all_logits=True`.
    ///
    /// With `progress`, the ids are fed `chunk` at a time and `progress(done, total)` is called after
    /// each chunk; returning `False` cancels the rest with `moe.CancelledError` (the session keeps
    /// the chunks done; an exception the callback raises cancels too and is re-raised).
    #[pyo3(signature = (ids, *, all_logits = false, progress = None, chunk = 512))]
    fn prefill<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'py, PyAny>,
        all_logits: bool,
        progress: Option<Py<PyAny>>,
        chunk: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ids = args::token_ids(ids)?;
        let chunk = args::count("chunk", chunk)?;
        let mode = if all_logits {
            LogitsMode::All
        } else {
            LogitsMode::Last
        };
        let logits = match &progress {
            None => self.with(py, |s| s.prefill(&ids, mode))?,
            Some(cb) => {
                let mut raised: Option<PyErr> = None;
                let r = self.with(py, |s| {
                    let mut report = |done: usize, total: usize| {
                        Python::attach(|py| match cb.call1(py, (done, total)) {
                            // Anything but an explicit False goes on.
                            Ok(v) => !v.bind(py).is(PyBool::new(py, false)),
                            Err(e) => {
                                raised = Some(e);
                                false
                            }
                        })
                    };
                    s.prefill_with_progress(&ids, mode, chunk, &mut report)
                })?;
                if let Some(e) = raised {
                    return Err(e);
                }
                r
            }
        }
        .py_err(py)?;
        if !all_logits {
            return Ok(PyArray1::from_vec(py, logits).into_any());
        }
        let rows = Array2::from_shape_vec((ids.len(), self.vocab_size), logits).map_err(|e| {
            pyo3::exceptions::PyRuntimeError::new_err(format!("moe: logits shape: {e}"))
        })?;
        Ok(rows.into_pyarray(py).into_any())
    }

    /// Feeds one token; returns the next-token logits, float32 `[V]`.
    fn decode<'py>(
        &self,
        py: Python<'py>,
        token: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let token = args::token_id(token)?;
        let logits = self.with(py, |s| s.decode(token))?.py_err(py)?;
        Ok(PyArray1::from_vec(py, logits))
    }

    /// Forgets every token (the session can be reused).
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |s| s.reset())
    }

    /// Keeps only the first `n` tokens (no-op if the session holds fewer).
    fn truncate(&self, py: Python<'_>, n: i64) -> PyResult<()> {
        let n = args::count("n", n)?;
        self.with(py, |s| s.truncate(n))?.py_err(py)
    }

    /// Number of tokens held.
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |s| s.len())
    }

    /// The tokens fed so far.
    #[getter]
    fn tokens(&self, py: Python<'_>) -> PyResult<Vec<u32>> {
        self.with(py, |s| s.tokens().to_vec())
    }

    /// The most tokens this session may hold.
    #[getter]
    fn max_context(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |s| s.max_context())
    }

    /// Bytes held by the KV caches now, in their precision (blocks shared with forks included).
    #[getter]
    fn kv_cache_bytes(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |s| s.kv_cache_bytes())
    }

    /// Of `kv_cache_bytes`, those in blocks another session (a fork, or the session forked from)
    /// also references: forks of one prompt hold the sum of `kv_cache_bytes - kv_cache_shared_bytes`
    /// plus the shared blocks once.
    #[getter]
    fn kv_cache_shared_bytes(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |s| s.kv_cache_shared_bytes())
    }

    /// The precision the caches store rows in: `"f32"`, `"bf16"` or `"int8"`.
    #[getter]
    fn kv_dtype(&self, py: Python<'_>) -> PyResult<&'static str> {
        self.with(py, |s| s.kv_dtype().name())
    }

    /// Generates after `prompt`, continuing this session: the prompt is fed after what the session
    /// holds, and when the stream ends (exhausted, closed or dropped) the session holds prompt and
    /// answer, so the next call continues the conversation without re-processing it.
    ///
    /// Token ids give a `TokenStream`, a `str` a `TextStream`; the arguments are `Model.generate`'s
    /// (the session's own `max_context` applies). For a text prompt after earlier turns, pass
    /// `add_special_tokens=False` so no second BOS is added.
    #[pyo3(signature = (
        prompt, *, max_new_tokens = None, temperature = None, top_k = None, top_p = None,
        min_p = None, repetition_penalty = None, seed = None, stop = None, ignore_eos = false,
        add_special_tokens = true, skip_special_tokens = true
    ))]
    #[allow(clippy::too_many_arguments)]
    fn generate(
        slf: &Bound<'_, Self>,
        py: Python<'_>,
        prompt: &Bound<'_, PyAny>,
        max_new_tokens: Option<i64>,
        temperature: Option<f32>,
        top_k: Option<i64>,
        top_p: Option<f32>,
        min_p: Option<f32>,
        repetition_penalty: Option<f32>,
        seed: Option<u64>,
        stop: Option<&Bound<'_, PyAny>>,
        ignore_eos: bool,
        add_special_tokens: bool,
        skip_special_tokens: bool,
    ) -> PyResult<Py<PyAny>> {
        let this = slf.get();
        let model = this.model.get().inner.clone();
        let resolved = GenArgs {
            max_new_tokens,
            temperature,
            top_k,
            top_p,
            min_p,
            repetition_penalty,
            seed,
            stop,
            ignore_eos,
        }
        .resolve(py, &model)?;
        let prompt = Prompt::of(py, &model, prompt, add_special_tokens, &resolved)?;
        let (session, _) = this.take_for(py, |_| prompt.ids().to_vec())?;
        prompt.start(py, session, Self::home(slf), resolved, skip_special_tokens)
    }

    /// Chats in this session: `messages` is the whole conversation so far (a list of
    /// `{"role": ..., "content": ...}`), rendered with the model's chat template and a generation
    /// prompt. The longest common start of what the session holds and that rendering (the earlier
    /// turns and answers) is kept and only the rest is fed, so earlier turns are not processed again;
    /// a conversation that shares nothing with the session replaces it.
    /// Returns a `TextStream`; the arguments are `Model.chat`'s.
    #[pyo3(signature = (
        messages, *, max_new_tokens = None, temperature = None, top_k = None, top_p = None,
        min_p = None, repetition_penalty = None, seed = None, stop = None, ignore_eos = false,
        skip_special_tokens = true
    ))]
    #[allow(clippy::too_many_arguments)]
    fn chat(
        slf: &Bound<'_, Self>,
        py: Python<'_>,
        messages: &Bound<'_, PyAny>,
        max_new_tokens: Option<i64>,
        temperature: Option<f32>,
        top_k: Option<i64>,
        top_p: Option<f32>,
        min_p: Option<f32>,
        repetition_penalty: Option<f32>,
        seed: Option<u64>,
        stop: Option<&Bound<'_, PyAny>>,
        ignore_eos: bool,
        skip_special_tokens: bool,
    ) -> PyResult<PyTextStream> {
        let this = slf.get();
        let model = this.model.get().inner.clone();
        let resolved = GenArgs {
            max_new_tokens,
            temperature,
            top_k,
            top_p,
            min_p,
            repetition_penalty,
            seed,
            stop,
            ignore_eos,
        }
        .resolve(py, &model)?;
        let messages = chat_messages(messages)?;
        let tokenizer = tokenizer_of(&model).py_err(py)?;
        let all = py
            .detach(|| tokenizer.encode_chat(&messages, true))
            .py_err(py)?;
        let (session, ids) = this.take_for(py, |s| {
            // Keep the longest common prefix of what the session holds and the new rendering (at
            // least one token is fed), and feed the rest.
            let common = s
                .tokens()
                .iter()
                .zip(&all)
                .take_while(|(a, b)| a == b)
                .count()
                .min(all.len().saturating_sub(1));
            if s.truncate(common).is_err() {
                s.reset();
                return all;
            }
            all[s.len()..].to_vec()
        })?;
        PyTextStream::start(
            py,
            session,
            Self::home(slf),
            ids,
            resolved.options,
            resolved.stop_strings,
            skip_special_tokens,
        )
    }

    /// The model this session runs.
    #[getter]
    fn model(&self, py: Python<'_>) -> Py<PyModel> {
        self.model.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        match self.with(py, |s| (s.len(), s.max_context())) {
            Ok((len, max)) => format!("moe.Session(len={len}, max_context={max})"),
            Err(_) => "moe.Session(generating)".into(),
        }
    }
}
