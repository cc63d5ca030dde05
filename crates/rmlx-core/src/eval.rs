//! `eval`: run the pending part of a graph in topological order, node by node on each node's
//! device, detaching evaluated nodes (dropping their primitive and inputs) so memory is freed
//! as we go. Iterative throughout: deep graphs do not touch the stack.

use crate::array::{Array, State};
use crate::backend::{self, Arg};
use crate::error::{Error, Result};
use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

pub fn eval(outputs: &[&Array]) -> Result<()> {
    let tape = build_tape(outputs);
    if tape.is_empty() {
        return Ok(());
    }
    // Run the tape on a pool worker: kernels' small parallel loops then execute inline instead
    // of paying a cross-thread hand-off per op (which dominates decode of small models).
    rayon::scope(|_| run_tape(tape))
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

fn run_tape(mut tape: Vec<Option<Array>>) -> Result<()> {
    for slot in tape.iter_mut() {
        // Take the tape's handle so that a node's only remaining holders are its consumers:
        // the last consumer may then take over (donate) its buffer.
        let a = slot.take().expect("each tape slot is visited once");
        let (prim, inputs) = match std::mem::replace(&mut *a.lock(), State::Running) {
            State::Pending { prim, inputs } => (prim, inputs),
            other => {
                *a.lock() = other;
                continue;
            }
        };
        let device = a.device();
        let backend = backend::for_device(device)?;
        let mut args = Vec::with_capacity(inputs.len());
        for inp in inputs {
            args.push(take_input(inp, device).map_err(|e| e.context(prim.name()))?);
        }
        let t0 = crate::profile::enabled().then(std::time::Instant::now);
        let data = backend
            .eval_primitive(&prim, args, a.shape(), a.dtype())
            .map_err(|e| e.context(format!("{} -> {:?}", prim.name(), a.shape())))?;
        if let Some(t0) = t0 {
            crate::profile::record(format!("{} {:?}", prim.name(), a.shape()), t0.elapsed());
        }
        *a.lock() = State::Ready(data);
    }
    Ok(())
}

/// The input's data, moved out of the node when this consumer is its last holder.
fn take_input(inp: Array, device: crate::Device) -> Result<Arg> {
    let shape = inp.shape().to_vec();
    let dtype = inp.dtype();
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
    let arg = Arg { data, shape, dtype };
    let from = arg.data.buffer.device();
    if from == device {
        return Ok(arg);
    }
    // Automatic transfer, through the host when neither side is the CPU.
    let host = if from.is_cpu() {
        arg
    } else {
        to_host(arg, from)?
    };
    if device.is_cpu() {
        return Ok(host);
    }
    let data = backend::for_device(device)?.upload(&host)?;
    Ok(Arg {
        data,
        shape: host.shape,
        dtype: host.dtype,
    })
}

fn to_host(arg: Arg, from: crate::Device) -> Result<Arg> {
    let data = backend::for_device(from)?.download(&arg)?;
    Ok(Arg {
        data,
        shape: arg.shape,
        dtype: arg.dtype,
    })
}
