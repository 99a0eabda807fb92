//! Generation defaults from `generation_config.json` (end-of-sequence ids, sampling settings).

use std::path::Path;

use crate::error::{Error, Result};
use crate::sampler::SamplerParams;

#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct GenerationConfig {
    pub eos_token_ids: Vec<u32>,
    pub bos_token_id: Option<u32>,
    pub do_sample: Option<bool>,
    pub temperature: Option<f32>,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
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
        let num = |k: &str| v.get(k).and_then(|x| x.as_f64());
        let eos = match v.get("eos_token_id") {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_u64())
                .map(|x| x as u32)
                .collect(),
            Some(x) => x.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
            None => vec![],
        };
        Ok(GenerationConfig {
            eos_token_ids: eos,
            bos_token_id: v
                .get("bos_token_id")
                .and_then(|x| x.as_u64())
                .map(|x| x as u32),
            do_sample: v.get("do_sample").and_then(|x| x.as_bool()),
            temperature: num("temperature").map(|x| x as f32),
            top_k: v.get("top_k").and_then(|x| x.as_u64()).map(|x| x as usize),
            top_p: num("top_p").map(|x| x as f32),
            min_p: num("min_p").map(|x| x as f32),
            repetition_penalty: num("repetition_penalty").map(|x| x as f32),
            max_new_tokens: v
                .get("max_new_tokens")
                .and_then(|x| x.as_u64())
                .map(|x| x as usize),
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
