//! What the subcommands share: the default model, loading with a thread count, sampler flags.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use moe_core::{ComputeOptions, GenerateOptions, LoadOptions, Model, Precision, SamplerParams};

/// The demo model shipped in the repository this binary was built from.
pub(crate) fn default_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tiny-deepseek-pycode")
}

/// `--model`, or the demo model.
pub(crate) fn model_dir(model: &Option<PathBuf>) -> PathBuf {
    model.clone().unwrap_or_else(default_model)
}

/// Loads the checkpoint in `dir` with `threads` workers (`None`: every core) at `precision` (`None`:
/// the library's default, bf16 activations for bf16 weights).
pub(crate) fn load_model(
    dir: &Path,
    threads: Option<usize>,
    precision: Option<Precision>,
) -> Result<Arc<Model>, String> {
    let compute = ComputeOptions::new(threads, precision.unwrap_or_default());
    let model = Model::load_with(dir, LoadOptions::default().with_compute(compute))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(Arc::new(model))
}

/// The sampler flags of `moe run` (unset ones keep the model's generation_config.json policy).
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct SamplingArgs {
    /// Softmax temperature (0 = greedy).
    #[arg(long)]
    pub(crate) temperature: Option<f32>,
    /// Keep the smallest set of tokens whose probability reaches P.
    #[arg(long)]
    pub(crate) top_p: Option<f32>,
    /// Keep the K most likely tokens (0 = all).
    #[arg(long)]
    pub(crate) top_k: Option<usize>,
    /// Drop tokens below P times the most likely one's probability.
    #[arg(long)]
    pub(crate) min_p: Option<f32>,
    /// Penalise tokens already in the context (1 = off).
    #[arg(long)]
    pub(crate) repetition_penalty: Option<f32>,
    /// Random seed of the sampler.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Most tokens to generate (default: generation_config.json's, else 128).
    #[arg(long)]
    pub(crate) max_tokens: Option<usize>,
}

impl SamplingArgs {
    /// The library's policy for `model` with these flags on top.
    pub(crate) fn options(&self, model: &Model) -> GenerateOptions {
        let policy = GenerateOptions::for_model(model);
        let d = policy.sampler.clone();
        let sampler = SamplerParams::default()
            .with_temperature(self.temperature.unwrap_or(d.temperature))
            .with_top_p(self.top_p.unwrap_or(d.top_p))
            .with_top_k(self.top_k.unwrap_or(d.top_k))
            .with_min_p(self.min_p.unwrap_or(d.min_p))
            .with_repetition_penalty(self.repetition_penalty.unwrap_or(d.repetition_penalty))
            .with_seed(self.seed.unwrap_or(d.seed));
        GenerateOptions::new(self.max_tokens.unwrap_or(policy.max_new_tokens))
            .with_sampler(sampler)
            .with_stop_tokens(policy.stop_tokens)
    }
}

/// Lets `\n` and `\t` be typed on a command line.
pub(crate) fn unescape(s: &str) -> String {
    s.replace("\\n", "\n").replace("\\t", "\t")
}
