//! A `Session` owns the caches and the position of one conversation with a model.

mod batch;

use std::sync::Arc;

mod snapshot;

pub use snapshot::SNAPSHOT_VERSION;

use crate::attention::SparseMode;
use crate::cache::{KvCache, KvDType, ModelCache};
use crate::error::{Error, Result};
use crate::model::{LogitsMode, Model};

/// Options of a session.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SessionParams {
    /// Maximum number of tokens the session may hold; `None` means the model's
    /// `max_position_embeddings`.
    pub max_context: Option<usize>,
    /// DSA layers: sparse (the model's definition) or dense for comparison.
    pub sparse_mode: SparseMode,
    /// The precision the caches store their rows in (f32, exact, by default).
    pub kv_dtype: KvDType,
}

/// Holds the KV caches of one sequence. Not shared between threads; make one per thread (the model
/// itself is shared through an `Arc`).
pub struct Session {
    model: Arc<Model>,
    cache: ModelCache,
    max_context: usize,
    sparse_mode: SparseMode,
    /// Every token fed so far (for repetition penalties and truncation).
    tokens: Vec<u32>,
}

impl SessionParams {
    /// These parameters with at most `n` tokens of context (`None`: the model's maximum).
    pub fn with_max_context(mut self, n: Option<usize>) -> Self {
        self.max_context = n;
        self
    }

    /// These parameters with DSA layers attending sparsely or densely.
    pub fn with_sparse_mode(mut self, mode: SparseMode) -> Self {
        self.sparse_mode = mode;
        self
    }

    /// These parameters with the caches storing rows in `dtype`.
    pub fn with_kv_dtype(mut self, dtype: KvDType) -> Self {
        self.kv_dtype = dtype;
        self
    }
}

impl Session {
    /// An empty session over `model`. Fails on `max_context` 0 or a context whose caches could not be addressed.
    pub fn new(model: Arc<Model>, params: &SessionParams) -> Result<Self> {
        let max_context = params
            .max_context
            .unwrap_or(model.config().max_position_embeddings);
        if max_context == 0 {
            return Err(Error::InvalidArgument(
                "max_context must be at least 1".into(),
            ));
        }
        // The caches grow with the context; a context whose caches could not even be addressed is
        // refused here rather than failing an allocation later.
        let per_token = model.kv_cache_bytes_per_token();
        if max_context
            .checked_mul(per_token)
            .and_then(|b| b.checked_add(model.kv_cache_fixed_bytes()))
            .is_none_or(|b| b > isize::MAX as usize)
        {
            return Err(Error::InvalidArgument(format!(
                "max_context {max_context} at {per_token} cache bytes per token exceeds the address space"
            )));
        }
        let mut cache = model.new_cache();
        cache.set_dtype(params.kv_dtype);
        Ok(Session {
            cache,
            model,
            max_context,
            sparse_mode: params.sparse_mode,
            tokens: Vec::new(),
        })
    }

    /// The model this session runs.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the session holds no token.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The most tokens the session may hold.
    pub fn max_context(&self) -> usize {
        self.max_context
    }

    /// The tokens fed so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Bytes held by the caches now, in their precision; rows shared with forked sessions count in
    /// each of them (see [`kv_cache_shared_bytes`](Self::kv_cache_shared_bytes)).
    pub fn kv_cache_bytes(&self) -> usize {
        self.cache.bytes()
    }

    /// Of [`kv_cache_bytes`](Self::kv_cache_bytes), the bytes held in read-only blocks another
    /// session (a fork, or the session forked from) also references: sessions sharing a prefix
    /// hold `Σ (kv_cache_bytes − kv_cache_shared_bytes)` plus the shared blocks once.
    pub fn kv_cache_shared_bytes(&self) -> usize {
        self.cache.shared_bytes()
    }

    /// The precision the caches store rows in (the DeltaNet state and DeepSeek V4's compressed
    /// caches stay f32 whatever it is).
    pub fn kv_dtype(&self) -> KvDType {
        self.cache.dtype()
    }

    /// DSA layers' attention mode.
    pub fn sparse_mode(&self) -> SparseMode {
        self.sparse_mode
    }

    /// A new session holding the same tokens and caches that continues independently of this one.
    /// The caches are not copied: the rows held now become read-only blocks both sessions share
    /// (and any later fork of either), while each appends to a private tail. So N conversations
    /// that start from one long prompt hold its cache once. Logits equal those of a fresh session
    /// that prefilled the same tokens.
    pub fn fork(&mut self) -> Session {
        Session {
            model: self.model.clone(),
            cache: self.cache.fork(),
            max_context: self.max_context,
            sparse_mode: self.sparse_mode,
            tokens: self.tokens.clone(),
        }
    }

    /// The checks [`prefill`](Self::prefill) makes before running anything (tokens present, in the
    /// vocabulary, and room for them in the context), without running: for callers that must know a
    /// prefill will be accepted before handing the session over (a generator takes ownership).
    pub fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        self.check(tokens)
    }

    fn check(&self, tokens: &[u32]) -> Result<()> {
        if tokens.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        let v = self.model.vocab_size();
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= v) {
            return Err(Error::TokenOutOfRange {
                token: bad,
                vocab_size: v,
            });
        }
        let needed = self.len() + tokens.len();
        if needed > self.max_context {
            return Err(Error::ContextFull {
                needed,
                max_context: self.max_context,
            });
        }
        Ok(())
    }

    /// Feeds `tokens` after what the session holds. Returns the logits of the last position `[V]`
    /// (`LogitsMode::Last`), of every new position `[T, V]` (`All`), or nothing (`None`).
    pub fn prefill(&mut self, tokens: &[u32], logits: LogitsMode) -> Result<Vec<f32>> {
        self.check(tokens)?;
        let out = self.model.forward(
            tokens,
            self.len(),
            &mut self.cache,
            logits,
            self.sparse_mode,
            None,
        )?;
        self.tokens.extend_from_slice(tokens);
        Ok(out)
    }

    /// Like [`prefill`](Self::prefill), `chunk` tokens at a time, calling `progress(done, total)`
    /// after each chunk; `progress` returning `false` cancels the rest with [`Error::Cancelled`],
    /// the session keeping the chunks done. The logits equal prefilling the chunks one after
    /// another (to f32 rounding of a single prefill). `chunk` 0 is an error.
    pub fn prefill_with_progress(
        &mut self,
        tokens: &[u32],
        logits: LogitsMode,
        chunk: usize,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Vec<f32>> {
        if chunk == 0 {
            return Err(Error::InvalidArgument("chunk must be at least 1".into()));
        }
        self.check(tokens)?;
        let total = tokens.len();
        let mut out = Vec::new();
        let mut done = 0;
        for part in tokens.chunks(chunk) {
            let last = done + part.len() == total;
            let mode = match logits {
                LogitsMode::All => LogitsMode::All,
                LogitsMode::Last if last => LogitsMode::Last,
                _ => LogitsMode::None,
            };
            out.extend(self.prefill(part, mode)?);
            done += part.len();
            if !progress(done, total) && !last {
                return Err(Error::Cancelled { done });
            }
        }
        Ok(out)
    }

    /// Like [`prefill`](Self::prefill) but lets `hook(layer, x)` observe the residual stream.
    pub fn prefill_with_hook(
        &mut self,
        tokens: &[u32],
        logits: LogitsMode,
        hook: &mut dyn FnMut(usize, &[f32]),
    ) -> Result<Vec<f32>> {
        self.check(tokens)?;
        let out = self.model.forward(
            tokens,
            self.len(),
            &mut self.cache,
            logits,
            self.sparse_mode,
            Some(hook),
        )?;
        self.tokens.extend_from_slice(tokens);
        Ok(out)
    }

    /// Feeds one token; returns the next-token logits `[V]`.
    pub fn decode(&mut self, token: u32) -> Result<Vec<f32>> {
        self.prefill(&[token], LogitsMode::Last)
    }

    /// Forgets everything.
    pub fn reset(&mut self) {
        self.cache.clear();
        self.tokens.clear();
    }

    /// Keeps only the first `len` tokens. Fails (changing nothing) if a windowed cache already
    /// dropped positions that would be needed.
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        if len >= self.len() {
            return Ok(());
        }
        self.cache.truncate(len)?;
        self.tokens.truncate(len);
        Ok(())
    }
}
