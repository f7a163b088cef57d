//! Inline polynomial approximations of transcendental functions, emitted as CLIF.
//!
//! [`emit`] expands `f(x)` for an `F32` or `F32X4` value into straight-line code:
//! no branches and no calls, so the expansion can sit inside vectorized loop bodies.
//! Every lane is computed with the same instruction sequence; special cases are
//! handled with compares and selects (`select` for scalars, `bitselect` for vectors).
//!
//! The code uses only `fadd`, `fsub`, `fmul`, `fdiv`, `fma`, `fmin`, `fmax`, `fabs`,
//! `fneg`, `fcmp`, `select`/`bitselect`, `bitcast`, `fcvt_from_sint`, `splat` and
//! integer `iadd`/`isub`/`band`/`bor`/`bxor`/`ishl`/`sshr` on `I32`/`I32X4` (`fcopysign`
//! is not lowered for `F32X4`, so sign copies are done on the bits). `fma` lowers to
//! `vfmadd` when the ISA has `has_avx` and `has_fma`; without FMA Cranelift would lower
//! `fma` to a libcall, so the "no calls" property assumes an FMA-capable target.
//!
//! # Methods
//!
//! Integers are produced from floats without `fcvt_to_sint`: `s = fma(x, c, 1.5 * 2^23)`
//! rounds `x * c` to the nearest integer `k` inside the mantissa of `s`, so
//! `s - 1.5 * 2^23` is `k` as a float and `bits(s) - bits(1.5 * 2^23)` is `k` as an
//! integer (valid while `|k| < 2^22`). Powers of two `2^k` are built as
//! `bits = (k + 127) << 23`.
//!
//! * **exp**: `x` is clamped to `[-104, 89]` (outside, the result is 0 or +inf anyway),
//!   `k = round(x / ln 2)`, `r = x - k ln 2` with a two-constant Cody-Waite split of
//!   `ln 2` (`|r| <= ln(2) / 2`). `expm1(r)` is the Taylor polynomial
//!   `r + r^2 (1/2! + r/3! + ... + r^6/8!)` (truncation error below `2^-30` relative);
//!   `exp(x) = fma(2^k1, expm1(r), 2^k1) * 2^k2` with `k1 = k >> 1`, `k2 = k - k1`, so
//!   results that overflow give +inf and subnormal results are rounded once.
//! * **expm1**: same reduction with `x` clamped to `[-30, 89]`;
//!   `expm1(x) = 2 * fma(2^(k-1), expm1(r), 2^(k-1) - 1/2)`. For `k = 0` this is exactly
//!   the polynomial, so the result is accurate near 0; the sign of the result is
//!   copied from `x` (keeps `expm1(-0) = -0`).
//! * **log**: subnormal inputs are scaled by `2^23` first. The bits of `x` are split as
//!   `x = m * 2^e` with `m` in `[sqrt(1/2), sqrt(2))` by integer arithmetic on
//!   `bits(x) - bits(sqrt(1/2))`. With `f = m - 1` (exact),
//!   `log(x) = e ln2_hi + (f - f^2/2 + f^3 P(f) + e ln2_lo)`, where `P` has the degree-8
//!   minimax coefficients of the Cephes single-precision logarithm. `log(0) = -inf`,
//!   `log(x < 0) = NaN`, `log(+inf) = +inf`, `log(NaN) = NaN` via selects.
//! * **log1p**: `u = 1 + x`, then `log(u)` as above plus the first-order correction
//!   `(x - (u - 1)) / u`; the numerator is the exact rounding error of `1 + x`. The sign
//!   of the result is copied from `x`. `log1p(-1) = -inf`, `log1p(x < -1) = NaN`.
//! * **tanh**: for `|x| < 0.625`, `tanh(x) = x + x^3 P(x^2)` with the degree-4 Cephes
//!   single-precision minimax coefficients; otherwise `1 - 2 / (exp(2|x|) + 1)` (the
//!   exponential is clamped at 88 so it stays finite). The sign is copied from `x`, so
//!   `tanh(-0) = -0` and `tanh(±inf) = ±1`.
//! * **sigmoid**: `e = exp(-|x|)` never overflows; `sigmoid(x) = 1 / (1 + e)` for
//!   `x >= 0` and `e / (1 + e)` for `x < 0`, one division in both cases. No NaN for
//!   large `|x|`; tiny results are correctly subnormal or 0.
//! * **erf**: for `|x| < 0.921875`, `erf(x) = x + x Q(x^2)` where `Q` is a degree-6
//!   polynomial fitted (Chebyshev interpolation, near-minimax) to
//!   `erf(sqrt t) / sqrt t - 1` on `[0, 0.921875^2]`. Otherwise
//!   `erf(|x|) = 1 - exp(H(min(|x|, 4)))` where `H` is a degree-8 polynomial fitted the
//!   same way to `log(erfc(a))` on `[0.921875, 4]`. The fits were made in 40-digit
//!   arithmetic and the coefficients rounded to `f32`. The sign is copied from `x`;
//!   `erf(±inf) = ±1`.
//! * **sin / cos**: computed on `|x|` (then the sign of `x` is applied for `sin`).
//!   `k = round(|x| * 2/pi)`, `r = |x| - k pi/2` with a three-constant Cody-Waite split
//!   evaluated with `fma` (the first step is exact for `k < 2^22`), `|r| <= pi/4`.
//!   `sin(r) = r + r^3 S(r^2)` and `cos(r) = 1 - r^2/2 + r^4 C(r^2)` with the degree-2
//!   Cephes single-precision minimax coefficients; the quadrant `k mod 4` selects the
//!   polynomial and the sign with integer masks. See [`MathFn::Sin`] for the range.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::types::{F32, F32X4, I32, I32X4};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;

/// A transcendental function that [`emit`] can expand inline.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum MathFn {
    /// `e^x`. Max error 1 ulp (measured). Overflow (`x > 88.72`) gives +inf, underflow
    /// gives correctly rounded subnormals and then 0, `exp(-inf) = 0`, NaN -> NaN.
    Exp,
    /// Natural logarithm. Max error 1 ulp (measured), subnormal inputs included.
    /// `log(±0) = -inf`, `log(x < 0) = NaN`, `log(+inf) = +inf`.
    Log,
    /// Hyperbolic tangent. Max error 1 ulp (measured). Saturates to ±1, keeps -0.
    Tanh,
    /// Error function. Max error 1 ulp (measured). Saturates to ±1, keeps -0.
    Erf,
    /// Logistic function `1 / (1 + e^-x)`. Max error 2 ulp (measured). Never NaN for
    /// non-NaN input; `sigmoid(-inf) = 0`, `sigmoid(+inf) = 1`.
    Sigmoid,
    /// `e^x - 1`. Max error 1 ulp (measured), accurate near 0, keeps -0.
    Expm1,
    /// `ln(1 + x)`. Max error 1 ulp (measured), accurate near 0, keeps -0.
    /// `log1p(-1) = -inf`, `log1p(x < -1) = NaN`.
    Log1p,
    /// Sine. Max error 2 ulp (measured on every f32 with `|x| <= SIN_COS_MAX_ARG`,
    /// i.e. `2^21`). For larger `|x|` (and for ±inf) the result is NaN: the three-term
    /// Cody-Waite reduction loses accuracy there, and the quadrant would overflow the
    /// integer trick beyond `2^22 * pi / 2`.
    Sin,
    /// Cosine. Max error 2 ulp (measured on every f32 with `|x| <= SIN_COS_MAX_ARG`);
    /// NaN beyond, as for [`MathFn::Sin`].
    Cos,
}

impl MathFn {
    /// Every function, in declaration order.
    pub const ALL: &'static [MathFn] = &[
        MathFn::Exp,
        MathFn::Log,
        MathFn::Tanh,
        MathFn::Erf,
        MathFn::Sigmoid,
        MathFn::Expm1,
        MathFn::Log1p,
        MathFn::Sin,
        MathFn::Cos,
    ];

    /// The maximum error of the emitted approximation in ulps of f32, over all finite
    /// f32 inputs (for sin/cos: `|x| <= SIN_COS_MAX_ARG`), measured by the sweep test
    /// against correctly rounded f64 references: every 16th f32 bit pattern plus a dense
    /// grid on `[-20, 20]`, scalar and vector alike; sin and cos were also checked on
    /// every f32 in `[0, 2^21]` (negative inputs reuse the same code on `|x|`).
    pub fn max_ulp(self) -> u32 {
        match self {
            MathFn::Exp
            | MathFn::Log
            | MathFn::Tanh
            | MathFn::Erf
            | MathFn::Expm1
            | MathFn::Log1p => 1,
            MathFn::Sigmoid | MathFn::Sin | MathFn::Cos => 2,
        }
    }
}

/// Largest `|x|` (`2^21`) for which sin and cos meet [`MathFn::max_ulp`]; they return
/// NaN beyond.
pub const SIN_COS_MAX_ARG: f32 = 2_097_152.0;

/// Emits `f(x)` where `x` has type F32 or F32X4; the result has the same type.
/// Straight-line code: no branches, no calls (so it can sit in vectorized loop bodies).
pub fn emit(b: &mut FunctionBuilder, f: MathFn, x: Value) -> Value {
    let fty = b.func.dfg.value_type(x);
    let ity = match fty {
        F32 => I32,
        F32X4 => I32X4,
        other => panic!("math::emit: unsupported type {other}"),
    };
    let mut e = Emitter { b, fty, ity };
    match f {
        MathFn::Exp => e.exp(x),
        MathFn::Log => e.log(x),
        MathFn::Tanh => e.tanh(x),
        MathFn::Erf => e.erf(x),
        MathFn::Sigmoid => e.sigmoid(x),
        MathFn::Expm1 => e.expm1(x),
        MathFn::Log1p => e.log1p(x),
        MathFn::Sin => e.sin_cos(x, false),
        MathFn::Cos => e.sin_cos(x, true),
    }
}

/// `1.5 * 2^23`: adding it rounds a float of magnitude below `2^22` to an integer.
const MAGIC: f32 = 12_582_912.0;
/// Bit pattern of [`MAGIC`].
const MAGIC_BITS: i32 = 0x4B40_0000;
/// High part of `ln 2`, exactly 0.693359375 (9 significant bits, so `k * LN2_HI` is
/// exact for `|k| < 2^15`).
const LN2_HI: f32 = 0.693_359_4;
/// `ln 2 - LN2_HI`, rounded to f32.
const LN2_LO: f32 = -2.121_944_4e-4;
/// `1 / ln 2`.
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// Bit pattern of `sqrt(1/2)`.
const SQRT_HALF_BITS: i32 = 0x3F35_04F3;

/// Taylor coefficients `1/8!, 1/7!, ..., 1/2!` (highest degree first) of
/// `(expm1(r) - r) / r^2`.
const EXPM1_Q: [f32; 7] = [
    2.480_158_7e-5,
    1.984_127e-4,
    1.388_888_9e-3,
    8.333_334e-3,
    4.166_666_8e-2,
    1.666_666_7e-1,
    0.5,
];

/// Cephes single-precision `logf` minimax coefficients (highest degree first):
/// `log(1 + f) ~ f - f^2/2 + f^3 P(f)` for `f` in `[sqrt(1/2) - 1, sqrt(2) - 1]`.
const LOG_P: [f32; 9] = [
    7.037_683_6e-2,
    -1.151_461e-1,
    1.167_699_9e-1,
    -1.242_014_1e-1,
    1.424_932_3e-1,
    -1.666_805_8e-1,
    2.000_071_5e-1,
    -2.499_999_4e-1,
    3.333_333e-1,
];

/// Cephes single-precision `tanhf` minimax coefficients (highest degree first):
/// `tanh(x) ~ x + x^3 P(x^2)` for `|x| < 0.625`.
const TANH_P: [f32; 5] = [
    -5.704_988_7e-3,
    2.063_909e-2,
    -5.373_971_6e-2,
    1.333_144_2e-1,
    -3.333_328e-1,
];

/// Switch point between the two erf approximations.
const ERF_SPLIT: f32 = 0.921_875;

/// Fitted `erf(sqrt t) / sqrt t - 1 ~ Q(t)` on `[0, ERF_SPLIT^2]` (highest degree first).
const ERF_Q: [f32; 7] = [
    8.387_591e-5,
    -8.147_202e-4,
    5.201_467e-3,
    -2.685_959_3e-2,
    1.128_37e-1,
    -3.761_263_5e-1,
    1.283_791_7e-1,
];

/// Fitted `log(erfc(a)) ~ H(a)` on `[ERF_SPLIT, 4]` (highest degree first).
const ERF_H: [f32; 9] = [
    1.643_571e-6,
    -4.617_827_7e-5,
    5.977_498_4e-4,
    -4.763_623_2e-3,
    2.643_121_2e-2,
    -1.100_949_4e-1,
    -6.318_139e-1,
    -1.130_238,
    3.205_816_3e-4,
];

/// `2 / pi`.
const TWO_OVER_PI: f32 = std::f32::consts::FRAC_2_PI;
/// `pi/2 = PIO2_1 + PIO2_2 + PIO2_3` (each the f32 rounding of the remainder).
const PIO2_1: f32 = std::f32::consts::FRAC_PI_2;
const PIO2_2: f32 = -4.371_139e-8;
const PIO2_3: f32 = -1.715_124_5e-15;

/// Cephes single-precision `sinf` coefficients: `sin(r) ~ r + r^3 S(r^2)`, `|r| <= pi/4`.
const SIN_S: [f32; 3] = [-1.951_529_6e-4, 8.332_161e-3, -1.666_665_5e-1];
/// Cephes single-precision `cosf` coefficients:
/// `cos(r) ~ 1 - r^2/2 + r^4 C(r^2)`, `|r| <= pi/4`.
const COS_C: [f32; 3] = [2.443_315_7e-5, -1.388_731_6e-3, 4.166_664_6e-2];

/// Emission helper that hides the scalar/vector difference.
struct Emitter<'a, 'b> {
    b: &'a mut FunctionBuilder<'b>,
    fty: Type,
    ity: Type,
}

impl Emitter<'_, '_> {
    fn is_vec(&self) -> bool {
        self.fty.is_vector()
    }

    fn c(&mut self, v: f32) -> Value {
        let s = self.b.ins().f32const(v);
        if self.is_vec() {
            self.b.ins().splat(self.fty, s)
        } else {
            s
        }
    }

    fn ci(&mut self, v: i32) -> Value {
        let s = self.b.ins().iconst(I32, i64::from(v));
        if self.is_vec() {
            self.b.ins().splat(self.ity, s)
        } else {
            s
        }
    }

    fn add(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fadd(a, b)
    }

    fn sub(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fsub(a, b)
    }

    fn mul(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmul(a, b)
    }

    fn div(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fdiv(a, b)
    }

    fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        self.b.ins().fma(a, b, c)
    }

    /// `a * k + c` with a constant `k`.
    fn fma_k(&mut self, a: Value, k: f32, c: Value) -> Value {
        let k = self.c(k);
        self.fma(a, k, c)
    }

    fn abs(&mut self, a: Value) -> Value {
        self.b.ins().fabs(a)
    }

    /// `|mag|` with the sign of `sign`. Built from integer ops because the x86-64
    /// backend does not lower `fcopysign` for `F32X4`.
    fn copysign(&mut self, mag: Value, sign: Value) -> Value {
        let mb = self.as_int(mag);
        let mb = self.band_k(mb, i32::MAX);
        let sb = self.as_int(sign);
        let sb = self.band_k(sb, i32::MIN);
        let r = self.b.ins().bor(mb, sb);
        self.as_float(r)
    }

    /// `max(x, lo)` (NaN propagates).
    fn max_k(&mut self, x: Value, lo: f32) -> Value {
        let lo = self.c(lo);
        self.b.ins().fmax(x, lo)
    }

    /// `min(x, hi)` (NaN propagates).
    fn min_k(&mut self, x: Value, hi: f32) -> Value {
        let hi = self.c(hi);
        self.b.ins().fmin(x, hi)
    }

    /// Compares `x` with a constant; the result is a condition for [`Self::sel`].
    fn cmp_k(&mut self, cc: FloatCC, x: Value, k: f32) -> Value {
        let k = self.c(k);
        self.b.ins().fcmp(cc, x, k)
    }

    /// `cond ? a : b` lane-wise, for a condition produced by `fcmp`.
    fn sel(&mut self, cond: Value, a: Value, b: Value) -> Value {
        if self.is_vec() {
            let m = self.b.ins().bitcast(self.fty, MemFlagsData::new(), cond);
            self.b.ins().bitselect(m, a, b)
        } else {
            self.b.ins().select(cond, a, b)
        }
    }

    /// `cond ? k : b` lane-wise with a constant `k`.
    fn sel_k(&mut self, cond: Value, k: f32, b: Value) -> Value {
        let k = self.c(k);
        self.sel(cond, k, b)
    }

    fn as_int(&mut self, x: Value) -> Value {
        self.b.ins().bitcast(self.ity, MemFlagsData::new(), x)
    }

    fn as_float(&mut self, x: Value) -> Value {
        self.b.ins().bitcast(self.fty, MemFlagsData::new(), x)
    }

    fn iadd_k(&mut self, a: Value, k: i32) -> Value {
        let k = self.ci(k);
        self.b.ins().iadd(a, k)
    }

    fn band_k(&mut self, a: Value, k: i32) -> Value {
        let k = self.ci(k);
        self.b.ins().band(a, k)
    }

    /// Horner evaluation of `coeffs` (highest degree first) at `t`.
    fn poly(&mut self, t: Value, coeffs: &[f32]) -> Value {
        let mut acc = self.c(coeffs[0]);
        for &k in &coeffs[1..] {
            let kv = self.c(k);
            acc = self.fma(acc, t, kv);
        }
        acc
    }

    /// `2^k` for an integer `k` in `[-126, 127]` (`k = 128` gives +inf).
    fn pow2i(&mut self, k: Value) -> Value {
        let e = self.iadd_k(k, 127);
        let e = self.b.ins().ishl_imm_u(e, 23);
        self.as_float(e)
    }

    /// Rounds `x * scale` to the nearest integer `k` (requires `|x * scale| < 2^22`);
    /// returns `(k as float, k as integer)`.
    fn round_scaled(&mut self, x: Value, scale: f32) -> (Value, Value) {
        let magic = self.c(MAGIC);
        let s = self.fma_k(x, scale, magic);
        let kf = self.sub(s, magic);
        let sb = self.as_int(s);
        let ki = self.iadd_k(sb, MAGIC_BITS.wrapping_neg());
        (kf, ki)
    }

    /// Reduces `x = k ln2 + r`; returns `(k as integer, expm1(r))`.
    fn exp_reduce(&mut self, x: Value) -> (Value, Value) {
        let (kf, ki) = self.round_scaled(x, LOG2E);
        let r = self.fma_k(kf, -LN2_HI, x);
        let r = self.fma_k(kf, -LN2_LO, r);
        let r2 = self.mul(r, r);
        let q = self.poly(r, &EXPM1_Q);
        let u = self.fma(r2, q, r);
        (ki, u)
    }

    /// `exp(x)`, optionally clamping `x` from below/above first. With `split`, `2^k`
    /// is applied in two steps so that `k` may range over `[-150, 128]`; without it,
    /// `k` must stay within `[-126, 127]`.
    fn exp_core(&mut self, x: Value, lo: Option<f32>, hi: Option<f32>, split: bool) -> Value {
        let mut x = x;
        if let Some(hi) = hi {
            x = self.min_k(x, hi);
        }
        if let Some(lo) = lo {
            x = self.max_k(x, lo);
        }
        let (ki, u) = self.exp_reduce(x);
        if split {
            let k1 = self.b.ins().sshr_imm_u(ki, 1);
            let k2 = self.b.ins().isub(ki, k1);
            let t1 = self.pow2i(k1);
            let t2 = self.pow2i(k2);
            let y = self.fma(t1, u, t1);
            self.mul(y, t2)
        } else {
            let t = self.pow2i(ki);
            self.fma(t, u, t)
        }
    }

    fn exp(&mut self, x: Value) -> Value {
        self.exp_core(x, Some(-104.0), Some(89.0), true)
    }

    fn expm1(&mut self, x: Value) -> Value {
        let xc = self.min_k(x, 89.0);
        let xc = self.max_k(xc, -30.0);
        let (ki, u) = self.exp_reduce(xc);
        // th = 2^(k-1); k is in [-44, 128].
        let km1 = self.iadd_k(ki, -1);
        let th = self.pow2i(km1);
        let half = self.c(0.5);
        let thm = self.sub(th, half);
        let y = self.fma(th, u, thm);
        let y = self.add(y, y);
        self.copysign(y, x)
    }

    /// Splits a positive `x` into `(e, f)` with `x = (1 + f) * 2^e`,
    /// `1 + f` in `[sqrt(1/2), sqrt(2))`; `e` is returned as a float.
    fn log_split(&mut self, x: Value, subnormals: bool) -> (Value, Value) {
        let (xs, eadj) = if subnormals {
            let small = self.cmp_k(FloatCC::LessThan, x, f32::MIN_POSITIVE);
            let scale = self.c(8_388_608.0);
            let scaled = self.mul(x, scale);
            let xs = self.sel(small, scaled, x);
            let zero = self.c(0.0);
            let eadj = self.sel_k(small, -23.0, zero);
            (xs, Some(eadj))
        } else {
            (x, None)
        };
        let bits = self.as_int(xs);
        let t = self.iadd_k(bits, SQRT_HALF_BITS.wrapping_neg());
        let ei = self.b.ins().sshr_imm_u(t, 23);
        let mb = self.band_k(t, 0x007F_FFFF);
        let mb = self.iadd_k(mb, SQRT_HALF_BITS);
        let m = self.as_float(mb);
        let one = self.c(1.0);
        let f = self.sub(m, one);
        let mut e = self.b.ins().fcvt_from_sint(self.fty, ei);
        if let Some(eadj) = eadj {
            e = self.add(e, eadj);
        }
        (e, f)
    }

    /// `e ln2 + log(1 + f) + extra`, with `extra` a small correction term.
    fn log_combine(&mut self, e: Value, f: Value, extra: Option<Value>) -> Value {
        let z = self.mul(f, f);
        let p = self.poly(f, &LOG_P);
        let fz = self.mul(f, z);
        let y = self.mul(fz, p);
        let mut y = self.fma_k(e, LN2_LO, y);
        if let Some(extra) = extra {
            y = self.add(y, extra);
        }
        let y = self.fma_k(z, -0.5, y);
        let r = self.add(f, y);
        self.fma_k(e, LN2_HI, r)
    }

    fn log(&mut self, x: Value) -> Value {
        let (e, f) = self.log_split(x, true);
        let r = self.log_combine(e, f, None);
        let is_zero = self.cmp_k(FloatCC::Equal, x, 0.0);
        let r = self.sel_k(is_zero, f32::NEG_INFINITY, r);
        let is_neg = self.cmp_k(FloatCC::UnorderedOrLessThan, x, 0.0);
        let r = self.sel_k(is_neg, f32::NAN, r);
        let is_inf = self.cmp_k(FloatCC::Equal, x, f32::INFINITY);
        self.sel_k(is_inf, f32::INFINITY, r)
    }

    fn log1p(&mut self, x: Value) -> Value {
        let one = self.c(1.0);
        let u = self.add(one, x);
        let (e, f) = self.log_split(u, false);
        let um1 = self.sub(u, one);
        let err = self.sub(x, um1);
        let corr = self.div(err, u);
        let r = self.log_combine(e, f, Some(corr));
        let is_m1 = self.cmp_k(FloatCC::Equal, x, -1.0);
        let r = self.sel_k(is_m1, f32::NEG_INFINITY, r);
        let below = self.cmp_k(FloatCC::UnorderedOrLessThan, x, -1.0);
        let r = self.sel_k(below, f32::NAN, r);
        let is_inf = self.cmp_k(FloatCC::Equal, x, f32::INFINITY);
        let r = self.sel_k(is_inf, f32::INFINITY, r);
        self.copysign(r, x)
    }

    fn tanh(&mut self, x: Value) -> Value {
        let a = self.abs(x);
        // |x| < 0.625: a + a^3 P(a^2).
        let z = self.mul(a, a);
        let p = self.poly(z, &TANH_P);
        let az = self.mul(a, z);
        let small = self.fma(az, p, a);
        // Otherwise 1 - 2 / (exp(2a) + 1).
        let a2 = self.add(a, a);
        let e = self.exp_core(a2, None, Some(88.0), false);
        let one = self.c(1.0);
        let two = self.c(2.0);
        let d = self.add(e, one);
        let q = self.div(two, d);
        let large = self.sub(one, q);
        let is_small = self.cmp_k(FloatCC::LessThan, a, 0.625);
        let r = self.sel(is_small, small, large);
        self.copysign(r, x)
    }

    fn sigmoid(&mut self, x: Value) -> Value {
        let a = self.abs(x);
        let na = self.b.ins().fneg(a);
        let e = self.exp_core(na, Some(-104.0), None, true);
        let one = self.c(1.0);
        let d = self.add(one, e);
        let neg = self.cmp_k(FloatCC::LessThan, x, 0.0);
        let num = self.sel(neg, e, one);
        self.div(num, d)
    }

    fn erf(&mut self, x: Value) -> Value {
        let a = self.abs(x);
        let t = self.mul(x, x);
        let q = self.poly(t, &ERF_Q);
        let small = self.fma(a, q, a);
        let ac = self.min_k(a, 4.0);
        let h = self.poly(ac, &ERF_H);
        let e = self.exp_core(h, None, None, false);
        let one = self.c(1.0);
        let large = self.sub(one, e);
        let is_small = self.cmp_k(FloatCC::LessThan, a, ERF_SPLIT);
        let r = self.sel(is_small, small, large);
        self.copysign(r, x)
    }

    fn sin_cos(&mut self, x: Value, cos: bool) -> Value {
        let a = self.abs(x);
        let (kf, ki) = self.round_scaled(a, TWO_OVER_PI);
        let r = self.fma_k(kf, -PIO2_1, a);
        let r = self.fma_k(kf, -PIO2_2, r);
        let r = self.fma_k(kf, -PIO2_3, r);
        let z = self.mul(r, r);
        // sin(r) = r + r^3 S(z)
        let s = self.poly(z, &SIN_S);
        let rz = self.mul(r, z);
        let sp = self.fma(rz, s, r);
        // cos(r) = 1 - z/2 + z^2 C(z)
        let c = self.poly(z, &COS_C);
        let one = self.c(1.0);
        let c0 = self.fma_k(z, -0.5, one);
        let zz = self.mul(z, z);
        let cp = self.fma(zz, c, c0);
        // Quadrant: odd -> swap polynomials, bit 1 -> negate.
        let q = if cos { self.iadd_k(ki, 1) } else { ki };
        let odd = self.b.ins().ishl_imm_u(q, 31);
        let swap = self.b.ins().sshr_imm_u(odd, 31);
        let sb = self.as_int(sp);
        let cb = self.as_int(cp);
        let diff = self.b.ins().bxor(sb, cb);
        let diff = self.b.ins().band(diff, swap);
        let rb = self.b.ins().bxor(sb, diff);
        let neg = self.band_k(q, 2);
        let mut sign = self.b.ins().ishl_imm_u(neg, 30);
        if !cos {
            let xb = self.as_int(x);
            let xs = self.band_k(xb, i32::MIN);
            sign = self.b.ins().bxor(sign, xs);
        }
        let rb = self.b.ins().bxor(rb, sign);
        let r = self.as_float(rb);
        let out_of_range = self.cmp_k(FloatCC::GreaterThan, a, SIN_COS_MAX_ARG);
        self.sel_k(out_of_range, f32::NAN, r)
    }
}
