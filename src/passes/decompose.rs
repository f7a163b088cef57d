//! Decomposition: composite training-IR ops to the core ATen set.
//!
//! Runs after functionalization. Every rewrite keeps the numerics of PyTorch
//! eager on CPU: each composite op becomes the ops its eager kernel calls
//! (e.g. `linear` on a 2-D input is `addmm(bias, x, permute(w))`, exactly as
//! ATen's `linear` calls `addmm`). In-place ops are never rewritten (a
//! functional graph has none), except eval-mode `dropout_`, which mutates
//! nothing and is the identity.
//!
//! Replacement nodes have [`ValueType::UnknownTensor`] outputs; `shape_prop`
//! types them afterwards. The values that stand for an old node's outputs
//! take that node's output types, so later rewrites can read them. Rewrites
//! that need a shape read the type of their input and keep the op whole
//! when it is not known.
//!
//! # `view` means reshape
//!
//! The graph is functional, so `aten.view.default` in the core graph has
//! reshape semantics, as in torch's own core IR: a backend must copy when
//! the input's strides do not allow a view. Shapes are written with one `-1`
//! for the single dimension that is not a constant, so that symbolic leading
//! dimensions stay symbolic without shape arithmetic here; when two or more
//! are not constant, they are read with `sym_size.int` (`linear`).
//!
//! # The core set
//!
//! The ops this pass emits, which backends must implement (besides every op
//! it leaves untouched):
//!
//! - matrix products: `mm`, `addmm`, `bmm`
//! - convolution: `convolution` (both `transposed` forms)
//! - norms: `_native_batch_norm_legit_no_training`, `native_layer_norm`,
//!   `native_group_norm` (output 0 used; the others are kept for arity)
//! - shape ops: `view` (reshape semantics), `permute`, `expand`,
//!   `squeeze.dims`, `unsqueeze`, `select.int`, `split_with_sizes`, `cat`,
//!   `_to_copy`
//! - softmax: `_softmax`, `_log_softmax` (`half_to_float=false`)
//! - pointwise: `add.Tensor`, `sub.Tensor`, `mul.Tensor`, `div.Tensor`,
//!   `neg`, `clamp`, `hardtanh`, `sigmoid`, `tanh`, `relu`, `softplus`,
//!   `bitwise_and/or/xor.Tensor`, `where.self`
//! - reductions: `mean.dim`, `sum.dim_IntList`
//! - creation: `full`, `scalar_tensor`, `arange.start_step`
//! - symbolic sizes: `sym_size.int` (for a `view` size with two or more
//!   non-constant dims)
//! - pooling: `max_pool2d_with_indices` (output 0), `_adaptive_avg_pool2d`
//!
//! Pointwise decompositions (`silu`, `mish`, `hardswish`, `hardsigmoid`)
//! compute f16/bf16 inputs in f32 and cast back, as eager kernels do.
//!
//! Kept whole on purpose (fused core ops that backends implement directly,
//! because splitting them would change numerics or lose a fast kernel):
//! `convolution`, `addmm`, `mm`, `bmm`, pooling ops, `gelu` (both
//! approximations), `scaled_dot_product_attention`, `mean.dim`,
//! `scalar_tensor`, and the `native_*` norm forms.
//!
//! `adaptive_avg_pool2d` with a 1x1 output is `mean.dim([-1, -2], keepdim)`
//! (what ATen computes); other sizes become `_adaptive_avg_pool2d`.
//!
//! Kept whole when shapes are not known at this point (and so also part of
//! the core set a backend must accept): `linear` with an input of unknown
//! rank, `matmul` (batched
//! forms need static shapes), `flatten`, `unflatten`, `view_as`,
//! `expand_as`, `t`, `transpose`, `split.Tensor`, `chunk`,
//! `squeeze.default`, `type_as`, `masked_fill`, `*_like`, `new_*`.
//!
//! # Numerics
//!
//! The rewrites follow ATen's own dispatch (bias fused by `addmm` only where
//! ATen fuses it: 2-D and 3-D `linear`). Known deviations from eager:
//! `instance_norm` becomes `native_group_norm` with one channel per group
//! (same statistics, a different reduction order than eager's batch-norm
//! path); `rsub` with a scalar `other` and `alpha != 1` is `-(alpha*x) +
//! other`, where eager may use a fused multiply-add; an unrolled LSTM/GRU
//! follows torch's decomposition, not the fused eager cell kernels.
//!
//! `lstm.input`, `gru.input`, `rnn_tanh.input` and `rnn_relu.input` are
//! unrolled (unidirectional, batched, without projections, static sequence
//! length); otherwise they are kept whole, as core ops.
//!
//! Not decomposed yet (kept whole): `einsum`, `native_dropout`.
//!
//! Training-only paths (`dropout` with `train=true`, `batch_norm` with
//! `training=true`) are errors: torchlift compiles inference graphs.

use crate::error::Result;
use crate::ir::{Arg, Aten, Graph, Node, Op, Program, TensorType, ValueId, ValueType};
use crate::DType;

use super::rewrite::{rewrite_nodes, value_arg, Builder, Rewrite};
use super::{Pass, PassContext};

/// The decomposition pass.
pub struct Decompose;

impl Pass for Decompose {
    fn name(&self) -> &'static str {
        "decompose"
    }

    fn run(&self, p: &mut Program, _cx: &mut PassContext<'_>) -> Result<bool> {
        decompose_graph(&mut p.graph)
    }
}

/// The ops this pass rewrites in every overload and whatever the shapes:
/// none is left in a graph it has run on (checked after each run). Ops it
/// rewrites only in some overloads or when shapes are known are not here.
pub const DECOMPOSED_AWAY: &[Aten] = &[
    Aten::AdaptiveAvgPool2d,
    Aten::AlphaDropout,
    Aten::BatchNorm,
    Aten::Contiguous,
    Aten::Conv1d,
    Aten::Conv2d,
    Aten::Conv3d,
    Aten::ConvTranspose1d,
    Aten::ConvTranspose2d,
    Aten::Dropout,
    Aten::DropoutInplace,
    Aten::FeatureAlphaDropout,
    Aten::FeatureDropout,
    Aten::GroupNorm,
    Aten::Hardsigmoid,
    Aten::Hardswish,
    Aten::InstanceNorm,
    Aten::LayerNorm,
    Aten::MaxPool2d,
    Aten::Mish,
    Aten::NativeBatchNorm,
    Aten::Relu6,
    Aten::Reshape,
    Aten::Rsub,
    Aten::Silu,
    Aten::Square,
];

/// Decomposes every node of `g` (subgraphs included).
pub fn decompose_graph(g: &mut Graph) -> Result<bool> {
    let mut changed = false;
    for n in &mut g.nodes {
        for a in &mut n.args {
            if let Arg::Graph(sg) = &mut a.value {
                changed |= decompose_graph(&mut sg.graph)?;
            }
        }
    }
    changed |= rewrite_nodes(g, |g, n| {
        let r = decompose_node(g, n)?;
        if let Rewrite::Replace { outputs, .. } = &r {
            // A replacement computes the very value the old node did, so it
            // has the old type; later rewrites of this pass can read it.
            for (&old, &new) in n.outputs.iter().zip(outputs) {
                if matches!(g.ty(new), ValueType::UnknownTensor) && g.ty(old).tensor().is_some() {
                    let t = g.ty(old).clone();
                    g.set_ty(new, t);
                }
            }
        }
        Ok(r)
    })?;
    if let Some(n) = g
        .nodes
        .iter()
        .find(|n| n.op.aten().is_some_and(|a| DECOMPOSED_AWAY.contains(&a)))
    {
        return Err(n.error(format!(
            "internal error: decomposition left {}, which it always rewrites",
            n.op
        )));
    }
    Ok(changed)
}

// ---------------------------------------------------------------------------
// Argument helpers. A missing argument has its schema default already
// (`Node::arg`); `None` here is an error, as these read non-optional ones.

fn int_arg(n: &Node, name: &str) -> Result<i64> {
    match n.arg(name) {
        Some(Arg::Int(v)) => Ok(*v),
        Some(Arg::Bool(b)) => Ok(i64::from(*b)),
        _ => Err(n.error(format!("argument {name} is not a constant int"))),
    }
}

fn bool_arg(n: &Node, name: &str) -> Result<bool> {
    match n.arg(name) {
        Some(Arg::Bool(b)) => Ok(*b),
        Some(Arg::Int(v)) => Ok(*v != 0),
        _ => Err(n.error(format!("argument {name} is not a constant bool"))),
    }
}

fn float_arg(n: &Node, name: &str) -> Result<f64> {
    match n.arg(name) {
        Some(Arg::Float(f)) => Ok(*f),
        Some(Arg::Int(v)) => Ok(*v as f64),
        _ => Err(n.error(format!("argument {name} is not a constant float"))),
    }
}

/// An int list of `len` entries; a single value stands for all of them.
fn ints_arg(n: &Node, name: &str, len: usize) -> Result<Vec<i64>> {
    let v = n
        .arg(name)
        .and_then(Arg::as_ints)
        .ok_or_else(|| n.error(format!("argument {name} is not a constant int list")))?;
    match v.len() {
        1 => Ok(vec![v[0]; len]),
        l if l == len => Ok(v),
        l => Err(n.error(format!("argument {name} has {l} entries, expected {len}"))),
    }
}

/// An optional tensor argument, as it should be passed on.
fn opt_arg(n: &Node, name: &str) -> Arg {
    match n.arg(name) {
        Some(a @ Arg::Value(_)) => a.clone(),
        _ => Arg::None,
    }
}

fn ty(g: &Graph, v: ValueId) -> Option<&TensorType> {
    g.tensor_type(v)
}

/// The dims of a tensor as constants where known.
fn dims(t: &TensorType) -> Vec<Option<i64>> {
    t.shape.iter().map(|d| d.as_int()).collect()
}

/// A `view` size for `dims` where at most one entry is unknown (it becomes
/// `-1`); None when two or more are unknown.
fn view_size(dims: &[Option<i64>]) -> Option<Vec<i64>> {
    if dims.iter().filter(|d| d.is_none()).count() > 1 {
        return None;
    }
    Some(dims.iter().map(|d| d.unwrap_or(-1)).collect())
}

/// A `view` size for `dims`, where dim `i` (when not constant) is dim `i`
/// of `x`: `Ints` with a `-1` when at most one dim is not constant, else a
/// `List` whose non-constant entries are read with `sym_size.int`.
fn size_arg(b: &mut Builder<'_>, x: ValueId, dims: &[Option<i64>]) -> Arg {
    if let Some(s) = view_size(dims) {
        return Arg::Ints(s);
    }
    let mut items = Vec::with_capacity(dims.len());
    for (i, d) in dims.iter().enumerate() {
        items.push(match d {
            Some(c) => Arg::Int(*c),
            None => {
                let s = b.aten(
                    Aten::SymSize,
                    "int",
                    vec![("self", v(x)), ("dim", Arg::Int(i as i64))],
                );
                b.g.set_ty(s, ValueType::SymInt);
                Arg::Value(s)
            }
        });
    }
    Arg::List(items)
}

/// Wraps a negative dim into `0..rank`.
fn norm_dim(n: &Node, d: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let w = if d < 0 { d + r.max(1) } else { d };
    if w < 0 || w >= r.max(1) {
        return Err(n.error(format!("dim {d} out of range for rank {rank}")));
    }
    Ok(w as usize)
}

fn replace(b: Builder<'_>, outputs: Vec<ValueId>) -> Result<Rewrite> {
    Ok(Rewrite::Replace {
        nodes: b.nodes,
        outputs,
    })
}

fn identity(v: ValueId) -> Result<Rewrite> {
    Ok(Rewrite::Replace {
        nodes: Vec::new(),
        outputs: vec![v],
    })
}

fn v(x: ValueId) -> Arg {
    Arg::Value(x)
}

// ---------------------------------------------------------------------------

fn decompose_node(g: &mut Graph, n: &Node) -> Result<Rewrite> {
    let a = match &n.op {
        Op::Aten(a, _) => *a,
        _ => return Ok(Rewrite::Keep),
    };
    let ov = n.op.overload().to_string();
    match (a, ov.as_str()) {
        (Aten::Linear, _) => linear(g, n),
        (Aten::Conv1d, _) => conv(g, n, 1, false),
        (Aten::Conv2d, _) => conv(g, n, 2, false),
        (Aten::Conv3d, _) => conv(g, n, 3, false),
        (Aten::ConvTranspose1d, _) => conv(g, n, 1, true),
        (Aten::ConvTranspose2d, _) => conv(g, n, 2, true),
        (Aten::BatchNorm, _) | (Aten::NativeBatchNorm, _) => batch_norm(g, n),
        (Aten::InternalNativeBatchNormLegit, "default") => batch_norm(g, n),
        (Aten::LayerNorm, _) => layer_norm(g, n),
        (Aten::GroupNorm, _) => group_norm(g, n),
        (Aten::InstanceNorm, _) => instance_norm(g, n),
        (
            Aten::Dropout
            | Aten::DropoutInplace
            | Aten::FeatureDropout
            | Aten::FeatureDropoutInplace
            | Aten::AlphaDropout
            | Aten::AlphaDropoutInplace
            | Aten::FeatureAlphaDropout
            | Aten::FeatureAlphaDropoutInplace,
            _,
        ) => dropout(n),
        (Aten::Flatten, "using_ints") => flatten(g, n),
        (Aten::Unflatten, "int") => unflatten(g, n),
        (Aten::Reshape, _) => {
            let x = value_arg(n, "self")?;
            let shape = n.arg("shape").cloned().unwrap_or(Arg::None);
            let mut b = Builder::new(g, n);
            let y = b.aten(Aten::View, "default", vec![("self", v(x)), ("size", shape)]);
            replace(b, vec![y])
        }
        (Aten::Contiguous, _) => identity(value_arg(n, "self")?),
        (Aten::ViewAs, _) => view_as(g, n),
        (Aten::ExpandAs, _) => expand_as(g, n),
        (Aten::T, _) => t(g, n),
        (Aten::Transpose, "int") => transpose(g, n),
        (Aten::To, "dtype" | "dtype_layout" | "device") => to(g, n),
        (Aten::TypeAs, _) => type_as(g, n),
        (Aten::Squeeze, "dim") => {
            let x = value_arg(n, "self")?;
            let d = int_arg(n, "dim")?;
            let mut b = Builder::new(g, n);
            let y = b.aten(
                Aten::Squeeze,
                "dims",
                vec![("self", v(x)), ("dim", Arg::Ints(vec![d]))],
            );
            replace(b, vec![y])
        }
        (Aten::Squeeze, "default") => squeeze_all(g, n),
        (Aten::Split, "Tensor") => split(g, n, false),
        (Aten::Chunk, _) => split(g, n, true),
        (Aten::Softmax, "int") => softmax(g, n, Aten::InternalSoftmax),
        (Aten::LogSoftmax, "int") => softmax(g, n, Aten::InternalLogSoftmax),
        (Aten::Matmul, _) => matmul(g, n),
        (Aten::Relu6, _) => {
            let x = value_arg(n, "self")?;
            let mut b = Builder::new(g, n);
            let y = b.aten(
                Aten::Hardtanh,
                "default",
                vec![
                    ("self", v(x)),
                    ("min_val", Arg::Int(0)),
                    ("max_val", Arg::Int(6)),
                ],
            );
            replace(b, vec![y])
        }
        (Aten::Hardswish, _) => hard_sigmoid_like(g, n, true),
        (Aten::Hardsigmoid, _) => hard_sigmoid_like(g, n, false),
        (Aten::Silu, _) => opmath(g, n, |b, x| {
            let s = b.aten(Aten::Sigmoid, "default", vec![("self", v(x))]);
            b.aten(Aten::Mul, "Tensor", vec![("self", v(x)), ("other", v(s))])
        }),
        (Aten::Mish, _) => opmath(g, n, |b, x| {
            let sp = b.aten(Aten::Softplus, "default", vec![("self", v(x))]);
            let th = b.aten(Aten::Tanh, "default", vec![("self", v(sp))]);
            b.aten(Aten::Mul, "Tensor", vec![("self", v(x)), ("other", v(th))])
        }),
        (Aten::Square, _) => {
            let x = value_arg(n, "self")?;
            let mut b = Builder::new(g, n);
            let y = b.aten(Aten::Mul, "Tensor", vec![("self", v(x)), ("other", v(x))]);
            replace(b, vec![y])
        }
        (Aten::Rsub, _) => rsub(g, n),
        (Aten::NewZeros, _) | (Aten::NewOnes, _) | (Aten::NewFull, _) => new_full(g, n, a),
        (Aten::ZerosLike, _) | (Aten::OnesLike, _) | (Aten::FullLike, _) => full_like(g, n, a),
        (Aten::Arange, "default") => {
            let mut args = vec![
                ("start", Arg::Int(0)),
                ("end", n.arg("end").cloned().unwrap_or(Arg::None)),
            ];
            args.push(("step", Arg::Int(1)));
            if let Some(d @ Arg::DType(_)) = n.arg("dtype") {
                args.push(("dtype", d.clone()));
            }
            let mut b = Builder::new(g, n);
            let y = b.aten(Aten::Arange, "start_step", args);
            replace(b, vec![y])
        }
        (Aten::MaxPool2d, _) => {
            let mut args: Vec<(&str, Arg)> = Vec::new();
            for k in [
                "self",
                "kernel_size",
                "stride",
                "padding",
                "dilation",
                "ceil_mode",
            ] {
                if let Some(x) = n.arg(k) {
                    args.push((k, x.clone()));
                }
            }
            let mut b = Builder::new(g, n);
            let y = b.aten_n(Aten::MaxPool2dWithIndices, "default", args, 2);
            replace(b, vec![y[0]])
        }
        (Aten::AdaptiveAvgPool2d, _) => adaptive_avg_pool2d(g, n),
        (Aten::Zeros, "default") | (Aten::Ones, "default") => {
            let size = n
                .arg("size")
                .cloned()
                .ok_or_else(|| n.error("missing size"))?;
            let fill = Arg::Int(i64::from(a == Aten::Ones));
            // Without a dtype, zeros/ones make the default float dtype;
            // full would infer int64 from the integer fill value.
            let dtype = match n.arg("dtype") {
                Some(Arg::DType(d)) => *d,
                _ => DType::F32,
            };
            full(g, n, size, fill, Some(dtype))
        }
        (Aten::Sum, "default") => {
            let x = value_arg(n, "self")?;
            let mut args = vec![("self", v(x)), ("dim", Arg::Ints(Vec::new()))];
            if let Some(d @ Arg::DType(_)) = n.arg("dtype") {
                args.push(("keepdim", Arg::Bool(false)));
                args.push(("dtype", d.clone()));
            }
            let mut b = Builder::new(g, n);
            let y = b.aten(Aten::Sum, "dim_IntList", args);
            replace(b, vec![y])
        }
        (Aten::Alias, "default") => identity(value_arg(n, "self")?),
        (Aten::DunderAnd, "Tensor") | (Aten::DunderOr, "Tensor") | (Aten::DunderXor, "Tensor") => {
            let op = match a {
                Aten::DunderAnd => Aten::BitwiseAnd,
                Aten::DunderOr => Aten::BitwiseOr,
                _ => Aten::BitwiseXor,
            };
            let mut b = Builder::new(g, n);
            let args = vec![
                ("self", v(value_arg(n, "self")?)),
                ("other", v(value_arg(n, "other")?)),
            ];
            let y = b.aten(op, "Tensor", args);
            replace(b, vec![y])
        }
        (Aten::MaskedFill, "Scalar") => {
            // where(mask, scalar_tensor(value), self), in self's dtype.
            let x = value_arg(n, "self")?;
            let mask = value_arg(n, "mask")?;
            let value = n
                .arg("value")
                .cloned()
                .ok_or_else(|| n.error("masked_fill without value"))?;
            let Some(dt) = ty(g, x).map(|t| t.dtype) else {
                return Ok(Rewrite::Keep);
            };
            let mut b = Builder::new(g, n);
            let st = b.aten(
                Aten::ScalarTensor,
                "default",
                vec![("s", value), ("dtype", Arg::DType(dt))],
            );
            let y = b.aten(
                Aten::Where,
                "self",
                vec![("condition", v(mask)), ("self", v(st)), ("other", v(x))],
            );
            replace(b, vec![y])
        }
        (Aten::Lstm, "input") => rnn(g, n, Cell::Lstm),
        (Aten::Gru, "input") => rnn(g, n, Cell::Gru),
        (Aten::RnnTanh, "input") => rnn(g, n, Cell::Tanh),
        (Aten::RnnRelu, "input") => rnn(g, n, Cell::Relu),
        _ => Ok(Rewrite::Keep),
    }
}

// ---------------------------------------------------------------------------

fn linear(g: &mut Graph, n: &Node) -> Result<Rewrite> {
    let x = value_arg(n, "input")?;
    let w = value_arg(n, "weight")?;
    let bias = opt_arg(n, "bias");
    let Some(xt) = ty(g, x) else {
        return Ok(Rewrite::Keep);
    };
    let xd = dims(xt);
    let rank = xd.len();
    let wd = ty(g, w).map(dims);
    if rank == 0 {
        return Err(n.error("linear of a 0-d input"));
    }
    let k = xd[rank - 1].or_else(|| wd.as_ref().and_then(|d| d.get(1).copied().flatten()));
    let out_f = wd.as_ref().and_then(|d| d.first().copied().flatten());
    let has_bias = matches!(bias, Arg::Value(_));
    // N-D: fold the leading dims into one, multiply, unfold. ATen's linear
    // fuses the bias (addmm) for 3-D inputs only; other ranks go through
    // matmul and add the bias afterwards. The unfolded size has one
    // non-constant dim written -1; any others are read with `sym_size`.
    let mut folded = None;
    if rank != 2 {
        let (Some(k), Some(out_f)) = (k, out_f) else {
            return Ok(Rewrite::Keep);
        };
        let mut out_dims: Vec<Option<i64>> = xd[..rank - 1].to_vec();
        out_dims.push(Some(out_f));
        folded = Some((k, out_dims));
    }
    let mut b = Builder::new(g, n);
    let wt = b.aten(
        Aten::Permute,
        "default",
        vec![("self", v(w)), ("dims", Arg::Ints(vec![1, 0]))],
    );
    let Some((k, out_dims)) = folded else {
        let y = if has_bias {
            b.aten(
                Aten::Addmm,
                "default",
                vec![("self", bias), ("mat1", v(x)), ("mat2", v(wt))],
            )
        } else {
            b.aten(Aten::Mm, "default", vec![("self", v(x)), ("mat2", v(wt))])
        };
        return replace(b, vec![y]);
    };
    let out_size = size_arg(&mut b, x, &out_dims);
    let x2 = b.aten(
        Aten::View,
        "default",
        vec![("self", v(x)), ("size", Arg::Ints(vec![-1, k]))],
    );
    if rank == 3 && has_bias {
        let m = b.aten(
            Aten::Addmm,
            "default",
            vec![("self", bias), ("mat1", v(x2)), ("mat2", v(wt))],
        );
        let y = b.aten(
            Aten::View,
            "default",
            vec![("self", v(m)), ("size", out_size)],
        );
        return replace(b, vec![y]);
    }
    let m = b.aten(Aten::Mm, "default", vec![("self", v(x2)), ("mat2", v(wt))]);
    let mut y = b.aten(
        Aten::View,
        "default",
        vec![("self", v(m)), ("size", out_size)],
    );
    if has_bias {
        y = b.aten(Aten::Add, "Tensor", vec![("self", v(y)), ("other", bias)]);
    }
    replace(b, vec![y])
}

fn conv(g: &mut Graph, n: &Node, nd: usize, transposed: bool) -> Result<Rewrite> {
    let x = value_arg(n, "input")?;
    let w = value_arg(n, "weight")?;
    let bias = opt_arg(n, "bias");
    let stride = ints_arg(n, "stride", nd)?;
    let dilation = ints_arg(n, "dilation", nd)?;
    let groups = int_arg(n, "groups")?;
    let output_padding = if transposed {
        ints_arg(n, "output_padding", nd)?
    } else {
        vec![0; nd]
    };
    let padding = match n.arg("padding") {
        Some(Arg::Str(s)) if !transposed => same_padding(g, n, s, w, &dilation, &stride)?,
        _ => ints_arg(n, "padding", nd)?,
    };
    let mut b = Builder::new(g, n);
    let y = b.aten(
        Aten::Convolution,
        "default",
        vec![
            ("input", v(x)),
            ("weight", v(w)),
            ("bias", bias),
            ("stride", Arg::Ints(stride)),
            ("padding", Arg::Ints(padding)),
            ("dilation", Arg::Ints(dilation)),
            ("transposed", Arg::Bool(transposed)),
            ("output_padding", Arg::Ints(output_padding)),
            ("groups", Arg::Int(groups)),
        ],
    );
    replace(b, vec![y])
}

/// Symmetric padding for `padding="valid"` / `"same"`. An odd total padding
/// needs an asymmetric pad, which is not supported.
fn same_padding(
    g: &Graph,
    n: &Node,
    mode: &str,
    w: ValueId,
    dil: &[i64],
    stride: &[i64],
) -> Result<Vec<i64>> {
    match mode {
        "valid" => Ok(vec![0; dil.len()]),
        "same" => {
            if stride.iter().any(|&s| s != 1) {
                return Err(n.error("padding=\"same\" needs stride 1"));
            }
            let ks = ty(g, w)
                .and_then(|t| t.static_shape())
                .ok_or_else(|| n.error("padding=\"same\" needs a weight of static shape"))?;
            let Some(ks) = ks.get(2..) else {
                return Err(n.error("convolution weight of rank < 2"));
            };
            if ks.len() != dil.len() {
                return Err(n.error("weight rank does not match the convolution"));
            }
            let mut pad = Vec::new();
            for (k, d) in ks.iter().zip(dil) {
                let total = d * (*k as i64 - 1);
                if total % 2 != 0 {
                    return Err(n.error("padding=\"same\" with an even kernel needs asymmetric padding, which is not supported"));
                }
                pad.push(total / 2);
            }
            Ok(pad)
        }
        other => Err(n.error(format!("unknown padding mode {other:?}"))),
    }
}

fn batch_norm(g: &mut Graph, n: &Node) -> Result<Rewrite> {
    let x = value_arg(n, "input")?;
    let training = bool_arg(n, "training")?;
    let mean = opt_arg(n, "running_mean");
    let var = opt_arg(n, "running_var");
    if training {
        return Err(n.error(
            "batch_norm in training mode is a training-only path; export the model in eval mode",
        ));
    }
    if mean == Arg::None || var == Arg::None {
        return Err(n.error("batch_norm in eval mode without running statistics is not supported"));
    }
    let momentum = float_arg(n, "momentum")?;
    let eps = float_arg(n, "eps")?;
    let mut b = Builder::new(g, n);
    let outs = b.aten_n(
        Aten::InternalNativeBatchNormLegitNoTraining,
        "default",
        vec![
            ("input", v(x)),
            ("weight", opt_arg(n, "weight")),
            ("bias", opt_arg(n, "bias")),
            ("running_mean", mean),
            ("running_var", var),
            ("momentum", Arg::Float(momentum)),
            ("eps", Arg::Float(eps)),
        ],
        3,
    );
    // batch_norm has one output; native_batch_norm has three (the saved
    // statistics are empty in eval mode, as in the no-training kernel).
    let k = n.outputs.len().min(3);
    replace(b, outs[..k].to_vec())
}

fn layer_norm(g: &mut Graph, n: &Node) -> Result<Rewrite> {
    let x = value_arg(n, "input")?;
    let shape = n
        .arg("normalized_shape")
        .cloned()
        .ok_or_else(|| n.error("layer_norm without normalized_shape"))?;
    let eps = float_arg(n, "eps")?;
    let mut b = Builder::new(g, n);
    let outs = b.aten_n(
        Aten::NativeLayerNorm,
        "default",
        vec![
            ("input", v(x)),
            ("normalized_shape", shape),
            ("weight", opt_arg(n, "weight")),
            ("bias", opt_arg(n, "bias")),
            ("eps", Arg::Float(eps)),
        ],
        3,
    );
    replace(b, vec![outs[0]])
}

/// `native_group_norm` over a static input shape: (N, C, HxW).
fn native_group_norm(
    g: &mut Graph,
    n: &Node,
    x: ValueId,
    groups: Option<i64>,
    weight: Arg,
    bias: Arg,
    eps: f64,
) -> Result<Rewrite> {
    let shape = ty(g, x)
        .and_then(|t| t.static_shape())
        .ok_or_else(|| n.error("group norm needs an input of static shape"))?;
    if shape.len() < 2 {
        return Err(n.error("group norm needs an input of rank 2 or more"));
    }
    let (nb, c) = (shape[0] as i64, shape[1] as i64);
    let hxw: i64 = shape[2..].iter().map(|&d| d as i64).product();
    let groups = groups.unwrap_or(c);
    if groups <= 0 || c % groups != 0 {
        return Err(n.error(format!("{c} channels do not split into {groups} groups")));
    }
    let mut b = Builder::new(g, n);
    let outs = b.aten_n(
        Aten::NativeGroupNorm,
        "default",
        vec![
            ("input", v(x)),
            ("weight", weight),
            ("bias", bias),
            ("N", Arg::Int(nb)),
            ("C", Arg::Int(c)),
            ("HxW", Arg::Int(hxw)),
            ("group", Arg::Int(groups)),
            ("eps", Arg::Float(eps)),
        ],
        3,
    );
    replace(b, vec![outs[0]])
}

fn group_norm(g: &mut Graph, n: &Node) -> Result<Rewrite> {
    let x = value_arg(n, "input")?;
    let groups = int_arg(n, "num_groups")?;
    let eps = float_arg(n, "eps")?;
    native_group_norm(
        g,
        n,
        x,
        Some(groups),
        opt_arg(n, "weight"),
        opt_arg(n, "bias"),
        eps,
    )
}

fn instance_norm(g: &mut Graph, n: &Node) -> Result<Rewrite> {
    let x = value_arg(n, "input")?;
    let use_input_stats = bool_arg(n, "use_input_stats")?;
    let eps = float_arg(n, "eps")?;
    if use_input_stats {
        // Per-(sample, channel) statistics: group norm with one channel per
        // group. The running statistics would be updated only in training.
        return native_group_norm(g, n, x, None, opt_arg(n, "weight"), opt_arg(n, "bias"), eps);
    }
    let mean = opt_arg(n, "running_mean");
    let var = opt_arg(n, "running_var");
    if mean == Arg::None || var == Arg::None {
        return Err(n.error("instance_norm with use_input_stats=false needs running statistics"));
    }
    let momentum = float_arg(n, "momentum")?;
    let mut b = Builder::new(g, n);
    let outs = b.aten_n(
        Aten::InternalNativeBatchNormLegitNoTraining,
        "default",
        vec![
            ("input", v(x)),
            ("weight", opt_arg(n, "weight")),
            ("bias", opt_arg(n, "bias")),
            ("running_mean", mean),
            ("running_var", var),
            ("momentum", Arg::Float(momentum)),
            ("eps", Arg::Float(eps)),
        ],
        3,
    );
    replace(b, vec![outs[0]])
}

fn dropout(n: &Node) -> Result<Rewrite> {
    let x = n
        .arg("input")
        .or_else(|| n.arg("self"))
        .and_then(Arg::as_value)
        .ok_or_else(|| n.error("dropout without a tensor input"))?;
    if bool_arg(n, "train")? {
        let p = float_arg(n, "p")?;
        if p != 0.0 {
            return Err(n.error(
                "dropout with train=true is a training-only path; export the model in eval mode",
            ));
        }
    }
    identity(x)
}

fn flatten(g: &mut Graph, n: &Node) -> Result<Rewrite> {
    let x = value_arg(n, "self")?;
    let Some(t) = ty(g, x) else {
        return Ok(Rewrite::Keep);
    };
    let d = dims(t);
    if d.is_empty() {
        let mut b = Builder::new(g, n);
        let y = b.aten(
            Aten::View,
            "default",
            vec![("self", v(x)), ("size", Arg::Ints(vec![1]))],
        );
        return replace(b, vec![y]);
    }
    let s = norm_dim(n, int_arg(n, "start_dim")?, d.len())?;
    let e = norm_dim(n, int_arg(n, "end_dim")?, d.len())?;
    if s > e {
        return Err(n.error("flatten: start_dim after end_dim"));
    }
    if s == e {
        return identity(x);
    }
    let group: Option<i64> = d[s..=e].iter().try_fold(1i64, |acc, x| x.map(|x| acc * x));
    let mut new: Vec<Option<i64>> = d[..s].to_vec();
    new.push(group);
    new.extend_from_slice(&d[e + 1..]);
    let Some(size) = view_size(&new) else {
        return Ok(Rewrite::Keep);
    };
    let mut b = Builder::new(g, n);
    let y = b.aten(
        Aten::View,
        "default",
        vec![("self", v(x)), ("size", Arg::Ints(size))],
    );
    replace(b, vec![y])
}

fn unflatten(g: &mut Graph, n: &Node) -> Result<Rewrite> {
    let x = value_arg(n, "self")?;
    let sizes = n
        .arg("sizes")
        .and_then(Arg::as_ints)
        .ok_or_else(|| n.error("unflatten: sizes is not a constant int list"))?;
    let Some(t) = ty(g, x) else {
        return Ok(Rewrite::Keep);
    };
    let d = dims(t);
    if d.is_empty() {
        return Err(n.error("unflatten of a 0-d tensor"));
    }
    let dim = norm_dim(n, int_arg(n, "dim")?, d.len())?;
    let mut new: Vec<Option<i64>> = d[..dim].to_vec();
    new.extend(sizes.iter().map(|&s| if s < 0 { None } else { Some(s) }));
    new.extend_from_slice(&d[dim + 1..]);
    let Some(size) = view_size(&new) else {
        return Ok(Rewrite::Keep);
    };
    let mut b = Builder::new(g, n);
    let y = b.aten(
        Aten::View,
        "default",
        vec![("self", v(x)), ("size", Arg::Ints(size))],
    );
    replace(b, vec![y])
}

fn view_as(g: &mut Graph, n: &Node) -> Result<Rewrite> {
    let x = value_arg(n, "self")?;
    let o = value_arg(n, "other")?;
    let Some(size) = ty(g, o).and_then(|t| view_size(&dims(t))) else {
        return Ok(Rewrite::Keep);
    };
    let mut b = Builder::new(g, n);
    let y = b.aten(
        Aten::View,
        "default",
        vec![("self", v(x)), ("size", Arg::Ints(size))],
    );
    replace(b, vec![y])
}

fn expand_as(g: &mut Graph, n: &Node) -> Result<Rewrite> {
    let x = value_arg(n, "self")?;
    let o = value_arg(n, "other")?;
    let Some(size) = ty(g, o).and_then(|t| t.static_shape()) else {
        return Ok(Rewrite::Keep);
    };
    let size = size.into_iter().map(|d| d as i64).collect();
    let mut b = Builder::new(g, n);
    let y = b.aten(
        Aten::Expand,
        "default",
        vec![("self", v(x)), ("size", Arg::Ints(size))],
    );
    replace(b, vec![y])
}

fn permute(g: &mut Graph, n: &Node, x: ValueId, perm: Vec<i64>) -> Result<Rewrite> {
    let mut b = Builder::new(g, n);
    let y = b.aten(
        Aten::Permute,
        "default",
        vec![("self", v(x)), ("dims", Arg::Ints(perm))],
    );
    replace(b, vec![y])
}

fn t(g: &mut Graph, n: &Node) -> Result<Rewrite> {
    let x = value_arg(n, "self")?;
    match ty(g, x).map(TensorType::rank) {
        None => Ok(Rewrite::Keep),
        Some(0 | 1) => identity(x),
        Some(2) => permute(g, n, x, vec![1, 0]),
        Some(r) => Err(n.error(format!("t() expects a tensor of rank <= 2, got {r}"))),
    }
}

fn transpose(g: &mut Graph, n: &Node) -> Result<Rewrite> {
    let x = value_arg(n, "self")?;
    let Some(rank) = ty(g, x).map(TensorType::rank) else {
        return Ok(Rewrite::Keep);
    };
    if rank == 0 {
        return identity(x);
    }
    let d0 = norm_dim(n, int_arg(n, "dim0")?, rank)?;
    let d1 = norm_dim(n, int_arg(n, "dim1")?, rank)?;
    let mut perm: Vec<i64> = (0..rank as i64).collect();
    perm.swap(d0, d1);
    permute(g, n, x, perm)
}

/// `_to_copy(x, dtype)`, or `x` itself when the dtype is already right and
/// no copy is asked for.
fn to_dtype(
    g: &mut Graph,
    n: &Node,
    x: ValueId,
    dtype: Option<DType>,
    copy: bool,
) -> Result<Rewrite> {
    let cur = ty(g, x).map(|t| t.dtype);
    if !copy && (dtype.is_none() || dtype == cur) {
        return identity(x);
    }
    let mut args = vec![("self", v(x))];
    if let Some(d) = dtype {
        args.push(("dtype", Arg::DType(d)));
    }
    let mut b = Builder::new(g, n);
    let y = b.aten(Aten::InternalToCopy, "default", args);
    replace(b, vec![y])
}

fn to(g: &mut Graph, n: &Node) -> Result<Rewrite> {
    let x = value_arg(n, "self")?;
    let dtype = match n.arg("dtype") {
        Some(Arg::DType(d)) => Some(*d),
        None | Some(Arg::None) => None,
        Some(_) => return Ok(Rewrite::Keep),
    };
    if let Some(Arg::Device(d)) = n.arg("device") {
        if !d.starts_with("cpu") {
            return Err(n.error(format!("to() a non-CPU device {d}")));
        }
    }
    let copy = bool_arg(n, "copy")?;
    to_dtype(g, n, x, dtype, copy)
}

fn type_as(g: &mut Graph, n: &Node) -> Result<Rewrite> {
    let x = value_arg(n, "self")?;
    let o = value_arg(n, "other")?;
    match ty(g, o).map(|t| t.dtype) {
        Some(d) => to_dtype(g, n, x, Some(d), false),
        None => Ok(Rewrite::Keep),
    }
}

fn squeeze_all(g: &mut Graph, n: &Node) -> Result<Rewrite> {
    let x = value_arg(n, "self")?;
    let Some(t) = ty(g, x) else {
        return Ok(Rewrite::Keep);
    };
    let d = dims(t);
    if d.iter().any(Option::is_none) {
        // A symbolic dim could be 1 at run time.
        return Ok(Rewrite::Keep);
    }
    let ones: Vec<i64> = d
        .iter()
        .enumerate()
        .filter(|(_, s)| **s == Some(1))
        .map(|(i, _)| i as i64)
        .collect();
    let mut b = Builder::new(g, n);
    let y = b.aten(
        Aten::Squeeze,
        "dims",
        vec![("self", v(x)), ("dim", Arg::Ints(ones))],
    );
    replace(b, vec![y])
}

/// `split.Tensor` (by size) and `chunk` (by count) on a static dim.
fn split(g: &mut Graph, n: &Node, by_count: bool) -> Result<Rewrite> {
    let x = value_arg(n, "self")?;
    let Some(t) = ty(g, x) else {
        return Ok(Rewrite::Keep);
    };
    let rank = t.rank();
    let dim_arg = int_arg(n, "dim")?;
    let dim = norm_dim(n, dim_arg, rank)?;
    let Some(size) = t.shape.get(dim).and_then(|d| d.as_int()) else {
        return Ok(Rewrite::Keep);
    };
    let piece = if by_count {
        let chunks = int_arg(n, "chunks")?;
        if chunks <= 0 {
            return Err(n.error("chunk: chunks must be positive"));
        }
        // ceil(size / chunks), and at least 1 piece for an empty dim.
        ((size + chunks - 1) / chunks).max(1)
    } else {
        int_arg(n, "split_size")?
    };
    if piece <= 0 {
        return Err(n.error("split size must be positive"));
    }
    let mut sizes = Vec::new();
    let mut left = size;
    while left > 0 {
        sizes.push(piece.min(left));
        left -= piece;
    }
    if sizes.is_empty() {
        sizes.push(0);
    }
    if sizes.len() != n.outputs.len() {
        return Err(n.error(format!(
            "split into {} pieces but the node has {} outputs",
            sizes.len(),
            n.outputs.len()
        )));
    }
    let k = sizes.len();
    let mut b = Builder::new(g, n);
    let outs = b.node(
        Op::Aten(Aten::SplitWithSizes, "default".into()),
        vec![
            ("self", v(x)),
            ("split_sizes", Arg::Ints(sizes)),
            ("dim", Arg::Int(dim_arg)),
        ],
        k,
        true,
    );
    replace(b, outs)
}

fn softmax(g: &mut Graph, n: &Node, op: Aten) -> Result<Rewrite> {
    let mut x = value_arg(n, "self")?;
    let dim = int_arg(n, "dim")?;
    let mut b = Builder::new(g, n);
    if let Some(Arg::DType(d)) = n.arg("dtype") {
        x = b.aten(
            Aten::InternalToCopy,
            "default",
            vec![("self", v(x)), ("dtype", Arg::DType(*d))],
        );
    }
    let y = b.aten(
        op,
        "default",
        vec![
            ("self", v(x)),
            ("dim", Arg::Int(dim)),
            ("half_to_float", Arg::Bool(false)),
        ],
    );
    replace(b, vec![y])
}

/// `hardswish(x) = x * clamp(clamp(x + 3, min=0), max=6) / 6` and
/// `hardsigmoid(x) = clamp(clamp(x + 3, min=0), max=6) / 6`, as torch's own
/// decompositions write them.
fn hard_sigmoid_like(g: &mut Graph, n: &Node, swish: bool) -> Result<Rewrite> {
    opmath(g, n, |b, x| {
        let a = b.aten(
            Aten::Add,
            "Tensor",
            vec![("self", v(x)), ("other", Arg::Int(3))],
        );
        let c0 = b.aten(
            Aten::Clamp,
            "default",
            vec![("self", v(a)), ("min", Arg::Int(0))],
        );
        let c1 = b.aten(
            Aten::Clamp,
            "default",
            vec![("self", v(c0)), ("min", Arg::None), ("max", Arg::Int(6))],
        );
        let num = if swish {
            b.aten(Aten::Mul, "Tensor", vec![("self", v(x)), ("other", v(c1))])
        } else {
            c1
        };
        b.aten(
            Aten::Div,
            "Tensor",
            vec![("self", v(num)), ("other", Arg::Int(6))],
        )
    })
}

/// A pointwise decomposition of the op's `self`, computed in f32 for f16
/// and bf16 inputs and cast back, as eager kernels compute half types in
/// float ("opmath").
fn opmath(
    g: &mut Graph,
    n: &Node,
    f: impl FnOnce(&mut Builder<'_>, ValueId) -> ValueId,
) -> Result<Rewrite> {
    let x = value_arg(n, "self")?;
    let half = ty(g, x)
        .map(|t| t.dtype)
        .filter(|d| matches!(d, DType::F16 | DType::BF16));
    let mut b = Builder::new(g, n);
    let y = match half {
        Some(d) => {
            let xf = b.aten(
                Aten::InternalToCopy,
                "default",
                vec![("self", v(x)), ("dtype", Arg::DType(DType::F32))],
            );
            let yf = f(&mut b, xf);
            b.aten(
                Aten::InternalToCopy,
                "default",
                vec![("self", v(yf)), ("dtype", Arg::DType(d))],
            )
        }
        None => f(&mut b, x),
    };
    replace(b, vec![y])
}

/// `rsub(self, other, alpha) = other - alpha * self`.
fn rsub(g: &mut Graph, n: &Node) -> Result<Rewrite> {
    let x = value_arg(n, "self")?;
    let other = n
        .arg("other")
        .cloned()
        .ok_or_else(|| n.error("rsub without other"))?;
    let alpha = n
        .arg("alpha")
        .cloned()
        .ok_or_else(|| n.error("rsub without alpha"))?;
    let mut b = Builder::new(g, n);
    let y = match other {
        Arg::Value(o) => {
            let mut args = vec![("self", v(o)), ("other", v(x))];
            if alpha != Arg::Int(1) {
                args.push(("alpha", alpha));
            }
            b.aten(Aten::Sub, "Tensor", args)
        }
        scalar => {
            // other - alpha * x == (-(alpha * x)) + other exactly.
            let scaled = if alpha == Arg::Int(1) {
                x
            } else {
                b.aten(Aten::Mul, "Tensor", vec![("self", v(x)), ("other", alpha)])
            };
            let neg = b.aten(Aten::Neg, "default", vec![("self", v(scaled))]);
            b.aten(
                Aten::Add,
                "Tensor",
                vec![("self", v(neg)), ("other", scalar)],
            )
        }
    };
    replace(b, vec![y])
}

fn fill_value(n: &Node, a: Aten) -> Result<Arg> {
    Ok(match a {
        Aten::NewZeros | Aten::ZerosLike => Arg::Int(0),
        Aten::NewOnes | Aten::OnesLike => Arg::Int(1),
        _ => n
            .arg("fill_value")
            .cloned()
            .ok_or_else(|| n.error("missing fill_value"))?,
    })
}

fn full(g: &mut Graph, n: &Node, size: Arg, fill: Arg, dtype: Option<DType>) -> Result<Rewrite> {
    let mut args = vec![("size", size), ("fill_value", fill)];
    if let Some(d) = dtype {
        args.push(("dtype", Arg::DType(d)));
    }
    let mut b = Builder::new(g, n);
    let y = b.aten(Aten::Full, "default", args);
    replace(b, vec![y])
}

fn new_full(g: &mut Graph, n: &Node, a: Aten) -> Result<Rewrite> {
    let x = value_arg(n, "self")?;
    let size = n
        .arg("size")
        .cloned()
        .ok_or_else(|| n.error("missing size"))?;
    let dtype = match n.arg("dtype") {
        Some(Arg::DType(d)) => Some(*d),
        _ => match ty(g, x) {
            Some(t) => Some(t.dtype),
            None => return Ok(Rewrite::Keep),
        },
    };
    let fill = fill_value(n, a)?;
    full(g, n, size, fill, dtype)
}

fn full_like(g: &mut Graph, n: &Node, a: Aten) -> Result<Rewrite> {
    let x = value_arg(n, "self")?;
    let Some(t) = ty(g, x) else {
        return Ok(Rewrite::Keep);
    };
    let Some(shape) = t.static_shape() else {
        return Ok(Rewrite::Keep);
    };
    let dtype = match n.arg("dtype") {
        Some(Arg::DType(d)) => *d,
        _ => t.dtype,
    };
    let size = Arg::Ints(shape.into_iter().map(|d| d as i64).collect());
    let fill = fill_value(n, a)?;
    full(g, n, size, fill, Some(dtype))
}

fn adaptive_avg_pool2d(g: &mut Graph, n: &Node) -> Result<Rewrite> {
    let x = value_arg(n, "self")?;
    let out = ints_arg(n, "output_size", 2)?;
    let mut b = Builder::new(g, n);
    // ATen computes a 1x1 adaptive pool as a mean over the spatial dims.
    let y = if out == [1, 1] {
        b.aten(
            Aten::Mean,
            "dim",
            vec![
                ("self", v(x)),
                ("dim", Arg::Ints(vec![-1, -2])),
                ("keepdim", Arg::Bool(true)),
            ],
        )
    } else {
        b.aten(
            Aten::InternalAdaptiveAvgPool2d,
            "default",
            vec![("self", v(x)), ("output_size", Arg::Ints(out))],
        )
    };
    replace(b, vec![y])
}

/// `matmul` by the ranks of its operands, as ATen's matmul dispatches.
fn matmul(g: &mut Graph, n: &Node) -> Result<Rewrite> {
    let a = value_arg(n, "self")?;
    let m = value_arg(n, "other")?;
    let (Some(at), Some(mt)) = (ty(g, a), ty(g, m)) else {
        return Ok(Rewrite::Keep);
    };
    let (ad, md) = (dims(at), dims(mt));
    let mut b = Builder::new(g, n);
    let y = match (ad.len(), md.len()) {
        (2, 2) => b.aten(Aten::Mm, "default", vec![("self", v(a)), ("mat2", v(m))]),
        (r, 2) if r >= 3 => {
            // Fold the batch dims of the left operand into the rows.
            let (Some(k), Some(nn)) = (ad[r - 1], md[1]) else {
                return Ok(Rewrite::Keep);
            };
            if md[0].is_some_and(|k2| k2 != k) {
                return Err(n.error("matmul inner dims differ"));
            }
            let mut out: Vec<Option<i64>> = ad[..r - 1].to_vec();
            out.push(Some(nn));
            let Some(out) = view_size(&out) else {
                return Ok(Rewrite::Keep);
            };
            let a2 = b.aten(
                Aten::View,
                "default",
                vec![("self", v(a)), ("size", Arg::Ints(vec![-1, k]))],
            );
            let p = b.aten(Aten::Mm, "default", vec![("self", v(a2)), ("mat2", v(m))]);
            b.aten(
                Aten::View,
                "default",
                vec![("self", v(p)), ("size", Arg::Ints(out))],
            )
        }
        (1, 2) => {
            // A vector times a matrix: as a one-row matrix.
            let (Some(k), Some(nn)) = (ad[0], md[1]) else {
                return Ok(Rewrite::Keep);
            };
            let a2 = b.aten(
                Aten::View,
                "default",
                vec![("self", v(a)), ("size", Arg::Ints(vec![1, k]))],
            );
            let p = b.aten(Aten::Mm, "default", vec![("self", v(a2)), ("mat2", v(m))]);
            b.aten(
                Aten::View,
                "default",
                vec![("self", v(p)), ("size", Arg::Ints(vec![nn]))],
            )
        }
        (ra, rm) if ra >= 2 && rm >= 2 => {
            // Broadcast batch dims: expand both, fold the batch into one dim,
            // bmm, unfold. Needs static shapes.
            let (Some(sa), Some(sm)) = (
                ad.iter().copied().collect::<Option<Vec<i64>>>(),
                md.iter().copied().collect::<Option<Vec<i64>>>(),
            ) else {
                return Ok(Rewrite::Keep);
            };
            let (ba, bm) = (&sa[..ra - 2], &sm[..rm - 2]);
            let nb = ba.len().max(bm.len());
            let mut batch = Vec::with_capacity(nb);
            for i in 0..nb {
                let da = if i + ba.len() >= nb {
                    ba[i + ba.len() - nb]
                } else {
                    1
                };
                let dm = if i + bm.len() >= nb {
                    bm[i + bm.len() - nb]
                } else {
                    1
                };
                batch.push(match (da, dm) {
                    (x, y) if x == y => x,
                    (1, y) => y,
                    (x, 1) => x,
                    (x, y) => {
                        return Err(
                            n.error(format!("matmul batch dims {x} and {y} do not broadcast"))
                        )
                    }
                });
            }
            let nbatch: i64 = batch.iter().product();
            let (rows, k, cols) = (sa[ra - 2], sa[ra - 1], sm[rm - 1]);
            if sm[rm - 2] != k {
                return Err(n.error(format!("matmul inner dims {k} and {} differ", sm[rm - 2])));
            }
            let fold = |b: &mut Builder<'_>, x: ValueId, own: &[i64], r: i64, c: i64| {
                let mut full = batch.clone();
                full.extend([r, c]);
                let e = if own == full.as_slice() {
                    x
                } else {
                    b.aten(
                        Aten::Expand,
                        "default",
                        vec![("self", v(x)), ("size", Arg::Ints(full))],
                    )
                };
                if own == [nbatch, r, c] {
                    return e;
                }
                b.aten(
                    Aten::View,
                    "default",
                    vec![("self", v(e)), ("size", Arg::Ints(vec![nbatch, r, c]))],
                )
            };
            let a3 = fold(&mut b, a, &sa, rows, k);
            let m3 = fold(&mut b, m, &sm, k, cols);
            let p = b.aten(Aten::Bmm, "default", vec![("self", v(a3)), ("mat2", v(m3))]);
            let mut out = batch.clone();
            out.extend([rows, cols]);
            if out == [nbatch, rows, cols] {
                p
            } else {
                b.aten(
                    Aten::View,
                    "default",
                    vec![("self", v(p)), ("size", Arg::Ints(out))],
                )
            }
        }
        _ => return Ok(Rewrite::Keep),
    };
    replace(b, vec![y])
}

fn value_list(n: &Node, name: &str) -> Result<Vec<ValueId>> {
    match n.arg(name) {
        Some(Arg::List(items)) => items
            .iter()
            .map(|a| {
                a.as_value()
                    .ok_or_else(|| n.error(format!("{name} holds a non-tensor")))
            })
            .collect(),
        _ => Err(n.error(format!("argument {name} is not a tensor list"))),
    }
}

/// The cell of a recurrent layer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cell {
    Lstm,
    Gru,
    /// `rnn_tanh`: h' = tanh(h @ W_hh^T + b_hh + pre[t])
    Tanh,
    /// `rnn_relu`: h' = relu(h @ W_hh^T + b_hh + pre[t])
    Relu,
}

/// `lstm.input`, `gru.input`, `rnn_tanh.input` and `rnn_relu.input`
/// unrolled, layer by layer and step by step, as torch's own decompositions
/// do it (time-major, hidden states kept as `[1, B, H]`, the input
/// projection of all steps computed at once):
///
/// ```text
/// pre = x @ W_ih^T + b_ih                                  ([T, B, G*H])
/// LSTM: gates = (h @ W_hh^T + b_hh) + pre[t];  i, f, g, o = split(gates)
///       c' = sigmoid(f) * c + sigmoid(i) * tanh(g);  h' = sigmoid(o) * tanh(c')
/// GRU:  hg = h @ W_hh^T + b_hh;  ir, iz, in = split(pre[t]);  hr, hz, hn = split(hg)
///       r = sigmoid(hr + ir);  z = sigmoid(hz + iz);  n = tanh(in + hn * r)
///       h' = (h - n) * z + n
/// RNN:  h' = act((h @ W_hh^T + b_hh) + pre[t])            (act = tanh or relu)
/// ```
///
/// The final states are the per-layer `[1, B, H]` states concatenated on
/// dim 0, so they have hx's shape `[L, B, H]`, as the eager kernel returns
/// them in every release. (torch 2.6 to 2.12 stack them instead, and so
/// record, and in the core form compute, `[L, 1, B, H]`; the recorded types
/// are corrected at import, see [`crate::ir::releases`].)
///
/// Needs a static sequence length and static feature sizes; the batch may
/// be symbolic. Bidirectional and projected RNNs, and unbatched inputs, are
/// kept whole.
fn rnn(g: &mut Graph, n: &Node, cell: Cell) -> Result<Rewrite> {
    let lstm = cell == Cell::Lstm;
    let what = match cell {
        Cell::Lstm => "lstm",
        Cell::Gru => "gru",
        Cell::Tanh => "rnn_tanh",
        Cell::Relu => "rnn_relu",
    };
    let x = value_arg(n, "input")?;
    let hx = if lstm {
        value_list(n, "hx")?
    } else {
        vec![value_arg(n, "hx")?]
    };
    let params = value_list(n, "params")?;
    let has_biases = bool_arg(n, "has_biases")?;
    let layers = int_arg(n, "num_layers")?;
    let train = bool_arg(n, "train")?;
    let dropout_p = float_arg(n, "dropout")?;
    let bidirectional = bool_arg(n, "bidirectional")?;
    let batch_first = bool_arg(n, "batch_first")?;
    if train && dropout_p != 0.0 && layers > 1 {
        return Err(n.error(format!(
            "{what} with dropout in training mode is a training-only path; export the model in eval mode"
        )));
    }
    let per_layer = if has_biases { 4 } else { 2 };
    let nstates = if lstm { 2 } else { 1 };
    if bidirectional
        || layers <= 0
        || hx.len() != nstates
        || params.len() != per_layer * layers as usize
    {
        return Ok(Rewrite::Keep);
    }
    let Some(xt) = ty(g, x) else {
        return Ok(Rewrite::Keep);
    };
    if xt.rank() != 3 {
        return Ok(Rewrite::Keep);
    }
    let xd = dims(xt);
    let Some(steps) = xd[if batch_first { 1 } else { 0 }].filter(|&t| t > 0) else {
        return Ok(Rewrite::Keep);
    };
    // Feature sizes from the weights: W_ih is [G*H, I], W_hh is [G*H, H].
    let ng: i64 = match cell {
        Cell::Lstm => 4,
        Cell::Gru => 3,
        Cell::Tanh | Cell::Relu => 1,
    };
    let mut sizes = Vec::new();
    for l in 0..layers as usize {
        let wi = ty(g, params[l * per_layer]).map(dims);
        let wh = ty(g, params[l * per_layer + 1]).map(dims);
        match (wi.as_deref(), wh.as_deref()) {
            (Some([Some(gh), Some(i)]), Some([Some(gh2), Some(h)]))
                if *gh == ng * h && gh == gh2 =>
            {
                sizes.push((*i, *h))
            }
            _ => return Ok(Rewrite::Keep),
        }
    }
    let out_count = n.outputs.len();
    let mut b = Builder::new(g, n);
    let perm = |b: &mut Builder<'_>, t: ValueId, d: Vec<i64>| {
        b.aten(
            Aten::Permute,
            "default",
            vec![("self", v(t)), ("dims", Arg::Ints(d))],
        )
    };
    let view = |b: &mut Builder<'_>, t: ValueId, size: Vec<i64>| {
        b.aten(
            Aten::View,
            "default",
            vec![("self", v(t)), ("size", Arg::Ints(size))],
        )
    };
    let un =
        |b: &mut Builder<'_>, op: Aten, t: ValueId| b.aten(op, "default", vec![("self", v(t))]);
    let bin = |b: &mut Builder<'_>, op: Aten, l: ValueId, r: ValueId| {
        b.aten(op, "Tensor", vec![("self", v(l)), ("other", v(r))])
    };
    let split = |b: &mut Builder<'_>, t: ValueId, h: i64, dim: i64| {
        b.node(
            Op::Aten(Aten::SplitWithSizes, "default".into()),
            vec![
                ("self", v(t)),
                ("split_sizes", Arg::Ints(vec![h; ng as usize])),
                ("dim", Arg::Int(dim)),
            ],
            ng as usize,
            true,
        )
    };
    let mut inp = if batch_first {
        perm(&mut b, x, vec![1, 0, 2])
    } else {
        x
    };
    let mut finals: Vec<Vec<ValueId>> = vec![Vec::new(); nstates];
    for (l, &(isz, hsz)) in sizes.iter().enumerate() {
        let p = &params[l * per_layer..(l + 1) * per_layer];
        let (w_ih, w_hh) = (p[0], p[1]);
        let (b_ih, b_hh) = if has_biases {
            (Some(p[2]), Some(p[3]))
        } else {
            (None, None)
        };
        // This layer's initial states, as [1, B, H].
        let mut st: Vec<ValueId> = hx
            .iter()
            .map(|&h0| {
                let s = b.aten(
                    Aten::Select,
                    "int",
                    vec![
                        ("self", v(h0)),
                        ("dim", Arg::Int(0)),
                        ("index", Arg::Int(l as i64)),
                    ],
                );
                b.aten(
                    Aten::Unsqueeze,
                    "default",
                    vec![("self", v(s)), ("dim", Arg::Int(0))],
                )
            })
            .collect();
        let wt_ih = perm(&mut b, w_ih, vec![1, 0]);
        let flat = view(&mut b, inp, vec![-1, isz]);
        let pm = b.aten(
            Aten::Mm,
            "default",
            vec![("self", v(flat)), ("mat2", v(wt_ih))],
        );
        let mut pre = view(&mut b, pm, vec![steps, -1, ng * hsz]);
        if let Some(bi) = b_ih {
            pre = bin(&mut b, Aten::Add, pre, bi);
        }
        let wt_hh = perm(&mut b, w_hh, vec![1, 0]);
        let mut outs = Vec::new();
        for t in 0..steps {
            let pre_t = b.aten(
                Aten::Select,
                "int",
                vec![
                    ("self", v(pre)),
                    ("dim", Arg::Int(0)),
                    ("index", Arg::Int(t)),
                ],
            );
            let h2 = view(&mut b, st[0], vec![-1, hsz]);
            let hm = match b_hh {
                Some(bh) => b.aten(
                    Aten::Addmm,
                    "default",
                    vec![("self", v(bh)), ("mat1", v(h2)), ("mat2", v(wt_hh))],
                ),
                None => b.aten(
                    Aten::Mm,
                    "default",
                    vec![("self", v(h2)), ("mat2", v(wt_hh))],
                ),
            };
            let hg = view(&mut b, hm, vec![1, -1, ng * hsz]);
            if matches!(cell, Cell::Tanh | Cell::Relu) {
                let pre_act = bin(&mut b, Aten::Add, hg, pre_t);
                let act = if cell == Cell::Tanh {
                    Aten::Tanh
                } else {
                    Aten::Relu
                };
                st[0] = un(&mut b, act, pre_act);
            } else if lstm {
                let gates = bin(&mut b, Aten::Add, hg, pre_t);
                let gs = split(&mut b, gates, hsz, 2);
                let ig = un(&mut b, Aten::Sigmoid, gs[0]);
                let fg = un(&mut b, Aten::Sigmoid, gs[1]);
                let cg = un(&mut b, Aten::Tanh, gs[2]);
                let og = un(&mut b, Aten::Sigmoid, gs[3]);
                let fc = bin(&mut b, Aten::Mul, fg, st[1]);
                let ic = bin(&mut b, Aten::Mul, ig, cg);
                st[1] = bin(&mut b, Aten::Add, fc, ic);
                let tc = un(&mut b, Aten::Tanh, st[1]);
                st[0] = bin(&mut b, Aten::Mul, og, tc);
            } else {
                let ig = split(&mut b, pre_t, hsz, 1);
                let hgs = split(&mut b, hg, hsz, 2);
                let r0 = bin(&mut b, Aten::Add, hgs[0], ig[0]);
                let r = un(&mut b, Aten::Sigmoid, r0);
                let z0 = bin(&mut b, Aten::Add, hgs[1], ig[1]);
                let z = un(&mut b, Aten::Sigmoid, z0);
                let hr = bin(&mut b, Aten::Mul, hgs[2], r);
                let n0 = bin(&mut b, Aten::Add, ig[2], hr);
                let nn = un(&mut b, Aten::Tanh, n0);
                let d = bin(&mut b, Aten::Sub, st[0], nn);
                let dz = bin(&mut b, Aten::Mul, d, z);
                st[0] = bin(&mut b, Aten::Add, dz, nn);
            }
            outs.push(st[0]);
        }
        inp = b.aten(
            Aten::Cat,
            "default",
            vec![
                (
                    "tensors",
                    Arg::List(outs.into_iter().map(Arg::Value).collect()),
                ),
                ("dim", Arg::Int(0)),
            ],
        );
        for (f, s) in finals.iter_mut().zip(&st) {
            f.push(*s);
        }
    }
    let out = if batch_first {
        perm(&mut b, inp, vec![1, 0, 2])
    } else {
        inp
    };
    let mut results = vec![out];
    if out_count > 1 {
        for fin in finals {
            if let [one] = fin[..] {
                results.push(one);
                continue;
            }
            let all = b.aten(
                Aten::Cat,
                "default",
                vec![
                    (
                        "tensors",
                        Arg::List(fin.into_iter().map(Arg::Value).collect()),
                    ),
                    ("dim", Arg::Int(0)),
                ],
            );
            results.push(all);
        }
    }
    results.truncate(out_count);
    replace(b, results)
}

#[cfg(test)]
mod tests {
    use crate::ir::parse::parse_program;
    use crate::passes::{Pass, PassContext};

    use super::Decompose;

    #[test]
    fn training_dropout_is_an_error() {
        let text = "input %x: f32[2, 3] = user_input\n\
                    %y: f32[2, 3] = aten.dropout.default(input=%x, p=0.5, train=true)\n\
                    output %y = user_output\n";
        let mut p = parse_program(text).expect("parse");
        let e = Decompose
            .run(&mut p, &mut PassContext::default())
            .expect_err("must fail");
        assert!(e.to_string().contains("training-only"), "{e}");
    }

    #[test]
    fn training_batch_norm_is_an_error() {
        let text = "input %x: f32[2, 3] = user_input\n\
                    input %m: f32[3] = user_input\n\
                    %y: f32[2, 3] = aten.batch_norm.default(input=%x, weight=None, bias=None, running_mean=%m, running_var=%m, training=true, momentum=0.1, eps=1e-05, cudnn_enabled=false)\n\
                    output %y = user_output\n";
        let mut p = parse_program(text).expect("parse");
        let e = Decompose
            .run(&mut p, &mut PassContext::default())
            .expect_err("must fail");
        assert!(e.to_string().contains("training"), "{e}");
    }
}
