//! The kernel IR: what the scheduler produces and the lowering consumes.
//!
//! A [`Plan`] is a list of buffers and an ordered list of kernels over them:
//! - **pointwise**: a loop over an output's index space that stores one
//!   typed scalar [`Expr`] per element; the expression reads buffers through
//!   index maps (`Load` of an element offset computed from the loop
//!   variables), so views, broadcasts and chains of elementwise ops cost no
//!   memory traffic of their own;
//! - **reduction**: per output element, a combine over a reduced index space
//!   of an expression (the fused prologue), then a finishing step (the
//!   epilogue: the mean's division; the arg-reductions keep the position
//!   of the extreme instead of its value);
//! - **extern**: a call into the runtime (GEMM, convolution, pooling,
//!   softmax, layer norm, attention) on strided views of buffers;
//! - **fallback**: the reference kernel of one aten node, for the ops that
//!   have no native lowering yet. The plan lists them, so `inspect
//!   --kernels` shows exactly what is not compiled.
//!
//! Sizes, strides and offsets are [`SymExpr`]s, evaluated from the bound
//! shape symbols when the code runs.

use std::fmt::{self, Write as _};
use std::rc::Rc;

use crate::error::SourceLoc;
use crate::ir::ValueId;
use crate::sym::SymExpr;
use crate::DType;

/// A buffer of the plan.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufId(pub u32);

impl BufId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Where a buffer's storage comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum BufKind {
    /// A user input, copied into the arena at each call (position among the
    /// user inputs).
    UserInput(usize),
    /// A parameter, buffer or constant of the model's state, by name.
    State(String),
    /// An intermediate or output in the arena.
    Temp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    pub name: String,
    pub dtype: DType,
    /// The dense, row-major shape of the buffer.
    pub shape: Vec<SymExpr>,
    pub kind: BufKind,
}

impl Buffer {
    /// The number of elements.
    pub fn numel(&self) -> SymExpr {
        SymExpr::mul(self.shape.clone())
    }
}

/// A strided window onto a buffer: element `idx` is at
/// `offset + sum(idx[d] * strides[d])`.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    pub buf: BufId,
    pub dtype: DType,
    pub offset: SymExpr,
    pub strides: Vec<SymExpr>,
    pub shape: Vec<SymExpr>,
}

impl View {
    /// The whole buffer, dense and row-major.
    pub fn dense(buf: BufId, dtype: DType, shape: &[SymExpr]) -> View {
        View {
            buf,
            dtype,
            offset: SymExpr::Int(0),
            strides: dense_strides(shape),
            shape: shape.to_vec(),
        }
    }

    /// Whether the view covers its elements densely, in row-major order,
    /// from offset 0 (size-1 dims may have any stride).
    pub fn is_dense(&self) -> bool {
        if self.offset != SymExpr::Int(0) {
            return false;
        }
        let want = dense_strides(&self.shape);
        self.strides
            .iter()
            .zip(&want)
            .zip(&self.shape)
            .all(|((s, w), d)| s == w || *d == SymExpr::Int(1))
    }
}

/// Row-major strides of a dense array of `shape`.
pub fn dense_strides(shape: &[SymExpr]) -> Vec<SymExpr> {
    let mut out = vec![SymExpr::Int(1); shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        out[i] = SymExpr::mul(vec![out[i + 1].clone(), shape[i + 1].clone()]);
    }
    out
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    Neg,
    Abs,
    Sqrt,
    Rsqrt,
    Reciprocal,
    Exp,
    Expm1,
    Log,
    Log1p,
    Log2,
    Tanh,
    Sigmoid,
    Erf,
    Sin,
    Cos,
    Tan,
    Floor,
    Ceil,
    Round,
    Trunc,
    /// `!x` for bool, `~x` for integers.
    Not,
    Sign,
    IsNan,
    Relu,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    /// True division for floats, truncating for integers (only used on
    /// integers through index arithmetic).
    Div,
    /// Floor division (Python `//`).
    FloorDiv,
    /// Python remainder: the result has the divisor's sign.
    Rem,
    /// C remainder (`fmod`): the result has the dividend's sign.
    Fmod,
    /// Maximum; NaN-propagating for floats (torch `maximum`).
    Max,
    Min,
    Pow,
    BitAnd,
    BitOr,
    BitXor,
    Atan2,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A typed scalar expression of a kernel body. Index arithmetic is `I64`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expr {
    /// Loop variable `d` of the kernel's index space.
    Var(u8),
    /// A dim or other symbolic size, as `I64`.
    Size(SymExpr),
    /// An integral or bool constant of the dtype.
    Int(i64, DType),
    /// A floating constant (its `f64` bits) of the dtype.
    Float(u64, DType),
    /// The element of `buf` at the element offset.
    Load(BufId, DType, Rc<Expr>),
    Unary(UnOp, Rc<Expr>),
    Binary(BinOp, Rc<Expr>, Rc<Expr>),
    /// A comparison; the result is `Bool`.
    Cmp(CmpOp, Rc<Expr>, Rc<Expr>),
    /// `cond ? a : b`.
    Where(Rc<Expr>, Rc<Expr>, Rc<Expr>),
    Cast(DType, Rc<Expr>),
    /// An index read from data, wrapped when negative and checked to lie in
    /// `[0, size)`; an index out of range makes the kernel fail.
    Index(Rc<Expr>, SymExpr),
}

pub type E = Rc<Expr>;

impl Expr {
    pub fn dtype(&self) -> DType {
        match self {
            Expr::Var(_) | Expr::Size(_) | Expr::Index(..) => DType::I64,
            Expr::Int(_, d) | Expr::Float(_, d) | Expr::Load(_, d, _) | Expr::Cast(d, _) => *d,
            Expr::Unary(UnOp::IsNan, _) | Expr::Cmp(..) => DType::Bool,
            Expr::Unary(_, a) | Expr::Binary(_, a, _) => a.dtype(),
            Expr::Where(_, a, _) => a.dtype(),
        }
    }

    /// The number of compute operations (not loads, constants or index
    /// arithmetic) in the expression.
    pub fn cost(&self) -> usize {
        match self {
            Expr::Var(_) | Expr::Size(_) | Expr::Int(..) | Expr::Float(..) => 0,
            Expr::Load(..) => 0,
            Expr::Index(a, _) => a.cost(),
            Expr::Unary(_, a) | Expr::Cast(_, a) => 1 + a.cost(),
            Expr::Binary(_, a, b) | Expr::Cmp(_, a, b) => 1 + a.cost() + b.cost(),
            Expr::Where(c, a, b) => 1 + c.cost() + a.cost() + b.cost(),
        }
    }

    /// Whether the expression reads loop variable `d`.
    pub fn uses_var(&self, d: u8) -> bool {
        match self {
            Expr::Var(v) => *v == d,
            Expr::Size(_) | Expr::Int(..) | Expr::Float(..) => false,
            Expr::Load(_, _, a) | Expr::Unary(_, a) | Expr::Cast(_, a) | Expr::Index(a, _) => {
                a.uses_var(d)
            }
            Expr::Binary(_, a, b) | Expr::Cmp(_, a, b) => a.uses_var(d) || b.uses_var(d),
            Expr::Where(c, a, b) => c.uses_var(d) || a.uses_var(d) || b.uses_var(d),
        }
    }

    /// Every symbolic size the expression reads.
    pub fn sizes(&self, out: &mut Vec<SymExpr>) {
        match self {
            Expr::Size(s) => out.push(s.clone()),
            Expr::Var(_) | Expr::Int(..) | Expr::Float(..) => {}
            Expr::Index(a, s) => {
                out.push(s.clone());
                a.sizes(out);
            }
            Expr::Load(_, _, a) | Expr::Unary(_, a) | Expr::Cast(_, a) => a.sizes(out),
            Expr::Binary(_, a, b) | Expr::Cmp(_, a, b) => {
                a.sizes(out);
                b.sizes(out);
            }
            Expr::Where(c, a, b) => {
                c.sizes(out);
                a.sizes(out);
                b.sizes(out);
            }
        }
    }

    /// Every buffer the expression loads from.
    pub fn loads(&self, out: &mut Vec<BufId>) {
        match self {
            Expr::Load(b, _, a) => {
                out.push(*b);
                a.loads(out);
            }
            Expr::Var(_) | Expr::Size(_) | Expr::Int(..) | Expr::Float(..) => {}
            Expr::Index(a, _) | Expr::Unary(_, a) | Expr::Cast(_, a) => a.loads(out),
            Expr::Binary(_, a, b) | Expr::Cmp(_, a, b) => {
                a.loads(out);
                b.loads(out);
            }
            Expr::Where(c, a, b) => {
                c.loads(out);
                a.loads(out);
                b.loads(out);
            }
        }
    }

    /// Whether the expression divides integers (which fails on a zero
    /// divisor).
    pub fn has_int_division(&self) -> bool {
        match self {
            Expr::Binary(BinOp::Div | BinOp::FloorDiv | BinOp::Rem | BinOp::Fmod, a, _)
                if !a.dtype().is_float() =>
            {
                true
            }
            Expr::Var(_) | Expr::Size(_) | Expr::Int(..) | Expr::Float(..) => false,
            Expr::Load(_, _, a) | Expr::Unary(_, a) | Expr::Cast(_, a) | Expr::Index(a, _) => {
                a.has_int_division()
            }
            Expr::Binary(_, a, b) | Expr::Cmp(_, a, b) => {
                a.has_int_division() || b.has_int_division()
            }
            Expr::Where(c, a, b) => {
                c.has_int_division() || a.has_int_division() || b.has_int_division()
            }
        }
    }

    /// Whether the expression reads data through an index (a gather).
    pub fn has_index(&self) -> bool {
        match self {
            Expr::Index(..) => true,
            Expr::Var(_) | Expr::Size(_) | Expr::Int(..) | Expr::Float(..) => false,
            Expr::Load(_, _, a) | Expr::Unary(_, a) | Expr::Cast(_, a) => a.has_index(),
            Expr::Binary(_, a, b) | Expr::Cmp(_, a, b) => a.has_index() || b.has_index(),
            Expr::Where(c, a, b) => c.has_index() || a.has_index() || b.has_index(),
        }
    }
}

/// Constructors that fold the trivial cases, so index maps stay small.
pub mod build {
    use super::*;

    pub fn var(d: usize) -> E {
        Rc::new(Expr::Var(d as u8))
    }

    pub fn int(v: i64) -> E {
        Rc::new(Expr::Int(v, DType::I64))
    }

    pub fn size(s: &SymExpr) -> E {
        match s.as_int() {
            Some(v) => int(v),
            None => Rc::new(Expr::Size(s.clone())),
        }
    }

    pub fn konst(v: f64, dtype: DType) -> E {
        if dtype.is_float() {
            Rc::new(Expr::Float(v.to_bits(), dtype))
        } else if dtype == DType::Bool {
            Rc::new(Expr::Int((v != 0.0) as i64, dtype))
        } else {
            Rc::new(Expr::Int(v as i64, dtype))
        }
    }

    pub fn konst_int(v: i64, dtype: DType) -> E {
        if dtype.is_float() {
            Rc::new(Expr::Float((v as f64).to_bits(), dtype))
        } else if dtype == DType::Bool {
            Rc::new(Expr::Int((v != 0) as i64, dtype))
        } else {
            Rc::new(Expr::Int(v, dtype))
        }
    }

    fn as_int(e: &E) -> Option<i64> {
        match &**e {
            Expr::Int(v, DType::I64) => Some(*v),
            _ => None,
        }
    }

    pub fn add(a: E, b: E) -> E {
        match (as_int(&a), as_int(&b)) {
            (Some(0), _) => b,
            (_, Some(0)) => a,
            (Some(x), Some(y)) => int(x.wrapping_add(y)),
            _ => Rc::new(Expr::Binary(BinOp::Add, a, b)),
        }
    }

    pub fn mul(a: E, b: E) -> E {
        match (as_int(&a), as_int(&b)) {
            (Some(0), _) | (_, Some(0)) if a.dtype() == DType::I64 => int(0),
            (Some(1), _) => b,
            (_, Some(1)) => a,
            (Some(x), Some(y)) => int(x.wrapping_mul(y)),
            _ => Rc::new(Expr::Binary(BinOp::Mul, a, b)),
        }
    }

    pub fn bin(op: BinOp, a: E, b: E) -> E {
        match op {
            BinOp::Add if a.dtype() == DType::I64 => add(a, b),
            BinOp::Mul if a.dtype() == DType::I64 => mul(a, b),
            _ => Rc::new(Expr::Binary(op, a, b)),
        }
    }

    pub fn un(op: UnOp, a: E) -> E {
        Rc::new(Expr::Unary(op, a))
    }

    pub fn cmp(op: CmpOp, a: E, b: E) -> E {
        Rc::new(Expr::Cmp(op, a, b))
    }

    pub fn select(c: E, a: E, b: E) -> E {
        Rc::new(Expr::Where(c, a, b))
    }

    pub fn cast(dtype: DType, a: E) -> E {
        if a.dtype() == dtype {
            return a;
        }
        match &*a {
            Expr::Int(v, _) => konst_int(*v, dtype),
            Expr::Float(bits, _) => konst(f64::from_bits(*bits), dtype),
            _ => Rc::new(Expr::Cast(dtype, a)),
        }
    }

    /// `offset + sum(idx[d] * strides[d])`.
    pub fn offset(offset: &SymExpr, strides: &[SymExpr], idx: &[E]) -> E {
        let mut acc = size(offset);
        for (s, i) in strides.iter().zip(idx) {
            acc = add(acc, mul(i.clone(), size(s)));
        }
        acc
    }

    pub fn load(v: &View, idx: &[E]) -> E {
        Rc::new(Expr::Load(
            v.buf,
            v.dtype,
            offset(&v.offset, &v.strides, idx),
        ))
    }
}

/// How a reduction combines.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum RedOp {
    Sum,
    /// The sum divided by the number of reduced elements.
    Mean,
    Prod,
    /// NaN-propagating maximum (`amax`).
    Max,
    Min,
    /// Logical or / and over bools (`any` / `all`).
    Any,
    All,
    /// The (row-major, flattened) position in the reduced index space of
    /// the first maximum, a NaN counting as larger than any number (the
    /// result is `I64`; `argmax`).
    ArgMax,
    /// The same for the first minimum, a NaN counting as smaller.
    ArgMin,
}

/// An extern kernel: a call into the runtime.
#[derive(Clone, Debug, PartialEq)]
pub enum Extern {
    /// `c[t] = bias + a[t] @ b[t]` for `t < batch`; `a`, `b`, `c` are
    /// `[batch, m, k]`, `[batch, k, n]`, `[batch, m, n]` views (strides may
    /// be zero), `bias` a `[m, n]` view.
    Gemm {
        batch: SymExpr,
        m: SymExpr,
        n: SymExpr,
        k: SymExpr,
        a: View,
        b: View,
        bias: Option<View>,
        c: View,
    },
    /// 2-D convolution of dense `x: [n, c, h, w]` by dense
    /// `w: [oc, c / groups, kh, kw]`, plus a dense `[oc]` bias, into dense
    /// `y: [n, oc, oh, ow]`, then the activation.
    Conv2d {
        x: View,
        w: View,
        bias: Option<View>,
        y: View,
        /// `[stride_h, stride_w, pad_h, pad_w, dil_h, dil_w]`.
        params: [i64; 6],
        groups: i64,
        act: Act,
    },
    /// The values of a 2-D max pool over dense `[planes, h, w]` into dense
    /// `[planes, oh, ow]`.
    MaxPool2d {
        x: View,
        y: View,
        /// `[kh, kw, sh, sw, ph, pw, dh, dw]`.
        params: [i64; 8],
    },
    /// Softmax (or log-softmax) over the middle axis of a dense
    /// `[outer, len, inner]` array.
    Softmax {
        x: View,
        y: View,
        outer: SymExpr,
        len: SymExpr,
        inner: SymExpr,
        log: bool,
    },
    /// Layer norm of the `cols` contiguous elements of each row.
    LayerNorm {
        x: View,
        y: View,
        weight: Option<View>,
        bias: Option<View>,
        rows: SymExpr,
        cols: SymExpr,
        eps: f32,
    },
    /// Scaled dot-product attention on dense `[b, h, l, d]` arrays, with an
    /// additive f32 mask view `[b, h, lq, lk]` (strides may be zero).
    Sdpa {
        q: View,
        k: View,
        v: View,
        mask: Option<View>,
        y: View,
        causal: bool,
        scale: f32,
    },
    /// Each element of dense `values` combined (`op`) into dense `out`
    /// (`f64` or `i64`, which holds its prior contents) at the element
    /// offset of dense `offsets` (`i64`, the same shape as `values`), in
    /// row-major order.
    Scatter {
        offsets: View,
        values: View,
        out: View,
        op: ScatterOp,
        include_self: bool,
    },
    /// For each of `rows` rows of `len` dense `f64` keys in `x`, the
    /// positions of its first `k` elements in stable sorted order (NaN
    /// largest), into the dense `i64` `[rows, k]` `idx`.
    Argsort {
        x: View,
        idx: View,
        rows: SymExpr,
        len: SymExpr,
        k: SymExpr,
        descending: bool,
    },
}

/// How a scatter combines a value with the element it lands on (the
/// runtime's `ScatterOp`).
pub use torchlift_runtime::order::ScatterOp;

/// An activation fused into an extern kernel's epilogue.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Act {
    None,
    Relu,
    Clamp(f32, f32),
}

#[derive(Clone, Debug, PartialEq)]
pub enum KernelKind {
    /// For each index of `shape`, `out[idx] = expr(idx)`.
    Pointwise {
        out: View,
        expr: E,
    },
    /// For each index `o` of `out.shape`, combine `expr(o ++ r)` over every
    /// index `r` of `reduced`, then finish.
    Reduction {
        out: View,
        reduced: Vec<SymExpr>,
        op: RedOp,
        expr: E,
    },
    Extern(Box<Extern>),
    /// Node `node` of the program's graph, run by its reference kernel:
    /// tensor argument `values[i]` is read from `inputs[i]`, symbolic scalar
    /// arguments are evaluated from `syms`, and the node's outputs are
    /// written densely to `outputs`.
    Fallback {
        node: usize,
        values: Vec<ValueId>,
        inputs: Vec<View>,
        syms: Vec<(ValueId, SymExpr)>,
        outputs: Vec<View>,
    },
}

/// The aten node a kernel came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Origin {
    pub node: String,
    pub op: String,
    pub loc: SourceLoc,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    pub kind: KernelKind,
    /// Every node fused into this kernel, in graph order.
    pub origins: Vec<Origin>,
}

impl Kernel {
    /// The buffers the kernel reads.
    pub fn reads(&self) -> Vec<BufId> {
        let mut out = Vec::new();
        match &self.kind {
            KernelKind::Pointwise { expr, .. } | KernelKind::Reduction { expr, .. } => {
                expr.loads(&mut out)
            }
            KernelKind::Extern(e) => {
                for v in e.views().iter().take(e.views().len() - 1) {
                    out.push(v.buf);
                }
            }
            KernelKind::Fallback { inputs, .. } => out.extend(inputs.iter().map(|v| v.buf)),
        }
        out
    }

    /// The buffers the kernel writes.
    pub fn writes(&self) -> Vec<BufId> {
        match &self.kind {
            KernelKind::Pointwise { out, .. } | KernelKind::Reduction { out, .. } => vec![out.buf],
            KernelKind::Extern(e) => vec![e.views().last().map(|v| v.buf).unwrap_or(BufId(0))],
            KernelKind::Fallback { outputs, .. } => outputs.iter().map(|v| v.buf).collect(),
        }
    }

    /// What can make the kernel fail at run time, for its error message.
    pub fn failure(&self) -> &'static str {
        match &self.kind {
            KernelKind::Pointwise { expr, .. } | KernelKind::Reduction { expr, .. } => {
                match (expr.has_index(), expr.has_int_division()) {
                    (true, true) => {
                        "an index read from a tensor is out of range, or an integer is divided by zero"
                    }
                    (false, true) => "an integer is divided by zero",
                    _ => "an index read from a tensor is out of range",
                }
            }
            KernelKind::Extern(_) => "the runtime kernel rejected its sizes",
            KernelKind::Fallback { .. } => "the reference kernel failed",
        }
    }
}

impl Extern {
    /// Every view the call takes; the written one last.
    pub fn views(&self) -> Vec<&View> {
        match self {
            Extern::Gemm { a, b, bias, c, .. } => {
                let mut v = vec![a, b];
                v.extend(bias.iter());
                v.push(c);
                v
            }
            Extern::Conv2d { x, w, bias, y, .. } => {
                let mut v = vec![x, w];
                v.extend(bias.iter());
                v.push(y);
                v
            }
            Extern::MaxPool2d { x, y, .. } | Extern::Softmax { x, y, .. } => vec![x, y],
            Extern::LayerNorm {
                x, y, weight, bias, ..
            } => {
                let mut v = vec![x];
                v.extend(weight.iter());
                v.extend(bias.iter());
                v.push(y);
                v
            }
            Extern::Sdpa {
                q, k, v, mask, y, ..
            } => {
                let mut out = vec![q, k, v];
                out.extend(mask.iter());
                out.push(y);
                out
            }
            Extern::Scatter {
                offsets,
                values,
                out,
                ..
            } => vec![offsets, values, out],
            Extern::Argsort { x, idx, .. } => vec![x, idx],
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Extern::Gemm { .. } => "gemm",
            Extern::Conv2d { .. } => "conv2d",
            Extern::MaxPool2d { .. } => "max_pool2d",
            Extern::Softmax { log: false, .. } => "softmax",
            Extern::Softmax { log: true, .. } => "log_softmax",
            Extern::LayerNorm { .. } => "layer_norm",
            Extern::Sdpa { .. } => "sdpa",
            Extern::Scatter { .. } => "scatter",
            Extern::Argsort { .. } => "argsort",
        }
    }
}

/// A graph output: a view of a buffer, copied out after the call.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputRef {
    Tensor(View),
    /// A symbolic integer output.
    Int(SymExpr),
    /// A constant that is not a tensor (`None`, a number).
    Other,
}

/// A size equality the code relies on that could not be proved
/// symbolically; checked with the bound symbols before every call.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeCheck {
    pub node: String,
    pub loc: SourceLoc,
    pub what: String,
    pub lhs: SymExpr,
    pub rhs: SymExpr,
}

/// The scheduler's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub buffers: Vec<Buffer>,
    pub kernels: Vec<Kernel>,
    pub outputs: Vec<OutputRef>,
    pub checks: Vec<SizeCheck>,
    /// Shape symbols, sorted; `syms[j]` is the value of `symbols[j]`.
    pub symbols: Vec<String>,
}

impl Plan {
    pub fn buffer(&self, b: BufId) -> &Buffer {
        &self.buffers[b.index()]
    }

    /// The number of kernels of each kind: pointwise, reduction, extern,
    /// fallback.
    pub fn counts(&self) -> [usize; 4] {
        let mut c = [0; 4];
        for k in &self.kernels {
            c[match k.kind {
                KernelKind::Pointwise { .. } => 0,
                KernelKind::Reduction { .. } => 1,
                KernelKind::Extern(_) => 2,
                KernelKind::Fallback { .. } => 3,
            }] += 1;
        }
        c
    }
}

// ---------------------------------------------------------------------------
// Text form, for `inspect --kernels` and the scheduler's filetests.

fn dims(ds: &[SymExpr]) -> String {
    ds.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn view_text(p: &Plan, v: &View) -> String {
    let b = p.buffer(v.buf);
    let dense = View::dense(v.buf, v.dtype, &b.shape);
    if *v == dense {
        format!("${}", b.name)
    } else {
        format!(
            "${}[{}; strides {}; offset {}]",
            b.name,
            dims(&v.shape),
            dims(&v.strides),
            v.offset
        )
    }
}

struct ExprText<'a>(&'a Plan, &'a Expr);

impl fmt::Display for ExprText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0;
        fn sub<'x>(p: &'x Plan, e: &'x Expr) -> ExprText<'x> {
            ExprText(p, e)
        }
        let sub = |e| sub(p, e);
        match self.1 {
            Expr::Var(d) => write!(f, "i{d}"),
            Expr::Size(s) => write!(f, "{s}"),
            Expr::Int(v, DType::I64) => write!(f, "{v}"),
            Expr::Int(v, d) => write!(f, "{v}:{d}"),
            Expr::Float(bits, d) => write!(f, "{:?}:{d}", f64::from_bits(*bits)),
            Expr::Load(b, _, i) => write!(f, "${}[{}]", p.buffer(*b).name, sub(i)),
            Expr::Unary(op, a) => write!(f, "{}({})", format!("{op:?}").to_lowercase(), sub(a)),
            Expr::Binary(op, a, b) => {
                let sym = match op {
                    BinOp::Add => "+",
                    BinOp::Sub => "-",
                    BinOp::Mul => "*",
                    BinOp::Div => "/",
                    BinOp::FloorDiv => "//",
                    BinOp::Rem => "%",
                    BinOp::BitAnd => "&",
                    BinOp::BitOr => "|",
                    BinOp::BitXor => "^",
                    _ => "",
                };
                if sym.is_empty() {
                    let name = format!("{op:?}").to_lowercase();
                    write!(f, "{name}({}, {})", sub(a), sub(b))
                } else {
                    write!(f, "({} {sym} {})", sub(a), sub(b))
                }
            }
            Expr::Cmp(op, a, b) => {
                let sym = match op {
                    CmpOp::Eq => "==",
                    CmpOp::Ne => "!=",
                    CmpOp::Lt => "<",
                    CmpOp::Le => "<=",
                    CmpOp::Gt => ">",
                    CmpOp::Ge => ">=",
                };
                write!(f, "({} {sym} {})", sub(a), sub(b))
            }
            Expr::Where(c, a, b) => write!(f, "where({}, {}, {})", sub(c), sub(a), sub(b)),
            Expr::Cast(d, a) => write!(f, "{d}({})", sub(a)),
            Expr::Index(a, s) => write!(f, "index({}, {s})", sub(a)),
        }
    }
}

/// The plan as text: buffers, then each kernel with the nodes it came from.
pub fn plan_text(p: &Plan) -> String {
    let mut s = String::new();
    for b in &p.buffers {
        let kind = match &b.kind {
            BufKind::UserInput(i) => format!("input {i}"),
            BufKind::State(n) => format!("state {n}"),
            BufKind::Temp => "temp".to_string(),
        };
        let _ = writeln!(s, "${}: {}[{}] {kind}", b.name, b.dtype, dims(&b.shape));
    }
    for (i, k) in p.kernels.iter().enumerate() {
        let from: Vec<String> = k
            .origins
            .iter()
            .map(|o| match &o.loc.0 {
                Some(l) => format!("{} ({}, {l})", o.node, o.op),
                None => format!("{} ({})", o.node, o.op),
            })
            .collect();
        let _ = writeln!(s, "kernel {i}  # {}", from.join(", "));
        match &k.kind {
            KernelKind::Pointwise { out, expr } => {
                let _ = writeln!(
                    s,
                    "  pointwise [{}] {} = {}",
                    dims(&out.shape),
                    view_text(p, out),
                    ExprText(p, expr)
                );
            }
            KernelKind::Reduction {
                out,
                reduced,
                op,
                expr,
            } => {
                let _ = writeln!(
                    s,
                    "  reduction {} [{}] over [{}] {} = {}",
                    format!("{op:?}").to_lowercase(),
                    dims(&out.shape),
                    dims(reduced),
                    view_text(p, out),
                    ExprText(p, expr)
                );
            }
            KernelKind::Extern(e) => {
                let views: Vec<String> = e.views().iter().map(|v| view_text(p, v)).collect();
                let _ = writeln!(s, "  extern {}({})", e.name(), views.join(", "));
            }
            KernelKind::Fallback {
                inputs, outputs, ..
            } => {
                let ins: Vec<String> = inputs.iter().map(|v| view_text(p, v)).collect();
                let outs: Vec<String> = outputs.iter().map(|v| view_text(p, v)).collect();
                let _ = writeln!(
                    s,
                    "  fallback {} = reference({})",
                    outs.join(", "),
                    ins.join(", ")
                );
            }
        }
    }
    let outs: Vec<String> = p
        .outputs
        .iter()
        .map(|o| match o {
            OutputRef::Tensor(v) => view_text(p, v),
            OutputRef::Int(e) => e.to_string(),
            OutputRef::Other => "const".to_string(),
        })
        .collect();
    let _ = writeln!(s, "outputs {}", outs.join(", "));
    s
}
