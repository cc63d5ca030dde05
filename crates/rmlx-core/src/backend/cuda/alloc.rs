//! Device memory: plain `cuMemAlloc` allocations (never managed memory) behind a free cache
//! keyed by rounded size, as MLX's CUDA allocator and PyTorch's caching allocator do.
//!
//! Reuse is stream-ordered: all work of a device runs on its one stream, so a buffer freed by
//! the host while kernels that read it are still queued can be handed to the next allocation at
//! once: whatever writes it next is queued behind those kernels. (A second stream would have to
//! record an event at free and wait on it at reuse.) This is why the encoder need not hold
//! device inputs alive, and why holding them never blocks donation.

use super::device::CudaDevice;
use crate::buffer::DeviceBuffer;
use crate::device::Device;
use crate::error::{Error, Result};
use cudarc::driver::{result, sys};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Sizes are rounded so that buffers of nearby sizes share a bucket: to 512 B below 1 MiB
/// (powers of two would waste up to half), to 2 MiB above.
fn bucket(bytes: usize) -> usize {
    let b = bytes.max(1);
    if b < (1 << 20) {
        b.div_ceil(512) * 512
    } else {
        b.div_ceil(2 << 20) * (2 << 20)
    }
}

pub(crate) struct Allocator {
    state: Mutex<State>,
    /// Most bytes live (in use + cached) at once; past it the cache is emptied, then an
    /// allocation fails with an error naming the device and size.
    limit: usize,
    /// Most bytes kept in the free cache.
    cache_limit: usize,
}

#[derive(Default)]
struct State {
    free: HashMap<usize, Vec<sys::CUdeviceptr>>,
    cached: usize,
    in_use: usize,
}

impl Allocator {
    pub(crate) fn new(total: usize) -> Self {
        let limit = std::env::var("RMLX_CUDA_MEMORY_LIMIT_MB")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .map(|mb| mb << 20)
            .unwrap_or(total / 100 * 95);
        Allocator {
            state: Mutex::new(State::default()),
            limit,
            cache_limit: limit / 4,
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes in use by live buffers.
    pub(crate) fn in_use(&self) -> usize {
        self.lock().in_use
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Uninitialized device memory of at least `bytes` (the context must be current).
    pub(crate) fn alloc(&self, dev: &Arc<CudaDevice>, bytes: usize) -> Result<CudaBuffer> {
        if bytes > self.limit {
            // Also keeps `bucket` and the sums below from overflowing (a shape too large to
            // count asks for usize::MAX bytes).
            return Err(self.oom(dev, bytes, self.in_use(), "the memory limit"));
        }
        let cap = bucket(bytes);
        let mut st = self.lock();
        if let Some(ptr) = st.free.get_mut(&cap).and_then(|v| v.pop()) {
            st.cached -= cap;
            st.in_use += cap;
            return Ok(CudaBuffer::new(dev, ptr, bytes, cap));
        }
        if st.in_use + st.cached + cap > self.limit {
            st = self.release_cache_flushed(dev, st)?;
        }
        if st.in_use + cap > self.limit {
            return Err(self.oom(dev, bytes, st.in_use, "the memory limit"));
        }
        drop(st);
        // SAFETY: the device's context is current on this thread (the backend binds it before
        // any call); the memory is returned uninitialized and every kernel writes before reading.
        let ptr = match unsafe { result::malloc_sync(cap) } {
            Ok(p) => p,
            Err(_) => {
                // Out of memory on the card: give back what the cache holds, then try once more.
                drop(self.release_cache_flushed(dev, self.lock())?);
                // SAFETY: as above.
                unsafe { result::malloc_sync(cap) }.map_err(|e| {
                    self.oom(dev, bytes, self.in_use(), &format!("the driver ({e})"))
                })?
            }
        };
        self.lock().in_use += cap;
        Ok(CudaBuffer::new(dev, ptr, bytes, cap))
    }

    fn oom(&self, dev: &CudaDevice, bytes: usize, in_use: usize, by: &str) -> Error {
        Error::OutOfMemory(format!(
            "cuda:{}: out of memory allocating {} MiB ({} MiB in use, limit {} MiB, refused by {by})",
            dev.ordinal,
            bytes.div_ceil(1 << 20),
            in_use >> 20,
            self.limit >> 20
        ))
    }

    /// Empties the cache, after launching an open graph capture: the blocks freed while it was
    /// open may still be read by it.
    fn release_cache_flushed<'a>(
        &'a self,
        dev: &CudaDevice,
        st: std::sync::MutexGuard<'a, State>,
    ) -> Result<std::sync::MutexGuard<'a, State>> {
        let mut st = st;
        if dev.capturing() {
            drop(st);
            dev.graph_flush()?;
            st = self.lock();
        }
        Self::release_cache(&mut st);
        Ok(st)
    }

    fn release_cache(st: &mut State) {
        for (_, ptrs) in st.free.drain() {
            for p in ptrs {
                // SAFETY: cached pointers came from cuMemAlloc and are owned by no buffer.
                // cuMemFree synchronizes with outstanding work on the memory.
                unsafe {
                    let _ = result::free_sync(p);
                }
            }
        }
        st.cached = 0;
    }

    fn give_back(&self, dev: &CudaDevice, ptr: sys::CUdeviceptr, cap: usize) {
        let mut st = self.lock();
        st.in_use -= cap;
        // While a graph capture is open the block may still be read by its unlaunched graph:
        // it is cached whatever the cache holds (reuse is stream-ordered, freeing is not).
        if st.cached + cap > self.cache_limit && !dev.capturing() {
            drop(st);
            let _ = dev.bind();
            // SAFETY: `ptr` came from cuMemAlloc and its buffer is gone.
            unsafe {
                let _ = result::free_sync(ptr);
            }
            return;
        }
        st.cached += cap;
        st.free.entry(cap).or_default().push(ptr);
    }

    /// Frees every cached block (the cache is rebuilt on demand). The context must be current.
    pub(crate) fn clear_cache(&self, dev: &CudaDevice) -> Result<()> {
        drop(self.release_cache_flushed(dev, self.lock())?);
        Ok(())
    }
}

/// A device allocation: `len` bytes usable, `cap` bytes reserved. Returns to the cache on drop.
pub struct CudaBuffer {
    dev: Arc<CudaDevice>,
    ptr: sys::CUdeviceptr,
    len: usize,
    cap: usize,
}

impl CudaBuffer {
    fn new(dev: &Arc<CudaDevice>, ptr: sys::CUdeviceptr, len: usize, cap: usize) -> Self {
        CudaBuffer {
            dev: dev.clone(),
            ptr,
            len,
            cap,
        }
    }

    /// The device address of the first byte.
    pub fn ptr(&self) -> sys::CUdeviceptr {
        self.ptr
    }

    pub(crate) fn device(&self) -> &Arc<CudaDevice> {
        &self.dev
    }
}

impl Drop for CudaBuffer {
    fn drop(&mut self) {
        self.dev.alloc.give_back(&self.dev, self.ptr, self.cap);
    }
}

impl DeviceBuffer for CudaBuffer {
    fn device(&self) -> Device {
        Device::Cuda(self.dev.ordinal)
    }
    fn len(&self) -> usize {
        self.len
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
