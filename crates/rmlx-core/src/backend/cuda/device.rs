//! One CUDA device: its primary context, the stream all of its work is queued on, the memory
//! allocator, the compiled kernels and the pinned staging buffers for uploads.

use super::alloc::{Allocator, CudaBuffer};
use super::nvrtc;
use crate::error::{Error, Result};
use cudarc::driver::{result, sys, CudaContext, CudaStream};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// A kernel entry point. Raw driver handles are plain pointers, valid for the device's life
/// (modules are never unloaded).
#[derive(Clone, Copy)]
pub(crate) struct Func(pub(crate) sys::CUfunction);
// SAFETY: a CUfunction is an immutable handle; the driver allows using it from any thread
// with its context current.
unsafe impl Send for Func {}
// SAFETY: as above.
unsafe impl Sync for Func {}

pub struct CudaDevice {
    pub(crate) ordinal: usize,
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    /// Compute capability (major, minor): kernels are compiled for exactly this.
    pub(crate) arch: (i32, i32),
    pub(crate) name: String,
    pub(crate) total_mem: usize,
    pub(crate) alloc: Allocator,
    functions: Mutex<HashMap<String, Func>>,
    staging: Mutex<Option<Staging>>,
    small: Mutex<Option<SmallRing>>,
    /// The device's cuBLAS handle (bound to `stream`), created on first use.
    blas: OnceLock<std::result::Result<BlasHandle, String>>,
    /// Ops timed on the device while profiling (`timing.rs`).
    pub(crate) spans: Mutex<super::timing::Spans>,
}

/// A cuBLAS handle, used only under `CudaDevice::blas`'s mutex.
pub(crate) struct BlasHandle(pub(crate) Mutex<cudarc::cublas::sys::cublasHandle_t>);
// SAFETY: the raw handle is only used while holding its mutex (cuBLAS handles may move between
// threads; they must not be used by two threads at once), with the device's context current.
unsafe impl Send for BlasHandle {}
// SAFETY: as above: every access goes through the mutex.
unsafe impl Sync for BlasHandle {}

impl CudaDevice {
    /// Opens device `ordinal` (primary context, one non-blocking stream).
    pub(crate) fn open(ordinal: usize) -> Result<Arc<CudaDevice>> {
        let err = |what: &str, e: &dyn std::fmt::Display| {
            Error::msg(format!("cuda:{ordinal}: {what}: {e}"))
        };
        let ctx = CudaContext::new(ordinal).map_err(|e| err("cannot open the device", &e))?;
        let arch = ctx
            .compute_capability()
            .map_err(|e| err("cannot read its compute capability", &e))?;
        if arch.0 < 8 {
            return Err(Error::msg(format!(
                "cuda:{ordinal}: compute capability {}.{} is older than the 8.0 (Ampere) that \
                 rmlx's kernels need",
                arch.0, arch.1
            )));
        }
        let name = ctx.name().unwrap_or_else(|_| "NVIDIA GPU".into());
        let total_mem = ctx
            .total_mem()
            .map_err(|e| err("cannot read its memory", &e))?;
        let stream = ctx
            .new_stream()
            .map_err(|e| err("cannot create a stream", &e))?;
        Ok(Arc::new(CudaDevice {
            ordinal,
            ctx,
            stream,
            arch,
            name,
            total_mem,
            alloc: Allocator::new(total_mem),
            functions: Mutex::new(HashMap::new()),
            staging: Mutex::new(None),
            small: Mutex::new(None),
            blas: OnceLock::new(),
            spans: Mutex::default(),
        }))
    }

    /// Makes the context current on the calling thread (cheap; needed before raw driver calls).
    pub(crate) fn bind(&self) -> Result<()> {
        thread_local! {
            // The context this thread last made current (1 + ordinal; 0: none): binding is a
            // driver call, and every op binds. cudarc's own calls made through a device bind
            // that same device's primary context, so the record stays true.
            static BOUND: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
        }
        if BOUND.with(|b| b.get()) == self.ordinal + 1 {
            return Ok(());
        }
        self.ctx
            .bind_to_thread()
            .map_err(|e| Error::msg(format!("cuda:{}: cannot bind context: {e}", self.ordinal)))?;
        BOUND.with(|b| b.set(self.ordinal + 1));
        Ok(())
    }

    pub(crate) fn cu_stream(&self) -> sys::CUstream {
        self.stream.cu_stream()
    }

    pub(crate) fn error(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::msg(format!("cuda:{}: {what}: {e}", self.ordinal))
    }

    /// Uninitialized device memory for `bytes`.
    pub(crate) fn alloc(self: &Arc<Self>, bytes: usize) -> Result<CudaBuffer> {
        self.alloc.alloc(self, bytes)
    }

    /// The kernel `entry` of the source `source()` builds, compiled once per `key` (a key
    /// names the source exactly: family, op, dtypes…; the source is only built on a miss).
    pub(crate) fn function(
        &self,
        key: &str,
        source: impl FnOnce() -> String,
        entry: &str,
    ) -> Result<Func> {
        let full_key = format!("{key}::{entry}");
        if let Some(f) = self.lock_functions().get(&full_key) {
            return Ok(*f);
        }
        let src = source();
        let cubin = nvrtc::compile_cubin(&src, key, self.arch)?;
        self.bind()?;
        // SAFETY: `cubin` is a complete image NVRTC produced for this device's architecture
        // (or a checksummed cache entry of one); the context is current.
        let module = unsafe { result::module::load_data(cubin.as_ptr() as *const _) }
            .map_err(|e| self.error(&format!("loading kernel {key}"), e))?;
        let mut functions = self.lock_functions();
        // Every entry of the module is registered, so sibling kernels do not reload it.
        for name in entries(&src) {
            let cname = std::ffi::CString::new(name.as_str()).expect("identifiers have no NUL");
            // SAFETY: `module` is loaded and stays loaded for the device's life.
            if let Ok(f) = unsafe { result::module::get_function(module, cname) } {
                functions.insert(format!("{key}::{name}"), Func(f));
            }
        }
        functions
            .get(&full_key)
            .copied()
            .ok_or_else(|| Error::msg(format!("cuda: kernel {key} has no entry {entry}")))
    }

    fn lock_functions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Func>> {
        self.functions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Copies host bytes into a new device buffer. Large copies go through two pinned staging
    /// buffers in turn, so reading the source (an mmap'd file) overlaps the DMA.
    pub(crate) fn upload(self: &Arc<Self>, bytes: &[u8]) -> Result<CudaBuffer> {
        self.bind()?;
        let buf = self.alloc(bytes.len())?;
        if bytes.len() <= SMALL_SLOT {
            // Small uploads (token ids, positions, scalars: many per decode step) go through a
            // pinned ring: a copy from pageable memory may wait for the whole stream, which
            // would stall the CPU behind every queued kernel.
            let mut guard = self.small.lock().unwrap_or_else(|p| p.into_inner());
            if guard.is_none() {
                *guard = Some(SmallRing::new(self)?);
            }
            let ring = guard.as_mut().expect("created above");
            let i = ring.next;
            ring.next = (i + 1) % ring.slots.len();
            let slot = &mut ring.slots[i];
            // SAFETY: the event was recorded after this slot's last copy was queued (or never);
            // once it has completed nothing reads the slot.
            unsafe { result::event::synchronize(slot.done) }
                .map_err(|e| self.error("upload wait", e))?;
            // SAFETY: the slot holds SMALL_SLOT pinned bytes and no copy reads it any more.
            let pinned = unsafe { std::slice::from_raw_parts_mut(slot.ptr, bytes.len()) };
            pinned.copy_from_slice(bytes);
            // SAFETY: destination inside `buf`; the pinned source stays untouched until the
            // event recorded right after the copy completes.
            unsafe {
                result::memcpy_htod_async(buf.ptr(), &*pinned, self.cu_stream())
                    .map_err(|e| self.error("upload", e))?;
                result::event::record(slot.done, self.cu_stream())
                    .map_err(|e| self.error("upload event", e))?;
            }
            return Ok(buf);
        }
        if bytes.len() < STAGING_MIN {
            // SAFETY: `buf` holds at least `bytes.len()` bytes; a copy from pageable memory
            // has consumed the source when the call returns.
            unsafe { result::memcpy_htod_async(buf.ptr(), bytes, self.cu_stream()) }
                .map_err(|e| self.error("upload", e))?;
            return Ok(buf);
        }
        let mut guard = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(Staging::new(self)?);
        }
        let staging = guard.as_mut().expect("created above");
        for (i, chunk) in bytes.chunks(STAGING_CHUNK).enumerate() {
            let slot = &mut staging.slots[i % 2];
            // SAFETY: the event was recorded after the last copy out of this slot (or never).
            unsafe { result::event::synchronize(slot.done) }
                .map_err(|e| self.error("upload wait", e))?;
            // SAFETY: the slot holds STAGING_CHUNK pinned bytes, no copy reads it any more.
            let pinned = unsafe { std::slice::from_raw_parts_mut(slot.ptr, chunk.len()) };
            pinned.copy_from_slice(chunk);
            // SAFETY: destination is inside `buf`; the pinned source stays untouched until the
            // event recorded right after the copy completes.
            unsafe {
                result::memcpy_htod_async(
                    buf.ptr() + (i * STAGING_CHUNK) as u64,
                    &*pinned,
                    self.cu_stream(),
                )
                .map_err(|e| self.error("upload", e))?;
                result::event::record(slot.done, self.cu_stream())
                    .map_err(|e| self.error("upload event", e))?;
            }
        }
        Ok(buf)
    }

    /// Copies `out.len()` bytes at device address `src` to the host and waits for them.
    ///
    /// # Safety
    /// `src..src + out.len()` must lie inside a live allocation of this device.
    pub(crate) unsafe fn download(&self, src: sys::CUdeviceptr, out: &mut [u8]) -> Result<()> {
        self.bind()?;
        // SAFETY: the caller passes an address inside a live buffer with `out.len()` bytes
        // (this fn's contract); the stream is synchronized before `out` is read.
        unsafe { result::memcpy_dtoh_async(out, src, self.cu_stream()) }
            .map_err(|e| self.error("download", e))?;
        self.synchronize()
    }

    /// Waits for all work queued on the device's stream; reports a kernel fault here.
    pub(crate) fn synchronize(&self) -> Result<()> {
        self.bind()?;
        self.stream
            .synchronize()
            .map_err(|e| self.error("a kernel failed", e))
    }

    /// The device's cuBLAS handle, created (and bound to the device's stream) on first use; a
    /// clear error where libcublas cannot be loaded.
    pub(crate) fn blas(&self) -> Result<&BlasHandle> {
        self.blas
            .get_or_init(|| {
                use cudarc::cublas::{result as blas, sys as blas_sys};
                // SAFETY: only tries to open the shared library; calls nothing in it.
                if !unsafe { blas_sys::is_culib_present() } {
                    return Err(format!(
                        "cuda:{}: cuBLAS (libcublas) was not found: install the CUDA toolkit's \
                         cuBLAS, or the PyPI package nvidia-cublas, and put it on the library path",
                        self.ordinal
                    ));
                }
                self.bind().map_err(|e| e.to_string())?;
                let h = blas::create_handle().map_err(|e| {
                    format!("cuda:{}: cannot create a cuBLAS handle: {e}", self.ordinal)
                })?;
                // SAFETY: `h` was just created; the stream lives as long as the device.
                unsafe { blas::set_stream(h, self.cu_stream() as _) }
                    .map_err(|e| format!("cuda:{}: cuBLAS set_stream: {e}", self.ordinal))?;
                Ok(BlasHandle(Mutex::new(h)))
            })
            .as_ref()
            .map_err(|e| Error::msg(e.clone()))
    }

    pub(crate) fn memory_in_use(&self) -> usize {
        self.alloc.in_use()
    }
}

/// The `extern "C" __global__ void NAME(` entries of a source.
fn entries(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("__global__") {
        rest = &rest[i + "__global__".len()..];
        let head = rest.split('(').next().unwrap_or("");
        if let Some(name) = head.split_whitespace().last() {
            out.push(name.to_string());
        }
    }
    out
}

const STAGING_MIN: usize = 1 << 20;
const SMALL_SLOT: usize = 16 << 10;
const SMALL_SLOTS: usize = 256;

/// Pinned slots for small uploads, used in turn.
struct SmallRing {
    slots: Vec<Slot>,
    next: usize,
}

// SAFETY: the pinned pointers and events are only used under the device's `small` mutex.
unsafe impl Send for SmallRing {}

impl SmallRing {
    fn new(dev: &CudaDevice) -> Result<SmallRing> {
        let slots = (0..SMALL_SLOTS)
            .map(|_| Slot::new(dev, SMALL_SLOT))
            .collect::<Result<Vec<_>>>()?;
        Ok(SmallRing { slots, next: 0 })
    }
}
const STAGING_CHUNK: usize = 16 << 20;

struct Slot {
    ptr: *mut u8,
    done: sys::CUevent,
}

/// Two pinned host buffers that uploads alternate between.
struct Staging {
    slots: [Slot; 2],
}

// SAFETY: the pinned pointers and events are only used under the device's staging mutex.
unsafe impl Send for Staging {}

impl Slot {
    fn new(dev: &CudaDevice, bytes: usize) -> Result<Slot> {
        // SAFETY: a plain pinned allocation; never freed (it lives as long as the device, i.e.
        // the process).
        let ptr = unsafe { result::malloc_host(bytes, 0) }
            .map_err(|e| dev.error("pinned staging buffer", e))? as *mut u8;
        let done = result::event::create(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING)
            .map_err(|e| dev.error("event", e))?;
        Ok(Slot { ptr, done })
    }
}

impl Staging {
    fn new(dev: &CudaDevice) -> Result<Staging> {
        Ok(Staging {
            slots: [
                Slot::new(dev, STAGING_CHUNK)?,
                Slot::new(dev, STAGING_CHUNK)?,
            ],
        })
    }
}

type DeviceSlot = OnceLock<std::result::Result<Arc<CudaDevice>, String>>;
static DEVICES: OnceLock<Vec<DeviceSlot>> = OnceLock::new();

/// The devices opened so far.
pub(crate) fn opened() -> Vec<Arc<CudaDevice>> {
    DEVICES.get().map_or_else(Vec::new, |table| {
        table
            .iter()
            .filter_map(|slot| slot.get().and_then(|d| d.as_ref().ok()).cloned())
            .collect()
    })
}

/// Process-wide device table: each ordinal is opened on first use and kept.
pub(crate) fn get(ordinal: usize) -> Result<Arc<CudaDevice>> {
    let table = DEVICES.get_or_init(|| {
        (0..super::device_count())
            .map(|_| OnceLock::new())
            .collect()
    });
    let slot = table.get(ordinal).ok_or_else(|| {
        Error::msg(format!(
            "cuda:{ordinal}: no such device ({} CUDA device(s) usable here)",
            table.len()
        ))
    })?;
    slot.get_or_init(|| CudaDevice::open(ordinal).map_err(|e| e.to_string()))
        .clone()
        .map_err(Error::msg)
}

#[cfg(test)]
mod tests {
    /// Every kernel source's entries are found by name (a qualifier such as
    /// `__launch_bounds__` between `void` and the name would register the wrong one).
    #[test]
    fn kernel_entries_are_found_by_name() {
        for (key, src) in super::super::kernel_sources() {
            let names = super::entries(&src);
            assert!(!names.is_empty(), "{key}: no entries");
            for n in names {
                assert!(
                    !n.starts_with("__") && n.chars().all(|c| c.is_alphanumeric() || c == '_'),
                    "{key}: entry parsed as {n:?}"
                );
            }
        }
    }
}
