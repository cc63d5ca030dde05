//! Gather and scatter: take, take_along_axis, slice_update.

use super::elementwise::expect_dtype;
use crate::array::Array;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::primitive::Primitive;
use crate::shape::normalize_axis;

const INDEX_DTYPES: &[DType] = &[DType::U32, DType::I32];

impl Array {
    /// `x.take(idx, axis)`: the axis is replaced by idx's shape (embedding lookup is axis 0).
    /// Indices out of range are an error at eval time.
    pub fn take(&self, indices: &Array, axis: isize) -> Result<Array> {
        let ax = normalize_axis(axis, self.ndim(), "take")?;
        expect_dtype("take", "indices", indices, INDEX_DTYPES)?;
        let mut shape = self.shape()[..ax].to_vec();
        shape.extend_from_slice(indices.shape());
        shape.extend_from_slice(&self.shape()[ax + 1..]);
        Ok(Array::new_op(
            Primitive::Take { axis: ax },
            vec![self.clone(), indices.clone()],
            shape,
            self.dtype(),
        ))
    }

    /// numpy's take_along_axis: indices have this array's shape except along `axis`.
    pub fn take_along_axis(&self, indices: &Array, axis: isize) -> Result<Array> {
        let ax = normalize_axis(axis, self.ndim(), "take_along_axis")?;
        expect_dtype("take_along_axis", "indices", indices, INDEX_DTYPES)?;
        if indices.ndim() != self.ndim()
            || indices
                .shape()
                .iter()
                .zip(self.shape())
                .enumerate()
                .any(|(i, (a, b))| i != ax && a != b)
        {
            return Err(Error::shape(format!(
                "take_along_axis: indices {:?} do not match {:?} outside axis {ax}",
                indices.shape(),
                self.shape()
            )));
        }
        Ok(Array::new_op(
            Primitive::TakeAlongAxis { axis: ax },
            vec![self.clone(), indices.clone()],
            indices.shape().to_vec(),
            self.dtype(),
        ))
    }

    /// This array with `update` written at `start` (unit steps). Done in place at eval when
    /// nothing else holds this array's buffer (KV caches rely on it).
    pub fn slice_update(&self, update: &Array, start: &[usize]) -> Result<Array> {
        if update.ndim() != self.ndim() || start.len() != self.ndim() {
            return Err(Error::shape(format!(
                "slice_update: expected an update and start of rank {}, found {:?} at {start:?}",
                self.ndim(),
                update.shape()
            )));
        }
        for i in 0..self.ndim() {
            if start[i]
                .checked_add(update.shape()[i])
                .is_none_or(|end| end > self.shape()[i])
            {
                return Err(Error::shape(format!(
                    "slice_update: update {:?} at {start:?} does not fit in {:?}",
                    update.shape(),
                    self.shape()
                )));
            }
        }
        Ok(Array::new_op(
            Primitive::SliceUpdate {
                start: start.to_vec(),
            },
            vec![self.clone(), update.astype(self.dtype())?],
            self.shape().to_vec(),
            self.dtype(),
        ))
    }
}
