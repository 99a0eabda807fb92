//! A growable table of fixed-width f32 rows indexed by absolute position, which can drop a prefix.

use crate::error::{Error, Result};

/// Rows `[start, len)` of a `[len, width]` table; rows before `start` were evicted.
#[derive(Debug, Clone)]
pub(crate) struct RowCache {
    width: usize,
    data: Vec<f32>,
    start: usize,
    len: usize,
}

impl RowCache {
    pub(crate) fn new(width: usize) -> Self {
        RowCache {
            width,
            data: Vec::new(),
            start: 0,
            len: 0,
        }
    }

    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// Appends `rows.len() / width` rows.
    pub(crate) fn append(&mut self, rows: &[f32]) {
        debug_assert_eq!(rows.len() % self.width, 0);
        self.data.extend_from_slice(rows);
        self.len += rows.len() / self.width;
    }

    /// Row at absolute position `pos` (must be in `[start, len)`).
    #[inline]
    pub(crate) fn row(&self, pos: usize) -> &[f32] {
        let r = pos - self.start;
        &self.data[r * self.width..(r + 1) * self.width]
    }

    /// Rows at positions `range` as one contiguous `[range.len(), width]` slice.
    pub(crate) fn rows(&self, range: std::ops::Range<usize>) -> &[f32] {
        &self.data[(range.start - self.start) * self.width..(range.end - self.start) * self.width]
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// First position still held.
    pub(crate) fn start(&self) -> usize {
        self.start
    }

    /// An empty table that starts at position `pos` (the rows before it count as evicted), for
    /// benchmarks that stand in for a long prefill.
    pub(crate) fn start_at(&mut self, pos: usize) {
        self.data.clear();
        self.start = pos;
        self.len = pos;
    }

    /// Drops rows before position `pos`.
    pub(crate) fn evict_before(&mut self, pos: usize) {
        let pos = pos.min(self.len);
        if pos > self.start {
            let n = (pos - self.start) * self.width;
            self.data.drain(..n);
            self.start = pos;
        }
    }

    pub(crate) fn check_truncate(&self, len: usize) -> Result<()> {
        if len < self.start {
            return Err(Error::InvalidArgument(format!(
                "cannot truncate to {len} tokens: positions before {} were evicted from a windowed cache",
                self.start
            )));
        }
        Ok(())
    }

    pub(crate) fn truncate(&mut self, len: usize) -> Result<()> {
        self.check_truncate(len)?;
        if len < self.len {
            self.data.truncate((len - self.start) * self.width);
            self.len = len;
        }
        Ok(())
    }

    pub(crate) fn clear(&mut self) {
        self.data.clear();
        self.start = 0;
        self.len = 0;
    }

    pub(crate) fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<f32>()
    }
}
