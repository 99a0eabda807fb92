//! The whole model: embedding → blocks → final norm → lm_head, built from a checkpoint directory.

mod block;
mod names;

use std::path::Path;
use std::sync::Arc;

pub use block::{Block, FeedForward};
pub use names::{ffn_names, FfnNames};

use crate::attention::{Selection, SparseMode};
use crate::cache::ModelCache;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::kernels::Precision;
use crate::layers::{Embedding, Linear, Orientation, RmsNorm};
use crate::text::{GenerationConfig, Tokenizer};
use crate::weights::{Checkpoint, WeightSource};

/// Observer of the residual stream: `(layer, x[T, H])`.
pub type LayerHook<'a> = &'a mut dyn FnMut(usize, &[f32]);

/// Which logits a forward returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsMode {
    /// `[V]` of the last position.
    Last,
    /// `[T, V]`, every position.
    All,
    /// None (fills the cache only).
    None,
}

/// Loading options.
#[derive(Default)]
pub struct LoadOptions<'a> {
    /// Called after each layer is set up with `(layers_done, layers_total)`.
    pub progress: Option<&'a mut dyn FnMut(usize, usize)>,
}

/// A loaded model. Weights are borrowed from the memory-mapped checkpoint; the model is immutable and
/// can be shared by many sessions on many threads.
#[derive(Debug)]
pub struct Model {
    pub config: ModelConfig,
    pub embed_tokens: Embedding,
    pub layers: Vec<Block>,
    pub norm: RmsNorm,
    pub lm_head: Linear,
    /// `generation_config.json` (empty when absent).
    pub generation_config: GenerationConfig,
    tokenizer: Option<Arc<Tokenizer>>,
    checkpoint: Arc<Checkpoint>,
    /// The dedicated worker pool set by [`Model::set_compute`]; `None` runs on rayon's global pool.
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl Model {
    /// Loads `config.json` and the safetensors of `dir`.
    ///
    /// The files are memory-mapped: they must not be modified or truncated while the model lives.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        Self::load_with(dir, LoadOptions::default())
    }

    pub fn load_with(dir: impl AsRef<Path>, mut opts: LoadOptions<'_>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(crate::Error::NotFound(dir.to_path_buf()));
        }
        let config = ModelConfig::load(dir)?;
        let checkpoint = Arc::new(Checkpoint::open(dir)?);
        let root = WeightSource::new(checkpoint.clone())
            .with_fp8_block(config.fp8_block)
            .with_quant(Arc::new(config.quant.clone()));
        let root = if config.weight_prefix.is_empty() {
            root
        } else {
            root.pp(config.weight_prefix.trim_end_matches('.'))
        };
        let src = root.pp("model");
        let (v, h) = (config.vocab_size, config.hidden_size);
        let embed_tokens = Embedding::load(&src, "embed_tokens", v, h)?;
        let names = ffn_names(config.family);
        let n = config.num_layers;
        let mut layers = Vec::with_capacity(n);
        for i in 0..n {
            layers.push(Block::load(&src.pp("layers").pp(i), &config, i, &names)?);
            if let Some(p) = opts.progress.as_mut() {
                p(i + 1, n);
            }
        }
        let norm = RmsNorm::load(&src, "norm", h, config.rms_norm_eps)?;
        let lm_head = if config.tie_word_embeddings && !root.contains("lm_head.weight") {
            Linear::from_tensor(embed_tokens.weight.clone(), Orientation::OutIn, None)
        } else {
            Linear::load(&root, "lm_head", h, v, false)?
        };
        let tokenizer = Tokenizer::from_dir(dir)?.map(Arc::new);
        let generation_config = GenerationConfig::load(dir)?;
        Ok(Model {
            config,
            embed_tokens,
            layers,
            norm,
            lm_head,
            generation_config,
            tokenizer,
            checkpoint,
            pool: None,
        })
    }

    /// Runs this model's products on a dedicated pool of `threads` workers (all cores when `None`),
    /// with activations meeting bf16 weights at `precision` in prefill products. Without a call the
    /// model uses rayon's global pool at [`Precision::F32`].
    pub fn set_compute(&mut self, threads: Option<usize>, precision: Precision) -> Result<()> {
        if threads == Some(0) {
            return Err(crate::Error::InvalidArgument(
                "threads must be at least 1".into(),
            ));
        }
        let pool = crate::kernels::build_pool(threads, precision)
            .map_err(|e| crate::Error::InvalidArgument(format!("thread pool: {e}")))?;
        self.pool = Some(Arc::new(pool));
        Ok(())
    }

    /// Worker threads the products of this model are split over.
    pub fn threads(&self) -> usize {
        match &self.pool {
            Some(p) => p.current_num_threads(),
            None => rayon::current_num_threads(),
        }
    }

    /// Runs `f` on this model's pool (or the caller's when it has none), its other workers kept
    /// polling for work meanwhile (see [`crate::kernels::run_spinning`]).
    fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(p) => crate::kernels::run_spinning(p, f),
            None => f(),
        }
    }

    /// The tokenizer of the checkpoint directory, when it has a `tokenizer.json`.
    pub fn tokenizer(&self) -> Option<&Arc<Tokenizer>> {
        self.tokenizer.as_ref()
    }

    /// End-of-sequence ids: generation_config.json, else config.json, else the tokenizer's eos token.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        if !self.generation_config.eos_token_ids.is_empty() {
            return self.generation_config.eos_token_ids.clone();
        }
        if !self.config.eos_token_ids.is_empty() {
            return self.config.eos_token_ids.clone();
        }
        self.tokenizer
            .as_ref()
            .and_then(|t| t.eos_token_id())
            .into_iter()
            .collect()
    }

    pub fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    /// An empty cache with one entry per layer.
    pub fn new_cache(&self) -> ModelCache {
        ModelCache {
            layers: self.layers.iter().map(|b| b.new_cache()).collect(),
        }
    }

    /// Bytes of the mapped checkpoint files.
    pub fn checkpoint_bytes(&self) -> usize {
        self.checkpoint.mapped_bytes()
    }

    /// Runs `ids` at positions `start..start+T` through the model, appending to `cache`.
    /// `hook(i, x)` sees the residual stream after layer `i` (and `i = L` after the final norm).
    /// Ids must already be checked against the vocabulary (a [`Session`](crate::Session) does this).
    pub fn forward(
        &self,
        ids: &[u32],
        start: usize,
        cache: &mut ModelCache,
        logits: LogitsMode,
        mode: SparseMode,
        mut hook: Option<LayerHook<'_>>,
    ) -> Vec<f32> {
        let t = ids.len();
        let h = self.config.hidden_size;
        let positions: Vec<usize> = (start..start + t).collect();
        let mut x = self.embed_tokens.forward(ids); // [T, H]
        let mut selection: Option<Selection> = None;
        for (i, (block, c)) in self.layers.iter().zip(cache.layers.iter_mut()).enumerate() {
            self.run(|| block.forward(&mut x, &positions, c, &mut selection, mode));
            if let Some(f) = hook.as_mut() {
                f(i, &x);
            }
        }
        let rows = match logits {
            LogitsMode::None => return Vec::new(),
            LogitsMode::Last => &mut x[(t - 1) * h..],
            LogitsMode::All => &mut x[..],
        };
        self.norm.forward(rows);
        if let Some(f) = hook.as_mut() {
            f(self.layers.len(), rows);
        }
        let n = rows.len() / h;
        self.run(|| self.lm_head.forward(rows, n))
    }
}
