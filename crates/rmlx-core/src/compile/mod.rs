//! `compile`: trace a function of arrays once, simplify and fuse the graph it builds, and
//! replay that graph on every later call with inputs of the same shapes, dtypes and devices
//! (MLX's `mx.compile`).
//!
//! - **Trace** (`trace.rs`): the function runs once on placeholder inputs; the graph it returns
//!   is recorded as a tape. Whatever it reads besides its inputs (weights, scalars) becomes a
//!   constant of the trace. The function must only build the graph: reading a value that
//!   depends on an input is an error.
//! - **Key**: each input's shape, dtype and device, plus the default device (ops without a GPU
//!   input run there). A new key traces again; a known key replays without calling the
//!   function.
//! - **Simplify** (`simplify.rs`): equal scalar constants merge, identity views and casts
//!   vanish, reshape chains fold, equivalent nodes merge (common subexpressions).
//! - **Fuse** (`fuse.rs`): runs of elementwise float ops become one `Primitive::Compiled` node
//!   (`kernel.rs`), which the CPU runs as one pass over its tape and CUDA as one generated
//!   kernel (NVRTC, cached in memory and on disk).
//!
//! `RMLX_COMPILE=0` (or `set_enabled(false)`) makes compiled functions call straight through,
//! for comparisons and debugging.

mod fuse;
mod kernel;
mod simplify;
mod trace;

pub use kernel::{round_to, ElemOp, FusedKernel, FusedOp, Operand};

use crate::array::Array;
use crate::device::{default_device, Device};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::Shape;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use trace::Tape;

/// Whether compiled functions trace and replay (true) or call their function directly.
pub fn enabled() -> bool {
    enabled_flag().load(Ordering::Relaxed)
}

/// Turns compilation on or off for every compiled function (`RMLX_COMPILE=0` starts it off).
pub fn set_enabled(on: bool) {
    enabled_flag().store(on, Ordering::Relaxed);
}

fn enabled_flag() -> &'static AtomicBool {
    static FLAG: OnceLock<AtomicBool> = OnceLock::new();
    FLAG.get_or_init(|| AtomicBool::new(std::env::var("RMLX_COMPILE").as_deref() != Ok("0")))
}

type Key = (Vec<(Shape, DType, Device)>, Device);

/// What a trace is keyed by: each input's shape, dtype and device, and the default device.
fn key_of(inputs: &[Array]) -> Key {
    let each = inputs
        .iter()
        .map(|a| (a.shape().to_vec(), a.dtype(), a.device()))
        .collect();
    (each, default_device())
}

/// Traces kept per compiled function: a server's prefill chunks come in many lengths, and each
/// length is a signature; past this many, the least recently used trace is dropped (and traced
/// again if its signature returns).
const MAX_TRACES: usize = 64;

struct Entry {
    tape: Arc<Tape>,
    last_use: u64,
}

/// A function of arrays that traces once per input signature and replays the optimized graph.
pub struct Compiled<F> {
    f: F,
    fuse: bool,
    traces: Mutex<HashMap<Key, Entry>>,
    /// The number of inputs, fixed by the first call (stored + 1; 0: no call yet).
    arity: AtomicUsize,
    traced: AtomicUsize,
    /// A clock for `Entry::last_use`.
    calls: AtomicU64,
}

/// Compiles `f` (see the module doc). Call it with `Compiled::call`.
pub fn compile<F>(f: F) -> Compiled<F>
where
    F: Fn(&[Array]) -> Result<Vec<Array>>,
{
    Compiled {
        f,
        fuse: true,
        traces: Mutex::new(HashMap::new()),
        arity: AtomicUsize::new(0),
        traced: AtomicUsize::new(0),
        calls: AtomicU64::new(0),
    }
}

impl<F> Compiled<F>
where
    F: Fn(&[Array]) -> Result<Vec<Array>>,
{
    /// The same function, traced and simplified but not fused (to compare against).
    pub fn without_fusion(mut self) -> Self {
        self.fuse = false;
        self
    }

    /// The function's outputs for `inputs`: the recorded graph replayed over them, traced
    /// first when no trace has their shapes, dtypes and devices. Lazy, like any op.
    pub fn call(&self, inputs: &[Array]) -> Result<Vec<Array>> {
        self.check_arity(inputs.len())?;
        if !enabled() {
            return (self.f)(inputs);
        }
        let key = key_of(inputs);
        let now = self.calls.fetch_add(1, Ordering::Relaxed);
        let known = self.lock().get_mut(&key).map(|e| {
            e.last_use = now;
            e.tape.clone()
        });
        let tape = match known {
            Some(t) => t,
            None => {
                // Traced without the lock held: the function may call other compiled functions.
                let mut tape = Tape::record(&self.f, inputs)?;
                simplify::simplify(&mut tape);
                if self.fuse {
                    fuse::fuse(&mut tape);
                }
                self.traced.fetch_add(1, Ordering::Relaxed);
                let tape = Arc::new(tape);
                let mut traces = self.lock();
                if traces.len() >= MAX_TRACES {
                    let oldest = traces
                        .iter()
                        .min_by_key(|(_, e)| e.last_use)
                        .map(|(k, _)| k.clone());
                    if let Some(k) = oldest {
                        traces.remove(&k);
                    }
                }
                let entry = Entry {
                    tape: tape.clone(),
                    last_use: now,
                };
                traces.insert(key, entry);
                tape
            }
        };
        Ok(tape.replay(inputs))
    }

    /// How many times the function has been traced (once per new input signature).
    pub fn trace_count(&self) -> usize {
        self.traced.load(Ordering::Relaxed)
    }

    /// Primitives per replay of the trace for `inputs`' signature, by name (`None` before the
    /// first call with it): what a call costs in nodes, after simplification and fusion.
    pub fn traced_primitives(&self, inputs: &[Array]) -> Option<Vec<String>> {
        let key = key_of(inputs);
        let tape = self.lock().get(&key)?.tape.clone();
        Some(tape.nodes.iter().map(|n| n.prim.name()).collect())
    }

    fn check_arity(&self, n: usize) -> Result<()> {
        // Lock-free: a decode step calls compiled functions a few times a layer.
        match self
            .arity
            .compare_exchange(0, n + 1, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => Ok(()),
            Err(a) if a == n + 1 => Ok(()),
            Err(a) => Err(Error::shape(format!(
                "compile: the function takes {} inputs, called with {n}",
                a - 1
            ))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.traces.lock().unwrap_or_else(|p| p.into_inner())
    }
}
