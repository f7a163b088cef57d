//! The stable text form of the IR.
//!
//! One line per input, node and output, in graph order; nested graphs are
//! indented blocks inside their node's argument list. [`super::parse`] reads
//! the same text back, so it is also the filetest format.
//!
//! ```text
//! range s0 = [1, 64]
//! input %w: f32[4, 8] = parameter "fc.weight"
//! input %x: f32[s0, 8] = user_input
//! %t: f32[8, 4] = aten.permute.default(self=%w, dims=[1, 0])
//! %y: f32[s0, 4] = aten.mm.default(self=%x, mat2=%t)
//! output %y = user_output
//! ```
//!
//! A node whose name differs from its first output's name ends in `@name`.

use std::fmt::Write;

use super::graph::{Arg, Graph, Node, ValueId, ValueType};
use super::program::{InputKind, Program};

/// Options for [`program_to_string`].
#[derive(Copy, Clone, Debug, Default)]
pub struct PrintOptions {
    /// Append each node's Python source line as a `// file.py:LINE` comment.
    pub source_lines: bool,
}

pub fn program_to_string(p: &Program) -> String {
    program_to_string_with(p, PrintOptions::default())
}

pub fn program_to_string_with(p: &Program, opts: PrintOptions) -> String {
    let mut out = String::new();
    for (sym, r) in &p.range_constraints {
        let max = r.max.map_or("inf".to_string(), |m| m.to_string());
        let _ = writeln!(out, "range {sym} = [{}, {max}]", r.min);
    }
    let g = &p.graph;
    for (i, &v) in g.inputs.iter().enumerate() {
        let _ = write!(out, "input {}", typed(g, v));
        if let Some(spec) = p.signature.inputs.get(i) {
            let _ = write!(out, " = {}", spec.kind.name());
            if let InputKind::ConstantInput(a) = &spec.kind {
                out.push(' ');
                write_arg(&mut out, g, a, 0);
            }
            if let Some(t) = &spec.target {
                let _ = write!(out, " {t:?}");
            }
        }
        out.push('\n');
    }
    write_nodes(&mut out, g, 0, opts);
    for (i, a) in g.outputs.iter().enumerate() {
        out.push_str("output ");
        write_arg(&mut out, g, a, 0);
        if let Some(spec) = p.signature.outputs.get(i) {
            let _ = write!(out, " = {}", spec.kind.name());
            if let Some(t) = &spec.target {
                let _ = write!(out, " {t:?}");
            }
        }
        out.push('\n');
    }
    out
}

/// A graph without a signature (a subgraph, or a graph under test).
pub fn graph_to_string(g: &Graph) -> String {
    let mut out = String::new();
    write_graph_body(&mut out, g, 0, PrintOptions::default());
    out
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn write_graph_body(out: &mut String, g: &Graph, depth: usize, opts: PrintOptions) {
    for &v in &g.inputs {
        indent(out, depth);
        let _ = writeln!(out, "input {}", typed(g, v));
    }
    write_nodes(out, g, depth, opts);
    for a in &g.outputs {
        indent(out, depth);
        out.push_str("output ");
        write_arg(out, g, a, depth);
        out.push('\n');
    }
}

fn write_nodes(out: &mut String, g: &Graph, depth: usize, opts: PrintOptions) {
    for n in &g.nodes {
        indent(out, depth);
        write_node(out, g, n, depth);
        if opts.source_lines {
            if let Some(l) = n.meta.source_line().0 {
                let _ = write!(out, "  // {l}");
            }
        }
        out.push('\n');
    }
}

pub(crate) fn write_node(out: &mut String, g: &Graph, n: &Node, depth: usize) {
    if !n.outputs.is_empty() {
        if n.list_output {
            out.push('[');
        }
        for (i, &o) in n.outputs.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&typed(g, o));
        }
        if n.list_output {
            out.push(']');
        }
        out.push_str(" = ");
    }
    let _ = write!(out, "{}(", op_text(&n.op));
    for (i, a) in n.args.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if !a.name.is_empty() {
            let _ = write!(out, "{}=", a.name);
        }
        write_arg(out, g, &a.value, depth);
    }
    out.push(')');
    let first = n.outputs.first().map(|&o| g.name(o));
    if first != Some(n.name.as_str()) {
        let _ = write!(out, " @{}", n.name);
    }
}

fn op_text(op: &super::Op) -> String {
    match op {
        super::Op::Unsupported(t) => format!("{t:?}"),
        super::Op::Custom(t) => format!("custom {t:?}"),
        other => other.to_string(),
    }
}

/// `%name: type`.
pub fn typed(g: &Graph, v: ValueId) -> String {
    format!("%{}: {}", g.name(v), type_text(g.ty(v)))
}

pub fn type_text(t: &ValueType) -> String {
    match t {
        ValueType::Tensor(t) => {
            let dims: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
            format!("{}[{}]", t.dtype, dims.join(", "))
        }
        ValueType::UnknownTensor => "?".into(),
        ValueType::SymInt => "sym_int".into(),
        ValueType::SymFloat => "sym_float".into(),
        ValueType::SymBool => "sym_bool".into(),
        ValueType::Opaque => "opaque".into(),
    }
}

pub(crate) fn float_text(f: f64) -> String {
    // Debug prints the shortest text that reads back to the same f64 and
    // always marks it as a float (`1.0`, `1e-5`, `inf`, `NaN`).
    format!("{f:?}")
}

fn list<T>(out: &mut String, items: &[T], mut f: impl FnMut(&mut String, &T)) {
    out.push('[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        f(out, x);
    }
    out.push(']');
}

pub(crate) fn write_arg(out: &mut String, g: &Graph, a: &Arg, depth: usize) {
    match a {
        Arg::None => out.push_str("None"),
        Arg::Value(v) => {
            let _ = write!(out, "%{}", g.name(*v));
        }
        Arg::List(items) => list(out, items, |o, x| write_arg(o, g, x, depth)),
        Arg::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Arg::Ints(v) => list(out, v, |o, x| {
            let _ = write!(o, "{x}");
        }),
        Arg::Float(f) => out.push_str(&float_text(*f)),
        Arg::Floats(v) => list(out, v, |o, x| o.push_str(&float_text(*x))),
        Arg::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Arg::Bools(v) => list(out, v, |o, x| {
            let _ = write!(o, "{x}");
        }),
        Arg::Str(s) => {
            let _ = write!(out, "{s:?}");
        }
        Arg::Strs(v) => list(out, v, |o, x| {
            let _ = write!(o, "{x:?}");
        }),
        Arg::DType(d) => {
            let _ = write!(out, "{d}");
        }
        Arg::Layout(s) => {
            let _ = write!(out, "#layout({s})");
        }
        Arg::MemoryFormat(s) => {
            let _ = write!(out, "#memory_format({s})");
        }
        Arg::Device(s) => {
            let _ = write!(out, "#device({s})");
        }
        Arg::Operator(s) => {
            let _ = write!(out, "#op({s:?})");
        }
        Arg::CustomObj(s) => {
            let _ = write!(out, "#obj({s})");
        }
        Arg::Graph(sg) => {
            let _ = writeln!(out, "graph {} {{", sg.name);
            write_graph_body(out, &sg.graph, depth + 1, PrintOptions::default());
            indent(out, depth);
            out.push('}');
        }
    }
}
