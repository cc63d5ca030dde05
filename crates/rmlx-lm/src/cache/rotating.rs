//! Sliding-window cache: holds only the last `window` positions, slot = position % window, so
//! memory does not grow with the context. A multi-token chunk attends over the old window plus
//! the whole chunk; the mask (from positions) keeps each query inside its own window. Works the
//! same dense or packed: rows are encoded once and both the view and the slots use them.

use super::{KvCache, KvView, Storage};
use rmlx_core::{concat, Array, DType, Result};

pub struct RotatingCache {
    window: usize,
    storage: Storage,
    keys: Option<Array>,   // (B, Hkv, window, row width of D)
    values: Option<Array>, // (B, Hkv, window, row width of Dv)
    /// Position held by each slot, -1 if empty.
    slot_pos: Vec<i32>,
    offset: usize,
}

impl RotatingCache {
    pub fn new(window: usize, dtype: DType) -> Self {
        Self::with_storage(window, Storage::Dense(dtype))
    }

    pub fn with_storage(window: usize, storage: Storage) -> Self {
        RotatingCache {
            window,
            storage,
            keys: None,
            values: None,
            slot_pos: vec![-1; window],
            offset: 0,
        }
    }

    /// Writes positions offset+first.. of encoded rows `x` (B, H, T, W) into their slots (at
    /// most 2 runs).
    fn write(&self, buf: Array, x: &Array, first: usize) -> Result<Array> {
        let t = x.dim(2)?;
        let mut buf = buf;
        let mut i = first;
        while i < t {
            let slot = (self.offset + i) % self.window;
            let run = (self.window - slot).min(t - i);
            buf = buf.slice_update(&x.slice_axis(2, i, i + run)?, &[0, 0, slot, 0])?;
            i += run;
        }
        Ok(buf)
    }
}

impl KvCache for RotatingCache {
    fn update(&mut self, k: &Array, v: &Array) -> Result<KvView> {
        super::check_update(k, v)?;
        let t = k.dim(2)?;
        let (b, h, d, dv) = (k.dim(0)?, k.dim(1)?, k.dim(3)?, v.dim(3)?);
        let st = self.storage;
        let keys = match self.keys.take() {
            Some(a) => a,
            None => st.buffer(false, b, h, self.window, d)?,
        };
        let values = match self.values.take() {
            Some(a) => a,
            None => st.buffer(true, b, h, self.window, dv)?,
        };
        // No exact head or key center here: the first positions leave the window anyway.
        let (ke, ve) = (st.encode(false, k, None)?, st.encode(true, v, None)?);
        let new_pos: Vec<i32> = (self.offset..self.offset + t).map(|p| p as i32).collect();
        let view = if t == 1 {
            // Decode: write first, then attend over the window (it holds the new token).
            let keys = self.write(keys, &ke, 0)?;
            let values = self.write(values, &ve, 0)?;
            self.slot_pos[self.offset % self.window] = self.offset as i32;
            self.keys = Some(keys.clone());
            self.values = Some(values.clone());
            KvView {
                keys: st.decode(false, &keys, d, None)?,
                values: st.decode(true, &values, dv, None)?,
                k_pos: Array::from_slice(&self.slot_pos, &[self.window])?,
            }
        } else {
            // Prefill chunk: attend over [old window | chunk], then keep the last `window`.
            let mut pos = self.slot_pos.clone();
            pos.extend(&new_pos);
            let view = KvView {
                keys: st.decode(false, &concat(&[keys.clone(), ke.clone()], 2)?, d, None)?,
                values: st.decode(true, &concat(&[values.clone(), ve.clone()], 2)?, dv, None)?,
                k_pos: Array::from_slice(&pos, &[pos.len()])?,
            };
            let first = t.saturating_sub(self.window);
            self.keys = Some(self.write(keys, &ke, first)?);
            self.values = Some(self.write(values, &ve, first)?);
            for p in self.offset + first..self.offset + t {
                self.slot_pos[p % self.window] = p as i32;
            }
            view
        };
        self.offset += t;
        Ok(view)
    }

    fn offset(&self) -> usize {
        self.offset
    }

    fn nbytes(&self) -> usize {
        self.keys.as_ref().map_or(0, |a| a.nbytes())
            + self.values.as_ref().map_or(0, |a| a.nbytes())
    }

    fn bytes_per_token(&self) -> usize {
        self.nbytes() / self.window.max(1)
    }

    fn truncate(&mut self, len: usize) -> bool {
        if !self.can_truncate(len) {
            return false;
        }
        for p in self.slot_pos.iter_mut().filter(|p| **p >= len as i32) {
            *p = -1;
        }
        self.offset = len;
        true
    }

    /// The next query (position `len`) reads positions len − window + 1 .. len − 1; the slots
    /// hold offset − window .. offset − 1. Rewinding works while nothing it needs was evicted:
    /// always before the cache wraps (offset ≤ window), after that only by a position.
    fn can_truncate(&self, len: usize) -> bool {
        let oldest_needed = (len + 1).saturating_sub(self.window);
        let oldest_held = self.offset.saturating_sub(self.window);
        len <= self.offset && oldest_needed >= oldest_held
    }

    fn reset(&mut self) {
        self.offset = 0;
        self.slot_pos.iter_mut().for_each(|p| *p = -1);
    }
}
