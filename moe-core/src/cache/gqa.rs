//! GQA cache: K and V rows `[T, n_kv_heads * head_dim]`, full or windowed (sliding / chunked layers
//! keep only the keys a future query can still see).

use super::{KvCache, RowCache};
use crate::config::AttentionMask;
use crate::error::Result;

#[derive(Debug, Clone)]
pub(crate) struct GqaCache {
    pub k: RowCache,
    pub v: RowCache,
    /// Which keys future queries may need; decides what is evicted.
    pub mask: AttentionMask,
}

impl GqaCache {
    pub(crate) fn new(kv_dim: usize, mask: AttentionMask) -> Self {
        GqaCache {
            k: RowCache::new(kv_dim),
            v: RowCache::new(kv_dim),
            mask,
        }
    }

    pub(crate) fn append(&mut self, k: &[f32], v: &[f32]) {
        self.k.append(k);
        self.v.append(v);
    }

    /// First key a query at position `next` (or later) can see.
    pub(crate) fn first_needed(&self, next: usize) -> usize {
        match self.mask {
            AttentionMask::Causal => 0,
            AttentionMask::SlidingWindow(w) => (next + 1).saturating_sub(w),
            AttentionMask::Chunked(c) => (next / c) * c,
        }
    }

    /// Drops keys no query at position `>= len` can see.
    pub(crate) fn evict(&mut self) {
        let keep_from = self.first_needed(self.k.len());
        self.k.evict_before(keep_from);
        self.v.evict_before(keep_from);
    }

    /// Fails if, after truncating to `len`, the next query would need keys already evicted.
    pub(crate) fn check_truncate(&self, len: usize) -> Result<()> {
        let needed = self.first_needed(len).min(len);
        if needed < self.k.start() {
            return Err(crate::Error::InvalidArgument(format!(
                "cannot truncate to {len} tokens: the next query would need position {needed}, \
                 but this layer's {:?} cache dropped positions before {}",
                self.mask,
                self.k.start()
            )));
        }
        Ok(())
    }
}

impl KvCache for GqaCache {
    fn len(&self) -> usize {
        self.k.len()
    }

    fn truncate(&mut self, len: usize) -> Result<()> {
        self.check_truncate(len)?;
        self.k.truncate(len)?;
        self.v.truncate(len)
    }

    fn clear(&mut self) {
        self.k.clear();
        self.v.clear();
    }

    fn bytes(&self) -> usize {
        self.k.bytes() + self.v.bytes()
    }
}
