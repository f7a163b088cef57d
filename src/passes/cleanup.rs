//! Cleanups on the functional graph: no-op removal, common subexpression
//! elimination, constant folding of weight-only subgraphs, dead code
//! elimination.

use std::collections::{HashMap, HashSet};

use crate::error::Result;
use crate::interp::{self, RValue};
use crate::ir::{
    Arg, Aten, Graph, InputKind, InputSpec, Node, Op, OutputKind, Program, ValueId, ValueType,
};

use super::rewrite::{rewrite_nodes, Rewrite};
use super::{Pass, PassContext};

/// Run-time assertions, which [`RemoveNoops`] drops: the compiled code
/// checks shapes itself.
pub const DROPPED: &[Aten] = &[
    Aten::InternalAssertTensorMetadata,
    Aten::InternalAssertScalar,
];

/// Ops with side effects or random results: never removed, merged or folded.
fn is_impure(n: &Node) -> bool {
    use Aten::*;
    match n.op.aten() {
        None => !matches!(n.op, Op::Builtin(_)),
        Some(a) => {
            a.functional_form().is_some()
                || matches!(
                    a,
                    Rand | Randn
                        | Randperm
                        | RandLike
                        | RandnLike
                        | Bernoulli
                        | NativeDropout
                        | NormalInplace
                        | UniformInplace
                        | InternalAssertScalar
                        | InternalAssertTensorMetadata
                )
        }
    }
}

/// Removes nodes whose results nothing uses.
pub struct DeadCodeElimination;

impl Pass for DeadCodeElimination {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn run(&self, p: &mut Program, _cx: &mut PassContext<'_>) -> Result<bool> {
        Ok(dce(&mut p.graph))
    }
}

pub fn dce(g: &mut Graph) -> bool {
    let mut counts = g.use_counts();
    let before = g.nodes.len();
    let mut keep = vec![true; g.nodes.len()];
    for (i, n) in g.nodes.iter().enumerate().rev() {
        let unused = n.outputs.iter().all(|o| counts[o.index()] == 0);
        if unused && !is_impure(n) && !n.outputs.is_empty() {
            keep[i] = false;
            for v in n.inputs() {
                counts[v.index()] -= 1;
            }
        }
    }
    let mut it = keep.iter();
    g.nodes.retain(|_| *it.next().unwrap_or(&true));
    g.nodes.len() != before
}

/// Replaces a node by an earlier identical one.
pub struct CommonSubexpressionElimination;

impl Pass for CommonSubexpressionElimination {
    fn name(&self) -> &'static str {
        "cse"
    }

    fn run(&self, p: &mut Program, _cx: &mut PassContext<'_>) -> Result<bool> {
        let mut seen: HashMap<String, Vec<ValueId>> = HashMap::new();
        rewrite_nodes(&mut p.graph, |_, n| {
            if is_impure(n) || n.subgraphs().next().is_some() || n.outputs.is_empty() {
                return Ok(Rewrite::Keep);
            }
            let key = format!(
                "{}|{:?}",
                n.op,
                n.args
                    .iter()
                    .map(|a| (&a.name, &a.value))
                    .collect::<Vec<_>>()
            );
            match seen.get(&key) {
                Some(prev) => Ok(Rewrite::Replace {
                    nodes: vec![],
                    outputs: prev.clone(),
                }),
                None => {
                    seen.insert(key, n.outputs.clone());
                    Ok(Rewrite::Keep)
                }
            }
        })
    }
}

/// Removes ops that do nothing to a value in a functional graph: `clone`,
/// `alias`, `detach`, `contiguous`, `lift_fresh_copy`, a `view`/`expand` to
/// the same shape, an identity `permute`, a `_to_copy` to the same dtype,
/// and the `_assert_*` checks (shapes and dtypes are checked by the verifier
/// and at the call boundary instead). A copy of an input that a mutation
/// output writes back is kept.
pub struct RemoveNoops;

impl Pass for RemoveNoops {
    fn name(&self) -> &'static str {
        "remove_noops"
    }

    fn run(&self, p: &mut Program, _cx: &mut PassContext<'_>) -> Result<bool> {
        // `as_strided` reads its input's memory layout, which a copy fixes:
        // the copies feeding it are not no-ops.
        let layout_read: HashSet<ValueId> = p
            .graph
            .nodes
            .iter()
            .filter(|n| {
                n.op.aten().is_some_and(|a| {
                    matches!(
                        a,
                        Aten::AsStrided | Aten::AsStridedScatter | Aten::AsStridedInplace
                    )
                })
            })
            .flat_map(|n| n.inputs())
            .collect();
        // Inputs the runtime overwrites after the call (mutation outputs):
        // a copy of one is not a no-op, or a user output could be the input
        // itself and show the write-back.
        let mutated = mutated_inputs(p);
        rewrite_nodes(&mut p.graph, |g, n| {
            use Aten::*;
            let Some(a) = n.op.aten() else {
                return Ok(Rewrite::Keep);
            };
            if n.outputs.iter().any(|o| layout_read.contains(o)) {
                return Ok(Rewrite::Keep);
            }
            let copies = matches!(
                a,
                Clone | Alias | Detach | Contiguous | LiftFreshCopy | InternalToCopy
            );
            if copies && n.inputs().iter().any(|v| mutated.contains(v)) {
                return Ok(Rewrite::Keep);
            }
            if DROPPED.contains(&a) {
                return Ok(Rewrite::Replace {
                    nodes: vec![],
                    outputs: vec![],
                });
            }
            let Some(src) = n.args.first().and_then(|x| x.value.as_value()) else {
                return Ok(Rewrite::Keep);
            };
            let [out] = n.outputs[..] else {
                return Ok(Rewrite::Keep);
            };
            let same_type = match (g.tensor_type(src), g.tensor_type(out)) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            };
            let noop = match a {
                Clone | Alias | Detach | Contiguous | LiftFreshCopy => {
                    n.args
                        .iter()
                        .skip(1)
                        .all(|x| !matches!(x.value, Arg::Value(_)))
                        && same_type_or_unknown(g, src, out)
                }
                View | Reshape | Expand | InternalUnsafeView => same_type,
                Permute => {
                    let dims = n.arg("dims").and_then(Arg::as_ints).unwrap_or_default();
                    dims.iter().enumerate().all(|(i, &d)| d == i as i64)
                }
                InternalToCopy => {
                    same_type
                        && n.args.iter().all(|x| {
                            matches!(
                                x.name.as_str(),
                                "self" | "dtype" | "layout" | "device" | "pin_memory"
                            )
                        })
                }
                _ => false,
            };
            if noop {
                Ok(Rewrite::Replace {
                    nodes: vec![],
                    outputs: vec![src],
                })
            } else {
                Ok(Rewrite::Keep)
            }
        })
    }
}

/// The graph inputs that a mutation output writes back to.
fn mutated_inputs(p: &Program) -> HashSet<ValueId> {
    let g = &p.graph;
    let mut out = HashSet::new();
    for o in &p.signature.outputs {
        let Some(t) = o.target.as_deref() else {
            continue;
        };
        for s in &p.signature.inputs {
            let hit = match o.kind {
                OutputKind::BufferMutation | OutputKind::ParameterMutation => {
                    s.target.as_deref() == Some(t)
                }
                OutputKind::UserInputMutation => {
                    s.kind == InputKind::UserInput && g.name(s.value) == t
                }
                _ => false,
            };
            if hit {
                out.insert(s.value);
            }
        }
    }
    out
}

fn same_type_or_unknown(g: &Graph, a: ValueId, b: ValueId) -> bool {
    match (g.ty(a), g.ty(b)) {
        (ValueType::Tensor(x), ValueType::Tensor(y)) => x == y,
        _ => true,
    }
}

/// Evaluates, once at compile time, every node that depends only on
/// parameters and constants that the program does not mutate (the
/// transpose of a weight, a cast of a constant, ...). The results become new constant inputs; parameters no
/// longer used are dropped from the graph.
pub struct FoldConstants;

impl Pass for FoldConstants {
    fn name(&self) -> &'static str {
        "fold_constants"
    }

    fn run(&self, p: &mut Program, cx: &mut PassContext<'_>) -> Result<bool> {
        let Some(weights) = cx.weights.as_deref_mut() else {
            return Ok(false);
        };
        let g = &p.graph;
        let mut constant: HashSet<ValueId> = HashSet::new();
        let mut const_inputs = Vec::new();
        // Weights the program writes back after each call change between
        // calls, like buffers.
        let mutated = mutated_weights(p);
        for spec in &p.signature.inputs {
            if matches!(spec.kind, InputKind::Parameter | InputKind::ConstantTensor) {
                let t = spec.target.as_deref().unwrap_or("");
                if weights.contains_key(t) && !mutated.contains(t) {
                    constant.insert(spec.value);
                    const_inputs.push((spec.value, t.to_string()));
                }
            }
        }
        let mut folded = Vec::new();
        for (i, n) in g.nodes.iter().enumerate() {
            let inputs = n.inputs();
            if n.op.aten().is_none()
                || is_impure(n)
                || n.outputs.is_empty()
                || inputs.is_empty()
                || n.subgraphs().next().is_some()
                // Only tensors become constant inputs: a folded size or
                // scalar would leave its readers without a definition.
                || !n.outputs.iter().all(|&o| {
                    matches!(g.ty(o), ValueType::Tensor(_) | ValueType::UnknownTensor)
                })
            {
                continue;
            }
            if inputs.iter().all(|v| constant.contains(v)) {
                folded.push(i);
                constant.extend(n.outputs.iter().copied());
            }
        }
        if folded.is_empty() {
            return Ok(false);
        }
        let folded_set: HashSet<usize> = folded.iter().copied().collect();
        // The folded values that something else still reads.
        let mut frontier = Vec::new();
        let mut seen = HashSet::new();
        let produced: HashSet<ValueId> = folded
            .iter()
            .flat_map(|&i| g.nodes[i].outputs.iter().copied())
            .collect();
        for (i, n) in g.nodes.iter().enumerate() {
            if folded_set.contains(&i) {
                continue;
            }
            for v in n.inputs() {
                if produced.contains(&v) && seen.insert(v) {
                    frontier.push(v);
                }
            }
        }
        for v in g.output_values() {
            if produced.contains(&v) && seen.insert(v) {
                frontier.push(v);
            }
        }
        // Evaluate the folded nodes as a graph of their own.
        let mut sub = g.clone();
        sub.nodes = folded.iter().map(|&i| g.nodes[i].clone()).collect();
        sub.inputs = const_inputs.iter().map(|(v, _)| *v).collect();
        sub.outputs = frontier.iter().map(|&v| Arg::Value(v)).collect();
        let args = const_inputs
            .iter()
            .map(|(_, t)| RValue::Tensor(weights[t].clone()))
            .collect();
        let values = interp::run_graph(&sub, args, &HashMap::new())?;
        let g = &mut p.graph;
        let first_user = p
            .signature
            .inputs
            .iter()
            .position(|s| s.kind == InputKind::UserInput)
            .unwrap_or(p.signature.inputs.len());
        for (at, (v, val)) in (first_user..).zip(frontier.iter().zip(values)) {
            let RValue::Tensor(t) = val else {
                return Err(crate::Error::other(format!(
                    "folded value %{} is not a tensor",
                    g.name(*v)
                )));
            };
            // A name no value, weight or input target has: it is both the
            // value's name and the new weight's key.
            let base = format!("_folded_{}", g.name(*v));
            let mut name = g.fresh_name(&base);
            let mut i = 1;
            while weights.contains_key(&name)
                || p.signature
                    .inputs
                    .iter()
                    .any(|s| s.target.as_deref() == Some(name.as_str()))
            {
                name = g.fresh_name(&format!("{base}_{i}"));
                i += 1;
            }
            let input = g.add_value(&name, g.ty(*v).clone());
            weights.insert(name.clone(), t.contiguous());
            g.inputs.insert(at, input);
            p.signature.inputs.insert(
                at,
                InputSpec {
                    kind: InputKind::ConstantTensor,
                    value: input,
                    target: Some(name),
                },
            );
            g.replace_uses(*v, input);
        }
        let mut idx = 0;
        g.nodes.retain(|_| {
            let keep = !folded_set.contains(&idx);
            idx += 1;
            keep
        });
        drop_unused_weight_inputs(p);
        Ok(true)
    }
}

/// The state-dict names of the parameters and buffers the program writes
/// back after each call: they change between calls.
pub(crate) fn mutated_weights(p: &Program) -> HashSet<&str> {
    p.signature
        .outputs
        .iter()
        .filter(|o| {
            matches!(
                o.kind,
                OutputKind::ParameterMutation | OutputKind::BufferMutation
            )
        })
        .filter_map(|o| o.target.as_deref())
        .collect()
}

/// Removes parameter and constant inputs that nothing reads.
pub(crate) fn drop_unused_weight_inputs(p: &mut Program) {
    let counts = p.graph.use_counts();
    let g = &mut p.graph;
    let mut keep = Vec::new();
    for spec in &p.signature.inputs {
        let unused = counts[spec.value.index()] == 0;
        keep.push(
            !(unused && matches!(spec.kind, InputKind::Parameter | InputKind::ConstantTensor)),
        );
    }
    let mut it = keep.iter();
    p.signature.inputs.retain(|_| *it.next().unwrap_or(&true));
    let mut it = keep.iter();
    g.inputs.retain(|_| *it.next().unwrap_or(&true));
}
