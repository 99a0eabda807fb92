//! Text in, text out: `moe.Tokenizer` (encode, decode, chat templates) and `moe.TextStream`, the
//! iterator of text pieces that `Model.generate("text")` and `Model.chat(messages)` return.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyMapping, PyString};

use moe_core::{
    ChatMessage, Error, GenerateOptions, Model, Session, StreamDecoder, TextGenerator, TextOptions,
    Tokenizer,
};

use crate::args;
use crate::errors::PyResultExt;
use crate::running::{Running, SessionHome};

/// A checkpoint's tokenizer (`tokenizer.json`, with `tokenizer_config.json`'s special tokens and chat
/// template when present). Usually `model.tokenizer`; `moe.Tokenizer(path)` loads one on its own from
/// a checkpoint folder or a `tokenizer.json` file.
#[pyclass(module = "moe", name = "Tokenizer", frozen)]
pub struct PyTokenizer {
    pub(crate) inner: Arc<Tokenizer>,
}

#[pymethods]
impl PyTokenizer {
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let loaded = py.detach(|| {
            if path.is_dir() {
                Tokenizer::from_dir(&path)?
                    .ok_or_else(|| Error::NotFound(path.join("tokenizer.json")))
            } else {
                Tokenizer::from_file(&path)
            }
        });
        Ok(PyTokenizer {
            inner: Arc::new(loaded.py_err(py)?),
        })
    }

    /// Token ids of `text`; `add_special_tokens` adds the tokenizer's BOS and the like.
    #[pyo3(signature = (text, *, add_special_tokens = true))]
    fn encode(&self, py: Python<'_>, text: &str, add_special_tokens: bool) -> PyResult<Vec<u32>> {
        let text = text.to_owned();
        py.detach(|| self.inner.encode(&text, add_special_tokens))
            .py_err(py)
    }

    /// The text of `ids` (a list of ints or a 1-D integer numpy array).
    #[pyo3(signature = (ids, *, skip_special_tokens = false))]
    fn decode(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        skip_special_tokens: bool,
    ) -> PyResult<String> {
        let ids = args::token_ids(ids)?;
        py.detach(|| self.inner.decode(&ids, skip_special_tokens))
            .py_err(py)
    }

    /// Renders the chat template over `messages` (a list of `{"role": ..., "content": ...}` dicts) as
    /// Hugging Face's `apply_chat_template(..., tokenize=False)` does.
    #[pyo3(signature = (messages, *, add_generation_prompt = false))]
    fn apply_chat_template(
        &self,
        py: Python<'_>,
        messages: &Bound<'_, PyAny>,
        add_generation_prompt: bool,
    ) -> PyResult<String> {
        let messages = chat_messages(messages)?;
        self.inner
            .apply_chat_template(&messages, add_generation_prompt)
            .py_err(py)
    }

    /// An incremental decoder for ids that arrive one at a time (e.g. from `Session.decode`).
    #[pyo3(signature = (*, skip_special_tokens = false))]
    fn stream_decoder(&self, skip_special_tokens: bool) -> PyStreamDecoder {
        PyStreamDecoder {
            inner: Mutex::new(StreamDecoder::new(self.inner.clone(), skip_special_tokens)),
        }
    }

    /// The id of a token string, or `None` if it is not in the vocabulary.
    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Number of ids the tokenizer knows (added tokens included).
    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    /// The id of tokenizer_config.json's `eos_token`, if any.
    #[getter]
    fn eos_token_id(&self) -> Option<u32> {
        self.inner.eos_token_id()
    }

    /// Whether `apply_chat_template` and `Model.chat` can be used.
    #[getter]
    fn has_chat_template(&self) -> bool {
        self.inner.has_chat_template()
    }

    fn __repr__(&self) -> String {
        format!(
            "moe.Tokenizer(vocab_size={}, has_chat_template={})",
            self.inner.vocab_size(),
            if self.inner.has_chat_template() {
                "True"
            } else {
                "False"
            }
        )
    }
}

/// Turns ids fed one at a time into text pieces that are always whole UTF-8 characters; the pieces
/// join to `tokenizer.decode(all ids)`. Made by `Tokenizer.stream_decoder()`.
#[pyclass(module = "moe", name = "StreamDecoder", frozen)]
pub struct PyStreamDecoder {
    inner: Mutex<StreamDecoder>,
}

#[pymethods]
impl PyStreamDecoder {
    /// Adds one id; returns the text it completes (`""` while a character is still incomplete).
    fn push(&self, py: Python<'_>, token: &Bound<'_, PyAny>) -> PyResult<String> {
        let token = args::token_id(token)?;
        let mut dec = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(dec.push(token).py_err(py)?.unwrap_or_default())
    }

    /// Whatever is still held back at the end (e.g. an incomplete character, as U+FFFD).
    fn flush(&self, py: Python<'_>) -> PyResult<String> {
        let mut dec = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(dec.flush().py_err(py)?.unwrap_or_default())
    }
}

/// Chat messages from a list of mappings with string `role` and `content`.
pub(crate) fn chat_messages(obj: &Bound<'_, PyAny>) -> PyResult<Vec<ChatMessage>> {
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "messages must be a list of {\"role\": ..., \"content\": ...} dicts, not str",
        ));
    }
    let iter = obj.try_iter().map_err(|_| {
        PyTypeError::new_err("messages must be a list of {\"role\": ..., \"content\": ...} dicts")
    })?;
    let mut out = Vec::new();
    for (i, item) in iter.enumerate() {
        let item = item?;
        let map = item.cast::<PyMapping>().map_err(|_| {
            PyTypeError::new_err(format!(
                "message {i} must be a dict with 'role' and 'content', not {}",
                item.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        let field = |key: &str| -> PyResult<String> {
            let value = map
                .get_item(key)
                .map_err(|_| PyValueError::new_err(format!("message {i} has no '{key}'")))?;
            value
                .extract::<String>()
                .map_err(|_| PyTypeError::new_err(format!("message {i}: '{key}' must be a str")))
        };
        out.push(ChatMessage::new(field("role")?, field("content")?));
    }
    Ok(out)
}

/// Yields generated text pieces as they are produced (never a broken UTF-8 character); each step runs
/// with the GIL released.
///
/// Generation ends after `max_new_tokens`, at an end-of-sequence or stop token, before a stop string
/// (which is not yielded), when the context is full, or on `close()`; `finish_reason` says which.
#[pyclass(module = "moe", name = "TextStream", frozen)]
pub struct PyTextStream {
    run: Running<TextGenerator>,
    prompt_len: usize,
}

impl PyTextStream {
    /// Prefills `prompt` after what `session` holds (GIL released) and gets ready to generate text;
    /// the session goes to `home` (if any) when generation ends. The caller has checked the prompt
    /// (`Session::check_tokens`), so the session is not lost to a failing prefill.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        py: Python<'_>,
        session: Session,
        home: Option<Box<dyn SessionHome>>,
        prompt: Vec<u32>,
        generate: GenerateOptions,
        stop_strings: Vec<String>,
        skip_special_tokens: bool,
    ) -> PyResult<Self> {
        let tokenizer = tokenizer_of(session.model()).py_err(py)?;
        let first = session.len() + prompt.len();
        let generator = py
            .detach(|| {
                let opts = TextOptions::new(generate)
                    .with_stop_strings(stop_strings)
                    .with_skip_special_tokens(skip_special_tokens);
                TextGenerator::new(session, tokenizer, &prompt, opts)
            })
            .py_err(py)?;
        Ok(PyTextStream {
            run: Running::new(generator, home, first),
            prompt_len: prompt.len(),
        })
    }
}

/// The model's tokenizer, or a `TokenizerError` saying it has none.
pub(crate) fn tokenizer_of(model: &Model) -> moe_core::Result<Arc<Tokenizer>> {
    model.tokenizer().cloned().ok_or_else(|| {
        Error::Tokenizer("this model has no tokenizer.json: give token ids instead of text".into())
    })
}

#[pymethods]
impl PyTextStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next text piece; `StopIteration` when generation has ended.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.run.step(py, |g| g.next_piece()).py_err(py)
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

    /// The stop string that ended generation (`finish_reason == "stop"`), else `None`.
    #[getter]
    fn stop_string(&self) -> Option<String> {
        match self.run.finish_reason() {
            Some(moe_core::FinishReason::Stop { string }) => Some(string),
            _ => None,
        }
    }

    /// Number of tokens produced so far.
    #[getter]
    fn produced(&self) -> usize {
        self.run.produced()
    }

    /// Number of prompt tokens.
    #[getter]
    fn prompt_len(&self) -> usize {
        self.prompt_len
    }

    fn __repr__(&self) -> String {
        format!(
            "moe.TextStream(prompt_len={}, produced={})",
            self.prompt_len,
            self.produced()
        )
    }
}
