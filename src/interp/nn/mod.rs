//! Neural-network kernels of the reference interpreter.
//!
//! Every kernel works on `ndarray` arrays so it is independent of the
//! interpreter's tensor type. Inputs are views with arbitrary strides; outputs
//! are owned arrays in standard (row-major) layout. Integer parameters are
//! taken exactly as aten passes them (`&[i64]` / `i64`), including aten's
//! expansion of one-element lists, so a dispatcher can forward them untouched.
//! Bad arguments (shape mismatches, invalid parameters) are reported as
//! [`Error`]s, never as panics.

use std::fmt;

use ndarray::{ArrayViewD, LinalgScalar};
use torchlift_runtime::MatRef;

use crate::error::{Error, Result};

pub mod attention;
pub mod conv;
pub mod linear;
pub mod norm;
pub mod pool;
pub mod rnn;
pub mod upsample;

/// The floating-point element types the kernels are generic over (`f32`, `f64`).
pub trait Float:
    LinalgScalar + num_traits::Float + Send + Sync + fmt::Debug + fmt::Display + 'static
{
    /// `c = alpha * a @ b + beta * c` with `c` dense row-major, via the
    /// runtime GEMM (`sgemm` / `dgemm`).
    fn gemm(alpha: Self, a: MatRef<'_, Self>, b: MatRef<'_, Self>, beta: Self, c: &mut [Self]);
    /// Converts an `f64` (rounding to nearest for `f32`).
    fn of(x: f64) -> Self;
    /// Converts to `f64` exactly.
    fn to64(self) -> f64;
}

impl Float for f32 {
    fn gemm(alpha: f32, a: MatRef<'_, f32>, b: MatRef<'_, f32>, beta: f32, c: &mut [f32]) {
        torchlift_runtime::sgemm(alpha, a, b, beta, c)
    }
    fn of(x: f64) -> f32 {
        x as f32
    }
    fn to64(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    fn gemm(alpha: f64, a: MatRef<'_, f64>, b: MatRef<'_, f64>, beta: f64, c: &mut [f64]) {
        torchlift_runtime::dgemm(alpha, a, b, beta, c)
    }
    fn of(x: f64) -> f64 {
        x
    }
    fn to64(self) -> f64 {
        self
    }
}

/// Expands an aten integer list parameter to `n` entries: a one-element list
/// is repeated, an `n`-element list is taken as is, anything else is an error.
pub(crate) fn expand(op: &str, name: &str, p: &[i64], n: usize) -> Result<Vec<i64>> {
    match p.len() {
        1 => Ok(vec![p[0]; n]),
        len if len == n => Ok(p.to_vec()),
        len => Err(Error::other(format!(
            "{op}: {name} must have 1 or {n} elements, got {len} ({p:?})"
        ))),
    }
}

/// Converts a non-negative `i64` to `usize`, naming the parameter on failure.
pub(crate) fn to_usize(op: &str, name: &str, v: i64) -> Result<usize> {
    usize::try_from(v)
        .map_err(|_| Error::other(format!("{op}: {name} must be non-negative, got {v}")))
}

/// The elements of `a` in logical (row-major) order, as a dense vector.
pub(crate) fn dense<T: Clone>(a: &ArrayViewD<'_, T>) -> Vec<T> {
    match a.as_slice() {
        Some(s) => s.to_vec(),
        None => a.iter().cloned().collect(),
    }
}

/// Checks that `v` is a 1-D array of length `n`.
pub(crate) fn check_vec<T>(op: &str, name: &str, v: &ArrayViewD<'_, T>, n: usize) -> Result<()> {
    if v.ndim() != 1 || v.len() != n {
        return Err(Error::other(format!(
            "{op}: {name} must have shape [{n}], got {:?}",
            v.shape()
        )));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod testutil {
    use ndarray::{ArrayD, IxDyn};

    /// A small deterministic pseudo-random generator for test data.
    pub struct Lcg(pub u64);

    impl Lcg {
        pub fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        }
        pub fn array(&mut self, shape: &[usize]) -> ArrayD<f64> {
            ArrayD::from_shape_simple_fn(IxDyn(shape), || self.next())
        }
    }

    pub fn assert_close(a: &ArrayD<f64>, b: &ArrayD<f64>, tol: f64) {
        assert_eq!(a.shape(), b.shape(), "shapes differ");
        for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
            let ok = (x - y).abs() <= tol * (1.0 + y.abs()) || (x.is_nan() && y.is_nan());
            assert!(ok, "element {i}: {x} vs {y}");
        }
    }
}
