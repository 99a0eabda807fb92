//! Layer caches to bytes and back (session snapshots): each row table as its first held position,
//! its row count and its rows in their stored precision ([`Store::write`]); the f32 DeltaNet state
//! as its two value counts and values; a DeepSeek V4 layer as its window table, then per compressor
//! its tail row count, tail K/V and gate rows, overlap flag (and `[m, d]` K/V and gate rows) and
//! entries table. Reading validates every count against the model's layer (kind, widths, window,
//! compression rate, tokens held) and the bytes present before allocating.

use super::{
    CompressedCache, CompressorState, DeltaNetCache, KvCache, KvDType, LayerCache, RowCache, Store,
};
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

/// Bytes of a row table of `rows` rows of `width` in `dtype`, with its start and count.
fn table_bytes(rows: usize, width: usize, dtype: KvDType) -> usize {
    16usize.saturating_add(rows.saturating_mul(dtype.row_bytes(width)))
}

/// Bytes of `values` f32 values with their count.
fn f32s_bytes(values: usize) -> usize {
    8usize.saturating_add(values.saturating_mul(4))
}

/// Upper bound of [`write_layer`]'s output for a layer holding `n` positions in `dtype`.
pub(crate) fn max_layer_bytes(layer: &LayerCache, n: usize, dtype: KvDType) -> usize {
    let body = match layer {
        LayerCache::Gqa(_) | LayerCache::Mla { .. } => layer
            .row_caches()
            .iter()
            .map(|r| table_bytes(n, r.width(), dtype))
            .fold(0usize, usize::saturating_add),
        LayerCache::DeltaNet(c) => {
            let (conv, state) = c.sizes();
            f32s_bytes(conv).saturating_add(f32s_bytes(state))
        }
        LayerCache::Compressed(c) => [&c.compressor, &c.indexer]
            .into_iter()
            .map(|s| 1 + s.as_ref().map_or(0, |s| max_compressor_bytes(s, c.rate, n)))
            .fold(
                table_bytes(n, c.window.width(), KvDType::F32),
                usize::saturating_add,
            ),
    };
    1usize.saturating_add(body)
}

fn max_compressor_bytes(s: &CompressorState, rate: usize, n: usize) -> usize {
    let (d, width) = (s.entries.width(), s.tail_width());
    let tail = f32s_bytes(rate.saturating_mul(width));
    let overlap = f32s_bytes(rate.saturating_mul(d));
    let entries = table_bytes(n / rate.max(1), d, KvDType::F32);
    [tail, tail, 1, overlap, overlap, entries]
        .into_iter()
        .fold(0usize, usize::saturating_add)
}

/// Appends a row table: its first held position, its row count, its rows as stored.
fn write_table(r: &RowCache, out: &mut Vec<u8>) {
    out.extend_from_slice(&(r.start() as u64).to_le_bytes());
    out.extend_from_slice(&((r.len() - r.start()) as u64).to_le_bytes());
    for (store, range) in r.pieces() {
        store.write(range, r.width(), out);
    }
}

/// Appends f32 values with their count.
fn write_f32s(v: &[f32], out: &mut Vec<u8>) {
    out.extend_from_slice(&(v.len() as u64).to_le_bytes());
    v.iter()
        .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
}

fn write_compressor(s: &CompressorState, out: &mut Vec<u8>) {
    write_f32s(&s.tail_kv, out);
    write_f32s(&s.tail_gate, out);
    match &s.overlap {
        Some((kv, gate)) => {
            out.push(1);
            write_f32s(kv, out);
            write_f32s(gate, out);
        }
        None => out.push(0),
    }
    write_table(&s.entries, out);
}

/// Appends `layer` to `out`.
pub(crate) fn write_layer(layer: &LayerCache, out: &mut Vec<u8>) {
    out.push(kind(layer));
    match layer {
        LayerCache::Gqa(_) | LayerCache::Mla { .. } => layer
            .row_caches()
            .into_iter()
            .for_each(|r| write_table(r, out)),
        LayerCache::DeltaNet(c) => {
            // A state that saw no token is written empty whether or not it was allocated.
            let empty = c.len() == 0;
            write_f32s(if empty { &[] } else { &c.conv }, out);
            write_f32s(if empty { &[] } else { &c.state }, out);
        }
        LayerCache::Compressed(c) => {
            write_table(&c.window, out);
            for s in [&c.compressor, &c.indexer] {
                match s {
                    Some(s) => {
                        out.push(1);
                        write_compressor(s, out);
                    }
                    None => out.push(0),
                }
            }
        }
    }
}

/// Reads a row table [`write_table`] wrote for a cache holding `n` positions, whose start may be at
/// most `max_start`.
fn read_table(
    rd: &mut Reader<'_>,
    width: usize,
    dtype: KvDType,
    n: usize,
    max_start: usize,
    what: &str,
) -> Result<RowCache> {
    let start = rd.u64()?;
    let rows = rd.u64()?;
    if start > max_start as u64 || start.checked_add(rows) != Some(n as u64) {
        return Err(corrupt(format!(
            "{what} holds positions {start}..{start}+{rows}; it should hold {n} positions and keep \
             them from at most {max_start}"
        )));
    }
    let (start, rows) = (start as usize, rows as usize);
    let bytes = rows
        .checked_mul(dtype.row_bytes(width))
        .filter(|&b| b <= rd.remaining())
        .ok_or_else(|| {
            corrupt(format!(
                "{what}: {rows} rows of width {width} exceed the snapshot's bytes"
            ))
        })?;
    let store = Store::read(dtype, rd.take(bytes)?, rows, width);
    Ok(RowCache::from_parts(width, store, start))
}

/// Reads f32 values [`write_f32s`] wrote, refusing any count but `want`.
fn read_f32s(rd: &mut Reader<'_>, want: usize, what: &str) -> Result<Vec<f32>> {
    let count = rd.u64()?;
    if count != want as u64 {
        return Err(corrupt(format!(
            "{what}: {count} values, the model's layer holds {want} here"
        )));
    }
    let bytes = want
        .checked_mul(4)
        .filter(|&b| b <= rd.remaining())
        .ok_or_else(|| corrupt(format!("{what}: {want} values exceed the snapshot's bytes")))?;
    Ok(rd
        .take(bytes)?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect())
}

/// Reads the state [`write_compressor`] wrote for `template` after `n` positions pooled `rate` at
/// a time: `n % rate` tail rows, `n / rate` entries, and the overlap once a window closed.
fn read_compressor(
    rd: &mut Reader<'_>,
    template: &CompressorState,
    rate: usize,
    n: usize,
    what: &str,
) -> Result<CompressorState> {
    if rate == 0 {
        return Err(corrupt(format!("{what}: a compressor without a rate")));
    }
    let (d, width) = (template.entries.width(), template.tail_width());
    let mut s = template.clone();
    let tail = (n % rate).saturating_mul(width);
    s.tail_kv = read_f32s(rd, tail, &format!("{what} tail K/V"))?;
    s.tail_gate = read_f32s(rd, tail, &format!("{what} tail gates"))?;
    let has_overlap = rd.u8()?;
    let want_overlap = template.overlaps() && n >= rate;
    s.overlap = match (has_overlap, want_overlap) {
        (0, false) => None,
        (1, true) => {
            let kv = read_f32s(rd, rate.saturating_mul(d), &format!("{what} overlap K/V"))?;
            let gate = read_f32s(rd, rate.saturating_mul(d), &format!("{what} overlap gates"))?;
            Some((kv, gate))
        }
        (f, _) => {
            return Err(corrupt(format!(
                "{what}: overlap flag {f} after {n} positions (overlapping: {})",
                template.overlaps()
            )))
        }
    };
    // One entry per closed window, never evicted.
    let entries = n / rate;
    s.entries = read_table(rd, d, KvDType::F32, entries, 0, &format!("{what} entries"))?;
    Ok(s)
}

fn read_compressed(
    rd: &mut Reader<'_>,
    template: &CompressedCache,
    n: usize,
    index: usize,
) -> Result<CompressedCache> {
    let mut c = template.clone();
    let max_start = c.first_needed(n).min(n);
    c.window = read_table(
        rd,
        c.window.width(),
        KvDType::F32,
        n,
        max_start,
        &format!("layer {index}: the window"),
    )?;
    for (name, slot) in [
        ("compressor", &mut c.compressor),
        ("indexer", &mut c.indexer),
    ] {
        let present = rd.u8()?;
        let what = format!("layer {index}: the {name}");
        *slot = match (present, slot.as_ref()) {
            (0, None) => None,
            (1, Some(t)) => Some(read_compressor(rd, t, template.rate, n, &what)?),
            (p, t) => {
                return Err(corrupt(format!(
                    "{what}: presence flag {p}, the model's layer has {}",
                    if t.is_some() { "one" } else { "none" }
                )))
            }
        };
    }
    Ok(c)
}

fn read_deltanet(
    rd: &mut Reader<'_>,
    template: &DeltaNetCache,
    n: usize,
    index: usize,
) -> Result<DeltaNetCache> {
    let (conv_values, state_values) = if n == 0 { (0, 0) } else { template.sizes() };
    let conv = read_f32s(
        rd,
        conv_values,
        &format!("layer {index}: the convolution inputs"),
    )?;
    let state = read_f32s(
        rd,
        state_values,
        &format!("layer {index}: the recurrent state"),
    )?;
    let mut c = template.clone();
    c.restore(conv, state, n);
    Ok(c)
}

/// Reads the layer [`write_layer`] wrote, for the model layer whose fresh cache is `template` (in
/// `dtype`), holding `n` positions: the kind, every table's window and row count and every state's
/// sizes must fit that layer.
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
        LayerCache::DeltaNet(t) => {
            return Ok(LayerCache::DeltaNet(read_deltanet(rd, t, n, index)?))
        }
        LayerCache::Compressed(t) => {
            return Ok(LayerCache::Compressed(Box::new(read_compressed(
                rd, t, n, index,
            )?)))
        }
    };
    let mut layer = template.clone();
    let mut starts = vec![];
    for r in layer.row_caches_mut() {
        let table = read_table(
            rd,
            r.width(),
            dtype,
            n,
            max_start,
            &format!("layer {index}: a table"),
        )?;
        starts.push(table.start());
        *r = table;
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

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = 7;

    /// A V4 layer (window 4, rate 3, overlapping compressor of dim 2 and indexer of dim 1, and a
    /// heavy one of dim 2 without overlap) after `n` tokens, filled the way attention fills it.
    fn compressed(n: usize, sparse: bool) -> CompressedCache {
        let (rate, w) = (3, 4);
        let mut c = if sparse {
            CompressedCache::new(2, w, rate, Some((2, true)), Some((1, true)))
        } else {
            CompressedCache::new(2, w, rate, Some((2, false)), None)
        };
        let rows: Vec<f32> = (0..n * 2).map(|i| i as f32 + 0.5).collect();
        c.window.append(&rows);
        c.evict();
        for s in [&mut c.compressor, &mut c.indexer].into_iter().flatten() {
            let (d, width) = (s.entries.width(), s.tail_width());
            s.tail_kv = (0..(n % rate) * width).map(|i| i as f32).collect();
            s.tail_gate = (0..(n % rate) * width).map(|i| -(i as f32)).collect();
            if s.overlaps() && n >= rate {
                s.overlap = Some((vec![1.0; rate * d], vec![2.0; rate * d]));
            }
            s.entries.append(
                &(0..(n / rate) * d)
                    .map(|i| i as f32 * 3.0)
                    .collect::<Vec<_>>(),
            );
        }
        c
    }

    fn bytes(layer: &LayerCache) -> Vec<u8> {
        let mut out = vec![];
        write_layer(layer, &mut out);
        assert!(out.len() <= max_layer_bytes(layer, layer.len(), KvDType::F32));
        out
    }

    fn read(b: &[u8], template: &LayerCache, n: usize) -> Result<LayerCache> {
        let mut rd = Reader::new(b);
        let l = read_layer(&mut rd, template, n, KvDType::F32, 0)?;
        assert_eq!(rd.remaining(), 0);
        Ok(l)
    }

    fn state_eq(a: &CompressorState, b: &CompressorState) {
        assert_eq!(a.tail_kv, b.tail_kv);
        assert_eq!(a.tail_gate, b.tail_gate);
        assert_eq!(a.overlap, b.overlap);
        assert_eq!(a.entries.start(), b.entries.start());
        assert_eq!(a.entries.len(), b.entries.len());
        assert_eq!(
            a.entries.rows(0..a.entries.len()),
            b.entries.rows(0..b.entries.len())
        );
    }

    #[test]
    fn compressed_layers_round_trip_at_every_length() {
        for sparse in [true, false] {
            let template = LayerCache::Compressed(Box::new(compressed(0, sparse)));
            for n in 0..12 {
                let c = compressed(n, sparse);
                let b = bytes(&LayerCache::Compressed(Box::new(c.clone())));
                let LayerCache::Compressed(got) = read(&b, &template, n).unwrap() else {
                    panic!("kind")
                };
                assert_eq!(got.len(), n);
                assert_eq!(got.window.start(), c.window.start());
                assert_eq!(
                    got.window.rows(c.window.start()..n),
                    c.window.rows(c.window.start()..n)
                );
                for (a, b) in [(&got.compressor, &c.compressor), (&got.indexer, &c.indexer)] {
                    assert_eq!(a.is_some(), b.is_some());
                    if let (Some(a), Some(b)) = (a, b) {
                        state_eq(a, b);
                    }
                }
                // Every cut of the layer is a typed error.
                for cut in 0..b.len() {
                    let mut rd = Reader::new(&b[..cut]);
                    assert!(read_layer(&mut rd, &template, n, KvDType::F32, 0).is_err());
                }
            }
        }
    }

    #[test]
    fn inconsistent_compressed_layers_are_refused() {
        let template = LayerCache::Compressed(Box::new(compressed(0, true)));
        let heavy = LayerCache::Compressed(Box::new(compressed(0, false)));
        type Edit = fn(&mut CompressedCache);
        let edits: Vec<(&str, Edit)> = vec![
            ("extra window row", |c| c.window.append(&[0.0, 0.0])),
            ("window evicted too far", |c| c.window.evict_before(N)),
            ("extra tail row", |c| {
                let s = c.compressor.as_mut().unwrap();
                s.tail_kv.extend([0.0; 4]);
                s.tail_gate.extend([0.0; 4]);
            }),
            ("tail of the wrong width", |c| {
                let s = c.compressor.as_mut().unwrap();
                s.tail_kv.truncate(2);
                s.tail_gate.truncate(2);
            }),
            ("gates missing", |c| {
                c.indexer.as_mut().unwrap().tail_gate.clear()
            }),
            ("overlap missing", |c| {
                c.compressor.as_mut().unwrap().overlap = None
            }),
            ("overlap too short", |c| {
                c.indexer.as_mut().unwrap().overlap = Some((vec![0.0; 2], vec![0.0; 3]))
            }),
            ("extra entry", |c| {
                c.compressor.as_mut().unwrap().entries.append(&[0.0; 2])
            }),
            ("entry missing", |c| {
                c.indexer.as_mut().unwrap().entries = RowCache::new(1);
                c.indexer.as_mut().unwrap().entries.append(&[0.0]);
            }),
            ("indexer missing", |c| c.indexer = None),
        ];
        for (name, edit) in edits {
            let mut c = compressed(N, true);
            edit(&mut c);
            let b = bytes(&LayerCache::Compressed(Box::new(c)));
            assert!(
                matches!(read(&b, &template, N), Err(Error::SnapshotCorrupt(_))),
                "{name}"
            );
        }
        // An overlap on a compressor that does not overlap, a layer of the other shape, and the
        // right bytes for another token count.
        let mut c = compressed(N, false);
        c.compressor.as_mut().unwrap().overlap = Some((vec![0.0; 6], vec![0.0; 6]));
        let b = bytes(&LayerCache::Compressed(Box::new(c)));
        assert!(read(&b, &heavy, N).is_err());
        let b = bytes(&LayerCache::Compressed(Box::new(compressed(N, false))));
        assert!(read(&b, &template, N).is_err());
        let b = bytes(&LayerCache::Compressed(Box::new(compressed(N, true))));
        for n in [0, N - 1, N + 1, N + 3] {
            let mut rd = Reader::new(&b);
            assert!(read_layer(&mut rd, &template, n, KvDType::F32, 0).is_err());
        }
    }

    #[test]
    fn huge_counts_are_refused_before_allocating() {
        let template = LayerCache::Compressed(Box::new(compressed(0, true)));
        let good = bytes(&LayerCache::Compressed(Box::new(compressed(N, true))));
        // The window's row count (after the kind and start), then the first tail's value count.
        let window_rows = 3 * 2 * 4;
        for at in [1 + 8, 1 + 16 + window_rows + 1] {
            let mut b = good.clone();
            b[at..at + 8].copy_from_slice(&(u64::MAX - 1).to_le_bytes());
            assert!(matches!(
                read(&b, &template, N),
                Err(Error::SnapshotCorrupt(_))
            ));
        }
        let mut rd = Reader::new(&good);
        assert!(read_layer(&mut rd, &template, usize::MAX / 2, KvDType::F32, 0).is_err());
    }

    #[test]
    fn deltanet_states_round_trip_and_keep_their_sizes() {
        let template = LayerCache::DeltaNet(DeltaNetCache::new(6, 10));
        let mut c = DeltaNetCache::new(6, 10);
        c.ensure();
        // Allocated but no token yet: written empty.
        let b = bytes(&LayerCache::DeltaNet(c.clone()));
        assert_eq!(b.len(), 1 + 16);
        let got = read(&b, &template, 0).unwrap();
        assert_eq!((got.len(), got.bytes()), (0, 0));
        c.conv
            .iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = i as f32);
        c.state
            .iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = -(i as f32));
        c.advance(5);
        let b = bytes(&LayerCache::DeltaNet(c.clone()));
        let LayerCache::DeltaNet(got) = read(&b, &template, 5).unwrap() else {
            panic!("kind")
        };
        assert_eq!(
            (got.conv.clone(), got.state.clone()),
            (c.conv.clone(), c.state.clone())
        );
        assert_eq!(got.len(), 5);
        assert_eq!(got.bytes(), c.fixed_bytes());
        // Another token count, another model's sizes, a cut, a huge count.
        assert!(read(&b, &template, 0).is_err());
        let other = LayerCache::DeltaNet(DeltaNetCache::new(6, 11));
        assert!(read(&b, &other, 5).is_err());
        for cut in 0..b.len() {
            let mut rd = Reader::new(&b[..cut]);
            assert!(read_layer(&mut rd, &template, 5, KvDType::F32, 0).is_err());
        }
        let mut huge = b.clone();
        huge[1..9].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            read(&huge, &template, 5),
            Err(Error::SnapshotCorrupt(_))
        ));
    }
}
