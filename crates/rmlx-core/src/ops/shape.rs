//! Shape ops. Reshape, transpose, slice and broadcast are views (no copy where strides allow).

use crate::array::{Array, State};
use crate::error::{Error, Result};
use crate::primitive::Primitive;
use crate::shape::{broadcast_shapes, checked_numel, normalize_axis, Shape};

impl Array {
    /// Reshape; one dimension may be `-1` (inferred).
    pub fn reshape(&self, shape: &[isize]) -> Result<Array> {
        let shape = infer_shape(self.size(), shape, self.shape())?;
        if shape == self.shape() {
            return Ok(self.clone());
        }
        // A reshape of a pending reshape is one reshape of its input (row-major order is
        // all a reshape keeps): one graph node, not a chain.
        let input = match &*self.lock() {
            State::Pending {
                prim: Primitive::Reshape(_),
                inputs,
            } => inputs[0].clone(),
            _ => self.clone(),
        };
        if shape == input.shape() {
            return Ok(input);
        }
        Ok(Array::new_op(
            Primitive::Reshape(shape.clone()),
            vec![input],
            shape,
            self.dtype(),
        ))
    }

    pub fn transpose(&self, perm: &[usize]) -> Result<Array> {
        let nd = self.ndim();
        let mut seen = vec![false; nd];
        if perm.len() != nd
            || perm
                .iter()
                .any(|&p| p >= nd || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::shape(format!(
                "transpose: expected a permutation of 0..{nd}, found {perm:?}"
            )));
        }
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(self.clone());
        }
        let shape: Shape = perm.iter().map(|&p| self.shape()[p]).collect();
        // Moving only axes of size 1 keeps the row-major order: a reshape (decode's
        // (1, 1, H, D) ↔ (1, H, 1, D)), which folds into a neighbouring reshape.
        let moved: Vec<usize> = perm
            .iter()
            .copied()
            .filter(|&p| self.shape()[p] != 1)
            .collect();
        if moved.windows(2).all(|w| w[0] < w[1]) {
            let to: Vec<isize> = shape.iter().map(|&x| x as isize).collect();
            return self.reshape(&to);
        }
        Ok(Array::new_op(
            Primitive::Transpose(perm.to_vec()),
            vec![self.clone()],
            shape,
            self.dtype(),
        ))
    }

    pub fn swapaxes(&self, a: isize, b: isize) -> Result<Array> {
        let a = normalize_axis(a, self.ndim(), "swapaxes")?;
        let b = normalize_axis(b, self.ndim(), "swapaxes")?;
        let mut perm: Vec<usize> = (0..self.ndim()).collect();
        perm.swap(a, b);
        self.transpose(&perm)
    }

    /// The matrix transpose of the last two axes.
    pub fn t(&self) -> Result<Array> {
        self.swapaxes(-1, -2)
    }

    /// Strided slice: `start`, `stop`, `step` per axis (clamped to the shape like numpy).
    pub fn slice(&self, start: &[usize], stop: &[usize], step: &[usize]) -> Result<Array> {
        let nd = self.ndim();
        if start.len() != nd || stop.len() != nd || step.len() != nd {
            return Err(Error::shape(format!(
                "slice: expected {nd} starts/stops/steps, found {}/{}/{}",
                start.len(),
                stop.len(),
                step.len()
            )));
        }
        let mut shape = Vec::with_capacity(nd);
        let mut stop_c = Vec::with_capacity(nd);
        for i in 0..nd {
            if step[i] == 0 {
                return Err(Error::shape("slice: step must be positive"));
            }
            let hi = stop[i].min(self.shape()[i]);
            let lo = start[i].min(hi);
            shape.push((hi - lo).div_ceil(step[i]));
            stop_c.push(hi);
        }
        let start: Vec<usize> = start.iter().zip(&stop_c).map(|(a, b)| *a.min(b)).collect();
        if shape == self.shape() && step.iter().all(|&s| s == 1) {
            return Ok(self.clone());
        }
        Ok(Array::new_op(
            Primitive::Slice {
                start,
                stop: stop_c,
                step: step.to_vec(),
            },
            vec![self.clone()],
            shape,
            self.dtype(),
        ))
    }

    /// `x[..., start:stop, ...]` along one axis.
    pub fn slice_axis(&self, axis: isize, start: usize, stop: usize) -> Result<Array> {
        let ax = normalize_axis(axis, self.ndim(), "slice_axis")?;
        let mut lo = vec![0; self.ndim()];
        let mut hi = self.shape().to_vec();
        lo[ax] = start;
        hi[ax] = stop;
        self.slice(&lo, &hi, &vec![1; self.ndim()])
    }

    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Array> {
        let b = broadcast_shapes(self.shape(), shape).map_err(|e| e.context("broadcast_to"))?;
        if b != shape {
            return Err(Error::shape(format!(
                "broadcast_to: cannot broadcast {:?} to {shape:?}",
                self.shape()
            )));
        }
        if shape == self.shape() {
            return Ok(self.clone());
        }
        Ok(Array::new_op(
            Primitive::BroadcastTo(shape.to_vec()),
            vec![self.clone()],
            shape.to_vec(),
            self.dtype(),
        ))
    }

    pub fn expand_dims(&self, axis: isize) -> Result<Array> {
        let ax = normalize_axis(axis, self.ndim() + 1, "expand_dims")?;
        let mut s: Vec<isize> = self.shape().iter().map(|&d| d as isize).collect();
        s.insert(ax, 1);
        self.reshape(&s)
    }

    pub fn squeeze(&self, axis: isize) -> Result<Array> {
        let ax = normalize_axis(axis, self.ndim(), "squeeze")?;
        if self.shape()[ax] != 1 {
            return Err(Error::shape(format!(
                "squeeze: axis {axis} has size {}, expected 1",
                self.shape()[ax]
            )));
        }
        let mut s: Vec<isize> = self.shape().iter().map(|&d| d as isize).collect();
        s.remove(ax);
        self.reshape(&s)
    }

    pub fn flatten(&self) -> Result<Array> {
        self.reshape(&[-1])
    }

    /// A row-major copy unless already contiguous (decided at eval time).
    pub fn contiguous(&self) -> Result<Array> {
        Ok(Array::new_op(
            Primitive::Contiguous,
            vec![self.clone()],
            self.shape().to_vec(),
            self.dtype(),
        ))
    }
}

/// Concatenates arrays of one dtype along `axis`.
pub fn concat(arrays: &[Array], axis: isize) -> Result<Array> {
    let first = arrays
        .first()
        .ok_or_else(|| Error::shape("concat: expected at least one array"))?;
    let ax = normalize_axis(axis, first.ndim(), "concat")?;
    let mut shape = first.shape().to_vec();
    shape[ax] = 0;
    let dtype = arrays
        .iter()
        .map(|a| a.dtype())
        .reduce(crate::DType::promote)
        .unwrap();
    let mut inputs = Vec::with_capacity(arrays.len());
    for a in arrays {
        if a.ndim() != first.ndim()
            || a.shape()
                .iter()
                .zip(first.shape())
                .enumerate()
                .any(|(i, (x, y))| i != ax && x != y)
        {
            return Err(Error::shape(format!(
                "concat: shapes {:?} and {:?} differ outside axis {ax}",
                first.shape(),
                a.shape()
            )));
        }
        shape[ax] += a.shape()[ax];
        inputs.push(a.astype(dtype)?);
    }
    if inputs.len() == 1 {
        return Ok(inputs.pop().unwrap());
    }
    Ok(Array::new_op(
        Primitive::Concat { axis: ax },
        inputs,
        shape,
        dtype,
    ))
}

fn infer_shape(size: usize, shape: &[isize], from: &[usize]) -> Result<Shape> {
    let mut out = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &d) in shape.iter().enumerate() {
        if d == -1 {
            if infer.replace(i).is_some() {
                return Err(Error::shape("reshape: at most one dimension may be -1"));
            }
            out.push(1);
        } else if d < 0 {
            return Err(Error::shape(format!("reshape: invalid dimension {d}")));
        } else {
            out.push(d as usize);
        }
    }
    let known = checked_numel(&out).ok_or_else(|| Error::shape("reshape: shape overflows"))?;
    if let Some(i) = infer {
        if known == 0 || !size.is_multiple_of(known) {
            return Err(Error::shape(format!(
                "reshape: cannot reshape {from:?} to {shape:?}"
            )));
        }
        out[i] = size / known;
    } else if known != size {
        return Err(Error::shape(format!(
            "reshape: cannot reshape {from:?} ({size} elements) to {shape:?}"
        )));
    }
    Ok(out)
}
