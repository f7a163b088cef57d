//! Values, nodes and graphs.

use std::collections::HashMap;

use crate::error::SourceLoc;
use crate::sym::SymExpr;
use crate::DType;

use super::op::Op;

/// An SSA value of one [`Graph`]. Ids of a subgraph are its own.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(u32);

impl ValueId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One dimension of a shape: a constant or a symbolic expression.
pub type Dim = SymExpr;

/// The static description of a tensor value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Vec<Dim>) -> Self {
        TensorType { dtype, shape }
    }

    pub fn from_static(dtype: DType, shape: &[usize]) -> Self {
        TensorType {
            dtype,
            shape: shape.iter().map(|&d| SymExpr::Int(d as i64)).collect(),
        }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The shape when every dimension is a constant.
    pub fn static_shape(&self) -> Option<Vec<usize>> {
        self.shape
            .iter()
            .map(|d| d.as_int().and_then(|v| usize::try_from(v).ok()))
            .collect()
    }
}

/// What kind of thing a value is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueType {
    Tensor(TensorType),
    /// A tensor whose dtype and shape are not known (yet).
    UnknownTensor,
    SymInt,
    SymFloat,
    SymBool,
    /// Tokens and script objects: passed through, never computed on.
    Opaque,
}

impl ValueType {
    pub fn tensor(&self) -> Option<&TensorType> {
        match self {
            ValueType::Tensor(t) => Some(t),
            _ => None,
        }
    }

    pub fn is_tensor(&self) -> bool {
        matches!(self, ValueType::Tensor(_) | ValueType::UnknownTensor)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ValueData {
    pub name: String,
    pub ty: ValueType,
}

/// An argument of a node or an output of a graph.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    None,
    /// A tensor or a symbolic scalar.
    Value(ValueId),
    /// A list whose elements are values, constants or `None`: tensor lists,
    /// optional-tensor lists and symbolic int lists.
    List(Vec<Arg>),
    Int(i64),
    Ints(Vec<i64>),
    Float(f64),
    Floats(Vec<f64>),
    Bool(bool),
    Bools(Vec<bool>),
    Str(String),
    Strs(Vec<String>),
    DType(DType),
    Layout(String),
    MemoryFormat(String),
    Device(String),
    /// An operator passed as an argument (e.g. to `auto_functionalized`).
    Operator(String),
    /// A script object, by name.
    CustomObj(String),
    /// A nested graph of a higher-order op.
    Graph(Box<SubGraph>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct SubGraph {
    pub name: String,
    pub graph: Graph,
}

impl Arg {
    /// Calls `f` on every value this argument uses (not inside subgraphs).
    pub fn for_each_value(&self, f: &mut impl FnMut(ValueId)) {
        match self {
            Arg::Value(v) => f(*v),
            Arg::List(items) => items.iter().for_each(|a| a.for_each_value(f)),
            _ => {}
        }
    }

    /// Rewrites every value this argument uses.
    pub fn map_values(&mut self, f: &mut impl FnMut(ValueId) -> ValueId) {
        match self {
            Arg::Value(v) => *v = f(*v),
            Arg::List(items) => items.iter_mut().for_each(|a| a.map_values(f)),
            _ => {}
        }
    }

    pub fn as_value(&self) -> Option<ValueId> {
        match self {
            Arg::Value(v) => Some(*v),
            _ => None,
        }
    }

    /// A list of ints, whether stored as `Ints` or as a `List` of `Int`s.
    pub fn as_ints(&self) -> Option<Vec<i64>> {
        match self {
            Arg::Ints(v) => Some(v.clone()),
            Arg::Int(v) => Some(vec![*v]),
            Arg::List(items) => items
                .iter()
                .map(|a| match a {
                    Arg::Int(v) => Some(*v),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }
}

/// Source information kept from the archive, for error messages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeMeta {
    pub stack_trace: Option<String>,
    pub nn_module_stack: Option<String>,
    pub torch_fn: Option<String>,
}

impl NodeMeta {
    /// `file.py:LINE` of the innermost frame of user code, if known.
    ///
    /// torch records the stack outermost first; frames inside torch itself
    /// (`torch/nn/...`) and code it generated while tracing
    /// (`<eval_with_key>.5`, the frame of a higher-order op) are skipped,
    /// so the line is the user's own.
    pub fn source_line(&self) -> SourceLoc {
        let Some(trace) = &self.stack_trace else {
            return SourceLoc(None);
        };
        let mut best = None;
        for line in trace.lines() {
            let line = line.trim();
            let Some(rest) = line.strip_prefix("File \"") else {
                continue;
            };
            let Some((file, rest)) = rest.split_once('"') else {
                continue;
            };
            let lineno = rest
                .trim_start_matches(", line ")
                .split(',')
                .next()
                .unwrap_or("")
                .trim();
            let short = file.rsplit('/').next().unwrap_or(file);
            let is_torch =
                file.contains("torch/") || file.contains("transformers/") || file.starts_with('<');
            if best.is_none() || !is_torch {
                best = Some(format!("{short}:{lineno}"));
            }
        }
        SourceLoc(best)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NamedArg {
    /// The schema name of the argument; empty for positional-only
    /// higher-order op arguments.
    pub name: String,
    pub value: Arg,
    pub kwarg: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub args: Vec<NamedArg>,
    /// The values the node defines, in order.
    pub outputs: Vec<ValueId>,
    /// Whether the op returns a list (`split`) rather than a tuple or a
    /// single value.
    pub list_output: bool,
    pub meta: NodeMeta,
}

impl Node {
    /// The argument `name`: as the node gives it, or else the schema's
    /// default (archives leave out arguments that have their default value).
    pub fn arg(&self, name: &str) -> Option<&Arg> {
        match self.args.iter().find(|a| a.name == name) {
            Some(a) => Some(&a.value),
            None => super::schema::default_arg(self.schema()?, name),
        }
    }

    /// The schema of an ATen node's overload.
    pub fn schema(&self) -> Option<&'static super::schema::OpSchema> {
        match &self.op {
            Op::Aten(a, overload) => super::schema::lookup(a.name(), overload),
            _ => None,
        }
    }

    pub fn arg_mut(&mut self, name: &str) -> Option<&mut Arg> {
        self.args
            .iter_mut()
            .find(|a| a.name == name)
            .map(|a| &mut a.value)
    }

    /// Every value the node reads, in argument order.
    pub fn inputs(&self) -> Vec<ValueId> {
        let mut out = Vec::new();
        for a in &self.args {
            a.value.for_each_value(&mut |v| out.push(v));
        }
        out
    }

    /// Nested graphs of a higher-order op.
    pub fn subgraphs(&self) -> impl Iterator<Item = &SubGraph> {
        self.args.iter().filter_map(|a| match &a.value {
            Arg::Graph(g) => Some(&**g),
            _ => None,
        })
    }

    /// An error about this node, naming it and its Python source line.
    pub fn error(&self, msg: impl Into<String>) -> crate::Error {
        crate::Error::Node {
            node: self.name.clone(),
            loc: self.meta.source_line(),
            msg: msg.into(),
        }
    }
}

/// A graph: inputs, an ordered node list, and outputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    values: Vec<ValueData>,
    by_name: HashMap<String, ValueId>,
    pub inputs: Vec<ValueId>,
    pub nodes: Vec<Node>,
    pub outputs: Vec<Arg>,
}

impl Graph {
    pub fn new() -> Self {
        Graph::default()
    }

    /// Adds a value. The name is made unique by a numeric suffix if taken.
    pub fn add_value(&mut self, name: &str, ty: ValueType) -> ValueId {
        let name = self.fresh_name(name);
        let id = ValueId(self.values.len() as u32);
        self.by_name.insert(name.clone(), id);
        self.values.push(ValueData { name, ty });
        id
    }

    /// `base` if no value has that name, else `base_1`, `base_2`, ...
    pub fn fresh_name(&self, base: &str) -> String {
        if !self.by_name.contains_key(base) {
            return base.to_string();
        }
        (1..)
            .map(|i| format!("{base}_{i}"))
            .find(|n| !self.by_name.contains_key(n))
            .unwrap_or_default()
    }

    pub fn value(&self, id: ValueId) -> &ValueData {
        &self.values[id.index()]
    }

    pub fn ty(&self, id: ValueId) -> &ValueType {
        &self.values[id.index()].ty
    }

    pub fn set_ty(&mut self, id: ValueId, ty: ValueType) {
        self.values[id.index()].ty = ty;
    }

    pub fn name(&self, id: ValueId) -> &str {
        &self.values[id.index()].name
    }

    pub fn lookup(&self, name: &str) -> Option<ValueId> {
        self.by_name.get(name).copied()
    }

    pub fn num_values(&self) -> usize {
        self.values.len()
    }

    /// Whether `id` belongs to this graph's value table.
    pub fn contains(&self, id: ValueId) -> bool {
        id.index() < self.values.len()
    }

    pub fn tensor_type(&self, id: ValueId) -> Option<&TensorType> {
        self.ty(id).tensor()
    }

    /// Values used by outputs.
    pub fn output_values(&self) -> Vec<ValueId> {
        let mut out = Vec::new();
        for a in &self.outputs {
            a.for_each_value(&mut |v| out.push(v));
        }
        out
    }

    /// Replaces every use of `from` (in nodes and outputs) by `to`.
    pub fn replace_uses(&mut self, from: ValueId, to: ValueId) {
        let mut f = |v: ValueId| if v == from { to } else { v };
        for n in &mut self.nodes {
            for a in &mut n.args {
                a.value.map_values(&mut f);
            }
        }
        for a in &mut self.outputs {
            a.map_values(&mut f);
        }
    }

    /// Number of uses of each value (by nodes and outputs), indexed by id.
    pub fn use_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.values.len()];
        for n in &self.nodes {
            for a in &n.args {
                a.value.for_each_value(&mut |v| counts[v.index()] += 1);
            }
        }
        for a in &self.outputs {
            a.for_each_value(&mut |v| counts[v.index()] += 1);
        }
        counts
    }

    /// Index of the node defining each value (None for inputs and unused ids).
    pub fn producers(&self) -> Vec<Option<usize>> {
        let mut p = vec![None; self.values.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &o in &n.outputs {
                p[o.index()] = Some(i);
            }
        }
        p
    }

    /// Counts of each op target, subgraphs included.
    pub fn op_histogram(&self) -> std::collections::BTreeMap<String, usize> {
        let mut h = std::collections::BTreeMap::new();
        self.walk(&mut |n| *h.entry(n.op.to_string()).or_insert(0) += 1);
        h
    }

    /// Calls `f` on every node, subgraph nodes included, in order.
    pub fn walk(&self, f: &mut impl FnMut(&Node)) {
        for n in &self.nodes {
            f(n);
            for sg in n.subgraphs() {
                sg.graph.walk(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NodeMeta;

    #[test]
    fn source_line_skips_torch_and_generated_frames() {
        let meta = NodeMeta {
            stack_trace: Some(
                "File \"/home/u/model.py\", line 51, in forward\n    \
                 a, b = torch.cond(p, t, f, (x,))\n  \
                 File \"<eval_with_key>.5\", line 12, in forward\n    \
                 cond = torch.ops.higher_order.cond(...)\n  \
                 File \"/venv/lib/torch/nn/modules/linear.py\", line 134, in forward\n"
                    .into(),
            ),
            ..NodeMeta::default()
        };
        assert_eq!(meta.source_line().0.as_deref(), Some("model.py:51"));
    }
}
