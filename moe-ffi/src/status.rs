//! `moe_status`: the result of every fallible call, and its mapping from engine errors.

use std::ffi::CStr;

/// The result of a call. `MOE_OK` is 0; every other value is an error whose details
/// `moe_last_error()` gives on the same thread. Values are stable: new ones are only appended.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum moe_status {
    /// Success.
    MOE_OK = 0,
    /// A required pointer argument was NULL.
    MOE_ERR_NULL_ARGUMENT = 1,
    /// A handle is not a live object of the expected kind (already freed, or of another type).
    MOE_ERR_INVALID_HANDLE = 2,
    /// An argument or parameter is out of range or contradicts the state of the object.
    MOE_ERR_INVALID_ARGUMENT = 3,
    /// A caller buffer has a length the call cannot use (e.g. logits_len is neither 0, vocab nor
    /// n_tokens * vocab).
    MOE_ERR_BUFFER_SIZE = 4,
    /// A bug inside the library was caught at the C boundary; the object involved may be unusable.
    MOE_ERR_PANIC = 5,
    /// A file or directory could not be read.
    MOE_ERR_IO = 6,
    /// A file or directory that must exist does not.
    MOE_ERR_NOT_FOUND = 7,
    /// config.json is not valid JSON or a key has the wrong type.
    MOE_ERR_CONFIG = 8,
    /// The config's values contradict each other or are out of range.
    MOE_ERR_INCONSISTENT_CONFIG = 9,
    /// The checkpoint's architecture is not one this engine runs.
    MOE_ERR_UNSUPPORTED_ARCHITECTURE = 10,
    /// A safetensors file is truncated, corrupt or otherwise unreadable.
    MOE_ERR_FORMAT = 11,
    /// The checkpoint lacks a tensor the model needs.
    MOE_ERR_MISSING_TENSOR = 12,
    /// A tensor has the wrong shape.
    MOE_ERR_SHAPE = 13,
    /// A tensor is stored in a dtype that cannot be used where it is needed.
    MOE_ERR_DTYPE = 14,
    /// A token id is not smaller than the vocabulary size.
    MOE_ERR_TOKEN_OUT_OF_RANGE = 15,
    /// A prompt with no tokens was given where at least one is needed.
    MOE_ERR_EMPTY_PROMPT = 16,
    /// The session would grow past its maximum context.
    MOE_ERR_CONTEXT_FULL = 17,
    /// Tokenizer or chat-template problem.
    MOE_ERR_TOKENIZER = 18,
    /// An engine error this version of the C API has no specific status for.
    MOE_ERR_OTHER = 19,
    /// A caller buffer is too short; the call wrote the size needed to its length out-parameter.
    MOE_ERR_BUFFER_TOO_SMALL = 20,
    /// The model directory has no tokenizer.json, so text cannot be encoded or decoded.
    MOE_ERR_NO_TOKENIZER = 21,
    /// The session is generating: called from inside its own generation callback.
    MOE_ERR_BUSY = 22,
    /// The checkpoint's `quantization_config` names a method, format, bit width or scheme the engine
    /// does not implement (nothing was loaded).
    MOE_ERR_UNSUPPORTED_QUANTIZATION = 23,
    /// A progress callback stopped the work (what was done is kept).
    MOE_ERR_CANCELLED = 24,
    /// A session snapshot was made by another model (its fingerprint differs).
    MOE_ERR_SNAPSHOT_MODEL_MISMATCH = 25,
    /// A session snapshot in a format version this library does not read.
    MOE_ERR_SNAPSHOT_VERSION = 26,
    /// A session snapshot ends before its declared length.
    MOE_ERR_SNAPSHOT_TRUNCATED = 27,
    /// A session snapshot fails its checksums or holds values the model cannot take.
    MOE_ERR_SNAPSHOT_CORRUPT = 28,
}

use moe_status::*;

/// Every status, in value order (for tests and `moe_status_str`).
pub const ALL_STATUSES: [moe_status; 29] = [
    MOE_OK,
    MOE_ERR_NULL_ARGUMENT,
    MOE_ERR_INVALID_HANDLE,
    MOE_ERR_INVALID_ARGUMENT,
    MOE_ERR_BUFFER_SIZE,
    MOE_ERR_PANIC,
    MOE_ERR_IO,
    MOE_ERR_NOT_FOUND,
    MOE_ERR_CONFIG,
    MOE_ERR_INCONSISTENT_CONFIG,
    MOE_ERR_UNSUPPORTED_ARCHITECTURE,
    MOE_ERR_FORMAT,
    MOE_ERR_MISSING_TENSOR,
    MOE_ERR_SHAPE,
    MOE_ERR_DTYPE,
    MOE_ERR_TOKEN_OUT_OF_RANGE,
    MOE_ERR_EMPTY_PROMPT,
    MOE_ERR_CONTEXT_FULL,
    MOE_ERR_TOKENIZER,
    MOE_ERR_OTHER,
    MOE_ERR_BUFFER_TOO_SMALL,
    MOE_ERR_NO_TOKENIZER,
    MOE_ERR_BUSY,
    MOE_ERR_UNSUPPORTED_QUANTIZATION,
    MOE_ERR_CANCELLED,
    MOE_ERR_SNAPSHOT_MODEL_MISMATCH,
    MOE_ERR_SNAPSHOT_VERSION,
    MOE_ERR_SNAPSHOT_TRUNCATED,
    MOE_ERR_SNAPSHOT_CORRUPT,
];

impl moe_status {
    /// The status for an engine error.
    pub fn of(e: &moe_core::Error) -> Self {
        use moe_core::Error as E;
        match e {
            E::Io { .. } => MOE_ERR_IO,
            E::NotFound(_) => MOE_ERR_NOT_FOUND,
            E::Config { .. } => MOE_ERR_CONFIG,
            E::InconsistentConfig(_) => MOE_ERR_INCONSISTENT_CONFIG,
            E::UnsupportedArchitecture(_) => MOE_ERR_UNSUPPORTED_ARCHITECTURE,
            E::Format { .. } => MOE_ERR_FORMAT,
            E::MissingTensor(_) => MOE_ERR_MISSING_TENSOR,
            E::Shape { .. } => MOE_ERR_SHAPE,
            E::Dtype { .. } => MOE_ERR_DTYPE,
            E::TokenOutOfRange { .. } => MOE_ERR_TOKEN_OUT_OF_RANGE,
            E::EmptyPrompt => MOE_ERR_EMPTY_PROMPT,
            E::ContextFull { .. } => MOE_ERR_CONTEXT_FULL,
            E::InvalidArgument(_) | E::MixedModels { .. } | E::DuplicateSession { .. } => {
                MOE_ERR_INVALID_ARGUMENT
            }
            E::Tokenizer(_) => MOE_ERR_TOKENIZER,
            E::UnsupportedQuantization { .. } => MOE_ERR_UNSUPPORTED_QUANTIZATION,
            E::Cancelled { .. } => MOE_ERR_CANCELLED,
            E::SnapshotModelMismatch { .. } => MOE_ERR_SNAPSHOT_MODEL_MISMATCH,
            E::SnapshotVersion { .. } => MOE_ERR_SNAPSHOT_VERSION,
            E::SnapshotTruncated { .. } => MOE_ERR_SNAPSHOT_TRUNCATED,
            E::SnapshotCorrupt(_) => MOE_ERR_SNAPSHOT_CORRUPT,
            _ => MOE_ERR_OTHER,
        }
    }

    /// A short static description, NUL-terminated.
    pub(crate) fn text(self) -> &'static CStr {
        match self {
            MOE_OK => c"ok",
            MOE_ERR_NULL_ARGUMENT => c"a required pointer argument was NULL",
            MOE_ERR_INVALID_HANDLE => c"not a live handle of the expected kind",
            MOE_ERR_INVALID_ARGUMENT => c"invalid argument",
            MOE_ERR_BUFFER_SIZE => c"buffer length not usable for this call",
            MOE_ERR_PANIC => c"internal error (panic caught at the C boundary)",
            MOE_ERR_IO => c"I/O error",
            MOE_ERR_NOT_FOUND => c"file or directory not found",
            MOE_ERR_CONFIG => c"bad config.json",
            MOE_ERR_INCONSISTENT_CONFIG => c"inconsistent config",
            MOE_ERR_UNSUPPORTED_ARCHITECTURE => c"unsupported architecture",
            MOE_ERR_FORMAT => c"bad safetensors file",
            MOE_ERR_MISSING_TENSOR => c"missing tensor",
            MOE_ERR_SHAPE => c"tensor has the wrong shape",
            MOE_ERR_DTYPE => c"tensor has an unsupported dtype",
            MOE_ERR_TOKEN_OUT_OF_RANGE => c"token id out of range",
            MOE_ERR_EMPTY_PROMPT => c"empty prompt",
            MOE_ERR_CONTEXT_FULL => c"context full",
            MOE_ERR_TOKENIZER => c"tokenizer error",
            MOE_ERR_OTHER => c"other engine error",
            MOE_ERR_BUFFER_TOO_SMALL => c"buffer too small (the size needed was written)",
            MOE_ERR_NO_TOKENIZER => c"the model has no tokenizer",
            MOE_ERR_BUSY => c"the session is busy generating",
            MOE_ERR_UNSUPPORTED_QUANTIZATION => c"unsupported quantization",
            MOE_ERR_CANCELLED => c"cancelled by the progress callback",
            MOE_ERR_SNAPSHOT_MODEL_MISMATCH => c"snapshot of another model",
            MOE_ERR_SNAPSHOT_VERSION => c"unsupported snapshot format version",
            MOE_ERR_SNAPSHOT_TRUNCATED => c"truncated snapshot",
            MOE_ERR_SNAPSHOT_CORRUPT => c"corrupted snapshot",
        }
    }
}

/// The raw integer a C caller passes where a `moe_status` is expected (any value may arrive; it is
/// checked before use). Shown as `moe_status` in the header.
#[allow(non_camel_case_types)]
pub type moe_status_arg = u32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_their_own_status() {
        let cases = [
            (moe_core::Error::EmptyPrompt, MOE_ERR_EMPTY_PROMPT),
            (
                moe_core::Error::TokenOutOfRange {
                    token: 9,
                    vocab_size: 4,
                },
                MOE_ERR_TOKEN_OUT_OF_RANGE,
            ),
            (moe_core::Error::NotFound("x".into()), MOE_ERR_NOT_FOUND),
            (
                moe_core::Error::InvalidArgument("x".into()),
                MOE_ERR_INVALID_ARGUMENT,
            ),
            (moe_core::Error::Tokenizer("x".into()), MOE_ERR_TOKENIZER),
            (
                moe_core::Error::SnapshotModelMismatch {
                    expected: 1,
                    found: 2,
                },
                MOE_ERR_SNAPSHOT_MODEL_MISMATCH,
            ),
            (
                moe_core::Error::SnapshotVersion {
                    found: 9,
                    supported: 1,
                },
                MOE_ERR_SNAPSHOT_VERSION,
            ),
            (
                moe_core::Error::SnapshotTruncated { len: 3, needed: 56 },
                MOE_ERR_SNAPSHOT_TRUNCATED,
            ),
            (
                moe_core::Error::SnapshotCorrupt("x".into()),
                MOE_ERR_SNAPSHOT_CORRUPT,
            ),
        ];
        for (e, s) in cases {
            assert_eq!(moe_status::of(&e), s, "{e}");
        }
    }
}
