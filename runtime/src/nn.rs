//! Safe neural-network kernels on dense, row-major `f32` slices: 2-D
//! convolution (direct for depthwise, GEMM for 1x1, im2col + GEMM
//! otherwise, with a fused activation), batch-norm inference and 2-D max
//! pooling.
//!
//! Each kernel takes its sizes in a parameter struct whose `lens` method
//! validates them and returns the slice lengths they imply; the kernels
//! check those lengths (returning `false` without writing on a mismatch), so
//! no size combination makes them index out of bounds or panic.

use crate::gemm::{gemm, sgemm, with_scratch, Act, Bias, GemmDims, MatRef, Scratch, Strides};
use std::cell::RefCell;

thread_local! {
    /// im2col columns, reused across calls on this thread.
    static COL_SCRATCH: Scratch = const { RefCell::new(Vec::new()) };
    /// A zero-padded input plane of the depthwise convolution.
    static PAD_SCRATCH: Scratch = const { RefCell::new(Vec::new()) };
}
use rayon::prelude::*;

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
    conv2d_act(p, x, weight, bias, y, Act::None)
}

/// The output positions `o < out` whose input index `o * stride + shift`
/// lies in `[0, len)`: a contiguous range `lo..hi`.
fn valid_range(out: usize, len: usize, stride: usize, shift: isize) -> (usize, usize) {
    let s = stride as isize;
    let lo = if shift >= 0 { 0 } else { (-shift + s - 1) / s };
    let room = len as isize - shift;
    let hi = if room <= 0 { 0 } else { (room + s - 1) / s };
    let (lo, hi) = ((lo as usize).min(out), (hi as usize).min(out));
    (lo, hi.max(lo))
}

/// `y = act(conv2d(x, weight) + bias)`, multithreaded on the current rayon
/// pool: a direct loop when each output channel reads one input channel
/// (depthwise), one GEMM per group for 1x1 stride-1 unpadded kernels, and
/// im2col + GEMM otherwise. Returns `false`, writing nothing, when the sizes
/// are inconsistent or a slice has the wrong length.
pub fn conv2d_act(
    p: &Conv2d,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    act: Act,
) -> bool {
    let Some([lx, lw, lb, ly]) = p.lens() else {
        return false;
    };
    if x.len() != lx || weight.len() != lw || y.len() != ly || bias.is_some_and(|b| b.len() != lb) {
        return false;
    }
    if ly == 0 {
        return true;
    }
    let (cg, ocg) = (p.c / p.groups, p.oc / p.groups);
    let kk = cg * p.kh * p.kw;
    let plane = p.oh * p.ow;
    if kk == 0 {
        // No input channels: the output is the bias.
        for (i, o) in y.iter_mut().enumerate() {
            *o = act_apply(act, bias.map_or(0.0, |b| b[(i / plane) % p.oc]));
        }
        return true;
    }
    if cg == 1 {
        depthwise(p, x, weight, bias, y, act);
        return true;
    }
    let in_plane = p.h * p.w;
    if p.kh == 1 && p.kw == 1 && p.stride == [1, 1] && p.pad == [0, 0] {
        for g in 0..p.groups {
            let d = GemmDims {
                batch: p.n,
                m: ocg,
                n: plane,
                k: cg,
            };
            let sa = Strides {
                bs: 0,
                rs: cg,
                cs: 1,
            };
            let sb = Strides {
                bs: p.c * in_plane,
                rs: in_plane,
                cs: 1,
            };
            let bias = bias.map(|b| Bias {
                data: &b[g * ocg..][..ocg],
                rs: 1,
                cs: 0,
            });
            let ok = gemm(
                d,
                &weight[g * ocg * cg..][..ocg * cg],
                sa,
                &x[g * cg * in_plane..],
                sb,
                bias,
                &mut y[g * ocg * plane..],
                p.oc * plane,
                plane,
                act,
            );
            debug_assert!(ok);
        }
        return true;
    }
    // `im2col` writes every element, so stale scratch contents are fine.
    with_scratch(&COL_SCRATCH, kk * plane, |col| {
        for b in 0..p.n {
            for g in 0..p.groups {
                let xg = &x[(b * p.c + g * cg) * in_plane..][..cg * in_plane];
                im2col(p, xg, col);
                let d = GemmDims {
                    batch: 1,
                    m: ocg,
                    n: plane,
                    k: kk,
                };
                let bias = bias.map(|bs| Bias {
                    data: &bs[g * ocg..][..ocg],
                    rs: 1,
                    cs: 0,
                });
                let ok = gemm(
                    d,
                    &weight[g * ocg * kk..][..ocg * kk],
                    Strides::row_major(ocg, kk),
                    col,
                    Strides::row_major(kk, plane),
                    bias,
                    &mut y[(b * p.oc + g * ocg) * plane..][..ocg * plane],
                    0,
                    plane,
                    act,
                );
                debug_assert!(ok);
            }
        }
    });
    true
}

fn act_apply(act: Act, v: f32) -> f32 {
    act.apply(v)
}

/// Fills `col: [cg * kh * kw, oh * ow]` with the input windows of one batch
/// item and group, `xg: [cg, h, w]` (zeros where the window is padding).
fn im2col(p: &Conv2d, xg: &[f32], col: &mut [f32]) {
    let plane = p.oh * p.ow;
    let (kh, kw) = (p.kh, p.kw);
    let rows_per_task = (16 * 1024 / plane.max(1)).max(1);
    col.par_chunks_mut(plane * rows_per_task)
        .enumerate()
        .for_each(|(task, rows)| {
            for (r, dst) in rows.chunks_mut(plane).enumerate() {
                let row = task * rows_per_task + r;
                let (ci, ky, kx) = (row / (kh * kw), (row / kw) % kh, row % kw);
                let xp = &xg[ci * p.h * p.w..][..p.h * p.w];
                let shift_x = (kx * p.dil[1]) as isize - p.pad[1] as isize;
                let (lo, hi) = valid_range(p.ow, p.w, p.stride[1], shift_x);
                for oy in 0..p.oh {
                    let line = &mut dst[oy * p.ow..][..p.ow];
                    let iy = (oy * p.stride[0] + ky * p.dil[0]).checked_sub(p.pad[0]);
                    let Some(iy) = iy.filter(|&iy| iy < p.h) else {
                        line.fill(0.0);
                        continue;
                    };
                    if lo >= hi {
                        // The whole row of windows lies in the padding.
                        line.fill(0.0);
                        continue;
                    }
                    let src = &xp[iy * p.w..][..p.w];
                    line[..lo].fill(0.0);
                    line[hi..].fill(0.0);
                    let first = (lo * p.stride[1]) as isize + shift_x;
                    let src = &src[first as usize..];
                    if p.stride[1] == 1 {
                        line[lo..hi].copy_from_slice(&src[..hi - lo]);
                    } else {
                        for (o, &v) in line[lo..hi].iter_mut().zip(src.iter().step_by(p.stride[1]))
                        {
                            *o = v;
                        }
                    }
                }
            }
        });
}

/// The convolution when every output channel reads one input channel
/// (`c / groups == 1`): a direct loop per output plane.
fn depthwise(p: &Conv2d, x: &[f32], weight: &[f32], bias: Option<&[f32]>, y: &mut [f32], act: Act) {
    let plane = p.oh * p.ow;
    let in_plane = p.h * p.w;
    let ocg = p.oc / p.groups;
    let planes_per_task = (8 * 1024 / plane.max(1)).max(1);
    y.par_chunks_mut(plane * planes_per_task)
        .enumerate()
        .for_each(|(task, out)| {
            for (r, yp) in out.chunks_mut(plane).enumerate() {
                let idx = task * planes_per_task + r;
                let (b, o) = (idx / p.oc, idx % p.oc);
                let xp = &x[(b * p.c + o / ocg) * in_plane..][..in_plane];
                let wk = &weight[o * p.kh * p.kw..][..p.kh * p.kw];
                depthwise_plane(p, xp, wk, bias.map_or(0.0, |bs| bs[o]), yp, act);
            }
        });
}

fn depthwise_plane(p: &Conv2d, xp: &[f32], wk: &[f32], bias: f32, yp: &mut [f32], act: Act) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA.
        unsafe { depthwise_plane_avx2(p, xp, wk, bias, yp, act) };
        return;
    }
    depthwise_plane_body(p, xp, wk, bias, yp, act);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn depthwise_plane_avx2(p: &Conv2d, xp: &[f32], wk: &[f32], bias: f32, yp: &mut [f32], act: Act) {
    depthwise_plane_body(p, xp, wk, bias, yp, act);
}

/// `acc[i] += wv * s[i * S]`.
#[inline(always)]
fn taps_into<const B: usize, const S: usize>(acc: &mut [f32; B], wv: f32, s: &[f32]) {
    let s = &s[..(B - 1) * S + 1];
    for (i, a) in acc.iter_mut().enumerate() {
        *a += wv * s[i * S];
    }
}

/// One output plane of the depthwise convolution. The input plane is first
/// copied into a zero-padded scratch plane wide enough that every block of
/// `B` output columns reads inside it, so the tap loops have no bounds to
/// test and keep `B` accumulators in registers.
#[inline(always)]
fn depthwise_plane_body(p: &Conv2d, xp: &[f32], wk: &[f32], bias: f32, yp: &mut [f32], act: Act) {
    const B: usize = 8;
    if p.oh == 0 || p.ow == 0 {
        return;
    }
    let (sy, sx) = (p.stride[0], p.stride[1]);
    let (dy, dx) = (p.dil[0], p.dil[1]);
    let (py, px) = (p.pad[0], p.pad[1]);
    let nb = p.ow.div_ceil(B);
    let wp = ((nb * B - 1) * sx + (p.kw - 1) * dx + 1).max(p.w + px);
    let hp = ((p.oh - 1) * sy + (p.kh - 1) * dy + 1).max(p.h + py);
    with_scratch(&PAD_SCRATCH, hp * wp, |pad| {
        pad.fill(0.0);
        for iy in 0..p.h {
            pad[(iy + py) * wp + px..][..p.w].copy_from_slice(&xp[iy * p.w..][..p.w]);
        }
        for oy in 0..p.oh {
            let line = &mut yp[oy * p.ow..][..p.ow];
            for blk in 0..nb {
                let mut acc = [bias; B];
                for ky in 0..p.kh {
                    let row = &pad[(oy * sy + ky * dy) * wp..][..wp];
                    let wrow = &wk[ky * p.kw..][..p.kw];
                    for (kx, &wv) in wrow.iter().enumerate() {
                        let s = &row[blk * B * sx + kx * dx..];
                        // Constant strides let the loop vectorize.
                        match sx {
                            1 => taps_into::<B, 1>(&mut acc, wv, s),
                            2 => taps_into::<B, 2>(&mut acc, wv, s),
                            _ => {
                                let s = &s[..(B - 1) * sx + 1];
                                for (i, a) in acc.iter_mut().enumerate() {
                                    *a += wv * s[i * sx];
                                }
                            }
                        }
                    }
                }
                let out = &mut line[blk * B..];
                for (o, a) in out.iter_mut().zip(acc) {
                    *o = act_apply(act, a);
                }
            }
        }
    });
}

/// The straightforward im2col + single-threaded GEMM convolution, kept as
/// the reference the fast paths are tested against.
pub fn conv2d_reference(
    p: &Conv2d,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> bool {
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
    /// other than the window arithmetic gives with floor or ceil rounding).
    pub fn lens(&self) -> Option<[usize; 2]> {
        if (0..2).any(|i| self.pad[i] > self.kernel[i] / 2) {
            return None;
        }
        let sizes = [(self.h, self.oh), (self.w, self.ow)];
        for (i, (len, out)) in sizes.into_iter().enumerate() {
            let floor = out_len(
                len,
                self.kernel[i],
                self.stride[i],
                self.pad[i],
                self.dil[i],
            )?;
            let ceil = ceil_out_len(
                len,
                self.kernel[i],
                self.stride[i],
                self.pad[i],
                self.dil[i],
            )?;
            if out != floor && out != ceil {
                return None;
            }
        }
        Some([
            prod(&[self.planes, self.h, self.w])?,
            prod(&[self.planes, self.oh, self.ow])?,
        ])
    }
}

/// The ceil-mode output length (PyTorch's rule: one more window when a
/// partial window remains, unless it would start in the right padding).
fn ceil_out_len(h: usize, k: usize, stride: usize, pad: usize, dil: usize) -> Option<usize> {
    let floor = out_len(h, k, stride, pad, dil)?;
    let span = dil * (k - 1) + 1;
    let room = h + 2 * pad - span;
    if room.is_multiple_of(stride) {
        return Some(floor);
    }
    let ceil = floor + 1;
    if (ceil - 1) * stride >= h + pad {
        Some(floor)
    } else {
        Some(ceil)
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
    let out_plane = p.oh * p.ow;
    let planes_per_task = (4096 / out_plane.max(1)).max(1);
    y.par_chunks_mut(out_plane * planes_per_task)
        .enumerate()
        .for_each(|(task, ys)| {
            for (r, yp) in ys.chunks_mut(out_plane).enumerate() {
                let pl = task * planes_per_task + r;
                let xp = &x[pl * h * w..][..h * w];
                pool_plane(p, xp, yp);
            }
        });
    true
}

/// The range of kernel taps `k` with `o * stride + k * dil - pad` inside
/// `[0, len)`.
fn taps(
    o: usize,
    stride: usize,
    dil: usize,
    pad: usize,
    kernel: usize,
    len: usize,
) -> (usize, usize) {
    let base = (o * stride) as isize - pad as isize;
    let d = dil as isize;
    let lo = if base >= 0 { 0 } else { ((-base) + d - 1) / d };
    let room = len as isize - base;
    let hi = if room <= 0 { 0 } else { (room + d - 1) / d };
    let (lo, hi) = (lo.max(0) as usize, (hi.max(0) as usize).min(kernel));
    (lo.min(hi), hi)
}

/// One plane of [`max_pool2d`]; windows are clipped to the input. NaN
/// propagates, as in torch.
fn pool_plane(p: &MaxPool2d, xp: &[f32], yp: &mut [f32]) {
    let w = p.w;
    let (sx, dx, px) = (p.stride[1], p.dil[1], p.pad[1]);
    for oy in 0..p.oh {
        let (ky0, ky1) = taps(oy, p.stride[0], p.dil[0], p.pad[0], p.kernel[0], p.h);
        let out = &mut yp[oy * p.ow..][..p.ow];
        out.fill(f32::NEG_INFINITY);
        for ky in ky0..ky1 {
            let iy = oy * p.stride[0] + ky * p.dil[0] - p.pad[0];
            let row = &xp[iy * w..][..w];
            for (ox, best) in out.iter_mut().enumerate() {
                let (kx0, kx1) = taps(ox, sx, dx, px, p.kernel[1], w);
                let mut b = *best;
                for kx in kx0..kx1 {
                    let v = row[ox * sx + kx * dx - px];
                    // A NaN, once met, stays.
                    if v > b || v.is_nan() {
                        b = v;
                    }
                }
                *best = b;
            }
        }
    }
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
        assert_eq!(y, [12.5, 16.5, 24.5, 28.5]);
        y = [0.0; 4];
        assert!(conv2d_reference(&p, &x, &w, Some(&[0.5]), &mut y));
        // Windows centred on the corners (0,0), (0,2), (2,0), (2,2).
        assert_eq!(y, [12.5, 16.5, 24.5, 28.5]);
    }

    use crate::gemm::fast_tests::Rng;

    #[allow(clippy::too_many_arguments)]
    fn shape(
        n: usize,
        c: usize,
        hw: usize,
        oc: usize,
        k: usize,
        stride: usize,
        pad: usize,
        dil: usize,
        groups: usize,
    ) -> Conv2d {
        let o = (hw + 2 * pad - dil * (k - 1) - 1) / stride + 1;
        Conv2d {
            n,
            c,
            h: hw,
            w: hw + 1,
            oc,
            kh: k,
            kw: k,
            oh: o,
            ow: (hw + 1 + 2 * pad - dil * (k - 1) - 1) / stride + 1,
            stride: [stride, stride],
            pad: [pad, pad],
            dil: [dil, dil],
            groups,
        }
    }

    #[test]
    fn fast_conv_paths_match_the_reference() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let mut rng = Rng(12345);
        let cases = [
            shape(2, 8, 9, 16, 3, 1, 1, 1, 1),    // 3x3 s1 p1
            shape(1, 8, 10, 12, 3, 2, 1, 1, 1),   // 3x3 s2 p1
            shape(1, 3, 23, 8, 7, 2, 3, 1, 1),    // 7x7 s2 p3 stem
            shape(2, 16, 7, 24, 1, 1, 0, 1, 1),   // 1x1
            shape(1, 16, 8, 8, 1, 2, 0, 1, 1),    // 1x1 s2 (im2col)
            shape(2, 12, 11, 12, 3, 1, 1, 1, 12), // depthwise s1
            shape(1, 12, 11, 12, 3, 2, 1, 1, 12), // depthwise s2
            shape(1, 4, 9, 8, 3, 1, 1, 1, 4),     // depthwise, multiplier 2
            shape(2, 8, 9, 6, 3, 1, 1, 1, 2),     // groups 2
            shape(1, 4, 6, 6, 1, 1, 0, 1, 2),     // groups 2, 1x1
            shape(1, 6, 12, 5, 3, 1, 2, 2, 1),    // dilation 2
            shape(1, 6, 12, 6, 3, 1, 2, 2, 6),    // depthwise dilation 2
            shape(1, 2, 3, 3, 5, 1, 2, 1, 1),     // kernel wider than the image
            shape(1, 4, 3, 4, 3, 1, 6, 6, 1),     // dilation and padding past the image
        ];
        pool.install(|| {
            for p in cases {
                let [lx, lw, lb, ly] = p.lens().unwrap();
                let x = rng.vec(lx);
                let w = rng.vec(lw);
                let b = rng.vec(lb);
                for (bias, act) in [
                    (None, Act::None),
                    (Some(&b[..]), Act::None),
                    (Some(&b[..]), Act::Relu),
                    (None, Act::Clamp(-0.3, 0.2)),
                ] {
                    let mut want = vec![0.0f32; ly];
                    assert!(conv2d_reference(&p, &x, &w, bias, &mut want));
                    want.iter_mut().for_each(|v| *v = act.apply(*v));
                    let mut got = vec![f32::NAN; ly];
                    assert!(conv2d_act(&p, &x, &w, bias, &mut got, act));
                    for (g, w) in got.iter().zip(&want) {
                        assert!((g - w).abs() < 1e-4, "{p:?} {act:?}: {g} vs {w}");
                    }
                }
            }
        });
    }

    #[test]
    fn max_pool_ceil_mode_clips_the_last_window() {
        // 1 x 5 x 5, kernel 2, stride 2: floor gives 2 x 2, ceil 3 x 3.
        let x: Vec<f32> = (0..25).map(|v| v as f32).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let mut p = MaxPool2d {
            planes: 1,
            h: 5,
            w: 5,
            oh: 3,
            ow: 3,
            kernel: [2, 2],
            stride: [2, 2],
            pad: [0, 0],
            dil: [1, 1],
        };
        let mut y = [0.0f32; 9];
        assert!(max_pool2d(&p, &x, &mut y));
        assert_eq!(y, [6.0, 8.0, 9.0, 16.0, 18.0, 19.0, 21.0, 23.0, 24.0]);
        p.oh = 4;
        assert!(!max_pool2d(&p, &x, &mut [0.0; 12]));
        // Many planes in parallel (resnet's 3x3 s2 p1 pool).
        let p = MaxPool2d {
            planes: 64,
            h: 12,
            w: 12,
            oh: 6,
            ow: 6,
            kernel: [3, 3],
            stride: [2, 2],
            pad: [1, 1],
            dil: [1, 1],
        };
        let x: Vec<f32> = (0..64 * 144).map(|v| ((v * 37) % 101) as f32).collect();
        let mut y = vec![0.0f32; 64 * 36];
        pool.install(|| assert!(max_pool2d(&p, &x, &mut y)));
        for (pl, yp) in y.chunks(36).enumerate() {
            let mut want = [0.0f32; 36];
            pool_plane(&p, &x[pl * 144..][..144], &mut want);
            assert_eq!(yp, want);
        }
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
