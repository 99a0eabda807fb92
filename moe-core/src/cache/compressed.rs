//! DeepSeek V4's per-layer cache: the sliding window of shared K=V rows, and for compressed layers
//! the compressor's state: the not-yet-compressed tail (projected K/V and gate rows of fewer than `m`
//! tokens), the previous window's overlap half (compressed sparse attention), and the compressed
//! entries; the lightning indexer keeps the same state for its own keys.

use super::{KvCache, RowCache};
use crate::error::{Error, Result};

/// The state of one compressor (`width` = series × dim: 2·d with overlap, d without).
#[derive(Debug, Clone)]
pub(crate) struct CompressorState {
    /// `[n < m, width]`: projected K/V rows of the tokens after the last closed window.
    pub tail_kv: Vec<f32>,
    /// `[n < m, width]`: their gate rows.
    pub tail_gate: Vec<f32>,
    /// The previous window's first series (`[m, d]` K/V and gate, position bias added), when the
    /// compressor overlaps windows.
    pub overlap: Option<(Vec<f32>, Vec<f32>)>,
    /// `[entries, d]`: one compressed row per closed window.
    pub entries: RowCache,
    /// Whether the compressor overlaps windows (two series per tail row).
    overlaps: bool,
}

impl CompressorState {
    /// An empty state for entries of `dim` values, with two series per tail row if `overlaps`.
    pub(crate) fn new(dim: usize, overlaps: bool) -> Self {
        CompressorState {
            tail_kv: Vec::new(),
            tail_gate: Vec::new(),
            overlap: None,
            entries: RowCache::new(dim),
            overlaps,
        }
    }

    /// Whether the compressor overlaps windows (then [`overlap`](Self::overlap) holds `[m, d]`
    /// K/V and gate rows once a window closed).
    pub(crate) fn overlaps(&self) -> bool {
        self.overlaps
    }

    /// Values per tail row: 2·d with overlap, d without.
    pub(crate) fn tail_width(&self) -> usize {
        let d = self.entries.width();
        if self.overlaps {
            2 * d
        } else {
            d
        }
    }

    fn clear(&mut self) {
        self.tail_kv.clear();
        self.tail_gate.clear();
        self.overlap = None;
        self.entries.clear();
    }

    fn bytes(&self) -> usize {
        (self.tail_kv.len()
            + self.tail_gate.len()
            + self.overlap.as_ref().map_or(0, |(a, b)| a.len() + b.len()))
            * std::mem::size_of::<f32>()
            + self.entries.bytes()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CompressedCache {
    /// `[T, d]` shared K=V rows, evicted outside the sliding window.
    pub window: RowCache,
    pub sliding_window: usize,
    /// Tokens per compressed entry (0 for sliding-only layers).
    pub rate: usize,
    /// The compressed entries' compressor (compressed layers).
    pub compressor: Option<CompressorState>,
    /// The indexer's compressor (compressed sparse attention layers).
    pub indexer: Option<CompressorState>,
}

impl CompressedCache {
    pub(crate) fn new(
        dim: usize,
        sliding_window: usize,
        rate: usize,
        // (entry dim, overlapping windows) of each compressor.
        compressor: Option<(usize, bool)>,
        indexer: Option<(usize, bool)>,
    ) -> Self {
        CompressedCache {
            window: RowCache::new(dim),
            sliding_window,
            rate,
            compressor: compressor.map(|(d, o)| CompressorState::new(d, o)),
            indexer: indexer.map(|(d, o)| CompressorState::new(d, o)),
        }
    }

    /// Drops window rows no query at position `>= len` can see.
    pub(crate) fn evict(&mut self) {
        let keep_from = self.first_needed(self.window.len());
        self.window.evict_before(keep_from);
    }

    /// The first window position a query at a position `>= len` can see.
    pub(crate) fn first_needed(&self, len: usize) -> usize {
        (len + 1).saturating_sub(self.sliding_window)
    }

    pub(crate) fn check_truncate(&self, len: usize) -> Result<()> {
        if len != 0 && len < self.len() {
            return Err(Error::InvalidArgument(format!(
                "cannot truncate to {len} tokens: a DeepSeek V4 layer pooled its tokens into \
                 compressed entries and a sliding window, which cannot be rewound (truncate to 0 or \
                 reset)"
            )));
        }
        Ok(())
    }
}

impl KvCache for CompressedCache {
    fn len(&self) -> usize {
        self.window.len()
    }

    fn truncate(&mut self, len: usize) -> Result<()> {
        self.check_truncate(len)?;
        if len == 0 {
            self.clear();
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.window.clear();
        for c in [&mut self.compressor, &mut self.indexer]
            .into_iter()
            .flatten()
        {
            c.clear();
        }
    }

    fn bytes(&self) -> usize {
        self.window.bytes()
            + [&self.compressor, &self.indexer]
                .into_iter()
                .flatten()
                .map(CompressorState::bytes)
                .sum::<usize>()
    }
}
