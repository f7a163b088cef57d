//! Runs a graph node by node on real tensors.
//!
//! Values live in an environment indexed by [`ValueId`]. Tensors share
//! storage the way torch's do, so a graph that still has in-place ops and
//! views (the training IR as saved) runs with torch's aliasing semantics:
//! `relu_` on a `select` of a buffer updates the buffer.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::ir::{Arg, Graph, Node, Op, ValueId};
use crate::DType;

use super::tensor::{Scalar, Tensor};

/// A run-time value.
#[derive(Clone, Debug)]
pub enum RValue {
    None,
    Tensor(Tensor),
    List(Vec<RValue>),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl RValue {
    pub fn into_tensor(self) -> Result<Tensor> {
        match self {
            RValue::Tensor(t) => Ok(t),
            other => Err(Error::other(format!(
                "expected a tensor, got {}",
                other.kind()
            ))),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            RValue::None => "None",
            RValue::Tensor(_) => "a tensor",
            RValue::List(_) => "a list",
            RValue::Int(_) => "an int",
            RValue::Float(_) => "a float",
            RValue::Bool(_) => "a bool",
        }
    }
}

/// The run-time value of a constant argument.
pub fn constant_value(a: &Arg) -> RValue {
    match a {
        Arg::Int(i) => RValue::Int(*i),
        Arg::Float(f) => RValue::Float(*f),
        Arg::Bool(b) => RValue::Bool(*b),
        Arg::Ints(v) => RValue::List(v.iter().map(|&i| RValue::Int(i)).collect()),
        _ => RValue::None,
    }
}

/// How a graph is being evaluated: inside an autocast region, ops of the
/// lower-precision list run on `autocast`-typed inputs.
#[derive(Copy, Clone, Debug, Default)]
pub struct EvalMode {
    pub autocast: Option<DType>,
}

pub(crate) struct Env {
    values: Vec<Option<RValue>>,
}

impl Env {
    /// An environment in which no value of `g` is set yet.
    pub(crate) fn unbound(g: &Graph) -> Env {
        Env {
            values: vec![None; g.num_values()],
        }
    }

    fn get(&self, v: ValueId) -> Option<&RValue> {
        self.values.get(v.index()).and_then(|x| x.as_ref())
    }
}

/// Runs `g` on `inputs` (one per graph input). `syms` binds the shape
/// symbols of the inputs (used by ops whose arguments are symbolic).
pub fn run_graph(
    g: &Graph,
    inputs: Vec<RValue>,
    syms: &HashMap<String, i64>,
) -> Result<Vec<RValue>> {
    run_subgraph_with(g, inputs, syms, EvalMode::default())
}

/// Runs a graph (a whole program's or the body of a higher-order op).
pub(crate) fn run_subgraph_with(
    g: &Graph,
    inputs: Vec<RValue>,
    syms: &HashMap<String, i64>,
    mode: EvalMode,
) -> Result<Vec<RValue>> {
    if inputs.len() != g.inputs.len() {
        return Err(Error::other(format!(
            "graph takes {} inputs, got {}",
            g.inputs.len(),
            inputs.len()
        )));
    }
    let mut env = Env {
        values: vec![None; g.num_values()],
    };
    for (&v, x) in g.inputs.iter().zip(inputs) {
        env.values[v.index()] = Some(x);
    }
    for n in &g.nodes {
        let outs = {
            let cast_to = mode.autocast.filter(|_| {
                n.op.aten()
                    .is_some_and(super::aten::autocasts_to_lower_precision)
            });
            let args = Args {
                node: n,
                env: &env,
                g,
                cast_to,
            };
            eval_node(&args, syms, mode)?
        };
        bind_outputs(n, outs, &mut env)?;
    }
    g.outputs
        .iter()
        .map(|a| {
            resolve(&env, g, a)
                .map_err(|name| Error::other(format!("graph output %{name} has no value")))
        })
        .collect()
}

/// The value of an argument; the error is the name of a value not yet set.
fn resolve(env: &Env, g: &Graph, a: &Arg) -> std::result::Result<RValue, String> {
    Ok(match a {
        Arg::None => RValue::None,
        Arg::Value(v) => match env.get(*v) {
            Some(x) => x.clone(),
            None => return Err(g.name(*v).to_string()),
        },
        Arg::List(items) => RValue::List(
            items
                .iter()
                .map(|x| resolve(env, g, x))
                .collect::<std::result::Result<_, _>>()?,
        ),
        Arg::Int(i) => RValue::Int(*i),
        Arg::Ints(v) => RValue::List(v.iter().map(|&i| RValue::Int(i)).collect()),
        Arg::Float(f) => RValue::Float(*f),
        Arg::Floats(v) => RValue::List(v.iter().map(|&f| RValue::Float(f)).collect()),
        Arg::Bool(b) => RValue::Bool(*b),
        Arg::Bools(v) => RValue::List(v.iter().map(|&b| RValue::Bool(b)).collect()),
        _ => RValue::None,
    })
}

fn bind_outputs(n: &Node, outs: Vec<RValue>, env: &mut Env) -> Result<()> {
    if n.outputs.is_empty() {
        return Ok(());
    }
    // A list result fills the list outputs; a single value fills one output.
    let flat: Vec<RValue> = if outs.len() == 1 && n.outputs.len() != 1 {
        match outs.into_iter().next() {
            Some(RValue::List(items)) => items,
            Some(other) => vec![other],
            None => vec![],
        }
    } else {
        outs
    };
    if flat.len() < n.outputs.len() {
        return Err(n.error(format!(
            "produced {} values, the graph expects {}",
            flat.len(),
            n.outputs.len()
        )));
    }
    for (&v, x) in n.outputs.iter().zip(flat) {
        env.values[v.index()] = Some(x);
    }
    Ok(())
}

/// Typed access to a node's arguments, by schema name.
pub(crate) struct Args<'a> {
    pub node: &'a Node,
    env: &'a Env,
    pub g: &'a Graph,
    /// Inside autocast: floating tensor arguments are cast to this dtype.
    cast_to: Option<DType>,
}

impl<'a> Args<'a> {
    /// The arguments of `node` read from `env`, outside any autocast.
    pub(crate) fn unbound(node: &'a Node, env: &'a Env, g: &'a Graph) -> Args<'a> {
        Args {
            node,
            env,
            g,
            cast_to: None,
        }
    }

    /// The same arguments, read through another node (same environment).
    pub fn with_node<'b>(&'b self, node: &'b Node) -> Args<'b> {
        Args {
            node,
            env: self.env,
            g: self.g,
            cast_to: self.cast_to,
        }
    }

    pub fn err(&self, msg: impl Into<String>) -> Error {
        self.node.error(msg)
    }

    fn raw(&self, name: &str) -> Option<&'a Arg> {
        self.node.arg(name)
    }

    /// The positional argument `i` (for higher-order ops, whose arguments
    /// have no names).
    pub fn positional(&self, i: usize) -> Option<&'a Arg> {
        self.node.args.get(i).map(|a| &a.value)
    }

    pub fn value(&self, a: &Arg) -> Result<RValue> {
        resolve(self.env, self.g, a).map_err(|name| self.err(format!("%{name} has no value")))
    }

    pub fn has(&self, name: &str) -> bool {
        !matches!(self.raw(name), None | Some(Arg::None))
    }

    fn required(&self, name: &str) -> Result<&'a Arg> {
        self.raw(name)
            .ok_or_else(|| self.err(format!("missing argument {name}")))
    }

    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        match self.value(self.required(name)?)? {
            RValue::Tensor(t) => Ok(match self.cast_to {
                Some(d) if t.dtype().is_float() && t.dtype() != d => t.to_dtype(d),
                _ => t,
            }),
            other => Err(self.err(format!(
                "argument {name} should be a tensor, got {}",
                other.kind()
            ))),
        }
    }

    pub fn opt_tensor(&self, name: &str) -> Result<Option<Tensor>> {
        match self.raw(name) {
            None | Some(Arg::None) => Ok(None),
            Some(_) => self.tensor(name).map(Some),
        }
    }

    pub fn tensors(&self, name: &str) -> Result<Vec<Tensor>> {
        self.opt_tensors(name)?
            .into_iter()
            .map(|t| t.ok_or_else(|| self.err(format!("argument {name} has a None element"))))
            .collect()
    }

    pub fn opt_tensors(&self, name: &str) -> Result<Vec<Option<Tensor>>> {
        match self.value(self.required(name)?)? {
            RValue::List(items) => items
                .into_iter()
                .map(|x| match x {
                    RValue::Tensor(t) => Ok(Some(t)),
                    RValue::None => Ok(None),
                    other => Err(self.err(format!(
                        "argument {name} should hold tensors, got {}",
                        other.kind()
                    ))),
                })
                .collect(),
            other => Err(self.err(format!(
                "argument {name} should be a tensor list, got {}",
                other.kind()
            ))),
        }
    }

    fn to_int(&self, name: &str, x: &RValue) -> Result<i64> {
        match x {
            RValue::Int(i) => Ok(*i),
            RValue::Bool(b) => Ok(*b as i64),
            RValue::Tensor(t) if t.numel() == 1 && !t.dtype().is_float() => t.item_i64(),
            other => Err(self.err(format!(
                "argument {name} should be an int, got {}",
                other.kind()
            ))),
        }
    }

    pub fn int(&self, name: &str) -> Result<i64> {
        let x = self.value(self.required(name)?)?;
        self.to_int(name, &x)
    }

    pub fn opt_int(&self, name: &str) -> Result<Option<i64>> {
        match self.raw(name) {
            None | Some(Arg::None) => Ok(None),
            Some(_) => self.int(name).map(Some),
        }
    }

    pub fn ints(&self, name: &str) -> Result<Vec<i64>> {
        match self.value(self.required(name)?)? {
            RValue::List(items) => items.iter().map(|x| self.to_int(name, x)).collect(),
            RValue::Int(i) => Ok(vec![i]),
            other => Err(self.err(format!(
                "argument {name} should be an int list, got {}",
                other.kind()
            ))),
        }
    }

    pub fn opt_ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        match self.raw(name) {
            None | Some(Arg::None) => Ok(None),
            Some(_) => self.ints(name).map(Some),
        }
    }

    pub fn scalar(&self, name: &str) -> Result<Scalar> {
        match self.value(self.required(name)?)? {
            RValue::Int(i) => Ok(Scalar::Int(i)),
            RValue::Float(f) => Ok(Scalar::Float(f)),
            RValue::Bool(b) => Ok(Scalar::Bool(b)),
            RValue::Tensor(t) if t.numel() == 1 => t.item(),
            other => Err(self.err(format!(
                "argument {name} should be a number, got {}",
                other.kind()
            ))),
        }
    }

    pub fn opt_scalar(&self, name: &str) -> Result<Option<Scalar>> {
        match self.raw(name) {
            None | Some(Arg::None) => Ok(None),
            Some(_) => self.scalar(name).map(Some),
        }
    }

    pub fn float(&self, name: &str) -> Result<f64> {
        Ok(self.scalar(name)?.to_f64())
    }

    pub fn bool(&self, name: &str) -> Result<bool> {
        Ok(self.scalar(name)?.to_bool())
    }

    pub fn str(&self, name: &str) -> Result<&'a str> {
        match self.required(name)? {
            Arg::Str(s) => Ok(s),
            _ => Err(self.err(format!("argument {name} should be a string"))),
        }
    }

    pub fn opt_float(&self, name: &str) -> Result<Option<f64>> {
        Ok(self.opt_scalar(name)?.map(|s| s.to_f64()))
    }

    /// An optional float list (`float[]?`, e.g. `scale_factors`).
    pub fn opt_floats(&self, name: &str) -> Result<Option<Vec<f64>>> {
        let bad = || self.err(format!("argument {name} should be a float list"));
        match self.raw(name) {
            None | Some(Arg::None) => Ok(None),
            Some(Arg::Floats(v)) => Ok(Some(v.clone())),
            Some(Arg::Ints(v)) => Ok(Some(v.iter().map(|&i| i as f64).collect())),
            Some(Arg::List(items)) => items
                .iter()
                .map(|x| match self.value(x)? {
                    RValue::Float(f) => Ok(f),
                    RValue::Int(i) => Ok(i as f64),
                    _ => Err(bad()),
                })
                .collect::<Result<Vec<f64>>>()
                .map(Some),
            Some(_) => Err(bad()),
        }
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>> {
        Ok(self.opt_scalar(name)?.map(|s| s.to_bool()))
    }

    pub fn dtype(&self, name: &str) -> Option<DType> {
        match self.raw(name) {
            Some(Arg::DType(d)) => Some(*d),
            _ => None,
        }
    }

    pub fn is_tensor(&self, name: &str) -> bool {
        match self.raw(name) {
            Some(Arg::Value(v)) => matches!(self.env.get(*v), Some(RValue::Tensor(_))),
            _ => false,
        }
    }
}

fn eval_node(a: &Args<'_>, syms: &HashMap<String, i64>, mode: EvalMode) -> Result<Vec<RValue>> {
    let n = a.node;
    match &n.op {
        Op::Aten(op, overload) => super::aten::eval_aten(a, *op, overload),
        Op::Hop(h) => super::hop::eval_hop(a, *h, syms, mode),
        Op::Builtin(b) => super::builtin::eval_builtin(a, *b),
        Op::Custom(t) => eval_custom(a, t, true),
        Op::Unsupported(t) => match crate::custom::lookup(t) {
            // The graph as saved: the in-place call itself.
            Some(_) => eval_custom(a, t, false),
            None => Err(n.error(crate::custom::unsupported_message(t))),
        },
    }
}

impl From<RValue> for crate::custom::CustomArg {
    fn from(v: RValue) -> Self {
        use crate::custom::CustomArg;
        match v {
            RValue::Tensor(t) => CustomArg::Tensor(t),
            RValue::Int(i) => CustomArg::Int(i),
            RValue::Float(f) => CustomArg::Float(f),
            RValue::Bool(b) => CustomArg::Bool(b),
            RValue::None => CustomArg::None,
            RValue::List(_) => CustomArg::Other,
        }
    }
}

/// A registered custom op: functional (mutated arguments copied, their new
/// values returned first) or in place (as the training IR calls it).
fn eval_custom(a: &Args<'_>, target: &str, functional: bool) -> Result<Vec<RValue>> {
    use crate::custom::CustomArg;
    let n = a.node;
    let op = crate::custom::lookup(target)
        .ok_or_else(|| n.error(crate::custom::unsupported_message(target)))?;
    let mut args = Vec::new();
    for sa in &op.schema.args {
        let v = match n.args.iter().find(|x| x.name == sa.name) {
            Some(x) => a.value(&x.value)?,
            None => RValue::None,
        };
        args.push((sa.name.clone(), CustomArg::from(v)));
    }
    let wrap = |e: Error| match e {
        e @ Error::Node { .. } => e,
        e => n.error(e.to_string()),
    };
    let outs = if functional {
        crate::custom::call_functional(&op, args).map_err(wrap)?
    } else {
        let call = crate::custom::CustomArgs {
            op: op.schema.name.clone(),
            args,
        };
        crate::custom::call_in_place(&op, &call).map_err(wrap)?
    };
    Ok(outs.into_iter().map(RValue::Tensor).collect())
}
