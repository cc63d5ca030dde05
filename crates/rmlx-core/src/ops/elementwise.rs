//! Elementwise ops: unary math, binary arithmetic and comparisons with broadcasting and type
//! promotion, `where`, dtype casts.

use crate::array::Array;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::primitive::{BinaryOp, Primitive, UnaryOp};
use crate::shape::broadcast_shapes;
use crate::Device;

macro_rules! unary_methods {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl Array {
            $(pub fn $name(&self) -> Result<Array> { self.unary(UnaryOp::$op) })*
        }
    };
}

unary_methods!(
    neg => Neg, abs => Abs, exp => Exp, log => Log, sqrt => Sqrt, rsqrt => Rsqrt,
    square => Square, recip => Recip, sin => Sin, cos => Cos, tanh => Tanh,
    sigmoid => Sigmoid, silu => Silu, gelu => Gelu, gelu_tanh => GeluTanh,
    floor => Floor, ceil => Ceil, round => Round, erf => Erf,
);

macro_rules! binary_methods {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl Array {
            $(pub fn $name(&self, other: &Array) -> Result<Array> { self.binary(BinaryOp::$op, other) })*
        }
    };
}

binary_methods!(
    add => Add, sub => Sub, mul => Mul, div => Div, maximum => Maximum, minimum => Minimum,
    pow => Pow, eq => Eq, ne => Ne, lt => Lt, le => Le, gt => Gt, ge => Ge,
    logical_and => LogicalAnd, logical_or => LogicalOr,
);

impl Array {
    /// silu(gate) · up for x = [gate | up] along the last axis (…, 2n) → (…, n): the gated MLP
    /// of Llama, Qwen and Mistral, one node and one pass instead of two slices, silu and mul.
    pub fn swiglu(&self) -> Result<Array> {
        let mut shape = self.shape().to_vec();
        match shape.last_mut() {
            Some(w) if *w % 2 == 0 && self.dtype().is_float() => *w /= 2,
            _ => {
                return Err(Error::shape(format!(
                "swiglu: expected a float array whose last axis has an even size, found {} {:?}",
                self.dtype(),
                self.shape()
            )))
            }
        }
        Ok(Array::new_op(
            Primitive::Swiglu,
            vec![self.clone()],
            shape,
            self.dtype(),
        ))
    }

    pub fn unary(&self, op: UnaryOp) -> Result<Array> {
        let out_dtype = match op {
            UnaryOp::LogicalNot => DType::Bool,
            UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Square => self.dtype(),
            _ if self.dtype().is_float() => self.dtype(),
            _ => DType::F32,
        };
        let x = if out_dtype.is_float() && !self.dtype().is_float() {
            self.astype(out_dtype)?
        } else {
            self.clone()
        };
        Ok(Array::new_op(
            Primitive::Unary(op),
            vec![x],
            self.shape().to_vec(),
            out_dtype,
        ))
    }

    pub fn logical_not(&self) -> Result<Array> {
        self.unary(UnaryOp::LogicalNot)
    }

    pub fn binary(&self, op: BinaryOp, other: &Array) -> Result<Array> {
        let shape = broadcast_shapes(self.shape(), other.shape())
            .map_err(|e| e.context(format!("{op:?}").to_lowercase()))?;
        let dtype = DType::promote(self.dtype(), other.dtype());
        let a = self.astype(dtype)?;
        let b = other.astype(dtype)?;
        let out_dtype = if op.is_comparison() {
            DType::Bool
        } else {
            dtype
        };
        Ok(Array::new_op(
            Primitive::Binary(op),
            vec![a, b],
            shape,
            out_dtype,
        ))
    }

    /// Binary op with a scalar, keeping this array's dtype (`x * 0.5` stays bf16).
    pub fn binary_scalar(&self, op: BinaryOp, v: f32) -> Result<Array> {
        let s = Array::full(&[], v, self.dtype())?;
        self.binary(op, &s)
    }

    pub fn add_scalar(&self, v: f32) -> Result<Array> {
        self.binary_scalar(BinaryOp::Add, v)
    }

    pub fn mul_scalar(&self, v: f32) -> Result<Array> {
        self.binary_scalar(BinaryOp::Mul, v)
    }

    /// Elementwise clamp to [lo, hi] (either side optional).
    pub fn clip(&self, lo: Option<f32>, hi: Option<f32>) -> Result<Array> {
        let mut x = self.clone();
        if let Some(lo) = lo {
            x = x.binary_scalar(BinaryOp::Maximum, lo)?;
        }
        if let Some(hi) = hi {
            x = x.binary_scalar(BinaryOp::Minimum, hi)?;
        }
        Ok(x)
    }

    /// select(cond, a, b): `self` is the condition.
    pub fn where_(&self, a: &Array, b: &Array) -> Result<Array> {
        let shape = broadcast_shapes(self.shape(), a.shape())
            .and_then(|s| broadcast_shapes(&s, b.shape()))
            .map_err(|e| e.context("where"))?;
        let dtype = DType::promote(a.dtype(), b.dtype());
        let cond = self.astype(DType::Bool)?;
        Ok(Array::new_op(
            Primitive::Where,
            vec![cond, a.astype(dtype)?, b.astype(dtype)?],
            shape,
            dtype,
        ))
    }

    pub fn astype(&self, dtype: DType) -> Result<Array> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        Ok(Array::new_op(
            Primitive::AsType(dtype),
            vec![self.clone()],
            self.shape().to_vec(),
            dtype,
        ))
    }

    /// The array on `device`; a no-op if it is already there.
    pub fn to_device(&self, device: Device) -> Result<Array> {
        if device == self.device() {
            return Ok(self.clone());
        }
        Ok(Array::from_node(
            self.shape().to_vec(),
            self.dtype(),
            device,
            crate::array::State::Pending {
                prim: Primitive::ToDevice(device),
                inputs: vec![self.clone()],
            },
        ))
    }

    /// A scalar of this array's dtype.
    pub fn scalar_like(&self, v: f32) -> Result<Array> {
        Array::full(&[], v, self.dtype())
    }
}

/// Checks that an array has the expected dtype, naming `op`.
pub(crate) fn expect_dtype(op: &str, what: &str, a: &Array, dtypes: &[DType]) -> Result<()> {
    if dtypes.contains(&a.dtype()) {
        return Ok(());
    }
    Err(Error::dtype(format!(
        "{op}: expected {what} of dtype {}, found {}",
        dtypes
            .iter()
            .map(|d| d.name())
            .collect::<Vec<_>>()
            .join("|"),
        a.dtype()
    )))
}
