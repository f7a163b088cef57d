//! The scheduler: a functional core-ATen [`Program`] in, a kernel [`Plan`]
//! out.
//!
//! Every tensor value is, while scheduling, either a strided [`View`] of a
//! buffer or a *lazy* value: a function from an index to the scalar
//! expression that computes that element (the shape Inductor's `inner_fn`
//! has). Views (`permute`, `expand`, `slice`, `select`, `unsqueeze`,
//! `squeeze`, a `view` of dense data) map indices and cost nothing;
//! elementwise ops build lazy values on their operands' lazy values, so a
//! chain of them becomes one expression. A lazy value is *realized* (a
//! pointwise kernel stores it to a buffer) only where it must be: when a
//! runtime call needs it in memory, when it is read more than once and
//! costs something to recompute, when it gets large, or when it is a graph
//! output. Reductions take the lazy value of their input as their prologue.
//!
//! Ops without a native lowering become fallback kernels that run the
//! reference interpreter's kernel for that node on dense copies of its
//! inputs; [`Plan::counts`] and the plan text show them.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::ir::{Arg, Aten, Builtin, Graph, Hop, InputKind, Node, Op, Program, ValueId, ValueType};
use crate::promote::{result_type, Operand as PromoteOperand};
use crate::sym::SymExpr;
use crate::tensor::wrap_dim;
use crate::DType;

use super::kernel::build::{self as eb};
use super::kernel::{
    dense_strides, Act, BinOp, BufId, BufKind, Buffer, CmpOp, Expr, Extern, Kernel, KernelKind,
    Origin, OutputRef, Plan, RedOp, ScatterOp, SizeCheck, UnOp, View, E,
};

/// An expression cheaper than this is recomputed by each reader rather
/// than stored.
const RECOMPUTE_COST: usize = 1;
/// A lazy value whose expression grows past this is stored.
const MAX_FUSED_COST: usize = 48;

type Body = Rc<dyn Fn(&[E]) -> E>;

/// A map from an index to another index.
type IndexMap = Rc<dyn Fn(&[E]) -> Vec<E>>;

/// A strided window of a storage: sizes, strides, offset.
type Window = (Vec<i64>, Vec<i64>, i64);

/// A contraction's finishing step: of the sum and the output index.
type Epilogue = Box<dyn Fn(E, &[E]) -> E>;

/// An operand of an elementwise op: its element function, the nodes fused
/// into it, and its cost.
type Operand = (Body, Rc<Vec<Origin>>, usize);

/// A tensor while scheduling.
#[derive(Clone)]
struct Tv {
    dtype: DType,
    shape: Vec<SymExpr>,
    kind: TvKind,
    /// The nodes folded into a lazy value, for the kernel that stores it.
    origins: Rc<Vec<Origin>>,
}

#[derive(Clone)]
enum TvKind {
    View(View),
    Lazy(Body, usize),
}

impl Tv {
    fn at(&self, idx: &[E]) -> E {
        match &self.kind {
            TvKind::View(v) => eb::load(v, idx),
            TvKind::Lazy(f, _) => f(idx),
        }
    }

    fn cost(&self) -> usize {
        match &self.kind {
            TvKind::View(_) => 0,
            TvKind::Lazy(_, c) => *c,
        }
    }
}

#[derive(Clone)]
enum Val {
    T(Tv),
    /// A symbolic scalar (a `SymInt` input or result).
    Sym(SymExpr),
    /// A value the compiled code cannot hold, with the reason.
    Opaque(String),
}

/// Schedules `p`. Errors name the node at fault.
pub fn schedule(p: &Program) -> Result<Plan> {
    let g = &p.graph;
    let mut s = Sched {
        g,
        plan: Plan {
            buffers: Vec::new(),
            kernels: Vec::new(),
            outputs: Vec::new(),
            checks: Vec::new(),
            symbols: Vec::new(),
        },
        vals: vec![None; g.num_values()],
        uses: g.use_counts(),
        node: None,
        checks: RefCell::new(Vec::new()),
    };
    s.inputs(p)?;
    for (i, n) in g.nodes.iter().enumerate() {
        s.node = Some(i);
        s.node_outputs(n, i)?;
    }
    s.node = None;
    let checks = s.checks.take();
    s.plan.checks.extend(checks);
    for (i, o) in g.outputs.iter().enumerate() {
        let r = match o {
            Arg::Value(v) => match s.val(*v)? {
                Val::T(t) => OutputRef::Tensor(s.realize_any(&t)),
                Val::Sym(e) => OutputRef::Int(e),
                Val::Opaque(why) => {
                    return Err(Error::other(format!(
                        "graph output {i} (%{}) {why}",
                        g.name(*v)
                    )))
                }
            },
            Arg::Int(v) => OutputRef::Int(SymExpr::Int(*v)),
            _ => OutputRef::Other,
        };
        s.plan.outputs.push(r);
    }
    let mut symbols = BTreeSet::new();
    for b in &s.plan.buffers {
        for d in &b.shape {
            symbols.extend(d.free_symbols());
        }
    }
    for o in &s.plan.outputs {
        if let OutputRef::Int(e) = o {
            symbols.extend(e.free_symbols());
        }
    }
    for k in &s.plan.kernels {
        for e in kernel_sizes(k) {
            symbols.extend(e.free_symbols());
        }
    }
    s.plan.symbols = symbols.into_iter().collect();
    Ok(s.plan)
}

/// Every symbolic size a kernel's code computes.
pub fn kernel_sizes(k: &Kernel) -> Vec<SymExpr> {
    let mut out = Vec::new();
    let view = |v: &View, out: &mut Vec<SymExpr>| {
        out.push(v.offset.clone());
        out.extend(v.strides.iter().cloned());
        out.extend(v.shape.iter().cloned());
    };
    match &k.kind {
        KernelKind::Pointwise { out: o, expr } => {
            view(o, &mut out);
            expr.sizes(&mut out);
        }
        KernelKind::Reduction {
            out: o,
            reduced,
            expr,
            ..
        } => {
            view(o, &mut out);
            out.extend(reduced.iter().cloned());
            expr.sizes(&mut out);
        }
        KernelKind::Extern(e) => {
            for v in e.views() {
                view(v, &mut out);
            }
            match &**e {
                Extern::Gemm { batch, m, n, k, .. } => {
                    out.extend([batch.clone(), m.clone(), n.clone(), k.clone()])
                }
                Extern::Softmax {
                    outer, len, inner, ..
                } => out.extend([outer.clone(), len.clone(), inner.clone()]),
                Extern::LayerNorm { rows, cols, .. } => out.extend([rows.clone(), cols.clone()]),
                Extern::Argsort { rows, len, k, .. } => {
                    out.extend([rows.clone(), len.clone(), k.clone()])
                }
                Extern::Scatter { out: o, values, .. } => out.extend([
                    SymExpr::mul(o.shape.clone()),
                    SymExpr::mul(values.shape.clone()),
                ]),
                _ => {}
            }
        }
        KernelKind::Fallback {
            inputs,
            outputs,
            syms,
            ..
        } => {
            for v in inputs.iter().chain(outputs) {
                view(v, &mut out);
            }
            out.extend(syms.iter().map(|(_, e)| e.clone()));
        }
    }
    out
}

struct Sched<'a> {
    g: &'a Graph,
    plan: Plan,
    vals: Vec<Option<Val>>,
    uses: Vec<usize>,
    /// The node being scheduled.
    node: Option<usize>,
    /// Size equalities to check at run time, found while scheduling.
    checks: RefCell<Vec<SizeCheck>>,
}

/// What a node's lowering produced for its outputs.
enum Lowered {
    One(Tv),
    Many(Vec<Option<Tv>>),
    /// Not lowered natively: run the reference kernel.
    Fallback,
}

fn origin(n: &Node) -> Origin {
    Origin {
        node: n.name.clone(),
        op: n.op.to_string(),
        loc: n.meta.source_line(),
    }
}

impl<'a> Sched<'a> {
    /// Requires `a == b`: proved when the two are the same expression,
    /// refused when they are different constants, otherwise checked with
    /// the bound symbols before every call.
    fn require_eq(&self, n: &Node, what: &str, a: &SymExpr, b: &SymExpr) -> Result<()> {
        if a == b {
            return Ok(());
        }
        if let (Some(x), Some(y)) = (a.as_int(), b.as_int()) {
            return Err(n.error(format!("{what}: {x} does not match {y}")));
        }
        self.checks.borrow_mut().push(SizeCheck {
            node: n.name.clone(),
            loc: n.meta.source_line(),
            what: what.to_string(),
            lhs: a.clone(),
            rhs: b.clone(),
        });
        Ok(())
    }

    /// `t` read at an index of `shape` (NumPy broadcasting); a dim that is
    /// neither equal nor 1 is refused, or checked before each call.
    fn broadcast(&self, t: &Tv, shape: &[SymExpr], n: &Node) -> Result<Body> {
        if t.shape.len() > shape.len() {
            return Err(n.error(format!(
                "an operand of shape {} does not match the output shape {}",
                shape_text(&t.shape),
                shape_text(shape)
            )));
        }
        let lead = shape.len() - t.shape.len();
        for (i, d) in t.shape.iter().enumerate() {
            let o = &shape[lead + i];
            if d != o && *d != SymExpr::Int(1) {
                let what = format!(
                    "dim {i} of an operand of shape {} against the output shape {}",
                    shape_text(&t.shape),
                    shape_text(shape)
                );
                self.require_eq(n, &what, d, o)?;
            }
        }
        broadcast(t, shape, n)
    }

    fn val(&self, v: ValueId) -> Result<Val> {
        self.vals[v.index()].clone().ok_or_else(|| {
            Error::other(format!("%{} is used before it is defined", self.g.name(v)))
        })
    }

    fn add_buffer(&mut self, name: &str, dtype: DType, shape: &[SymExpr], kind: BufKind) -> BufId {
        let id = BufId(self.plan.buffers.len() as u32);
        let mut name = name.to_string();
        if self.plan.buffers.iter().any(|b| b.name == name) {
            name = format!("{name}_{}", id.0);
        }
        self.plan.buffers.push(Buffer {
            name,
            dtype,
            shape: shape.to_vec(),
            kind,
        });
        id
    }

    fn inputs(&mut self, p: &Program) -> Result<()> {
        let g = self.g;
        let mut user = 0;
        for spec in &p.signature.inputs {
            let v = spec.value;
            let is_user = matches!(spec.kind, InputKind::UserInput);
            let pos = user;
            if is_user {
                user += 1;
            }
            let val = match (&spec.kind, g.ty(v)) {
                (_, ValueType::SymInt) => Val::Sym(SymExpr::symbol(g.name(v))),
                (InputKind::ConstantInput(Arg::Int(i)), _) => Val::Sym(SymExpr::Int(*i)),
                (InputKind::ConstantInput(_), _) => {
                    Val::Opaque("is a constant input that is not an int".into())
                }
                (InputKind::CustomObj | InputKind::Token, _) => {
                    Val::Opaque("is a token or script object".into())
                }
                (_, ValueType::Tensor(t)) if self.uses[v.index()] > 0 => {
                    let kind = if is_user {
                        BufKind::UserInput(pos)
                    } else {
                        BufKind::State(spec.target.clone().unwrap_or_default())
                    };
                    let b = self.add_buffer(g.name(v), t.dtype, &t.shape, kind);
                    Val::T(stored(
                        t.dtype,
                        t.shape.clone(),
                        View::dense(b, t.dtype, &t.shape),
                    ))
                }
                (_, ValueType::Tensor(_)) => Val::Opaque("is never read".into()),
                (_, other) => Val::Opaque(format!("is a {}", crate::ir::print::type_text(other))),
            };
            self.vals[v.index()] = Some(val);
        }
        Ok(())
    }

    /// Stores a lazy value (or a view that is not dense) into a new dense
    /// buffer; returns the dense view.
    fn realize(&mut self, t: &Tv) -> View {
        if let TvKind::View(v) = &t.kind {
            if v.is_dense() {
                return v.clone();
            }
        }
        let name = t
            .origins
            .last()
            .map(|o| o.node.clone())
            .unwrap_or_else(|| "tmp".into());
        let b = self.add_buffer(&name, t.dtype, &t.shape, BufKind::Temp);
        let out = View::dense(b, t.dtype, &t.shape);
        self.store(t, out.clone());
        out
    }

    /// A view of `t` in memory: its own view when it has one, else a dense
    /// buffer.
    fn realize_any(&mut self, t: &Tv) -> View {
        match &t.kind {
            TvKind::View(v) => v.clone(),
            TvKind::Lazy(..) => self.realize(t),
        }
    }

    /// A pointwise kernel storing `t` into `out`.
    fn store(&mut self, t: &Tv, out: View) {
        let idx: Vec<E> = (0..t.shape.len()).map(eb::var).collect();
        let expr = eb::cast(out.dtype, t.at(&idx));
        let mut origins = (*t.origins).clone();
        if origins.is_empty() {
            if let Some(n) = self.node {
                origins.push(origin(&self.g.nodes[n]));
            }
        }
        self.plan.kernels.push(Kernel {
            kind: KernelKind::Pointwise { out, expr },
            origins,
        });
    }

    fn push(&mut self, n: &Node, kind: KernelKind) {
        self.plan.kernels.push(Kernel {
            kind,
            origins: vec![origin(n)],
        });
    }

    fn temp(&mut self, v: ValueId, dtype: DType, shape: &[SymExpr]) -> View {
        let name = self.g.name(v).to_string();
        let b = self.add_buffer(&name, dtype, shape, BufKind::Temp);
        View::dense(b, dtype, shape)
    }

    fn node_outputs(&mut self, n: &Node, index: usize) -> Result<()> {
        let g = self.g;
        // Functional nodes nothing reads compute nothing observable (an op
        // that mutates its arguments, like an unknown custom op, still runs).
        let functional = matches!(n.op, Op::Aten(..))
            && !n
                .op
                .to_string()
                .split('.')
                .nth(1)
                .is_some_and(|s| s.ends_with('_'));
        if functional && n.outputs.iter().all(|&v| self.uses[v.index()] == 0) {
            for &v in &n.outputs {
                self.vals[v.index()] = Some(Val::Opaque("is never read".into()));
            }
            return Ok(());
        }
        // Symbolic scalar results.
        if n.outputs.len() == 1 && !g.ty(n.outputs[0]).is_tensor() {
            let v = n.outputs[0];
            let val = match g.ty(v) {
                ValueType::SymInt => self.sym_node(n)?.map(Val::Sym),
                ValueType::SymFloat => self.sym_scalar(n, DType::F64)?.map(Val::T),
                ValueType::SymBool => self.sym_scalar(n, DType::Bool)?.map(Val::T),
                _ => None,
            };
            let val = match val {
                Some(v) => v,
                None => {
                    return Err(n.error(format!(
                        "the compiler does not support {} producing a {} yet",
                        n.op,
                        crate::ir::print::type_text(g.ty(v))
                    )))
                }
            };
            self.vals[v.index()] = Some(val);
            return Ok(());
        }
        let lowered = self.lower_node(n)?;
        let outs: Vec<Option<Tv>> = match lowered {
            Lowered::One(t) => vec![Some(t)],
            Lowered::Many(ts) => ts,
            Lowered::Fallback => return self.fallback(n, index),
        };
        for (i, &v) in n.outputs.iter().enumerate() {
            let val = match outs.get(i).cloned().flatten() {
                Some(mut t) => {
                    if let TvKind::Lazy(..) = t.kind {
                        let mut o = (*t.origins).clone();
                        o.push(origin(n));
                        t.origins = Rc::new(o);
                    }
                    let many = self.uses[v.index()] > 1;
                    let must = t.cost() > MAX_FUSED_COST
                        || (many && (t.cost() >= RECOMPUTE_COST || has_index(&t)));
                    if matches!(t.kind, TvKind::Lazy(..)) && must {
                        let view = self.realize(&t);
                        t.kind = TvKind::View(view);
                        t.origins = Rc::new(Vec::new());
                    }
                    Val::T(t)
                }
                None if self.uses[v.index()] == 0 => Val::Opaque("is never read".into()),
                None => return self.fallback(n, index),
            };
            self.vals[v.index()] = Some(val);
        }
        Ok(())
    }

    /// A node run by its reference kernel.
    fn fallback(&mut self, n: &Node, index: usize) -> Result<()> {
        // Control flow runs in the interpreter, bodies included; other
        // higher-order ops are inlined or removed by the export passes.
        let control_flow = matches!(
            n.op,
            Op::Hop(Hop::Cond | Hop::WhileLoop | Hop::Map | Hop::Scan)
        );
        if matches!(n.op, Op::Hop(_)) && !control_flow {
            return Err(n.error(format!(
                "the compiler does not support the higher-order op {} yet",
                n.op
            )));
        }
        let g = self.g;
        let mut values = Vec::new();
        let mut inputs = Vec::new();
        let mut syms = Vec::new();
        for v in n.inputs() {
            if values.contains(&v) || syms.iter().any(|(s, _)| *s == v) {
                continue;
            }
            match self.val(v)? {
                Val::T(t) => {
                    let view = self.realize_any(&t);
                    values.push(v);
                    inputs.push(view);
                }
                Val::Sym(e) => syms.push((v, e)),
                Val::Opaque(why) => {
                    return Err(n.error(format!("argument %{} {why}", g.name(v))));
                }
            }
        }
        let mut outputs = Vec::new();
        for &v in &n.outputs {
            let tt = match g.ty(v) {
                ValueType::Tensor(t) => t.clone(),
                other => {
                    return Err(n.error(format!(
                        "the compiler does not support {} with a {} output yet",
                        n.op,
                        crate::ir::print::type_text(other)
                    )))
                }
            };
            let view = self.temp(v, tt.dtype, &tt.shape);
            outputs.push(view.clone());
            self.vals[v.index()] = Some(Val::T(stored(tt.dtype, tt.shape.clone(), view)));
        }
        self.push(
            n,
            KernelKind::Fallback {
                node: index,
                values,
                inputs,
                syms,
                outputs,
            },
        );
        Ok(())
    }

    /// The value of a node producing a symbolic scalar, when the compiler
    /// can express it.
    fn sym_node(&mut self, n: &Node) -> Result<Option<SymExpr>> {
        let (a, ov) = match &n.op {
            Op::Aten(a, ov) => (a, ov),
            Op::Builtin(b) => return self.sym_builtin(n, *b),
            _ => return Ok(None),
        };
        if *a == Aten::SymSize && ov == "int" {
            let t = self.tensor_arg(n, "self")?;
            let d = self.int_arg(n, "dim")?;
            let d = wrap(n, d, t.shape.len())?;
            return Ok(Some(t.shape[d].clone()));
        }
        if *a == Aten::SymNumel && ov == "default" {
            let t = self.tensor_arg(n, "self")?;
            return Ok(Some(SymExpr::mul(t.shape.clone())));
        }
        Ok(None)
    }

    /// Integer arithmetic of Python builtins on symbolic ints, as a symbolic
    /// expression (evaluated from the bound sizes at each call).
    fn sym_builtin(&self, n: &Node, b: Builtin) -> Result<Option<SymExpr>> {
        let mut xs = Vec::new();
        for a in &n.args {
            match &a.value {
                Arg::Int(i) => xs.push(SymExpr::Int(*i)),
                Arg::Bool(b) => xs.push(SymExpr::Int(i64::from(*b))),
                Arg::Value(v) => match self.val(*v)? {
                    Val::Sym(e) => xs.push(e),
                    _ => return Ok(None),
                },
                _ => return Ok(None),
            }
        }
        let two = |f: fn(SymExpr, SymExpr) -> SymExpr| match xs.as_slice() {
            [x, y] => Some(f(x.clone(), y.clone())),
            _ => None,
        };
        Ok(match b {
            Builtin::Add => two(|x, y| SymExpr::add(vec![x, y])),
            Builtin::Sub => two(|x, y| SymExpr::add(vec![x, SymExpr::negate(y)])),
            Builtin::Mul => two(|x, y| SymExpr::mul(vec![x, y])),
            Builtin::FloorDiv => two(SymExpr::floor_div),
            Builtin::Mod => two(SymExpr::python_mod),
            Builtin::SymMax => two(|x, y| SymExpr::max(vec![x, y])),
            Builtin::SymMin => two(|x, y| SymExpr::min(vec![x, y])),
            Builtin::Neg => match xs.as_slice() {
                [x] => Some(SymExpr::negate(x.clone())),
                _ => None,
            },
            Builtin::SymInt => match xs.as_slice() {
                [x] => Some(x.clone()),
                _ => None,
            },
            _ => None,
        })
    }

    /// A `sym_float` or `sym_bool` value: a 0-d tensor of `dtype` (f64 or
    /// bool) computed from symbolic ints, constants and earlier such values.
    fn sym_scalar(&self, n: &Node, dtype: DType) -> Result<Option<Tv>> {
        let Op::Builtin(b) = n.op else {
            return Ok(None);
        };
        // The operands, and whether each is an integer.
        let mut xs: Vec<(E, bool)> = Vec::new();
        let mut origins = Vec::new();
        for a in &n.args {
            xs.push(match &a.value {
                Arg::Int(i) => (eb::konst_int(*i, DType::I64), true),
                Arg::Float(f) => (eb::konst(*f, DType::F64), false),
                Arg::Bool(v) => (eb::konst_int(i64::from(*v), DType::Bool), true),
                Arg::Value(v) => match self.val(*v)? {
                    Val::Sym(e) => (eb::size(&e), true),
                    Val::T(t) if t.shape.is_empty() => {
                        origins.push(t.origins.clone());
                        let body = self.broadcast(&t, &[], n)?;
                        (body(&[]), !t.dtype.is_float())
                    }
                    _ => return Ok(None),
                },
                _ => return Ok(None),
            });
        }
        let all_int = xs.iter().all(|x| x.1);
        // Compare and compute exactly: in i64 when every operand is an int.
        let work = if all_int && dtype == DType::Bool {
            DType::I64
        } else {
            DType::F64
        };
        let v: Vec<E> = xs.iter().map(|(e, _)| eb::cast(work, e.clone())).collect();
        let truth = |e: &E| eb::cmp(CmpOp::Ne, e.clone(), eb::konst_int(0, work));
        let e = match (b, v.as_slice()) {
            (Builtin::SymFloat, [x]) => x.clone(),
            (Builtin::Add, [x, y]) => eb::bin(BinOp::Add, x.clone(), y.clone()),
            (Builtin::Sub, [x, y]) => eb::bin(BinOp::Sub, x.clone(), y.clone()),
            (Builtin::Mul, [x, y]) => eb::bin(BinOp::Mul, x.clone(), y.clone()),
            (Builtin::TrueDiv, [x, y]) => eb::bin(BinOp::Div, x.clone(), y.clone()),
            (Builtin::Pow, [x, y]) => eb::bin(BinOp::Pow, x.clone(), y.clone()),
            (Builtin::SymMax, [x, y]) => eb::bin(BinOp::Max, x.clone(), y.clone()),
            (Builtin::SymMin, [x, y]) => eb::bin(BinOp::Min, x.clone(), y.clone()),
            (Builtin::Neg, [x]) => eb::un(UnOp::Neg, x.clone()),
            (Builtin::SymSqrt, [x]) => eb::un(UnOp::Sqrt, x.clone()),
            (Builtin::Eq, [x, y]) => eb::cmp(CmpOp::Eq, x.clone(), y.clone()),
            (Builtin::Ne, [x, y]) => eb::cmp(CmpOp::Ne, x.clone(), y.clone()),
            (Builtin::Lt, [x, y]) => eb::cmp(CmpOp::Lt, x.clone(), y.clone()),
            (Builtin::Le, [x, y]) => eb::cmp(CmpOp::Le, x.clone(), y.clone()),
            (Builtin::Gt, [x, y]) => eb::cmp(CmpOp::Gt, x.clone(), y.clone()),
            (Builtin::Ge, [x, y]) => eb::cmp(CmpOp::Ge, x.clone(), y.clone()),
            (Builtin::And, [x, y]) => eb::select(truth(x), truth(y), eb::konst_int(0, DType::Bool)),
            (Builtin::Or, [x, y]) => eb::select(truth(x), eb::konst_int(1, DType::Bool), truth(y)),
            (Builtin::Not | Builtin::SymNot, [x]) => {
                eb::cmp(CmpOp::Eq, x.clone(), eb::konst_int(0, work))
            }
            _ => return Ok(None),
        };
        let parts: Vec<&Rc<Vec<Origin>>> = origins.iter().collect();
        let body: Body = Rc::new(move |_: &[E]| eb::cast(dtype, e.clone()));
        Ok(Some(self.lazy(dtype, Vec::new(), &parts, 1, body)))
    }

    // ---- argument access ----

    fn tensor_arg(&self, n: &Node, name: &str) -> Result<Tv> {
        match n.arg(name) {
            Some(Arg::Value(v)) => match self.val(*v)? {
                Val::T(t) => Ok(t),
                Val::Sym(_) => Err(n.error(format!("argument {name} is a scalar, not a tensor"))),
                Val::Opaque(why) => Err(n.error(format!("argument {name} {why}"))),
            },
            _ => Err(n.error(format!("argument {name} is not a tensor"))),
        }
    }

    fn opt_tensor_arg(&self, n: &Node, name: &str) -> Result<Option<Tv>> {
        match n.arg(name) {
            None | Some(Arg::None) => Ok(None),
            _ => self.tensor_arg(n, name).map(Some),
        }
    }

    fn int_arg(&self, n: &Node, name: &str) -> Result<i64> {
        match n.arg(name) {
            Some(Arg::Int(i)) => Ok(*i),
            Some(Arg::Bool(b)) => Ok(*b as i64),
            _ => Err(n.error(format!("argument {name} is not a constant int"))),
        }
    }

    /// Whether a reduction keeps its reduced dims. The overloads that reduce
    /// everything (`sum.default`, `var.default`) have no `keepdim`.
    fn keepdim(&self, n: &Node) -> Result<bool> {
        match n.arg("keepdim") {
            None => Ok(false),
            Some(_) => self.bool_arg(n, "keepdim"),
        }
    }

    fn bool_arg(&self, n: &Node, name: &str) -> Result<bool> {
        match n.arg(name) {
            Some(Arg::Bool(b)) => Ok(*b),
            Some(Arg::Int(i)) => Ok(*i != 0),
            _ => Err(n.error(format!("argument {name} is not a constant bool"))),
        }
    }

    fn ints_arg(&self, n: &Node, name: &str) -> Result<Vec<i64>> {
        n.arg(name)
            .and_then(Arg::as_ints)
            .ok_or_else(|| n.error(format!("argument {name} is not a list of constant ints")))
    }

    /// A symbolic int argument (constant or a `SymInt` value).
    fn sym_arg(&self, n: &Node, name: &str) -> Result<Option<SymExpr>> {
        match n.arg(name) {
            None | Some(Arg::None) => Ok(None),
            Some(Arg::Int(i)) => Ok(Some(SymExpr::Int(*i))),
            Some(Arg::Value(v)) => match self.val(*v)? {
                Val::Sym(e) => Ok(Some(e)),
                _ => Err(n.error(format!("argument {name} is not an int"))),
            },
            _ => Err(n.error(format!("argument {name} is not an int"))),
        }
    }

    /// A scalar argument (a Python number or a symbolic scalar) as an
    /// expression of `dtype`.
    fn scalar_expr(&self, n: &Node, name: &str, dtype: DType) -> Result<Option<E>> {
        Ok(match n.arg(name) {
            None | Some(Arg::None) => None,
            Some(Arg::Int(i)) => Some(eb::konst_int(*i, dtype)),
            Some(Arg::Float(f)) => Some(eb::konst(*f, dtype)),
            Some(Arg::Bool(b)) => Some(eb::konst_int(*b as i64, dtype)),
            Some(Arg::Value(v)) => match self.val(*v)? {
                Val::Sym(e) => Some(eb::cast(dtype, eb::size(&e))),
                _ => return Ok(None),
            },
            _ => None,
        })
    }

    /// The `alpha` of `add`, `sub` and `rsub`; `None` when it is 1.
    fn alpha(&self, n: &Node, dtype: DType) -> Result<Option<E>> {
        match n.arg("alpha") {
            Some(Arg::Int(1)) => Ok(None),
            Some(Arg::Float(f)) if *f == 1.0 => Ok(None),
            _ => self.scalar_expr(n, "alpha", dtype),
        }
    }

    fn promote_operand(&self, n: &Node, name: &str) -> Result<Option<PromoteOperand>> {
        Ok(match n.arg(name) {
            Some(Arg::Int(_)) => Some(PromoteOperand::IntScalar),
            Some(Arg::Float(_)) => Some(PromoteOperand::FloatScalar),
            Some(Arg::Bool(_)) => Some(PromoteOperand::BoolScalar),
            // Symbolic scalars are Python numbers to type promotion, even
            // where they are held as 0-d tensors.
            Some(Arg::Value(v)) if *self.g.ty(*v) == ValueType::SymFloat => {
                Some(PromoteOperand::FloatScalar)
            }
            Some(Arg::Value(v)) if *self.g.ty(*v) == ValueType::SymBool => {
                Some(PromoteOperand::BoolScalar)
            }
            Some(Arg::Value(v)) => match self.val(*v)? {
                Val::T(t) if t.shape.is_empty() => Some(PromoteOperand::ZeroDim(t.dtype)),
                Val::T(t) => Some(PromoteOperand::Tensor(t.dtype)),
                Val::Sym(_) => Some(PromoteOperand::IntScalar),
                Val::Opaque(_) => None,
            },
            _ => None,
        })
    }

    /// The output type of a node's first output.
    fn out_type(&self, n: &Node) -> Result<(DType, Vec<SymExpr>)> {
        self.out_type_of(n, 0)
    }

    fn out_type_of(&self, n: &Node, i: usize) -> Result<(DType, Vec<SymExpr>)> {
        let v = n
            .outputs
            .get(i)
            .ok_or_else(|| n.error(format!("has no output {i}")))?;
        match self.g.ty(*v) {
            ValueType::Tensor(t) => Ok((t.dtype, t.shape.clone())),
            _ => Err(n.error(format!(
                "output %{} has no known dtype and shape",
                self.g.name(*v)
            ))),
        }
    }

    /// An operand as a function of the output index, broadcast to `shape`
    /// and cast to `dtype`.
    fn operand(
        &self,
        n: &Node,
        name: &str,
        dtype: DType,
        shape: &[SymExpr],
    ) -> Result<Option<Operand>> {
        if let Some(Arg::Value(v)) = n.arg(name) {
            if let Val::T(t) = self.val(*v)? {
                let b = self.broadcast(&t, shape, n)?;
                let cost = t.cost();
                let origins = t.origins.clone();
                let body: Body = Rc::new(move |idx: &[E]| eb::cast(dtype, b(idx)));
                return Ok(Some((body, origins, cost)));
            }
        }
        Ok(self.scalar_expr(n, name, dtype)?.map(|e| {
            let body: Body = Rc::new(move |_: &[E]| e.clone());
            (body, Rc::new(Vec::new()), 0)
        }))
    }

    fn lazy(
        &self,
        dtype: DType,
        shape: Vec<SymExpr>,
        parts: &[&Rc<Vec<Origin>>],
        cost: usize,
        f: Body,
    ) -> Tv {
        let mut origins = Vec::new();
        for p in parts {
            for o in p.iter() {
                if !origins.contains(o) {
                    origins.push(o.clone());
                }
            }
        }
        Tv {
            dtype,
            shape,
            kind: TvKind::Lazy(f, cost),
            origins: Rc::new(origins),
        }
    }

    /// `out = f(operands)` elementwise, operands broadcast to the output's
    /// shape and cast to `compute` first; the result is cast to the output
    /// dtype.
    fn map(
        &self,
        n: &Node,
        names: &[&str],
        compute: DType,
        f: impl Fn(&[E]) -> E + 'static,
    ) -> Result<Lowered> {
        let (dtype, shape) = self.out_type(n)?;
        let mut bodies = Vec::new();
        let mut origins = Vec::new();
        let mut cost = 1;
        for name in names {
            match self.operand(n, name, compute, &shape)? {
                Some((b, o, c)) => {
                    bodies.push(b);
                    origins.push(o);
                    cost += c;
                }
                None => return Ok(Lowered::Fallback),
            }
        }
        let parts: Vec<&Rc<Vec<Origin>>> = origins.iter().collect();
        let body: Body = Rc::new(move |idx: &[E]| {
            let xs: Vec<E> = bodies.iter().map(|b| b(idx)).collect();
            eb::cast(dtype, f(&xs))
        });
        Ok(Lowered::One(self.lazy(dtype, shape, &parts, cost, body)))
    }

    /// The dtype torch computes a binary op of these operands in.
    fn promoted(&self, n: &Node, names: &[&str]) -> Result<Option<DType>> {
        let mut ops = Vec::new();
        for name in names {
            match self.promote_operand(n, name)? {
                Some(o) => ops.push(o),
                None => return Ok(None),
            }
        }
        Ok(result_type(&ops))
    }

    fn lower_node(&mut self, n: &Node) -> Result<Lowered> {
        match &n.op {
            Op::Unsupported(t) => return Err(n.error(crate::custom::unsupported_message(t))),
            // A registered custom op runs its kernel from compiled code.
            Op::Custom(t) if crate::custom::lookup(t).is_some() => return Ok(Lowered::Fallback),
            Op::Custom(t) => return Err(n.error(crate::custom::unsupported_message(t))),
            _ => {}
        }
        let Op::Aten(a, ov) = &n.op else {
            return Ok(Lowered::Fallback);
        };
        let ov = ov.as_str();
        use Aten::*;
        let (out_dtype, out_shape) = match self.out_type(n) {
            Ok(t) => t,
            Err(_) => return Ok(Lowered::Fallback),
        };
        // Elementwise math is computed in f32 for half types, as torch does.
        let opmath = |d: DType| match d {
            DType::F16 | DType::BF16 => DType::F32,
            d => d,
        };
        let fc = opmath(out_dtype);
        let un = |op: UnOp| move |x: &[E]| eb::un(op, x[0].clone());
        let bin = |op: BinOp| move |x: &[E]| eb::bin(op, x[0].clone(), x[1].clone());
        let r = match (a, ov) {
            // ---- elementwise ----
            (Add | Sub, "Tensor" | "Scalar") => {
                let alpha = self.alpha(n, fc)?;
                let op = if *a == Add { BinOp::Add } else { BinOp::Sub };
                self.map(n, &["self", "other"], fc, move |x| {
                    let y = match &alpha {
                        Some(al) => eb::bin(BinOp::Mul, al.clone(), x[1].clone()),
                        None => x[1].clone(),
                    };
                    eb::bin(op, x[0].clone(), y)
                })?
            }
            (Rsub, "Tensor" | "Scalar") => {
                let alpha = self.alpha(n, fc)?;
                self.map(n, &["self", "other"], fc, move |x| {
                    let y = match &alpha {
                        Some(al) => eb::bin(BinOp::Mul, al.clone(), x[0].clone()),
                        None => x[0].clone(),
                    };
                    eb::bin(BinOp::Sub, x[1].clone(), y)
                })?
            }
            (Mul, "Tensor" | "Scalar") => self.map(n, &["self", "other"], fc, bin(BinOp::Mul))?,
            (Div, "Tensor" | "Scalar") => self.map(n, &["self", "other"], fc, bin(BinOp::Div))?,
            (Div, "Tensor_mode" | "Scalar_mode") => {
                let mode = match n.arg("rounding_mode") {
                    Some(Arg::Str(s)) => s.clone(),
                    _ => String::new(),
                };
                let float = fc.is_float();
                match mode.as_str() {
                    "trunc" if float => self.map(n, &["self", "other"], fc, |x| {
                        eb::un(UnOp::Trunc, eb::bin(BinOp::Div, x[0].clone(), x[1].clone()))
                    })?,
                    "floor" => self.map(n, &["self", "other"], fc, bin(BinOp::FloorDiv))?,
                    "" => self.map(n, &["self", "other"], fc, bin(BinOp::Div))?,
                    _ => Lowered::Fallback,
                }
            }
            (Remainder, "Tensor" | "Scalar") => {
                self.map(n, &["self", "other"], fc, bin(BinOp::Rem))?
            }
            (Maximum, "default") => self.map(n, &["self", "other"], fc, bin(BinOp::Max))?,
            (Minimum, "default") => self.map(n, &["self", "other"], fc, bin(BinOp::Min))?,
            (Atan2, "default") => self.map(n, &["self", "other"], fc, bin(BinOp::Atan2))?,
            (BitwiseAnd | LogicalAnd | DunderAnd, _) if !out_dtype.is_float() => {
                let c = if *a == LogicalAnd { DType::Bool } else { fc };
                self.map(n, &["self", "other"], c, bin(BinOp::BitAnd))?
            }
            (BitwiseOr | LogicalOr | DunderOr, _) if !out_dtype.is_float() => {
                let c = if *a == LogicalOr { DType::Bool } else { fc };
                self.map(n, &["self", "other"], c, bin(BinOp::BitOr))?
            }
            (BitwiseXor | LogicalXor | DunderXor, _) if !out_dtype.is_float() => {
                let c = if *a == LogicalXor { DType::Bool } else { fc };
                self.map(n, &["self", "other"], c, bin(BinOp::BitXor))?
            }
            (BitwiseNot, "default") => self.map(n, &["self"], fc, un(UnOp::Not))?,
            (LogicalNot, "default") => self.map(n, &["self"], DType::Bool, un(UnOp::Not))?,
            (Eq | Ne | Lt | Le | Gt | Ge, "Tensor" | "Scalar") => {
                let Some(c) = self.promoted(n, &["self", "other"])? else {
                    return Ok(Lowered::Fallback);
                };
                let op = match a {
                    Eq => CmpOp::Eq,
                    Ne => CmpOp::Ne,
                    Lt => CmpOp::Lt,
                    Le => CmpOp::Le,
                    Gt => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                self.map(n, &["self", "other"], opmath(c), move |x| {
                    eb::cmp(op, x[0].clone(), x[1].clone())
                })?
            }
            (Isnan, "default") => {
                let t = self.tensor_arg(n, "self")?;
                self.map(n, &["self"], opmath(t.dtype), un(UnOp::IsNan))?
            }
            (Where, "self" | "ScalarSelf" | "ScalarOther" | "Scalar") => {
                self.select(n, ["condition", "self", "other"], out_dtype, fc, &out_shape)?
            }
            // masked_fill(self, mask, value) = where(mask, value, self).
            (MaskedFill, "Scalar" | "Tensor") => {
                self.select(n, ["mask", "value", "self"], out_dtype, fc, &out_shape)?
            }
            (Neg, "default") => self.map(n, &["self"], fc, un(UnOp::Neg))?,
            (Abs, "default") => self.map(n, &["self"], fc, un(UnOp::Abs))?,
            (Sign, "default") => self.map(n, &["self"], fc, un(UnOp::Sign))?,
            (Reciprocal, "default") => self.map(n, &["self"], fc, un(UnOp::Reciprocal))?,
            (
                Sqrt | Rsqrt | Exp | Expm1 | Log | Log1p | Log2 | Tanh | Sigmoid | Erf | Sin | Cos,
                "default",
            ) if out_dtype.is_float() => {
                let op = match a {
                    Sqrt => UnOp::Sqrt,
                    Rsqrt => UnOp::Rsqrt,
                    Exp => UnOp::Exp,
                    Expm1 => UnOp::Expm1,
                    Log => UnOp::Log,
                    Log1p => UnOp::Log1p,
                    Log2 => UnOp::Log2,
                    Tanh => UnOp::Tanh,
                    Sigmoid => UnOp::Sigmoid,
                    Erf => UnOp::Erf,
                    Sin => UnOp::Sin,
                    _ => UnOp::Cos,
                };
                self.map(n, &["self"], fc, un(op))?
            }
            (Floor | Ceil | Round | Trunc, "default") => {
                if !out_dtype.is_float() {
                    self.map(n, &["self"], fc, |x| x[0].clone())?
                } else {
                    let op = match a {
                        Floor => UnOp::Floor,
                        Ceil => UnOp::Ceil,
                        Round => UnOp::Round,
                        _ => UnOp::Trunc,
                    };
                    self.map(n, &["self"], fc, un(op))?
                }
            }
            (Relu, "default") => match self.fuse_conv_act(n, Act::Relu)? {
                Some(l) => l,
                None => self.map(n, &["self"], fc, un(UnOp::Relu))?,
            },
            (Silu, "default") => self.map(n, &["self"], fc, |x| {
                eb::bin(
                    BinOp::Mul,
                    x[0].clone(),
                    eb::un(UnOp::Sigmoid, x[0].clone()),
                )
            })?,
            (Gelu, "default") => {
                let tanh = matches!(n.arg("approximate"), Some(Arg::Str(s)) if s == "tanh");
                self.map(n, &["self"], fc, move |x| gelu(&x[0], tanh, fc))?
            }
            (Hardtanh, "default") => {
                let bound = |name: &str, d: f64| match n.arg(name) {
                    None | Some(Arg::None) => Some(d as f32),
                    Some(Arg::Float(f)) => Some(*f as f32),
                    Some(Arg::Int(i)) => Some(*i as f32),
                    _ => None,
                };
                if let (Some(l), Some(h)) = (bound("min_val", -1.0), bound("max_val", 1.0)) {
                    if l <= h {
                        if let Some(r) = self.fuse_conv_act(n, Act::Clamp(l, h))? {
                            return Ok(r);
                        }
                    }
                }
                let lo = self
                    .scalar_expr(n, "min_val", fc)?
                    .unwrap_or(eb::konst(-1.0, fc));
                let hi = self
                    .scalar_expr(n, "max_val", fc)?
                    .unwrap_or(eb::konst(1.0, fc));
                self.map(n, &["self"], fc, move |x| {
                    clamp(&x[0], Some(&lo), Some(&hi))
                })?
            }
            (Clamp | ClampMin | ClampMax, "Tensor") => {
                let has = |k: &str| matches!(n.arg(k), Some(Arg::Value(_)));
                let (lo, hi) = (has("min"), has("max"));
                let mut names = vec!["self"];
                if lo {
                    names.push("min");
                }
                if hi {
                    names.push("max");
                }
                self.map(n, &names, fc, move |x| {
                    let l = lo.then(|| &x[1]);
                    let h = hi.then(|| &x[if lo { 2 } else { 1 }]);
                    clamp(&x[0], l, h)
                })?
            }
            (Clamp | Clip, "default") | (ClampMin, "default") | (ClampMax, "default") => {
                let lo = if *a == ClampMax {
                    None
                } else {
                    self.scalar_expr(n, "min", fc)?
                };
                let hi = if *a == ClampMin {
                    None
                } else {
                    self.scalar_expr(n, "max", fc)?
                };
                self.map(n, &["self"], fc, move |x| {
                    clamp(&x[0], lo.as_ref(), hi.as_ref())
                })?
            }
            (Hardswish | Hardsigmoid, "default") => {
                let swish = *a == Hardswish;
                self.map(n, &["self"], fc, move |x| {
                    let t = eb::bin(BinOp::Add, x[0].clone(), eb::konst(3.0, fc));
                    let t = clamp(&t, Some(&eb::konst(0.0, fc)), Some(&eb::konst(6.0, fc)));
                    let t = eb::bin(BinOp::Div, t, eb::konst(6.0, fc));
                    if swish {
                        eb::bin(BinOp::Mul, x[0].clone(), t)
                    } else {
                        t
                    }
                })?
            }
            (LeakyRelu, "default") => {
                let slope = self
                    .scalar_expr(n, "negative_slope", fc)?
                    .unwrap_or(eb::konst(0.01, fc));
                self.map(n, &["self"], fc, move |x| {
                    let z = eb::konst(0.0, fc);
                    let c = eb::cmp(CmpOp::Gt, x[0].clone(), z);
                    eb::select(
                        c,
                        x[0].clone(),
                        eb::bin(BinOp::Mul, x[0].clone(), slope.clone()),
                    )
                })?
            }
            (Pow, "Tensor_Scalar") => {
                let e = match n.arg("exponent") {
                    Some(Arg::Int(i)) => Some(*i as f64),
                    Some(Arg::Float(f)) => Some(*f),
                    _ => None,
                };
                match e {
                    Some(e) => self.map(n, &["self"], fc, move |x| pow_const(&x[0], e, fc))?,
                    None => Lowered::Fallback,
                }
            }
            (Pow, "Tensor_Tensor") if out_dtype.is_float() => {
                self.map(n, &["self", "exponent"], fc, bin(BinOp::Pow))?
            }
            (Tan, "default") if out_dtype.is_float() => {
                self.map(n, &["self"], fc, un(UnOp::Tan))?
            }
            (Frac, "default") if out_dtype.is_float() => self.map(n, &["self"], fc, |x| {
                eb::bin(BinOp::Sub, x[0].clone(), eb::un(UnOp::Trunc, x[0].clone()))
            })?,
            // torch's fmod kernel reads a number divisor in the tensor's
            // dtype (rounded for half types), unlike its floor division.
            (Fmod, "Tensor") => self.map(n, &["self", "other"], fc, bin(BinOp::Fmod))?,
            (Fmod, "Scalar") => {
                let Some(y) = float_arg(n, "other") else {
                    return Ok(Lowered::Fallback);
                };
                let y = if fc != out_dtype && out_dtype.is_float() {
                    crate::tensor::Tensor::scalar_f64(y, out_dtype).to_f64_vec()[0]
                } else {
                    y
                };
                let y = eb::konst(y, fc);
                self.map(n, &["self"], fc, move |x| {
                    eb::bin(BinOp::Fmod, x[0].clone(), y.clone())
                })?
            }
            (FloorDivide, "default" | "Scalar") if out_dtype != DType::Bool => {
                self.map(n, &["self", "other"], fc, bin(BinOp::FloorDiv))?
            }
            // hypot(x, y) = sqrt(x * x + y * y).
            (Hypot, "default") if out_dtype.is_float() => {
                self.map(n, &["self", "other"], fc, |x| {
                    let sq = |v: &E| eb::bin(BinOp::Mul, v.clone(), v.clone());
                    eb::un(UnOp::Sqrt, eb::bin(BinOp::Add, sq(&x[0]), sq(&x[1])))
                })?
            }
            (Elu | Celu | Selu, "default") if out_dtype.is_float() => {
                let (alpha, scale, input_scale) = match a {
                    Selu => (1.673_263_242_354_377_3, 1.050_700_987_355_480_5, 1.0),
                    Celu => {
                        let Some(al) = float_arg(n, "alpha") else {
                            return Ok(Lowered::Fallback);
                        };
                        (al, 1.0, 1.0 / al)
                    }
                    _ => {
                        let (Some(al), Some(sc), Some(is)) = (
                            float_arg(n, "alpha"),
                            float_arg(n, "scale"),
                            float_arg(n, "input_scale"),
                        ) else {
                            return Ok(Lowered::Fallback);
                        };
                        (al, sc, is)
                    }
                };
                self.map(n, &["self"], fc, move |x| {
                    let scaled = |v: E, k: f64| {
                        if k == 1.0 {
                            v
                        } else {
                            eb::bin(BinOp::Mul, v, eb::konst(k, fc))
                        }
                    };
                    let pos = scaled(x[0].clone(), scale);
                    let neg = scaled(
                        eb::un(UnOp::Expm1, scaled(x[0].clone(), input_scale)),
                        scale * alpha,
                    );
                    let c = eb::cmp(CmpOp::Gt, x[0].clone(), eb::konst(0.0, fc));
                    eb::select(c, pos, neg)
                })?
            }
            // softplus(x) = x where x * beta > threshold, else
            // log1p(exp(x * beta)) / beta.
            (Softplus, "default") if out_dtype.is_float() => {
                let (Some(beta), Some(threshold)) =
                    (float_arg(n, "beta"), float_arg(n, "threshold"))
                else {
                    return Ok(Lowered::Fallback);
                };
                self.map(n, &["self"], fc, move |x| {
                    let xb = eb::bin(BinOp::Mul, x[0].clone(), eb::konst(beta, fc));
                    let soft = eb::un(UnOp::Log1p, eb::un(UnOp::Exp, xb.clone()));
                    let soft = eb::bin(BinOp::Div, soft, eb::konst(beta, fc));
                    let c = eb::cmp(CmpOp::Gt, xb, eb::konst(threshold, fc));
                    eb::select(c, x[0].clone(), soft)
                })?
            }
            // log_sigmoid(x) = min(x, 0) - log1p(exp(-|x|)).
            (LogSigmoid, "default") if out_dtype.is_float() => {
                self.map(n, &["self"], fc, move |x| {
                    let m = eb::bin(BinOp::Min, x[0].clone(), eb::konst(0.0, fc));
                    let e = eb::un(UnOp::Neg, eb::un(UnOp::Abs, x[0].clone()));
                    let l = eb::un(UnOp::Log1p, eb::un(UnOp::Exp, e));
                    eb::bin(BinOp::Sub, m, l)
                })?
            }
            (Hardshrink, "default") => {
                let Some(l) = self.scalar_expr(n, "lambd", fc)? else {
                    return Ok(Lowered::Fallback);
                };
                self.map(n, &["self"], fc, move |x| {
                    let keep = eb::cmp(CmpOp::Gt, eb::un(UnOp::Abs, x[0].clone()), l.clone());
                    eb::select(keep, x[0].clone(), eb::konst(0.0, fc))
                })?
            }
            // lerp(self, end, w) = self + w * (end - self) for |w| < 0.5,
            // else end - (end - self) * (1 - w), as aten computes it.
            (Lerp, "Scalar" | "Tensor") if out_dtype.is_float() => {
                self.map(n, &["self", "end", "weight"], fc, move |x| {
                    let (s, e, w) = (x[0].clone(), x[1].clone(), x[2].clone());
                    let d = eb::bin(BinOp::Sub, e.clone(), s.clone());
                    let lo = eb::bin(BinOp::Add, s, eb::bin(BinOp::Mul, w.clone(), d.clone()));
                    let omw = eb::bin(BinOp::Sub, eb::konst(1.0, fc), w.clone());
                    let hi = eb::bin(BinOp::Sub, e, eb::bin(BinOp::Mul, d, omw));
                    let small = eb::cmp(CmpOp::Lt, eb::un(UnOp::Abs, w), eb::konst(0.5, fc));
                    eb::select(small, lo, hi)
                })?
            }
            // addcmul: self + value * t1 * t2; addcdiv: self + value * t1 / t2
            // (torch refuses integer addcdiv).
            (Addcmul | Addcdiv, "default")
                if out_dtype != DType::Bool && (*a == Addcmul || out_dtype.is_float()) =>
            {
                let Some(value) = self.scalar_expr(n, "value", fc)? else {
                    return Ok(Lowered::Fallback);
                };
                let op = if *a == Addcmul {
                    BinOp::Mul
                } else {
                    BinOp::Div
                };
                self.map(n, &["self", "tensor1", "tensor2"], fc, move |x| {
                    let p = eb::bin(op, x[1].clone(), x[2].clone());
                    eb::bin(
                        BinOp::Add,
                        x[0].clone(),
                        eb::bin(BinOp::Mul, value.clone(), p),
                    )
                })?
            }
            (Prelu | InternalPreluKernel, "default") if out_dtype.is_float() => {
                self.prelu(n, out_dtype, fc, &out_shape)?
            }
            (Glu, "default") if out_dtype.is_float() => self.glu(n, out_dtype, fc, &out_shape)?,
            (Tril | Triu, "default") => self.triangle(n, *a == Tril, out_dtype, &out_shape)?,
            (Im2col, "default") => self.im2col(n, out_dtype, &out_shape)?,
            (AsStrided, "default") => self.as_strided(n, out_dtype, &out_shape)?,
            (AsStridedScatter, "default") => self.as_strided_scatter(n, out_dtype, &out_shape)?,
            (EmbeddingBag, "default" | "padding_idx") | (InternalEmbeddingBag, "default") => {
                self.embedding_bag(n, *a, ov)?
            }
            (Outer, "default") => {
                let x = self.tensor_arg(n, "self")?;
                let y = self.tensor_arg(n, "vec2")?;
                if x.shape.len() != 1 || y.shape.len() != 1 || out_shape.len() != 2 {
                    return Ok(Lowered::Fallback);
                }
                self.require_eq(
                    n,
                    "the rows of the outer product",
                    &out_shape[0],
                    &x.shape[0],
                )?;
                self.require_eq(
                    n,
                    "the columns of the outer product",
                    &out_shape[1],
                    &y.shape[0],
                )?;
                let cost = x.cost() + y.cost() + 1;
                let (xe, ye) = (x.clone(), y.clone());
                let body: Body = Rc::new(move |idx: &[E]| {
                    let p = eb::bin(
                        BinOp::Mul,
                        eb::cast(fc, xe.at(&idx[..1])),
                        eb::cast(fc, ye.at(&idx[1..])),
                    );
                    eb::cast(out_dtype, p)
                });
                Lowered::One(self.lazy(
                    out_dtype,
                    out_shape.clone(),
                    &[&x.origins, &y.origins],
                    cost,
                    body,
                ))
            }
            (Cross, "default") | (LinalgCross, "default") if out_dtype != DType::Bool => {
                let rank = out_shape.len();
                let d = match n.arg("dim") {
                    None | Some(Arg::None) => {
                        match out_shape.iter().position(|s| *s == SymExpr::Int(3)) {
                            Some(d) => d,
                            None => return Ok(Lowered::Fallback),
                        }
                    }
                    Some(_) => wrap(n, self.int_arg(n, "dim")?, rank)?,
                };
                if out_shape.get(d) != Some(&SymExpr::Int(3)) {
                    return Ok(Lowered::Fallback);
                }
                let (Some(x), Some(y)) = (
                    self.operand(n, "self", fc, &out_shape)?,
                    self.operand(n, "other", fc, &out_shape)?,
                ) else {
                    return Ok(Lowered::Fallback);
                };
                let cost = x.2 + y.2 + 3;
                let (xb, yb) = (x.0.clone(), y.0.clone());
                let body: Body = Rc::new(move |idx: &[E]| {
                    // out[k] = x[k + 1] y[k + 2] - x[k + 2] y[k + 1], mod 3.
                    let at = |s: i64| {
                        let mut at = idx.to_vec();
                        at[d] =
                            eb::bin(BinOp::Rem, eb::add(idx[d].clone(), eb::int(s)), eb::int(3));
                        at
                    };
                    let (a1, a2) = (at(1), at(2));
                    let p = eb::bin(BinOp::Mul, xb(&a1), yb(&a2));
                    let q = eb::bin(BinOp::Mul, xb(&a2), yb(&a1));
                    eb::cast(out_dtype, eb::bin(BinOp::Sub, p, q))
                });
                Lowered::One(self.lazy(out_dtype, out_shape.clone(), &[&x.1, &y.1], cost, body))
            }
            // Outside training, dropout keeps the input and an all-true mask.
            (NativeDropout, "default") if matches!(n.arg("train"), Some(Arg::Bool(false))) => {
                let x = self.tensor_arg(n, "input")?;
                let (mdt, mshape) = self.out_type_of(n, 1)?;
                let mask = self.constant(mdt, mshape, eb::konst(1.0, mdt));
                let Lowered::One(mask) = mask else {
                    return Ok(Lowered::Fallback);
                };
                Lowered::Many(vec![Some(x), Some(mask)])
            }
            // ---- copies and casts ----
            (Clone | Alias | LiftFreshCopy | Detach | Contiguous, _)
            | (InternalToCopy, "default")
            | (To, "dtype" | "dtype_layout" | "device")
            | (TypeAs, _) => self.map(n, &["self"], out_dtype, |x| x[0].clone())?,
            // ---- creation ----
            (Full, "default") | (FullLike, "default") | (NewFull, "default") => {
                let Some(v) = self.scalar_expr(n, "fill_value", out_dtype)? else {
                    return Ok(Lowered::Fallback);
                };
                self.constant(out_dtype, out_shape.clone(), v)
            }
            // Empty tensors are zero-filled, as the interpreter fills them.
            (Zeros | ZerosLike | NewZeros | Zero | NewEmpty | EmptyLike | EmptyStrided, _)
            | (Empty, "memory_format") => {
                self.constant(out_dtype, out_shape.clone(), eb::konst(0.0, out_dtype))
            }
            (Ones | OnesLike | NewOnes, _) => {
                self.constant(out_dtype, out_shape.clone(), eb::konst(1.0, out_dtype))
            }
            (Linspace, "default") => {
                let (Some(start), Some(end)) = (float_arg(n, "start"), float_arg(n, "end")) else {
                    return Ok(Lowered::Fallback);
                };
                let Some(steps) = out_shape.first().and_then(|s| s.as_int()) else {
                    return Ok(Lowered::Fallback);
                };
                // Symmetric, as torch's kernel: the first half steps up from
                // `start`, the second down from `end`, in f64.
                let step = if steps > 1 {
                    (end - start) / (steps - 1) as f64
                } else {
                    0.0
                };
                let half = steps / 2;
                let f = DType::F64;
                let body: Body = Rc::new(move |idx: &[E]| {
                    let i = idx[0].clone();
                    let up = eb::bin(
                        BinOp::Add,
                        eb::konst(start, f),
                        eb::bin(BinOp::Mul, eb::cast(f, i.clone()), eb::konst(step, f)),
                    );
                    let back = eb::bin(BinOp::Sub, eb::int(steps - 1), i.clone());
                    let down = eb::bin(
                        BinOp::Sub,
                        eb::konst(end, f),
                        eb::bin(BinOp::Mul, eb::cast(f, back), eb::konst(step, f)),
                    );
                    let first = eb::cmp(CmpOp::Lt, i, eb::int(half));
                    eb::cast(out_dtype, eb::select(first, up, down))
                });
                Lowered::One(self.lazy(out_dtype, out_shape.clone(), &[], 3, body))
            }
            (ScalarTensor, "default") => {
                let Some(v) = self.scalar_expr(n, "s", out_dtype)? else {
                    return Ok(Lowered::Fallback);
                };
                self.constant(out_dtype, out_shape.clone(), v)
            }
            (Arange, "default" | "start" | "start_step") => {
                let acc = if out_dtype.is_float() {
                    DType::F64
                } else {
                    DType::I64
                };
                let start = self
                    .scalar_expr(n, "start", acc)?
                    .unwrap_or(eb::konst(0.0, acc));
                let step = self
                    .scalar_expr(n, "step", acc)?
                    .unwrap_or(eb::konst(1.0, acc));
                let body: Body = Rc::new(move |idx: &[E]| {
                    let i = eb::cast(acc, idx[0].clone());
                    let v = eb::bin(
                        BinOp::Add,
                        start.clone(),
                        eb::bin(BinOp::Mul, i, step.clone()),
                    );
                    eb::cast(out_dtype, v)
                });
                Lowered::One(self.lazy(out_dtype, out_shape.clone(), &[], 1, body))
            }
            // ---- views ----
            (View | Reshape | InternalUnsafeView, _) => self.reshape(n, out_shape.clone())?,
            (Squeeze, _) | (Unsqueeze, "default") => self.reshape_unit_dims(n, &out_shape)?,
            (Permute, "default") => {
                let t = self.tensor_arg(n, "self")?;
                let dims = self.ints_arg(n, "dims")?;
                let rank = t.shape.len();
                let perm = dims
                    .iter()
                    .map(|&d| wrap(n, d, rank))
                    .collect::<Result<Vec<_>>>()?;
                Lowered::One(permute(&t, &perm))
            }
            (Transpose, "int") => {
                let t = self.tensor_arg(n, "self")?;
                let rank = t.shape.len();
                let d0 = wrap(n, self.int_arg(n, "dim0")?, rank)?;
                let d1 = wrap(n, self.int_arg(n, "dim1")?, rank)?;
                let mut perm: Vec<usize> = (0..rank).collect();
                perm.swap(d0, d1);
                Lowered::One(permute(&t, &perm))
            }
            (T, "default") | (NumpyT, "default" | "a") => {
                let t = self.tensor_arg(n, "self")?;
                let perm: Vec<usize> = (0..t.shape.len()).rev().collect();
                Lowered::One(permute(&t, &perm))
            }
            // expand_as reads only the shape of `other`: the output's.
            (Expand, "default") | (ExpandAs, "default") => {
                let t = self.tensor_arg(n, "self")?;
                let b = self.broadcast(&t, &out_shape, n)?;
                let tv = match &t.kind {
                    TvKind::View(v) => Tv {
                        kind: TvKind::View(expand_view(v, &out_shape)),
                        shape: out_shape.clone(),
                        ..t.clone()
                    },
                    TvKind::Lazy(_, c) => Tv {
                        kind: TvKind::Lazy(b, *c),
                        shape: out_shape.clone(),
                        ..t.clone()
                    },
                };
                Lowered::One(tv)
            }
            (Slice, "Tensor") => {
                let t = self.tensor_arg(n, "self")?;
                let rank = t.shape.len();
                let d = wrap(n, self.int_arg(n, "dim")?, rank)?;
                let step = self.int_arg(n, "step")?;
                let start = self.slice_start(n, &t.shape[d])?;
                let Some(start) = start else {
                    return Ok(Lowered::Fallback);
                };
                if step <= 0 {
                    return Err(n.error("slice step must be positive"));
                }
                if let (Some(sz), Some(st), Some(l)) =
                    (t.shape[d].as_int(), start.as_int(), out_shape[d].as_int())
                {
                    if l > 0 && st + (l - 1) * step >= sz {
                        return Err(n.error(format!(
                            "a slice of {l} elements from {st} by {step} does not fit a dim of {sz}"
                        )));
                    }
                }
                Lowered::One(slice(&t, d, start, step, out_shape[d].clone()))
            }
            (Select, "int") => {
                let t = self.tensor_arg(n, "self")?;
                let rank = t.shape.len();
                let d = wrap(n, self.int_arg(n, "dim")?, rank)?;
                let i = match self.sym_arg(n, "index")? {
                    Some(SymExpr::Int(i)) if i < 0 => {
                        SymExpr::add(vec![t.shape[d].clone(), SymExpr::Int(i)])
                    }
                    Some(e) => e,
                    None => return Ok(Lowered::Fallback),
                };
                if let (Some(sz), Some(ix)) = (t.shape[d].as_int(), i.as_int()) {
                    if ix < 0 || ix >= sz {
                        return Err(
                            n.error(format!("index {ix} is out of range for a dim of {sz}"))
                        );
                    }
                }
                Lowered::One(select(&t, d, i))
            }
            (SplitWithSizes, "default") | (Split, "Tensor") | (Chunk, "default") => {
                let t = self.tensor_arg(n, "self")?;
                let rank = t.shape.len();
                let d = wrap(n, self.int_arg(n, "dim")?, rank)?;
                let mut start = SymExpr::Int(0);
                let mut outs = Vec::new();
                for i in 0..n.outputs.len() {
                    let (_, shape) = self.out_type_of(n, i)?;
                    outs.push(Some(slice(&t, d, start.clone(), 1, shape[d].clone())));
                    start = SymExpr::add(vec![start, shape[d].clone()]);
                }
                Lowered::Many(outs)
            }
            (Flatten, "using_ints") | (Unflatten, "int") | (ViewAs, "default") => {
                self.reshape(n, out_shape.clone())?
            }
            (Narrow, "default") => {
                let t = self.tensor_arg(n, "self")?;
                let rank = t.shape.len();
                let d = wrap(n, self.int_arg(n, "dim")?, rank)?;
                let start = match self.sym_arg(n, "start")? {
                    Some(SymExpr::Int(s)) if s < 0 => {
                        SymExpr::add(vec![t.shape[d].clone(), SymExpr::Int(s)])
                    }
                    Some(e) => e,
                    None => return Ok(Lowered::Fallback),
                };
                let Some(len) = self.sym_arg(n, "length")? else {
                    return Ok(Lowered::Fallback);
                };
                if let (Some(sz), Some(st), Some(l)) =
                    (t.shape[d].as_int(), start.as_int(), len.as_int())
                {
                    if st < 0 || l < 0 || st + l > sz {
                        return Err(n.error(format!(
                            "a narrowing of {l} elements from {st} does not fit a dim of {sz}"
                        )));
                    }
                }
                self.require_eq(n, "the narrowed length", &out_shape[d], &len)?;
                Lowered::One(slice(&t, d, start, 1, len))
            }
            (Unbind, "int") => {
                let t = self.tensor_arg(n, "self")?;
                let rank = t.shape.len();
                let d = wrap(n, self.int_arg(n, "dim")?, rank)?;
                self.require_eq(
                    n,
                    "the number of unbound tensors",
                    &t.shape[d],
                    &SymExpr::Int(n.outputs.len() as i64),
                )?;
                let outs = (0..n.outputs.len())
                    .map(|i| Some(select(&t, d, SymExpr::Int(i as i64))))
                    .collect();
                Lowered::Many(outs)
            }
            (Stack, "default") => self.stack(n, out_dtype, &out_shape)?,
            (Flip, "default") => {
                let t = self.tensor_arg(n, "self")?;
                let rank = t.shape.len();
                let dims = self.ints_arg(n, "dims")?;
                let dims = dims
                    .iter()
                    .map(|&d| wrap(n, d, rank))
                    .collect::<Result<Vec<_>>>()?;
                if out_shape != t.shape {
                    return Ok(Lowered::Fallback);
                }
                let shape = t.shape.clone();
                self.remap(&t, out_dtype, &out_shape, 0, move |idx| {
                    let mut src = idx.to_vec();
                    for &d in &dims {
                        let last = eb::add(eb::size(&shape[d]), eb::int(-1));
                        src[d] = eb::bin(BinOp::Sub, last, idx[d].clone());
                    }
                    src
                })
            }
            (Roll, "default") => self.roll(n, out_dtype, &out_shape)?,
            (Repeat, "default") => {
                let t = self.tensor_arg(n, "self")?;
                let reps = self.ints_arg(n, "repeats")?;
                let rank = t.shape.len();
                if reps.len() < rank || out_shape.len() != reps.len() {
                    return Ok(Lowered::Fallback);
                }
                let lead = reps.len() - rank;
                for d in 0..lead {
                    let want = SymExpr::Int(reps[d]);
                    self.require_eq(
                        n,
                        &format!("dim {d} of the repetition"),
                        &out_shape[d],
                        &want,
                    )?;
                }
                for (d, size) in t.shape.iter().enumerate() {
                    let want = SymExpr::mul(vec![size.clone(), SymExpr::Int(reps[lead + d])]);
                    self.require_eq(
                        n,
                        &format!("dim {} of the repetition", lead + d),
                        &out_shape[lead + d],
                        &want,
                    )?;
                }
                let shape = t.shape.clone();
                self.remap(&t, out_dtype, &out_shape, 0, move |idx| {
                    (0..shape.len())
                        .map(|d| {
                            let i = idx[lead + d].clone();
                            if shape[d] == SymExpr::Int(1) {
                                eb::int(0)
                            } else if reps[lead + d] == 1 {
                                i
                            } else {
                                eb::bin(BinOp::Rem, i, eb::size(&shape[d]))
                            }
                        })
                        .collect()
                })
            }
            (Diagonal, "default") => {
                let t = self.tensor_arg(n, "self")?;
                let rank = t.shape.len();
                let off = self.int_arg(n, "offset")?;
                let d1 = wrap(n, self.int_arg(n, "dim1")?, rank)?;
                let d2 = wrap(n, self.int_arg(n, "dim2")?, rank)?;
                if rank < 2 || d1 == d2 || out_shape.len() != rank - 1 {
                    return Ok(Lowered::Fallback);
                }
                self.diagonal(n, &t, out_dtype, &out_shape, off, d1, d2)?
            }
            (Diag, "default") => {
                let t = self.tensor_arg(n, "self")?;
                let k = self.int_arg(n, "diagonal")?;
                match (t.shape.len(), out_shape.len()) {
                    (2, 1) => self.diagonal(n, &t, out_dtype, &out_shape, k, 0, 1)?,
                    (1, 2) => {
                        let side = SymExpr::add(vec![t.shape[0].clone(), SymExpr::Int(k.abs())]);
                        for o in &out_shape {
                            self.require_eq(n, "a side of the diagonal matrix", o, &side)?;
                        }
                        // out[i, j] = x[k >= 0 ? i : j] where j - i == k, else 0.
                        let last = eb::add(eb::size(&t.shape[0]), eb::int(-1));
                        let zero = eb::konst(0.0, out_dtype);
                        let (tt, cost) = (t.clone(), t.cost() + 2);
                        let body: Body = Rc::new(move |idx: &[E]| {
                            let (i, j) = (idx[0].clone(), idx[1].clone());
                            let on = eb::cmp(
                                CmpOp::Eq,
                                eb::bin(BinOp::Sub, j.clone(), i.clone()),
                                eb::int(k),
                            );
                            let at = if k >= 0 { i } else { j };
                            let at = eb::bin(BinOp::Min, at, last.clone());
                            eb::select(on, eb::cast(out_dtype, tt.at(&[at])), zero.clone())
                        });
                        Lowered::One(self.lazy(
                            out_dtype,
                            out_shape.clone(),
                            &[&t.origins],
                            cost,
                            body,
                        ))
                    }
                    _ => Lowered::Fallback,
                }
            }
            (ReflectionPad1d | ReflectionPad2d | ReflectionPad3d, "default") => {
                let pad = self.ints_arg(n, "padding")?;
                self.edge_pad(n, &pad, "reflect", out_dtype, &out_shape)?
            }
            (ReplicationPad1d | ReplicationPad2d | ReplicationPad3d, "default") => {
                let pad = self.ints_arg(n, "padding")?;
                self.edge_pad(n, &pad, "replicate", out_dtype, &out_shape)?
            }
            (PixelShuffle | PixelUnshuffle, "default") => {
                let t = self.tensor_arg(n, "self")?;
                let shuffle = *a == PixelShuffle;
                let name = if shuffle {
                    "upscale_factor"
                } else {
                    "downscale_factor"
                };
                let r = self.int_arg(n, name)?;
                let rank = t.shape.len();
                if rank < 3 || r <= 0 || out_shape.len() != rank {
                    return Ok(Lowered::Fallback);
                }
                let (c, h, w) = (rank - 3, rank - 2, rank - 1);
                let rr = SymExpr::Int(r * r);
                let (big, small) = if shuffle {
                    (&t.shape, &out_shape)
                } else {
                    (&out_shape, &t.shape)
                };
                for (d, (a, b)) in t.shape.iter().zip(&out_shape).take(c).enumerate() {
                    self.require_eq(n, &format!("dim {d} of the shuffle"), a, b)?;
                }
                // `big` has the channels times r^2, `small` the spatial dims
                // times r.
                let want_c = SymExpr::mul(vec![small[c].clone(), rr]);
                self.require_eq(n, "the shuffled channels", &big[c], &want_c)?;
                for d in [h, w] {
                    let want = SymExpr::mul(vec![big[d].clone(), SymExpr::Int(r)]);
                    self.require_eq(n, "a shuffled spatial dim", &small[d], &want)?;
                }
                let rv = move || eb::int(r);
                self.remap(&t, out_dtype, &out_shape, 0, move |idx| {
                    let div = |a: &E| eb::bin(BinOp::FloorDiv, a.clone(), rv());
                    let rem = |a: &E| eb::bin(BinOp::Rem, a.clone(), rv());
                    let mut src = idx.to_vec();
                    if shuffle {
                        // out[c, y, x] = in[(c r + y % r) r + x % r, y / r, x / r].
                        let ch =
                            eb::mul(eb::add(eb::mul(idx[c].clone(), rv()), rem(&idx[h])), rv());
                        src[c] = eb::add(ch, rem(&idx[w]));
                        src[h] = div(&idx[h]);
                        src[w] = div(&idx[w]);
                    } else {
                        // out[(c r + i) r + j, y, x] = in[c, y r + i, x r + j].
                        let (oc, i, j) = (div(&div(&idx[c])), rem(&div(&idx[c])), rem(&idx[c]));
                        src[c] = oc;
                        src[h] = eb::add(eb::mul(idx[h].clone(), rv()), i);
                        src[w] = eb::add(eb::mul(idx[w].clone(), rv()), j);
                    }
                    src
                })
            }
            // (N, C, *) as (N, g, C / g, *), the group dims swapped.
            (ChannelShuffle, "default") => {
                let t = self.tensor_arg(n, "self")?;
                let Some(SymExpr::Int(g)) = self.sym_arg(n, "groups")? else {
                    return Ok(Lowered::Fallback);
                };
                let Some(cs) = t.shape.get(1).and_then(|c| c.as_int()) else {
                    return Ok(Lowered::Fallback);
                };
                if g <= 0 || cs % g != 0 || out_shape != t.shape {
                    return Ok(Lowered::Fallback);
                }
                let per = cs / g;
                self.remap(&t, out_dtype, &out_shape, 0, move |idx| {
                    let mut src = idx.to_vec();
                    let (a, b) = (
                        eb::bin(BinOp::FloorDiv, idx[1].clone(), eb::int(g)),
                        eb::bin(BinOp::Rem, idx[1].clone(), eb::int(g)),
                    );
                    src[1] = eb::add(eb::mul(b, eb::int(per)), a);
                    src
                })
            }
            // ---- gathers ----
            (Embedding, "default") => {
                let w = self.tensor_arg(n, "weight")?;
                let ix = self.tensor_arg(n, "indices")?;
                if w.shape.len() != 2 || out_shape.len() != ix.shape.len() + 1 {
                    return Ok(Lowered::Fallback);
                }
                for (i, (a, b)) in ix.shape.iter().zip(&out_shape).enumerate() {
                    self.require_eq(n, &format!("dim {i} of the indices"), a, b)?;
                }
                self.require_eq(
                    n,
                    "the embedding width",
                    &w.shape[1],
                    &out_shape[ix.shape.len()],
                )?;
                let rows = w.shape[0].clone();
                let r = ix.shape.len();
                let (wo, io) = (w.origins.clone(), ix.origins.clone());
                let parts = [&wo, &io];
                let cost = w.cost() + ix.cost();
                let body: Body = Rc::new(move |idx: &[E]| {
                    // Unlike indexing, embedding takes no negative ids:
                    // they map past the end, where the check fails.
                    let i = eb::cast(DType::I64, ix.at(&idx[..r]));
                    let neg = eb::cmp(CmpOp::Lt, i.clone(), eb::int(0));
                    let i = eb::select(neg, eb::size(&rows), i);
                    let i = Rc::new(Expr::Index(i, rows.clone()));
                    w.at(&[i, idx[r].clone()])
                });
                Lowered::One(self.lazy(out_dtype, out_shape.clone(), &parts, cost, body))
            }
            (Gather, "default") => {
                let t = self.tensor_arg(n, "self")?;
                let ix = self.tensor_arg(n, "index")?;
                let d = wrap(n, self.int_arg(n, "dim")?, t.shape.len())?;
                if ix.shape.len() != out_shape.len() || t.shape.len() != out_shape.len() {
                    return Ok(Lowered::Fallback);
                }
                for (i, (a, b)) in ix.shape.iter().zip(&out_shape).enumerate() {
                    self.require_eq(n, &format!("dim {i} of the index"), a, b)?;
                }
                let size = t.shape[d].clone();
                let (to, io) = (t.origins.clone(), ix.origins.clone());
                let parts = [&to, &io];
                let cost = t.cost() + ix.cost();
                let body: Body = Rc::new(move |idx: &[E]| {
                    let mut at = idx.to_vec();
                    at[d] = Rc::new(Expr::Index(eb::cast(DType::I64, ix.at(idx)), size.clone()));
                    t.at(&at)
                });
                Lowered::One(self.lazy(out_dtype, out_shape.clone(), &parts, cost, body))
            }
            (Index, "Tensor") | (InternalUnsafeIndex, "Tensor" | "Tensor_hacked_twin") => {
                self.index(n, out_dtype, out_shape.clone())?
            }
            (DiagonalScatter, "default") => self.diagonal_scatter(n, out_dtype, &out_shape)?,
            (Scatter, "src" | "value" | "reduce" | "value_reduce")
            | (ScatterAdd, "default")
            | (ScatterReduce, "two") => self.scatter_dim(n, *a, ov, out_dtype, &out_shape)?,
            (IndexPut | InternalUnsafeIndexPut, "default" | "hacked_twin") => {
                self.index_put(n, out_dtype, &out_shape)?
            }
            (IndexAdd, "default") => self.index_along(n, out_dtype, &out_shape, *a)?,
            (IndexCopy, "default") | (IndexFill, "int_Scalar" | "int_Tensor") => {
                self.index_along(n, out_dtype, &out_shape, *a)?
            }
            (Sort, "default" | "stable") | (Argsort, "default" | "stable") | (Topk, "default") => {
                self.sort(n, *a)?
            }
            (RepeatInterleave, "self_int") => {
                let t = self.tensor_arg(n, "self")?;
                let Some(SymExpr::Int(r)) = self.sym_arg(n, "repeats")? else {
                    return Ok(Lowered::Fallback);
                };
                if r <= 0 {
                    return Ok(Lowered::Fallback);
                }
                let rank = t.shape.len();
                match n.arg("dim") {
                    None | Some(Arg::None) => {
                        // The flattened input, each element `r` times.
                        let numel = SymExpr::mul(t.shape.clone());
                        let want = SymExpr::mul(vec![numel, SymExpr::Int(r)]);
                        if out_shape.len() != 1 {
                            return Ok(Lowered::Fallback);
                        }
                        self.require_eq(n, "the repeated length", &out_shape[0], &want)?;
                        let sizes = t.shape.clone();
                        let strides = dense_strides(&sizes);
                        self.remap(&t, out_dtype, &out_shape, 1, move |idx| {
                            let src = eb::bin(BinOp::FloorDiv, idx[0].clone(), eb::int(r));
                            (0..sizes.len())
                                .map(|d| {
                                    let q = eb::bin(
                                        BinOp::FloorDiv,
                                        src.clone(),
                                        eb::size(&strides[d]),
                                    );
                                    if d == 0 {
                                        q
                                    } else {
                                        eb::bin(BinOp::Rem, q, eb::size(&sizes[d]))
                                    }
                                })
                                .collect()
                        })
                    }
                    Some(_) => {
                        let d = wrap(n, self.int_arg(n, "dim")?, rank)?;
                        if out_shape.len() != rank || rank == 0 {
                            return Ok(Lowered::Fallback);
                        }
                        for (i, (o, size)) in out_shape.iter().zip(&t.shape).enumerate() {
                            let want = if i == d {
                                SymExpr::mul(vec![size.clone(), SymExpr::Int(r)])
                            } else {
                                size.clone()
                            };
                            self.require_eq(n, "a dim of the repetition", o, &want)?;
                        }
                        self.remap(&t, out_dtype, &out_shape, 1, move |idx| {
                            let mut src = idx.to_vec();
                            src[d] = eb::bin(BinOp::FloorDiv, idx[d].clone(), eb::int(r));
                            src
                        })
                    }
                }
            }
            (SliceScatter, "default") | (SelectScatter, "default") => {
                self.scatter_view(n, *a == SelectScatter, out_dtype, &out_shape)?
            }
            (Copy, "default") => self.map(n, &["src"], out_dtype, |x| x[0].clone())?,
            (Fill, "Scalar") => {
                let Some(v) = self.scalar_expr(n, "value", out_dtype)? else {
                    return Ok(Lowered::Fallback);
                };
                self.constant(out_dtype, out_shape.clone(), v)
            }
            (IndexSelect, "default") => {
                let t = self.tensor_arg(n, "self")?;
                let ix = self.tensor_arg(n, "index")?;
                let rank = t.shape.len();
                let d = wrap(n, self.int_arg(n, "dim")?, rank)?;
                if ix.shape.len() > 1 || out_shape.len() != rank || rank == 0 {
                    return Ok(Lowered::Fallback);
                }
                for i in (0..rank).filter(|&i| i != d) {
                    self.require_eq(
                        n,
                        &format!("dim {i} of the selection"),
                        &out_shape[i],
                        &t.shape[i],
                    )?;
                }
                if let Some(len) = ix.shape.first() {
                    self.require_eq(n, "the number of indices", &out_shape[d], len)?;
                }
                let size = t.shape[d].clone();
                let one = ix.shape.is_empty();
                let (to, io) = (t.origins.clone(), ix.origins.clone());
                let cost = t.cost() + ix.cost();
                let body: Body = Rc::new(move |idx: &[E]| {
                    let i = if one {
                        ix.at(&[])
                    } else {
                        ix.at(&[idx[d].clone()])
                    };
                    let mut at = idx.to_vec();
                    at[d] = Rc::new(Expr::Index(eb::cast(DType::I64, i), size.clone()));
                    t.at(&at)
                });
                Lowered::One(self.lazy(out_dtype, out_shape.clone(), &[&to, &io], cost, body))
            }
            (ConstantPadNd, "default") | (Pad, "default") => {
                let constant = match n.arg("mode") {
                    None | Some(Arg::None) => true,
                    Some(Arg::Str(m)) => m == "constant",
                    _ => false,
                };
                if !constant {
                    let (Some(Arg::Str(mode)), Ok(pad)) = (n.arg("mode"), self.ints_arg(n, "pad"))
                    else {
                        return Ok(Lowered::Fallback);
                    };
                    return self.edge_pad(n, &pad, mode, out_dtype, &out_shape);
                }
                self.constant_pad(n, out_dtype, &out_shape)?
            }
            (AvgPool1d | AvgPool2d | AvgPool3d, "default") => {
                let sd = match a {
                    AvgPool1d => 1,
                    AvgPool2d => 2,
                    _ => 3,
                };
                let include_pad = self.bool_arg(n, "count_include_pad")?;
                let divisor = match n.arg("divisor_override") {
                    None | Some(Arg::None) => None,
                    Some(Arg::Int(d)) if *d != 0 => Some(*d),
                    _ => return Ok(Lowered::Fallback),
                };
                self.pool(
                    n,
                    Pool::Avg(include_pad, divisor),
                    sd,
                    out_dtype,
                    &out_shape,
                )?
            }
            (MaxPool1d, "default") => self.pool(n, Pool::Max, 1, out_dtype, &out_shape)?,
            (AdaptiveAvgPool1d, "default") => {
                self.pool(n, Pool::AdaptiveAvg, 1, out_dtype, &out_shape)?
            }
            (InternalAdaptiveAvgPool2d, "default") => {
                self.pool(n, Pool::AdaptiveAvg, 2, out_dtype, &out_shape)?
            }
            // The values only: torch's indices take the last NaN of a
            // window, which the arg-reductions do not.
            (AdaptiveMaxPool2d, "default")
                if n.outputs.len() == 2 && self.uses[n.outputs[1].index()] == 0 =>
            {
                match self.pool(n, Pool::AdaptiveMax, 2, out_dtype, &out_shape)? {
                    Lowered::One(t) => Lowered::Many(vec![Some(t), None]),
                    other => other,
                }
            }
            (UpsampleNearest2d, "default" | "vec") => {
                self.upsample_nearest2d(n, ov, out_dtype, &out_shape)?
            }
            (InternalUpsampleNearestExact2d, "default" | "vec") => {
                self.resample(n, ov, Resample::NearestExact, 2, out_dtype, &out_shape)?
            }
            (UpsampleBilinear2d, "default" | "vec") => {
                self.resample(n, ov, Resample::Linear, 2, out_dtype, &out_shape)?
            }
            (UpsampleLinear1d, "default" | "vec") => {
                self.resample(n, ov, Resample::Linear, 1, out_dtype, &out_shape)?
            }
            (UpsampleBicubic2d, "default" | "vec") => {
                self.resample(n, ov, Resample::Cubic, 2, out_dtype, &out_shape)?
            }
            // diff(x, n=1, dim) = x[.., 1:] - x[.., :-1] (xor for bools).
            (Diff, "default") => {
                let t = self.tensor_arg(n, "self")?;
                let rank = t.shape.len();
                let order = self.int_arg(n, "n")?;
                let pre = self.opt_tensor_arg(n, "prepend")?;
                let app = self.opt_tensor_arg(n, "append")?;
                let same = |x: &Option<Tv>| {
                    x.as_ref()
                        .map_or(true, |x| x.dtype == t.dtype && x.shape.len() == rank)
                };
                if order != 1 || rank == 0 || out_dtype != t.dtype || !same(&pre) || !same(&app) {
                    return Ok(Lowered::Fallback);
                }
                let d = wrap(n, self.int_arg(n, "dim")?, rank)?;
                // The difference of `cat([prepend, self, append], d)`: its
                // segments, each with its start along `d`.
                let mut segs: Vec<(Tv, SymExpr)> = Vec::new();
                let mut start = SymExpr::Int(0);
                for x in [pre, Some(t.clone()), app].into_iter().flatten() {
                    let len = x.shape[d].clone();
                    segs.push((x, start.clone()));
                    start = SymExpr::add(vec![start, len]);
                }
                let want = SymExpr::add(vec![start, SymExpr::Int(-1)]);
                self.require_eq(n, "the length of the difference", &out_shape[d], &want)?;
                let op = if out_dtype == DType::Bool {
                    BinOp::BitXor
                } else {
                    BinOp::Sub
                };
                let origins: Vec<Rc<Vec<Origin>>> =
                    segs.iter().map(|(x, _)| x.origins.clone()).collect();
                let cost = segs.iter().map(|(x, _)| x.cost()).sum::<usize>() + 1;
                // Element `q` along `d` of the concatenation; every segment
                // is read at a clamped index, the right one selected.
                let read = move |idx: &[E], q: E| -> E {
                    let mut val: Option<E> = None;
                    for (x, s) in segs.iter().rev() {
                        let last = eb::add(eb::size(&x.shape[d]), eb::int(-1));
                        let local = eb::bin(BinOp::Sub, q.clone(), eb::size(s));
                        let local =
                            eb::bin(BinOp::Max, eb::bin(BinOp::Min, local, last), eb::int(0));
                        let mut at = idx.to_vec();
                        at[d] = local;
                        let v = x.at(&at);
                        val = Some(match val {
                            None => v,
                            Some(later) => {
                                let end = eb::add(eb::size(s), eb::size(&x.shape[d]));
                                eb::select(eb::cmp(CmpOp::Lt, q.clone(), end), v, later)
                            }
                        });
                    }
                    val.unwrap_or_else(|| eb::int(0))
                };
                let body: Body = Rc::new(move |idx: &[E]| {
                    let q = idx[d].clone();
                    let next = eb::add(q.clone(), eb::int(1));
                    eb::bin(op, read(idx, next), read(idx, q))
                });
                let parts: Vec<&Rc<Vec<Origin>>> = origins.iter().collect();
                Lowered::One(self.lazy(out_dtype, out_shape.clone(), &parts, cost, body))
            }
            // ---- concatenation ----
            (Cat, "default") => self.cat(n, out_dtype, &out_shape)?,
            // ---- reductions ----
            (Sum, "dim_IntList" | "default") => self.reduction(n, RedOp::Sum)?,
            (Mean, "dim" | "default") => self.reduction(n, RedOp::Mean)?,
            (Amax, "default") => self.reduction(n, RedOp::Max)?,
            (Amin, "default") => self.reduction(n, RedOp::Min)?,
            (Prod, "dim_int" | "default") => self.reduction(n, RedOp::Prod)?,
            (Any, "dim" | "dims" | "default") => self.reduction(n, RedOp::Any)?,
            (All, "dim" | "dims" | "default") => self.reduction(n, RedOp::All)?,
            (Argmax, "default") => self.reduction(n, RedOp::ArgMax)?,
            (Argmin, "default") => self.reduction(n, RedOp::ArgMin)?,
            (Var | Std, "correction" | "dim" | "default") => self.variance(n, *a == Std)?,
            (Max | Min, "default") => {
                let op = if *a == Max { RedOp::Max } else { RedOp::Min };
                self.reduction(n, op)?
            }
            (Max, "other") => self.map(n, &["self", "other"], fc, bin(BinOp::Max))?,
            (Min, "other") => self.map(n, &["self", "other"], fc, bin(BinOp::Min))?,
            (Max | Min, "dim") => self.extreme_dim(n, *a == Max)?,
            (Aminmax, "default") => {
                let (Lowered::One(lo), Lowered::One(hi)) = (
                    self.reduction_out(n, RedOp::Min, 0)?,
                    self.reduction_out(n, RedOp::Max, 1)?,
                ) else {
                    return Ok(Lowered::Fallback);
                };
                Lowered::Many(vec![Some(lo), Some(hi)])
            }
            (Logsumexp, "default") => self.logsumexp(n, out_dtype, &out_shape)?,
            (LinalgVectorNorm, "default") => {
                let t = self.tensor_arg(n, "self")?;
                let Some(p) = float_arg(n, "ord") else {
                    return Ok(Lowered::Fallback);
                };
                let dims = self.reduce_dims(n, t.shape.len())?;
                let keepdim = self.keepdim(n)?;
                self.vector_norm(&t, p, &dims, keepdim, out_dtype, &out_shape, n)?
            }
            // ||x1 - x2 + eps||_p over the last dim.
            (PairwiseDistance, "default") => {
                let x1 = self.tensor_arg(n, "x1")?;
                let x2 = self.tensor_arg(n, "x2")?;
                let (Some(p), Some(eps)) = (float_arg(n, "p"), float_arg(n, "eps")) else {
                    return Ok(Lowered::Fallback);
                };
                if !out_dtype.is_float() || x1.dtype != out_dtype || x2.dtype != out_dtype {
                    return Ok(Lowered::Fallback);
                }
                let shape = broadcast_shape(&x1.shape, &x2.shape);
                if shape.is_empty() {
                    return Ok(Lowered::Fallback);
                }
                let (b1, b2) = (
                    self.broadcast(&x1, &shape, n)?,
                    self.broadcast(&x2, &shape, n)?,
                );
                let e = eb::konst(eps, fc);
                let body: Body = Rc::new(move |idx: &[E]| {
                    let d = eb::bin(BinOp::Sub, eb::cast(fc, b1(idx)), eb::cast(fc, b2(idx)));
                    eb::cast(out_dtype, eb::bin(BinOp::Add, d, e.clone()))
                });
                let cost = x1.cost() + x2.cost() + 2;
                let d = self.lazy(
                    out_dtype,
                    shape.clone(),
                    &[&x1.origins, &x2.origins],
                    cost,
                    body,
                );
                let keepdim = self.keepdim(n)?;
                self.vector_norm(&d, p, &[shape.len() - 1], keepdim, out_dtype, &out_shape, n)?
            }
            (CosineSimilarity, "default") => self.cosine_similarity(n, out_dtype, &out_shape)?,
            (Cdist, "default") | (InternalCdistForward, "default") => {
                self.cdist(n, out_dtype, &out_shape)?
            }
            (Dot, "default") if out_dtype != DType::Bool => {
                let x = self.tensor_arg(n, "self")?;
                let y = self.tensor_arg(n, "tensor")?;
                if x.shape.len() != 1 || y.shape.len() != 1 || !out_shape.is_empty() {
                    return Ok(Lowered::Fallback);
                }
                self.require_eq(
                    n,
                    "the lengths of the dot product",
                    &x.shape[0],
                    &y.shape[0],
                )?;
                let (xe, ye) = (x.clone(), y.clone());
                let body: Body = Rc::new(move |idx: &[E]| {
                    eb::bin(
                        BinOp::Mul,
                        eb::cast(fc, xe.at(idx)),
                        eb::cast(fc, ye.at(idx)),
                    )
                });
                let p = self.lazy(fc, x.shape.clone(), &[&x.origins, &y.origins], 1, body);
                let acc = if fc.is_float() {
                    DType::F64
                } else {
                    DType::I64
                };
                self.reduce_finish(
                    n,
                    &p,
                    &[0],
                    false,
                    RedOp::Sum,
                    acc,
                    out_dtype,
                    &out_shape,
                    |s| s,
                )?
            }
            (RmsNorm, "default") => self.rms_norm(n, out_dtype, &out_shape)?,
            (InternalWeightNorm, "default") => self.weight_norm(n, out_dtype, &out_shape)?,
            (Cumsum | Cumprod, "default") => self.scan(n, *a == Cumprod, out_dtype, &out_shape)?,
            // ---- normalization ----
            (InternalNativeBatchNormLegitNoTraining, "default") => self.batch_norm(n)?,
            (InternalNativeBatchNormLegit, "default")
                if matches!(n.arg("training"), Some(Arg::Bool(false))) =>
            {
                self.batch_norm(n)?
            }
            // Batch statistics, no running statistics to update.
            (InternalNativeBatchNormLegit, "no_stats")
                if matches!(n.arg("training"), Some(Arg::Bool(true))) =>
            {
                self.batch_stats_norm(n)?
            }
            (NativeGroupNorm, "default") => self.group_norm(n)?,
            // ---- runtime calls ----
            (Addmm | Mm | Bmm, "default") => self.gemm(n, *a)?,
            (Matmul, "default") => self.matmul(n, out_dtype, &out_shape)?,
            (Linear, "default") => self.linear(n, out_dtype, &out_shape)?,
            (Baddbmm, "default") => self.baddbmm(n, out_dtype, &out_shape)?,
            (Bilinear, "default") => self.bilinear(n, out_dtype, &out_shape)?,
            (InternalTrilinear, "default") => self.trilinear(n, out_dtype, &out_shape)?,
            (Einsum, "default") => self.einsum(n, out_dtype, &out_shape)?,
            (Lstm | Gru | RnnTanh | RnnRelu, "input") => self.rnn(n, *a)?,
            (Convolution, "default") => self.convolution(n)?,
            (MaxPool2dWithIndices, "default") => self.max_pool(n)?,
            (InternalSoftmax | InternalLogSoftmax | InternalSafeSoftmax, "default")
            | (Softmax | LogSoftmax, "int") => self.softmax(n, *a)?,
            (NativeLayerNorm, "default") => self.layer_norm(n)?,
            (ScaledDotProductAttention, "default") => self.sdpa(n)?,
            _ => Lowered::Fallback,
        };
        Ok(r)
    }

    /// `t` read at the index `f` maps each output index to, as a lazy
    /// value of `shape` (`cost` on top of the input's).
    fn remap(
        &self,
        t: &Tv,
        dtype: DType,
        shape: &[SymExpr],
        cost: usize,
        f: impl Fn(&[E]) -> Vec<E> + 'static,
    ) -> Lowered {
        let tt = t.clone();
        let body: Body = Rc::new(move |idx: &[E]| eb::cast(dtype, tt.at(&f(idx))));
        Lowered::One(self.lazy(dtype, shape.to_vec(), &[&t.origins], t.cost() + cost, body))
    }

    /// The diagonal `offset` of dims `d1`, `d2` of `t`, as the last dim.
    #[allow(clippy::too_many_arguments)]
    fn diagonal(
        &self,
        n: &Node,
        t: &Tv,
        dtype: DType,
        shape: &[SymExpr],
        offset: i64,
        d1: usize,
        d2: usize,
    ) -> Result<Lowered> {
        let rank = t.shape.len();
        let (o1, o2) = ((-offset).max(0), offset.max(0));
        let kept: Vec<SymExpr> = (0..rank)
            .filter(|&d| d != d1 && d != d2)
            .map(|d| t.shape[d].clone())
            .collect();
        for (i, (a, b)) in kept.iter().zip(shape).enumerate() {
            self.require_eq(n, &format!("dim {i} of the diagonal"), b, a)?;
        }
        let (Some(s1), Some(s2)) = (t.shape[d1].as_int(), t.shape[d2].as_int()) else {
            return Ok(Lowered::Fallback);
        };
        let len = SymExpr::Int((s1 - o1).min(s2 - o2).max(0));
        self.require_eq(n, "the length of the diagonal", &shape[rank - 2], &len)?;
        Ok(self.remap(t, dtype, shape, 0, move |idx| {
            let i = idx[rank - 2].clone();
            let mut rest = idx[..rank - 2].iter().cloned();
            (0..rank)
                .map(|d| {
                    if d == d1 {
                        eb::add(i.clone(), eb::int(o1))
                    } else if d == d2 {
                        eb::add(i.clone(), eb::int(o2))
                    } else {
                        rest.next().unwrap_or_else(|| eb::int(0))
                    }
                })
                .collect()
        }))
    }

    /// `roll(x, shifts, dims)`: `out[i] = x[(i - shift) mod n]` along each
    /// dim; with no dims, along the flattened tensor.
    fn roll(&self, n: &Node, dtype: DType, shape: &[SymExpr]) -> Result<Lowered> {
        let t = self.tensor_arg(n, "self")?;
        let rank = t.shape.len();
        let shifts = self.ints_arg(n, "shifts")?;
        let dims = self.ints_arg(n, "dims")?;
        if shape != t.shape.as_slice() || rank == 0 {
            return Ok(Lowered::Fallback);
        }
        let back = |i: E, s: i64, len: &SymExpr| {
            eb::bin(BinOp::Rem, eb::add(i, eb::int(-s)), eb::size(len))
        };
        if dims.is_empty() {
            if shifts.len() != 1 {
                return Ok(Lowered::Fallback);
            }
            let s = shifts[0];
            let sizes = t.shape.clone();
            let strides = dense_strides(&sizes);
            let numel = SymExpr::mul(sizes.clone());
            return Ok(self.remap(&t, dtype, shape, 2, move |idx| {
                let flat = eb::offset(&SymExpr::Int(0), &strides, idx);
                let src = back(flat, s, &numel);
                (0..sizes.len())
                    .map(|d| {
                        let q = eb::bin(BinOp::FloorDiv, src.clone(), eb::size(&strides[d]));
                        if d == 0 {
                            q
                        } else {
                            eb::bin(BinOp::Rem, q, eb::size(&sizes[d]))
                        }
                    })
                    .collect()
            }));
        }
        if shifts.len() != dims.len() {
            return Ok(Lowered::Fallback);
        }
        let mut by_dim = vec![0i64; rank];
        for (&s, &d) in shifts.iter().zip(&dims) {
            let d = wrap(n, d, rank)?;
            by_dim[d] = by_dim[d].wrapping_add(s);
        }
        let sizes = t.shape.clone();
        Ok(self.remap(&t, dtype, shape, 1, move |idx| {
            (0..sizes.len())
                .map(|d| {
                    if by_dim[d] == 0 {
                        idx[d].clone()
                    } else {
                        back(idx[d].clone(), by_dim[d], &sizes[d])
                    }
                })
                .collect()
        }))
    }

    /// Reflection, replication or circular padding: `pad` holds `(before,
    /// after)` pairs from the last dim backwards; elements outside the
    /// input read its mirror image (without repeating the edge), its edge,
    /// or wrap around.
    fn edge_pad(
        &self,
        n: &Node,
        pad: &[i64],
        mode: &str,
        dtype: DType,
        out_shape: &[SymExpr],
    ) -> Result<Lowered> {
        let t = self.tensor_arg(n, "self")?;
        let rank = t.shape.len();
        if pad.len() % 2 != 0 || pad.len() / 2 > rank || out_shape.len() != rank {
            return Ok(Lowered::Fallback);
        }
        let kind = match mode {
            "reflect" => 0,
            "replicate" => 1,
            "circular" => 2,
            _ => return Ok(Lowered::Fallback),
        };
        let mut lo = vec![0i64; rank];
        for (k, pair) in pad.chunks(2).enumerate() {
            let d = rank - 1 - k;
            let Some(size) = t.shape[d].as_int() else {
                return Ok(Lowered::Fallback);
            };
            let limit = match kind {
                0 => size - 1,
                2 => size,
                _ => i64::MAX,
            };
            if size == 0 || pair.iter().any(|&p| p < 0 || p > limit) {
                return Err(n.error(format!(
                    "{mode} padding {pad:?} is invalid for dim {d} of size {size}"
                )));
            }
            lo[d] = pair[0];
            let want = SymExpr::Int(size + pair[0] + pair[1]);
            self.require_eq(
                n,
                &format!("dim {d} of the padded tensor"),
                &out_shape[d],
                &want,
            )?;
        }
        let sizes = t.shape.clone();
        let padded: Vec<bool> = (0..rank).map(|d| d >= rank - pad.len() / 2).collect();
        Ok(self.remap(&t, dtype, out_shape, 2, move |idx| {
            (0..rank)
                .map(|d| {
                    if !padded[d] {
                        return idx[d].clone();
                    }
                    let j = eb::add(idx[d].clone(), eb::int(-lo[d]));
                    let len = eb::size(&sizes[d]);
                    let last = eb::add(len.clone(), eb::int(-1));
                    match kind {
                        // (n - 1) - |(n - 1) - |j||
                        0 => {
                            let a = eb::un(UnOp::Abs, j);
                            let m = eb::bin(BinOp::Sub, last.clone(), a);
                            eb::bin(BinOp::Sub, last, eb::un(UnOp::Abs, m))
                        }
                        1 => eb::bin(BinOp::Min, eb::bin(BinOp::Max, j, eb::int(0)), last),
                        _ => eb::bin(BinOp::Rem, j, len),
                    }
                })
                .collect()
        }))
    }

    /// `stack(tensors, dim)`: each input stored into its slot of the new
    /// dim of one buffer.
    fn stack(&mut self, n: &Node, dtype: DType, out_shape: &[SymExpr]) -> Result<Lowered> {
        let Some(Arg::List(items)) = n.arg("tensors") else {
            return Ok(Lowered::Fallback);
        };
        let rank = out_shape.len();
        if rank == 0 {
            return Ok(Lowered::Fallback);
        }
        let d = wrap(n, self.int_arg(n, "dim")?, rank)?;
        let mut parts = Vec::new();
        for it in items {
            let Arg::Value(v) = it else {
                return Ok(Lowered::Fallback);
            };
            match self.val(*v)? {
                Val::T(t) if t.shape.len() + 1 == rank => parts.push(t),
                _ => return Ok(Lowered::Fallback),
            }
        }
        self.require_eq(
            n,
            "the number of stacked tensors",
            &out_shape[d],
            &SymExpr::Int(parts.len() as i64),
        )?;
        let out = self.temp(n.outputs[0], dtype, out_shape);
        for (k, t) in parts.into_iter().enumerate() {
            let mut want = out_shape.to_vec();
            want.remove(d);
            for (i, (a, b)) in t.shape.iter().zip(&want).enumerate() {
                self.require_eq(n, &format!("dim {i} of a stacked tensor"), a, b)?;
            }
            let mut view = out.clone();
            view.offset = SymExpr::mul(vec![SymExpr::Int(k as i64), out.strides[d].clone()]);
            view.strides.remove(d);
            view.shape = t.shape.clone();
            let src = Tv {
                origins: if t.origins.is_empty() {
                    Rc::new(vec![origin(n)])
                } else {
                    t.origins.clone()
                },
                ..t
            };
            self.store(&src, view);
        }
        Ok(Lowered::One(stored(dtype, out_shape.to_vec(), out)))
    }

    /// `max.dim` / `min.dim`: the indices are the arg-reduction (the first
    /// extreme, the first NaN), the values the input gathered there.
    fn extreme_dim(&mut self, n: &Node, is_max: bool) -> Result<Lowered> {
        let t = self.tensor_arg(n, "self")?;
        let rank = t.shape.len();
        if rank == 0 || n.outputs.len() != 2 {
            return Ok(Lowered::Fallback);
        }
        let d = wrap(n, self.int_arg(n, "dim")?, rank)?;
        let keepdim = self.keepdim(n)?;
        let op = if is_max { RedOp::ArgMax } else { RedOp::ArgMin };
        let Lowered::One(ix) = self.reduction_out(n, op, 1)? else {
            return Ok(Lowered::Fallback);
        };
        let (dtype, shape) = self.out_type_of(n, 0)?;
        if dtype != t.dtype || shape != ix.shape {
            return Ok(Lowered::Fallback);
        }
        let size = t.shape[d].clone();
        let (tt, ixe) = (t.clone(), ix.clone());
        let body: Body = Rc::new(move |idx: &[E]| {
            let i = Rc::new(Expr::Index(ixe.at(idx), size.clone()));
            let mut at = idx.to_vec();
            if keepdim {
                at[d] = i;
            } else {
                at.insert(d, i);
            }
            tt.at(&at)
        });
        let values = self.lazy(dtype, shape, &[&t.origins], t.cost() + 1, body);
        Ok(Lowered::Many(vec![Some(values), Some(ix)]))
    }

    /// `t` reduced over `dims` into a buffer of `acc` (dims kept), then
    /// `finish` applied to each element, read at the output's index.
    #[allow(clippy::too_many_arguments)]
    fn reduce_finish(
        &mut self,
        n: &Node,
        t: &Tv,
        dims: &[usize],
        keepdim: bool,
        op: RedOp,
        acc: DType,
        dtype: DType,
        out_shape: &[SymExpr],
        finish: impl Fn(E) -> E + 'static,
    ) -> Result<Lowered> {
        let rank = t.shape.len();
        let want: Vec<SymExpr> = (0..rank)
            .filter_map(|d| match (dims.contains(&d), keepdim) {
                (false, _) => Some(t.shape[d].clone()),
                (true, true) => Some(SymExpr::Int(1)),
                (true, false) => None,
            })
            .collect();
        if want.len() != out_shape.len() {
            return Ok(Lowered::Fallback);
        }
        for (w, o) in want.iter().zip(out_shape) {
            self.require_eq(n, "a kept dim of the reduction", o, w)?;
        }
        let r = self.reduce_kept(n, t, dims, op, acc, "acc");
        let dims = dims.to_vec();
        let body: Body = Rc::new(move |idx: &[E]| {
            let at = kept_index(idx, &dims, rank, keepdim);
            eb::cast(dtype, finish(r.at(&at)))
        });
        Ok(Lowered::One(self.lazy(
            dtype,
            out_shape.to_vec(),
            &[],
            2,
            body,
        )))
    }

    /// `logsumexp` over the dims: `log(sum(exp(x - m))) + m` with `m` the
    /// maximum (0 where infinite), in the output's compute dtype.
    fn logsumexp(&mut self, n: &Node, dtype: DType, out_shape: &[SymExpr]) -> Result<Lowered> {
        let t = self.tensor_arg(n, "self")?;
        if !dtype.is_float() || t.shape.is_empty() {
            return Ok(Lowered::Fallback);
        }
        let fc = if dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let rank = t.shape.len();
        let dims = self.reduce_dims(n, rank)?;
        let keepdim = self.keepdim(n)?;
        let xs = {
            let tt = t.clone();
            let body: Body = Rc::new(move |idx: &[E]| eb::cast(fc, tt.at(idx)));
            self.lazy(fc, t.shape.clone(), &[&t.origins], t.cost() + 1, body)
        };
        let m = self.reduce_kept(n, &xs, &dims, RedOp::Max, fc, "max");
        let finite = move |m: E| {
            let inf = eb::cmp(
                CmpOp::Eq,
                eb::un(UnOp::Abs, m.clone()),
                eb::konst(f64::INFINITY, fc),
            );
            eb::select(inf, eb::konst(0.0, fc), m)
        };
        let (xe, me, dk) = (xs.clone(), m.clone(), dims.clone());
        let exp: Body = Rc::new(move |idx: &[E]| {
            let mut at = idx.to_vec();
            for &d in &dk {
                at[d] = eb::int(0);
            }
            eb::un(
                UnOp::Exp,
                eb::bin(BinOp::Sub, xe.at(idx), finite(me.at(&at))),
            )
        });
        let e = self.lazy(fc, t.shape.clone(), &[&t.origins], xs.cost() + 4, exp);
        let s = self.reduce_kept(n, &e, &dims, RedOp::Sum, fc, "sum");
        let body: Body = Rc::new(move |idx: &[E]| {
            let at = kept_index(idx, &dims, rank, keepdim);
            let l = eb::un(UnOp::Log, s.at(&at));
            eb::cast(dtype, eb::bin(BinOp::Add, l, finite(m.at(&at))))
        });
        Ok(Lowered::One(self.lazy(
            dtype,
            out_shape.to_vec(),
            &[],
            4,
            body,
        )))
    }

    /// The `p`-norm of `t` over `dims`, computed in f64: the largest
    /// (smallest) magnitude for `p = inf` (`-inf`), the count of nonzeros for
    /// 0, else `sum(|x|^p)^(1/p)`.
    #[allow(clippy::too_many_arguments)]
    fn vector_norm(
        &mut self,
        t: &Tv,
        p: f64,
        dims: &[usize],
        keepdim: bool,
        dtype: DType,
        out_shape: &[SymExpr],
        n: &Node,
    ) -> Result<Lowered> {
        if !dtype.is_float() || !t.dtype.is_float() {
            return Ok(Lowered::Fallback);
        }
        let f = DType::F64;
        let (op, term): (RedOp, Box<dyn Fn(E) -> E>) = if p == f64::INFINITY {
            (RedOp::Max, Box::new(move |x| eb::un(UnOp::Abs, x)))
        } else if p == f64::NEG_INFINITY {
            (RedOp::Min, Box::new(move |x| eb::un(UnOp::Abs, x)))
        } else if p == 0.0 {
            (
                RedOp::Sum,
                Box::new(move |x| {
                    let nz = eb::cmp(CmpOp::Ne, x, eb::konst(0.0, f));
                    eb::select(nz, eb::konst(1.0, f), eb::konst(0.0, f))
                }),
            )
        } else if p == 2.0 {
            (
                RedOp::Sum,
                Box::new(move |x| eb::bin(BinOp::Mul, x.clone(), x)),
            )
        } else if p == 1.0 {
            (RedOp::Sum, Box::new(move |x| eb::un(UnOp::Abs, x)))
        } else {
            (
                RedOp::Sum,
                Box::new(move |x| eb::bin(BinOp::Pow, eb::un(UnOp::Abs, x), eb::konst(p, f))),
            )
        };
        let tt = t.clone();
        let body: Body = Rc::new(move |idx: &[E]| term(eb::cast(f, tt.at(idx))));
        let terms = self.lazy(f, t.shape.clone(), &[&t.origins], t.cost() + 2, body);
        let finish = move |s: E| -> E {
            if p == f64::INFINITY {
                // An empty norm is 0 (a NaN stays NaN).
                eb::bin(BinOp::Max, s, eb::konst(0.0, f))
            } else if p == 2.0 {
                eb::un(UnOp::Sqrt, s)
            } else if p == 0.0 || p == 1.0 || p == f64::NEG_INFINITY {
                s
            } else {
                eb::bin(BinOp::Pow, s, eb::konst(1.0 / p, f))
            }
        };
        self.reduce_finish(n, &terms, dims, keepdim, op, f, dtype, out_shape, finish)
    }

    /// `cosine_similarity(x1, x2, dim, eps)`: the sum over `dim` of
    /// `x1 / max(|x1|, eps) * x2 / max(|x2|, eps)`, the norms rounded to the
    /// dtype as torch computes them (same-shape operands only).
    fn cosine_similarity(
        &mut self,
        n: &Node,
        dtype: DType,
        out_shape: &[SymExpr],
    ) -> Result<Lowered> {
        let x1 = self.tensor_arg(n, "x1")?;
        let x2 = self.tensor_arg(n, "x2")?;
        let rank = x1.shape.len();
        if !dtype.is_float() || x1.dtype != dtype || x2.dtype != dtype || x1.shape != x2.shape {
            return Ok(Lowered::Fallback);
        }
        if rank == 0 {
            return Ok(Lowered::Fallback);
        }
        let d = wrap(n, self.int_arg(n, "dim")?, rank)?;
        let Some(eps) = float_arg(n, "eps") else {
            return Ok(Lowered::Fallback);
        };
        let fc = if dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let mut units = Vec::new();
        for x in [&x1, &x2] {
            let f = DType::F64;
            let xx = x.clone();
            let sq: Body = Rc::new(move |idx: &[E]| {
                let v = eb::cast(f, xx.at(idx));
                eb::bin(BinOp::Mul, v.clone(), v)
            });
            let sq = self.lazy(f, x.shape.clone(), &[&x.origins], x.cost() + 2, sq);
            let ss = self.reduce_kept(n, &sq, &[d], RedOp::Sum, f, "norm");
            let xx = x.clone();
            let e = eb::konst(eps, fc);
            let unit: Body = Rc::new(move |idx: &[E]| {
                let mut at = idx.to_vec();
                at[d] = eb::int(0);
                // The norm in the dtype, clamped, then the quotient.
                let norm = eb::cast(fc, eb::cast(dtype, eb::un(UnOp::Sqrt, ss.at(&at))));
                let norm = eb::bin(BinOp::Max, norm, e.clone());
                eb::cast(dtype, eb::bin(BinOp::Div, eb::cast(fc, xx.at(idx)), norm))
            });
            units.push(unit);
        }
        let (u1, u2) = (units[0].clone(), units[1].clone());
        let prod: Body = Rc::new(move |idx: &[E]| {
            let p = eb::bin(BinOp::Mul, eb::cast(fc, u1(idx)), eb::cast(fc, u2(idx)));
            eb::cast(DType::F64, eb::cast(dtype, p))
        });
        let cost = x1.cost() + x2.cost() + 8;
        let prod = self.lazy(
            DType::F64,
            x1.shape.clone(),
            &[&x1.origins, &x2.origins],
            cost,
            prod,
        );
        self.reduce_finish(
            n,
            &prod,
            &[d],
            false,
            RedOp::Sum,
            DType::F64,
            dtype,
            out_shape,
            |s| s,
        )
    }

    /// `diagonal_scatter`: a copy of `self` with `src` stored into its
    /// diagonal (a strided view of the copy's buffer).
    fn diagonal_scatter(
        &mut self,
        n: &Node,
        dtype: DType,
        out_shape: &[SymExpr],
    ) -> Result<Lowered> {
        let base = self.tensor_arg(n, "self")?;
        let src = self.tensor_arg(n, "src")?;
        let rank = out_shape.len();
        if base.shape != out_shape || rank < 2 {
            return Ok(Lowered::Fallback);
        }
        let off = self.int_arg(n, "offset")?;
        let d1 = wrap(n, self.int_arg(n, "dim1")?, rank)?;
        let d2 = wrap(n, self.int_arg(n, "dim2")?, rank)?;
        let (Some(s1), Some(s2)) = (out_shape[d1].as_int(), out_shape[d2].as_int()) else {
            return Ok(Lowered::Fallback);
        };
        if d1 == d2 || src.shape.len() != rank - 1 {
            return Ok(Lowered::Fallback);
        }
        let (o1, o2) = ((-off).max(0), off.max(0));
        let len = (s1 - o1).min(s2 - o2).max(0);
        let out = self.temp(n.outputs[0], dtype, out_shape);
        self.store(&base, out.clone());
        let mut view = out.clone();
        view.offset = SymExpr::add(vec![
            SymExpr::mul(vec![SymExpr::Int(o1), out.strides[d1].clone()]),
            SymExpr::mul(vec![SymExpr::Int(o2), out.strides[d2].clone()]),
        ]);
        let mut strides = Vec::new();
        let mut shape = Vec::new();
        for d in (0..rank).filter(|&d| d != d1 && d != d2) {
            strides.push(out.strides[d].clone());
            shape.push(out_shape[d].clone());
        }
        strides.push(SymExpr::add(vec![
            out.strides[d1].clone(),
            out.strides[d2].clone(),
        ]));
        shape.push(SymExpr::Int(len));
        for (i, (a, b)) in src.shape.iter().zip(&shape).enumerate() {
            self.require_eq(n, &format!("dim {i} of the scattered diagonal"), a, b)?;
        }
        view.strides = strides;
        view.shape = shape;
        let src = Tv {
            origins: if src.origins.is_empty() {
                Rc::new(vec![origin(n)])
            } else {
                src.origins.clone()
            },
            ..src
        };
        self.store(&src, view);
        Ok(Lowered::One(stored(dtype, out_shape.to_vec(), out)))
    }

    /// `cdist(x1, x2, p)`: `out[.., i, j]` is the `p`-norm over the last dim
    /// of `x1[.., i, :] - x2[.., j, :]`, computed directly.
    fn cdist(&mut self, n: &Node, dtype: DType, out_shape: &[SymExpr]) -> Result<Lowered> {
        let x1 = self.tensor_arg(n, "x1")?;
        let x2 = self.tensor_arg(n, "x2")?;
        let Some(p) = float_arg(n, "p") else {
            return Ok(Lowered::Fallback);
        };
        let (r1, r2) = (x1.shape.len(), x2.shape.len());
        if r1 < 2 || r2 < 2 || !dtype.is_float() || x1.dtype != dtype || x2.dtype != dtype {
            return Ok(Lowered::Fallback);
        }
        let rank = out_shape.len();
        if rank < 2 {
            return Ok(Lowered::Fallback);
        }
        self.require_eq(
            n,
            "the width of cdist's operands",
            &x1.shape[r1 - 1],
            &x2.shape[r2 - 1],
        )?;
        self.require_eq(
            n,
            "the rows of cdist",
            &out_shape[rank - 2],
            &x1.shape[r1 - 2],
        )?;
        self.require_eq(
            n,
            "the columns of cdist",
            &out_shape[rank - 1],
            &x2.shape[r2 - 1 - 1],
        )?;
        // x1 as [.., P, 1, M], x2 as [.., 1, R, M], broadcast to [.., P, R, M].
        let mut shape = out_shape.to_vec();
        shape.push(x1.shape[r1 - 1].clone());
        let mut s1 = x1.shape.clone();
        s1.insert(r1 - 1, SymExpr::Int(1));
        let mut s2 = x2.shape.clone();
        s2.insert(r2 - 2, SymExpr::Int(1));
        let (Some(u1), Some(u2)) = (unit_dims_map(&x1, &s1), unit_dims_map(&x2, &s2)) else {
            return Ok(Lowered::Fallback);
        };
        let (b1, b2) = (
            self.broadcast(&u1, &shape, n)?,
            self.broadcast(&u2, &shape, n)?,
        );
        let fc = if dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let body: Body = Rc::new(move |idx: &[E]| {
            let d = eb::bin(BinOp::Sub, eb::cast(fc, b1(idx)), eb::cast(fc, b2(idx)));
            eb::cast(dtype, d)
        });
        let cost = x1.cost() + x2.cost() + 1;
        let d = self.lazy(
            dtype,
            shape.clone(),
            &[&x1.origins, &x2.origins],
            cost,
            body,
        );
        self.vector_norm(&d, p, &[rank], false, dtype, out_shape, n)
    }

    /// `rms_norm(x, normalized_shape, weight, eps)`: `x / sqrt(mean(x^2) +
    /// eps) * weight` over the trailing dims, in f64; `eps` defaults to the
    /// machine epsilon of the compute type (f32 but for f64).
    fn rms_norm(&mut self, n: &Node, dtype: DType, out_shape: &[SymExpr]) -> Result<Lowered> {
        let x = self.tensor_arg(n, "input")?;
        let ns = self.ints_arg(n, "normalized_shape")?;
        let w = self.opt_tensor_arg(n, "weight")?;
        let rank = x.shape.len();
        if !dtype.is_float() || x.dtype != dtype || ns.len() > rank || out_shape != x.shape {
            return Ok(Lowered::Fallback);
        }
        let eps = match n.arg("eps") {
            None | Some(Arg::None) if dtype == DType::F64 => f64::EPSILON,
            None | Some(Arg::None) => f32::EPSILON as f64,
            _ => match float_arg(n, "eps") {
                Some(e) => e,
                None => return Ok(Lowered::Fallback),
            },
        };
        let split = rank - ns.len();
        for (k, &s) in ns.iter().enumerate() {
            self.require_eq(n, "a normalized dim", &x.shape[split + k], &SymExpr::Int(s))?;
        }
        if let Some(w) = &w {
            if w.shape.len() != ns.len() {
                return Ok(Lowered::Fallback);
            }
            for (a, b) in w.shape.iter().zip(&x.shape[split..]) {
                self.require_eq(n, "a dim of the rms_norm weight", a, b)?;
            }
        }
        let dims: Vec<usize> = (split..rank).collect();
        let f = DType::F64;
        let xe = x.clone();
        let sq: Body = Rc::new(move |idx: &[E]| {
            let v = eb::cast(f, xe.at(idx));
            eb::bin(BinOp::Mul, v.clone(), v)
        });
        let sq = self.lazy(f, x.shape.clone(), &[&x.origins], x.cost() + 2, sq);
        let ms = self.reduce_kept(n, &sq, &dims, RedOp::Mean, f, "ms");
        let count = ns.len();
        let mut parts = vec![x.origins.clone()];
        if let Some(w) = &w {
            parts.push(w.origins.clone());
        }
        let cost = x.cost() + 4;
        let body: Body = Rc::new(move |idx: &[E]| {
            let mut at = idx.to_vec();
            for a in at.iter_mut().skip(split) {
                *a = eb::int(0);
            }
            let r = eb::un(
                UnOp::Rsqrt,
                eb::bin(BinOp::Add, ms.at(&at), eb::konst(eps, f)),
            );
            let mut y = eb::bin(BinOp::Mul, eb::cast(f, x.at(idx)), r);
            if let Some(w) = &w {
                y = eb::bin(BinOp::Mul, y, eb::cast(f, w.at(&idx[idx.len() - count..])));
            }
            eb::cast(dtype, y)
        });
        let parts: Vec<&Rc<Vec<Origin>>> = parts.iter().collect();
        Ok(Lowered::One(self.lazy(
            dtype,
            out_shape.to_vec(),
            &parts,
            cost,
            body,
        )))
    }

    /// `_weight_norm(v, g, dim)`: `v * (g / ||v||)`, the 2-norm over every
    /// dim but `dim` (over all of them for `dim = -1`).
    fn weight_norm(&mut self, n: &Node, dtype: DType, out_shape: &[SymExpr]) -> Result<Lowered> {
        let v = self.tensor_arg(n, "v")?;
        let g = self.tensor_arg(n, "g")?;
        let rank = v.shape.len();
        if !dtype.is_float() || v.dtype != dtype || g.dtype != dtype || out_shape != v.shape {
            return Ok(Lowered::Fallback);
        }
        let dim = self.int_arg(n, "dim")?;
        let dims: Vec<usize> = if dim == -1 {
            (0..rank).collect()
        } else {
            let k = wrap(n, dim, rank)?;
            (0..rank).filter(|&d| d != k).collect()
        };
        let f = DType::F64;
        let ve = v.clone();
        let sq: Body = Rc::new(move |idx: &[E]| {
            let x = eb::cast(f, ve.at(idx));
            eb::bin(BinOp::Mul, x.clone(), x)
        });
        let sq = self.lazy(f, v.shape.clone(), &[&v.origins], v.cost() + 2, sq);
        let ss = self.reduce_kept(n, &sq, &dims, RedOp::Sum, f, "norm");
        let gb = self.broadcast(&g, out_shape, n)?;
        let fc = if dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let cost = v.cost() + g.cost() + 4;
        let (vo, go) = (v.origins.clone(), g.origins.clone());
        let body: Body = Rc::new(move |idx: &[E]| {
            let mut at = idx.to_vec();
            for &d in &dims {
                at[d] = eb::int(0);
            }
            // The norm and the scale rounded to the dtype, as torch has them.
            let norm = eb::cast(fc, eb::cast(dtype, eb::un(UnOp::Sqrt, ss.at(&at))));
            let scale = eb::cast(
                fc,
                eb::cast(dtype, eb::bin(BinOp::Div, eb::cast(fc, gb(idx)), norm)),
            );
            eb::cast(dtype, eb::bin(BinOp::Mul, eb::cast(fc, v.at(idx)), scale))
        });
        Ok(Lowered::One(self.lazy(
            dtype,
            out_shape.to_vec(),
            &[&vo, &go],
            cost,
            body,
        )))
    }

    /// `im2col`: `out[.., (c kh + i) kw + j, oy ow + ox]` is the input at
    /// `(oy sh - ph + i dh, ox sw - pw + j dw)` of channel `c`, 0 in the
    /// padding. Static sizes only.
    fn im2col(&self, n: &Node, dtype: DType, out_shape: &[SymExpr]) -> Result<Lowered> {
        let x = self.tensor_arg(n, "self")?;
        let rank = x.shape.len();
        if !(rank == 3 || rank == 4) || out_shape.len() != rank - 1 || x.dtype != dtype {
            return Ok(Lowered::Fallback);
        }
        let two = |name: &str| -> Result<Vec<i64>> {
            let v = self.ints_arg(n, name)?;
            Ok(if v.len() == 1 { vec![v[0]; 2] } else { v })
        };
        let (k, d, p, s) = (
            two("kernel_size")?,
            two("dilation")?,
            two("padding")?,
            two("stride")?,
        );
        if [&k, &d, &p, &s].iter().any(|v| v.len() != 2)
            || k.iter().chain(&d).chain(&s).any(|&v| v <= 0)
            || p.iter().any(|&v| v < 0)
        {
            return Ok(Lowered::Fallback);
        }
        let (Some(c), Some(h), Some(w)) = (
            x.shape[rank - 3].as_int(),
            x.shape[rank - 2].as_int(),
            x.shape[rank - 1].as_int(),
        ) else {
            return Ok(Lowered::Fallback);
        };
        let o: Vec<i64> = [h, w]
            .iter()
            .enumerate()
            .map(|(j, &i)| (i + 2 * p[j] - d[j] * (k[j] - 1) - 1).div_euclid(s[j]) + 1)
            .collect();
        if o.iter().any(|&v| v <= 0) {
            return Ok(Lowered::Fallback);
        }
        if rank == 4 {
            self.require_eq(n, "the batch of im2col", &out_shape[0], &x.shape[0])?;
        }
        let r = rank - 1;
        self.require_eq(
            n,
            "the rows of im2col",
            &out_shape[r - 2],
            &SymExpr::Int(c * k[0] * k[1]),
        )?;
        self.require_eq(
            n,
            "the blocks of im2col",
            &out_shape[r - 1],
            &SymExpr::Int(o[0] * o[1]),
        )?;
        let zero = eb::konst(0.0, dtype);
        Ok(Lowered::One({
            let xe = x.clone();
            let body: Body = Rc::new(move |idx: &[E]| {
                let (row, l) = (idx[r - 2].clone(), idx[r - 1].clone());
                let kk = k[0] * k[1];
                let ch = eb::bin(BinOp::FloorDiv, row.clone(), eb::int(kk));
                let ki = eb::bin(
                    BinOp::FloorDiv,
                    eb::bin(BinOp::Rem, row.clone(), eb::int(kk)),
                    eb::int(k[1]),
                );
                let kj = eb::bin(BinOp::Rem, row, eb::int(k[1]));
                let oy = eb::bin(BinOp::FloorDiv, l.clone(), eb::int(o[1]));
                let ox = eb::bin(BinOp::Rem, l, eb::int(o[1]));
                let pos = |o: E, kk: E, j: usize| {
                    eb::add(
                        eb::add(eb::mul(o, eb::int(s[j])), eb::int(-p[j])),
                        eb::mul(kk, eb::int(d[j])),
                    )
                };
                let (y, xx) = (pos(oy, ki, 0), pos(ox, kj, 1));
                let inside = |v: &E, len: i64| {
                    eb::bin(
                        BinOp::BitAnd,
                        eb::cmp(CmpOp::Ge, v.clone(), eb::int(0)),
                        eb::cmp(CmpOp::Lt, v.clone(), eb::int(len)),
                    )
                };
                let ok = eb::bin(BinOp::BitAnd, inside(&y, h), inside(&xx, w));
                let clampi = |v: E, len: i64| {
                    eb::bin(
                        BinOp::Min,
                        eb::bin(BinOp::Max, v, eb::int(0)),
                        eb::int(len - 1),
                    )
                };
                let mut at = idx[..r - 2].to_vec();
                at.extend([ch, clampi(y, h), clampi(xx, w)]);
                eb::select(ok, eb::cast(dtype, xe.at(&at)), zero.clone())
            });
            self.lazy(dtype, out_shape.to_vec(), &[&x.origins], x.cost() + 4, body)
        }))
    }

    /// `embedding_bag` in sum or mean mode, the first output only: per bag
    /// (the rows of 2-d indices, or the ranges between offsets of 1-d
    /// ones) a reduction over every index masked to the bag's range, in f64,
    /// the padding index left out (and not counted), the per-sample weights
    /// applied; a mean divides by the count, an empty bag is 0. Negative
    /// indices are out of range, as aten has them.
    fn embedding_bag(&mut self, n: &Node, a: Aten, ov: &str) -> Result<Lowered> {
        if n.outputs.iter().skip(1).any(|v| self.uses[v.index()] > 0) {
            return Ok(Lowered::Fallback);
        }
        let w = self.tensor_arg(n, "weight")?;
        let ix = self.tensor_arg(n, "indices")?;
        let offsets = self.opt_tensor_arg(n, "offsets")?;
        let psw = self.opt_tensor_arg(n, "per_sample_weights")?;
        let mode = self.int_arg(n, "mode")?;
        let last = self.bool_arg(n, "include_last_offset")?;
        let (dtype, out_shape) = self.out_type(n)?;
        if w.shape.len() != 2 || !(mode == 0 || mode == 1) || !dtype.is_float() {
            return Ok(Lowered::Fallback);
        }
        if psw.is_some() && mode != 0 {
            return Ok(Lowered::Fallback);
        }
        let rows = w.shape[0].clone();
        let padding: Option<i64> = match (a, ov) {
            (Aten::InternalEmbeddingBag, _) => match self.int_arg(n, "padding_idx")? {
                p if p >= 0 => Some(p),
                _ => None,
            },
            (_, "padding_idx") => match n.arg("padding_idx") {
                None | Some(Arg::None) => None,
                Some(_) => {
                    let p = self.int_arg(n, "padding_idx")?;
                    let Some(r) = rows.as_int() else {
                        return Ok(Lowered::Fallback);
                    };
                    Some(p.rem_euclid(r.max(1)))
                }
            },
            _ => None,
        };
        // Per output bag b and reduced position j: (in the bag, index at j).
        type Member = Rc<dyn Fn(&E, &E) -> (E, E)>;
        let (bags, len, member): (SymExpr, SymExpr, Member) = match (ix.shape.len(), &offsets) {
            (2, None) => {
                let ixe = ix.clone();
                let m: Member = Rc::new(move |b: &E, j: &E| {
                    (eb::konst(1.0, DType::Bool), ixe.at(&[b.clone(), j.clone()]))
                });
                (ix.shape[0].clone(), ix.shape[1].clone(), m)
            }
            (1, Some(o)) if o.shape.len() == 1 => {
                let nidx = ix.shape[0].clone();
                let bags = if last {
                    SymExpr::add(vec![o.shape[0].clone(), SymExpr::Int(-1)])
                } else {
                    o.shape[0].clone()
                };
                let (ixe, oe, count) = (ix.clone(), o.clone(), o.shape[0].clone());
                let m: Member = Rc::new(move |b: &E, j: &E| {
                    let start = eb::cast(DType::I64, oe.at(std::slice::from_ref(b)));
                    let next = eb::add(b.clone(), eb::int(1));
                    let has_next = eb::cmp(CmpOp::Lt, next.clone(), eb::size(&count));
                    let at = eb::bin(BinOp::Min, next, eb::add(eb::size(&count), eb::int(-1)));
                    let end = eb::select(
                        has_next,
                        eb::cast(DType::I64, oe.at(&[at])),
                        eb::size(&nidx),
                    );
                    let inside = eb::bin(
                        BinOp::BitAnd,
                        eb::cmp(CmpOp::Ge, j.clone(), start),
                        eb::cmp(CmpOp::Lt, j.clone(), end),
                    );
                    (inside, ixe.at(std::slice::from_ref(j)))
                });
                (bags, ix.shape[0].clone(), m)
            }
            _ => return Ok(Lowered::Fallback),
        };
        if out_shape.len() != 2 {
            return Ok(Lowered::Fallback);
        }
        self.require_eq(n, "the number of bags", &out_shape[0], &bags)?;
        self.require_eq(n, "the embedding width", &out_shape[1], &w.shape[1])?;
        let f = DType::F64;
        // Whether position j counts, and the row it reads.
        let counted = {
            let member = member.clone();
            let rows = rows.clone();
            move |b: &E, j: &E| -> (E, E) {
                let (inside, i) = member(b, j);
                let i = eb::cast(DType::I64, i);
                let keep = match padding {
                    Some(p) => eb::bin(
                        BinOp::BitAnd,
                        inside.clone(),
                        eb::cmp(CmpOp::Ne, i.clone(), eb::int(p)),
                    ),
                    None => inside.clone(),
                };
                // Outside the bag read row 0; a negative index maps past the
                // end, where the check fails.
                let i = eb::select(inside, i, eb::int(0));
                let neg = eb::cmp(CmpOp::Lt, i.clone(), eb::int(0));
                let i = eb::select(neg, eb::size(&rows), i);
                (keep, Rc::new(Expr::Index(i, rows.clone())))
            }
        };
        let idx: Vec<E> = (0..3).map(eb::var).collect();
        let (keep, row) = counted(&idx[0], &idx[2]);
        let mut v = eb::cast(f, w.at(&[row, idx[1].clone()]));
        if let Some(p) = &psw {
            v = eb::bin(BinOp::Mul, v, eb::cast(f, p.at(&[idx[2].clone()])));
        }
        let expr = eb::select(keep, v, eb::konst(0.0, f));
        let name = format!("{}_sum", n.name);
        let bshape = vec![bags.clone(), w.shape[1].clone()];
        let b = self.add_buffer(&name, f, &bshape, BufKind::Temp);
        let sum = View::dense(b, f, &bshape);
        let mut origins = vec![origin(n)];
        for t in [Some(&w), Some(&ix), offsets.as_ref(), psw.as_ref()]
            .into_iter()
            .flatten()
        {
            for o in t.origins.iter() {
                if !origins.contains(o) {
                    origins.insert(0, o.clone());
                }
            }
        }
        self.plan.kernels.push(Kernel {
            kind: KernelKind::Reduction {
                out: sum.clone(),
                reduced: vec![len.clone()],
                op: RedOp::Sum,
                expr,
            },
            origins: origins.clone(),
        });
        let count = if mode == 1 {
            let idx: Vec<E> = (0..2).map(eb::var).collect();
            let (keep, _) = counted(&idx[0], &idx[1]);
            let expr = eb::select(keep, eb::konst(1.0, f), eb::konst(0.0, f));
            let name = format!("{}_count", n.name);
            let cshape = vec![bags.clone()];
            let b = self.add_buffer(&name, f, &cshape, BufKind::Temp);
            let cv = View::dense(b, f, &cshape);
            self.plan.kernels.push(Kernel {
                kind: KernelKind::Reduction {
                    out: cv.clone(),
                    reduced: vec![len],
                    op: RedOp::Sum,
                    expr,
                },
                origins,
            });
            Some(cv)
        } else {
            None
        };
        let body: Body = Rc::new(move |idx: &[E]| {
            let s = eb::load(&sum, idx);
            let v = match &count {
                Some(c) => {
                    let c = eb::load(c, &idx[..1]);
                    let some = eb::cmp(CmpOp::Gt, c.clone(), eb::konst(0.0, f));
                    eb::select(some, eb::bin(BinOp::Div, s, c), eb::konst(0.0, f))
                }
                None => s,
            };
            eb::cast(dtype, v)
        });
        let out = self.lazy(dtype, out_shape, &[], 2, body);
        let mut outs = vec![Some(out)];
        outs.extend((1..n.outputs.len()).map(|_| None));
        Ok(Lowered::Many(outs))
    }

    /// The `(size, stride, storage_offset)` window of `as_strided` and
    /// `as_strided_scatter` over a storage of `numel` elements, when every
    /// element it reaches lies inside (and, when `disjoint`, no two
    /// positions reach the same element). Static sizes only.
    fn strided_window(&self, n: &Node, numel: &SymExpr, disjoint: bool) -> Result<Option<Window>> {
        let size = self.ints_arg(n, "size")?;
        let stride = self.ints_arg(n, "stride")?;
        let offset = match n.arg("storage_offset") {
            None | Some(Arg::None) => 0,
            Some(_) => self.int_arg(n, "storage_offset")?,
        };
        let Some(numel) = numel.as_int() else {
            return Ok(None);
        };
        if size.len() != stride.len() || offset < 0 || size.iter().chain(&stride).any(|&v| v < 0) {
            return Ok(None);
        }
        if !size.contains(&0) {
            let hi = size
                .iter()
                .zip(&stride)
                .try_fold(offset, |a, (&s, &t)| a.checked_add((s - 1).checked_mul(t)?));
            match hi {
                Some(h) if h < numel => {}
                _ => return Ok(None),
            }
            if disjoint {
                // Dims by stride: each must step past all the smaller ones.
                let mut dims: Vec<(i64, i64)> = size
                    .iter()
                    .zip(&stride)
                    .filter(|(&s, _)| s > 1)
                    .map(|(&s, &t)| (t, s))
                    .collect();
                dims.sort_unstable();
                let mut extent = 1i64;
                for (t, s) in dims {
                    if t < extent {
                        return Ok(None);
                    }
                    extent += t * (s - 1);
                }
            }
        }
        Ok(Some((size, stride, offset)))
    }

    /// `as_strided` of a tensor whose storage is its own dense buffer, as a
    /// strided view of that buffer: the input must be the output of a
    /// `clone`, which the interpreter (like torch for dense inputs) gives
    /// fresh row-major storage.
    fn as_strided(&mut self, n: &Node, dtype: DType, out_shape: &[SymExpr]) -> Result<Lowered> {
        let Some(Arg::Value(v)) = n.arg("self") else {
            return Ok(Lowered::Fallback);
        };
        let producer = self.g.producers()[v.index()].map(|i| &self.g.nodes[i]);
        let fresh = matches!(producer.map(|p| &p.op), Some(Op::Aten(Aten::Clone, _)));
        let t = self.tensor_arg(n, "self")?;
        if !fresh || t.dtype != dtype {
            return Ok(Lowered::Fallback);
        }
        let numel = SymExpr::mul(t.shape.clone());
        let Some((size, stride, offset)) = self.strided_window(n, &numel, false)? else {
            return Ok(Lowered::Fallback);
        };
        let shape: Vec<SymExpr> = size.iter().map(|&s| SymExpr::Int(s)).collect();
        if shape != out_shape {
            return Ok(Lowered::Fallback);
        }
        let base = self.realize(&t);
        let view = View {
            offset: SymExpr::Int(offset),
            strides: stride.into_iter().map(SymExpr::Int).collect(),
            shape,
            ..base
        };
        Ok(Lowered::One(stored(dtype, out_shape.to_vec(), view)))
    }

    /// `as_strided_scatter`: a dense copy of `self` with `src` stored into
    /// the strided window of the copy (positions that do not overlap).
    fn as_strided_scatter(
        &mut self,
        n: &Node,
        dtype: DType,
        out_shape: &[SymExpr],
    ) -> Result<Lowered> {
        let base = self.tensor_arg(n, "self")?;
        let src = self.tensor_arg(n, "src")?;
        if base.shape != out_shape {
            return Ok(Lowered::Fallback);
        }
        let numel = SymExpr::mul(out_shape.to_vec());
        let Some((size, stride, offset)) = self.strided_window(n, &numel, true)? else {
            return Ok(Lowered::Fallback);
        };
        let shape: Vec<SymExpr> = size.iter().map(|&s| SymExpr::Int(s)).collect();
        let out = self.temp(n.outputs[0], dtype, out_shape);
        self.store(&base, out.clone());
        let view = View {
            offset: SymExpr::Int(offset),
            strides: stride.into_iter().map(SymExpr::Int).collect(),
            shape: shape.clone(),
            ..out.clone()
        };
        let sb = self.broadcast(&src, &shape, n)?;
        let src = Tv {
            dtype: src.dtype,
            shape: shape.clone(),
            kind: TvKind::Lazy(sb, src.cost()),
            origins: if src.origins.is_empty() {
                Rc::new(vec![origin(n)])
            } else {
                src.origins.clone()
            },
        };
        self.store(&src, view);
        Ok(Lowered::One(stored(dtype, out_shape.to_vec(), out)))
    }

    /// `prelu(x, w)`: `x` where positive, else `w * x`; a weight of more
    /// than one element runs along dim 1 (the channels).
    fn prelu(&self, n: &Node, dtype: DType, fc: DType, shape: &[SymExpr]) -> Result<Lowered> {
        let x = self.tensor_arg(n, "self")?;
        let w = self.tensor_arg(n, "weight")?;
        let Some(numel) = SymExpr::mul(w.shape.clone()).as_int() else {
            return Ok(Lowered::Fallback);
        };
        let per_channel = numel > 1 && x.shape.len() >= 2;
        if per_channel {
            if w.shape.len() != 1 {
                return Ok(Lowered::Fallback);
            }
            self.require_eq(n, "the number of prelu weights", &w.shape[0], &shape[1])?;
        }
        let xb = self.broadcast(&x, shape, n)?;
        let wb: Body = if per_channel {
            let w = w.clone();
            Rc::new(move |idx: &[E]| w.at(&[idx[1].clone()]))
        } else {
            self.broadcast(&w, shape, n)?
        };
        let cost = x.cost() + w.cost() + 3;
        let body: Body = Rc::new(move |idx: &[E]| {
            let v = eb::cast(fc, xb(idx));
            let wv = eb::cast(fc, wb(idx));
            let pos = eb::cmp(CmpOp::Gt, v.clone(), eb::konst(0.0, fc));
            eb::cast(
                dtype,
                eb::select(pos, v.clone(), eb::bin(BinOp::Mul, wv, v)),
            )
        });
        Ok(Lowered::One(self.lazy(
            dtype,
            shape.to_vec(),
            &[&x.origins, &w.origins],
            cost,
            body,
        )))
    }

    /// `glu(x, dim)`: the first half along `dim` times the sigmoid of the
    /// second.
    fn glu(&self, n: &Node, dtype: DType, fc: DType, shape: &[SymExpr]) -> Result<Lowered> {
        let x = self.tensor_arg(n, "self")?;
        let rank = x.shape.len();
        if rank == 0 || shape.len() != rank {
            return Ok(Lowered::Fallback);
        }
        let d = wrap(n, self.int_arg(n, "dim")?, rank)?;
        let half = shape[d].clone();
        let full = SymExpr::mul(vec![half.clone(), SymExpr::Int(2)]);
        self.require_eq(n, "twice the halved dim of glu", &full, &x.shape[d])?;
        for i in (0..rank).filter(|&i| i != d) {
            self.require_eq(n, &format!("dim {i} of glu"), &shape[i], &x.shape[i])?;
        }
        let cost = x.cost() * 2 + 3;
        let xo = x.origins.clone();
        let body: Body = Rc::new(move |idx: &[E]| {
            let mut second = idx.to_vec();
            second[d] = eb::add(idx[d].clone(), eb::size(&half));
            let p = eb::cast(fc, x.at(idx));
            let q = eb::cast(fc, x.at(&second));
            eb::cast(dtype, eb::bin(BinOp::Mul, p, eb::un(UnOp::Sigmoid, q)))
        });
        Ok(Lowered::One(self.lazy(
            dtype,
            shape.to_vec(),
            &[&xo],
            cost,
            body,
        )))
    }

    /// `tril` / `triu`: the elements of the last two dims with `col - row`
    /// at most (at least) `diagonal`, zeros elsewhere.
    fn triangle(&self, n: &Node, lower: bool, dtype: DType, shape: &[SymExpr]) -> Result<Lowered> {
        let x = self.tensor_arg(n, "self")?;
        let rank = x.shape.len();
        if rank < 2 || x.shape.as_slice() != shape || x.dtype != dtype {
            return Ok(Lowered::Fallback);
        }
        let Some(diag) = self.sym_arg(n, "diagonal")? else {
            return Ok(Lowered::Fallback);
        };
        let cost = x.cost() + 2;
        let xo = x.origins.clone();
        let body: Body = Rc::new(move |idx: &[E]| {
            let off = eb::bin(BinOp::Sub, idx[rank - 1].clone(), idx[rank - 2].clone());
            let op = if lower { CmpOp::Le } else { CmpOp::Ge };
            let keep = eb::cmp(op, off, eb::size(&diag));
            eb::select(keep, x.at(idx), eb::konst(0.0, dtype))
        });
        Ok(Lowered::One(self.lazy(
            dtype,
            shape.to_vec(),
            &[&xo],
            cost,
            body,
        )))
    }

    /// `where(cond, a, b)` of the named arguments, broadcast to `shape`;
    /// the branches are computed in `compute`, the result cast to `dtype`.
    fn select(
        &self,
        n: &Node,
        [cond, a, b]: [&str; 3],
        dtype: DType,
        compute: DType,
        shape: &[SymExpr],
    ) -> Result<Lowered> {
        let c = self.operand(n, cond, DType::Bool, shape)?;
        let x = self.operand(n, a, compute, shape)?;
        let y = self.operand(n, b, compute, shape)?;
        let (Some(c), Some(x), Some(y)) = (c, x, y) else {
            return Ok(Lowered::Fallback);
        };
        let cost = 1 + c.2 + x.2 + y.2;
        let parts = [&c.1, &x.1, &y.1];
        let body: Body =
            Rc::new(move |idx: &[E]| eb::cast(dtype, eb::select(c.0(idx), x.0(idx), y.0(idx))));
        Ok(Lowered::One(self.lazy(
            dtype,
            shape.to_vec(),
            &parts,
            cost,
            body,
        )))
    }

    /// `constant_pad_nd`: `pad` holds `(before, after)` pairs from the last
    /// dim backwards (negative values crop). Elements outside the input
    /// take `value`; reads are clamped into the input, so none is out of
    /// bounds.
    fn constant_pad(&self, n: &Node, dtype: DType, out_shape: &[SymExpr]) -> Result<Lowered> {
        let t = self.tensor_arg(n, "self")?;
        let pad = self.ints_arg(n, "pad")?;
        let rank = t.shape.len();
        if pad.len() % 2 != 0 || pad.len() / 2 > rank || out_shape.len() != rank {
            return Ok(Lowered::Fallback);
        }
        let value = match self.scalar_expr(n, "value", dtype)? {
            Some(v) => v,
            None => eb::konst(0.0, dtype),
        };
        let mut lo = vec![0i64; rank];
        let mut padded = vec![false; rank];
        for (k, pair) in pad.chunks(2).enumerate() {
            let d = rank - 1 - k;
            lo[d] = pair[0];
            padded[d] = pair[0] != 0 || pair[1] != 0;
            let want = SymExpr::add(vec![t.shape[d].clone(), SymExpr::Int(pair[0] + pair[1])]);
            self.require_eq(
                n,
                &format!("dim {d} of the padded tensor"),
                &out_shape[d],
                &want,
            )?;
            if t.shape[d].as_int() == Some(0) {
                return Ok(Lowered::Fallback);
            }
        }
        let shape_in = t.shape.clone();
        let cost = t.cost() + 2;
        let origins = t.origins.clone();
        let body: Body = Rc::new(move |idx: &[E]| {
            let mut inside: Option<E> = None;
            let mut src = idx.to_vec();
            for d in 0..idx.len() {
                // Dims without padding read straight through.
                if !padded[d] {
                    continue;
                }
                let i = eb::add(idx[d].clone(), eb::int(-lo[d]));
                let size = eb::size(&shape_in[d]);
                let ok = eb::bin(
                    BinOp::BitAnd,
                    eb::cmp(CmpOp::Ge, i.clone(), eb::int(0)),
                    eb::cmp(CmpOp::Lt, i.clone(), size.clone()),
                );
                inside = Some(match inside {
                    Some(a) => eb::bin(BinOp::BitAnd, a, ok),
                    None => ok,
                });
                let last = eb::add(size, eb::int(-1));
                src[d] = eb::bin(BinOp::Min, eb::bin(BinOp::Max, i, eb::int(0)), last);
            }
            let x = eb::cast(dtype, t.at(&src));
            match inside {
                Some(c) => eb::select(c, x, value.clone()),
                None => x,
            }
        });
        Ok(Lowered::One(self.lazy(
            dtype,
            out_shape.to_vec(),
            &[&origins],
            cost,
            body,
        )))
    }

    /// An activation applied to the output of the convolution just
    /// scheduled, when nothing else reads that output: it moves into the
    /// convolution's epilogue.
    fn fuse_conv_act(&mut self, n: &Node, act: Act) -> Result<Option<Lowered>> {
        let Some(Arg::Value(v)) = n.arg("self") else {
            return Ok(None);
        };
        if self.uses[v.index()] != 1 {
            return Ok(None);
        }
        let Val::T(t) = self.val(*v)? else {
            return Ok(None);
        };
        let (TvKind::View(view), Ok((dtype, shape))) = (&t.kind, self.out_type(n)) else {
            return Ok(None);
        };
        if dtype != DType::F32 || t.dtype != DType::F32 || shape != t.shape {
            return Ok(None);
        }
        let Some(last) = self.plan.kernels.last_mut() else {
            return Ok(None);
        };
        if let KernelKind::Extern(e) = &mut last.kind {
            if let Extern::Conv2d { y, act: a, .. } = &mut **e {
                if y.buf == view.buf && *a == Act::None {
                    *a = act;
                    last.origins.push(origin(n));
                    return Ok(Some(Lowered::One(t.clone())));
                }
            }
        }
        Ok(None)
    }

    /// Pooling over the last `sd` dims as a reduction over the window:
    /// fixed windows (kernel, stride, padding, dilation) or torch's adaptive
    /// ones (`[floor(o in / out), ceil((o + 1) in / out))`, reduced over the
    /// largest). Averages divide each element by torch's divisor (the window
    /// clipped to the padded input with `count_include_pad`, else to the
    /// input, or `divisor_override`), maxima read `-inf` outside the input.
    /// Static spatial sizes only.
    fn pool(
        &mut self,
        n: &Node,
        kind: Pool,
        sd: usize,
        dtype: DType,
        out_shape: &[SymExpr],
    ) -> Result<Lowered> {
        let x = self.tensor_arg(n, "self")?;
        let rank = x.shape.len();
        if !dtype.is_float() || x.dtype != dtype || !(rank == sd + 1 || rank == sd + 2) {
            return Ok(Lowered::Fallback);
        }
        if out_shape.len() != rank {
            return Ok(Lowered::Fallback);
        }
        for (d, (o, i)) in out_shape.iter().zip(&x.shape).take(rank - sd).enumerate() {
            self.require_eq(n, &format!("dim {d} of the pooled tensor"), o, i)?;
        }
        let mut ins = Vec::new();
        let mut outs = Vec::new();
        for (xd, od) in x.shape.iter().zip(out_shape).skip(rank - sd) {
            let (Some(i), Some(o)) = (xd.as_int(), od.as_int()) else {
                return Ok(Lowered::Fallback);
            };
            if i <= 0 || o < 0 {
                return Ok(Lowered::Fallback);
            }
            ins.push(i);
            outs.push(o);
        }
        let adaptive = matches!(kind, Pool::AdaptiveAvg | Pool::AdaptiveMax);
        // Per axis: window extent, stride, padding, dilation (fixed windows).
        let mut win = Vec::new();
        if adaptive {
            let want = self.ints_arg(n, "output_size")?;
            if want.len() != sd || want.iter().zip(&outs).any(|(a, b)| a != b) {
                return Ok(Lowered::Fallback);
            }
            for k in 0..sd {
                let (i, o) = (ins[k], outs[k]);
                let widest = (0..o)
                    .map(|j| ((j + 1) * i + o - 1) / o - j * i / o)
                    .max()
                    .unwrap_or(1);
                win.push([widest, 0, 0, 1]);
            }
        } else {
            let arg = |name: &str, d: &[i64]| -> Result<Vec<i64>> {
                let v = match n.arg(name) {
                    None | Some(Arg::None) => d.to_vec(),
                    Some(_) => self.ints_arg(n, name)?,
                };
                Ok(match v.len() {
                    0 => d.to_vec(),
                    1 => vec![v[0]; sd],
                    _ => v,
                })
            };
            let k = arg("kernel_size", &vec![1; sd])?;
            let s = arg("stride", &k)?;
            let p = arg("padding", &vec![0; sd])?;
            let dl = match kind {
                Pool::Max => arg("dilation", &vec![1; sd])?,
                _ => vec![1; sd],
            };
            if [&k, &s, &p, &dl].iter().any(|v| v.len() != sd)
                || k.iter().chain(&s).chain(&dl).any(|&v| v <= 0)
            {
                return Ok(Lowered::Fallback);
            }
            for a in 0..sd {
                win.push([k[a], s[a], p[a], dl[a]]);
            }
        }
        let acc = if dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let reduced: Vec<SymExpr> = win.iter().map(|w| SymExpr::Int(w[0])).collect();
        let no = rank;
        let xe = x.clone();
        let expr_of = move |idx: &[E]| -> E {
            let mut inside: Option<E> = None;
            let mut at = idx[..no - sd].to_vec();
            let mut divisor: Option<E> = None;
            for a in 0..sd {
                let o = idx[no - sd + a].clone();
                let kk = idx[no + a].clone();
                let len = ins[a];
                let [k, s, p, dl] = win[a];
                let (start, end) = if adaptive {
                    let out = outs[a];
                    let start = eb::bin(
                        BinOp::FloorDiv,
                        eb::mul(o.clone(), eb::int(len)),
                        eb::int(out),
                    );
                    let next = eb::add(
                        eb::mul(eb::add(o, eb::int(1)), eb::int(len)),
                        eb::int(out - 1),
                    );
                    (start, eb::bin(BinOp::FloorDiv, next, eb::int(out)))
                } else {
                    let start = eb::add(eb::mul(o, eb::int(s)), eb::int(-p));
                    // The padded window's end, as torch clips it.
                    let end = eb::bin(
                        BinOp::Min,
                        eb::add(start.clone(), eb::int(k)),
                        eb::int(len + p),
                    );
                    (start, end)
                };
                let i = eb::add(start.clone(), eb::mul(kk, eb::int(dl)));
                let mut ok = eb::bin(
                    BinOp::BitAnd,
                    eb::cmp(CmpOp::Ge, i.clone(), eb::int(0)),
                    eb::cmp(CmpOp::Lt, i.clone(), eb::int(len)),
                );
                if adaptive {
                    ok = eb::bin(
                        BinOp::BitAnd,
                        ok,
                        eb::cmp(CmpOp::Lt, i.clone(), end.clone()),
                    );
                }
                inside = Some(match inside {
                    Some(c) => eb::bin(BinOp::BitAnd, c, ok),
                    None => ok,
                });
                at.push(eb::bin(
                    BinOp::Min,
                    eb::bin(BinOp::Max, i, eb::int(0)),
                    eb::int(len - 1),
                ));
                let count = match kind {
                    Pool::Avg(true, None) => eb::bin(BinOp::Sub, end, start),
                    Pool::Avg(false, None) => eb::bin(
                        BinOp::Sub,
                        eb::bin(BinOp::Min, end, eb::int(len)),
                        eb::bin(BinOp::Max, start, eb::int(0)),
                    ),
                    Pool::AdaptiveAvg => eb::bin(BinOp::Sub, end, start),
                    _ => eb::int(1),
                };
                divisor = Some(match divisor {
                    Some(d) => eb::mul(d, count),
                    None => count,
                });
            }
            let v = eb::cast(acc, xe.at(&at));
            let inside = inside.unwrap_or_else(|| eb::konst(1.0, DType::Bool));
            match kind {
                Pool::Max | Pool::AdaptiveMax => {
                    eb::select(inside, v, eb::konst(f64::NEG_INFINITY, acc))
                }
                _ => {
                    let div = match kind {
                        Pool::Avg(_, Some(d)) => eb::int(d),
                        _ => divisor.unwrap_or_else(|| eb::int(1)),
                    };
                    let v = eb::select(inside, v, eb::konst(0.0, acc));
                    eb::bin(BinOp::Div, v, eb::cast(acc, div))
                }
            }
        };
        let idx: Vec<E> = (0..no + sd).map(eb::var).collect();
        let expr = expr_of(&idx);
        let out = self.temp(n.outputs[0], dtype, out_shape);
        let mut origins = (*x.origins).clone();
        origins.push(origin(n));
        let op = match kind {
            Pool::Max | Pool::AdaptiveMax => RedOp::Max,
            _ => RedOp::Sum,
        };
        self.plan.kernels.push(Kernel {
            kind: KernelKind::Reduction {
                out: out.clone(),
                reduced,
                op,
                expr,
            },
            origins,
        });
        Ok(Lowered::One(stored(dtype, out_shape.to_vec(), out)))
    }

    /// `upsample_nearest2d` (`.default` with optional per-axis scales, or
    /// `.vec` with an output size or scale factors): a gather along the
    /// last two dims through aten's `nearest_idx`: the same index when the
    /// size is kept, half of it when doubled, else `min(floor(o * s),
    /// in - 1)` in f32 with `s = 1 / scale` (given) or `in / out`. Static
    /// spatial sizes only.
    fn upsample_nearest2d(
        &mut self,
        n: &Node,
        ov: &str,
        dtype: DType,
        out_shape: &[SymExpr],
    ) -> Result<Lowered> {
        let name = if n.arg("input").is_some() {
            "input"
        } else {
            "self"
        };
        let x = self.tensor_arg(n, name)?;
        let rank = x.shape.len();
        if !dtype.is_float() || x.dtype != dtype || rank < 3 || out_shape.len() != rank {
            return Ok(Lowered::Fallback);
        }
        let floats = |name: &str| -> Option<Vec<f64>> {
            match n.arg(name) {
                Some(Arg::Floats(v)) => Some(v.clone()),
                Some(Arg::Ints(v)) => Some(v.iter().map(|&i| i as f64).collect()),
                Some(Arg::Float(f)) => Some(vec![*f]),
                Some(Arg::Int(i)) => Some(vec![*i as f64]),
                _ => None,
            }
        };
        let scales: [Option<f64>; 2] = if ov == "vec" {
            match floats("scale_factors") {
                Some(f) if f.len() == 2 => [Some(f[0]), Some(f[1])],
                Some(f) if f.len() == 1 => [Some(f[0]), Some(f[0])],
                Some(_) => return Ok(Lowered::Fallback),
                None => [None, None],
            }
        } else {
            let one = |name: &str| floats(name).and_then(|f| f.first().copied());
            [one("scales_h"), one("scales_w")]
        };
        for (d, (o, i)) in out_shape.iter().zip(&x.shape).take(rank - 2).enumerate() {
            self.require_eq(n, &format!("dim {d} of the upsampled tensor"), o, i)?;
        }
        let mut maps = Vec::new();
        for (k, scale) in scales.into_iter().enumerate() {
            let d = rank - 2 + k;
            let (Some(inp), Some(out)) = (x.shape[d].as_int(), out_shape[d].as_int()) else {
                return Ok(Lowered::Fallback);
            };
            if inp <= 0 || out <= 0 {
                return Ok(Lowered::Fallback);
            }
            let s = match scale {
                Some(s) if s > 0.0 => 1.0 / s,
                _ => inp as f64 / out as f64,
            } as f32;
            maps.push((inp, out, s));
        }
        let (xo, cost) = (x.origins.clone(), x.cost() + 2);
        let body: Body = Rc::new(move |idx: &[E]| {
            let mut at = idx.to_vec();
            for (k, &(inp, out, s)) in maps.iter().enumerate() {
                let d = rank - 2 + k;
                let o = idx[d].clone();
                at[d] = if out == inp {
                    o
                } else if out == 2 * inp {
                    eb::bin(BinOp::FloorDiv, o, eb::int(2))
                } else {
                    let f = eb::bin(
                        BinOp::Mul,
                        eb::cast(DType::F32, o),
                        eb::konst(s as f64, DType::F32),
                    );
                    let i = eb::cast(DType::I64, eb::un(UnOp::Floor, f));
                    eb::bin(BinOp::Min, i, eb::int(inp - 1))
                };
            }
            x.at(&at)
        });
        Ok(Lowered::One(self.lazy(
            dtype,
            out_shape.to_vec(),
            &[&xo],
            cost,
            body,
        )))
    }

    /// Resampling of the last `axes` dims (`nearest-exact`, linear or
    /// cubic) with aten's source-index rules, as the interpreter computes
    /// them: the source position and the weights in f64 (nearest-exact in
    /// f32), the taps clamped into the input, the weighted sum in f64.
    /// Static spatial sizes only.
    fn resample(
        &mut self,
        n: &Node,
        ov: &str,
        mode: Resample,
        axes: usize,
        dtype: DType,
        out_shape: &[SymExpr],
    ) -> Result<Lowered> {
        let name = if n.arg("input").is_some() {
            "input"
        } else {
            "self"
        };
        let x = self.tensor_arg(n, name)?;
        let rank = x.shape.len();
        let ranks_ok = if axes == 1 {
            rank == 3
        } else {
            rank == 3 || rank == 4
        };
        if !dtype.is_float() || x.dtype != dtype || !ranks_ok || out_shape.len() != rank {
            return Ok(Lowered::Fallback);
        }
        let align = mode != Resample::NearestExact && self.bool_arg(n, "align_corners")?;
        let floats = |name: &str| -> Option<Vec<f64>> {
            match n.arg(name) {
                Some(Arg::Floats(v)) => Some(v.clone()),
                Some(Arg::Ints(v)) => Some(v.iter().map(|&i| i as f64).collect()),
                Some(Arg::Float(f)) => Some(vec![*f]),
                Some(Arg::Int(i)) => Some(vec![*i as f64]),
                _ => None,
            }
        };
        let scales: Vec<Option<f64>> = if ov == "vec" {
            match floats("scale_factors") {
                Some(f) if f.len() == axes => f.into_iter().map(Some).collect(),
                Some(f) if f.len() == 1 => vec![Some(f[0]); axes],
                Some(_) => return Ok(Lowered::Fallback),
                None => vec![None; axes],
            }
        } else if axes == 1 {
            vec![floats("scales").and_then(|f| f.first().copied())]
        } else {
            let one = |name: &str| floats(name).and_then(|f| f.first().copied());
            vec![one("scales_h"), one("scales_w")]
        };
        for (d, (o, i)) in out_shape.iter().zip(&x.shape).take(rank - axes).enumerate() {
            self.require_eq(n, &format!("dim {d} of the resampled tensor"), o, i)?;
        }
        let mut sizes = Vec::new();
        for (k, scale) in scales.into_iter().enumerate() {
            let d = rank - axes + k;
            let (Some(inp), Some(out)) = (x.shape[d].as_int(), out_shape[d].as_int()) else {
                return Ok(Lowered::Fallback);
            };
            if inp <= 0 || out <= 0 {
                return Ok(Lowered::Fallback);
            }
            // `in / out`, or `1 / scale` (aten's compute_scales_value), and
            // the step between source positions (area_pixel_compute_scale).
            let value = match scale {
                Some(s) if s > 0.0 => 1.0 / s,
                _ => inp as f64 / out as f64,
            };
            let step = match (align, out > 1) {
                (true, true) => (inp as f64 - 1.0) / (out as f64 - 1.0),
                (true, false) => 0.0,
                (false, _) => value,
            };
            sizes.push((inp, value, step));
        }
        let f = DType::F64;
        let (xo, cost) = (x.origins.clone(), x.cost() + 8);
        let body: Body = Rc::new(move |idx: &[E]| {
            // Per axis: (source index, weight) taps.
            let mut taps: Vec<Vec<(E, E)>> = Vec::new();
            for (k, &(inp, value, step)) in sizes.iter().enumerate() {
                let o = idx[rank - axes + k].clone();
                let last = eb::int(inp - 1);
                let to_index = |v: E| eb::cast(DType::I64, eb::un(UnOp::Floor, v));
                let of = eb::cast(f, o.clone());
                let half = |v: E| eb::bin(BinOp::Add, v, eb::konst(0.5, f));
                taps.push(match mode {
                    Resample::NearestExact => {
                        let g = DType::F32;
                        let p = eb::bin(
                            BinOp::Mul,
                            eb::bin(BinOp::Add, eb::cast(g, o), eb::konst(0.5, g)),
                            eb::konst(value as f32 as f64, g),
                        );
                        let i = eb::bin(BinOp::Min, to_index(p), last);
                        vec![(i, eb::konst(1.0, f))]
                    }
                    Resample::Linear => {
                        let src = if align {
                            eb::bin(BinOp::Mul, eb::konst(step, f), of)
                        } else {
                            let v = eb::bin(
                                BinOp::Sub,
                                eb::bin(BinOp::Mul, eb::konst(step, f), half(of)),
                                eb::konst(0.5, f),
                            );
                            eb::bin(BinOp::Max, v, eb::konst(0.0, f))
                        };
                        let i0 = eb::bin(BinOp::Min, to_index(src.clone()), last.clone());
                        let i1 = eb::bin(BinOp::Min, eb::add(i0.clone(), eb::int(1)), last);
                        let l1 = eb::bin(BinOp::Sub, src, eb::cast(f, i0.clone()));
                        let l1 = clamp(&l1, Some(&eb::konst(0.0, f)), Some(&eb::konst(1.0, f)));
                        let l0 = eb::bin(BinOp::Sub, eb::konst(1.0, f), l1.clone());
                        vec![(i0, l0), (i1, l1)]
                    }
                    Resample::Cubic => {
                        const A: f64 = -0.75;
                        let src = if align {
                            eb::bin(BinOp::Mul, eb::konst(step, f), of)
                        } else {
                            eb::bin(
                                BinOp::Sub,
                                eb::bin(BinOp::Mul, eb::konst(step, f), half(of)),
                                eb::konst(0.5, f),
                            )
                        };
                        let fl = eb::un(UnOp::Floor, src.clone());
                        let t = eb::bin(BinOp::Sub, src, fl.clone());
                        let c = |v: f64| eb::konst(v, f);
                        let mul = |a: E, b: E| eb::bin(BinOp::Mul, a, b);
                        let near = |x: E| {
                            // ((A + 2) x - (A + 3)) x x + 1
                            let p = eb::bin(BinOp::Sub, mul(c(A + 2.0), x.clone()), c(A + 3.0));
                            eb::bin(BinOp::Add, mul(mul(p, x.clone()), x), c(1.0))
                        };
                        let far = |x: E| {
                            // ((A x - 5 A) x + 8 A) x - 4 A
                            let p = eb::bin(BinOp::Sub, mul(c(A), x.clone()), c(5.0 * A));
                            let p = eb::bin(BinOp::Add, mul(p, x.clone()), c(8.0 * A));
                            eb::bin(BinOp::Sub, mul(p, x), c(4.0 * A))
                        };
                        let ws = [
                            far(eb::bin(BinOp::Add, t.clone(), c(1.0))),
                            near(t.clone()),
                            near(eb::bin(BinOp::Sub, c(1.0), t.clone())),
                            far(eb::bin(BinOp::Sub, c(2.0), t)),
                        ];
                        let base = eb::cast(DType::I64, fl);
                        ws.into_iter()
                            .enumerate()
                            .map(|(j, w)| {
                                let i = eb::add(base.clone(), eb::int(j as i64 - 1));
                                (clamp(&i, Some(&eb::int(0)), Some(&last)), w)
                            })
                            .collect()
                    }
                });
            }
            let lead = idx[..rank - axes].to_vec();
            let load = |spatial: &[E]| {
                let mut at = lead.clone();
                at.extend_from_slice(spatial);
                eb::cast(f, x.at(&at))
            };
            let sum = |terms: Vec<E>| {
                let mut it = terms.into_iter();
                let first = it.next().unwrap_or_else(|| eb::konst(0.0, f));
                it.fold(first, |a, b| eb::bin(BinOp::Add, a, b))
            };
            let v = if mode == Resample::NearestExact {
                let at: Vec<E> = taps.iter().map(|t| t[0].0.clone()).collect();
                load(&at)
            } else if axes == 1 {
                sum(taps[0]
                    .iter()
                    .map(|(i, w)| eb::bin(BinOp::Mul, w.clone(), load(std::slice::from_ref(i))))
                    .collect())
            } else {
                sum(taps[0]
                    .iter()
                    .map(|(r, a)| {
                        let row = sum(taps[1]
                            .iter()
                            .map(|(c, b)| {
                                eb::bin(BinOp::Mul, b.clone(), load(&[r.clone(), c.clone()]))
                            })
                            .collect());
                        eb::bin(BinOp::Mul, a.clone(), row)
                    })
                    .collect())
            };
            eb::cast(dtype, v)
        });
        Ok(Lowered::One(self.lazy(
            dtype,
            out_shape.to_vec(),
            &[&xo],
            cost,
            body,
        )))
    }

    fn constant(&self, dtype: DType, shape: Vec<SymExpr>, v: E) -> Lowered {
        let body: Body = Rc::new(move |_: &[E]| v.clone());
        Lowered::One(self.lazy(dtype, shape, &[], 0, body))
    }

    fn slice_start(&self, n: &Node, size: &SymExpr) -> Result<Option<SymExpr>> {
        Ok(match self.sym_arg(n, "start")? {
            None => Some(SymExpr::Int(0)),
            Some(SymExpr::Int(s)) if s >= 0 => match size.as_int() {
                Some(sz) => Some(SymExpr::Int(s.min(sz))),
                None => Some(SymExpr::Int(s)),
            },
            Some(SymExpr::Int(s)) => size.as_int().map(|sz| SymExpr::Int((sz + s).max(0))),
            Some(e) => Some(e),
        })
    }

    fn reshape(&mut self, n: &Node, out_shape: Vec<SymExpr>) -> Result<Lowered> {
        let t = self.tensor_arg(n, "self")?;
        if t.shape == out_shape {
            return Ok(Lowered::One(t));
        }
        let (src_n, out_n) = (
            SymExpr::mul(t.shape.clone()),
            SymExpr::mul(out_shape.clone()),
        );
        if src_n != out_n {
            if let (Some(a), Some(b)) = (src_n.as_int(), out_n.as_int()) {
                return Err(n.error(format!("a view of {a} elements as {b} elements")));
            }
            self.plan.checks.push(SizeCheck {
                node: n.name.clone(),
                loc: n.meta.source_line(),
                what: "element count of the view".into(),
                lhs: out_n,
                rhs: src_n,
            });
        }
        // Inserting or removing size-1 dims is an index map on any value.
        if let Some(t2) = unit_dims_map(&t, &out_shape) {
            return Ok(Lowered::One(t2));
        }
        let v = match &t.kind {
            TvKind::View(v) => match restride(v, &out_shape) {
                Some(v2) => v2,
                None => {
                    let d = self.realize(&t);
                    View {
                        strides: dense_strides(&out_shape),
                        shape: out_shape.clone(),
                        ..d
                    }
                }
            },
            TvKind::Lazy(..) => {
                let d = self.realize(&t);
                View {
                    strides: dense_strides(&out_shape),
                    shape: out_shape.clone(),
                    ..d
                }
            }
        };
        Ok(Lowered::One(stored(t.dtype, out_shape, v)))
    }

    fn reshape_unit_dims(&mut self, n: &Node, out_shape: &[SymExpr]) -> Result<Lowered> {
        let t = self.tensor_arg(n, "self")?;
        match unit_dims_map(&t, out_shape) {
            Some(t2) => Ok(Lowered::One(t2)),
            None => self.reshape(n, out_shape.to_vec()),
        }
    }

    fn index(&mut self, n: &Node, dtype: DType, out_shape: Vec<SymExpr>) -> Result<Lowered> {
        let t = self.tensor_arg(n, "self")?;
        let Some(ix) = self.index_coords(n, &t.shape)? else {
            return Ok(Lowered::Fallback);
        };
        if ix.shape.len() != out_shape.len() {
            return Ok(Lowered::Fallback);
        }
        for (i, (a, b)) in ix.shape.iter().zip(&out_shape).enumerate() {
            self.require_eq(n, &format!("dim {i} of the indexing result"), b, a)?;
        }
        let mut parts = ix.parts.clone();
        parts.push(t.origins.clone());
        let cost = t.cost() + ix.cost;
        let coords = ix.coords.clone();
        let body: Body = Rc::new(move |idx: &[E]| t.at(&coords(idx)));
        let parts: Vec<&Rc<Vec<Origin>>> = parts.iter().collect();
        Ok(Lowered::One(
            self.lazy(dtype, out_shape, &parts, cost, body),
        ))
    }

    /// Advanced indexing of a tensor of `shape` by the node's `indices`
    /// (integer tensors and `None`s): the shape of the result and, for each
    /// index of it, the indexed element's coordinates (the data-driven ones
    /// wrapped when negative and checked to lie in range).
    fn index_coords(&self, n: &Node, shape: &[SymExpr]) -> Result<Option<IndexCoords>> {
        let Some(Arg::List(items)) = n.arg("indices") else {
            return Ok(None);
        };
        let mut ixs: Vec<Option<Tv>> = Vec::new();
        for it in items {
            match it {
                Arg::None => ixs.push(None),
                Arg::Value(v) => match self.val(*v)? {
                    Val::T(x) if matches!(x.dtype, DType::I64 | DType::I32) => ixs.push(Some(x)),
                    _ => return Ok(None),
                },
                _ => return Ok(None),
            }
        }
        let present: Vec<usize> = (0..ixs.len()).filter(|&i| ixs[i].is_some()).collect();
        let rank = shape.len();
        if present.is_empty() || ixs.len() > rank {
            return Ok(None);
        }
        let adjacent = present.windows(2).all(|w| w[1] == w[0] + 1);
        let first = present[0];
        // The broadcast shape of the index tensors.
        let mut bshape: Vec<SymExpr> = Vec::new();
        for i in &present {
            let s = &ixs[*i]
                .as_ref()
                .map(|x| x.shape.clone())
                .unwrap_or_default();
            bshape = broadcast_shape(&bshape, s);
        }
        let rb = bshape.len();
        let at_front = !adjacent;
        let mut want: Vec<SymExpr> = Vec::new();
        let others: Vec<SymExpr> = (0..rank)
            .filter(|d| !present.contains(d))
            .map(|d| shape[d].clone())
            .collect();
        if at_front {
            want.extend(bshape.iter().cloned());
            want.extend(others.iter().cloned());
        } else {
            want.extend(others[..first].iter().cloned());
            want.extend(bshape.iter().cloned());
            want.extend(others[first..].iter().cloned());
        }
        let shape_t = shape.to_vec();
        let mut parts = Vec::new();
        let mut cost = 0;
        let mut bodies: Vec<Option<(Body, SymExpr)>> = Vec::new();
        for (i, x) in ixs.iter().enumerate() {
            match x {
                Some(x) => {
                    parts.push(x.origins.clone());
                    cost += x.cost();
                    bodies.push(Some((self.broadcast(x, &bshape, n)?, shape_t[i].clone())));
                }
                None => bodies.push(None),
            }
        }
        let np = ixs.len();
        let coords: IndexMap = Rc::new(move |idx: &[E]| {
            // Result dims: [pre.., b.., post..] (adjacent) or [b.., rest..].
            let (bidx, other): (Vec<E>, Vec<E>) = if at_front {
                (idx[..rb].to_vec(), idx[rb..].to_vec())
            } else {
                let mut o = idx[..first].to_vec();
                o.extend_from_slice(&idx[first + rb..]);
                (idx[first..first + rb].to_vec(), o)
            };
            let mut src = Vec::with_capacity(rank);
            let mut k = 0;
            for d in 0..rank {
                match bodies.get(d).and_then(|b| b.as_ref()) {
                    Some((b, size)) if d < np => {
                        let i = eb::cast(DType::I64, b(&bidx));
                        src.push(Rc::new(Expr::Index(i, size.clone())));
                    }
                    _ => {
                        src.push(other[k].clone());
                        k += 1;
                    }
                }
            }
            src
        });
        Ok(Some(IndexCoords {
            shape: want,
            coords,
            parts,
            cost,
        }))
    }

    /// A copy of `base` (of `out_shape`) with `values(i)` combined (`op`)
    /// into the element at `coords(i)` for each index `i` of `upd` in
    /// row-major order: the copy, the element offsets and the values as
    /// pointwise kernels, then the runtime's scatter. Floats combine in
    /// f64, integers and bools in i64, then the result is cast back.
    #[allow(clippy::too_many_arguments)]
    fn scatter_into(
        &mut self,
        n: &Node,
        base: &Tv,
        upd: &[SymExpr],
        coords: IndexMap,
        values: Body,
        op: ScatterOp,
        include_self: bool,
        dtype: DType,
        out_shape: &[SymExpr],
    ) -> Result<Lowered> {
        if base.shape != out_shape {
            return Ok(Lowered::Fallback);
        }
        let acc = if dtype.is_float() {
            DType::F64
        } else {
            DType::I64
        };
        let name = format!("{}_acc", n.name);
        let b = self.add_buffer(&name, acc, out_shape, BufKind::Temp);
        let out = View::dense(b, acc, out_shape);
        let copy = Tv {
            origins: Rc::new(vec![origin(n)]),
            ..base.clone()
        };
        self.store(&copy, out.clone());
        let strides = dense_strides(out_shape);
        let offs: Body =
            Rc::new(move |idx: &[E]| eb::offset(&SymExpr::Int(0), &strides, &coords(idx)));
        let offs = self.lazy(DType::I64, upd.to_vec(), &[], 1, offs);
        let offs = self.realize(&Tv {
            origins: Rc::new(vec![origin(n)]),
            ..offs
        });
        let vals = self.lazy(acc, upd.to_vec(), &[], 1, values);
        let vals = self.realize(&Tv {
            origins: Rc::new(vec![origin(n)]),
            ..vals
        });
        self.push(
            n,
            KernelKind::Extern(Box::new(Extern::Scatter {
                offsets: offs,
                values: vals,
                out: out.clone(),
                op,
                include_self,
            })),
        );
        let body: Body = Rc::new(move |idx: &[E]| eb::cast(dtype, eb::load(&out, idx)));
        Ok(Lowered::One(self.lazy(
            dtype,
            out_shape.to_vec(),
            &[],
            1,
            body,
        )))
    }

    /// `scatter` (src or value, optionally reducing), `scatter_add` and
    /// `scatter_reduce`: along `dim`, element `i` of the index lands at
    /// `i` with its `dim` coordinate replaced by the index's value.
    fn scatter_dim(
        &mut self,
        n: &Node,
        a: Aten,
        ov: &str,
        dtype: DType,
        out_shape: &[SymExpr],
    ) -> Result<Lowered> {
        let base = self.tensor_arg(n, "self")?;
        let index = self.tensor_arg(n, "index")?;
        let rank = base.shape.len();
        if rank == 0 || index.shape.len() != rank || !matches!(index.dtype, DType::I64 | DType::I32)
        {
            return Ok(Lowered::Fallback);
        }
        let d = wrap(n, self.int_arg(n, "dim")?, rank)?;
        // Every other coordinate of the index must lie inside `self`.
        for k in (0..rank).filter(|&k| k != d) {
            let (Some(i), Some(t)) = (index.shape[k].as_int(), base.shape[k].as_int()) else {
                if index.shape[k] == base.shape[k] {
                    continue;
                }
                return Ok(Lowered::Fallback);
            };
            if i > t {
                return Err(n.error(format!(
                    "the index's dim {k} of {i} exceeds the tensor's {t}"
                )));
            }
        }
        let (op, include_self) = match (a, ov) {
            (Aten::ScatterAdd, _) => (ScatterOp::Add, true),
            (Aten::ScatterReduce, "two") => {
                let op = match n.arg("reduce") {
                    Some(Arg::Str(r)) => match r.as_str() {
                        "sum" => ScatterOp::Add,
                        "prod" => ScatterOp::Mul,
                        "mean" => ScatterOp::Mean,
                        "amax" => ScatterOp::Amax,
                        "amin" => ScatterOp::Amin,
                        _ => return Ok(Lowered::Fallback),
                    },
                    _ => return Ok(Lowered::Fallback),
                };
                (op, self.bool_arg(n, "include_self")?)
            }
            (Aten::Scatter, "src" | "value") => (ScatterOp::Set, true),
            (Aten::Scatter, "reduce" | "value_reduce") => match n.arg("reduce") {
                Some(Arg::Str(r)) if r == "add" => (ScatterOp::Add, true),
                Some(Arg::Str(r)) if r == "multiply" => (ScatterOp::Mul, true),
                _ => return Ok(Lowered::Fallback),
            },
            _ => return Ok(Lowered::Fallback),
        };
        let acc = if dtype.is_float() {
            DType::F64
        } else {
            DType::I64
        };
        let values: Body = if n.arg("src").is_some() {
            let src = self.tensor_arg(n, "src")?;
            if src.shape.len() != rank {
                return Ok(Lowered::Fallback);
            }
            for k in 0..rank {
                let (Some(i), Some(s)) = (index.shape[k].as_int(), src.shape[k].as_int()) else {
                    if index.shape[k] == src.shape[k] {
                        continue;
                    }
                    return Ok(Lowered::Fallback);
                };
                if i > s {
                    return Err(n.error(format!(
                        "the index's dim {k} of {i} exceeds the source's {s}"
                    )));
                }
            }
            // Round to the dtype first, as the source is of it.
            Rc::new(move |idx: &[E]| eb::cast(acc, eb::cast(dtype, src.at(idx))))
        } else {
            let Some(v) = self.scalar_expr(n, "value", dtype)? else {
                return Ok(Lowered::Fallback);
            };
            Rc::new(move |_: &[E]| eb::cast(acc, v.clone()))
        };
        let size = base.shape[d].clone();
        let ix = index.clone();
        let coords: IndexMap = Rc::new(move |idx: &[E]| {
            let mut at = idx.to_vec();
            at[d] = Rc::new(Expr::Index(eb::cast(DType::I64, ix.at(idx)), size.clone()));
            at
        });
        let upd = index.shape.clone();
        self.scatter_into(
            n,
            &base,
            &upd,
            coords,
            values,
            op,
            include_self,
            dtype,
            out_shape,
        )
    }

    /// `index_put` (and `_unsafe_index_put`): `values`, broadcast to the
    /// indexing result, stored (or added, with `accumulate`) at the indexed
    /// elements.
    fn index_put(&mut self, n: &Node, dtype: DType, out_shape: &[SymExpr]) -> Result<Lowered> {
        let base = self.tensor_arg(n, "self")?;
        let values = self.tensor_arg(n, "values")?;
        let accumulate = self.bool_arg(n, "accumulate")?;
        let Some(ix) = self.index_coords(n, &base.shape)? else {
            return Ok(Lowered::Fallback);
        };
        let acc = if dtype.is_float() {
            DType::F64
        } else {
            DType::I64
        };
        let vb = self.broadcast(&values, &ix.shape, n)?;
        let body: Body = Rc::new(move |idx: &[E]| eb::cast(acc, eb::cast(dtype, vb(idx))));
        let op = if accumulate {
            ScatterOp::Add
        } else {
            ScatterOp::Set
        };
        let upd = ix.shape.clone();
        self.scatter_into(n, &base, &upd, ix.coords, body, op, true, dtype, out_shape)
    }

    /// `index_add(self, dim, index, source, alpha)`: `alpha * source`'s
    /// slices along `dim` added at the slices the index names.
    /// `index_add` (`x[.., index[i], ..] += alpha * source[.., i, ..]`),
    /// `index_copy` (`= source[.., i, ..]`) and `index_fill` (`= value`)
    /// along `dim`: a scatter through the runtime.
    fn index_along(
        &mut self,
        n: &Node,
        dtype: DType,
        out_shape: &[SymExpr],
        op: Aten,
    ) -> Result<Lowered> {
        let base = self.tensor_arg(n, "self")?;
        let index = self.tensor_arg(n, "index")?;
        let rank = base.shape.len();
        if rank == 0 || index.shape.len() != 1 {
            return Ok(Lowered::Fallback);
        }
        if !matches!(index.dtype, DType::I64 | DType::I32) {
            return Ok(Lowered::Fallback);
        }
        let d = wrap(n, self.int_arg(n, "dim")?, rank)?;
        let acc = if dtype.is_float() {
            DType::F64
        } else {
            DType::I64
        };
        let (values, upd): (Body, Vec<SymExpr>) = if op == Aten::IndexFill {
            // One value for every element of the selected slices.
            let value: E = match n.arg("value") {
                Some(Arg::Value(v)) => match self.val(*v)? {
                    Val::T(t) if t.shape.is_empty() => {
                        let b = self.broadcast(&t, &[], n)?;
                        b(&[])
                    }
                    Val::Sym(e) => eb::size(&e),
                    _ => return Ok(Lowered::Fallback),
                },
                _ => match self.scalar_expr(n, "value", dtype)? {
                    Some(e) => e,
                    None => return Ok(Lowered::Fallback),
                },
            };
            let mut upd = base.shape.clone();
            upd[d] = index.shape[0].clone();
            let body: Body = Rc::new(move |_: &[E]| eb::cast(acc, eb::cast(dtype, value.clone())));
            (body, upd)
        } else {
            let source = self.tensor_arg(n, "source")?;
            if source.shape.len() != rank {
                return Ok(Lowered::Fallback);
            }
            for k in (0..rank).filter(|&k| k != d) {
                self.require_eq(
                    n,
                    &format!("dim {k} of the source"),
                    &source.shape[k],
                    &base.shape[k],
                )?;
            }
            self.require_eq(
                n,
                "the number of indices",
                &source.shape[d],
                &index.shape[0],
            )?;
            let alpha = if op == Aten::IndexAdd {
                self.scalar_expr(n, "alpha", dtype)?
            } else {
                None
            };
            let upd = source.shape.clone();
            let src = source;
            // The scaled source rounded to the dtype, as torch scales it.
            let body: Body = Rc::new(move |idx: &[E]| {
                let v = eb::cast(dtype, src.at(idx));
                let v = match &alpha {
                    Some(a) => eb::cast(
                        dtype,
                        eb::bin(BinOp::Mul, eb::cast(acc, v), eb::cast(acc, a.clone())),
                    ),
                    None => v,
                };
                eb::cast(acc, v)
            });
            (body, upd)
        };
        let size = base.shape[d].clone();
        let ix = index.clone();
        let coords: IndexMap = Rc::new(move |idx: &[E]| {
            let mut at = idx.to_vec();
            let i = eb::cast(DType::I64, ix.at(&[idx[d].clone()]));
            at[d] = Rc::new(Expr::Index(i, size.clone()));
            at
        });
        let how = if op == Aten::IndexAdd {
            ScatterOp::Add
        } else {
            ScatterOp::Set
        };
        self.scatter_into(n, &base, &upd, coords, values, how, true, dtype, out_shape)
    }

    /// `sort`, `argsort` and `topk` along a dim: the keys (as f64, the dim
    /// last) sorted stably by the runtime into indices, the values gathered
    /// from the input at them.
    fn sort(&mut self, n: &Node, a: Aten) -> Result<Lowered> {
        let x = self.tensor_arg(n, "self")?;
        let rank = x.shape.len();
        if rank == 0 {
            return Ok(Lowered::Fallback);
        }
        let d = wrap(n, self.int_arg(n, "dim")?, rank)?;
        let (descending, k) = match a {
            Aten::Topk => {
                let Some(SymExpr::Int(k)) = self.sym_arg(n, "k")? else {
                    return Ok(Lowered::Fallback);
                };
                (self.bool_arg(n, "largest")?, SymExpr::Int(k))
            }
            _ => (self.bool_arg(n, "descending")?, x.shape[d].clone()),
        };
        if let (Some(kk), Some(len)) = (k.as_int(), x.shape[d].as_int()) {
            if kk < 0 || kk > len {
                return Err(n.error(format!("{kk} elements of a dim of {len}")));
            }
        }
        // Keys: the input as f64 with `d` moved last, dense.
        let mut perm: Vec<usize> = (0..rank).filter(|&i| i != d).collect();
        perm.push(d);
        let xe = x.clone();
        let key: Body = Rc::new(move |idx: &[E]| eb::cast(DType::F64, xe.at(idx)));
        let key = self.lazy(
            DType::F64,
            x.shape.clone(),
            &[&x.origins],
            x.cost() + 1,
            key,
        );
        let key = permute(&key, &perm);
        let key = Tv {
            origins: Rc::new(vec![origin(n)]),
            ..key
        };
        let kv = self.realize(&key);
        let rows = SymExpr::mul(key.shape[..rank - 1].to_vec());
        let mut ishape = key.shape.clone();
        ishape[rank - 1] = k.clone();
        let name = format!("{}_order", n.name);
        let b = self.add_buffer(&name, DType::I64, &ishape, BufKind::Temp);
        let iv = View::dense(b, DType::I64, &ishape);
        self.push(
            n,
            KernelKind::Extern(Box::new(Extern::Argsort {
                x: kv,
                idx: iv.clone(),
                rows,
                len: x.shape[d].clone(),
                k,
                descending,
            })),
        );
        // The indices with `d` back in place: the inverse permutation.
        let mut inv = vec![0; rank];
        for (o, &p) in perm.iter().enumerate() {
            inv[p] = o;
        }
        let order = stored(DType::I64, ishape.clone(), iv);
        let order = permute(&order, &inv);
        let want_i = if a == Aten::Argsort { 0 } else { 1 };
        let (idt, oshape) = self.out_type_of(n, want_i)?;
        if idt != DType::I64 || oshape != order.shape {
            return Ok(Lowered::Fallback);
        }
        if a == Aten::Argsort {
            return Ok(Lowered::One(order));
        }
        let (vdt, vshape) = self.out_type_of(n, 0)?;
        if vdt != x.dtype || vshape != order.shape {
            return Ok(Lowered::Fallback);
        }
        let size = x.shape[d].clone();
        let (xe, oe) = (x.clone(), order.clone());
        let body: Body = Rc::new(move |idx: &[E]| {
            let mut at = idx.to_vec();
            at[d] = Rc::new(Expr::Index(oe.at(idx), size.clone()));
            xe.at(&at)
        });
        let values = self.lazy(vdt, vshape, &[&x.origins], x.cost() + 1, body);
        Ok(Lowered::Many(vec![Some(values), Some(order)]))
    }

    fn cat(&mut self, n: &Node, dtype: DType, out_shape: &[SymExpr]) -> Result<Lowered> {
        let Some(Arg::List(items)) = n.arg("tensors") else {
            return Ok(Lowered::Fallback);
        };
        let rank = out_shape.len();
        let d = wrap(n, self.int_arg(n, "dim")?, rank.max(1))?;
        let mut parts = Vec::new();
        for it in items {
            let Arg::Value(v) = it else {
                return Ok(Lowered::Fallback);
            };
            match self.val(*v)? {
                Val::T(t) => parts.push(t),
                _ => return Ok(Lowered::Fallback),
            }
        }
        let out = self.temp(n.outputs[0], dtype, out_shape);
        let mut start = SymExpr::Int(0);
        for t in parts {
            // Legacy empty inputs (`[0]`) take no part.
            if t.shape.len() != rank {
                continue;
            }
            for (i, (a, b)) in t.shape.iter().zip(out_shape).enumerate() {
                if i != d {
                    self.require_eq(n, &format!("dim {i} of a concatenated tensor"), a, b)?;
                }
            }
            let len = t.shape[d].clone();
            let mut view = out.clone();
            view.offset = SymExpr::mul(vec![start.clone(), out.strides[d].clone()]);
            view.shape = t.shape.clone();
            let src = Tv {
                origins: if t.origins.is_empty() {
                    Rc::new(vec![origin(n)])
                } else {
                    t.origins.clone()
                },
                ..t
            };
            self.store(&src, view);
            start = SymExpr::add(vec![start, len]);
        }
        if rank > 0 {
            self.require_eq(n, "the length of the concatenation", &start, &out_shape[d])?;
        }
        Ok(Lowered::One(stored(dtype, out_shape.to_vec(), out)))
    }

    /// `slice_scatter` / `select_scatter`: a copy of `self` with `src`
    /// stored into the slice (or selection): two pointwise kernels, the
    /// second writing through a view of the first's buffer.
    fn scatter_view(
        &mut self,
        n: &Node,
        select: bool,
        dtype: DType,
        out_shape: &[SymExpr],
    ) -> Result<Lowered> {
        let base = self.tensor_arg(n, "self")?;
        let src = self.tensor_arg(n, "src")?;
        let rank = out_shape.len();
        if base.shape != out_shape || rank == 0 {
            return Ok(Lowered::Fallback);
        }
        let d = wrap(n, self.int_arg(n, "dim")?, rank)?;
        let out = self.temp(n.outputs[0], dtype, out_shape);
        self.store(&base, out.clone());
        let mut view = out.clone();
        if select {
            let i = match self.sym_arg(n, "index")? {
                Some(SymExpr::Int(i)) if i < 0 => {
                    SymExpr::add(vec![out_shape[d].clone(), SymExpr::Int(i)])
                }
                Some(e) => e,
                None => return Ok(Lowered::Fallback),
            };
            if let (Some(sz), Some(ix)) = (out_shape[d].as_int(), i.as_int()) {
                if ix < 0 || ix >= sz {
                    return Err(n.error(format!("index {ix} is out of range for a dim of {sz}")));
                }
            }
            view.offset = SymExpr::mul(vec![i, out.strides[d].clone()]);
            view.strides.remove(d);
            view.shape.remove(d);
        } else {
            let step = self.int_arg(n, "step")?;
            let Some(start) = self.slice_start(n, &out_shape[d])? else {
                return Ok(Lowered::Fallback);
            };
            if step <= 0 || src.shape.len() != rank {
                return Ok(Lowered::Fallback);
            }
            if let (Some(sz), Some(st), Some(l)) =
                (out_shape[d].as_int(), start.as_int(), src.shape[d].as_int())
            {
                if l > 0 && st + (l - 1) * step >= sz {
                    return Err(n.error(format!(
                        "a slice of {l} elements from {st} by {step} does not fit a dim of {sz}"
                    )));
                }
            }
            view.offset = SymExpr::mul(vec![start, out.strides[d].clone()]);
            view.strides[d] = SymExpr::mul(vec![out.strides[d].clone(), SymExpr::Int(step)]);
            view.shape[d] = src.shape[d].clone();
        }
        if src.shape.len() != view.shape.len() {
            return Ok(Lowered::Fallback);
        }
        for (i, (a, b)) in src.shape.iter().zip(&view.shape).enumerate() {
            if select || i != d {
                self.require_eq(n, &format!("dim {i} of the scattered tensor"), a, b)?;
            }
        }
        let src = Tv {
            origins: if src.origins.is_empty() {
                Rc::new(vec![origin(n)])
            } else {
                src.origins.clone()
            },
            ..src
        };
        self.store(&src, view);
        Ok(Lowered::One(stored(dtype, out_shape.to_vec(), out)))
    }

    /// A 2-d pooling window's `[kernel, stride, padding, dilation]`, each
    /// `[h, w]` (one value stands for both; the stride defaults to the
    /// kernel, padding to 0, dilation to 1).
    fn pool_window(&self, n: &Node) -> Result<[Vec<i64>; 4]> {
        let two = |v: Vec<i64>, d: &[i64]| -> Vec<i64> {
            match v.len() {
                0 => d.to_vec(),
                1 => vec![v[0], v[0]],
                _ => v,
            }
        };
        let arg = |name: &str, d: &[i64]| -> Result<Vec<i64>> {
            Ok(match n.arg(name) {
                None | Some(Arg::None) => d.to_vec(),
                Some(_) => two(self.ints_arg(n, name)?, d),
            })
        };
        let k = arg("kernel_size", &[1, 1])?;
        let s = arg("stride", &k)?;
        Ok([k, s, arg("padding", &[0, 0])?, arg("dilation", &[1, 1])?])
    }

    fn reduce_dims(&self, n: &Node, rank: usize) -> Result<Vec<usize>> {
        let ds: Vec<i64> = match n.arg("dim") {
            None | Some(Arg::None) => Vec::new(),
            Some(a) => a
                .as_ints()
                .ok_or_else(|| n.error("argument dim is not a list of ints"))?,
        };
        let mut dims: Vec<usize> = if ds.is_empty() {
            (0..rank).collect()
        } else {
            ds.iter()
                .map(|&d| wrap(n, d, rank.max(1)))
                .collect::<Result<_>>()?
        };
        dims.retain(|&d| d < rank);
        dims.sort_unstable();
        dims.dedup();
        Ok(dims)
    }

    fn reduction(&mut self, n: &Node, op: RedOp) -> Result<Lowered> {
        self.reduction_out(n, op, 0)
    }

    /// The reduction of `self` over the node's `dim` into its output `i`.
    fn reduction_out(&mut self, n: &Node, op: RedOp, i: usize) -> Result<Lowered> {
        let t = self.tensor_arg(n, "self")?;
        let (dtype, out_shape) = self.out_type_of(n, i)?;
        let rank = t.shape.len();
        let dims = self.reduce_dims(n, rank)?;
        let keepdim = self.keepdim(n)?;
        let reduced: Vec<SymExpr> = dims.iter().map(|&d| t.shape[d].clone()).collect();
        let kept: Vec<usize> = (0..rank).filter(|d| !dims.contains(d)).collect();
        let want_rank = if keepdim { rank } else { kept.len() };
        if out_shape.len() != want_rank {
            return Ok(Lowered::Fallback);
        }
        let want: Vec<SymExpr> = (0..rank)
            .filter_map(|d| match (dims.contains(&d), keepdim) {
                (false, _) => Some(t.shape[d].clone()),
                (true, true) => Some(SymExpr::Int(1)),
                (true, false) => None,
            })
            .collect();
        for (w, o) in want.iter().zip(&out_shape) {
            self.require_eq(n, "a kept dim of the reduction", o, w)?;
        }
        let no = out_shape.len();
        let idx: Vec<E> = (0..no + dims.len()).map(eb::var).collect();
        let mut src = Vec::with_capacity(rank);
        let mut k = 0;
        for d in 0..rank {
            if let Some(p) = dims.iter().position(|&x| x == d) {
                src.push(idx[no + p].clone());
            } else {
                src.push(if keepdim {
                    idx[d].clone()
                } else {
                    idx[k].clone()
                });
                k += 1;
            }
        }
        let expr = t.at(&src);
        let out = self.temp(n.outputs[i], dtype, &out_shape);
        let mut origins = (*t.origins).clone();
        origins.push(origin(n));
        self.plan.kernels.push(Kernel {
            kind: KernelKind::Reduction {
                out: out.clone(),
                reduced,
                op,
                expr,
            },
            origins,
        });
        Ok(Lowered::One(stored(dtype, out_shape, out)))
    }

    /// `var` / `std` over the reduced dims: the mean (in f64), the sum of
    /// squared deviations from it (in f64), divided by `max(N - correction,
    /// 0)` (then the square root), rounded to the output dtype: the
    /// interpreter's two-pass formula, in the same order.
    fn variance(&mut self, n: &Node, sqrt: bool) -> Result<Lowered> {
        let t = self.tensor_arg(n, "self")?;
        let (dtype, out_shape) = self.out_type(n)?;
        if !t.dtype.is_float() || !dtype.is_float() {
            return Ok(Lowered::Fallback);
        }
        let correction = match n.arg("correction") {
            Some(Arg::Int(c)) => *c as f64,
            Some(Arg::Float(c)) => *c,
            None | Some(Arg::None) => {
                // `unbiased` (default true) is absent in `var.correction`.
                if !matches!(n.arg("unbiased"), Some(Arg::Bool(false))) {
                    1.0
                } else {
                    0.0
                }
            }
            _ => return Ok(Lowered::Fallback),
        };
        let rank = t.shape.len();
        let dims = self.reduce_dims(n, rank)?;
        let keepdim = self.keepdim(n)?;
        let want_rank = if keepdim { rank } else { rank - dims.len() };
        if out_shape.len() != want_rank {
            return Ok(Lowered::Fallback);
        }
        let mean = self.reduce_kept(n, &t, &dims, RedOp::Mean, DType::F64, "mean");
        let (xe, me) = (t.clone(), mean.clone());
        let at_mean = {
            let dims = dims.clone();
            move |idx: &[E]| -> Vec<E> {
                let mut at = idx.to_vec();
                for &d in &dims {
                    at[d] = eb::int(0);
                }
                at
            }
        };
        let am = at_mean.clone();
        let dev: Body = Rc::new(move |idx: &[E]| {
            let d = eb::bin(
                BinOp::Sub,
                eb::cast(DType::F64, xe.at(idx)),
                me.at(&am(idx)),
            );
            eb::bin(BinOp::Mul, d.clone(), d)
        });
        let dev = self.lazy(
            DType::F64,
            t.shape.clone(),
            &[&t.origins],
            t.cost() + 3,
            dev,
        );
        let ss = self.reduce_kept(n, &dev, &dims, RedOp::Sum, DType::F64, "ss");
        let count = SymExpr::mul(dims.iter().map(|&d| t.shape[d].clone()).collect());
        let denom = eb::bin(
            BinOp::Max,
            eb::bin(
                BinOp::Sub,
                eb::cast(DType::F64, eb::size(&count)),
                eb::konst(correction, DType::F64),
            ),
            eb::konst(0.0, DType::F64),
        );
        let body: Body = Rc::new(move |idx: &[E]| {
            // Output index to the kept-dims index of the statistics.
            let at: Vec<E> = if keepdim {
                idx.to_vec()
            } else {
                let mut k = 0;
                (0..rank)
                    .map(|d| {
                        if dims.contains(&d) {
                            eb::int(0)
                        } else {
                            k += 1;
                            idx[k - 1].clone()
                        }
                    })
                    .collect()
            };
            let v = eb::bin(BinOp::Div, ss.at(&at), denom.clone());
            let v = if sqrt { eb::un(UnOp::Sqrt, v) } else { v };
            eb::cast(dtype, v)
        });
        Ok(Lowered::One(self.lazy(dtype, out_shape, &[], 3, body)))
    }

    /// `cumsum` / `cumprod` along `dim`: element `i` is the sum (product)
    /// over every `j` of the dim of `x[j]` for `j <= i` and 0 (1) after,
    /// as a reduction over the dim. The combine runs in the order of the
    /// interpreter's scan (adding 0 or multiplying by 1 changes nothing),
    /// in f64 for a float result and in wrapping i64 otherwise; the cost is
    /// quadratic in the length of the dim.
    fn scan(
        &mut self,
        n: &Node,
        prod: bool,
        dtype: DType,
        out_shape: &[SymExpr],
    ) -> Result<Lowered> {
        let t = self.tensor_arg(n, "self")?;
        let rank = t.shape.len();
        if rank == 0 {
            return self.map(n, &["self"], dtype, |x| x[0].clone());
        }
        if out_shape != t.shape.as_slice() {
            return Ok(Lowered::Fallback);
        }
        let d = wrap(n, self.int_arg(n, "dim")?, rank)?;
        let acc = if dtype.is_float() {
            DType::F64
        } else {
            DType::I64
        };
        let mut src: Vec<E> = (0..rank).map(eb::var).collect();
        let j = eb::var(rank);
        src[d] = j.clone();
        let x = eb::cast(acc, t.at(&src));
        let unit = eb::konst(if prod { 1.0 } else { 0.0 }, acc);
        let expr = eb::select(eb::cmp(CmpOp::Le, j, eb::var(d)), x, unit);
        let out = self.temp(n.outputs[0], dtype, out_shape);
        let mut origins = (*t.origins).clone();
        origins.push(origin(n));
        self.plan.kernels.push(Kernel {
            kind: KernelKind::Reduction {
                out: out.clone(),
                reduced: vec![t.shape[d].clone()],
                op: if prod { RedOp::Prod } else { RedOp::Sum },
                expr,
            },
            origins,
        });
        Ok(Lowered::One(stored(dtype, out_shape.to_vec(), out)))
    }

    /// `t` reduced over `dims` (sorted) with the dims kept (size 1), into a
    /// new buffer of `dtype`.
    fn reduce_kept(
        &mut self,
        n: &Node,
        t: &Tv,
        dims: &[usize],
        op: RedOp,
        dtype: DType,
        what: &str,
    ) -> Tv {
        let rank = t.shape.len();
        let mut shape = t.shape.clone();
        let mut src: Vec<E> = (0..rank).map(eb::var).collect();
        for (p, &d) in dims.iter().enumerate() {
            shape[d] = SymExpr::Int(1);
            src[d] = eb::var(rank + p);
        }
        let expr = t.at(&src);
        let name = format!("{}_{what}", n.name);
        let b = self.add_buffer(&name, dtype, &shape, BufKind::Temp);
        let out = View::dense(b, dtype, &shape);
        let mut origins = (*t.origins).clone();
        origins.push(origin(n));
        self.plan.kernels.push(Kernel {
            kind: KernelKind::Reduction {
                out: out.clone(),
                reduced: dims.iter().map(|&d| t.shape[d].clone()).collect(),
                op,
                expr,
            },
            origins,
        });
        stored(dtype, shape, out)
    }

    /// `t` reduced over dim `d` with the dim kept (size 1): a reduction
    /// kernel into a new buffer.
    fn reduce_keepdim(&mut self, n: &Node, t: &Tv, d: usize, op: RedOp, what: &str) -> Tv {
        let rank = t.shape.len();
        let mut shape = t.shape.clone();
        shape[d] = SymExpr::Int(1);
        let mut src: Vec<E> = (0..rank).map(eb::var).collect();
        src[d] = eb::var(rank);
        let expr = t.at(&src);
        let name = format!("{}_{what}", n.name);
        let b = self.add_buffer(&name, t.dtype, &shape, BufKind::Temp);
        let out = View::dense(b, t.dtype, &shape);
        let mut origins = (*t.origins).clone();
        origins.push(origin(n));
        self.plan.kernels.push(Kernel {
            kind: KernelKind::Reduction {
                out: out.clone(),
                reduced: vec![t.shape[d].clone()],
                op,
                expr,
            },
            origins,
        });
        stored(t.dtype, shape, out)
    }

    /// `softmax(x, dim)` as a max reduction, a sum of exponentials and a
    /// pointwise normalization; a row that is all `-inf` gives NaN, as in
    /// torch.
    fn softmax_by_reductions(&mut self, n: &Node, x: &Tv, d: usize) -> Lowered {
        let m = self.reduce_keepdim(n, x, d, RedOp::Max, "max");
        let (xe, me) = (x.clone(), m.clone());
        let dtype = x.dtype;
        let exp: Body = Rc::new(move |idx: &[E]| {
            let mut at = idx.to_vec();
            at[d] = eb::int(0);
            eb::un(UnOp::Exp, eb::bin(BinOp::Sub, xe.at(idx), me.at(&at)))
        });
        let e = self.lazy(
            dtype,
            x.shape.clone(),
            &[&x.origins],
            x.cost() + 2,
            exp.clone(),
        );
        let sum = self.reduce_keepdim(n, &e, d, RedOp::Sum, "sum");
        let body: Body = Rc::new(move |idx: &[E]| {
            let mut at = idx.to_vec();
            at[d] = eb::int(0);
            eb::bin(BinOp::Div, exp(idx), sum.at(&at))
        });
        Lowered::One(self.lazy(dtype, x.shape.clone(), &[&x.origins], x.cost() + 3, body))
    }

    /// Normalization by statistics of `t` (the input, as f64, in the
    /// layout its statistics group it: reduced over `dims`), as the
    /// interpreter computes them: the mean, the biased variance by a second
    /// pass, `invstd = 1 / sqrt(var + eps)`, then per channel `scale =
    /// invstd * w` and `shift = b - mean * scale` rounded to the compute
    /// type, and `x * scale + shift`. `stat_at` maps an index of the output
    /// to the statistics' index, `channel_at` to the channel. Returns the
    /// output and the kept-dims mean and invstd.
    #[allow(clippy::too_many_arguments)]
    fn normalize(
        &mut self,
        n: &Node,
        x: &Tv,
        t: &Tv,
        dims: &[usize],
        eps: f64,
        w: Option<Tv>,
        b: Option<Tv>,
        stat_at: IndexMap,
        channel_at: Body,
        dtype: DType,
    ) -> (Tv, Tv, Tv) {
        let f = DType::F64;
        let fc = if dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let mean = self.reduce_kept(n, t, dims, RedOp::Mean, f, "mean");
        let (te, me, dk) = (t.clone(), mean.clone(), dims.to_vec());
        let dev: Body = Rc::new(move |idx: &[E]| {
            let mut at = idx.to_vec();
            for &d in &dk {
                at[d] = eb::int(0);
            }
            let d = eb::bin(BinOp::Sub, te.at(idx), me.at(&at));
            eb::bin(BinOp::Mul, d.clone(), d)
        });
        let dev = self.lazy(f, t.shape.clone(), &[&t.origins], t.cost() + 3, dev);
        let ss = self.reduce_kept(n, &dev, dims, RedOp::Sum, f, "ss");
        let count = SymExpr::mul(dims.iter().map(|&d| t.shape[d].clone()).collect());
        let invstd = {
            let sse = ss.clone();
            let body: Body = Rc::new(move |idx: &[E]| {
                let var = eb::bin(BinOp::Div, sse.at(idx), eb::cast(f, eb::size(&count)));
                let sd = eb::un(UnOp::Sqrt, eb::bin(BinOp::Add, var, eb::konst(eps, f)));
                eb::bin(BinOp::Div, eb::konst(1.0, f), sd)
            });
            self.lazy(f, ss.shape.clone(), &[], 3, body)
        };
        let (xe, me, ie) = (x.clone(), mean.clone(), invstd.clone());
        let mut parts = vec![x.origins.clone()];
        for t in [&w, &b].into_iter().flatten() {
            parts.push(t.origins.clone());
        }
        let body: Body = Rc::new(move |idx: &[E]| {
            let at = stat_at(idx);
            let c = [channel_at(idx)];
            let mut scale = ie.at(&at);
            if let Some(w) = &w {
                scale = eb::bin(BinOp::Mul, scale, eb::cast(f, w.at(&c)));
            }
            let b = match &b {
                Some(b) => eb::cast(f, b.at(&c)),
                None => eb::konst(0.0, f),
            };
            let shift = eb::bin(
                BinOp::Sub,
                b,
                eb::bin(BinOp::Mul, me.at(&at), scale.clone()),
            );
            let (scale, shift) = (eb::cast(fc, scale), eb::cast(fc, shift));
            let y = eb::bin(BinOp::Mul, eb::cast(fc, xe.at(idx)), scale);
            eb::cast(dtype, eb::bin(BinOp::Add, y, shift))
        });
        let parts: Vec<&Rc<Vec<Origin>>> = parts.iter().collect();
        let out = self.lazy(dtype, x.shape.clone(), &parts, x.cost() + 8, body);
        (out, mean, invstd)
    }

    /// A statistic (kept dims) read at `at(idx)`, rounded to the compute
    /// type and then to `dtype`, as a lazy value of `shape`.
    fn stat_output(
        &self,
        stat: Tv,
        dtype: DType,
        shape: Vec<SymExpr>,
        at: impl Fn(&[E]) -> Vec<E> + 'static,
    ) -> Tv {
        let fc = if dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let body: Body = Rc::new(move |idx: &[E]| eb::cast(dtype, eb::cast(fc, stat.at(&at(idx)))));
        self.lazy(dtype, shape, &[], 2, body)
    }

    /// `_native_batch_norm_legit.no_stats` in training: statistics over
    /// every dim but the channels (dim 1); the outputs are the normalized
    /// input, the mean and the invstd per channel.
    fn batch_stats_norm(&mut self, n: &Node) -> Result<Lowered> {
        let x = self.tensor_arg(n, "input")?;
        let (dtype, shape) = self.out_type(n)?;
        let rank = x.shape.len();
        if rank < 2 || !dtype.is_float() || x.dtype != dtype || shape != x.shape {
            return Ok(Lowered::Fallback);
        }
        if n.outputs.len() != 3 || SymExpr::mul(x.shape.clone()).as_int() == Some(0) {
            return Ok(Lowered::Fallback);
        }
        let Some(eps) = float_arg(n, "eps") else {
            return Ok(Lowered::Fallback);
        };
        let w = self.opt_tensor_arg(n, "weight")?;
        let b = self.opt_tensor_arg(n, "bias")?;
        let dims: Vec<usize> = (0..rank).filter(|&d| d != 1).collect();
        let xe = x.clone();
        let body: Body = Rc::new(move |idx: &[E]| eb::cast(DType::F64, xe.at(idx)));
        let t = self.lazy(
            DType::F64,
            x.shape.clone(),
            &[&x.origins],
            x.cost() + 1,
            body,
        );
        let stat_at: IndexMap = Rc::new(move |idx: &[E]| {
            (0..rank)
                .map(|d| if d == 1 { idx[1].clone() } else { eb::int(0) })
                .collect()
        });
        let channel_at: Body = Rc::new(|idx: &[E]| idx[1].clone());
        let (out, mean, invstd) =
            self.normalize(n, &x, &t, &dims, eps, w, b, stat_at, channel_at, dtype);
        let mut outs = vec![Some(out)];
        for (i, stat) in [(1, mean), (2, invstd)] {
            let (sdt, sshape) = self.out_type_of(n, i)?;
            if sshape.len() != 1 {
                return Ok(Lowered::Fallback);
            }
            self.require_eq(n, "the channels of a statistic", &sshape[0], &x.shape[1])?;
            outs.push(Some(self.stat_output(stat, sdt, sshape, move |idx| {
                (0..rank)
                    .map(|d| if d == 1 { idx[0].clone() } else { eb::int(0) })
                    .collect()
            })));
        }
        Ok(Lowered::Many(outs))
    }

    /// `native_group_norm`: statistics per sample and group of `C / group`
    /// channels; the outputs are the normalized input and the mean and
    /// rstd of shape `[N, group]`.
    fn group_norm(&mut self, n: &Node) -> Result<Lowered> {
        let x = self.tensor_arg(n, "input")?;
        let (dtype, shape) = self.out_type(n)?;
        let rank = x.shape.len();
        if rank < 2 || !dtype.is_float() || x.dtype != dtype || shape != x.shape {
            return Ok(Lowered::Fallback);
        }
        let g = self.int_arg(n, "group")?;
        let Some(c) = x.shape[1].as_int() else {
            return Ok(Lowered::Fallback);
        };
        if g <= 0 || c % g != 0 || n.outputs.len() != 3 {
            return Ok(Lowered::Fallback);
        }
        if SymExpr::mul(x.shape.clone()).as_int() == Some(0) {
            return Ok(Lowered::Fallback);
        }
        let Some(eps) = float_arg(n, "eps") else {
            return Ok(Lowered::Fallback);
        };
        let w = self.opt_tensor_arg(n, "weight")?;
        let b = self.opt_tensor_arg(n, "bias")?;
        let cg = c / g;
        // x as [N, group, C / group, *].
        let mut gshape = vec![x.shape[0].clone(), SymExpr::Int(g), SymExpr::Int(cg)];
        gshape.extend(x.shape[2..].iter().cloned());
        let xe = x.clone();
        let body: Body = Rc::new(move |idx: &[E]| {
            let mut at = vec![
                idx[0].clone(),
                eb::add(eb::mul(idx[1].clone(), eb::int(cg)), idx[2].clone()),
            ];
            at.extend(idx[3..].iter().cloned());
            eb::cast(DType::F64, xe.at(&at))
        });
        let t = self.lazy(DType::F64, gshape, &[&x.origins], x.cost() + 1, body);
        let dims: Vec<usize> = (2..rank + 1).collect();
        let stat_at: IndexMap = Rc::new(move |idx: &[E]| {
            let mut at = vec![
                idx[0].clone(),
                eb::bin(BinOp::FloorDiv, idx[1].clone(), eb::int(cg)),
            ];
            at.extend((2..rank + 1).map(|_| eb::int(0)));
            at
        });
        let channel_at: Body = Rc::new(|idx: &[E]| idx[1].clone());
        let (out, mean, rstd) =
            self.normalize(n, &x, &t, &dims, eps, w, b, stat_at, channel_at, dtype);
        let mut outs = vec![Some(out)];
        for (i, stat) in [(1, mean), (2, rstd)] {
            let (sdt, sshape) = self.out_type_of(n, i)?;
            if sshape.len() != 2 {
                return Ok(Lowered::Fallback);
            }
            self.require_eq(n, "the samples of a statistic", &sshape[0], &x.shape[0])?;
            self.require_eq(n, "the groups of a statistic", &sshape[1], &SymExpr::Int(g))?;
            outs.push(Some(self.stat_output(stat, sdt, sshape, move |idx| {
                let mut at = idx.to_vec();
                at.extend((2..rank + 1).map(|_| eb::int(0)));
                at
            })));
        }
        Ok(Lowered::Many(outs))
    }

    fn batch_norm(&mut self, n: &Node) -> Result<Lowered> {
        let x = self.tensor_arg(n, "input")?;
        let (dtype, shape) = self.out_type(n)?;
        if x.shape.len() < 2 || !dtype.is_float() {
            return Ok(Lowered::Fallback);
        }
        let fc = if dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let eps = match n.arg("eps") {
            Some(Arg::Float(f)) => *f,
            _ => return Ok(Lowered::Fallback),
        };
        let w = self.opt_tensor_arg(n, "weight")?;
        let b = self.opt_tensor_arg(n, "bias")?;
        let mean = self.tensor_arg(n, "running_mean")?;
        let var = self.tensor_arg(n, "running_var")?;
        let mut parts = vec![x.origins.clone()];
        let cost = x.cost() + 6;
        for t in [&w, &b].into_iter().flatten() {
            parts.push(t.origins.clone());
        }
        let body: Body = Rc::new(move |idx: &[E]| {
            let c = [idx[1].clone()];
            let xv = eb::cast(fc, x.at(idx));
            let m = eb::cast(fc, mean.at(&c));
            let v = eb::cast(fc, var.at(&c));
            let inv = eb::un(UnOp::Rsqrt, eb::bin(BinOp::Add, v, eb::konst(eps, fc)));
            let mut y = eb::bin(BinOp::Mul, eb::bin(BinOp::Sub, xv, m), inv);
            if let Some(w) = &w {
                y = eb::bin(BinOp::Mul, y, eb::cast(fc, w.at(&c)));
            }
            if let Some(b) = &b {
                y = eb::bin(BinOp::Add, y, eb::cast(fc, b.at(&c)));
            }
            eb::cast(dtype, y)
        });
        let parts: Vec<&Rc<Vec<Origin>>> = parts.iter().collect();
        let t = self.lazy(dtype, shape, &parts, cost, body);
        let mut outs = vec![Some(t)];
        outs.extend((1..n.outputs.len()).map(|_| None));
        Ok(Lowered::Many(outs))
    }

    /// A view `f32` operand a runtime call can read with any strides.
    fn strided(&mut self, t: &Tv) -> View {
        match &t.kind {
            TvKind::View(v) => v.clone(),
            TvKind::Lazy(..) => self.realize(t),
        }
    }

    /// A sum of products: operand `k`'s dim `d` carries label
    /// `labels[k][d]`; the result has the `out` labels as its dims and sums
    /// over the others, in `acc` (f64 for floats, i64 otherwise), each
    /// product taken in operand order. Size-1 operand dims broadcast.
    /// Returns the result as a buffer of `acc`.
    fn product_sum(
        &mut self,
        n: &Node,
        ops: &[Tv],
        labels: &[Vec<usize>],
        out: &[usize],
        acc: DType,
    ) -> Result<Option<Tv>> {
        let nlab = labels.iter().flatten().map(|&l| l + 1).max().unwrap_or(0);
        let one = SymExpr::Int(1);
        let mut sizes = vec![one.clone(); nlab];
        for (t, ls) in ops.iter().zip(labels) {
            if t.shape.len() != ls.len() {
                return Ok(None);
            }
            for (d, &l) in t.shape.iter().zip(ls) {
                if *d == one {
                    continue;
                }
                if sizes[l] == one {
                    sizes[l] = d.clone();
                } else {
                    self.require_eq(n, "the sizes of a contracted label", d, &sizes[l])?;
                }
            }
        }
        let used: Vec<bool> = (0..nlab)
            .map(|l| labels.iter().flatten().any(|&x| x == l))
            .collect();
        if out.iter().any(|&l| l >= nlab || !used[l]) {
            return Ok(None);
        }
        let summed: Vec<usize> = (0..nlab).filter(|l| used[*l] && !out.contains(l)).collect();
        let no = out.len();
        let var_of = |l: usize| -> E {
            match out.iter().position(|&x| x == l) {
                Some(p) => eb::var(p),
                None => eb::var(no + summed.iter().position(|&x| x == l).unwrap_or(0)),
            }
        };
        let mut expr: Option<E> = None;
        let mut origins = Vec::new();
        for (t, ls) in ops.iter().zip(labels) {
            let idx: Vec<E> = t
                .shape
                .iter()
                .zip(ls)
                .map(|(d, &l)| {
                    if *d == one && sizes[l] != one {
                        eb::int(0)
                    } else {
                        var_of(l)
                    }
                })
                .collect();
            let v = eb::cast(acc, t.at(&idx));
            expr = Some(match expr {
                Some(e) => eb::bin(BinOp::Mul, e, v),
                None => v,
            });
            for o in t.origins.iter() {
                if !origins.contains(o) {
                    origins.push(o.clone());
                }
            }
        }
        let Some(expr) = expr else {
            return Ok(None);
        };
        let shape: Vec<SymExpr> = out.iter().map(|&l| sizes[l].clone()).collect();
        let name = format!("{}_sum", n.name);
        let b = self.add_buffer(&name, acc, &shape, BufKind::Temp);
        let view = View::dense(b, acc, &shape);
        origins.push(origin(n));
        self.plan.kernels.push(Kernel {
            kind: KernelKind::Reduction {
                out: view.clone(),
                reduced: summed.iter().map(|&l| sizes[l].clone()).collect(),
                op: RedOp::Sum,
                expr,
            },
            origins,
        });
        Ok(Some(stored(acc, shape, view)))
    }

    /// [`Sched::product_sum`] of the operands into the output: the sum,
    /// then `epilogue(sum, idx)` in the accumulation type, cast to `dtype`.
    #[allow(clippy::too_many_arguments)]
    fn contraction(
        &mut self,
        n: &Node,
        ops: &[Tv],
        labels: &[Vec<usize>],
        out: &[usize],
        dtype: DType,
        out_shape: &[SymExpr],
        epilogue: impl Fn(E, &[E]) -> E + 'static,
        parts: &[&Rc<Vec<Origin>>],
    ) -> Result<Lowered> {
        if dtype == DType::Bool || ops.iter().any(|t| t.dtype == DType::Bool) {
            return Ok(Lowered::Fallback);
        }
        let acc = if dtype.is_float() {
            DType::F64
        } else {
            DType::I64
        };
        let Some(sum) = self.product_sum(n, ops, labels, out, acc)? else {
            return Ok(Lowered::Fallback);
        };
        if sum.shape.len() != out_shape.len() {
            return Ok(Lowered::Fallback);
        }
        for (i, (a, b)) in sum.shape.iter().zip(out_shape).enumerate() {
            self.require_eq(n, &format!("dim {i} of the contraction"), b, a)?;
        }
        let body: Body = Rc::new(move |idx: &[E]| eb::cast(dtype, epilogue(sum.at(idx), idx)));
        Ok(Lowered::One(self.lazy(
            dtype,
            out_shape.to_vec(),
            parts,
            2,
            body,
        )))
    }

    /// `matmul` with torch's rules: 1-d operands gain (and then lose) a
    /// dim, the batch dims broadcast.
    fn matmul(&mut self, n: &Node, dtype: DType, out_shape: &[SymExpr]) -> Result<Lowered> {
        let a = self.tensor_arg(n, "self")?;
        let b = self.tensor_arg(n, "other")?;
        let (ra, rb) = (a.shape.len(), b.shape.len());
        if ra == 0 || rb == 0 {
            return Ok(Lowered::Fallback);
        }
        if let Some(l) = self.matmul_gemm(n, &a, &b, dtype, out_shape)? {
            return Ok(l);
        }
        // Labels: the batch dims 0..nb, then i, k, j.
        let nb = ra.saturating_sub(2).max(rb.saturating_sub(2));
        let (i, k, j) = (nb, nb + 1, nb + 2);
        let batch = |r: usize| -> Vec<usize> { (nb + 2 - r.max(2)..nb).collect() };
        let la: Vec<usize> = if ra == 1 {
            vec![k]
        } else {
            batch(ra).into_iter().chain([i, k]).collect()
        };
        let lb: Vec<usize> = if rb == 1 {
            vec![k]
        } else {
            batch(rb).into_iter().chain([k, j]).collect()
        };
        let mut out: Vec<usize> = (0..nb).collect();
        if ra > 1 {
            out.push(i);
        }
        if rb > 1 {
            out.push(j);
        }
        let parts = [&a.origins, &b.origins];
        let (ao, bo) = (parts[0].clone(), parts[1].clone());
        self.contraction(
            n,
            &[a, b],
            &[la, lb],
            &out,
            dtype,
            out_shape,
            |s, _| s,
            &[&ao, &bo],
        )
    }

    /// `matmul` of f32 matrices (or a batch of them with one batch dim on
    /// both sides), as a GEMM call.
    fn matmul_gemm(
        &mut self,
        n: &Node,
        a: &Tv,
        b: &Tv,
        dtype: DType,
        out_shape: &[SymExpr],
    ) -> Result<Option<Lowered>> {
        let (ra, rb) = (a.shape.len(), b.shape.len());
        if dtype != DType::F32 || a.dtype != dtype || b.dtype != dtype {
            return Ok(None);
        }
        let batched = match (ra, rb) {
            (2, 2) => false,
            (3, 3) if a.shape[0] == b.shape[0] => true,
            _ => return Ok(None),
        };
        let r = ra;
        if out_shape.len() != r {
            return Ok(None);
        }
        let (va, vb) = (self.strided(a), self.strided(b));
        let lift = |v: View| -> View {
            if batched {
                return v;
            }
            let mut v = v;
            v.shape.insert(0, SymExpr::Int(1));
            v.strides.insert(0, SymExpr::Int(0));
            v
        };
        let (m, k, nn) = (
            a.shape[r - 2].clone(),
            a.shape[r - 1].clone(),
            b.shape[r - 1].clone(),
        );
        self.require_eq(
            n,
            "the inner dims of the matrix product",
            &k,
            &b.shape[r - 2],
        )?;
        self.require_eq(n, "the rows of the matrix product", &out_shape[r - 2], &m)?;
        self.require_eq(
            n,
            "the columns of the matrix product",
            &out_shape[r - 1],
            &nn,
        )?;
        let batch = if batched {
            self.require_eq(
                n,
                "the batch of the matrix product",
                &out_shape[0],
                &a.shape[0],
            )?;
            a.shape[0].clone()
        } else {
            SymExpr::Int(1)
        };
        let c = self.temp(n.outputs[0], dtype, out_shape);
        self.push(
            n,
            KernelKind::Extern(Box::new(Extern::Gemm {
                batch,
                m,
                n: nn,
                k,
                a: lift(va),
                b: lift(vb),
                bias: None,
                c: lift(c.clone()),
            })),
        );
        Ok(Some(Lowered::One(stored(dtype, out_shape.to_vec(), c))))
    }

    /// `linear(x, w, b)`: `x[.., i] w[o, i]` summed over `i`, plus `b[o]`.
    fn linear(&mut self, n: &Node, dtype: DType, out_shape: &[SymExpr]) -> Result<Lowered> {
        let x = self.tensor_arg(n, "input")?;
        let w = self.tensor_arg(n, "weight")?;
        let b = self.opt_tensor_arg(n, "bias")?;
        let r = x.shape.len();
        if r == 0 || w.shape.len() != 2 || !dtype.is_float() {
            return Ok(Lowered::Fallback);
        }
        if let Some(b) = &b {
            if b.shape.len() != 1 {
                return Ok(Lowered::Fallback);
            }
        }
        if let Some(l) = self.linear_gemm(n, &x, &w, b.as_ref(), dtype, out_shape)? {
            return Ok(l);
        }
        // Labels: the leading dims 0..r-1, then o = r - 1, i = r.
        let (o, i) = (r - 1, r);
        let lx: Vec<usize> = (0..r - 1).chain([i]).collect();
        let lw = vec![o, i];
        let out: Vec<usize> = (0..r).collect();
        let f = DType::F64;
        let mut parts = vec![x.origins.clone(), w.origins.clone()];
        if let Some(b) = &b {
            parts.push(b.origins.clone());
            self.require_eq(n, "the length of the bias", &b.shape[0], &w.shape[0])?;
        }
        let epilogue = move |s: E, idx: &[E]| match &b {
            Some(b) => eb::bin(BinOp::Add, s, eb::cast(f, b.at(&idx[r - 1..]))),
            None => s,
        };
        let parts: Vec<&Rc<Vec<Origin>>> = parts.iter().collect();
        self.contraction(
            n,
            &[x, w],
            &[lx, lw],
            &out,
            dtype,
            out_shape,
            epilogue,
            &parts,
        )
    }

    /// `mm`, `bmm` and `addmm` of other dtypes than f32, as a sum of
    /// products (`addmm`: `beta * self + alpha * mat1 @ mat2`, `self`
    /// ignored when `beta` is 0).
    fn gemm_by_reduction(
        &mut self,
        n: &Node,
        a: Aten,
        m1: Tv,
        m2: Tv,
        dtype: DType,
        out_shape: &[SymExpr],
    ) -> Result<Lowered> {
        let r = if a == Aten::Bmm { 3 } else { 2 };
        if m1.shape.len() != r || m2.shape.len() != r || out_shape.len() != r {
            return Ok(Lowered::Fallback);
        }
        let labels = if r == 3 {
            [vec![0, 1, 3], vec![0, 3, 2]]
        } else {
            [vec![0, 2], vec![2, 1]]
        };
        let out: Vec<usize> = (0..r).collect();
        let acc = if dtype.is_float() {
            DType::F64
        } else {
            DType::I64
        };
        let mut parts = vec![m1.origins.clone(), m2.origins.clone()];
        let epilogue: Epilogue = if a == Aten::Addmm {
            let base = self.tensor_arg(n, "self")?;
            let (Some(beta), Some(alpha)) = (float_arg(n, "beta"), float_arg(n, "alpha")) else {
                return Ok(Lowered::Fallback);
            };
            let bb = self.broadcast(&base, out_shape, n)?;
            parts.push(base.origins.clone());
            Box::new(move |s: E, idx: &[E]| {
                let s = if alpha == 1.0 {
                    s
                } else {
                    eb::bin(BinOp::Mul, eb::konst(alpha, acc), s)
                };
                if beta == 0.0 {
                    return s;
                }
                let x = eb::cast(acc, bb(idx));
                let x = if beta == 1.0 {
                    x
                } else {
                    eb::bin(BinOp::Mul, eb::konst(beta, acc), x)
                };
                eb::bin(BinOp::Add, x, s)
            })
        } else {
            Box::new(|s: E, _: &[E]| s)
        };
        let parts: Vec<&Rc<Vec<Origin>>> = parts.iter().collect();
        self.contraction(
            n,
            &[m1, m2],
            &labels,
            &out,
            dtype,
            out_shape,
            epilogue,
            &parts,
        )
    }

    /// The tensors of a list argument.
    fn tensors_arg(&self, n: &Node, name: &str) -> Result<Option<Vec<Tv>>> {
        let Some(Arg::List(items)) = n.arg(name) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for it in items {
            let Arg::Value(v) = it else {
                return Ok(None);
            };
            match self.val(*v)? {
                Val::T(t) => out.push(t),
                _ => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    /// `x[.., k] w[n, k]` summed over `k`, plus `b[n]`, rounded to `fc`
    /// (the interpreter's `x @ w^T + b` in its compute type).
    fn affine(
        &mut self,
        n: &Node,
        x: &Tv,
        w: &Tv,
        b: Option<&Tv>,
        fc: DType,
    ) -> Result<Option<Tv>> {
        let r = x.shape.len();
        let lx: Vec<usize> = (0..r - 1).chain([r]).collect();
        let out: Vec<usize> = (0..r).collect();
        let Some(sum) = self.product_sum(
            n,
            &[x.clone(), w.clone()],
            &[lx, vec![r - 1, r]],
            &out,
            DType::F64,
        )?
        else {
            return Ok(None);
        };
        let shape = sum.shape.clone();
        let b = b.cloned();
        let body: Body = Rc::new(move |idx: &[E]| {
            let s = sum.at(idx);
            let s = match &b {
                Some(b) => eb::bin(
                    BinOp::Add,
                    s,
                    eb::cast(DType::F64, eb::cast(fc, b.at(&idx[r - 1..]))),
                ),
                None => s,
            };
            eb::cast(fc, s)
        });
        Ok(Some(self.lazy(fc, shape, &[], 2, body)))
    }

    /// `lstm`, `gru`, `rnn_tanh` and `rnn_relu` (the `input` overloads),
    /// unrolled over a static sequence length as the interpreter runs them:
    /// per layer and direction the input projection for every step, then
    /// per step the hidden projection, the gates (in the compute type, f32
    /// but for f64) and the new state; the outputs gathered per step.
    fn rnn(&mut self, n: &Node, a: Aten) -> Result<Lowered> {
        let x = self.tensor_arg(n, "input")?;
        let lstm = a == Aten::Lstm;
        let (h0, c0) = if lstm {
            match self.tensors_arg(n, "hx")? {
                Some(v) if v.len() == 2 => (v[0].clone(), Some(v[1].clone())),
                _ => return Ok(Lowered::Fallback),
            }
        } else {
            (self.tensor_arg(n, "hx")?, None)
        };
        let Some(params) = self.tensors_arg(n, "params")? else {
            return Ok(Lowered::Fallback);
        };
        let has_biases = self.bool_arg(n, "has_biases")?;
        let layers = self.int_arg(n, "num_layers")?;
        let dropout = float_arg(n, "dropout").unwrap_or(0.0);
        let train = self.bool_arg(n, "train")?;
        let dirs = if self.bool_arg(n, "bidirectional")? {
            2
        } else {
            1
        };
        let batch_first = self.bool_arg(n, "batch_first")?;
        let (dtype, out_shape) = self.out_type(n)?;
        if layers <= 0 || (train && dropout != 0.0 && layers > 1) || !dtype.is_float() {
            return Ok(Lowered::Fallback);
        }
        let layers = layers as usize;
        let fc = if dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let g = match a {
            Aten::Lstm => 4,
            Aten::Gru => 3,
            _ => 1,
        };
        let unbatched = x.shape.len() == 2;
        if !unbatched && x.shape.len() != 3 {
            return Ok(Lowered::Fallback);
        }
        // The input as (T, B, I), in the compute type.
        let xs = if unbatched {
            let mut s = x.shape.clone();
            s.insert(1, SymExpr::Int(1));
            match unit_dims_map(&x, &s) {
                Some(t) => t,
                None => return Ok(Lowered::Fallback),
            }
        } else if batch_first {
            permute(&x, &[1, 0, 2])
        } else {
            x.clone()
        };
        let Some(steps) = xs.shape[0].as_int() else {
            return Ok(Lowered::Fallback);
        };
        let steps = steps as usize;
        let bsz = xs.shape[1].clone();
        let per = 2 + if has_biases { 2 } else { 0 };
        let proj = lstm && params.len() == layers * dirs * (per + 1);
        if !proj && params.len() != layers * dirs * per {
            return Ok(Lowered::Fallback);
        }
        let per = per + proj as usize;
        let Some(gh_rows) = params[0].shape.first().and_then(|d| d.as_int()) else {
            return Ok(Lowered::Fallback);
        };
        if params[0].shape.len() != 2 || gh_rows % g != 0 {
            return Ok(Lowered::Fallback);
        }
        let h = gh_rows / g;
        let hout = if proj {
            match params[per - 1].shape.first().and_then(|d| d.as_int()) {
                Some(v) => v,
                None => return Ok(Lowered::Fallback),
            }
        } else {
            h
        };
        let feat = dirs as i64 * hout;
        let to_fc = |t: &Tv| -> Tv {
            let tt = t.clone();
            let body: Body = Rc::new(move |idx: &[E]| eb::cast(fc, tt.at(idx)));
            Tv {
                dtype: fc,
                shape: t.shape.clone(),
                kind: TvKind::Lazy(body, t.cost() + 1),
                origins: t.origins.clone(),
            }
        };
        // States as (layers * dirs, B, size).
        let state = |t: &Tv| -> Option<Tv> {
            if unbatched {
                let mut s = t.shape.clone();
                s.insert(1, SymExpr::Int(1));
                unit_dims_map(t, &s)
            } else {
                Some(t.clone())
            }
        };
        let (Some(h0), c0) = (state(&h0), c0.as_ref().map(state)) else {
            return Ok(Lowered::Fallback);
        };
        let c0 = match c0 {
            Some(Some(c)) => Some(c),
            Some(None) => return Ok(Lowered::Fallback),
            None => None,
        };
        let ld_count = SymExpr::Int((layers * dirs) as i64);
        self.require_eq(n, "the layers of the hidden state", &h0.shape[0], &ld_count)?;
        self.require_eq(n, "the batch of the hidden state", &h0.shape[1], &bsz)?;
        self.require_eq(
            n,
            "the width of the hidden state",
            &h0.shape[2],
            &SymExpr::Int(hout),
        )?;
        if let Some(c0) = &c0 {
            self.require_eq(n, "the layers of the cell state", &c0.shape[0], &ld_count)?;
            self.require_eq(
                n,
                "the width of the cell state",
                &c0.shape[2],
                &SymExpr::Int(h),
            )?;
        }
        let buf = |s: &mut Self, what: &str, shape: &[SymExpr]| -> View {
            let name = format!("{}_{what}", n.name);
            let b = s.add_buffer(&name, fc, shape, BufKind::Temp);
            View::dense(b, fc, shape)
        };
        let hn = buf(
            self,
            "h_n",
            &[ld_count.clone(), bsz.clone(), SymExpr::Int(hout)],
        );
        let cn = if lstm {
            Some(buf(
                self,
                "c_n",
                &[ld_count.clone(), bsz.clone(), SymExpr::Int(h)],
            ))
        } else {
            None
        };
        let mut layer_in = to_fc(&xs);
        let origins = Rc::new(vec![origin(n)]);
        for l in 0..layers {
            let out = buf(
                self,
                "out",
                &[xs.shape[0].clone(), bsz.clone(), SymExpr::Int(feat)],
            );
            for d in 0..dirs {
                let ld = l * dirs + d;
                let p = &params[ld * per..(ld + 1) * per];
                let (w_ih, w_hh) = (to_fc(&p[0]), to_fc(&p[1]));
                let (b_ih, b_hh) = if has_biases {
                    (Some(p[2].clone()), Some(p[3].clone()))
                } else {
                    (None, None)
                };
                let w_hr = if proj { Some(to_fc(&p[per - 1])) } else { None };
                let Some(gi) = self.affine(n, &layer_in, &w_ih, b_ih.as_ref(), fc)? else {
                    return Ok(Lowered::Fallback);
                };
                let gi = Tv {
                    origins: origins.clone(),
                    ..gi
                };
                let gi = self.realize(&gi);
                let mut hs = to_fc(&select(&h0, 0, SymExpr::Int(ld as i64)));
                let mut cs = c0
                    .as_ref()
                    .map(|c| to_fc(&select(c, 0, SymExpr::Int(ld as i64))));
                for step in 0..steps {
                    let t = if d == 0 { step } else { steps - 1 - step };
                    let Some(gh) = self.affine(n, &hs, &w_hh, b_hh.as_ref(), fc)? else {
                        return Ok(Lowered::Fallback);
                    };
                    let gh = Tv {
                        origins: origins.clone(),
                        ..gh
                    };
                    let gh = self.realize(&gh);
                    let giv = gi.clone();
                    // Gate `k` of unit `u` for batch row `j`: gi + gh.
                    let gate = move |k: i64, idx: &[E], with_r: bool| -> (E, E) {
                        let col = eb::add(idx[1].clone(), eb::int(k * h));
                        let av = eb::load(&giv, &[eb::int(t as i64), idx[0].clone(), col.clone()]);
                        let rv = eb::load(&gh, &[idx[0].clone(), col]);
                        let _ = with_r;
                        (av, rv)
                    };
                    let add = |x: (E, E)| eb::bin(BinOp::Add, x.0, x.1);
                    let sig = |v: E| eb::un(UnOp::Sigmoid, v);
                    let hshape = vec![bsz.clone(), SymExpr::Int(h)];
                    let hraw: Tv = match a {
                        Aten::Lstm => {
                            let Some(c_prev) = cs.clone() else {
                                return Ok(Lowered::Fallback);
                            };
                            let gate_c = gate.clone();
                            let body: Body = Rc::new(move |idx: &[E]| {
                                let ig = sig(add(gate_c(0, idx, false)));
                                let fg = sig(add(gate_c(1, idx, false)));
                                let gg = eb::un(UnOp::Tanh, add(gate_c(2, idx, false)));
                                let fc_ = eb::bin(BinOp::Mul, fg, c_prev.at(idx));
                                eb::bin(BinOp::Add, fc_, eb::bin(BinOp::Mul, ig, gg))
                            });
                            let c = self.lazy(fc, hshape.clone(), &[&origins], 12, body);
                            let cv = self.realize(&c);
                            let cvv = cv.clone();
                            let body: Body = Rc::new(move |idx: &[E]| {
                                let og = sig(add(gate(3, idx, false)));
                                eb::bin(BinOp::Mul, og, eb::un(UnOp::Tanh, eb::load(&cvv, idx)))
                            });
                            cs = Some(stored(fc, hshape.clone(), cv));
                            self.lazy(fc, hshape.clone(), &[&origins], 4, body)
                        }
                        Aten::Gru => {
                            let hp = hs.clone();
                            let body: Body = Rc::new(move |idx: &[E]| {
                                let rg = sig(add(gate(0, idx, false)));
                                let zg = sig(add(gate(1, idx, false)));
                                let (an, rn) = gate(2, idx, true);
                                let ng = eb::un(
                                    UnOp::Tanh,
                                    eb::bin(BinOp::Add, an, eb::bin(BinOp::Mul, rg, rn)),
                                );
                                let one = eb::konst(1.0, fc);
                                let keep =
                                    eb::bin(BinOp::Mul, eb::bin(BinOp::Sub, one, zg.clone()), ng);
                                eb::bin(BinOp::Add, keep, eb::bin(BinOp::Mul, zg, hp.at(idx)))
                            });
                            self.lazy(fc, hshape.clone(), &[&origins], 12, body)
                        }
                        Aten::RnnTanh => {
                            let body: Body = Rc::new(move |idx: &[E]| {
                                eb::un(UnOp::Tanh, add(gate(0, idx, false)))
                            });
                            self.lazy(fc, hshape.clone(), &[&origins], 3, body)
                        }
                        _ => {
                            let body: Body = Rc::new(move |idx: &[E]| {
                                eb::bin(BinOp::Max, add(gate(0, idx, false)), eb::konst(0.0, fc))
                            });
                            self.lazy(fc, hshape.clone(), &[&origins], 3, body)
                        }
                    };
                    let hv = self.realize(&hraw);
                    let hraw = stored(fc, hshape, hv);
                    let next = match &w_hr {
                        Some(w) => {
                            let Some(p) = self.affine(n, &hraw, w, None, fc)? else {
                                return Ok(Lowered::Fallback);
                            };
                            let pv = self.realize(&Tv {
                                origins: origins.clone(),
                                ..p
                            });
                            stored(fc, pv.shape.clone(), pv)
                        }
                        None => hraw,
                    };
                    // The step's output: out[t, :, d * hout..].
                    let mut view = out.clone();
                    view.offset = SymExpr::add(vec![
                        SymExpr::mul(vec![SymExpr::Int(t as i64), out.strides[0].clone()]),
                        SymExpr::Int(d as i64 * hout),
                    ]);
                    view.strides.remove(0);
                    view.shape = vec![bsz.clone(), SymExpr::Int(hout)];
                    self.store(
                        &Tv {
                            origins: origins.clone(),
                            ..next.clone()
                        },
                        view,
                    );
                    hs = next;
                }
                let mut view = hn.clone();
                view.offset = SymExpr::mul(vec![SymExpr::Int(ld as i64), hn.strides[0].clone()]);
                view.strides.remove(0);
                view.shape.remove(0);
                self.store(
                    &Tv {
                        origins: origins.clone(),
                        ..hs.clone()
                    },
                    view,
                );
                if let (Some(c), Some(cn)) = (&cs, &cn) {
                    let mut view = cn.clone();
                    view.offset =
                        SymExpr::mul(vec![SymExpr::Int(ld as i64), cn.strides[0].clone()]);
                    view.strides.remove(0);
                    view.shape.remove(0);
                    self.store(
                        &Tv {
                            origins: origins.clone(),
                            ..c.clone()
                        },
                        view,
                    );
                }
            }
            layer_in = stored(fc, out.shape.clone(), out);
        }
        // The outputs in the dtype, in the input's layout.
        let cast_to = |t: &Tv, dt: DType| -> Tv {
            let tt = t.clone();
            let body: Body = Rc::new(move |idx: &[E]| eb::cast(dt, tt.at(idx)));
            Tv {
                dtype: dt,
                shape: t.shape.clone(),
                kind: TvKind::Lazy(body, 1),
                origins: Rc::new(Vec::new()),
            }
        };
        let squeeze_batch = |t: Tv| -> Option<Tv> {
            if unbatched {
                let mut s = t.shape.clone();
                s.remove(1);
                unit_dims_map(&t, &s)
            } else {
                Some(t)
            }
        };
        let output = if batch_first && !unbatched {
            permute(&layer_in, &[1, 0, 2])
        } else {
            layer_in
        };
        let Some(output) = squeeze_batch(output) else {
            return Ok(Lowered::Fallback);
        };
        if output.shape != out_shape {
            return Ok(Lowered::Fallback);
        }
        let mut outs = vec![Some(cast_to(&output, dtype))];
        let states: Vec<View> = std::iter::once(hn).chain(cn).collect();
        for (i, v) in states.into_iter().enumerate() {
            let (sdt, sshape) = self.out_type_of(n, i + 1)?;
            let t = stored(fc, v.shape.clone(), v);
            let Some(t) = squeeze_batch(t) else {
                return Ok(Lowered::Fallback);
            };
            if t.shape != sshape {
                return Ok(Lowered::Fallback);
            }
            outs.push(Some(cast_to(&t, sdt)));
        }
        Ok(Lowered::Many(outs))
    }

    /// `linear` of f32 operands as a GEMM call: the input's leading dims
    /// flattened into rows (a dense copy when its view cannot be), the
    /// weight read transposed, the bias broadcast over the rows.
    fn linear_gemm(
        &mut self,
        n: &Node,
        x: &Tv,
        w: &Tv,
        b: Option<&Tv>,
        dtype: DType,
        out_shape: &[SymExpr],
    ) -> Result<Option<Lowered>> {
        let f32s = [Some(x), Some(w), b]
            .into_iter()
            .flatten()
            .all(|t| t.dtype == DType::F32);
        let r = x.shape.len();
        if dtype != DType::F32 || !f32s || out_shape.len() != r {
            return Ok(None);
        }
        let (k, nn) = (x.shape[r - 1].clone(), w.shape[0].clone());
        self.require_eq(n, "the input features of linear", &w.shape[1], &k)?;
        self.require_eq(n, "the output features of linear", &out_shape[r - 1], &nn)?;
        for (i, (a, o)) in x.shape.iter().zip(out_shape).take(r - 1).enumerate() {
            self.require_eq(n, &format!("dim {i} of linear"), o, a)?;
        }
        let m = SymExpr::mul(x.shape[..r - 1].to_vec());
        let rows = [SymExpr::Int(1), m.clone(), k.clone()];
        let xv = self.strided(x);
        let xv = match restride(&xv, &rows[1..]) {
            Some(v) => v,
            None => {
                let d = self.realize(x);
                View {
                    strides: dense_strides(&rows[1..]),
                    shape: rows[1..].to_vec(),
                    ..d
                }
            }
        };
        let lift = |mut v: View| {
            v.shape.insert(0, SymExpr::Int(1));
            v.strides.insert(0, SymExpr::Int(0));
            v
        };
        let wv = self.strided(w);
        let wt = View {
            shape: vec![SymExpr::Int(1), k.clone(), nn.clone()],
            strides: vec![
                SymExpr::Int(0),
                wv.strides[1].clone(),
                wv.strides[0].clone(),
            ],
            ..wv
        };
        let bias = match b {
            Some(b) if b.shape.len() == 1 => {
                self.require_eq(n, "the length of the bias", &b.shape[0], &nn)?;
                let bv = self.strided(b);
                Some(expand_view(&bv, &[m.clone(), nn.clone()]))
            }
            Some(_) => return Ok(None),
            None => None,
        };
        let c = self.temp(n.outputs[0], dtype, out_shape);
        let cv = View {
            shape: vec![SymExpr::Int(1), m.clone(), nn.clone()],
            strides: dense_strides(&[SymExpr::Int(1), m.clone(), nn.clone()]),
            ..c.clone()
        };
        self.push(
            n,
            KernelKind::Extern(Box::new(Extern::Gemm {
                batch: SymExpr::Int(1),
                m,
                n: nn,
                k,
                a: lift(xv),
                b: wt,
                bias,
                c: cv,
            })),
        );
        Ok(Some(Lowered::One(stored(dtype, out_shape.to_vec(), c))))
    }

    /// `baddbmm(self, b1, b2, beta, alpha)`: `beta * self + alpha * b1 @ b2`
    /// (`self` ignored when `beta` is 0).
    fn baddbmm(&mut self, n: &Node, dtype: DType, out_shape: &[SymExpr]) -> Result<Lowered> {
        let base = self.tensor_arg(n, "self")?;
        let b1 = self.tensor_arg(n, "batch1")?;
        let b2 = self.tensor_arg(n, "batch2")?;
        let (Some(beta), Some(alpha)) = (float_arg(n, "beta"), float_arg(n, "alpha")) else {
            return Ok(Lowered::Fallback);
        };
        if b1.shape.len() != 3 || b2.shape.len() != 3 || out_shape.len() != 3 {
            return Ok(Lowered::Fallback);
        }
        let acc = if dtype.is_float() {
            DType::F64
        } else {
            DType::I64
        };
        let bb = self.broadcast(&base, out_shape, n)?;
        let parts = [base.origins.clone(), b1.origins.clone(), b2.origins.clone()];
        let epilogue = move |s: E, idx: &[E]| {
            let s = if alpha == 1.0 {
                s
            } else {
                eb::bin(BinOp::Mul, eb::konst(alpha, acc), s)
            };
            if beta == 0.0 {
                return s;
            }
            let x = eb::cast(acc, bb(idx));
            let x = if beta == 1.0 {
                x
            } else {
                eb::bin(BinOp::Mul, eb::konst(beta, acc), x)
            };
            eb::bin(BinOp::Add, x, s)
        };
        let parts: Vec<&Rc<Vec<Origin>>> = parts.iter().collect();
        let labels = [vec![0, 1, 3], vec![0, 3, 2]];
        self.contraction(
            n,
            &[b1, b2],
            &labels,
            &[0, 1, 2],
            dtype,
            out_shape,
            epilogue,
            &parts,
        )
    }

    /// `bilinear(x1, x2, w, b)`: `x1[.., i] w[o, i, j] x2[.., j]` summed over
    /// `i` and `j`, rounded to the dtype, plus `b[o]`.
    fn bilinear(&mut self, n: &Node, dtype: DType, out_shape: &[SymExpr]) -> Result<Lowered> {
        let x1 = self.tensor_arg(n, "input1")?;
        let x2 = self.tensor_arg(n, "input2")?;
        let w = self.tensor_arg(n, "weight")?;
        let b = self.opt_tensor_arg(n, "bias")?;
        let r = x1.shape.len();
        if r == 0 || x2.shape.len() != r || w.shape.len() != 3 || !dtype.is_float() {
            return Ok(Lowered::Fallback);
        }
        // Labels: the leading dims 0..r-1, o, i, j.
        let (o, i, j) = (r - 1, r, r + 1);
        let l1: Vec<usize> = (0..r - 1).chain([i]).collect();
        let l2: Vec<usize> = (0..r - 1).chain([j]).collect();
        let out: Vec<usize> = (0..r).collect();
        let fc = if dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let mut parts = vec![x1.origins.clone(), x2.origins.clone(), w.origins.clone()];
        if let Some(b) = &b {
            parts.push(b.origins.clone());
        }
        let epilogue = move |s: E, idx: &[E]| match &b {
            Some(b) => {
                let y = eb::cast(fc, eb::cast(dtype, s));
                let b = eb::cast(fc, b.at(&idx[r - 1..]));
                eb::cast(DType::F64, eb::bin(BinOp::Add, y, b))
            }
            None => s,
        };
        let parts: Vec<&Rc<Vec<Origin>>> = parts.iter().collect();
        self.contraction(
            n,
            &[x1, w, x2],
            &[l1, vec![o, i, j], l2],
            &out,
            dtype,
            out_shape,
            epilogue,
            &parts,
        )
    }

    /// `_trilinear(i1, i2, i3, expand1, expand2, expand3, sumdim)`: the
    /// inputs with size-1 dims inserted at their expand dims, multiplied,
    /// summed over `sumdim`.
    fn trilinear(&mut self, n: &Node, dtype: DType, out_shape: &[SymExpr]) -> Result<Lowered> {
        let ins = [
            self.tensor_arg(n, "i1")?,
            self.tensor_arg(n, "i2")?,
            self.tensor_arg(n, "i3")?,
        ];
        let expands = [
            self.ints_arg(n, "expand1")?,
            self.ints_arg(n, "expand2")?,
            self.ints_arg(n, "expand3")?,
        ];
        let sumdim = self.ints_arg(n, "sumdim")?;
        let rank = ins[0].shape.len() + expands[0].len();
        let wrapd = |d: i64| d.rem_euclid(rank.max(1) as i64) as usize;
        let mut labels = Vec::new();
        for (x, e) in ins.iter().zip(&expands) {
            let e: Vec<usize> = e.iter().map(|&d| wrapd(d)).collect();
            let ls: Vec<usize> = (0..rank).filter(|d| !e.contains(d)).collect();
            if ls.len() != x.shape.len() {
                return Ok(Lowered::Fallback);
            }
            labels.push(ls);
        }
        let sum: Vec<usize> = sumdim.iter().map(|&d| wrapd(d)).collect();
        let out: Vec<usize> = (0..rank).filter(|d| !sum.contains(d)).collect();
        let parts: Vec<Rc<Vec<Origin>>> = ins.iter().map(|t| t.origins.clone()).collect();
        let parts: Vec<&Rc<Vec<Origin>>> = parts.iter().collect();
        self.contraction(n, &ins, &labels, &out, dtype, out_shape, |s, _| s, &parts)
    }

    /// `einsum(equation, tensors)`: labels from the subscripts (`...`
    /// covering the dims the letters leave, aligned to the right across
    /// operands), the output explicit or implicit (the ellipsis, then the
    /// letters seen once, sorted: uppercase before lowercase).
    fn einsum(&mut self, n: &Node, dtype: DType, out_shape: &[SymExpr]) -> Result<Lowered> {
        let Some(Arg::Str(eq)) = n.arg("equation") else {
            return Ok(Lowered::Fallback);
        };
        let Some(Arg::List(items)) = n.arg("tensors") else {
            return Ok(Lowered::Fallback);
        };
        let mut ops = Vec::new();
        for it in items {
            let Arg::Value(v) = it else {
                return Ok(Lowered::Fallback);
            };
            match self.val(*v)? {
                Val::T(t) => ops.push(t),
                _ => return Ok(Lowered::Fallback),
            }
        }
        let eq: String = eq.chars().filter(|c| !c.is_whitespace()).collect();
        let (lhs, rhs) = match eq.split_once("->") {
            Some((l, r)) => (l.to_string(), Some(r.to_string())),
            None => (eq.clone(), None),
        };
        // A term as label ids (A-Z: 0..26, a-z: 26..52), None for `...`.
        let term = |t: &str| -> Option<Vec<Option<usize>>> {
            let mut out = Vec::new();
            let mut rest = t;
            while let Some(c) = rest.chars().next() {
                if let Some(r) = rest.strip_prefix("...") {
                    if out.contains(&None) {
                        return None;
                    }
                    out.push(None);
                    rest = r;
                    continue;
                }
                out.push(Some(match c {
                    'A'..='Z' => c as usize - 'A' as usize,
                    'a'..='z' => 26 + c as usize - 'a' as usize,
                    _ => return None,
                }));
                rest = &rest[1..];
            }
            Some(out)
        };
        let terms: Option<Vec<_>> = lhs.split(',').map(term).collect();
        let Some(terms) = terms else {
            return Ok(Lowered::Fallback);
        };
        if terms.len() != ops.len() || ops.is_empty() {
            return Ok(Lowered::Fallback);
        }
        const ELL: usize = 52;
        let mut ell = 0;
        for (t, x) in terms.iter().zip(&ops) {
            let named = t.iter().filter(|l| l.is_some()).count();
            let has_ell = named != t.len();
            if x.shape.len() < named || (!has_ell && x.shape.len() != named) {
                return Ok(Lowered::Fallback);
            }
            ell = ell.max(x.shape.len() - named);
        }
        let labels: Vec<Vec<usize>> = terms
            .iter()
            .zip(&ops)
            .map(|(t, x)| {
                let e = x.shape.len() - t.iter().filter(|l| l.is_some()).count();
                t.iter()
                    .flat_map(|l| match l {
                        Some(id) => vec![*id],
                        None => (ELL + ell - e..ELL + ell).collect(),
                    })
                    .collect()
            })
            .collect();
        let count = |l: usize| labels.iter().flatten().filter(|&&x| x == l).count();
        let out: Vec<usize> = match rhs {
            Some(r) => {
                let Some(t) = term(&r) else {
                    return Ok(Lowered::Fallback);
                };
                let mut v = Vec::new();
                for l in t {
                    match l {
                        Some(id) if count(id) > 0 && !v.contains(&id) => v.push(id),
                        None => v.extend(ELL..ELL + ell),
                        _ => return Ok(Lowered::Fallback),
                    }
                }
                v
            }
            None => (ELL..ELL + ell)
                .chain((0..ELL).filter(|&l| count(l) == 1))
                .collect(),
        };
        let parts: Vec<Rc<Vec<Origin>>> = ops.iter().map(|t| t.origins.clone()).collect();
        let parts: Vec<&Rc<Vec<Origin>>> = parts.iter().collect();
        self.contraction(n, &ops, &labels, &out, dtype, out_shape, |s, _| s, &parts)
    }

    fn gemm(&mut self, n: &Node, a: Aten) -> Result<Lowered> {
        let (dtype, out_shape) = self.out_type(n)?;
        let (m1, m2) = match a {
            Aten::Addmm => (self.tensor_arg(n, "mat1")?, self.tensor_arg(n, "mat2")?),
            _ => (self.tensor_arg(n, "self")?, self.tensor_arg(n, "mat2")?),
        };
        if dtype != DType::F32 || m1.dtype != DType::F32 || m2.dtype != DType::F32 {
            return self.gemm_by_reduction(n, a, m1, m2, dtype, &out_shape);
        }
        let batched = a == Aten::Bmm;
        let r = if batched { 3 } else { 2 };
        if m1.shape.len() != r || m2.shape.len() != r || out_shape.len() != r {
            return Ok(Lowered::Fallback);
        }
        let bias = if a == Aten::Addmm {
            let one = |name: &str| -> Result<bool> {
                Ok(match n.arg(name) {
                    None | Some(Arg::None) => true,
                    Some(Arg::Int(1)) => true,
                    Some(Arg::Float(f)) => *f == 1.0,
                    _ => false,
                })
            };
            let b = self.tensor_arg(n, "self")?;
            if !one("alpha")? || !one("beta")? || b.dtype != DType::F32 || b.shape.len() > 2 {
                return self.gemm_by_reduction(n, a, m1, m2, dtype, &out_shape);
            }
            let bv = self.strided(&b);
            Some(expand_view(&bv, &out_shape))
        } else {
            None
        };
        let va = self.strided(&m1);
        let vb = self.strided(&m2);
        let (batch, m, k, nn) = if batched {
            (
                out_shape[0].clone(),
                out_shape[1].clone(),
                m1.shape[2].clone(),
                out_shape[2].clone(),
            )
        } else {
            (
                SymExpr::Int(1),
                out_shape[0].clone(),
                m1.shape[1].clone(),
                out_shape[1].clone(),
            )
        };
        self.require_eq(
            n,
            "the inner dims of the matrix product",
            &k,
            &m2.shape[r - 2],
        )?;
        self.require_eq(n, "the rows of the matrix product", &m, &m1.shape[r - 2])?;
        self.require_eq(
            n,
            "the columns of the matrix product",
            &nn,
            &m2.shape[r - 1],
        )?;
        if batched {
            self.require_eq(n, "the batch of the first operand", &batch, &m1.shape[0])?;
            self.require_eq(n, "the batch of the second operand", &batch, &m2.shape[0])?;
        }
        let c = self.temp(n.outputs[0], dtype, &out_shape);
        self.push(
            n,
            KernelKind::Extern(Box::new(Extern::Gemm {
                batch,
                m,
                n: nn,
                k,
                a: va,
                b: vb,
                bias,
                c: c.clone(),
            })),
        );
        Ok(Lowered::One(stored(dtype, out_shape, c)))
    }

    fn dense_f32(&mut self, t: &Tv) -> Option<View> {
        (t.dtype == DType::F32).then(|| self.realize(t))
    }

    /// A convolution (any number of spatial dims, transposed or not, any
    /// float dtype) as a reduction over the input channels of a group and
    /// the kernel window, in f64, then the bias: for the plain form the
    /// input at `o * stride - padding + k * dilation`, for the transposed
    /// one at `(o + padding - k * dilation) / stride` where that divides and
    /// lies inside. Static sizes only.
    #[allow(clippy::too_many_arguments)]
    fn conv_by_reduction(
        &mut self,
        n: &Node,
        x: Tv,
        w: Tv,
        b: Option<Tv>,
        transposed: bool,
        dtype: DType,
        out_shape: &[SymExpr],
    ) -> Result<Lowered> {
        let rank = x.shape.len();
        if rank < 3 || w.shape.len() != rank || out_shape.len() != rank || !dtype.is_float() {
            return Ok(Lowered::Fallback);
        }
        let sd = rank - 2;
        let get = |name: &str, default: i64| -> Result<Vec<i64>> {
            let v = match n.arg(name) {
                None | Some(Arg::None) => vec![default; sd],
                Some(_) => self.ints_arg(n, name)?,
            };
            Ok(if v.len() == 1 { vec![v[0]; sd] } else { v })
        };
        let (stride, pad, dil) = (get("stride", 1)?, get("padding", 0)?, get("dilation", 1)?);
        let groups = self.int_arg(n, "groups")?;
        if [&stride, &pad, &dil].iter().any(|v| v.len() != sd)
            || stride.iter().chain(&dil).any(|&v| v <= 0)
            || groups <= 0
        {
            return Ok(Lowered::Fallback);
        }
        let ints = |v: &[SymExpr]| -> Option<Vec<i64>> { v.iter().map(|d| d.as_int()).collect() };
        let (Some(xs), Some(ws), Some(os)) = (ints(&x.shape), ints(&w.shape), ints(out_shape))
        else {
            return Ok(Lowered::Fallback);
        };
        let (c, oc) = (xs[1], os[1]);
        if c % groups != 0 || oc % groups != 0 || os[0] != xs[0] {
            return Ok(Lowered::Fallback);
        }
        let (cg, ocg) = (c / groups, oc / groups);
        // The weight: [oc, c / groups, k..] or, transposed, [c, oc / groups, k..].
        let want_w = if transposed { [c, ocg] } else { [oc, cg] };
        if ws[0] != want_w[0] || ws[1] != want_w[1] {
            return Ok(Lowered::Fallback);
        }
        if let Some(b) = &b {
            if b.shape.len() != 1 || b.shape[0] != SymExpr::Int(oc) {
                return Ok(Lowered::Fallback);
            }
        }
        let k: Vec<i64> = ws[2..].to_vec();
        let ins: Vec<i64> = xs[2..].to_vec();
        let f = DType::F64;
        let (xe, we) = (x.clone(), w.clone());
        let idx: Vec<E> = (0..rank + 1 + sd).map(eb::var).collect();
        let (nn, o) = (idx[0].clone(), idx[1].clone());
        let r0 = idx[rank].clone();
        let grp = eb::bin(BinOp::FloorDiv, o.clone(), eb::int(ocg));
        let ch = eb::add(eb::mul(grp, eb::int(cg)), r0.clone());
        let mut inside: Option<E> = None;
        let mut at_x = vec![nn, ch.clone()];
        for j in 0..sd {
            let out_j = idx[2 + j].clone();
            let kj = idx[rank + 1 + j].clone();
            let (pos, ok) = if transposed {
                let num = eb::add(
                    eb::add(out_j, eb::int(pad[j])),
                    eb::mul(kj, eb::int(-dil[j])),
                );
                let q = eb::bin(BinOp::FloorDiv, num.clone(), eb::int(stride[j]));
                let ok = eb::bin(
                    BinOp::BitAnd,
                    eb::bin(
                        BinOp::BitAnd,
                        eb::cmp(CmpOp::Ge, num.clone(), eb::int(0)),
                        eb::cmp(
                            CmpOp::Eq,
                            eb::bin(BinOp::Rem, num, eb::int(stride[j])),
                            eb::int(0),
                        ),
                    ),
                    eb::cmp(CmpOp::Lt, q.clone(), eb::int(ins[j])),
                );
                (q, ok)
            } else {
                let pos = eb::add(
                    eb::add(eb::mul(out_j, eb::int(stride[j])), eb::int(-pad[j])),
                    eb::mul(kj, eb::int(dil[j])),
                );
                let ok = eb::bin(
                    BinOp::BitAnd,
                    eb::cmp(CmpOp::Ge, pos.clone(), eb::int(0)),
                    eb::cmp(CmpOp::Lt, pos.clone(), eb::int(ins[j])),
                );
                (pos, ok)
            };
            inside = Some(match inside {
                Some(a) => eb::bin(BinOp::BitAnd, a, ok),
                None => ok,
            });
            at_x.push(eb::bin(
                BinOp::Min,
                eb::bin(BinOp::Max, pos, eb::int(0)),
                eb::int(ins[j] - 1),
            ));
        }
        let mut at_w = if transposed {
            vec![ch, eb::bin(BinOp::Rem, o, eb::int(ocg))]
        } else {
            vec![o, r0]
        };
        at_w.extend((0..sd).map(|j| idx[rank + 1 + j].clone()));
        let prod = eb::bin(
            BinOp::Mul,
            eb::cast(f, xe.at(&at_x)),
            eb::cast(f, we.at(&at_w)),
        );
        let expr = match inside {
            Some(c) => eb::select(c, prod, eb::konst(0.0, f)),
            None => prod,
        };
        let name = format!("{}_sum", n.name);
        let buf = self.add_buffer(&name, f, out_shape, BufKind::Temp);
        let sum = View::dense(buf, f, out_shape);
        let mut origins = (*x.origins).clone();
        for o in w.origins.iter() {
            if !origins.contains(o) {
                origins.push(o.clone());
            }
        }
        origins.push(origin(n));
        let mut reduced = vec![SymExpr::Int(cg)];
        reduced.extend(k.iter().map(|&v| SymExpr::Int(v)));
        self.plan.kernels.push(Kernel {
            kind: KernelKind::Reduction {
                out: sum.clone(),
                reduced,
                op: RedOp::Sum,
                expr,
            },
            origins,
        });
        let parts: Vec<Rc<Vec<Origin>>> = b.iter().map(|t| t.origins.clone()).collect();
        let body: Body = Rc::new(move |idx: &[E]| {
            let s = eb::load(&sum, idx);
            let s = match &b {
                Some(b) => eb::bin(BinOp::Add, s, eb::cast(f, b.at(&idx[1..2]))),
                None => s,
            };
            eb::cast(dtype, s)
        });
        let parts: Vec<&Rc<Vec<Origin>>> = parts.iter().collect();
        Ok(Lowered::One(self.lazy(
            dtype,
            out_shape.to_vec(),
            &parts,
            2,
            body,
        )))
    }

    fn convolution(&mut self, n: &Node) -> Result<Lowered> {
        let (dtype, out_shape) = self.out_type(n)?;
        let x = self.tensor_arg(n, "input")?;
        let w = self.tensor_arg(n, "weight")?;
        let b = self.opt_tensor_arg(n, "bias")?;
        let transposed = self.bool_arg(n, "transposed")?;
        let rank = x.shape.len();
        let f32s = [Some(&x), Some(&w), b.as_ref()]
            .into_iter()
            .flatten()
            .all(|t| t.dtype == DType::F32);
        if dtype != DType::F32
            || !f32s
            || transposed
            || !(rank == 3 || rank == 4)
            || w.shape.len() != rank
        {
            return self.conv_by_reduction(n, x, w, b, transposed, dtype, &out_shape);
        }
        let sd = rank - 2;
        let get = |name: &str, default: i64| -> Result<Vec<i64>> {
            let v = match n.arg(name) {
                None | Some(Arg::None) => vec![default; sd],
                Some(_) => self.ints_arg(n, name)?,
            };
            Ok(if v.len() == 1 { vec![v[0]; sd] } else { v })
        };
        let (stride, pad, dil) = (get("stride", 1)?, get("padding", 0)?, get("dilation", 1)?);
        if stride.len() != sd || pad.len() != sd || dil.len() != sd {
            return Ok(Lowered::Fallback);
        }
        let groups = self.int_arg(n, "groups")?;
        let (Some(xv), Some(wv)) = (self.dense_f32(&x), self.dense_f32(&w)) else {
            return Ok(Lowered::Fallback);
        };
        let bv = match &b {
            Some(b) => match self.dense_f32(b) {
                Some(v) => Some(v),
                None => return Ok(Lowered::Fallback),
            },
            None => None,
        };
        // A 1-d convolution is a 2-d one over a height of 1.
        let to4 = |v: View| -> View {
            if rank == 4 {
                return v;
            }
            let mut s = v.shape.clone();
            s.insert(2, SymExpr::Int(1));
            View {
                strides: dense_strides(&s),
                shape: s,
                ..v
            }
        };
        let params = if sd == 2 {
            [stride[0], stride[1], pad[0], pad[1], dil[0], dil[1]]
        } else {
            [1, stride[0], 0, pad[0], 1, dil[0]]
        };
        let y = self.temp(n.outputs[0], dtype, &out_shape);
        self.push(
            n,
            KernelKind::Extern(Box::new(Extern::Conv2d {
                x: to4(xv),
                w: to4(wv),
                bias: bv,
                y: to4(y.clone()),
                params,
                groups,
                act: Act::None,
            })),
        );
        Ok(Lowered::One(stored(dtype, out_shape, y)))
    }

    fn max_pool(&mut self, n: &Node) -> Result<Lowered> {
        if n.outputs.len() > 1 && self.uses[n.outputs[1].index()] > 0 {
            return Ok(Lowered::Fallback);
        }
        let (dtype, out_shape) = self.out_type(n)?;
        let x = self.tensor_arg(n, "self")?;
        let rank = x.shape.len();
        if dtype != DType::F32 || !(rank == 3 || rank == 4) {
            return Ok(Lowered::Fallback);
        }
        let [k, s, p, d] = self.pool_window(n)?;
        let Some(xv) = self.dense_f32(&x) else {
            return Ok(Lowered::Fallback);
        };
        let y = self.temp(n.outputs[0], dtype, &out_shape);
        self.push(
            n,
            KernelKind::Extern(Box::new(Extern::MaxPool2d {
                x: xv,
                y: y.clone(),
                params: [k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1]],
            })),
        );
        let t = stored(dtype, out_shape, y);
        let mut outs = vec![Some(t)];
        outs.extend((1..n.outputs.len()).map(|_| None));
        Ok(Lowered::Many(outs))
    }

    fn softmax(&mut self, n: &Node, a: Aten) -> Result<Lowered> {
        let (dtype, shape) = self.out_type(n)?;
        let x = self.tensor_arg(n, "self")?;
        let rank = shape.len();
        let d = wrap(n, self.int_arg(n, "dim")?, rank.max(1))?;
        let plain = matches!(a, Aten::InternalSoftmax | Aten::Softmax);
        let same_dtype =
            x.dtype == dtype && !matches!(n.arg("half_to_float"), Some(Arg::Bool(true)));
        // `_softmax` keeps torch's NaN for rows that are all -inf, which the
        // runtime's (safe) softmax does not: it is built from reductions.
        if plain && same_dtype && matches!(dtype, DType::F32 | DType::F64) && rank > 0 {
            return Ok(self.softmax_by_reductions(n, &x, d));
        }
        if dtype != DType::F32 || x.dtype != DType::F32 || plain {
            return Ok(Lowered::Fallback);
        }
        let Some(xv) = self.dense_f32(&x) else {
            return Ok(Lowered::Fallback);
        };
        let (outer, len, inner) = if rank == 0 {
            (SymExpr::Int(1), SymExpr::Int(1), SymExpr::Int(1))
        } else {
            (
                SymExpr::mul(shape[..d].to_vec()),
                shape[d].clone(),
                SymExpr::mul(shape[d + 1..].to_vec()),
            )
        };
        let log = matches!(a, Aten::InternalLogSoftmax | Aten::LogSoftmax);
        let y = self.temp(n.outputs[0], dtype, &shape);
        self.push(
            n,
            KernelKind::Extern(Box::new(Extern::Softmax {
                x: xv,
                y: y.clone(),
                outer,
                len,
                inner,
                log,
            })),
        );
        Ok(Lowered::One(stored(dtype, shape, y)))
    }

    fn layer_norm(&mut self, n: &Node) -> Result<Lowered> {
        if n.outputs.iter().skip(1).any(|v| self.uses[v.index()] > 0) {
            return Ok(Lowered::Fallback);
        }
        let (dtype, shape) = self.out_type(n)?;
        let x = self.tensor_arg(n, "input")?;
        let ns = self.ints_arg(n, "normalized_shape")?;
        let eps = match n.arg("eps") {
            Some(Arg::Float(f)) => *f as f32,
            _ => return Ok(Lowered::Fallback),
        };
        let w = self.opt_tensor_arg(n, "weight")?;
        let b = self.opt_tensor_arg(n, "bias")?;
        if dtype != DType::F32 || ns.len() > shape.len() {
            return Ok(Lowered::Fallback);
        }
        let split = shape.len() - ns.len();
        let rows = SymExpr::mul(shape[..split].to_vec());
        let cols = SymExpr::mul(shape[split..].to_vec());
        let Some(xv) = self.dense_f32(&x) else {
            return Ok(Lowered::Fallback);
        };
        let mut opt = |t: &Option<Tv>| -> Option<Option<View>> {
            match t {
                None => Some(None),
                Some(t) => self.dense_f32(t).map(Some),
            }
        };
        let (Some(wv), Some(bv)) = (opt(&w), opt(&b)) else {
            return Ok(Lowered::Fallback);
        };
        let y = self.temp(n.outputs[0], dtype, &shape);
        self.push(
            n,
            KernelKind::Extern(Box::new(Extern::LayerNorm {
                x: xv,
                y: y.clone(),
                weight: wv,
                bias: bv,
                rows,
                cols,
                eps,
            })),
        );
        let t = stored(dtype, shape, y);
        let mut outs = vec![Some(t)];
        outs.extend((1..n.outputs.len()).map(|_| None));
        Ok(Lowered::Many(outs))
    }

    fn sdpa(&mut self, n: &Node) -> Result<Lowered> {
        let (dtype, shape) = self.out_type(n)?;
        let q = self.tensor_arg(n, "query")?;
        let k = self.tensor_arg(n, "key")?;
        let v = self.tensor_arg(n, "value")?;
        let mask = self.opt_tensor_arg(n, "attn_mask")?;
        let dropout = match n.arg("dropout_p") {
            None | Some(Arg::None) => 0.0,
            Some(Arg::Float(f)) => *f,
            Some(Arg::Int(i)) => *i as f64,
            _ => return Ok(Lowered::Fallback),
        };
        let causal = self.bool_arg(n, "is_causal")?;
        if dtype != DType::F32 || shape.len() != 4 || q.shape.len() != 4 || dropout != 0.0 {
            return Ok(Lowered::Fallback);
        }
        if k.shape.len() != 4 || v.shape.len() != 4 {
            return Ok(Lowered::Fallback);
        }
        let d = q.shape[3].as_int();
        let scale = match n.arg("scale") {
            None | Some(Arg::None) => match d {
                Some(d) => 1.0 / (d as f64).sqrt(),
                None => return Ok(Lowered::Fallback),
            },
            Some(Arg::Float(f)) => *f,
            _ => return Ok(Lowered::Fallback),
        } as f32;
        let (Some(qv), Some(kv), Some(vv)) =
            (self.dense_f32(&q), self.dense_f32(&k), self.dense_f32(&v))
        else {
            return Ok(Lowered::Fallback);
        };
        let mshape = vec![
            shape[0].clone(),
            shape[1].clone(),
            q.shape[2].clone(),
            k.shape[2].clone(),
        ];
        let mv = match mask {
            None => None,
            Some(m) => {
                let m = if m.dtype == DType::Bool {
                    let mm = m.clone();
                    let body: Body = Rc::new(move |idx: &[E]| {
                        eb::select(
                            mm.at(idx),
                            eb::konst(0.0, DType::F32),
                            eb::konst(f64::NEG_INFINITY, DType::F32),
                        )
                    });
                    self.lazy(
                        DType::F32,
                        m.shape.clone(),
                        &[&m.origins],
                        m.cost() + 1,
                        body,
                    )
                } else if m.dtype == DType::F32 {
                    m
                } else {
                    return Ok(Lowered::Fallback);
                };
                let dv = self.realize(&m);
                Some(expand_view(&dv, &mshape))
            }
        };
        let y = self.temp(n.outputs[0], dtype, &shape);
        self.push(
            n,
            KernelKind::Extern(Box::new(Extern::Sdpa {
                q: qv,
                k: kv,
                v: vv,
                mask: mv,
                y: y.clone(),
                causal,
                scale,
            })),
        );
        Ok(Lowered::One(stored(dtype, shape, y)))
    }
}

/// The index of a reduction's dims-kept result that output index `idx`
/// reads (the reduced dims at 0, inserted when the output drops them).
fn kept_index(idx: &[E], dims: &[usize], rank: usize, keepdim: bool) -> Vec<E> {
    let mut k = 0;
    (0..rank)
        .map(|d| {
            if dims.contains(&d) {
                if keepdim {
                    k += 1;
                }
                eb::int(0)
            } else {
                k += 1;
                idx[k - 1].clone()
            }
        })
        .collect()
}

/// Advanced indexing, from [`Sched::index_coords`].
struct IndexCoords {
    /// The shape of the indexing result.
    shape: Vec<SymExpr>,
    /// The indexed element's coordinates, of an index of the result.
    coords: IndexMap,
    /// The index tensors' origins.
    parts: Vec<Rc<Vec<Origin>>>,
    cost: usize,
}

/// A pooling of [`Sched::pool`].
#[derive(Copy, Clone, PartialEq, Eq)]
enum Pool {
    /// An average: `count_include_pad`, `divisor_override`.
    Avg(bool, Option<i64>),
    Max,
    AdaptiveAvg,
    AdaptiveMax,
}

/// A resampling mode of [`Sched::resample`].
#[derive(Copy, Clone, PartialEq, Eq)]
enum Resample {
    NearestExact,
    Linear,
    Cubic,
}

/// A constant number argument as `f64`.
fn float_arg(n: &Node, name: &str) -> Option<f64> {
    match n.arg(name) {
        Some(Arg::Float(f)) => Some(*f),
        Some(Arg::Int(i)) => Some(*i as f64),
        Some(Arg::Bool(b)) => Some(*b as i64 as f64),
        _ => None,
    }
}

fn shape_text(s: &[SymExpr]) -> String {
    let ds: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", ds.join(", "))
}

fn wrap(n: &Node, d: i64, rank: usize) -> Result<usize> {
    wrap_dim(d, rank.max(1)).map_err(|e| n.error(e.to_string()))
}

fn has_index(t: &Tv) -> bool {
    match &t.kind {
        TvKind::View(_) => false,
        TvKind::Lazy(f, _) => {
            let idx: Vec<E> = (0..t.shape.len()).map(eb::var).collect();
            f(&idx).has_index()
        }
    }
}

/// The NumPy broadcast of two shapes (size-1 dims stretch).
fn broadcast_shape(a: &[SymExpr], b: &[SymExpr]) -> Vec<SymExpr> {
    let r = a.len().max(b.len());
    let one = SymExpr::Int(1);
    (0..r)
        .map(|i| {
            let x = if i + a.len() >= r {
                &a[i + a.len() - r]
            } else {
                &one
            };
            let y = if i + b.len() >= r {
                &b[i + b.len() - r]
            } else {
                &one
            };
            if *x == one {
                y.clone()
            } else {
                x.clone()
            }
        })
        .collect()
}

/// `t` read at an index of `shape` (NumPy broadcasting).
fn broadcast(t: &Tv, shape: &[SymExpr], n: &Node) -> Result<Body> {
    if t.shape.len() > shape.len() {
        return Err(n.error(format!(
            "an operand of rank {} is broadcast to rank {}",
            t.shape.len(),
            shape.len()
        )));
    }
    let lead = shape.len() - t.shape.len();
    let unit: Vec<bool> = t
        .shape
        .iter()
        .enumerate()
        .map(|(i, d)| *d == SymExpr::Int(1) && shape[lead + i] != SymExpr::Int(1))
        .collect();
    let t = t.clone();
    Ok(Rc::new(move |idx: &[E]| {
        let src: Vec<E> = (0..t.shape.len())
            .map(|i| {
                if unit[i] {
                    eb::int(0)
                } else {
                    idx[lead + i].clone()
                }
            })
            .collect();
        t.at(&src)
    }))
}

/// A view broadcast to `shape` (new leading dims and size-1 dims get
/// stride 0).
fn expand_view(v: &View, shape: &[SymExpr]) -> View {
    let lead = shape.len().saturating_sub(v.shape.len());
    let mut strides = vec![SymExpr::Int(0); shape.len()];
    for (i, d) in v.shape.iter().enumerate() {
        strides[lead + i] = if *d == SymExpr::Int(1) && shape[lead + i] != SymExpr::Int(1) {
            SymExpr::Int(0)
        } else {
            v.strides[i].clone()
        };
    }
    View {
        strides,
        shape: shape.to_vec(),
        ..v.clone()
    }
}

/// A value held in a buffer, read through `view`.
fn stored(dtype: DType, shape: Vec<SymExpr>, view: View) -> Tv {
    Tv {
        dtype,
        shape,
        kind: TvKind::View(view),
        origins: Rc::new(Vec::new()),
    }
}

fn permute(t: &Tv, perm: &[usize]) -> Tv {
    let shape: Vec<SymExpr> = perm.iter().map(|&p| t.shape[p].clone()).collect();
    let kind = match &t.kind {
        TvKind::View(v) => TvKind::View(View {
            strides: perm.iter().map(|&p| v.strides[p].clone()).collect(),
            shape: shape.clone(),
            ..v.clone()
        }),
        TvKind::Lazy(f, c) => {
            let f = f.clone();
            let perm = perm.to_vec();
            TvKind::Lazy(
                Rc::new(move |idx: &[E]| {
                    let mut src = vec![eb::int(0); perm.len()];
                    for (o, &p) in perm.iter().enumerate() {
                        src[p] = idx[o].clone();
                    }
                    f(&src)
                }),
                *c,
            )
        }
    };
    Tv {
        shape,
        kind,
        ..t.clone()
    }
}

fn slice(t: &Tv, d: usize, start: SymExpr, step: i64, len: SymExpr) -> Tv {
    let mut shape = t.shape.clone();
    shape[d] = len;
    let kind = match &t.kind {
        TvKind::View(v) => {
            let mut v2 = v.clone();
            v2.offset = SymExpr::add(vec![
                v.offset.clone(),
                SymExpr::mul(vec![start, v.strides[d].clone()]),
            ]);
            v2.strides[d] = SymExpr::mul(vec![v.strides[d].clone(), SymExpr::Int(step)]);
            v2.shape = shape.clone();
            TvKind::View(v2)
        }
        TvKind::Lazy(f, c) => {
            let f = f.clone();
            TvKind::Lazy(
                Rc::new(move |idx: &[E]| {
                    let mut src = idx.to_vec();
                    src[d] = eb::add(eb::size(&start), eb::mul(idx[d].clone(), eb::int(step)));
                    f(&src)
                }),
                *c,
            )
        }
    };
    Tv {
        shape,
        kind,
        ..t.clone()
    }
}

fn select(t: &Tv, d: usize, i: SymExpr) -> Tv {
    let mut shape = t.shape.clone();
    shape.remove(d);
    let kind = match &t.kind {
        TvKind::View(v) => {
            let mut v2 = v.clone();
            v2.offset = SymExpr::add(vec![
                v.offset.clone(),
                SymExpr::mul(vec![i, v.strides[d].clone()]),
            ]);
            v2.strides.remove(d);
            v2.shape = shape.clone();
            TvKind::View(v2)
        }
        TvKind::Lazy(f, c) => {
            let f = f.clone();
            TvKind::Lazy(
                Rc::new(move |idx: &[E]| {
                    let mut src = idx.to_vec();
                    src.insert(d, eb::size(&i));
                    f(&src)
                }),
                *c,
            )
        }
    };
    Tv {
        shape,
        kind,
        ..t.clone()
    }
}

/// `t` as `shape` when the two differ only by size-1 dims.
fn unit_dims_map(t: &Tv, shape: &[SymExpr]) -> Option<Tv> {
    let one = SymExpr::Int(1);
    let src: Vec<usize> = (0..t.shape.len()).filter(|&i| t.shape[i] != one).collect();
    let dst: Vec<usize> = (0..shape.len()).filter(|&i| shape[i] != one).collect();
    if src.len() != dst.len() || src.iter().zip(&dst).any(|(&a, &b)| t.shape[a] != shape[b]) {
        return None;
    }
    let kind = match &t.kind {
        TvKind::View(v) => {
            let mut strides = vec![SymExpr::Int(0); shape.len()];
            for (&a, &b) in src.iter().zip(&dst) {
                strides[b] = v.strides[a].clone();
            }
            TvKind::View(View {
                strides,
                shape: shape.to_vec(),
                ..v.clone()
            })
        }
        TvKind::Lazy(f, c) => {
            let f = f.clone();
            let rank = t.shape.len();
            TvKind::Lazy(
                Rc::new(move |idx: &[E]| {
                    let mut s = vec![eb::int(0); rank];
                    for (&a, &b) in src.iter().zip(&dst) {
                        s[a] = idx[b].clone();
                    }
                    f(&s)
                }),
                *c,
            )
        }
    };
    Some(Tv {
        shape: shape.to_vec(),
        kind,
        ..t.clone()
    })
}

/// The strides of `v` viewed as `shape` without copying, when they exist
/// (torch's `computeStride`, on static sizes, or on a dense view).
fn restride(v: &View, shape: &[SymExpr]) -> Option<View> {
    if v.is_dense() {
        return Some(View {
            strides: dense_strides(shape),
            shape: shape.to_vec(),
            ..v.clone()
        });
    }
    let old: Vec<i64> = v.shape.iter().map(|d| d.as_int()).collect::<Option<_>>()?;
    let ost: Vec<i64> = v
        .strides
        .iter()
        .map(|d| d.as_int())
        .collect::<Option<_>>()?;
    let new: Vec<i64> = shape.iter().map(|d| d.as_int()).collect::<Option<_>>()?;
    if old.contains(&0) {
        return None;
    }
    let mut out = vec![0i64; new.len()];
    let mut view_d = new.len() as i64 - 1;
    let mut chunk_base = *ost.last()?;
    let mut tensor_numel = 1i64;
    let mut view_numel = 1i64;
    for td in (0..old.len()).rev() {
        tensor_numel *= old[td];
        if td == 0 || (old[td - 1] != 1 && ost[td - 1] != tensor_numel * chunk_base) {
            while view_d >= 0 && (view_numel < tensor_numel || new[view_d as usize] == 1) {
                out[view_d as usize] = view_numel * chunk_base;
                view_numel *= new[view_d as usize];
                view_d -= 1;
            }
            if view_numel != tensor_numel {
                return None;
            }
            if td > 0 {
                chunk_base = ost[td - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    if view_d != -1 {
        return None;
    }
    Some(View {
        strides: out.into_iter().map(SymExpr::Int).collect(),
        shape: shape.to_vec(),
        ..v.clone()
    })
}

fn clamp(x: &E, lo: Option<&E>, hi: Option<&E>) -> E {
    let mut y = x.clone();
    if let Some(lo) = lo {
        y = eb::bin(BinOp::Max, y, lo.clone());
    }
    if let Some(hi) = hi {
        y = eb::bin(BinOp::Min, y, hi.clone());
    }
    y
}

fn gelu(x: &E, tanh: bool, d: DType) -> E {
    let half = eb::konst(0.5, d);
    let one = eb::konst(1.0, d);
    let inner = if tanh {
        let k = eb::konst((2.0 / std::f64::consts::PI).sqrt(), d);
        let x3 = eb::bin(
            BinOp::Mul,
            eb::bin(BinOp::Mul, x.clone(), x.clone()),
            x.clone(),
        );
        let t = eb::bin(
            BinOp::Add,
            x.clone(),
            eb::bin(BinOp::Mul, eb::konst(0.044715, d), x3),
        );
        eb::un(UnOp::Tanh, eb::bin(BinOp::Mul, k, t))
    } else {
        let k = eb::konst(std::f64::consts::FRAC_1_SQRT_2, d);
        eb::un(UnOp::Erf, eb::bin(BinOp::Mul, x.clone(), k))
    };
    eb::bin(
        BinOp::Mul,
        eb::bin(BinOp::Mul, half, x.clone()),
        eb::bin(BinOp::Add, one, inner),
    )
}

fn pow_const(x: &E, e: f64, d: DType) -> E {
    match e {
        1.0 => x.clone(),
        2.0 => eb::bin(BinOp::Mul, x.clone(), x.clone()),
        3.0 => eb::bin(
            BinOp::Mul,
            eb::bin(BinOp::Mul, x.clone(), x.clone()),
            x.clone(),
        ),
        0.5 if d.is_float() => eb::un(UnOp::Sqrt, x.clone()),
        -1.0 if d.is_float() => eb::un(UnOp::Reciprocal, x.clone()),
        -0.5 if d.is_float() => eb::un(UnOp::Rsqrt, x.clone()),
        _ => eb::bin(BinOp::Pow, x.clone(), eb::konst(e, d)),
    }
}
