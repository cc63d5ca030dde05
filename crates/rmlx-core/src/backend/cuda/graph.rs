//! CUDA graphs over the encoded work (issue #11). While an eval encodes, the device's stream is
//! captured (relaxed mode) into a graph of up to `RMLX_CUDA_GRAPH_NODES` nodes, which is then
//! launched as one: the driver validates and submits one graph instead of every kernel, and the
//! GPU runs the nodes back to back. Executable graphs are kept by topology — the sequence of
//! kernels, copies and library calls the capture recorded — and updated in place with the next
//! capture's parameters (addresses, sizes, grid dims), so a decode step instantiates its graphs
//! once and afterwards only updates and launches them (MLX's CUDA backend and llama.cpp do the
//! same). Capturing in chunks lets the GPU start on the first kernels while the host is still
//! capturing the rest of the step.
//!
//! Nothing that needs the stream to be real may run inside a capture, so:
//! - waiting (downloads, `synchronize`, profiling events) flushes the capture first;
//! - uploads bigger than a small pinned slot (copies from pageable memory, the staging buffers
//!   of large uploads) flush first; small ones are captured as copies from their pinned slot,
//!   and the slot's reuse waits for an event recorded after the graph is launched;
//! - device memory is not freed while a capture is open (the graph still reads blocks the host
//!   has dropped): the allocator caches them instead, and flushes before emptying its cache;
//! - loading a newly compiled kernel's module flushes first.
//!
//! `RMLX_CUDA_GRAPHS=0` encodes kernel by kernel as before; profiling with device timing
//! (`bench --profile`) does too, since it brackets each op with events.

use super::device::CudaDevice;
use crate::error::{Error, Result};
use cudarc::driver::sys;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// Executable graphs kept per device; the least recently used beyond it is destroyed.
const MAX_EXECS: usize = 256;

/// Nodes a capture holds before it is launched, unless `RMLX_CUDA_GRAPH_NODES` says otherwise.
/// Measured on an H100 (docs/PERFORMANCE.md, session 8): 32 beat 128 and 1000 for gpt-oss-20b
/// and SmolLM2 decode — the GPU starts sooner, and the host's cost per node was no higher.
const DEFAULT_CHUNK: usize = 32;

/// What the device's graphs did so far (cumulative; `rmlx bench --json` reports it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GraphStats {
    /// Graphs launched.
    pub launched: u64,
    /// Of those, how many needed a new executable graph (a topology not seen or evicted).
    pub instantiated: u64,
    /// How many reused an executable graph, updated with the new parameters.
    pub updated: u64,
    /// Nodes (kernels, copies) launched through graphs.
    pub nodes: u64,
    /// Host time spent ending captures (µs): with updating, instantiating and launching, what
    /// graphs cost the host beyond the kernel launches they record.
    pub end_us: u64,
    /// Host time in `cuGraphExecUpdate` (µs).
    pub update_us: u64,
    /// Host time instantiating executable graphs (µs).
    pub instantiate_us: u64,
    /// Host time in `cuGraphLaunch` (µs).
    pub launch_us: u64,
}

/// Microseconds since `t0`, for the host-time counters.
fn us_since(t0: std::time::Instant) -> u64 {
    t0.elapsed().as_micros() as u64
}

/// The device's graph state, under `CudaDevice::graphs`' mutex.
pub(crate) struct Graphs {
    enabled: bool,
    chunk: usize,
    active: Option<Capture>,
    execs: HashMap<u64, Exec>,
    clock: u64,
    pub(crate) stats: GraphStats,
}

// SAFETY: the raw graph handles are only used under the device's `graphs` mutex, with the
// device's context current; the driver allows using them from any thread.
unsafe impl Send for Graphs {}

/// The capture in progress.
#[derive(Default)]
struct Capture {
    /// Hash of the recorded node sequence: the topology an executable graph is kept by.
    key: u64,
    nodes: usize,
    /// Small-upload slots the captured copies read; their events are recorded after launch.
    slots: Vec<usize>,
}

struct Exec {
    exec: sys::CUgraphExec,
    used: u64,
}

impl Graphs {
    pub(crate) fn new() -> Graphs {
        let enabled = std::env::var("RMLX_CUDA_GRAPHS").map_or(true, |v| v != "0");
        let chunk = std::env::var("RMLX_CUDA_GRAPH_NODES")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(DEFAULT_CHUNK);
        Graphs {
            enabled,
            chunk,
            active: None,
            execs: HashMap::new(),
            clock: 0,
            stats: GraphStats::default(),
        }
    }

    /// Launches `graph` (of `nodes` nodes, topology `key`) through a kept executable graph,
    /// updated to its parameters, or a new one.
    fn launch(&mut self, dev: &CudaDevice, graph: sys::CUgraph, key: u64) -> Result<()> {
        self.clock += 1;
        let clock = self.clock;
        let mut exec = None;
        if let Some(e) = self.execs.get_mut(&key) {
            // SAFETY: a plain C struct (an enum and two node handles) for which zero is valid.
            let mut info: sys::CUgraphExecUpdateResultInfo = unsafe { std::mem::zeroed() };
            let t0 = std::time::Instant::now();
            // SAFETY: both handles are live (the exec is kept here, the graph was just
            // captured); `info` is a plain out-parameter.
            let r = unsafe { sys::cuGraphExecUpdate_v2(e.exec, graph, &mut info) };
            self.stats.update_us += us_since(t0);
            if r == sys::CUresult::CUDA_SUCCESS {
                e.used = clock;
                self.stats.updated += 1;
                exec = Some(e.exec);
            } else if let Some(old) = self.execs.remove(&key) {
                // Same hash, different graph (or a change update cannot make): start over.
                // SAFETY: the exec is no longer referenced; one still running is freed by the
                // driver when it completes.
                unsafe { sys::cuGraphExecDestroy(old.exec) };
            }
        }
        let exec = match exec {
            Some(e) => e,
            None => {
                let mut e: sys::CUgraphExec = std::ptr::null_mut();
                let t0 = std::time::Instant::now();
                // SAFETY: `graph` is a complete captured graph; `e` receives the new exec.
                check(dev, "instantiating a CUDA graph", unsafe {
                    sys::cuGraphInstantiateWithFlags(&mut e, graph, 0)
                })?;
                self.stats.instantiate_us += us_since(t0);
                if self.execs.len() >= MAX_EXECS {
                    if let Some(&lru) = self
                        .execs
                        .iter()
                        .min_by_key(|(_, x)| x.used)
                        .map(|(k, _)| k)
                    {
                        let old = self.execs.remove(&lru).expect("key just found");
                        // SAFETY: as above.
                        unsafe { sys::cuGraphExecDestroy(old.exec) };
                    }
                }
                self.execs.insert(
                    key,
                    Exec {
                        exec: e,
                        used: clock,
                    },
                );
                self.stats.instantiated += 1;
                e
            }
        };
        let t0 = std::time::Instant::now();
        // SAFETY: `exec` is live; the stream is the device's.
        check(dev, "launching a CUDA graph", unsafe {
            sys::cuGraphLaunch(exec, dev.cu_stream())
        })?;
        self.stats.launch_us += us_since(t0);
        self.stats.launched += 1;
        Ok(())
    }
}

fn check(dev: &CudaDevice, what: &str, r: sys::CUresult) -> Result<()> {
    if r == sys::CUresult::CUDA_SUCCESS {
        Ok(())
    } else {
        Err(dev.error(what, format!("{r:?}")))
    }
}

/// Folds `tag` into a running topology hash (order-sensitive).
fn mix(h: u64, tag: u64) -> u64 {
    (h.rotate_left(5) ^ tag).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Tags of nodes that are not kernels of ours (a kernel's tag is its function handle).
pub(crate) const TAG_UPLOAD: u64 = 0x7570_6c6f_6164;
pub(crate) const TAG_MEMSET: u64 = 0x6d65_6d73_6574;

impl CudaDevice {
    /// Whether a capture is open on the device's stream (a hint read without the lock).
    pub(crate) fn capturing(&self) -> bool {
        self.capturing.load(Ordering::Acquire)
    }

    /// Opens a capture on the device's stream unless one is open, graphs are off, or ops are
    /// being timed on the device. The context must be current.
    pub(crate) fn graph_begin(&self) -> Result<()> {
        if self.capturing() {
            return Ok(());
        }
        let mut g = self.lock_graphs();
        if !g.enabled || g.active.is_some() || crate::profile::enabled() {
            return Ok(());
        }
        // SAFETY: the stream is this device's and nothing is capturing it (checked under the
        // lock every capture opens and closes under); relaxed mode lets allocation and the
        // small uploads' event waits run on the host meanwhile.
        check(self, "beginning a CUDA graph capture", unsafe {
            sys::cuStreamBeginCapture_v2(
                self.cu_stream(),
                sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED,
            )
        })?;
        g.active = Some(Capture::default());
        self.capturing.store(true, Ordering::Release);
        Ok(())
    }

    /// Records that one node with topology tag `tag` was queued (captured when a capture is
    /// open; nothing otherwise).
    pub(crate) fn graph_note(&self, tag: u64) {
        if !self.capturing() {
            return;
        }
        if let Some(c) = self.lock_graphs().active.as_mut() {
            c.key = mix(c.key, tag);
            c.nodes += 1;
        }
    }

    /// A small upload from pinned slot `slot` was queued: while capturing, the slot's reuse
    /// must wait for the graph, so its event is recorded after launch (returns true); otherwise
    /// the caller records it now (false).
    pub(crate) fn graph_take_slot(&self, slot: usize) -> bool {
        if !self.capturing() {
            return false;
        }
        match self.lock_graphs().active.as_mut() {
            Some(c) => {
                c.key = mix(c.key, TAG_UPLOAD);
                c.nodes += 1;
                c.slots.push(slot);
                true
            }
            None => false,
        }
    }

    /// Slots the open capture holds (0 when none).
    pub(crate) fn graph_slots_held(&self) -> usize {
        if !self.capturing() {
            return 0;
        }
        self.lock_graphs()
            .active
            .as_ref()
            .map_or(0, |c| c.slots.len())
    }

    /// After an op: launches the capture once it holds a chunk's worth of nodes.
    pub(crate) fn graph_op_done(&self) -> Result<()> {
        if !self.capturing() {
            return Ok(());
        }
        let full = {
            let g = self.lock_graphs();
            g.active.as_ref().is_some_and(|c| c.nodes >= g.chunk)
        };
        if full {
            self.graph_flush()?;
        }
        Ok(())
    }

    /// Ends the open capture (if any) and launches what it recorded. Everything that needs the
    /// stream to be real calls this first.
    pub(crate) fn graph_flush(&self) -> Result<()> {
        if !self.capturing() {
            return Ok(());
        }
        let mut small = self.lock_small();
        self.graph_flush_holding(&mut small)
    }

    /// `graph_flush` for a caller that holds the small-upload ring (lock order: ring, graphs).
    pub(crate) fn graph_flush_holding(
        &self,
        small: &mut Option<super::device::SmallRing>,
    ) -> Result<()> {
        let mut g = self.lock_graphs();
        let Some(cap) = g.active.take() else {
            return Ok(());
        };
        self.capturing.store(false, Ordering::Release);
        let mut graph: sys::CUgraph = std::ptr::null_mut();
        let t0 = std::time::Instant::now();
        // SAFETY: this stream's capture was begun by `graph_begin` (it is `active`).
        let r = unsafe { sys::cuStreamEndCapture(self.cu_stream(), &mut graph) };
        g.stats.end_us += us_since(t0);
        let result = if r != sys::CUresult::CUDA_SUCCESS || graph.is_null() {
            // The captured work is lost: say so, and stop capturing on this device.
            g.enabled = false;
            Err(Error::msg(format!(
                "cuda:{}: a CUDA graph capture failed ({r:?}); the work of this eval did not \
                 run. Graphs are now off for this device (RMLX_CUDA_GRAPHS=0 turns them off \
                 from the start)",
                self.ordinal
            )))
        } else {
            let result = if cap.nodes == 0 && graph_is_empty(graph) {
                Ok(())
            } else {
                g.launch(self, graph, cap.key).map(|()| {
                    g.stats.nodes += cap.nodes as u64;
                })
            };
            // SAFETY: the graph was captured above and is not used after this (an exec made
            // from it is independent of it).
            unsafe { sys::cuGraphDestroy(graph) };
            result
        };
        drop(g);
        // The copies of the graph read these slots: they are free once it has run.
        if let Some(ring) = small.as_mut() {
            for slot in cap.slots {
                ring.record(self, slot)?;
            }
        }
        result
    }

    pub(crate) fn graph_stats(&self) -> GraphStats {
        self.lock_graphs().stats
    }

    fn lock_graphs(&self) -> std::sync::MutexGuard<'_, Graphs> {
        self.graphs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether a captured graph has no nodes.
fn graph_is_empty(graph: sys::CUgraph) -> bool {
    let mut n = 0usize;
    // SAFETY: `graph` is live; a null node array asks for the count only.
    let r = unsafe { sys::cuGraphGetNodes(graph, std::ptr::null_mut(), &mut n) };
    r == sys::CUresult::CUDA_SUCCESS && n == 0
}
