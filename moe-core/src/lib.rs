//! # moe-core
//!
//! A CPU inference engine for Mixture-of-Experts language models that loads published Hugging Face
//! checkpoints (config.json + safetensors, sharded or not) directly, memory-mapped, with weights used
//! in their stored dtype.
//!
//! The supported API is what the crate root re-exports, plus the read-only [`config`] types that
//! describe a loaded model. `docs/design.md` lists it and the layers behind it.
//!
//! ```no_run
//! use std::sync::Arc;
//! use moe_core::{LogitsMode, Model, Session, SessionParams};
//! let model = Arc::new(Model::load("path/to/checkpoint")?);
//! let mut session = Session::new(model, &SessionParams::default())?;
//! let logits = session.prefill(&[1, 2, 3], LogitsMode::Last)?;
//! let next = moe_core::argmax(&logits) as u32;
//! let _logits = session.decode(next)?;
//! # Ok::<(), moe_core::Error>(())
//! ```

// Layers, lowest first (docs/design.md; `tools/check_layers.py` rejects upward imports):
// error → kernels → rope → weights → sampler → config → layers → cache → attention, moe → model →
// session → generate; text (tokenizer, templates, streaming) sits beside config and below model.
#![warn(unreachable_pub, missing_docs)]

mod attention;
mod cache;
pub mod config;
mod error;
mod export;
mod fidelity;
mod generate;
mod hash;
mod kernels;
mod layers;
mod model;
mod moe;
mod rope;
mod sampler;
mod session;
#[cfg(feature = "text")]
mod text;
mod weights;

#[doc(hidden)]
pub mod internals;

pub use attention::SparseMode;
pub use cache::KvDType;
pub use config::quantize::{QuantizeOptions, QuantizeScope, DEFAULT_GROUP_SIZE};
pub use config::{Family, GenerationConfig, ModelConfig};
pub use error::{Error, Result};
pub use export::{quantize_checkpoint, QuantizeSummary};
pub use fidelity::{fidelity, Fidelity};
pub use generate::{FinishReason, GenerateOptions, Generator, DEFAULT_MAX_NEW_TOKENS};
#[cfg(feature = "text")]
pub use generate::{TextGenerator, TextOptions};
pub use kernels::Precision;
pub use model::{ComputeOptions, LoadOptions, LogitsMode, MemoryEstimate, Model};
/// The n-dimensional arrays of the batch API ([`Session::decode_batch`] returns an `Array2`).
pub use ndarray;
pub use sampler::{argmax, Sampler, SamplerParams};
pub use session::{Session, SessionParams, SNAPSHOT_VERSION};
#[cfg(feature = "text")]
pub use text::{ChatMessage, StopMatcher, StreamDecoder, Tokenizer};

// docs/rust.md's examples run as doctests, so the guide cannot drift from the API.
#[cfg(all(doctest, feature = "text"))]
#[doc = include_str!("../../docs/rust.md")]
struct RustGuide;

/// The crate version, from Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
