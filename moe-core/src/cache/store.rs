//! Rows of one width stored in a [`KvDType`]: appended as f32, read back as f32.

use half::bf16;

use super::KvDType;
use crate::kernels::FloatData;

/// A `[rows, width]` table in one precision (the width is kept by the owner).
#[derive(Debug, Clone)]
pub(crate) enum Store {
    /// `[rows · width]`.
    F32(Vec<f32>),
    /// `[rows · width]`.
    Bf16(Vec<bf16>),
    /// `q[rows · width]`, `scales[rows]`: value = `q · scale`.
    Int8 { q: Vec<i8>, scales: Vec<f32> },
}

impl Store {
    pub(crate) fn new(dtype: KvDType) -> Self {
        match dtype {
            KvDType::F32 => Store::F32(Vec::new()),
            KvDType::Bf16 => Store::Bf16(Vec::new()),
            KvDType::Int8 => Store::Int8 {
                q: Vec::new(),
                scales: Vec::new(),
            },
        }
    }

    pub(crate) fn dtype(&self) -> KvDType {
        match self {
            Store::F32(_) => KvDType::F32,
            Store::Bf16(_) => KvDType::Bf16,
            Store::Int8 { .. } => KvDType::Int8,
        }
    }

    /// Number of rows held.
    pub(crate) fn rows(&self, width: usize) -> usize {
        match self {
            Store::F32(v) => v.len() / width,
            Store::Bf16(v) => v.len() / width,
            Store::Int8 { scales, .. } => scales.len(),
        }
    }

    /// Appends `rows[n, width]`.
    pub(crate) fn push(&mut self, rows: &[f32], width: usize) {
        match self {
            Store::F32(v) => v.extend_from_slice(rows),
            Store::Bf16(v) => v.extend(rows.iter().map(|&x| bf16::from_f32(x))),
            Store::Int8 { q, scales } => {
                for row in rows.chunks_exact(width) {
                    let amax = row.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                    let scale = amax / 127.0;
                    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
                    q.extend(
                        row.iter()
                            .map(|&x| (x * inv).round().clamp(-127.0, 127.0) as i8),
                    );
                    scales.push(scale);
                }
            }
        }
    }

    /// Appends every row of `other` (same precision; rows of another precision are decoded and
    /// stored again).
    pub(crate) fn extend_from(&mut self, other: &Store, width: usize) {
        match (self, other) {
            (Store::F32(a), Store::F32(b)) => a.extend_from_slice(b),
            (Store::Bf16(a), Store::Bf16(b)) => a.extend_from_slice(b),
            (Store::Int8 { q, scales }, Store::Int8 { q: q2, scales: s2 }) => {
                q.extend_from_slice(q2);
                scales.extend_from_slice(s2);
            }
            (me, other) => {
                let mut rows = Vec::new();
                other.decode_into(0..other.rows(width), width, &mut rows);
                me.push(&rows, width);
            }
        }
    }

    /// Rows `range` borrowed as f32, when stored as f32.
    pub(crate) fn f32_rows(&self, range: std::ops::Range<usize>, width: usize) -> Option<&[f32]> {
        match self {
            Store::F32(v) => Some(&v[range.start * width..range.end * width]),
            _ => None,
        }
    }

    /// Rows `range` borrowed in their stored form, when stored as f32 or bf16 (the kernels take
    /// both as a matrix).
    pub(crate) fn float_rows(
        &self,
        range: std::ops::Range<usize>,
        width: usize,
    ) -> Option<FloatData<'_>> {
        let (a, b) = (range.start * width, range.end * width);
        match self {
            Store::F32(v) => Some(FloatData::F32(&v[a..b])),
            Store::Bf16(v) => Some(FloatData::BF16(&v[a..b])),
            Store::Int8 { .. } => None,
        }
    }

    /// Appends columns `cols` of every row in `range` to `out` as f32, `[range.len(), cols.len()]`.
    pub(crate) fn decode_cols_into(
        &self,
        range: std::ops::Range<usize>,
        width: usize,
        cols: std::ops::Range<usize>,
        out: &mut Vec<f32>,
    ) {
        let w = cols.len();
        let at = out.len();
        out.resize(at + range.len() * w, 0.0);
        let dst = out[at..].chunks_exact_mut(w.max(1));
        match self {
            Store::F32(v) => {
                for (r, o) in range.zip(dst) {
                    o.copy_from_slice(&v[r * width + cols.start..r * width + cols.end]);
                }
            }
            Store::Bf16(v) => {
                let v = FloatData::BF16(v);
                for (r, o) in range.zip(dst) {
                    v.widen_into(r * width + cols.start..r * width + cols.end, o);
                }
            }
            Store::Int8 { q, scales } => {
                for (r, o) in range.zip(dst) {
                    let s = scales[r];
                    let row = &q[r * width + cols.start..r * width + cols.end];
                    o.iter_mut().zip(row).for_each(|(o, &x)| *o = x as f32 * s);
                }
            }
        }
    }

    /// Appends rows `range` to `out` as f32.
    pub(crate) fn decode_into(
        &self,
        range: std::ops::Range<usize>,
        width: usize,
        out: &mut Vec<f32>,
    ) {
        let (a, b) = (range.start * width, range.end * width);
        match self {
            Store::F32(v) => out.extend_from_slice(&v[a..b]),
            Store::Bf16(v) => {
                let at = out.len();
                out.resize(at + (b - a), 0.0);
                FloatData::BF16(v).widen_into(a..b, &mut out[at..]);
            }
            Store::Int8 { q, scales } => {
                for (row, &s) in q[a..b].chunks_exact(width).zip(&scales[range]) {
                    out.extend(row.iter().map(|&x| x as f32 * s));
                }
            }
        }
    }

    /// Drops the first `n` rows.
    pub(crate) fn drain_front(&mut self, n: usize, width: usize) {
        match self {
            Store::F32(v) => drop(v.drain(..n * width)),
            Store::Bf16(v) => drop(v.drain(..n * width)),
            Store::Int8 { q, scales } => {
                q.drain(..n * width);
                scales.drain(..n);
            }
        }
    }

    /// Keeps the first `n` rows.
    pub(crate) fn truncate(&mut self, n: usize, width: usize) {
        match self {
            Store::F32(v) => v.truncate(n * width),
            Store::Bf16(v) => v.truncate(n * width),
            Store::Int8 { q, scales } => {
                q.truncate(n * width);
                scales.truncate(n);
            }
        }
    }

    /// Releases spare capacity (before the rows are frozen and shared).
    pub(crate) fn shrink(&mut self) {
        match self {
            Store::F32(v) => v.shrink_to_fit(),
            Store::Bf16(v) => v.shrink_to_fit(),
            Store::Int8 { q, scales } => {
                q.shrink_to_fit();
                scales.shrink_to_fit();
            }
        }
    }

    /// Bytes of the rows held.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Store::F32(v) => v.len() * 4,
            Store::Bf16(v) => v.len() * 2,
            Store::Int8 { q, scales } => q.len() + scales.len() * 4,
        }
    }

    /// Appends rows `range` to `out` in their stored precision, little-endian, row by row (int8
    /// rows: the f32 scale, then the `width` values). [`Store::read`] is the inverse.
    pub(crate) fn write(&self, range: std::ops::Range<usize>, width: usize, out: &mut Vec<u8>) {
        let (a, b) = (range.start * width, range.end * width);
        match self {
            Store::F32(v) => v[a..b]
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Store::Bf16(v) => v[a..b]
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_bits().to_le_bytes())),
            Store::Int8 { q, scales } => {
                for (row, s) in q[a..b].chunks_exact(width).zip(&scales[range]) {
                    out.extend_from_slice(&s.to_le_bytes());
                    out.extend(row.iter().map(|&x| x as u8));
                }
            }
        }
    }

    /// `rows` rows of `width` from `bytes`, which holds exactly `rows · dtype.row_bytes(width)`
    /// bytes in [`Store::write`]'s layout. Any bit pattern is a value (a NaN is read back as the NaN
    /// that was cached), so what [`Store::write`] wrote always reads back.
    pub(crate) fn read(dtype: KvDType, bytes: &[u8], rows: usize, width: usize) -> Self {
        debug_assert_eq!(bytes.len(), rows * dtype.row_bytes(width));
        match dtype {
            KvDType::F32 => Store::F32(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                    .collect(),
            ),
            KvDType::Bf16 => Store::Bf16(
                bytes
                    .chunks_exact(2)
                    .map(|b| bf16::from_bits(u16::from_le_bytes([b[0], b[1]])))
                    .collect(),
            ),
            KvDType::Int8 => {
                let mut q = Vec::with_capacity(rows * width);
                let mut scales = Vec::with_capacity(rows);
                for row in bytes.chunks_exact(width + 4) {
                    scales.push(f32::from_le_bytes(row[..4].try_into().expect("4 bytes")));
                    q.extend(row[4..].iter().map(|&x| x as i8));
                }
                Store::Int8 { q, scales }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_precision_round_trips_within_its_error_and_through_bytes() {
        let w = 5;
        let rows: Vec<f32> = (0..20)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.37)
            .collect();
        for dtype in KvDType::ALL {
            let mut s = Store::new(dtype);
            s.push(&rows, w);
            s.push(&[0.0; 5], w);
            assert_eq!(s.rows(w), 5);
            assert_eq!(s.bytes(), 5 * dtype.row_bytes(w));
            let mut back = vec![];
            s.decode_into(0..5, w, &mut back);
            for (r, (a, b)) in back
                .chunks(w)
                .zip(rows.chunks(w).chain([&[0.0; 5][..]]))
                .enumerate()
            {
                let amax = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                let tol = match dtype {
                    KvDType::F32 => 0.0,
                    KvDType::Bf16 => amax / 128.0,
                    KvDType::Int8 => amax / 254.0 + 1e-7,
                };
                for (x, y) in a.iter().zip(b) {
                    assert!((x - y).abs() <= tol, "{dtype} row {r}: {x} vs {y}");
                }
            }
            let mut bytes = vec![];
            s.write(1..4, w, &mut bytes);
            let r = Store::read(dtype, &bytes, 3, w);
            let mut again = vec![];
            r.decode_into(0..3, w, &mut again);
            assert_eq!(again, back[w..4 * w]);
            s.drain_front(2, w);
            s.truncate(2, w);
            let mut mid = vec![];
            s.decode_into(0..2, w, &mut mid);
            assert_eq!(mid, back[2 * w..4 * w]);
        }
    }
}
