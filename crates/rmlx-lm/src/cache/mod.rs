//! KV caches, one protocol for every kind: `update` appends the new keys/values of a chunk and
//! returns what attention should read plus the position of every key slot (negative = empty),
//! so masks are built from positions whatever the slot order (rotating caches).

mod full;
mod rotating;

pub use full::FullCache;
pub use rotating::RotatingCache;

use rmlx_core::{Array, Result};

/// What attention reads after an update.
pub struct KvView {
    /// (B, Hkv, Tk, D)
    pub keys: Array,
    /// (B, Hkv, Tk, Dv)
    pub values: Array,
    /// (Tk) i32 position of each key slot; negative for empty slots.
    pub k_pos: Array,
}

pub trait KvCache: Send {
    /// Appends k, v (B, Hkv, T, D) at positions offset..offset+T.
    fn update(&mut self, k: &Array, v: &Array) -> Result<KvView>;
    /// Tokens seen so far (the position of the next token).
    fn offset(&self) -> usize;
    /// Bytes held by the cache buffers.
    fn nbytes(&self) -> usize;
    /// Forget everything (a new conversation).
    fn reset(&mut self);
}

/// The per-layer caches of a model.
pub struct ModelCache {
    pub layers: Vec<Box<dyn KvCache>>,
}

impl ModelCache {
    pub fn offset(&self) -> usize {
        self.layers.first().map_or(0, |c| c.offset())
    }

    pub fn nbytes(&self) -> usize {
        self.layers.iter().map(|c| c.nbytes()).sum()
    }

    pub fn reset(&mut self) {
        self.layers.iter_mut().for_each(|c| c.reset());
    }
}
