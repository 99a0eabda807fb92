//! Turning Python arguments into engine values, with `TypeError` / `ValueError` for bad input.

use numpy::{PyArray1, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyString};
use pyo3::IntoPyObjectExt;

use crate::errors::token_out_of_range;

/// A token id as the engine takes it; negative or too large ids raise `TokenOutOfRangeError`.
fn id_from_i128(py: Python<'_>, v: i128) -> PyResult<u32> {
    u32::try_from(v).map_err(|_| match v.into_bound_py_any(py) {
        Ok(token) => token_out_of_range(&token, None),
        Err(e) => e,
    })
}

/// One token id: a Python `int` or a numpy integer (not a `bool`).
pub(crate) fn token_id(obj: &Bound<'_, PyAny>) -> PyResult<u32> {
    let py = obj.py();
    if obj.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err("a token id must be an int, not bool"));
    }
    match obj.extract::<i64>() {
        Ok(v) => id_from_i128(py, i128::from(v)),
        // An int beyond 64 bits: out of range whatever the vocabulary.
        Err(e) if e.is_instance_of::<PyOverflowError>(py) => Err(token_out_of_range(obj, None)),
        Err(_) => Err(PyTypeError::new_err(format!(
            "a token id must be an int, not {}",
            type_name(obj)
        ))),
    }
}

/// Token ids: a sequence (or iterable) of ints, or a 1-D numpy array of an integer dtype.
pub(crate) fn token_ids(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
    if obj.is_instance_of::<PyString>()
        || obj.is_instance_of::<PyBytes>()
        || obj.is_instance_of::<PyByteArray>()
    {
        return Err(PyTypeError::new_err(format!(
            "token ids must be a list of ints or a 1-D integer numpy array, not {}",
            type_name(obj)
        )));
    }
    if let Ok(array) = obj.cast::<PyUntypedArray>() {
        return array_ids(array);
    }
    let iter = obj.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "token ids must be a list of ints or a 1-D integer numpy array, not {}",
            type_name(obj)
        ))
    })?;
    let mut ids = Vec::with_capacity(obj.len().unwrap_or(0));
    for item in iter {
        ids.push(token_id(&item?)?);
    }
    Ok(ids)
}

/// Ids from a numpy array of any integer dtype.
fn array_ids(array: &Bound<'_, PyUntypedArray>) -> PyResult<Vec<u32>> {
    let py = array.py();
    if array.ndim() != 1 {
        return Err(PyValueError::new_err(format!(
            "token ids must be a 1-D array, got shape {:?}",
            array.shape()
        )));
    }
    let dtype = array.dtype();
    match dtype.kind() {
        b'i' => {
            let a = array.call_method1("astype", ("int64",))?;
            let a = a.cast::<PyArray1<i64>>()?.readonly();
            let view = a.as_array();
            view.iter().map(|&v| id_from_i128(py, v.into())).collect()
        }
        b'u' => {
            let a = array.call_method1("astype", ("uint64",))?;
            let a = a.cast::<PyArray1<u64>>()?.readonly();
            let view = a.as_array();
            view.iter().map(|&v| id_from_i128(py, v.into())).collect()
        }
        _ => Err(PyTypeError::new_err(format!(
            "token ids must have an integer dtype, got {}",
            dtype.str()?
        ))),
    }
}

/// A count that must not be negative (`max_new_tokens`, `top_k`, ...).
pub(crate) fn count(name: &str, v: i64) -> PyResult<usize> {
    usize::try_from(v).map_err(|_| PyValueError::new_err(format!("{name} must be >= 0, got {v}")))
}

/// A context size: `None`, or at least 1.
pub(crate) fn max_context(v: Option<i64>) -> PyResult<Option<usize>> {
    match v {
        None => Ok(None),
        Some(n) if n >= 1 => Ok(Some(n as usize)),
        Some(n) => Err(PyValueError::new_err(format!(
            "max_context must be >= 1, got {n}"
        ))),
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into())
}
