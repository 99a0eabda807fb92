//! Session snapshots: a session's tokens and every cache table to bytes or a file, and back.
//!
//! Layout (little-endian):
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..8 | magic `MOESNAP\0` |
//! | 8..12 | format version ([`SNAPSHOT_VERSION`]) |
//! | 12 | cache precision (0 f32, 1 bf16, 2 int8) |
//! | 13 | sparse mode (0 sparse, 1 dense) |
//! | 14..16 | zero |
//! | 16..24 | the model's fingerprint ([`Model::fingerprint`]) |
//! | 24..32 | the session's maximum context |
//! | 32..40 | tokens held, `n` |
//! | 40..48 | payload length `L` |
//! | 48..56 | hash of bytes 0..48 |
//! | 56..56+L | payload: `n` u32 tokens, the layer count (u32), each layer ([`crate::cache`]'s codec) |
//! | 56+L..64+L | hash of the payload |
//!
//! Restoring checks, in order: the magic, the version, the header hash, the fingerprint, the length
//! (a short one is [`Error::SnapshotTruncated`]), the payload hash, then every count against the
//! model's shapes and the session's context before anything is allocated.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use super::{Session, SessionParams};
use crate::attention::SparseMode;
use crate::cache::{codec_max_layer_bytes, read_layer, write_layer, KvCache, KvDType, Reader};
use crate::error::{Error, Result};
use crate::hash::hash64;
use crate::model::Model;

/// The snapshot format version this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;

const MAGIC: &[u8; 8] = b"MOESNAP\0";
const HEADER: usize = 56;
const TRAILER: usize = 8;

fn corrupt(msg: impl Into<String>) -> Error {
    Error::SnapshotCorrupt(msg.into())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn sparse_code(m: SparseMode) -> u8 {
    match m {
        SparseMode::Sparse => 0,
        SparseMode::Dense => 1,
    }
}

/// The validated header.
struct Header {
    dtype: KvDType,
    sparse_mode: SparseMode,
    max_context: usize,
    n_tokens: usize,
    payload_len: usize,
}

/// Checks the header in `head` (the first bytes of a snapshot `total` bytes long) for `model`.
fn read_header(head: &[u8], total: u64, model: &Model) -> Result<Header> {
    let truncated = |needed: u64| Error::SnapshotTruncated { len: total, needed };
    let n = head.len().min(8);
    if head[..n] != MAGIC[..n] {
        return Err(corrupt("not a moe session snapshot (bad magic)"));
    }
    if total < 12 {
        return Err(truncated(HEADER as u64));
    }
    let version = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
    if version != SNAPSHOT_VERSION {
        return Err(Error::SnapshotVersion {
            found: version,
            supported: SNAPSHOT_VERSION,
        });
    }
    if total < HEADER as u64 {
        return Err(truncated(HEADER as u64));
    }
    if hash64(&head[..48]) != u64_at(head, 48) {
        return Err(corrupt("header checksum mismatch"));
    }
    let dtype = KvDType::from_code(head[12])
        .ok_or_else(|| corrupt(format!("unknown cache precision code {}", head[12])))?;
    let sparse_mode = match head[13] {
        0 => SparseMode::Sparse,
        1 => SparseMode::Dense,
        c => return Err(corrupt(format!("unknown sparse mode code {c}"))),
    };
    if head[14..16] != [0, 0] {
        return Err(corrupt("reserved header bytes are not zero"));
    }
    let found = u64_at(head, 16);
    if found != model.fingerprint() {
        return Err(Error::SnapshotModelMismatch {
            expected: model.fingerprint(),
            found,
        });
    }
    let (max_context, n_tokens, payload_len) =
        (u64_at(head, 24), u64_at(head, 32), u64_at(head, 40));
    if n_tokens > max_context || max_context == 0 {
        return Err(corrupt(format!(
            "{n_tokens} tokens in a context of {max_context}"
        )));
    }
    let max_context = usize::try_from(max_context).map_err(|_| {
        corrupt(format!(
            "maximum context {max_context} exceeds the address space"
        ))
    })?;
    let n = n_tokens as usize;
    // The largest payload `n` tokens can make on this model (every position held in every table).
    let fresh = model.new_cache();
    let bound = fresh
        .layers
        .iter()
        .map(|l| codec_max_layer_bytes(l, n, dtype))
        .fold(n.saturating_mul(4).saturating_add(4), usize::saturating_add);
    if payload_len > bound as u64 {
        return Err(corrupt(format!(
            "payload of {payload_len} bytes; {n_tokens} tokens take at most {bound}"
        )));
    }
    let payload_len = payload_len as usize;
    let needed = (HEADER + payload_len + TRAILER) as u64;
    if total < needed {
        return Err(truncated(needed));
    }
    if total > needed {
        return Err(corrupt(format!(
            "{} bytes after the end of the snapshot",
            total - needed
        )));
    }
    Ok(Header {
        dtype,
        sparse_mode,
        max_context,
        n_tokens: n,
        payload_len,
    })
}

/// The session `header` describes, from `body` (the payload and its hash).
fn read_body(model: Arc<Model>, h: &Header, body: &[u8]) -> Result<Session> {
    let (payload, hash) = body.split_at(h.payload_len);
    if hash64(payload) != u64::from_le_bytes(hash.try_into().expect("8 bytes")) {
        return Err(corrupt("payload checksum mismatch"));
    }
    let params = SessionParams::default()
        .with_max_context(Some(h.max_context))
        .with_sparse_mode(h.sparse_mode)
        .with_kv_dtype(h.dtype);
    let mut session = Session::new(model, &params)
        .map_err(|e| corrupt(format!("the snapshot's session cannot be made: {e}")))?;
    let mut rd = Reader::new(payload);
    let vocab = session.model.vocab_size();
    let raw = rd.take(
        h.n_tokens
            .checked_mul(4)
            .ok_or_else(|| corrupt("token count overflows"))?,
    )?;
    let mut tokens = Vec::with_capacity(h.n_tokens);
    for b in raw.chunks_exact(4) {
        let t = u32::from_le_bytes(b.try_into().expect("4 bytes"));
        if t as usize >= vocab {
            return Err(corrupt(format!(
                "token {t} outside the vocabulary of {vocab}"
            )));
        }
        tokens.push(t);
    }
    let n_layers = rd.u32()? as usize;
    if n_layers != session.cache.layers.len() {
        return Err(corrupt(format!(
            "{n_layers} layers; the model has {}",
            session.cache.layers.len()
        )));
    }
    for i in 0..n_layers {
        let layer = read_layer(&mut rd, &session.cache.layers[i], h.n_tokens, h.dtype, i)?;
        session.cache.layers[i] = layer;
    }
    if rd.remaining() != 0 {
        return Err(corrupt(format!(
            "{} payload bytes after the last layer",
            rd.remaining()
        )));
    }
    debug_assert_eq!(session.cache.len(), h.n_tokens);
    session.tokens = tokens;
    Ok(session)
}

impl Session {
    /// The session as bytes: its tokens, its options (maximum context, sparse mode, cache precision)
    /// and every cache table in its stored precision, under a versioned header with the model's
    /// fingerprint and checksums. [`Session::restore`] is the inverse.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(self.cache.bytes() + 4 * self.tokens.len() + 64);
        self.tokens
            .iter()
            .for_each(|t| payload.extend_from_slice(&t.to_le_bytes()));
        payload.extend_from_slice(&(self.cache.layers.len() as u32).to_le_bytes());
        for l in &self.cache.layers {
            write_layer(l, &mut payload);
        }
        let mut out = Vec::with_capacity(HEADER + payload.len() + TRAILER);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.push(self.kv_dtype().code());
        out.push(sparse_code(self.sparse_mode));
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.model.fingerprint().to_le_bytes());
        out.extend_from_slice(&(self.max_context as u64).to_le_bytes());
        out.extend_from_slice(&(self.tokens.len() as u64).to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        let h = hash64(&out);
        out.extend_from_slice(&h.to_le_bytes());
        out.extend_from_slice(&payload);
        out.extend_from_slice(&hash64(&payload).to_le_bytes());
        out
    }

    /// Writes [`snapshot`](Self::snapshot) to `path` (replacing it).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.snapshot()).map_err(|e| Error::io(path, e))
    }

    /// The session a [`snapshot`](Self::snapshot) holds, over `model`, which must be the model that
    /// made it; it continues with the logits the saved session would have produced. Errors:
    /// [`Error::SnapshotModelMismatch`] (another model), [`Error::SnapshotVersion`],
    /// [`Error::SnapshotTruncated`], [`Error::SnapshotCorrupt`] (checksums, or values that do not
    /// fit the model). Never allocates more than the bytes given.
    pub fn restore(model: Arc<Model>, bytes: &[u8]) -> Result<Session> {
        let head = &bytes[..bytes.len().min(HEADER)];
        let h = read_header(head, bytes.len() as u64, &model)?;
        read_body(model, &h, &bytes[HEADER..])
    }

    /// [`restore`](Self::restore) from a file [`save`](Self::save) wrote. The header is read and
    /// checked first, so the rest is read only when its length fits the model and the file.
    pub fn restore_file(model: Arc<Model>, path: impl AsRef<Path>) -> Result<Session> {
        let path = path.as_ref();
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let total = f.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut head = Vec::with_capacity(HEADER);
        (&mut f)
            .take(HEADER as u64)
            .read_to_end(&mut head)
            .map_err(|e| Error::io(path, e))?;
        // A file that shrank since its length was read is as long as what could be read.
        let total = if head.len() < HEADER {
            head.len() as u64
        } else {
            total
        };
        let h = read_header(&head, total, &model)?;
        // At most the file's own size (checked above against the header, whose lengths were checked
        // against the model); a failed reservation is an error, not an abort.
        let mut body = Vec::new();
        body.try_reserve_exact(h.payload_len + TRAILER)
            .map_err(|_| Error::io(path, std::io::ErrorKind::OutOfMemory.into()))?;
        f.take((h.payload_len + TRAILER) as u64)
            .read_to_end(&mut body)
            .map_err(|e| Error::io(path, e))?;
        if body.len() < h.payload_len + TRAILER {
            // The file shrank while it was read.
            return Err(Error::SnapshotTruncated {
                len: (HEADER + body.len()) as u64,
                needed: (HEADER + h.payload_len + TRAILER) as u64,
            });
        }
        read_body(model, &h, &body)
    }
}
