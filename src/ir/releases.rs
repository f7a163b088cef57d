//! What the torch releases torchlift reads (2.6 to 2.15) write differently,
//! and the fixups applied at import so that every release's archive means
//! the same program.
//!
//! The versions matrix (`tests/fixtures/versions/t2_N`, written by
//! `tests/fixtures/make_fixtures.py --out`) holds the project's small
//! models saved by each release, in the training and the core form; the
//! conformance test runs them all.
//!
//! # Supported range
//!
//! Archives written by torch 2.6 to 2.15, schema major version 8
//! ([`SUPPORTED_TORCH`], [`crate::pt2::schema::SUPPORTED_MAJOR`]).
//! Anything else is refused when the archive is opened, with a one-line
//! error naming the version found (`crate::pt2::Archive::open`).
//!
//! # Per-release differences
//!
//! Found by saving the same small models with every release from 2.6 to
//! 2.15 (CPU wheels) and comparing the archives and `torchlift inspect
//! --after all`. Everything not listed was the same in all of them: the
//! operator sets of both forms, op overloads, the HOP names and argument
//! order of `wrap_with_set_grad_enabled`, the output arity of `aten.lstm`
//! (three tensors), and the symbolic expression syntax (sympy `srepr`:
//! `Mul(Integer(6), Symbol('s77', positive=True, integer=True))`).
//!
//! | what | releases | where handled |
//! | --- | --- | --- |
//! | schema minor version: 8.2 (2.6), 8.7 (2.7), 8.8 (2.8), 8.14 (2.9), 8.15 (2.10), 8.17 (2.11), 8.20 (2.12 to 2.15) | all | nothing: every field torchlift reads is there from 8.2 on; unknown fields are ignored |
//! | archive layout: `serialized_exported_program.json` + nested `torch.save` zips (`serialized_state_dict.pt`, `serialized_constants.pt`, ...) | 2.6, 2.7 | `pt2::archive` (legacy layout) |
//! | PT2 layout, weights and constants as one `torch.save` dict each (`data/weights/model.pt`, `data/constants/model.pt`) | 2.8 | `pt2::archive` (`load_payloads`) |
//! | PT2 layout, one payload per tensor named by `data/weights/model_weights_config.json` | 2.9 and later | `pt2::archive` (`load_payloads`) |
//! | `aten.lstm.input` state outputs `h_n`, `c_n` recorded as `[L*D, 1, B, H]` (what eager returns, and so what the training program computes, is hx's shape `[L*D, B, H]`) | 2.6 to 2.12 (right from 2.13) | [`fix_recorded_types`] |
//! | the same in the core form: torch's own `lstm` decomposition stacks the `[1, B, H]` states, so the saved core program itself returns `[L*D, 1, B, H]`, unlike eager | 2.6 to 2.12 | nothing to fix: the core graph is run as written, so torchlift returns what `torch.export.load` does |
//! | a mutating custom op in the core form: `auto_functionalized` (v1, mutated tensors passed directly) rather than `auto_functionalized_v2` (`_all_bases`, `_x_base_index`) | v1: 2.6 to 2.9; v2: 2.10 and later | `passes::hops::RemoveAutoFunctionalized` |
//! | nodes have no `name` field (torchlift names a node after its first output: `getitem` for `lstm`, `node_1` for a node without outputs) | 2.6 to 2.10 | `ir::import`; names are only labels |
//! | shape symbols named `s0`, `s1`, ... rather than hashed names (`s77`) | 2.6, 2.7 | nothing: symbols are bound by position |
//!
//! Recorded metadata of values computed from the wrong `lstm` states is
//! wrong too (torch derived it from the same fake values: `h[-1]` is
//! recorded as `[1, B, H]`); [`fix_recorded_types`] infers it again. What
//! the trace baked into the graph from those shapes (an integer size
//! argument read from `h.shape`) cannot be repaired and is run as written.
//! Values inside the subgraphs of higher-order ops are re-inferred only when
//! the `lstm` node itself is inside the subgraph.

use super::graph::{Graph, Node, ValueId, ValueType};
use super::{Aten, Program};
use std::collections::HashSet;

/// The torch releases whose archives torchlift reads, as `(major, minor)`.
pub const SUPPORTED_TORCH: ((u32, u32), (u32, u32)) = ((2, 6), (2, 15));

/// The supported torch releases, for error messages.
pub fn supported_text() -> String {
    let ((a, b), (c, d)) = SUPPORTED_TORCH;
    format!("torch {a}.{b} to {c}.{d}")
}

/// Parses the `major.minor` of a torch version string (`2.12.1+cu130`,
/// `2.6.0a0+git1234`). `None` for what is not a version (`<=2.4`).
pub fn torch_release(version: &str) -> Option<(u32, u32)> {
    let mut it = version.trim().split('.');
    let major = it.next()?.parse().ok()?;
    let minor: String = it
        .next()?
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    Some((major, minor.parse().ok()?))
}

/// Corrects recorded metadata that some releases write wrong (see the
/// module doc). Returns whether anything changed.
pub fn fix_recorded_types(p: &mut Program) -> bool {
    fix_graph(&mut p.graph)
}

fn fix_graph(g: &mut Graph) -> bool {
    let mut changed = false;
    for n in &mut g.nodes {
        for a in &mut n.args {
            if let super::Arg::Graph(sg) = &mut a.value {
                changed |= fix_graph(&mut sg.graph);
            }
        }
    }
    let mut tainted: HashSet<ValueId> = HashSet::new();
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        if n.op.aten() == Some(Aten::Lstm) {
            for (o, ty) in lstm_state_fixes(g, n) {
                g.set_ty(o, ty);
                tainted.insert(o);
                changed = true;
            }
            continue;
        }
        if tainted.is_empty() || !n.inputs().iter().any(|v| tainted.contains(v)) {
            continue;
        }
        // Derived from a corrected value: infer again from the inputs.
        let inferred = crate::passes::shape_prop::infer_node(g, n).ok();
        let outputs = g.nodes[i].outputs.clone();
        for (k, o) in outputs.into_iter().enumerate() {
            let new = match inferred.as_ref().and_then(|t| t.get(k)) {
                Some(t) => t.clone(),
                None if matches!(g.ty(o), ValueType::Tensor(_)) => ValueType::UnknownTensor,
                None => continue,
            };
            if *g.ty(o) != new {
                g.set_ty(o, new);
                changed = true;
            }
            tainted.insert(o);
        }
    }
    changed
}

/// The state outputs of an `lstm` node recorded as hx's shape with a unit
/// dim inserted at 1, paired with hx's type.
fn lstm_state_fixes(g: &Graph, n: &Node) -> Vec<(ValueId, ValueType)> {
    let hx: Vec<ValueId> = match n.arg("hx") {
        Some(super::Arg::List(items)) => items.iter().filter_map(|a| a.as_value()).collect(),
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for (&o, &h) in n.outputs.iter().skip(1).zip(&hx) {
        let (ValueType::Tensor(rec), ValueType::Tensor(want)) = (g.ty(o), g.ty(h)) else {
            continue;
        };
        let unit_inserted = rec.dtype == want.dtype
            && rec.rank() == want.rank() + 1
            && rec.rank() >= 2
            && rec.shape[1].as_int() == Some(1)
            && rec.shape[0] == want.shape[0]
            && rec.shape[2..] == want.shape[1..];
        if unit_inserted {
            out.push((o, ValueType::Tensor(want.clone())));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse_program;

    #[test]
    fn releases_parse() {
        assert_eq!(torch_release("2.12.1+cu130"), Some((2, 12)));
        assert_eq!(torch_release("2.6.0a0+git1234"), Some((2, 6)));
        assert_eq!(torch_release("<=2.4"), None);
    }

    #[test]
    fn lstm_states_and_their_users_are_retyped() {
        let text = "input %x: f32[3, 2, 8] = user_input\n\
                    input %h0: f32[1, 3, 4] = user_input\n\
                    input %c0: f32[1, 3, 4] = user_input\n\
                    input %wi: f32[16, 8] = user_input\n\
                    input %wh: f32[16, 4] = user_input\n\
                    %y: f32[3, 2, 4], %h: f32[1, 1, 3, 4], %c: f32[1, 1, 3, 4] = aten.lstm.input(input=%x, hx=[%h0, %c0], params=[%wi, %wh], has_biases=false, num_layers=1, dropout=0.0, train=false, bidirectional=false, batch_first=true)\n\
                    %s: f32[1, 3, 4] = aten.select.int(self=%h, dim=0, index=-1)\n\
                    output %y = user_output\n\
                    output %s = user_output\n";
        let mut p = parse_program(text).expect("parse");
        assert!(fix_recorded_types(&mut p));
        let g = &p.graph;
        let ty = |name: &str| crate::ir::print::type_text(g.ty(g.lookup(name).expect(name)));
        assert_eq!(ty("h"), "f32[1, 3, 4]");
        assert_eq!(ty("c"), "f32[1, 3, 4]");
        assert_eq!(ty("s"), "f32[3, 4]");
        assert_eq!(ty("y"), "f32[3, 2, 4]");
        assert!(!fix_recorded_types(&mut p), "a second run changes nothing");
    }
}
