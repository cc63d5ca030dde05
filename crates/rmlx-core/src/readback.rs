//! Reading results back without waiting for later work: `Array::read_async` queues the copy to
//! the host right behind the work that computes the array and returns; `PendingRead::wait`
//! waits for that copy alone. A decode loop can then encode step n+1 (whose input is the token
//! of step n, still on the GPU) before it reads token n, so the host's encoding overlaps the
//! GPU's running (mlx-lm's pipelined generate: `async_eval(next); y.item()`).

use crate::array::Array;
use crate::backend::{self, Arg};
use crate::buffer::HostBuffer;
use crate::dtype::Element;
use crate::error::Result;
use std::marker::PhantomData;

/// A device → host copy queued on a device (what `Backend::read_async` returns).
pub trait HostRead: Send {
    /// Waits for the copy and returns the bytes (the array's elements, contiguous).
    fn wait(self: Box<Self>) -> Result<HostBuffer>;
}

/// A copy already done (the CPU, or a backend that copies synchronously).
pub(crate) struct Done(pub(crate) HostBuffer);

impl HostRead for Done {
    fn wait(self: Box<Self>) -> Result<HostBuffer> {
        Ok(self.0)
    }
}

/// Elements of an array on their way to the host.
pub struct PendingRead<T: Element> {
    read: Box<dyn HostRead>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Element> PendingRead<T> {
    /// Waits for the copy (and only for it) and returns the elements in row-major order.
    pub fn wait(self) -> Result<Vec<T>> {
        let host = self.read.wait()?;
        let all = host.as_slice::<T>()?;
        Ok(all[..self.len.min(all.len())].to_vec())
    }
}

impl Array {
    /// Evaluates the array without waiting (`async_eval`), queues a copy of its elements
    /// (converted to `T`) to the host, and returns at once; `wait` returns them. Work encoded
    /// after this call does not delay the copy.
    pub fn read_async<T: Element>(&self) -> Result<PendingRead<T>> {
        let a = if self.dtype() == T::DTYPE {
            self.clone()
        } else {
            self.astype(T::DTYPE)?
        };
        if a.device().is_cpu() {
            let v = a.to_vec::<T>()?;
            return Ok(PendingRead {
                len: v.len(),
                read: Box::new(Done(HostBuffer::from_slice(&v)?)),
                _t: PhantomData,
            });
        }
        crate::eval::async_eval(&[&a])?;
        let arg = Arg {
            data: a.data()?,
            shape: a.shape().to_vec(),
            dtype: a.dtype(),
        };
        Ok(PendingRead {
            len: a.size(),
            read: backend::for_device(a.device())?.read_async(&arg)?,
            _t: PhantomData,
        })
    }
}
