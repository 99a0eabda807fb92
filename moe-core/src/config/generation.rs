//! Generation defaults from `generation_config.json` (end-of-sequence ids, sampling settings).

use std::path::Path;

use super::raw::Raw;
use crate::error::{Error, Result};
use crate::sampler::SamplerParams;

#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
/// Generation defaults from `generation_config.json`; every field is `None` (or empty) when the file does not give it.
pub struct GenerationConfig {
    /// End-of-sequence ids.
    pub eos_token_ids: Vec<u32>,
    /// Beginning-of-sequence id.
    pub bos_token_id: Option<u32>,
    /// Whether the checkpoint samples by default (else greedy).
    pub do_sample: Option<bool>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Top-k cut.
    pub top_k: Option<usize>,
    /// Top-p (nucleus) cut.
    pub top_p: Option<f32>,
    /// Min-p cut.
    pub min_p: Option<f32>,
    /// Repetition penalty.
    pub repetition_penalty: Option<f32>,
    /// Most tokens to generate.
    pub max_new_tokens: Option<usize>,
}

impl GenerationConfig {
    /// Reads `dir/generation_config.json`; all fields empty when the file is absent.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("generation_config.json");
        if !path.is_file() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.clone(),
            message: format!("not valid JSON: {e}"),
        })?;
        let map = v.as_object().ok_or_else(|| Error::Config {
            path: path.clone(),
            message: "top level is not a JSON object".into(),
        })?;
        let raw = Raw { map, path: &path };
        let num = |k: &str| -> Result<Option<f32>> { Ok(raw.opt_f64(k)?.map(|x| x as f32)) };
        Ok(GenerationConfig {
            eos_token_ids: raw.token_ids("eos_token_id")?,
            bos_token_id: raw.opt_token_id("bos_token_id")?,
            do_sample: match raw.map.get("do_sample") {
                Some(serde_json::Value::Bool(b)) => Some(*b),
                _ => None,
            },
            temperature: num("temperature")?,
            top_k: raw.opt_usize("top_k")?,
            top_p: num("top_p")?,
            min_p: num("min_p")?,
            repetition_penalty: num("repetition_penalty")?,
            max_new_tokens: raw.opt_usize("max_new_tokens")?,
        })
    }

    /// Sampler settings with this config's defaults (greedy unless `do_sample` is true).
    pub fn sampler_defaults(&self) -> SamplerParams {
        let base = SamplerParams::default();
        if self.do_sample != Some(true) {
            return base;
        }
        SamplerParams {
            temperature: self.temperature.unwrap_or(1.0),
            top_k: self.top_k.unwrap_or(base.top_k),
            top_p: self.top_p.unwrap_or(base.top_p),
            min_p: self.min_p.unwrap_or(base.min_p),
            repetition_penalty: self.repetition_penalty.unwrap_or(base.repetition_penalty),
            seed: base.seed,
        }
    }
}
