//! `eval`: schedule the pending part of a graph in topological order and hand each node to its
//! stream's backend, which *encodes* it: the CPU computes it there and then, a GPU queues its
//! kernels and returns (MLX's `eval_impl`). Evaluated nodes are detached (primitive and inputs
//! dropped) so memory is freed as we go. Iterative throughout: deep graphs do not touch the stack.
//!
//! Donation: the tape visits each node once and takes its handle out of the tape before it
//! runs, and a consumer drops its inputs once encoded; so when a node's last consumer runs and
//! nobody outside the graph holds the node, that consumer receives the node's data by value
//! with a uniquely held buffer, which a kernel may write in place (KV-cache writes). The GPU
//! encoder never holds device inputs (its allocator reuses memory in stream order, see
//! `backend/cuda/alloc.rs`), so keeping buffers alive for the device never blocks donation.
//!
//! Transfers: an input that lives on another device than its consumer is moved there once and
//! the copy is kept on the input's node (`Node::moved`): a weight crosses to the GPU once.

use crate::array::{Array, Data, State};
use crate::backend::{self, Arg};
use crate::device::Device;
use crate::error::{Error, Result};
use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Threads that share arrays may eval graphs that share pending nodes: the first to claim a
/// node runs it (its state becomes `Running`); another thread that needs it waits here until
/// it is `Ready` (or `Failed`). A node is claimed only by the thread about to run it, and each
/// thread holds one claimed node at a time, so waiting cannot form a cycle.
static RAN: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
/// Threads waiting in `wait_until_run` (runners notify only when there are any).
static WAITERS: AtomicUsize = AtomicUsize::new(0);

/// Locks `a`'s state once no other thread is running it.
pub(crate) fn wait_until_run(a: &Array) -> MutexGuard<'_, State> {
    let st = a.lock();
    if !matches!(&*st, State::Running) {
        return st;
    }
    drop(st);
    WAITERS.fetch_add(1, Ordering::SeqCst);
    let mut g = RAN.0.lock().unwrap_or_else(|p| p.into_inner());
    let st = loop {
        // Checked under RAN's lock, which the runner takes to notify: no wake-up is lost.
        let st = a.lock();
        if !matches!(&*st, State::Running) {
            break st;
        }
        drop(st);
        g = RAN
            .1
            .wait_timeout(g, std::time::Duration::from_millis(50))
            .unwrap_or_else(|p| p.into_inner())
            .0;
    };
    drop(g);
    WAITERS.fetch_sub(1, Ordering::SeqCst);
    st
}

/// Wakes the threads waiting for a node this thread finished running.
fn notify_ran() {
    if WAITERS.load(Ordering::SeqCst) > 0 {
        let _g = RAN.0.lock().unwrap_or_else(|p| p.into_inner());
        RAN.1.notify_all();
    }
}

/// The error of reading a node whose eval failed.
pub(crate) fn failed(e: &str) -> Error {
    Error::msg(format!(
        "eval: this array's computation failed earlier: {e}"
    ))
}

/// Evaluates `outputs` and waits until their data is computed on every device involved.
pub fn eval(outputs: &[&Array]) -> Result<()> {
    let devices = async_eval(outputs)?;
    for d in devices {
        backend::for_device(d)?.synchronize()?;
    }
    Ok(())
}

/// Encodes the work that computes `outputs` and returns without waiting for GPUs (reading the
/// data waits). Returns the GPUs that received work. On the CPU the work is done on return.
pub fn async_eval(outputs: &[&Array]) -> Result<Vec<Device>> {
    let tape = build_tape(outputs);
    if tape.is_empty() {
        return Ok(Vec::new());
    }
    // Run the tape on a pool worker: kernels' small parallel loops then execute inline instead
    // of paying a cross-thread hand-off per op (which dominates decode of small models).
    rayon::scope(|_| {
        let mut gpus = Vec::new();
        let ran = run_tape(tape, &mut gpus);
        // Submit what each GPU has encoded (an open graph capture), also after an error: the
        // nodes encoded before it are marked computed.
        let mut flushed = Ok(());
        for &d in &gpus {
            let r = backend::for_device(d).and_then(|b| b.flush());
            if flushed.is_ok() {
                flushed = r;
            }
        }
        ran.and(flushed).map(|()| gpus)
    })
}
/// Hashes node ids (addresses) with one multiply: SipHash's DoS resistance buys nothing for
/// our own pointers and cost ~0.4% of a small model's decode.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_usize(&mut self, i: usize) {
        // Fibonacci hashing: the high bits (hashbrown's control bytes) depend on every bit.
        self.0 = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Post-order of the pending nodes reachable from `outputs`.
fn build_tape(outputs: &[&Array]) -> Vec<Option<Array>> {
    let mut tape = Vec::new();
    let mut visited: HashSet<usize, BuildHasherDefault<IdHasher>> =
        HashSet::with_capacity_and_hasher(1024, Default::default());
    let mut stack: Vec<(Array, bool)> = outputs.iter().map(|a| ((*a).clone(), false)).collect();
    stack.reverse();
    while let Some((a, expanded)) = stack.pop() {
        if expanded {
            tape.push(Some(a));
            continue;
        }
        if !visited.insert(a.id()) {
            continue;
        }
        let inputs = match &*a.lock() {
            State::Pending { inputs, .. } => inputs.clone(),
            _ => continue,
        };
        stack.push((a, true));
        for inp in inputs.into_iter().rev() {
            if !visited.contains(&inp.id()) && matches!(&*inp.lock(), State::Pending { .. }) {
                stack.push((inp, false));
            }
        }
    }
    tape
}

/// Encodes the tape; `gpus` collects the GPUs that received work (also when it fails).
fn run_tape(mut tape: Vec<Option<Array>>, gpus: &mut Vec<Device>) -> Result<()> {
    for slot in tape.iter_mut() {
        // Take the tape's handle so that a node's only remaining holders are its consumers:
        // the last consumer may then take over (donate) its buffer.
        let a = slot.take().expect("each tape slot is visited once");
        let claimed = {
            let mut st = a.lock();
            match &*st {
                State::Pending { .. } => Some(std::mem::replace(&mut *st, State::Running)),
                // Done, or being run by another thread (its consumers here wait for it).
                _ => None,
            }
        };
        let Some(State::Pending { prim, inputs }) = claimed else {
            continue;
        };
        match run_node(&a, prim, inputs, gpus) {
            Ok(data) => *a.lock() = State::Ready(data),
            Err(e) => {
                *a.lock() = State::Failed(e.to_string().into());
                notify_ran();
                return Err(e);
            }
        }
        notify_ran();
    }
    Ok(())
}

/// Runs one claimed node on its device's backend.
fn run_node(
    a: &Array,
    prim: crate::primitive::Primitive,
    inputs: Vec<Array>,
    gpus: &mut Vec<Device>,
) -> Result<Data> {
    let device = a.device();
    if device.is_gpu() && !gpus.contains(&device) {
        gpus.push(device);
    }
    let backend = backend::for_device(device)?;
    let mut args = Vec::with_capacity(inputs.len());
    for inp in inputs {
        args.push(take_input(inp, device).map_err(|e| e.context(prim.name()))?);
    }
    // Profiling: a GPU times the op on its queue (events, no waiting); the CPU on the host.
    let profiling = crate::profile::enabled();
    let on_device = profiling && backend.begin_span()?;
    let t0 = profiling.then(std::time::Instant::now);
    let data = backend
        .eval_primitive(&prim, args, a.shape(), a.dtype())
        .map_err(|e| e.context(format!("{} -> {:?}", prim.name(), a.shape())))?;
    if let Some(t0) = t0 {
        let label = format!("{} {:?}", prim.name(), a.shape());
        if on_device {
            backend.end_span(label)?;
        } else {
            crate::profile::record(label, t0.elapsed());
        }
    }
    Ok(data)
}

/// The input's data on `device`: moved out of the node when this consumer is its last holder
/// (donation), copied to `device` once and cached on the node when it lives elsewhere.
fn take_input(inp: Array, device: Device) -> Result<Arg> {
    let shape = inp.shape().to_vec();
    let dtype = inp.dtype();
    let elsewhere = match &*wait_until_run(&inp) {
        State::Ready(d) if d.buffer.device() == device => None,
        State::Ready(d) => Some(d.clone()),
        State::Failed(e) => return Err(failed(e)),
        State::Placeholder => {
            return Err(Error::msg(
                "compile: a traced function evaluated an array that depends on its inputs; a \
                 compiled function may only build the graph (no item/to_vec/eval inside it)",
            ))
        }
        _ => return Err(Error::msg("eval: input was not evaluated")),
    };
    if let Some(src) = elsewhere {
        let mut moved = inp.0.moved.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = moved.as_ref().filter(|d| d.buffer.device() == device) {
            return Ok(Arg {
                data: d.clone(),
                shape,
                dtype,
            });
        }
        let data = transfer(
            Arg {
                data: src,
                shape: shape.clone(),
                dtype,
            },
            device,
        )?;
        *moved = Some(data.clone());
        return Ok(Arg { data, shape, dtype });
    }
    let data = match Arc::try_unwrap(inp.0) {
        Ok(mut node) => match std::mem::replace(
            node.state.get_mut().unwrap_or_else(|p| p.into_inner()),
            State::Running,
        ) {
            State::Ready(d) => d,
            _ => return Err(Error::msg("eval: input was not evaluated")),
        },
        Err(shared) => match &*Array(shared).lock() {
            State::Ready(d) => d.clone(),
            _ => return Err(Error::msg("eval: input was not evaluated")),
        },
    };
    Ok(Arg { data, shape, dtype })
}

/// Copies `arg` to `device`, through the host when neither side is the CPU.
fn transfer(arg: Arg, device: Device) -> Result<Data> {
    let from = arg.data.buffer.device();
    let host = if from.is_cpu() {
        arg
    } else {
        let data = backend::for_device(from)?.download(&arg)?;
        Arg {
            data,
            shape: arg.shape,
            dtype: arg.dtype,
        }
    };
    if device.is_cpu() {
        return Ok(host.data);
    }
    backend::for_device(device)?.upload(&host)
}

/// Moves an array's data to the array's own device now (evaluating it first if pending): a
/// weight loaded for a GPU is uploaded here, once, instead of at its first use. The host view
/// (an mmap) is released.
pub fn place(a: &Array) -> Result<()> {
    a.eval()?;
    let src = match &*a.lock() {
        State::Ready(d) if d.buffer.device() != a.device() => d.clone(),
        _ => return Ok(()),
    };
    let data = transfer(
        Arg {
            data: src,
            shape: a.shape().to_vec(),
            dtype: a.dtype(),
        },
        a.device(),
    )?;
    *a.lock() = State::Ready(data);
    Ok(())
}
