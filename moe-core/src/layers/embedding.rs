//! Token embedding lookup from a `[V, H]` table kept in its stored dtype.

use crate::error::Result;
use crate::weights::{Tensor, WeightSource};

#[derive(Debug, Clone)]
pub(crate) struct Embedding {
    pub weight: Tensor,
    pub hidden: usize,
}

impl Embedding {
    pub(crate) fn load(
        src: &WeightSource,
        name: &str,
        vocab: usize,
        hidden: usize,
    ) -> Result<Self> {
        Ok(Embedding {
            weight: src.pp(name).get("weight", &[vocab, hidden])?,
            hidden,
        })
    }

    /// `x[T, H]` = rows of the table (ids were checked against the vocabulary by the caller).
    pub(crate) fn forward(&self, ids: &[u32]) -> Vec<f32> {
        let data = self.weight.float_data().expect("dtype checked at load");
        let mut x = vec![0.0; ids.len() * self.hidden];
        for (row, &id) in x.chunks_exact_mut(self.hidden).zip(ids) {
            let start = id as usize * self.hidden;
            data.widen_into(start..start + self.hidden, row);
        }
        x
    }
}
