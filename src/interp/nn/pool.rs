//! Pooling: max, average and adaptive pooling over 1-D and 2-D planes.
//!
//! All 2-D kernels accept `(N, C, H, W)` and unbatched `(C, H, W)` input; the
//! 1-D kernels accept `(N, C, L)` and `(C, L)`. Pooling is computed per plane
//! with planes processed in parallel.

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;

use super::{dense, expand, to_usize, Float};
use crate::error::{Error, Result};

/// Splits a 2-D pooling input into (leading shape, planes, H, W).
fn planes2d<T>(op: &str, input: &ArrayViewD<'_, T>) -> Result<(Vec<usize>, usize, usize, usize)> {
    let sh = input.shape();
    if sh.len() != 3 && sh.len() != 4 {
        return Err(Error::other(format!(
            "{op}: expected 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {sh:?}"
        )));
    }
    let r = sh.len();
    let lead = sh[..r - 2].to_vec();
    Ok((lead.clone(), lead.iter().product(), sh[r - 2], sh[r - 1]))
}

/// aten's `pooling_output_shape`: the output length of one pooled dimension.
fn pool_out(
    op: &str,
    input: usize,
    k: i64,
    s: i64,
    p: i64,
    d: i64,
    ceil_mode: bool,
) -> Result<usize> {
    if k <= 0 || s <= 0 || d <= 0 || p < 0 {
        return Err(Error::other(format!(
            "{op}: kernel_size, stride and dilation must be positive and padding non-negative (kernel {k}, stride {s}, padding {p}, dilation {d})"
        )));
    }
    if p > k / 2 {
        return Err(Error::other(format!(
            "{op}: padding {p} should be at most half of kernel size {k}"
        )));
    }
    // i128 so that absurd parameters cannot overflow.
    let (i, k, s, p, d) = (input as i128, k as i128, s as i128, p as i128, d as i128);
    let num = i + 2 * p - d * (k - 1) - 1 + if ceil_mode { s - 1 } else { 0 };
    let mut o = num.div_euclid(s) + 1;
    if ceil_mode && (o - 1) * s >= i + p {
        o -= 1;
    }
    if o <= 0 || o > i64::MAX as i128 {
        return Err(Error::other(format!(
            "{op}: output size {o} is too small (input size {input}, kernel {k}, stride {s}, padding {p}, dilation {d})"
        )));
    }
    Ok(o as usize)
}

/// Parameters of a 2-D window pooling.
struct Win {
    k: [i64; 2],
    s: [i64; 2],
    p: [i64; 2],
    d: [i64; 2],
    o: [usize; 2],
}

#[allow(clippy::too_many_arguments)]
fn window2d(
    op: &str,
    h: usize,
    w: usize,
    kernel_size: &[i64],
    stride: &[i64],
    padding: &[i64],
    dilation: &[i64],
    ceil_mode: bool,
) -> Result<Win> {
    let k = expand(op, "kernel_size", kernel_size, 2)?;
    let s = if stride.is_empty() {
        k.clone()
    } else {
        expand(op, "stride", stride, 2)?
    };
    let p = expand(op, "padding", padding, 2)?;
    let d = expand(op, "dilation", dilation, 2)?;
    let oh = pool_out(op, h, k[0], s[0], p[0], d[0], ceil_mode)?;
    let ow = pool_out(op, w, k[1], s[1], p[1], d[1], ceil_mode)?;
    Ok(Win {
        k: [k[0], k[1]],
        s: [s[0], s[1]],
        p: [p[0], p[1]],
        d: [d[0], d[1]],
        o: [oh, ow],
    })
}

fn shaped<T>(op: &str, lead: &[usize], tail: &[usize], v: Vec<T>) -> Result<ArrayD<T>> {
    let shape: Vec<usize> = lead.iter().chain(tail).copied().collect();
    ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| Error::other(format!("{op}: {e}")))
}

/// `aten.max_pool2d_with_indices(input, kernel_size, stride, padding,
/// dilation, ceil_mode)`.
///
/// `stride` empty means `stride = kernel_size`. Returns the values and the
/// indices of the maxima, flat within each `H * W` input plane (as torch).
/// NaN propagates: a NaN in the window is selected.
pub fn max_pool2d_with_indices<T: Float>(
    input: ArrayViewD<'_, T>,
    kernel_size: &[i64],
    stride: &[i64],
    padding: &[i64],
    dilation: &[i64],
    ceil_mode: bool,
) -> Result<(ArrayD<T>, ArrayD<i64>)> {
    const OP: &str = "max_pool2d_with_indices";
    let (lead, planes, h, w) = planes2d(OP, &input)?;
    let win = window2d(OP, h, w, kernel_size, stride, padding, dilation, ceil_mode)?;
    let x = dense(&input);
    let [oh, ow] = win.o;
    let osz = oh * ow;
    let mut vals = vec![T::zero(); planes * osz];
    let mut idxs = vec![0i64; planes * osz];
    if osz > 0 && h * w > 0 {
        vals.par_chunks_mut(osz)
            .zip(idxs.par_chunks_mut(osz))
            .enumerate()
            .for_each(|(pl, (vo, io))| {
                let xp = &x[pl * h * w..][..h * w];
                for y in 0..oh {
                    let mut hs = y as i64 * win.s[0] - win.p[0];
                    let he = (hs + (win.k[0] - 1) * win.d[0] + 1).min(h as i64);
                    while hs < 0 {
                        hs += win.d[0];
                    }
                    for xo in 0..ow {
                        let mut ws = xo as i64 * win.s[1] - win.p[1];
                        let we = (ws + (win.k[1] - 1) * win.d[1] + 1).min(w as i64);
                        while ws < 0 {
                            ws += win.d[1];
                        }
                        let mut best = T::neg_infinity();
                        let mut bi = hs * w as i64 + ws;
                        let mut yy = hs;
                        while yy < he {
                            let mut xx = ws;
                            while xx < we {
                                let i = yy * w as i64 + xx;
                                let v = xp[i as usize];
                                if v > best || v.is_nan() {
                                    best = v;
                                    bi = i;
                                }
                                xx += win.d[1];
                            }
                            yy += win.d[0];
                        }
                        vo[y * ow + xo] = best;
                        io[y * ow + xo] = bi;
                    }
                }
            });
    }
    Ok((
        shaped(OP, &lead, &[oh, ow], vals)?,
        shaped(OP, &lead, &[oh, ow], idxs)?,
    ))
}

/// Inserts a unit height axis into a 1-D pooling input `(.., L)`.
fn as_2d<'a, T>(op: &str, input: ArrayViewD<'a, T>) -> Result<ArrayViewD<'a, T>> {
    if input.ndim() != 2 && input.ndim() != 3 {
        return Err(Error::other(format!(
            "{op}: expected 2-D (C, L) or 3-D (N, C, L) input, got shape {:?}",
            input.shape()
        )));
    }
    let ax = input.ndim() - 1;
    Ok(input.insert_axis(ndarray::Axis(ax)))
}

fn drop_h<T>(a: ArrayD<T>) -> ArrayD<T> {
    let ax = a.ndim() - 2;
    a.remove_axis(ndarray::Axis(ax))
}

/// `aten.max_pool1d_with_indices(input, kernel_size, stride, padding,
/// dilation, ceil_mode)` on `(N, C, L)` or `(C, L)`; indices are positions
/// within `L`. (`aten.max_pool1d` is the values part.)
pub fn max_pool1d_with_indices<T: Float>(
    input: ArrayViewD<'_, T>,
    kernel_size: &[i64],
    stride: &[i64],
    padding: &[i64],
    dilation: &[i64],
    ceil_mode: bool,
) -> Result<(ArrayD<T>, ArrayD<i64>)> {
    const OP: &str = "max_pool1d";
    let x = as_2d(OP, input)?;
    let k = expand(OP, "kernel_size", kernel_size, 1)?[0];
    let st = if stride.is_empty() {
        k
    } else {
        expand(OP, "stride", stride, 1)?[0]
    };
    let pd = expand(OP, "padding", padding, 1)?[0];
    let dl = expand(OP, "dilation", dilation, 1)?[0];
    let (v, i) = max_pool2d_with_indices(x, &[1, k], &[1, st], &[0, pd], &[1, dl], ceil_mode)?;
    Ok((drop_h(v), drop_h(i)))
}

/// `aten.max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode)`.
pub fn max_pool1d<T: Float>(
    input: ArrayViewD<'_, T>,
    kernel_size: &[i64],
    stride: &[i64],
    padding: &[i64],
    dilation: &[i64],
    ceil_mode: bool,
) -> Result<ArrayD<T>> {
    Ok(max_pool1d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode)?.0)
}

/// `aten.avg_pool2d(input, kernel_size, stride, padding, ceil_mode,
/// count_include_pad, divisor_override)`.
///
/// The divisor is `divisor_override` if given, else the window size clipped
/// to the padded input (`count_include_pad`) or to the input itself.
/// Windows that lie entirely in padding produce 0.
#[allow(clippy::too_many_arguments)]
pub fn avg_pool2d<T: Float>(
    input: ArrayViewD<'_, T>,
    kernel_size: &[i64],
    stride: &[i64],
    padding: &[i64],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Option<i64>,
) -> Result<ArrayD<T>> {
    const OP: &str = "avg_pool2d";
    let (lead, planes, h, w) = planes2d(OP, &input)?;
    if divisor_override == Some(0) {
        return Err(Error::other(format!("{OP}: divisor must be not zero")));
    }
    let win = window2d(OP, h, w, kernel_size, stride, padding, &[1], ceil_mode)?;
    let x = dense(&input);
    let [oh, ow] = win.o;
    let osz = oh * ow;
    let (hi, wi) = (h as i64, w as i64);
    let mut out = vec![T::zero(); planes * osz];
    if osz > 0 {
        out.par_chunks_mut(osz).enumerate().for_each(|(pl, o)| {
            let xp = &x[pl * h * w..][..h * w];
            for y in 0..oh {
                for xo in 0..ow {
                    let mut hs = y as i64 * win.s[0] - win.p[0];
                    let mut ws = xo as i64 * win.s[1] - win.p[1];
                    let mut he = (hs + win.k[0]).min(hi + win.p[0]);
                    let mut we = (ws + win.k[1]).min(wi + win.p[1]);
                    let pool = (he - hs) * (we - ws);
                    hs = hs.max(0);
                    ws = ws.max(0);
                    he = he.min(hi);
                    we = we.min(wi);
                    if hs >= he || ws >= we {
                        continue;
                    }
                    let mut acc = T::zero();
                    for yy in hs..he {
                        for xx in ws..we {
                            acc = acc + xp[(yy * wi + xx) as usize];
                        }
                    }
                    let div = match divisor_override {
                        Some(dv) => dv,
                        None if count_include_pad => pool,
                        None => (he - hs) * (we - ws),
                    };
                    o[y * ow + xo] = acc / T::of(div as f64);
                }
            }
        });
    }
    shaped(OP, &lead, &[oh, ow], out)
}

/// `aten.avg_pool3d(input, kernel_size, stride, padding, ceil_mode,
/// count_include_pad, divisor_override)` over `(N, C, D, H, W)` or
/// `(C, D, H, W)`, with the divisor rule of [`avg_pool2d`].
#[allow(clippy::too_many_arguments)]
pub fn avg_pool3d<T: Float>(
    input: ArrayViewD<'_, T>,
    kernel_size: &[i64],
    stride: &[i64],
    padding: &[i64],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Option<i64>,
) -> Result<ArrayD<T>> {
    const OP: &str = "avg_pool3d";
    let sh = input.shape();
    if sh.len() != 4 && sh.len() != 5 {
        return Err(Error::other(format!(
            "{OP}: expected 4-D or 5-D input, got shape {sh:?}"
        )));
    }
    if divisor_override == Some(0) {
        return Err(Error::other(format!("{OP}: divisor must be not zero")));
    }
    let r = sh.len();
    let lead = sh[..r - 3].to_vec();
    let planes: usize = lead.iter().product();
    let dims = [sh[r - 3], sh[r - 2], sh[r - 1]];
    let k = expand(OP, "kernel_size", kernel_size, 3)?;
    let st = if stride.is_empty() {
        k.clone()
    } else {
        expand(OP, "stride", stride, 3)?
    };
    let p = expand(OP, "padding", padding, 3)?;
    let mut o = [0usize; 3];
    for i in 0..3 {
        o[i] = pool_out(OP, dims[i], k[i], st[i], p[i], 1, ceil_mode)?;
    }
    let x = dense(&input);
    let inner = dims[0] * dims[1] * dims[2];
    let osz = o[0] * o[1] * o[2];
    let mut out = vec![T::zero(); planes * osz];
    for pl in 0..planes {
        let xp = &x[pl * inner..][..inner];
        for (n, slot) in out[pl * osz..][..osz].iter_mut().enumerate() {
            let pos = [n / (o[1] * o[2]), n / o[2] % o[1], n % o[2]];
            let mut lo = [0i64; 3];
            let mut hi = [0i64; 3];
            let mut pool = 1i64;
            let mut count = 1i64;
            for i in 0..3 {
                let start = pos[i] as i64 * st[i] - p[i];
                let end = (start + k[i]).min(dims[i] as i64 + p[i]);
                pool *= end - start;
                lo[i] = start.max(0);
                hi[i] = end.min(dims[i] as i64);
                count *= (hi[i] - lo[i]).max(0);
            }
            if count == 0 {
                continue;
            }
            let mut acc = T::zero();
            for z in lo[0]..hi[0] {
                for y in lo[1]..hi[1] {
                    for xx in lo[2]..hi[2] {
                        let at = (z as usize * dims[1] + y as usize) * dims[2] + xx as usize;
                        acc = acc + xp[at];
                    }
                }
            }
            let div = match divisor_override {
                Some(dv) => dv,
                None if count_include_pad => pool,
                None => count,
            };
            *slot = acc / T::of(div as f64);
        }
    }
    shaped(OP, &lead, &o, out)
}

/// torch's adaptive window `[floor(i*in/out), ceil((i+1)*in/out))`.
fn adaptive_range(i: usize, inp: usize, out: usize) -> (usize, usize) {
    (i * inp / out, ((i + 1) * inp).div_ceil(out))
}

fn adaptive_sizes(op: &str, output_size: &[i64]) -> Result<[usize; 2]> {
    let o = expand(op, "output_size", output_size, 2)?;
    Ok([
        to_usize(op, "output_size", o[0])?,
        to_usize(op, "output_size", o[1])?,
    ])
}

fn check_nonempty(op: &str, h: usize, w: usize, shape: &[usize]) -> Result<()> {
    if h == 0 || w == 0 {
        return Err(Error::other(format!(
            "{op}: spatial dimensions must be non-empty, got input shape {shape:?}"
        )));
    }
    Ok(())
}

/// `aten._adaptive_avg_pool2d(input, output_size)` (also `adaptive_avg_pool2d`).
pub fn adaptive_avg_pool2d<T: Float>(
    input: ArrayViewD<'_, T>,
    output_size: &[i64],
) -> Result<ArrayD<T>> {
    const OP: &str = "adaptive_avg_pool2d";
    let (lead, planes, h, w) = planes2d(OP, &input)?;
    let [oh, ow] = adaptive_sizes(OP, output_size)?;
    check_nonempty(OP, h, w, input.shape())?;
    let x = dense(&input);
    let osz = oh * ow;
    let mut out = vec![T::zero(); planes * osz];
    if osz > 0 {
        out.par_chunks_mut(osz).enumerate().for_each(|(pl, o)| {
            let xp = &x[pl * h * w..][..h * w];
            for y in 0..oh {
                let (hs, he) = adaptive_range(y, h, oh);
                for xo in 0..ow {
                    let (ws, we) = adaptive_range(xo, w, ow);
                    let mut acc = T::zero();
                    for yy in hs..he {
                        for xx in ws..we {
                            acc = acc + xp[yy * w + xx];
                        }
                    }
                    o[y * ow + xo] = acc / T::of(((he - hs) * (we - ws)) as f64);
                }
            }
        });
    }
    shaped(OP, &lead, &[oh, ow], out)
}

/// `aten.adaptive_max_pool2d(input, output_size)`: values and indices flat
/// within each `H * W` plane.
pub fn adaptive_max_pool2d<T: Float>(
    input: ArrayViewD<'_, T>,
    output_size: &[i64],
) -> Result<(ArrayD<T>, ArrayD<i64>)> {
    const OP: &str = "adaptive_max_pool2d";
    let (lead, planes, h, w) = planes2d(OP, &input)?;
    let [oh, ow] = adaptive_sizes(OP, output_size)?;
    check_nonempty(OP, h, w, input.shape())?;
    let x = dense(&input);
    let osz = oh * ow;
    let mut vals = vec![T::zero(); planes * osz];
    let mut idxs = vec![0i64; planes * osz];
    if osz > 0 {
        vals.par_chunks_mut(osz)
            .zip(idxs.par_chunks_mut(osz))
            .enumerate()
            .for_each(|(pl, (vo, io))| {
                let xp = &x[pl * h * w..][..h * w];
                for y in 0..oh {
                    let (hs, he) = adaptive_range(y, h, oh);
                    for xo in 0..ow {
                        let (ws, we) = adaptive_range(xo, w, ow);
                        let mut best = T::neg_infinity();
                        let mut bi = hs * w + ws;
                        for yy in hs..he {
                            for xx in ws..we {
                                let v = xp[yy * w + xx];
                                if v > best || v.is_nan() {
                                    best = v;
                                    bi = yy * w + xx;
                                }
                            }
                        }
                        vo[y * ow + xo] = best;
                        io[y * ow + xo] = bi as i64;
                    }
                }
            });
    }
    Ok((
        shaped(OP, &lead, &[oh, ow], vals)?,
        shaped(OP, &lead, &[oh, ow], idxs)?,
    ))
}

/// `aten.adaptive_avg_pool1d(input, output_size)` on `(N, C, L)` or `(C, L)`.
pub fn adaptive_avg_pool1d<T: Float>(
    input: ArrayViewD<'_, T>,
    output_size: &[i64],
) -> Result<ArrayD<T>> {
    const OP: &str = "adaptive_avg_pool1d";
    let o = expand(OP, "output_size", output_size, 1)?;
    let x = as_2d(OP, input)?;
    Ok(drop_h(adaptive_avg_pool2d(x, &[1, o[0]])?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::nn::testutil::{assert_close, Lcg};

    fn arr(shape: &[usize], v: Vec<f64>) -> ArrayD<f64> {
        ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
    }

    #[test]
    fn max_pool_basic_and_indices() {
        let x = arr(
            &[1, 1, 4, 4],
            (0..16).map(|v| ((v * 7) % 16) as f64).collect(),
        );
        // x = [[0,7,14,5],[12,3,10,1],[8,15,6,13],[4,11,2,9]]
        let (v, i) = max_pool2d_with_indices(x.view(), &[2], &[], &[0], &[1], false).unwrap();
        assert_eq!(
            v.iter().copied().collect::<Vec<_>>(),
            vec![12.0, 14.0, 15.0, 13.0]
        );
        assert_eq!(i.iter().copied().collect::<Vec<_>>(), vec![4, 2, 9, 11]);
    }

    #[test]
    fn max_pool_ceil_mode_edges() {
        // 5 wide, kernel 2, stride 2: floor -> 2, ceil -> 3 (last window partial).
        let x = arr(&[1, 5, 5], (0..25).map(f64::from).collect());
        let (v, i) = max_pool2d_with_indices(x.view(), &[2], &[2], &[0], &[1], true).unwrap();
        assert_eq!(v.shape(), &[1, 3, 3]);
        assert_eq!(
            v.iter().copied().collect::<Vec<_>>(),
            vec![6., 8., 9., 16., 18., 19., 21., 23., 24.]
        );
        assert_eq!(i[[0, 2, 2]], 24);
        let (v, _) = max_pool2d_with_indices(x.view(), &[2], &[2], &[0], &[1], false).unwrap();
        assert_eq!(v.shape(), &[1, 2, 2]);
        // Ceil mode must not start a window entirely in the right padding:
        // in=4, k=2, s=2, p=1: ceil((4+2-2)/2)+1 = 3, and (3-1)*2 = 4 >= 4+1? no -> 3.
        let x = arr(&[1, 1, 4], vec![1., 2., 3., 4.]);
        let (v, i) = max_pool1d_with_indices(x.view(), &[2], &[2], &[1], &[1], true).unwrap();
        assert_eq!(v.iter().copied().collect::<Vec<_>>(), vec![1., 3., 4.]);
        assert_eq!(i.iter().copied().collect::<Vec<_>>(), vec![0, 2, 3]);
        // in=5, k=3, s=2, p=1, ceil: (5+2-3+1)/2+1 = 3; (3-1)*2=4 >= 5+1? no -> 3.
        // in=6, k=2, s=4, p=1, ceil: ceil((6+2-2)/4)+1 = 3; (3-1)*4=8 >= 7 -> 2.
        let x = arr(&[1, 6], vec![1., 2., 3., 4., 5., 6.]);
        let v = max_pool1d(x.view(), &[2], &[4], &[1], &[1], true).unwrap();
        assert_eq!(v.iter().copied().collect::<Vec<_>>(), vec![1., 5.]);
    }

    #[test]
    fn max_pool_dilation_padding_nan() {
        let x = arr(&[1, 1, 1, 5], vec![1., f64::NAN, 3., 0., -1.]);
        let (v, i) =
            max_pool2d_with_indices(x.view(), &[1, 2], &[1], &[0, 1], &[1, 2], false).unwrap();
        assert_eq!(v.shape(), &[1, 1, 1, 5]);
        let v: Vec<f64> = v.iter().copied().collect();
        assert!(v[0].is_nan() && v[2].is_nan());
        assert_eq!((v[1], v[3], v[4]), (3.0, 3.0, 0.0));
        assert_eq!(i.iter().copied().collect::<Vec<_>>(), vec![1, 2, 1, 2, 3]);
        assert!(max_pool2d_with_indices(x.view(), &[1, 3], &[1], &[0, 2], &[1], false).is_err());
        assert!(max_pool2d_with_indices(x.view(), &[1, 7], &[1], &[0], &[1], false).is_err());
    }

    #[test]
    fn avg_pool_modes() {
        let x = arr(&[1, 1, 3, 3], (1..=9).map(f64::from).collect());
        let a = avg_pool2d(x.view(), &[2], &[2], &[1], false, true, None).unwrap();
        assert_eq!(
            a.iter().copied().collect::<Vec<_>>(),
            vec![0.25, 5.0 / 4.0, 11.0 / 4.0, 28.0 / 4.0]
        );
        let a = avg_pool2d(x.view(), &[2], &[2], &[1], false, false, None).unwrap();
        assert_eq!(
            a.iter().copied().collect::<Vec<_>>(),
            vec![1.0, 2.5, 5.5, 7.0]
        );
        let a = avg_pool2d(x.view(), &[2], &[2], &[1], false, false, Some(3)).unwrap();
        assert_eq!(a[[0, 0, 0, 0]], 1.0 / 3.0);
        // ceil mode on 3x3, k=2, s=2, p=0: last windows are partial, divided
        // by the clipped size (window end capped at in + pad).
        let a = avg_pool2d(x.view(), &[2], &[2], &[0], true, true, None).unwrap();
        assert_eq!(
            a.iter().copied().collect::<Vec<_>>(),
            vec![3.0, 4.5, 7.5, 9.0]
        );
        assert!(avg_pool2d(x.view(), &[2], &[2], &[0], true, true, Some(0)).is_err());
    }

    #[test]
    fn adaptive_non_divisible() {
        let mut r = Lcg(5);
        let x = r.array(&[2, 3, 5, 7]);
        let a = adaptive_avg_pool2d(x.view(), &[3, 4]).unwrap();
        let (m, mi) = adaptive_max_pool2d(x.view(), &[3, 4]).unwrap();
        let mut e = ArrayD::zeros(IxDyn(&[2, 3, 3, 4]));
        for n in 0..2 {
            for c in 0..3 {
                for i in 0..3 {
                    let hs = (i as f64 * 5.0 / 3.0).floor() as usize;
                    let he = ((i + 1) as f64 * 5.0 / 3.0).ceil() as usize;
                    for j in 0..4 {
                        let ws = (j as f64 * 7.0 / 4.0).floor() as usize;
                        let we = ((j + 1) as f64 * 7.0 / 4.0).ceil() as usize;
                        let win = x.slice(ndarray::s![n, c, hs..he, ws..we]);
                        e[[n, c, i, j]] = win.sum() / win.len() as f64;
                        let mx = win.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
                        assert_eq!(m[[n, c, i, j]], mx);
                        let k = mi[[n, c, i, j]] as usize;
                        assert_eq!(x[[n, c, k / 7, k % 7]], mx);
                    }
                }
            }
        }
        assert_close(&a, &e, 1e-12);
        let g = adaptive_avg_pool2d(x.view(), &[1]).unwrap();
        assert_eq!(g.shape(), &[2, 3, 1, 1]);
        assert!(
            (g[[1, 2, 0, 0]] - x.slice(ndarray::s![1, 2, .., ..]).mean().unwrap()).abs() < 1e-12
        );
        let x1 = arr(&[1, 5], vec![1., 2., 3., 4., 5.]);
        let a1 = adaptive_avg_pool1d(x1.view(), &[3]).unwrap();
        // windows [0,2), [1,4), [3,5)
        assert_eq!(a1.iter().copied().collect::<Vec<_>>(), vec![1.5, 3.0, 4.5]);
        assert!(adaptive_avg_pool2d(x.view(), &[1, 2, 3]).is_err());
        assert!(adaptive_avg_pool2d(x.view(), &[-1]).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn max_and_avg_pool_match_naive(
            seed in 0u64..1000,
            h in 1usize..8,
            w in 1usize..8,
            k in 1i64..4,
            s in 1i64..4,
            p_raw in 0i64..2,
            d in 1i64..3,
            ceil in proptest::prelude::any::<bool>(),
            cip in proptest::prelude::any::<bool>(),
        ) {
            let mut r = Lcg(seed);
            let x = r.array(&[2, h, w]);
            let p = p_raw.min(k / 2);
            let res = max_pool2d_with_indices(x.view(), &[k], &[s], &[p], &[d], ceil);
            let Ok((v, i)) = res else {
                // Only rejected when the window does not fit.
                proptest::prop_assert!((h.min(w) as i64) + 2 * p < d * (k - 1) + 1);
                return Ok(());
            };
            let (oh, ow) = (v.shape()[1], v.shape()[2]);
            for c in 0..2 {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut best = f64::NEG_INFINITY;
                        let mut bi = -1i64;
                        for ky in 0..k {
                            for kx in 0..k {
                                let y = oy as i64 * s - p + ky * d;
                                let xx = ox as i64 * s - p + kx * d;
                                if y >= 0 && xx >= 0 && y < h as i64 && xx < w as i64 {
                                    let val = x[[c, y as usize, xx as usize]];
                                    if val > best {
                                        best = val;
                                        bi = y * w as i64 + xx;
                                    }
                                }
                            }
                        }
                        proptest::prop_assert_eq!(v[[c, oy, ox]], best);
                        // A window entirely in padding (possible with dilation)
                        // yields -inf with torch's start-position index.
                        if bi >= 0 {
                            proptest::prop_assert_eq!(i[[c, oy, ox]], bi);
                        }
                    }
                }
            }
            let a = avg_pool2d(x.view(), &[k], &[s], &[p], ceil, cip, None);
            if let Ok(a) = a {
                for c in 0..2 {
                    for oy in 0..a.shape()[1] {
                        for ox in 0..a.shape()[2] {
                            let (mut sum, mut cnt, mut cnt_pad) = (0.0, 0i64, 0i64);
                            for ky in 0..k {
                                for kx in 0..k {
                                    let y = oy as i64 * s - p + ky;
                                    let xx = ox as i64 * s - p + kx;
                                    if y < h as i64 + p && xx < w as i64 + p {
                                        cnt_pad += 1;
                                    }
                                    if y >= 0 && xx >= 0 && y < h as i64 && xx < w as i64 {
                                        sum += x[[c, y as usize, xx as usize]];
                                        cnt += 1;
                                    }
                                }
                            }
                            let e = if cnt == 0 { 0.0 } else { sum / (if cip { cnt_pad } else { cnt }) as f64 };
                            proptest::prop_assert!((a[[c, oy, ox]] - e).abs() < 1e-12);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn avg_pool3d_matches_hand_computation() {
        // (1, 1, 2, 2, 2) holding 0..8: a 2x2x2 window averages to 3.5.
        let x = ArrayD::from_shape_vec(IxDyn(&[1, 1, 2, 2, 2]), (0..8).map(f64::from).collect())
            .unwrap();
        let y = avg_pool3d(x.view(), &[2], &[], &[0], false, true, None).unwrap();
        assert_eq!(y.shape(), &[1, 1, 1, 1, 1]);
        assert_eq!(y.iter().copied().collect::<Vec<_>>(), vec![3.5]);
        // A (2, 1, 1) window with stride 1 along depth, padding 1, not counting pads.
        let y = avg_pool3d(
            x.view(),
            &[2, 1, 1],
            &[1, 1, 1],
            &[1, 0, 0],
            false,
            false,
            None,
        )
        .unwrap();
        assert_eq!(y.shape(), &[1, 1, 3, 2, 2]);
        let v: Vec<f64> = y.iter().copied().collect();
        assert_eq!(&v[..4], &[0., 1., 2., 3.]);
        assert_eq!(&v[4..8], &[2., 3., 4., 5.]);
        assert!(avg_pool3d(x.view(), &[2], &[], &[0], false, true, Some(0)).is_err());
        assert!(avg_pool3d(
            x.view().into_shape_with_order(IxDyn(&[8])).unwrap(),
            &[2],
            &[],
            &[0],
            false,
            true,
            None
        )
        .is_err());
    }
}
