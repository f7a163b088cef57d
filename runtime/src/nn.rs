//! Safe neural-network kernels on dense, row-major `f32` slices: 2-D
//! convolution (im2col + GEMM), batch-norm inference and 2-D max pooling.
//!
//! Each kernel takes its sizes in a parameter struct whose `lens` method
//! validates them and returns the slice lengths they imply; the kernels
//! check those lengths (returning `false` without writing on a mismatch), so
//! no size combination makes them index out of bounds or panic.

use crate::gemm::{sgemm, MatRef};

/// `(h + 2 * pad - dil * (k - 1) - 1) / stride + 1`, the output length of a
/// window sliding over `h` (floor rounding), or `None` when the window does
/// not fit or a size is out of range.
fn out_len(h: usize, k: usize, stride: usize, pad: usize, dil: usize) -> Option<usize> {
    if k == 0 || stride == 0 || dil == 0 {
        return None;
    }
    let span = dil.checked_mul(k - 1)?.checked_add(1)?;
    let padded = h.checked_add(pad.checked_mul(2)?)?;
    let room = padded.checked_sub(span)?;
    Some(room / stride + 1)
}

fn prod(xs: &[usize]) -> Option<usize> {
    xs.iter().try_fold(1usize, |a, &b| a.checked_mul(b))
}

/// Sizes of a 2-D convolution of `x: [n, c, h, w]` with
/// `weight: [oc, c / groups, kh, kw]` into `y: [n, oc, oh, ow]`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oc: usize,
    pub kh: usize,
    pub kw: usize,
    pub oh: usize,
    pub ow: usize,
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dil: [usize; 2],
    pub groups: usize,
}

impl Conv2d {
    /// The lengths of `x`, `weight`, `bias` and `y`, or `None` when the sizes
    /// are inconsistent (groups not dividing the channels, an output size
    /// other than the window arithmetic gives, an overflow).
    pub fn lens(&self) -> Option<[usize; 4]> {
        let g = self.groups;
        if g == 0 || !self.c.is_multiple_of(g) || !self.oc.is_multiple_of(g) {
            return None;
        }
        let oh = out_len(self.h, self.kh, self.stride[0], self.pad[0], self.dil[0])?;
        let ow = out_len(self.w, self.kw, self.stride[1], self.pad[1], self.dil[1])?;
        if (oh, ow) != (self.oh, self.ow) {
            return None;
        }
        Some([
            prod(&[self.n, self.c, self.h, self.w])?,
            prod(&[self.oc, self.c / g, self.kh, self.kw])?,
            self.oc,
            prod(&[self.n, self.oc, self.oh, self.ow])?,
        ])
    }
}

/// `y = conv2d(x, weight) + bias` (PyTorch's cross-correlation, zero
/// padding). Returns `false`, writing nothing, when the sizes are
/// inconsistent or a slice has the wrong length.
pub fn conv2d(p: &Conv2d, x: &[f32], weight: &[f32], bias: Option<&[f32]>, y: &mut [f32]) -> bool {
    let Some([lx, lw, lb, ly]) = p.lens() else {
        return false;
    };
    if x.len() != lx || weight.len() != lw || y.len() != ly || bias.is_some_and(|b| b.len() != lb) {
        return false;
    }
    let (cg, ocg) = (p.c / p.groups, p.oc / p.groups);
    let kk = cg * p.kh * p.kw;
    let plane = p.oh * p.ow;
    if ly == 0 {
        return true;
    }
    let mut col = vec![0.0f32; kk * plane];
    for b in 0..p.n {
        for g in 0..p.groups {
            for ci in 0..cg {
                let xp = &x[((b * p.c + g * cg + ci) * p.h * p.w)..][..p.h * p.w];
                for ky in 0..p.kh {
                    for kx in 0..p.kw {
                        let row = (ci * p.kh + ky) * p.kw + kx;
                        let dst = &mut col[row * plane..][..plane];
                        for oy in 0..p.oh {
                            let iy = (oy * p.stride[0] + ky * p.dil[0]).checked_sub(p.pad[0]);
                            let line = &mut dst[oy * p.ow..][..p.ow];
                            let Some(iy) = iy.filter(|&iy| iy < p.h) else {
                                line.fill(0.0);
                                continue;
                            };
                            for (ox, o) in line.iter_mut().enumerate() {
                                let ix = (ox * p.stride[1] + kx * p.dil[1]).checked_sub(p.pad[1]);
                                *o = match ix {
                                    Some(ix) if ix < p.w => xp[iy * p.w + ix],
                                    _ => 0.0,
                                };
                            }
                        }
                    }
                }
            }
            let wg = MatRef::row_major(&weight[g * ocg * kk..][..ocg * kk], ocg, kk);
            let cm = MatRef::row_major(&col, kk, plane);
            let out = &mut y[(b * p.oc + g * ocg) * plane..][..ocg * plane];
            sgemm(1.0, wg, cm, 0.0, out);
            if let Some(bias) = bias {
                for (o, line) in out.chunks_mut(plane).enumerate() {
                    let v = bias[g * ocg + o];
                    line.iter_mut().for_each(|e| *e += v);
                }
            }
        }
    }
    true
}

/// Batch-norm inference on `x: [n, c, inner]`: per channel,
/// `(x - mean) / sqrt(var + eps) * weight + bias` (weight 1 and bias 0 when
/// absent), with the per-channel scale and shift computed in `f64`. Returns
/// `false`, writing nothing, when a slice has the wrong length.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_inference(
    x: &[f32],
    y: &mut [f32],
    mean: &[f32],
    var: &[f32],
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    (n, c, inner): (usize, usize, usize),
    eps: f64,
) -> bool {
    let Some(len) = prod(&[n, c, inner]) else {
        return false;
    };
    let per_channel = [Some(mean), Some(var), weight, bias];
    if x.len() != len || y.len() != len || per_channel.iter().flatten().any(|s| s.len() != c) {
        return false;
    }
    if len == 0 {
        return true;
    }
    for ch in 0..c {
        let inv = 1.0 / (var[ch] as f64 + eps).sqrt();
        let scale = inv * weight.map_or(1.0, |w| w[ch] as f64);
        let shift = bias.map_or(0.0, |b| b[ch] as f64) - mean[ch] as f64 * scale;
        for b in 0..n {
            let at = (b * c + ch) * inner;
            for (o, &i) in y[at..at + inner].iter_mut().zip(&x[at..at + inner]) {
                *o = (i as f64 * scale + shift) as f32;
            }
        }
    }
    true
}

/// Sizes of a 2-D max pool (floor rounding) of `planes` planes `h x w` into
/// `oh x ow`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct MaxPool2d {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dil: [usize; 2],
}

impl MaxPool2d {
    /// The lengths of `x` and `y`, or `None` when the sizes are inconsistent
    /// (padding over half the kernel, as PyTorch refuses, or output sizes
    /// other than the window arithmetic gives).
    pub fn lens(&self) -> Option<[usize; 2]> {
        if (0..2).any(|i| self.pad[i] > self.kernel[i] / 2) {
            return None;
        }
        let oh = out_len(
            self.h,
            self.kernel[0],
            self.stride[0],
            self.pad[0],
            self.dil[0],
        )?;
        let ow = out_len(
            self.w,
            self.kernel[1],
            self.stride[1],
            self.pad[1],
            self.dil[1],
        )?;
        if (oh, ow) != (self.oh, self.ow) {
            return None;
        }
        Some([
            prod(&[self.planes, self.h, self.w])?,
            prod(&[self.planes, self.oh, self.ow])?,
        ])
    }
}

/// The values of a 2-D max pool; a NaN in a window is selected, as in
/// PyTorch. Returns `false`, writing nothing, when the sizes are
/// inconsistent or a slice has the wrong length.
pub fn max_pool2d(p: &MaxPool2d, x: &[f32], y: &mut [f32]) -> bool {
    let Some([lx, ly]) = p.lens() else {
        return false;
    };
    if x.len() != lx || y.len() != ly {
        return false;
    }
    if ly == 0 {
        return true;
    }
    let (h, w) = (p.h, p.w);
    for pl in 0..p.planes {
        let xp = &x[pl * h * w..][..h * w];
        let yp = &mut y[pl * p.oh * p.ow..][..p.oh * p.ow];
        for oy in 0..p.oh {
            for ox in 0..p.ow {
                let mut best = f32::NEG_INFINITY;
                for ky in 0..p.kernel[0] {
                    let Some(iy) = (oy * p.stride[0] + ky * p.dil[0])
                        .checked_sub(p.pad[0])
                        .filter(|&iy| iy < h)
                    else {
                        continue;
                    };
                    for kx in 0..p.kernel[1] {
                        let Some(ix) = (ox * p.stride[1] + kx * p.dil[1])
                            .checked_sub(p.pad[1])
                            .filter(|&ix| ix < w)
                        else {
                            continue;
                        };
                        let v = xp[iy * w + ix];
                        if v > best || v.is_nan() {
                            best = v;
                        }
                    }
                }
                yp[oy * p.ow + ox] = best;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv2d_padded_strided_matches_a_direct_sum() {
        let p = Conv2d {
            n: 1,
            c: 1,
            h: 3,
            w: 3,
            oc: 1,
            kh: 3,
            kw: 3,
            oh: 2,
            ow: 2,
            stride: [2, 2],
            pad: [1, 1],
            dil: [1, 1],
            groups: 1,
        };
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let w = [1.0f32; 9];
        let mut y = [0.0f32; 4];
        assert!(conv2d(&p, &x, &w, Some(&[0.5]), &mut y));
        // Windows centred on the corners (0,0), (0,2), (2,0), (2,2).
        assert_eq!(y, [12.5, 16.5, 24.5, 28.5]);
    }

    #[test]
    fn inconsistent_sizes_write_nothing() {
        let p = MaxPool2d {
            planes: 1,
            h: 4,
            w: 4,
            oh: 3,
            ow: 2,
            kernel: [2, 2],
            stride: [2, 2],
            pad: [0, 0],
            dil: [1, 1],
        };
        let mut y = [7.0f32; 6];
        assert!(!max_pool2d(&p, &[0.0; 16], &mut y));
        assert_eq!(y, [7.0; 6]);
    }
}
