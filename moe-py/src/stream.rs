//! `moe.TokenStream`: the iterator `Model.generate` and `Session.generate` return for token-id
//! prompts, one sampled token id per step.

use pyo3::prelude::*;

use moe_core::{GenerateOptions, Generator, Session};

use crate::errors::PyResultExt;
use crate::running::{Running, SessionHome};

/// Yields generated token ids as they are produced; each step runs with the GIL released.
///
/// Generation ends after `max_new_tokens`, after a stop token (which is yielded), when the context is
/// full, or on `close()`; `finish_reason` then says which.
#[pyclass(module = "moe", name = "TokenStream", frozen)]
pub struct PyTokenStream {
    run: Running<Generator>,
    prompt_len: usize,
}

impl PyTokenStream {
    /// Prefills `prompt` after what `session` holds (GIL released) and gets ready to sample; the
    /// session goes to `home` (if any) when generation ends. The caller has checked the prompt
    /// (`Session::check_tokens`), so the session is not lost to a failing prefill.
    pub(crate) fn start(
        py: Python<'_>,
        session: Session,
        home: Option<Box<dyn SessionHome>>,
        prompt: Vec<u32>,
        options: GenerateOptions,
    ) -> PyResult<Self> {
        let first = session.len() + prompt.len();
        let generator = py
            .detach(|| Generator::new(session, &prompt, options))
            .py_err(py)?;
        Ok(PyTokenStream {
            run: Running::new(generator, home, first),
            prompt_len: prompt.len(),
        })
    }
}

#[pymethods]
impl PyTokenStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next token id; `StopIteration` when generation has ended.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<u32>> {
        self.run.step(py, |g| g.next_token()).py_err(py)
    }

    /// Ends generation early; the iterator is then exhausted.
    fn close(&self, py: Python<'_>) {
        self.run.close(py);
    }

    /// Why generation ended: `"eos"`, `"stop"`, `"length"`, `"context"` or `"cancelled"`; `None`
    /// while it goes on.
    #[getter]
    fn finish_reason(&self) -> Option<&'static str> {
        self.run.finish_reason().map(|r| r.as_str())
    }

    /// Number of tokens produced so far.
    #[getter]
    fn produced(&self) -> usize {
        self.run.produced()
    }

    /// The tokens produced so far.
    #[getter]
    fn tokens(&self) -> Vec<u32> {
        self.run.generated()
    }

    /// Number of prompt tokens.
    #[getter]
    fn prompt_len(&self) -> usize {
        self.prompt_len
    }

    fn __repr__(&self) -> String {
        format!(
            "moe.TokenStream(prompt_len={}, produced={})",
            self.prompt_len,
            self.produced()
        )
    }
}
