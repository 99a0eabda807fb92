//! One error type for the whole engine. Every variant is something a caller can act on.

use std::path::PathBuf;

/// Result alias used throughout moe-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        #[source]
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A file or directory that must exist does not.
    #[error("not found: {0}")]
    NotFound(PathBuf),
    /// `config.json` is not valid JSON or a key has the wrong type.
    #[error("bad config {path}: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The config's values contradict each other or are out of range.
    #[error("inconsistent config: {0}")]
    InconsistentConfig(String),
    /// `architectures` / `model_type` names a family this engine does not run.
    #[error("unsupported architecture: {0}")]
    UnsupportedArchitecture(String),
    /// A safetensors file is truncated, corrupt or otherwise unreadable.
    #[error("bad safetensors file {path}: {message}")]
    Format {
        /// The safetensors file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint lacks a tensor the model needs.
    #[error("missing tensor: {0}")]
    MissingTensor(String),
    /// A tensor has the wrong shape.
    #[error("tensor {name}: expected shape {expected:?}, found {found:?}")]
    Shape {
        /// The tensor's full name.
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored in a dtype that cannot be used where it is needed.
    #[error("tensor {name}: unsupported dtype {found} (expected one of {expected})")]
    Dtype {
        /// The tensor's full name.
        name: String,
        /// The dtypes that would do.
        expected: String,
        /// The dtype in the file.
        found: String,
    },
    /// A token id is not smaller than the vocabulary size.
    #[error("token id {token} out of range (vocab size {vocab_size})")]
    TokenOutOfRange {
        /// The offending id.
        token: u32,
        /// The model's vocabulary size.
        vocab_size: usize,
    },
    /// A prompt with no tokens was given where at least one is needed.
    #[error("empty prompt")]
    EmptyPrompt,
    /// The session would grow past its maximum context.
    #[error("context full: {needed} tokens needed, maximum context is {max_context}")]
    ContextFull {
        /// Tokens the session would hold.
        needed: usize,
        /// The most it may hold.
        max_context: usize,
    },
    /// A request that cannot be honoured with the current state (e.g. truncating into an evicted window).
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// The caller's progress callback stopped the work; what was done is kept (a prefill's session
    /// holds the first `done` tokens).
    #[error("cancelled by the progress callback after {done} tokens")]
    Cancelled {
        /// Tokens processed before the cancellation.
        done: usize,
    },
    /// A batch step names sessions of different models: entry `index` runs another model than
    /// entry 0.
    #[error("batch entry {index} runs another model than entry 0")]
    MixedModels {
        /// The first entry whose model differs.
        index: usize,
    },
    /// A batch step names one session twice: entry `index` repeats an earlier entry (raised by
    /// the C and Python bindings, whose handles can alias).
    #[error("batch entry {index} repeats an earlier session")]
    DuplicateSession {
        /// The repeating entry.
        index: usize,
    },
    /// Tokenizer or chat-template problem.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// `quantization_config` asks for a scheme this engine does not implement (`what` names the key
    /// and value); raised while reading the config, before any weight is read.
    #[error("unsupported quantization: {what}")]
    UnsupportedQuantization {
        /// The key and value not implemented.
        what: String,
    },
    /// A session snapshot was made by a different model (its fingerprint: a hash of the config and
    /// the tensor table) than the one restoring it.
    #[error("snapshot of another model (fingerprint {found:016x}; this model is {expected:016x})")]
    SnapshotModelMismatch {
        /// The restoring model's fingerprint.
        expected: u64,
        /// The snapshot's.
        found: u64,
    },
    /// A session snapshot in a format version this build does not read.
    #[error("snapshot format version {found} (this build reads version {supported})")]
    SnapshotVersion {
        /// The snapshot's version.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// A session snapshot ends before its declared length.
    #[error("truncated snapshot: {len} bytes, {needed} needed")]
    SnapshotTruncated {
        /// Bytes present.
        len: u64,
        /// Bytes the snapshot needs (at least).
        needed: u64,
    },
    /// A session snapshot fails its checksums or holds values the model cannot take (bad magic,
    /// lengths or shapes that do not match the model, trailing bytes).
    #[error("corrupted snapshot: {0}")]
    SnapshotCorrupt(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound(path)
        } else {
            Error::Io { path, source }
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            message: message.into(),
        }
    }
}
