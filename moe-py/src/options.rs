//! The keyword arguments shared by `Model.generate` and `Model.chat`, turned into engine options with
//! the checkpoint's `generation_config.json` as defaults.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyString};
use pyo3::IntoPyObjectExt;

use moe_core::{GenerateOptions, Model, SamplerParams};

use crate::args;
use crate::errors::token_out_of_range;

/// What the caller passed; `None` means "the model's default".
pub(crate) struct GenArgs<'a, 'py> {
    pub max_new_tokens: Option<i64>,
    pub temperature: Option<f32>,
    pub top_k: Option<i64>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub seed: Option<u64>,
    pub stop: Option<&'a Bound<'py, PyAny>>,
    pub ignore_eos: bool,
}

/// Token-level options plus the stop strings (which only text generation can honour).
pub(crate) struct Resolved {
    pub options: GenerateOptions,
    pub stop_strings: Vec<String>,
}

impl GenArgs<'_, '_> {
    /// Resolves the arguments over the library's generation policy for `model`
    /// (`GenerateOptions::for_model`: generation_config.json, end-of-sequence ids, seed 0).
    pub(crate) fn resolve(&self, py: Python<'_>, model: &Model) -> PyResult<Resolved> {
        let policy = GenerateOptions::for_model(model);
        let base = policy.sampler.clone();
        let top_k = match self.top_k {
            Some(k) => args::count("top_k", k)?,
            None => base.top_k,
        };
        let sampler = SamplerParams::default()
            .with_temperature(self.temperature.unwrap_or(base.temperature))
            .with_top_k(top_k)
            .with_top_p(self.top_p.unwrap_or(base.top_p))
            .with_min_p(self.min_p.unwrap_or(base.min_p))
            .with_repetition_penalty(self.repetition_penalty.unwrap_or(base.repetition_penalty))
            .with_seed(self.seed.unwrap_or(base.seed));
        let max_new_tokens = match self.max_new_tokens {
            Some(n) => args::count("max_new_tokens", n)?,
            None => policy.max_new_tokens,
        };
        let (mut stop_tokens, stop_strings) = stops(self.stop)?;
        let vocab = model.vocab_size();
        if let Some(&bad) = stop_tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(token_out_of_range(&bad.into_bound_py_any(py)?, Some(vocab)));
        }
        if !self.ignore_eos {
            for eos in policy.stop_tokens {
                if !stop_tokens.contains(&eos) {
                    stop_tokens.push(eos);
                }
            }
        }
        Ok(Resolved {
            options: GenerateOptions::new(max_new_tokens)
                .with_sampler(sampler)
                .with_stop_tokens(stop_tokens),
            stop_strings,
        })
    }
}

/// `stop`: `None`, a token id, a string, or a list of token ids and strings.
fn stops(obj: Option<&Bound<'_, PyAny>>) -> PyResult<(Vec<u32>, Vec<String>)> {
    let (mut ids, mut strings) = (Vec::new(), Vec::new());
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok((ids, strings));
    };
    let mut add = |item: &Bound<'_, PyAny>| -> PyResult<()> {
        if let Ok(s) = item.cast::<PyString>() {
            let s = s.to_cow()?;
            if s.is_empty() {
                return Err(PyValueError::new_err("a stop string must not be empty"));
            }
            strings.push(s.to_string());
        } else if item.is_instance_of::<PyBool>() {
            return Err(PyTypeError::new_err(
                "stop entries are token ids (int) or strings, not bool",
            ));
        } else if item.is_instance_of::<PyInt>() || item.hasattr("__index__")? {
            ids.push(args::token_id(item)?);
        } else {
            return Err(PyTypeError::new_err(format!(
                "stop entries are token ids (int) or strings, not {}",
                item.get_type().name()?
            )));
        }
        Ok(())
    };
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyInt>() {
        add(obj)?;
    } else {
        let iter = obj.try_iter().map_err(|_| {
            PyTypeError::new_err("stop must be a token id, a string, or a list of them")
        })?;
        for item in iter {
            add(&item?)?;
        }
    }
    Ok((ids, strings))
}
