//! Normalisation layers: batch, layer, group, instance and RMS norm.
//!
//! Statistics are accumulated in `f64` (two passes: mean, then biased
//! variance), so `f32` results are at least as accurate as torch's.

use ndarray::{Array1, ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;

use super::{check_vec, dense, Float};
use crate::error::{Error, Result};

/// Mean and biased variance of a slice, in `f64`.
fn stats<T: Float>(x: &[T]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().map(|v| v.to64()).sum::<f64>() / n;
    let var = x.iter().map(|v| (v.to64() - mean).powi(2)).sum::<f64>() / n;
    (mean, var)
}

fn opt_vec<T: Float>(
    op: &str,
    name: &str,
    v: &Option<ArrayViewD<'_, T>>,
    n: usize,
) -> Result<Option<Vec<T>>> {
    match v {
        None => Ok(None),
        Some(a) => {
            check_vec(op, name, a, n)?;
            Ok(Some(a.iter().copied().collect()))
        }
    }
}

fn from_vec<T>(op: &str, shape: &[usize], v: Vec<T>) -> Result<ArrayD<T>> {
    ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| Error::other(format!("{op}: {e}")))
}

/// Splits a batch-norm style input `(N, C, *)` into (N, C, inner).
fn nc_inner<T>(op: &str, input: &ArrayViewD<'_, T>) -> Result<(usize, usize, usize)> {
    let sh = input.shape();
    if sh.len() < 2 {
        return Err(Error::other(format!(
            "{op}: input must have at least 2 dimensions (N, C, ...), got shape {sh:?}"
        )));
    }
    Ok((sh[0], sh[1], sh[2..].iter().product()))
}

/// `y = (x - mean[c]) * invstd[c] * w[c] + b[c]` over an `(N, C, inner)` buffer.
fn apply_affine<T: Float>(
    x: &[T],
    c: usize,
    inner: usize,
    mean: &[f64],
    invstd: &[f64],
    w: &Option<Vec<T>>,
    b: &Option<Vec<T>>,
) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    if inner == 0 {
        return out;
    }
    out.par_chunks_mut(inner)
        .zip(x.par_chunks(inner))
        .enumerate()
        .for_each(|(i, (o, xi))| {
            let ch = i % c;
            let scale = invstd[ch] * w.as_ref().map_or(1.0, |w| w[ch].to64());
            let shift = b.as_ref().map_or(0.0, |b| b[ch].to64()) - mean[ch] * scale;
            let (scale, shift) = (T::of(scale), T::of(shift));
            for (o, &v) in o.iter_mut().zip(xi) {
                *o = v * scale + shift;
            }
        });
    out
}

/// Result of [`native_batch_norm_functional`].
#[derive(Debug)]
pub struct BatchNormOutput<T> {
    pub out: ArrayD<T>,
    /// Batch mean per channel (training), or an empty `[0]` array (eval).
    pub save_mean: ArrayD<T>,
    /// `1 / sqrt(batch_var + eps)` per channel (training), or empty `[0]` (eval).
    pub save_invstd: ArrayD<T>,
    /// Updated running mean (training with running stats), else the input copy.
    pub running_mean: Option<ArrayD<T>>,
    /// Updated running variance (unbiased update), else the input copy.
    pub running_var: Option<ArrayD<T>>,
}

/// `aten._native_batch_norm_legit_functional` / `aten.native_batch_norm`
/// with the running-stat update returned instead of done in place.
///
/// Training: normalise with the batch mean and biased variance over all dims
/// but 1; running stats (if given) become
/// `(1 - momentum) * running + momentum * batch_stat`, with the unbiased
/// variance `var * n / (n - 1)`. Eval: normalise with the running stats
/// (required); `save_mean` / `save_invstd` are empty `[0]` arrays, as on
/// torch's CPU backend.
#[allow(clippy::too_many_arguments)]
pub fn native_batch_norm_functional<T: Float>(
    input: ArrayViewD<'_, T>,
    weight: Option<ArrayViewD<'_, T>>,
    bias: Option<ArrayViewD<'_, T>>,
    running_mean: Option<ArrayViewD<'_, T>>,
    running_var: Option<ArrayViewD<'_, T>>,
    training: bool,
    momentum: f64,
    eps: f64,
) -> Result<BatchNormOutput<T>> {
    const OP: &str = "native_batch_norm";
    let (n, c, inner) = nc_inner(OP, &input)?;
    let w = opt_vec(OP, "weight", &weight, c)?;
    let b = opt_vec(OP, "bias", &bias, c)?;
    let rm = opt_vec(OP, "running_mean", &running_mean, c)?;
    let rv = opt_vec(OP, "running_var", &running_var, c)?;
    let x = dense(&input);
    let empty = || ArrayD::from_shape_vec(IxDyn(&[0]), vec![]).expect("empty shape");
    let to_arr = |v: Vec<T>| Array1::from(v).into_dyn();
    if training {
        let mut mean = vec![0.0; c];
        let mut var = vec![0.0; c];
        let count = n * inner;
        for ch in 0..c {
            let (mut s, mut s2) = (0.0, 0.0);
            for b in 0..n {
                let sl = &x[(b * c + ch) * inner..][..inner];
                s += sl.iter().map(|v| v.to64()).sum::<f64>();
            }
            let m = s / count as f64;
            for b in 0..n {
                let sl = &x[(b * c + ch) * inner..][..inner];
                s2 += sl.iter().map(|v| (v.to64() - m).powi(2)).sum::<f64>();
            }
            mean[ch] = m;
            var[ch] = s2 / count as f64;
        }
        let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
        let out = apply_affine(&x, c, inner, &mean, &invstd, &w, &b);
        let unbias = if count > 1 {
            count as f64 / (count - 1) as f64
        } else {
            f64::INFINITY
        };
        let new_rm = rm.map(|r| {
            to_arr(
                r.iter()
                    .zip(&mean)
                    .map(|(&r, &m)| T::of((1.0 - momentum) * r.to64() + momentum * m))
                    .collect(),
            )
        });
        let new_rv = rv.map(|r| {
            to_arr(
                r.iter()
                    .zip(&var)
                    .map(|(&r, &v)| T::of((1.0 - momentum) * r.to64() + momentum * v * unbias))
                    .collect(),
            )
        });
        Ok(BatchNormOutput {
            out: from_vec(OP, input.shape(), out)?,
            save_mean: to_arr(mean.iter().map(|&m| T::of(m)).collect()),
            save_invstd: to_arr(invstd.iter().map(|&v| T::of(v)).collect()),
            running_mean: new_rm,
            running_var: new_rv,
        })
    } else {
        let (Some(rm), Some(rv)) = (rm, rv) else {
            return Err(Error::other(format!(
                "{OP}: running_mean and running_var are required when not training"
            )));
        };
        let mean: Vec<f64> = rm.iter().map(|v| v.to64()).collect();
        let invstd: Vec<f64> = rv.iter().map(|v| 1.0 / (v.to64() + eps).sqrt()).collect();
        let out = apply_affine(&x, c, inner, &mean, &invstd, &w, &b);
        Ok(BatchNormOutput {
            out: from_vec(OP, input.shape(), out)?,
            save_mean: empty(),
            save_invstd: empty(),
            running_mean: Some(to_arr(rm)),
            running_var: Some(to_arr(rv)),
        })
    }
}

/// `aten.native_batch_norm(input, weight, bias, running_mean, running_var,
/// training, momentum, eps) -> (out, save_mean, save_invstd)`.
///
/// See [`native_batch_norm_functional`] for the semantics; the running-stat
/// update (done in place by torch) is dropped here.
#[allow(clippy::too_many_arguments)]
pub fn native_batch_norm<T: Float>(
    input: ArrayViewD<'_, T>,
    weight: Option<ArrayViewD<'_, T>>,
    bias: Option<ArrayViewD<'_, T>>,
    running_mean: Option<ArrayViewD<'_, T>>,
    running_var: Option<ArrayViewD<'_, T>>,
    training: bool,
    momentum: f64,
    eps: f64,
) -> Result<(ArrayD<T>, ArrayD<T>, ArrayD<T>)> {
    let r = native_batch_norm_functional(
        input,
        weight,
        bias,
        running_mean,
        running_var,
        training,
        momentum,
        eps,
    )?;
    Ok((r.out, r.save_mean, r.save_invstd))
}

/// `aten._native_batch_norm_legit_no_training(input, weight, bias,
/// running_mean, running_var, momentum, eps)`, output only: per channel
/// (dim 1), `(x - running_mean) / sqrt(running_var + eps) * weight + bias`.
/// (The op's other two outputs are empty `[0]` arrays.)
pub fn native_batch_norm_inference<T: Float>(
    input: ArrayViewD<'_, T>,
    weight: Option<ArrayViewD<'_, T>>,
    bias: Option<ArrayViewD<'_, T>>,
    running_mean: ArrayViewD<'_, T>,
    running_var: ArrayViewD<'_, T>,
    eps: f64,
) -> Result<ArrayD<T>> {
    let r = native_batch_norm_functional(
        input,
        weight,
        bias,
        Some(running_mean),
        Some(running_var),
        false,
        0.0,
        eps,
    )?;
    Ok(r.out)
}

/// Number of leading (outer) elements for a trailing `normalized_shape`.
fn split_normalized<T>(
    op: &str,
    input: &ArrayViewD<'_, T>,
    normalized_shape: &[i64],
) -> Result<(usize, usize, usize)> {
    let sh = input.shape();
    let k = normalized_shape.len();
    let ok = k >= 1
        && k <= sh.len()
        && sh[sh.len() - k..]
            .iter()
            .zip(normalized_shape)
            .all(|(&a, &b)| a as i64 == b);
    if !ok {
        return Err(Error::other(format!(
            "{op}: normalized_shape {normalized_shape:?} does not match the trailing dimensions of input shape {sh:?}"
        )));
    }
    let axis = sh.len() - k;
    Ok((
        axis,
        sh[..axis].iter().product(),
        sh[axis..].iter().product(),
    ))
}

fn affine_param<T: Float>(
    op: &str,
    name: &str,
    p: &Option<ArrayViewD<'_, T>>,
    normalized_shape: &[i64],
) -> Result<Option<Vec<T>>> {
    match p {
        None => Ok(None),
        Some(a) => {
            let want: Vec<usize> = normalized_shape.iter().map(|&d| d as usize).collect();
            if a.shape() != want.as_slice() {
                return Err(Error::other(format!(
                    "{op}: {name} must have shape {normalized_shape:?}, got {:?}",
                    a.shape()
                )));
            }
            Ok(Some(a.iter().copied().collect()))
        }
    }
}

/// `aten.native_layer_norm(input, normalized_shape, weight, bias, eps) ->
/// (out, mean, rstd)`.
///
/// Normalises over the trailing `normalized_shape` dims with the biased
/// variance; `mean` and `rstd = 1/sqrt(var + eps)` have the input's shape
/// with the normalised dims set to 1.
pub fn native_layer_norm<T: Float>(
    input: ArrayViewD<'_, T>,
    normalized_shape: &[i64],
    weight: Option<ArrayViewD<'_, T>>,
    bias: Option<ArrayViewD<'_, T>>,
    eps: f64,
) -> Result<(ArrayD<T>, ArrayD<T>, ArrayD<T>)> {
    const OP: &str = "native_layer_norm";
    let (axis, outer, inner) = split_normalized(OP, &input, normalized_shape)?;
    let w = affine_param(OP, "weight", &weight, normalized_shape)?;
    let b = affine_param(OP, "bias", &bias, normalized_shape)?;
    let x = dense(&input);
    let mut out = vec![T::zero(); x.len()];
    let mut mean = vec![T::zero(); outer];
    let mut rstd = vec![T::zero(); outer];
    if inner > 0 {
        out.par_chunks_mut(inner)
            .zip(x.par_chunks(inner))
            .zip(mean.par_iter_mut().zip(rstd.par_iter_mut()))
            .for_each(|((o, xi), (mo, ro))| {
                let (m, var) = stats(xi);
                let r = 1.0 / (var + eps).sqrt();
                for (j, (o, &v)) in o.iter_mut().zip(xi).enumerate() {
                    let mut y = (v.to64() - m) * r;
                    if let Some(w) = &w {
                        y *= w[j].to64();
                    }
                    if let Some(b) = &b {
                        y += b[j].to64();
                    }
                    *o = T::of(y);
                }
                *mo = T::of(m);
                *ro = T::of(r);
            });
    } else {
        // torch: mean of an empty set is NaN.
        mean.fill(T::nan());
        rstd.fill(T::nan());
    }
    let mut sshape = input.shape().to_vec();
    sshape[axis..].fill(1);
    Ok((
        from_vec(OP, input.shape(), out)?,
        from_vec(OP, &sshape, mean)?,
        from_vec(OP, &sshape, rstd)?,
    ))
}

/// `aten.rms_norm(input, normalized_shape, weight, eps)`:
/// `x / sqrt(mean(x^2) + eps) * weight` over the trailing dims; `eps`
/// defaults to the machine epsilon of the element type.
pub fn rms_norm<T: Float>(
    input: ArrayViewD<'_, T>,
    normalized_shape: &[i64],
    weight: Option<ArrayViewD<'_, T>>,
    eps: Option<f64>,
) -> Result<ArrayD<T>> {
    const OP: &str = "rms_norm";
    let (_, _, inner) = split_normalized(OP, &input, normalized_shape)?;
    let w = affine_param(OP, "weight", &weight, normalized_shape)?;
    let eps = eps.unwrap_or_else(|| T::epsilon().to64());
    let x = dense(&input);
    let mut out = vec![T::zero(); x.len()];
    if inner > 0 {
        out.par_chunks_mut(inner)
            .zip(x.par_chunks(inner))
            .for_each(|(o, xi)| {
                let ms = xi.iter().map(|v| v.to64().powi(2)).sum::<f64>() / inner as f64;
                let r = 1.0 / (ms + eps).sqrt();
                for (j, (o, &v)) in o.iter_mut().zip(xi).enumerate() {
                    let y = v.to64() * r * w.as_ref().map_or(1.0, |w| w[j].to64());
                    *o = T::of(y);
                }
            });
    }
    from_vec(OP, input.shape(), out)
}

/// `aten.native_group_norm(input, weight, bias, N, C, HxW, group, eps) ->
/// (out, mean, rstd)`.
///
/// `input` is `(N, C, *)` with `prod(*) == HxW`; channels are split into
/// `group` groups, each normalised over its `C / group * HxW` elements
/// (biased variance), then scaled per channel. `mean` and `rstd` are `(N, group)`.
#[allow(clippy::too_many_arguments)]
pub fn native_group_norm<T: Float>(
    input: ArrayViewD<'_, T>,
    weight: Option<ArrayViewD<'_, T>>,
    bias: Option<ArrayViewD<'_, T>>,
    n: i64,
    c: i64,
    hxw: i64,
    group: i64,
    eps: f64,
) -> Result<(ArrayD<T>, ArrayD<T>, ArrayD<T>)> {
    const OP: &str = "native_group_norm";
    let sh = input.shape();
    let consistent = sh.len() >= 2
        && n >= 0
        && c >= 0
        && hxw >= 0
        && sh[0] as i64 == n
        && sh[1] as i64 == c
        && sh[2..].iter().product::<usize>() as i64 == hxw;
    if !consistent {
        return Err(Error::other(format!(
            "{OP}: input shape {sh:?} does not match N={n}, C={c}, HxW={hxw}"
        )));
    }
    if group <= 0 || c % group != 0 {
        return Err(Error::other(format!(
            "{OP}: number of channels {c} must be divisible by a positive group count, got {group}"
        )));
    }
    let (n, c, hxw, group) = (n as usize, c as usize, hxw as usize, group as usize);
    let w = opt_vec(OP, "weight", &weight, c)?;
    let b = opt_vec(OP, "bias", &bias, c)?;
    let x = dense(&input);
    let cg = c / group;
    let gsz = cg * hxw;
    let mut mean = vec![0.0; n * group];
    let mut rstd = vec![0.0; n * group];
    if gsz > 0 {
        mean.par_iter_mut()
            .zip(rstd.par_iter_mut())
            .zip(x.par_chunks(gsz))
            .for_each(|((m, r), xs)| {
                let (mm, var) = stats(xs);
                *m = mm;
                *r = 1.0 / (var + eps).sqrt();
            });
    } else {
        mean.fill(f64::NAN);
        rstd.fill(f64::NAN);
    }
    // Expand group stats to (N*C) channel stats and normalise as (1, N*C, HxW).
    let nc = n * c;
    let cm: Vec<f64> = (0..nc).map(|i| mean[i / cg]).collect();
    let cr: Vec<f64> = (0..nc).map(|i| rstd[i / cg]).collect();
    let tile = |v: &Option<Vec<T>>| v.as_ref().map(|v| (0..nc).map(|i| v[i % c]).collect());
    let out = apply_affine(&x, nc, hxw, &cm, &cr, &tile(&w), &tile(&b));
    let cast = |v: Vec<f64>| v.into_iter().map(T::of).collect::<Vec<T>>();
    Ok((
        from_vec(OP, sh, out)?,
        from_vec(OP, &[n, group], cast(mean))?,
        from_vec(OP, &[n, group], cast(rstd))?,
    ))
}

/// `aten.instance_norm(input, weight, bias, running_mean, running_var,
/// use_input_stats, momentum, eps, cudnn_enabled)`, output only.
///
/// With `use_input_stats`, each `(n, c)` plane is normalised with its own
/// mean and biased variance; otherwise with the running stats (required).
#[allow(clippy::too_many_arguments)]
pub fn instance_norm<T: Float>(
    input: ArrayViewD<'_, T>,
    weight: Option<ArrayViewD<'_, T>>,
    bias: Option<ArrayViewD<'_, T>>,
    running_mean: Option<ArrayViewD<'_, T>>,
    running_var: Option<ArrayViewD<'_, T>>,
    use_input_stats: bool,
    _momentum: f64,
    eps: f64,
) -> Result<ArrayD<T>> {
    const OP: &str = "instance_norm";
    let (n, c, inner) = nc_inner(OP, &input)?;
    if use_input_stats {
        let (out, _, _) = native_group_norm(
            input,
            weight,
            bias,
            n as i64,
            c as i64,
            inner as i64,
            c as i64,
            eps,
        )?;
        return Ok(out);
    }
    match (running_mean, running_var) {
        (Some(rm), Some(rv)) => native_batch_norm_inference(input, weight, bias, rm, rv, eps),
        _ => Err(Error::other(format!(
            "{OP}: running_mean and running_var are required when use_input_stats is false"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::nn::testutil::{assert_close, Lcg};

    #[test]
    fn batch_norm_inference_formula() {
        let mut r = Lcg(1);
        let x = r.array(&[2, 3, 4]);
        let w = r.array(&[3]);
        let b = r.array(&[3]);
        let rm = r.array(&[3]);
        let rv = r.array(&[3]).mapv(|v| v.abs() + 0.1);
        let y = native_batch_norm_inference(
            x.view(),
            Some(w.view()),
            Some(b.view()),
            rm.view(),
            rv.view(),
            1e-5,
        )
        .unwrap();
        let mut e = x.clone();
        for ((_, ch, _), v) in e
            .view_mut()
            .into_dimensionality::<ndarray::Ix3>()
            .unwrap()
            .indexed_iter_mut()
        {
            *v = (*v - rm[[ch]]) / (rv[[ch]] + 1e-5).sqrt() * w[[ch]] + b[[ch]];
        }
        assert_close(&y, &e, 1e-12);
        assert!(native_batch_norm_inference(
            x.view(),
            None,
            None,
            rm.view(),
            w.view().slice_move(ndarray::s![..2]).into_dyn(),
            1e-5
        )
        .is_err());
    }

    #[test]
    fn batch_norm_training_stats() {
        // One channel, values 1..4: mean 2.5, biased var 1.25, unbiased 5/3.
        let x = ArrayD::from_shape_vec(IxDyn(&[2, 1, 2]), vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let rm = ArrayD::from_elem(IxDyn(&[1]), 0.0);
        let rv = ArrayD::from_elem(IxDyn(&[1]), 1.0);
        let r = native_batch_norm_functional(
            x.view(),
            None,
            None,
            Some(rm.view()),
            Some(rv.view()),
            true,
            0.1,
            0.0,
        )
        .unwrap();
        assert!((r.save_mean[[0]] - 2.5f64).abs() < 1e-15);
        assert!((r.save_invstd[[0]] - 1.0 / 1.25f64.sqrt()).abs() < 1e-15);
        assert!((r.out[[0, 0, 0]] + 1.5 / 1.25f64.sqrt()).abs() < 1e-12);
        assert!((r.running_mean.unwrap()[[0]] - 0.25).abs() < 1e-15);
        assert!((r.running_var.unwrap()[[0]] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-15);
        let (_, sm, _) = native_batch_norm(
            x.view(),
            None,
            None,
            Some(rm.view()),
            Some(rv.view()),
            false,
            0.1,
            0.0,
        )
        .unwrap();
        assert_eq!(sm.shape(), &[0]);
        assert!(native_batch_norm(x.view(), None, None, None, None, false, 0.1, 0.0).is_err());
    }

    #[test]
    fn layer_norm_moments_and_shapes() {
        let mut r = Lcg(2);
        let x = r.array(&[3, 4, 5]);
        let (y, m, rs) = native_layer_norm(x.view(), &[4, 5], None, None, 1e-12).unwrap();
        assert_eq!(m.shape(), &[3, 1, 1]);
        assert_eq!(rs.shape(), &[3, 1, 1]);
        for i in 0..3 {
            let s = y.slice(ndarray::s![i, .., ..]);
            let mean = s.mean().unwrap();
            let var = s.mapv(|v| (v - mean).powi(2)).mean().unwrap();
            assert!(
                mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-9,
                "{mean} {var}"
            );
            let xm = x.slice(ndarray::s![i, .., ..]).mean().unwrap();
            assert!((m[[i, 0, 0]] - xm).abs() < 1e-12);
        }
        let w = ArrayD::from_elem(IxDyn(&[5]), 2.0);
        let b = ArrayD::from_elem(IxDyn(&[5]), 1.0);
        let (y2, _, _) =
            native_layer_norm(x.view(), &[5], Some(w.view()), Some(b.view()), 1e-5).unwrap();
        let (y1, _, _) = native_layer_norm(x.view(), &[5], None, None, 1e-5).unwrap();
        assert_close(&y2, &y1.mapv(|v| 2.0 * v + 1.0), 1e-12);
        assert!(native_layer_norm(x.view(), &[4], None, None, 1e-5).is_err());
        assert!(native_layer_norm(
            x.view(),
            &[5],
            Some(b.view().insert_axis(ndarray::Axis(0))),
            None,
            1e-5
        )
        .is_err());
    }

    #[test]
    fn group_norm_matches_layer_norm_per_group() {
        let mut r = Lcg(3);
        let x = r.array(&[2, 6, 3, 2]);
        let w = r.array(&[6]);
        let b = r.array(&[6]);
        let (y, m, rs) =
            native_group_norm(x.view(), Some(w.view()), Some(b.view()), 2, 6, 6, 3, 1e-5).unwrap();
        assert_eq!(m.shape(), &[2, 3]);
        // group g of sample n = channels 2g, 2g+1: layer norm over (2, 3, 2).
        let xr = x
            .clone()
            .into_shape_with_order(IxDyn(&[2, 3, 2, 3, 2]))
            .unwrap();
        let (ln, lm, lr) = native_layer_norm(xr.view(), &[2, 3, 2], None, None, 1e-5).unwrap();
        let ln = ln.into_shape_with_order(IxDyn(&[2, 6, 3, 2])).unwrap();
        let mut e = ln.clone();
        for ((_, ch, _, _), v) in e
            .view_mut()
            .into_dimensionality::<ndarray::Ix4>()
            .unwrap()
            .indexed_iter_mut()
        {
            *v = *v * w[[ch]] + b[[ch]];
        }
        assert_close(&y, &e, 1e-12);
        assert_close(
            &m,
            &lm.into_shape_with_order(IxDyn(&[2, 3])).unwrap(),
            1e-12,
        );
        assert_close(
            &rs,
            &lr.into_shape_with_order(IxDyn(&[2, 3])).unwrap(),
            1e-12,
        );
        assert!(native_group_norm(x.view(), None, None, 2, 6, 6, 4, 1e-5).is_err());
        assert!(native_group_norm(x.view(), None, None, 2, 6, 5, 3, 1e-5).is_err());
        let inorm = instance_norm(x.view(), None, None, None, None, true, 0.1, 1e-5).unwrap();
        let (g6, _, _) = native_group_norm(x.view(), None, None, 2, 6, 6, 6, 1e-5).unwrap();
        assert_close(&inorm, &g6, 1e-15);
    }

    #[test]
    fn rms_norm_formula() {
        let x = ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![3.0f32, 4.0]).unwrap();
        let w = ArrayD::from_shape_vec(IxDyn(&[2]), vec![1.0f32, 2.0]).unwrap();
        let y = rms_norm(x.view(), &[2], Some(w.view()), Some(0.0)).unwrap();
        let r = (12.5f64).sqrt();
        assert!((y[[0, 0]] as f64 - 3.0 / r).abs() < 1e-6);
        assert!((y[[0, 1]] as f64 - 8.0 / r).abs() < 1e-6);
    }
}
