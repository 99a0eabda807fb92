//! Typed reads from a config.json object, with errors that name the key.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A JSON object from config.json with typed getters.
#[derive(Clone, Copy)]
pub(crate) struct Raw<'a> {
    pub map: &'a Map<String, Value>,
    pub path: &'a std::path::Path,
}

impl<'a> Raw<'a> {
    fn bad(&self, key: &str, what: &str) -> Error {
        Error::Config {
            path: self.path.to_path_buf(),
            message: format!("key {key:?}: expected {what}, found {}", self.map[key]),
        }
    }

    fn present(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|x| Some(x as usize))
                .ok_or_else(|| self.bad(key, "a non-negative integer")),
        }
    }

    pub(crate) fn usize_or(&self, key: &str, default: usize) -> Result<usize> {
        Ok(self.opt_usize(key)?.unwrap_or(default))
    }

    pub(crate) fn req_usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?.ok_or_else(|| Error::Config {
            path: self.path.to_path_buf(),
            message: format!("missing required key {key:?}"),
        })
    }

    pub(crate) fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.bad(key, "a number")),
        }
    }

    pub(crate) fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        Ok(self.opt_f64(key)?.unwrap_or(default))
    }

    pub(crate) fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.present(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.bad(key, "true or false")),
        }
    }

    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.bad(key, "a string")),
        }
    }

    pub(crate) fn opt_obj(&self, key: &str) -> Result<Option<Raw<'a>>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => v
                .as_object()
                .map(|map| {
                    Some(Raw {
                        map,
                        path: self.path,
                    })
                })
                .ok_or_else(|| self.bad(key, "an object")),
        }
    }

    /// A list of strings (e.g. `layer_types`).
    pub(crate) fn opt_str_list(&self, key: &str) -> Result<Option<Vec<&'a str>>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => {
                let arr = v
                    .as_array()
                    .ok_or_else(|| self.bad(key, "a list of strings"))?;
                arr.iter()
                    .map(|x| x.as_str().ok_or_else(|| self.bad(key, "a list of strings")))
                    .collect::<Result<Vec<_>>>()
                    .map(Some)
            }
        }
    }

    /// A list of non-negative integers (e.g. `mlp_only_layers`, `no_rope_layers`).
    pub(crate) fn opt_usize_list(&self, key: &str) -> Result<Option<Vec<usize>>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => {
                let arr = v
                    .as_array()
                    .ok_or_else(|| self.bad(key, "a list of integers"))?;
                arr.iter()
                    .map(|x| {
                        x.as_u64()
                            .map(|u| u as usize)
                            .ok_or_else(|| self.bad(key, "a list of integers"))
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(Some)
            }
        }
    }

    /// Token ids given as one integer or a list (`eos_token_id`).
    pub(crate) fn token_ids(&self, key: &str) -> Result<Vec<u32>> {
        match self.present(key) {
            None => Ok(vec![]),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_u64()
                        .map(|u| u as u32)
                        .ok_or_else(|| self.bad(key, "token ids"))
                })
                .collect(),
            Some(v) => v
                .as_u64()
                .map(|u| vec![u as u32])
                .ok_or_else(|| self.bad(key, "a token id or a list of them")),
        }
    }
}
