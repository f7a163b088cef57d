//! Shape kernels that copy: concatenation, repetition, flips, padding.

use crate::error::{Error, Result};
use crate::interp::ops::elementwise::promote_types;
use crate::interp::tensor::{dispatch_all, wrap_dim, Scalar, Tensor};

/// `aten.cat`: concatenation along `dim` with type promotion; legacy empty
/// 1-d tensors (shape `[0]`) are skipped.
pub fn cat(tensors: &[Tensor], dim: i64) -> Result<Tensor> {
    let first = tensors
        .first()
        .ok_or_else(|| Error::other("cat: expects a non-empty list of tensors"))?;
    let dtype = tensors
        .iter()
        .skip(1)
        .fold(first.dtype(), |a, t| promote_types(a, t.dtype()));
    let parts: Vec<&Tensor> = tensors
        .iter()
        .filter(|t| !(t.dim() == 1 && t.numel() == 0))
        .collect();
    let Some(r) = parts.first() else {
        return Ok(Tensor::zeros(dtype, &[0]));
    };
    if r.dim() == 0 {
        return Err(Error::other(
            "cat: zero-dimensional tensors cannot be concatenated",
        ));
    }
    let d = wrap_dim(dim, r.dim())?;
    let mut shape = r.sizes().to_vec();
    let mut total = 0;
    for t in &parts {
        if t.dim() != r.dim()
            || t.sizes()
                .iter()
                .zip(r.sizes())
                .enumerate()
                .any(|(i, (a, b))| i != d && a != b)
        {
            return Err(Error::other(format!(
                "cat: shapes {:?} and {:?} differ outside dim {d}",
                r.sizes(),
                t.sizes()
            )));
        }
        total += t.sizes()[d];
    }
    shape[d] = total;
    let out = Tensor::zeros(dtype, &shape);
    let mut off = 0i64;
    for t in &parts {
        let n = t.sizes()[d] as i64;
        out.slice(d as i64, Some(off), Some(off + n), 1)?.copy_(t)?;
        off += n;
    }
    Ok(out)
}

/// `aten.stack`.
pub fn stack(tensors: &[Tensor], dim: i64) -> Result<Tensor> {
    let first = tensors
        .first()
        .ok_or_else(|| Error::other("stack: expects a non-empty list of tensors"))?;
    if tensors.iter().any(|t| t.sizes() != first.sizes()) {
        return Err(Error::other("stack: all tensors must have the same shape"));
    }
    let d = wrap_dim(dim, first.dim() + 1)? as i64;
    let parts: Vec<Tensor> = tensors
        .iter()
        .map(|t| t.unsqueeze(d))
        .collect::<Result<_>>()?;
    cat(&parts, d)
}

/// `aten.repeat`.
pub fn repeat(x: &Tensor, repeats: &[i64]) -> Result<Tensor> {
    let r = repeats.len();
    if r < x.dim() {
        return Err(Error::other(format!(
            "repeat: {r} repeats given for a tensor of rank {}",
            x.dim()
        )));
    }
    if repeats.iter().any(|&v| v < 0) {
        return Err(Error::other(format!(
            "repeat: negative repeat in {repeats:?}"
        )));
    }
    let mut padded: Vec<i64> = vec![1; r - x.dim()];
    padded.extend(x.sizes().iter().map(|&s| s as i64));
    let total = padded
        .iter()
        .zip(repeats)
        .try_fold(1i64, |a, (&p, &r)| a.checked_mul(p)?.checked_mul(r))
        .filter(|&t| t <= 1 << 40);
    if total.is_none() {
        return Err(Error::other(format!(
            "repeat: {repeats:?} gives too many elements"
        )));
    }
    let mut v = x.reshape(&padded)?;
    let mut target = Vec::with_capacity(2 * r);
    let mut fin = Vec::with_capacity(r);
    for i in 0..r {
        v = v.unsqueeze(2 * i as i64)?;
        target.push(repeats[i]);
        target.push(padded[i]);
        fin.push(repeats[i] * padded[i]);
    }
    v.expand(&target)?.clone_data().reshape(&fin)
}

/// `aten.flip`.
pub fn flip(x: &Tensor, dims: &[i64]) -> Result<Tensor> {
    let ds: Vec<usize> = dims
        .iter()
        .map(|&d| wrap_dim(d, x.dim()))
        .collect::<Result<_>>()?;
    if x.dim() == 0 {
        return Ok(x.clone_data());
    }
    Ok(x.reversed_view(&ds).clone_data())
}

fn roll1(x: &Tensor, shift: i64, dim: i64) -> Result<Tensor> {
    let n = x.size(dim)? as i64;
    if n == 0 {
        return Ok(x.clone_data());
    }
    let s = shift.rem_euclid(n);
    if s == 0 {
        return Ok(x.clone_data());
    }
    cat(
        &[
            x.slice(dim, Some(n - s), Some(n), 1)?,
            x.slice(dim, Some(0), Some(n - s), 1)?,
        ],
        dim,
    )
}

/// `aten.roll` (empty `dims` rolls the flattened tensor).
pub fn roll(x: &Tensor, shifts: &[i64], dims: &[i64]) -> Result<Tensor> {
    if dims.is_empty() {
        if shifts.len() != 1 {
            return Err(Error::other(
                "roll: one shift expected when no dims are given",
            ));
        }
        let shape: Vec<i64> = x.sizes().iter().map(|&s| s as i64).collect();
        return roll1(&x.reshape(&[-1])?, shifts[0], 0)?.reshape(&shape);
    }
    if shifts.len() != dims.len() {
        return Err(Error::other("roll: shifts and dims differ in length"));
    }
    let mut y = x.clone();
    for (&s, &d) in shifts.iter().zip(dims) {
        y = roll1(&y, s, d)?;
    }
    Ok(y)
}

fn tri(x: &Tensor, diagonal: i64, lower: bool) -> Result<Tensor> {
    if x.dim() < 2 {
        return Err(Error::other("tril/triu: expects a tensor of rank >= 2"));
    }
    let (r, c) = (x.sizes()[x.dim() - 2], x.sizes()[x.dim() - 1]);
    dispatch_all!(x.dtype(), T, {
        let mut v = x.to_vec_as::<T>();
        if r * c > 0 {
            for (k, e) in v.iter_mut().enumerate() {
                let (i, j) = (((k / c) % r) as i64, (k % c) as i64);
                let keep = if lower {
                    j - i <= diagonal
                } else {
                    j - i >= diagonal
                };
                if !keep {
                    *e = T::default();
                }
            }
        }
        Ok(Tensor::from_vec_unchecked(v, x.sizes()))
    })
}

/// `aten.tril`.
pub fn tril(x: &Tensor, diagonal: i64) -> Result<Tensor> {
    tri(x, diagonal, true)
}

/// `aten.triu`.
pub fn triu(x: &Tensor, diagonal: i64) -> Result<Tensor> {
    tri(x, diagonal, false)
}

/// `aten.clone`: a fresh contiguous copy.
pub fn clone(x: &Tensor) -> Result<Tensor> {
    Ok(x.clone_data())
}

/// `aten.contiguous`: `x` itself when contiguous, else a copy.
pub fn contiguous(x: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous())
}

/// `aten.copy` (functional): `src` broadcast and cast into a copy of `x`.
pub fn copy(x: &Tensor, src: &Tensor) -> Result<Tensor> {
    let out = x.clone_data();
    out.copy_(src)?;
    Ok(out)
}

/// `aten.expand_as`.
pub fn expand_as(x: &Tensor, other: &Tensor) -> Result<Tensor> {
    x.broadcast_to(other.sizes())
}

/// `aten.constant_pad_nd`: `pad` is (left, right) pairs from the last dim
/// backwards; negative pads crop.
pub fn constant_pad_nd(x: &Tensor, pad: &[i64], value: Scalar) -> Result<Tensor> {
    if pad.len() % 2 != 0 || pad.len() / 2 > x.dim() {
        return Err(Error::other(format!(
            "constant_pad_nd: pad {pad:?} does not fit a tensor of rank {}",
            x.dim()
        )));
    }
    let nd = x.dim();
    let mut out_shape = x.sizes().to_vec();
    let mut src = x.clone();
    let mut dst_ranges = Vec::new();
    for k in 0..pad.len() / 2 {
        let d = nd - 1 - k;
        let (l, r) = (pad[2 * k], pad[2 * k + 1]);
        let n = x.sizes()[d] as i64;
        let m = n
            .checked_add(l)
            .and_then(|v| v.checked_add(r))
            .unwrap_or(-1);
        if !(0..=1 << 40).contains(&m) {
            return Err(Error::other(format!(
                "constant_pad_nd: pad {pad:?} leaves an invalid size"
            )));
        }
        out_shape[d] = m as usize;
        let (s0, s1) = ((-l).max(0), n - (-r).max(0));
        src = src.slice(d as i64, Some(s0), Some(s1.max(s0)), 1)?;
        dst_ranges.push((d, l.max(0)));
    }
    let out = Tensor::full(x.dtype(), &out_shape, value);
    let mut dst = out.clone();
    for (d, start) in dst_ranges {
        let len = src.sizes()[d] as i64;
        dst = dst.slice(d as i64, Some(start), Some(start + len), 1)?;
    }
    dst.copy_(&src)?;
    Ok(out)
}

/// Source index along one padded axis of size `n` for output position `i`
/// (`l` positions of padding before the data).
fn pad_source(mode: &str, i: i64, l: i64, n: i64) -> i64 {
    let j = i - l;
    match mode {
        "reflect" => {
            // Mirror without repeating the edge: period 2 (n - 1).
            let period = 2 * (n - 1);
            if period == 0 {
                return 0;
            }
            let k = j.rem_euclid(period);
            if k < n {
                k
            } else {
                period - k
            }
        }
        "circular" => j.rem_euclid(n),
        _ => j.clamp(0, n - 1),
    }
}

/// `aten.pad(self, pad, mode, value)` and the `reflection_padNd`,
/// `replication_padNd` ops: `pad` is (left, right) pairs from the last dim
/// backwards. `mode` is "constant", "reflect", "replicate" or "circular".
pub fn pad(x: &Tensor, pad: &[i64], mode: &str, value: Option<f64>) -> Result<Tensor> {
    if mode == "constant" {
        return constant_pad_nd(x, pad, Scalar::Float(value.unwrap_or(0.0)));
    }
    if !matches!(mode, "reflect" | "replicate" | "circular") {
        return Err(Error::other(format!("pad: unknown mode {mode:?}")));
    }
    if pad.len() % 2 != 0 || pad.len() / 2 > x.dim() {
        return Err(Error::other(format!(
            "pad: pad {pad:?} does not fit a tensor of rank {}",
            x.dim()
        )));
    }
    let nd = x.dim();
    let mut out = x.clone();
    for k in 0..pad.len() / 2 {
        let d = nd - 1 - k;
        let (l, r) = (pad[2 * k], pad[2 * k + 1]);
        let n = x.sizes()[d] as i64;
        let limit = match mode {
            "reflect" => n - 1,
            "circular" => n,
            _ => i64::MAX,
        };
        if n == 0 || l < 0 || r < 0 || l > limit || r > limit {
            return Err(Error::other(format!(
                "pad: {mode} padding {pad:?} is invalid for dim {d} of size {n}"
            )));
        }
        let m = n + l + r;
        let idx: Vec<i64> = (0..m).map(|i| pad_source(mode, i, l, n)).collect();
        let idx = Tensor::from_vec(idx, &[m as usize])?;
        out = crate::interp::ops::index::index_select(&out, d as i64, &idx)?;
    }
    Ok(out)
}

/// `aten.repeat_interleave`: each slice along `dim` (of the flattened input
/// when `dim` is None) repeated `repeats[i]` times, or `repeats[0]` times
/// for every slice when one count is given.
pub fn repeat_interleave(x: &Tensor, repeats: &[i64], dim: Option<i64>) -> Result<Tensor> {
    let (x, d) = match dim {
        Some(d) => (x.clone(), wrap_dim(d, x.dim())?),
        None => (x.reshape(&[-1])?, 0),
    };
    let n = x.sizes().get(d).copied().unwrap_or(1);
    if repeats.iter().any(|&r| r < 0) || (repeats.len() != 1 && repeats.len() != n) {
        return Err(Error::other(format!(
            "repeat_interleave: repeats {repeats:?} do not fit a dim of size {n}"
        )));
    }
    let idx: Vec<i64> = (0..n)
        .flat_map(|i| {
            let r = if repeats.len() == 1 {
                repeats[0]
            } else {
                repeats[i]
            };
            std::iter::repeat(i as i64).take(r as usize)
        })
        .collect();
    let m = idx.len();
    if x.dim() == 0 {
        return Err(Error::other(
            "repeat_interleave: needs a dim to repeat along",
        ));
    }
    crate::interp::ops::index::index_select(&x, d as i64, &Tensor::from_vec(idx, &[m])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;

    fn f(v: &[f32], s: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), s).unwrap()
    }

    #[test]
    fn cat_promotes_and_skips_legacy_empty() {
        let a = f(&[1., 2.], &[1, 2]);
        let b = Tensor::from_vec(vec![3i64, 4, 5, 6], &[2, 2]).unwrap();
        let e = f(&[], &[0]);
        let c = cat(&[a.clone(), e, b], 0).unwrap();
        assert_eq!(c.sizes(), &[3, 2]);
        assert_eq!(c.dtype(), DType::F32);
        assert_eq!(c.to_f64_vec(), vec![1., 2., 3., 4., 5., 6.]);
        assert!(cat(&[a.clone(), f(&[1., 2., 3.], &[1, 3])], 0).is_err());
        let s = stack(&[a.clone(), a], -1).unwrap();
        assert_eq!(s.sizes(), &[1, 2, 2]);
    }

    #[test]
    fn repeat_flip_roll_tri_pad() {
        let x = f(&[1., 2., 3., 4.], &[2, 2]);
        let r = repeat(&x, &[1, 2]).unwrap();
        assert_eq!(r.to_f64_vec(), vec![1., 2., 1., 2., 3., 4., 3., 4.]);
        assert_eq!(
            repeat(&f(&[1., 2.], &[2]), &[2, 1]).unwrap().sizes(),
            &[2, 2]
        );
        assert_eq!(flip(&x, &[0]).unwrap().to_f64_vec(), vec![3., 4., 1., 2.]);
        assert_eq!(
            flip(&x, &[0, 1]).unwrap().to_f64_vec(),
            vec![4., 3., 2., 1.]
        );
        assert_eq!(
            roll(&x, &[1], &[]).unwrap().to_f64_vec(),
            vec![4., 1., 2., 3.]
        );
        assert_eq!(
            roll(&x, &[-1], &[1]).unwrap().to_f64_vec(),
            vec![2., 1., 4., 3.]
        );
        assert_eq!(tril(&x, 0).unwrap().to_f64_vec(), vec![1., 0., 3., 4.]);
        assert_eq!(triu(&x, 1).unwrap().to_f64_vec(), vec![0., 2., 0., 0.]);
        let p = constant_pad_nd(&x, &[1, 0, 0, 1], Scalar::Float(9.0)).unwrap();
        assert_eq!(p.sizes(), &[3, 3]);
        assert_eq!(p.to_f64_vec(), vec![9., 1., 2., 9., 3., 4., 9., 9., 9.]);
        let c = constant_pad_nd(&x, &[-1, 0], Scalar::Int(0)).unwrap();
        assert_eq!(c.to_f64_vec(), vec![2., 4.]);
    }

    #[test]
    fn pad_reflect_replicate_circular() {
        let x = f(&[1., 2., 3.], &[1, 3]);
        let v = |t: Tensor| {
            t.to_array::<f32>()
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            v(pad(&x, &[2, 2], "reflect", None).unwrap()),
            [3., 2., 1., 2., 3., 2., 1.]
        );
        assert_eq!(
            v(pad(&x, &[2, 1], "replicate", None).unwrap()),
            [1., 1., 1., 2., 3., 3.]
        );
        assert_eq!(
            v(pad(&x, &[1, 2], "circular", None).unwrap()),
            [3., 1., 2., 3., 1., 2.]
        );
        assert_eq!(
            v(pad(&x, &[1, 0], "constant", Some(9.)).unwrap()),
            [9., 1., 2., 3.]
        );
        // reflect needs pad < size; an unknown mode is an error, not a panic
        assert!(pad(&x, &[3, 0], "reflect", None).is_err());
        assert!(pad(&x, &[1, 1], "wrap", None).is_err());
        // a 2-d pad touches the last two dims
        let y = f(&[1., 2., 3., 4.], &[1, 2, 2]);
        let p = pad(&y, &[1, 0, 0, 1], "replicate", None).unwrap();
        assert_eq!(p.sizes(), &[1, 3, 3]);
        assert_eq!(v(p), [1., 1., 2., 3., 3., 4., 3., 3., 4.]);
    }

    #[test]
    fn repeat_interleave_counts_and_dims() {
        let x = f(&[1., 2., 3., 4.], &[2, 2]);
        let r = repeat_interleave(&x, &[2], Some(0)).unwrap();
        assert_eq!(r.sizes(), &[4, 2]);
        assert_eq!(r.to_f64_vec(), vec![1., 2., 1., 2., 3., 4., 3., 4.]);
        let r = repeat_interleave(&x, &[1, 2], Some(-1)).unwrap();
        assert_eq!(r.to_f64_vec(), vec![1., 2., 2., 3., 4., 4.]);
        let r = repeat_interleave(&x, &[2], None).unwrap();
        assert_eq!(r.to_f64_vec(), vec![1., 1., 2., 2., 3., 3., 4., 4.]);
        assert!(repeat_interleave(&x, &[1, 2, 3], Some(0)).is_err());
        assert!(repeat_interleave(&x, &[-1], Some(0)).is_err());
    }
}
