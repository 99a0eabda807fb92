//! MLA cache: per token only the normalised latent `c_kv` `[kv_lora_rank]` and the rotated shared
//! rope key `k_pe` `[qk_rope_head_dim]`; never expanded K/V.

use super::{KvCache, RowCache};
use crate::error::Result;

#[derive(Debug, Clone)]
pub(crate) struct MlaCache {
    /// `[T, kv_lora_rank]`.
    pub latent: RowCache,
    /// `[T, qk_rope_head_dim]`.
    pub k_pe: RowCache,
}

impl MlaCache {
    pub(crate) fn new(kv_lora_rank: usize, rope_dim: usize) -> Self {
        MlaCache {
            latent: RowCache::new(kv_lora_rank),
            k_pe: RowCache::new(rope_dim),
        }
    }

    pub(crate) fn append(&mut self, latent: &[f32], k_pe: &[f32]) {
        self.latent.append(latent);
        self.k_pe.append(k_pe);
    }
}

impl KvCache for MlaCache {
    fn len(&self) -> usize {
        self.latent.len()
    }

    fn truncate(&mut self, len: usize) -> Result<()> {
        self.latent.truncate(len)?;
        self.k_pe.truncate(len)
    }

    fn clear(&mut self) {
        self.latent.clear();
        self.k_pe.clear();
    }

    fn bytes(&self) -> usize {
        self.latent.bytes() + self.k_pe.bytes()
    }
}
