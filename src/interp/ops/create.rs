//! Factory kernels. When no dtype is given, floats default to f32 as in
//! torch, and `full` infers the dtype from the fill value.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::interp::tensor::{Scalar, Tensor};

/// Largest element count a factory will allocate.
const MAX_NUMEL: usize = 1 << 40;

fn shape(sizes: &[i64]) -> Result<Vec<usize>> {
    let v: Vec<usize> = sizes
        .iter()
        .map(|&s| {
            usize::try_from(s).map_err(|_| Error::other(format!("negative size in {sizes:?}")))
        })
        .collect::<Result<_>>()?;
    let n = v.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
    match n {
        Some(n) if n <= MAX_NUMEL => Ok(v),
        _ => Err(Error::other(format!(
            "shape {sizes:?} has too many elements"
        ))),
    }
}

/// `aten.arange.start_step` (and `arange`, `arange.start`): all-integer
/// arguments give i64, otherwise f32; length `ceil((end - start) / step)`.
pub fn arange(start: Scalar, end: Scalar, step: Scalar, dtype: Option<DType>) -> Result<Tensor> {
    let all_int = [start, end, step].iter().all(|s| !s.is_float());
    let dt = dtype.unwrap_or(if all_int { DType::I64 } else { DType::F32 });
    let (s, e, st) = (start.to_f64(), end.to_f64(), step.to_f64());
    if st == 0.0 || !st.is_finite() || !s.is_finite() || !e.is_finite() {
        return Err(Error::other(
            "arange: step must be nonzero and bounds finite",
        ));
    }
    if (st > 0.0 && e < s) || (st < 0.0 && e > s) {
        return Err(Error::other(format!(
            "arange: bounds {s}..{e} are inconsistent with step {st}"
        )));
    }
    if all_int {
        let (s, e, st) = (start.to_i64(), end.to_i64(), step.to_i64());
        let len = ((e as i128 - s as i128) + st as i128 - st.signum() as i128) / st as i128;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= MAX_NUMEL)
            .ok_or_else(|| Error::other("arange: bad length"))?;
        let v: Vec<i64> = (0..len as i64).map(|i| s + i * st).collect();
        return Ok(Tensor::from_vec_unchecked(v, &[len]).to_dtype(dt));
    }
    let len = ((e - s) / st).ceil();
    if len > MAX_NUMEL as f64 {
        return Err(Error::other("arange: too many elements"));
    }
    let len = len.max(0.0) as usize;
    let v: Vec<f64> = (0..len).map(|i| s + i as f64 * st).collect();
    Ok(Tensor::from_vec_unchecked(v, &[len]).to_dtype(dt))
}

/// `aten.full`: the dtype defaults to the value's (bool, i64 or f32).
pub fn full(sizes: &[i64], value: Scalar, dtype: Option<DType>) -> Result<Tensor> {
    Ok(Tensor::full(
        dtype.unwrap_or(value.default_dtype()),
        &shape(sizes)?,
        value,
    ))
}

/// `aten.zeros` (default f32).
pub fn zeros(sizes: &[i64], dtype: Option<DType>) -> Result<Tensor> {
    Ok(Tensor::full(
        dtype.unwrap_or(DType::F32),
        &shape(sizes)?,
        Scalar::Int(0),
    ))
}

/// `aten.ones` (default f32).
pub fn ones(sizes: &[i64], dtype: Option<DType>) -> Result<Tensor> {
    Ok(Tensor::full(
        dtype.unwrap_or(DType::F32),
        &shape(sizes)?,
        Scalar::Int(1),
    ))
}

/// `aten.empty.memory_format` (zero-filled, so results are deterministic).
pub fn empty(sizes: &[i64], dtype: Option<DType>) -> Result<Tensor> {
    zeros(sizes, dtype)
}

/// `aten.empty_strided` (zero-filled, with the requested strides).
pub fn empty_strided(sizes: &[i64], strides: &[i64], dtype: Option<DType>) -> Result<Tensor> {
    let sz = shape(sizes)?;
    let st = shape(strides)?;
    if sz.len() != st.len() {
        return Err(Error::other(
            "empty_strided: sizes and strides differ in length",
        ));
    }
    let span = if sz.contains(&0) {
        0
    } else {
        sz.iter()
            .zip(&st)
            .try_fold(1usize, |a, (&n, &s)| a.checked_add((n - 1).checked_mul(s)?))
            .filter(|&v| v <= MAX_NUMEL)
            .ok_or_else(|| Error::other("empty_strided: the strides span too many elements"))?
    };
    let base = Tensor::full(dtype.unwrap_or(DType::F32), &[span], Scalar::Int(0));
    base.as_strided(sizes, strides, Some(0))
}

/// `aten.full_like`.
pub fn full_like(x: &Tensor, value: Scalar, dtype: Option<DType>) -> Result<Tensor> {
    Ok(Tensor::full(dtype.unwrap_or(x.dtype()), x.sizes(), value))
}

/// `aten.zeros_like`.
pub fn zeros_like(x: &Tensor, dtype: Option<DType>) -> Result<Tensor> {
    full_like(x, Scalar::Int(0), dtype)
}

/// `aten.ones_like`.
pub fn ones_like(x: &Tensor, dtype: Option<DType>) -> Result<Tensor> {
    full_like(x, Scalar::Int(1), dtype)
}

/// `aten.empty_like` (zero-filled).
pub fn empty_like(x: &Tensor, dtype: Option<DType>) -> Result<Tensor> {
    full_like(x, Scalar::Int(0), dtype)
}

/// `aten.new_full` (dtype defaults to `x`'s).
pub fn new_full(x: &Tensor, sizes: &[i64], value: Scalar, dtype: Option<DType>) -> Result<Tensor> {
    Ok(Tensor::full(
        dtype.unwrap_or(x.dtype()),
        &shape(sizes)?,
        value,
    ))
}

/// `aten.new_zeros`.
pub fn new_zeros(x: &Tensor, sizes: &[i64], dtype: Option<DType>) -> Result<Tensor> {
    new_full(x, sizes, Scalar::Int(0), dtype)
}

/// `aten.new_ones`.
pub fn new_ones(x: &Tensor, sizes: &[i64], dtype: Option<DType>) -> Result<Tensor> {
    new_full(x, sizes, Scalar::Int(1), dtype)
}

/// `aten.new_empty` (zero-filled).
pub fn new_empty(x: &Tensor, sizes: &[i64], dtype: Option<DType>) -> Result<Tensor> {
    new_full(x, sizes, Scalar::Int(0), dtype)
}

/// `aten.new_empty_strided` (zero-filled).
pub fn new_empty_strided(
    x: &Tensor,
    sizes: &[i64],
    strides: &[i64],
    dtype: Option<DType>,
) -> Result<Tensor> {
    empty_strided(sizes, strides, Some(dtype.unwrap_or(x.dtype())))
}

/// `aten.scalar_tensor` (default f32).
pub fn scalar_tensor(value: Scalar, dtype: Option<DType>) -> Result<Tensor> {
    Ok(Tensor::scalar(value, dtype.unwrap_or(DType::F32)))
}

/// `aten.linspace` (default f32), symmetric like torch's CPU kernel.
pub fn linspace(start: f64, end: f64, steps: i64, dtype: Option<DType>) -> Result<Tensor> {
    let n = usize::try_from(steps)
        .ok()
        .filter(|&n| n <= MAX_NUMEL)
        .ok_or_else(|| Error::other("linspace: steps must be >= 0 and not huge"))?;
    let step = if n > 1 {
        (end - start) / (n - 1) as f64
    } else {
        0.0
    };
    let half = n / 2;
    let v: Vec<f64> = (0..n)
        .map(|i| {
            if i < half {
                start + i as f64 * step
            } else {
                end - (n - 1 - i) as f64 * step
            }
        })
        .collect();
    Ok(Tensor::from_vec_unchecked(v, &[n]).to_dtype(dtype.unwrap_or(DType::F32)))
}

/// `aten.eye` / `aten.eye.m` (default f32).
pub fn eye(n: i64, m: Option<i64>, dtype: Option<DType>) -> Result<Tensor> {
    let m = m.unwrap_or(n);
    let sz = shape(&[n, m])?;
    let mut v = vec![0.0f64; sz[0] * sz[1]];
    for i in 0..sz[0].min(sz[1]) {
        v[i * sz[1] + i] = 1.0;
    }
    Ok(Tensor::from_vec_unchecked(v, &sz).to_dtype(dtype.unwrap_or(DType::F32)))
}

fn tri_indices(row: i64, col: i64, offset: i64, lower: bool) -> Result<Tensor> {
    let sz = shape(&[row, col])?;
    let (mut r, mut c) = (Vec::new(), Vec::new());
    for i in 0..sz[0] as i64 {
        for j in 0..sz[1] as i64 {
            let keep = if lower {
                j - i <= offset
            } else {
                j - i >= offset
            };
            if keep {
                r.push(i);
                c.push(j);
            }
        }
    }
    let n = r.len();
    r.extend(c);
    Ok(Tensor::from_vec_unchecked(r, &[2, n]))
}

/// `aten.tril_indices(row, col, offset)` (i64, shape `[2, n]`).
pub fn tril_indices(row: i64, col: i64, offset: i64) -> Result<Tensor> {
    tri_indices(row, col, offset, true)
}

/// `aten.triu_indices(row, col, offset)` (i64, shape `[2, n]`).
pub fn triu_indices(row: i64, col: i64, offset: i64) -> Result<Tensor> {
    tri_indices(row, col, offset, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arange_lengths_and_dtypes() {
        let a = arange(Scalar::Int(0), Scalar::Int(10), Scalar::Int(3), None).unwrap();
        assert_eq!((a.dtype(), a.to_i64_vec()), (DType::I64, vec![0, 3, 6, 9]));
        let b = arange(Scalar::Int(10), Scalar::Int(0), Scalar::Int(-4), None).unwrap();
        assert_eq!(b.to_i64_vec(), vec![10, 6, 2]);
        let c = arange(Scalar::Float(0.0), Scalar::Int(1), Scalar::Float(0.3), None).unwrap();
        assert_eq!(c.dtype(), DType::F32);
        assert_eq!(c.numel(), 4);
        assert_eq!(
            arange(Scalar::Int(0), Scalar::Int(0), Scalar::Int(1), None)
                .unwrap()
                .numel(),
            0
        );
        assert!(arange(Scalar::Int(0), Scalar::Int(5), Scalar::Int(-1), None).is_err());
        assert!(arange(Scalar::Int(0), Scalar::Int(5), Scalar::Int(0), None).is_err());
        let l = linspace(0.0, 1.0, 5, None).unwrap();
        assert_eq!(l.to_f64_vec(), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(
            full(&[2], Scalar::Bool(true), None).unwrap().dtype(),
            DType::Bool
        );
        assert_eq!(
            eye(2, Some(3), None).unwrap().to_f64_vec(),
            vec![1., 0., 0., 0., 1., 0.]
        );
        assert!(zeros(&[-1], None).is_err());
        let t = tril_indices(3, 3, 0).unwrap();
        assert_eq!(t.to_i64_vec(), vec![0, 1, 1, 2, 2, 2, 0, 0, 1, 0, 1, 2]);
        assert_eq!(
            triu_indices(2, 3, 1).unwrap().to_i64_vec(),
            vec![0, 0, 1, 1, 2, 2]
        );
        let e = empty_strided(&[2, 3], &[1, 2], None).unwrap();
        assert_eq!(e.strides(), &[1, 2]);
    }
}
