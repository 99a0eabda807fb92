//! The state behind `moe.Model`: the loaded engine model and the defaults of the sessions made
//! from it. Its Python methods are in `model.rs`; sessions (`session.rs`) read it from here.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;

use moe_core::{Model, SessionParams, SparseMode};

use crate::args;
use crate::text::PyTokenizer;

/// A model loaded from a Hugging Face checkpoint folder (`config.json` + safetensors, and
/// `tokenizer.json`, `tokenizer_config.json` and `generation_config.json` when present).
///
/// The weights are memory-mapped and shared: make as many sessions as you like, on any thread.
#[pyclass(module = "moe", name = "Model", frozen)]
pub struct PyModel {
    pub(crate) inner: Arc<Model>,
    pub(crate) path: PathBuf,
    /// Defaults for sessions and generations made from this model.
    pub(crate) defaults: SessionParams,
    pub(crate) tokenizer: Option<Py<PyTokenizer>>,
}

impl PyModel {
    /// Session parameters: the model's defaults overridden by the call's arguments.
    pub(crate) fn session_params(
        &self,
        max_context: Option<i64>,
        sparse: Option<bool>,
    ) -> PyResult<SessionParams> {
        let mut params = SessionParams::default();
        params.max_context = args::max_context(max_context)?.or(self.defaults.max_context);
        params.sparse_mode = sparse.map(sparse_mode).unwrap_or(self.defaults.sparse_mode);
        Ok(params)
    }
}

pub(crate) fn sparse_mode(sparse: bool) -> SparseMode {
    if sparse {
        SparseMode::Sparse
    } else {
        SparseMode::Dense
    }
}
