//! The closed set of primitives. Every backend matches every variant with no wildcard arm, so a
//! missing kernel is an explicit "not implemented on this device" error.

use crate::device::Device;
use crate::dtype::DType;
use crate::quant::QuantFormat;
use crate::shape::Shape;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Abs,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Square,
    Recip,
    Sin,
    Cos,
    Tanh,
    Sigmoid,
    Silu,
    /// GELU with erf.
    Gelu,
    /// GELU, tanh approximation.
    GeluTanh,
    Floor,
    Ceil,
    Round,
    LogicalNot,
    /// The error function (so GELU and friends can be written out and fused by `compile`).
    Erf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    LogicalAnd,
    LogicalOr,
}

impl BinaryOp {
    pub fn is_comparison(self) -> bool {
        use BinaryOp::*;
        matches!(self, Eq | Ne | Lt | Le | Gt | Ge | LogicalAnd | LogicalOr)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
    Prod,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgReduceOp {
    ArgMax,
    ArgMin,
}

/// Which pairs of a head's dimensions RoPE rotates together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RopeLayout {
    /// (x[2i], x[2i+1]): GPT-J / Meta's original, MLX `traditional=True`.
    Interleaved,
    /// (x[i], x[i + d/2]): GPT-NeoX / Hugging Face `rotate_half`.
    HalfSplit,
}

/// How a quantized KV cache packs one head row of `d` values: per group of `group` values an
/// affine code `x ≈ scale · n + min` with `bits`-bit unsigned n. A row is `d·bits/8` code bytes
/// followed by `d/group` f16 scales and `d/group` f16 mins (see `ops::kv_quant`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KvQuant {
    /// 4 or 8.
    pub bits: u8,
    /// Values per scale/min pair; a multiple of 16 that divides the head dim.
    pub group: usize,
    /// Rows are stored rotated by a fixed orthonormal randomized Hadamard transform (spreads
    /// outlier channels over the row before grouping); attention rotates q / the output instead.
    pub rotate: bool,
}

impl KvQuant {
    /// Bytes of one packed row of `d` values, scales included.
    pub fn row_bytes(self, d: usize) -> usize {
        d * self.bits as usize / 8 + (d / self.group) * 4
    }
}

/// A user-defined primitive: the escape hatch of the closed enum. Two handles are the same op
/// when they point at the same object (what `compile`'s common-subexpression merge needs).
#[derive(Clone)]
pub struct CustomRef(pub Arc<dyn CustomOp>);

impl PartialEq for CustomRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for CustomRef {
    type Target = dyn CustomOp;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

/// User-defined primitive: the escape hatch of the closed enum.
pub trait CustomOp: Send + Sync {
    fn name(&self) -> &str;
    /// CPU implementation over evaluated host inputs.
    fn eval_cpu(
        &self,
        inputs: &[crate::backend::Arg],
        out_shape: &[usize],
        out_dtype: DType,
    ) -> crate::Result<crate::array::Data>;
}

/// Equality is `compile`'s equivalence: the same computation given the same inputs.
#[derive(Clone, PartialEq)]
pub enum Primitive {
    // --- elementwise ---
    AsType(DType),
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// select(cond, a, b)
    Where,

    // --- reductions ---
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
    },
    ArgReduce {
        op: ArgReduceOp,
        axis: usize,
    },
    /// Softmax over the last axis, computed in f32.
    Softmax,
    /// silu(x[…, :n]) · x[…, n:] for x (…, 2n): the gated MLP's activation in one pass.
    Swiglu,
    /// log(sum(exp(x))) over the last axis, computed in f32.
    LogSumExp,
    /// Indices (u32) of the k largest values along the last axis, largest first.
    TopK {
        k: usize,
    },

    // --- views (no copy where strides allow) ---
    Reshape(Shape),
    Transpose(Vec<usize>),
    Slice {
        start: Vec<usize>,
        stop: Vec<usize>,
        step: Vec<usize>,
    },
    BroadcastTo(Shape),
    /// Materializes a row-major copy.
    Contiguous,
    ToDevice(Device),

    // --- data movement ---
    Concat {
        axis: usize,
    },
    /// inputs [dst, src]: dst with src written at `start` (unit steps); in place when dst's
    /// buffer is not shared.
    SliceUpdate {
        start: Vec<usize>,
    },
    /// inputs [x, idx]: x indexed along `axis` by idx; the axis is replaced by idx's shape.
    Take {
        axis: usize,
    },
    /// inputs [x, idx]: idx has x's shape except along `axis` (numpy take_along_axis).
    TakeAlongAxis {
        axis: usize,
    },

    // --- linear algebra ---
    /// inputs [a (…, M, K), b (…, K, N)]; batch dims broadcast. Transposed operands are views.
    Matmul,
    /// inputs [x (…, K), w, extra…]: x · Wᵀ with W (N, K) stored in `format`.
    QuantizedMatmul {
        format: QuantFormat,
        n: usize,
        k: usize,
    },
    /// inputs [x (…, K), w (E, …), extra…, idx (…, top_k) u32]: for each row of x and each of its
    /// selected experts e, x · W[e]ᵀ. Output (…, top_k, N). x may also be (…, top_k, K).
    GatherQmm {
        format: QuantFormat,
        n: usize,
        k: usize,
    },
    /// inputs [w, extra…, idx]: rows of a quantized table (embeddings), dequantized to the
    /// output dtype. Output idx.shape + (k,).
    QuantizedTake {
        format: QuantFormat,
        k: usize,
    },

    // --- fast fused ops (each also has a composed fallback in ops/) ---
    /// inputs [x (…, D), weight (D)]
    RmsNorm {
        eps: f32,
    },
    /// inputs [x (B, H, T, D), inv_freq (dims/2) f32, positions (T) i32]: rotates the first
    /// `dims` of D; cos/sin scaled by `mscale` (YaRN's attention factor).
    Rope {
        layout: RopeLayout,
        dims: usize,
        mscale: f32,
    },
    /// inputs [q (B, Hq, Tq, D), k (B, Hkv, Tk, D), v (B, Hkv, Tk, Dv), q_pos (Tq) i32,
    /// k_pos (Tk) i32, sinks (Hq)?]. Key j is visible to query i iff 0 <= k_pos[j] <= q_pos[i]
    /// and, with a window, q_pos[i] - k_pos[j] < window. Negative k_pos marks an empty slot.
    /// With sinks, one extra logit per head joins the softmax and is dropped.
    ScaledDotProductAttention {
        scale: f32,
        window: Option<usize>,
        has_sinks: bool,
    },

    /// inputs [x (…, D) float] → (…, row_bytes) u8: each row quantized as `KvQuant` says.
    QuantizeKv(KvQuant),
    /// inputs [packed (B, H, T, row_bytes) u8, center (B, H, 1, dim) f32 if `centered`] →
    /// (B, H, T, dim) f32: the reference dequantizer (plus the center the rows were stored
    /// relative to).
    DequantizeKv {
        centered: bool,
        spec: KvQuant,
        dim: usize,
    },
    /// As `ScaledDotProductAttention`, with k and v packed rows (B, Hkv, Tk, row_bytes) u8
    /// read in place; inputs [q, k, v, q_pos, k_pos, sinks?, k_center (B, Hkv, 1, D) f32?,
    /// k_head (B, Hkv, head, D) f32 and v_head (B, Hkv, head, Dv) f32 if head > 0]: key slots
    /// 0..head are the exact head rows, the packed rows follow (see `ops::kv_quant::PackedKv`).
    QuantizedSdpa {
        k_centered: bool,
        head: usize,
        scale: f32,
        window: Option<usize>,
        has_sinks: bool,
        k: KvQuant,
        v: KvQuant,
    },

    /// A run of elementwise ops fused by `compile` into one pass (`compile::FusedKernel`):
    /// inputs are the run's external inputs, broadcast to the output's shape.
    Compiled(Arc<crate::compile::FusedKernel>),

    Custom(CustomRef),
}

impl Primitive {
    pub fn name(&self) -> String {
        match self {
            Primitive::AsType(d) => format!("astype({d})"),
            Primitive::Unary(op) => format!("{op:?}").to_lowercase(),
            Primitive::Binary(op) => format!("{op:?}").to_lowercase(),
            Primitive::Where => "where".into(),
            Primitive::Reduce { op, .. } => format!("reduce_{op:?}").to_lowercase(),
            Primitive::ArgReduce { op, .. } => format!("{op:?}").to_lowercase(),
            Primitive::Softmax => "softmax".into(),
            Primitive::Swiglu => "swiglu".into(),
            Primitive::LogSumExp => "logsumexp".into(),
            Primitive::TopK { .. } => "topk".into(),
            Primitive::Reshape(_) => "reshape".into(),
            Primitive::Transpose(_) => "transpose".into(),
            Primitive::Slice { .. } => "slice".into(),
            Primitive::BroadcastTo(_) => "broadcast_to".into(),
            Primitive::Contiguous => "contiguous".into(),
            Primitive::ToDevice(d) => format!("to_device({d})"),
            Primitive::Concat { .. } => "concat".into(),
            Primitive::SliceUpdate { .. } => "slice_update".into(),
            Primitive::Take { .. } => "take".into(),
            Primitive::TakeAlongAxis { .. } => "take_along_axis".into(),
            Primitive::Matmul => "matmul".into(),
            Primitive::QuantizedMatmul { format, .. } => format!("quantized_matmul({format})"),
            Primitive::GatherQmm { format, .. } => format!("gather_qmm({format})"),
            Primitive::QuantizedTake { format, .. } => format!("quantized_take({format})"),
            Primitive::RmsNorm { .. } => "rms_norm".into(),
            Primitive::Rope { .. } => "rope".into(),
            Primitive::ScaledDotProductAttention { .. } => "scaled_dot_product_attention".into(),
            Primitive::QuantizeKv(q) => format!("quantize_kv(q{})", q.bits),
            Primitive::DequantizeKv { spec, .. } => format!("dequantize_kv(q{})", spec.bits),
            Primitive::QuantizedSdpa { k, v, .. } => {
                format!("quantized_sdpa(k{}v{})", k.bits, v.bits)
            }
            Primitive::Compiled(k) => format!("compiled({})", k.len()),
            Primitive::Custom(c) => c.name().to_string(),
        }
    }

    /// Elementwise primitives are what `compile` fuses.
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Primitive::AsType(_) | Primitive::Unary(_) | Primitive::Binary(_) | Primitive::Where
        )
    }

    /// Views produce a new strided description of their input's buffer, without a kernel.
    pub fn is_view(&self) -> bool {
        matches!(
            self,
            Primitive::Reshape(_)
                | Primitive::Transpose(_)
                | Primitive::Slice { .. }
                | Primitive::BroadcastTo(_)
        )
    }
}

impl std::fmt::Debug for Primitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}
