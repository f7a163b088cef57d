//! Builds a [`Program`] from a deserialized archive program.
//!
//! Names are kept as torch wrote them. Each subgraph gets its own value
//! namespace, as in the archive. Recorded tensor metadata becomes value
//! types; symbolic sizes are parsed into [`SymExpr`]s. Metadata that some
//! torch releases record wrong is corrected afterwards
//! ([`super::releases::fix_recorded_types`]).

use crate::error::{Error, Result};
use crate::pt2::schema as s;
use crate::sym::SymExpr;
use crate::DType;

use super::graph::{
    Arg, Graph, NamedArg, Node, NodeMeta, SubGraph, TensorType, ValueId, ValueType,
};
use super::op::Op;
use super::parse::collect_list;
use super::program::{InputKind, InputSpec, OutputKind, OutputSpec, Program, Signature};

pub fn import_program(ep: &s::ExportedProgram) -> Result<Program> {
    let gm = &ep.graph_module;
    let graph = import_graph(&gm.graph)?;
    let signature = import_signature(&gm.signature, &gm.graph, &graph)?;
    let mut p = Program {
        graph,
        signature,
        range_constraints: ep.symbol_ranges(),
    };
    super::releases::fix_recorded_types(&mut p);
    Ok(p)
}

/// The element type of a recorded tensor.
pub fn dtype_of(code: i64, what: &str) -> Result<DType> {
    DType::from_schema(code)
        .ok_or_else(|| Error::schema(format!("{what}: unsupported dtype code {code}")))
}

pub fn sym_int(v: &s::SymInt) -> Result<SymExpr> {
    match v {
        s::SymInt::AsInt(i) => Ok(SymExpr::Int(*i)),
        s::SymInt::AsExpr(e) => SymExpr::parse_srepr(&e.expr_str),
    }
}

pub fn tensor_type(m: &s::TensorMeta, what: &str) -> Result<TensorType> {
    let dtype = dtype_of(m.dtype, what)?;
    let shape = m.sizes.iter().map(sym_int).collect::<Result<Vec<_>>>()?;
    Ok(TensorType::new(dtype, shape))
}

fn memory_format_name(code: i64) -> String {
    match code {
        1 => "contiguous_format".into(),
        2 => "channels_last".into(),
        3 => "channels_last_3d".into(),
        4 => "preserve_format".into(),
        other => format!("unknown{other}"),
    }
}

fn layout_name(code: i64) -> String {
    match code {
        7 => "strided".into(),
        1 => "sparse_coo".into(),
        2 => "sparse_csr".into(),
        other => format!("unknown{other}"),
    }
}

struct Importer<'a> {
    src: &'a s::Graph,
    g: Graph,
}

impl<'a> Importer<'a> {
    fn type_of_tensor(&self, name: &str) -> Result<ValueType> {
        match self.src.tensor_values.get(name) {
            Some(m) => Ok(ValueType::Tensor(tensor_type(m, &format!("value {name}"))?)),
            None => Ok(ValueType::UnknownTensor),
        }
    }

    fn define(&mut self, name: &str, ty: ValueType, node: &str) -> Result<ValueId> {
        if self.g.lookup(name).is_some() {
            return Err(Error::schema(format!(
                "node {node}: value {name} is defined twice"
            )));
        }
        Ok(self.g.add_value(name, ty))
    }

    fn lookup(&self, name: &str, node: &str) -> Result<ValueId> {
        self.g
            .lookup(name)
            .ok_or_else(|| Error::schema(format!("node {node}: use of undefined value {name}")))
    }

    /// Defines the values an argument in a definition position names
    /// (a graph input or a node output). Returns them in order.
    fn define_arg(&mut self, a: &s::Argument, node: &str, index: usize) -> Result<Vec<ValueId>> {
        Ok(match a {
            s::Argument::AsTensor(t) => {
                let ty = self.type_of_tensor(&t.name)?;
                vec![self.define(&t.name, ty, node)?]
            }
            s::Argument::AsTensors(ts) => {
                let mut out = Vec::new();
                for t in ts {
                    let ty = self.type_of_tensor(&t.name)?;
                    out.push(self.define(&t.name, ty, node)?);
                }
                out
            }
            s::Argument::AsSymInt(s::SymIntArgument::AsName(n)) => {
                vec![self.define(n, ValueType::SymInt, node)?]
            }
            s::Argument::AsSymFloat(s::SymFloatArgument::AsName(n)) => {
                vec![self.define(n, ValueType::SymFloat, node)?]
            }
            s::Argument::AsSymBool(s::SymBoolArgument::AsName(n)) => {
                vec![self.define(n, ValueType::SymBool, node)?]
            }
            s::Argument::AsCustomObj(o) => vec![self.define(&o.name, ValueType::Opaque, node)?],
            s::Argument::AsOptionalTensor(s::OptionalTensorArgument::AsTensor(t)) => {
                let ty = self.type_of_tensor(&t.name)?;
                vec![self.define(&t.name, ty, node)?]
            }
            // A slot that holds nothing (an unused output, a constant
            // input): a placeholder value keeps positions aligned.
            _ => {
                let name = format!("{}_unused_{index}", node.replace(' ', "_"));
                vec![self.g.add_value(&name, ValueType::Opaque)]
            }
        })
    }

    fn arg(&self, a: &s::Argument, node: &str) -> Result<Arg> {
        let v = |n: &str| self.lookup(n, node).map(Arg::Value);
        Ok(match a {
            s::Argument::AsNone(()) => Arg::None,
            s::Argument::AsTensor(t) => v(&t.name)?,
            s::Argument::AsTensors(ts) => {
                collect_list(ts.iter().map(|t| v(&t.name)).collect::<Result<Vec<_>>>()?)
            }
            s::Argument::AsInt(i) => Arg::Int(*i),
            s::Argument::AsInts(is) => Arg::Ints(is.clone()),
            s::Argument::AsFloat(f) => Arg::Float(f.0),
            s::Argument::AsFloats(fs) => Arg::Floats(fs.iter().map(|f| f.0).collect()),
            s::Argument::AsString(x) => Arg::Str(x.clone()),
            s::Argument::AsStrings(x) => Arg::Strs(x.clone()),
            s::Argument::AsBool(b) => Arg::Bool(*b),
            s::Argument::AsBools(b) => Arg::Bools(b.clone()),
            s::Argument::AsSymInt(x) => self.sym_int_arg(x, node)?,
            s::Argument::AsSymInts(xs) => collect_list(
                xs.iter()
                    .map(|x| self.sym_int_arg(x, node))
                    .collect::<Result<Vec<_>>>()?,
            ),
            s::Argument::AsSymFloat(s::SymFloatArgument::AsName(n)) => v(n)?,
            s::Argument::AsSymFloat(s::SymFloatArgument::AsFloat(f)) => Arg::Float(f.0),
            s::Argument::AsSymFloats(xs) => collect_list(
                xs.iter()
                    .map(|x| match x {
                        s::SymFloatArgument::AsName(n) => v(n),
                        s::SymFloatArgument::AsFloat(f) => Ok(Arg::Float(f.0)),
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            s::Argument::AsSymBool(s::SymBoolArgument::AsName(n)) => v(n)?,
            s::Argument::AsSymBool(s::SymBoolArgument::AsBool(b)) => Arg::Bool(*b),
            s::Argument::AsSymBools(xs) => collect_list(
                xs.iter()
                    .map(|x| match x {
                        s::SymBoolArgument::AsName(n) => v(n),
                        s::SymBoolArgument::AsBool(b) => Ok(Arg::Bool(*b)),
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            s::Argument::AsScalarType(c) => Arg::DType(dtype_of(*c, &format!("node {node}"))?),
            s::Argument::AsMemoryFormat(c) => Arg::MemoryFormat(memory_format_name(*c)),
            s::Argument::AsLayout(c) => Arg::Layout(layout_name(*c)),
            s::Argument::AsDevice(d) => Arg::Device(match d.index {
                Some(i) => format!("{}:{i}", d.kind),
                None => d.kind.clone(),
            }),
            s::Argument::AsGraph(ga) => Arg::Graph(Box::new(SubGraph {
                name: ga.name.clone(),
                graph: import_graph(&ga.graph)?,
            })),
            s::Argument::AsOptionalTensors(xs) => Arg::List(
                xs.iter()
                    .map(|x| match x {
                        s::OptionalTensorArgument::AsTensor(t) => v(&t.name),
                        s::OptionalTensorArgument::AsNone(()) => Ok(Arg::None),
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            s::Argument::AsOptionalTensor(s::OptionalTensorArgument::AsTensor(t)) => v(&t.name)?,
            s::Argument::AsOptionalTensor(s::OptionalTensorArgument::AsNone(())) => Arg::None,
            s::Argument::AsCustomObj(o) => Arg::CustomObj(o.name.clone()),
            s::Argument::AsOperator(o) => Arg::Operator(o.clone()),
            s::Argument::AsNestedTensors(ls) => Arg::List(
                ls.iter()
                    .map(|l| {
                        Ok(Arg::List(
                            l.iter().map(|t| v(&t.name)).collect::<Result<Vec<_>>>()?,
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            s::Argument::AsIntLists(ls) => {
                Arg::List(ls.iter().map(|l| Arg::Ints(l.clone())).collect())
            }
            s::Argument::AsComplex(_) => {
                return Err(Error::schema(format!(
                    "node {node}: complex constants are not supported"
                )))
            }
            s::Argument::AsStringToArgument(_) => {
                return Err(Error::schema(format!(
                    "node {node}: string-keyed argument maps are not supported"
                )))
            }
        })
    }

    fn sym_int_arg(&self, x: &s::SymIntArgument, node: &str) -> Result<Arg> {
        Ok(match x {
            s::SymIntArgument::AsName(n) => Arg::Value(self.lookup(n, node)?),
            s::SymIntArgument::AsInt(i) => Arg::Int(*i),
        })
    }
}

pub fn import_graph(src: &s::Graph) -> Result<Graph> {
    let mut im = Importer {
        src,
        g: Graph::new(),
    };
    for (i, a) in src.inputs.iter().enumerate() {
        let vs = im.define_arg(a, "graph input", i)?;
        im.g.inputs.extend(vs);
    }
    for (k, n) in src.nodes.iter().enumerate() {
        let op = Op::from_target(&n.target);
        let first_output = n.outputs.iter().find_map(|o| match o {
            s::Argument::AsTensor(t) => Some(t.name.clone()),
            s::Argument::AsSymInt(s::SymIntArgument::AsName(x)) => Some(x.clone()),
            _ => None,
        });
        let name = n
            .name
            .clone()
            .filter(|s| !s.is_empty())
            .or(first_output)
            .unwrap_or_else(|| format!("node_{k}"));
        let mut args = Vec::with_capacity(n.inputs.len());
        for a in &n.inputs {
            args.push(NamedArg {
                name: a.name.clone(),
                value: im.arg(&a.arg, &name)?,
                kwarg: a.kind == Some(2),
            });
        }
        let list_output = n.outputs.len() == 1 && matches!(n.outputs[0], s::Argument::AsTensors(_));
        let mut outputs = Vec::new();
        for (i, o) in n.outputs.iter().enumerate() {
            outputs.extend(im.define_arg(o, &name, i)?);
        }
        let meta = NodeMeta {
            stack_trace: n.metadata.get("stack_trace").cloned(),
            nn_module_stack: n.metadata.get("nn_module_stack").cloned(),
            torch_fn: n.metadata.get("torch_fn").cloned(),
        };
        let node = Node {
            name,
            op,
            args,
            outputs,
            list_output,
            meta,
        };
        if let Some(why) = super::schema::check_node(&node) {
            return Err(node.error(why));
        }
        im.g.nodes.push(node);
    }
    for o in &src.outputs {
        let a = im.arg(o, "graph output")?;
        im.g.outputs.push(a);
    }
    Ok(im.g)
}

fn tensor_arg_name(a: &s::Argument) -> Option<&str> {
    match a {
        s::Argument::AsTensor(t) => Some(&t.name),
        s::Argument::AsSymInt(s::SymIntArgument::AsName(n)) => Some(n),
        s::Argument::AsSymFloat(s::SymFloatArgument::AsName(n)) => Some(n),
        s::Argument::AsSymBool(s::SymBoolArgument::AsName(n)) => Some(n),
        s::Argument::AsCustomObj(o) => Some(&o.name),
        _ => None,
    }
}

fn import_signature(sig: &s::GraphSignature, src: &s::Graph, g: &Graph) -> Result<Signature> {
    if sig.input_specs.len() != g.inputs.len() {
        return Err(Error::schema(format!(
            "signature has {} input specs but the graph has {} inputs",
            sig.input_specs.len(),
            g.inputs.len()
        )));
    }
    let mut inputs = Vec::new();
    for (i, spec) in sig.input_specs.iter().enumerate() {
        let (kind, name, target) = match spec {
            s::InputSpec::UserInput(u) => (
                InputKind::UserInput,
                tensor_arg_name(&u.arg).map(str::to_string),
                None,
            ),
            s::InputSpec::Parameter(p) => (
                InputKind::Parameter,
                Some(p.arg.name.clone()),
                Some(p.parameter_name.clone()),
            ),
            s::InputSpec::Buffer(b) => (
                InputKind::Buffer {
                    persistent: b.persistent,
                },
                Some(b.arg.name.clone()),
                Some(b.buffer_name.clone()),
            ),
            s::InputSpec::TensorConstant(c) => (
                InputKind::ConstantTensor,
                Some(c.arg.name.clone()),
                Some(c.tensor_constant_name.clone()),
            ),
            s::InputSpec::CustomObj(c) => (
                InputKind::CustomObj,
                Some(c.arg.name.clone()),
                Some(c.custom_obj_name.clone()),
            ),
            s::InputSpec::Token(t) => (InputKind::Token, Some(t.arg.name.clone()), None),
            s::InputSpec::ConstantInput(c) => {
                let value = match &c.value {
                    s::ConstantValue::AsNone(()) => Arg::None,
                    s::ConstantValue::AsInt(i) => Arg::Int(*i),
                    s::ConstantValue::AsFloat(f) => Arg::Float(f.0),
                    s::ConstantValue::AsString(x) => Arg::Str(x.clone()),
                    s::ConstantValue::AsBool(b) => Arg::Bool(*b),
                };
                (InputKind::ConstantInput(value), None, Some(c.name.clone()))
            }
        };
        let value = g.inputs[i];
        if let Some(n) = &name {
            if g.name(value) != n {
                return Err(Error::schema(format!(
                    "input spec {i} names {n} but graph input {i} is {}",
                    g.name(value)
                )));
            }
        }
        inputs.push(InputSpec {
            kind,
            value,
            target,
        });
    }
    if sig.output_specs.len() != src.outputs.len() {
        return Err(Error::schema(format!(
            "signature has {} output specs but the graph has {} outputs",
            sig.output_specs.len(),
            src.outputs.len()
        )));
    }
    let outputs = sig
        .output_specs
        .iter()
        .map(|spec| match spec {
            s::OutputSpec::UserOutput(_) => OutputSpec {
                kind: OutputKind::UserOutput,
                target: None,
            },
            s::OutputSpec::LossOutput(_) => OutputSpec {
                kind: OutputKind::LossOutput,
                target: None,
            },
            s::OutputSpec::BufferMutation(b) => OutputSpec {
                kind: OutputKind::BufferMutation,
                target: Some(b.buffer_name.clone()),
            },
            s::OutputSpec::GradientToParameter(p) => OutputSpec {
                kind: OutputKind::GradientToParameter,
                target: Some(p.parameter_name.clone()),
            },
            s::OutputSpec::GradientToUserInput(p) => OutputSpec {
                kind: OutputKind::GradientToUserInput,
                target: Some(p.user_input_name.clone()),
            },
            s::OutputSpec::UserInputMutation(p) => OutputSpec {
                kind: OutputKind::UserInputMutation,
                target: Some(p.user_input_name.clone()),
            },
            s::OutputSpec::ParameterMutation(p) => OutputSpec {
                kind: OutputKind::ParameterMutation,
                target: Some(p.parameter_name.clone()),
            },
            s::OutputSpec::Token(_) => OutputSpec {
                kind: OutputKind::Token,
                target: None,
            },
        })
        .collect();
    Ok(Signature { inputs, outputs })
}
