//! Building blocks shared by every family: linear, embedding, norms, RoPE, MLP.

mod embedding;
pub mod fp8;
mod linear;
mod mlp;
mod norm;
pub(crate) mod packed;
pub mod rope;

pub use embedding::Embedding;
pub use linear::{Linear, Orientation};
pub use mlp::{swiglu, Mlp};
pub use norm::{LayerNorm, RmsNorm};
pub use rope::Rope;
