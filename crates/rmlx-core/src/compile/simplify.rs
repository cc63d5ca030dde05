//! Graph rewrites on a traced tape, whatever the evaluation state of the arrays involved:
//! equal scalar constants become one, identity views and casts disappear, reshape chains
//! collapse to one reshape, and equivalent nodes (same primitive, same inputs) are merged.

use super::trace::{Ref, Tape};
use crate::array::Array;
use crate::primitive::Primitive;
use std::collections::HashMap;

pub(crate) fn simplify(tape: &mut Tape) {
    merge_scalar_consts(tape);
    let mut alias: Vec<Ref> = (0..tape.nodes.len()).map(Ref::Node).collect();
    let mut seen: HashMap<(String, Vec<Ref>), Vec<usize>> = HashMap::new();
    for i in 0..tape.nodes.len() {
        let inputs: Vec<Ref> = tape.nodes[i]
            .inputs
            .iter()
            .map(|r| redirect(*r, &alias))
            .collect();
        tape.nodes[i].inputs = inputs;
        if let Some(r) = identity(tape, i) {
            alias[i] = r;
            continue;
        }
        fold_reshape_chain(tape, i);
        let node = &tape.nodes[i];
        let key = (node.prim.name(), node.inputs.clone());
        let same = seen.get(&key).and_then(|ks| {
            ks.iter().copied().find(|&k| {
                let other = &tape.nodes[k];
                other.prim == node.prim
                    && other.shape == node.shape
                    && other.dtype == node.dtype
                    && other.device == node.device
            })
        });
        match same {
            Some(k) => alias[i] = Ref::Node(k),
            None => seen.entry(key).or_default().push(i),
        }
    }
    for r in tape.outputs.iter_mut() {
        *r = redirect(*r, &alias);
    }
    tape.compact();
}

fn redirect(r: Ref, alias: &[Ref]) -> Ref {
    match r {
        Ref::Node(i) => alias[i],
        other => other,
    }
}

/// The input node `i` passes through unchanged, if it is an identity.
fn identity(tape: &Tape, i: usize) -> Option<Ref> {
    let node = &tape.nodes[i];
    let input = *node.inputs.first()?;
    let (in_shape, in_dtype) = tape.meta(input);
    let same_shape = in_shape == node.shape.as_slice();
    let is_identity = match &node.prim {
        Primitive::Reshape(s) | Primitive::BroadcastTo(s) => s.as_slice() == in_shape,
        Primitive::Transpose(perm) => perm.iter().enumerate().all(|(k, &p)| k == p),
        Primitive::AsType(d) => *d == in_dtype,
        _ => false,
    };
    (is_identity && same_shape && in_dtype == node.dtype).then_some(input)
}

/// reshape(reshape(x)) → reshape(x): the value depends only on x and the last shape.
fn fold_reshape_chain(tape: &mut Tape, i: usize) {
    if !matches!(tape.nodes[i].prim, Primitive::Reshape(_)) {
        return;
    }
    if let Some(Ref::Node(j)) = tape.nodes[i].inputs.first().copied() {
        if matches!(tape.nodes[j].prim, Primitive::Reshape(_)) {
            tape.nodes[i].inputs[0] = tape.nodes[j].inputs[0];
        }
    }
}

/// Scalar constants with the same dtype, shape and value (each `x * 0.5` makes its own) become
/// one, so the nodes that use them can merge.
fn merge_scalar_consts(tape: &mut Tape) {
    let mut first: HashMap<(Vec<usize>, crate::DType, crate::Device, Vec<u8>), usize> =
        HashMap::new();
    let mut alias: Vec<usize> = (0..tape.consts.len()).collect();
    for (i, c) in tape.consts.iter().enumerate() {
        if let Some(bytes) = scalar_bytes(c) {
            let key = (c.shape().to_vec(), c.dtype(), c.device(), bytes);
            alias[i] = *first.entry(key).or_insert(i);
        }
    }
    let all = tape
        .nodes
        .iter_mut()
        .flat_map(|n| n.inputs.iter_mut())
        .chain(tape.outputs.iter_mut());
    for r in all {
        if let Ref::Const(i) = r {
            *i = alias[*i];
        }
    }
}

/// The bytes of an evaluated one-element host array.
fn scalar_bytes(a: &Array) -> Option<Vec<u8>> {
    if a.size() != 1 || !a.is_evaluated() {
        return None;
    }
    let data = a.data().ok()?;
    let host = data.host().ok()?;
    let size = a.dtype().size();
    let start = data.offset * size;
    host.bytes().get(start..start + size).map(|b| b.to_vec())
}
