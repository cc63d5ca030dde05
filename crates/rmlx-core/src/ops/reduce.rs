//! Reductions and softmax-family ops.

use crate::array::Array;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::primitive::{ArgReduceOp, Primitive, ReduceOp};
use crate::shape::normalize_axis;

impl Array {
    fn reduce(&self, op: ReduceOp, axes: &[isize], keepdims: bool) -> Result<Array> {
        let name = format!("{op:?}").to_lowercase();
        let mut ax: Vec<usize> = axes
            .iter()
            .map(|&a| normalize_axis(a, self.ndim(), &name))
            .collect::<Result<_>>()?;
        ax.sort_unstable();
        ax.dedup();
        let kept: Vec<usize> = (0..self.ndim())
            .map(|i| if ax.contains(&i) { 1 } else { self.shape()[i] })
            .collect();
        let out_shape: Vec<usize> = (0..self.ndim())
            .filter(|i| !ax.contains(i))
            .map(|i| self.shape()[i])
            .collect();
        let dtype = match (op, self.dtype()) {
            (ReduceOp::Sum | ReduceOp::Prod, DType::Bool | DType::U8) => DType::I32,
            (_, d) => d,
        };
        let r = Array::new_op(
            Primitive::Reduce { op, axes: ax },
            vec![self.clone()],
            out_shape,
            dtype,
        );
        if keepdims {
            r.reshape(&kept.iter().map(|&d| d as isize).collect::<Vec<_>>())
        } else {
            Ok(r)
        }
    }

    pub fn sum(&self, axes: &[isize], keepdims: bool) -> Result<Array> {
        self.reduce(ReduceOp::Sum, axes, keepdims)
    }
    pub fn max(&self, axes: &[isize], keepdims: bool) -> Result<Array> {
        self.reduce(ReduceOp::Max, axes, keepdims)
    }
    pub fn min(&self, axes: &[isize], keepdims: bool) -> Result<Array> {
        self.reduce(ReduceOp::Min, axes, keepdims)
    }
    pub fn prod(&self, axes: &[isize], keepdims: bool) -> Result<Array> {
        self.reduce(ReduceOp::Prod, axes, keepdims)
    }

    /// Mean in the input's float dtype (f32 for integer inputs).
    pub fn mean(&self, axes: &[isize], keepdims: bool) -> Result<Array> {
        let x = if self.dtype().is_float() {
            self.clone()
        } else {
            self.astype(DType::F32)?
        };
        let n: usize = axes
            .iter()
            .map(|&a| normalize_axis(a, self.ndim(), "mean").map(|a| self.shape()[a]))
            .collect::<Result<Vec<_>>>()?
            .iter()
            .product();
        x.sum(axes, keepdims)?.mul_scalar(1.0 / n as f32)
    }

    fn arg_reduce(&self, op: ArgReduceOp, axis: isize, keepdims: bool) -> Result<Array> {
        let ax = normalize_axis(axis, self.ndim(), "argmax")?;
        if self.shape()[ax] == 0 {
            return Err(Error::shape("argmax: cannot reduce an empty axis"));
        }
        let mut shape = self.shape().to_vec();
        shape.remove(ax);
        let r = Array::new_op(
            Primitive::ArgReduce { op, axis: ax },
            vec![self.clone()],
            shape,
            DType::U32,
        );
        if keepdims {
            r.expand_dims(ax as isize)
        } else {
            Ok(r)
        }
    }

    pub fn argmax(&self, axis: isize, keepdims: bool) -> Result<Array> {
        self.arg_reduce(ArgReduceOp::ArgMax, axis, keepdims)
    }
    pub fn argmin(&self, axis: isize, keepdims: bool) -> Result<Array> {
        self.arg_reduce(ArgReduceOp::ArgMin, axis, keepdims)
    }

    /// Softmax along `axis` (computed in f32, returned in the input's dtype).
    pub fn softmax(&self, axis: isize) -> Result<Array> {
        self.along_last(axis, "softmax", |x| {
            let d = float_dtype(x.dtype());
            Ok(Array::new_op(
                Primitive::Softmax,
                vec![x.clone()],
                x.shape().to_vec(),
                d,
            ))
        })
    }

    /// log Σ exp along `axis`.
    pub fn logsumexp(&self, axis: isize, keepdims: bool) -> Result<Array> {
        let ax = normalize_axis(axis, self.ndim(), "logsumexp")?;
        let x = self.swapaxes(ax as isize, -1)?;
        let mut shape = x.shape().to_vec();
        shape.pop();
        let r = Array::new_op(
            Primitive::LogSumExp,
            vec![x],
            shape.clone(),
            float_dtype(self.dtype()),
        );
        // The reduced axis was moved last; restore the order of the others.
        let r = if ax + 1 < self.ndim() && self.ndim() > 1 {
            let mut perm: Vec<usize> = (0..shape.len()).collect();
            let moved = perm.pop().unwrap_or(0);
            perm.insert(ax, moved);
            r.transpose(&perm)?
        } else {
            r
        };
        if keepdims {
            r.expand_dims(ax as isize)
        } else {
            Ok(r)
        }
    }

    /// Indices (u32) of the `k` largest values along the last axis, largest first.
    pub fn topk_indices(&self, k: usize) -> Result<Array> {
        let d = *self
            .shape()
            .last()
            .ok_or_else(|| Error::shape("topk: expected at least one dimension"))?;
        if k == 0 || k > d {
            return Err(Error::shape(format!(
                "topk: expected 1 <= k <= {d}, found {k}"
            )));
        }
        let mut shape = self.shape().to_vec();
        *shape.last_mut().unwrap() = k;
        Ok(Array::new_op(
            Primitive::TopK { k },
            vec![self.clone()],
            shape,
            DType::U32,
        ))
    }

    /// Runs `f` with `axis` moved last, then moves it back.
    fn along_last(
        &self,
        axis: isize,
        op: &str,
        f: impl Fn(&Array) -> Result<Array>,
    ) -> Result<Array> {
        let ax = normalize_axis(axis, self.ndim(), op)?;
        if ax + 1 == self.ndim() {
            return f(self);
        }
        f(&self.swapaxes(ax as isize, -1)?)?.swapaxes(ax as isize, -1)
    }
}

fn float_dtype(d: DType) -> DType {
    if d.is_float() {
        d
    } else {
        DType::F32
    }
}
