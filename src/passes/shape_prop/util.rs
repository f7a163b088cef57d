//! Argument access and symbolic shape arithmetic shared by the rules.

use crate::error::{Error, Result};
use crate::ir::{Arg, Graph, Node, Op, TensorType, ValueId, ValueType};
use crate::sym::SymExpr;
use crate::DType;

use crate::promote::Operand;

pub fn int(v: i64) -> SymExpr {
    SymExpr::Int(v)
}

pub fn add(a: SymExpr, b: SymExpr) -> SymExpr {
    SymExpr::add(vec![a, b])
}

pub fn sub(a: SymExpr, b: SymExpr) -> SymExpr {
    SymExpr::add(vec![a, SymExpr::negate(b)])
}

pub fn mul(a: SymExpr, b: SymExpr) -> SymExpr {
    SymExpr::mul(vec![a, b])
}

/// A product as (constant coefficient, other factors), if `e` is one.
fn monomial(e: &SymExpr) -> (i64, Vec<SymExpr>) {
    match e {
        SymExpr::Int(v) => (*v, vec![]),
        SymExpr::Mul(fs) => {
            let mut c: i64 = 1;
            let mut rest = Vec::new();
            for f in fs {
                match f {
                    SymExpr::Int(v) => c = c.saturating_mul(*v),
                    other => rest.push(other.clone()),
                }
            }
            (c, rest)
        }
        other => (1, vec![other.clone()]),
    }
}

/// `a // b`, cancelling common factors of products first, so that
/// `(24*s0) // 24 = s0` and `(s0*s1) // s1 = s0`.
pub fn div(a: SymExpr, b: SymExpr) -> SymExpr {
    if a == b {
        return int(1);
    }
    let (ca, mut fa) = monomial(&a);
    let (cb, fb) = monomial(&b);
    if cb != 0 && ca.checked_rem(cb) == Some(0) {
        let mut rest_b = Vec::new();
        for f in fb {
            if let Some(i) = fa.iter().position(|x| *x == f) {
                fa.remove(i);
            } else {
                rest_b.push(f);
            }
        }
        if rest_b.is_empty() {
            let mut factors = vec![int(ca.checked_div(cb).unwrap_or(1))];
            factors.extend(fa);
            return SymExpr::mul(factors);
        }
    }
    SymExpr::floor_div(a, b)
}

/// `ceil(a / b)` for positive `b`.
pub fn ceil_div(a: SymExpr, b: SymExpr) -> SymExpr {
    if let (Some(x), Some(y)) = (a.as_int(), b.as_int()) {
        if y > 0 && x > i64::MIN {
            return int(-((-x).div_euclid(y)));
        }
    }
    let num = sub(add(a.clone(), b.clone()), int(1));
    match b.as_int() {
        Some(1) => a,
        _ => div(num, b),
    }
}

/// Whether two dims are provably different (their difference simplifies
/// to a nonzero constant).
pub fn provably_different(a: &SymExpr, b: &SymExpr) -> bool {
    match sub(a.clone(), b.clone()).as_int() {
        Some(d) => d != 0,
        None => false,
    }
}

pub fn numel(shape: &[SymExpr]) -> SymExpr {
    SymExpr::mul(shape.to_vec())
}

/// The symbolic value of a symbolic-int value, from the node that defines
/// it; a value defined otherwise (a graph input) is a symbol of its name.
pub fn sym_value(g: &Graph, v: ValueId, depth: usize) -> SymExpr {
    let fallback = || SymExpr::Symbol(g.name(v).to_string());
    if depth > 64 {
        return fallback();
    }
    let Some(n) = g.nodes.iter().find(|n| n.outputs.contains(&v)) else {
        return fallback();
    };
    let arg_expr = |a: &Arg| -> Option<SymExpr> {
        match a {
            Arg::Int(i) => Some(int(*i)),
            Arg::Value(x) => Some(sym_value(g, *x, depth + 1)),
            _ => None,
        }
    };
    let pos = |i: usize| n.args.get(i).and_then(|a| arg_expr(&a.value));
    let r = match &n.op {
        Op::Aten(crate::ir::Aten::SymSize, _) => (|| {
            let t = g.tensor_type(n.arg("self")?.as_value()?)?;
            let d = match n.arg("dim")? {
                Arg::Int(d) => *d,
                _ => return None,
            };
            let d = if d < 0 { d + t.rank() as i64 } else { d };
            t.shape.get(usize::try_from(d).ok()?).cloned()
        })(),
        Op::Aten(crate::ir::Aten::SymNumel, _) => (|| {
            let t = g.tensor_type(n.arg("self")?.as_value()?)?;
            Some(numel(&t.shape))
        })(),
        Op::Builtin(b) => match b.target() {
            "_operator.add" => pos(0).zip(pos(1)).map(|(a, b)| add(a, b)),
            "_operator.sub" => pos(0).zip(pos(1)).map(|(a, b)| sub(a, b)),
            "_operator.mul" => pos(0).zip(pos(1)).map(|(a, b)| mul(a, b)),
            "_operator.floordiv" => pos(0).zip(pos(1)).map(|(a, b)| div(a, b)),
            "_operator.mod" => pos(0).zip(pos(1)).map(|(a, b)| SymExpr::python_mod(a, b)),
            "_operator.neg" => pos(0).map(SymExpr::negate),
            "torch.sym_max" => pos(0).zip(pos(1)).map(|(a, b)| SymExpr::max(vec![a, b])),
            "torch.sym_min" => pos(0).zip(pos(1)).map(|(a, b)| SymExpr::min(vec![a, b])),
            _ => None,
        },
        _ => None,
    };
    r.unwrap_or_else(fallback)
}

/// Typed access to a node's arguments, with errors naming the node.
pub struct Cx<'a> {
    pub g: &'a Graph,
    pub n: &'a Node,
}

impl<'a> Cx<'a> {
    pub fn err(&self, msg: impl Into<String>) -> Error {
        self.n.error(msg)
    }

    /// The argument, `None` when absent or `None`.
    pub fn get(&self, name: &str) -> Option<&'a Arg> {
        match self.n.arg(name) {
            None | Some(Arg::None) => None,
            Some(a) => Some(a),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn tensor_of(&self, a: &Arg, what: &str) -> Result<TensorType> {
        match a {
            Arg::Value(v) if self.g.contains(*v) => match self.g.ty(*v) {
                ValueType::Tensor(t) => Ok(t.clone()),
                ValueType::UnknownTensor => Err(self.err(format!(
                    "argument {what} (%{}) has no known type",
                    self.g.name(*v)
                ))),
                other => Err(self.err(format!("argument {what} is not a tensor but {other:?}"))),
            },
            _ => Err(self.err(format!("argument {what} is not a tensor"))),
        }
    }

    pub fn tensor(&self, name: &str) -> Result<TensorType> {
        let a = self
            .get(name)
            .ok_or_else(|| self.err(format!("missing tensor argument {name}")))?;
        self.tensor_of(a, name)
    }

    pub fn opt_tensor(&self, name: &str) -> Result<Option<TensorType>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) => self.tensor_of(a, name).map(Some),
        }
    }

    /// A list of tensors (`None` entries kept as `None`).
    pub fn tensor_list(&self, name: &str) -> Result<Vec<Option<TensorType>>> {
        match self.get(name) {
            Some(Arg::List(items)) => items
                .iter()
                .map(|a| match a {
                    Arg::None => Ok(None),
                    a => self.tensor_of(a, name).map(Some),
                })
                .collect(),
            Some(Arg::Ints(v)) if v.is_empty() => Ok(vec![]),
            Some(a @ Arg::Value(_)) => Ok(vec![Some(self.tensor_of(a, name)?)]),
            _ => Err(self.err(format!("argument {name} is not a tensor list"))),
        }
    }

    pub fn int(&self, name: &str) -> Result<i64> {
        self.opt_int(name)?
            .ok_or_else(|| self.err(format!("missing int argument {name}")))
    }

    pub fn opt_int(&self, name: &str) -> Result<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Arg::Int(v)) => Ok(Some(*v)),
            Some(Arg::Bool(b)) => Ok(Some(*b as i64)),
            Some(_) => Err(self.err(format!("argument {name} is not a constant int"))),
        }
    }

    /// Whether a reduction keeps its reduced dims. The overloads that reduce
    /// everything (`sum.default`, `var.default`) have no `keepdim`: they do not.
    pub fn keepdim(&self) -> Result<bool> {
        match self.get("keepdim") {
            None => Ok(false),
            Some(_) => self.bool("keepdim"),
        }
    }

    pub fn bool(&self, name: &str) -> Result<bool> {
        match self.get(name) {
            Some(Arg::Bool(b)) => Ok(*b),
            Some(Arg::Int(v)) => Ok(*v != 0),
            _ => Err(self.err(format!("argument {name} is not a constant bool"))),
        }
    }

    pub fn opt_dtype(&self, name: &str) -> Result<Option<DType>> {
        match self.get(name) {
            None => Ok(None),
            Some(Arg::DType(d)) => Ok(Some(*d)),
            Some(_) => Err(self.err(format!("argument {name} is not a dtype"))),
        }
    }

    /// A constant int list; a single int is a list of one.
    pub fn ints(&self, name: &str) -> Result<Vec<i64>> {
        match self.get(name) {
            None => Ok(vec![]),
            Some(a) => a
                .as_ints()
                .ok_or_else(|| self.err(format!("argument {name} is not a constant int list"))),
        }
    }

    /// A symbolic int: a constant or a symbolic-int value.
    pub fn sym_of(&self, a: &Arg, what: &str) -> Result<SymExpr> {
        match a {
            Arg::Int(v) => Ok(int(*v)),
            Arg::Bool(b) => Ok(int(*b as i64)),
            Arg::Value(v) if self.g.contains(*v) => match self.g.ty(*v) {
                ValueType::SymInt => Ok(sym_value(self.g, *v, 0)),
                ValueType::Tensor(t) if t.rank() == 0 => Ok(sym_value(self.g, *v, 0)),
                _ => Err(self.err(format!("argument {what} is not a symbolic int"))),
            },
            _ => Err(self.err(format!("argument {what} is not an int"))),
        }
    }

    pub fn opt_sym(&self, name: &str) -> Result<Option<SymExpr>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) => self.sym_of(a, name).map(Some),
        }
    }

    /// A list of symbolic ints.
    pub fn sym_ints(&self, name: &str) -> Result<Vec<SymExpr>> {
        match self.get(name) {
            None => Ok(vec![]),
            Some(Arg::List(items)) => items.iter().map(|a| self.sym_of(a, name)).collect(),
            Some(a @ Arg::Value(_)) => Ok(vec![self.sym_of(a, name)?]),
            Some(a) => a
                .as_ints()
                .map(|v| v.into_iter().map(int).collect())
                .ok_or_else(|| self.err(format!("argument {name} is not an int list"))),
        }
    }

    /// How type promotion sees an argument.
    pub fn operand(&self, name: &str) -> Result<Option<Operand>> {
        let Some(a) = self.get(name) else {
            return Ok(None);
        };
        Ok(Some(match a {
            Arg::Int(_) => Operand::IntScalar,
            Arg::Float(_) => Operand::FloatScalar,
            Arg::Bool(_) => Operand::BoolScalar,
            Arg::Value(v) if self.g.contains(*v) => match self.g.ty(*v) {
                ValueType::Tensor(t) if t.rank() == 0 => Operand::ZeroDim(t.dtype),
                ValueType::Tensor(t) => Operand::Tensor(t.dtype),
                ValueType::SymInt => Operand::IntScalar,
                ValueType::SymFloat => Operand::FloatScalar,
                ValueType::SymBool => Operand::BoolScalar,
                _ => return Err(self.err(format!("argument {name} has no known type"))),
            },
            _ => return Err(self.err(format!("argument {name} is not a tensor or scalar"))),
        }))
    }

    /// Normalizes a possibly negative dim against `rank` (a 0-dim tensor
    /// accepts 0 and -1).
    pub fn dim(&self, d: i64, rank: usize) -> Result<usize> {
        let r = rank.max(1) as i64;
        let v = if d < 0 { d + r } else { d };
        if v < 0 || v >= r {
            return Err(self.err(format!("dim {d} out of range for a tensor of rank {rank}")));
        }
        Ok(v as usize)
    }

    /// Like [`Cx::dim`], for ops that need at least one dimension.
    pub fn sdim(&self, d: i64, rank: usize) -> Result<usize> {
        if rank == 0 {
            return Err(self.err("dim argument on a 0-dim tensor"));
        }
        self.dim(d, rank)
    }

    /// A window parameter (kernel, stride, padding ...) in a sane range, so
    /// that size arithmetic cannot overflow.
    pub fn check_params(&self, what: &str, v: &[i64], min: i64) -> Result<()> {
        const LIMIT: i64 = 1 << 31;
        match v.iter().find(|&&x| x < min || x > LIMIT) {
            Some(x) => Err(self.err(format!("{what} value {x} out of range"))),
            None => Ok(()),
        }
    }

    /// Like [`Cx::dim`] for inserting a new dim (`unsqueeze`): `rank + 1`.
    pub fn new_dim(&self, d: i64, rank: usize) -> Result<usize> {
        let r = rank as i64 + 1;
        let v = if d < 0 { d + r } else { d };
        if v < 0 || v >= r {
            return Err(self.err(format!(
                "dim {d} out of range for inserting into rank {rank}"
            )));
        }
        Ok(v as usize)
    }

    /// Broadcasts two shapes (numpy rules, symbolic).
    pub fn broadcast(&self, a: &[SymExpr], b: &[SymExpr]) -> Result<Vec<SymExpr>> {
        let r = a.len().max(b.len());
        let mut out = Vec::with_capacity(r);
        for i in 0..r {
            let x = (i + a.len()).checked_sub(r).map(|j| &a[j]);
            let y = (i + b.len()).checked_sub(r).map(|j| &b[j]);
            out.push(match (x, y) {
                (Some(x), None) => x.clone(),
                (None, Some(y)) => y.clone(),
                (Some(x), Some(y)) => self.broadcast_dim(x, y)?,
                (None, None) => int(1),
            });
        }
        Ok(out)
    }

    fn broadcast_dim(&self, x: &SymExpr, y: &SymExpr) -> Result<SymExpr> {
        if x == y {
            return Ok(x.clone());
        }
        match (x.as_int(), y.as_int()) {
            (Some(1), _) => Ok(y.clone()),
            (_, Some(1)) => Ok(x.clone()),
            (Some(a), Some(b)) => Err(self.err(format!(
                "shapes do not broadcast: size {a} against size {b}"
            ))),
            (Some(_), None) => Ok(x.clone()),
            (None, Some(_)) => Ok(y.clone()),
            (None, None) => Ok(x.clone()),
        }
    }
}
