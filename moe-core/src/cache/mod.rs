//! KV caches: one small trait and small types that compose (GQA full or windowed, MLA latent,
//! DSA indexer keys), gathered per layer in [`ModelCache`]. Rows are stored in a [`KvDType`] and
//! can be frozen into shared read-only segments that forked caches reference instead of copying.

mod codec;
mod dtype;
mod gqa;
mod indexer;
mod mla;
mod rows;
mod store;

pub(crate) use codec::{max_layer_bytes as codec_max_layer_bytes, read_layer, write_layer, Reader};
pub use dtype::KvDType;
pub(crate) use gqa::GqaCache;
pub(crate) use indexer::IndexerCache;
pub(crate) use mla::MlaCache;
pub(crate) use rows::RowCache;
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
}

impl LayerCache {
    /// Bytes one more position adds to this layer's cache (before any window eviction).
    pub(crate) fn bytes_per_position(&self) -> usize {
        self.row_caches()
            .iter()
            .map(|r| r.dtype().row_bytes(r.width()))
            .sum()
    }

    /// Every row table of this layer, in a fixed order (GQA: K, V; MLA: latent, rope key, indexer
    /// keys).
    pub(crate) fn row_caches(&self) -> Vec<&RowCache> {
        match self {
            LayerCache::Gqa(c) => vec![&c.k, &c.v],
            LayerCache::Mla { mla, indexer } => {
                let mut v = vec![&mla.latent, &mla.k_pe];
                v.extend(indexer.as_ref().map(|i| &i.keys));
                v
            }
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
        }
    }
}

impl KvCache for LayerCache {
    fn len(&self) -> usize {
        match self {
            LayerCache::Gqa(c) => c.len(),
            LayerCache::Mla { mla, .. } => mla.len(),
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
        }
    }

    fn clear(&mut self) {
        match self {
            LayerCache::Gqa(c) => c.clear(),
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
        }
    }
}

/// One cache per layer, tagged with the model that built it.
#[derive(Debug, Clone)]
pub struct ModelCache {
    pub(crate) layers: Vec<LayerCache>,
    /// Identity of the model whose layers these caches match.
    pub(crate) model_id: u64,
}

impl ModelCache {
    /// Stores rows in `dtype` from now on; only for an empty cache.
    pub(crate) fn set_dtype(&mut self, dtype: KvDType) {
        for l in &mut self.layers {
            l.row_caches_mut()
                .into_iter()
                .for_each(|r| r.set_dtype(dtype));
        }
    }

    /// The precision rows are stored in.
    pub(crate) fn dtype(&self) -> KvDType {
        self.layers
            .first()
            .and_then(|l| l.row_caches().first().map(|r| r.dtype()))
            .unwrap_or_default()
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
            if let LayerCache::Gqa(g) = l {
                g.check_truncate(len)?;
            }
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
