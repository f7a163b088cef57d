//! Functionalization: every in-place op becomes its functional form, and
//! mutations made through views are written back with scatter ops.
//!
//! The pass walks the graph in order, tracking for each tensor value its
//! *base* (the value whose storage it views) and the chain of view ops from
//! the base to it. Every base has a current version:
//!
//! - `op_(self=v, ...)` becomes `op(self=read(v), ...)`; if `v` is a base,
//!   the result is its new version; if `v` is a view, the result is written
//!   back through the chain (`select_scatter`, `slice_scatter`, inverse
//!   `view`/`permute`, `as_strided_scatter`, ...) to make the base's new
//!   version;
//! - every other use of a value reads its current version; a view of a base
//!   that changed since the view was taken is recomputed from the base;
//! - at the end, a graph input whose version changed is returned as a
//!   BUFFER_MUTATION (buffers), USER_INPUT_MUTATION (user inputs) or
//!   PARAMETER_MUTATION output, placed before the user outputs as torch
//!   does.
//!
//! Run after `inline_hops`, which inlines the bodies of grad-mode and
//! autocast regions. The bodies of control-flow ops (`cond`, `while_loop`,
//! `map_impl`, `scan`) are functionalized as graphs of their own; a body
//! that mutates one of its inputs is refused.

use std::collections::HashMap;

use crate::error::Result;
use crate::ir::{
    schema, Arg, Aten, Graph, InputKind, NamedArg, Node, Op, OutputKind, OutputSpec, Program,
    ValueId, ValueType,
};

use super::{Pass, PassContext};

pub struct Functionalize;

impl Pass for Functionalize {
    fn name(&self) -> &'static str {
        "functionalize"
    }

    fn run(&self, p: &mut Program, _cx: &mut PassContext<'_>) -> Result<bool> {
        functionalize(p)
    }
}

/// One view op applied to a parent: the original node (as a template whose
/// `self` is replaced on replay) and, for list-returning views, which output.
#[derive(Clone, Debug)]
struct ViewStep {
    node: Node,
    index: usize,
    /// The value this step produced in the original graph (for its type).
    orig: ValueId,
}

#[derive(Clone, Debug)]
struct Alias {
    base: ValueId,
    chain: Vec<ViewStep>,
    /// The base's version when this view was taken.
    version: u32,
}

/// Whether an op returns a view of its `self` argument.
fn is_view(a: Aten) -> bool {
    use Aten::*;
    matches!(
        a,
        View | Reshape
            | InternalUnsafeView
            | Select
            | Slice
            | Transpose
            | T
            | Permute
            | Unsqueeze
            | Squeeze
            | Expand
            | ExpandAs
            | AsStrided
            | Alias
            | Detach
            | Contiguous
            | Flatten
            | Unflatten
            | Narrow
            | Diagonal
            | ViewAs
            | Split
            | SplitWithSizes
            | Unbind
            | Chunk
            | TensorSplit
    )
}

/// The overload of the functional op that an `out=` overload computes:
/// `add.out` → `add.Tensor`, `sum.IntList_out` → `sum.IntList`.
fn functional_overload(a: Aten, overload: &str) -> String {
    use Aten::*;
    if let Some(base) = overload.strip_suffix("_out") {
        return base.to_string();
    }
    let binary = matches!(
        a,
        Add | Sub
            | Mul
            | Div
            | Eq
            | Ne
            | Lt
            | Le
            | Gt
            | Ge
            | Remainder
            | Fmod
            | BitwiseAnd
            | BitwiseOr
            | BitwiseXor
    );
    if binary { "Tensor" } else { "default" }.to_string()
}

struct State {
    alias: HashMap<ValueId, Alias>,
    current: HashMap<ValueId, ValueId>,
    version: HashMap<ValueId, u32>,
    regen: HashMap<ValueId, (u32, ValueId)>,
    out: Vec<Node>,
    changed: bool,
}

fn self_arg_name(n: &Node) -> Option<&str> {
    n.args
        .iter()
        .find(|a| matches!(a.value, Arg::Value(_)))
        .map(|a| a.name.as_str())
}

impl State {
    fn base_of(&self, v: ValueId) -> ValueId {
        self.alias.get(&v).map_or(v, |a| a.base)
    }

    /// The up-to-date value of `v`, emitting recomputation if needed.
    fn read(&mut self, g: &mut Graph, v: ValueId) -> Result<ValueId> {
        let Some(al) = self.alias.get(&v).cloned() else {
            return Ok(*self.current.get(&v).unwrap_or(&v));
        };
        if al.chain.is_empty() {
            // Another name for the base itself (the result of `x.add_(1)`).
            return Ok(*self.current.get(&al.base).unwrap_or(&al.base));
        }
        let now = *self.version.get(&al.base).unwrap_or(&0);
        if now == al.version {
            return Ok(v);
        }
        if let Some(&(ver, r)) = self.regen.get(&v) {
            if ver == now {
                return Ok(r);
            }
        }
        let mut cur = *self.current.get(&al.base).unwrap_or(&al.base);
        for step in &al.chain {
            cur = self.replay(g, step, cur);
        }
        self.regen.insert(v, (now, cur));
        Ok(cur)
    }

    /// Emits `step` applied to `input`, returning the view's value.
    fn replay(&mut self, g: &mut Graph, step: &ViewStep, input: ValueId) -> ValueId {
        let mut n = step.node.clone();
        if let Some(self_name) = self_arg_name(&n).map(str::to_string) {
            if let Some(a) = n.arg_mut(&self_name) {
                *a = Arg::Value(input);
            }
        }
        let ty = g.ty(step.orig).clone();
        let outs: Vec<ValueId> = n
            .outputs
            .iter()
            .map(|&o| {
                let t = g.ty(o).clone();
                let name = g.name(o).to_string();
                g.add_value(&name, t)
            })
            .collect();
        n.name = g.name(outs[0]).to_string();
        n.outputs = outs.clone();
        self.out.push(n);
        let r = outs[step.index];
        g.set_ty(r, ty);
        r
    }

    /// Records that `target` now holds `r` (computed by `n`): its base gets a
    /// new version (written back through the view chain when `target` is a
    /// view), and `n`'s outputs, which alias `target`, read as `r`.
    fn mutate(&mut self, g: &mut Graph, target: ValueId, r: ValueId, n: &Node) -> Result<()> {
        let base = self.base_of(target);
        let new_base = match self.alias.get(&target).cloned() {
            None => r,
            Some(al) => self.scatter_back(g, al.base, &al.chain, r, n)?,
        };
        self.current.insert(base, new_base);
        *self.version.entry(base).or_insert(0) += 1;
        let ver = self.version[&base];
        let al = self.alias.get(&target).cloned().unwrap_or(Alias {
            base,
            chain: vec![],
            version: ver,
        });
        if !al.chain.is_empty() {
            self.regen.insert(target, (ver, r));
        }
        for &o in &n.outputs {
            self.alias.insert(o, al.clone());
            if !al.chain.is_empty() {
                self.regen.insert(o, (ver, r));
            }
        }
        Ok(())
    }

    /// Writes `src` (the new value of the view at the end of `chain`) back
    /// into `base`'s current version; returns the new base value.
    fn scatter_back(
        &mut self,
        g: &mut Graph,
        base: ValueId,
        chain: &[ViewStep],
        src: ValueId,
        user: &Node,
    ) -> Result<ValueId> {
        // The current value of every prefix of the chain.
        let mut prefix = vec![*self.current.get(&base).unwrap_or(&base)];
        for step in &chain[..chain.len().saturating_sub(1)] {
            let last = *prefix.last().unwrap_or(&base);
            let v = self.replay(g, step, last);
            prefix.push(v);
        }
        let mut val = src;
        for (step, &inp) in chain.iter().zip(&prefix).rev() {
            val = self.inverse(g, step, inp, val, user)?;
        }
        Ok(val)
    }

    /// The parent value after writing `src` into the view `step` of `inp`.
    fn inverse(
        &mut self,
        g: &mut Graph,
        step: &ViewStep,
        inp: ValueId,
        src: ValueId,
        user: &Node,
    ) -> Result<ValueId> {
        let n = &step.node;
        let op = n.op.aten().unwrap_or(Aten::Alias);
        let arg = |k: &str| n.arg(k).cloned().unwrap_or(Arg::None);
        let mut b = super::rewrite::Builder::new(g, user);
        use Aten::*;
        let r = match op {
            Alias | Detach | Contiguous => src,
            Select => b.aten(
                SelectScatter,
                "default",
                vec![
                    ("self", Arg::Value(inp)),
                    ("src", Arg::Value(src)),
                    ("dim", arg("dim")),
                    ("index", arg("index")),
                ],
            ),
            Slice => b.aten(
                SliceScatter,
                "default",
                vec![
                    ("self", Arg::Value(inp)),
                    ("src", Arg::Value(src)),
                    ("dim", n.arg("dim").cloned().unwrap_or(Arg::Int(0))),
                    ("start", arg("start")),
                    ("end", arg("end")),
                    ("step", n.arg("step").cloned().unwrap_or(Arg::Int(1))),
                ],
            ),
            Narrow => {
                let (Some(Arg::Int(start)), Some(Arg::Int(len))) =
                    (n.arg("start"), n.arg("length"))
                else {
                    return Err(user.error(
                        "mutation through a narrow view with symbolic bounds is not supported",
                    ));
                };
                b.aten(
                    SliceScatter,
                    "default",
                    vec![
                        ("self", Arg::Value(inp)),
                        ("src", Arg::Value(src)),
                        ("dim", arg("dim")),
                        ("start", Arg::Int(*start)),
                        ("end", Arg::Int(start + len)),
                        ("step", Arg::Int(1)),
                    ],
                )
            }
            Unbind => b.aten(
                SelectScatter,
                "default",
                vec![
                    ("self", Arg::Value(inp)),
                    ("src", Arg::Value(src)),
                    ("dim", n.arg("dim").cloned().unwrap_or(Arg::Int(0))),
                    ("index", Arg::Int(step.index as i64)),
                ],
            ),
            Split | SplitWithSizes | Chunk => {
                let dim = match n.arg("dim") {
                    Some(Arg::Int(d)) => *d,
                    _ => 0,
                };
                let sizes: Vec<i64> = match (
                    op,
                    n.arg("split_size")
                        .or(n.arg("split_sizes"))
                        .or(n.arg("chunks")),
                ) {
                    (SplitWithSizes, Some(a)) => a.as_ints().unwrap_or_default(),
                    (Split, Some(Arg::Int(s))) => vec![*s; step.index + 1],
                    _ => return Err(user.error("mutation through this split is not supported")),
                };
                let start: i64 = sizes.iter().take(step.index).sum();
                let len = sizes.get(step.index).copied().unwrap_or(0);
                b.aten(
                    SliceScatter,
                    "default",
                    vec![
                        ("self", Arg::Value(inp)),
                        ("src", Arg::Value(src)),
                        ("dim", Arg::Int(dim)),
                        ("start", Arg::Int(start)),
                        ("end", Arg::Int(start + len)),
                        ("step", Arg::Int(1)),
                    ],
                )
            }
            Transpose => b.aten(
                Transpose,
                "int",
                vec![
                    ("self", Arg::Value(src)),
                    ("dim0", arg("dim0")),
                    ("dim1", arg("dim1")),
                ],
            ),
            T => b.aten(T, "default", vec![("self", Arg::Value(src))]),
            Permute => {
                let dims = arg("dims").as_ints().unwrap_or_default();
                let rank = dims.len() as i64;
                let mut inv = vec![0i64; dims.len()];
                for (i, &d) in dims.iter().enumerate() {
                    let d = if d < 0 { d + rank } else { d };
                    if let Some(slot) = inv.get_mut(d as usize) {
                        *slot = i as i64;
                    }
                }
                b.aten(
                    Permute,
                    "default",
                    vec![("self", Arg::Value(src)), ("dims", Arg::Ints(inv))],
                )
            }
            View | Reshape | InternalUnsafeView | Unsqueeze | Squeeze | Flatten | Unflatten
            | ViewAs => {
                let shape = shape_arg(&mut b, inp, step, user)?;
                b.aten(
                    View,
                    "default",
                    vec![("self", Arg::Value(src)), ("size", shape)],
                )
            }
            AsStrided => b.aten(
                AsStridedScatter,
                "default",
                vec![
                    ("self", Arg::Value(inp)),
                    ("src", Arg::Value(src)),
                    ("size", arg("size")),
                    ("stride", arg("stride")),
                    ("storage_offset", arg("storage_offset")),
                ],
            ),
            Diagonal => b.aten(
                DiagonalScatter,
                "default",
                vec![
                    ("self", Arg::Value(inp)),
                    ("src", Arg::Value(src)),
                    ("offset", n.arg("offset").cloned().unwrap_or(Arg::Int(0))),
                    ("dim1", n.arg("dim1").cloned().unwrap_or(Arg::Int(0))),
                    ("dim2", n.arg("dim2").cloned().unwrap_or(Arg::Int(1))),
                ],
            ),
            other => {
                return Err(user.error(format!(
                    "mutation through a {} view is not supported",
                    other.name()
                )))
            }
        };
        let nodes = std::mem::take(&mut b.nodes);
        self.out.extend(nodes);
        Ok(r)
    }
}

/// The shape of the parent of a view, as a `size` argument. Symbolic dims
/// are read at run time with `sym_size`.
fn shape_arg(
    b: &mut super::rewrite::Builder<'_>,
    inp: ValueId,
    step: &ViewStep,
    user: &Node,
) -> Result<Arg> {
    // The parent's type: the recorded type of the original parent value.
    let parent_self = self_arg_name(&step.node)
        .and_then(|k| step.node.arg(k))
        .and_then(Arg::as_value);
    let ty = parent_self
        .and_then(|v| b.g.tensor_type(v).cloned())
        .or_else(|| b.g.tensor_type(inp).cloned());
    let Some(ty) = ty else {
        return Err(user.error("mutation through a reshaping view of a value of unknown shape"));
    };
    if let Some(s) = ty.static_shape() {
        return Ok(Arg::Ints(s.iter().map(|&d| d as i64).collect()));
    }
    let mut items = Vec::new();
    for (i, d) in ty.shape.iter().enumerate() {
        match d.as_int() {
            Some(v) => items.push(Arg::Int(v)),
            None => {
                let s = b.node(
                    Op::Aten(Aten::SymSize, "int".into()),
                    vec![("self", Arg::Value(inp)), ("dim", Arg::Int(i as i64))],
                    1,
                    false,
                )[0];
                b.g.set_ty(s, crate::ir::ValueType::SymInt);
                items.push(Arg::Value(s));
            }
        }
    }
    Ok(Arg::List(items))
}

fn functionalize(p: &mut Program) -> Result<bool> {
    let (current, changed) = functionalize_graph(&mut p.graph)?;
    let g = &mut p.graph;
    // Mutated inputs become outputs, before the existing ones.
    let mut mut_outs = Vec::new();
    let mut mut_specs = Vec::new();
    for spec in &p.signature.inputs {
        let v = spec.value;
        let Some(&cur) = current.get(&v) else {
            continue;
        };
        if cur == v {
            continue;
        }
        let (kind, target) = match &spec.kind {
            InputKind::Buffer { .. } => (OutputKind::BufferMutation, spec.target.clone()),
            InputKind::Parameter => (OutputKind::ParameterMutation, spec.target.clone()),
            InputKind::UserInput => (OutputKind::UserInputMutation, Some(g.name(v).to_string())),
            other => {
                return Err(crate::Error::other(format!(
                    "the program mutates input {} of kind {}",
                    g.name(v),
                    other.name()
                )));
            }
        };
        mut_outs.push(Arg::Value(cur));
        mut_specs.push(OutputSpec { kind, target });
    }
    // Keep torch's order: earlier passes may already have added mutation
    // outputs (a `_core` archive); new ones go first.
    mut_outs.append(&mut g.outputs);
    mut_specs.append(&mut p.signature.outputs);
    g.outputs = mut_outs;
    p.signature.outputs = mut_specs;
    Ok(changed)
}

/// Functionalizes the body `name` of the control-flow op `n`, which must not
/// mutate its inputs.
fn functionalize_body(name: &str, body: &mut Graph, n: &Node) -> Result<bool> {
    let (current, changed) = functionalize_graph(body)?;
    for &v in &body.inputs {
        if current.get(&v).is_some_and(|&c| c != v) {
            return Err(n.error(format!(
                "the body {name} of {} mutates its input %{}; not supported",
                n.op,
                body.name(v)
            )));
        }
    }
    Ok(changed)
}

/// Functionalizes the nodes and outputs of `g` (nested bodies included).
/// Returns the final version of every mutated base, and whether anything
/// changed.
fn functionalize_graph(g: &mut Graph) -> Result<(HashMap<ValueId, ValueId>, bool)> {
    let mut st = State {
        alias: HashMap::new(),
        current: HashMap::new(),
        version: HashMap::new(),
        regen: HashMap::new(),
        out: Vec::new(),
        changed: false,
    };
    let nodes = std::mem::take(&mut g.nodes);
    for n in nodes {
        let aten = n.op.aten();
        let out_target = n
            .args
            .iter()
            .find(|a| a.name == "out")
            .and_then(|a| a.value.as_value());
        let out_overload = n.op.overload() == "out" || n.op.overload().ends_with("_out");
        if out_overload && out_target.is_none() {
            return Err(n.error(format!("out= variant {} without a tensor `out`", n.op)));
        }
        // Read every tensor argument at its current version.
        let mut args = Vec::with_capacity(n.args.len());
        for a in &n.args {
            let mut v = a.value.clone();
            let mut err = None;
            let mut reads = Vec::new();
            v.for_each_value(&mut |x| reads.push(x));
            let mut map = HashMap::new();
            for x in reads {
                match st.read(g, x) {
                    Ok(r) => {
                        map.insert(x, r);
                    }
                    Err(e) => err = Some(e),
                }
            }
            if let Some(e) = err {
                return Err(e);
            }
            v.map_values(&mut |x| *map.get(&x).unwrap_or(&x));
            if let Arg::Graph(sg) = &mut v {
                st.changed |= functionalize_body(&sg.name, &mut sg.graph, &n)?;
            }
            args.push(NamedArg {
                name: a.name.clone(),
                value: v,
                kwarg: a.kwarg,
            });
        }
        if let Some(
            a @ (Aten::UnsqueezeInplace
            | Aten::AsStridedInplace
            | Aten::ResizeInplace
            | Aten::SetInplace),
        ) = aten
        {
            // These change the shape or storage of `self`, not its data:
            // they are not writes to the base.
            return Err(n.error(format!(
                "in-place metadata op {} is not supported",
                a.name()
            )));
        }
        if let Op::Unsupported(t) = &n.op {
            if let Some(op) = crate::custom::lookup(t) {
                // A registered custom op: one functional node whose first
                // outputs are the new values of the arguments it mutates.
                st.changed = true;
                let mut targets = Vec::new();
                let mut outs = Vec::new();
                for i in op.schema.mutated() {
                    let name = &op.schema.args[i].name;
                    let Some(target) = n.arg(name).and_then(Arg::as_value) else {
                        return Err(n.error(format!(
                            "argument {name} of {t}, which it mutates, is not a tensor"
                        )));
                    };
                    let r = g.add_value(&format!("{}_{name}", n.name), g.ty(target).clone());
                    targets.push(target);
                    outs.push(r);
                }
                let mut f = n.clone();
                f.op = Op::Custom(t.clone());
                f.args = args;
                f.outputs = outs
                    .iter()
                    .copied()
                    .chain(n.outputs.iter().copied())
                    .collect();
                f.list_output = false;
                st.out.push(f);
                for (target, r) in targets.into_iter().zip(outs) {
                    st.mutate(g, target, r, &n)?;
                }
                continue;
            }
        }
        let mutated = aten.and_then(Aten::functional_form);
        match (aten, mutated, out_target) {
            (Some(a), _, Some(target)) => {
                // `op.out(..., out=t)`: the functional op, then `t` takes
                // its result (torch resizes `out` to the result's shape).
                st.changed = true;
                let mut f = n.clone();
                f.op = Op::Aten(a, functional_overload(a, n.op.overload()));
                let args = args.into_iter().filter(|x| x.name != "out").collect();
                f.args = schema::carry_args(args, n.schema(), f.schema());
                let ty = n
                    .outputs
                    .first()
                    .map_or_else(|| g.ty(target).clone(), |&o| g.ty(o).clone());
                let r = g.add_value(&format!("{}_functional", n.name), ty);
                f.outputs = vec![r];
                f.name = g.name(r).to_string();
                f.list_output = false;
                st.out.push(f);
                st.mutate(g, target, r, &n)?;
            }
            (Some(_), Some(func), None) => {
                st.changed = true;
                let Some(self_name) = self_arg_name(&n).map(str::to_string) else {
                    return Err(n.error("in-place op without a tensor argument"));
                };
                let Some(target) = n.arg(&self_name).and_then(Arg::as_value) else {
                    return Err(n.error("in-place op without a tensor argument"));
                };
                let mut f = n.clone();
                f.op = Op::Aten(func, n.op.overload().to_string());
                f.args = schema::carry_args(args, n.schema(), f.schema());
                // The functional result is a fresh value with self's type.
                let out_name = n
                    .outputs
                    .first()
                    .map_or(n.name.clone(), |&o| g.name(o).to_string());
                let ty = g.ty(target).clone();
                let r = g.add_value(&format!("{out_name}_functional"), ty);
                f.outputs = vec![r];
                f.name = g.name(r).to_string();
                f.list_output = false;
                // An in-place op keeps the dtype of `self`; its functional
                // form may not (`lt` returns bool, `f16 + f32` is f32).
                // Cast the result back when the dtypes differ.
                let inferred = crate::passes::shape_prop::infer_node(g, &f).ok();
                let r = match (g.ty(target).clone(), inferred.as_deref()) {
                    (ValueType::Tensor(want), Some([ValueType::Tensor(got)]))
                        if got.dtype != want.dtype =>
                    {
                        g.set_ty(r, ValueType::Tensor(got.clone()));
                        st.out.push(f);
                        let mut b = super::rewrite::Builder::new(g, &n);
                        let c = b.aten(
                            Aten::InternalToCopy,
                            "default",
                            vec![("self", Arg::Value(r)), ("dtype", Arg::DType(want.dtype))],
                        );
                        st.out.append(&mut b.nodes);
                        g.set_ty(c, ValueType::Tensor(want));
                        c
                    }
                    _ => {
                        st.out.push(f);
                        r
                    }
                };
                st.mutate(g, target, r, &n)?;
            }
            (Some(a), None, None) if is_view(a) => {
                let self_val = self_arg_name(&n)
                    .and_then(|k| n.arg(k))
                    .and_then(Arg::as_value);
                let mut m = n.clone();
                m.args = args;
                st.out.push(m);
                if let Some(sv) = self_val {
                    let base = st.base_of(sv);
                    let chain = st
                        .alias
                        .get(&sv)
                        .map(|a| a.chain.clone())
                        .unwrap_or_default();
                    let ver = *st.version.get(&base).unwrap_or(&0);
                    for (i, &o) in n.outputs.iter().enumerate() {
                        let mut c = chain.clone();
                        c.push(ViewStep {
                            node: n.clone(),
                            index: i,
                            orig: o,
                        });
                        st.alias.insert(
                            o,
                            Alias {
                                base,
                                chain: c,
                                version: ver,
                            },
                        );
                    }
                }
            }
            _ => {
                let mut m = n.clone();
                m.args = args;
                st.out.push(m);
            }
        }
    }
    // Outputs read final versions.
    let outs = std::mem::take(&mut g.outputs);
    let mut new_outs = Vec::new();
    for a in outs {
        let mut vals = Vec::new();
        a.for_each_value(&mut |x| vals.push(x));
        let mut map = HashMap::new();
        for x in vals {
            let r = st.read(g, x)?;
            map.insert(x, r);
        }
        let mut a2 = a;
        a2.map_values(&mut |x| *map.get(&x).unwrap_or(&x));
        new_outs.push(a2);
    }
    g.outputs = new_outs;
    g.nodes = st.out;
    Ok((st.current, st.changed))
}
