//! Matrix products.

use crate::array::Array;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::primitive::Primitive;
use crate::shape::broadcast_shapes;

impl Array {
    /// Batched matmul with numpy semantics: (…, M, K) @ (…, K, N) → (…, M, N); 1-D operands
    /// are promoted to matrices and the added axis removed again.
    pub fn matmul(&self, other: &Array) -> Result<Array> {
        if self.ndim() == 0 || other.ndim() == 0 {
            return Err(Error::shape(
                "matmul: operands must have at least one dimension",
            ));
        }
        let a = if self.ndim() == 1 {
            self.expand_dims(0)?
        } else {
            self.clone()
        };
        let b = if other.ndim() == 1 {
            other.expand_dims(-1)?
        } else {
            other.clone()
        };
        let (m, k) = (a.dim(-2)?, a.dim(-1)?);
        let (k2, n) = (b.dim(-2)?, b.dim(-1)?);
        if k != k2 {
            return Err(Error::shape(format!(
                "matmul: expected inner dimensions to match, found {:?} @ {:?}",
                self.shape(),
                other.shape()
            )));
        }
        let batch = broadcast_shapes(&a.shape()[..a.ndim() - 2], &b.shape()[..b.ndim() - 2])
            .map_err(|e| e.context("matmul batch dims"))?;
        let dtype = DType::promote(a.dtype(), b.dtype());
        let dtype = if dtype.is_float() { dtype } else { DType::F32 };
        let mut shape = batch;
        shape.extend([m, n]);
        let mut r = Array::new_op(
            Primitive::Matmul,
            vec![a.astype_if_int(dtype)?, b.astype_if_int(dtype)?],
            shape,
            dtype,
        );
        if self.ndim() == 1 {
            r = r.squeeze(-2)?;
        }
        if other.ndim() == 1 {
            r = r.squeeze(-1)?;
        }
        Ok(r)
    }

    /// Integer operands are cast; float operands keep their own dtype (a bf16 weight is read
    /// as bf16 by the kernel, not copied to f32 first).
    fn astype_if_int(&self, dtype: DType) -> Result<Array> {
        if self.dtype().is_float() {
            Ok(self.clone())
        } else {
            self.astype(dtype)
        }
    }
}
