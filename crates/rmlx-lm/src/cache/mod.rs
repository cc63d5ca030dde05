//! KV caches, one protocol for every kind: `update` appends the new keys/values of a chunk and
//! returns what attention should read plus the position of every key slot (negative = empty),
//! so masks are built from positions whatever the slot order (rotating caches).

mod full;
mod rotating;
mod storage;

pub use full::FullCache;
pub use rotating::RotatingCache;
pub use storage::Storage;

use rmlx_core::{Array, DType, Error, Result};
use std::str::FromStr;

/// How keys and values are stored (`--kv-cache`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CacheKind {
    /// Exact: what the reference comparisons use.
    #[default]
    F32,
    Bf16,
    F16,
    /// 8-bit keys and values (groups of 32, f16 scale + min): 0.56× the bytes of bf16.
    Q8,
    /// 4-bit keys (groups of 32) and values (groups of 64): 0.30× the bytes of bf16 per token
    /// (plus a fixed exact head and ring of recent positions).
    Q4,
    /// 8-bit keys, 4-bit values: 0.42× the bytes of bf16.
    K8V4,
}

impl CacheKind {
    /// Every kind, exact first.
    pub const ALL: [CacheKind; 6] = [
        CacheKind::F32,
        CacheKind::Bf16,
        CacheKind::F16,
        CacheKind::Q8,
        CacheKind::Q4,
        CacheKind::K8V4,
    ];
}

impl FromStr for CacheKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "f32" => CacheKind::F32,
            "bf16" => CacheKind::Bf16,
            "f16" => CacheKind::F16,
            "q8" => CacheKind::Q8,
            "q4" => CacheKind::Q4,
            "k8v4" => CacheKind::K8V4,
            other => {
                return Err(Error::msg(format!(
                    "kv cache: expected f32, bf16, f16, q8, q4 or k8v4, found `{other}`"
                )))
            }
        })
    }
}

/// A layer's cache of `kind` holding at most `context` positions (the model's context); `window`
/// makes it a rotating sliding-window cache. A window wider than the context needs only
/// `context` slots: positions never differ by more than that.
pub fn layer_cache(
    kind: CacheKind,
    window: Option<usize>,
    context: usize,
) -> Result<Box<dyn KvCache>> {
    let storage = Storage::of(kind);
    if context == 0 {
        return Err(Error::msg(
            "kv cache: expected a context of at least 1 position, found 0",
        ));
    }
    Ok(match window {
        Some(0) => {
            return Err(Error::msg(
                "kv cache: expected a sliding window of at least 1 position, found 0",
            ))
        }
        Some(w) => Box::new(RotatingCache::with_storage(w.min(context), storage)),
        None => Box::new(FullCache::with_storage(storage).with_limit(context)),
    })
}

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
    /// Bytes one cached position takes (keys + values, scales included); 0 before first use.
    fn bytes_per_token(&self) -> usize;
    /// Forget everything (a new conversation).
    fn reset(&mut self);
    /// Keep only the first `len` positions, if this cache still holds what that needs;
    /// returns false (and changes nothing) otherwise.
    fn truncate(&mut self, len: usize) -> bool;
    /// Whether `truncate(len)` would succeed.
    fn can_truncate(&self, len: usize) -> bool;
    /// The dtype rows are stored in when they are stored as given (dense storage): rows
    /// already of it are written without a conversion. None for packed storage.
    fn dense_dtype(&self) -> Option<DType> {
        None
    }
}

/// Checks an update's k (B, H, T, D) and v (B, H, T, Dv) before a cache touches them (rows
/// that do not fit the cached ones are then an error of the write itself).
pub(crate) fn check_update(k: &Array, v: &Array) -> Result<()> {
    let (ks, vs) = (k.shape(), v.shape());
    if ks.len() != 4 || vs.len() != 4 || ks[..3] != vs[..3] {
        return Err(Error::shape(format!(
            "kv cache: expected k (B, H, T, D) and v (B, H, T, Dv), found {ks:?} and {vs:?}"
        )));
    }
    Ok(())
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

    /// Bytes per cached position over all layers (`kv_bytes_per_token` in `rmlx bench`).
    pub fn bytes_per_token(&self) -> usize {
        self.layers.iter().map(|c| c.bytes_per_token()).sum()
    }

    pub fn reset(&mut self) {
        self.layers.iter_mut().for_each(|c| c.reset());
    }

    /// Rewinds every layer to `len` positions, or returns false if some layer cannot (a
    /// rotating cache has evicted what it would need); then the caller starts over.
    pub fn truncate(&mut self, len: usize) -> bool {
        if !self.can_truncate(len) {
            return false;
        }
        self.layers.iter_mut().all(|c| c.truncate(len))
    }

    /// Whether `truncate(len)` would succeed.
    pub fn can_truncate(&self, len: usize) -> bool {
        self.layers.iter().all(|c| c.can_truncate(len))
    }
}
