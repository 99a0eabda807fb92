//! `moe.Model`: a loaded checkpoint, shared by every session and generation made from it.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use moe_core::{LoadOptions, Model, SessionParams, SparseMode};

use crate::args;
use crate::errors::PyResultExt;
use crate::json;
use crate::session::PySession;
use crate::stream::PyTokenStream;

/// A model loaded from a Hugging Face checkpoint folder (`config.json` + safetensors).
///
/// The weights are memory-mapped and shared: make as many sessions as you like, on any thread.
#[pyclass(module = "moe", name = "Model", frozen)]
pub struct PyModel {
    pub(crate) inner: Arc<Model>,
    path: PathBuf,
    /// Defaults for sessions and generations made from this model.
    pub(crate) defaults: SessionParams,
}

impl PyModel {
    /// Session parameters: the model's defaults overridden by the call's arguments.
    pub(crate) fn session_params(
        &self,
        max_context: Option<i64>,
        sparse: Option<bool>,
    ) -> PyResult<SessionParams> {
        Ok(SessionParams {
            max_context: args::max_context(max_context)?.or(self.defaults.max_context),
            sparse_mode: sparse.map(sparse_mode).unwrap_or(self.defaults.sparse_mode),
        })
    }
}

fn sparse_mode(sparse: bool) -> SparseMode {
    if sparse {
        SparseMode::Sparse
    } else {
        SparseMode::Dense
    }
}

#[pymethods]
impl PyModel {
    /// Loads the checkpoint in `path`.
    ///
    /// `max_context` and `sparse` are the defaults of sessions and generations made from this model
    /// (`max_context=None` is the model's `max_position_embeddings`; `sparse=False` makes
    /// DeepSeek-sparse-attention layers attend densely). `progress(done, total)` is called after each
    /// layer is loaded. Raises `FileNotFoundError` (`moe.NotFoundError`) for a missing path and a
    /// `moe.MoeError` subclass for a checkpoint that cannot be used.
    #[new]
    #[pyo3(signature = (path, *, max_context = None, sparse = true, progress = None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        max_context: Option<i64>,
        sparse: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let defaults = SessionParams {
            max_context: args::max_context(max_context)?,
            sparse_mode: sparse_mode(sparse),
        };
        let mut callback_error: Option<PyErr> = None;
        let loaded = py.detach(|| match &progress {
            None => Model::load(&path),
            Some(cb) => {
                let mut report = |done: usize, total: usize| {
                    if callback_error.is_none() {
                        Python::attach(|py| {
                            if let Err(e) = cb.call1(py, (done, total)) {
                                callback_error = Some(e);
                            }
                        });
                    }
                };
                Model::load_with(
                    &path,
                    LoadOptions {
                        progress: Some(&mut report),
                    },
                )
            }
        });
        let model = loaded.py_err(py)?;
        if let Some(e) = callback_error {
            return Err(e);
        }
        Ok(PyModel {
            inner: Arc::new(model),
            path,
            defaults,
        })
    }

    /// The checkpoint folder.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Number of token ids the model knows (ids must be smaller).
    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.config.vocab_size
    }

    /// `architectures[0]` of config.json, e.g. `"DeepseekV3ForCausalLM"`.
    #[getter]
    fn architecture(&self) -> String {
        self.inner.config.architecture.clone()
    }

    /// The model family the engine runs it as, e.g. `"deepseek_v3"`.
    #[getter]
    fn family(&self) -> &'static str {
        self.inner.config.family.name()
    }

    /// The (text) model's config.json as a dict (a fresh copy on every access).
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        Ok(json::to_py(py, &self.inner.config.raw)?.cast_into::<PyDict>()?)
    }

    /// End-of-sequence token ids: generation stops after one of these unless told otherwise.
    #[getter]
    fn eos_token_ids(&self) -> Vec<u32> {
        self.inner.config.eos_token_ids.clone()
    }

    /// Beginning-of-sequence token id, when the config names one.
    #[getter]
    fn bos_token_id(&self) -> Option<u32> {
        self.inner.config.bos_token_id
    }

    /// The longest context the model was trained for (the default `max_context`).
    #[getter]
    fn max_position_embeddings(&self) -> usize {
        self.inner.config.max_position_embeddings
    }

    /// Number of transformer layers.
    #[getter]
    fn num_layers(&self) -> usize {
        self.inner.config.num_layers
    }

    /// Width of the residual stream.
    #[getter]
    fn hidden_size(&self) -> usize {
        self.inner.config.hidden_size
    }

    /// Bytes of the memory-mapped checkpoint files.
    #[getter]
    fn checkpoint_bytes(&self) -> usize {
        self.inner.checkpoint_bytes()
    }

    /// A new, empty session (KV cache) over this model.
    #[pyo3(signature = (*, max_context = None, sparse = None))]
    fn session(
        slf: &Bound<'_, Self>,
        max_context: Option<i64>,
        sparse: Option<bool>,
    ) -> PyResult<PySession> {
        PySession::create(slf, max_context, sparse)
    }

    /// Generates after `ids`, yielding each new token id as it is produced.
    ///
    /// `temperature=0.0` (the default) is greedy; `top_k=0`, `top_p=1.0`, `min_p=0.0` and
    /// `repetition_penalty=1.0` switch those filters off. `seed=None` picks a random seed. `stop` is a
    /// token id or a list of them (`None`: the model's `eos_token_ids`; `[]`: none); the stop token is
    /// yielded. The prompt is processed before this returns, so bad input raises here.
    #[pyo3(signature = (
        ids, *, max_new_tokens = 128, temperature = 0.0, top_k = 0, top_p = 1.0, min_p = 0.0,
        repetition_penalty = 1.0, seed = None, stop = None, max_context = None, sparse = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn generate(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        max_new_tokens: i64,
        temperature: f32,
        top_k: i64,
        top_p: f32,
        min_p: f32,
        repetition_penalty: f32,
        seed: Option<u64>,
        stop: Option<&Bound<'_, PyAny>>,
        max_context: Option<i64>,
        sparse: Option<bool>,
    ) -> PyResult<PyTokenStream> {
        let options = moe_core::GenerateOptions {
            max_new_tokens: args::count("max_new_tokens", max_new_tokens)?,
            sampler: moe_core::SamplerParams {
                temperature,
                top_k: args::count("top_k", top_k)?,
                top_p,
                min_p,
                repetition_penalty,
                seed: args::seed(seed),
            },
            stop_tokens: args::stop_ids(stop, &self.inner.config.eos_token_ids)?,
        };
        let params = self.session_params(max_context, sparse)?;
        let prompt = args::token_ids(ids)?;
        PyTokenStream::start(py, self.inner.clone(), &params, prompt, options)
    }

    fn __repr__(&self) -> String {
        let c = &self.inner.config;
        format!(
            "moe.Model(path={:?}, architecture={:?}, family={:?}, vocab_size={}, num_layers={})",
            self.path.display().to_string(),
            c.architecture,
            c.family.name(),
            c.vocab_size,
            c.num_layers
        )
    }
}
