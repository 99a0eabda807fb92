//! DSA indexer cache: one key `[index_head_dim]` per token (after LayerNorm and RoPE); no values.

use super::{KvCache, RowCache};
use crate::error::Result;

#[derive(Debug, Clone)]
pub(crate) struct IndexerCache {
    pub keys: RowCache,
}

impl IndexerCache {
    pub(crate) fn new(head_dim: usize) -> Self {
        IndexerCache {
            keys: RowCache::new(head_dim),
        }
    }
}

impl KvCache for IndexerCache {
    fn len(&self) -> usize {
        self.keys.len()
    }

    fn truncate(&mut self, len: usize) -> Result<()> {
        self.keys.truncate(len)
    }

    fn clear(&mut self) {
        self.keys.clear();
    }

    fn bytes(&self) -> usize {
        self.keys.bytes()
    }
}
