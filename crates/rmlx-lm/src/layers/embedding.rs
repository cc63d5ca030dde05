//! Token embeddings (plain or quantized table), usable as a tied output head.

use crate::weights::Tensor;
use rmlx_core::{Array, DType, Result};

#[derive(Clone)]
pub struct Embedding {
    pub table: Tensor,
}

impl Embedding {
    /// (T) token ids → (T, H) in `dtype`.
    pub fn forward(&self, ids: &Array, dtype: DType) -> Result<Array> {
        match &self.table {
            Tensor::Dense(t) => t.take(ids, 0)?.astype(dtype),
            Tensor::Quantized(q) => q.take_rows(ids)?.astype(dtype),
        }
    }
}
