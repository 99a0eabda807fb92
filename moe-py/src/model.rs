//! `moe.Model`: a loaded checkpoint, shared by every session and generation made from it.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use moe_core::{ComputeOptions, LoadOptions, Model, Precision, Session, SessionParams};

use crate::args;
use crate::errors::PyResultExt;
use crate::json;
use crate::loaded::{sparse_mode, PyModel};
use crate::options::GenArgs;
use crate::prompt::Prompt;
use crate::session::PySession;
use crate::text::{chat_messages, tokenizer_of, PyTextStream, PyTokenizer};

#[pymethods]
impl PyModel {
    /// Loads the checkpoint in `path`.
    ///
    /// `max_context` and `sparse` are the defaults of sessions and generations made from this model
    /// (`max_context=None` is the model's `max_position_embeddings`; `sparse=False` makes
    /// DeepSeek-sparse-attention layers attend densely). `progress(done, total)` is called after each
    /// layer is loaded. `threads` runs the model's products on a dedicated pool of that many workers
    /// (default: the shared pool over all cores). `precision` is how activations meet bf16 weights:
    /// `"bf16"` (the default) rounds them to bf16 in products with bf16 weights, as llama.cpp's BF16
    /// path and PyTorch bf16 do (faster, ~3 significant digits); `"f32"` is the exact mode (the
    /// reference's results); `"int8"` quantizes them to int8 in products with int4/int8 weights.
    /// `copy_weights=True` reads the safetensors files into memory instead of mapping them (a mapped
    /// file that changes while the model lives crashes the process with SIGBUS). `quantize="q4"` or
    /// `"q8"` quantizes a bf16/f16/f32 checkpoint's linear layers to symmetric int4/int8 groups while
    /// loading (compressed-tensors' rounding and layout; `group_size` default 32, a multiple of 8;
    /// `quantize_scope="experts"` (default: routed experts) or `"linear"` (every linear layer but
    /// routers, embedding and lm_head)); an already quantized checkpoint raises
    /// `moe.UnsupportedQuantizationError`. Raises
    /// `FileNotFoundError` (`moe.NotFoundError`) for a missing path and a `moe.MoeError` subclass for
    /// a checkpoint that cannot be used.
    #[new]
    #[pyo3(signature = (
        path, *, max_context = None, sparse = true, progress = None, threads = None,
        precision = "bf16", copy_weights = false, quantize = None, group_size = None,
        quantize_scope = "experts"
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        max_context: Option<i64>,
        sparse: bool,
        progress: Option<Py<PyAny>>,
        threads: Option<i64>,
        precision: &str,
        copy_weights: bool,
        quantize: Option<&str>,
        group_size: Option<i64>,
        quantize_scope: &str,
    ) -> PyResult<Self> {
        let quantize = crate::quantize::options(py, quantize, group_size, quantize_scope)?;
        let mut defaults = SessionParams::default();
        defaults.max_context = args::max_context(max_context)?;
        defaults.sparse_mode = sparse_mode(sparse);
        let precision = match precision {
            "f32" => Precision::F32,
            "bf16" => Precision::Bf16,
            "int8" => Precision::Int8,
            other => {
                return Err(PyValueError::new_err(format!(
                    "precision must be \"f32\", \"bf16\" or \"int8\", not {other:?}"
                )))
            }
        };
        let threads = match threads {
            None => None,
            Some(n) if n >= 1 => Some(n as usize),
            Some(n) => {
                return Err(PyValueError::new_err(format!(
                    "threads must be >= 1, got {n}"
                )))
            }
        };
        let mut callback_error: Option<PyErr> = None;
        let compute = (threads.is_some() || precision != Precision::DEFAULT)
            .then(|| ComputeOptions::new(threads, precision));
        let loaded = py.detach(|| match &progress {
            None => {
                let mut opts = LoadOptions::default().with_copied_weights(copy_weights);
                opts.compute = compute;
                opts.quantize = quantize;
                Model::load_with(&path, opts)
            }
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
                let mut opts = LoadOptions::default().with_copied_weights(copy_weights);
                opts.progress = Some(&mut report);
                opts.compute = compute;
                opts.quantize = quantize;
                Model::load_with(&path, opts)
            }
        });
        let model = loaded.py_err(py)?;
        if let Some(e) = callback_error {
            return Err(e);
        }
        let tokenizer = match model.tokenizer() {
            Some(t) => Some(Py::new(py, PyTokenizer { inner: t.clone() })?),
            None => None,
        };
        Ok(PyModel {
            inner: Arc::new(model),
            path,
            defaults,
            tokenizer,
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
        self.inner.config().vocab_size
    }

    /// `architectures[0]` of config.json, e.g. `"DeepseekV3ForCausalLM"`.
    #[getter]
    fn architecture(&self) -> String {
        self.inner.config().architecture.clone()
    }

    /// The model family the engine runs it as, e.g. `"deepseek_v3"`.
    #[getter]
    fn family(&self) -> &'static str {
        self.inner.config().family.name()
    }

    /// The (text) model's config.json as a dict (a fresh copy on every access).
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        Ok(json::to_py(py, &self.inner.config().raw)?.cast_into::<PyDict>()?)
    }

    /// End-of-sequence token ids (generation_config.json, else config.json, else the tokenizer's):
    /// generation stops after one of these unless told otherwise.
    #[getter]
    fn eos_token_ids(&self) -> Vec<u32> {
        self.inner.eos_token_ids()
    }

    /// Beginning-of-sequence token id, when the config names one.
    #[getter]
    fn bos_token_id(&self) -> Option<u32> {
        self.inner.config().bos_token_id
    }

    /// The longest context the model was trained for (the default `max_context`).
    #[getter]
    fn max_position_embeddings(&self) -> usize {
        self.inner.config().max_position_embeddings
    }

    /// Number of transformer layers.
    #[getter]
    fn num_layers(&self) -> usize {
        self.inner.config().num_layers
    }

    /// Width of the residual stream.
    #[getter]
    fn hidden_size(&self) -> usize {
        self.inner.config().hidden_size
    }

    /// How the model's products meet bf16 weights: `"bf16"` (the default), `"f32"` (the exact
    /// mode) or `"int8"`.
    #[getter]
    fn precision(&self) -> &'static str {
        self.inner.precision().name()
    }

    /// Worker threads the model's products are split over.
    #[getter]
    fn threads(&self) -> usize {
        self.inner.threads()
    }

    /// Bytes of the memory-mapped checkpoint files.
    #[getter]
    fn checkpoint_bytes(&self) -> usize {
        self.inner.checkpoint_bytes()
    }

    /// A new, empty session (KV cache) over this model. `kv_dtype` is the precision the caches store
    /// rows in: `"f32"` (exact, the default), `"bf16"` or `"int8"` (one scale a row).
    #[pyo3(signature = (*, max_context = None, sparse = None, kv_dtype = "f32"))]
    fn session(
        slf: &Bound<'_, Self>,
        max_context: Option<i64>,
        sparse: Option<bool>,
        kv_dtype: &str,
    ) -> PyResult<PySession> {
        PySession::create(slf, max_context, sparse, kv_dtype)
    }

    /// A hash of the config and the checkpoint's tensor table (names, dtypes, shapes): equal for two
    /// loads of one checkpoint. Session snapshots carry it.
    #[getter]
    fn fingerprint(&self) -> u64 {
        self.inner.fingerprint()
    }

    /// Generates after `prompt`, streaming the result as it is produced.
    ///
    /// Given token ids (a list of ints or a 1-D integer numpy array) it returns a `TokenStream` of
    /// ids; given a `str` it returns a `TextStream` of text pieces (the model needs a tokenizer).
    /// Sampling arguments left as `None` take the checkpoint's generation_config.json defaults, else
    /// greedy; `temperature=0.0` is greedy; `top_k=0`, `top_p=1.0`, `min_p=0.0` and
    /// `repetition_penalty=1.0` switch those filters off; `seed=None` is seed 0 (as in Rust and C).
    /// `stop` is a token id, a string or a list of them: generation ends after a stop token (yielded)
    /// or before a stop string (not yielded; text only). The model's `eos_token_ids` stop it too
    /// unless `ignore_eos=True`. The prompt is processed before this returns, so bad input raises here.
    #[pyo3(signature = (
        prompt, *, max_new_tokens = None, temperature = None, top_k = None, top_p = None,
        min_p = None, repetition_penalty = None, seed = None, stop = None, ignore_eos = false,
        add_special_tokens = true, skip_special_tokens = true, max_context = None, sparse = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn generate(
        &self,
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
        max_context: Option<i64>,
        sparse: Option<bool>,
    ) -> PyResult<Py<PyAny>> {
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
        .resolve(py, &self.inner)?;
        let params = self.session_params(max_context, sparse)?;
        let prompt = Prompt::of(py, &self.inner, prompt, add_special_tokens, &resolved)?;
        let session = fresh_session(py, &self.inner, &params, prompt.ids())?;
        prompt.start(py, session, None, resolved, skip_special_tokens)
    }

    /// Chats: renders `messages` (a list of `{"role": ..., "content": ...}` dicts) with the model's
    /// chat template and a generation prompt, and streams the reply as text pieces (`TextStream`).
    ///
    /// Takes the same generation arguments as `generate`. Raises `moe.TokenizerError` when the model
    /// has no tokenizer or no chat template.
    #[pyo3(signature = (
        messages, *, max_new_tokens = None, temperature = None, top_k = None, top_p = None,
        min_p = None, repetition_penalty = None, seed = None, stop = None, ignore_eos = false,
        skip_special_tokens = true, max_context = None, sparse = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn chat(
        &self,
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
        max_context: Option<i64>,
        sparse: Option<bool>,
    ) -> PyResult<PyTextStream> {
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
        .resolve(py, &self.inner)?;
        let params = self.session_params(max_context, sparse)?;
        let messages = chat_messages(messages)?;
        let tokenizer = tokenizer_of(&self.inner).py_err(py)?;
        // The library's chat-prompt policy (the template writes its own special tokens).
        let ids = py
            .detach(|| tokenizer.encode_chat(&messages, true))
            .py_err(py)?;
        let session = fresh_session(py, &self.inner, &params, &ids)?;
        PyTextStream::start(
            py,
            session,
            None,
            ids,
            resolved.options,
            resolved.stop_strings,
            skip_special_tokens,
        )
    }

    /// The checkpoint's tokenizer (`moe.Tokenizer`), or `None` when it has no tokenizer.json.
    #[getter]
    fn tokenizer(&self, py: Python<'_>) -> Option<Py<PyTokenizer>> {
        self.tokenizer.as_ref().map(|t| t.clone_ref(py))
    }

    fn __repr__(&self) -> String {
        let c = self.inner.config();
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

/// A new session for one generation, with `prompt` checked against it.
fn fresh_session(
    py: Python<'_>,
    model: &Arc<Model>,
    params: &SessionParams,
    prompt: &[u32],
) -> PyResult<Session> {
    let session = Session::new(model.clone(), params).py_err(py)?;
    session.check_tokens(prompt).py_err(py)?;
    Ok(session)
}
