//! Shape and dtype propagation: torch's meta functions over the graph IR.
//!
//! [`infer_node`] computes a node's output types from its inputs' types and
//! constant arguments (broadcasting, type promotion, reductions, views with
//! symbolic sizes, convolutions, ...). The [`ShapeProp`] pass walks a
//! program in order, fills in unknown tensor types and checks recorded ones.
//! [`bind_inputs`] checks concrete inputs against the signature at run time
//! and binds the shape symbols.

mod rules;
mod simplify;
mod util;

/// Symbol ranges by name, as [`Program::range_constraints`] holds them.
pub type Ranges = BTreeMap<String, SymRange>;

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result};
use crate::ir::print::type_text;
use crate::ir::{Arg, Graph, Hop, Node, Op, Program, TensorType, ValueType};
use crate::sym::{SymExpr, SymRange};
use crate::DType;

use super::{Pass, PassContext};

pub use crate::promote::{promote_types, result_type, Operand};
pub use rules::infer_node;

/// The subgraph of a higher-order op and the types of the operands it is
/// called with (for `cond`: the true branch). `map_impl` and `scan` call
/// their body on one element of `xs` at a time: those operands lose their
/// leading dim.
pub(crate) fn hop_operands<'g>(g: &Graph, n: &'g Node) -> Option<(&'g Graph, Vec<ValueType>)> {
    let gi = n
        .args
        .iter()
        .position(|a| matches!(a.value, Arg::Graph(_)))?;
    let Arg::Graph(sub) = &n.args[gi].value else {
        return None;
    };
    let mut tys = Vec::new();
    let skip = if n.op == Op::Hop(Hop::Cond) { 2 } else { 1 };
    // The position of `xs` among the non-graph arguments after the body.
    let mapped = match n.op {
        Op::Hop(Hop::Map) => Some(0),
        Op::Hop(Hop::Scan) => Some(1),
        _ => None,
    };
    let operands = n
        .args
        .iter()
        .skip(gi + skip)
        .filter(|a| !matches!(a.value, Arg::Graph(_)));
    for (k, a) in operands.enumerate() {
        if mapped == Some(k) {
            a.value.for_each_value(&mut |v| {
                tys.push(match g.ty(v) {
                    ValueType::Tensor(t) if t.rank() > 0 => {
                        ValueType::Tensor(TensorType::new(t.dtype, t.shape[1..].to_vec()))
                    }
                    other => other.clone(),
                })
            });
            continue;
        }
        a.value.for_each_value(&mut |v| tys.push(g.ty(v).clone()));
        match &a.value {
            Arg::Int(_) => tys.push(ValueType::SymInt),
            Arg::Float(_) => tys.push(ValueType::SymFloat),
            Arg::Bool(_) => tys.push(ValueType::SymBool),
            _ => {}
        }
    }
    Some((&sub.graph, tys))
}

/// The autocast dtype inside the subgraphs of `n`, given the one outside:
/// `wrap_with_autocast` sets (or, when disabled, clears) it.
pub(crate) fn hop_autocast(n: &Node, outer: Option<DType>) -> Option<DType> {
    if n.op != Op::Hop(Hop::WrapWithAutocast) {
        return outer;
    }
    let dtype = n.args.iter().find_map(|a| match a.value {
        Arg::DType(d) => Some(d),
        _ => None,
    });
    let enabled = n.args.iter().find_map(|a| match a.value {
        Arg::Bool(b) => Some(b),
        _ => None,
    });
    match enabled {
        Some(false) => None,
        _ => dtype.or(outer),
    }
}

/// Ops that CPU autocast runs in the lower-precision dtype.
fn autocast_lowers(op: &Op) -> bool {
    use crate::ir::Aten::*;
    matches!(
        op.aten(),
        Some(
            Conv1d
                | Conv2d
                | Conv3d
                | Convolution
                | ConvTranspose1d
                | ConvTranspose2d
                | Bmm
                | Mm
                | Baddbmm
                | Addmm
                | Addbmm
                | Linear
                | Matmul
                | Prelu
                | ScaledDotProductAttention
        )
    )
}

/// [`infer_node`] inside an autocast region of dtype `autocast`.
pub(crate) fn infer_node_in(
    g: &Graph,
    n: &Node,
    autocast: Option<DType>,
) -> Result<Vec<ValueType>> {
    let mut out = match &n.op {
        Op::Hop(_) => rules::infer_hop_in(g, n, autocast)?,
        _ => infer_node(g, n)?,
    };
    if let Some(d) = autocast {
        if autocast_lowers(&n.op) {
            for ty in &mut out {
                if let ValueType::Tensor(t) = ty {
                    if t.dtype.is_float() {
                        t.dtype = d;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Types a subgraph's inputs from `operands` and propagates through it.
pub(crate) fn type_subgraph(
    sub: &mut Graph,
    operands: &[ValueType],
    autocast: Option<DType>,
    ranges: &Ranges,
) -> Result<()> {
    if operands.len() != sub.inputs.len() {
        return Err(Error::other(format!(
            "subgraph takes {} inputs but is given {}",
            sub.inputs.len(),
            operands.len()
        )));
    }
    for (&v, ty) in sub.inputs.clone().iter().zip(operands) {
        if let (ValueType::Tensor(rec), ValueType::Tensor(outer)) = (sub.ty(v), ty) {
            if disagree(rec, outer) {
                return Err(Error::Verify(format!(
                    "subgraph input %{} is recorded as {} but called with {}",
                    sub.name(v),
                    type_text(sub.ty(v)),
                    type_text(ty)
                )));
            }
        }
        if !matches!(ty, ValueType::UnknownTensor) {
            sub.set_ty(v, ty.clone());
        }
    }
    propagate_in(sub, autocast, ranges)?;
    Ok(())
}

/// Whether two types disagree: a different kind, dtype or rank, or a dim
/// that is provably different.
fn disagree(recorded: &TensorType, inferred: &TensorType) -> bool {
    recorded.dtype != inferred.dtype
        || recorded.rank() != inferred.rank()
        || recorded
            .shape
            .iter()
            .zip(&inferred.shape)
            .any(|(a, b)| util::provably_different(a, b))
}

/// Propagates types through every node of `g`, in order. Returns whether
/// any type changed.
pub fn propagate(g: &mut Graph) -> Result<bool> {
    propagate_in(g, None, &Ranges::new())
}

/// [`propagate`], simplifying inferred dims with the symbols' ranges
/// (`Min(3, s0)` is `3` when `s0 >= 3`).
pub fn propagate_with_ranges(g: &mut Graph, ranges: &Ranges) -> Result<bool> {
    propagate_in(g, None, ranges)
}

fn propagate_in(g: &mut Graph, autocast: Option<DType>, ranges: &Ranges) -> Result<bool> {
    let mut changed = false;
    for i in 0..g.nodes.len() {
        // Type the subgraphs of a higher-order op first, in place.
        if g.nodes[i].subgraphs().next().is_some() {
            let operand_tys = hop_operands(g, &g.nodes[i]).map(|(_, t)| t);
            if let Some(tys) = operand_tys {
                let is_cond = g.nodes[i].op == Op::Hop(Hop::Cond);
                let inner = hop_autocast(&g.nodes[i], autocast);
                let node_err = |e: Error, n: &Node| n.error(e.to_string());
                let node = g.nodes[i].clone();
                let mut node_mut = node.clone();
                for a in node_mut.args.iter_mut() {
                    if let Arg::Graph(sg) = &mut a.value {
                        // Every branch of `cond` takes the same operands.
                        if is_cond || sg.graph.inputs.len() == tys.len() {
                            type_subgraph(&mut sg.graph, &tys, inner, ranges)
                                .map_err(|e| node_err(e, &node))?;
                        }
                    }
                }
                if node_mut != node {
                    g.nodes[i] = node_mut;
                    changed = true;
                }
            }
        }
        let n = &g.nodes[i];
        let inferred = match infer_node_in(g, n, autocast) {
            Ok(mut t) => {
                if !ranges.is_empty() {
                    for ty in &mut t {
                        if let ValueType::Tensor(tt) = ty {
                            for d in &mut tt.shape {
                                *d = simplify::simplify(d, ranges);
                            }
                        }
                    }
                }
                t
            }
            // An op without a rule is fine when the archive recorded the
            // types of all its outputs.
            Err(e)
                if e.to_string().contains("no shape rule")
                    && n.outputs
                        .iter()
                        .all(|&o| !matches!(g.ty(o), ValueType::UnknownTensor)) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        if inferred.len() != n.outputs.len() {
            return Err(n.error(format!(
                "{} outputs inferred for {} values",
                inferred.len(),
                n.outputs.len()
            )));
        }
        let mut updates = Vec::new();
        for (&o, inf) in n.outputs.iter().zip(inferred) {
            let rec = g.ty(o);
            match (rec, &inf) {
                (ValueType::UnknownTensor, ValueType::UnknownTensor) => {}
                (ValueType::UnknownTensor, _) => updates.push((o, inf)),
                (_, ValueType::UnknownTensor) => {}
                (ValueType::Tensor(r), ValueType::Tensor(f)) if disagree(r, f) => {
                    return Err(mismatch(g, n, o, rec, &inf));
                }
                (ValueType::Tensor(_), ValueType::Tensor(_)) => {}
                (r, f) if std::mem::discriminant(r) != std::mem::discriminant(f) => {
                    return Err(mismatch(g, n, o, rec, &inf));
                }
                _ => {}
            }
        }
        for (o, ty) in updates {
            g.set_ty(o, ty);
            changed = true;
        }
    }
    Ok(changed)
}

fn mismatch(g: &Graph, n: &Node, o: crate::ir::ValueId, rec: &ValueType, inf: &ValueType) -> Error {
    Error::Verify(format!(
        "node {}{}: value %{} is recorded as {} but inferred as {}",
        n.name,
        n.meta.source_line(),
        g.name(o),
        type_text(rec),
        type_text(inf)
    ))
}

/// Fills in unknown tensor types and checks recorded ones, node by node.
pub struct ShapeProp;

impl Pass for ShapeProp {
    fn name(&self) -> &'static str {
        "shape_prop"
    }

    fn run(&self, p: &mut Program, _cx: &mut PassContext<'_>) -> Result<bool> {
        propagate_with_ranges(&mut p.graph, &p.range_constraints)
    }
}

/// Checks concrete user inputs (dtype and shape, in call order) against the
/// program's signature and binds every shape symbol.
///
/// A dim that is exactly a symbol binds it (consistently across inputs, and
/// within its range); a constant dim must match; a compound dim is checked
/// once all its symbols are bound.
pub fn bind_inputs(p: &Program, inputs: &[(DType, Vec<usize>)]) -> Result<HashMap<String, i64>> {
    let g = &p.graph;
    let users = p.user_inputs();
    if users.len() != inputs.len() {
        let names: Vec<&str> = users.iter().map(|&v| g.name(v)).collect();
        return Err(Error::input(
            names.join(", "),
            format!("expected {} inputs but got {}", users.len(), inputs.len()),
        ));
    }
    let mut env: HashMap<String, i64> = HashMap::new();
    // Where each symbol was bound, for error messages.
    let mut origin: HashMap<String, (String, usize)> = HashMap::new();
    let mut compound = Vec::new();
    for (&v, (dtype, shape)) in users.iter().zip(inputs) {
        let name = g.name(v).to_string();
        let tt = match g.ty(v) {
            ValueType::Tensor(t) => t,
            ValueType::UnknownTensor => continue,
            other => {
                return Err(Error::input(
                    name,
                    format!("is a {} in the signature, not a tensor", type_text(other)),
                ))
            }
        };
        if tt.dtype != *dtype {
            return Err(Error::input(
                name,
                format!("dtype is {dtype} but the program expects {}", tt.dtype),
            ));
        }
        if tt.rank() != shape.len() {
            return Err(Error::input(
                name,
                format!(
                    "rank is {} (shape {:?}) but the program expects rank {} ({})",
                    shape.len(),
                    shape,
                    tt.rank(),
                    type_text(g.ty(v))
                ),
            ));
        }
        for (i, (dim, &actual)) in tt.shape.iter().zip(shape).enumerate() {
            let actual = i64::try_from(actual)
                .map_err(|_| Error::input(&name, format!("dim {i} is too large")))?;
            match dim {
                SymExpr::Int(c) => {
                    if *c != actual {
                        return Err(Error::input(
                            name,
                            format!("dim {i} is {actual} but the program expects {c}"),
                        ));
                    }
                }
                SymExpr::Symbol(s) => {
                    if let Some(r) = p.range_constraints.get(s) {
                        if !r.contains(actual) {
                            let max = r.max.map_or("inf".to_string(), |m| m.to_string());
                            return Err(Error::input(
                                name,
                                format!(
                                    "dim {i} is {actual}, outside the range [{}, {max}] of {s}",
                                    r.min
                                ),
                            ));
                        }
                    }
                    match env.get(s) {
                        Some(&prev) if prev != actual => {
                            let (pn, pi) = origin.get(s).cloned().unwrap_or_default();
                            return Err(Error::input(
                                name,
                                format!(
                                    "dim {i} is {actual} but {s} is {prev} (from input {pn} dim {pi})"
                                ),
                            ));
                        }
                        Some(_) => {}
                        None => {
                            env.insert(s.clone(), actual);
                            origin.insert(s.clone(), (name.clone(), i));
                        }
                    }
                }
                other => compound.push((name.clone(), i, other.clone(), actual)),
            }
        }
    }
    // A symbol that only appears in compound dims (`2*s0`) is solved from
    // the first linear one.
    for (_, _, expr, actual) in &compound {
        let free: Vec<String> = expr
            .free_symbols()
            .into_iter()
            .filter(|s| !env.contains_key(s))
            .collect();
        if let [sym] = free.as_slice() {
            if let Some(v) = solve_linear(expr, sym, *actual, &env) {
                let in_range = p.range_constraints.get(sym).map_or(true, |r| r.contains(v));
                if in_range {
                    env.insert(sym.clone(), v);
                }
            }
        }
    }
    for (name, i, expr, actual) in compound {
        match expr.eval_map(&env) {
            Some(v) if v == actual => {}
            Some(v) => {
                return Err(Error::input(
                    name,
                    format!("dim {i} is {actual} but {expr} = {v}"),
                ))
            }
            None => {
                return Err(Error::input(
                    name,
                    format!("dim {i}: cannot evaluate {expr} from the bound symbols"),
                ))
            }
        }
    }
    Ok(env)
}

/// The value of `sym` that makes `expr` equal `target`, if `expr` is
/// linear in it (checked by evaluating back).
fn solve_linear(expr: &SymExpr, sym: &str, target: i64, env: &HashMap<String, i64>) -> Option<i64> {
    let at = |x: i64| {
        expr.eval(&|s| {
            if s == sym {
                Some(x)
            } else {
                env.get(s).copied()
            }
        })
    };
    let b = at(0)?;
    let a = at(1)?.checked_sub(b)?;
    if a == 0 {
        return None;
    }
    let d = target.checked_sub(b)?;
    if d.checked_rem(a)? != 0 {
        return None;
    }
    let v = d.checked_div(a)?;
    (at(v)? == target).then_some(v)
}

#[cfg(test)]
mod tests;
