//! The C ABI between generated code and the runtime.
//!
//! Compiled code (JIT today, object files later) calls these `extern "C"`
//! entry points with raw pointers and `i64` sizes. Each entry point checks
//! what it can (negative sizes make it return without touching memory: a
//! panic must never unwind into generated code) and then calls a safe kernel.
//!
//! The single list in [`runtime_symbols!`] names every entry point with its
//! parameter types. It generates [`RtFn`] (a typed id per entry point) and
//! [`RtFn::symbol`], which gives the name and signature used to declare the
//! function in a code module and the address a JIT registers under that name.
//! Because the address is taken through a cast to the listed signature, a
//! kernel whose Rust signature drifts from the list does not compile.
//!
//! Contract shared by every entry point: pointers address dense, row-major
//! `f32` buffers that hold at least the elements the sizes describe, and an
//! output buffer does not overlap any input buffer.

use crate::attention::{sdpa, Sdpa};
use crate::gemm::{gemm, sgemm, Act, Bias, GemmDims, MatRef, Strides};
use crate::nn::{batch_norm_inference, conv2d_act, max_pool2d, Conv2d, MaxPool2d};
use crate::norm::layer_norm;
use crate::parallel::torchlift_rt_parallel_for;
use crate::softmax::softmax_lines;

/// The type of one parameter of a runtime entry point, as the code generator
/// sees it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AbiType {
    /// A signed 64-bit integer (sizes, strides, flags).
    I64,
    /// A 32-bit float.
    F32,
    /// A pointer (the target's pointer width).
    Ptr,
}

/// Maps a Rust parameter type of an entry point to its [`AbiType`].
pub trait AbiParam {
    const TYPE: AbiType;
}

impl AbiParam for i64 {
    const TYPE: AbiType = AbiType::I64;
}

impl AbiParam for f32 {
    const TYPE: AbiType = AbiType::F32;
}

impl<T> AbiParam for *const T {
    const TYPE: AbiType = AbiType::Ptr;
}

impl<T> AbiParam for *mut T {
    const TYPE: AbiType = AbiType::Ptr;
}

/// One entry point: its link name, parameter types and address in this
/// process.
///
/// Every entry point returns an `i32` status: [`OK`] (0) when it ran, and a
/// nonzero value ([`INVALID`] when the sizes, strides or layout were
/// inconsistent, [`PANICKED`] if a kernel failed internally) when it wrote
/// nothing to its outputs.
#[derive(Copy, Clone, Debug)]
pub struct RuntimeSymbol {
    pub name: &'static str,
    pub params: &'static [AbiType],
    pub addr: *const u8,
}

/// The status an entry point returns when it ran.
pub const OK: i32 = 0;
/// The status an entry point returns, having written nothing, when its
/// arguments were inconsistent (a negative size, a wrong layout, an output
/// size other than the shapes imply, an overflowing span).
pub const INVALID: i32 = 1;
/// The status an entry point returns when a kernel failed internally (a bug:
/// the failure is contained so that it never unwinds into generated code).
pub const PANICKED: i32 = 2;

/// Runs `f`, turning a panic into [`PANICKED`] so that it never unwinds
/// through an `extern "C"` frame.
pub(crate) fn guard(f: impl FnOnce() -> i32) -> i32 {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(PANICKED)
}

/// `OK` when `ok`, else `INVALID`.
pub(crate) fn status(ok: bool) -> i32 {
    if ok {
        OK
    } else {
        INVALID
    }
}

/// The list of runtime entry points. Each line is
/// `Id => fn link_name(param: RustType, ...) -> i32;`; every entry point
/// returns an `i32` status ([`OK`] or a nonzero error, see
/// [`RuntimeSymbol`]).
macro_rules! runtime_symbols {
    ($( $(#[$doc:meta])* $id:ident => fn $name:ident($($p:ident: $t:ty),* $(,)?) -> i32; )*) => {
        /// A runtime entry point.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        pub enum RtFn {
            $( $(#[$doc])* $id, )*
        }

        impl RtFn {
            pub const ALL: &'static [RtFn] = &[$(RtFn::$id),*];

            /// The name, signature and address of the entry point.
            pub fn symbol(self) -> RuntimeSymbol {
                match self {
                    $(RtFn::$id => {
                        const PARAMS: &[AbiType] = &[$(<$t as AbiParam>::TYPE),*];
                        let f: unsafe extern "C" fn($($t),*) -> i32 = $name;
                        RuntimeSymbol {
                            name: stringify!($name),
                            params: PARAMS,
                            addr: f as *const u8,
                        }
                    })*
                }
            }
        }
    };
}

runtime_symbols! {
    /// `c = a @ b` (`beta_zero != 0`) or `c += a @ b`: `a` is `m x k` with row
    /// stride `lda`, `b` is `k x n` with row stride `ldb`, `c` is `m x n` with
    /// row stride `ldc`.
    Sgemm => fn torchlift_rt_sgemm(
        m: i64, k: i64, n: i64,
        a: *const f32, lda: i64,
        b: *const f32, ldb: i64,
        c: *mut f32, ldc: i64,
        beta_zero: i64,
    ) -> i32;
    /// Batched strided `c_t = bias + a_t @ b_t` (see [`torchlift_rt_gemm`]).
    Gemm => fn torchlift_rt_gemm(
        batch: i64, m: i64, n: i64, k: i64,
        a: *const f32, a_bs: i64, a_rs: i64, a_cs: i64,
        b: *const f32, b_bs: i64, b_rs: i64, b_cs: i64,
        bias: *const f32, bias_rs: i64, bias_cs: i64,
        c: *mut f32, c_bs: i64, c_rs: i64,
    ) -> i32;
    /// Runs the callback `f(ctx, start, end) -> i32` over chunks of
    /// `[0, n)` of at least `grain` items on the current thread pool; returns
    /// the first nonzero status (see [`crate::parallel`]).
    ParallelFor => fn torchlift_rt_parallel_for(f: *const u8, ctx: *const u8, n: i64, grain: i64) -> i32;
    /// `y = exp(x)` over `n` elements.
    Exp => fn torchlift_rt_exp(x: *const f32, y: *mut f32, n: i64) -> i32;
    /// `y = log(x)`.
    Log => fn torchlift_rt_log(x: *const f32, y: *mut f32, n: i64) -> i32;
    /// `y = tanh(x)`.
    Tanh => fn torchlift_rt_tanh(x: *const f32, y: *mut f32, n: i64) -> i32;
    /// `y = 1 / (1 + exp(-x))`.
    Sigmoid => fn torchlift_rt_sigmoid(x: *const f32, y: *mut f32, n: i64) -> i32;
    /// `y = x * sigmoid(x)`.
    Silu => fn torchlift_rt_silu(x: *const f32, y: *mut f32, n: i64) -> i32;
    /// `y = erf(x)`.
    Erf => fn torchlift_rt_erf(x: *const f32, y: *mut f32, n: i64) -> i32;
    /// `y = x * Φ(x)` (erf form).
    Gelu => fn torchlift_rt_gelu(x: *const f32, y: *mut f32, n: i64) -> i32;
    /// `y = gelu(x)`, tanh approximation.
    GeluTanh => fn torchlift_rt_gelu_tanh(x: *const f32, y: *mut f32, n: i64) -> i32;
    /// Softmax over the middle axis of an `outer x len x inner` array.
    Softmax => fn torchlift_rt_softmax(x: *const f32, y: *mut f32, outer: i64, len: i64, inner: i64) -> i32;
    /// Log-softmax over the middle axis of an `outer x len x inner` array.
    LogSoftmax => fn torchlift_rt_log_softmax(x: *const f32, y: *mut f32, outer: i64, len: i64, inner: i64) -> i32;
    /// 2-D convolution of `x: [n, c, h, w]` with `w: [oc, c / groups, kh, kw]`
    /// plus `bias: [oc]` (read only when `has_bias != 0`) into
    /// `y: [n, oc, oh, ow]`.
    Conv2d => fn torchlift_rt_conv2d(
        x: *const f32, w: *const f32, bias: *const f32, y: *mut f32,
        n: i64, c: i64, h: i64, wd: i64,
        oc: i64, kh: i64, kw: i64, oh: i64, ow: i64,
        sh: i64, sw: i64, ph: i64, pw: i64, dh: i64, dw: i64,
        groups: i64, has_bias: i64,
    ) -> i32;
    /// [`RtFn::Conv2d`] followed by an activation: `act` 0 none, 1 relu,
    /// 2 clamp to `[lo, hi]`.
    Conv2dAct => fn torchlift_rt_conv2d_act(
        x: *const f32, w: *const f32, bias: *const f32, y: *mut f32,
        n: i64, c: i64, h: i64, wd: i64,
        oc: i64, kh: i64, kw: i64, oh: i64, ow: i64,
        sh: i64, sw: i64, ph: i64, pw: i64, dh: i64, dw: i64,
        groups: i64, has_bias: i64,
        act: i64, lo: f32, hi: f32,
    ) -> i32;
    /// Layer norm of each of `rows` rows of `cols` contiguous elements, with
    /// optional (nullable) `w`/`b` of `cols` elements.
    LayerNorm => fn torchlift_rt_layer_norm(
        x: *const f32, y: *mut f32, w: *const f32, b: *const f32,
        rows: i64, cols: i64, eps: f32,
    ) -> i32;
    /// Scaled dot-product attention (see [`torchlift_rt_sdpa`]).
    Sdpa => fn torchlift_rt_sdpa(
        q: *const f32, k: *const f32, v: *const f32, mask: *const f32, y: *mut f32,
        b: i64, hq: i64, hk: i64, lq: i64, lk: i64, d: i64, dv: i64,
        m_bs: i64, m_hs: i64, m_qs: i64, m_ks: i64,
        causal: i64, scale: f32,
    ) -> i32;
    /// Batch-norm inference on `x: [n, c, inner]` with per-channel `mean`,
    /// `var`, `weight` (read when `has_weight != 0`) and `bias` (read when
    /// `has_bias != 0`); `eps_bits` is the `f64` epsilon's bit pattern.
    BatchNorm => fn torchlift_rt_batch_norm(
        x: *const f32, y: *mut f32,
        mean: *const f32, var: *const f32, weight: *const f32, bias: *const f32,
        has_weight: i64, has_bias: i64,
        n: i64, c: i64, inner: i64, eps_bits: i64,
    ) -> i32;
    /// The values of a 2-D max pool (floor or ceil rounding, windows clipped
    /// to the input) of `planes` planes `h x w` into `oh x ow`.
    MaxPool2d => fn torchlift_rt_max_pool2d(
        x: *const f32, y: *mut f32,
        planes: i64, h: i64, w: i64, oh: i64, ow: i64,
        kh: i64, kw: i64, sh: i64, sw: i64, ph: i64, pw: i64, dh: i64, dw: i64,
    ) -> i32;
    /// Combines each of the `n` `values` into the `f64` buffer `out` of
    /// `out_len` elements at its element offset in `offsets` (`i64`), in
    /// order; `op` is a [`crate::order::ScatterOp`] code.
    ScatterF64 => fn torchlift_rt_scatter_f64(
        out: *mut f64, out_len: i64, offsets: *const i64, values: *const f64, n: i64,
        op: i64, include_self: i64,
    ) -> i32;
    /// [`RtFn::ScatterF64`] on `i64` elements (wrapping arithmetic).
    ScatterI64 => fn torchlift_rt_scatter_i64(
        out: *mut i64, out_len: i64, offsets: *const i64, values: *const i64, n: i64,
        op: i64, include_self: i64,
    ) -> i32;
    /// For each of `rows` rows of `len` `f64` keys in `x`, the positions of
    /// its first `k` elements in stable sorted order (NaN largest), as
    /// `i64`s into the row of `k` of `idx`.
    Argsort => fn torchlift_rt_argsort(
        x: *const f64, idx: *mut i64, rows: i64, len: i64, k: i64, descending: i64,
    ) -> i32;
}

/// The slice of `len` `T`s at `p`, or `None` when `p` is null and `len > 0`.
///
/// # Safety
/// When `len > 0` and `p` is not null, `p` addresses `len` readable,
/// initialized `T`s that stay unchanged while the slice lives.
unsafe fn typed_slice<'a, T>(p: *const T, len: usize) -> Option<&'a [T]> {
    if len == 0 {
        Some(&[])
    } else if p.is_null() {
        None
    } else {
        // SAFETY: guaranteed by the caller.
        Some(unsafe { std::slice::from_raw_parts(p, len) })
    }
}

/// The mutable slice of `len` `T`s at `p`, or `None` when `p` is null and
/// `len > 0`.
///
/// # Safety
/// When `len > 0` and `p` is not null, `p` addresses `len` writable,
/// initialized `T`s that no other live reference overlaps.
unsafe fn typed_slice_mut<'a, T>(p: *mut T, len: usize) -> Option<&'a mut [T]> {
    if len == 0 {
        Some(&mut [])
    } else if p.is_null() {
        None
    } else {
        // SAFETY: guaranteed by the caller.
        Some(unsafe { std::slice::from_raw_parts_mut(p, len) })
    }
}

/// The body of the scatter entry points.
///
/// # Safety
/// As [`torchlift_rt_scatter_f64`], for elements of type `T`.
unsafe fn scatter_entry<T: crate::order::Lane>(
    out: *mut T,
    out_len: i64,
    offsets: *const i64,
    values: *const T,
    n: i64,
    op: i64,
    include_self: i64,
) -> i32 {
    guard(|| {
        let (Some([out_len, n]), Some(op)) =
            (sizes([out_len, n]), crate::order::ScatterOp::from_code(op))
        else {
            return INVALID;
        };
        // SAFETY: the caller guarantees `out` holds `out_len` elements and
        // `offsets` and `values` hold `n` each, and that `out` overlaps
        // neither.
        let (Some(out), Some(offsets), Some(values)) = (unsafe {
            (
                typed_slice_mut(out, out_len),
                typed_slice(offsets, n),
                typed_slice(values, n),
            )
        }) else {
            return INVALID;
        };
        status(crate::order::scatter(
            out,
            offsets,
            values,
            op,
            include_self != 0,
        ))
    })
}

/// # Safety
/// `out` addresses `out_len` `f64`s, `offsets` `n` `i64`s and `values` `n`
/// `f64`s; `out` overlaps neither input. Returns [`INVALID`], writing
/// nothing, when a size is negative, `op` is unknown or an offset lies
/// outside `out`.
#[no_mangle]
pub unsafe extern "C" fn torchlift_rt_scatter_f64(
    out: *mut f64,
    out_len: i64,
    offsets: *const i64,
    values: *const f64,
    n: i64,
    op: i64,
    include_self: i64,
) -> i32 {
    // SAFETY: the caller's guarantees are those of `scatter_entry`.
    unsafe { scatter_entry(out, out_len, offsets, values, n, op, include_self) }
}

/// # Safety
/// As [`torchlift_rt_scatter_f64`], with `i64` elements in `out` and
/// `values`.
#[no_mangle]
pub unsafe extern "C" fn torchlift_rt_scatter_i64(
    out: *mut i64,
    out_len: i64,
    offsets: *const i64,
    values: *const i64,
    n: i64,
    op: i64,
    include_self: i64,
) -> i32 {
    // SAFETY: the caller's guarantees are those of `scatter_entry`.
    unsafe { scatter_entry(out, out_len, offsets, values, n, op, include_self) }
}

/// # Safety
/// `x` addresses `rows * len` `f64`s and `idx` `rows * k` `i64`s; they do
/// not overlap. Returns [`INVALID`], writing nothing, when a size is
/// negative, `k > len` or a product of sizes overflows.
#[no_mangle]
pub unsafe extern "C" fn torchlift_rt_argsort(
    x: *const f64,
    idx: *mut i64,
    rows: i64,
    len: i64,
    k: i64,
    descending: i64,
) -> i32 {
    guard(|| {
        let Some([rows, len, k]) = sizes([rows, len, k]) else {
            return INVALID;
        };
        let (Some(nx), Some(ni)) = (rows.checked_mul(len), rows.checked_mul(k)) else {
            return INVALID;
        };
        if k > len {
            return INVALID;
        }
        // SAFETY: the caller guarantees `x` holds `rows * len` elements and
        // `idx` `rows * k`, without overlap.
        let (Some(x), Some(idx)) = (unsafe { (typed_slice(x, nx), typed_slice_mut(idx, ni)) })
        else {
            return INVALID;
        };
        status(crate::order::argsort(x, idx, rows, len, k, descending != 0))
    })
}

/// `usize` of a size that must be non-negative.
pub(crate) fn size(v: i64) -> Option<usize> {
    usize::try_from(v).ok()
}

/// `usize`s of sizes that must all be non-negative.
pub(crate) fn sizes<const N: usize>(vs: [i64; N]) -> Option<[usize; N]> {
    let mut out = [0usize; N];
    for (o, v) in out.iter_mut().zip(vs) {
        *o = size(v)?;
    }
    Some(out)
}

/// The number of elements spanned by `rows` rows of `cols` with row stride
/// `ld`: `(rows - 1) * ld + cols`, or 0 for an empty matrix.
fn span(rows: usize, cols: usize, ld: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1).checked_mul(ld)?.checked_add(cols)
}

/// The slice of `len` `f32`s at `p`, or `None` when `p` is null and
/// `len > 0`. An empty slice never dereferences `p`.
///
/// # Safety
/// When `len > 0` and `p` is not null, `p` addresses `len` readable `f32`s
/// that stay unchanged while the slice lives.
pub(crate) unsafe fn slice_or_empty<'a>(p: *const f32, len: usize) -> Option<&'a [f32]> {
    if len == 0 {
        Some(&[])
    } else if p.is_null() {
        None
    } else {
        // SAFETY: guaranteed by the caller.
        Some(unsafe { std::slice::from_raw_parts(p, len) })
    }
}

/// The mutable slice of `len` `f32`s at `p`, or `None` when `p` is null and
/// `len > 0`.
///
/// # Safety
/// When `len > 0` and `p` is not null, `p` addresses `len` writable `f32`s
/// that no other live reference overlaps.
pub(crate) unsafe fn slice_mut_or_empty<'a>(p: *mut f32, len: usize) -> Option<&'a mut [f32]> {
    if len == 0 {
        Some(&mut [])
    } else if p.is_null() {
        None
    } else {
        // SAFETY: guaranteed by the caller.
        Some(unsafe { std::slice::from_raw_parts_mut(p, len) })
    }
}

/// # Safety
/// `a`, `b` and `c` address `m x k`, `k x n` and `m x n` `f32` matrices with
/// row strides `lda`, `ldb`, `ldc` (`lda >= k`, `ldb >= n`, `ldc == n`); `c`
/// does not overlap `a` or `b`. Returns [`INVALID`], writing nothing, when a
/// size is negative or the strides are not of that form.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn torchlift_rt_sgemm(
    m: i64,
    k: i64,
    n: i64,
    a: *const f32,
    lda: i64,
    b: *const f32,
    ldb: i64,
    c: *mut f32,
    ldc: i64,
    beta_zero: i64,
) -> i32 {
    guard(|| {
        let Some([m, k, n, lda, ldb, ldc]) = sizes([m, k, n, lda, ldb, ldc]) else {
            return INVALID;
        };
        if lda < k || ldb < n || ldc != n {
            // `sgemm` writes a dense `c`; other layouts are not part of the ABI.
            return INVALID;
        }
        let (Some(la), Some(lb), Some(lc)) = (span(m, k, lda), span(k, n, ldb), m.checked_mul(n))
        else {
            return INVALID;
        };
        if lc == 0 {
            return OK;
        }
        // SAFETY: the caller guarantees the three matrices lie inside their
        // buffers; `la`, `lb` and `lc` are exactly the spans they cover, and
        // `c` does not overlap `a` or `b`.
        let (Some(a), Some(b), Some(c)) = (unsafe {
            (
                slice_or_empty(a, la),
                slice_or_empty(b, lb),
                slice_mut_or_empty(c, lc),
            )
        }) else {
            return INVALID;
        };
        let a = MatRef {
            data: a,
            offset: 0,
            rows: m,
            cols: k,
            rs: lda as isize,
            cs: 1,
        };
        let b = MatRef {
            data: b,
            offset: 0,
            rows: k,
            cols: n,
            rs: ldb as isize,
            cs: 1,
        };
        if beta_zero != 0 {
            let d = GemmDims { batch: 1, m, n, k };
            let (sa, sb) = (
                Strides {
                    bs: 0,
                    rs: lda,
                    cs: 1,
                },
                Strides {
                    bs: 0,
                    rs: ldb,
                    cs: 1,
                },
            );
            return status(gemm(d, a.data, sa, b.data, sb, None, c, 0, n, Act::None));
        }
        sgemm(1.0, a, b, 1.0, c);
        OK
    })
}

/// # Safety
/// For each `t < batch`, `i < m`, `j < n`, `p < k`: `a[t*a_bs + i*a_rs +
/// p*a_cs]` and `b[t*b_bs + p*b_rs + j*b_cs]` are readable `f32`s, as is
/// `bias[i*bias_rs + j*bias_cs]` when `bias` is not null, and
/// `c[t*c_bs + i*c_rs + j]` is writable; `c` overlaps none of the inputs.
///
/// Writes `c_t[i, j] = bias[i, j] (or 0) + Σ_p a_t[i, p] * b_t[p, j]`
/// without reading `c`. Returns [`INVALID`], writing nothing, when a size or
/// stride is negative, a span overflows, an operand pointer is null while
/// its span is not empty, or the rows or batch items of `c` would overlap
/// (`c_rs < n` with `m > 1`; `c_bs < (m-1)*c_rs + n` with `batch > 1`).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn torchlift_rt_gemm(
    batch: i64,
    m: i64,
    n: i64,
    k: i64,
    a: *const f32,
    a_bs: i64,
    a_rs: i64,
    a_cs: i64,
    b: *const f32,
    b_bs: i64,
    b_rs: i64,
    b_cs: i64,
    bias: *const f32,
    bias_rs: i64,
    bias_cs: i64,
    c: *mut f32,
    c_bs: i64,
    c_rs: i64,
) -> i32 {
    guard(|| {
        let Some(
            [batch, m, n, k, a_bs, a_rs, a_cs, b_bs, b_rs, b_cs, bias_rs, bias_cs, c_bs, c_rs],
        ) = sizes([
            batch, m, n, k, a_bs, a_rs, a_cs, b_bs, b_rs, b_cs, bias_rs, bias_cs, c_bs, c_rs,
        ])
        else {
            return INVALID;
        };
        let d = GemmDims { batch, m, n, k };
        let sa = Strides {
            bs: a_bs,
            rs: a_rs,
            cs: a_cs,
        };
        let sb = Strides {
            bs: b_bs,
            rs: b_rs,
            cs: b_cs,
        };
        let sc = Strides {
            bs: c_bs,
            rs: c_rs,
            cs: 1,
        };
        let sbias = Strides {
            bs: 0,
            rs: bias_rs,
            cs: bias_cs,
        };
        let (Some(la), Some(lb), Some(lc), Some(lbias)) = (
            sa.span(batch, m, k),
            sb.span(batch, k, n),
            sc.span(batch, m, n),
            sbias.span(1, m, n),
        ) else {
            return INVALID;
        };
        if batch == 0 || m == 0 || n == 0 {
            return OK;
        }
        // SAFETY: the caller guarantees every element these spans cover is
        // addressable (the spans end one past the last element the strides
        // reach) and that `c` overlaps no input.
        let (Some(a), Some(b), Some(c)) = (unsafe {
            (
                slice_or_empty(a, la),
                slice_or_empty(b, lb),
                slice_mut_or_empty(c, lc),
            )
        }) else {
            return INVALID;
        };
        let bias = if bias.is_null() {
            None
        } else {
            // SAFETY: as above, for the non-null bias.
            let Some(data) = (unsafe { slice_or_empty(bias, lbias) }) else {
                return INVALID;
            };
            Some(Bias {
                data,
                rs: bias_rs,
                cs: bias_cs,
            })
        };
        status(gemm(d, a, sa, b, sb, bias, c, c_bs, c_rs, Act::None))
    })
}

/// Runs `f` on `x[..n]` into `y[..n]`.
///
/// # Safety
/// `x` and `y` address `n` `f32`s each and do not overlap.
unsafe fn map_f32(x: *const f32, y: *mut f32, n: i64, f: impl Fn(f64) -> f64) -> i32 {
    let Some(n) = size(n) else {
        return INVALID;
    };
    // SAFETY: guaranteed by the caller.
    let (Some(x), Some(y)) = (unsafe { (slice_or_empty(x, n), slice_mut_or_empty(y, n)) }) else {
        return INVALID;
    };
    for (o, &i) in y.iter_mut().zip(x) {
        *o = f(i as f64) as f32;
    }
    OK
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

fn gelu_tanh(v: f64) -> f64 {
    let k = (2.0 / std::f64::consts::PI).sqrt();
    0.5 * v * (1.0 + (k * (v + 0.044715 * v * v * v)).tanh())
}

macro_rules! unary_entry_points {
    ($($name:ident = $f:expr;)*) => {
        $(
            /// # Safety
            /// `x` and `y` address `n` `f32`s each and do not overlap.
            /// Returns [`INVALID`], writing nothing, when `n < 0`.
            #[no_mangle]
            pub unsafe extern "C" fn $name(x: *const f32, y: *mut f32, n: i64) -> i32 {
                // SAFETY: the caller's contract is `map_f32`'s.
                guard(|| unsafe { map_f32(x, y, n, $f) })
            }
        )*
    };
}

unary_entry_points! {
    torchlift_rt_exp = f64::exp;
    torchlift_rt_log = f64::ln;
    torchlift_rt_tanh = f64::tanh;
    torchlift_rt_sigmoid = sigmoid;
    torchlift_rt_silu = |v| v * sigmoid(v);
    torchlift_rt_erf = libm::erf;
    torchlift_rt_gelu = |v| 0.5 * v * (1.0 + libm::erf(v * std::f64::consts::FRAC_1_SQRT_2));
    torchlift_rt_gelu_tanh = gelu_tanh;
}

/// # Safety
/// `x` and `y` address `outer * len * inner` `f32`s each and do not overlap.
unsafe fn softmax_entry(
    x: *const f32,
    y: *mut f32,
    outer: i64,
    len: i64,
    inner: i64,
    log: bool,
) -> i32 {
    let Some([outer, len, inner]) = sizes([outer, len, inner]) else {
        return INVALID;
    };
    let Some(n) = outer.checked_mul(len).and_then(|v| v.checked_mul(inner)) else {
        return INVALID;
    };
    // SAFETY: guaranteed by the caller; `n` is the element count.
    let (Some(x), Some(y)) = (unsafe { (slice_or_empty(x, n), slice_mut_or_empty(y, n)) }) else {
        return INVALID;
    };
    status(softmax_lines(x, y, outer, len, inner, log))
}

/// # Safety
/// `x` and `y` address `outer * len * inner` `f32`s each and do not overlap.
/// Returns [`INVALID`], writing nothing, when a size is negative or the
/// element count overflows.
#[no_mangle]
pub unsafe extern "C" fn torchlift_rt_softmax(
    x: *const f32,
    y: *mut f32,
    outer: i64,
    len: i64,
    inner: i64,
) -> i32 {
    // SAFETY: the caller's contract is `softmax_entry`'s.
    guard(|| unsafe { softmax_entry(x, y, outer, len, inner, false) })
}

/// # Safety
/// As [`torchlift_rt_softmax`].
#[no_mangle]
pub unsafe extern "C" fn torchlift_rt_log_softmax(
    x: *const f32,
    y: *mut f32,
    outer: i64,
    len: i64,
    inner: i64,
) -> i32 {
    // SAFETY: the caller's contract is `softmax_entry`'s.
    guard(|| unsafe { softmax_entry(x, y, outer, len, inner, true) })
}

/// # Safety
/// `x: [n, c, h, wd]`, `w: [oc, c / groups, kh, kw]`, `y: [n, oc, oh, ow]`
/// (and `bias: [oc]` when `has_bias != 0`) address dense `f32` arrays of
/// those shapes; `y` overlaps none of the others. Returns [`INVALID`],
/// writing nothing, when a size is negative, `groups` does not divide `c`
/// and `oc`, `oh`/`ow` differ from the window arithmetic (floor rounding),
/// or a pointer is null while its array is not empty.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn torchlift_rt_conv2d(
    x: *const f32,
    w: *const f32,
    bias: *const f32,
    y: *mut f32,
    n: i64,
    c: i64,
    h: i64,
    wd: i64,
    oc: i64,
    kh: i64,
    kw: i64,
    oh: i64,
    ow: i64,
    sh: i64,
    sw: i64,
    ph: i64,
    pw: i64,
    dh: i64,
    dw: i64,
    groups: i64,
    has_bias: i64,
) -> i32 {
    let dims = [
        n, c, h, wd, oc, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, groups,
    ];
    // SAFETY: the caller's contract is `conv2d_entry`'s.
    guard(|| unsafe { conv2d_entry(x, w, bias, y, dims, has_bias, Act::None) })
}

/// # Safety
/// As [`torchlift_rt_conv2d`]. Also returns [`INVALID`] when `act` is not
/// 0 (none), 1 (relu) or 2 (clamp to `[lo, hi]`, which needs `lo <= hi`).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn torchlift_rt_conv2d_act(
    x: *const f32,
    w: *const f32,
    bias: *const f32,
    y: *mut f32,
    n: i64,
    c: i64,
    h: i64,
    wd: i64,
    oc: i64,
    kh: i64,
    kw: i64,
    oh: i64,
    ow: i64,
    sh: i64,
    sw: i64,
    ph: i64,
    pw: i64,
    dh: i64,
    dw: i64,
    groups: i64,
    has_bias: i64,
    act: i64,
    lo: f32,
    hi: f32,
) -> i32 {
    let act = match act {
        0 => Act::None,
        1 => Act::Relu,
        2 if lo <= hi => Act::Clamp(lo, hi),
        _ => return INVALID,
    };
    let dims = [
        n, c, h, wd, oc, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, groups,
    ];
    // SAFETY: the caller's contract is `conv2d_entry`'s.
    guard(|| unsafe { conv2d_entry(x, w, bias, y, dims, has_bias, act) })
}

/// # Safety
/// As [`torchlift_rt_conv2d`], with the sizes in parameter order in `dims`.
unsafe fn conv2d_entry(
    x: *const f32,
    w: *const f32,
    bias: *const f32,
    y: *mut f32,
    dims: [i64; 16],
    has_bias: i64,
    act: Act,
) -> i32 {
    let Some([n, c, h, wd, oc, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, groups]) = sizes(dims)
    else {
        return INVALID;
    };
    let p = Conv2d {
        n,
        c,
        h,
        w: wd,
        oc,
        kh,
        kw,
        oh,
        ow,
        stride: [sh, sw],
        pad: [ph, pw],
        dil: [dh, dw],
        groups,
    };
    let Some([lx, lw, lb, ly]) = p.lens() else {
        return INVALID;
    };
    // SAFETY: `lens` gives exactly the element counts of the arrays the
    // caller guarantees; `y` overlaps no input.
    let (Some(x), Some(w), Some(bias), Some(y)) = (unsafe {
        (
            slice_or_empty(x, lx),
            slice_or_empty(w, lw),
            if has_bias != 0 {
                slice_or_empty(bias, lb).map(Some)
            } else {
                Some(None)
            },
            slice_mut_or_empty(y, ly),
        )
    }) else {
        return INVALID;
    };
    status(conv2d_act(&p, x, w, bias, y, act))
}

/// # Safety
/// `x` and `y` address `rows * cols` `f32`s and do not overlap; `w` and `b`
/// are null or address `cols` `f32`s. Returns [`INVALID`], writing nothing,
/// when a size is negative or the element count overflows.
#[no_mangle]
pub unsafe extern "C" fn torchlift_rt_layer_norm(
    x: *const f32,
    y: *mut f32,
    w: *const f32,
    b: *const f32,
    rows: i64,
    cols: i64,
    eps: f32,
) -> i32 {
    guard(|| {
        let Some([rows, cols]) = sizes([rows, cols]) else {
            return INVALID;
        };
        let Some(n) = rows.checked_mul(cols) else {
            return INVALID;
        };
        let opt = |p: *const f32| {
            if p.is_null() || n == 0 {
                Some(None)
            } else {
                // SAFETY: the caller guarantees `cols` elements when not null.
                unsafe { slice_or_empty(p, cols) }.map(Some)
            }
        };
        // SAFETY: `n` is the element count the caller guarantees; `y`
        // overlaps no input.
        let (Some(x), Some(y), Some(w), Some(b)) = (unsafe {
            (
                slice_or_empty(x, n),
                slice_mut_or_empty(y, n),
                opt(w),
                opt(b),
            )
        }) else {
            return INVALID;
        };
        status(layer_norm(x, y, w, b, rows, cols, eps))
    })
}

/// # Safety
/// `q: [b, hq, lq, d]`, `k: [b, hk, lk, d]`, `v: [b, hk, lk, dv]` and
/// `y: [b, hq, lq, dv]` address dense `f32` arrays; `mask` is null or
/// `mask[bi*m_bs + h*m_hs + i*m_qs + j*m_ks]` is readable for every index in
/// range; `y` overlaps no input.
///
/// `y = softmax(scale * q @ k^T + mask, causal masking of j > i when
/// `causal != 0`) @ v`; query head `h` reads key/value head `h / (hq / hk)`;
/// fully masked rows give zeros. Returns [`INVALID`], writing nothing, when
/// a size or stride is negative, `hk` does not divide `hq`, a length
/// overflows, or a pointer is null while its array is not empty.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn torchlift_rt_sdpa(
    q: *const f32,
    k: *const f32,
    v: *const f32,
    mask: *const f32,
    y: *mut f32,
    b: i64,
    hq: i64,
    hk: i64,
    lq: i64,
    lk: i64,
    d: i64,
    dv: i64,
    m_bs: i64,
    m_hs: i64,
    m_qs: i64,
    m_ks: i64,
    causal: i64,
    scale: f32,
) -> i32 {
    guard(|| {
        let Some([b, hq, hk, lq, lk, d, dv, m_bs, m_hs, m_qs, m_ks]) =
            sizes([b, hq, hk, lq, lk, d, dv, m_bs, m_hs, m_qs, m_ks])
        else {
            return INVALID;
        };
        let p = Sdpa {
            b,
            hq,
            hk,
            lq,
            lk,
            d,
            dv,
            mask_strides: [m_bs, m_hs, m_qs, m_ks],
            causal: causal != 0,
            scale,
        };
        let Some([lqn, lkn, lvn, ly, lm]) = p.lens() else {
            return INVALID;
        };
        // SAFETY: the lengths are exactly the element counts (and the mask
        // span) the caller guarantees; `y` overlaps no input.
        let (Some(q), Some(k), Some(v), Some(y)) = (unsafe {
            (
                slice_or_empty(q, lqn),
                slice_or_empty(k, lkn),
                slice_or_empty(v, lvn),
                slice_mut_or_empty(y, ly),
            )
        }) else {
            return INVALID;
        };
        let mask = if mask.is_null() {
            None
        } else {
            // SAFETY: as above, for the non-null mask.
            let Some(m) = (unsafe { slice_or_empty(mask, lm) }) else {
                return INVALID;
            };
            Some(m)
        };
        status(sdpa(&p, q, k, v, mask, y))
    })
}

/// # Safety
/// `x` and `y` address `n * c * inner` `f32`s and do not overlap; `mean`,
/// `var` (and `weight`, `bias` when their flags are set) address `c` `f32`s.
/// Returns [`INVALID`], writing nothing, when a size is negative or the
/// element count overflows.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn torchlift_rt_batch_norm(
    x: *const f32,
    y: *mut f32,
    mean: *const f32,
    var: *const f32,
    weight: *const f32,
    bias: *const f32,
    has_weight: i64,
    has_bias: i64,
    n: i64,
    c: i64,
    inner: i64,
    eps_bits: i64,
) -> i32 {
    guard(|| {
        let Some([n, c, inner]) = sizes([n, c, inner]) else {
            return INVALID;
        };
        let Some(len) = n.checked_mul(c).and_then(|v| v.checked_mul(inner)) else {
            return INVALID;
        };
        let eps = f64::from_bits(eps_bits as u64);
        let opt = |flag: i64, p: *const f32| {
            if flag != 0 {
                // SAFETY: the caller guarantees `c` elements when the flag is set.
                unsafe { slice_or_empty(p, c) }.map(Some)
            } else {
                Some(None)
            }
        };
        // SAFETY: `len` and `c` are the element counts the caller guarantees;
        // `y` overlaps no input.
        let (Some(x), Some(y), Some(mean), Some(var), Some(weight), Some(bias)) = (unsafe {
            (
                slice_or_empty(x, len),
                slice_mut_or_empty(y, len),
                slice_or_empty(mean, c),
                slice_or_empty(var, c),
                opt(has_weight, weight),
                opt(has_bias, bias),
            )
        }) else {
            return INVALID;
        };
        status(batch_norm_inference(
            x,
            y,
            mean,
            var,
            weight,
            bias,
            (n, c, inner),
            eps,
        ))
    })
}

/// # Safety
/// `x` addresses `planes * h * w` and `y` `planes * oh * ow` `f32`s; they do
/// not overlap. Returns [`INVALID`], writing nothing, when a size is
/// negative, a kernel/stride/dilation is 0, the padding exceeds half the
/// kernel, or `oh`/`ow` are neither the floor nor the ceil window count
/// (PyTorch's rule). Windows are clipped to the input.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn torchlift_rt_max_pool2d(
    x: *const f32,
    y: *mut f32,
    planes: i64,
    h: i64,
    w: i64,
    oh: i64,
    ow: i64,
    kh: i64,
    kw: i64,
    sh: i64,
    sw: i64,
    ph: i64,
    pw: i64,
    dh: i64,
    dw: i64,
) -> i32 {
    guard(|| {
        let Some([planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw]) =
            sizes([planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw])
        else {
            return INVALID;
        };
        let p = MaxPool2d {
            planes,
            h,
            w,
            oh,
            ow,
            kernel: [kh, kw],
            stride: [sh, sw],
            pad: [ph, pw],
            dil: [dh, dw],
        };
        let Some([lx, ly]) = p.lens() else {
            return INVALID;
        };
        // SAFETY: `lens` gives exactly the element counts the caller
        // guarantees; `y` does not overlap `x`.
        let (Some(x), Some(y)) = (unsafe { (slice_or_empty(x, lx), slice_mut_or_empty(y, ly)) })
        else {
            return INVALID;
        };
        status(max_pool2d(&p, x, y))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_symbol_is_listed_once_with_its_parameters() {
        let syms: Vec<_> = RtFn::ALL.iter().map(|f| f.symbol()).collect();
        let mut names: Vec<_> = syms.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), syms.len());
        let sgemm = RtFn::Sgemm.symbol();
        assert_eq!(sgemm.name, "torchlift_rt_sgemm");
        assert_eq!(sgemm.params.len(), 10);
        assert_eq!(sgemm.params[3], AbiType::Ptr);
        assert!(syms.iter().all(|s| !s.addr.is_null()));
    }

    #[test]
    fn sgemm_entry_point_accumulates_or_overwrites() {
        let a = [1.0f32, 2.0, 3.0, 4.0]; // 2 x 2
        let b = [1.0f32, 0.0, 0.0, 1.0]; // identity
        let mut c = [10.0f32; 4];
        // SAFETY: all three are dense 2 x 2 arrays that do not overlap.
        let st = unsafe {
            torchlift_rt_sgemm(2, 2, 2, a.as_ptr(), 2, b.as_ptr(), 2, c.as_mut_ptr(), 2, 0)
        };
        assert_eq!(st, OK);
        assert_eq!(c, [11.0, 12.0, 13.0, 14.0]);
        // SAFETY: as above.
        let st = unsafe {
            torchlift_rt_sgemm(2, 2, 2, a.as_ptr(), 2, b.as_ptr(), 2, c.as_mut_ptr(), 2, 1)
        };
        assert_eq!(st, OK);
        assert_eq!(c, a);
        // A row stride shorter than the row is rejected.
        // SAFETY: rejected before any access.
        let st = unsafe {
            torchlift_rt_sgemm(2, 2, 2, a.as_ptr(), 1, b.as_ptr(), 2, c.as_mut_ptr(), 2, 1)
        };
        assert_eq!(st, INVALID);
        assert_eq!(c, a);
    }

    #[test]
    fn gemm_entry_point_broadcasts_and_validates() {
        // Two batch items of a 2 x 3 @ 3 x 2 product; `a` broadcast
        // (a_bs = 0), `b` read transposed from a 2 x 3 array per batch item.
        let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let bt = [
            1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0,
        ];
        let bias = [10.0f32, 20.0];
        let mut c = [0.0f32; 8];
        // SAFETY: every strided element lies inside its array.
        let st = unsafe {
            torchlift_rt_gemm(
                2,
                2,
                2,
                3,
                a.as_ptr(),
                0,
                3,
                1,
                bt.as_ptr(),
                6,
                1,
                3,
                bias.as_ptr(),
                0,
                1,
                c.as_mut_ptr(),
                4,
                2,
            )
        };
        assert_eq!(st, OK);
        assert_eq!(c, [11.0, 22.0, 14.0, 25.0, 13.0, 26.0, 16.0, 35.0]);
        // A negative stride, then rows of `c` that would overlap.
        for (a_rs, c_rs) in [(-3, 2), (3, 1)] {
            let mut c = [7.0f32; 8];
            // SAFETY: rejected before any access.
            let st = unsafe {
                torchlift_rt_gemm(
                    2,
                    2,
                    2,
                    3,
                    a.as_ptr(),
                    0,
                    a_rs,
                    1,
                    bt.as_ptr(),
                    6,
                    1,
                    3,
                    std::ptr::null(),
                    0,
                    0,
                    c.as_mut_ptr(),
                    4,
                    c_rs,
                )
            };
            assert_eq!(st, INVALID);
            assert_eq!(c, [7.0; 8]);
        }
    }

    #[test]
    fn conv2d_act_entry_point_clamps() {
        // 1 x 1 x 2 x 2 input, a 1 x 1 kernel of weight 2, bias -1.
        let x = [0.0f32, 1.0, 2.0, 3.0];
        let w = [2.0f32];
        let bias = [-1.0f32];
        let run = |act: i64, y: &mut [f32; 4]| {
            // SAFETY: every array holds the elements its shape describes.
            unsafe {
                torchlift_rt_conv2d_act(
                    x.as_ptr(),
                    w.as_ptr(),
                    bias.as_ptr(),
                    y.as_mut_ptr(),
                    1,
                    1,
                    2,
                    2,
                    1,
                    1,
                    1,
                    2,
                    2,
                    1,
                    1,
                    0,
                    0,
                    1,
                    1,
                    1,
                    1,
                    act,
                    0.0,
                    3.0,
                )
            }
        };
        let mut y = [9.0f32; 4];
        assert_eq!(run(0, &mut y), OK);
        assert_eq!(y, [-1.0, 1.0, 3.0, 5.0]);
        assert_eq!(run(1, &mut y), OK);
        assert_eq!(y, [0.0, 1.0, 3.0, 5.0]);
        assert_eq!(run(2, &mut y), OK);
        assert_eq!(y, [0.0, 1.0, 3.0, 3.0]);
        let mut y = [9.0f32; 4];
        assert_eq!(run(3, &mut y), INVALID);
        assert_eq!(y, [9.0; 4]);
    }

    #[test]
    fn layer_norm_entry_point() {
        let x = [1.0f32, 3.0, -2.0, 2.0];
        let w = [2.0f32, 1.0];
        let mut y = [0.0f32; 4];
        // SAFETY: `x`, `y` hold 2 x 2 elements, `w` 2; `b` is null.
        let st = unsafe {
            torchlift_rt_layer_norm(
                x.as_ptr(),
                y.as_mut_ptr(),
                w.as_ptr(),
                std::ptr::null(),
                2,
                2,
                0.0,
            )
        };
        assert_eq!(st, OK);
        assert_eq!(y, [-2.0, 1.0, -2.0, 1.0]);
        // SAFETY: rejected before any access.
        let st = unsafe {
            torchlift_rt_layer_norm(
                x.as_ptr(),
                y.as_mut_ptr(),
                w.as_ptr(),
                std::ptr::null(),
                -2,
                2,
                0.0,
            )
        };
        assert_eq!(st, INVALID);
    }

    #[test]
    fn sdpa_entry_point_causal_and_validation() {
        // One head, two queries and keys, d = dv = 1: the first query only
        // sees the first key.
        let q = [1.0f32, 1.0];
        let k = [0.0f32, 0.0];
        let v = [2.0f32, 4.0];
        let mut y = [0.0f32; 2];
        let run = |hk: i64, y: &mut [f32; 2]| {
            // SAFETY: every array holds the elements its shape describes.
            unsafe {
                torchlift_rt_sdpa(
                    q.as_ptr(),
                    k.as_ptr(),
                    v.as_ptr(),
                    std::ptr::null(),
                    y.as_mut_ptr(),
                    1,
                    1,
                    hk,
                    2,
                    2,
                    1,
                    1,
                    0,
                    0,
                    0,
                    0,
                    1,
                    1.0,
                )
            }
        };
        assert_eq!(run(1, &mut y), OK);
        assert_eq!(y, [2.0, 3.0]);
        let mut y = [7.0f32; 2];
        assert_eq!(run(0, &mut y), INVALID);
        assert_eq!(run(-1, &mut y), INVALID);
        assert_eq!(y, [7.0; 2]);
    }

    #[test]
    fn negative_sizes_touch_nothing() {
        let mut y = [7.0f32; 2];
        // SAFETY: a negative count means no element is accessed.
        let st = unsafe { torchlift_rt_exp(std::ptr::null(), y.as_mut_ptr(), -1) };
        assert_eq!(st, INVALID);
        assert_eq!(y, [7.0, 7.0]);
        let x = [0.0f32, 1.0];
        // SAFETY: both arrays hold 2 elements.
        let st = unsafe { torchlift_rt_exp(x.as_ptr(), y.as_mut_ptr(), 2) };
        assert_eq!(st, OK);
        assert_eq!(y, [1.0, std::f32::consts::E]);
        // SAFETY: a zero count accesses nothing.
        let st = unsafe { torchlift_rt_tanh(std::ptr::null(), std::ptr::null_mut(), 0) };
        assert_eq!(st, OK);
    }

    #[test]
    fn nn_entry_points_with_inconsistent_sizes_write_nothing() {
        let x = [1.0f32; 16];
        let w = [1.0f32; 4];
        let mut y = [7.0f32; 16];
        // Output 3 x 3 where a 2 x 2 kernel over 4 x 4 gives 3 x 3 only with
        // stride 1: claim stride 2 instead.
        // SAFETY: every array is at least as long as the sizes describe.
        let st = unsafe {
            torchlift_rt_conv2d(
                x.as_ptr(),
                w.as_ptr(),
                std::ptr::null(),
                y.as_mut_ptr(),
                1,
                1,
                4,
                4,
                1,
                2,
                2,
                3,
                3,
                2,
                2,
                0,
                0,
                1,
                1,
                1,
                0,
            )
        };
        assert_eq!(st, INVALID);
        assert_eq!(y, [7.0; 16]);
        // Channels not divisible by the groups, then a negative size.
        // SAFETY: as above.
        let st = unsafe {
            torchlift_rt_conv2d(
                x.as_ptr(),
                w.as_ptr(),
                std::ptr::null(),
                y.as_mut_ptr(),
                1,
                1,
                4,
                4,
                1,
                2,
                2,
                3,
                3,
                1,
                1,
                0,
                0,
                1,
                1,
                2,
                0,
            )
        };
        assert_eq!(st, INVALID);
        assert_eq!(y, [7.0; 16]);
        // SAFETY: a negative size means no element is accessed.
        let st = unsafe {
            torchlift_rt_max_pool2d(
                x.as_ptr(),
                y.as_mut_ptr(),
                -1,
                4,
                4,
                2,
                2,
                2,
                2,
                2,
                2,
                0,
                0,
                1,
                1,
            )
        };
        assert_eq!(st, INVALID);
        assert_eq!(y, [7.0; 16]);
        // SAFETY: as above.
        let st = unsafe {
            torchlift_rt_batch_norm(
                x.as_ptr(),
                y.as_mut_ptr(),
                w.as_ptr(),
                w.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                0,
                0,
                1,
                -4,
                4,
                1e-5f64.to_bits() as i64,
            )
        };
        assert_eq!(st, INVALID);
        assert_eq!(y, [7.0; 16]);
    }

    #[test]
    fn log_softmax_rows_exponentiate_to_one() {
        let x = [1.0f32, 2.0, 3.0, -1.0, 0.0, 1.0];
        let mut y = [0.0f32; 6];
        softmax_lines(&x, &mut y, 2, 3, 1, true);
        for row in y.chunks(3) {
            let s: f32 = row.iter().map(|v| v.exp()).sum();
            assert!((s - 1.0).abs() < 1e-6);
        }
        // Along the outer axis (inner = 3): columns of a 2 x 3 array.
        softmax_lines(&x, &mut y, 1, 2, 3, false);
        for c in 0..3 {
            assert!((y[c] + y[3 + c] - 1.0).abs() < 1e-6);
        }
    }
}
