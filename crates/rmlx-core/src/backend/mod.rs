//! The backend interface. A backend evaluates primitives on one device; `eval` hands it inputs
//! already resident on that device. On a GPU, `eval_primitive` enqueues work on the device's
//! stream and returns at once; `synchronize` waits. Model code never sees backends.

pub mod common;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;

use crate::array::Data;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::primitive::Primitive;
use crate::shape::Shape;

/// One evaluated input of a primitive.
pub struct Arg {
    pub data: Data,
    pub shape: Shape,
    pub dtype: DType,
}

impl Arg {
    pub fn numel(&self) -> usize {
        crate::shape::numel(&self.shape)
    }
    pub fn is_contiguous(&self) -> bool {
        self.data.is_contiguous(&self.shape)
    }
}

pub trait Backend: Send + Sync {
    fn device(&self) -> Device;

    /// Evaluates `prim` on `inputs` into a new (or donated) buffer of `out_shape`/`out_dtype`.
    /// Inputs are owned so a kernel may reuse a buffer nobody else holds (in-place updates).
    fn eval_primitive(
        &self,
        prim: &Primitive,
        inputs: Vec<Arg>,
        out_shape: &[usize],
        out_dtype: DType,
    ) -> Result<Data>;

    /// Copies data living on this device into a host buffer (device → host) (contiguous).
    fn download(&self, arg: &Arg) -> Result<Data>;

    /// Copies host data onto this device.
    fn upload(&self, arg: &Arg) -> Result<Data>;

    /// Queues a copy of `arg` (on this device) to the host behind the work queued so far and
    /// returns without waiting for it (`Array::read_async`). By default: `download`, now.
    fn read_async(&self, arg: &Arg) -> Result<Box<dyn crate::readback::HostRead>> {
        let data = self.download(arg)?;
        let all = data.host()?.bytes();
        let start = data.offset * arg.dtype.size();
        let bytes = arg.numel() * arg.dtype.size();
        let host = crate::buffer::HostBuffer::from_slice(
            all.get(start..start + bytes)
                .ok_or_else(|| Error::msg("read_async: the download is shorter than the array"))?,
        )?;
        Ok(Box::new(crate::readback::Done(host)))
    }

    /// Waits for all work enqueued on this device.
    fn synchronize(&self) -> Result<()>;

    /// Submits the work encoded so far (a GPU that batches launches into graphs launches the
    /// open one); returns without waiting. `async_eval` calls it after encoding a tape.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// Profiling: marks the start of the next op's work on the device's queue. `false`: this
    /// backend does its work on the calling thread, which times it itself.
    fn begin_span(&self) -> Result<bool> {
        Ok(false)
    }

    /// Profiling: marks the end of the op begun by `begin_span`, named `label`.
    fn end_span(&self, _label: String) -> Result<()> {
        Ok(())
    }
}

/// Profiling: waits for every device that timed ops on its queue and records their spans.
pub fn flush_spans() -> Result<()> {
    #[cfg(feature = "cuda")]
    cuda::flush_spans()?;
    Ok(())
}

/// The backend that evaluates arrays on `device`.
pub fn for_device(device: Device) -> Result<&'static dyn Backend> {
    match device {
        Device::Cpu => Ok(&cpu::CPU),
        #[cfg(feature = "cuda")]
        Device::Cuda(i) => Ok(cuda::backend(i)?),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => Err(Error::NotImplemented {
            op: "backend".into(),
            device: format!("{device} (this build has no CUDA backend)"),
        }),
        Device::Gpu(_) => Err(Error::NotImplemented {
            op: "backend".into(),
            device: format!("{device} (this build has no backend for it)"),
        }),
    }
}
