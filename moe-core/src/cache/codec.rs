//! Layer caches to bytes and back (session snapshots): each row table as its first held position,
//! its row count and its rows in their stored precision ([`Store::write`]). Reading validates every
//! count against the model's layer (kind, widths, window) and the bytes present before allocating.

use super::{KvDType, LayerCache, RowCache, Store};
use crate::error::{Error, Result};

/// Layer kinds as stored.
const KIND_GQA: u8 = 0;
const KIND_MLA: u8 = 1;
const KIND_MLA_INDEXER: u8 = 2;
const KIND_DELTANET: u8 = 3;
const KIND_COMPRESSED: u8 = 4;

fn corrupt(msg: impl Into<String>) -> Error {
    Error::SnapshotCorrupt(msg.into())
}

/// A cursor over bytes whose every read is bounds-checked (a short read is a corrupt snapshot: the
/// length was validated before the payload is parsed).
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, at: 0 }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.at
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(corrupt(format!(
                "payload ends at byte {} but {n} more are needed at byte {}",
                self.buf.len(),
                self.at
            )));
        }
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

fn kind(layer: &LayerCache) -> u8 {
    match layer {
        LayerCache::Gqa(_) => KIND_GQA,
        LayerCache::Mla { indexer: None, .. } => KIND_MLA,
        LayerCache::Mla {
            indexer: Some(_), ..
        } => KIND_MLA_INDEXER,
        LayerCache::DeltaNet(_) => KIND_DELTANET,
        LayerCache::Compressed(_) => KIND_COMPRESSED,
    }
}

/// Upper bound of [`write_layer`]'s output for a layer holding `n` positions in `dtype`.
pub(crate) fn max_layer_bytes(layer: &LayerCache, n: usize, dtype: KvDType) -> usize {
    1 + layer
        .row_caches()
        .iter()
        .map(|r| 16usize.saturating_add(n.saturating_mul(dtype.row_bytes(r.width()))))
        .fold(0usize, usize::saturating_add)
}

/// Appends `layer` to `out`.
pub(crate) fn write_layer(layer: &LayerCache, out: &mut Vec<u8>) {
    out.push(kind(layer));
    for r in layer.row_caches() {
        out.extend_from_slice(&(r.start() as u64).to_le_bytes());
        out.extend_from_slice(&((r.len() - r.start()) as u64).to_le_bytes());
        for (store, range) in r.pieces() {
            store.write(range, r.width(), out);
        }
    }
}

/// Reads the layer [`write_layer`] wrote, for the model layer whose fresh cache is `template` (in
/// `dtype`), holding `n` positions: the kind, every table's window and row count must fit that layer.
pub(crate) fn read_layer(
    rd: &mut Reader<'_>,
    template: &LayerCache,
    n: usize,
    dtype: KvDType,
    index: usize,
) -> Result<LayerCache> {
    let k = rd.u8()?;
    if k != kind(template) {
        return Err(corrupt(format!(
            "layer {index}: cache kind {k}, the model's layer has kind {}",
            kind(template)
        )));
    }
    // The first position a table may still hold: windowed GQA layers drop keys no future query sees.
    let max_start = match template {
        LayerCache::Gqa(g) => g.first_needed(n).min(n),
        LayerCache::Mla { .. } => 0,
        LayerCache::DeltaNet(_) | LayerCache::Compressed(_) => {
            return Err(corrupt(format!(
                "layer {index}: snapshots of linear-attention and compressed caches are not \
                 supported yet"
            )))
        }
    };
    let mut layer = template.clone();
    let mut starts = vec![];
    for r in layer.row_caches_mut() {
        let start = rd.u64()?;
        let rows = rd.u64()?;
        if start > max_start as u64 || start.checked_add(rows) != Some(n as u64) {
            return Err(corrupt(format!(
                "layer {index}: a table holds positions {start}..{start}+{rows}; the session holds \
                 {n} tokens and this layer keeps positions from at most {max_start}"
            )));
        }
        let (start, rows) = (start as usize, rows as usize);
        let width = r.width();
        let bytes = rows
            .checked_mul(dtype.row_bytes(width))
            .filter(|&b| b <= rd.remaining())
            .ok_or_else(|| {
                corrupt(format!(
                    "layer {index}: {rows} rows of width {width} exceed the snapshot's bytes"
                ))
            })?;
        let store = Store::read(dtype, rd.take(bytes)?, rows, width);
        *r = RowCache::from_parts(width, store, start);
        starts.push(start);
    }
    if let LayerCache::Gqa(_) = template {
        if starts[0] != starts[1] {
            return Err(corrupt(format!(
                "layer {index}: keys from position {}, values from {}",
                starts[0], starts[1]
            )));
        }
    }
    Ok(layer)
}
