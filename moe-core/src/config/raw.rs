//! Typed reads from a config.json object, with errors that name the key.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Longest list a config may give (per-layer lists, token-id lists).
const MAX_LIST_LEN: usize = 1 << 20;

/// The largest value a size key may take. Every integer read from config.json is bounded before it
/// sizes anything, so a hostile file gets a typed error naming the key instead of an allocation
/// failure (which aborts the host process) or an arithmetic overflow. The limits are far above any
/// published model (DeepSeek V3: 61 layers, 7168 hidden, 256 experts; vocabularies below 2^18).
pub(crate) fn limit_of(key: &str) -> usize {
    match key {
        "num_hidden_layers" => 1 << 12,
        "vocab_size" => 1 << 24,
        "num_attention_heads"
        | "num_key_value_heads"
        | "index_n_heads"
        | "linear_num_key_heads"
        | "linear_num_value_heads"
        | "o_groups"
        | "hc_mult" => 1 << 16,
        "linear_conv_kernel_dim" => 1 << 10,
        "num_experts"
        | "num_local_experts"
        | "n_routed_experts"
        | "num_experts_per_tok"
        | "n_group"
        | "topk_group" => 1 << 16,
        "n_shared_experts" => 1 << 10,
        "hidden_size"
        | "intermediate_size"
        | "moe_intermediate_size"
        | "intermediate_size_mlp"
        | "shared_expert_intermediate_size"
        | "head_dim"
        | "rotary_dim"
        | "q_lora_rank"
        | "kv_lora_rank"
        | "qk_nope_head_dim"
        | "qk_rope_head_dim"
        | "v_head_dim"
        | "index_head_dim"
        | "linear_key_head_dim"
        | "linear_value_head_dim"
        | "o_lora_rank" => 1 << 20,
        // Layer indices, strides and every other integer (positions, windows, ids): 2^40.
        _ => 1 << 40,
    }
}

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

    /// A non-negative integer, at most the key's limit (see [`limit_of`]).
    pub(crate) fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => {
                let x = v
                    .as_u64()
                    .ok_or_else(|| self.bad(key, "a non-negative integer"))?;
                let limit = limit_of(key);
                match usize::try_from(x) {
                    Ok(x) if x <= limit => Ok(Some(x)),
                    _ => Err(Error::Config {
                        path: self.path.to_path_buf(),
                        message: format!("key {key:?} = {x} exceeds the limit of {limit}"),
                    }),
                }
            }
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
                if arr.len() > MAX_LIST_LEN {
                    return Err(self.bad(key, "a list of at most 2^20 integers"));
                }
                arr.iter()
                    .map(|x| {
                        x.as_u64()
                            .and_then(|u| usize::try_from(u).ok())
                            .ok_or_else(|| self.bad(key, "a list of integers"))
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(Some)
            }
        }
    }

    /// One token id (`bos_token_id`), below 2^32.
    pub(crate) fn opt_token_id(&self, key: &str) -> Result<Option<u32>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|u| u32::try_from(u).ok())
                .map(Some)
                .ok_or_else(|| self.bad(key, "a token id below 2^32")),
        }
    }

    /// Token ids given as one integer or a list (`eos_token_id`).
    pub(crate) fn token_ids(&self, key: &str) -> Result<Vec<u32>> {
        match self.present(key) {
            None => Ok(vec![]),
            Some(Value::Array(a)) if a.len() <= MAX_LIST_LEN => a
                .iter()
                .map(|x| {
                    x.as_u64()
                        .and_then(|u| u32::try_from(u).ok())
                        .ok_or_else(|| self.bad(key, "token ids below 2^32"))
                })
                .collect(),
            Some(v) => v
                .as_u64()
                .and_then(|u| u32::try_from(u).ok())
                .map(|u| vec![u])
                .ok_or_else(|| self.bad(key, "a token id below 2^32 or a list of them")),
        }
    }
}
