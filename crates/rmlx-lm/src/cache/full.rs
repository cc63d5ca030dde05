//! Full-precision cache of every position: preallocated in steps and written in place.

use super::{KvCache, KvView};
use rmlx_core::{concat, Array, DType, Result};

/// Capacity grows in steps of this many positions.
const STEP: usize = 256;

pub struct FullCache {
    dtype: DType,
    keys: Option<Array>,   // (B, Hkv, capacity, D)
    values: Option<Array>, // (B, Hkv, capacity, Dv)
    offset: usize,
}

impl FullCache {
    pub fn new(dtype: DType) -> Self {
        FullCache {
            dtype,
            keys: None,
            values: None,
            offset: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.dim(2))
    }

    /// Grows `buf` so it holds at least `need` positions (one copy per STEP positions).
    fn grow(buf: Option<Array>, like: &Array, need: usize, dtype: DType) -> Result<Array> {
        let (b, h, d) = (like.dim(0), like.dim(1), like.dim(3));
        let cap = need.div_ceil(STEP) * STEP;
        match buf {
            None => Array::zeros(&[b, h, cap, d], dtype),
            Some(old) => {
                let extra = Array::zeros(&[b, h, cap - old.dim(2), d], dtype)?;
                concat(&[old, extra], 2)
            }
        }
    }
}

impl KvCache for FullCache {
    fn update(&mut self, k: &Array, v: &Array) -> Result<KvView> {
        let t = k.dim(2);
        let end = self.offset + t;
        if end > self.capacity() {
            self.keys = Some(Self::grow(self.keys.take(), k, end, self.dtype)?);
            self.values = Some(Self::grow(self.values.take(), v, end, self.dtype)?);
        }
        let start = [0, 0, self.offset, 0];
        // Replace our handle so the update can reuse the buffer in place.
        let keys = self
            .keys
            .take()
            .expect("allocated")
            .slice_update(k, &start)?;
        let values = self
            .values
            .take()
            .expect("allocated")
            .slice_update(v, &start)?;
        self.keys = Some(keys.clone());
        self.values = Some(values.clone());
        self.offset = end;
        let pos: Vec<i32> = (0..end as i32).collect();
        Ok(KvView {
            keys: keys.slice_axis(2, 0, end)?,
            values: values.slice_axis(2, 0, end)?,
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
