//! Reductions, scans and softmax.
//!
//! Float reductions accumulate in f64; integer and bool sums and products in
//! wrapping i64, as torch does. `dims: None` (or an empty list) reduces all dims.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::interp::tensor::{wrap_dim, Element, Tensor};

/// Which dims a reduction folds away.
fn reduced_mask(x: &Tensor, dims: Option<&[i64]>) -> Result<Vec<bool>> {
    let nd = x.dim();
    match dims {
        None | Some([]) => Ok(vec![true; nd]),
        Some(ds) => {
            let mut m = vec![false; nd];
            for &d in ds {
                let w = wrap_dim(d, nd)?;
                if nd > 0 {
                    if m[w] {
                        return Err(Error::other(format!("dim {d} appears twice in {ds:?}")));
                    }
                    m[w] = true;
                }
            }
            Ok(m)
        }
    }
}

fn out_shape(x: &Tensor, red: &[bool], keepdim: bool) -> Vec<usize> {
    let mut s = Vec::new();
    for (d, &n) in x.sizes().iter().enumerate() {
        if !red[d] {
            s.push(n);
        } else if keepdim {
            s.push(1);
        }
    }
    s
}

/// Applies `f` to every reduction row (the reduced dims, in C order) and
/// returns the per-row results in the order of the kept dims.
fn reduce_rows<T: Element, O>(x: &Tensor, red: &[bool], f: impl Fn(&[T]) -> O) -> Result<Vec<O>> {
    let nd = x.dim();
    let mut perm: Vec<i64> = (0..nd).filter(|&d| !red[d]).map(|d| d as i64).collect();
    perm.extend((0..nd).filter(|&d| red[d]).map(|d| d as i64));
    let xp = x.permute(&perm)?;
    let inner: usize = (0..nd).filter(|&d| red[d]).map(|d| x.sizes()[d]).product();
    let outer: usize = (0..nd).filter(|&d| !red[d]).map(|d| x.sizes()[d]).product();
    if inner == 0 {
        return Ok((0..outer).map(|_| f(&[])).collect());
    }
    let data = xp.to_vec_as::<T>();
    Ok(data.chunks(inner).map(f).collect())
}

fn finish<O: Element>(v: Vec<O>, shape: &[usize], out: DType) -> Tensor {
    Tensor::from_vec_unchecked(v, shape).to_dtype(out)
}

fn sum_dtype(x: &Tensor, dtype: Option<DType>) -> DType {
    dtype.unwrap_or(if x.dtype().is_float() {
        x.dtype()
    } else {
        DType::I64
    })
}

/// `aten.sum.dim_IntList` / `aten.sum` (ints and bool sum to i64).
pub fn sum(
    x: &Tensor,
    dims: Option<&[i64]>,
    keepdim: bool,
    dtype: Option<DType>,
) -> Result<Tensor> {
    let red = reduced_mask(x, dims)?;
    let shape = out_shape(x, &red, keepdim);
    let out = sum_dtype(x, dtype);
    if out.is_float() {
        let v = reduce_rows::<f64, f64>(x, &red, |r| r.iter().sum())?;
        Ok(finish(v, &shape, out))
    } else {
        let v =
            reduce_rows::<i64, i64>(x, &red, |r| r.iter().fold(0i64, |a, &b| a.wrapping_add(b)))?;
        Ok(finish(v, &shape, out))
    }
}

/// `aten.prod.dim_int` / `aten.prod` (ints and bool multiply in i64).
pub fn prod(
    x: &Tensor,
    dims: Option<&[i64]>,
    keepdim: bool,
    dtype: Option<DType>,
) -> Result<Tensor> {
    let red = reduced_mask(x, dims)?;
    let shape = out_shape(x, &red, keepdim);
    let out = sum_dtype(x, dtype);
    if out.is_float() {
        let v = reduce_rows::<f64, f64>(x, &red, |r| r.iter().product())?;
        Ok(finish(v, &shape, out))
    } else {
        let v =
            reduce_rows::<i64, i64>(x, &red, |r| r.iter().fold(1i64, |a, &b| a.wrapping_mul(b)))?;
        Ok(finish(v, &shape, out))
    }
}

/// `aten.mean.dim` / `aten.mean` (float dtypes only).
pub fn mean(
    x: &Tensor,
    dims: Option<&[i64]>,
    keepdim: bool,
    dtype: Option<DType>,
) -> Result<Tensor> {
    let out = dtype.unwrap_or(x.dtype());
    if !out.is_float() {
        return Err(Error::other(format!(
            "mean: needs a float dtype, got {out}"
        )));
    }
    let red = reduced_mask(x, dims)?;
    let shape = out_shape(x, &red, keepdim);
    let v = reduce_rows::<f64, f64>(x, &red, |r| r.iter().sum::<f64>() / r.len() as f64)?;
    Ok(finish(v, &shape, out))
}

fn extreme(
    name: &str,
    x: &Tensor,
    dims: Option<&[i64]>,
    keepdim: bool,
    is_max: bool,
) -> Result<Tensor> {
    let red = reduced_mask(x, dims)?;
    if red.iter().zip(x.sizes()).any(|(&r, &n)| r && n == 0) {
        return Err(Error::other(format!("{name}: reduction over an empty dim")));
    }
    let shape = out_shape(x, &red, keepdim);
    if x.dtype().is_float() {
        let v = reduce_rows::<f64, f64>(x, &red, |r| {
            r.iter().fold(
                if is_max {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                },
                |a, &b| {
                    if a.is_nan() || b.is_nan() {
                        f64::NAN
                    } else if is_max {
                        a.max(b)
                    } else {
                        a.min(b)
                    }
                },
            )
        })?;
        Ok(finish(v, &shape, x.dtype()))
    } else {
        let v = reduce_rows::<i64, i64>(x, &red, |r| {
            if is_max {
                r.iter().copied().max().unwrap_or(i64::MIN)
            } else {
                r.iter().copied().min().unwrap_or(i64::MAX)
            }
        })?;
        Ok(finish(v, &shape, x.dtype()))
    }
}

/// `aten.amax` (NaN-propagating).
pub fn amax(x: &Tensor, dims: Option<&[i64]>, keepdim: bool) -> Result<Tensor> {
    extreme("amax", x, dims, keepdim, true)
}

/// `aten.amin` (NaN-propagating).
pub fn amin(x: &Tensor, dims: Option<&[i64]>, keepdim: bool) -> Result<Tensor> {
    extreme("amin", x, dims, keepdim, false)
}

/// Index of the first extreme element of `r` (NaN counts as extreme).
fn arg_extreme<T: PartialOrd + Copy>(
    r: &[T],
    is_max: bool,
    is_nan: impl Fn(T) -> bool,
) -> (T, i64) {
    let mut bi = 0usize;
    for i in 1..r.len() {
        let (b, v) = (r[bi], r[i]);
        if is_nan(b) {
            break;
        }
        if is_nan(v) || (is_max && v > b) || (!is_max && v < b) {
            bi = i;
        }
    }
    (r[bi], bi as i64)
}

fn dim_extreme(
    name: &str,
    x: &Tensor,
    dim: i64,
    keepdim: bool,
    is_max: bool,
) -> Result<(Tensor, Tensor)> {
    let d = wrap_dim(dim, x.dim())?;
    let mut red = vec![false; x.dim()];
    if x.dim() > 0 {
        if x.sizes()[d] == 0 {
            return Err(Error::other(format!("{name}: reduction over an empty dim")));
        }
        red[d] = true;
    }
    let shape = out_shape(x, &red, keepdim);
    if x.dtype().is_float() {
        let r = reduce_rows::<f64, (f64, i64)>(x, &red, |r| arg_extreme(r, is_max, f64::is_nan))?;
        let (v, i): (Vec<f64>, Vec<i64>) = r.into_iter().unzip();
        Ok((
            finish(v, &shape, x.dtype()),
            Tensor::from_vec_unchecked(i, &shape),
        ))
    } else {
        let r = reduce_rows::<i64, (i64, i64)>(x, &red, |r| arg_extreme(r, is_max, |_| false))?;
        let (v, i): (Vec<i64>, Vec<i64>) = r.into_iter().unzip();
        Ok((
            finish(v, &shape, x.dtype()),
            Tensor::from_vec_unchecked(i, &shape),
        ))
    }
}

/// `aten.max.dim`: (values, indices) along `dim`.
pub fn max_dim(x: &Tensor, dim: i64, keepdim: bool) -> Result<(Tensor, Tensor)> {
    dim_extreme("max", x, dim, keepdim, true)
}

/// `aten.min.dim`: (values, indices) along `dim`.
pub fn min_dim(x: &Tensor, dim: i64, keepdim: bool) -> Result<(Tensor, Tensor)> {
    dim_extreme("min", x, dim, keepdim, false)
}

/// `aten.max` (no dim): the largest element as a 0-d tensor.
pub fn max_all(x: &Tensor) -> Result<Tensor> {
    amax(x, None, false)
}

/// `aten.min` (no dim): the smallest element as a 0-d tensor.
pub fn min_all(x: &Tensor) -> Result<Tensor> {
    amin(x, None, false)
}

fn arg(x: &Tensor, dim: Option<i64>, keepdim: bool, is_max: bool) -> Result<Tensor> {
    match dim {
        Some(d) => Ok(dim_extreme("argmax", x, d, keepdim, is_max)?.1),
        None => {
            if x.numel() == 0 {
                return Err(Error::other("argmax/argmin of an empty tensor"));
            }
            let flat = x.reshape(&[-1])?;
            let (_, i) = dim_extreme("argmax", &flat, 0, false, is_max)?;
            if keepdim {
                let ones: Vec<i64> = vec![1; x.dim()];
                i.reshape(&ones)
            } else {
                Ok(i)
            }
        }
    }
}

/// `aten.argmax` (first index of the maximum; `dim` None flattens).
pub fn argmax(x: &Tensor, dim: Option<i64>, keepdim: bool) -> Result<Tensor> {
    arg(x, dim, keepdim, true)
}

/// `aten.argmin` (first index of the minimum; `dim` None flattens).
pub fn argmin(x: &Tensor, dim: Option<i64>, keepdim: bool) -> Result<Tensor> {
    arg(x, dim, keepdim, false)
}

fn var_rows(r: &[f64], correction: f64) -> f64 {
    let n = r.len() as f64;
    let m = r.iter().sum::<f64>() / n;
    let ss: f64 = r.iter().map(|v| (v - m) * (v - m)).sum();
    ss / (n - correction).max(0.0)
}

/// `aten.var.correction` (float dtypes).
pub fn var(x: &Tensor, dims: Option<&[i64]>, correction: f64, keepdim: bool) -> Result<Tensor> {
    if !x.dtype().is_float() {
        return Err(Error::other(format!(
            "var: needs a float tensor, got {}",
            x.dtype()
        )));
    }
    let red = reduced_mask(x, dims)?;
    let shape = out_shape(x, &red, keepdim);
    let v = reduce_rows::<f64, f64>(x, &red, |r| var_rows(r, correction))?;
    Ok(finish(v, &shape, x.dtype()))
}

/// `aten.std.correction` (float dtypes).
pub fn std(x: &Tensor, dims: Option<&[i64]>, correction: f64, keepdim: bool) -> Result<Tensor> {
    if !x.dtype().is_float() {
        return Err(Error::other(format!(
            "std: needs a float tensor, got {}",
            x.dtype()
        )));
    }
    let red = reduced_mask(x, dims)?;
    let shape = out_shape(x, &red, keepdim);
    let v = reduce_rows::<f64, f64>(x, &red, |r| var_rows(r, correction).sqrt())?;
    Ok(finish(v, &shape, x.dtype()))
}

/// `aten.var_mean.correction`: (var, mean).
pub fn var_mean(
    x: &Tensor,
    dims: Option<&[i64]>,
    correction: f64,
    keepdim: bool,
) -> Result<(Tensor, Tensor)> {
    Ok((
        var(x, dims, correction, keepdim)?,
        mean(x, dims, keepdim, None)?,
    ))
}

/// `aten.any` / `aten.any.dims` (result is bool).
pub fn any(x: &Tensor, dims: Option<&[i64]>, keepdim: bool) -> Result<Tensor> {
    let red = reduced_mask(x, dims)?;
    let shape = out_shape(x, &red, keepdim);
    let v = reduce_rows::<bool, bool>(x, &red, |r| r.iter().any(|&b| b))?;
    Ok(Tensor::from_vec_unchecked(v, &shape))
}

/// `aten.all` / `aten.all.dims` (result is bool).
pub fn all(x: &Tensor, dims: Option<&[i64]>, keepdim: bool) -> Result<Tensor> {
    let red = reduced_mask(x, dims)?;
    let shape = out_shape(x, &red, keepdim);
    let v = reduce_rows::<bool, bool>(x, &red, |r| r.iter().all(|&b| b))?;
    Ok(Tensor::from_vec_unchecked(v, &shape))
}

/// Runs `f` over every row along `dim` (moved last) and puts `dim` back.
fn along_dim<T: Element, O: Element>(
    x: &Tensor,
    dim: i64,
    f: impl Fn(&[T], &mut Vec<O>),
) -> Result<Tensor> {
    if x.dim() == 0 {
        wrap_dim(dim, 0)?;
        let mut out = Vec::with_capacity(1);
        f(&x.to_vec_as::<T>(), &mut out);
        return Ok(Tensor::from_vec_unchecked(out, &[]));
    }
    let d = wrap_dim(dim, x.dim())?;
    let xm = x.movedim(d as i64, -1)?;
    let n = xm.sizes()[xm.dim() - 1];
    let data = xm.to_vec_as::<T>();
    let mut out = Vec::with_capacity(data.len());
    if n > 0 {
        for row in data.chunks(n) {
            f(row, &mut out);
        }
    }
    let t = Tensor::from_vec_unchecked(out, xm.sizes());
    Ok(t.movedim(-1, d as i64)?.contiguous())
}

/// `aten.cumsum` (ints and bool accumulate in i64 unless `dtype` says otherwise).
pub fn cumsum(x: &Tensor, dim: i64, dtype: Option<DType>) -> Result<Tensor> {
    let out = sum_dtype(x, dtype);
    let t = if out.is_float() {
        along_dim::<f64, f64>(x, dim, |r, o| {
            let mut a = 0.0;
            for &v in r {
                a += v;
                o.push(a);
            }
        })?
    } else {
        along_dim::<i64, i64>(x, dim, |r, o| {
            let mut a = 0i64;
            for &v in r {
                a = a.wrapping_add(v);
                o.push(a);
            }
        })?
    };
    Ok(t.to_dtype(out))
}

/// `aten.cumprod`.
pub fn cumprod(x: &Tensor, dim: i64, dtype: Option<DType>) -> Result<Tensor> {
    let out = sum_dtype(x, dtype);
    let t = if out.is_float() {
        along_dim::<f64, f64>(x, dim, |r, o| {
            let mut a = 1.0;
            for &v in r {
                a *= v;
                o.push(a);
            }
        })?
    } else {
        along_dim::<i64, i64>(x, dim, |r, o| {
            let mut a = 1i64;
            for &v in r {
                a = a.wrapping_mul(v);
                o.push(a);
            }
        })?
    };
    Ok(t.to_dtype(out))
}

fn lse(r: &[f64]) -> f64 {
    let m = r.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    let m = if m.is_infinite() { 0.0 } else { m };
    r.iter().map(|v| (v - m).exp()).sum::<f64>().ln() + m
}

/// `aten.logsumexp` (integers give f32).
pub fn logsumexp(x: &Tensor, dims: Option<&[i64]>, keepdim: bool) -> Result<Tensor> {
    let out = if x.dtype().is_float() {
        x.dtype()
    } else {
        DType::F32
    };
    let red = reduced_mask(x, dims)?;
    let shape = out_shape(x, &red, keepdim);
    let v = reduce_rows::<f64, f64>(x, &red, lse)?;
    Ok(finish(v, &shape, out))
}

fn softmax_impl(x: &Tensor, dim: i64, log: bool, safe: bool) -> Result<Tensor> {
    if !x.dtype().is_float() {
        return Err(Error::other(format!(
            "softmax: needs a float tensor, got {}",
            x.dtype()
        )));
    }
    let t = along_dim::<f64, f64>(x, dim, |r, o| {
        if safe && r.iter().all(|&v| v == f64::NEG_INFINITY) {
            o.extend(r.iter().map(|_| 0.0));
            return;
        }
        let m = r.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        let m = if m.is_infinite() { 0.0 } else { m };
        if log {
            let l = r.iter().map(|v| (v - m).exp()).sum::<f64>().ln() + m;
            o.extend(r.iter().map(|v| v - l));
        } else {
            let s: f64 = r.iter().map(|v| (v - m).exp()).sum();
            o.extend(r.iter().map(|v| (v - m).exp() / s));
        }
    })?;
    Ok(t.to_dtype(x.dtype()))
}

/// `aten._softmax` / `aten.softmax.int` (numerically stable; the
/// half-to-float flag is not needed: math runs in f64).
pub fn softmax(x: &Tensor, dim: i64) -> Result<Tensor> {
    softmax_impl(x, dim, false, false)
}

/// `aten._safe_softmax`: as [`softmax`], but a row whose entries are all
/// `-inf` gives zeros rather than NaN (what attention with a fully masked
/// row returns since torch 2.5).
pub fn safe_softmax(x: &Tensor, dim: i64) -> Result<Tensor> {
    softmax_impl(x, dim, false, true)
}

/// `aten._log_softmax` / `aten.log_softmax.int`.
pub fn log_softmax(x: &Tensor, dim: i64) -> Result<Tensor> {
    softmax_impl(x, dim, true, false)
}

/// `aten.linalg_vector_norm` / `aten.norm.ScalarOpt_dim` for p = 1, 2, inf,
/// -inf, 0 or any other positive p.
pub fn norm(x: &Tensor, p: f64, dims: Option<&[i64]>, keepdim: bool) -> Result<Tensor> {
    if !x.dtype().is_float() {
        return Err(Error::other(format!(
            "norm: needs a float tensor, got {}",
            x.dtype()
        )));
    }
    let red = reduced_mask(x, dims)?;
    let shape = out_shape(x, &red, keepdim);
    let v = reduce_rows::<f64, f64>(x, &red, |r| {
        if p == f64::INFINITY {
            r.iter().fold(0.0, |a: f64, b| a.max(b.abs()))
        } else if p == f64::NEG_INFINITY {
            r.iter().fold(f64::INFINITY, |a: f64, b| a.min(b.abs()))
        } else if p == 0.0 {
            r.iter().filter(|v| **v != 0.0).count() as f64
        } else if p == 2.0 {
            r.iter().map(|v| v * v).sum::<f64>().sqrt()
        } else if p == 1.0 {
            r.iter().map(|v| v.abs()).sum()
        } else {
            r.iter().map(|v| v.abs().powf(p)).sum::<f64>().powf(1.0 / p)
        }
    })?;
    Ok(finish(v, &shape, x.dtype()))
}

/// Total order for sorting: NaN is larger than every number, as in torch.
fn cmp_f64(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
    }
}

/// Sorted (values, indices) along `dim`, keeping the first `k` of each row.
fn sort_impl(x: &Tensor, dim: i64, descending: bool, k: Option<usize>) -> Result<(Tensor, Tensor)> {
    let n = if x.dim() == 0 {
        1
    } else {
        x.sizes()[wrap_dim(dim, x.dim())?]
    };
    let k = k.unwrap_or(n);
    if k > n {
        return Err(Error::other(format!(
            "topk: k = {k} is larger than the dim size {n}"
        )));
    }
    let order = |r: &[f64]| {
        let mut idx: Vec<usize> = (0..r.len()).collect();
        // A stable sort keeps equal elements in their original order.
        idx.sort_by(|&i, &j| {
            let o = cmp_f64(r[i], r[j]);
            if descending {
                o.reverse()
            } else {
                o
            }
        });
        idx.truncate(k);
        idx
    };
    let narrowed = |t: Tensor| -> Result<Tensor> {
        if x.dim() == 0 {
            Ok(t)
        } else {
            t.narrow(dim, 0, k as i64).map(|v| v.contiguous())
        }
    };
    let ix = along_dim::<f64, i64>(x, dim, |r, o| {
        let idx = order(r);
        o.extend(idx.iter().map(|&i| i as i64));
        o.resize(o.len() + r.len() - idx.len(), 0);
    })?;
    let ix = narrowed(ix)?;
    let vals = if x.dim() == 0 {
        x.clone_data()
    } else {
        crate::interp::ops::index::gather(x, dim, &ix)?
    };
    Ok((vals, ix))
}

/// `aten.sort` / `aten.sort.stable`: (values, indices); NaN sorts last
/// ascending, and equal elements keep their order.
pub fn sort(x: &Tensor, dim: i64, descending: bool) -> Result<(Tensor, Tensor)> {
    sort_impl(x, dim, descending, None)
}

/// `aten.argsort` / `aten.argsort.stable`.
pub fn argsort(x: &Tensor, dim: i64, descending: bool) -> Result<Tensor> {
    Ok(sort_impl(x, dim, descending, None)?.1)
}

/// `aten.topk`: the `k` largest (or smallest) along `dim`, in sorted order.
pub fn topk(x: &Tensor, k: i64, dim: i64, largest: bool) -> Result<(Tensor, Tensor)> {
    let k = usize::try_from(k).map_err(|_| Error::other(format!("topk: negative k {k}")))?;
    sort_impl(x, dim, largest, Some(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: &[f32], s: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), s).unwrap()
    }

    #[test]
    fn sum_dims_and_dtypes() {
        let x = f(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        assert_eq!(
            sum(&x, Some(&[1]), false, None).unwrap().to_f64_vec(),
            vec![6., 15.]
        );
        let k = sum(&x, Some(&[0]), true, None).unwrap();
        assert_eq!(k.sizes(), &[1, 3]);
        assert_eq!(k.to_f64_vec(), vec![5., 7., 9.]);
        let all = sum(&x, None, false, None).unwrap();
        assert_eq!(all.sizes(), &[] as &[usize]);
        assert_eq!(all.item_f64().unwrap(), 21.0);
        let b = Tensor::from_vec(vec![true, true, false], &[3]).unwrap();
        let s = sum(&b, None, false, None).unwrap();
        assert_eq!((s.dtype(), s.item_i64().unwrap()), (DType::I64, 2));
        assert!(sum(&x, Some(&[2]), false, None).is_err());
        assert!(mean(&b, None, false, None).is_err());
        assert_eq!(
            mean(&x, Some(&[-1]), false, None).unwrap().to_f64_vec(),
            vec![2., 5.]
        );
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let x = f(&[1., 2., 3., 1000., 1001., 1002.], &[2, 3]);
        let s = softmax(&x, 1).unwrap();
        let v = s.to_f64_vec();
        assert!((v[0] + v[1] + v[2] - 1.0).abs() < 1e-6);
        assert!((v[3] + v[4] + v[5] - 1.0).abs() < 1e-6);
        assert!((v[0] - v[3]).abs() < 1e-6);
        let l = log_softmax(&x, 0).unwrap().to_f64_vec();
        assert!(l[0] < -900.0 && l[3].abs() < 1e-6);
    }

    #[test]
    fn max_argmax_var_cumsum() {
        let x = f(&[3., 7., 7., 1., f32::NAN, 2.], &[2, 3]);
        let (v, i) = max_dim(&x, 1, false).unwrap();
        assert_eq!(i.to_i64_vec(), vec![1, 1]);
        assert!(v.to_f64_vec()[1].is_nan());
        assert_eq!(
            argmin(&x, Some(0), true).unwrap().to_i64_vec(),
            vec![1, 1, 1]
        );
        assert_eq!(
            argmax(&f(&[1., 5., 5.], &[3]), None, false)
                .unwrap()
                .item_i64()
                .unwrap(),
            1
        );
        let y = f(&[1., 2., 3., 4.], &[4]);
        assert!((var(&y, None, 1.0, false).unwrap().item_f64().unwrap() - 5.0 / 3.0).abs() < 1e-6);
        assert!(
            (std(&y, None, 0.0, false).unwrap().item_f64().unwrap() - 1.25f64.sqrt()).abs() < 1e-6
        );
        let xi = Tensor::from_vec(vec![1i32, 2, 3, 4, 5, 6], &[2, 3]).unwrap();
        let c = cumsum(&xi, 0, None).unwrap();
        assert_eq!(c.dtype(), DType::I64);
        assert_eq!(c.to_i64_vec(), vec![1, 2, 3, 5, 7, 9]);
        assert_eq!(
            cumprod(&xi, 1, None).unwrap().to_i64_vec(),
            vec![1, 2, 6, 4, 20, 120]
        );
        assert!(amax(&f(&[], &[0]), None, false).is_err());
        let (sv, si) = sort(&f(&[3., f32::NAN, 1., 3.], &[4]), 0, false).unwrap();
        assert_eq!(si.to_i64_vec(), vec![2, 0, 3, 1]);
        assert!(sv.to_f64_vec()[3].is_nan());
        let (tv, ti) = topk(&f(&[1., 5., 2., 4., 0., 9.], &[2, 3]), 2, 1, true).unwrap();
        assert_eq!(tv.to_f64_vec(), vec![5., 2., 9., 4.]);
        assert_eq!(ti.to_i64_vec(), vec![1, 2, 2, 0]);
        assert!(topk(&y, 5, 0, true).is_err());
        let lse = logsumexp(&f(&[0., 0.], &[2]), None, false)
            .unwrap()
            .item_f64()
            .unwrap();
        assert!((lse - 2f64.ln()).abs() < 1e-6);
    }
}
