//! Fully connected layers and embedding lookup.

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;
use torchlift_runtime::MatRef;

use super::{check_vec, dense, Float};
use crate::error::{Error, Result};

/// Rows per parallel GEMM task in [`linear`].
const ROW_BLOCK: usize = 64;

/// `aten.linear(input, weight, bias)`: `input @ weight^T + bias`.
///
/// `input` is `(*, in)` (any number of leading dims, including none),
/// `weight` is `(out, in)`, `bias` is `(out,)`; the result is `(*, out)`.
pub fn linear<T: Float>(
    input: ArrayViewD<'_, T>,
    weight: ArrayViewD<'_, T>,
    bias: Option<ArrayViewD<'_, T>>,
) -> Result<ArrayD<T>> {
    const OP: &str = "linear";
    if weight.ndim() != 2
        || input.ndim() == 0
        || input.shape()[input.ndim() - 1] != weight.shape()[1]
    {
        return Err(Error::other(format!(
            "{OP}: input of shape {:?} and weight of shape {:?} are incompatible (expected input (*, in), weight (out, in))",
            input.shape(),
            weight.shape()
        )));
    }
    let (out_f, in_f) = (weight.shape()[0], weight.shape()[1]);
    if let Some(b) = &bias {
        check_vec(OP, "bias", b, out_f)?;
    }
    let x = dense(&input);
    let w = dense(&weight);
    let m: usize = input.shape()[..input.ndim() - 1].iter().product();
    let bv: Option<Vec<T>> = bias.map(|b| b.iter().copied().collect());
    let mut out = vec![T::zero(); m * out_f];
    if let Some(bv) = &bv {
        for row in out.chunks_mut(out_f.max(1)) {
            row.copy_from_slice(&bv[..row.len()]);
        }
    }
    let beta = if bv.is_some() { T::one() } else { T::zero() };
    if out_f > 0 && m > 0 {
        // weight^T as an (in, out) matrix.
        let wt = MatRef {
            data: &w,
            offset: 0,
            rows: in_f,
            cols: out_f,
            rs: 1,
            cs: in_f as isize,
        };
        out.par_chunks_mut(ROW_BLOCK * out_f)
            .enumerate()
            .for_each(|(blk, c)| {
                let rows = c.len() / out_f;
                let a = MatRef {
                    data: &x,
                    offset: blk * ROW_BLOCK * in_f,
                    rows,
                    cols: in_f,
                    rs: in_f as isize,
                    cs: 1,
                };
                T::gemm(T::one(), a, wt, beta, c);
            });
    }
    let mut shape = input.shape()[..input.ndim() - 1].to_vec();
    shape.push(out_f);
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| Error::other(format!("{OP}: {e}")))
}

/// `aten.embedding(weight, indices, padding_idx, scale_grad_by_freq,
/// sparse)`: rows of `weight` (`(num, dim)`) gathered by `indices` (any
/// shape); the result is `indices.shape + [dim]`. `padding_idx` only affects
/// gradients and is ignored here. An index outside `[0, num)` is an error
/// naming the index.
pub fn embedding<T: Float>(
    weight: ArrayViewD<'_, T>,
    indices: ArrayViewD<'_, i64>,
    _padding_idx: i64,
) -> Result<ArrayD<T>> {
    const OP: &str = "embedding";
    if weight.ndim() != 2 {
        return Err(Error::other(format!(
            "{OP}: weight must be 2-D (num_embeddings, dim), got shape {:?}",
            weight.shape()
        )));
    }
    let (num, dim) = (weight.shape()[0], weight.shape()[1]);
    let w = dense(&weight);
    let mut out = Vec::with_capacity(indices.len() * dim);
    for &i in indices.iter() {
        if i < 0 || i as u64 >= num as u64 {
            return Err(Error::other(format!(
                "{OP}: index {i} is out of range for a weight with {num} rows"
            )));
        }
        let r = i as usize;
        out.extend_from_slice(&w[r * dim..(r + 1) * dim]);
    }
    let mut shape = indices.shape().to_vec();
    shape.push(dim);
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| Error::other(format!("{OP}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::nn::testutil::{assert_close, Lcg};

    #[test]
    fn linear_matches_naive() {
        let mut r = Lcg(4);
        for shape in [vec![5], vec![3, 5], vec![2, 70, 5], vec![0, 5]] {
            let x = r.array(&shape);
            let w = r.array(&[4, 5]);
            let b = r.array(&[4]);
            let y = linear(x.view(), w.view(), Some(b.view())).unwrap();
            let y0 = linear(x.view(), w.view(), None).unwrap();
            let mut oshape = shape.clone();
            *oshape.last_mut().unwrap() = 4;
            assert_eq!(y.shape(), oshape.as_slice());
            let x2 = x.to_shape((x.len() / 5, 5)).unwrap();
            let w2 = w.view().into_dimensionality::<ndarray::Ix2>().unwrap();
            let e = x2
                .dot(&w2.t())
                .into_dyn()
                .into_shape_with_order(IxDyn(&oshape))
                .unwrap();
            assert_close(&y0, &e, 1e-12);
            assert_close(&y, &(&e + &b), 1e-12);
        }
        let x = r.array(&[3, 6]);
        let w = r.array(&[4, 5]);
        assert!(linear(x.view(), w.view(), None).is_err());
        let x = r.array(&[3, 5]);
        let b = r.array(&[5]);
        assert!(linear(x.view(), w.view(), Some(b.view())).is_err());
        // transposed (non-contiguous) weight
        let wt = r.array(&[5, 4]);
        let y = linear(x.view(), wt.t().into_dyn(), None).unwrap();
        assert_close(
            &y,
            &x.view()
                .into_dimensionality::<ndarray::Ix2>()
                .unwrap()
                .dot(&wt.view().into_dimensionality::<ndarray::Ix2>().unwrap())
                .into_dyn(),
            1e-12,
        );
    }

    #[test]
    fn embedding_gathers_and_checks() {
        let w = ArrayD::from_shape_vec(IxDyn(&[3, 2]), vec![0.0f32, 1.0, 10.0, 11.0, 20.0, 21.0])
            .unwrap();
        let idx = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![2i64, 0, 1, 1]).unwrap();
        let y = embedding(w.view(), idx.view(), -1).unwrap();
        assert_eq!(y.shape(), &[2, 2, 2]);
        assert_eq!(
            y.iter().copied().collect::<Vec<_>>(),
            vec![20., 21., 0., 1., 10., 11., 10., 11.]
        );
        let bad = ArrayD::from_shape_vec(IxDyn(&[2]), vec![1i64, 3]).unwrap();
        let e = embedding(w.view(), bad.view(), -1).unwrap_err().to_string();
        assert!(e.contains("index 3"), "{e}");
        let neg = ArrayD::from_shape_vec(IxDyn(&[1]), vec![-1i64]).unwrap();
        assert!(embedding(w.view(), neg.view(), -1).is_err());
    }
}
