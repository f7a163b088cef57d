//! Higher-order ops: inlining of `wrap_with_set_grad_enabled` and
//! `wrap_with_autocast` bodies (also inside the bodies of control-flow
//! ops, which stay), and removal of `auto_functionalized`.

use std::collections::HashMap;

use crate::error::Result;
use crate::ir::{Arg, Aten, Graph, Hop, NamedArg, Node, Op, Program, ValueId, ValueType};

use super::rewrite::{rewrite_nodes, Builder, Rewrite};
use super::{Pass, PassContext};

/// Inlines the bodies of `wrap_with_set_grad_enabled` (gradient mode does
/// not change inference values) and `wrap_with_autocast`. Inside an enabled
/// autocast region, the floating inputs of each lower-precision op are cast
/// explicitly with `_to_copy`, so the inlined graph computes what autocast
/// computed.
pub struct InlineHops;

impl Pass for InlineHops {
    fn name(&self) -> &'static str {
        "inline_hops"
    }

    fn run(&self, p: &mut Program, _cx: &mut PassContext<'_>) -> Result<bool> {
        inline_graph(&mut p.graph, None)
    }
}

/// Inlines the higher-order ops of `g`, whose own nodes run under the
/// autocast dtype `autocast` (`None`: autocast off). Each body is inlined
/// with the autocast state its op sets, so a region that disables autocast
/// inside an enabled one gets no casts.
fn inline_graph(g: &mut Graph, autocast: Option<crate::DType>) -> Result<bool> {
    let mut changed = match autocast {
        Some(d) => insert_autocast_casts(g, d)?,
        None => false,
    };
    changed |= rewrite_nodes(g, |g, n| {
        let Op::Hop(h) = n.op else {
            return Ok(Rewrite::Keep);
        };
        let inner = match h {
            Hop::WrapWithSetGradEnabled => autocast,
            Hop::WrapWithAutocast => {
                let enabled = matches!(n.args.get(2).map(|a| &a.value), Some(Arg::Bool(true)));
                let device = match n.args.first().map(|a| &a.value) {
                    Some(Arg::Str(s)) => s.clone(),
                    _ => "cpu".into(),
                };
                if enabled && device != "cpu" {
                    return Err(n.error(format!("autocast on device {device} is not supported")));
                }
                match n.args.get(1).map(|a| &a.value) {
                    _ if !enabled => None,
                    Some(Arg::DType(d)) => Some(*d),
                    _ => Some(crate::DType::BF16),
                }
            }
            Hop::Cond | Hop::WhileLoop | Hop::Map | Hop::Scan => {
                // Control flow stays; its bodies run in the same autocast
                // state, so their regions are inlined (and cast) in place.
                let mut node = n.clone();
                let mut inner_changed = false;
                for a in &mut node.args {
                    if let Arg::Graph(sg) = &mut a.value {
                        inner_changed |= inline_graph(&mut sg.graph, autocast)?;
                    }
                }
                if !inner_changed {
                    return Ok(Rewrite::Keep);
                }
                let outputs = n.outputs.clone();
                return Ok(Rewrite::Replace {
                    nodes: vec![node],
                    outputs,
                });
            }
            _ => return Ok(Rewrite::Keep),
        };
        let mut body = None;
        let mut operands = Vec::new();
        for a in &n.args {
            match &a.value {
                Arg::Graph(sg) if body.is_none() => body = Some(sg.graph.clone()),
                other if body.is_some() => operands.push(other.clone()),
                _ => {}
            }
        }
        let Some(mut body) = body else {
            return Err(n.error("higher-order op without a body"));
        };
        inline_graph(&mut body, inner)?;
        if body.inputs.len() != operands.len() {
            return Err(n.error(format!(
                "body takes {} inputs, {} given",
                body.inputs.len(),
                operands.len()
            )));
        }
        let (nodes, outs) = splice(g, &body, &operands, n)?;
        let mut outputs = Vec::new();
        for (i, _) in n.outputs.iter().enumerate() {
            match outs.get(i) {
                Some(Arg::Value(v)) => outputs.push(*v),
                _ => return Err(n.error(format!("body output {i} is not a value"))),
            }
        }
        Ok(Rewrite::Replace { nodes, outputs })
    })?;
    Ok(changed)
}

/// Casts the floating inputs of every lower-precision op of `g` (not of
/// nested bodies) to `dtype` with `_to_copy`.
fn insert_autocast_casts(g: &mut Graph, dtype: crate::DType) -> Result<bool> {
    rewrite_nodes(g, |g, n| {
        if !n.op.aten().is_some_and(Aten::autocast_lower_precision) {
            return Ok(Rewrite::Keep);
        }
        let mut node = n.clone();
        let mut b = Builder::new(g, n);
        for a in &mut node.args {
            if let Arg::Value(v) = a.value {
                let is_float = match b.g.ty(v) {
                    ValueType::Tensor(t) => t.dtype.is_float(),
                    ValueType::UnknownTensor => true,
                    _ => false,
                };
                if is_float {
                    let c = b.aten(
                        Aten::InternalToCopy,
                        "default",
                        vec![("self", Arg::Value(v)), ("dtype", Arg::DType(dtype))],
                    );
                    a.value = Arg::Value(c);
                }
            }
        }
        let mut nodes = std::mem::take(&mut b.nodes);
        nodes.push(node);
        Ok(Rewrite::Replace {
            nodes,
            outputs: n.outputs.clone(),
        })
    })
}

/// Copies `body`'s nodes into `g`, binding its inputs to `operands`.
/// Returns the new nodes and the body's outputs in `g`'s values.
fn splice(
    g: &mut Graph,
    body: &Graph,
    operands: &[Arg],
    hop: &Node,
) -> Result<(Vec<Node>, Vec<Arg>)> {
    let mut map: HashMap<ValueId, Arg> = HashMap::new();
    for (&i, a) in body.inputs.iter().zip(operands) {
        map.insert(i, a.clone());
    }
    let subst = |a: &Arg, map: &HashMap<ValueId, Arg>| -> Result<Arg> {
        Ok(match a {
            Arg::Value(v) => map.get(v).cloned().ok_or_else(|| {
                hop.error(format!("body uses %{} before it is defined", body.name(*v)))
            })?,
            Arg::List(items) => Arg::List(
                items
                    .iter()
                    .map(|x| match x {
                        Arg::Value(v) => map
                            .get(v)
                            .cloned()
                            .ok_or_else(|| hop.error("body value undefined")),
                        other => Ok(other.clone()),
                    })
                    .collect::<Result<_>>()?,
            ),
            other => other.clone(),
        })
    };
    let mut nodes = Vec::new();
    for bn in &body.nodes {
        let mut args = Vec::with_capacity(bn.args.len());
        for a in &bn.args {
            args.push(NamedArg {
                name: a.name.clone(),
                value: subst(&a.value, &map)?,
                kwarg: a.kwarg,
            });
        }
        let outputs: Vec<ValueId> = bn
            .outputs
            .iter()
            .map(|&o| {
                let v = g.add_value(body.name(o), body.ty(o).clone());
                map.insert(o, Arg::Value(v));
                v
            })
            .collect();
        let name = match outputs.first() {
            Some(&o) => g.name(o).to_string(),
            None => g.fresh_name(&bn.name),
        };
        let mut node = bn.clone();
        node.name = name;
        node.args = args;
        node.outputs = outputs;
        nodes.push(node);
    }
    let outs = body
        .outputs
        .iter()
        .map(|a| subst(a, &map))
        .collect::<Result<Vec<_>>>()?;
    Ok((nodes, outs))
}

/// Turns `auto_functionalized_v2(op, _x_base_index=i, _all_bases=[...], ...)`
/// back into a call of the mutating `op` on the bases, as torch's own
/// removal pass does: a base that nothing reads afterwards is mutated in
/// place; any other base is cloned first, so its other readers are not
/// affected.
///
/// torch 2.6 to 2.9 write `auto_functionalized` (v1) in the core form
/// instead; 2.10 and later write v2 (see [`crate::ir::releases`]). Both are
/// removed here.
pub struct RemoveAutoFunctionalized;

impl Pass for RemoveAutoFunctionalized {
    fn name(&self) -> &'static str {
        "remove_auto_functionalized"
    }

    fn run(&self, p: &mut Program, _cx: &mut PassContext<'_>) -> Result<bool> {
        let g = &mut p.graph;
        // Uses after each position, to decide where mutating in place is safe.
        let last_use = last_uses(g);
        // The bases of each node as the original graph names them. The
        // callback sees arguments renamed by earlier rewrites: a base that
        // an earlier call mutated in place is renamed to that call's own
        // base, whose later uses say nothing about this one's.
        let orig_bases: Vec<Vec<ValueId>> = g
            .nodes
            .iter()
            .map(|n| match n.arg("_all_bases") {
                Some(Arg::List(items)) => items.iter().filter_map(Arg::as_value).collect(),
                // v1: the tensor arguments themselves
                _ if n.op == Op::Hop(Hop::AutoFunctionalized) => {
                    v1_mutated(g, n).into_iter().map(|(_, v)| v).collect()
                }
                _ => vec![],
            })
            .collect();
        let mut index = 0usize;
        rewrite_nodes(g, |g, n| {
            let pos = index;
            index += 1;
            let v1 = match n.op {
                Op::Hop(Hop::AutoFunctionalizedV2) => false,
                Op::Hop(Hop::AutoFunctionalized) => true,
                _ => return Ok(Rewrite::Keep),
            };
            if v1 {
                return remove_v1(g, n, &orig_bases[pos], pos, &last_use);
            }
            let Some(op) = n.args.iter().find_map(|a| match &a.value {
                Arg::Operator(o) => Some(o.clone()),
                _ => None,
            }) else {
                return Err(n.error("auto_functionalized_v2 without an operator"));
            };
            let bases: Vec<ValueId> = match n.arg("_all_bases") {
                Some(Arg::List(items)) => items.iter().filter_map(Arg::as_value).collect(),
                Some(Arg::Ints(v)) if v.is_empty() => vec![],
                _ => return Err(n.error("auto_functionalized_v2 without _all_bases")),
            };
            let mut b = Builder::new(g, n);
            let mut new_bases = Vec::new();
            for (i, &base) in bases.iter().enumerate() {
                let orig = orig_bases[pos].get(i).copied().unwrap_or(base);
                let later = last_use.get(&orig).is_some_and(|&l| l > pos);
                if later {
                    new_bases.push(b.aten(
                        Aten::Clone,
                        "default",
                        vec![("self", Arg::Value(base))],
                    ));
                } else {
                    new_bases.push(base);
                }
            }
            let mut args: Vec<(String, Arg)> = Vec::new();
            for a in &n.args {
                if let Some(name) = a
                    .name
                    .strip_prefix('_')
                    .and_then(|s| s.strip_suffix("_base_index"))
                {
                    let Arg::Int(i) = a.value else {
                        return Err(n.error(format!("{} is not an int", a.name)));
                    };
                    if n.arg(&format!("_{name}_size")).is_some() {
                        return Err(n.error(format!(
                            "argument {name} of {op} is a view of its base; not supported"
                        )));
                    }
                    let Some(&v) = new_bases.get(i as usize) else {
                        return Err(n.error(format!("{} out of range", a.name)));
                    };
                    args.push((name.to_string(), Arg::Value(v)));
                } else if !a.name.starts_with('_') && !a.name.is_empty() {
                    args.push((a.name.clone(), a.value.clone()));
                }
            }
            let call_args = args.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            b.node(Op::from_target(&op), call_args, 0, false);
            // Name the call after the original node, so errors name it.
            if let Some(last) = b.nodes.last_mut() {
                last.name = n.name.clone();
            }
            let nodes = std::mem::take(&mut b.nodes);
            // Outputs: the op's own results (none supported), then bases.
            let n_bases = bases.len();
            let skip = n.outputs.len().saturating_sub(n_bases);
            let mut outputs = Vec::new();
            for (i, _) in n.outputs.iter().enumerate() {
                if i < skip {
                    // The op's own return values: placeholders that nothing may read.
                    outputs.push(n.outputs[i]);
                } else {
                    outputs.push(new_bases[i - skip]);
                }
            }
            Ok(Rewrite::Replace { nodes, outputs })
        })
    }
}

/// `auto_functionalized(op, x=%a, ...)` (v1, written by torch 2.6 to 2.9):
/// the mutated arguments are passed directly (no bases, no views), and the
/// node's outputs are the op's own results followed by the new value of each
/// mutated argument. The op's schema is not in the archive, so the mutated
/// arguments are taken to be its tensor arguments, in order; a node with
/// fewer outputs than that cannot be read and is an error. Each mutated
/// argument is cloned first unless nothing reads it afterwards, as for v2.
fn remove_v1(
    g: &mut Graph,
    n: &Node,
    orig: &[ValueId],
    pos: usize,
    last_use: &HashMap<ValueId, usize>,
) -> Result<Rewrite> {
    let Some(op) = n.args.iter().find_map(|a| match &a.value {
        Arg::Operator(o) => Some(o.clone()),
        _ => None,
    }) else {
        return Err(n.error("auto_functionalized without an operator"));
    };
    let mutated = v1_mutated(g, n);
    if mutated.len() > n.outputs.len() {
        return Err(n.error(format!(
            "auto_functionalized (v1) of {op}: {} tensor arguments but {} outputs; \
             cannot tell which ones the op mutates",
            mutated.len(),
            n.outputs.len()
        )));
    }
    let mut b = Builder::new(g, n);
    let mut new_vals: HashMap<usize, ValueId> = HashMap::new();
    let mut fresh = Vec::new();
    for (k, &(i, v)) in mutated.iter().enumerate() {
        let o = orig.get(k).copied().unwrap_or(v);
        let later = last_use.get(&o).is_some_and(|&l| l > pos);
        let nv = if later {
            b.aten(Aten::Clone, "default", vec![("self", Arg::Value(v))])
        } else {
            v
        };
        new_vals.insert(i, nv);
        fresh.push(nv);
    }
    let args: Vec<(String, Arg)> = n
        .args
        .iter()
        .enumerate()
        .filter(|(_, a)| !a.name.is_empty())
        .map(|(i, a)| {
            let value = match new_vals.get(&i) {
                Some(&nv) => Arg::Value(nv),
                None => a.value.clone(),
            };
            (a.name.clone(), value)
        })
        .collect();
    let call_args = args.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    b.node(Op::from_target(&op), call_args, 0, false);
    if let Some(last) = b.nodes.last_mut() {
        last.name = n.name.clone();
    }
    let nodes = std::mem::take(&mut b.nodes);
    let lead = n.outputs.len() - mutated.len();
    let outputs = n
        .outputs
        .iter()
        .enumerate()
        .map(|(i, &o)| if i < lead { o } else { fresh[i - lead] })
        .collect();
    Ok(Rewrite::Replace { nodes, outputs })
}

/// The tensor arguments of a v1 `auto_functionalized` node, with their
/// argument positions.
fn v1_mutated(g: &Graph, n: &Node) -> Vec<(usize, ValueId)> {
    n.args
        .iter()
        .enumerate()
        .filter(|(_, a)| !a.name.is_empty())
        .filter_map(|(i, a)| a.value.as_value().map(|v| (i, v)))
        .filter(|(_, v)| g.ty(*v).is_tensor())
        .collect()
}

fn last_uses(g: &Graph) -> HashMap<ValueId, usize> {
    let mut m = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        for v in n.inputs() {
            m.insert(v, i);
        }
    }
    for v in g.output_values() {
        m.insert(v, usize::MAX);
    }
    m
}
