//! Launching kernels: parameters by value (device addresses, scalars, `Layout`s), a grid sized
//! for the work, and the error of a failed launch named after the kernel.

use super::alloc::CudaBuffer;
use super::device::{CudaDevice, Func};
use crate::array::Data;
use crate::backend::Arg;
use crate::buffer::Buffer;
use crate::dtype::DType;
use crate::error::{Error, Result};
use cudarc::driver::result;
use std::sync::Arc;

pub(crate) const MAX_DIMS: usize = 8;

/// A strided view as kernels see it (`common.cuh`'s `Layout`): element offset, shape, strides.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    ndim: i32,
    pad: i32,
    offset: i64,
    shape: [i64; MAX_DIMS],
    strides: [i64; MAX_DIMS],
}

impl Layout {
    /// The view of `data` over `shape`. Size-1 dims are dropped (they never move the index).
    pub(crate) fn new(shape: &[usize], strides: &[usize], offset: usize) -> Result<Layout> {
        // Filled in place (no allocation: a few layouts are built for every kernel launched).
        let mut l = Layout {
            ndim: 0,
            pad: 0,
            offset: offset as i64,
            shape: [1; MAX_DIMS],
            strides: [0; MAX_DIMS],
        };
        let mut n = 0;
        for (&d, &s) in shape.iter().zip(strides).filter(|(&d, _)| d != 1) {
            if n == MAX_DIMS {
                return Err(Error::shape(format!(
                    "cuda: views of more than {MAX_DIMS} non-unit dims are not supported, found {shape:?}"
                )));
            }
            l.shape[n] = d as i64;
            l.strides[n] = s as i64;
            n += 1;
        }
        l.ndim = n as i32;
        Ok(l)
    }

    pub(crate) fn of(arg: &Arg) -> Result<Layout> {
        Layout::new(&arg.shape, &arg.data.strides, arg.data.offset)
    }
}

/// Values a kernel takes by value.
///
/// # Safety
/// Implementors are plain old data with the same layout as the kernel's parameter type.
pub(crate) unsafe trait KernelParam: Copy {}
// SAFETY: primitive scalars match their C counterparts.
unsafe impl KernelParam for u64 {}
// SAFETY: as above.
unsafe impl KernelParam for i64 {}
// SAFETY: as above.
unsafe impl KernelParam for u32 {}
// SAFETY: as above.
unsafe impl KernelParam for i32 {}
// SAFETY: as above.
unsafe impl KernelParam for f32 {}
// SAFETY: `#[repr(C)]` mirror of `common.cuh`'s Layout.
unsafe impl KernelParam for Layout {}

/// Most parameters a kernel takes, and the 8-byte words they may fill (a `Layout` is 18).
const MAX_PARAMS: usize = 32;
const MAX_WORDS: usize = 96;

/// Parameters of one launch, packed into one inline, 8-byte aligned buffer (no allocation per
/// launch: decode launches ~1,000 kernels a token, and the host's cost per launch counts).
pub(crate) struct Launch {
    func: Func,
    name: &'static str,
    words: [u64; MAX_WORDS],
    /// The first word of each parameter.
    starts: [u16; MAX_PARAMS],
    count: usize,
    used: usize,
    /// Set when a parameter did not fit: `run` reports it instead of launching.
    overflow: bool,
}

impl Launch {
    pub(crate) fn new(func: Func, name: &'static str) -> Self {
        Launch {
            func,
            name,
            words: [0; MAX_WORDS],
            starts: [0; MAX_PARAMS],
            count: 0,
            used: 0,
            overflow: false,
        }
    }

    pub(crate) fn arg<T: KernelParam>(&mut self, v: T) -> &mut Self {
        let n = std::mem::size_of::<T>().div_ceil(8).max(1);
        if self.count == MAX_PARAMS || self.used + n > MAX_WORDS {
            self.overflow = true;
            return self;
        }
        // SAFETY: words[used..used + n] lies inside the buffer (checked above), holds at least
        // size_of::<T>() bytes and is 8-aligned (≥ the alignment of every KernelParam); T is
        // plain data.
        unsafe { std::ptr::write(self.words.as_mut_ptr().add(self.used) as *mut T, v) };
        self.starts[self.count] = self.used as u16;
        self.count += 1;
        self.used += n;
        self
    }

    /// Launches on the device's stream; returns at once.
    ///
    /// # Safety
    /// The arguments pushed must be the kernel's parameters in order, each of its declared
    /// type, and every device address among them must point into a live allocation of this
    /// device holding every element the kernel indexes for this launch shape and these size
    /// arguments. Buffers may be freed after the call (reuse is stream-ordered, so a later
    /// writer queues behind this kernel); host memory must not be passed.
    pub(crate) unsafe fn run(
        &mut self,
        dev: &CudaDevice,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        shared: u32,
    ) -> Result<()> {
        if self.overflow {
            return Err(Error::msg(format!(
                "cuda: launching {}: more kernel parameters than {MAX_PARAMS} or {} bytes",
                self.name,
                MAX_WORDS * 8
            )));
        }
        if grid.0 == 0 || grid.1 == 0 || grid.2 == 0 {
            return Ok(()); // nothing to do (empty arrays)
        }
        let base = self.words.as_mut_ptr();
        let mut ptrs = [std::ptr::null_mut::<std::ffi::c_void>(); MAX_PARAMS];
        for (p, &start) in ptrs.iter_mut().zip(&self.starts[..self.count]) {
            // SAFETY: `start` is the index of a word this launch wrote, inside `words`.
            *p = unsafe { base.add(start as usize) } as *mut std::ffi::c_void;
        }
        let ptrs = &mut ptrs[..self.count];
        // SAFETY: `ptrs` points at one value per parameter inside `words` (alive until the
        // call returns: the driver copies them at launch); their order, types and the device
        // addresses' extents are this fn's contract, stated by each caller.
        unsafe { result::launch_kernel(self.func.0, grid, block, shared, dev.cu_stream(), ptrs) }
            .map_err(|e| dev.error(&format!("launching {}", self.name), e))?;
        // A captured launch is a graph node whose topology tag is its function.
        dev.graph_note(self.func.0 as u64);
        Ok(())
    }

    /// A 1-D launch of `n` threads in blocks of 256, grid-stride beyond 65k blocks.
    ///
    /// # Safety
    /// As `run`.
    pub(crate) unsafe fn run_1d(&mut self, dev: &CudaDevice, n: usize) -> Result<()> {
        let blocks = n.div_ceil(256).clamp(1, 1 << 16) as u32;
        if n == 0 {
            return Ok(());
        }
        // SAFETY: forwarded: this fn's contract is `run`'s.
        unsafe { self.run(dev, (blocks, 1, 1), (256, 1, 1), 0) }
    }
}

/// The device buffer behind an input (an error if it is not on this backend's device).
pub(crate) fn cuda_buffer<'a>(data: &'a Data, dev: &CudaDevice) -> Result<&'a CudaBuffer> {
    match &*data.buffer {
        Buffer::Device(d) => d
            .as_any()
            .downcast_ref::<CudaBuffer>()
            .filter(|b| b.device().ordinal == dev.ordinal)
            .ok_or_else(|| {
                Error::msg(format!(
                    "cuda:{}: input lives on {}",
                    dev.ordinal,
                    d.device()
                ))
            }),
        Buffer::Host(_) => Err(Error::msg(format!(
            "cuda:{}: input lives in host memory (eval moves inputs first)",
            dev.ordinal
        ))),
    }
}

/// The device address of the view's first element (its buffer's base plus the offset).
pub(crate) fn ptr_at(arg: &Arg, dev: &CudaDevice) -> Result<u64> {
    Ok(cuda_buffer(&arg.data, dev)?.ptr() + (arg.data.offset * arg.dtype.size()) as u64)
}

/// The device address of the buffer's first element (kernels add a Layout's offset).
pub(crate) fn base_ptr(arg: &Arg, dev: &CudaDevice) -> Result<u64> {
    Ok(cuda_buffer(&arg.data, dev)?.ptr())
}

/// A new contiguous output of `shape`/`dtype` (uninitialized: the kernel writes every element).
pub(crate) fn output(dev: &Arc<CudaDevice>, shape: &[usize], dtype: DType) -> Result<(Data, u64)> {
    let bytes = crate::shape::numel(shape).saturating_mul(dtype.size());
    let buf = dev.alloc(bytes)?;
    let ptr = buf.ptr();
    Ok((Data::contiguous(Buffer::Device(Box::new(buf)), shape), ptr))
}

/// The C type name of a dtype in kernel sources (`common.cuh`).
pub(crate) fn c_type(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "float",
        DType::F16 => "f16_t",
        DType::BF16 => "bf16_t",
        DType::I32 => "int",
        DType::U32 => "u32",
        DType::U8 => "u8",
        DType::Bool => "bool_t",
    }
}

/// `common.cuh` followed by `body`: the start of every kernel source.
pub(crate) fn source(body: &str) -> String {
    let mut s = String::with_capacity(body.len() + 8192);
    s.push_str(include_str!("kernels/common.cuh"));
    s.push('\n');
    s.push_str(body);
    s
}
