//! Spatial resampling of 4-D `(N, C, H, W)` inputs (3-D `(C, H, W)` is
//! accepted too): nearest and bilinear upsampling, pixel shuffle.

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;

use super::{dense, expand, to_usize, Float};
use crate::error::{Error, Result};

fn planes<T>(op: &str, input: &ArrayViewD<'_, T>) -> Result<(Vec<usize>, usize, usize, usize)> {
    let sh = input.shape();
    if sh.len() != 3 && sh.len() != 4 {
        return Err(Error::other(format!(
            "{op}: expected 3-D or 4-D input, got shape {sh:?}"
        )));
    }
    let r = sh.len();
    Ok((
        sh[..r - 2].to_vec(),
        sh[..r - 2].iter().product(),
        sh[r - 2],
        sh[r - 1],
    ))
}

/// Resolves the `.vec` overloads' `(output_size, scale_factors)` pair into
/// `(output_size, scales_h, scales_w)` for the `.default` overloads: with
/// scale factors, the size is `floor(in * scale)` and the scales are passed on.
pub fn resolve_output_size(
    op: &str,
    input_hw: [usize; 2],
    output_size: Option<&[i64]>,
    scale_factors: Option<&[f64]>,
) -> Result<(Vec<i64>, Option<f64>, Option<f64>)> {
    match (output_size, scale_factors) {
        (Some(o), None) => Ok((expand(op, "output_size", o, 2)?, None, None)),
        (None, Some(s)) => {
            let s: Vec<f64> = match s.len() {
                1 => vec![s[0]; 2],
                2 => s.to_vec(),
                n => {
                    return Err(Error::other(format!(
                        "{op}: scale_factors must have 1 or 2 elements, got {n}"
                    )))
                }
            };
            let o = (0..2)
                .map(|i| (input_hw[i] as f64 * s[i]).floor() as i64)
                .collect();
            Ok((o, Some(s[0]), Some(s[1])))
        }
        _ => Err(Error::other(format!(
            "{op}: exactly one of output_size and scale_factors must be given"
        ))),
    }
}

/// `in / out`, or `1 / scale` when a positive scale is given
/// (aten's `compute_scales_value`).
fn scales_value(scale: Option<f64>, inp: usize, out: usize) -> f64 {
    match scale {
        Some(s) if s > 0.0 => 1.0 / s,
        _ => inp as f64 / out as f64,
    }
}

/// The step between the source positions of neighbouring output pixels
/// (aten's `area_pixel_compute_scale`).
fn source_scale(inp: usize, out: usize, align_corners: bool, scale: Option<f64>) -> f64 {
    match (align_corners, out > 1) {
        (true, true) => (inp as f64 - 1.0) / (out as f64 - 1.0),
        (true, false) => 0.0,
        (false, _) => scales_value(scale, inp, out),
    }
}

/// aten's `nearest_idx` (computed in `f32` as torch does); `exact` is
/// `nearest-exact`: the source of pixel `o` is `floor((o + 0.5) * s)`.
fn nearest_idx(o: usize, inp: usize, out: usize, scale: Option<f64>, exact: bool) -> usize {
    if exact {
        let s = scales_value(scale, inp, out) as f32;
        return (((o as f32 + 0.5) * s).floor() as usize).min(inp - 1);
    }
    if out == inp {
        o
    } else if out == 2 * inp {
        o >> 1
    } else {
        let s = scales_value(scale, inp, out) as f32;
        ((o as f32 * s).floor() as usize).min(inp - 1)
    }
}

fn out_hw(op: &str, output_size: &[i64], h: usize, w: usize) -> Result<[usize; 2]> {
    let o = expand(op, "output_size", output_size, 2)?;
    let (oh, ow) = (
        to_usize(op, "output_size", o[0])?,
        to_usize(op, "output_size", o[1])?,
    );
    if oh == 0 || ow == 0 || h == 0 || w == 0 {
        return Err(Error::other(format!(
            "{op}: input ({h}, {w}) and output ({oh}, {ow}) sizes must be positive"
        )));
    }
    Ok([oh, ow])
}

fn finish<T>(op: &str, lead: &[usize], oh: usize, ow: usize, v: Vec<T>) -> Result<ArrayD<T>> {
    let shape: Vec<usize> = lead.iter().copied().chain([oh, ow]).collect();
    ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| Error::other(format!("{op}: {e}")))
}

/// `aten.upsample_nearest2d(input, output_size, scales_h, scales_w)`:
/// `src = min(floor(dst * in / out), in - 1)` per axis (or `dst / scale`
/// when a scale is given).
pub fn upsample_nearest2d<T: Float>(
    input: ArrayViewD<'_, T>,
    output_size: &[i64],
    scales_h: Option<f64>,
    scales_w: Option<f64>,
) -> Result<ArrayD<T>> {
    nearest2d(
        "upsample_nearest2d",
        input,
        output_size,
        [scales_h, scales_w],
        false,
    )
}

/// `aten._upsample_nearest_exact2d`: as [`upsample_nearest2d`] with
/// `src = min(floor((dst + 0.5) * in / out), in - 1)` (PIL's and
/// scikit-image's nearest).
pub fn upsample_nearest_exact2d<T: Float>(
    input: ArrayViewD<'_, T>,
    output_size: &[i64],
    scales_h: Option<f64>,
    scales_w: Option<f64>,
) -> Result<ArrayD<T>> {
    nearest2d(
        "_upsample_nearest_exact2d",
        input,
        output_size,
        [scales_h, scales_w],
        true,
    )
}

fn nearest2d<T: Float>(
    op: &'static str,
    input: ArrayViewD<'_, T>,
    output_size: &[i64],
    [scales_h, scales_w]: [Option<f64>; 2],
    exact: bool,
) -> Result<ArrayD<T>> {
    let (lead, np, h, w) = planes(op, &input)?;
    let [oh, ow] = out_hw(op, output_size, h, w)?;
    let x = dense(&input);
    let hi: Vec<usize> = (0..oh)
        .map(|o| nearest_idx(o, h, oh, scales_h, exact))
        .collect();
    let wi: Vec<usize> = (0..ow)
        .map(|o| nearest_idx(o, w, ow, scales_w, exact))
        .collect();
    let mut out = vec![T::zero(); np * oh * ow];
    out.par_chunks_mut(oh * ow).enumerate().for_each(|(p, o)| {
        let xp = &x[p * h * w..][..h * w];
        for (y, &sy) in hi.iter().enumerate() {
            for (xx, &sx) in wi.iter().enumerate() {
                o[y * ow + xx] = xp[sy * w + sx];
            }
        }
    });
    finish(op, &lead, oh, ow, out)
}

/// Source index, lower neighbour, upper neighbour and weights for bilinear.
fn linear_taps(
    o: usize,
    inp: usize,
    out: usize,
    align_corners: bool,
    scale: Option<f64>,
) -> (usize, usize, f64, f64) {
    let s = source_scale(inp, out, align_corners, scale);
    let src = if align_corners {
        s * o as f64
    } else {
        (s * (o as f64 + 0.5) - 0.5).max(0.0)
    };
    let i0 = (src.floor() as usize).min(inp - 1);
    let i1 = if i0 < inp - 1 { i0 + 1 } else { i0 };
    let l1 = (src - i0 as f64).clamp(0.0, 1.0);
    (i0, i1, 1.0 - l1, l1)
}

/// `aten.upsample_bilinear2d(input, output_size, align_corners, scales_h,
/// scales_w)` with aten's source-index rule (`align_corners`: corners map to
/// corners; otherwise half-pixel centres clamped at 0).
pub fn upsample_bilinear2d<T: Float>(
    input: ArrayViewD<'_, T>,
    output_size: &[i64],
    align_corners: bool,
    scales_h: Option<f64>,
    scales_w: Option<f64>,
) -> Result<ArrayD<T>> {
    const OP: &str = "upsample_bilinear2d";
    let (lead, np, h, w) = planes(OP, &input)?;
    let [oh, ow] = out_hw(OP, output_size, h, w)?;
    let x = dense(&input);
    let ht: Vec<_> = (0..oh)
        .map(|o| linear_taps(o, h, oh, align_corners, scales_h))
        .collect();
    let wt: Vec<_> = (0..ow)
        .map(|o| linear_taps(o, w, ow, align_corners, scales_w))
        .collect();
    let mut out = vec![T::zero(); np * oh * ow];
    out.par_chunks_mut(oh * ow).enumerate().for_each(|(p, o)| {
        let xp = &x[p * h * w..][..h * w];
        let at = |y: usize, xx: usize| xp[y * w + xx].to64();
        for (y, &(y0, y1, a0, a1)) in ht.iter().enumerate() {
            for (xx, &(x0, x1, b0, b1)) in wt.iter().enumerate() {
                let v = a0 * (b0 * at(y0, x0) + b1 * at(y0, x1))
                    + a1 * (b0 * at(y1, x0) + b1 * at(y1, x1));
                o[y * ow + xx] = T::of(v);
            }
        }
    });
    finish(OP, &lead, oh, ow, out)
}

/// The four source indices (clamped to the input) and cubic-convolution
/// weights (`A = -0.75`, as torch) of output pixel `o`.
fn cubic_taps(
    o: usize,
    inp: usize,
    out: usize,
    align_corners: bool,
    scale: Option<f64>,
) -> ([usize; 4], [f64; 4]) {
    const A: f64 = -0.75;
    let s = source_scale(inp, out, align_corners, scale);
    // Unlike bilinear, the half-pixel source is not clamped at 0.
    let src = if align_corners {
        s * o as f64
    } else {
        s * (o as f64 + 0.5) - 0.5
    };
    let f = src.floor();
    let t = src - f;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let w = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
    let last = inp as i64 - 1;
    let i = |k: i64| (f as i64 - 1 + k).clamp(0, last) as usize;
    ([i(0), i(1), i(2), i(3)], w)
}

/// `aten.upsample_bicubic2d(input, output_size, align_corners, scales_h,
/// scales_w)`: separable cubic convolution over 4x4 neighbourhoods, the
/// border replicated.
pub fn upsample_bicubic2d<T: Float>(
    input: ArrayViewD<'_, T>,
    output_size: &[i64],
    align_corners: bool,
    scales_h: Option<f64>,
    scales_w: Option<f64>,
) -> Result<ArrayD<T>> {
    const OP: &str = "upsample_bicubic2d";
    let (lead, np, h, w) = planes(OP, &input)?;
    let [oh, ow] = out_hw(OP, output_size, h, w)?;
    let x = dense(&input);
    let ht: Vec<_> = (0..oh)
        .map(|o| cubic_taps(o, h, oh, align_corners, scales_h))
        .collect();
    let wt: Vec<_> = (0..ow)
        .map(|o| cubic_taps(o, w, ow, align_corners, scales_w))
        .collect();
    let mut out = vec![T::zero(); np * oh * ow];
    out.par_chunks_mut(oh * ow).enumerate().for_each(|(p, o)| {
        let xp = &x[p * h * w..][..h * w];
        for (y, (yi, yw)) in ht.iter().enumerate() {
            for (xx, (xi, xw)) in wt.iter().enumerate() {
                let mut v = 0.0;
                for (&r, &a) in yi.iter().zip(yw) {
                    let row: f64 = xi
                        .iter()
                        .zip(xw)
                        .map(|(&c, &b)| b * xp[r * w + c].to64())
                        .sum();
                    v += a * row;
                }
                o[y * ow + xx] = T::of(v);
            }
        }
    });
    finish(OP, &lead, oh, ow, out)
}

/// `aten.pixel_shuffle(input, upscale_factor)`: `(*, C r^2, H, W)` to
/// `(*, C, H r, W r)` with `out[c, h r + i, w r + j] = in[c r^2 + i r + j, h, w]`.
pub fn pixel_shuffle<T: Float>(input: ArrayViewD<'_, T>, upscale_factor: i64) -> Result<ArrayD<T>> {
    const OP: &str = "pixel_shuffle";
    let sh = input.shape();
    if sh.len() < 3 || upscale_factor <= 0 {
        return Err(Error::other(format!(
            "{OP}: need input with at least 3 dims and a positive factor, got shape {sh:?}, factor {upscale_factor}"
        )));
    }
    let r = upscale_factor as usize;
    let n = sh.len();
    let (c, h, w) = (sh[n - 3], sh[n - 2], sh[n - 1]);
    if c % (r * r) != 0 {
        return Err(Error::other(format!(
            "{OP}: channels {c} not divisible by upscale_factor^2 = {}",
            r * r
        )));
    }
    let co = c / (r * r);
    let mut tmp: Vec<usize> = sh[..n - 3].to_vec();
    tmp.extend([co, r, r, h, w]);
    let v = input
        .to_shape(IxDyn(&tmp))
        .map_err(|e| Error::other(format!("{OP}: {e}")))?;
    let k = n - 3;
    let mut perm: Vec<usize> = (0..k).collect();
    perm.extend([k, k + 3, k + 1, k + 4, k + 2]);
    let p = v.view().permuted_axes(perm);
    let mut oshape: Vec<usize> = sh[..n - 3].to_vec();
    oshape.extend([co, h * r, w * r]);
    let data: Vec<T> = p.iter().copied().collect();
    ArrayD::from_shape_vec(IxDyn(&oshape), data).map_err(|e| Error::other(format!("{OP}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(shape: &[usize], v: Vec<f64>) -> ArrayD<f64> {
        ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
    }

    #[test]
    fn nearest() {
        let x = a(&[1, 1, 2, 3], vec![1., 2., 3., 4., 5., 6.]);
        let y = upsample_nearest2d(x.view(), &[4, 2], None, None).unwrap();
        // rows: 0,0,1,1; cols: floor(0*1.5)=0, floor(1.5)=1
        assert_eq!(
            y.iter().copied().collect::<Vec<_>>(),
            vec![1., 2., 1., 2., 4., 5., 4., 5.]
        );
        let (o, sh, sw) = resolve_output_size("t", [2, 3], None, Some(&[2.0])).unwrap();
        assert_eq!((o, sh, sw), (vec![4, 6], Some(2.0), Some(2.0)));
        assert!(upsample_nearest2d(x.view(), &[0, 2], None, None).is_err());
    }

    #[test]
    fn bilinear() {
        let x = a(&[1, 1, 2, 2], vec![0., 1., 2., 3.]);
        let y = upsample_bilinear2d(x.view(), &[3, 3], true, None, None).unwrap();
        assert_eq!(
            y.iter().copied().collect::<Vec<_>>(),
            vec![0., 0.5, 1., 1., 1.5, 2., 2., 2.5, 3.]
        );
        // align_corners=False, 2 -> 4: src = (o + 0.5) / 2 - 0.5 clamped at 0:
        // 0, 0.25, 0.75, 1.25 -> taps on row [0, 1]: 0, 0.25, 0.75, 1.
        let x = a(&[1, 1, 1, 2], vec![0., 1.]);
        let y = upsample_bilinear2d(x.view(), &[1, 4], false, None, None).unwrap();
        assert_eq!(
            y.iter().copied().collect::<Vec<_>>(),
            vec![0., 0.25, 0.75, 1.]
        );
    }

    #[test]
    fn shuffle() {
        let x = a(&[1, 4, 1, 2], (0..8).map(f64::from).collect());
        let y = pixel_shuffle(x.view(), 2).unwrap();
        assert_eq!(y.shape(), &[1, 1, 2, 4]);
        // out[0, i, 2w + j] = in[2i + j, 0, w]
        assert_eq!(
            y.iter().copied().collect::<Vec<_>>(),
            vec![0., 2., 1., 3., 4., 6., 5., 7.]
        );
        assert!(pixel_shuffle(x.view(), 3).is_err());
    }
}
