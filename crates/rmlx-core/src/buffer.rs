//! Buffers owned by a device. A host buffer is either owned (64-byte aligned, writable) or a
//! read-only view into memory someone else owns (an mmap'd model file). Device buffers are
//! opaque handles a GPU backend defines: they are not host pointers.

use crate::device::Device;
use crate::dtype::Element;
use crate::error::{Error, Result};
use std::any::Any;
use std::sync::Arc;

/// A 64-byte aligned unit of host memory (SIMD loads and cache lines).
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub struct Line(pub(crate) [u8; 64]);

/// Memory we do not own but may read for as long as we hold the `Arc` (an mmap, a static table).
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Host memory: owned lines or a view into shared bytes. Opaque: `bytes` builds a slice of
/// `len` bytes from the owned lines by raw pointer, so only the constructors here may pair
/// lines with a length (at least `len` bytes of lines, checked in `owned`).
pub struct HostBuffer(Host);

enum Host {
    Owned {
        lines: Vec<Line>,
        len: usize,
    },
    Mapped {
        source: SharedBytes,
        offset: usize,
        len: usize,
    },
}

/// Largest single host allocation we accept; guards against sizes taken from corrupt inputs.
pub const MAX_HOST_ALLOC: usize = 1 << 40;

impl HostBuffer {
    /// A zero-filled buffer of `len` bytes.
    pub fn zeroed(len: usize) -> Result<Self> {
        if len > MAX_HOST_ALLOC {
            return Err(Error::OutOfMemory(format!(
                "host buffer: refusing to allocate {len} bytes"
            )));
        }
        let n = len.div_ceil(64);
        if let Some(lines) = crate::buffer_cache::take_zeroed(n) {
            return Ok(Self::owned(lines, len));
        }
        let mut lines = Vec::new();
        lines
            .try_reserve_exact(n)
            .map_err(|_| Error::OutOfMemory(format!("host buffer: cannot allocate {len} bytes")))?;
        lines.resize(n, Line([0; 64]));
        Ok(Self::owned(lines, len))
    }

    /// Owned lines holding `len` bytes: the invariant `bytes` relies on.
    fn owned(lines: Vec<Line>, len: usize) -> Self {
        assert!(
            lines.len() * 64 >= len,
            "host buffer: {len} bytes in {} lines",
            lines.len()
        );
        HostBuffer(Host::Owned { lines, len })
    }

    pub fn from_slice<T: Element>(data: &[T]) -> Result<Self> {
        let mut b = Self::zeroed(std::mem::size_of_val(data))?;
        b.as_mut_slice::<T>()
            .expect("freshly allocated buffer is owned")
            .copy_from_slice(data);
        Ok(b)
    }

    pub fn mapped(source: SharedBytes, offset: usize, len: usize) -> Result<Self> {
        let total = (*source).as_ref().len();
        if offset.checked_add(len).is_none_or(|end| end > total) {
            return Err(Error::format(format!(
                "host buffer: view [{offset}, {offset}+{len}) is outside a source of {total} bytes"
            )));
        }
        Ok(HostBuffer(Host::Mapped {
            source,
            offset,
            len,
        }))
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Host::Owned { len, .. } | Host::Mapped { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.0 {
            Host::Owned { lines, len } => {
                // SAFETY: `lines` holds at least `len` initialized bytes (`owned` checks it,
                // and no other code builds an owned buffer); `Line` is a plain byte array.
                unsafe { std::slice::from_raw_parts(lines.as_ptr() as *const u8, *len) }
            }
            Host::Mapped {
                source,
                offset,
                len,
            } => &(**source).as_ref()[*offset..*offset + *len],
        }
    }

    pub fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        match &mut self.0 {
            Host::Owned { lines, len } => {
                let p = lines.as_mut_ptr() as *mut u8;
                // SAFETY: as in `bytes`, and we hold `&mut self`.
                Some(unsafe { std::slice::from_raw_parts_mut(p, *len) })
            }
            Host::Mapped { .. } => None,
        }
    }

    /// The buffer as a slice of `T`. Fails if the view is misaligned for `T` (possible for
    /// mapped files) or its length is not a multiple of `T`'s size.
    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        cast_slice(self.bytes())
    }

    pub fn as_mut_slice<T: Element>(&mut self) -> Result<&mut [T]> {
        let b = self.bytes_mut().ok_or_else(|| {
            Error::msg("host buffer: a mapped (read-only) buffer cannot be written")
        })?;
        let size = std::mem::size_of::<T>();
        if !(b.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()) || b.len() % size != 0 {
            return Err(Error::msg("host buffer: misaligned for the element type"));
        }
        check_bools::<T>(b)?;
        // SAFETY: alignment and length checked; `Element` is sealed to padding-free types for
        // which every bit pattern is valid, except bool, whose bytes were checked to be 0/1
        // (and a &mut [bool] can only write 0/1 back).
        Ok(unsafe { std::slice::from_raw_parts_mut(b.as_mut_ptr() as *mut T, b.len() / size) })
    }
}

impl Drop for HostBuffer {
    /// Owned memory goes to the buffer cache for the next allocation of its size.
    fn drop(&mut self) {
        if let Host::Owned { lines, .. } = &mut self.0 {
            crate::buffer_cache::give(std::mem::take(lines));
        }
    }
}

/// Reinterprets bytes as `T` after checking alignment and length.
pub fn cast_slice<T: Element>(b: &[u8]) -> Result<&[T]> {
    let size = std::mem::size_of::<T>();
    if !(b.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(Error::format(format!(
            "host buffer: data at {:p} is not aligned for {}",
            b.as_ptr(),
            T::DTYPE
        )));
    }
    if !b.len().is_multiple_of(size) {
        return Err(Error::format(format!(
            "host buffer: {} bytes is not a whole number of {} elements",
            b.len(),
            T::DTYPE
        )));
    }
    check_bools::<T>(b)?;
    // SAFETY: alignment and length checked above; `Element` is sealed to padding-free types
    // for which every bit pattern is valid, except bool, whose bytes were checked to be 0/1.
    Ok(unsafe { std::slice::from_raw_parts(b.as_ptr() as *const T, b.len() / size) })
}

/// A bool is a byte holding 0 or 1; any other byte (a corrupt or hostile model file, or bytes
/// written through `bytes_mut`) would make a &[bool] undefined behavior, so it is an error.
fn check_bools<T: Element>(b: &[u8]) -> Result<()> {
    if T::DTYPE == crate::dtype::DType::Bool {
        if let Some(at) = b.iter().position(|&x| x > 1) {
            return Err(Error::format(format!(
                "host buffer: byte {at} of a bool buffer is {}, expected 0 or 1",
                b[at]
            )));
        }
    }
    Ok(())
}

/// A buffer that lives on a GPU. Backends downcast through `as_any`.
pub trait DeviceBuffer: Send + Sync {
    fn device(&self) -> Device;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn as_any(&self) -> &dyn Any;
}

pub enum Buffer {
    Host(HostBuffer),
    Device(Box<dyn DeviceBuffer>),
}

impl Buffer {
    pub fn device(&self) -> Device {
        match self {
            Buffer::Host(_) => Device::Cpu,
            Buffer::Device(d) => d.device(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Buffer::Host(h) => h.len(),
            Buffer::Device(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn host(&self) -> Result<&HostBuffer> {
        match self {
            Buffer::Host(h) => Ok(h),
            Buffer::Device(d) => Err(Error::msg(format!(
                "buffer: expected host memory, found a buffer on {}",
                d.device()
            ))),
        }
    }

    pub fn host_mut(&mut self) -> Result<&mut HostBuffer> {
        match self {
            Buffer::Host(h) => Ok(h),
            Buffer::Device(d) => Err(Error::msg(format!(
                "buffer: expected host memory, found a buffer on {}",
                d.device()
            ))),
        }
    }
}
