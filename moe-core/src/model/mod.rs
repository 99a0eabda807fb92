//! The whole model: embedding → blocks → final norm → lm_head, built from a checkpoint directory.

mod batch_forward;
mod block;
mod compute;
mod estimate;
mod fingerprint;
mod hyper;

use std::path::Path;
use std::sync::Arc;

pub(crate) use batch_forward::SeqStep;
pub(crate) use block::{Block, FeedForward};
pub use compute::ComputeOptions;
pub use estimate::MemoryEstimate;

use crate::attention::{Selection, SparseMode};
use crate::cache::{KvCache, KvDType, LayerCache, ModelCache};
use crate::config::quantize::{QuantizeOptions, QuantizePlan};
use crate::config::{GenerationConfig, ModelConfig};
use crate::error::{Error, Result};
use crate::kernels::Precision;
use crate::layers::{Embedding, Linear, Orientation, RmsNorm};
#[cfg(feature = "text")]
use crate::text::Tokenizer;
use crate::weights::{Checkpoint, Residence, WeightSource};

/// Observer of the residual stream: `(layer, x[T, H])`.
pub(crate) type LayerHook<'a> = &'a mut dyn FnMut(usize, &[f32]);

/// Which logits a forward returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
pub struct LoadOptions<'a> {
    /// Called after each layer is set up with `(layers_done, layers_total)`.
    pub progress: Option<&'a mut dyn FnMut(usize, usize)>,
    /// Threads and precision of the model's products (see [`Model::set_compute`]); `None` runs
    /// them on the caller's rayon pool at the default precision, [`Precision::Bf16`](crate::Precision)
    /// (bf16 activations for bf16 weights). The exact mode is
    /// `Some(ComputeOptions::new(None, Precision::F32))`.
    pub compute: Option<ComputeOptions>,
    /// Read the safetensors files into memory instead of mapping them. A mapped file that is
    /// truncated or rewritten while the model lives makes the process fault (SIGBUS) on the next
    /// access; a copy is immune to that, for files on network or otherwise unreliable storage, at
    /// the cost of their size in RAM and one read at load.
    pub copy_weights: bool,
    /// Quantize float linear layers to int4/int8 while loading (see [`QuantizeOptions`]); `None`
    /// keeps every weight in its stored dtype.
    pub quantize: Option<QuantizeOptions>,
}

impl<'a> LoadOptions<'a> {
    /// These options reporting progress to `progress(layers_done, layers_total)`.
    pub fn with_progress(mut self, progress: &'a mut dyn FnMut(usize, usize)) -> Self {
        self.progress = Some(progress);
        self
    }

    /// These options reading the weights into memory (`true`) instead of mapping them.
    pub fn with_copied_weights(mut self, copy: bool) -> Self {
        self.copy_weights = copy;
        self
    }

    /// These options quantizing the checkpoint's bf16, f16 or f32 linear layers in `quantize`'s scope
    /// to symmetric int4/int8 groups while loading (owned memory, the same layout and kernels as a
    /// compressed-tensors `pack-quantized` checkpoint). Loading fails with
    /// [`Error::UnsupportedQuantization`] for an already quantized checkpoint or fused expert tensors,
    /// and with [`Error::InvalidArgument`] for bits other than 4 or 8 or a bad group size.
    pub fn with_quantization(mut self, quantize: QuantizeOptions) -> Self {
        self.quantize = Some(quantize);
        self
    }

    /// These options with the model's threads and precision set at load.
    pub fn with_compute(mut self, compute: ComputeOptions) -> Self {
        self.compute = Some(compute);
        self
    }
}

/// Most worker threads a model's pool may have (a guard against a mistyped count spawning millions).
const MAX_THREADS: usize = 1024;

/// Source of [`Model`] identities, so a cache can tell which model built it.
static NEXT_MODEL_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A loaded model. Weights are borrowed from the memory-mapped checkpoint; the model is immutable and
/// can be shared by many sessions on many threads.
#[derive(Debug)]
pub struct Model {
    pub(crate) config: ModelConfig,
    pub(crate) embed_tokens: Embedding,
    pub(crate) layers: Vec<Block>,
    pub(crate) norm: RmsNorm,
    /// DeepSeek V4: the final collapse of the hyper-connection streams.
    pub(crate) hc_head: Option<hyper::HyperHead>,
    pub(crate) lm_head: Linear,
    /// `generation_config.json` (empty when absent).
    pub(crate) generation_config: GenerationConfig,
    #[cfg(feature = "text")]
    tokenizer: Option<Arc<Tokenizer>>,
    /// Unique per loaded model; caches built by [`Model::new_cache`] carry it.
    id: u64,
    /// Hash of the config and the tensor table (names, dtypes, shapes), computed at load.
    fingerprint: u64,
    checkpoint: Arc<Checkpoint>,
    /// The dedicated worker pool set by [`Model::set_compute`]; `None` runs on rayon's global pool.
    pool: Option<Arc<rayon::ThreadPool>>,
    /// The precision of every product of this model: the pool's, else [`Precision::DEFAULT`].
    precision: Precision,
}

impl Model {
    /// Loads `config.json` and the safetensors of `dir`.
    ///
    /// The files are memory-mapped: they must not be modified or truncated while the model lives
    /// (the process would fault with SIGBUS on the next access to a vanished page). For files that
    /// may change, load with [`LoadOptions::with_copied_weights`].
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        Self::load_with(dir, LoadOptions::default())
    }

    /// Loads `dir` with `opts` (progress, compute, copied weights); see [`Model::load`].
    pub fn load_with(dir: impl AsRef<Path>, mut opts: LoadOptions<'_>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(crate::Error::NotFound(dir.to_path_buf()));
        }
        let started = std::time::Instant::now();
        log::info!("loading {}", dir.display());
        let config = ModelConfig::load(dir)?;
        let residence = if opts.copy_weights {
            Residence::Copied
        } else {
            Residence::Mapped
        };
        let plan = opts
            .quantize
            .map(|q| QuantizePlan::new(&config, q))
            .transpose()?
            .map(Arc::new);
        let checkpoint = Arc::new(Checkpoint::open_with(dir, residence)?);
        let root = WeightSource::new(checkpoint.clone())
            .with_fp8_block(config.fp8_block)
            .with_quant(Arc::new(config.quant.clone()))
            .with_quantize(plan);
        let scoped = |prefix: &str| match prefix.trim_end_matches('.') {
            "" => root.clone(),
            p => root.pp(p),
        };
        let src = scoped(&config.body_prefix);
        let root = scoped(&config.weight_prefix);
        // DeepSeek V4's own checkpoints keep the decoder at the root (`embed.weight`, `layers.N`,
        // `norm.weight`, `hc_head_fn`); transformers' names put it under `model.`.
        let own_v4_layout = config.hyper_connections.is_some()
            && !src.contains("embed_tokens.weight")
            && root.contains("embed.weight");
        let (src, embed_name) = if own_v4_layout {
            (root.clone(), "embed")
        } else {
            (src, "embed_tokens")
        };
        let (v, h) = (config.vocab_size, config.hidden_size);
        let embed_tokens = Embedding::load(&src, embed_name, v, h)?;
        let names = config.family.spec().ffn_names;
        let n = config.num_layers;
        let mut layers = Vec::with_capacity(n);
        for i in 0..n {
            layers.push(Block::load(&src.pp("layers").pp(i), &config, i, &names)?);
            if let Some(p) = opts.progress.as_mut() {
                p(i + 1, n);
            }
        }
        let norm = RmsNorm::load_offset(
            &src,
            "norm",
            h,
            config.rms_norm_eps,
            config.norm_weight_offset,
        )?;
        let hc_head = match &config.hyper_connections {
            Some(hc) => Some(hyper::HyperHead::load(
                &if own_v4_layout {
                    src.clone()
                } else {
                    src.pp("hc_head")
                },
                if own_v4_layout { "hc_head_" } else { "hc_" },
                hc.streams,
                h,
                hc.eps,
                config.rms_norm_eps,
            )?),
            None => None,
        };
        let lm_head = if config.tie_word_embeddings && !root.contains("lm_head.weight") {
            Linear::from_tensor(embed_tokens.weight.clone(), Orientation::OutIn, None)
        } else if !root.contains("lm_head.weight") && root.contains("head.weight") {
            // DeepSeek V4's own name.
            Linear::load(&root, "head", h, v, false)?
        } else {
            Linear::load(&root, "lm_head", h, v, false)?
        };
        #[cfg(feature = "text")]
        let tokenizer = Tokenizer::from_dir(dir)?.map(Arc::new);
        let generation_config = GenerationConfig::load(dir)?;
        let fingerprint = fingerprint::fingerprint(&config, &checkpoint);
        let mut model = Model {
            fingerprint,
            config,
            embed_tokens,
            layers,
            norm,
            hc_head,
            lm_head,
            generation_config,
            #[cfg(feature = "text")]
            tokenizer,
            id: NEXT_MODEL_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            checkpoint,
            pool: None,
            precision: Precision::DEFAULT,
        };
        if let Some(c) = opts.compute {
            model.set_compute(c)?;
        }
        log::info!(
            "loaded {} ({}, {} layers, {:.1} MB {}) in {:.2?}",
            dir.display(),
            model.config.family,
            model.config.num_layers,
            model.checkpoint.mapped_bytes() as f64 / 1e6,
            if opts.copy_weights {
                "copied"
            } else {
                "mapped"
            },
            started.elapsed()
        );
        Ok(model)
    }

    /// Runs this model's products on a dedicated pool of `compute.threads` workers (all cores when
    /// `None`), with activations meeting bf16 weights at `compute.precision`. Without a call the
    /// model runs on the caller's rayon pool at the default precision, [`Precision::Bf16`]; the exact
    /// mode is `set_compute(ComputeOptions::new(None, Precision::F32))`.
    pub fn set_compute(&mut self, compute: ComputeOptions) -> Result<()> {
        match compute.threads {
            Some(0) => return Err(Error::InvalidArgument("threads must be at least 1".into())),
            Some(n) if n > MAX_THREADS => {
                return Err(Error::InvalidArgument(format!(
                    "threads must be at most {MAX_THREADS}, got {n}"
                )))
            }
            _ => {}
        }
        let pool = crate::kernels::build_pool(compute.threads, compute.precision)
            .map_err(|e| Error::InvalidArgument(format!("thread pool: {e}")))?;
        self.pool = Some(Arc::new(pool));
        self.precision = compute.precision;
        log::debug!(
            "compute: {} threads, {:?} precision, kernels {}",
            self.threads(),
            compute.precision,
            crate::kernels::isa()
        );
        Ok(())
    }

    /// A hash of the config and of the checkpoint's tensor table (names, dtypes, shapes), computed
    /// at load: equal for two loads of the same checkpoint, different for different models. Session
    /// snapshots carry it.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The typed `config.json`.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// `generation_config.json` (all fields empty when the file is absent).
    pub fn generation_config(&self) -> &GenerationConfig {
        &self.generation_config
    }

    /// How this model's products meet bf16 weights: [`Precision::Bf16`] (the default) unless
    /// [`ComputeOptions`] said otherwise at load or in [`Model::set_compute`].
    pub fn precision(&self) -> Precision {
        self.precision
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
    ///
    /// Every product reads its precision from the thread it runs on: a pool's workers hold the
    /// pool's, every other thread [`Precision::DEFAULT`]. A model without a pool has the default
    /// precision, so the caller's pool computes it right unless the caller is a worker of another
    /// model's pool at another precision; then `f` runs on the shared pool of the default
    /// precision instead.
    fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(p) => crate::kernels::run_spinning(p, f),
            None if crate::kernels::current_precision() == self.precision => f(),
            None => crate::kernels::run_spinning(crate::kernels::shared_pool(self.precision), f),
        }
    }

    /// The tokenizer of the checkpoint directory, when it has a `tokenizer.json`.
    #[cfg(feature = "text")]
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
        #[cfg(feature = "text")]
        if let Some(id) = self.tokenizer.as_ref().and_then(|t| t.eos_token_id()) {
            return vec![id];
        }
        Vec::new()
    }

    /// Vocabulary size: token ids must be below it.
    pub fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    /// An empty cache with one entry per layer.
    pub(crate) fn new_cache(&self) -> ModelCache {
        ModelCache {
            layers: self.layers.iter().map(|b| b.new_cache()).collect(),
            model_id: self.id,
            dtype: KvDType::default(),
        }
    }

    /// Bytes of the mapped checkpoint files.
    pub fn checkpoint_bytes(&self) -> usize {
        self.checkpoint.mapped_bytes()
    }

    /// What the checkpoint in `dir` needs in memory (weights, and one session's caches at `context`
    /// tokens; `None`: the model's `max_position_embeddings`), from config.json and the safetensors
    /// headers, without loading any weight.
    pub fn estimate_memory(
        dir: impl AsRef<Path>,
        context: Option<usize>,
    ) -> Result<MemoryEstimate> {
        MemoryEstimate::for_checkpoint(dir.as_ref(), context)
    }

    /// Bytes the caches of a session grow by per token: every layer's K/V (GQA), latent and rope
    /// key (MLA) and indexer key (DSA). Sliding-window and chunked layers stop growing at their
    /// window, so this is the per-token cost until then. Linear-attention layers (Qwen3.5's gated
    /// DeltaNet) add nothing per token: their state is [`kv_cache_fixed_bytes`](Self::kv_cache_fixed_bytes).
    pub fn kv_cache_bytes_per_token(&self) -> usize {
        self.new_cache()
            .layers
            .iter()
            .map(LayerCache::bytes_per_position)
            .sum()
    }

    /// Bytes a session's caches hold whatever the context once a token went through: the
    /// convolution and recurrent state of every linear-attention layer (0 for other families).
    pub fn kv_cache_fixed_bytes(&self) -> usize {
        self.new_cache()
            .layers
            .iter()
            .map(LayerCache::fixed_bytes)
            .sum()
    }

    /// Weight bytes one decoded token streams: every non-expert matrix (attention, routers, shared
    /// experts, dense MLPs), `top_k` routed experts per MoE layer, the lm_head and one embedding row.
    /// Decode is memory-bound, so this over the memory bandwidth bounds the decode rate.
    pub fn weight_bytes_per_token(&self) -> usize {
        let emb = &self.embed_tokens.weight;
        let row = emb.bytes().len() / emb.shape()[0].max(1);
        self.lm_head.weight_bytes()
            + row
            + self
                .layers
                .iter()
                .map(Block::weight_bytes_per_token)
                .sum::<usize>()
    }

    /// Runs `ids` at positions `start..start+T` through the model, appending to `cache`.
    /// `hook(i, x)` sees the residual stream after layer `i` (and `i = L` after the final norm).
    /// Fails, changing nothing, on empty or out-of-vocabulary ids, a cache of another model, or a
    /// `start` other than the cached length.
    pub(crate) fn forward(
        &self,
        ids: &[u32],
        start: usize,
        cache: &mut ModelCache,
        logits: LogitsMode,
        mode: SparseMode,
        mut hook: Option<LayerHook<'_>>,
    ) -> Result<Vec<f32>> {
        if ids.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        let v = self.config.vocab_size;
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= v) {
            return Err(Error::TokenOutOfRange {
                token: bad,
                vocab_size: v,
            });
        }
        if cache.model_id != self.id || cache.layers.len() != self.layers.len() {
            return Err(Error::InvalidArgument(
                "the cache was built for another model".into(),
            ));
        }
        if start != cache.len() {
            return Err(Error::InvalidArgument(format!(
                "forward at position {start} over a cache holding {} positions",
                cache.len()
            )));
        }
        let t = ids.len();
        let h = self.config.hidden_size;
        let positions: Vec<usize> = (start..start + t).collect();
        let mut x = self.embed_tokens.forward(ids); // [T, H]
        if let Some(hc) = &self.config.hyper_connections {
            // n copies of each token's embedding: [T, n·H].
            x = x
                .chunks_exact(h)
                .flat_map(|row| row.repeat(hc.streams))
                .collect();
        }
        let mut selection: Option<Selection> = None;
        for (i, (block, c)) in self.layers.iter().zip(cache.layers.iter_mut()).enumerate() {
            self.run(|| block.forward(&mut x, &positions, c, &mut selection, mode, ids));
            if let Some(f) = hook.as_mut() {
                f(i, &x);
            }
        }
        if let Some(head) = &self.hc_head {
            x = self.run(|| head.forward(&x, t)); // [T, H]
        }
        let rows = match logits {
            LogitsMode::None => return Ok(Vec::new()),
            LogitsMode::Last => &mut x[(t - 1) * h..],
            LogitsMode::All => &mut x[..],
        };
        self.norm.forward(rows);
        if let Some(f) = hook.as_mut() {
            f(self.layers.len(), rows);
        }
        let n = rows.len() / h;
        Ok(self.run(|| self.lm_head.forward(rows, n)))
    }
}
