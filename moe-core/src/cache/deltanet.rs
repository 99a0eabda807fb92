//! Gated DeltaNet state (Qwen3.5's linear-attention layers): the last `K-1` inputs of the causal
//! convolution and one `[dk, dv]` recurrent state per value head. Its size is constant whatever the
//! context, and it cannot be rewound: truncating to an earlier position (other than 0) is refused.

use super::KvCache;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub(crate) struct DeltaNetCache {
    /// `[K-1, conv_dim]`: the convolution's inputs at positions `len-K+1 .. len` (zeros before 0).
    pub conv: Vec<f32>,
    /// `[nv, dk, dv]`: the recurrent state of each value head.
    pub state: Vec<f32>,
    conv_values: usize,
    state_values: usize,
    len: usize,
}

impl DeltaNetCache {
    /// An empty state for `conv_values` convolution inputs and `state_values` recurrent values;
    /// nothing is allocated until the first token.
    pub(crate) fn new(conv_values: usize, state_values: usize) -> Self {
        DeltaNetCache {
            conv: Vec::new(),
            state: Vec::new(),
            conv_values,
            state_values,
            len: 0,
        }
    }

    /// Allocates the zero state before the first token.
    pub(crate) fn ensure(&mut self) {
        if self.conv.len() != self.conv_values {
            self.conv = vec![0.0; self.conv_values];
        }
        if self.state.len() != self.state_values {
            self.state = vec![0.0; self.state_values];
        }
    }

    /// The values of the convolution inputs and of the recurrent state once allocated.
    pub(crate) fn sizes(&self) -> (usize, usize) {
        (self.conv_values, self.state_values)
    }

    /// This state after `len` positions (restoring a snapshot): `conv` and `state` are empty or
    /// of [`sizes`](Self::sizes).
    pub(crate) fn restore(&mut self, conv: Vec<f32>, state: Vec<f32>, len: usize) {
        debug_assert!(conv.is_empty() || conv.len() == self.conv_values);
        debug_assert!(state.is_empty() || state.len() == self.state_values);
        self.conv = conv;
        self.state = state;
        self.len = len;
    }

    /// Records that `n` more positions went through the state.
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }

    /// Bytes of the state once a token went through (constant).
    pub(crate) fn fixed_bytes(&self) -> usize {
        (self.conv_values + self.state_values) * std::mem::size_of::<f32>()
    }

    pub(crate) fn check_truncate(&self, len: usize) -> Result<()> {
        if len != 0 && len < self.len {
            return Err(Error::InvalidArgument(format!(
                "cannot truncate to {len} tokens: a linear-attention layer keeps only the recurrent \
                 state after {} tokens, which cannot be rewound (truncate to 0 or reset)",
                self.len
            )));
        }
        Ok(())
    }
}

impl KvCache for DeltaNetCache {
    fn len(&self) -> usize {
        self.len
    }

    fn truncate(&mut self, len: usize) -> Result<()> {
        self.check_truncate(len)?;
        if len == 0 {
            self.clear();
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.conv = Vec::new();
        self.state = Vec::new();
        self.len = 0;
    }

    fn bytes(&self) -> usize {
        (self.conv.len() + self.state.len()) * std::mem::size_of::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_size_and_no_rewind() {
        let mut c = DeltaNetCache::new(6, 10);
        assert_eq!(c.bytes(), 0);
        c.ensure();
        c.advance(5);
        assert_eq!(c.bytes(), 64);
        c.advance(100);
        assert_eq!(c.bytes(), c.fixed_bytes());
        assert!(c.truncate(3).is_err());
        assert_eq!(c.len(), 105);
        c.truncate(200).unwrap();
        c.truncate(0).unwrap();
        assert_eq!((c.len(), c.bytes()), (0, 0));
    }
}
