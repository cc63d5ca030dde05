//! Cache of every position: preallocated in steps and written in place (dense or packed).

use super::{KvCache, KvView, Storage};
use rmlx_core::{concat, Array, DType, Result};

/// Capacity grows in steps of this many positions.
const STEP: usize = 256;

pub struct FullCache {
    storage: Storage,
    keys: Option<Array>,   // (B, Hkv, capacity, row width of D)
    values: Option<Array>, // (B, Hkv, capacity, row width of Dv)
    dims: (usize, usize),  // (D, Dv)
    offset: usize,
}

impl FullCache {
    pub fn new(dtype: DType) -> Self {
        Self::with_storage(Storage::Dense(dtype))
    }

    pub fn with_storage(storage: Storage) -> Self {
        FullCache {
            storage,
            keys: None,
            values: None,
            dims: (0, 0),
            offset: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.dim(2))
    }

    /// Grows `buf` so it holds at least `need` positions (one copy per STEP positions).
    fn grow(&self, buf: Option<Array>, value: bool, like: &Array, need: usize) -> Result<Array> {
        let (b, h, d) = (like.dim(0), like.dim(1), like.dim(3));
        let cap = need.div_ceil(STEP) * STEP;
        match buf {
            None => self.storage.buffer(value, b, h, cap, d),
            Some(old) => {
                let extra = self.storage.buffer(value, b, h, cap - old.dim(2), d)?;
                concat(&[old, extra], 2)
            }
        }
    }
}

impl KvCache for FullCache {
    fn update(&mut self, k: &Array, v: &Array) -> Result<KvView> {
        let t = k.dim(2);
        let end = self.offset + t;
        self.dims = (k.dim(3), v.dim(3));
        let (ke, ve) = (
            self.storage.encode(false, k)?,
            self.storage.encode(true, v)?,
        );
        if end > self.capacity() {
            let (kb, vb) = (self.keys.take(), self.values.take());
            self.keys = Some(self.grow(kb, false, k, end)?);
            self.values = Some(self.grow(vb, true, v, end)?);
        }
        let start = [0, 0, self.offset, 0];
        // Replace our handle so the update can reuse the buffer in place.
        let (keys, values) = match (self.keys.take(), self.values.take()) {
            (Some(kb), Some(vb)) => (kb.slice_update(&ke, &start)?, vb.slice_update(&ve, &start)?),
            _ => {
                return Err(rmlx_core::Error::msg(
                    "kv cache: buffers missing after grow",
                ))
            }
        };
        self.keys = Some(keys.clone());
        self.values = Some(values.clone());
        self.offset = end;
        let pos: Vec<i32> = (0..end as i32).collect();
        Ok(KvView {
            keys: self
                .storage
                .decode(false, &keys.slice_axis(2, 0, end)?, self.dims.0)?,
            values: self
                .storage
                .decode(true, &values.slice_axis(2, 0, end)?, self.dims.1)?,
            k_pos: Array::from_slice(&pos, &[end])?,
        })
    }

    fn offset(&self) -> usize {
        self.offset
    }

    fn nbytes(&self) -> usize {
        self.keys.as_ref().map_or(0, |a| a.nbytes())
            + self.values.as_ref().map_or(0, |a| a.nbytes())
    }

    fn bytes_per_token(&self) -> usize {
        self.nbytes() / self.capacity().max(1)
    }

    fn truncate(&mut self, len: usize) -> bool {
        // Positions past `len` are simply overwritten by the next update.
        if !self.can_truncate(len) {
            return false;
        }
        self.offset = len;
        true
    }

    fn can_truncate(&self, len: usize) -> bool {
        len <= self.offset
    }

    fn reset(&mut self) {
        self.offset = 0;
    }
}
