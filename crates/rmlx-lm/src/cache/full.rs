//! Cache of every position: preallocated in steps and written in place (dense or packed).
//!
//! Packed (quantized) caches store keys relative to a center μ, the mean of the keys of the
//! first update (the prompt) when it has at least `MIN_CENTER` positions. Softmax ignores a
//! per-query constant, so attention reads q·(k − μ) + q·μ exactly, while RoPE'd keys lose the
//! large per-channel offsets that would stretch every group's range. The first `HEAD`
//! positions also stay exact (f16, read instead of their packed rows): the first tokens draw
//! a large share of every query's attention (attention sinks), so their error weighs on all
//! outputs. The last `RECENT` positions stay exact too (a ring of f16 slots; the packed rows
//! of the positions that leave it are read instead): queries attend most to recent tokens.
//! Attention reads the exact slots first, then the packed positions HEAD..ring_lo, and
//! masks by the positions the view hands out. With the ring, a chunk's queries see the
//! exact rows of the chunk's last `RECENT` positions, so outputs depend slightly on how a
//! sequence is chunked (by the quantization error of the few keys in between).
//! docs/KV_CACHE.md has the evidence.

use super::{KvCache, KvView, Storage};
use rmlx_core::{concat, Array, DType, Result};

/// Capacity grows in steps of this many positions (the rotating cache's too, up to its window).
pub(super) const STEP: usize = 256;
/// Fewest positions of a first update whose keys' mean becomes the center (a lone first token
/// is often an outlier).
const MIN_CENTER: usize = 8;
/// Leading positions a packed cache keeps exact.
const HEAD: usize = 4;
/// Most recent positions a packed cache also keeps exact, in a ring after the head (KIVI's
/// full-precision residual). 48 keeps q4 within 0.31× the bytes of bf16 at 4k positions
/// (with f16 slots) at +1.9% perplexity (64: +1.6%, 32: +2.5%; docs/KV_CACHE.md).
const RECENT: usize = 48;
/// Exact slots are f16: far finer than the packed rows' steps, half the bytes of f32.
const EXACT: DType = DType::F16;

pub struct FullCache {
    storage: Storage,
    keys: Option<Array>,   // (B, Hkv, capacity, row width of D)
    values: Option<Array>, // (B, Hkv, capacity, row width of Dv)
    dims: (usize, usize),  // (D, Dv)
    offset: usize,
    /// Most positions the buffers may hold (the model's context): growth stops there.
    limit: usize,
    /// Packed storage: exact f16 rows (B, Hkv, HEAD + RECENT, D), (…, Dv): slot p holds
    /// position p < HEAD, slot HEAD + (p − HEAD) % RECENT a recent position p ≥ `ring_lo`.
    exact: Option<(Array, Array)>,
    /// Position held by each exact slot (−1: empty).
    exact_pos: Vec<i32>,
    /// Positions ring_lo..offset are all in the ring; HEAD..ring_lo are read packed.
    ring_lo: usize,
    /// Ring size (recent positions kept exact).
    recent: usize,
    /// Packed storage: the keys' center (B, Hkv, 1, D) f32, set by the first update.
    k_center: Option<Array>,
}

impl FullCache {
    pub fn new(dtype: DType) -> Self {
        Self::with_storage(Storage::Dense(dtype))
    }

    pub fn with_storage(storage: Storage) -> Self {
        Self::with_recent(storage, RECENT)
    }

    /// A cache whose packed storage keeps the last `recent` positions exact.
    pub fn with_recent(storage: Storage, recent: usize) -> Self {
        FullCache {
            storage,
            keys: None,
            values: None,
            dims: (0, 0),
            offset: 0,
            limit: usize::MAX,
            exact: None,
            exact_pos: Vec::new(),
            ring_lo: HEAD,
            recent,
            k_center: None,
        }
    }

    /// The same cache holding at most `limit` positions (buffers grow in steps up to it).
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Positions the buffers hold now.
    pub fn capacity(&self) -> usize {
        self.keys
            .as_ref()
            .map_or(0, |k| k.shape().get(2).copied().unwrap_or(0))
    }

    /// Grows `buf` so it holds at least `need` positions (one copy per STEP positions, never
    /// past the limit).
    fn grow(&self, buf: Option<Array>, value: bool, like: &Array, need: usize) -> Result<Array> {
        let (b, h, d) = (like.dim(0)?, like.dim(1)?, like.dim(3)?);
        let cap = (need.div_ceil(STEP) * STEP).min(self.limit);
        match buf {
            None => self.storage.buffer(value, b, h, cap, d),
            Some(old) => {
                let extra = self.storage.buffer(value, b, h, cap - old.dim(2)?, d)?;
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
        let end = start + k.dim(2)?;
        if end > self.limit {
            return Err(rmlx_core::Error::msg(format!(
                "kv cache: positions up to {end} exceed the cache's {} positions (the context)",
                self.limit
            )));
        }
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

    /// Packed storage: sets the center on the first update and writes the exact slots (the
    /// head, and the ring of recent positions) of new rows k, v at positions start...
    fn track_exact(&mut self, k: &Array, v: &Array, start: usize) -> Result<()> {
        let t = k.dim(2)?;
        if start == 0 && t >= MIN_CENTER {
            self.k_center = Some(k.astype(DType::F32)?.mean(&[2], true)?);
        }
        let (r, end) = (self.recent, start + t);
        let slots = HEAD + r;
        let slot = |p: usize| if p < HEAD { p } else { HEAD + (p - HEAD) % r };
        // Positions that go to an exact slot: the head's, and the last r of this update.
        let keep = |p: usize| p < HEAD || p + r >= end;
        let mut runs = Vec::new(); // (first position, count): consecutive positions and slots
        for p in (start..end).filter(|&p| keep(p)) {
            match runs.last_mut() {
                Some((p0, n)) if *p0 + *n == p && slot(p) == slot(*p0) + *n => *n += 1,
                _ => runs.push((p, 1)),
            }
        }
        self.ring_lo = self.ring_lo.max(end.saturating_sub(r)).max(HEAD);
        if runs.is_empty() {
            return Ok(());
        }
        let (b, h, d, dv) = (k.dim(0)?, k.dim(1)?, k.dim(3)?, v.dim(3)?);
        let (mut ek, mut ev) = match self.exact.take() {
            Some(e) => e,
            None => {
                self.exact_pos = vec![-1; slots];
                (
                    Array::zeros(&[b, h, slots, d], EXACT)?,
                    Array::zeros(&[b, h, slots, dv], EXACT)?,
                )
            }
        };
        for (p0, n) in runs {
            let at = [0, 0, slot(p0), 0];
            let rows = |x: &Array| x.slice_axis(2, p0 - start, p0 - start + n)?.astype(EXACT);
            ek = ek.slice_update(&rows(k)?, &at)?;
            ev = ev.slice_update(&rows(v)?, &at)?;
            for p in p0..p0 + n {
                self.exact_pos[slot(p)] = p as i32;
            }
        }
        self.exact = Some((ek, ev));
        self.forget_before_ring(end);
        Ok(())
    }

    /// Empties ring slots whose position is no longer in ring_lo..end (read packed instead).
    fn forget_before_ring(&mut self, end: usize) {
        let lo = self.ring_lo;
        for p in self.exact_pos.iter_mut().skip(HEAD) {
            if *p >= 0 && ((*p as usize) < lo || *p as usize >= end) {
                *p = -1;
            }
        }
    }

    /// Keys, values and key positions attention reads for positions 0..end.
    fn view(&self, end: usize) -> Result<(Array, Array, Vec<i32>)> {
        let (d, dv) = self.dims;
        let kc = self.k_center.as_ref();
        let (Some(kb), Some(vb)) = (&self.keys, &self.values) else {
            return Err(rmlx_core::Error::msg("kv cache: buffers missing"));
        };
        let Some((ek, ev)) = &self.exact else {
            let pos = (0..end as i32).collect();
            return Ok((kb.slice_axis(2, 0, end)?, vb.slice_axis(2, 0, end)?, pos));
        };
        // Exact slots first, then the packed positions HEAD..ring_lo.
        let packed_end = self.ring_lo.min(end);
        let mut pos = self.exact_pos.clone();
        if packed_end <= HEAD {
            return Ok((ek.astype(DType::F32)?, ev.astype(DType::F32)?, pos));
        }
        pos.extend(HEAD as i32..packed_end as i32);
        let kq = self
            .storage
            .decode(false, &kb.slice_axis(2, HEAD, packed_end)?, d, kc)?;
        let vq = self
            .storage
            .decode(true, &vb.slice_axis(2, HEAD, packed_end)?, dv, None)?;
        Ok((
            // Attention over a packed view reads the f16 rows itself (the widening is fused).
            concat(&[ek.astype(DType::F32)?, kq], 2)?,
            concat(&[ev.astype(DType::F32)?, vq], 2)?,
            pos,
        ))
    }
}

impl KvCache for FullCache {
    fn dense_dtype(&self) -> Option<DType> {
        match self.storage {
            Storage::Dense(t) => Some(t),
            Storage::Packed { .. } => None,
        }
    }

    fn update(&mut self, k: &Array, v: &Array) -> Result<KvView> {
        super::check_update(k, v)?;
        let end = self.offset + k.dim(2)?;
        self.dims = (k.dim(3)?, v.dim(3)?);
        if self.storage.is_packed() {
            if self.offset == 0 {
                self.reset();
            }
            self.track_exact(k, v, self.offset)?;
        }
        self.write(k, v, self.offset)?;
        self.offset = end;
        let (keys, values, pos) = self.view(end)?;
        Ok(KvView {
            keys,
            values,
            k_pos: Array::from_slice(&pos, &[pos.len()])?,
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
        // Positions past `len` are simply overwritten by the next update; exact slots past it
        // are emptied, and the ring keeps only the run of positions before len it still holds
        // (the rest are read packed). The center stays valid: any center is exact.
        if !self.can_truncate(len) {
            return false;
        }
        self.offset = len;
        if self.exact.is_some() {
            let r = self.recent;
            let mut lo = len.max(HEAD);
            while lo > HEAD
                && lo + r > len
                && self.exact_pos[HEAD + (lo - 1 - HEAD) % r] == lo as i32 - 1
            {
                lo -= 1;
            }
            self.ring_lo = lo;
            for p in self.exact_pos.iter_mut().take(HEAD) {
                if *p >= len as i32 {
                    *p = -1;
                }
            }
            self.forget_before_ring(len);
        }
        true
    }

    fn can_truncate(&self, len: usize) -> bool {
        len <= self.offset
    }

    fn reset(&mut self) {
        self.offset = 0;
        self.exact = None;
        self.exact_pos.clear();
        self.ring_lo = HEAD;
        self.k_center = None;
    }
}
