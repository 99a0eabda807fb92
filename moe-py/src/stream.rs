//! `moe.TokenStream`: the iterator `Model.generate` returns, one sampled token id per step.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

use moe_core::{GenerateOptions, Generator, Model, Session, SessionParams};

use crate::errors::PyResultExt;

/// Yields generated token ids as they are produced; each step runs with the GIL released.
///
/// Generation ends after `max_new_tokens`, after a stop token (which is yielded), when the context is
/// full, or on `close()`; `finish_reason` then says which.
#[pyclass(module = "moe", name = "TokenStream", frozen)]
pub struct PyTokenStream {
    inner: Mutex<Generator>,
    prompt_len: usize,
}

impl PyTokenStream {
    /// Prefills `prompt` in a new session (GIL released) and gets ready to sample.
    pub(crate) fn start(
        py: Python<'_>,
        model: Arc<Model>,
        params: &SessionParams,
        prompt: Vec<u32>,
        options: GenerateOptions,
    ) -> PyResult<Self> {
        let generator = py
            .detach(|| {
                let session = Session::new(model, params)?;
                Generator::new(session, &prompt, options)
            })
            .py_err(py)?;
        Ok(PyTokenStream {
            inner: Mutex::new(generator),
            prompt_len: prompt.len(),
        })
    }

    fn with<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut Generator) -> R + Send) -> R {
        py.detach(|| f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner())))
    }
}

#[pymethods]
impl PyTokenStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next token id; `StopIteration` when generation has ended.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<u32>> {
        self.with(py, |g| g.next_token()).py_err(py)
    }

    /// Ends generation early; the iterator is then exhausted.
    fn close(&self, py: Python<'_>) {
        self.with(py, |g| g.stop());
    }

    /// Why generation ended: `"eos"`, `"stop"`, `"length"`, `"context"` or `"cancelled"`; `None`
    /// while it goes on.
    #[getter]
    fn finish_reason(&self, py: Python<'_>) -> Option<&'static str> {
        self.with(py, |g| g.finish_reason().map(|r| r.as_str()))
    }

    /// Number of tokens produced so far.
    #[getter]
    fn produced(&self, py: Python<'_>) -> usize {
        self.with(py, |g| g.produced())
    }

    /// The tokens produced so far.
    #[getter]
    fn tokens(&self, py: Python<'_>) -> Vec<u32> {
        let start = self.prompt_len;
        self.with(py, |g| g.session().tokens()[start..].to_vec())
    }

    /// Number of prompt tokens.
    #[getter]
    fn prompt_len(&self) -> usize {
        self.prompt_len
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "moe.TokenStream(prompt_len={}, produced={})",
            self.prompt_len,
            self.produced(py)
        )
    }
}
