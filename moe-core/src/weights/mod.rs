//! Memory-mapped checkpoint tensors, borrowed in their stored dtype.

mod checkpoint;
mod dtype;
mod source;
mod tensor;

pub use checkpoint::Checkpoint;
pub(crate) use checkpoint::Residence;
pub use dtype::DType;
pub(crate) use source::WeightSource;
pub use tensor::Tensor;

pub use checkpoint::read_safetensors_file;
