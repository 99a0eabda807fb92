//! Quantization from Python: the `quantize=` options of `moe.Model`, `moe.quantize_checkpoint` and
//! `moe.fidelity`.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use moe_core::{QuantizeOptions, QuantizeScope};

use crate::args;
use crate::errors::PyResultExt;
use crate::loaded::PyModel;

/// `quantize` ("q4", "q8" or None), `group_size` and `scope` as options (None: no quantization).
pub(crate) fn options(
    py: Python<'_>,
    quantize: Option<&str>,
    group_size: Option<i64>,
    scope: &str,
) -> PyResult<Option<QuantizeOptions>> {
    let bits = match quantize {
        None => {
            return if group_size.is_some() || scope != "experts" {
                Err(PyValueError::new_err(
                    "group_size and quantize_scope need quantize=\"q4\" or \"q8\"",
                ))
            } else {
                Ok(None)
            }
        }
        Some("q4") => 4,
        Some("q8") => 8,
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "quantize must be \"q4\", \"q8\" or None, not {other:?}"
            )))
        }
    };
    let scope: QuantizeScope = scope.parse().py_err(py)?;
    let mut q = QuantizeOptions::new(bits).with_scope(scope);
    if let Some(g) = group_size {
        q = q.with_group_size(args::count("group_size", g)?);
    }
    q.validate().py_err(py)?;
    Ok(Some(q))
}

/// Writes the bf16/f16/f32 checkpoint in `src` to the new (or empty) folder `dst` quantized as a
/// compressed-tensors `pack-quantized` checkpoint (`quantize="q4"` or `"q8"`, symmetric groups of
/// `group_size`, `scope="experts"` or `"linear"`), tensor by tensor; the codes are those
/// `moe.Model(src, quantize=...)` computes. `progress(bytes_done, bytes_total)` is called after each
/// source tensor. Returns a dict: `quantized` (linear layers packed), `copied` (tensors copied),
/// `ungrouped` (modules left in their dtype: input width not a multiple of `group_size`),
/// `bytes_in`, `bytes_out`, `shards`.
#[pyfunction]
#[pyo3(signature = (src, dst, quantize = "q4", *, group_size = None, scope = "experts", progress = None))]
pub(crate) fn quantize_checkpoint<'py>(
    py: Python<'py>,
    src: PathBuf,
    dst: PathBuf,
    quantize: &str,
    group_size: Option<i64>,
    scope: &str,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = options(py, Some(quantize), group_size, scope)?.expect("quantize is given");
    let mut callback_error: Option<PyErr> = None;
    let s = py
        .detach(|| match &progress {
            None => moe_core::quantize_checkpoint(&src, &dst, opts, None),
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
                moe_core::quantize_checkpoint(&src, &dst, opts, Some(&mut report))
            }
        })
        .py_err(py)?;
    if let Some(e) = callback_error {
        return Err(e);
    }
    let d = PyDict::new(py);
    d.set_item("quantized", s.quantized)?;
    d.set_item("copied", s.copied)?;
    d.set_item("ungrouped", s.ungrouped)?;
    d.set_item("bytes_in", s.bytes_in)?;
    d.set_item("bytes_out", s.bytes_out)?;
    d.set_item("shards", s.shards)?;
    Ok(d)
}

/// How far `candidate`'s next-token distributions are from `reference`'s over the token ids
/// `tokens` (at least 2): a dict with `tokens`, `kl_mean` and `kl_max` (KL(reference ‖ candidate)
/// per position, nats), `top1_agreement`, `ppl_ref`, `ppl`, `bytes_per_token_ref` and
/// `bytes_per_token`.
#[pyfunction]
pub(crate) fn fidelity<'py>(
    py: Python<'py>,
    reference: &PyModel,
    candidate: &PyModel,
    tokens: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let ids = args::token_ids(tokens)?;
    let (a, b) = (reference.inner.clone(), candidate.inner.clone());
    let f = py.detach(|| moe_core::fidelity(&a, &b, &ids)).py_err(py)?;
    let d = PyDict::new(py);
    d.set_item("tokens", f.tokens)?;
    d.set_item("kl_mean", f.kl_mean)?;
    d.set_item("kl_max", f.kl_max)?;
    d.set_item("top1_agreement", f.top1_agreement)?;
    d.set_item("ppl_ref", f.ppl_ref)?;
    d.set_item("ppl", f.ppl)?;
    d.set_item("bytes_per_token_ref", f.bytes_per_token_ref)?;
    d.set_item("bytes_per_token", f.bytes_per_token)?;
    Ok(d)
}
