//! Sliding-window cache: holds only the last `window` positions, slot = position % window, so
//! memory does not grow with the context. A multi-token chunk attends over the old window plus
//! the whole chunk; the mask (from positions) keeps each query inside its own window. Works the
//! same dense or packed: rows are encoded once and both the view and the slots use them.
//! Buffers grow in steps, as the full cache's do, until they hold the window: before the first
//! wrap slot = position, so growing moves nothing, and a window from a config (which may be far
//! longer than any conversation, or hostile) costs only the positions actually seen.

use super::full::STEP;
use super::{KvCache, KvView, Storage};
use rmlx_core::{concat, Array, DType, Result};

pub struct RotatingCache {
    window: usize,
    storage: Storage,
    keys: Option<Array>, // (B, Hkv, capacity, row width of D); capacity <= window
    values: Option<Array>, // (B, Hkv, capacity, row width of Dv)
    /// Position held by each slot of the capacity, -1 if empty.
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
            slot_pos: Vec::new(),
            offset: 0,
        }
    }

    /// `buf` (None before the first update) with room for `cap` positions.
    fn grown(&self, buf: Option<Array>, value: bool, like: &Array, cap: usize) -> Result<Array> {
        let (b, h, d) = (like.dim(0)?, like.dim(1)?, like.dim(3)?);
        match buf {
            None => self.storage.buffer(value, b, h, cap, d),
            Some(old) if old.dim(2)? >= cap => Ok(old),
            Some(old) => {
                let extra = self.storage.buffer(value, b, h, cap - old.dim(2)?, d)?;
                concat(&[old, extra], 2)
            }
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
    fn dense_dtype(&self) -> Option<DType> {
        match self.storage {
            Storage::Dense(t) => Some(t),
            Storage::Packed { .. } => None,
        }
    }

    fn update(&mut self, k: &Array, v: &Array) -> Result<KvView> {
        super::check_update(k, v)?;
        let t = k.dim(2)?;
        let (d, dv) = (k.dim(3)?, v.dim(3)?);
        let st = self.storage;
        // Room for every position written so far and now, up to the whole window.
        let need = (self.offset + t).min(self.window);
        let cap = if need > self.slot_pos.len() || self.keys.is_none() {
            (need.div_ceil(STEP) * STEP).min(self.window)
        } else {
            self.slot_pos.len()
        };
        self.slot_pos.resize(cap, -1);
        let (old_keys, old_values) = (self.keys.take(), self.values.take());
        let keys = self.grown(old_keys, false, k, cap)?;
        let values = self.grown(old_values, true, v, cap)?;
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
                k_pos: Array::from_slice(&self.slot_pos, &[self.slot_pos.len()])?,
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
        self.nbytes() / self.slot_pos.len().max(1)
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
