//! General matrix multiply: [`sgemm`]/[`dgemm`] on `matrixmultiply` behind a
//! safe, checked API, and the batched, multithreaded [`gemm`] with a fused
//! epilogue (module `fast`).
//!
//! Contract: `c = alpha * a @ b + beta * c`, where `a` is `m x k`, `b` is
//! `k x n` and `c` is `m x n`, each with arbitrary (non-negative or negative)
//! element strides. When `beta == 0` the kernel does not read `c`.

mod fast;

pub use fast::{gemm, Act, Bias, GemmDims, Strides};
pub(crate) use fast::{with_scratch, Scratch};

#[cfg(test)]
pub(crate) use fast::tests as fast_tests;

/// A borrowed strided matrix: `data[offset + i*rs + j*cs]` is element `(i, j)`.
#[derive(Copy, Clone, Debug)]
pub struct MatRef<'a, T> {
    pub data: &'a [T],
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub rs: isize,
    pub cs: isize,
}

impl<'a, T> MatRef<'a, T> {
    /// A dense row-major matrix.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            offset: 0,
            rows,
            cols,
            rs: cols as isize,
            cs: 1,
        }
    }

    /// Checks that every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        span_in_bounds(
            self.data.len(),
            self.offset,
            self.rows,
            self.cols,
            self.rs,
            self.cs,
        )
    }
}

fn span_in_bounds(
    len: usize,
    offset: usize,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    let mut lo = offset as i128;
    let mut hi = offset as i128;
    for (n, s) in [(rows, rs), (cols, cs)] {
        let ext = (n as i128 - 1) * s as i128;
        if ext < 0 {
            lo += ext;
        } else {
            hi += ext;
        }
    }
    lo >= 0 && hi < len as i128
}

macro_rules! gemm_fn {
    ($name:ident, $t:ty, $kernel:path) => {
        /// `c = alpha * a @ b + beta * c` on dense row-major `c` (`m x n`).
        ///
        /// Panics if the shapes disagree or a matrix does not fit its slice:
        /// those are caller bugs, never user input.
        pub fn $name(alpha: $t, a: MatRef<'_, $t>, b: MatRef<'_, $t>, beta: $t, c: &mut [$t]) {
            let (m, k, n) = (a.rows, a.cols, b.cols);
            assert_eq!(b.rows, k, "gemm: inner dimensions differ");
            assert_eq!(c.len(), m * n, "gemm: output has the wrong length");
            assert!(
                a.in_bounds() && b.in_bounds(),
                "gemm: operand out of bounds"
            );
            if m == 0 || n == 0 {
                return;
            }
            if k == 0 {
                for x in c.iter_mut() {
                    *x = if beta == 0.0 { 0.0 } else { *x * beta };
                }
                return;
            }
            // SAFETY: `in_bounds` proved that every (i, j) with i < rows and
            // j < cols of `a` and `b` addresses an element inside its slice,
            // starting at `offset`; `c` is dense `m x n` with row stride `n`,
            // as its length was checked to be `m * n`. `c` is a unique borrow,
            // so it cannot alias `a` or `b`.
            unsafe {
                $kernel(
                    m,
                    k,
                    n,
                    alpha,
                    a.data.as_ptr().add(a.offset),
                    a.rs,
                    a.cs,
                    b.data.as_ptr().add(b.offset),
                    b.rs,
                    b.cs,
                    beta,
                    c.as_mut_ptr(),
                    n as isize,
                    1,
                );
            }
        }
    };
}

gemm_fn!(sgemm, f32, matrixmultiply::sgemm);
gemm_fn!(dgemm, f64, matrixmultiply::dgemm);

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f64], b: &[f64]) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    c[i * n + j] += a[i * k + p] * b[p * n + j];
                }
            }
        }
        c
    }

    #[test]
    fn sgemm_matches_naive_product() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut c = vec![0.0f32; m * n];
        sgemm(
            1.0,
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&b, k, n),
            0.0,
            &mut c,
        );
        let a64: Vec<f64> = a.iter().map(|&x| x as f64).collect();
        let b64: Vec<f64> = b.iter().map(|&x| x as f64).collect();
        let want = naive(m, k, n, &a64, &b64);
        for (g, w) in c.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-5, "{g} vs {w}");
        }
    }

    #[test]
    fn transposed_operand_through_strides() {
        // b given as its transpose (n x k, row-major) read with swapped strides.
        let (m, k, n) = (2, 3, 2);
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let bt = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]; // rows of b^T
        let b = MatRef {
            data: &bt[..],
            offset: 0,
            rows: k,
            cols: n,
            rs: 1,
            cs: k as isize,
        };
        let mut c = [0.0f64; 4];
        dgemm(1.0, MatRef::row_major(&a, m, k), b, 0.0, &mut c);
        assert_eq!(c, [4.0, 2.0, 10.0, 5.0]);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn rejects_operand_outside_its_slice() {
        let a = [1.0f32; 4];
        let mut c = [0.0f32; 4];
        let big = MatRef {
            data: &a[..],
            offset: 0,
            rows: 2,
            cols: 3,
            rs: 3,
            cs: 1,
        };
        sgemm(1.0, big, MatRef::row_major(&a, 3, 2), 0.0, &mut c);
    }
}
