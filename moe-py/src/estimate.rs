//! `moe.estimate_memory`: what a checkpoint needs in memory, before loading it.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use moe_core::Model;

use crate::args;
use crate::errors::PyResultExt;

/// Memory a checkpoint needs, from config.json and the safetensors headers (no weight is read):
/// a dict with `weight_bytes`, `kv_cache_bytes_per_token`, `context`, `kv_cache_bytes` (one session
/// holding `context` tokens; default the model's `max_position_embeddings`) and `total_bytes`.
#[pyfunction]
#[pyo3(signature = (path, context = None))]
pub(crate) fn estimate_memory<'py>(
    py: Python<'py>,
    path: PathBuf,
    context: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let context = match context {
        Some(c) => Some(args::count("context", c)?),
        None => None,
    };
    let e = py
        .detach(|| Model::estimate_memory(&path, context))
        .py_err(py)?;
    let d = PyDict::new(py);
    d.set_item("weight_bytes", e.weight_bytes)?;
    d.set_item("kv_cache_bytes_per_token", e.kv_cache_bytes_per_token)?;
    d.set_item("context", e.context)?;
    d.set_item("kv_cache_bytes", e.kv_cache_bytes)?;
    d.set_item("total_bytes", e.total_bytes)?;
    Ok(d)
}
