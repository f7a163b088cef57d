//! Helpers for passes that replace nodes by other nodes.
//!
//! [`rewrite_nodes`] walks a graph in order and lets a callback replace each
//! node by a list of new nodes (built with a [`Builder`]), mapping the old
//! node's outputs to new values. Later uses are renamed accordingly. New
//! values start as [`ValueType::UnknownTensor`] unless given a type; the
//! `shape_prop` pass fills them in.

use std::collections::HashMap;

use crate::error::Result;
use crate::ir::{Arg, Aten, Graph, NamedArg, Node, NodeMeta, Op, ValueId, ValueType};

/// Builds replacement nodes for one original node, inheriting its metadata.
pub struct Builder<'g> {
    pub g: &'g mut Graph,
    pub nodes: Vec<Node>,
    meta: NodeMeta,
    base: String,
}

impl<'g> Builder<'g> {
    pub fn new(g: &'g mut Graph, like: &Node) -> Self {
        Builder {
            g,
            nodes: Vec::new(),
            meta: like.meta.clone(),
            base: like.name.clone(),
        }
    }

    /// Adds `op(args)` with one tensor output named after the original node.
    pub fn aten(&mut self, op: Aten, overload: &str, args: Vec<(&str, Arg)>) -> ValueId {
        self.aten_n(op, overload, args, 1)[0]
    }

    /// Adds a node with `n` tensor outputs.
    pub fn aten_n(
        &mut self,
        op: Aten,
        overload: &str,
        args: Vec<(&str, Arg)>,
        n: usize,
    ) -> Vec<ValueId> {
        self.node(Op::Aten(op, overload.to_string()), args, n, false)
    }

    /// Adds a node of any op. `list_output` marks a list-returning op.
    pub fn node(
        &mut self,
        op: Op,
        args: Vec<(&str, Arg)>,
        n: usize,
        list_output: bool,
    ) -> Vec<ValueId> {
        let base = format!(
            "{}_{}",
            self.base,
            op.aten().map_or("op", |a| a.name().trim_matches('_'))
        );
        let outputs: Vec<ValueId> = (0..n)
            .map(|_| self.g.add_value(&base, ValueType::UnknownTensor))
            .collect();
        let name = match outputs.first() {
            Some(&o) => self.g.name(o).to_string(),
            None => self.g.fresh_name(&base),
        };
        self.nodes.push(Node {
            name,
            op,
            args: args
                .into_iter()
                .map(|(k, v)| NamedArg {
                    name: k.to_string(),
                    value: v,
                    kwarg: false,
                })
                .collect(),
            outputs: outputs.clone(),
            list_output,
            meta: self.meta.clone(),
        });
        outputs
    }
}

/// What to do with one node.
pub enum Rewrite {
    /// Keep the node as it is.
    Keep,
    /// Replace it by these nodes; the old node's outputs become `outputs`
    /// (values defined by the new nodes or earlier in the graph).
    Replace {
        nodes: Vec<Node>,
        outputs: Vec<ValueId>,
    },
}

/// Walks `g` in order, calling `f` on each node (after earlier replacements
/// have been applied to its arguments).
pub fn rewrite_nodes(
    g: &mut Graph,
    mut f: impl FnMut(&mut Graph, &Node) -> Result<Rewrite>,
) -> Result<bool> {
    let old = std::mem::take(&mut g.nodes);
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    let mut changed = false;
    for mut n in old {
        if !map.is_empty() {
            for a in &mut n.args {
                a.value.map_values(&mut |v| *map.get(&v).unwrap_or(&v));
            }
        }
        match f(g, &n)? {
            Rewrite::Keep => g.nodes.push(n),
            Rewrite::Replace { nodes, outputs } => {
                changed = true;
                for (o, r) in n.outputs.iter().zip(outputs) {
                    map.insert(*o, r);
                }
                g.nodes.extend(nodes);
            }
        }
    }
    if !map.is_empty() {
        for a in &mut g.outputs {
            a.map_values(&mut |v| *map.get(&v).unwrap_or(&v));
        }
    }
    Ok(changed)
}

/// A node argument that must be a tensor value.
pub fn value_arg(n: &Node, name: &str) -> Result<ValueId> {
    n.arg(name)
        .and_then(Arg::as_value)
        .ok_or_else(|| n.error(format!("argument {name} is not a tensor")))
}
