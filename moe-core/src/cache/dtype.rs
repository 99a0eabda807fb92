//! The precision a session's caches store their rows in.

use crate::error::{Error, Result};

/// How KV-cache rows are stored. Every cache kind (GQA K/V, MLA latent and rope key, DSA indexer
/// keys) uses the session's choice; attention computes in f32, reading f32 and bf16 MLA/indexer
/// rows as stored (bf16 rows go to the bf16 kernels) and decoding the rest block by block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum KvDType {
    /// 4 bytes a value, exact (the default).
    #[default]
    F32,
    /// 2 bytes a value: bf16, rounded to nearest even.
    Bf16,
    /// 1 byte a value plus one f32 scale a row: `x ≈ q · scale`, `scale = max|row| / 127`.
    Int8,
}

impl KvDType {
    /// Every precision, in code order.
    pub const ALL: [KvDType; 3] = [KvDType::F32, KvDType::Bf16, KvDType::Int8];

    /// The name `parse` accepts: `f32`, `bf16` or `int8`.
    pub fn name(self) -> &'static str {
        match self {
            KvDType::F32 => "f32",
            KvDType::Bf16 => "bf16",
            KvDType::Int8 => "int8",
        }
    }

    /// `f32`, `bf16` or `int8` (case-insensitive); anything else is an [`Error::InvalidArgument`].
    pub fn parse(s: &str) -> Result<Self> {
        KvDType::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::InvalidArgument(format!("unknown KV cache dtype {s:?} (f32, bf16 or int8)"))
            })
    }

    /// Bytes one row of `width` values takes.
    pub fn row_bytes(self, width: usize) -> usize {
        match self {
            KvDType::F32 => 4 * width,
            KvDType::Bf16 => 2 * width,
            KvDType::Int8 => width + 4,
        }
    }

    /// The code snapshots store.
    pub(crate) fn code(self) -> u8 {
        match self {
            KvDType::F32 => 0,
            KvDType::Bf16 => 1,
            KvDType::Int8 => 2,
        }
    }

    /// The precision of a snapshot code.
    pub(crate) fn from_code(c: u8) -> Option<Self> {
        KvDType::ALL.into_iter().find(|d| d.code() == c)
    }
}

impl std::fmt::Display for KvDType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
