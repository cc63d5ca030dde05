//! The CUDA backend (NVIDIA): one file per primitive family, kernels in `kernels/*.cu`
//! compiled at run time by NVRTC for the device's architecture and cached on disk.
//!
//! Everything is loaded dynamically (cudarc's `dynamic-loading`): a binary built without a
//! toolkit runs here on the CPU, and on the GPU wherever a driver is installed. Work is queued on
//! one stream per device and `eval_primitive` returns as soon as its kernels are queued; reading
//! data (`download`) waits.

mod alloc;
mod attention;
mod compiled;
mod device;
mod elementwise;
mod graph;
mod indexing;
mod kv_quant;
mod launch;
pub mod libs;
mod matmul;
mod norm;
pub mod nvrtc;
mod quantized;
mod reduce;
mod rope;
mod timing;

pub use alloc::CudaBuffer;
pub use graph::GraphStats;

use super::{Arg, Backend};
use crate::array::Data;
use crate::backend::common::views;
use crate::buffer::{Buffer, DeviceBuffer, HostBuffer};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::primitive::Primitive;
use device::CudaDevice;
use std::sync::{Arc, OnceLock};

/// Whether the CUDA driver library can be loaded on this machine.
pub fn driver_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: only tries to open the shared library; calls nothing in it.
    *PRESENT.get_or_init(|| unsafe { cudarc::driver::sys::is_culib_present() })
}

/// How many CUDA devices are usable (0 without a driver or a GPU). Never panics.
pub fn device_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        if !driver_present() {
            return 0;
        }
        // cudarc's loader panics on a missing symbol (a driver far older than CUDA 13's API):
        // that is "no usable device", not a crash.
        std::panic::catch_unwind(|| {
            cudarc::driver::result::init().ok()?;
            cudarc::driver::result::device::get_count().ok()
        })
        .ok()
        .flatten()
        .map_or(0, |n| n.max(0) as usize)
    })
}

/// Whether CUDA device `ordinal` can run rmlx's kernels (driver, device, NVRTC all present).
pub fn is_available(ordinal: usize) -> bool {
    ordinal < device_count() && nvrtc::is_available() && device::get(ordinal).is_ok()
}

/// Why CUDA device `ordinal` cannot be used, or its name ("NVIDIA H100 80GB HBM3").
pub fn describe(ordinal: usize) -> Result<String> {
    if !driver_present() {
        return Err(Error::msg(
            "cuda: no NVIDIA driver (libcuda) was found on this machine",
        ));
    }
    if !nvrtc::is_available() {
        return Err(Error::msg(
            "cuda: NVRTC (libnvrtc) was not found: install the CUDA toolkit, or run \
             `rmlx fetch-nvrtc` to unpack the PyPI package nvidia-cuda-nvrtc",
        ));
    }
    Ok(device::get(ordinal)?.name.clone())
}

/// Every kernel module the backend can build, as (key, source): the NVRTC compile test
/// compiles them all for each supported architecture, without a GPU.
pub fn kernel_sources() -> Vec<(String, String)> {
    let mut out = Vec::new();
    out.extend(elementwise::sources());
    out.extend(compiled::sources());
    out.extend(quantized::sources());
    out.extend(reduce::sources());
    out.extend(norm::sources());
    out.extend(rope::sources());
    out.extend(indexing::sources());
    out.extend(attention::sources());
    out.extend(matmul::gemv_sources());
    out.extend(kv_quant::sources());
    out
}

/// Bytes of device memory held by live arrays on `ordinal`.
pub fn memory_in_use(ordinal: usize) -> Result<usize> {
    Ok(device::get(ordinal)?.memory_in_use())
}

/// Total memory of `ordinal` and the most rmlx will use of it (bytes).
pub fn memory_limits(ordinal: usize) -> Result<(usize, usize)> {
    let dev = device::get(ordinal)?;
    Ok((dev.total_mem, dev.alloc.limit()))
}

/// Frees the cached (unused) device memory of `ordinal`.
pub fn clear_cache(ordinal: usize) -> Result<()> {
    let dev = device::get(ordinal)?;
    dev.bind()?;
    let _queue = dev.lock_queue();
    dev.alloc.clear_cache(&dev)
}

/// The backend for one device ordinal; the device itself is opened on first use.
pub struct CudaBackend {
    ordinal: usize,
    usable: OnceLock<std::result::Result<(), String>>,
}

/// The backend of `Device::Cuda(ordinal)`.
pub fn backend(ordinal: usize) -> Result<&'static CudaBackend> {
    static BACKENDS: OnceLock<Vec<CudaBackend>> = OnceLock::new();
    let all = BACKENDS.get_or_init(|| {
        (0..device_count())
            .map(|ordinal| CudaBackend {
                ordinal,
                usable: OnceLock::new(),
            })
            .collect()
    });
    match all.get(ordinal) {
        Some(b) => {
            // Checked once: `describe` opens shared libraries, far too slow to do per op.
            b.usable
                .get_or_init(|| describe(ordinal).map(|_| ()).map_err(|e| e.to_string()))
                .clone()
                .map_err(Error::msg)?;
            Ok(b)
        }
        None if all.is_empty() => Err(Error::msg(format!(
            "cuda:{ordinal}: no CUDA device is usable here ({})",
            describe(0)
                .err()
                .map_or("no GPU found".into(), |e| e.to_string())
        ))),
        None => Err(Error::msg(format!(
            "cuda:{ordinal}: no such device ({} CUDA device(s) here)",
            all.len()
        ))),
    }
}

impl CudaBackend {
    fn dev(&self) -> Result<Arc<CudaDevice>> {
        let dev = device::get(self.ordinal)?;
        dev.bind()?;
        Ok(dev)
    }
}

/// A custom op has only a CPU implementation (`CustomOp::eval_cpu`).
fn not_implemented(prim: &Primitive, ordinal: usize) -> Result<Data> {
    Err(Error::NotImplemented {
        op: prim.name(),
        device: format!("cuda:{ordinal}"),
    })
}

impl Backend for CudaBackend {
    fn device(&self) -> Device {
        Device::Cuda(self.ordinal)
    }

    fn eval_primitive(
        &self,
        prim: &Primitive,
        inputs: Vec<Arg>,
        out_shape: &[usize],
        out_dtype: DType,
    ) -> Result<Data> {
        let dev = self.dev()?;
        let _queue = dev.lock_queue();
        dev.graph_begin()?;
        let out = self.encode(&dev, prim, inputs, out_shape, out_dtype)?;
        dev.graph_op_done()?;
        Ok(out)
    }

    fn download(&self, arg: &Arg) -> Result<Data> {
        let dev = self.dev()?;
        let _queue = dev.lock_queue();
        let (data, addr, bytes) = device_span(&dev, arg, "download")?;
        let mut host = HostBuffer::zeroed(bytes)?;
        let out = host
            .bytes_mut()
            .ok_or_else(|| Error::msg("cuda: download: host buffer is not writable"))?;
        // SAFETY: `addr..addr + bytes` lies inside the buffer `data` keeps alive for the call
        // (`device_span` checked it); `out` holds exactly `bytes` bytes.
        unsafe { dev.download(addr, out)? };
        drop(data);
        Ok(Data::contiguous(Buffer::Host(host), &arg.shape))
    }

    fn upload(&self, arg: &Arg) -> Result<Data> {
        let dev = self.dev()?;
        let host = crate::backend::cpu::contiguous(arg)?;
        let bytes = arg.numel() * arg.dtype.size();
        let all = host.host()?.bytes();
        let start = host.offset * arg.dtype.size();
        let src = all
            .get(start..start + bytes)
            .ok_or_else(|| Error::msg("cuda: upload: view extends past its host buffer"))?;
        let buf = {
            let _queue = dev.lock_queue();
            dev.upload(src)?
        };
        Ok(Data::contiguous(Buffer::Device(Box::new(buf)), &arg.shape))
    }

    fn read_async(&self, arg: &Arg) -> Result<Box<dyn crate::readback::HostRead>> {
        let dev = self.dev()?;
        let _queue = dev.lock_queue();
        let (_data, addr, bytes) = device_span(&dev, arg, "read_async")?;
        // SAFETY: `addr..addr + bytes` lies inside a live buffer (`device_span` checked it);
        // its reuse after `_data` drops is stream-ordered, so it is not overwritten before the
        // queued copy.
        let read = unsafe { dev.read_async(addr, bytes)? };
        Ok(Box::new(read))
    }

    fn synchronize(&self) -> Result<()> {
        let dev = self.dev()?;
        let _queue = dev.lock_queue();
        dev.synchronize()
    }

    fn flush(&self) -> Result<()> {
        let dev = self.dev()?;
        let _queue = dev.lock_queue();
        dev.graph_flush()
    }

    fn begin_span(&self) -> Result<bool> {
        let dev = self.dev()?;
        let _queue = dev.lock_queue();
        dev.graph_flush()?;
        dev.begin_span()?;
        Ok(true)
    }

    fn end_span(&self, label: String) -> Result<()> {
        let dev = self.dev()?;
        let _queue = dev.lock_queue();
        dev.end_span(label)
    }
}

impl CudaBackend {
    /// Queues the kernels of one primitive.
    fn encode(
        &self,
        dev: &Arc<CudaDevice>,
        prim: &Primitive,
        inputs: Vec<Arg>,
        out_shape: &[usize],
        out_dtype: DType,
    ) -> Result<Data> {
        let (s, d) = (out_shape, out_dtype);
        let x = &inputs[0];
        match prim {
            Primitive::AsType(_) => elementwise::astype(dev, x, s, d),
            Primitive::Unary(op) => elementwise::unary(dev, *op, x, s, d),
            Primitive::Binary(op) => elementwise::binary(dev, *op, x, &inputs[1], s, d),
            Primitive::Where => elementwise::select(dev, x, &inputs[1], &inputs[2], s, d),
            Primitive::Reshape(_) => match views::reshape(x, s) {
                Some(v) => Ok(v),
                None => Ok(views::reshape_contiguous(
                    elementwise::copy_contiguous(dev, x)?,
                    s,
                )),
            },
            Primitive::Transpose(perm) => Ok(views::transpose(x, perm)),
            Primitive::Slice { start, step, .. } => Ok(views::slice(x, start, step)),
            Primitive::BroadcastTo(_) => Ok(views::broadcast_to(x, s)),
            Primitive::Contiguous => elementwise::contiguous(dev, x),
            Primitive::ToDevice(_) => Ok(x.data.clone()),
            Primitive::QuantizedMatmul { format, n, k } => {
                quantized::quantized_matmul(dev, *format, *n, *k, &inputs, s, d)
            }
            Primitive::GatherQmm { format, n, k } => {
                quantized::gather_qmm(dev, *format, *n, *k, &inputs, s, d)
            }
            Primitive::QuantizedTake { format, k } => {
                quantized::quantized_take(dev, *format, *k, &inputs, s, d)
            }
            Primitive::Reduce { op, axes } => reduce::reduce(dev, *op, axes, x, s, d),
            Primitive::ArgReduce { op, axis } => reduce::arg_reduce(dev, *op, *axis, x, s),
            Primitive::Softmax => reduce::softmax(dev, x, s, d),
            Primitive::Swiglu => reduce::swiglu(dev, x, s, d),
            Primitive::LogSumExp => reduce::logsumexp(dev, x, s, d),
            Primitive::TopK { k } => reduce::topk(dev, *k, x, s),
            Primitive::RmsNorm { eps } => norm::rms_norm(dev, *eps, x, &inputs[1], s, d),
            Primitive::Rope {
                layout,
                dims,
                mscale,
            } => rope::rope(dev, *layout, *dims, *mscale, &inputs, s, d),
            Primitive::Concat { axis } => indexing::concat(dev, *axis, &inputs, s, d),
            Primitive::Take { axis } => indexing::take(dev, *axis, x, &inputs[1], s, d),
            Primitive::TakeAlongAxis { axis } => {
                indexing::take_along_axis(dev, *axis, x, &inputs[1], s, d)
            }
            Primitive::SliceUpdate { start } => indexing::slice_update(dev, start, inputs, s, d),
            Primitive::Matmul => matmul::matmul(dev, x, &inputs[1], s, d),
            Primitive::QuantizeKv(spec) => kv_quant::quantize(dev, *spec, x, s),
            Primitive::DequantizeKv {
                spec,
                dim,
                centered,
            } => kv_quant::dequantize(dev, *spec, *dim, x, centered.then(|| &inputs[1]), s),
            Primitive::QuantizedSdpa {
                scale,
                window,
                has_sinks,
                k_centered,
                head,
                k,
                v,
            } => kv_quant::quantized_sdpa(
                dev,
                *scale,
                *window,
                *has_sinks,
                *k_centered,
                *head,
                *k,
                *v,
                inputs,
                s,
                d,
            ),
            Primitive::ScaledDotProductAttention {
                scale,
                window,
                has_sinks,
            } => attention::sdpa(dev, *scale, *window, *has_sinks, &inputs, s, d),
            Primitive::Compiled(k) => compiled::compiled(dev, k, &inputs, s, d),
            Primitive::Custom(_) => not_implemented(prim, self.ordinal),
        }
    }
}

/// `arg` made contiguous on the device: its data (keeping the buffer alive), the device address
/// of its first element and its size in bytes, checked to lie inside the buffer.
fn device_span(dev: &Arc<CudaDevice>, arg: &Arg, what: &str) -> Result<(Data, u64, usize)> {
    let data = elementwise::contiguous(dev, arg)?;
    let bytes = arg.numel() * arg.dtype.size();
    let buf = launch::cuda_buffer(&data, dev)?;
    let start = data.offset * arg.dtype.size();
    if start.checked_add(bytes).is_none_or(|end| end > buf.len()) {
        return Err(Error::msg(format!(
            "cuda: {what}: a view of {bytes} bytes at {start} is outside its buffer of {}",
            buf.len()
        )));
    }
    let addr = buf.ptr() + start as u64;
    Ok((data, addr, bytes))
}

/// What the CUDA graphs of device `ordinal` did so far (`graph.rs`).
pub fn graph_stats(ordinal: usize) -> Result<GraphStats> {
    Ok(device::get(ordinal)?.graph_stats())
}

/// Hands the op timings of every opened device to `crate::profile` (waits for the devices).
pub(crate) fn flush_spans() -> Result<()> {
    for dev in device::opened() {
        dev.bind()?;
        let _queue = dev.lock_queue();
        dev.flush_spans()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_gpu_is_not_a_panic() {
        // Whatever the machine, these answer without panicking.
        let n = super::device_count();
        let _ = super::describe(n);
        assert!(super::backend(n + 1).is_err());
    }
}
