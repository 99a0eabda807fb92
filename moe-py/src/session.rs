//! `moe.Session`: one sequence's KV cache over a shared model, with numpy logits out.

use std::sync::{Mutex, MutexGuard};

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;

use moe_core::{LogitsMode, Session};

use crate::args;
use crate::errors::PyResultExt;
use crate::loaded::PyModel;

/// The state of one sequence (its KV cache and the tokens fed so far) over a model.
///
/// Make one per conversation and per thread; the model behind it is shared. Calls on one session from
/// several threads are serialised.
#[pyclass(module = "moe", name = "Session", frozen)]
pub struct PySession {
    model: Py<PyModel>,
    inner: Mutex<Session>,
    vocab_size: usize,
}

impl PySession {
    /// A new session over `model`, with the model's defaults overridden by the arguments.
    pub(crate) fn create(
        model: &Bound<'_, PyModel>,
        max_context: Option<i64>,
        sparse: Option<bool>,
    ) -> PyResult<Self> {
        let py = model.py();
        let m = model.get();
        let params = m.session_params(max_context, sparse)?;
        let session = Session::new(m.inner.clone(), &params).py_err(py)?;
        Ok(PySession {
            model: model.clone().unbind(),
            inner: Mutex::new(session),
            vocab_size: m.inner.config().vocab_size,
        })
    }

    /// The session, even if a previous holder panicked (the engine reports errors, not panics).
    fn lock(&self) -> MutexGuard<'_, Session> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the session with the GIL released, so that waiting for another thread's call on
    /// this session, or computing, never blocks other Python threads.
    fn with<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut Session) -> R + Send) -> R {
        py.detach(|| f(&mut self.lock()))
    }
}

#[pymethods]
impl PySession {
    /// Same as `model.session(max_context=..., sparse=...)`.
    #[new]
    #[pyo3(signature = (model, *, max_context = None, sparse = None))]
    fn new(
        model: &Bound<'_, PyModel>,
        max_context: Option<i64>,
        sparse: Option<bool>,
    ) -> PyResult<Self> {
        Self::create(model, max_context, sparse)
    }

    /// Feeds `ids` (a list of ints or a 1-D integer numpy array) after what the session holds.
    ///
    /// Returns the logits of the last position, float32 `[V]`, or of every new position, float32
    /// `[T, V]`, with `all_logits=True`.
    #[pyo3(signature = (ids, *, all_logits = false))]
    fn prefill<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'py, PyAny>,
        all_logits: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ids = args::token_ids(ids)?;
        let mode = if all_logits {
            LogitsMode::All
        } else {
            LogitsMode::Last
        };
        let logits = self.with(py, |s| s.prefill(&ids, mode)).py_err(py)?;
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
        let logits = self.with(py, |s| s.decode(token)).py_err(py)?;
        Ok(PyArray1::from_vec(py, logits))
    }

    /// Forgets every token (the session can be reused).
    fn reset(&self, py: Python<'_>) {
        self.with(py, |s| s.reset());
    }

    /// Keeps only the first `n` tokens (no-op if the session holds fewer).
    fn truncate(&self, py: Python<'_>, n: i64) -> PyResult<()> {
        let n = args::count("n", n)?;
        self.with(py, |s| s.truncate(n)).py_err(py)
    }

    /// Number of tokens held.
    fn __len__(&self, py: Python<'_>) -> usize {
        self.with(py, |s| s.len())
    }

    /// The tokens fed so far.
    #[getter]
    fn tokens(&self, py: Python<'_>) -> Vec<u32> {
        self.with(py, |s| s.tokens().to_vec())
    }

    /// The most tokens this session may hold.
    #[getter]
    fn max_context(&self, py: Python<'_>) -> usize {
        self.with(py, |s| s.max_context())
    }

    /// Bytes held by the KV caches now.
    #[getter]
    fn kv_cache_bytes(&self, py: Python<'_>) -> usize {
        self.with(py, |s| s.kv_cache_bytes())
    }

    /// The model this session runs.
    #[getter]
    fn model(&self, py: Python<'_>) -> Py<PyModel> {
        self.model.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let (len, max) = self.with(py, |s| (s.len(), s.max_context()));
        format!("moe.Session(len={len}, max_context={max})")
    }
}
