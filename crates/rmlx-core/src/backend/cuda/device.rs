//! One CUDA device: its primary context, the stream all of its work is queued on, the memory
//! allocator, the compiled kernels and the pinned staging buffers for uploads.

use super::alloc::{Allocator, CudaBuffer};
use super::nvrtc;
use crate::buffer::HostBuffer;
use crate::error::{Error, Result};
use cudarc::driver::{result, sys, CudaContext, CudaStream};
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
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

/// Loaded kernels: hash of `key::entry` → (that name, the function).
type Functions = HashMap<u64, Vec<(Box<str>, Func)>>;

pub struct CudaDevice {
    pub(crate) ordinal: usize,
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    /// Compute capability (major, minor): kernels are compiled for exactly this.
    pub(crate) arch: (i32, i32),
    pub(crate) name: String,
    pub(crate) total_mem: usize,
    pub(crate) alloc: Allocator,
    /// Loaded kernels by `key::entry`, found through a hash of both (no string built per
    /// launch: a decode step looks up hundreds).
    functions: Mutex<Functions>,
    staging: Mutex<Option<Staging>>,
    /// Pinned buffers for `read_async`, free for reuse.
    reads: Mutex<Vec<Slot>>,
    small: Mutex<Option<SmallRing>>,
    /// The device's cuBLAS handle (bound to `stream`), created on first use.
    blas: OnceLock<std::result::Result<BlasHandle, String>>,
    /// Ops timed on the device while profiling (`timing.rs`).
    pub(crate) spans: Mutex<super::timing::Spans>,
    /// CUDA graph capture and the kept executable graphs (`graph.rs`).
    pub(crate) graphs: Mutex<super::graph::Graphs>,
    /// Whether a capture is open (read without the lock on every launch).
    pub(crate) capturing: AtomicBool,
    /// The stream is one sequence: a thread puts a whole op (or copy, or flush) on it while
    /// holding this, so another thread's work cannot land between a capture's end and its
    /// graph's launch (it would run before the work it depends on) or inside another op.
    queue: Mutex<()>,
}

/// A cuBLAS handle, used only under `CudaDevice::blas`'s mutex.
pub(crate) struct BlasHandle(pub(crate) Mutex<cudarc::cublas::sys::cublasHandle_t>);
// SAFETY: the raw handle is only used while holding its mutex (cuBLAS handles may move between
// threads; they must not be used by two threads at once), with the device's context current.
unsafe impl Send for BlasHandle {}
// SAFETY: as above: every access goes through the mutex.
unsafe impl Sync for BlasHandle {}

impl CudaDevice {
    /// Holds the stream for one thread's op, copy or flush (see `queue`). Taken only by the
    /// backend's entry points (`CudaBackend`'s trait methods), never inside them.
    pub(crate) fn lock_queue(&self) -> std::sync::MutexGuard<'_, ()> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

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
            reads: Mutex::new(Vec::new()),
            small: Mutex::new(None),
            blas: OnceLock::new(),
            spans: Mutex::default(),
            graphs: Mutex::new(super::graph::Graphs::new()),
            capturing: AtomicBool::new(false),
            queue: Mutex::new(()),
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
        let h = function_hash(key, entry);
        if let Some(f) = find_function(&self.lock_functions(), h, key, entry) {
            return Ok(f);
        }
        let src = source();
        let cubin = nvrtc::compile_cubin(&src, key, self.arch)?;
        self.bind()?;
        // Loading a module is no work for a captured stream: launch what is captured first.
        self.graph_flush()?;
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
                let hn = function_hash(key, &name);
                if find_function(&functions, hn, key, &name).is_none() {
                    let full: Box<str> = format!("{key}::{name}").into();
                    functions.entry(hn).or_default().push((full, Func(f)));
                }
            }
        }
        find_function(&functions, h, key, entry)
            .ok_or_else(|| Error::msg(format!("cuda: kernel {key} has no entry {entry}")))
    }

    fn lock_functions(&self) -> std::sync::MutexGuard<'_, Functions> {
        self.functions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn lock_small(&self) -> std::sync::MutexGuard<'_, Option<SmallRing>> {
        self.small.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Copies host bytes into a new device buffer. Large copies go through two pinned staging
    /// buffers in turn, so reading the source (an mmap'd file) overlaps the DMA.
    pub(crate) fn upload(self: &Arc<Self>, bytes: &[u8]) -> Result<CudaBuffer> {
        self.bind()?;
        if bytes.len() > SMALL_SLOT {
            // Copies from pageable memory or the staging buffers cannot be captured.
            self.graph_flush()?;
        }
        let buf = self.alloc(bytes.len())?;
        if bytes.len() <= SMALL_SLOT {
            // Small uploads (token ids, positions, scalars: many per decode step) go through a
            // pinned ring: a copy from pageable memory may wait for the whole stream, which
            // would stall the CPU behind every queued kernel. Inside a graph capture the copy
            // is a node of the graph, reading the slot when the graph runs.
            let mut guard = self.lock_small();
            if guard.is_none() {
                *guard = Some(SmallRing::new(self)?);
            }
            if self.graph_slots_held() >= SMALL_SLOTS / 2 {
                // The ring must not come round to a slot the unlaunched graph still reads.
                self.graph_flush_holding(&mut guard)?;
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
            // slot's event, recorded after the copy (below, or after the graph that captured
            // it is launched), completes.
            unsafe { result::memcpy_htod_async(buf.ptr(), &*pinned, self.cu_stream()) }
                .map_err(|e| self.error("upload", e))?;
            if !self.graph_take_slot(i) {
                ring.record(self, i)?;
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
        self.graph_flush()?;
        // SAFETY: the caller passes an address inside a live buffer with `out.len()` bytes
        // (this fn's contract); the stream is synchronized before `out` is read.
        unsafe { result::memcpy_dtoh_async(out, src, self.cu_stream()) }
            .map_err(|e| self.error("download", e))?;
        self.synchronize()
    }

    /// Queues a copy of `bytes` bytes at device address `src` into pinned host memory and
    /// returns without waiting; `PinnedRead::wait` waits for that copy.
    ///
    /// # Safety
    /// `src..src + bytes` must lie inside a live allocation of this device (its reuse is
    /// stream-ordered, so it may be dropped after the call).
    pub(crate) unsafe fn read_async(
        self: &Arc<Self>,
        src: sys::CUdeviceptr,
        bytes: usize,
    ) -> Result<PinnedRead> {
        self.bind()?;
        self.graph_flush()?;
        let slot = {
            let mut free = self.reads.lock().unwrap_or_else(|p| p.into_inner());
            match free.iter().position(|s| s.cap >= bytes) {
                Some(i) => free.swap_remove(i),
                None => Slot::new(self, bytes.max(4096))?,
            }
        };
        // SAFETY: the slot holds `cap >= bytes` pinned bytes that no queued copy uses (a slot
        // returns to the pool only after its copy completed).
        let pinned = unsafe { std::slice::from_raw_parts_mut(slot.ptr, bytes) };
        // SAFETY: the source lies in a live device allocation (this fn's contract); the pinned
        // destination is not read before the event recorded after the copy completes.
        unsafe {
            result::memcpy_dtoh_async(pinned, src, self.cu_stream())
                .map_err(|e| self.error("read_async", e))?;
            result::event::record(slot.done, self.cu_stream())
                .map_err(|e| self.error("read_async event", e))?;
        }
        Ok(PinnedRead {
            dev: self.clone(),
            slot: Some(slot),
            bytes,
        })
    }

    /// Waits for all work queued on the device's stream; reports a kernel fault here.
    pub(crate) fn synchronize(&self) -> Result<()> {
        self.bind()?;
        self.graph_flush()?;
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

/// FNV-1a of `key`, a separator and `entry`.
fn function_hash(key: &str, entry: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in key.as_bytes().iter().chain(b"::").chain(entry.as_bytes()) {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The kernel named `key::entry` among those of hash `h`.
fn find_function(map: &Functions, h: u64, key: &str, entry: &str) -> Option<Func> {
    map.get(&h)?.iter().find_map(|(name, f)| {
        let matches = name.len() == key.len() + 2 + entry.len()
            && name.starts_with(key)
            && name[key.len()..].starts_with("::")
            && name.ends_with(entry);
        matches.then_some(*f)
    })
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
pub(crate) struct SmallRing {
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

    /// Marks slot `i` busy until the work queued so far on the device's stream has run.
    pub(crate) fn record(&mut self, dev: &CudaDevice, i: usize) -> Result<()> {
        // SAFETY: the event belongs to this slot; the stream is the device's and is not being
        // captured (callers record outside captures).
        unsafe { result::event::record(self.slots[i].done, dev.cu_stream()) }
            .map_err(|e| dev.error("upload event", e))
    }
}
const STAGING_CHUNK: usize = 16 << 20;

struct Slot {
    ptr: *mut u8,
    cap: usize,
    done: sys::CUevent,
}

// SAFETY: a slot's pinned memory and event are used by one owner at a time (a ring under its
// mutex, or the one `PinnedRead` that took it out of the pool).
unsafe impl Send for Slot {}

/// A copy to pinned host memory in flight (`CudaDevice::read_async`).
pub(crate) struct PinnedRead {
    dev: Arc<CudaDevice>,
    /// Taken when waited for; returned to the device's pool after its copy completed.
    slot: Option<Slot>,
    bytes: usize,
}

impl PinnedRead {
    fn finish(&mut self) -> Result<Option<HostBuffer>> {
        let Some(slot) = self.slot.take() else {
            return Ok(None);
        };
        // SAFETY: the event was recorded right after the copy into the slot.
        let waited = unsafe { result::event::synchronize(slot.done) }
            .map_err(|e| self.dev.error("read_async wait", e));
        let out = waited.and_then(|()| {
            // SAFETY: the copy completed; the slot holds `bytes` initialized pinned bytes.
            let src = unsafe { std::slice::from_raw_parts(slot.ptr, self.bytes) };
            HostBuffer::from_slice(src)
        });
        self.dev
            .reads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(slot);
        out.map(Some)
    }
}

impl crate::readback::HostRead for PinnedRead {
    fn wait(mut self: Box<Self>) -> Result<HostBuffer> {
        self.finish()?
            .ok_or_else(|| Error::msg("read_async: waited for twice"))
    }
}

impl Drop for PinnedRead {
    fn drop(&mut self) {
        // Never waited for: the slot goes back to the pool only once its copy is done.
        let _ = self.finish();
    }
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
        Ok(Slot {
            ptr,
            cap: bytes,
            done,
        })
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
