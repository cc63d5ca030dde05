//! Tracing: run a function once on placeholder inputs and record the graph it builds as a tape
//! (primitives in topological order, each naming its inputs by position), then replay that tape
//! on real inputs without running the function again.
//!
//! What the function reads besides its inputs (weights, scalars, any array built without the
//! inputs) is captured as a constant: the tape holds it, so a pending constant (a weight's
//! transpose, say) is computed once, at the first evaluation of a replay, and then kept.

use crate::array::{Array, State};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::primitive::Primitive;
use crate::shape::Shape;
use std::collections::{HashMap, HashSet};

/// Where a tape node's input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Ref {
    /// The i-th argument of the compiled function.
    Input(usize),
    /// The i-th captured constant.
    Const(usize),
    /// The result of the i-th tape node.
    Node(usize),
}

pub(crate) struct TapeNode {
    pub prim: Primitive,
    pub inputs: Vec<Ref>,
    pub shape: Shape,
    pub dtype: DType,
    pub device: Device,
}

/// A traced function: nodes in topological order (every `Ref::Node` points backwards).
pub(crate) struct Tape {
    pub nodes: Vec<TapeNode>,
    pub consts: Vec<Array>,
    pub outputs: Vec<Ref>,
    /// Shape and dtype of each argument the tape was traced with.
    pub inputs: Vec<(Shape, DType)>,
}

impl Tape {
    /// Runs `f` on placeholders shaped like `inputs` and records the graph it returns.
    pub(crate) fn record(
        f: &dyn Fn(&[Array]) -> Result<Vec<Array>>,
        inputs: &[Array],
    ) -> Result<Tape> {
        let placeholders: Vec<Array> = inputs
            .iter()
            .map(|a| Array::placeholder(a.shape().to_vec(), a.dtype(), a.device()))
            .collect();
        let outputs = f(&placeholders).map_err(|e| e.context("compile: tracing"))?;
        let mut refs: HashMap<usize, Ref> = placeholders
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id(), Ref::Input(i)))
            .collect();
        let mut nodes = Vec::new();
        let mut consts = Vec::new();
        let mut opened = HashSet::new();
        let mut stack: Vec<(Array, bool)> =
            outputs.iter().rev().map(|a| (a.clone(), false)).collect();
        while let Some((a, expanded)) = stack.pop() {
            if refs.contains_key(&a.id()) {
                continue;
            }
            if expanded {
                let r = match &*a.lock() {
                    State::Pending { prim, inputs } => {
                        let ins: Vec<Ref> = inputs.iter().map(|i| refs[&i.id()]).collect();
                        if ins.iter().all(|r| matches!(r, Ref::Const(_))) {
                            None
                        } else {
                            nodes.push(TapeNode {
                                prim: prim.clone(),
                                inputs: ins,
                                shape: a.shape().to_vec(),
                                dtype: a.dtype(),
                                device: a.device(),
                            });
                            Some(Ref::Node(nodes.len() - 1))
                        }
                    }
                    _ => return Err(Error::msg("compile: a traced node changed state")),
                };
                let r = r.unwrap_or_else(|| {
                    consts.push(a.clone());
                    Ref::Const(consts.len() - 1)
                });
                refs.insert(a.id(), r);
                continue;
            }
            if !opened.insert(a.id()) {
                continue;
            }
            let inputs = match &*a.lock() {
                State::Pending { inputs, .. } => Some(inputs.clone()),
                State::Placeholder => {
                    return Err(Error::msg(
                        "compile: the traced function used an input of another function being \
                         traced (capture arrays by value, not another trace's placeholders)",
                    ))
                }
                _ => None,
            };
            match inputs {
                None => {
                    consts.push(a.clone());
                    refs.insert(a.id(), Ref::Const(consts.len() - 1));
                }
                Some(inputs) => {
                    stack.push((a, true));
                    for i in inputs.into_iter().rev() {
                        if !refs.contains_key(&i.id()) {
                            stack.push((i, false));
                        }
                    }
                }
            }
        }
        let outputs = outputs.iter().map(|a| refs[&a.id()]).collect();
        let mut tape = Tape {
            nodes,
            consts,
            outputs,
            inputs: inputs
                .iter()
                .map(|a| (a.shape().to_vec(), a.dtype()))
                .collect(),
        };
        tape.drop_unused_consts();
        Ok(tape)
    }

    /// Builds the traced graph again over `inputs` (checked by the caller to match the trace).
    pub(crate) fn replay(&self, inputs: &[Array]) -> Vec<Array> {
        let mut values: Vec<Array> = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            let ins = n
                .inputs
                .iter()
                .map(|r| self.resolve(*r, inputs, &values))
                .collect();
            values.push(Array::from_node(
                n.shape.clone(),
                n.dtype,
                n.device,
                State::Pending {
                    prim: n.prim.clone(),
                    inputs: ins,
                },
            ));
        }
        self.outputs
            .iter()
            .map(|r| self.resolve(*r, inputs, &values))
            .collect()
    }

    fn resolve(&self, r: Ref, inputs: &[Array], values: &[Array]) -> Array {
        match r {
            Ref::Input(i) => inputs[i].clone(),
            Ref::Const(i) => self.consts[i].clone(),
            Ref::Node(i) => values[i].clone(),
        }
    }

    /// Shape and dtype of what `r` refers to.
    pub(crate) fn meta(&self, r: Ref) -> (&[usize], DType) {
        match r {
            Ref::Input(i) => (&self.inputs[i].0, self.inputs[i].1),
            Ref::Const(i) => (self.consts[i].shape(), self.consts[i].dtype()),
            Ref::Node(i) => (&self.nodes[i].shape, self.nodes[i].dtype),
        }
    }

    /// Keeps only the nodes reachable from the outputs and the constants they use, renumbered
    /// in the same order.
    pub(crate) fn compact(&mut self) {
        let mut live = vec![false; self.nodes.len()];
        for r in &self.outputs {
            if let Ref::Node(i) = r {
                live[*i] = true;
            }
        }
        for i in (0..self.nodes.len()).rev() {
            if live[i] {
                for r in &self.nodes[i].inputs {
                    if let Ref::Node(j) = r {
                        live[*j] = true;
                    }
                }
            }
        }
        let mut new_index = vec![usize::MAX; self.nodes.len()];
        let old = std::mem::take(&mut self.nodes);
        for (i, mut n) in old.into_iter().enumerate() {
            if !live[i] {
                continue;
            }
            for r in n.inputs.iter_mut() {
                if let Ref::Node(j) = r {
                    *j = new_index[*j];
                }
            }
            new_index[i] = self.nodes.len();
            self.nodes.push(n);
        }
        for r in self.outputs.iter_mut() {
            if let Ref::Node(j) = r {
                *j = new_index[*j];
            }
        }
        self.drop_unused_consts();
    }

    /// Forgets constants no node or output refers to (the intermediates of constant
    /// subgraphs), so the tape does not keep them alive.
    fn drop_unused_consts(&mut self) {
        let mut used = vec![false; self.consts.len()];
        let all = self
            .nodes
            .iter()
            .flat_map(|n| n.inputs.iter())
            .chain(&self.outputs);
        for r in all {
            if let Ref::Const(i) = r {
                used[*i] = true;
            }
        }
        let mut new_index = vec![usize::MAX; self.consts.len()];
        let old = std::mem::take(&mut self.consts);
        for (i, c) in old.into_iter().enumerate() {
            if used[i] {
                new_index[i] = self.consts.len();
                self.consts.push(c);
            }
        }
        let all = self
            .nodes
            .iter_mut()
            .flat_map(|n| n.inputs.iter_mut())
            .chain(self.outputs.iter_mut());
        for r in all {
            if let Ref::Const(i) = r {
                *i = new_index[*i];
            }
        }
    }
}
