//! A tensor view: bytes borrowed from a memory-mapped shard (or a small aligned copy), with dtype and shape.

use std::ops::Range;
use std::sync::Arc;

use super::DType;
use crate::error::{Error, Result};
use crate::kernels::FloatData;

/// Backing bytes of a tensor: the shard's memory map, or heap words (a copied shard, or an aligned
/// copy of one tensor the file placed at an offset its dtype cannot be read from in place) holding
/// `len` bytes.
#[derive(Clone)]
pub(crate) enum Storage {
    Mapped(Arc<memmap2::Mmap>),
    Heap(Arc<Vec<u64>>, usize),
}

impl Storage {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Heap(v, len) => &bytemuck::cast_slice(v.as_slice())[..*len],
        }
    }
}

/// One tensor of a checkpoint: name, dtype, shape and its bytes (zero-copy from the map).
#[derive(Clone)]
pub struct Tensor {
    pub(crate) name: Arc<str>,
    pub(crate) dtype: DType,
    pub(crate) shape: Vec<usize>,
    pub(crate) storage: Storage,
    pub(crate) range: Range<usize>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tensor")
            .field("name", &self.name)
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .finish()
    }
}

impl Tensor {
    /// Builds a view, copying the bytes to aligned memory only if the file misaligned them.
    pub(crate) fn new(
        name: &str,
        dtype: DType,
        shape: Vec<usize>,
        shard: &Storage,
        range: Range<usize>,
    ) -> Self {
        let bytes = shard.bytes();
        let aligned = (bytes.as_ptr() as usize + range.start).is_multiple_of(dtype.size());
        let (storage, range) = if aligned {
            (shard.clone(), range)
        } else {
            let len = range.len();
            let mut heap = vec![0u64; len.div_ceil(8)];
            bytemuck::cast_slice_mut::<u64, u8>(&mut heap)[..len].copy_from_slice(&bytes[range]);
            (Storage::Heap(Arc::new(heap), len), 0..len)
        };
        Tensor {
            name: name.into(),
            dtype,
            shape,
            storage,
            range,
        }
    }

    /// Builds a tensor that owns its f32 data (used for derived weights and tests).
    pub fn from_f32(name: &str, shape: Vec<usize>, data: &[f32]) -> Self {
        assert_eq!(shape.iter().product::<usize>(), data.len());
        let mut heap = vec![0u64; (data.len() * 4).div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut heap)[..data.len() * 4]
            .copy_from_slice(bytemuck::cast_slice(data));
        let len = data.len() * 4;
        Tensor {
            name: name.into(),
            dtype: DType::F32,
            shape,
            storage: Storage::Heap(Arc::new(heap), len),
            range: 0..len,
        }
    }

    /// Builds a tensor that owns a copy of `bytes` (derived weights: quantized codes and scales).
    pub(crate) fn from_bytes(name: &str, dtype: DType, shape: Vec<usize>, bytes: &[u8]) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>() * dtype.size(), bytes.len());
        let len = bytes.len();
        let mut heap = vec![0u64; len.div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut heap)[..len].copy_from_slice(bytes);
        Tensor {
            name: name.into(),
            dtype,
            shape,
            storage: Storage::Heap(Arc::new(heap), len),
            range: 0..len,
        }
    }

    /// The tensor's full name in the checkpoint.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stored dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements (the product of the dimensions).
    pub fn elem_count(&self) -> usize {
        self.shape.iter().product()
    }

    /// Raw bytes of the tensor.
    pub fn bytes(&self) -> &[u8] {
        &self.storage.bytes()[self.range.clone()]
    }

    /// Element data, for float dtypes the kernels compute with.
    pub fn float_data(&self) -> Result<FloatData<'_>> {
        let b = self.bytes();
        let bad = || Error::Dtype {
            name: self.name.to_string(),
            expected: "F32, F16 or BF16".into(),
            found: self.dtype.to_string(),
        };
        // Alignment was ensured in `Tensor::new`, so the casts cannot fail for these dtypes.
        Ok(match self.dtype {
            DType::F32 => FloatData::F32(bytemuck::try_cast_slice(b).map_err(|_| bad())?),
            DType::F16 => FloatData::F16(bytemuck::try_cast_slice(b).map_err(|_| bad())?),
            DType::BF16 => FloatData::BF16(bytemuck::try_cast_slice(b).map_err(|_| bad())?),
            _ => return Err(bad()),
        })
    }

    /// The whole tensor widened to f32 (for small tensors: norms, biases, routers' biases).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        let d = self.float_data()?;
        let mut out = vec![0.0; d.len()];
        d.widen_into(0..d.len(), &mut out);
        Ok(out)
    }

    /// Integer data as i64 (for reference files holding token ids).
    pub fn to_i64_vec(&self) -> Result<Vec<i64>> {
        let b = self.bytes();
        match self.dtype {
            DType::I64 => Ok(b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("chunk of 8")))
                .collect()),
            DType::I32 => Ok(b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().expect("chunk of 4")) as i64)
                .collect()),
            _ => Err(Error::Dtype {
                name: self.name.to_string(),
                expected: "I64 or I32".into(),
                found: self.dtype.to_string(),
            }),
        }
    }

    /// Entry `i` along the first dimension, as a tensor of one dimension fewer.
    pub fn index_first(&self, i: usize) -> Tensor {
        assert!(!self.shape.is_empty() && i < self.shape[0]);
        let inner: usize = self.shape[1..].iter().product::<usize>() * self.dtype.size();
        let start = self.range.start + i * inner;
        Tensor {
            name: self.name.clone(),
            dtype: self.dtype,
            shape: self.shape[1..].to_vec(),
            storage: self.storage.clone(),
            range: start..start + inner,
        }
    }

    /// Rows `rows` of a 2-D tensor (contiguous in memory).
    pub fn narrow_rows(&self, rows: Range<usize>) -> Tensor {
        assert!(self.shape.len() == 2 && rows.end <= self.shape[0]);
        let row_bytes = self.shape[1] * self.dtype.size();
        let start = self.range.start + rows.start * row_bytes;
        Tensor {
            name: self.name.clone(),
            dtype: self.dtype,
            shape: vec![rows.len(), self.shape[1]],
            storage: self.storage.clone(),
            range: start..start + rows.len() * row_bytes,
        }
    }

    /// Whether the bytes live in a memory map (zero-copy) rather than on the heap.
    pub fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped(_))
    }
}
