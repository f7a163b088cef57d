//! Broadcasting, type promotion, and the elementwise kernels.
//!
//! Binary kernels take two [`Operand`]s (a tensor or a Python number) and
//! follow torch's `result_type`: categories bool < int < float, and a Python
//! number or a 0-d tensor only raises the category, never the width.
//! Float math runs in f64 and is rounded to the result dtype; integer math runs
//! in i64 with wrapping and is cast back (torch's wraparound).

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::interp::tensor::{broadcast_shapes, dispatch_all, Element, Scalar, Tensor};

/// A binary-kernel argument: a tensor or a Python number.
#[derive(Clone, Debug)]
pub enum Operand<'a> {
    T(&'a Tensor),
    S(Scalar),
}

impl<'a> From<&'a Tensor> for Operand<'a> {
    fn from(t: &'a Tensor) -> Self {
        Operand::T(t)
    }
}
impl From<Scalar> for Operand<'_> {
    fn from(s: Scalar) -> Self {
        Operand::S(s)
    }
}
impl From<f64> for Operand<'_> {
    fn from(v: f64) -> Self {
        Operand::S(Scalar::Float(v))
    }
}
impl From<i64> for Operand<'_> {
    fn from(v: i64) -> Self {
        Operand::S(Scalar::Int(v))
    }
}
impl From<bool> for Operand<'_> {
    fn from(v: bool) -> Self {
        Operand::S(Scalar::Bool(v))
    }
}

impl Operand<'_> {
    /// The operand as a tensor (a number becomes a 0-d f64/i64/bool tensor;
    /// kernels cast it to the computation dtype).
    pub fn tensor(&self) -> Tensor {
        match self {
            Operand::T(t) => (*t).clone(),
            Operand::S(s) => {
                let dt = match s {
                    Scalar::Bool(_) => DType::Bool,
                    Scalar::Int(_) => DType::I64,
                    Scalar::Float(_) => DType::F64,
                };
                Tensor::scalar(*s, dt)
            }
        }
    }
}

fn rank(d: DType) -> u8 {
    match d {
        DType::Bool => 0,
        DType::U8 => 1,
        DType::I8 => 2,
        DType::I16 => 3,
        DType::I32 => 4,
        DType::I64 => 5,
        DType::F16 | DType::BF16 => 6,
        DType::F32 => 7,
        DType::F64 => 8,
    }
}

/// `torch.promote_types`.
pub fn promote_types(a: DType, b: DType) -> DType {
    use DType::*;
    if a == b {
        return a;
    }
    match (a, b) {
        (Bool, x) | (x, Bool) => x,
        (F16, BF16) | (BF16, F16) => F32,
        (U8, I8) | (I8, U8) => I16,
        _ => {
            if rank(a) >= rank(b) {
                a
            } else {
                b
            }
        }
    }
}

fn promote_opt(a: Option<DType>, b: Option<DType>) -> Option<DType> {
    match (a, b) {
        (Some(x), Some(y)) => Some(promote_types(x, y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn combine_categories(higher: Option<DType>, lower: Option<DType>) -> Option<DType> {
    if let Some(h) = higher {
        if h.is_float() {
            return Some(h);
        }
    }
    if higher == Some(DType::Bool) || lower.is_some_and(|l| l.is_float()) {
        return promote_opt(higher, lower);
    }
    higher.or(lower)
}

/// `torch.result_type` over several operands (f32 when there are none).
pub fn result_type(ops: &[&Operand]) -> DType {
    let (mut dim, mut zero, mut wrapped) = (None, None, None);
    for op in ops {
        match op {
            Operand::T(t) if t.dim() > 0 => dim = promote_opt(dim, Some(t.dtype())),
            Operand::T(t) => zero = promote_opt(zero, Some(t.dtype())),
            Operand::S(s) => wrapped = promote_opt(wrapped, Some(s.default_dtype())),
        }
    }
    combine_categories(dim, combine_categories(zero, wrapped)).unwrap_or(DType::F32)
}

/// The torch broadcast shape of several tensors.
pub fn broadcast_all(ts: &[&Tensor]) -> Result<Vec<usize>> {
    let mut s: Vec<usize> = Vec::new();
    for t in ts {
        s = broadcast_shapes(&s, t.sizes())?;
    }
    Ok(s)
}

/// `t` broadcast to `shape` as `T`, after a cast to the computation dtype
/// `ct` (torch casts every operand, Python numbers included, to the common
/// dtype before computing, so `f32 * 0.1` multiplies by `0.1f32`).
fn lane<T: Element>(t: &Tensor, shape: &[usize], ct: Option<DType>) -> Result<Vec<T>> {
    let b = t.broadcast_to(shape)?;
    Ok(match ct {
        Some(ct) if ct != t.dtype() && ct != T::DTYPE => {
            if t.numel() < b.numel() {
                t.to_dtype(ct).broadcast_to(shape)?.to_vec_as::<T>()
            } else {
                b.to_dtype(ct).to_vec_as::<T>()
            }
        }
        _ => b.to_vec_as::<T>(),
    })
}

fn lanes<T: Element>(
    a: &Operand,
    b: &Operand,
    ct: Option<DType>,
) -> Result<(Vec<usize>, Vec<T>, Vec<T>)> {
    let (ta, tb) = (a.tensor(), b.tensor());
    let shape = broadcast_shapes(ta.sizes(), tb.sizes())?;
    let x = lane::<T>(&ta, &shape, ct)?;
    let y = lane::<T>(&tb, &shape, ct)?;
    Ok((shape, x, y))
}

/// Float math in f64 lanes when `ct` is a float dtype, else i64 lanes; the
/// result is cast to `out`. `fi` returns `None` on integer division by zero.
fn arith(
    name: &str,
    a: &Operand,
    b: &Operand,
    ct: DType,
    out: DType,
    ff: impl Fn(f64, f64) -> f64,
    fi: impl Fn(i64, i64) -> Option<i64>,
) -> Result<Tensor> {
    if ct.is_float() {
        let (s, x, y) = lanes::<f64>(a, b, Some(ct))?;
        let v: Vec<f64> = x.iter().zip(&y).map(|(&p, &q)| ff(p, q)).collect();
        Ok(Tensor::from_vec_unchecked(v, &s).to_dtype(out))
    } else {
        let (s, x, y) = lanes::<i64>(a, b, Some(ct))?;
        let v: Option<Vec<i64>> = x.iter().zip(&y).map(|(&p, &q)| fi(p, q)).collect();
        let v = v.ok_or_else(|| Error::other(format!("{name}: integer division by zero")))?;
        Ok(Tensor::from_vec_unchecked(v, &s).to_dtype(out))
    }
}

fn compare(
    a: &Operand,
    b: &Operand,
    ff: impl Fn(f64, f64) -> bool,
    fi: impl Fn(i64, i64) -> bool,
) -> Result<Tensor> {
    let ct = result_type(&[a, b]);
    let (s, v) = if ct.is_float() {
        let (s, x, y) = lanes::<f64>(a, b, Some(ct))?;
        (s, x.iter().zip(&y).map(|(&p, &q)| ff(p, q)).collect())
    } else {
        let (s, x, y) = lanes::<i64>(a, b, Some(ct))?;
        (
            s,
            x.iter()
                .zip(&y)
                .map(|(&p, &q)| fi(p, q))
                .collect::<Vec<bool>>(),
        )
    };
    Ok(Tensor::from_vec_unchecked(v, &s))
}

macro_rules! binop_sig {
    ($(#[$m:meta])* $name:ident, $body:expr) => {
        $(#[$m])*
        pub fn $name<'a>(a: impl Into<Operand<'a>>, b: impl Into<Operand<'a>>) -> Result<Tensor> {
            let (a, b) = (a.into(), b.into());
            let f: fn(&Operand, &Operand) -> Result<Tensor> = $body;
            f(&a, &b)
        }
    };
}

/// `aten.add.Tensor` / `aten.add.Scalar`: `a + alpha * b`.
pub fn add<'a>(
    a: impl Into<Operand<'a>>,
    b: impl Into<Operand<'a>>,
    alpha: Scalar,
) -> Result<Tensor> {
    let (a, b) = (a.into(), b.into());
    let ct = result_type(&[&a, &b]);
    let (af, ai) = (alpha.to_f64(), alpha.to_i64());
    if alpha.is_float() && !ct.is_float() {
        return Err(Error::other(
            "add: a float alpha needs a float result dtype",
        ));
    }
    arith(
        "add",
        &a,
        &b,
        ct,
        ct,
        |x, y| x + af * y,
        |x, y| Some(x.wrapping_add(ai.wrapping_mul(y))),
    )
}

/// `aten.sub.Tensor` / `aten.sub.Scalar`: `a - alpha * b`.
pub fn sub<'a>(
    a: impl Into<Operand<'a>>,
    b: impl Into<Operand<'a>>,
    alpha: Scalar,
) -> Result<Tensor> {
    let (a, b) = (a.into(), b.into());
    let ct = result_type(&[&a, &b]);
    if ct == DType::Bool {
        return Err(Error::other(
            "sub: subtraction of bool tensors is not supported",
        ));
    }
    let (af, ai) = (alpha.to_f64(), alpha.to_i64());
    arith(
        "sub",
        &a,
        &b,
        ct,
        ct,
        |x, y| x - af * y,
        |x, y| Some(x.wrapping_sub(ai.wrapping_mul(y))),
    )
}

/// `aten.rsub.Tensor` / `aten.rsub.Scalar`: `b - alpha * a`.
pub fn rsub<'a>(
    a: impl Into<Operand<'a>>,
    b: impl Into<Operand<'a>>,
    alpha: Scalar,
) -> Result<Tensor> {
    sub(b, a, alpha)
}

binop_sig!(
    /// `aten.mul.Tensor` / `aten.mul.Scalar`.
    mul,
    |a, b| {
        let ct = result_type(&[a, b]);
        arith("mul", a, b, ct, ct, |x, y| x * y, |x, y| Some(x.wrapping_mul(y)))
    }
);

fn div_floor_f(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        return a / b;
    }
    let m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        div -= 1.0;
    }
    if div != 0.0 {
        let mut fl = div.floor();
        if div - fl > 0.5 {
            fl += 1.0;
        }
        fl
    } else {
        0.0f64.copysign(a / b)
    }
}

fn div_floor_i(a: i64, b: i64) -> Option<i64> {
    if b == 0 {
        return None;
    }
    let q = a.wrapping_div(b);
    if a.wrapping_rem(b) != 0 && ((a < 0) != (b < 0)) {
        Some(q - 1)
    } else {
        Some(q)
    }
}

/// `aten.div.Tensor` / `aten.div.Tensor_mode` (`None`, `"trunc"`, `"floor"`);
/// true division of integers gives f32.
pub fn div<'a>(
    a: impl Into<Operand<'a>>,
    b: impl Into<Operand<'a>>,
    rounding_mode: Option<&str>,
) -> Result<Tensor> {
    let (a, b) = (a.into(), b.into());
    let ct = result_type(&[&a, &b]);
    match rounding_mode {
        None => {
            let ct = if ct.is_float() { ct } else { DType::F32 };
            arith("div", &a, &b, ct, ct, |x, y| x / y, |_, _| None)
        }
        Some("trunc") => arith(
            "div",
            &a,
            &b,
            ct,
            ct,
            |x, y| (x / y).trunc(),
            |x, y| {
                if y == 0 {
                    None
                } else {
                    Some(x.wrapping_div(y))
                }
            },
        ),
        Some("floor") => arith("div", &a, &b, ct, ct, div_floor_f, div_floor_i),
        Some(m) => Err(Error::other(format!("div: unknown rounding mode {m:?}"))),
    }
}

binop_sig!(
    /// `aten.floor_divide`.
    floor_divide,
    |a, b| {
        let ct = result_type(&[a, b]);
        arith("floor_divide", a, b, ct, ct, div_floor_f, div_floor_i)
    }
);

binop_sig!(
    /// `aten.remainder.Tensor` / `.Scalar`: the result has the divisor's sign.
    remainder,
    |a, b| {
        let ct = result_type(&[a, b]);
        arith(
            "remainder",
            a,
            b,
            ct,
            ct,
            |x, y| {
                let m = x % y;
                if m != 0.0 && ((m < 0.0) != (y < 0.0)) {
                    m + y
                } else {
                    m
                }
            },
            |x, y| {
                if y == 0 {
                    return None;
                }
                let m = x.wrapping_rem(y);
                Some(if m != 0 && ((m < 0) != (y < 0)) { m + y } else { m })
            },
        )
    }
);

binop_sig!(
    /// `aten.fmod.Tensor` / `.Scalar`: the result has the dividend's sign.
    fmod,
    |a, b| {
        let ct = result_type(&[a, b]);
        arith("fmod", a, b, ct, ct, |x, y| x % y, |x, y| {
            if y == 0 {
                None
            } else {
                Some(x.wrapping_rem(y))
            }
        })
    }
);

fn ipow(a: i64, b: i64) -> i64 {
    if b < 0 {
        match a {
            1 => 1,
            -1 => {
                if b % 2 == 0 {
                    1
                } else {
                    -1
                }
            }
            _ => 0,
        }
    } else {
        a.wrapping_pow(b.min(u32::MAX as i64) as u32)
    }
}

binop_sig!(
    /// `aten.pow.Tensor_Tensor` / `.Tensor_Scalar` / `.Scalar`.
    pow,
    |a, b| {
        let ct = result_type(&[a, b]);
        arith("pow", a, b, ct, ct, f64::powf, |x, y| Some(ipow(x, y)))
    }
);

binop_sig!(
    /// `aten.maximum` (NaN-propagating).
    maximum,
    |a, b| {
        let ct = result_type(&[a, b]);
        arith(
            "maximum",
            a,
            b,
            ct,
            ct,
            |x, y| if x.is_nan() || y.is_nan() { f64::NAN } else { x.max(y) },
            |x, y| Some(x.max(y)),
        )
    }
);

binop_sig!(
    /// `aten.minimum` (NaN-propagating).
    minimum,
    |a, b| {
        let ct = result_type(&[a, b]);
        arith(
            "minimum",
            a,
            b,
            ct,
            ct,
            |x, y| if x.is_nan() || y.is_nan() { f64::NAN } else { x.min(y) },
            |x, y| Some(x.min(y)),
        )
    }
);

binop_sig!(
    /// `aten.atan2` (integers give f32).
    atan2,
    |a, b| {
        let ct = result_type(&[a, b]);
        let ct = if ct.is_float() { ct } else { DType::F32 };
        arith("atan2", a, b, ct, ct, f64::atan2, |_, _| None)
    }
);

binop_sig!(
    /// `aten.eq.Tensor` / `.Scalar`.
    eq,
    |a, b| compare(a, b, |x, y| x == y, |x, y| x == y)
);
binop_sig!(
    /// `aten.ne.Tensor` / `.Scalar`.
    ne,
    |a, b| compare(a, b, |x, y| x != y, |x, y| x != y)
);
binop_sig!(
    /// `aten.lt.Tensor` / `.Scalar`.
    lt,
    |a, b| compare(a, b, |x, y| x < y, |x, y| x < y)
);
binop_sig!(
    /// `aten.le.Tensor` / `.Scalar`.
    le,
    |a, b| compare(a, b, |x, y| x <= y, |x, y| x <= y)
);
binop_sig!(
    /// `aten.gt.Tensor` / `.Scalar`.
    gt,
    |a, b| compare(a, b, |x, y| x > y, |x, y| x > y)
);
binop_sig!(
    /// `aten.ge.Tensor` / `.Scalar`.
    ge,
    |a, b| compare(a, b, |x, y| x >= y, |x, y| x >= y)
);

fn bitwise(name: &str, a: &Operand, b: &Operand, f: impl Fn(i64, i64) -> i64) -> Result<Tensor> {
    let ct = result_type(&[a, b]);
    if ct.is_float() {
        return Err(Error::other(format!(
            "{name}: not defined for float dtype {ct}"
        )));
    }
    arith(name, a, b, ct, ct, |_, _| 0.0, |x, y| Some(f(x, y)))
}

binop_sig!(
    /// `aten.bitwise_and.Tensor` / `.Scalar` (bool and integer dtypes).
    bitwise_and,
    |a, b| bitwise("bitwise_and", a, b, |x, y| x & y)
);
binop_sig!(
    /// `aten.bitwise_or.Tensor` / `.Scalar` (bool and integer dtypes).
    bitwise_or,
    |a, b| bitwise("bitwise_or", a, b, |x, y| x | y)
);
binop_sig!(
    /// `aten.bitwise_xor.Tensor` / `.Scalar` (bool and integer dtypes).
    bitwise_xor,
    |a, b| bitwise("bitwise_xor", a, b, |x, y| x ^ y)
);

fn logical(a: &Operand, b: &Operand, f: impl Fn(bool, bool) -> bool) -> Result<Tensor> {
    let (s, x, y) = lanes::<bool>(a, b, None)?;
    let v: Vec<bool> = x.iter().zip(&y).map(|(&p, &q)| f(p, q)).collect();
    Ok(Tensor::from_vec_unchecked(v, &s))
}

binop_sig!(
    /// `aten.logical_and`.
    logical_and,
    |a, b| logical(a, b, |x, y| x && y)
);
binop_sig!(
    /// `aten.logical_or`.
    logical_or,
    |a, b| logical(a, b, |x, y| x || y)
);
binop_sig!(
    /// `aten.logical_xor`.
    logical_xor,
    |a, b| logical(a, b, |x, y| x != y)
);

// ------------------------------------------------------------------ unary

/// Float function of a tensor; integer/bool inputs give f32.
fn unary_float(x: &Tensor, f: impl Fn(f64) -> f64) -> Result<Tensor> {
    let out = if x.dtype().is_float() {
        x.dtype()
    } else {
        DType::F32
    };
    if out == DType::F32 {
        let v: Vec<f32> = x
            .to_vec_as::<f32>()
            .into_iter()
            .map(|a| f(a as f64) as f32)
            .collect();
        return Ok(Tensor::from_vec_unchecked(v, x.sizes()));
    }
    let v: Vec<f64> = x.to_vec_as::<f64>().into_iter().map(f).collect();
    Ok(Tensor::from_vec_unchecked(v, x.sizes()).to_dtype(out))
}

/// Dtype-preserving function: `ff` for floats, `fi` (in i64) for integers
/// and bool.
fn unary_keep(x: &Tensor, ff: impl Fn(f64) -> f64, fi: impl Fn(i64) -> i64) -> Result<Tensor> {
    if x.dtype().is_float() {
        return unary_float(x, ff);
    }
    let v: Vec<i64> = x.to_vec_as::<i64>().into_iter().map(fi).collect();
    Ok(Tensor::from_vec_unchecked(v, x.sizes()).to_dtype(x.dtype()))
}

fn float_only(name: &str, x: &Tensor) -> Result<()> {
    if x.dtype().is_float() {
        Ok(())
    } else {
        Err(Error::other(format!(
            "{name}: expects a float tensor, got {}",
            x.dtype()
        )))
    }
}

macro_rules! unary_float_ops {
    ($($(#[$m:meta])* $name:ident = $f:expr;)*) => {
        $(
            $(#[$m])*
            pub fn $name(x: &Tensor) -> Result<Tensor> {
                unary_float(x, $f)
            }
        )*
    };
}

fn sigmoid_f(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

fn softplus_f(v: f64, beta: f64, threshold: f64) -> f64 {
    if v * beta > threshold {
        v
    } else {
        (v * beta).exp().ln_1p() / beta
    }
}

/// The error function, accurate to about 1e-16 (libm's `erf`).
pub fn erf_f64(v: f64) -> f64 {
    libm::erf(v)
}

unary_float_ops! {
    /// `aten.exp`.
    exp = f64::exp;
    /// `aten.expm1`.
    expm1 = f64::exp_m1;
    /// `aten.log`.
    log = f64::ln;
    /// `aten.log1p`.
    log1p = f64::ln_1p;
    /// `aten.log2`.
    log2 = f64::log2;
    /// `aten.sqrt`.
    sqrt = f64::sqrt;
    /// `aten.rsqrt`.
    rsqrt = |v: f64| 1.0 / v.sqrt();
    /// `aten.reciprocal`.
    reciprocal = |v: f64| 1.0 / v;
    /// `aten.sin`.
    sin = f64::sin;
    /// `aten.cos`.
    cos = f64::cos;
    /// `aten.tan`.
    tan = f64::tan;
    /// `aten.tanh`.
    tanh = f64::tanh;
    /// `aten.sigmoid`.
    sigmoid = sigmoid_f;
    /// `aten.erf`.
    erf = erf_f64;
    /// `aten.silu`.
    silu = |v: f64| v * sigmoid_f(v);
    /// `aten.mish`.
    mish = |v: f64| v * softplus_f(v, 1.0, 20.0).tanh();
    /// `aten.hardsigmoid`.
    hardsigmoid = |v: f64| (v + 3.0).clamp(0.0, 6.0) / 6.0;
    /// `aten.hardswish`.
    hardswish = |v: f64| v * (v + 3.0).clamp(0.0, 6.0) / 6.0;
    /// `aten.log10`.
    log10 = f64::log10;
    /// `aten.exp2`.
    exp2 = f64::exp2;
    /// `aten.asin`.
    asin = f64::asin;
    /// `aten.acos`.
    acos = f64::acos;
    /// `aten.atan`.
    atan = f64::atan;
    /// `aten.sinh`.
    sinh = f64::sinh;
    /// `aten.cosh`.
    cosh = f64::cosh;
    /// `aten.asinh`.
    asinh = f64::asinh;
    /// `aten.acosh`.
    acosh = f64::acosh;
    /// `aten.atanh`.
    atanh = f64::atanh;
    /// `aten.erfc`.
    erfc = libm::erfc;
}

fn float_predicate(x: &Tensor, f: impl Fn(f64) -> bool, int_value: bool) -> Result<Tensor> {
    let v: Vec<bool> = if x.dtype().is_float() {
        x.to_vec_as::<f64>().into_iter().map(f).collect()
    } else {
        vec![int_value; x.numel()]
    };
    Ok(Tensor::from_vec_unchecked(v, x.sizes()))
}

/// `aten.isinf`.
pub fn isinf(x: &Tensor) -> Result<Tensor> {
    float_predicate(x, f64::is_infinite, false)
}

/// `aten.isfinite`.
pub fn isfinite(x: &Tensor) -> Result<Tensor> {
    float_predicate(x, f64::is_finite, true)
}

/// `aten.square`.
pub fn square(x: &Tensor) -> Result<Tensor> {
    let x = if x.dtype() == DType::Bool {
        x.to_dtype(DType::I64)
    } else {
        x.clone()
    };
    mul(&x, &x)
}

/// `aten.clamp_min` / `aten.clamp_min.Tensor`.
pub fn clamp_min<'a>(x: &Tensor, min: impl Into<Operand<'a>>) -> Result<Tensor> {
    clamp(x, Some(min.into()), None)
}

/// `aten.clamp_max` / `aten.clamp_max.Tensor`.
pub fn clamp_max<'a>(x: &Tensor, max: impl Into<Operand<'a>>) -> Result<Tensor> {
    clamp(x, None, Some(max.into()))
}

/// `aten.gelu` with `approximate` = `"none"` (erf form) or `"tanh"`.
pub fn gelu(x: &Tensor, approximate: &str) -> Result<Tensor> {
    match approximate {
        "none" => unary_float(x, |v| {
            0.5 * v * (1.0 + erf_f64(v * std::f64::consts::FRAC_1_SQRT_2))
        }),
        "tanh" => {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            unary_float(x, move |v| {
                0.5 * v * (1.0 + (k * (v + 0.044715 * v * v * v)).tanh())
            })
        }
        m => Err(Error::other(format!("gelu: unknown approximation {m:?}"))),
    }
}

/// `aten.softplus(x, beta, threshold)`.
pub fn softplus(x: &Tensor, beta: f64, threshold: f64) -> Result<Tensor> {
    unary_float(x, move |v| softplus_f(v, beta, threshold))
}

/// `aten.elu(x, alpha, scale, input_scale)`.
pub fn elu(x: &Tensor, alpha: f64, scale: f64, input_scale: f64) -> Result<Tensor> {
    float_only("elu", x)?;
    unary_float(x, move |v| {
        if v > 0.0 {
            scale * v
        } else {
            scale * alpha * ((v * input_scale).exp() - 1.0)
        }
    })
}

/// `aten.leaky_relu(x, negative_slope)`.
pub fn leaky_relu(x: &Tensor, negative_slope: f64) -> Result<Tensor> {
    float_only("leaky_relu", x)?;
    unary_float(x, move |v| if v > 0.0 { v } else { v * negative_slope })
}

/// `aten.neg`.
pub fn neg(x: &Tensor) -> Result<Tensor> {
    if x.dtype() == DType::Bool {
        return Err(Error::other("neg: not defined for bool tensors"));
    }
    unary_keep(x, |v| -v, |v| v.wrapping_neg())
}

/// `aten.abs`.
pub fn abs(x: &Tensor) -> Result<Tensor> {
    unary_keep(x, f64::abs, |v| v.wrapping_abs())
}

/// `aten.relu`.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    unary_keep(
        x,
        |v| {
            if v > 0.0 || v.is_nan() {
                v
            } else {
                0.0
            }
        },
        |v| v.max(0),
    )
}

/// `aten.hardtanh(x, min, max)` (also `relu6` with 0, 6).
pub fn hardtanh(x: &Tensor, min: f64, max: f64) -> Result<Tensor> {
    unary_keep(
        x,
        move |v| {
            if v < min {
                min
            } else if v > max {
                max
            } else {
                v
            }
        },
        move |v| v.clamp(min as i64, (max as i64).max(min as i64)),
    )
}

/// `aten.relu6`.
pub fn relu6(x: &Tensor) -> Result<Tensor> {
    hardtanh(x, 0.0, 6.0)
}

/// `aten.sign`.
pub fn sign(x: &Tensor) -> Result<Tensor> {
    unary_keep(
        x,
        |v| ((v > 0.0) as i64 - (v < 0.0) as i64) as f64,
        i64::signum,
    )
}

/// `aten.floor`.
pub fn floor(x: &Tensor) -> Result<Tensor> {
    unary_keep(x, f64::floor, |v| v)
}

/// `aten.ceil`.
pub fn ceil(x: &Tensor) -> Result<Tensor> {
    unary_keep(x, f64::ceil, |v| v)
}

/// `aten.round` (half to even).
pub fn round(x: &Tensor) -> Result<Tensor> {
    unary_keep(x, f64::round_ties_even, |v| v)
}

/// `aten.round.decimals`.
pub fn round_decimals(x: &Tensor, decimals: i64) -> Result<Tensor> {
    let s = 10f64.powi(decimals.clamp(-300, 300) as i32);
    unary_keep(x, move |v| (v * s).round_ties_even() / s, |v| v)
}

/// `aten.trunc`.
pub fn trunc(x: &Tensor) -> Result<Tensor> {
    unary_keep(x, f64::trunc, |v| v)
}

/// `aten.frac`.
pub fn frac(x: &Tensor) -> Result<Tensor> {
    float_only("frac", x)?;
    unary_float(x, |v| v - v.trunc())
}

/// `aten.bitwise_not` (bool and integer dtypes).
pub fn bitwise_not(x: &Tensor) -> Result<Tensor> {
    if x.dtype().is_float() {
        return Err(Error::other("bitwise_not: not defined for float tensors"));
    }
    if x.dtype() == DType::Bool {
        return logical_not(x);
    }
    unary_keep(x, |v| v, |v| !v)
}

/// `aten.logical_not`.
pub fn logical_not(x: &Tensor) -> Result<Tensor> {
    let v: Vec<bool> = x.to_vec_as::<bool>().into_iter().map(|b| !b).collect();
    Ok(Tensor::from_vec_unchecked(v, x.sizes()))
}

/// `aten.isnan`.
pub fn isnan(x: &Tensor) -> Result<Tensor> {
    float_predicate(x, f64::is_nan, false)
}

/// `aten.clamp` / `aten.clamp.Tensor` / `clamp_min` / `clamp_max`: bounds are
/// optional tensors or numbers; the dtype is the promotion of all three.
pub fn clamp(x: &Tensor, min: Option<Operand>, max: Option<Operand>) -> Result<Tensor> {
    if min.is_none() && max.is_none() {
        return Err(Error::other(
            "clamp: at least one of min and max must be given",
        ));
    }
    let xo = Operand::T(x);
    let mut ops = vec![&xo];
    if let Some(m) = &min {
        ops.push(m);
    }
    if let Some(m) = &max {
        ops.push(m);
    }
    let ct = result_type(&ops);
    let (lo, hi) = (
        min.as_ref().map(|o| o.tensor()),
        max.as_ref().map(|o| o.tensor()),
    );
    let mut ts = vec![x];
    ts.extend(lo.iter());
    ts.extend(hi.iter());
    let shape = broadcast_all(&ts)?;
    if ct.is_float() {
        let xv = lane::<f64>(x, &shape, Some(ct))?;
        let lv = match &lo {
            Some(t) => lane::<f64>(t, &shape, Some(ct))?,
            None => vec![f64::NEG_INFINITY; xv.len()],
        };
        let hv = match &hi {
            Some(t) => lane::<f64>(t, &shape, Some(ct))?,
            None => vec![f64::INFINITY; xv.len()],
        };
        let v: Vec<f64> = (0..xv.len())
            .map(|i| {
                let (v, l, h) = (xv[i], lv[i], hv[i]);
                if v.is_nan() || l.is_nan() || h.is_nan() {
                    f64::NAN
                } else {
                    v.max(l).min(h)
                }
            })
            .collect();
        Ok(Tensor::from_vec_unchecked(v, &shape).to_dtype(ct))
    } else {
        let xv = lane::<i64>(x, &shape, Some(ct))?;
        let lv = match &lo {
            Some(t) => lane::<i64>(t, &shape, Some(ct))?,
            None => vec![i64::MIN; xv.len()],
        };
        let hv = match &hi {
            Some(t) => lane::<i64>(t, &shape, Some(ct))?,
            None => vec![i64::MAX; xv.len()],
        };
        let v: Vec<i64> = (0..xv.len()).map(|i| xv[i].max(lv[i]).min(hv[i])).collect();
        Ok(Tensor::from_vec_unchecked(v, &shape).to_dtype(ct))
    }
}

/// `aten.where.self` / `.ScalarSelf` / `.ScalarOther` / `.Scalar`.
pub fn where_<'a>(
    cond: &Tensor,
    a: impl Into<Operand<'a>>,
    b: impl Into<Operand<'a>>,
) -> Result<Tensor> {
    let (a, b) = (a.into(), b.into());
    let ct = result_type(&[&a, &b]);
    let (ta, tb) = (a.tensor(), b.tensor());
    let shape = broadcast_all(&[cond, &ta, &tb])?;
    let c = lane::<bool>(cond, &shape, None)?;
    dispatch_all!(ct, T, {
        let x = lane::<T>(&ta, &shape, None)?;
        let y = lane::<T>(&tb, &shape, None)?;
        let v: Vec<T> = (0..c.len())
            .map(|i| if c[i] { x[i] } else { y[i] })
            .collect();
        Ok(Tensor::from_vec_unchecked(v, &shape))
    })
}

/// `aten.masked_fill.Scalar` / `.Tensor` (the value must be one element).
pub fn masked_fill<'a>(x: &Tensor, mask: &Tensor, value: impl Into<Operand<'a>>) -> Result<Tensor> {
    if mask.dtype() != DType::Bool {
        return Err(Error::other(format!(
            "masked_fill: mask must be bool, got {}",
            mask.dtype()
        )));
    }
    let value = value.into().tensor();
    if value.numel() != 1 || value.dim() > 0 {
        return Err(Error::other(
            "masked_fill: the value must be a 0-d tensor or a number",
        ));
    }
    Ok(where_(mask, &value, x)?.to_dtype(x.dtype()))
}

/// `aten._to_copy` / `aten.to.dtype`: always a fresh copy in `dtype`.
pub fn to_copy(x: &Tensor, dtype: DType) -> Result<Tensor> {
    if x.dtype() == dtype {
        Ok(x.clone_data())
    } else {
        Ok(x.to_dtype(dtype))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: &[f32], s: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), s).unwrap()
    }
    fn i(v: &[i64], s: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), s).unwrap()
    }

    #[test]
    fn promotion_table() {
        let xi = i(&[1, 2], &[2]);
        let xf = f(&[1., 2.], &[2]);
        let x32 = Tensor::from_vec(vec![1i32, 2], &[2]).unwrap();
        let r = add(&xi, 1.5, Scalar::Int(1)).unwrap();
        assert_eq!(r.dtype(), DType::F32);
        assert_eq!(r.to_f64_vec(), vec![2.5, 3.5]);
        assert_eq!(
            add(&xf, Scalar::Float(1e-300), Scalar::Int(1))
                .unwrap()
                .dtype(),
            DType::F32
        );
        assert_eq!(add(&x32, &xi, Scalar::Int(1)).unwrap().dtype(), DType::I64);
        assert_eq!(add(&x32, 7i64, Scalar::Int(1)).unwrap().dtype(), DType::I32);
        let z64 = Tensor::scalar_f64(2.0, DType::F64);
        assert_eq!(mul(&xf, &z64).unwrap().dtype(), DType::F32);
        assert_eq!(mul(&x32, &z64).unwrap().dtype(), DType::F64);
        assert_eq!(promote_types(DType::U8, DType::I8), DType::I16);
        assert_eq!(promote_types(DType::F16, DType::BF16), DType::F32);
        let b = Tensor::from_vec(vec![true, false], &[2]).unwrap();
        assert_eq!(add(&b, &b, Scalar::Int(1)).unwrap().dtype(), DType::Bool);
        assert_eq!(add(&b, 1i64, Scalar::Int(1)).unwrap().dtype(), DType::I64);
        assert_eq!(div(&xi, 2i64, None).unwrap().to_f64_vec(), vec![0.5, 1.0]);
        assert_eq!(div(&xi, 2i64, None).unwrap().dtype(), DType::F32);
        // Numbers are cast to the computation dtype first, as torch does.
        let p = mul(&f(&[0.1], &[1]), 0.1).unwrap().item_f64().unwrap();
        assert_eq!(p as f32, 0.1f32 * 0.1f32);
        let u = Tensor::from_vec(vec![1u8], &[1]).unwrap();
        assert_eq!(lt(&u, -1i64).unwrap().to_bool_vec(), vec![true]);
    }

    #[test]
    fn broadcasting_shapes() {
        let a = f(&[1., 2., 3.], &[3, 1]);
        let b = f(&[10., 20.], &[2]);
        let r = add(&a, &b, Scalar::Int(1)).unwrap();
        assert_eq!(r.sizes(), &[3, 2]);
        assert_eq!(r.to_f64_vec(), vec![11., 21., 12., 22., 13., 23.]);
        let c = f(&[1., 2., 3.], &[3]);
        assert!(add(&c, &b, Scalar::Int(1)).is_err());
        let s = sub(&a, &b, Scalar::Int(2)).unwrap();
        assert_eq!(s.to_f64_vec()[0], -19.0);
    }

    #[test]
    fn remainder_and_division_signs() {
        let a = i(&[-7, 7, -7, 7], &[4]);
        let b = i(&[3, -3, -3, 3], &[4]);
        assert_eq!(remainder(&a, &b).unwrap().to_i64_vec(), vec![2, -2, -1, 1]);
        assert_eq!(fmod(&a, &b).unwrap().to_i64_vec(), vec![-1, 1, -1, 1]);
        assert_eq!(
            div(&a, &b, Some("floor")).unwrap().to_i64_vec(),
            vec![-3, -3, 2, 2]
        );
        assert_eq!(
            div(&a, &b, Some("trunc")).unwrap().to_i64_vec(),
            vec![-2, -2, 2, 2]
        );
        let af = f(&[-7.5, 7.5], &[2]);
        assert_eq!(remainder(&af, 2.0).unwrap().to_f64_vec(), vec![0.5, 1.5]);
        assert_eq!(
            floor_divide(&af, 2.0).unwrap().to_f64_vec(),
            vec![-4.0, 3.0]
        );
        assert!(div(&a, 0i64, Some("floor")).is_err());
        assert!(remainder(&a, 0i64).is_err());
    }

    #[test]
    fn unary_values() {
        let x = f(&[-1.0, 0.0, 0.5, 2.5], &[4]);
        assert_eq!(relu(&x).unwrap().to_f64_vec(), vec![0., 0., 0.5, 2.5]);
        assert_eq!(round(&x).unwrap().to_f64_vec(), vec![-1., 0., 0., 2.]);
        let g = gelu(&f(&[1.0], &[1]), "none").unwrap().item_f64().unwrap();
        assert!((g - 0.841_344_746).abs() < 1e-6);
        assert!((erf_f64(0.5) - 0.520_499_877_813_046_5).abs() < 1e-15);
        assert_eq!(exp(&i(&[0], &[1])).unwrap().dtype(), DType::F32);
        assert_eq!(abs(&i(&[-3], &[1])).unwrap().to_i64_vec(), vec![3]);
        let g = f(&[f32::INFINITY, f32::NAN, 1.0], &[3]);
        assert_eq!(isinf(&g).unwrap().to_bool_vec(), vec![true, false, false]);
        assert_eq!(
            isfinite(&g).unwrap().to_bool_vec(),
            vec![false, false, true]
        );
        assert_eq!(
            clamp_min(&x, 0.25).unwrap().to_f64_vec(),
            vec![0.25, 0.25, 0.5, 2.5]
        );
        assert_eq!(sign(&x).unwrap().to_f64_vec(), vec![-1., 0., 1., 1.]);
        let c = clamp(&x, Some(0.0.into()), Some(1.0.into())).unwrap();
        assert_eq!(c.to_f64_vec(), vec![0., 0., 0.5, 1.]);
        assert_eq!(
            pow(&i(&[2, 3], &[2]), 2i64).unwrap().to_i64_vec(),
            vec![4, 9]
        );
        assert_eq!(
            pow(2.0, &x).unwrap().to_f64_vec()[3],
            2f64.powf(2.5) as f32 as f64
        );
    }

    #[test]
    fn where_and_masked_fill() {
        let m = Tensor::from_vec(vec![true, false, true], &[3]).unwrap();
        let x = f(&[1., 2., 3.], &[3]);
        assert_eq!(where_(&m, &x, 0.0).unwrap().to_f64_vec(), vec![1., 0., 3.]);
        let r = masked_fill(&x, &m, -1.0).unwrap();
        assert_eq!(r.dtype(), DType::F32);
        assert_eq!(r.to_f64_vec(), vec![-1., 2., -1.]);
        assert_eq!(gt(&x, 1.5).unwrap().to_bool_vec(), vec![false, true, true]);
        assert!(bitwise_and(&x, &x).is_err());
    }
}
