//! Fusion: maximal runs of elementwise float ops become one `Primitive::Compiled` node, so a
//! chain like GELU written out (`0.5·x·(1 + erf(x/√2))`) reads x once and writes once instead
//! of a full pass per op.
//!
//! A run grows from its output (the root) backwards: a producer joins when it is elementwise,
//! has the root's shape and device, is not itself an output of the function, and every one of
//! its consumers is already in the run (so its value is needed nowhere else). Inputs of the
//! run may be any shape that broadcasts to the root's; intermediates never broadcast. A run
//! that could only be acyclic this way (every member's consumers are inside it) replaces its
//! root in place, which keeps the tape topologically ordered.

use super::kernel::{ElemOp, FusedKernel, FusedOp, Operand};
use super::trace::{Ref, Tape, TapeNode};
use crate::dtype::DType;
use crate::primitive::Primitive;
use std::sync::Arc;

pub(crate) fn fuse(tape: &mut Tape) {
    let n = tape.nodes.len();
    let ops: Vec<Option<ElemOp>> = (0..n).map(|i| elem_op(tape, &tape.nodes[i])).collect();
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, node) in tape.nodes.iter().enumerate() {
        for r in &node.inputs {
            if let Ref::Node(j) = r {
                if !consumers[*j].contains(&i) {
                    consumers[*j].push(i);
                }
            }
        }
    }
    let mut is_output = vec![false; n];
    for r in &tape.outputs {
        if let Ref::Node(j) = r {
            is_output[*j] = true;
        }
    }
    let mut group: Vec<Option<usize>> = vec![None; n];
    let mut runs: Vec<(usize, Vec<usize>)> = Vec::new();
    for root in (0..n).rev() {
        if ops[root].is_none() || group[root].is_some() {
            continue;
        }
        group[root] = Some(root);
        let mut members = vec![root];
        let mut work = vec![root];
        while let Some(k) = work.pop() {
            for r in tape.nodes[k].inputs.clone() {
                let Ref::Node(p) = r else { continue };
                let joins = ops[p].is_some()
                    && group[p].is_none()
                    && !is_output[p]
                    && tape.nodes[p].shape == tape.nodes[root].shape
                    && tape.nodes[p].device == tape.nodes[root].device
                    && consumers[p].iter().all(|c| group[*c] == Some(root));
                if joins {
                    group[p] = Some(root);
                    members.push(p);
                    work.push(p);
                }
            }
        }
        if members.len() > 1 {
            members.sort_unstable();
            runs.push((root, members));
        }
    }
    if runs.is_empty() {
        return;
    }
    for (root, members) in runs {
        let (kernel, inputs) = build_kernel(tape, &ops, &members);
        let node = &tape.nodes[root];
        tape.nodes[root] = TapeNode {
            prim: Primitive::Compiled(Arc::new(kernel)),
            inputs,
            shape: node.shape.clone(),
            dtype: node.dtype,
            device: node.device,
        };
    }
    // The absorbed members are now referenced by nobody.
    tape.compact();
}

/// The kernel of one run (members in tape order, the root last) and its external inputs.
fn build_kernel(tape: &Tape, ops: &[Option<ElemOp>], members: &[usize]) -> (FusedKernel, Vec<Ref>) {
    let mut inputs: Vec<Ref> = Vec::new();
    let mut input_dtypes: Vec<DType> = Vec::new();
    let mut fused: Vec<FusedOp> = Vec::with_capacity(members.len());
    for &m in members {
        let node = &tape.nodes[m];
        let args = node
            .inputs
            .iter()
            .map(|r| match r {
                Ref::Node(j) if members.contains(j) => {
                    Operand::Op(members.iter().position(|x| x == j).expect("member"))
                }
                other => {
                    let k = inputs.iter().position(|x| x == other).unwrap_or_else(|| {
                        inputs.push(*other);
                        input_dtypes.push(tape.meta(*other).1);
                        inputs.len() - 1
                    });
                    Operand::Input(k)
                }
            })
            .collect();
        fused.push(FusedOp {
            op: ops[m].expect("members are elementwise"),
            args,
            dtype: node.dtype,
        });
    }
    let kernel = FusedKernel::new(input_dtypes, fused);
    (kernel, inputs)
}

/// The fusable form of a node: float math (bool only as a comparison's result or `where`'s
/// condition), as `kernel.rs` states the semantics.
fn elem_op(tape: &Tape, node: &TapeNode) -> Option<ElemOp> {
    let dtype = |i: usize| node.inputs.get(i).map(|r| tape.meta(*r).1);
    let float = |d: Option<DType>| d.is_some_and(|d| d.is_float());
    let out_float = node.dtype.is_float();
    match &node.prim {
        Primitive::AsType(_) if float(dtype(0)) && out_float => Some(ElemOp::Cast),
        Primitive::Unary(op) if float(dtype(0)) && (out_float || node.dtype == DType::Bool) => {
            Some(ElemOp::Unary(*op))
        }
        Primitive::Binary(op)
            if float(dtype(0)) && float(dtype(1)) && (out_float || node.dtype == DType::Bool) =>
        {
            Some(ElemOp::Binary(*op))
        }
        Primitive::Where
            if dtype(0) == Some(DType::Bool) && float(dtype(1)) && float(dtype(2)) && out_float =>
        {
            Some(ElemOp::Where)
        }
        _ => None,
    }
}
