//! A growable table of fixed-width rows indexed by absolute position, which can drop a prefix.
//!
//! The rows live in a private tail (appended to) after any number of frozen segments: read-only
//! [`Store`]s behind an `Arc`, which [`RowCache::freeze`] makes from the tail so that forked caches
//! share them instead of copying. Rows are stored in the cache's [`KvDType`] and read back as f32
//! (borrowed when they are f32 and contiguous, decoded otherwise), or lent to the kernels as stored
//! ([`RowCache::tables`]: f32 and bf16 pieces), or decoded a block and a column range at a time.

use std::borrow::Cow;
use std::sync::Arc;

use super::{KvDType, Store};
use crate::error::{Error, Result};
use crate::kernels::FloatData;

/// Rows of a [`RowCache`] as one contiguous table ([`RowCache::table`]).
pub(crate) enum Table<'a> {
    /// Borrowed in the stored precision.
    Lent(FloatData<'a>),
    /// Decoded to f32.
    Decoded(Vec<f32>),
}

impl Table<'_> {
    /// The elements, row-major.
    pub(crate) fn data(&self) -> FloatData<'_> {
        match self {
            Table::Lent(d) => *d,
            Table::Decoded(v) => FloatData::F32(v),
        }
    }
}

/// Rows `[skip, skip + take)` of a shared, read-only store.
#[derive(Debug, Clone)]
struct Segment {
    data: Arc<Store>,
    skip: usize,
    take: usize,
}

/// Rows `[start, len)` of a `[len, width]` table; rows before `start` were evicted.
#[derive(Debug, Clone)]
pub(crate) struct RowCache {
    width: usize,
    /// Positions `[start, start + Σ take)`, in order.
    frozen: Vec<Segment>,
    /// Positions `[start + Σ take, len)`.
    tail: Store,
    start: usize,
    len: usize,
}

impl RowCache {
    pub(crate) fn new(width: usize) -> Self {
        Self::with_dtype(width, KvDType::F32)
    }

    pub(crate) fn with_dtype(width: usize, dtype: KvDType) -> Self {
        RowCache {
            width,
            frozen: Vec::new(),
            tail: Store::new(dtype),
            start: 0,
            len: 0,
        }
    }

    /// Stores rows in `dtype` from now on; only for an empty cache (rows held are dropped).
    pub(crate) fn set_dtype(&mut self, dtype: KvDType) {
        debug_assert_eq!(self.len, 0, "set_dtype on a cache holding rows");
        *self = Self::with_dtype(self.width, dtype);
    }

    pub(crate) fn dtype(&self) -> KvDType {
        self.tail.dtype()
    }

    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// Appends `rows.len() / width` rows.
    pub(crate) fn append(&mut self, rows: &[f32]) {
        debug_assert_eq!(rows.len() % self.width, 0);
        self.tail.push(rows, self.width);
        self.len += rows.len() / self.width;
    }

    /// The store holding position `pos`, its row index there, and the rows of that store from
    /// there on that belong to this cache.
    fn locate(&self, pos: usize) -> (&Store, usize, usize) {
        let mut p = self.start;
        for s in &self.frozen {
            if pos < p + s.take {
                return (&s.data, s.skip + pos - p, p + s.take - pos);
            }
            p += s.take;
        }
        (&self.tail, pos - p, self.len - pos)
    }

    /// Row at absolute position `pos` (must be in `[start, len)`) as f32 (borrowed when stored so).
    #[inline]
    #[allow(dead_code)] // the single-row read of attention paths; GQA now reads its window once
    pub(crate) fn row(&self, pos: usize) -> Cow<'_, [f32]> {
        // The common case (f32, nothing shared) without the general lookup.
        if let (true, Store::F32(v)) = (self.frozen.is_empty(), &self.tail) {
            let r = pos - self.start;
            return Cow::Borrowed(&v[r * self.width..(r + 1) * self.width]);
        }
        self.rows(pos..pos + 1)
    }

    /// Rows at positions `range` as one contiguous `[range.len(), width]` f32 table: borrowed when
    /// they are stored as f32 in one piece, else decoded.
    pub(crate) fn rows(&self, range: std::ops::Range<usize>) -> Cow<'_, [f32]> {
        debug_assert!(range.start >= self.start && range.end <= self.len);
        if range.is_empty() {
            return Cow::Borrowed(&[]);
        }
        let (store, r, avail) = self.locate(range.start);
        if range.len() <= avail {
            if let Some(s) = store.f32_rows(r..r + range.len(), self.width) {
                return Cow::Borrowed(s);
            }
        }
        // One pass over the pieces (positions [p, p + n) each), however many forks made them.
        let mut out = Vec::with_capacity(range.len() * self.width);
        let mut p = self.start;
        for (store, r) in self.pieces() {
            let n = r.len();
            let (a, b) = (p.max(range.start), (p + n).min(range.end));
            if a < b {
                store.decode_into(r.start + a - p..r.start + b - p, self.width, &mut out);
            }
            p += n;
            if p >= range.end {
                break;
            }
        }
        Cow::Owned(out)
    }

    /// Rows at positions `range` as one contiguous `[range.len(), width]` table for the kernels:
    /// borrowed in the stored precision (f32 or bf16, no copy) when one piece holds them all, else
    /// decoded to f32 (int8 rows, or a range across a forked prefix and this cache's own rows).
    pub(crate) fn table(&self, range: std::ops::Range<usize>) -> Table<'_> {
        debug_assert!(range.start >= self.start && range.end <= self.len);
        if !range.is_empty() {
            let (store, r, avail) = self.locate(range.start);
            if range.len() <= avail {
                if let Some(d) = store.float_rows(r..r + range.len(), self.width) {
                    return Table::Lent(d);
                }
            }
        }
        Table::Decoded(self.rows(range).into_owned())
    }

    /// The rows at positions `range` piece by piece (a forked prefix, then this cache's own rows),
    /// each as `(first position, rows, table)`: lent in the stored precision when f32 or bf16, else
    /// decoded. Products over a forked cache run piece by piece instead of copying the context.
    pub(crate) fn tables(&self, range: std::ops::Range<usize>) -> Vec<(usize, usize, Table<'_>)> {
        debug_assert!(range.start >= self.start && range.end <= self.len);
        let mut out = Vec::new();
        let mut p = self.start;
        for (store, r) in self.pieces() {
            let n = r.len();
            let (a, b) = (p.max(range.start), (p + n).min(range.end));
            if a < b {
                let rows = r.start + a - p..r.start + b - p;
                let table = match store.float_rows(rows.clone(), self.width) {
                    Some(d) => Table::Lent(d),
                    None => {
                        let mut v = Vec::with_capacity(rows.len() * self.width);
                        store.decode_into(rows, self.width, &mut v);
                        Table::Decoded(v)
                    }
                };
                out.push((a, b - a, table));
            }
            p += n;
            if p >= range.end {
                break;
            }
        }
        out
    }

    /// Appends columns `cols` of the rows at positions `range` to `out` as f32,
    /// `[range.len(), cols.len()]`, decoding only those values (one key head of a block).
    pub(crate) fn decode_cols_into(
        &self,
        range: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
        out: &mut Vec<f32>,
    ) {
        debug_assert!(range.start >= self.start && range.end <= self.len);
        debug_assert!(cols.end <= self.width);
        let mut p = self.start;
        for (store, r) in self.pieces() {
            let n = r.len();
            let (a, b) = (p.max(range.start), (p + n).min(range.end));
            if a < b {
                store.decode_cols_into(
                    r.start + a - p..r.start + b - p,
                    self.width,
                    cols.clone(),
                    out,
                );
            }
            p += n;
            if p >= range.end {
                break;
            }
        }
    }

    /// Whether [`rows`](Self::rows) over everything held borrows (f32, one piece) instead of decoding.
    pub(crate) fn is_borrowable(&self) -> bool {
        self.frozen.is_empty() && matches!(self.tail, Store::F32(_))
    }

    /// Appends the rows at `positions` (each in `[start, len)`) to `out` as f32, `[positions, width]`.
    pub(crate) fn gather_into(&self, positions: &[usize], out: &mut Vec<f32>) {
        out.reserve(positions.len() * self.width);
        for &pos in positions {
            let (store, r, _) = self.locate(pos);
            store.decode_into(r..r + 1, self.width, out);
        }
    }

    /// Visits the rows `[start, len)` piece by piece in their stored form (for snapshots).
    pub(crate) fn pieces(&self) -> impl Iterator<Item = (&Store, std::ops::Range<usize>)> {
        let tail_rows = self.tail.rows(self.width);
        self.frozen
            .iter()
            .map(|s| (&*s.data, s.skip..s.skip + s.take))
            .chain(std::iter::once((&self.tail, 0..tail_rows)))
            .filter(|(_, r)| !r.is_empty())
    }

    /// A cache holding positions `[start, start + rows)` from `tail` (restoring a snapshot).
    pub(crate) fn from_parts(width: usize, tail: Store, start: usize) -> Self {
        let len = start + tail.rows(width);
        RowCache {
            width,
            frozen: Vec::new(),
            tail,
            start,
            len,
        }
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
        self.clear();
        self.start = pos;
        self.len = pos;
    }

    /// Drops rows before position `pos` (a shared segment is released once no row of it is needed).
    pub(crate) fn evict_before(&mut self, pos: usize) {
        let pos = pos.min(self.len);
        while pos > self.start {
            let want = pos - self.start;
            if let Some(s) = self.frozen.first_mut() {
                let n = want.min(s.take);
                s.skip += n;
                s.take -= n;
                self.start += n;
                if s.take == 0 {
                    self.frozen.remove(0);
                }
            } else {
                self.tail.drain_front(want, self.width);
                self.start = pos;
            }
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
        if len >= self.len {
            return Ok(());
        }
        let frozen_end = self.start + self.frozen.iter().map(|s| s.take).sum::<usize>();
        if len >= frozen_end {
            self.tail.truncate(len - frozen_end, self.width);
        } else {
            self.tail = Store::new(self.tail.dtype());
            let mut p = self.start;
            let mut keep = 0;
            for s in &mut self.frozen {
                if p >= len {
                    break;
                }
                s.take = s.take.min(len - p);
                p += s.take;
                keep += 1;
            }
            self.frozen.truncate(keep);
        }
        self.len = len;
        Ok(())
    }

    pub(crate) fn clear(&mut self) {
        *self = Self::with_dtype(self.width, self.dtype());
    }

    /// Moves the private rows into a shared read-only segment, so that a clone of this cache shares
    /// every row held now instead of copying it.
    pub(crate) fn freeze(&mut self) {
        if self.tail.rows(self.width) == 0 {
            return;
        }
        let dtype = self.dtype();
        let mut t = std::mem::replace(&mut self.tail, Store::new(dtype));
        let take = t.rows(self.width);
        // A last segment no other cache references any more (the forks made from it are gone) and
        // that this cache uses whole takes the rows, so repeated forks do not pile up segments.
        if let Some(last) = self.frozen.last_mut() {
            let whole = last.skip == 0 && last.take == last.data.rows(self.width);
            if let (true, Some(data)) = (whole, Arc::get_mut(&mut last.data)) {
                data.extend_from(&t, self.width);
                data.shrink();
                last.take += take;
                return;
            }
        }
        t.shrink();
        self.frozen.push(Segment {
            data: Arc::new(t),
            skip: 0,
            take,
        });
    }

    /// Bytes of the rows this cache keeps alive (a shared segment counts whole while referenced).
    pub(crate) fn bytes(&self) -> usize {
        self.frozen.iter().map(|s| s.data.bytes()).sum::<usize>() + self.tail.bytes()
    }

    /// Of [`bytes`](Self::bytes), those in segments another cache also references.
    pub(crate) fn shared_bytes(&self) -> usize {
        self.frozen
            .iter()
            .filter(|s| Arc::strong_count(&s.data) > 1)
            .map(|s| s.data.bytes())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(range: std::ops::Range<usize>, w: usize) -> Vec<f32> {
        range
            .flat_map(|p| (0..w).map(move |c| (p * 10 + c) as f32))
            .collect()
    }

    #[test]
    fn frozen_segments_read_truncate_and_evict_like_one_table() {
        let w = 3;
        for dtype in [KvDType::F32, KvDType::Bf16] {
            let mut a = RowCache::with_dtype(w, dtype);
            a.append(&rows(0..4, w));
            a.freeze();
            let mut b = a.clone();
            assert_eq!(a.shared_bytes(), 4 * dtype.row_bytes(w));
            a.append(&rows(4..6, w));
            b.append(&rows(4..7, w));
            a.freeze();
            a.append(&rows(6..8, w));
            assert_eq!(&*a.rows(0..8), &rows(0..8, w)[..]);
            assert_eq!(&*b.rows(2..7), &rows(2..7, w)[..]);
            assert_eq!(&*a.row(5), &rows(5..6, w)[..]);
            if dtype == KvDType::F32 {
                assert!(matches!(a.rows(1..3), Cow::Borrowed(_)));
            }
            // Truncating into a shared segment leaves the other cache's rows alone.
            a.truncate(3).unwrap();
            assert_eq!(a.len(), 3);
            a.append(&rows(3..5, w));
            assert_eq!(&*a.rows(0..5), &rows(0..5, w)[..]);
            assert_eq!(&*b.rows(0..7), &rows(0..7, w)[..]);
            // Evicting across the shared segment and into the tail.
            b.evict_before(5);
            assert_eq!(b.start(), 5);
            assert_eq!(&*b.rows(5..7), &rows(5..7, w)[..]);
            assert!(b.check_truncate(4).is_err());
            drop(b);
            assert_eq!(a.shared_bytes(), 0);
            // Forking after every step whose forks are dropped keeps one segment.
            let mut c = RowCache::with_dtype(w, dtype);
            for p in 0..6 {
                c.append(&rows(p..p + 1, w));
                c.freeze();
                let _fork = c.clone();
            }
            assert_eq!(c.frozen.len(), 1);
            assert_eq!(&*c.rows(0..6), &rows(0..6, w)[..]);
            let keep = c.clone();
            c.append(&rows(6..7, w));
            c.freeze();
            assert_eq!(
                c.frozen.len(),
                2,
                "a segment another cache holds is not grown"
            );
            assert_eq!(&*keep.rows(0..6), &rows(0..6, w)[..]);
            a.clear();
            assert_eq!((a.len(), a.bytes(), a.dtype()), (0, 0, dtype));
        }
    }
}
