//! A generation's prompt as `generate` takes it (text, or token ids) and the stream that runs it;
//! shared by `Model.generate` (a fresh session) and `Session.generate` (the session's own cache).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyString;

use moe_core::{Model, Session};

use crate::args;
use crate::errors::PyResultExt;
use crate::options::Resolved;
use crate::running::SessionHome;
use crate::stream::PyTokenStream;
use crate::text::{tokenizer_of, PyTextStream};

/// The prompt's ids, and whether it was text (a `TextStream`) or ids (a `TokenStream`).
pub(crate) enum Prompt {
    Text(Vec<u32>),
    Ids(Vec<u32>),
}

impl Prompt {
    /// `prompt` as ids: a `str` through the model's tokenizer (with its special tokens when
    /// `add_special_tokens`), or token ids. Stop strings need a text prompt.
    pub(crate) fn of(
        py: Python<'_>,
        model: &Model,
        prompt: &Bound<'_, PyAny>,
        add_special_tokens: bool,
        resolved: &Resolved,
    ) -> PyResult<Self> {
        if let Ok(text) = prompt.cast::<PyString>() {
            let text = text.to_cow()?.into_owned();
            let tokenizer = tokenizer_of(model).py_err(py)?;
            let ids = py
                .detach(|| tokenizer.encode(&text, add_special_tokens))
                .py_err(py)?;
            return Ok(Prompt::Text(ids));
        }
        if !resolved.stop_strings.is_empty() {
            return Err(PyTypeError::new_err(
                "stop strings need a text prompt: give token ids as stop for a token-id prompt",
            ));
        }
        Ok(Prompt::Ids(args::token_ids(prompt)?))
    }

    pub(crate) fn ids(&self) -> &[u32] {
        match self {
            Prompt::Text(ids) | Prompt::Ids(ids) => ids,
        }
    }

    /// Prefills the prompt into `session` and returns the stream (`TextStream` for text, else
    /// `TokenStream`); the session goes to `home` (if any) when generation ends.
    pub(crate) fn start(
        self,
        py: Python<'_>,
        session: Session,
        home: Option<Box<dyn SessionHome>>,
        resolved: Resolved,
        skip_special_tokens: bool,
    ) -> PyResult<Py<PyAny>> {
        Ok(match self {
            Prompt::Text(ids) => Py::new(
                py,
                PyTextStream::start(
                    py,
                    session,
                    home,
                    ids,
                    resolved.options,
                    resolved.stop_strings,
                    skip_special_tokens,
                )?,
            )?
            .into_any(),
            Prompt::Ids(ids) => Py::new(
                py,
                PyTokenStream::start(py, session, home, ids, resolved.options)?,
            )?
            .into_any(),
        })
    }
}
