//! The meta rules: output types of one node from its input types.

use crate::error::Result;
use crate::ir::{Arg, Aten, Graph, Hop, Node, Op, TensorType, ValueType};
use crate::sym::SymExpr;
use crate::DType;

use super::util::{add, ceil_div, div, int, mul, numel, provably_different, sub, Cx};
use crate::promote::{promote_types, result_type, Operand};

type Shape = Vec<SymExpr>;

fn t(dtype: DType, shape: Shape) -> ValueType {
    ValueType::Tensor(TensorType::new(dtype, shape))
}

fn same(x: &TensorType) -> ValueType {
    ValueType::Tensor(x.clone())
}

/// Ops whose result is floating even for integer inputs.
fn float_of(d: DType) -> DType {
    if d.is_float() {
        d
    } else {
        DType::F32
    }
}

/// `int`/`bool` sums accumulate in i64.
fn sum_dtype(d: DType) -> DType {
    if d.is_int() || d == DType::Bool {
        DType::I64
    } else {
        d
    }
}

/// `i64::MAX`: torch's "to the end" for slice ends.
const SLICE_END: i64 = i64::MAX;

/// The output types of `n`, from its inputs' types and its constant
/// arguments, following torch's meta functions.
pub fn infer_node(g: &Graph, n: &Node) -> Result<Vec<ValueType>> {
    let cx = Cx { g, n };
    match &n.op {
        Op::Aten(a, ov) => infer_aten(&cx, *a, ov),
        Op::Hop(h) => infer_hop(&cx, *h, None),
        Op::Builtin(b) => infer_builtin(&cx, b.target()),
        Op::Unsupported(t) | Op::Custom(t) => Err(n.error(format!("no shape rule for {t}"))),
    }
}

fn infer_builtin(cx: &Cx, target: &str) -> Result<Vec<ValueType>> {
    let n = cx.n;
    let kind = |i: usize| -> Option<ValueType> {
        match n.args.get(i).map(|a| &a.value) {
            Some(Arg::Int(_)) => Some(ValueType::SymInt),
            Some(Arg::Float(_)) => Some(ValueType::SymFloat),
            Some(Arg::Bool(_)) => Some(ValueType::SymBool),
            Some(Arg::Value(v)) if cx.g.contains(*v) => Some(cx.g.ty(*v).clone()),
            _ => None,
        }
    };
    let out = match target {
        "_operator.getitem" => return getitem(cx),
        "_operator.add" | "_operator.sub" | "_operator.mul" | "_operator.floordiv"
        | "_operator.mod" | "_operator.pow" | "_operator.neg" | "torch.sym_max"
        | "torch.sym_min" => {
            let any_float = (0..n.args.len()).any(|i| kind(i) == Some(ValueType::SymFloat));
            if any_float {
                ValueType::SymFloat
            } else {
                ValueType::SymInt
            }
        }
        "_operator.truediv" | "torch.sym_float" | "torch._sym_sqrt" => ValueType::SymFloat,
        "torch.sym_int" | "math.ceil" | "math.floor" => ValueType::SymInt,
        _ => ValueType::SymBool,
    };
    Ok(vec![out])
}

/// `getitem(x, i)`: element `i` of a list argument or of a multi-output node.
fn getitem(cx: &Cx) -> Result<Vec<ValueType>> {
    let n = cx.n;
    let src = n.args.first().map(|a| &a.value);
    let idx = match n.args.get(1).map(|a| &a.value) {
        Some(Arg::Int(i)) => *i,
        _ => return Err(cx.err("getitem needs a constant index")),
    };
    let pick = |len: usize| -> Result<usize> {
        let i = if idx < 0 { idx + len as i64 } else { idx };
        usize::try_from(i)
            .ok()
            .filter(|&i| i < len)
            .ok_or_else(|| cx.err(format!("getitem index {idx} out of range {len}")))
    };
    match src {
        Some(Arg::List(items)) => {
            let i = pick(items.len())?;
            match &items[i] {
                Arg::Value(v) if cx.g.contains(*v) => Ok(vec![cx.g.ty(*v).clone()]),
                _ => Err(cx.err("getitem of a non-value list element")),
            }
        }
        Some(Arg::Value(v)) if cx.g.contains(*v) => {
            match cx.g.nodes.iter().find(|p| p.outputs.contains(v)) {
                Some(p) if p.outputs.len() > 1 || p.list_output => {
                    let i = pick(p.outputs.len())?;
                    Ok(vec![cx.g.ty(p.outputs[i]).clone()])
                }
                _ => Ok(vec![cx.g.ty(*v).clone()]),
            }
        }
        _ => Err(cx.err("getitem of an unsupported argument")),
    }
}

/// A higher-order op inside an autocast region of dtype `autocast`.
pub(crate) fn infer_hop_in(g: &Graph, n: &Node, autocast: Option<DType>) -> Result<Vec<ValueType>> {
    match &n.op {
        Op::Hop(h) => infer_hop(&Cx { g, n }, *h, autocast),
        _ => infer_node(g, n),
    }
}

fn infer_hop(cx: &Cx, h: Hop, autocast: Option<DType>) -> Result<Vec<ValueType>> {
    let n = cx.n;
    match h {
        Hop::WrapWithSetGradEnabled | Hop::WrapWithAutocast | Hop::InvokeSubgraph | Hop::Cond => {
            body_output_types(cx, autocast)
        }
        Hop::Map => {
            // Each body output, stacked along a new leading dim.
            let len = leading_dim(cx, 1)?;
            let outs = body_output_types(cx, autocast)?;
            Ok(outs.into_iter().map(|t| stacked(t, &len)).collect())
        }
        Hop::Scan => {
            // The carry keeps the types of `init`; the other outputs are
            // stacked along a new leading dim.
            let len = leading_dim(cx, 2)?;
            let n_init = match n.args.get(1).map(|a| &a.value) {
                Some(Arg::List(items)) => items.len(),
                Some(Arg::Ints(v)) => v.len(),
                _ => return Err(cx.err("scan without a list of initial values")),
            };
            let outs = body_output_types(cx, autocast)?;
            if outs.len() < n_init {
                return Err(cx.err(format!(
                    "the combine function of scan returns {} values for {n_init} carried values",
                    outs.len()
                )));
            }
            Ok(outs
                .into_iter()
                .enumerate()
                .map(|(i, t)| if i < n_init { t } else { stacked(t, &len) })
                .collect())
        }
        Hop::AutoFunctionalized | Hop::AutoFunctionalizedV2 => {
            // (op outputs..., mutated bases...): the bases keep their types;
            // the op's own outputs keep what the archive recorded.
            let bases: Vec<ValueType> = match n.arg("_all_bases") {
                Some(Arg::List(items)) => items
                    .iter()
                    .filter_map(|a| a.as_value())
                    .map(|v| cx.g.ty(v).clone())
                    .collect(),
                _ => n
                    .args
                    .iter()
                    .filter(|a| !a.name.is_empty() && a.name != "_all_bases")
                    .filter_map(|a| a.value.as_value())
                    .filter(|v| cx.g.ty(*v).is_tensor())
                    .map(|v| cx.g.ty(v).clone())
                    .collect(),
            };
            let lead = n.outputs.len().saturating_sub(bases.len());
            let mut out: Vec<ValueType> = n.outputs[..lead]
                .iter()
                .map(|&o| cx.g.ty(o).clone())
                .collect();
            out.extend(bases.into_iter().take(n.outputs.len() - lead));
            Ok(out)
        }
        Hop::WhileLoop => {
            // The loop carries its inputs' types through.
            let carried = n.args.get(2).map(|a| &a.value);
            let items: Vec<Arg> = match carried {
                Some(Arg::List(items)) => items.clone(),
                Some(a @ Arg::Value(_)) => vec![a.clone()],
                _ => return Err(cx.err("while_loop without carried inputs")),
            };
            let tys = items
                .iter()
                .map(|a| match a {
                    Arg::Value(v) if cx.g.contains(*v) => Ok(cx.g.ty(*v).clone()),
                    Arg::Int(_) => Ok(ValueType::SymInt),
                    Arg::Float(_) => Ok(ValueType::SymFloat),
                    Arg::Bool(_) => Ok(ValueType::SymBool),
                    _ => Err(cx.err("unsupported while_loop carried input")),
                })
                .collect::<Result<Vec<_>>>()?;
            check_loop_body(cx, &tys)?;
            Ok(tys)
        }
        Hop::WithEffects => {
            let out = n.outputs.iter().map(|&o| cx.g.ty(o).clone()).collect();
            Ok(out)
        }
    }
}

/// The output types of a higher-order op's (first) body, typed from the
/// node's operands.
fn body_output_types(cx: &Cx, autocast: Option<DType>) -> Result<Vec<ValueType>> {
    let n = cx.n;
    let (sub, operands) =
        super::hop_operands(cx.g, n).ok_or_else(|| cx.err("higher-order op without a subgraph"))?;
    let mut sub = sub.clone();
    super::type_subgraph(
        &mut sub,
        &operands,
        super::hop_autocast(n, autocast),
        &super::Ranges::new(),
    )
    .map_err(|e| cx.err(e.to_string()))?;
    Ok(sub
        .outputs
        .iter()
        .map(|a| match a {
            Arg::Value(v) => sub.ty(*v).clone(),
            Arg::Int(_) => ValueType::SymInt,
            _ => ValueType::Opaque,
        })
        .collect())
}

/// The body of a `while_loop` (its second graph) must return a value of
/// each carried type, as far as its output types are known.
fn check_loop_body(cx: &Cx, carried: &[ValueType]) -> Result<()> {
    let Some(body) = cx.n.subgraphs().nth(1) else {
        return Err(cx.err("while_loop without a body graph"));
    };
    let g = &body.graph;
    if g.outputs.len() != carried.len() {
        return Err(cx.err(format!(
            "the body of while_loop returns {} values for {} carried inputs",
            g.outputs.len(),
            carried.len()
        )));
    }
    for (k, (out, want)) in g.outputs.iter().zip(carried).enumerate() {
        let Some(v) = out.as_value() else { continue };
        let (ValueType::Tensor(got), ValueType::Tensor(want)) = (g.ty(v), want) else {
            continue;
        };
        let differ = got.dtype != want.dtype
            || got.rank() != want.rank()
            || got
                .shape
                .iter()
                .zip(&want.shape)
                .any(|(a, b)| provably_different(a, b));
        if differ {
            return Err(cx.err(format!(
                "the body of while_loop returns {} for carried input {k}, which is {}",
                crate::ir::print::type_text(&ValueType::Tensor(got.clone())),
                crate::ir::print::type_text(&ValueType::Tensor(want.clone()))
            )));
        }
    }
    Ok(())
}

/// The leading dim of the first tensor of the list argument `i` (the `xs`
/// of `map_impl` and `scan`).
fn leading_dim(cx: &Cx, i: usize) -> Result<SymExpr> {
    let first = match cx.n.args.get(i).map(|a| &a.value) {
        Some(Arg::List(items)) => items.first().and_then(Arg::as_value),
        _ => None,
    };
    let v = first.ok_or_else(|| cx.err("xs is not a non-empty list of tensors"))?;
    match cx.g.ty(v) {
        ValueType::Tensor(t) if t.rank() > 0 => Ok(t.shape[0].clone()),
        ValueType::Tensor(_) => Err(cx.err("xs[0] is a 0-d tensor")),
        _ => Err(cx.err("xs[0] has no known type")),
    }
}

/// `t` with a new leading dim of size `len` (a stacked per-step result).
fn stacked(t: ValueType, len: &SymExpr) -> ValueType {
    match t {
        ValueType::Tensor(mut t) => {
            t.shape.insert(0, len.clone());
            ValueType::Tensor(t)
        }
        other => other,
    }
}

/// Result dtype of an elementwise op over the named operands.
fn promote(cx: &Cx, names: &[&str]) -> Result<DType> {
    let mut ops = Vec::new();
    for nm in names {
        if let Some(o) = cx.operand(nm)? {
            ops.push(o);
        }
    }
    result_type(&ops).ok_or_else(|| cx.err("no operands to promote"))
}

/// Broadcast shape of the tensor operands among `names`.
fn bshape(cx: &Cx, names: &[&str]) -> Result<Shape> {
    let mut shape: Shape = vec![];
    for nm in names {
        if let Some(Arg::Value(v)) = cx.get(nm) {
            if let Some(tt) = cx.g.tensor_type(*v) {
                shape = cx.broadcast(&shape, &tt.shape)?;
            } else if cx.g.ty(*v) == &ValueType::UnknownTensor {
                return Err(cx.err(format!("argument {nm} has no known type")));
            }
        }
    }
    Ok(shape)
}

fn reduce_shape(cx: &Cx, shape: &[SymExpr], dims: Option<&[i64]>, keep: bool) -> Result<Shape> {
    let rank = shape.len();
    let mut mark = vec![false; rank];
    match dims {
        None | Some([]) => mark.iter_mut().for_each(|m| *m = true),
        Some(ds) => {
            for &d in ds {
                if rank == 0 {
                    cx.dim(d, 0)?;
                    continue;
                }
                mark[cx.dim(d, rank)?] = true;
            }
        }
    }
    Ok(shape
        .iter()
        .zip(&mark)
        .filter_map(|(s, &m)| match (m, keep) {
            (false, _) => Some(s.clone()),
            (true, true) => Some(int(1)),
            (true, false) => None,
        })
        .collect())
}

/// Output size of a conv/pool window (floor mode).
fn window_out(i: &SymExpr, k: i64, s: i64, p: i64, d: i64) -> SymExpr {
    let num = add(i.clone(), int(2 * p - d * (k - 1) - 1));
    add(div(num, int(s)), int(1))
}

fn pool_out(i: &SymExpr, k: i64, s: i64, p: i64, d: i64, ceil: bool) -> SymExpr {
    if !ceil {
        return window_out(i, k, s, p, d);
    }
    if let Some(iv) = i.as_int() {
        let num = iv + 2 * p - d * (k - 1) - 1 + (s - 1);
        let mut o = num.div_euclid(s) + 1;
        if (o - 1) * s >= iv + p {
            o -= 1;
        }
        return int(o);
    }
    let num = add(i.clone(), int(2 * p - d * (k - 1) - 1 + (s - 1)));
    add(div(num, int(s)), int(1))
}

/// Repeats a one-element parameter list to `n` entries.
fn expand_param(cx: &Cx, v: Vec<i64>, n: usize, default: i64, what: &str) -> Result<Vec<i64>> {
    match v.len() {
        0 => Ok(vec![default; n]),
        1 => Ok(vec![v[0]; n]),
        l if l == n => Ok(v),
        l => Err(cx.err(format!("{what} has {l} entries, expected {n}"))),
    }
}

fn matmul_shape(cx: &Cx, a: &[SymExpr], b: &[SymExpr]) -> Result<Shape> {
    let check = |x: &SymExpr, y: &SymExpr| -> Result<()> {
        if provably_different(x, y) {
            return Err(cx.err(format!("matmul inner dims differ: {x} against {y}")));
        }
        Ok(())
    };
    match (a.len(), b.len()) {
        (0, _) | (_, 0) => Err(cx.err("matmul of a 0-dim tensor")),
        (1, 1) => {
            check(&a[0], &b[0])?;
            Ok(vec![])
        }
        (2, 1) => {
            check(&a[1], &b[0])?;
            Ok(vec![a[0].clone()])
        }
        (1, 2) => {
            check(&a[0], &b[0])?;
            Ok(vec![b[1].clone()])
        }
        (ra, rb) => {
            let (m, ka) = if ra == 1 {
                (None, a[0].clone())
            } else {
                (Some(a[ra - 2].clone()), a[ra - 1].clone())
            };
            let (kb, p) = if rb == 1 {
                (b[0].clone(), None)
            } else {
                (b[rb - 2].clone(), Some(b[rb - 1].clone()))
            };
            check(&ka, &kb)?;
            let ba = if ra > 2 { &a[..ra - 2] } else { &[][..] };
            let bb = if rb > 2 { &b[..rb - 2] } else { &[][..] };
            let mut out = cx.broadcast(ba, bb)?;
            out.extend(m);
            out.extend(p);
            Ok(out)
        }
    }
}

/// The sizes of `view`/`reshape`, resolving one `-1`.
fn view_shape(cx: &Cx, input: &TensorType, sizes: Vec<SymExpr>) -> Result<Shape> {
    let holes: Vec<usize> = (0..sizes.len())
        .filter(|&i| sizes[i].as_int() == Some(-1))
        .collect();
    if holes.len() > 1 {
        return Err(cx.err("view/reshape with more than one -1"));
    }
    let total = numel(&input.shape);
    let mut out = sizes;
    if let Some(&h) = holes.first() {
        let known: Vec<SymExpr> = out
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != h)
            .map(|(_, s)| s.clone())
            .collect();
        out[h] = div(total.clone(), numel(&known));
    } else if provably_different(&numel(&out), &total) {
        return Err(cx.err(format!(
            "cannot view {} elements as {} elements",
            total,
            numel(&out)
        )));
    }
    if let (Some(a), Some(b)) = (numel(&out).as_int(), total.as_int()) {
        if a != b {
            return Err(cx.err(format!("cannot view {b} elements as shape of {a}")));
        }
    }
    Ok(out)
}

fn slice_len(
    cx: &Cx,
    size: &SymExpr,
    start: Option<SymExpr>,
    end: Option<SymExpr>,
    step: i64,
) -> Result<SymExpr> {
    if step <= 0 {
        return Err(cx.err("slice step must be positive"));
    }
    let start = start.unwrap_or(int(0));
    let end = end.unwrap_or(int(SLICE_END));
    if let Some(d) = size.as_int() {
        if let (Some(mut s), Some(mut e)) = (start.as_int(), end.as_int()) {
            if s < 0 {
                s += d;
            }
            if e < 0 {
                e += d;
            }
            s = s.clamp(0, d);
            e = e.clamp(s, d.max(s));
            let e = e.min(d);
            let len = (e - s).max(0);
            return Ok(int(if len == 0 { 0 } else { (len - 1) / step + 1 }));
        }
    }
    // Symbolic: negative constants count from the end; "to the end"
    // bounds are the size itself; other bounds are taken as in range.
    let fix = |x: SymExpr, is_end: bool| -> SymExpr {
        match x.as_int() {
            Some(v) if v >= SLICE_END / 2 && is_end => size.clone(),
            Some(v) if v < 0 => SymExpr::max(vec![add(size.clone(), int(v)), int(0)]),
            Some(0) => int(0),
            Some(v) if size.as_int().is_some_and(|d| v >= d) => size.clone(),
            Some(v) if is_end => SymExpr::min(vec![int(v), size.clone()]),
            _ => x,
        }
    };
    let s = fix(start, false);
    let e = fix(end, true);
    let len = sub(e, s);
    Ok(if step == 1 {
        len
    } else {
        ceil_div(len, int(step))
    })
}

fn conv(cx: &Cx, transposed: bool, spatial_hint: Option<usize>) -> Result<Vec<ValueType>> {
    let x = cx.tensor("input")?;
    let w = cx.tensor("weight")?;
    let nsp = spatial_hint.unwrap_or(w.rank().saturating_sub(2));
    if w.rank() != nsp + 2 {
        return Err(cx.err(format!("conv weight of rank {}", w.rank())));
    }
    let batched = x.rank() == nsp + 2;
    if !batched && x.rank() != nsp + 1 {
        return Err(cx.err(format!(
            "conv input of rank {} for {} spatial dims",
            x.rank(),
            nsp
        )));
    }
    let stride = expand_param(cx, cx.ints("stride")?, nsp, 1, "stride")?;
    let dilation = expand_param(cx, cx.ints("dilation")?, nsp, 1, "dilation")?;
    let groups = cx.int("groups")?;
    let out_pad = expand_param(cx, cx.ints("output_padding")?, nsp, 0, "output_padding")?;
    let same_pad = matches!(cx.get("padding"), Some(Arg::Str(s)) if s == "same");
    let padding = match cx.get("padding") {
        Some(Arg::Str(_)) => vec![0; nsp],
        _ => expand_param(cx, cx.ints("padding")?, nsp, 0, "padding")?,
    };
    cx.check_params("stride", &stride, 1)?;
    cx.check_params("dilation", &dilation, 1)?;
    cx.check_params("padding", &padding, 0)?;
    cx.check_params("output_padding", &out_pad, 0)?;
    let sp0 = x.rank() - nsp;
    let mut shape: Shape = Vec::new();
    if batched {
        shape.push(x.shape[0].clone());
    }
    shape.push(if transposed {
        mul(w.shape[1].clone(), int(groups))
    } else {
        w.shape[0].clone()
    });
    for i in 0..nsp {
        let inp = &x.shape[sp0 + i];
        let k = w.shape[2 + i]
            .as_int()
            .ok_or_else(|| cx.err("symbolic kernel size"))?;
        cx.check_params("kernel size", &[k], 0)?;
        let o = if same_pad {
            inp.clone()
        } else if transposed {
            add(
                mul(sub(inp.clone(), int(1)), int(stride[i])),
                int(-2 * padding[i] + dilation[i] * (k - 1) + out_pad[i] + 1),
            )
        } else {
            window_out(inp, k, stride[i], padding[i], dilation[i])
        };
        shape.push(o);
    }
    Ok(vec![t(x.dtype, shape)])
}

fn pool(cx: &Cx, nsp: usize, max: bool, with_indices: bool) -> Result<Vec<ValueType>> {
    let x = cx.tensor("self")?;
    if x.rank() < nsp + 1 {
        return Err(cx.err(format!("pooling input of rank {}", x.rank())));
    }
    let k = expand_param(cx, cx.ints("kernel_size")?, nsp, 1, "kernel_size")?;
    let s = match cx.ints("stride")? {
        v if v.is_empty() => k.clone(),
        v => expand_param(cx, v, nsp, 1, "stride")?,
    };
    let p = expand_param(cx, cx.ints("padding")?, nsp, 0, "padding")?;
    let d = if max {
        expand_param(cx, cx.ints("dilation")?, nsp, 1, "dilation")?
    } else {
        vec![1; nsp]
    };
    let ceil = cx.bool("ceil_mode")?;
    cx.check_params("kernel_size", &k, 1)?;
    cx.check_params("stride", &s, 1)?;
    cx.check_params("padding", &p, 0)?;
    cx.check_params("dilation", &d, 1)?;
    let sp0 = x.rank() - nsp;
    let mut shape = x.shape[..sp0].to_vec();
    for i in 0..nsp {
        if s[i] <= 0 {
            return Err(cx.err("pooling stride must be positive"));
        }
        shape.push(pool_out(&x.shape[sp0 + i], k[i], s[i], p[i], d[i], ceil));
    }
    let mut out = vec![t(x.dtype, shape.clone())];
    if with_indices {
        out.push(t(DType::I64, shape));
    }
    Ok(out)
}

fn adaptive_pool(cx: &Cx, nsp: usize, with_indices: bool) -> Result<Vec<ValueType>> {
    let x = cx.tensor("self")?;
    let os = cx.sym_ints("output_size")?;
    if os.len() != nsp || x.rank() < nsp + 1 {
        return Err(cx.err("adaptive pooling: bad output_size or input rank"));
    }
    let mut shape = x.shape[..x.rank() - nsp].to_vec();
    for (i, o) in os.into_iter().enumerate() {
        // `None` entries (as -1) keep the input size.
        shape.push(if o.as_int() == Some(-1) {
            x.shape[x.rank() - nsp + i].clone()
        } else {
            o
        });
    }
    let mut out = vec![t(x.dtype, shape.clone())];
    if with_indices {
        out.push(t(DType::I64, shape));
    }
    Ok(out)
}

/// `split`/`split_with_sizes`/`chunk`/`unbind` pieces along `dim`.
fn split_pieces(cx: &Cx, x: &TensorType, dim: usize, sizes: Vec<SymExpr>) -> Vec<ValueType> {
    let _ = cx;
    sizes
        .into_iter()
        .map(|s| {
            let mut shape = x.shape.clone();
            shape[dim] = s;
            t(x.dtype, shape)
        })
        .collect()
}

fn fill_dtype(cx: &Cx, name: &str) -> Result<DType> {
    Ok(match cx.operand(name)? {
        Some(Operand::BoolScalar) => DType::Bool,
        Some(Operand::IntScalar) => DType::I64,
        Some(Operand::ZeroDim(d)) | Some(Operand::Tensor(d)) => d,
        _ => DType::F32,
    })
}

fn infer_aten(cx: &Cx, a: Aten, ov: &str) -> Result<Vec<ValueType>> {
    use Aten::*;
    let n = cx.n;
    let one = |v: ValueType| Ok(vec![v]);
    let name = a.name();
    // Every in-place op (`relu_`, `add_`, `index_put_` ...) returns `self`.
    if name.ends_with('_') && !name.starts_with("__") {
        let x = cx.tensor("self")?;
        return match a {
            ResizeInplace => one(t(x.dtype, cx.sym_ints("size")?)),
            SetInplace => Err(cx.err(format!("no shape rule for aten.{name}.{ov}"))),
            UnsqueezeInplace => {
                let d = cx.new_dim(cx.int("dim")?, x.rank())?;
                let mut s = x.shape.clone();
                s.insert(d, int(1));
                one(t(x.dtype, s))
            }
            _ => one(same(&x)),
        };
    }
    match a {
        // ---- metadata and assertions
        InternalAssertTensorMetadata | InternalAssertScalar => Ok(vec![]),
        SymSize | SymNumel | SymStorageOffset | SymStride => {
            if ov == "int" || a == SymNumel || a == SymStorageOffset {
                let x = cx.tensor("self")?;
                if a == SymSize || a == SymStride {
                    cx.dim(cx.int("dim")?, x.rank())?;
                }
                one(ValueType::SymInt)
            } else {
                Err(cx.err(format!("no shape rule for aten.{name}.{ov} (list result)")))
            }
        }
        Size | Numel => one(ValueType::SymInt),
        Item | InternalLocalScalarDense => {
            let x = cx.tensor("self")?;
            one(if x.dtype.is_float() {
                ValueType::SymFloat
            } else if x.dtype == DType::Bool {
                ValueType::SymBool
            } else {
                ValueType::SymInt
            })
        }

        // ---- unary, same type
        Abs | Absolute | Neg | Negative | Positive | Relu | Relu6 | Hardtanh | LeakyRelu
        | Clone | Contiguous | Alias | AliasCopy | Detach | LiftFreshCopy | Ceil | Floor
        | Round | Trunc | Fix | Sign | Sgn | BitwiseNot | DunderNot | Hardshrink | Softshrink
        | Threshold | Celu | Elu | Selu | Gelu | Silu | Mish | Hardswish | Hardsigmoid
        | Softplus | Rrelu | LogSigmoid | Square | Frac | NanToNum | Bernoulli | Tril | Triu
        | Flip | Roll | Zero | Cumprod | Logcumsumexp | Prelu | InternalPreluKernel | Copy
        | Fill => {
            let x = cx.tensor("self")?;
            one(same(&x))
        }
        // `clamp` promotes integer inputs with its bounds.
        Clamp | ClampMin | ClampMax | Clip => {
            let names = ["self", "min", "max"];
            let d = promote(cx, &names)?;
            one(t(d, bshape(cx, &names)?))
        }
        Cummax | Cummin => {
            let x = cx.tensor("self")?;
            Ok(vec![same(&x), t(DType::I64, x.shape)])
        }
        PixelShuffle | PixelUnshuffle => {
            let x = cx.tensor("self")?;
            let r = cx.int(if a == PixelShuffle {
                "upscale_factor"
            } else {
                "downscale_factor"
            })?;
            cx.check_params("factor", &[r], 1)?;
            let k = x.rank();
            if k < 3 {
                return Err(cx.err("pixel shuffle of rank < 3"));
            }
            let mut s = x.shape.clone();
            if a == PixelShuffle {
                s[k - 3] = div(s[k - 3].clone(), int(r * r));
                s[k - 2] = mul(s[k - 2].clone(), int(r));
                s[k - 1] = mul(s[k - 1].clone(), int(r));
            } else {
                s[k - 3] = mul(s[k - 3].clone(), int(r * r));
                s[k - 2] = div(s[k - 2].clone(), int(r));
                s[k - 1] = div(s[k - 1].clone(), int(r));
            }
            one(t(x.dtype, s))
        }
        Dropout | Pad => {
            if a == Pad {
                return pad(cx, "pad");
            }
            let x = cx.tensor("input")?;
            one(same(&x))
        }
        NativeDropout => {
            let x = cx.tensor("input")?;
            Ok(vec![same(&x), t(DType::Bool, x.shape)])
        }
        // ---- unary, floating result
        Sigmoid | Tanh | Exp | Exp2 | Expm1 | Log | Log10 | Log1p | Log2 | Sqrt | Rsqrt
        | Reciprocal | Sin | Cos | Tan | Sinh | Cosh | Asin | Acos | Atan | Asinh | Acosh
        | Atanh | Erf | Logit => {
            let x = cx.tensor("self")?;
            one(t(float_of(x.dtype), x.shape))
        }
        Isnan | Isinf | LogicalNot => {
            let x = cx.tensor("self")?;
            one(t(DType::Bool, x.shape))
        }

        // ---- binary elementwise
        Add | Sub | Subtract | Mul | Multiply | Maximum | Minimum | Remainder | Fmod
        | BitwiseAnd | BitwiseOr | BitwiseXor | DunderAnd | DunderOr | DunderXor | Hypot
        | FloorDivide | Rsub | Atan2 | Pow => {
            let names: &[&str] = if a == Pow {
                &["self", "exponent"]
            } else {
                &["self", "other"]
            };
            let mut d = promote(cx, names)?;
            if matches!(a, Atan2 | Hypot) {
                d = float_of(d);
            }
            one(t(d, bshape(cx, names)?))
        }
        Div | Divide | TrueDivide => {
            let d = promote(cx, &["self", "other"])?;
            let rounding = cx.has("rounding_mode") && a != TrueDivide;
            let d = if rounding { d } else { float_of(d) };
            one(t(d, bshape(cx, &["self", "other"])?))
        }
        Eq | Ne | Lt | Le | Gt | Ge | Greater | GreaterEqual | Less | LessEqual | NotEqual
        | LogicalAnd | LogicalOr | LogicalXor => {
            promote(cx, &["self", "other"])?;
            one(t(DType::Bool, bshape(cx, &["self", "other"])?))
        }
        Lerp => {
            let d = promote(cx, &["self", "end", "weight"])?;
            one(t(d, bshape(cx, &["self", "end", "weight"])?))
        }
        Addcmul | Addcdiv => {
            let d = promote(cx, &["self", "tensor1", "tensor2"])?;
            one(t(d, bshape(cx, &["self", "tensor1", "tensor2"])?))
        }
        Where => {
            if !cx.has("self") {
                return Err(cx.err("no shape rule for aten.where.default (data-dependent)"));
            }
            let d = promote(cx, &["self", "other"])?;
            one(t(d, bshape(cx, &["condition", "self", "other"])?))
        }
        MaskedFill => {
            let x = cx.tensor("self")?;
            let s = bshape(cx, &["self", "mask"])?;
            one(t(x.dtype, s))
        }
        Isin => {
            let s = match cx.opt_tensor("elements")? {
                Some(e) => e.shape,
                None => vec![],
            };
            one(t(DType::Bool, s))
        }
        Bucketize | Searchsorted => {
            let x = cx.tensor("self").or_else(|_| cx.tensor("input"))?;
            let d = if cx.bool("out_int32")? {
                DType::I32
            } else {
                DType::I64
            };
            one(t(d, x.shape))
        }

        // ---- reductions
        Sum | Prod | Mean | Amax | Amin | Any | All | Logsumexp | Std | Var | Norm
        | LinalgVectorNorm | CountNonzero => {
            let x = cx.tensor("self")?;
            let keep = cx.keepdim()?;
            let dims = match cx.get("dim") {
                None => None,
                Some(_) => Some(cx.ints("dim")?),
            };
            let shape = if matches!((a, ov), (Sum | Prod | Mean | Any | All, "default")) {
                vec![]
            } else {
                reduce_shape(cx, &x.shape, dims.as_deref(), keep)?
            };
            let d = match a {
                Sum | Prod => cx.opt_dtype("dtype")?.unwrap_or(sum_dtype(x.dtype)),
                Mean | Norm | LinalgVectorNorm => cx.opt_dtype("dtype")?.unwrap_or(x.dtype),
                Any | All => DType::Bool,
                CountNonzero => DType::I64,
                Logsumexp | Std | Var => float_of(x.dtype),
                _ => x.dtype,
            };
            one(t(d, shape))
        }
        Argmax | Argmin => {
            let x = cx.tensor("self")?;
            let keep = cx.keepdim()?;
            let shape = match cx.opt_int("dim")? {
                None if keep => vec![int(1); x.rank()],
                None => vec![],
                Some(d) => reduce_shape(cx, &x.shape, Some(&[d]), keep)?,
            };
            one(t(DType::I64, shape))
        }
        Max | Min | Median | Mode | Kthvalue => {
            let x = cx.tensor("self")?;
            if cx.has("other") {
                let d = promote(cx, &["self", "other"])?;
                return one(t(d, bshape(cx, &["self", "other"])?));
            }
            match cx.opt_int("dim")? {
                None if a == Mode || a == Kthvalue => {
                    let s = reduce_shape(cx, &x.shape, Some(&[-1]), cx.keepdim()?)?;
                    Ok(vec![t(x.dtype, s.clone()), t(DType::I64, s)])
                }
                None => one(t(x.dtype, vec![])),
                Some(d) => {
                    let keep = cx.keepdim()?;
                    let s = reduce_shape(cx, &x.shape, Some(&[d]), keep)?;
                    Ok(vec![t(x.dtype, s.clone()), t(DType::I64, s)])
                }
            }
        }
        Topk => {
            let x = cx.tensor("self")?;
            let k = cx.sym_of(cx.get("k").ok_or_else(|| cx.err("missing k"))?, "k")?;
            let d = cx.dim(cx.int("dim")?, x.rank())?;
            let mut s = x.shape.clone();
            if !s.is_empty() {
                s[d] = k;
            }
            Ok(vec![t(x.dtype, s.clone()), t(DType::I64, s)])
        }
        Sort => {
            let x = cx.tensor("self")?;
            Ok(vec![same(&x), t(DType::I64, x.shape)])
        }
        Argsort => {
            let x = cx.tensor("self")?;
            one(t(DType::I64, x.shape))
        }
        Cumsum => {
            let x = cx.tensor("self")?;
            cx.dim(cx.int("dim")?, x.rank())?;
            let d = cx.opt_dtype("dtype")?.unwrap_or(sum_dtype(x.dtype));
            one(t(d, x.shape))
        }
        Softmax | LogSoftmax | InternalSoftmax | InternalLogSoftmax | InternalSafeSoftmax => {
            let x = cx.tensor("self")?;
            cx.dim(cx.int("dim")?, x.rank())?;
            let d = cx.opt_dtype("dtype")?.unwrap_or(x.dtype);
            one(t(d, x.shape))
        }
        Trace | Dot | Vdot => {
            let x = cx.tensor("self")?;
            let d = if a == Trace {
                x.dtype
            } else {
                promote(cx, &["self", "tensor"])?
            };
            one(t(d, vec![]))
        }
        Diff => {
            let x = cx.tensor("self")?;
            let nn = cx.int("n")?;
            let d = cx.sdim(cx.int("dim")?, x.rank())?;
            let mut size = x.shape[d].clone();
            for nm in ["prepend", "append"] {
                if let Some(p) = cx.opt_tensor(nm)? {
                    size = add(size, p.shape.get(d).cloned().unwrap_or(int(1)));
                }
            }
            let size = match size.as_int() {
                Some(v) => int(v.saturating_sub(nn).max(0)),
                None => sub(size, int(nn)),
            };
            let mut s = x.shape.clone();
            s[d] = size;
            one(t(x.dtype, s))
        }

        // ---- views and shape ops
        View | Reshape | InternalUnsafeView | ViewCopy => {
            let x = cx.tensor("self")?;
            if a == View && ov == "dtype" {
                let d = cx.opt_dtype("dtype")?.unwrap_or(x.dtype);
                return one(t(d, x.shape));
            }
            let sizes = if cx.has("size") {
                cx.sym_ints("size")?
            } else {
                cx.sym_ints("shape")?
            };
            one(t(x.dtype, view_shape(cx, &x, sizes)?))
        }
        ViewAs | ExpandAs => {
            let x = cx.tensor("self")?;
            let o = cx.tensor("other")?;
            one(t(x.dtype, o.shape))
        }
        TypeAs => {
            let x = cx.tensor("self")?;
            let o = cx.tensor("other")?;
            one(t(o.dtype, x.shape))
        }
        Flatten => {
            let x = cx.tensor("self")?;
            if x.rank() == 0 {
                return one(t(x.dtype, vec![int(1)]));
            }
            let s = cx.dim(cx.int("start_dim")?, x.rank())?;
            let e = cx.dim(cx.int("end_dim")?, x.rank())?;
            if s > e {
                return Err(cx.err("flatten start_dim after end_dim"));
            }
            let mut shape = x.shape[..s].to_vec();
            shape.push(numel(&x.shape[s..=e]));
            shape.extend_from_slice(&x.shape[e + 1..]);
            one(t(x.dtype, shape))
        }
        Unflatten => {
            let x = cx.tensor("self")?;
            let d = cx.sdim(cx.int("dim")?, x.rank())?;
            let part = TensorType::new(x.dtype, vec![x.shape[d].clone()]);
            let sizes = view_shape(cx, &part, cx.sym_ints("sizes")?)?;
            let mut shape = x.shape[..d].to_vec();
            shape.extend(sizes);
            shape.extend_from_slice(&x.shape[d + 1..]);
            one(t(x.dtype, shape))
        }
        Permute | PermuteCopy => {
            let x = cx.tensor("self")?;
            let dims = cx.ints("dims")?;
            if dims.len() != x.rank() {
                return Err(cx.err(format!(
                    "permute of rank {} with {} dims",
                    x.rank(),
                    dims.len()
                )));
            }
            let mut seen = vec![false; x.rank()];
            let mut shape = Vec::new();
            for d in dims {
                let d = cx.dim(d, x.rank())?;
                if std::mem::replace(&mut seen[d], true) {
                    return Err(cx.err("permute repeats a dim"));
                }
                shape.push(x.shape[d].clone());
            }
            one(t(x.dtype, shape))
        }
        // bilinear(input1, input2, weight[O, I1, I2], bias?) -> (*, O)
        Bilinear => {
            let (x, w) = (cx.tensor("input1")?, cx.tensor("weight")?);
            if x.rank() == 0 || w.rank() != 3 {
                return Err(cx.err("bilinear needs a 3-D weight and inputs of rank >= 1"));
            }
            let mut s = x.shape[..x.rank() - 1].to_vec();
            s.push(w.shape[0].clone());
            one(t(x.dtype, s))
        }
        ChannelShuffle => {
            let x = cx.tensor("self")?;
            one(same(&x))
        }
        Cross | LinalgCross => {
            let (x, y) = (cx.tensor("self")?, cx.tensor("other")?);
            one(t(
                promote(cx, &["self", "other"])?,
                cx.broadcast(&x.shape, &y.shape)?,
            ))
        }
        // diag: a vector becomes a square matrix, a matrix gives its diagonal.
        Diag => {
            let x = cx.tensor("self")?;
            let k = cx.int("diagonal")?;
            let dims: Option<Vec<i64>> = x.shape.iter().map(|d| d.as_int()).collect();
            match (x.rank(), dims.as_deref()) {
                (1, _) => {
                    let n = add(x.shape[0].clone(), int(k.abs()));
                    one(t(x.dtype, vec![n.clone(), n]))
                }
                (2, Some(&[r, c])) => {
                    let len = if k >= 0 { r.min(c - k) } else { (r + k).min(c) };
                    one(t(x.dtype, vec![int(len.max(0))]))
                }
                _ => Err(cx.err("diag needs a 1-D or a static 2-D input")),
            }
        }
        NumpyT => {
            let x = cx.tensor("self")?;
            let mut s = x.shape.clone();
            s.reverse();
            one(t(x.dtype, s))
        }
        // aminmax(self, dim=None, keepdim=False) -> (min, max)
        Aminmax => {
            let x = cx.tensor("self")?;
            let keep = cx.keepdim()?;
            let shape = match cx.opt_int("dim")? {
                None if keep => vec![int(1); x.rank()],
                None => vec![],
                Some(d) => reduce_shape(cx, &x.shape, Some(&[d]), keep)?,
            };
            Ok(vec![t(x.dtype, shape.clone()), t(x.dtype, shape)])
        }
        Transpose | TransposeCopy | T | TCopy => {
            let x = cx.tensor("self")?;
            let mut s = x.shape.clone();
            if matches!(a, T | TCopy) {
                if x.rank() > 2 {
                    return Err(cx.err("t() of a tensor of rank > 2"));
                }
                s.reverse();
            } else if x.rank() > 0 {
                let d0 = cx.dim(cx.int("dim0")?, x.rank())?;
                let d1 = cx.dim(cx.int("dim1")?, x.rank())?;
                s.swap(d0, d1);
            }
            one(t(x.dtype, s))
        }
        Expand | ExpandCopy => {
            let x = cx.tensor("self")?;
            let sizes = cx.sym_ints("size")?;
            if sizes.len() < x.rank() {
                return Err(cx.err("expand to fewer dims than the input"));
            }
            let lead = sizes.len() - x.rank();
            let mut shape = Vec::new();
            for (i, s) in sizes.into_iter().enumerate() {
                if i < lead {
                    shape.push(s);
                    continue;
                }
                let old = &x.shape[i - lead];
                if s.as_int() == Some(-1) || &s == old {
                    shape.push(old.clone());
                } else if old.as_int() == Some(1) || old.as_int().is_none() {
                    shape.push(s);
                } else if provably_different(old, &s) {
                    return Err(cx.err(format!("cannot expand size {old} to {s}")));
                } else {
                    shape.push(old.clone());
                }
            }
            one(t(x.dtype, shape))
        }
        Unsqueeze | UnsqueezeCopy => {
            let x = cx.tensor("self")?;
            let d = cx.new_dim(cx.int("dim")?, x.rank())?;
            let mut s = x.shape.clone();
            s.insert(d, int(1));
            one(t(x.dtype, s))
        }
        Squeeze | SqueezeCopy => {
            let x = cx.tensor("self")?;
            let dims: Vec<usize> = if cx.has("dim") {
                cx.ints("dim")?
                    .into_iter()
                    .map(|d| cx.dim(d, x.rank()))
                    .collect::<Result<_>>()?
            } else {
                (0..x.rank()).collect()
            };
            let s = x
                .shape
                .iter()
                .enumerate()
                .filter(|(i, d)| !(dims.contains(i) && d.as_int() == Some(1)))
                .map(|(_, d)| d.clone())
                .collect();
            one(t(x.dtype, s))
        }
        Select | SelectCopy => {
            let x = cx.tensor("self")?;
            if x.rank() == 0 {
                return Err(cx.err("select on a 0-dim tensor"));
            }
            let d = cx.dim(cx.int("dim")?, x.rank())?;
            if let (Some(Arg::Int(i)), Some(sz)) = (cx.get("index"), x.shape[d].as_int()) {
                if *i >= sz || *i < -sz {
                    return Err(cx.err(format!("select index {i} out of range for size {sz}")));
                }
            }
            let mut s = x.shape.clone();
            s.remove(d);
            one(t(x.dtype, s))
        }
        Slice | SliceCopy => {
            let x = cx.tensor("self")?;
            if x.rank() == 0 {
                return Err(cx.err("slice of a 0-dim tensor"));
            }
            let d = cx.dim(cx.int("dim")?, x.rank())?;
            let step = cx.int("step")?;
            let len = slice_len(
                cx,
                &x.shape[d],
                cx.opt_sym("start")?,
                cx.opt_sym("end")?,
                step,
            )?;
            let mut s = x.shape.clone();
            s[d] = len;
            one(t(x.dtype, s))
        }
        Narrow => {
            let x = cx.tensor("self")?;
            let d = cx.sdim(cx.int("dim")?, x.rank())?;
            let len = cx.sym_of(
                cx.get("length").ok_or_else(|| cx.err("missing length"))?,
                "length",
            )?;
            let mut s = x.shape.clone();
            s[d] = len;
            one(t(x.dtype, s))
        }
        AsStrided => {
            let x = cx.tensor("self")?;
            one(t(x.dtype, cx.sym_ints("size")?))
        }
        Unfold => {
            let x = cx.tensor("self")?;
            let d = cx.dim(cx.int("dimension")?, x.rank())?;
            let size = cx.int("size")?;
            let step = cx.int("step")?;
            cx.check_params("unfold size/step", &[size, step], 1)?;
            let mut s = x.shape.clone();
            if !s.is_empty() {
                s[d] = add(div(sub(s[d].clone(), int(size)), int(step)), int(1));
            }
            s.push(int(size));
            one(t(x.dtype, s))
        }
        Diagonal => {
            let x = cx.tensor("self")?;
            let off = cx.int("offset")?;
            let d1 = cx.sdim(cx.int("dim1")?, x.rank())?;
            let d2 = cx.sdim(cx.int("dim2")?, x.rank())?;
            let a1 = sub(x.shape[d1].clone(), int((-off).max(0)));
            let a2 = sub(x.shape[d2].clone(), int(off.max(0)));
            let len = match (a1.as_int(), a2.as_int()) {
                (Some(p), Some(q)) => int(p.min(q).max(0)),
                _ => SymExpr::min(vec![a1, a2]),
            };
            let mut s: Shape = x
                .shape
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != d1 && *i != d2)
                .map(|(_, d)| d.clone())
                .collect();
            s.push(len);
            one(t(x.dtype, s))
        }
        Repeat | Tile => {
            let x = cx.tensor("self")?;
            let reps = cx.sym_ints(if a == Repeat { "repeats" } else { "dims" })?;
            let r = reps.len().max(x.rank());
            let mut shape = Vec::new();
            for i in 0..r {
                let rep = (i + reps.len())
                    .checked_sub(r)
                    .map(|j| reps[j].clone())
                    .unwrap_or(int(1));
                let old = (i + x.rank())
                    .checked_sub(r)
                    .map(|j| x.shape[j].clone())
                    .unwrap_or(int(1));
                shape.push(mul(old, rep));
            }
            if a == Repeat && reps.len() < x.rank() {
                return Err(cx.err("repeat with fewer dims than the input"));
            }
            one(t(x.dtype, shape))
        }
        ConstantPadNd => pad(cx, "pad"),
        ReflectionPad1d | ReflectionPad2d | ReflectionPad3d | ReplicationPad1d
        | ReplicationPad2d | ReplicationPad3d => pad(cx, "padding"),
        // w = g * v / ||v|| (norm over every dim but `dim`): the shape of v.
        InternalWeightNorm => {
            let v = cx.tensor("v")?;
            one(same(&v))
        }
        Cat => {
            let ts = cx.tensor_list("tensors")?;
            let ts: Vec<TensorType> = ts.into_iter().flatten().collect();
            let keep: Vec<&TensorType> = ts
                .iter()
                .filter(|x| !(x.rank() == 1 && x.shape[0].as_int() == Some(0)))
                .collect();
            let first = keep
                .first()
                .copied()
                .or(ts.first())
                .ok_or_else(|| cx.err("cat of no tensors"))?;
            let d = cx.sdim(cx.int("dim")?, first.rank())?;
            let mut s = first.shape.clone();
            let mut dt = first.dtype;
            for x in keep.iter().skip(1) {
                if x.rank() != first.rank() {
                    return Err(cx.err("cat of tensors of different ranks"));
                }
                s[d] = add(s[d].clone(), x.shape[d].clone());
                dt = promote_types(dt, x.dtype);
            }
            one(t(dt, s))
        }
        Stack => {
            let ts: Vec<TensorType> = cx.tensor_list("tensors")?.into_iter().flatten().collect();
            let first = ts.first().ok_or_else(|| cx.err("stack of no tensors"))?;
            let d = cx.new_dim(cx.int("dim")?, first.rank())?;
            let mut s = first.shape.clone();
            s.insert(d, int(ts.len() as i64));
            let dt = ts
                .iter()
                .fold(first.dtype, |acc, x| promote_types(acc, x.dtype));
            one(t(dt, s))
        }
        Split | SplitWithSizes | Chunk | Unbind | TensorSplit => {
            let x = cx.tensor("self")?;
            let d = cx.sdim(cx.int("dim")?, x.rank())?;
            let size = x.shape.get(d).cloned().unwrap_or(int(1));
            let nout = n.outputs.len();
            match a {
                Unbind => {
                    let mut s = x.shape.clone();
                    s.remove(d);
                    Ok(vec![t(x.dtype, s); nout])
                }
                SplitWithSizes => {
                    let sizes = cx.sym_ints("split_sizes")?;
                    Ok(split_pieces(cx, &x, d, sizes))
                }
                Split if ov == "sizes" || cx.has("split_sizes") => {
                    let sizes = cx.sym_ints("split_sizes")?;
                    Ok(split_pieces(cx, &x, d, sizes))
                }
                Split | Chunk => {
                    let chunk = if a == Chunk {
                        ceil_div(size.clone(), int(cx.int("chunks")?))
                    } else {
                        cx.sym_of(
                            cx.get("split_size")
                                .ok_or_else(|| cx.err("missing split_size"))?,
                            "split_size",
                        )?
                    };
                    let sizes: Vec<SymExpr> = match (size.as_int(), chunk.as_int()) {
                        (Some(sz), Some(c)) if c > 0 => {
                            let k = if sz <= 0 { 1 } else { (sz - 1) / c + 1 };
                            (0..k).map(|i| int(c.min(sz - i * c))).collect()
                        }
                        _ => {
                            let k = nout.max(1);
                            let mut v = vec![chunk.clone(); k];
                            v[k - 1] = sub(size.clone(), mul(chunk.clone(), int(k as i64 - 1)));
                            v
                        }
                    };
                    Ok(split_pieces(cx, &x, d, sizes))
                }
                _ => Err(cx.err(format!("no shape rule for aten.{name}.{ov}"))),
            }
        }

        // ---- matmul family
        Mm | Bmm | Matmul | Mv | Outer => {
            let x = cx.tensor("self")?;
            let other = match a {
                Mv => cx.tensor("vec")?,
                Outer => cx.tensor("vec2")?,
                Matmul => cx.tensor("other")?,
                _ => cx.tensor("mat2")?,
            };
            let need = match a {
                Mm => Some((2, 2)),
                Bmm => Some((3, 3)),
                Mv => Some((2, 1)),
                Outer => Some((1, 1)),
                _ => None,
            };
            if let Some((ra, rb)) = need {
                if x.rank() != ra || other.rank() != rb {
                    return Err(cx.err(format!(
                        "aten.{name} of ranks {} and {}",
                        x.rank(),
                        other.rank()
                    )));
                }
            }
            let d = promote_types(x.dtype, other.dtype);
            if a == Outer {
                return one(t(d, vec![x.shape[0].clone(), other.shape[0].clone()]));
            }
            if a == Bmm && provably_different(&x.shape[0], &other.shape[0]) {
                return Err(cx.err("bmm batch sizes differ"));
            }
            let mut s = matmul_shape(cx, &x.shape, &other.shape)?;
            if a == Bmm {
                s[0] = x.shape[0].clone();
            }
            one(t(d, s))
        }
        Addmm | Baddbmm | Addbmm | Addmv => {
            let (n1, n2) = match a {
                Addmv => ("mat", "vec"),
                Addmm => ("mat1", "mat2"),
                _ => ("batch1", "batch2"),
            };
            let m1 = cx.tensor(n1)?;
            let m2 = cx.tensor(n2)?;
            let mut s = matmul_shape(cx, &m1.shape, &m2.shape)?;
            if a == Addbmm && s.len() == 3 {
                s.remove(0);
            }
            let d = promote(cx, &["self", n1, n2])?;
            one(t(d, s))
        }
        Linear => {
            let x = cx.tensor("input")?;
            let w = cx.tensor("weight")?;
            if x.rank() == 0 {
                return Err(cx.err("linear of a 0-dim input"));
            }
            let k = &x.shape[x.rank() - 1];
            let in_w = w
                .shape
                .last()
                .ok_or_else(|| cx.err("linear weight of rank 0"))?;
            if provably_different(k, in_w) {
                return Err(cx.err(format!(
                    "linear: input features {k} but weight takes {in_w}"
                )));
            }
            let mut s = x.shape[..x.rank() - 1].to_vec();
            if w.rank() == 2 {
                s.push(w.shape[0].clone());
            }
            one(t(x.dtype, s))
        }

        // ---- convolution and pooling
        Convolution => conv(cx, cx.bool("transposed")?, None),
        Conv1d => conv(cx, false, Some(1)),
        Conv2d => conv(cx, false, Some(2)),
        Conv3d => conv(cx, false, Some(3)),
        ConvTranspose1d => conv(cx, true, Some(1)),
        ConvTranspose2d => conv(cx, true, Some(2)),
        MaxPool1d => pool(cx, 1, true, false),
        MaxPool2d => pool(cx, 2, true, false),
        MaxPool2dWithIndices => pool(cx, 2, true, true),
        MaxPool3dWithIndices => pool(cx, 3, true, true),
        AvgPool1d => pool(cx, 1, false, false),
        AvgPool2d => pool(cx, 2, false, false),
        AvgPool3d => pool(cx, 3, false, false),
        AdaptiveAvgPool1d => adaptive_pool(cx, 1, false),
        AdaptiveAvgPool2d | InternalAdaptiveAvgPool2d => adaptive_pool(cx, 2, false),
        InternalAdaptiveAvgPool3d => adaptive_pool(cx, 3, false),
        AdaptiveMaxPool2d => adaptive_pool(cx, 2, true),
        InternalTrilinear => {
            let ts = [cx.tensor("i1")?, cx.tensor("i2")?, cx.tensor("i3")?];
            let es = [
                cx.ints("expand1")?,
                cx.ints("expand2")?,
                cx.ints("expand3")?,
            ];
            let sum = cx.ints("sumdim")?;
            let rank = ts[0].rank() + es[0].len();
            let wrap_all = |v: &[i64]| -> Vec<usize> {
                v.iter()
                    .map(|&d| d.rem_euclid(rank.max(1) as i64) as usize)
                    .collect()
            };
            let mut full = vec![SymExpr::Int(1); rank];
            for (x, e) in ts.iter().zip(&es) {
                let e = wrap_all(e);
                if x.rank() + e.len() != rank {
                    return Err(
                        cx.err("_trilinear: an input's rank does not match its expand dims")
                    );
                }
                let mut k = 0;
                for (d, f) in full.iter_mut().enumerate() {
                    if !e.contains(&d) {
                        if *f == SymExpr::Int(1) {
                            *f = x.shape[k].clone();
                        }
                        k += 1;
                    }
                }
            }
            let sum = wrap_all(&sum);
            let shape = (0..rank)
                .filter(|d| !sum.contains(d))
                .map(|d| full[d].clone())
                .collect();
            one(t(ts[0].dtype, shape))
        }
        UpsampleNearest1d
        | UpsampleNearest2d
        | UpsampleBilinear2d
        | UpsampleBicubic2d
        | UpsampleLinear1d
        | InternalUpsampleNearestExact2d => {
            let x = cx.tensor(if cx.has("input") { "input" } else { "self" })?;
            let nsp = match a {
                UpsampleNearest1d | UpsampleLinear1d => 1,
                _ => 2,
            };
            let sp0 = x
                .rank()
                .checked_sub(nsp)
                .ok_or_else(|| cx.err("upsample rank"))?;
            let mut s = x.shape[..sp0].to_vec();
            let os = cx.sym_ints("output_size")?;
            if os.len() == nsp {
                s.extend(os);
            } else {
                let scales = match cx.get("scale_factors") {
                    Some(Arg::Floats(f)) => f.clone(),
                    _ => return Err(cx.err("upsample without output_size or scale_factors")),
                };
                for i in 0..nsp {
                    let f = scales.get(i).or(scales.first()).copied().unwrap_or(1.0);
                    let inp = x.shape[sp0 + i]
                        .as_int()
                        .ok_or_else(|| cx.err("upsample by scale of a symbolic size"))?;
                    s.push(int((inp as f64 * f).floor() as i64));
                }
            }
            one(t(x.dtype, s))
        }

        // ---- normalization
        BatchNorm | InstanceNorm | GroupNorm | LayerNorm | RmsNorm => {
            let x = cx.tensor("input")?;
            one(same(&x))
        }
        InternalNativeBatchNormLegitNoTraining => {
            let x = cx.tensor("input")?;
            Ok(vec![
                same(&x),
                t(DType::F32, vec![int(0)]),
                t(DType::F32, vec![int(0)]),
            ])
        }
        InternalNativeBatchNormLegit
        | InternalNativeBatchNormLegitFunctional
        | NativeBatchNorm
        | CudnnBatchNorm => {
            let x = cx.tensor("input")?;
            let c = x.shape.get(1).cloned().unwrap_or(int(0));
            let training = match a {
                NativeBatchNorm | CudnnBatchNorm => cx.bool("training")?,
                _ => true,
            };
            let stat = if training { c } else { int(0) };
            let sd = float_of(x.dtype);
            let mut out = vec![same(&x), t(sd, vec![stat.clone()]), t(sd, vec![stat])];
            if a == InternalNativeBatchNormLegitFunctional {
                out.push(same(&cx.tensor("running_mean")?));
                out.push(same(&cx.tensor("running_var")?));
            }
            if a == CudnnBatchNorm {
                out.push(t(DType::U8, vec![int(0)]));
            }
            Ok(out)
        }
        NativeLayerNorm => {
            let x = cx.tensor("input")?;
            let ns = cx.sym_ints("normalized_shape")?;
            let axis = x
                .rank()
                .checked_sub(ns.len())
                .ok_or_else(|| cx.err("normalized_shape longer than the input rank"))?;
            let mut st = x.shape[..axis].to_vec();
            st.extend(vec![int(1); ns.len()]);
            let sd = float_of(x.dtype);
            Ok(vec![same(&x), t(sd, st.clone()), t(sd, st)])
        }
        NativeGroupNorm => {
            let x = cx.tensor("input")?;
            let nb = cx.sym_of(cx.get("N").ok_or_else(|| cx.err("missing N"))?, "N")?;
            let gr = cx.int("group")?;
            let sd = float_of(x.dtype);
            Ok(vec![
                same(&x),
                t(sd, vec![nb.clone(), int(gr)]),
                t(sd, vec![nb, int(gr)]),
            ])
        }

        // ---- indexing
        // (output, offset2bag, bag_size, max_indices), as aten's meta gives.
        EmbeddingBag | InternalEmbeddingBag => {
            let w = cx.tensor("weight")?;
            let idx = cx.tensor("indices")?;
            if w.rank() != 2 || idx.rank() == 0 || idx.rank() > 2 {
                return Err(cx.err("embedding_bag needs a 2-D weight and 1-D or 2-D indices"));
            }
            let bags = if idx.rank() == 2 {
                idx.shape[0].clone()
            } else {
                let o = cx.tensor("offsets")?;
                let n = o
                    .shape
                    .first()
                    .cloned()
                    .ok_or_else(|| cx.err("0-d offsets"))?;
                if cx.bool("include_last_offset")? {
                    sub(n, int(1))
                } else {
                    n
                }
            };
            let mode = cx.int("mode")?;
            let count = numel(&idx.shape);
            let plain_sum = mode == 0
                && cx
                    .get("per_sample_weights")
                    .map_or(true, |a| matches!(a, Arg::None));
            let o2b = if plain_sum { int(0) } else { count };
            let max_shape = if mode == 2 {
                vec![bags.clone(), w.shape[1].clone()]
            } else {
                vec![bags.clone()]
            };
            Ok(vec![
                t(w.dtype, vec![bags.clone(), w.shape[1].clone()]),
                t(DType::I64, vec![o2b]),
                t(DType::I64, vec![bags]),
                t(DType::I64, max_shape),
            ])
        }
        Embedding => {
            let w = cx.tensor("weight")?;
            let idx = cx.tensor("indices")?;
            if w.rank() != 2 {
                return Err(cx.err("embedding weight must be 2-D"));
            }
            let mut s = idx.shape.clone();
            s.push(w.shape[1].clone());
            one(t(w.dtype, s))
        }
        Gather => {
            let x = cx.tensor("self")?;
            let idx = cx.tensor("index")?;
            cx.dim(cx.int("dim")?, x.rank())?;
            one(t(x.dtype, idx.shape))
        }
        IndexSelect => {
            let x = cx.tensor("self")?;
            let idx = cx.tensor("index")?;
            let d = cx.dim(cx.int("dim")?, x.rank())?;
            let mut s = x.shape.clone();
            if !s.is_empty() {
                s[d] = numel(&idx.shape);
            }
            one(t(x.dtype, s))
        }
        Index | InternalUnsafeIndex => {
            let x = cx.tensor("self")?;
            let idx = cx.tensor_list("indices")?;
            if idx.len() > x.rank() {
                return Err(cx.err("too many indices"));
            }
            let mut b: Shape = vec![];
            let mut positions = Vec::new();
            for (i, ix) in idx.iter().enumerate() {
                if let Some(ix) = ix {
                    if ix.dtype == DType::Bool || ix.dtype == DType::U8 {
                        return Err(
                            cx.err("no shape rule for boolean-mask indexing (data-dependent size)")
                        );
                    }
                    b = cx.broadcast(&b, &ix.shape)?;
                    positions.push(i);
                }
            }
            if positions.is_empty() {
                return one(same(&x));
            }
            let adjacent = positions.windows(2).all(|w| w[1] == w[0] + 1);
            let rest = |i: &usize| !positions.contains(i);
            let mut s = Vec::new();
            if adjacent {
                s.extend(x.shape[..positions[0]].iter().cloned());
                s.extend(b);
                s.extend(
                    x.shape
                        .iter()
                        .enumerate()
                        .skip(positions[0])
                        .filter(|(i, _)| rest(i))
                        .map(|(_, d)| d.clone()),
                );
            } else {
                s.extend(b);
                s.extend(
                    x.shape
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| rest(i))
                        .map(|(_, d)| d.clone()),
                );
            }
            one(t(x.dtype, s))
        }
        IndexPut
        | InternalUnsafeIndexPut
        | IndexAdd
        | IndexCopy
        | IndexFill
        | Scatter
        | ScatterAdd
        | ScatterReduce
        | MaskedScatter
        | SelectScatter
        | SliceScatter
        | AsStridedScatter
        | DiagonalScatter => {
            let x = cx.tensor("self")?;
            one(same(&x))
        }
        Nonzero => {
            let x = cx.tensor("self")?;
            let u = SymExpr::Symbol(format!("u_{}", n.name));
            one(t(DType::I64, vec![u, int(x.rank() as i64)]))
        }

        // ---- creation
        Arange => {
            let start = cx.get("start");
            let end = cx.get("end").ok_or_else(|| cx.err("arange without end"))?;
            let step = cx.get("step");
            let is_float = |x: Option<&Arg>| {
                matches!(x, Some(Arg::Float(_)))
                    || matches!(x, Some(Arg::Value(v)) if cx.g.ty(*v) == &ValueType::SymFloat)
            };
            let any_float = is_float(start) || is_float(Some(end)) || is_float(step);
            let d =
                cx.opt_dtype("dtype")?
                    .unwrap_or(if any_float { DType::F32 } else { DType::I64 });
            let fval = |x: Option<&Arg>, dflt: f64| -> Option<f64> {
                match x {
                    None => Some(dflt),
                    Some(Arg::Int(i)) => Some(*i as f64),
                    Some(Arg::Float(f)) => Some(*f),
                    _ => None,
                }
            };
            let len = if let (Some(s), Some(e), Some(st)) =
                (fval(start, 0.0), fval(Some(end), 0.0), fval(step, 1.0))
            {
                if st == 0.0 {
                    return Err(cx.err("arange step must be nonzero"));
                }
                int(((e - s) / st).ceil().max(0.0) as i64)
            } else if any_float {
                return Err(cx.err("arange with symbolic float bounds"));
            } else {
                let s = start
                    .map(|x| cx.sym_of(x, "start"))
                    .transpose()?
                    .unwrap_or(int(0));
                let e = cx.sym_of(end, "end")?;
                let st = step
                    .map(|x| cx.sym_of(x, "step"))
                    .transpose()?
                    .unwrap_or(int(1));
                ceil_div(sub(e, s), st)
            };
            one(t(d, vec![len]))
        }
        Linspace => {
            let steps = cx.sym_of(
                cx.get("steps").ok_or_else(|| cx.err("missing steps"))?,
                "steps",
            )?;
            one(t(cx.opt_dtype("dtype")?.unwrap_or(DType::F32), vec![steps]))
        }
        Randperm => {
            let nn = cx.sym_of(cx.get("n").ok_or_else(|| cx.err("missing n"))?, "n")?;
            one(t(cx.opt_dtype("dtype")?.unwrap_or(DType::I64), vec![nn]))
        }
        Full | Zeros | Ones | Empty | EmptyStrided | Rand | Randn => {
            let size = cx.sym_ints("size")?;
            let dflt = if a == Full {
                fill_dtype(cx, "fill_value")?
            } else {
                DType::F32
            };
            one(t(cx.opt_dtype("dtype")?.unwrap_or(dflt), size))
        }
        NewZeros | NewOnes | NewEmpty | NewFull => {
            let x = cx.tensor("self")?;
            let size = cx.sym_ints("size")?;
            one(t(cx.opt_dtype("dtype")?.unwrap_or(x.dtype), size))
        }
        FullLike | OnesLike | EmptyLike | RandLike | RandnLike => {
            let x = cx.tensor("self")?;
            one(t(cx.opt_dtype("dtype")?.unwrap_or(x.dtype), x.shape))
        }
        ScalarTensor => one(t(cx.opt_dtype("dtype")?.unwrap_or(DType::F32), vec![])),
        To | InternalToCopy => {
            let x = cx.tensor("self")?;
            let d = match cx.get("other") {
                Some(_) => cx.tensor("other")?.dtype,
                None => cx.opt_dtype("dtype")?.unwrap_or(x.dtype),
            };
            one(t(d, x.shape))
        }

        // ---- attention and recurrent layers
        ScaledDotProductAttention
        | InternalScaledDotProductFlashAttentionForCpu
        | InternalScaledDotProductEfficientAttention => {
            let q = cx.tensor("query")?;
            let v = cx.tensor("value")?;
            if q.rank() < 2 || v.rank() < 2 {
                return Err(cx.err("attention inputs must have rank >= 2"));
            }
            let mut s = q.shape[..q.rank() - 1].to_vec();
            s.push(v.shape[v.rank() - 1].clone());
            let out = t(q.dtype, s);
            let lse = t(DType::F32, q.shape[..q.rank() - 1].to_vec());
            match a {
                ScaledDotProductAttention => one(out),
                InternalScaledDotProductFlashAttentionForCpu => Ok(vec![out, lse]),
                _ => Ok(vec![out, lse, t(DType::I64, vec![]), t(DType::I64, vec![])]),
            }
        }
        Lstm | Gru | RnnTanh | RnnRelu => {
            if ov != "input" {
                return Err(cx.err(format!("no shape rule for aten.{name}.{ov}")));
            }
            let x = cx.tensor("input")?;
            let hx: Vec<TensorType> = cx.tensor_list("hx")?.into_iter().flatten().collect();
            let h0 = hx
                .first()
                .ok_or_else(|| cx.err("recurrent layer without hx"))?;
            let bidir = cx.bool("bidirectional")?;
            let dirs = if bidir { 2 } else { 1 };
            let hout = h0
                .shape
                .last()
                .cloned()
                .ok_or_else(|| cx.err("hx of rank 0"))?;
            let mut s = x.shape.clone();
            let last = s
                .len()
                .checked_sub(1)
                .ok_or_else(|| cx.err("input of rank 0"))?;
            s[last] = mul(hout, int(dirs));
            let mut out = vec![t(x.dtype, s)];
            out.extend(hx.iter().map(same));
            Ok(out)
        }
        Glu => {
            let x = cx.tensor("self")?;
            let d = cx.sdim(cx.int("dim")?, x.rank())?;
            let mut s = x.shape.clone();
            s[d] = div(s[d].clone(), int(2));
            one(t(x.dtype, s))
        }
        // ---- backward ops (core ATen): gradients take their inputs' types
        InternalAdaptiveAvgPool2dBackward | AvgPool2dBackward | MaxPool2dWithIndicesBackward => {
            one(same(&cx.tensor("self")?))
        }
        EmbeddingDenseBackward => {
            let go = cx.tensor("grad_output")?;
            let nw = cx.sym_of(
                cx.get("num_weights")
                    .ok_or_else(|| cx.err("missing num_weights"))?,
                "num_weights",
            )?;
            let last = go
                .shape
                .last()
                .cloned()
                .ok_or_else(|| cx.err("grad of rank 0"))?;
            one(t(go.dtype, vec![nw, last]))
        }
        NativeLayerNormBackward | NativeGroupNormBackward | ConvolutionBackward => {
            let x = cx.tensor("input")?;
            let (w, b) = match a {
                ConvolutionBackward => {
                    let w = cx.tensor("weight")?;
                    let bs = cx.sym_ints("bias_sizes")?;
                    (same(&w), t(w.dtype, bs))
                }
                NativeGroupNormBackward => {
                    let c = cx.sym_of(cx.get("C").ok_or_else(|| cx.err("missing C"))?, "C")?;
                    (t(x.dtype, vec![c.clone()]), t(x.dtype, vec![c]))
                }
                _ => {
                    let ns = cx.sym_ints("normalized_shape")?;
                    (t(x.dtype, ns.clone()), t(x.dtype, ns))
                }
            };
            let all = vec![same(&x), w, b];
            if n.outputs.len() == 3 {
                return Ok(all);
            }
            // Outputs masked off by `output_mask` are absent.
            let mask = match cx.get("output_mask") {
                Some(Arg::Bools(m)) => m.clone(),
                _ => vec![true; 3],
            };
            Ok(all
                .into_iter()
                .zip(mask)
                .filter(|(_, m)| *m)
                .map(|(t, _)| t)
                .collect())
        }
        GridSampler2d => {
            let x = cx.tensor("input")?;
            let gr = cx.tensor("grid")?;
            if x.rank() != 4 || gr.rank() != 4 {
                return Err(cx.err("grid_sampler_2d needs 4-D input and grid"));
            }
            one(t(
                x.dtype,
                vec![
                    x.shape[0].clone(),
                    x.shape[1].clone(),
                    gr.shape[1].clone(),
                    gr.shape[2].clone(),
                ],
            ))
        }
        InternalCdistForward | Cdist => {
            let x1 = cx.tensor("x1")?;
            let x2 = cx.tensor("x2")?;
            if x1.rank() < 2 || x2.rank() < 2 {
                return Err(cx.err("cdist inputs must have rank >= 2"));
            }
            let mut s = cx.broadcast(&x1.shape[..x1.rank() - 2], &x2.shape[..x2.rank() - 2])?;
            s.push(x1.shape[x1.rank() - 2].clone());
            s.push(x2.shape[x2.rank() - 2].clone());
            one(t(x1.dtype, s))
        }
        InternalPdistForward => {
            let x = cx.tensor("self")?;
            let nn = x
                .shape
                .first()
                .cloned()
                .ok_or_else(|| cx.err("pdist of rank 0"))?;
            let pairs = div(mul(nn.clone(), sub(nn, int(1))), int(2));
            one(t(x.dtype, vec![pairs]))
        }
        Col2im => {
            let x = cx.tensor("self")?;
            let os = cx.sym_ints("output_size")?;
            let k = cx.ints("kernel_size")?;
            if os.len() != 2 || k.len() != 2 || x.rank() < 2 {
                return Err(cx.err("col2im needs 2-D output_size and kernel_size"));
            }
            cx.check_params("kernel_size", &k, 1)?;
            let r = x.rank();
            let mut s = x.shape[..r - 2].to_vec();
            s.push(div(x.shape[r - 2].clone(), int(k[0] * k[1])));
            s.extend(os);
            one(t(x.dtype, s))
        }
        CosineSimilarity | PairwiseDistance => {
            let x1 = cx.tensor("x1")?;
            let s = bshape(cx, &["x1", "x2"])?;
            let (d, keep) = if a == CosineSimilarity {
                (cx.int("dim")?, false)
            } else {
                (-1, cx.keepdim()?)
            };
            let s = reduce_shape(cx, &s, Some(&[d]), keep)?;
            one(t(float_of(x1.dtype), s))
        }
        LstmCell => {
            let hx: Vec<TensorType> = cx.tensor_list("hx")?.into_iter().flatten().collect();
            if hx.len() != 2 {
                return Err(cx.err("lstm_cell needs hx = [h, c]"));
            }
            Ok(hx.iter().map(same).collect())
        }
        GruCell | RnnTanhCell => {
            let h = cx.opt_tensor("hx")?;
            match h {
                Some(h) => one(same(&h)),
                None => {
                    let x = cx.tensor("input")?;
                    let w = cx.tensor("w_hh")?;
                    let mut s = x.shape[..x.rank().saturating_sub(1)].to_vec();
                    s.push(w.shape.last().cloned().unwrap_or(int(0)));
                    one(t(x.dtype, s))
                }
            }
        }
        Histc => {
            let x = cx.tensor("self")?;
            one(t(x.dtype, vec![int(cx.int("bins")?)]))
        }
        Kron => {
            let x = cx.tensor("self")?;
            let o = cx.tensor("other")?;
            let r = x.rank().max(o.rank());
            let get = |v: &TensorType, i: usize| {
                (i + v.rank())
                    .checked_sub(r)
                    .map(|j| v.shape[j].clone())
                    .unwrap_or(int(1))
            };
            let s = (0..r).map(|i| mul(get(&x, i), get(&o, i))).collect();
            one(t(promote(cx, &["self", "other"])?, s))
        }
        Inner => {
            let x = cx.tensor("self")?;
            let o = cx.tensor("other")?;
            let mut s = x.shape[..x.rank().saturating_sub(1)].to_vec();
            s.extend_from_slice(&o.shape[..o.rank().saturating_sub(1)]);
            one(t(promote(cx, &["self", "other"])?, s))
        }
        Tensordot => {
            let x = cx.tensor("self")?;
            let o = cx.tensor("other")?;
            let da: Vec<usize> = cx
                .ints("dims_self")?
                .into_iter()
                .map(|d| cx.sdim(d, x.rank()))
                .collect::<Result<_>>()?;
            let db: Vec<usize> = cx
                .ints("dims_other")?
                .into_iter()
                .map(|d| cx.sdim(d, o.rank()))
                .collect::<Result<_>>()?;
            let mut s: Shape = (0..x.rank())
                .filter(|i| !da.contains(i))
                .map(|i| x.shape[i].clone())
                .collect();
            s.extend(
                (0..o.rank())
                    .filter(|i| !db.contains(i))
                    .map(|i| o.shape[i].clone()),
            );
            one(t(promote(cx, &["self", "other"])?, s))
        }
        RepeatInterleave if ov == "self_int" => {
            let x = cx.tensor("self")?;
            let r = cx.sym_of(
                cx.get("repeats").ok_or_else(|| cx.err("missing repeats"))?,
                "repeats",
            )?;
            match cx.opt_int("dim")? {
                None => one(t(x.dtype, vec![mul(numel(&x.shape), r)])),
                Some(d) => {
                    let d = cx.sdim(d, x.rank())?;
                    let mut s = x.shape.clone();
                    s[d] = mul(s[d].clone(), r);
                    one(t(x.dtype, s))
                }
            }
        }
        Im2col => {
            let x = cx.tensor("self")?;
            let k = expand_param(cx, cx.ints("kernel_size")?, 2, 1, "kernel_size")?;
            let dl = expand_param(cx, cx.ints("dilation")?, 2, 1, "dilation")?;
            let p = expand_param(cx, cx.ints("padding")?, 2, 0, "padding")?;
            let st = expand_param(cx, cx.ints("stride")?, 2, 1, "stride")?;
            cx.check_params("kernel_size", &k, 1)?;
            cx.check_params("dilation", &dl, 1)?;
            cx.check_params("padding", &p, 0)?;
            cx.check_params("stride", &st, 1)?;
            let r = x.rank();
            if r < 3 {
                return Err(cx.err("im2col needs a 3-D or 4-D input"));
            }
            let blocks = mul(
                window_out(&x.shape[r - 2], k[0], st[0], p[0], dl[0]),
                window_out(&x.shape[r - 1], k[1], st[1], p[1], dl[1]),
            );
            let mut s = x.shape[..r - 3].to_vec();
            s.push(mul(x.shape[r - 3].clone(), int(k[0] * k[1])));
            s.push(blocks);
            one(t(x.dtype, s))
        }
        Einsum => einsum(cx),
        _ => Err(cx.err(format!("no shape rule for aten.{name}.{ov}"))),
    }
}

/// `einsum` without ellipses: each output letter takes the (broadcast)
/// size of that letter in the operands.
fn einsum(cx: &Cx) -> Result<Vec<ValueType>> {
    let eq = match cx.get("equation") {
        Some(Arg::Str(s)) => s.replace(' ', ""),
        _ => return Err(cx.err("einsum without an equation")),
    };
    if eq.contains("...") {
        return Err(cx.err("no shape rule for einsum with an ellipsis"));
    }
    let ts: Vec<TensorType> = cx.tensor_list("tensors")?.into_iter().flatten().collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (eq.clone(), None),
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    if terms.len() != ts.len() {
        return Err(cx.err("einsum: operand count does not match the equation"));
    }
    let mut sizes: std::collections::BTreeMap<char, SymExpr> = Default::default();
    let mut counts: std::collections::BTreeMap<char, usize> = Default::default();
    for (term, x) in terms.iter().zip(&ts) {
        if term.chars().count() != x.rank() {
            return Err(cx.err(format!(
                "einsum: term {term} for a tensor of rank {}",
                x.rank()
            )));
        }
        for (c, d) in term.chars().zip(&x.shape) {
            *counts.entry(c).or_insert(0) += 1;
            let cur = sizes.remove(&c);
            let new = match cur {
                None => d.clone(),
                Some(cur) => cx.broadcast(&[cur], std::slice::from_ref(d))?.remove(0),
            };
            sizes.insert(c, new);
        }
    }
    let out: Vec<char> = match rhs {
        Some(r) => r.chars().collect(),
        None => counts
            .iter()
            .filter(|(_, &n)| n == 1)
            .map(|(c, _)| *c)
            .collect(),
    };
    let mut shape = Vec::new();
    for c in out {
        shape.push(
            sizes
                .get(&c)
                .cloned()
                .ok_or_else(|| cx.err(format!("einsum: output letter {c} not in the inputs")))?,
        );
    }
    let dt = ts
        .iter()
        .map(|x| x.dtype)
        .reduce(promote_types)
        .ok_or_else(|| cx.err("einsum of no tensors"))?;
    Ok(vec![t(dt, shape)])
}

fn pad(cx: &Cx, arg: &str) -> Result<Vec<ValueType>> {
    let x = cx.tensor("self")?;
    let p = cx.sym_ints(arg)?;
    if p.len() % 2 != 0 || p.len() / 2 > x.rank() {
        return Err(cx.err("bad padding length"));
    }
    let mut s = x.shape.clone();
    let r = s.len();
    for i in 0..p.len() / 2 {
        let d = r - 1 - i;
        s[d] = SymExpr::add(vec![s[d].clone(), p[2 * i].clone(), p[2 * i + 1].clone()]);
    }
    Ok(vec![t(x.dtype, s)])
}
