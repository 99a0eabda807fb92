//! # moe-core
//!
//! A CPU inference engine for Mixture-of-Experts language models that loads published Hugging Face
//! checkpoints (config.json + safetensors, sharded or not) directly, memory-mapped, with weights used
//! in their stored dtype.
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

pub mod attention;
pub mod cache;
pub mod config;
pub mod error;
pub mod generate;
pub mod kernels;
pub mod layers;
pub mod model;
pub mod moe;
pub mod sampler;
pub mod session;
pub mod text;
pub mod weights;

pub use attention::SparseMode;
pub use cache::KvCache;
pub use config::{Family, ModelConfig};
pub use error::{Error, Result};
pub use generate::{GenerateOptions, Generator};
pub use model::{LoadOptions, LogitsMode, Model};
pub use sampler::{argmax, Sampler, SamplerParams};
pub use session::{Session, SessionParams};

/// The crate version, from Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
