//! Cache of every position: preallocated in steps and written in place (dense or packed).
//!
//! Packed (quantized) caches store keys relative to a center μ, the mean of the keys of the
//! first update (the prompt) when it has at least `MIN_CENTER` positions. Softmax ignores a
//! per-query constant, so attention reads q·(k − μ) + q·μ exactly, while RoPE'd keys lose the
//! large per-channel offsets that would stretch every group's range. The first `HEAD`
//! positions also stay exact (f32, read instead of their packed rows): the first tokens draw
//! a large share of every query's attention (attention sinks), so their error weighs on all
//! outputs. docs/KV_CACHE.md has the evidence.

use super::{KvCache, KvView, Storage};
use rmlx_core::{concat, Array, DType, Result};

/// Capacity grows in steps of this many positions.
const STEP: usize = 256;
/// Fewest positions of a first update whose keys' mean becomes the center (a lone first token
/// is often an outlier).
const MIN_CENTER: usize = 8;
/// Leading positions a packed cache keeps exact.
const HEAD: usize = 4;

pub struct FullCache {
    storage: Storage,
    keys: Option<Array>,   // (B, Hkv, capacity, row width of D)
    values: Option<Array>, // (B, Hkv, capacity, row width of Dv)
    dims: (usize, usize),  // (D, Dv)
    offset: usize,
    /// Packed storage: exact f32 rows (B, Hkv, n, D), (…, Dv) of positions 0..n, n ≤ `HEAD`.
    exact: Option<(Array, Array)>,
    /// Packed storage: the keys' center (B, Hkv, 1, D) f32, set by the first update.
    k_center: Option<Array>,
}

/// An owned f32 copy of positions a..b of x (B, H, T, D): a view would keep x's buffer alive.
fn own_rows(x: &Array, a: usize, b: usize) -> Result<Array> {
    let r = x.slice_axis(2, a, b)?.astype(DType::F32)?;
    Array::from_slice(&r.to_vec::<f32>()?, r.shape())
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
            exact: None,
            k_center: None,
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

    /// Writes rows k, v (B, H, T, D) at positions start.. into the buffers.
    fn write(&mut self, k: &Array, v: &Array, start: usize) -> Result<()> {
        let kc = self.k_center.as_ref();
        let (ke, ve) = (
            self.storage.encode(false, k, kc)?,
            self.storage.encode(true, v, None)?,
        );
        let end = start + k.dim(2);
        if end > self.capacity() {
            let (kb, vb) = (self.keys.take(), self.values.take());
            self.keys = Some(self.grow(kb, false, k, end)?);
            self.values = Some(self.grow(vb, true, v, end)?);
        }
        let at = [0, 0, start, 0];
        // Replace our handle so the update can reuse the buffer in place.
        match (self.keys.take(), self.values.take()) {
            (Some(kb), Some(vb)) => {
                self.keys = Some(kb.slice_update(&ke, &at)?);
                self.values = Some(vb.slice_update(&ve, &at)?);
                Ok(())
            }
            _ => Err(rmlx_core::Error::msg(
                "kv cache: buffers missing after grow",
            )),
        }
    }

    /// Packed storage: sets the center on the first update and keeps the head's rows exact.
    fn track_head(&mut self, k: &Array, v: &Array) -> Result<()> {
        let t = k.dim(2);
        if self.offset == 0 && t >= MIN_CENTER {
            self.k_center = Some(k.astype(DType::F32)?.mean(&[2], true)?);
        }
        let n = HEAD.saturating_sub(self.offset).min(t);
        if n > 0 {
            let (nk, nv) = (own_rows(k, 0, n)?, own_rows(v, 0, n)?);
            self.exact = Some(match self.exact.take() {
                Some((ek, ev)) => (concat(&[ek, nk], 2)?, concat(&[ev, nv], 2)?),
                None => (nk, nv),
            });
        }
        Ok(())
    }

    fn view(&self, end: usize) -> Result<(Array, Array)> {
        let (d, dv) = self.dims;
        let kc = self.k_center.as_ref();
        let packed = |a: usize| -> Result<(Array, Array)> {
            let (Some(kb), Some(vb)) = (&self.keys, &self.values) else {
                return Err(rmlx_core::Error::msg("kv cache: buffers missing"));
            };
            Ok((
                self.storage
                    .decode(false, &kb.slice_axis(2, a, end)?, d, kc)?,
                self.storage
                    .decode(true, &vb.slice_axis(2, a, end)?, dv, None)?,
            ))
        };
        match &self.exact {
            // Slots 0..n from the exact rows, the rest from the packed ones.
            Some((ek, ev)) if ek.dim(2) >= end => Ok((ek.clone(), ev.clone())),
            Some((ek, ev)) => {
                let (kq, vq) = packed(ek.dim(2))?;
                Ok((concat(&[ek.clone(), kq], 2)?, concat(&[ev.clone(), vq], 2)?))
            }
            None => packed(0),
        }
    }
}

impl KvCache for FullCache {
    fn update(&mut self, k: &Array, v: &Array) -> Result<KvView> {
        let end = self.offset + k.dim(2);
        self.dims = (k.dim(3), v.dim(3));
        if self.storage.is_packed() {
            if self.offset == 0 {
                self.reset();
            }
            self.track_head(k, v)?;
        }
        self.write(k, v, self.offset)?;
        self.offset = end;
        let pos: Vec<i32> = (0..end as i32).collect();
        let (keys, values) = self.view(end)?;
        Ok(KvView {
            keys,
            values,
            k_pos: Array::from_slice(&pos, &[end])?,
        })
    }

    fn offset(&self) -> usize {
        self.offset
    }

    fn nbytes(&self) -> usize {
        let exact = self
            .exact
            .as_ref()
            .map_or(0, |(k, v)| k.nbytes() + v.nbytes());
        self.keys.as_ref().map_or(0, |a| a.nbytes())
            + self.values.as_ref().map_or(0, |a| a.nbytes())
            + exact
    }

    fn bytes_per_token(&self) -> usize {
        self.nbytes() / self.capacity().max(1)
    }

    fn truncate(&mut self, len: usize) -> bool {
        // Positions past `len` are simply overwritten by the next update; exact rows past it
        // would shadow them, so they go (the center stays valid: any center is exact).
        if !self.can_truncate(len) {
            return false;
        }
        self.offset = len;
        if let Some((ek, ev)) = self.exact.take() {
            let n = ek.dim(2).min(len);
            if n > 0 {
                match (ek.slice_axis(2, 0, n), ev.slice_axis(2, 0, n)) {
                    (Ok(k), Ok(v)) => self.exact = Some((k, v)),
                    _ => return false,
                }
            }
        }
        true
    }

    fn can_truncate(&self, len: usize) -> bool {
        len <= self.offset
    }

    fn reset(&mut self) {
        self.offset = 0;
        self.exact = None;
        self.k_center = None;
    }
}
