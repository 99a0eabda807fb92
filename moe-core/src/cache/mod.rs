//! KV caches: one small trait and small types that compose (GQA full or windowed, MLA latent,
//! DSA indexer keys, the constant-size gated DeltaNet state, DeepSeek V4's compressed entries),
//! gathered per layer in [`ModelCache`]. GQA and MLA rows are stored in a [`KvDType`] and can be
//! frozen into shared read-only segments that forked caches reference instead of copying; the
//! DeltaNet state and V4's compressed caches stay f32 and are copied by a fork.

mod codec;
mod compressed;
mod deltanet;
mod dtype;
mod gqa;
mod indexer;
mod mla;
mod rows;
mod store;

pub(crate) use codec::{max_layer_bytes as codec_max_layer_bytes, read_layer, write_layer, Reader};
pub(crate) use compressed::{CompressedCache, CompressorState};
pub(crate) use deltanet::DeltaNetCache;
pub use dtype::KvDType;
pub(crate) use gqa::GqaCache;
pub(crate) use indexer::IndexerCache;
pub(crate) use mla::MlaCache;
pub(crate) use rows::{RowCache, Table};
pub(crate) use store::Store;

use crate::error::Result;

/// What every cache can do.
pub trait KvCache {
    /// Number of positions appended so far (evicted ones included).
    fn len(&self) -> usize;
    /// Whether no position was appended yet.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Forgets every position `>= len`. Fails if positions that would be needed were evicted.
    fn truncate(&mut self, len: usize) -> Result<()>;
    /// Forgets everything.
    fn clear(&mut self);
    /// Bytes of cached data held now.
    fn bytes(&self) -> usize;
}

/// The cache of one decoder layer.
#[derive(Debug, Clone)]
pub(crate) enum LayerCache {
    Gqa(GqaCache),
    Mla {
        mla: MlaCache,
        indexer: Option<IndexerCache>,
    },
    DeltaNet(DeltaNetCache),
    Compressed(Box<CompressedCache>),
}

impl LayerCache {
    /// Bytes one more position adds to this layer's cache (before any window eviction).
    pub(crate) fn bytes_per_position(&self) -> usize {
        match self {
            LayerCache::Gqa(_) | LayerCache::Mla { .. } => self
                .row_caches()
                .iter()
                .map(|r| r.dtype().row_bytes(r.width()))
                .sum(),
            LayerCache::DeltaNet(_) => 0,
            // The window row, and the compressed rows of every m-th token (rounded down), in f32.
            LayerCache::Compressed(c) => {
                (c.window.width()
                    + c.compressor.as_ref().map_or(0, |s| s.entries.width()) / c.rate.max(1)
                    + c.indexer.as_ref().map_or(0, |s| s.entries.width()) / c.rate.max(1))
                    * std::mem::size_of::<f32>()
            }
        }
    }

    /// Every row table of this layer stored in the session's [`KvDType`], in a fixed order (GQA: K,
    /// V; MLA: latent, rope key, indexer keys; none for the f32 DeltaNet and compressed caches).
    pub(crate) fn row_caches(&self) -> Vec<&RowCache> {
        match self {
            LayerCache::Gqa(c) => vec![&c.k, &c.v],
            LayerCache::Mla { mla, indexer } => {
                let mut v = vec![&mla.latent, &mla.k_pe];
                v.extend(indexer.as_ref().map(|i| &i.keys));
                v
            }
            LayerCache::DeltaNet(_) | LayerCache::Compressed(_) => vec![],
        }
    }

    /// [`row_caches`](Self::row_caches), mutably.
    pub(crate) fn row_caches_mut(&mut self) -> Vec<&mut RowCache> {
        match self {
            LayerCache::Gqa(c) => vec![&mut c.k, &mut c.v],
            LayerCache::Mla { mla, indexer } => {
                let mut v = vec![&mut mla.latent, &mut mla.k_pe];
                v.extend(indexer.as_mut().map(|i| &mut i.keys));
                v
            }
            LayerCache::DeltaNet(_) | LayerCache::Compressed(_) => vec![],
        }
    }

    /// Bytes this layer holds whatever the context, once a token went through (recurrent state).
    pub(crate) fn fixed_bytes(&self) -> usize {
        match self {
            LayerCache::DeltaNet(c) => c.fixed_bytes(),
            LayerCache::Gqa(_) | LayerCache::Mla { .. } | LayerCache::Compressed(_) => 0,
        }
    }

    /// Fails if truncating to `len` would need positions this layer no longer holds.
    fn check_truncate(&self, len: usize) -> Result<()> {
        match self {
            LayerCache::Gqa(g) => g.check_truncate(len),
            LayerCache::DeltaNet(d) => d.check_truncate(len),
            LayerCache::Compressed(c) => c.check_truncate(len),
            LayerCache::Mla { .. } => Ok(()),
        }
    }
}

impl KvCache for LayerCache {
    fn len(&self) -> usize {
        match self {
            LayerCache::Gqa(c) => c.len(),
            LayerCache::Mla { mla, .. } => mla.len(),
            LayerCache::DeltaNet(c) => c.len(),
            LayerCache::Compressed(c) => c.len(),
        }
    }

    fn truncate(&mut self, len: usize) -> Result<()> {
        match self {
            LayerCache::Gqa(c) => c.truncate(len),
            LayerCache::Mla { mla, indexer } => {
                mla.truncate(len)?;
                if let Some(ix) = indexer {
                    ix.truncate(len)?;
                }
                Ok(())
            }
            LayerCache::DeltaNet(c) => c.truncate(len),
            LayerCache::Compressed(c) => c.truncate(len),
        }
    }

    fn clear(&mut self) {
        match self {
            LayerCache::Gqa(c) => c.clear(),
            LayerCache::DeltaNet(c) => c.clear(),
            LayerCache::Compressed(c) => c.clear(),
            LayerCache::Mla { mla, indexer } => {
                mla.clear();
                if let Some(ix) = indexer {
                    ix.clear();
                }
            }
        }
    }

    fn bytes(&self) -> usize {
        match self {
            LayerCache::Gqa(c) => c.bytes(),
            LayerCache::Mla { mla, indexer } => {
                mla.bytes() + indexer.as_ref().map_or(0, |i| i.bytes())
            }
            LayerCache::DeltaNet(c) => c.bytes(),
            LayerCache::Compressed(c) => c.bytes(),
        }
    }
}

/// One cache per layer, tagged with the model that built it.
#[derive(Debug, Clone)]
pub struct ModelCache {
    pub(crate) layers: Vec<LayerCache>,
    /// Identity of the model whose layers these caches match.
    pub(crate) model_id: u64,
    /// The precision GQA and MLA rows are stored in (the session's choice, kept even where every
    /// layer is an f32 DeltaNet or compressed cache).
    pub(crate) dtype: KvDType,
}

impl ModelCache {
    /// Stores rows in `dtype` from now on; only for an empty cache.
    pub(crate) fn set_dtype(&mut self, dtype: KvDType) {
        self.dtype = dtype;
        for l in &mut self.layers {
            l.row_caches_mut()
                .into_iter()
                .for_each(|r| r.set_dtype(dtype));
        }
    }

    /// The precision rows are stored in.
    pub(crate) fn dtype(&self) -> KvDType {
        self.dtype
    }

    /// A cache sharing every row held now with this one (both continue independently): the rows
    /// are frozen into shared read-only segments first.
    pub(crate) fn fork(&mut self) -> ModelCache {
        for l in &mut self.layers {
            l.row_caches_mut().into_iter().for_each(RowCache::freeze);
        }
        self.clone()
    }

    /// Of [`bytes`](KvCache::bytes), those in segments another cache also references.
    pub(crate) fn shared_bytes(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|l| l.row_caches())
            .map(RowCache::shared_bytes)
            .sum()
    }
}

impl KvCache for ModelCache {
    fn len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.len())
    }

    fn truncate(&mut self, len: usize) -> Result<()> {
        // Check every layer first so a failure leaves the cache unchanged.
        for l in &self.layers {
            l.check_truncate(len)?;
        }
        for l in &mut self.layers {
            l.truncate(len)?;
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| l.clear());
    }

    fn bytes(&self) -> usize {
        self.layers.iter().map(|l| l.bytes()).sum()
    }
}
