//! How a cache stores rows: dense in a float dtype, or packed by `KvQuant` (quantized on
//! write). Packed views are lazy `dequantize_kv` nodes that attention fuses into a
//! `QuantizedSdpa` reading the packed buffer in place (see `rmlx_core::ops::kv_quant`).

use super::CacheKind;
use rmlx_core::primitive::KvQuant;
use rmlx_core::{Array, DType, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    Dense(DType),
    Packed { k: KvQuant, v: KvQuant },
}

const fn q(bits: u8, group: usize) -> KvQuant {
    KvQuant {
        bits,
        group,
        rotate: ROTATE,
    }
}

/// Whether packed kinds store Hadamard-rotated rows (docs/KV_CACHE.md has the evidence).
const ROTATE: bool = true;

/// Groups shrink to the head dim for small heads.
fn shrink(s: KvQuant, d: usize) -> KvQuant {
    KvQuant {
        group: s.group.min(d),
        ..s
    }
}

impl Storage {
    /// The storage of each `--kv-cache` kind (docs/KV_CACHE.md says why these groups).
    pub fn of(kind: CacheKind) -> Storage {
        match kind {
            CacheKind::F32 => Storage::Dense(DType::F32),
            CacheKind::Bf16 => Storage::Dense(DType::BF16),
            CacheKind::F16 => Storage::Dense(DType::F16),
            CacheKind::Q8 => Storage::Packed {
                k: q(8, 32),
                v: q(8, 32),
            },
            CacheKind::Q4 => Storage::Packed {
                k: q(4, 32),
                v: q(4, 64),
            },
            CacheKind::K8V4 => Storage::Packed {
                k: q(8, 32),
                v: q(4, 64),
            },
        }
    }

    /// The spec for rows of `d` values.
    fn spec(&self, value: bool, d: usize) -> Option<KvQuant> {
        match *self {
            Storage::Dense(_) => None,
            Storage::Packed { k, v } => Some(shrink(if value { v } else { k }, d)),
        }
    }

    /// Width of one stored row of `d` values.
    pub fn row_width(&self, value: bool, d: usize) -> usize {
        self.spec(value, d).map_or(d, |s| s.row_bytes(d))
    }

    /// An empty buffer (B, H, cap, stored row width).
    pub fn buffer(&self, value: bool, b: usize, h: usize, cap: usize, d: usize) -> Result<Array> {
        let dtype = match *self {
            Storage::Dense(t) => t,
            Storage::Packed { .. } => DType::U8,
        };
        Array::zeros(&[b, h, cap, self.row_width(value, d)], dtype)
    }

    pub fn is_packed(&self) -> bool {
        matches!(self, Storage::Packed { .. })
    }

    /// New rows x (B, H, T, d) as stored (cast, or quantized relative to `center`).
    pub fn encode(&self, value: bool, x: &Array, center: Option<&Array>) -> Result<Array> {
        match *self {
            Storage::Dense(t) => x.astype(t),
            Storage::Packed { k, v } => {
                let spec = shrink(if value { v } else { k }, x.dim(-1)?);
                match center {
                    Some(c) => x.astype(DType::F32)?.sub(c)?.quantize_kv(spec),
                    None => x.quantize_kv(spec),
                }
            }
        }
    }

    /// What attention reads from stored rows of `d` values.
    pub fn decode(
        &self,
        value: bool,
        stored: &Array,
        d: usize,
        center: Option<&Array>,
    ) -> Result<Array> {
        match (self.spec(value, d), center) {
            (None, _) => Ok(stored.clone()),
            (Some(s), Some(c)) => stored.dequantize_kv_centered(s, d, c),
            (Some(s), None) => stored.dequantize_kv(s, d),
        }
    }
}
