//! Quantized ops on a `QuantizedWeight`: matmul, expert-gathered matmul, row lookup
//! (embeddings) and the reference dequantization. They validate and record nodes only.

use crate::array::Array;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::primitive::Primitive;
use crate::quant::{QuantFormat, QuantizedWeight};

fn expect_float(op: &str, x: &Array) -> Result<()> {
    if !x.dtype().is_float() {
        return Err(Error::dtype(format!(
            "{op}: expected a float x, found {}",
            x.dtype()
        )));
    }
    Ok(())
}

fn expect_last_dim(op: &str, x: &Array, k: usize) -> Result<()> {
    if x.ndim() == 0 || x.shape()[x.ndim() - 1] != k {
        return Err(Error::shape(format!(
            "{op}: expected x of shape (…, {k}), found {:?}",
            x.shape()
        )));
    }
    Ok(())
}

fn expect_index(op: &str, idx: &Array, allowed: &[DType]) -> Result<()> {
    if !allowed.contains(&idx.dtype()) {
        return Err(Error::dtype(format!(
            "{op}: expected indices of dtype {allowed:?}, found {}",
            idx.dtype()
        )));
    }
    Ok(())
}

impl QuantizedWeight {
    fn inputs(&self, first: Option<&Array>, last: Option<&Array>) -> Vec<Array> {
        first
            .into_iter()
            .chain(&self.parts)
            .chain(last)
            .cloned()
            .collect()
    }

    /// x · Wᵀ: (…, K) → (…, N), in x's dtype.
    pub fn quantized_matmul(&self, x: &Array) -> Result<Array> {
        const OP: &str = "quantized_matmul";
        if let Some(e) = self.experts {
            return Err(Error::shape(format!(
                "{OP}: expected a weight without experts, found {e} experts (use gather_qmm)"
            )));
        }
        expect_float(OP, x)?;
        expect_last_dim(OP, x, self.k)?;
        let mut shape = x.shape().to_vec();
        *shape.last_mut().expect("ndim checked") = self.n;
        let prim = Primitive::QuantizedMatmul {
            format: self.format,
            n: self.n,
            k: self.k,
        };
        Ok(Array::new_op(
            prim,
            self.inputs(Some(x), None),
            shape,
            x.dtype(),
        ))
    }

    /// For each row of x and each expert it selects in idx (…, top_k) u32: x · W[e]ᵀ.
    /// x is (…, K) (one row shared by its top_k experts) or (…, top_k, K). Output (…, top_k, N).
    pub fn gather_qmm(&self, x: &Array, idx: &Array) -> Result<Array> {
        const OP: &str = "gather_qmm";
        if self.experts.is_none() {
            return Err(Error::shape(format!(
                "{OP}: expected a weight with experts, found none"
            )));
        }
        expect_float(OP, x)?;
        expect_last_dim(OP, x, self.k)?;
        expect_index(OP, idx, &[DType::U32])?;
        let rows = &x.shape()[..x.ndim() - 1];
        let ib = &idx.shape()[..idx.ndim().saturating_sub(1)];
        if idx.ndim() == 0 || (rows != ib && rows != idx.shape()) {
            return Err(Error::shape(format!(
                "gather_qmm: expected x of shape {ib:?} + (K) or {:?} + (K) for indices {:?}, \
                 found {:?}",
                idx.shape(),
                idx.shape(),
                x.shape()
            )));
        }
        let mut shape = idx.shape().to_vec();
        shape.push(self.n);
        let prim = Primitive::GatherQmm {
            format: self.format,
            n: self.n,
            k: self.k,
        };
        Ok(Array::new_op(
            prim,
            self.inputs(Some(x), Some(idx)),
            shape,
            x.dtype(),
        ))
    }

    /// Rows of W (an embedding table) dequantized: idx.shape + (K). Affine tables come back in
    /// their scales' dtype, the others in f32.
    pub fn take_rows(&self, idx: &Array) -> Result<Array> {
        let dtype = match self.format {
            QuantFormat::Affine { .. } => self.parts[1].dtype(),
            _ => DType::F32,
        };
        self.take_rows_as(idx, dtype)
    }

    pub fn take_rows_as(&self, idx: &Array, dtype: DType) -> Result<Array> {
        const OP: &str = "quantized_take";
        if self.experts.is_some() {
            return Err(Error::shape(format!(
                "{OP}: expected a weight without experts"
            )));
        }
        if !dtype.is_float() {
            return Err(Error::dtype(format!(
                "{OP}: expected a float output, found {dtype}"
            )));
        }
        expect_index(OP, idx, &[DType::U32, DType::I32])?;
        let mut shape = idx.shape().to_vec();
        shape.push(self.k);
        let prim = Primitive::QuantizedTake {
            format: self.format,
            k: self.k,
        };
        Ok(Array::new_op(
            prim,
            self.inputs(None, Some(idx)),
            shape,
            dtype,
        ))
    }

    /// The whole matrix in f32, (N, K) or (E, N, K): the reference path for tests.
    pub fn dequantize(&self) -> Result<Array> {
        let e = self.experts.unwrap_or(1);
        let rows = e * self.n;
        let parts = self
            .parts
            .iter()
            .map(|p| {
                // Merge the (E, N) lead into one row axis; a reshape is a view.
                let lead = if self.experts.is_some() { 2 } else { 1 };
                let mut s = vec![rows as isize];
                s.extend(p.shape()[lead..].iter().map(|&d| d as isize));
                p.reshape(&s)
            })
            .collect::<Result<Vec<_>>>()?;
        let flat = QuantizedWeight::new(self.format, rows, self.k, None, parts)?;
        let idx = Array::from_vec((0..rows as u32).collect::<Vec<_>>(), &[rows])?;
        let out = flat.take_rows_as(&idx, DType::F32)?;
        match self.experts {
            Some(e) => out.reshape(&[e as isize, self.n as isize, self.k as isize]),
            None => Ok(out),
        }
    }
}
