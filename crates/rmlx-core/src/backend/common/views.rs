//! Views: new strides over the same buffer, no copy. Device-independent: a backend calls these
//! and supplies a copy kernel only where a reshape needs contiguous input.

use super::strided;
use crate::array::Data;
use crate::backend::Arg;
use crate::shape::contiguous_strides;

/// A reshape of `x` without a copy, when its view is contiguous (`None`: copy first).
pub fn reshape(x: &Arg, out_shape: &[usize]) -> Option<Data> {
    x.is_contiguous().then(|| Data {
        buffer: x.data.buffer.clone(),
        offset: x.data.offset,
        strides: contiguous_strides(out_shape),
    })
}

/// A reshape of data already made contiguous.
pub fn reshape_contiguous(data: Data, out_shape: &[usize]) -> Data {
    Data {
        buffer: data.buffer,
        offset: data.offset,
        strides: contiguous_strides(out_shape),
    }
}

pub fn transpose(x: &Arg, perm: &[usize]) -> Data {
    Data {
        buffer: x.data.buffer.clone(),
        offset: x.data.offset,
        strides: perm.iter().map(|&p| x.data.strides[p]).collect(),
    }
}

pub fn slice(x: &Arg, start: &[usize], step: &[usize]) -> Data {
    let s = &x.data.strides;
    Data {
        buffer: x.data.buffer.clone(),
        offset: x.data.offset + start.iter().zip(s).map(|(a, b)| a * b).sum::<usize>(),
        strides: s.iter().zip(step).map(|(a, b)| a * b).collect(),
    }
}

pub fn broadcast_to(x: &Arg, out_shape: &[usize]) -> Data {
    Data {
        buffer: x.data.buffer.clone(),
        offset: x.data.offset,
        strides: strided::broadcast_strides(&x.shape, &x.data.strides, out_shape),
    }
}
