//! ATen ops in the interpreter: argument decoding and dispatch to kernels.
//!
//! Generic kernels live in [`super::ops`] (over [`Tensor`]), neural-network
//! kernels in [`super::nn`] (over `ndarray`, for f32 and f64; f16 and bf16
//! inputs are computed in f32 and rounded back, as CPU kernels do).

use ndarray::{ArrayD, ArrayViewD};

use crate::error::Result;
use crate::ir::Aten;
use crate::DType;

use super::eval::{Args, RValue};
use super::nn;
use super::ops::elementwise::Operand;
use super::ops::{elementwise as ew, reduce};
use super::tensor::{Scalar, Tensor};

/// The tensor type under a name the op glob import (`Aten::Tensor`) does not shadow.
type Ten = Tensor;

/// Ops that CPU autocast runs in its lower-precision dtype.
pub(crate) fn autocasts_to_lower_precision(a: Aten) -> bool {
    a.autocast_lower_precision()
}

fn t(x: Tensor) -> Result<Vec<RValue>> {
    Ok(vec![RValue::Tensor(x)])
}

fn ts(xs: Vec<Tensor>) -> Result<Vec<RValue>> {
    Ok(xs.into_iter().map(RValue::Tensor).collect())
}

fn list(xs: Vec<Tensor>) -> Result<Vec<RValue>> {
    Ok(vec![RValue::List(
        xs.into_iter().map(RValue::Tensor).collect(),
    )])
}

/// The dtype an NN kernel computes in for inputs of dtype `d`.
fn compute_dtype(d: DType) -> DType {
    if d == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// Runs `$body` with `$T` bound to the compute float type of `$dt`.
macro_rules! with_float {
    ($dt:expr, $T:ident => $body:expr) => {
        match compute_dtype($dt) {
            DType::F64 => {
                type $T = f64;
                $body
            }
            _ => {
                type $T = f32;
                $body
            }
        }
    };
}

fn arr<T: super::tensor::Element>(x: &Tensor, dt: DType) -> Result<ArrayD<T>> {
    x.to_dtype(dt).to_array::<T>()
}

fn opt_arr<T: super::tensor::Element>(x: &Option<Tensor>, dt: DType) -> Result<Option<ArrayD<T>>> {
    x.as_ref().map(|x| arr(x, dt)).transpose()
}

fn view<T>(a: &Option<ArrayD<T>>) -> Option<ArrayViewD<'_, T>> {
    a.as_ref().map(|a| a.view())
}

/// Wraps a kernel result, rounding back to a half-precision input dtype.
fn back<T: super::tensor::Element>(a: ArrayD<T>, dt: DType) -> Tensor {
    let out = Tensor::from_array(a);
    if out.dtype() != dt && dt.is_float() {
        out.to_dtype(dt)
    } else {
        out
    }
}

fn operand<'a>(a: &Args<'_>, name: &str, holder: &'a Option<Tensor>) -> Result<Operand<'a>> {
    match holder {
        Some(x) => Ok(Operand::T(x)),
        None => Ok(Operand::S(a.scalar(name)?)),
    }
}

fn opt_tensor_if_tensor(a: &Args<'_>, name: &str) -> Result<Option<Tensor>> {
    if a.is_tensor(name) {
        a.tensor(name).map(Some)
    } else {
        Ok(None)
    }
}

/// Whether a reduction keeps its reduced dims. The overloads that reduce
/// everything (`sum.default`, `var.default`) have no `keepdim`: they do not.
fn keepdim(a: &Args<'_>) -> Result<bool> {
    Ok(a.opt_bool("keepdim")?.unwrap_or(false))
}

fn dims_arg(a: &Args<'_>, name: &str) -> Result<Option<Vec<i64>>> {
    let d = a.opt_ints(name)?;
    Ok(d.filter(|v| !v.is_empty()))
}

pub(crate) fn eval_aten(a: &Args<'_>, op: Aten, overload: &str) -> Result<Vec<RValue>> {
    use Aten::*;
    let wrap = |r: Result<Ten>| r.map_err(|e| a.err(e.to_string()));
    let wrapv = |r: Result<Vec<Ten>>| r.map_err(|e| a.err(e.to_string()));
    // `out=` variants on an unfunctionalized graph: compute, then write
    // into `out` (which must already have the result's shape).
    if a.node
        .arg("out")
        .and_then(crate::ir::Arg::as_value)
        .is_some()
    {
        let out = a.tensor("out")?;
        let mut plain = a.node.clone();
        plain.args.retain(|x| x.name != "out");
        plain.op = crate::ir::Op::Aten(op, String::new());
        let result = eval_aten(&a.with_node(&plain), op, "")?;
        let Some(RValue::Tensor(r)) = result.into_iter().next() else {
            return Err(a.err(format!("{} returned no tensor", op.name())));
        };
        if r.sizes() != out.sizes() {
            return Err(a.err(format!(
                "out= tensor has shape {:?}, the result {:?}",
                out.sizes(),
                r.sizes()
            )));
        }
        out.copy_(&r).map_err(|e| a.err(e.to_string()))?;
        return t(out);
    }
    // In-place ops on an unfunctionalized graph: compute, then write back.
    if let Some(func) = op.functional_form() {
        let target = a.tensor(
            a.node
                .args
                .first()
                .map(|x| x.name.as_str())
                .unwrap_or("self"),
        )?;
        let result = eval_aten(a, func, overload)?;
        let Some(RValue::Tensor(r)) = result.into_iter().next() else {
            return Err(a.err(format!("{} returned no tensor", func.name())));
        };
        target.copy_(&r).map_err(|e| a.err(e.to_string()))?;
        return t(target);
    }
    match op {
        // ---- binary arithmetic and comparisons ----
        Add | Sub | Rsub | Mul | Div | Remainder | Fmod | Pow | Maximum | Minimum | Atan2
        | FloorDivide | Eq | Ne | Lt | Le | Gt | Ge | BitwiseAnd | BitwiseOr | BitwiseXor
        | DunderAnd | DunderOr | DunderXor | LogicalAnd | LogicalOr | LogicalXor => {
            let (an, bn) = if a.node.arg("self").is_some() {
                ("self", "other")
            } else {
                ("self", "exponent")
            };
            let (an, bn) = if op == Pow && a.node.arg("self").is_none() {
                ("self", "exponent")
            } else {
                (an, bn)
            };
            let sa = opt_tensor_if_tensor(a, an)?;
            let bname = if a.node.arg(bn).is_some() {
                bn
            } else {
                "exponent"
            };
            let sb = opt_tensor_if_tensor(a, bname)?;
            let x = operand(a, an, &sa)?;
            let y = operand(a, bname, &sb)?;
            let alpha = a.opt_scalar("alpha")?.unwrap_or(Scalar::Int(1));
            wrap(match op {
                Add => ew::add(x, y, alpha),
                Sub => ew::sub(x, y, alpha),
                Rsub => ew::rsub(x, y, alpha),
                Mul => ew::mul(x, y),
                Div => ew::div(
                    x,
                    y,
                    a.node.arg("rounding_mode").and_then(|m| match m {
                        crate::ir::Arg::Str(s) => Some(s.as_str()),
                        _ => None,
                    }),
                ),
                Remainder => ew::remainder(x, y),
                Fmod => ew::fmod(x, y),
                Pow => ew::pow(x, y),
                Maximum => ew::maximum(x, y),
                Minimum => ew::minimum(x, y),
                Atan2 => ew::atan2(x, y),
                FloorDivide => ew::floor_divide(x, y),
                Eq => ew::eq(x, y),
                Ne => ew::ne(x, y),
                Lt => ew::lt(x, y),
                Le => ew::le(x, y),
                Gt => ew::gt(x, y),
                Ge => ew::ge(x, y),
                BitwiseAnd | DunderAnd => ew::bitwise_and(x, y),
                BitwiseOr | DunderOr => ew::bitwise_or(x, y),
                BitwiseXor | DunderXor => ew::bitwise_xor(x, y),
                LogicalAnd => ew::logical_and(x, y),
                LogicalOr => ew::logical_or(x, y),
                _ => ew::logical_xor(x, y),
            })
            .and_then(t)
        }
        // ---- unary ----
        Neg => t(wrap(ew::neg(&a.tensor("self")?))?),
        Abs => t(wrap(ew::abs(&a.tensor("self")?))?),
        Relu => t(wrap(ew::relu(&a.tensor("self")?))?),
        Relu6 => t(wrap(ew::relu6(&a.tensor("self")?))?),
        Sign => t(wrap(ew::sign(&a.tensor("self")?))?),
        Floor => t(wrap(ew::floor(&a.tensor("self")?))?),
        Ceil => t(wrap(ew::ceil(&a.tensor("self")?))?),
        Round => t(wrap(ew::round(&a.tensor("self")?))?),
        Trunc => t(wrap(ew::trunc(&a.tensor("self")?))?),
        Frac => t(wrap(ew::frac(&a.tensor("self")?))?),
        BitwiseNot => t(wrap(ew::bitwise_not(&a.tensor("self")?))?),
        LogicalNot => t(wrap(ew::logical_not(&a.tensor("self")?))?),
        Isnan => t(wrap(ew::isnan(&a.tensor("self")?))?),
        Exp => t(wrap(ew::exp(&a.tensor("self")?))?),
        Expm1 => t(wrap(ew::expm1(&a.tensor("self")?))?),
        Log => t(wrap(ew::log(&a.tensor("self")?))?),
        Log1p => t(wrap(ew::log1p(&a.tensor("self")?))?),
        Log2 => t(wrap(ew::log2(&a.tensor("self")?))?),
        Sqrt => t(wrap(ew::sqrt(&a.tensor("self")?))?),
        Rsqrt => t(wrap(ew::rsqrt(&a.tensor("self")?))?),
        Reciprocal => t(wrap(ew::reciprocal(&a.tensor("self")?))?),
        Sin => t(wrap(ew::sin(&a.tensor("self")?))?),
        Cos => t(wrap(ew::cos(&a.tensor("self")?))?),
        Tan => t(wrap(ew::tan(&a.tensor("self")?))?),
        Tanh => t(wrap(ew::tanh(&a.tensor("self")?))?),
        Sigmoid => t(wrap(ew::sigmoid(&a.tensor("self")?))?),
        Erf => t(wrap(ew::erf(&a.tensor("self")?))?),
        Silu => t(wrap(ew::silu(&a.tensor("self")?))?),
        Mish => t(wrap(ew::mish(&a.tensor("self")?))?),
        Hardsigmoid => t(wrap(ew::hardsigmoid(&a.tensor("self")?))?),
        Hardswish => t(wrap(ew::hardswish(&a.tensor("self")?))?),
        Gelu => t(wrap(ew::gelu(&a.tensor("self")?, a.str("approximate")?))?),
        Softplus => t(wrap(ew::softplus(
            &a.tensor("self")?,
            a.float("beta")?,
            a.float("threshold")?,
        ))?),
        Selu => t(wrap(ew::elu(
            &a.tensor("self")?,
            1.673_263_242_354_377_3,
            1.050_700_987_355_480_5,
            1.0,
        ))?),
        Celu => {
            let alpha = a.float("alpha")?;
            t(wrap(ew::elu(&a.tensor("self")?, alpha, 1.0, 1.0 / alpha))?)
        }
        // log_sigmoid(x) = min(x, 0) - log1p(exp(-|x|))
        LogSigmoid => {
            let x = a.tensor("self")?;
            let m = wrap(ew::minimum(&x, Operand::S(Scalar::Int(0))))?;
            let e = wrap(ew::log1p(&wrap(ew::exp(&wrap(ew::neg(&wrap(
                ew::abs(&x),
            )?))?))?))?;
            t(wrap(ew::sub(&m, &e, Scalar::Int(1)))?)
        }
        Elu => t(wrap(ew::elu(
            &a.tensor("self")?,
            a.float("alpha")?,
            a.float("scale")?,
            a.float("input_scale")?,
        ))?),
        LeakyRelu => t(wrap(ew::leaky_relu(
            &a.tensor("self")?,
            a.float("negative_slope")?,
        ))?),
        Hardtanh => t(wrap(ew::hardtanh(
            &a.tensor("self")?,
            a.float("min_val")?,
            a.float("max_val")?,
        ))?),
        // clamp_min and clamp_max (Scalar and Tensor) are clamp with one side.
        Clamp | Clip | ClampMin | ClampMax => {
            let x = a.tensor("self")?;
            let (mn_t, mx_t) = (
                opt_tensor_if_tensor(a, "min")?,
                opt_tensor_if_tensor(a, "max")?,
            );
            let mn = match &mn_t {
                Some(m) => Some(Operand::T(m)),
                None => a.opt_scalar("min")?.map(Operand::S),
            };
            let mx = match &mx_t {
                Some(m) => Some(Operand::T(m)),
                None => a.opt_scalar("max")?.map(Operand::S),
            };
            t(wrap(ew::clamp(&x, mn, mx))?)
        }
        Where => {
            let c = a.tensor("condition")?;
            let (xt, yt) = (
                opt_tensor_if_tensor(a, "self")?,
                opt_tensor_if_tensor(a, "other")?,
            );
            t(wrap(ew::where_(
                &c,
                operand(a, "self", &xt)?,
                operand(a, "other", &yt)?,
            ))?)
        }
        MaskedFill => {
            let x = a.tensor("self")?;
            let m = a.tensor("mask")?;
            let vt = opt_tensor_if_tensor(a, "value")?;
            t(wrap(ew::masked_fill(&x, &m, operand(a, "value", &vt)?))?)
        }
        InternalToCopy | To | TypeAs => {
            let x = a.tensor("self")?;
            let d = a
                .dtype("dtype")
                .or_else(|| {
                    if op == TypeAs {
                        a.tensor("other").ok().map(|o| o.dtype())
                    } else {
                        None
                    }
                })
                .unwrap_or(x.dtype());
            t(wrap(ew::to_copy(&x, d))?)
        }
        // ---- reductions ----
        Sum => {
            let x = a.tensor("self")?;
            let dims = dims_arg(a, "dim")?;
            t(wrap(reduce::sum(
                &x,
                dims.as_deref(),
                keepdim(a)?,
                a.dtype("dtype"),
            ))?)
        }
        Mean => {
            let x = a.tensor("self")?;
            let dims = dims_arg(a, "dim")?;
            t(wrap(reduce::mean(
                &x,
                dims.as_deref(),
                keepdim(a)?,
                a.dtype("dtype"),
            ))?)
        }
        Prod => {
            let x = a.tensor("self")?;
            let dims = a.opt_int("dim")?.map(|d| vec![d]);
            t(wrap(reduce::prod(
                &x,
                dims.as_deref(),
                keepdim(a)?,
                a.dtype("dtype"),
            ))?)
        }
        Amax => t(wrap(reduce::amax(
            &a.tensor("self")?,
            dims_arg(a, "dim")?.as_deref(),
            keepdim(a)?,
        ))?),
        Amin => t(wrap(reduce::amin(
            &a.tensor("self")?,
            dims_arg(a, "dim")?.as_deref(),
            keepdim(a)?,
        ))?),
        Max | Min if a.has("dim") => {
            let x = a.tensor("self")?;
            let (dim, keep) = (a.int("dim")?, keepdim(a)?);
            let (v, i) = wrap2(
                a,
                if op == Max {
                    reduce::max_dim(&x, dim, keep)
                } else {
                    reduce::min_dim(&x, dim, keep)
                },
            )?;
            ts(vec![v, i])
        }
        // `max.other` / `min.other`: elementwise, like maximum / minimum.
        Max | Min if a.has("other") => {
            let (x, y) = (a.tensor("self")?, a.tensor("other")?);
            t(wrap(if op == Max {
                ew::maximum(&x, &y)
            } else {
                ew::minimum(&x, &y)
            })?)
        }
        Max => t(wrap(reduce::max_all(&a.tensor("self")?))?),
        Aminmax => {
            let x = a.tensor("self")?;
            let keep = keepdim(a)?;
            let dims = a.opt_int("dim")?.map(|d| vec![d]);
            let (lo, hi) = (
                wrap(reduce::amin(&x, dims.as_deref(), keep))?,
                wrap(reduce::amax(&x, dims.as_deref(), keep))?,
            );
            ts(vec![lo, hi])
        }
        Min => t(wrap(reduce::min_all(&a.tensor("self")?))?),
        Argmax => t(wrap(reduce::argmax(
            &a.tensor("self")?,
            a.opt_int("dim")?,
            keepdim(a)?,
        ))?),
        Argmin => t(wrap(reduce::argmin(
            &a.tensor("self")?,
            a.opt_int("dim")?,
            keepdim(a)?,
        ))?),
        Var | Std => {
            let x = a.tensor("self")?;
            let dims = dims_arg(a, "dim")?;
            let correction = match a.opt_float("correction")? {
                Some(c) => c,
                None => {
                    if a.opt_bool("unbiased")?.unwrap_or(true) {
                        1.0
                    } else {
                        0.0
                    }
                }
            };
            let keep = keepdim(a)?;
            t(wrap(if op == Var {
                reduce::var(&x, dims.as_deref(), correction, keep)
            } else {
                reduce::std(&x, dims.as_deref(), correction, keep)
            })?)
        }
        Any | All => {
            let x = a.tensor("self")?;
            let dims = match a.opt_int("dim") {
                Ok(Some(d)) => Some(vec![d]),
                _ => dims_arg(a, "dim")?,
            };
            let keep = keepdim(a)?;
            t(wrap(if op == Any {
                reduce::any(&x, dims.as_deref(), keep)
            } else {
                reduce::all(&x, dims.as_deref(), keep)
            })?)
        }
        Cumsum => t(wrap(reduce::cumsum(
            &a.tensor("self")?,
            a.int("dim")?,
            a.dtype("dtype"),
        ))?),
        Cumprod => t(wrap(reduce::cumprod(
            &a.tensor("self")?,
            a.int("dim")?,
            a.dtype("dtype"),
        ))?),
        Logsumexp => t(wrap(reduce::logsumexp(
            &a.tensor("self")?,
            dims_arg(a, "dim")?.as_deref(),
            keepdim(a)?,
        ))?),
        Softmax | InternalSoftmax | InternalSafeSoftmax => {
            let x = a.tensor("self")?;
            let x = match a.dtype("dtype") {
                Some(d) => x.to_dtype(d),
                None => x,
            };
            if op == InternalSafeSoftmax {
                t(wrap(reduce::safe_softmax(&x, a.int("dim")?))?)
            } else {
                t(wrap(reduce::softmax(&x, a.int("dim")?))?)
            }
        }
        LogSoftmax | InternalLogSoftmax => {
            let x = a.tensor("self")?;
            let x = match a.dtype("dtype") {
                Some(d) => x.to_dtype(d),
                None => x,
            };
            t(wrap(reduce::log_softmax(&x, a.int("dim")?))?)
        }
        // ---- views and shapes ----
        View | Reshape | InternalUnsafeView => {
            let x = a.tensor("self")?;
            let shape = a.ints(if a.node.arg("size").is_some() {
                "size"
            } else {
                "shape"
            })?;
            t(wrap(if op == View {
                x.view(&shape).or_else(|_| x.reshape(&shape))
            } else {
                x.reshape(&shape)
            })?)
        }
        ViewAs => {
            let x = a.tensor("self")?;
            let shape: Vec<i64> = a
                .tensor("other")?
                .sizes()
                .iter()
                .map(|&d| d as i64)
                .collect();
            t(wrap(x.reshape(&shape))?)
        }
        Permute => t(wrap(a.tensor("self")?.permute(&a.ints("dims")?))?),
        Transpose => t(wrap(
            a.tensor("self")?.transpose(a.int("dim0")?, a.int("dim1")?),
        )?),
        T => t(wrap(a.tensor("self")?.t())?),
        NumpyT => {
            let x = a.tensor("self")?;
            let dims: Vec<i64> = (0..x.dim() as i64).rev().collect();
            t(wrap(x.permute(&dims))?)
        }
        Expand => t(wrap(a.tensor("self")?.expand(&a.ints("size")?))?),
        ExpandAs => {
            let shape: Vec<i64> = a
                .tensor("other")?
                .sizes()
                .iter()
                .map(|&d| d as i64)
                .collect();
            t(wrap(a.tensor("self")?.expand(&shape))?)
        }
        Unsqueeze => t(wrap(a.tensor("self")?.unsqueeze(a.int("dim")?))?),
        Squeeze => {
            let x = a.tensor("self")?;
            if a.has("dim") {
                let dims = a.ints("dim")?;
                t(wrap(x.squeeze_dims(&dims))?)
            } else {
                t(x.squeeze())
            }
        }
        Select => t(wrap(
            a.tensor("self")?.select(a.int("dim")?, a.int("index")?),
        )?),
        Slice => {
            let x = a.tensor("self")?;
            t(wrap(x.slice(
                a.int("dim")?,
                a.opt_int("start")?,
                a.opt_int("end")?,
                a.int("step")?,
            ))?)
        }
        Narrow => t(wrap(a.tensor("self")?.narrow(
            a.int("dim")?,
            a.int("start")?,
            a.int("length")?,
        ))?),
        AsStrided => {
            let x = a.tensor("self")?;
            t(wrap(x.as_strided(
                &a.ints("size")?,
                &a.ints("stride")?,
                a.opt_int("storage_offset")?,
            ))?)
        }
        Alias | Detach | LiftFreshCopy => t(a.tensor("self")?.alias()),
        Contiguous => t(a.tensor("self")?.contiguous()),
        Clone => t(a.tensor("self")?.clone_data()),
        Flatten => t(wrap(
            a.tensor("self")?
                .flatten(a.int("start_dim")?, a.int("end_dim")?),
        )?),
        Unflatten => t(wrap(
            a.tensor("self")?
                .unflatten(a.int("dim")?, &a.ints("sizes")?),
        )?),
        Split => {
            let x = a.tensor("self")?;
            let dim = a.int("dim")?;
            if let Ok(sizes) = a.ints("split_size") {
                if sizes.len() != 1 {
                    return list(wrapv(x.split_with_sizes(&sizes, dim))?);
                }
            }
            list(wrapv(x.split(a.int("split_size")?, dim))?)
        }
        SplitWithSizes => list(wrapv(
            a.tensor("self")?
                .split_with_sizes(&a.ints("split_sizes")?, a.int("dim")?),
        )?),
        Unbind => list(wrapv(a.tensor("self")?.unbind(a.int("dim")?))?),
        Chunk => list(wrapv(
            a.tensor("self")?.chunk(a.int("chunks")?, a.int("dim")?),
        )?),
        Diagonal => t(wrap(a.tensor("self")?.diagonal(
            a.int("offset")?,
            a.int("dim1")?,
            a.int("dim2")?,
        ))?),
        Copy => {
            let x = a.tensor("self")?;
            let out = x.clone_data();
            wrap(out.copy_(&a.tensor("src")?).map(|_| out.clone()))?;
            t(out)
        }
        Fill => {
            let x = a.tensor("self")?.clone_data();
            let v = a.scalar("value")?;
            wrap(x.fill_(v).map(|_| x.clone()))?;
            t(x)
        }
        Zero => {
            let x = a.tensor("self")?.clone_data();
            wrap(x.fill_(Scalar::Int(0)).map(|_| x.clone()))?;
            t(x)
        }
        Dropout | FeatureDropout | AlphaDropout | FeatureAlphaDropout if !a.bool("train")? => {
            // `dropout_` and friends name their input `self`.
            t(a.tensor(if a.has("input") { "input" } else { "self" })?)
        }
        NativeDropout if !a.opt_bool("train")?.unwrap_or(true) => {
            let x = a.tensor("input")?;
            let mask = Ten::full(DType::Bool, x.sizes(), Scalar::Bool(true));
            ts(vec![x, mask])
        }
        Dropout | FeatureDropout | AlphaDropout | FeatureAlphaDropout | NativeDropout => {
            Err(a.err("dropout in training mode is not supported (random)"))
        }
        InternalAssertTensorMetadata | InternalAssertScalar => Ok(vec![]),
        SymSize => {
            let x = a.tensor("self")?;
            let d = a.int("dim")?;
            Ok(vec![RValue::Int(wrap_usize(a, x.size(d))? as i64)])
        }
        SymNumel => Ok(vec![RValue::Int(a.tensor("self")?.numel() as i64)]),
        // ---- neural-network ops ----
        Linear => {
            let x = a.tensor("input")?;
            let (w, b) = (a.tensor("weight")?, a.opt_tensor("bias")?);
            let dt = x.dtype();
            with_float!(dt, F => {
                let cd = compute_dtype(dt);
                let (xa, wa, ba) = (arr::<F>(&x, cd)?, arr::<F>(&w, cd)?, opt_arr::<F>(&b, cd)?);
                t(back(wrap_arr(a, nn::linear::linear(xa.view(), wa.view(), view(&ba)))?, dt))
            })
        }
        Convolution | Conv1d | Conv2d | Conv3d | ConvTranspose1d | ConvTranspose2d => {
            let x = a.tensor("input")?;
            let (w, b) = (a.tensor("weight")?, a.opt_tensor("bias")?);
            let spatial = w.dim().saturating_sub(2).max(1);
            let transposed = match op {
                Convolution => a.bool("transposed")?,
                ConvTranspose1d | ConvTranspose2d => true,
                _ => false,
            };
            let stride = a.ints("stride")?;
            let padding = a
                .ints("padding")
                .map_err(|_| a.err("string padding is not supported"))?;
            let dilation = a.ints("dilation")?;
            // Only `convolution` and the transposed forms have it.
            let output_padding = a.opt_ints("output_padding")?.unwrap_or(vec![0; spatial]);
            let groups = a.int("groups")?;
            let dt = x.dtype();
            with_float!(dt, F => {
                let cd = compute_dtype(dt);
                let (xa, wa, ba) = (arr::<F>(&x, cd)?, arr::<F>(&w, cd)?, opt_arr::<F>(&b, cd)?);
                t(back(wrap_arr(a, nn::conv::convolution(xa.view(), wa.view(), view(&ba), &stride, &padding, &dilation, transposed, &output_padding, groups))?, dt))
            })
        }
        MaxPool2d | MaxPool2dWithIndices | MaxPool1d => {
            let x = a.tensor("self")?;
            let k = a.ints("kernel_size")?;
            let stride = a.ints("stride")?;
            let padding = a.ints("padding")?;
            let dilation = a.ints("dilation")?;
            let ceil = a.bool("ceil_mode")?;
            let dt = x.dtype();
            with_float!(dt, F => {
                let xa = arr::<F>(&x, compute_dtype(dt))?;
                if op == MaxPool1d {
                    return t(back(wrap_arr(a, nn::pool::max_pool1d(xa.view(), &k, &stride, &padding, &dilation, ceil))?, dt));
                }
                let (v, i) = nn::pool::max_pool2d_with_indices(xa.view(), &k, &stride, &padding, &dilation, ceil).map_err(|e| a.err(e.to_string()))?;
                if op == MaxPool2d {
                    t(back(v, dt))
                } else {
                    ts(vec![back(v, dt), Ten::from_array(i)])
                }
            })
        }
        AvgPool2d => {
            let x = a.tensor("self")?;
            let k = a.ints("kernel_size")?;
            let stride = a.ints("stride")?;
            let padding = a.ints("padding")?;
            let dt = x.dtype();
            with_float!(dt, F => {
                let xa = arr::<F>(&x, compute_dtype(dt))?;
                t(back(wrap_arr(a, nn::pool::avg_pool2d(xa.view(), &k, &stride, &padding, a.bool("ceil_mode")?, a.bool("count_include_pad")?, a.opt_int("divisor_override")?))?, dt))
            })
        }
        AdaptiveAvgPool2d | InternalAdaptiveAvgPool2d | AdaptiveAvgPool1d => {
            let x = a.tensor("self")?;
            let size = a.ints("output_size")?;
            let dt = x.dtype();
            with_float!(dt, F => {
                let xa = arr::<F>(&x, compute_dtype(dt))?;
                let r = if op == AdaptiveAvgPool1d { nn::pool::adaptive_avg_pool1d(xa.view(), &size) } else { nn::pool::adaptive_avg_pool2d(xa.view(), &size) };
                t(back(wrap_arr(a, r)?, dt))
            })
        }
        BatchNorm
        | InternalNativeBatchNormLegitNoTraining
        | NativeBatchNorm
        | InternalNativeBatchNormLegit => {
            let x = a.tensor("input")?;
            let (w, b) = (a.opt_tensor("weight")?, a.opt_tensor("bias")?);
            let (rm, rv) = (a.opt_tensor("running_mean")?, a.opt_tensor("running_var")?);
            let training = op != InternalNativeBatchNormLegitNoTraining && a.bool("training")?;
            if training {
                // Batch statistics without running stats (the `no_stats`
                // overload, e.g. instance_norm in core IR) update no state.
                if rm.is_some() || rv.is_some() {
                    return Err(
                        a.err("batch_norm in training mode is not supported (inference only)")
                    );
                }
                let eps = a.float("eps")?;
                let dt = x.dtype();
                return with_float!(dt, F => {
                    let cd = compute_dtype(dt);
                    let (xa, wa, ba) = (arr::<F>(&x, cd)?, opt_arr::<F>(&w, cd)?, opt_arr::<F>(&b, cd)?);
                    let (o, m, r) = nn::norm::native_batch_norm(xa.view(), view(&wa), view(&ba), None, None, true, 0.0, eps).map_err(|e| a.err(e.to_string()))?;
                    if op == BatchNorm {
                        t(back(o, dt))
                    } else {
                        ts(vec![back(o, dt), back(m, dt), back(r, dt)])
                    }
                });
            }
            let (Some(rm), Some(rv)) = (rm, rv) else {
                return Err(a.err("batch_norm in eval mode needs running statistics"));
            };
            let eps = a.float("eps")?;
            let dt = x.dtype();
            with_float!(dt, F => {
                let cd = compute_dtype(dt);
                let (xa, wa, ba, ma, va) = (arr::<F>(&x, cd)?, opt_arr::<F>(&w, cd)?, opt_arr::<F>(&b, cd)?, arr::<F>(&rm, cd)?, arr::<F>(&rv, cd)?);
                let out = back(wrap_arr(a, nn::norm::native_batch_norm_inference(xa.view(), view(&wa), view(&ba), ma.view(), va.view(), eps))?, dt);
                if op == BatchNorm {
                    t(out)
                } else {
                    let empty = Ten::zeros(cd, &[0]);
                    ts(vec![out, empty.clone(), empty])
                }
            })
        }
        LayerNorm | NativeLayerNorm => {
            let x = a.tensor("input")?;
            let shape = a.ints("normalized_shape")?;
            let (w, b) = (a.opt_tensor("weight")?, a.opt_tensor("bias")?);
            let eps = a.float("eps")?;
            let dt = x.dtype();
            with_float!(dt, F => {
                let cd = compute_dtype(dt);
                let (xa, wa, ba) = (arr::<F>(&x, cd)?, opt_arr::<F>(&w, cd)?, opt_arr::<F>(&b, cd)?);
                let (o, m, r) = nn::norm::native_layer_norm(xa.view(), &shape, view(&wa), view(&ba), eps).map_err(|e| a.err(e.to_string()))?;
                if op == LayerNorm {
                    t(back(o, dt))
                } else {
                    ts(vec![back(o, dt), back(m, dt), back(r, dt)])
                }
            })
        }
        GroupNorm | NativeGroupNorm => {
            let x = a.tensor("input")?;
            let (w, b) = (a.opt_tensor("weight")?, a.opt_tensor("bias")?);
            let eps = a.float("eps")?;
            let sizes = x.sizes().to_vec();
            let n = sizes.first().copied().unwrap_or(1) as i64;
            let c = sizes.get(1).copied().unwrap_or(1) as i64;
            let hxw: i64 = sizes.iter().skip(2).product::<usize>() as i64;
            let group = if op == GroupNorm {
                a.int("num_groups")?
            } else {
                a.int("group")?
            };
            let dt = x.dtype();
            with_float!(dt, F => {
                let cd = compute_dtype(dt);
                let (xa, wa, ba) = (arr::<F>(&x, cd)?, opt_arr::<F>(&w, cd)?, opt_arr::<F>(&b, cd)?);
                let (o, m, r) = nn::norm::native_group_norm(xa.view(), view(&wa), view(&ba), n, c, hxw, group, eps).map_err(|e| a.err(e.to_string()))?;
                if op == GroupNorm {
                    t(back(o, dt))
                } else {
                    ts(vec![back(o, dt), back(m, dt), back(r, dt)])
                }
            })
        }
        // _trilinear(i1, i2, i3, expand1, expand2, expand3, sumdim): the
        // three inputs, unsqueezed at their expand dims, multiplied and
        // summed over sumdim; as an einsum over the full index space.
        InternalTrilinear => {
            let ins = [a.tensor("i1")?, a.tensor("i2")?, a.tensor("i3")?];
            let expands = [a.ints("expand1")?, a.ints("expand2")?, a.ints("expand3")?];
            let sumdim = a.ints("sumdim")?;
            let rank = ins[0].dim() + expands[0].len();
            if rank > 26 {
                return Err(a.err("_trilinear: too many dims"));
            }
            let letter = |d: usize| (b'a' + d as u8) as char;
            let mut terms = Vec::new();
            for (x, e) in ins.iter().zip(&expands) {
                let e: Vec<usize> = e
                    .iter()
                    .map(|&d| d.rem_euclid(rank.max(1) as i64) as usize)
                    .collect();
                let term: String = (0..rank).filter(|d| !e.contains(d)).map(letter).collect();
                if term.len() != x.dim() {
                    return Err(a.err("_trilinear: an input's rank does not match its expand dims"));
                }
                terms.push(term);
            }
            let sum: Vec<usize> = sumdim
                .iter()
                .map(|&d| d.rem_euclid(rank.max(1) as i64) as usize)
                .collect();
            let out: String = (0..rank).filter(|d| !sum.contains(d)).map(letter).collect();
            let eq = format!("{}->{out}", terms.join(","));
            t(wrap(super::ops::linalg::einsum(&eq, &ins))?)
        }
        // linear over the last dim: bilinear on a height of 1.
        UpsampleLinear1d => {
            let x = a.tensor(if a.has("input") { "input" } else { "self" })?;
            let sz: Vec<i64> = x.sizes().iter().map(|&d| d as i64).collect();
            if sz.len() != 3 {
                return Err(a.err("upsample_linear1d: expected a 3-D input"));
            }
            let (size, sw) = if overload == "vec" {
                match (a.opt_ints("output_size")?, a.opt_floats("scale_factors")?) {
                    (Some(o), None) if o.len() == 1 => (o[0], None),
                    (None, Some(f)) if f.len() == 1 => {
                        (((sz[2] as f64) * f[0]).floor() as i64, Some(f[0]))
                    }
                    _ => {
                        return Err(a.err("upsample_linear1d: one output size or one scale factor"))
                    }
                }
            } else {
                let o = a.ints("output_size")?;
                (o.first().copied().unwrap_or(0), a.opt_float("scales")?)
            };
            let x4 = wrap(x.reshape(&[sz[0], sz[1], 1, sz[2]]))?;
            let dt = x.dtype();
            with_float!(dt, F => {
                let xa = arr::<F>(&x4, compute_dtype(dt))?;
                let r = nn::upsample::upsample_bilinear2d(xa.view(), &[1, size], a.bool("align_corners")?, None, sw);
                let y = back(wrap_arr(a, r)?, dt);
                t(wrap(y.reshape(&[sz[0], sz[1], size]))?)
            })
        }
        UpsampleNearest2d
        | UpsampleBilinear2d
        | UpsampleBicubic2d
        | InternalUpsampleNearestExact2d => {
            let x = a.tensor(if a.has("input") { "input" } else { "self" })?;
            let sz = x.sizes();
            if sz.len() < 2 {
                return Err(a.err("upsample: expected a 3-D or 4-D input"));
            }
            let hw = [sz[sz.len() - 2], sz[sz.len() - 1]];
            // `.vec`: output_size or scale_factors; `.default`: output_size
            // with optional per-axis scales.
            let (size, sh, sw) = if overload == "vec" {
                let scales = a.opt_floats("scale_factors")?;
                let size = a.opt_ints("output_size")?;
                wrap_arr_err(
                    a,
                    nn::upsample::resolve_output_size(
                        op.name(),
                        hw,
                        size.as_deref(),
                        scales.as_deref(),
                    ),
                )?
            } else {
                (
                    a.ints("output_size")?,
                    a.opt_float("scales_h")?,
                    a.opt_float("scales_w")?,
                )
            };
            let dt = x.dtype();
            with_float!(dt, F => {
                let xa = arr::<F>(&x, compute_dtype(dt))?;
                let r = if op == UpsampleNearest2d {
                    nn::upsample::upsample_nearest2d(xa.view(), &size, sh, sw)
                } else if op == InternalUpsampleNearestExact2d {
                    nn::upsample::upsample_nearest_exact2d(xa.view(), &size, sh, sw)
                } else if op == UpsampleBicubic2d {
                    nn::upsample::upsample_bicubic2d(xa.view(), &size, a.bool("align_corners")?, sh, sw)
                } else {
                    nn::upsample::upsample_bilinear2d(xa.view(), &size, a.bool("align_corners")?, sh, sw)
                };
                t(back(wrap_arr(a, r)?, dt))
            })
        }
        RmsNorm => {
            let x = a.tensor("input")?;
            let shape = a.ints("normalized_shape")?;
            let w = a.opt_tensor("weight")?;
            let dt = x.dtype();
            with_float!(dt, F => {
                let cd = compute_dtype(dt);
                let (xa, wa) = (arr::<F>(&x, cd)?, opt_arr::<F>(&w, cd)?);
                t(back(wrap_arr(a, nn::norm::rms_norm(xa.view(), &shape, view(&wa), a.opt_float("eps")?))?, dt))
            })
        }
        AdaptiveMaxPool2d => {
            let x = a.tensor("self")?;
            let dt = x.dtype();
            with_float!(dt, F => {
                let xa = arr::<F>(&x, compute_dtype(dt))?;
                let (v, i) = nn::pool::adaptive_max_pool2d(xa.view(), &a.ints("output_size")?).map_err(|e| a.err(e.to_string()))?;
                ts(vec![back(v, dt), Ten::from_array(i)])
            })
        }
        Im2col => {
            let x = a.tensor("self")?;
            let dt = x.dtype();
            with_float!(dt, F => {
                let xa = arr::<F>(&x, compute_dtype(dt))?;
                let r = nn::conv::im2col(xa.view(), &a.ints("kernel_size")?, &a.ints("dilation")?, &a.ints("padding")?, &a.ints("stride")?);
                t(back(wrap_arr(a, r)?, dt))
            })
        }
        AvgPool3d => {
            let x = a.tensor("self")?;
            let k = a.ints("kernel_size")?;
            let stride = a.ints("stride")?;
            let padding = a.ints("padding")?;
            let dt = x.dtype();
            with_float!(dt, F => {
                let xa = arr::<F>(&x, compute_dtype(dt))?;
                t(back(wrap_arr(a, nn::pool::avg_pool3d(xa.view(), &k, &stride, &padding, a.bool("ceil_mode")?, a.bool("count_include_pad")?, a.opt_int("divisor_override")?))?, dt))
            })
        }
        // avg_pool1d as avg_pool2d over (N, C, 1, L).
        AvgPool1d => {
            let x = a.tensor("self")?;
            let k = a.ints("kernel_size")?;
            let stride = a.ints("stride")?;
            let padding = a.ints("padding")?;
            let one_row =
                |v: &[i64], d: i64| -> Vec<i64> { vec![d, v.first().copied().unwrap_or(d)] };
            let (k2, p2) = (one_row(&k, 1), one_row(&padding, 0));
            let s2 = if stride.is_empty() {
                k2.clone()
            } else {
                one_row(&stride, 1)
            };
            let x4 = wrap(x.unsqueeze(-2))?;
            let dt = x.dtype();
            let y = with_float!(dt, F => {
                let xa = arr::<F>(&x4, compute_dtype(dt))?;
                back(wrap_arr(a, nn::pool::avg_pool2d(xa.view(), &k2, &s2, &p2, a.bool("ceil_mode")?, a.bool("count_include_pad")?, None))?, dt)
            });
            t(wrap(y.squeeze_dims(&[-2]))?)
        }
        PixelShuffle => {
            let x = a.tensor("self")?;
            let dt = x.dtype();
            with_float!(dt, F => {
                let xa = arr::<F>(&x, compute_dtype(dt))?;
                t(back(wrap_arr(a, nn::upsample::pixel_shuffle(xa.view(), a.int("upscale_factor")?))?, dt))
            })
        }
        InstanceNorm => {
            let x = a.tensor("input")?;
            let (w, b) = (a.opt_tensor("weight")?, a.opt_tensor("bias")?);
            let (rm, rv) = (a.opt_tensor("running_mean")?, a.opt_tensor("running_var")?);
            let eps = a.float("eps")?;
            let dt = x.dtype();
            with_float!(dt, F => {
                let cd = compute_dtype(dt);
                let (xa, wa, ba) = (arr::<F>(&x, cd)?, opt_arr::<F>(&w, cd)?, opt_arr::<F>(&b, cd)?);
                let (ma, va) = (opt_arr::<F>(&rm, cd)?, opt_arr::<F>(&rv, cd)?);
                let r = nn::norm::instance_norm(
                    xa.view(),
                    view(&wa),
                    view(&ba),
                    view(&ma),
                    view(&va),
                    a.bool("use_input_stats")?,
                    a.float("momentum")?,
                    eps,
                );
                t(back(wrap_arr(a, r)?, dt))
            })
        }
        Embedding => {
            let w = a.tensor("weight")?;
            let idx = a.tensor("indices")?;
            let dt = w.dtype();
            with_float!(dt, F => {
                let wa = arr::<F>(&w, compute_dtype(dt))?;
                let ia = arr::<i64>(&idx, DType::I64)?;
                t(back(wrap_arr(a, nn::linear::embedding(wa.view(), ia.view(), a.int("padding_idx")?))?, dt))
            })
        }
        ScaledDotProductAttention => {
            let (q, k, v) = (a.tensor("query")?, a.tensor("key")?, a.tensor("value")?);
            let mask = a.opt_tensor("attn_mask")?;
            let dt = q.dtype();
            with_float!(dt, F => {
                let cd = compute_dtype(dt);
                let (qa, ka, va) = (arr::<F>(&q, cd)?, arr::<F>(&k, cd)?, arr::<F>(&v, cd)?);
                let bool_mask = match &mask {
                    Some(m) if m.dtype() == DType::Bool => Some(arr::<bool>(m, DType::Bool)?),
                    _ => None,
                };
                let float_mask = match &mask {
                    Some(m) if m.dtype() != DType::Bool => Some(arr::<F>(m, cd)?),
                    _ => None,
                };
                let m = match (&bool_mask, &float_mask) {
                    (Some(b), _) => Some(nn::attention::AttnMask::Bool(b.view())),
                    (_, Some(f)) => Some(nn::attention::AttnMask::Float(f.view())),
                    _ => None,
                };
                let r = nn::attention::scaled_dot_product_attention(
                    qa.view(),
                    ka.view(),
                    va.view(),
                    m,
                    a.float("dropout_p")?,
                    a.bool("is_causal")?,
                    a.opt_float("scale")?,
                    a.bool("enable_gqa")?,
                );
                t(back(wrap_arr(a, r)?, dt))
            })
        }
        Lstm => {
            let x = a.tensor("input")?;
            let hx = a.tensors("hx")?;
            let params = a.tensors("params")?;
            let dt = x.dtype();
            with_float!(dt, F => {
                let cd = compute_dtype(dt);
                let xa = arr::<F>(&x, cd)?;
                let ha = hx.iter().map(|h| arr::<F>(h, cd)).collect::<Result<Vec<_>>>()?;
                let pa = params.iter().map(|p| arr::<F>(p, cd)).collect::<Result<Vec<_>>>()?;
                let hv: Vec<_> = ha.iter().map(|h| h.view()).collect();
                let pv: Vec<_> = pa.iter().map(|p| p.view()).collect();
                let (o, h, c) = nn::rnn::lstm(
                    xa.view(),
                    &hv,
                    &pv,
                    a.bool("has_biases")?,
                    a.int("num_layers")?,
                    a.float("dropout")?,
                    a.bool("train")?,
                    a.bool("bidirectional")?,
                    a.bool("batch_first")?,
                )
                .map_err(|e| a.err(e.to_string()))?;
                ts(vec![back(o, dt), back(h, dt), back(c, dt)])
            })
        }
        Gru | RnnTanh | RnnRelu => {
            let x = a.tensor("input")?;
            let hx = a.tensor("hx")?;
            let params = a.tensors("params")?;
            let dt = x.dtype();
            with_float!(dt, F => {
                let cd = compute_dtype(dt);
                let (xa, ha) = (arr::<F>(&x, cd)?, arr::<F>(&hx, cd)?);
                let pa = params.iter().map(|p| arr::<F>(p, cd)).collect::<Result<Vec<_>>>()?;
                let pv: Vec<_> = pa.iter().map(|p| p.view()).collect();
                let f = match op {
                    Gru => nn::rnn::gru::<F>,
                    RnnTanh => nn::rnn::rnn_tanh::<F>,
                    _ => nn::rnn::rnn_relu::<F>,
                };
                let (o, h) = f(
                    xa.view(),
                    ha.view(),
                    &pv,
                    a.bool("has_biases")?,
                    a.int("num_layers")?,
                    a.float("dropout")?,
                    a.bool("train")?,
                    a.bool("bidirectional")?,
                    a.bool("batch_first")?,
                )
                .map_err(|e| a.err(e.to_string()))?;
                ts(vec![back(o, dt), back(h, dt)])
            })
        }
        _ => eval_aten_more(a, op, overload),
    }
}

fn wrap_arr_err<T>(a: &Args<'_>, r: Result<T>) -> Result<T> {
    r.map_err(|e| a.err(e.to_string()))
}

fn wrap2(a: &Args<'_>, r: Result<(Tensor, Tensor)>) -> Result<(Tensor, Tensor)> {
    r.map_err(|e| a.err(e.to_string()))
}

fn wrap_arr<T>(a: &Args<'_>, r: Result<ArrayD<T>>) -> Result<ArrayD<T>> {
    r.map_err(|e| a.err(e.to_string()))
}

fn wrap_usize(a: &Args<'_>, r: Result<usize>) -> Result<usize> {
    r.map_err(|e| a.err(e.to_string()))
}

/// Ops whose kernels live in the shape, index, creation and linear-algebra
/// modules.
fn eval_aten_more(a: &Args<'_>, op: Aten, overload: &str) -> Result<Vec<RValue>> {
    use super::ops::{create, index, linalg, shape};
    use Aten::*;
    let wrap = |r: Result<Ten>| r.map_err(|e| a.err(e.to_string()));
    let wrap2 = |r: Result<(Ten, Ten)>| r.map_err(|e| a.err(e.to_string()));
    let wrapv = |r: Result<Vec<Ten>>| r.map_err(|e| a.err(e.to_string()));
    let dtype = a.dtype("dtype");
    match op {
        // ---- shapes ----
        Cat => t(wrap(shape::cat(&a.tensors("tensors")?, a.int("dim")?))?),
        Stack => t(wrap(shape::stack(&a.tensors("tensors")?, a.int("dim")?))?),
        Repeat => t(wrap(shape::repeat(
            &a.tensor("self")?,
            &a.ints("repeats")?,
        ))?),
        Flip => t(wrap(shape::flip(&a.tensor("self")?, &a.ints("dims")?))?),
        Roll => t(wrap(shape::roll(
            &a.tensor("self")?,
            &a.ints("shifts")?,
            &a.ints("dims")?,
        ))?),
        Tril => t(wrap(shape::tril(&a.tensor("self")?, a.int("diagonal")?))?),
        Triu => t(wrap(shape::triu(&a.tensor("self")?, a.int("diagonal")?))?),
        RepeatInterleave if a.has("self") => {
            let x = a.tensor("self")?;
            let reps = if a.is_tensor("repeats") {
                a.tensor("repeats")?.to_vec_as::<i64>()
            } else {
                vec![a.int("repeats")?]
            };
            t(wrap(shape::repeat_interleave(
                &x,
                &reps,
                a.opt_int("dim")?,
            ))?)
        }
        Pad => t(wrap(shape::pad(
            &a.tensor("self")?,
            &a.ints("pad")?,
            a.str("mode")?,
            a.opt_float("value")?,
        ))?),
        ReflectionPad1d | ReflectionPad2d | ReflectionPad3d => t(wrap(shape::pad(
            &a.tensor("self")?,
            &a.ints("padding")?,
            "reflect",
            None,
        ))?),
        ReplicationPad1d | ReplicationPad2d | ReplicationPad3d => t(wrap(shape::pad(
            &a.tensor("self")?,
            &a.ints("padding")?,
            "replicate",
            None,
        ))?),
        Einsum => {
            let eq = match a.node.arg("equation") {
                Some(crate::ir::Arg::Str(s)) => s.as_str(),
                _ => return Err(a.err("einsum: missing equation")),
            };
            t(wrap(linalg::einsum(eq, &a.tensors("tensors")?))?)
        }
        // lerp(self, end, weight) = self + weight * (end - self), computed
        // as end - (end - self) * (1 - weight) for |weight| >= 0.5, as aten does.
        Lerp => {
            let (x, end) = (a.tensor("self")?, a.tensor("end")?);
            let wt = opt_tensor_if_tensor(a, "weight")?;
            let w = operand(a, "weight", &wt)?;
            let one = Scalar::Int(1);
            let diff = wrap(ew::sub(&end, &x, one))?;
            let lo = wrap(ew::add(&x, &wrap(ew::mul(w.clone(), &diff))?, one))?;
            // A number weight stays a number (in f64): `1 - w` of two
            // numbers would otherwise be a default-dtype tensor.
            let hi = match &w {
                Operand::S(s) => ew::mul(&diff, Operand::S(Scalar::Float(1.0 - s.to_f64()))),
                Operand::T(_) => ew::mul(
                    &diff,
                    &wrap(ew::rsub(w.clone(), Operand::S(Scalar::Int(1)), one))?,
                ),
            };
            let hi = wrap(ew::sub(&end, &wrap(hi)?, one))?;
            let small = wrap(ew::lt(
                &wrap(ew::abs(&w.tensor()))?,
                Operand::S(Scalar::Float(0.5)),
            ))?;
            t(wrap(ew::where_(&small, &lo, &hi))?)
        }
        // addcmul: self + value * t1 * t2; addcdiv: self + value * t1 / t2.
        Addcmul | Addcdiv => {
            let x = a.tensor("self")?;
            let (t1, t2) = (a.tensor("tensor1")?, a.tensor("tensor2")?);
            let value = a.scalar("value")?;
            let p = wrap(if op == Addcmul {
                ew::mul(&t1, &t2)
            } else {
                ew::div(&t1, &t2, None)
            })?;
            t(wrap(ew::add(&x, &p, value))?)
        }
        // hypot(x, y) = sqrt(x^2 + y^2)
        Hypot => {
            let (x, y) = (a.tensor("self")?, a.tensor("other")?);
            let s = wrap(ew::add(
                &wrap(ew::mul(&x, &x))?,
                &wrap(ew::mul(&y, &y))?,
                Scalar::Int(1),
            ))?;
            t(wrap(ew::sqrt(&s))?)
        }
        EmbeddingBag | InternalEmbeddingBag => {
            let psw = a.opt_tensor("per_sample_weights")?;
            // `_embedding_bag` takes the padding index as is, -1 (its
            // default) for none; `embedding_bag.padding_idx` wraps it.
            let padding = match a.opt_int("padding_idx")? {
                Some(p) if op == InternalEmbeddingBag && p < 0 => None,
                p => p,
            };
            ts(wrapv(index::embedding_bag(
                &a.tensor("weight")?,
                &a.tensor("indices")?,
                a.opt_tensor("offsets")?.as_ref(),
                a.int("mode")?,
                psw.as_ref(),
                a.bool("include_last_offset")?,
                padding,
            ))?)
        }
        // (*, C, H r, W r) -> (*, C r^2, H, W), the inverse of pixel_shuffle.
        PixelUnshuffle => {
            let x = a.tensor("self")?;
            let r = a.int("downscale_factor")?;
            let sz: Vec<i64> = x.sizes().iter().map(|&d| d as i64).collect();
            let n = sz.len();
            if n < 3 || r <= 0 || sz[n - 2] % r != 0 || sz[n - 1] % r != 0 {
                return Err(a.err(format!(
                    "pixel_unshuffle: factor {r} does not fit shape {sz:?}"
                )));
            }
            let (c, h, w) = (sz[n - 3], sz[n - 2] / r, sz[n - 1] / r);
            let mut s6 = sz[..n - 3].to_vec();
            s6.extend([c, h, r, w, r]);
            let b = (n - 3) as i64;
            let mut perm: Vec<i64> = (0..b).collect();
            perm.extend([b, b + 2, b + 4, b + 1, b + 3]);
            let mut out = sz[..n - 3].to_vec();
            out.extend([c * r * r, h, w]);
            t(wrap(
                wrap(wrap(x.reshape(&s6))?.permute(&perm))?.reshape(&out),
            )?)
        }
        // cos = sum(x1 / max(|x1|, eps) * x2 / max(|x2|, eps)) over dim
        CosineSimilarity => {
            let (x1, x2) = (a.tensor("x1")?, a.tensor("x2")?);
            let dim = a.int("dim")?;
            let eps = Operand::S(Scalar::Float(a.float("eps")?));
            let unit = |x: &Ten| -> Result<Ten> {
                let n = wrap(reduce::norm(x, 2.0, Some(&[dim]), true))?;
                let n = wrap(ew::clamp(&n, Some(eps.clone()), None))?;
                wrap(ew::div(x, &n, None))
            };
            let p = wrap(ew::mul(&unit(&x1)?, &unit(&x2)?))?;
            t(wrap(reduce::sum(&p, Some(&[dim]), false, None))?)
        }
        // pairwise_distance = ||x1 - x2 + eps||_p over the last dim
        PairwiseDistance => {
            let (x1, x2) = (a.tensor("x1")?, a.tensor("x2")?);
            let d = wrap(ew::sub(&x1, &x2, Scalar::Int(1)))?;
            let d = wrap(ew::add(
                &d,
                Operand::S(Scalar::Float(a.float("eps")?)),
                Scalar::Int(1),
            ))?;
            t(wrap(reduce::norm(
                &d,
                a.float("p")?,
                Some(&[-1]),
                keepdim(a)?,
            ))?)
        }
        // cdist: out[..., i, j] = ||x1[..., i, :] - x2[..., j, :]||_p
        Cdist | InternalCdistForward => {
            let (x1, x2) = (a.tensor("x1")?, a.tensor("x2")?);
            let d = wrap(ew::sub(
                &wrap(x1.unsqueeze(-2))?,
                &wrap(x2.unsqueeze(-3))?,
                Scalar::Int(1),
            ))?;
            t(wrap(reduce::norm(&d, a.float("p")?, Some(&[-1]), false))?)
        }
        // bilinear: out[..., o] = x1[..., i] W[o, i, j] x2[..., j] + b[o]
        Bilinear => {
            let (x1, x2, w) = (
                a.tensor("input1")?,
                a.tensor("input2")?,
                a.tensor("weight")?,
            );
            let y = wrap(linalg::einsum("...i,oij,...j->...o", &[x1, w, x2]))?;
            match a.opt_tensor("bias")? {
                Some(b) => t(wrap(ew::add(&y, &b, Scalar::Int(1)))?),
                None => t(y),
            }
        }
        // (N, C, *) -> (N, g, C/g, *) -> swap the group dims -> (N, C, *)
        ChannelShuffle => {
            let x = a.tensor("self")?;
            let g = a.int("groups")?;
            let sz: Vec<i64> = x.sizes().iter().map(|&d| d as i64).collect();
            if sz.len() < 2 || g <= 0 || sz[1] % g != 0 {
                return Err(a.err(format!(
                    "channel_shuffle: {g} groups do not fit shape {sz:?}"
                )));
            }
            let mut s5 = vec![sz[0], g, sz[1] / g];
            s5.extend(&sz[2..]);
            let y = wrap(wrap(x.reshape(&s5))?.transpose(1, 2))?;
            t(wrap(y.reshape(&sz))?)
        }
        Diag => {
            let x = a.tensor("self")?;
            let k = a.int("diagonal")?;
            match x.dim() {
                1 => {
                    let n = x.sizes()[0] + k.unsigned_abs() as usize;
                    let out = Ten::zeros(x.dtype(), &[n, n]);
                    wrap(out.diagonal(k, 0, 1).and_then(|d| d.copy_(&x).map(|_| d)))?;
                    t(out)
                }
                2 => t(wrap(x.diagonal(k, 0, 1))?.clone_data()),
                _ => Err(a.err("diag: needs a 1-D or 2-D input")),
            }
        }
        // cross product over a dim of size 3 (cross: the first such dim by default).
        Cross | LinalgCross => {
            let (x, y) = (a.tensor("self")?, a.tensor("other")?);
            let bs = ew::broadcast_all(&[&x, &y]).map_err(|e| a.err(e.to_string()))?;
            let bsi: Vec<i64> = bs.iter().map(|&d| d as i64).collect();
            let (x, y) = (wrap(x.expand(&bsi))?, wrap(y.expand(&bsi))?);
            let dim = match a.opt_int("dim")? {
                Some(d) => d,
                None if op == LinalgCross => -1,
                None => bs
                    .iter()
                    .position(|&d| d == 3)
                    .map(|d| d as i64)
                    .ok_or_else(|| a.err("cross: no dim of size 3"))?,
            };
            if wrap_usize(a, x.size(dim))? != 3 {
                return Err(a.err(format!("cross: dim {dim} must have size 3")));
            }
            let c = |v: &Ten, i: i64| wrap(v.narrow(dim, i, 1));
            let term = |i: i64, j: i64| -> Result<Ten> {
                wrap(ew::sub(
                    &wrap(ew::mul(&c(&x, i)?, &c(&y, j)?))?,
                    &wrap(ew::mul(&c(&x, j)?, &c(&y, i)?))?,
                    Scalar::Int(1),
                ))
            };
            t(wrap(shape::cat(
                &[term(1, 2)?, term(2, 0)?, term(0, 1)?],
                dim,
            ))?)
        }
        // glu: first half * sigmoid(second half) along dim.
        Glu => {
            let x = a.tensor("self")?;
            let dim = a.int("dim")?;
            let n = wrap_usize(a, x.size(dim))? as i64;
            if n % 2 != 0 {
                return Err(a.err(format!("glu: dim {dim} has odd size {n}")));
            }
            let (p, q) = (
                wrap(x.narrow(dim, 0, n / 2))?,
                wrap(x.narrow(dim, n / 2, n / 2))?,
            );
            t(wrap(ew::mul(&p, &wrap(ew::sigmoid(&q))?))?)
        }
        Hardshrink => {
            let x = a.tensor("self")?;
            let l = a.float("lambd")?;
            let keep = wrap(ew::gt(&wrap(ew::abs(&x))?, Operand::S(Scalar::Float(l))))?;
            t(wrap(ew::where_(&keep, &x, Operand::S(Scalar::Int(0))))?)
        }
        Outer => {
            let x = wrap(a.tensor("self")?.unsqueeze(1))?;
            t(wrap(ew::mul(&x, &a.tensor("vec2")?))?)
        }
        // index_add: x[..., index[i], ...] += alpha * source[..., i, ...] along dim.
        IndexAdd => {
            let x = a.tensor("self")?;
            let d = wrap_usize(
                a,
                crate::interp::tensor::wrap_dim(a.int("dim")?, x.dim().max(1)),
            )?;
            let mut idx: Vec<Option<Ten>> = vec![None; d];
            idx.push(Some(a.tensor("index")?));
            let src = a.tensor("source")?;
            let src = match a.opt_scalar("alpha")? {
                Some(al) => wrap(ew::mul(&src, Operand::S(al)))?,
                None => src,
            };
            t(wrap(index::index_put(&x, &idx, &src, true))?)
        }
        // index_copy: x[..., index[i], ...] = source[..., i, ...] along dim;
        // index_fill: x[..., index[i], ...] = value.
        IndexCopy | IndexFill => {
            let x = a.tensor("self")?;
            let d = wrap_usize(
                a,
                crate::interp::tensor::wrap_dim(a.int("dim")?, x.dim().max(1)),
            )?;
            let mut idx: Vec<Option<Ten>> = vec![None; d];
            idx.push(Some(a.tensor("index")?));
            let src = if op == IndexCopy {
                a.tensor("source")?
            } else if a.is_tensor("value") {
                a.tensor("value")?.to_dtype(x.dtype())
            } else {
                wrap(create::full(&[], a.scalar("value")?, Some(x.dtype())))?
            };
            t(wrap(index::index_put(&x, &idx, &src, false))?)
        }
        // prelu: x if x > 0 else weight * x, weight over the channel dim 1.
        Prelu | InternalPreluKernel => {
            let x = a.tensor("self")?;
            let w = a.tensor("weight")?;
            let w = if w.numel() > 1 && x.dim() >= 2 {
                let mut s = vec![1i64; x.dim() - 1];
                s[0] = w.numel() as i64;
                wrap(w.reshape(&s))?
            } else {
                w
            };
            let pos = wrap(ew::gt(&x, Operand::S(Scalar::Int(0))))?;
            t(wrap(ew::where_(&pos, &x, &wrap(ew::mul(&w, &x))?))?)
        }
        // w = g * v / ||v||, the 2-norm over every dim but `dim`.
        InternalWeightNorm => {
            let (v, g) = (a.tensor("v")?, a.tensor("g")?);
            let dim = a.int("dim")?;
            let nd = v.dim() as i64;
            let dims: Vec<i64> = (0..nd)
                .filter(|&d| dim != -1 && d != dim.rem_euclid(nd.max(1)))
                .collect();
            let norm = wrap(reduce::norm(&v, 2.0, Some(&dims), true))?;
            t(wrap(ew::mul(&v, &wrap(ew::div(&g, &norm, None))?))?)
        }
        LinalgVectorNorm => {
            let x = a.tensor("self")?;
            let x = match a.dtype("dtype") {
                Some(d) => x.to_dtype(d),
                None => x,
            };
            t(wrap(reduce::norm(
                &x,
                a.float("ord")?,
                dims_arg(a, "dim")?.as_deref(),
                keepdim(a)?,
            ))?)
        }
        ConstantPadNd => t(wrap(shape::constant_pad_nd(
            &a.tensor("self")?,
            &a.ints("pad")?,
            a.opt_scalar("value")?.unwrap_or(Scalar::Float(0.0)),
        ))?),
        // ---- indexing ----
        Gather => t(wrap(index::gather(
            &a.tensor("self")?,
            a.int("dim")?,
            &a.tensor("index")?,
        ))?),
        Scatter => {
            let x = a.tensor("self")?;
            let idx = a.tensor("index")?;
            let dim = a.int("dim")?;
            let reduce = match a.node.arg("reduce") {
                Some(crate::ir::Arg::Str(s)) => Some(s.as_str()),
                _ => None,
            };
            if a.is_tensor("src") {
                let src = a.tensor("src")?;
                t(wrap(index::scatter(&x, dim, &idx, &src, reduce))?)
            } else {
                t(wrap(index::scatter(
                    &x,
                    dim,
                    &idx,
                    a.scalar("value")?,
                    reduce,
                ))?)
            }
        }
        ScatterAdd => t(wrap(index::scatter_add(
            &a.tensor("self")?,
            a.int("dim")?,
            &a.tensor("index")?,
            &a.tensor("src")?,
        ))?),
        ScatterReduce => t(wrap(index::scatter_reduce(
            &a.tensor("self")?,
            a.int("dim")?,
            &a.tensor("index")?,
            &a.tensor("src")?,
            a.str("reduce")?,
            a.bool("include_self")?,
        ))?),
        Index | InternalUnsafeIndex => t(wrap(index::index(
            &a.tensor("self")?,
            &a.opt_tensors("indices")?,
        ))?),
        IndexPut | InternalUnsafeIndexPut => t(wrap(index::index_put(
            &a.tensor("self")?,
            &a.opt_tensors("indices")?,
            &a.tensor("values")?,
            a.bool("accumulate")?,
        ))?),
        IndexSelect => t(wrap(index::index_select(
            &a.tensor("self")?,
            a.int("dim")?,
            &a.tensor("index")?,
        ))?),
        Nonzero => t(wrap(index::nonzero(&a.tensor("self")?))?),
        SelectScatter => t(wrap(index::select_scatter(
            &a.tensor("self")?,
            &a.tensor("src")?,
            a.int("dim")?,
            a.int("index")?,
        ))?),
        SliceScatter => t(wrap(index::slice_scatter(
            &a.tensor("self")?,
            &a.tensor("src")?,
            a.int("dim")?,
            a.opt_int("start")?,
            a.opt_int("end")?,
            a.int("step")?,
        ))?),
        AsStridedScatter => t(wrap(index::as_strided_scatter(
            &a.tensor("self")?,
            &a.tensor("src")?,
            &a.ints("size")?,
            &a.ints("stride")?,
            a.opt_int("storage_offset")?,
        ))?),
        DiagonalScatter => t(wrap(index::diagonal_scatter(
            &a.tensor("self")?,
            &a.tensor("src")?,
            a.int("offset")?,
            a.int("dim1")?,
            a.int("dim2")?,
        ))?),
        MaskedScatter => t(wrap(index::masked_scatter(
            &a.tensor("self")?,
            &a.tensor("mask")?,
            &a.tensor("source")?,
        ))?),
        Sort => {
            let (v, i) = wrap2(reduce::sort(
                &a.tensor("self")?,
                a.int("dim")?,
                a.bool("descending")?,
            ))?;
            ts(vec![v, i])
        }
        Argsort => t(wrap(reduce::argsort(
            &a.tensor("self")?,
            a.int("dim")?,
            a.bool("descending")?,
        ))?),
        Topk => {
            let (v, i) = wrap2(reduce::topk(
                &a.tensor("self")?,
                a.int("k")?,
                a.int("dim")?,
                a.bool("largest")?,
            ))?;
            ts(vec![v, i])
        }
        // ---- creation ----
        Arange => {
            let (start, end) = if a.has("start") {
                (a.scalar("start")?, a.scalar("end")?)
            } else {
                (Scalar::Int(0), a.scalar("end")?)
            };
            let step = a.opt_scalar("step")?.unwrap_or(Scalar::Int(1));
            t(wrap(create::arange(start, end, step, dtype))?)
        }
        Full => t(wrap(create::full(
            &a.ints("size")?,
            a.scalar("fill_value")?,
            dtype,
        ))?),
        Zeros => t(wrap(create::zeros(&a.ints("size")?, dtype))?),
        Ones => t(wrap(create::ones(&a.ints("size")?, dtype))?),
        Empty => t(wrap(create::empty(&a.ints("size")?, dtype))?),
        EmptyStrided => t(wrap(create::empty_strided(
            &a.ints("size")?,
            &a.ints("stride")?,
            dtype,
        ))?),
        FullLike => t(wrap(create::full_like(
            &a.tensor("self")?,
            a.scalar("fill_value")?,
            dtype,
        ))?),
        ZerosLike => t(wrap(create::zeros_like(&a.tensor("self")?, dtype))?),
        OnesLike => t(wrap(create::ones_like(&a.tensor("self")?, dtype))?),
        EmptyLike => t(wrap(create::empty_like(&a.tensor("self")?, dtype))?),
        NewFull => t(wrap(create::new_full(
            &a.tensor("self")?,
            &a.ints("size")?,
            a.scalar("fill_value")?,
            dtype,
        ))?),
        NewZeros => t(wrap(create::new_zeros(
            &a.tensor("self")?,
            &a.ints("size")?,
            dtype,
        ))?),
        NewOnes => t(wrap(create::new_ones(
            &a.tensor("self")?,
            &a.ints("size")?,
            dtype,
        ))?),
        NewEmpty => t(wrap(create::new_empty(
            &a.tensor("self")?,
            &a.ints("size")?,
            dtype,
        ))?),
        ScalarTensor => t(wrap(create::scalar_tensor(a.scalar("s")?, dtype))?),
        Linspace => t(wrap(create::linspace(
            a.float("start")?,
            a.float("end")?,
            a.int("steps")?,
            dtype,
        ))?),
        // ---- linear algebra ----
        Mm => t(wrap(linalg::mm(&a.tensor("self")?, &a.tensor("mat2")?))?),
        Bmm => t(wrap(linalg::bmm(&a.tensor("self")?, &a.tensor("mat2")?))?),
        Matmul => t(wrap(linalg::matmul(
            &a.tensor("self")?,
            &a.tensor("other")?,
        ))?),
        Dot => t(wrap(linalg::dot(&a.tensor("self")?, &a.tensor("tensor")?))?),
        Addmm => t(wrap(linalg::addmm(
            &a.tensor("self")?,
            &a.tensor("mat1")?,
            &a.tensor("mat2")?,
            a.float("beta")?,
            a.float("alpha")?,
        ))?),
        Baddbmm => t(wrap(linalg::baddbmm(
            &a.tensor("self")?,
            &a.tensor("batch1")?,
            &a.tensor("batch2")?,
            a.float("beta")?,
            a.float("alpha")?,
        ))?),
        Diff => {
            // diff(x, n=1, dim=-1) = x[..., 1:] - x[..., :-1], applied n times.
            let mut x = a.tensor("self")?;
            let dim = a.int("dim")?;
            let pre = a.opt_tensor("prepend")?;
            let app = a.opt_tensor("append")?;
            if pre.is_some() || app.is_some() {
                let parts: Vec<Ten> = pre
                    .into_iter()
                    .chain(std::iter::once(x))
                    .chain(app)
                    .collect();
                x = wrap(shape::cat(&parts, dim))?;
            }
            for _ in 0..a.int("n")? {
                let hi = wrap(x.slice(dim, Some(1), None, 1))?;
                let lo = wrap(x.slice(dim, None, Some(-1), 1))?;
                x = if x.dtype() == DType::Bool {
                    wrap(ew::logical_xor(&hi, &lo))?
                } else {
                    wrap(ew::sub(&hi, &lo, Scalar::Int(1)))?
                };
            }
            t(x)
        }
        _ => Err(a.err(format!("{NO_KERNEL}{}.{overload}", op.name()))),
    }
}

/// The start of the error for an op the dispatch has no arm for.
const NO_KERNEL: &str = "the interpreter has no kernel for aten.";

/// Every ATen op the dispatch above has a kernel for, found by asking it:
/// each op is dispatched on a node whose only argument (`self`) has no
/// value, so no kernel runs; an op without an arm gives the no-kernel
/// error, any other op fails reading its arguments (or succeeds).
pub fn kernel_ops() -> Vec<Aten> {
    use crate::ir::{Arg, Graph, NamedArg, Node, NodeMeta, Op, ValueType};
    let mut g = Graph::new();
    let x = g.add_value("x", ValueType::UnknownTensor);
    let env = super::eval::Env::unbound(&g);
    Aten::ALL
        .iter()
        .copied()
        .filter(|&op| {
            let node = Node {
                name: "probe".into(),
                op: Op::Aten(op, "default".into()),
                args: vec![NamedArg {
                    name: "self".into(),
                    value: Arg::Value(x),
                    kwarg: true,
                }],
                outputs: Vec::new(),
                list_output: false,
                meta: NodeMeta::default(),
            };
            match eval_aten(&Args::unbound(&node, &env, &g), op, "default") {
                Ok(_) => true,
                Err(e) => !e.to_string().contains(NO_KERNEL),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::eval::{run_graph, RValue};
    use super::Tensor;
    use crate::ir::parse::parse_program;

    /// Runs a one-output program on f32 inputs and returns the output's
    /// shape and values.
    fn run(text: &str, inputs: &[(&[f32], &[usize])]) -> (Vec<usize>, Vec<f64>) {
        let p = parse_program(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let ins = inputs
            .iter()
            .map(|(v, s)| RValue::Tensor(Tensor::from_vec(v.to_vec(), s).unwrap()))
            .collect();
        let out = run_graph(&p.graph, ins, &HashMap::new()).unwrap_or_else(|e| panic!("{e}"));
        let t = out.into_iter().next().unwrap().into_tensor().unwrap();
        (t.sizes().to_vec(), t.to_f64_vec())
    }

    #[test]
    fn min_and_max_other_are_elementwise() {
        let text = "input %x: f32[3] = user_input\ninput %y: f32[3] = user_input\n\
                    %m: f32[3] = aten.min.other(self=%x, other=%y)\n\
                    %n: f32[3] = aten.max.other(self=%m, other=%x)\n\
                    %s: f32[3] = aten.sub.Tensor(self=%n, other=%m)\n\
                    output %m = user_output\n";
        let (s, v) = run(text, &[(&[1., 5., -2.], &[3]), (&[3., 0., -4.], &[3])]);
        assert_eq!((s, v), (vec![3], vec![1., 0., -4.]));
    }

    #[test]
    fn index_copy_and_index_fill_write_along_a_dim() {
        let x: &[f32] = &[0., 1., 2., 3., 4., 5.];
        let copy = "input %x: f32[2, 3] = user_input\ninput %s: f32[2, 2] = user_input\n\
                    %i: i64[2] = aten.arange.start_step(start=0, end=-4, step=-2)\n\
                    %c: f32[2, 3] = aten.index_copy.default(self=%x, dim=1, index=%i, source=%s)\n\
                    output %c = user_output\n";
        // index = [0, -2]: a negative index counts from the end (column 1).
        let (_, v) = run(copy, &[(x, &[2, 3]), (&[10., 11., 12., 13.], &[2, 2])]);
        assert_eq!(v, vec![10., 11., 2., 12., 13., 5.]);
        let fill = "input %x: f32[2, 3] = user_input\n\
                    %i: i64[1] = aten.arange.default(end=1)\n\
                    %f: f32[2, 3] = aten.index_fill.int_Scalar(self=%x, dim=0, index=%i, value=-1.5)\n\
                    output %f = user_output\n";
        let (_, v) = run(fill, &[(x, &[2, 3])]);
        assert_eq!(v, vec![-1.5, -1.5, -1.5, 3., 4., 5.]);
    }

    #[test]
    fn inplace_dropout_in_eval_is_identity() {
        let text = "input %x: f32[2] = user_input\n\
                    %d: f32[2] = aten.dropout_.default(self=%x, p=0.5, train=false)\n\
                    output %d = user_output\n";
        assert_eq!(run(text, &[(&[1., 2.], &[2])]).1, vec![1., 2.]);
    }

    #[test]
    fn upsample_vec_overloads_resolve_scale_factors() {
        let x: &[f32] = &[1., 2., 3., 4.];
        let near = "input %x: f32[1, 1, 2, 2] = user_input\n\
                    %u: f32[1, 1, 4, 4] = aten.upsample_nearest2d.vec(input=%x, output_size=None, scale_factors=[2.0, 2.0])\n\
                    output %u = user_output\n";
        let (s, v) = run(near, &[(x, &[1, 1, 2, 2])]);
        assert_eq!(s, vec![1, 1, 4, 4]);
        assert_eq!(&v[..8], &[1., 1., 2., 2., 1., 1., 2., 2.]);
        let bil = "input %x: f32[1, 1, 2, 2] = user_input\n\
                   %u: f32[1, 1, 3, 3] = aten.upsample_bilinear2d.vec(input=%x, output_size=[3, 3], align_corners=true, scale_factors=None)\n\
                   output %u = user_output\n";
        let (s, v) = run(bil, &[(x, &[1, 1, 2, 2])]);
        assert_eq!(s, vec![1, 1, 3, 3]);
        assert_eq!(v, vec![1., 1.5, 2., 2., 2.5, 3., 3., 3.5, 4.]);
    }

    #[test]
    fn pixel_shuffle_and_pads_dispatch() {
        let ps = "input %x: f32[1, 4, 1, 1] = user_input\n\
                  %y: f32[1, 1, 2, 2] = aten.pixel_shuffle.default(self=%x, upscale_factor=2)\n\
                  output %y = user_output\n";
        assert_eq!(
            run(ps, &[(&[1., 2., 3., 4.], &[1, 4, 1, 1])]).1,
            vec![1., 2., 3., 4.]
        );
        let pad = "input %x: f32[1, 3] = user_input\n\
                   %y: f32[1, 5] = aten.pad.default(self=%x, pad=[1, 1], mode=\"reflect\")\n\
                   %z: f32[1, 7] = aten.replication_pad1d.default(self=%y, padding=[1, 1])\n\
                   output %z = user_output\n";
        assert_eq!(
            run(pad, &[(&[1., 2., 3.], &[1, 3])]).1,
            vec![2., 2., 1., 2., 3., 2., 2.]
        );
    }

    #[test]
    fn lerp_addcmul_addcdiv_prelu() {
        let text = "input %a: f32[2] = user_input\ninput %b: f32[2] = user_input\n\
                    input %w: f32[2] = user_input\n\
                    %l: f32[2] = aten.lerp.Tensor(self=%a, end=%b, weight=%w)\n\
                    output %l = user_output\n";
        let ins: [(&[f32], &[usize]); 3] = [
            (&[0., 10.], &[2]),
            (&[4., 20.], &[2]),
            (&[0.25, 0.75], &[2]),
        ];
        assert_eq!(run(text, &ins).1, vec![1., 17.5]);
        let text = "input %a: f32[2] = user_input\ninput %b: f32[2] = user_input\n\
                    input %c: f32[2] = user_input\n\
                    %m: f32[2] = aten.addcmul.default(self=%a, tensor1=%b, tensor2=%c, value=0.5)\n\
                    %d: f32[2] = aten.addcdiv.default(self=%m, tensor1=%b, tensor2=%c, value=2)\n\
                    output %d = user_output\n";
        let ins: [(&[f32], &[usize]); 3] =
            [(&[1., 1.], &[2]), (&[2., 3.], &[2]), (&[4., 2.], &[2])];
        assert_eq!(run(text, &ins).1, vec![1. + 4. + 1., 1. + 3. + 3.]);
        // prelu: one slope per channel (dim 1)
        let text = "input %x: f32[1, 2, 2] = user_input\ninput %w: f32[2] = user_input\n\
                    %p: f32[1, 2, 2] = aten.prelu.default(self=%x, weight=%w)\n\
                    output %p = user_output\n";
        let ins: [(&[f32], &[usize]); 2] =
            [(&[-1., 2., -4., 3.], &[1, 2, 2]), (&[0.5, 0.25], &[2])];
        assert_eq!(run(text, &ins).1, vec![-0.5, 2., -1., 3.]);
    }

    #[test]
    fn weight_norm_vector_norm_and_einsum_dispatch() {
        // v rows (3, 4) and (0, 2): norms 5 and 2 over dim 1.
        let text = "input %v: f32[2, 2] = user_input\ninput %g: f32[2, 1] = user_input\n\
                    %w: f32[2, 2] = aten._weight_norm.default(v=%v, g=%g, dim=0)\n\
                    output %w = user_output\n";
        let ins: [(&[f32], &[usize]); 2] = [(&[3., 4., 0., 2.], &[2, 2]), (&[10., 1.], &[2, 1])];
        assert_eq!(run(text, &ins).1, vec![6., 8., 0., 1.]);
        let text = "input %v: f32[2, 2] = user_input\n\
                    %n: f32[2] = aten.linalg_vector_norm.default(self=%v, ord=1, dim=[1])\n\
                    output %n = user_output\n";
        assert_eq!(run(text, &[(&[3., -4., 0., 2.], &[2, 2])]).1, vec![7., 2.]);
        let text = "input %a: f32[2, 2] = user_input\n\
                    %e: f32[2] = aten.einsum.default(equation=\"ij,ij->i\", tensors=[%a, %a])\n\
                    output %e = user_output\n";
        assert_eq!(run(text, &[(&[3., -4., 0., 2.], &[2, 2])]).1, vec![25., 4.]);
    }

    #[test]
    fn instance_norm_dispatches() {
        let text = "input %x: f32[1, 1, 4] = user_input\n\
                    %y: f32[1, 1, 4] = aten.instance_norm.default(input=%x, weight=None, bias=None, running_mean=None, running_var=None, use_input_stats=true, momentum=0.1, eps=0.0, cudnn_enabled=false)\n\
                    output %y = user_output\n";
        let v = run(text, &[(&[1., 2., 3., 4.], &[1, 1, 4])]).1;
        let want = [-1.3416407, -0.4472136, 0.4472136, 1.3416407];
        assert!(
            v.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-5),
            "{v:?}"
        );
    }

    #[test]
    fn selu_celu_log_sigmoid_hypot_aminmax_numpy_t() {
        let text = "input %x: f32[2] = user_input\n\
                    %y: f32[2] = aten.log_sigmoid.default(self=%x)\n\
                    output %y = user_output\n";
        let v = run(text, &[(&[0., -100.], &[2])]).1;
        assert!(
            (v[0] + std::f64::consts::LN_2).abs() < 1e-6 && (v[1] + 100.).abs() < 1e-4,
            "{v:?}"
        );
        let text = "input %x: f32[2] = user_input\n\
                    %y: f32[2] = aten.selu.default(self=%x)\n\
                    %z: f32[2] = aten.celu.default(self=%y, alpha=2.0)\n\
                    output %z = user_output\n";
        let v = run(text, &[(&[1., -1.], &[2])]).1;
        let selu_neg = 1.050_700_987_355_480_5 * 1.673_263_242_354_377_3 * ((-1f64).exp() - 1.);
        let celu = 2. * ((selu_neg / 2.).exp() - 1.);
        assert!(
            (v[0] - 1.050_700_987_355_480_5).abs() < 1e-6 && (v[1] - celu).abs() < 1e-5,
            "{v:?}"
        );
        let text = "input %x: f32[2] = user_input\ninput %y: f32[2] = user_input\n\
                    %h: f32[2] = aten.hypot.default(self=%x, other=%y)\n\
                    output %h = user_output\n";
        let ins: [(&[f32], &[usize]); 2] = [(&[3., 5.], &[2]), (&[-4., 12.], &[2])];
        assert_eq!(run(text, &ins).1, vec![5., 13.]);
        let text = "input %x: f32[2, 3] = user_input\n\
                    %t: f32[3, 2] = aten.numpy_T.default(self=%x)\n\
                    %m: f32[3], %n: f32[3] = aten.aminmax.default(self=%t, dim=1)\n\
                    %s: f32[3] = aten.sub.Tensor(self=%n, other=%m)\n\
                    output %s = user_output\n";
        let (s, v) = run(text, &[(&[1., 5., 2., 4., 0., 9.], &[2, 3])]);
        assert_eq!((s, v), (vec![3], vec![3., 5., 7.]));
    }

    #[test]
    fn batch_norm_with_batch_stats_and_no_running_stats() {
        // One channel [1, 3]: mean 2, biased var 2/3.
        let text = "input %x: f32[3, 1] = user_input\n\
                    %o: f32[3, 1], %m: f32[1], %r: f32[1] = aten._native_batch_norm_legit.no_stats(input=%x, weight=None, bias=None, training=true, momentum=0.1, eps=0.0)\n\
                    output %o = user_output\n";
        let v = run(text, &[(&[1., 2., 3.], &[3, 1])]).1;
        let s = (1.5f64).sqrt();
        assert!(
            v.iter().zip([-s, 0., s]).all(|(a, b)| (a - b).abs() < 1e-5),
            "{v:?}"
        );
        // With running stats, training would update them: still refused.
        let text = "input %x: f32[3, 1] = user_input\ninput %rm: f32[1] = user_input\n\
                    input %rv: f32[1] = user_input\n\
                    %o: f32[3, 1], %m: f32[1], %r: f32[1] = aten._native_batch_norm_legit.default(input=%x, weight=None, bias=None, running_mean=%rm, running_var=%rv, training=true, momentum=0.1, eps=0.0)\n\
                    output %o = user_output\n";
        let p = parse_program(text).unwrap();
        let ins = [
            (&[1f32, 2., 3.][..], &[3usize, 1][..]),
            (&[0f32][..], &[1usize][..]),
            (&[1f32][..], &[1usize][..]),
        ]
        .iter()
        .map(|(v, s)| RValue::Tensor(Tensor::from_vec(v.to_vec(), s).unwrap()))
        .collect();
        assert!(run_graph(&p.graph, ins, &HashMap::new()).is_err());
    }

    #[test]
    fn detach_inplace_and_repeat_interleave_dispatch() {
        let text = "input %x: f32[2] = user_input\n\
                    %c: f32[2] = aten.clone.default(self=%x)\n\
                    %d: f32[2] = aten.detach_.default(self=%c)\n\
                    %r: f32[4] = aten.repeat_interleave.self_int(self=%d, repeats=2)\n\
                    output %r = user_output\n";
        assert_eq!(run(text, &[(&[1., 2.], &[2])]).1, vec![1., 1., 2., 2.]);
    }

    #[test]
    fn glu_hardshrink_outer_index_add_avg_pool1d() {
        let text = "input %x: f32[1, 4] = user_input\n\
                    %g: f32[1, 2] = aten.glu.default(self=%x, dim=-1)\n\
                    output %g = user_output\n";
        let v = run(text, &[(&[1., 2., 0., 0.], &[1, 4])]).1;
        assert_eq!(v, vec![0.5, 1.]);
        let text = "input %x: f32[3] = user_input\n\
                    %h: f32[3] = aten.hardshrink.default(self=%x, lambd=0.5)\n\
                    %o: f32[3, 3] = aten.outer.default(self=%h, vec2=%x)\n\
                    output %o = user_output\n";
        let v = run(text, &[(&[0.25, -1., 2.], &[3])]).1;
        assert_eq!(v, vec![0., 0., 0., -0.25, 1., -2., 0.5, -2., 4.]);
        let text = "input %x: f32[2, 2] = user_input\ninput %s: f32[3, 2] = user_input\n\
                    %i: i64[3] = aten.arange.start_step(start=0, end=3, step=1, dtype=i64)\n\
                    %j: i64[3] = aten.remainder.Scalar(self=%i, other=2)\n\
                    %y: f32[2, 2] = aten.index_add.default(self=%x, dim=0, index=%j, source=%s, alpha=2)\n\
                    output %y = user_output\n";
        let ins: [(&[f32], &[usize]); 2] = [
            (&[0., 0., 1., 1.], &[2, 2]),
            (&[1., 2., 3., 4., 5., 6.], &[3, 2]),
        ];
        assert_eq!(run(text, &ins).1, vec![12., 16., 7., 9.]);
        let text = "input %x: f32[1, 1, 2, 2] = user_input\n\
                    %u: f32[1, 4, 1, 1] = aten.pixel_unshuffle.default(self=%x, downscale_factor=2)\n\
                    %s: f32[1, 1, 2, 2] = aten.pixel_shuffle.default(self=%u, upscale_factor=2)\n\
                    %d: f32[1, 1, 2, 2] = aten.mul.Tensor(self=%s, other=%x)\n\
                    output %d = user_output\n";
        assert_eq!(
            run(text, &[(&[1., 2., 3., 4.], &[1, 1, 2, 2])]).1,
            vec![1., 4., 9., 16.]
        );
        let text = "input %x: f32[1, 1, 5] = user_input\n\
                    %p: f32[1, 1, 2] = aten.avg_pool1d.default(self=%x, kernel_size=[2])\n\
                    output %p = user_output\n";
        assert_eq!(
            run(text, &[(&[1., 3., 5., 7., 9.], &[1, 1, 5])]).1,
            vec![2., 6.]
        );
    }

    #[test]
    fn channel_shuffle_diag_cross() {
        let text = "input %x: f32[1, 4, 1] = user_input\n\
                    %y: f32[1, 4, 1] = aten.channel_shuffle.default(self=%x, groups=2)\n\
                    output %y = user_output\n";
        assert_eq!(
            run(text, &[(&[1., 2., 3., 4.], &[1, 4, 1])]).1,
            vec![1., 3., 2., 4.]
        );
        let text = "input %x: f32[2] = user_input\n\
                    %m: f32[3, 3] = aten.diag.default(self=%x, diagonal=1)\n\
                    %d: f32[2] = aten.diag.default(self=%m, diagonal=1)\n\
                    %e: f32[2] = aten.mul.Tensor(self=%d, other=%x)\n\
                    output %m = user_output\n";
        assert_eq!(
            run(text, &[(&[5., 6.], &[2])]).1,
            vec![0., 5., 0., 0., 0., 6., 0., 0., 0.]
        );
        let text = "input %x: f32[3] = user_input\ninput %y: f32[3] = user_input\n\
                    %c: f32[3] = aten.cross.default(self=%x, other=%y)\n\
                    output %c = user_output\n";
        let ins: [(&[f32], &[usize]); 2] = [(&[1., 0., 0.], &[3]), (&[0., 1., 0.], &[3])];
        assert_eq!(run(text, &ins).1, vec![0., 0., 1.]);
        let text = "input %x: f32[2, 2] = user_input\ninput %y: f32[2, 2] = user_input\n\
                    %c: f32[2, 2] = aten.cdist.default(x1=%x, x2=%y, p=2.0)\n\
                    %s: f32[2] = aten.cosine_similarity.default(x1=%x, x2=%y, dim=1)\n\
                    %d: f32[2] = aten.pairwise_distance.default(x1=%x, x2=%y, p=1.0, eps=0.0)\n\
                    output %c = user_output\n";
        let ins: [(&[f32], &[usize]); 2] =
            [(&[0., 0., 3., 4.], &[2, 2]), (&[0., 0., 6., 8.], &[2, 2])];
        assert_eq!(run(text, &ins).1, vec![0., 10., 5., 5.]);
        let text = text.replace("output %c", "output %s");
        let v = run(&text, &ins).1;
        assert!(v[0].abs() < 1e-6 && (v[1] - 1.).abs() < 1e-6, "{v:?}");
        let text = text.replace("output %s", "output %d");
        assert_eq!(run(&text, &ins).1, vec![0., 7.]);
        // bilinear with W[0] = identity: x1 . x2 + b
        let text = "input %x: f32[1, 2] = user_input\ninput %w: f32[1, 2, 2] = user_input\n\
                    input %b: f32[1] = user_input\n\
                    %y: f32[1, 1] = aten.bilinear.default(input1=%x, input2=%x, weight=%w, bias=%b)\n\
                    output %y = user_output\n";
        let ins: [(&[f32], &[usize]); 3] = [
            (&[3., 4.], &[1, 2]),
            (&[1., 0., 0., 1.], &[1, 2, 2]),
            (&[0.5], &[1]),
        ];
        assert_eq!(run(text, &ins).1, vec![25.5]);
    }
}
