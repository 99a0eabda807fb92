//! Borrowed float element data in a weight's stored dtype (f32, f16 or bf16), widened to f32 on use.

use std::ops::Range;

use half::{bf16, f16};

/// Typed, borrowed element data of a float tensor.
#[derive(Clone, Copy)]
pub enum FloatData<'a> {
    /// f32 elements.
    F32(&'a [f32]),
    /// f16 elements.
    F16(&'a [f16]),
    /// bf16 elements.
    BF16(&'a [bf16]),
}

impl FloatData<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            FloatData::F32(s) => s.len(),
            FloatData::F16(s) => s.len(),
            FloatData::BF16(s) => s.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` widened to f32.
    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        match self {
            FloatData::F32(s) => s[i],
            FloatData::F16(s) => s[i].to_f32(),
            FloatData::BF16(s) => s[i].to_f32(),
        }
    }

    /// Elements `range` widened into `out` (same length).
    pub fn widen_into(&self, range: Range<usize>, out: &mut [f32]) {
        match self {
            FloatData::F32(s) => out.copy_from_slice(&s[range]),
            FloatData::F16(s) => {
                for (o, v) in out.iter_mut().zip(&s[range]) {
                    *o = v.to_f32();
                }
            }
            FloatData::BF16(s) => {
                // A bf16 is the high half of its f32: a shift, which vectorises (NaNs stay NaNs).
                for (o, v) in out.iter_mut().zip(&s[range]) {
                    *o = f32::from_bits((v.to_bits() as u32) << 16);
                }
            }
        }
    }

    /// The sub-slice `range`.
    pub fn slice(&self, range: Range<usize>) -> Self {
        match *self {
            FloatData::F32(s) => FloatData::F32(&s[range]),
            FloatData::F16(s) => FloatData::F16(&s[range]),
            FloatData::BF16(s) => FloatData::BF16(&s[range]),
        }
    }
}
