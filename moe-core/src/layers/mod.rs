//! Building blocks shared by every family: linear, embedding, norms, MLP.

mod embedding;
mod fp8;
mod linear;
mod mlp;
mod norm;
pub(crate) mod packed;

pub(crate) use embedding::Embedding;
pub use fp8::decode_e4m3;
pub(crate) use linear::{Linear, Orientation};
pub(crate) use mlp::{swiglu, Mlp};
pub(crate) use norm::{LayerNorm, RmsNorm};
