//! The verifier: invariants that hold between every two passes.
//!
//! - every value is defined once, by an input or a node, before any use;
//! - a subgraph uses only its own values (captures are explicit inputs);
//! - the signature has one spec per graph input and output, in order;
//! - values have types of the right kind, and every shape symbol of a
//!   program input has a range.

use std::collections::HashSet;

use crate::error::{Error, Result};

use super::graph::{Arg, Graph, ValueId, ValueType};
use super::program::{InputKind, Program};

pub fn verify_program(p: &Program) -> Result<()> {
    verify_graph(&p.graph)?;
    let g = &p.graph;
    if p.signature.inputs.len() != g.inputs.len() {
        return fail(format!(
            "signature has {} inputs, graph has {}",
            p.signature.inputs.len(),
            g.inputs.len()
        ));
    }
    for (spec, &v) in p.signature.inputs.iter().zip(&g.inputs) {
        if spec.value != v {
            return fail(format!(
                "input spec for %{} is at the position of %{}",
                g.name(spec.value),
                g.name(v)
            ));
        }
        let needs_target = matches!(
            spec.kind,
            InputKind::Parameter | InputKind::Buffer { .. } | InputKind::ConstantTensor
        );
        if needs_target && spec.target.is_none() {
            return fail(format!(
                "input %{} ({}) has no target name",
                g.name(v),
                spec.kind.name()
            ));
        }
        if needs_target && !g.ty(v).is_tensor() {
            return fail(format!(
                "input %{} ({}) is not a tensor",
                g.name(v),
                spec.kind.name()
            ));
        }
        if let Some(t) = g.tensor_type(v) {
            for d in &t.shape {
                for s in d.free_symbols() {
                    if !p.range_constraints.contains_key(&s) {
                        return fail(format!("symbol {s} of input %{} has no range", g.name(v)));
                    }
                }
            }
        }
    }
    if p.signature.outputs.len() != g.outputs.len() {
        return fail(format!(
            "signature has {} outputs, graph has {}",
            p.signature.outputs.len(),
            g.outputs.len()
        ));
    }
    Ok(())
}

fn fail<T>(msg: String) -> Result<T> {
    Err(Error::Verify(msg))
}

pub fn verify_graph(g: &Graph) -> Result<()> {
    let mut defined: HashSet<ValueId> = HashSet::new();
    let mut names: HashSet<&str> = HashSet::new();
    for &v in &g.inputs {
        if !g.contains(v) || !defined.insert(v) {
            return fail(format!("input %{} is defined twice", g.name(v)));
        }
    }
    for n in &g.nodes {
        if !names.insert(n.name.as_str()) {
            return fail(format!("two nodes are named {}", n.name));
        }
        if let Some(why) = super::schema::check_node(n) {
            return fail(format!("node {}: {why}", n.name));
        }
        for a in &n.args {
            check_uses(g, &a.value, &defined, &n.name)?;
            if let Arg::Graph(sg) = &a.value {
                verify_graph(&sg.graph).map_err(|e| {
                    Error::Verify(format!(
                        "in subgraph {} of node {}: {}",
                        sg.name,
                        n.name,
                        strip(&e)
                    ))
                })?;
            }
        }
        for &o in &n.outputs {
            if !g.contains(o) || !defined.insert(o) {
                return fail(format!("node {} redefines %{}", n.name, g.name(o)));
            }
            if matches!(g.ty(o), ValueType::Opaque) && n.op.aten().is_some() {
                return fail(format!("aten node {} defines an opaque value", n.name));
            }
        }
    }
    for a in &g.outputs {
        check_uses(g, a, &defined, "output")?;
    }
    Ok(())
}

fn strip(e: &Error) -> String {
    let s = e.to_string();
    s.strip_prefix("verifier: ").unwrap_or(&s).to_string()
}

fn check_uses(g: &Graph, a: &Arg, defined: &HashSet<ValueId>, user: &str) -> Result<()> {
    let mut bad = None;
    a.for_each_value(&mut |v| {
        if bad.is_none() && (!g.contains(v) || !defined.contains(&v)) {
            bad = Some(v);
        }
    });
    match bad {
        Some(v) if g.contains(v) => {
            fail(format!("{user} uses %{} before it is defined", g.name(v)))
        }
        Some(v) => fail(format!(
            "{user} uses a value id {} of another graph",
            v.index()
        )),
        None => Ok(()),
    }
}
