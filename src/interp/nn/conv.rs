//! Convolution (`aten.convolution`): 1-D, 2-D and 3-D, grouped, depthwise and
//! transposed, by im2col / col2im around the runtime GEMM.

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;
use torchlift_runtime::MatRef;

use super::{check_vec, dense, expand, Float};
use crate::error::{Error, Result};

const OP: &str = "convolution";

/// Geometry of one convolution, normalised to three spatial dimensions
/// (leading dimensions of 1-D and 2-D convolutions have size 1, stride 1,
/// padding 0 and dilation 1).
#[derive(Clone, Copy, Debug)]
struct Geom {
    /// Input spatial size.
    i: [usize; 3],
    /// Kernel spatial size.
    k: [usize; 3],
    /// Output spatial size.
    o: [usize; 3],
    s: [i64; 3],
    p: [i64; 3],
    d: [i64; 3],
}

impl Geom {
    fn isz(&self) -> usize {
        self.i.iter().product()
    }
    fn ksz(&self) -> usize {
        self.k.iter().product()
    }
    fn osz(&self) -> usize {
        self.o.iter().product()
    }
    /// True when im2col is the identity (1x1 kernel, stride 1, no padding).
    fn is_pointwise(&self) -> bool {
        self.k == [1, 1, 1] && self.s == [1, 1, 1] && self.p == [0, 0, 0]
    }
}

/// `aten.convolution(input, weight, bias, stride, padding, dilation,
/// transposed, output_padding, groups)`.
///
/// - `input`: `(N, C_in, *spatial)` or unbatched `(C_in, *spatial)`, with 1,
///   2 or 3 spatial dimensions (the count is taken from `weight`).
/// - `weight`: `(C_out, C_in / groups, *kernel)`, or for transposed
///   convolution `(C_in, C_out / groups, *kernel)`.
/// - `bias`: `(C_out,)`.
/// - `stride`, `padding`, `dilation`, `output_padding`: one entry per spatial
///   dimension, or a single entry that applies to all.
///
/// Output: `(N, C_out, *out)` (or `(C_out, *out)` for unbatched input), where
/// `out = (in + 2p - d(k-1) - 1) / s + 1` for convolution and
/// `out = (in - 1)s - 2p + d(k-1) + output_padding + 1` for transposed
/// convolution.
#[allow(clippy::too_many_arguments)]
pub fn convolution<T: Float>(
    input: ArrayViewD<'_, T>,
    weight: ArrayViewD<'_, T>,
    bias: Option<ArrayViewD<'_, T>>,
    stride: &[i64],
    padding: &[i64],
    dilation: &[i64],
    transposed: bool,
    output_padding: &[i64],
    groups: i64,
) -> Result<ArrayD<T>> {
    let wr = weight.ndim();
    if !(3..=5).contains(&wr) {
        return Err(Error::other(format!(
            "{OP}: weight must have 3, 4 or 5 dimensions, got shape {:?}",
            weight.shape()
        )));
    }
    let nd = wr - 2;
    let batched = if input.ndim() == nd + 2 {
        true
    } else if input.ndim() == nd + 1 {
        false
    } else {
        return Err(Error::other(format!(
            "{OP}: expected {}-D (batched) or {}-D (unbatched) input for weight of shape {:?}, got shape {:?}",
            nd + 2,
            nd + 1,
            weight.shape(),
            input.shape()
        )));
    };
    let stride = expand(OP, "stride", stride, nd)?;
    let padding = expand(OP, "padding", padding, nd)?;
    let dilation = expand(OP, "dilation", dilation, nd)?;
    let output_padding = if transposed {
        expand(OP, "output_padding", output_padding, nd)?
    } else {
        vec![0; nd]
    };
    if groups <= 0 {
        return Err(Error::other(format!(
            "{OP}: groups must be positive, got {groups}"
        )));
    }
    let groups = groups as usize;
    for (i, &s) in stride.iter().enumerate() {
        if s <= 0 {
            return Err(Error::other(format!(
                "{OP}: stride must be positive, got {stride:?}"
            )));
        }
        if padding[i] < 0 {
            return Err(Error::other(format!(
                "{OP}: padding must be non-negative, got {padding:?}"
            )));
        }
        if dilation[i] <= 0 {
            return Err(Error::other(format!(
                "{OP}: dilation must be positive, got {dilation:?}"
            )));
        }
        let op = output_padding[i];
        if op < 0 || (transposed && op >= s && op >= dilation[i]) {
            return Err(Error::other(format!(
                "{OP}: output_padding {output_padding:?} must be non-negative and smaller than either stride {stride:?} or dilation {dilation:?}"
            )));
        }
    }

    let ishape: Vec<usize> = if batched {
        input.shape().to_vec()
    } else {
        std::iter::once(1)
            .chain(input.shape().iter().copied())
            .collect()
    };
    let n = ishape[0];
    let c_in = ishape[1];
    let wshape = weight.shape();
    let (c_out, cin_g, cout_g) = if transposed {
        if wshape[0] != c_in {
            return Err(Error::other(format!(
                "{OP}: transposed weight of shape {wshape:?} expects {} input channels, input has shape {:?}",
                wshape[0],
                input.shape()
            )));
        }
        if c_in % groups != 0 {
            return Err(Error::other(format!(
                "{OP}: input channels {c_in} not divisible by groups {groups}"
            )));
        }
        (wshape[1] * groups, c_in / groups, wshape[1])
    } else {
        if wshape[1] * groups != c_in {
            return Err(Error::other(format!(
                "{OP}: weight of shape {wshape:?} with groups={groups} expects {} input channels, input has shape {:?}",
                wshape[1] * groups,
                input.shape()
            )));
        }
        if wshape[0] % groups != 0 {
            return Err(Error::other(format!(
                "{OP}: output channels {} not divisible by groups {groups}",
                wshape[0]
            )));
        }
        (wshape[0], wshape[1], wshape[0] / groups)
    };
    if let Some(b) = &bias {
        check_vec(OP, "bias", b, c_out)?;
    }

    // Normalise to three spatial dimensions.
    let lead = 3 - nd;
    let mut g = Geom {
        i: [1; 3],
        k: [1; 3],
        o: [1; 3],
        s: [1; 3],
        p: [0; 3],
        d: [1; 3],
    };
    for j in 0..nd {
        let t = lead + j;
        g.i[t] = ishape[2 + j];
        g.k[t] = wshape[2 + j];
        g.s[t] = stride[j];
        g.p[t] = padding[j];
        g.d[t] = dilation[j];
        // i128 so that absurd parameters cannot overflow.
        let (i, k) = (g.i[t] as i128, g.k[t] as i128);
        let (s, p, d, op) = (
            stride[j] as i128,
            padding[j] as i128,
            dilation[j] as i128,
            output_padding[j] as i128,
        );
        let ext = d * (k - 1) + 1;
        let o = if transposed {
            (i - 1) * s - 2 * p + ext - 1 + op + 1
        } else {
            if i + 2 * p < ext {
                return Err(Error::other(format!(
                    "{OP}: padded input size {} in spatial dim {j} is smaller than the dilated kernel size {ext}",
                    i + 2 * p
                )));
            }
            (i + 2 * p - ext) / s + 1
        };
        if o <= 0 || o > i64::MAX as i128 {
            return Err(Error::other(format!(
                "{OP}: computed output size {o} in spatial dim {j} is out of range (input shape {:?})",
                input.shape()
            )));
        }
        g.o[t] = o as usize;
    }

    let x = dense(&input);
    let w = dense(&weight);
    let (osz, isz, ksz) = (g.osz(), g.isz(), g.ksz());
    let mut out = vec![T::zero(); n * c_out * osz];
    if !out.is_empty() {
        if transposed {
            conv_transposed(&x, &w, &mut out, c_in, cin_g, cout_g, groups, &g);
        } else {
            let kk = cin_g * ksz;
            out.par_chunks_mut(cout_g * osz)
                .enumerate()
                .for_each(|(idx, chunk)| {
                    let (b, gi) = (idx / groups, idx % groups);
                    let xs = &x[(b * c_in + gi * cin_g) * isz..][..cin_g * isz];
                    let ws = &w[gi * cout_g * kk..][..cout_g * kk];
                    let cols;
                    let cols_ref: &[T] = if g.is_pointwise() {
                        xs
                    } else {
                        cols = unfold(xs, cin_g, &g);
                        &cols
                    };
                    // Split output channels across threads: with batch 1
                    // and one group there is no other parallelism.
                    let block = cout_g.div_ceil(rayon::current_num_threads()).max(16);
                    chunk
                        .par_chunks_mut(block * osz)
                        .enumerate()
                        .for_each(|(rb, cb)| {
                            let rows = cb.len() / osz;
                            let a = MatRef {
                                data: ws,
                                offset: rb * block * kk,
                                rows,
                                cols: kk,
                                rs: kk as isize,
                                cs: 1,
                            };
                            T::gemm(
                                T::one(),
                                a,
                                MatRef::row_major(cols_ref, kk, osz),
                                T::zero(),
                                cb,
                            );
                        });
                });
        }
        if let Some(bv) = &bias {
            let bv: Vec<T> = bv.iter().copied().collect();
            out.par_chunks_mut(osz)
                .enumerate()
                .for_each(|(idx, plane)| {
                    let bc = bv[idx % c_out];
                    plane.iter_mut().for_each(|v| *v = *v + bc);
                });
        }
    }

    let mut oshape = Vec::with_capacity(nd + 2);
    if batched {
        oshape.push(n);
    }
    oshape.push(c_out);
    oshape.extend_from_slice(&g.o[lead..]);
    ArrayD::from_shape_vec(IxDyn(&oshape), out).map_err(|e| Error::other(format!("{OP}: {e}")))
}

/// Unfolds `x` (`(c, *i)` dense) into the `(c * K, O)` column matrix.
fn unfold<T: Float>(x: &[T], c: usize, g: &Geom) -> Vec<T> {
    let (osz, isz) = (g.osz(), g.isz());
    let ksz = g.ksz();
    let mut cols = vec![T::zero(); c * ksz * osz];
    if cols.is_empty() {
        return cols;
    }
    let [id, ih, iw] = g.i.map(|v| v as i64);
    let [kd, kh, kw] = g.k;
    let [od, oh, ow] = g.o;
    cols.par_chunks_mut(ksz * osz)
        .enumerate()
        .for_each(|(ch, cc)| {
            let xc = &x[ch * isz..][..isz];
            let mut row = 0;
            for a in 0..kd {
                for b in 0..kh {
                    for e in 0..kw {
                        let dst = &mut cc[row * osz..][..osz];
                        row += 1;
                        let mut q = 0;
                        for zo in 0..od {
                            let z = zo as i64 * g.s[0] - g.p[0] + a as i64 * g.d[0];
                            if z < 0 || z >= id {
                                q += oh * ow;
                                continue;
                            }
                            for yo in 0..oh {
                                let y = yo as i64 * g.s[1] - g.p[1] + b as i64 * g.d[1];
                                if y < 0 || y >= ih {
                                    q += ow;
                                    continue;
                                }
                                let base = ((z * ih + y) * iw) as usize;
                                for xo in 0..ow {
                                    let xx = xo as i64 * g.s[2] - g.p[2] + e as i64 * g.d[2];
                                    if xx >= 0 && xx < iw {
                                        dst[q] = xc[base + xx as usize];
                                    }
                                    q += 1;
                                }
                            }
                        }
                    }
                }
            }
        });
    cols
}

/// `aten.im2col(input, kernel_size, dilation, padding, stride)` (the
/// kernel of `nn.Unfold`): `(N, C, H, W)` to `(N, C * kh * kw, L)` (or
/// unbatched `(C, H, W)` to `(C * kh * kw, L)`), rows ordered channel-major
/// then kernel row, kernel column; `L` is the number of sliding positions.
pub fn im2col<T: Float>(
    input: ArrayViewD<'_, T>,
    kernel_size: &[i64],
    dilation: &[i64],
    padding: &[i64],
    stride: &[i64],
) -> Result<ArrayD<T>> {
    const OP: &str = "im2col";
    let batched = match input.ndim() {
        4 => true,
        3 => false,
        _ => {
            return Err(Error::other(format!(
                "{OP}: expected 3-D or 4-D input, got shape {:?}",
                input.shape()
            )))
        }
    };
    let k = expand(OP, "kernel_size", kernel_size, 2)?;
    let d = expand(OP, "dilation", dilation, 2)?;
    let p = expand(OP, "padding", padding, 2)?;
    let s = expand(OP, "stride", stride, 2)?;
    let sh = input.shape();
    let r = sh.len();
    let (n, c) = if batched { (sh[0], sh[1]) } else { (1, sh[0]) };
    let mut g = Geom {
        i: [1, sh[r - 2], sh[r - 1]],
        k: [1; 3],
        o: [1; 3],
        s: [1, s[0], s[1]],
        p: [0, p[0], p[1]],
        d: [1, d[0], d[1]],
    };
    for j in 0..2 {
        if k[j] <= 0 || d[j] <= 0 || s[j] <= 0 || p[j] < 0 {
            return Err(Error::other(format!(
                "{OP}: kernel_size {k:?}, dilation {d:?} and stride {s:?} must be positive and padding {p:?} non-negative"
            )));
        }
        g.k[j + 1] = k[j] as usize;
        let o = (g.i[j + 1] as i64 + 2 * p[j] - d[j] * (k[j] - 1) - 1).div_euclid(s[j]) + 1;
        if o <= 0 {
            return Err(Error::other(format!(
                "{OP}: computed number of sliding blocks {o} in dim {j} is not positive (input shape {sh:?})"
            )));
        }
        g.o[j + 1] = o as usize;
    }
    let x = dense(&input);
    let isz = g.isz();
    let rows = c * g.ksz();
    let l = g.osz();
    let mut out = vec![T::zero(); n * rows * l];
    if rows * l > 0 {
        out.par_chunks_mut(rows * l).enumerate().for_each(|(b, o)| {
            o.copy_from_slice(&unfold(&x[b * c * isz..][..c * isz], c, &g));
        });
    }
    let shape: Vec<usize> = if batched {
        vec![n, rows, l]
    } else {
        vec![rows, l]
    };
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| Error::other(format!("{OP}: {e}")))
}

/// Transposed convolution: for each (batch, group), `cols = W_g^T @ X_g`,
/// then col2im scatters `cols` into the output.
#[allow(clippy::too_many_arguments)]
fn conv_transposed<T: Float>(
    x: &[T],
    w: &[T],
    out: &mut [T],
    c_in: usize,
    cin_g: usize,
    cout_g: usize,
    groups: usize,
    g: &Geom,
) {
    let (osz, isz, ksz) = (g.osz(), g.isz(), g.ksz());
    let rows = cout_g * ksz;
    out.par_chunks_mut(cout_g * osz)
        .enumerate()
        .for_each(|(idx, chunk)| {
            let (b, gi) = (idx / groups, idx % groups);
            let xs = &x[(b * c_in + gi * cin_g) * isz..][..cin_g * isz];
            // Weight rows gi*cin_g.. form a (cin_g, rows) matrix; use its transpose.
            let wt = MatRef {
                data: w,
                offset: gi * cin_g * rows,
                rows,
                cols: cin_g,
                rs: 1,
                cs: rows as isize,
            };
            let mut cols = vec![T::zero(); rows * isz];
            T::gemm(
                T::one(),
                wt,
                MatRef::row_major(xs, cin_g, isz),
                T::zero(),
                &mut cols,
            );
            col2im(&cols, chunk, cout_g, g);
        });
}

/// Adds the `(c * K, I)` column matrix into the `(c, *o)` output (the
/// adjoint of im2col with input and output roles swapped).
fn col2im<T: Float>(cols: &[T], out: &mut [T], c: usize, g: &Geom) {
    let (osz, isz) = (g.osz(), g.isz());
    let [od, oh, ow] = g.o.map(|v| v as i64);
    let [kd, kh, kw] = g.k;
    let [id, ih, iw] = g.i;
    let mut row = 0;
    for ch in 0..c {
        let oc = &mut out[ch * osz..][..osz];
        for a in 0..kd {
            for b in 0..kh {
                for e in 0..kw {
                    let src = &cols[row * isz..][..isz];
                    row += 1;
                    let mut q = 0;
                    for zi in 0..id {
                        let z = zi as i64 * g.s[0] - g.p[0] + a as i64 * g.d[0];
                        if z < 0 || z >= od {
                            q += ih * iw;
                            continue;
                        }
                        for yi in 0..ih {
                            let y = yi as i64 * g.s[1] - g.p[1] + b as i64 * g.d[1];
                            if y < 0 || y >= oh {
                                q += iw;
                                continue;
                            }
                            let base = (z * oh + y) * ow;
                            for xi in 0..iw {
                                let xx = xi as i64 * g.s[2] - g.p[2] + e as i64 * g.d[2];
                                if xx >= 0 && xx < ow {
                                    let t = (base + xx) as usize;
                                    oc[t] = oc[t] + src[q];
                                }
                                q += 1;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::nn::testutil::{assert_close, Lcg};
    use proptest::prelude::*;

    /// Direct-loop reference for 1-D/2-D convolution on batched input,
    /// written in the formulation of torch's documentation.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        x: &ArrayD<f64>,
        w: &ArrayD<f64>,
        bias: Option<&ArrayD<f64>>,
        s: &[i64],
        p: &[i64],
        d: &[i64],
        transposed: bool,
        op: &[i64],
        groups: usize,
    ) -> ArrayD<f64> {
        // Work in 2-D; 1-D is H = 1.
        let two = w.ndim() == 4;
        let x = if two {
            x.clone()
        } else {
            x.clone().insert_axis(ndarray::Axis(2))
        };
        let w = if two {
            w.clone()
        } else {
            w.clone().insert_axis(ndarray::Axis(2))
        };
        let f = |v: &[i64], def: i64| -> [i64; 2] {
            if two {
                [v[0], v[1]]
            } else {
                [def, v[0]]
            }
        };
        let (s, p, d, op) = (f(s, 1), f(p, 0), f(d, 1), f(op, 0));
        let (n, c, ih, iw) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
        let (kh, kw) = (w.shape()[2], w.shape()[3]);
        let out;
        if !transposed {
            let co = w.shape()[0];
            let (cig, cog) = (c / groups, co / groups);
            let oh = ((ih as i64 + 2 * p[0] - d[0] * (kh as i64 - 1) - 1) / s[0] + 1) as usize;
            let ow = ((iw as i64 + 2 * p[1] - d[1] * (kw as i64 - 1) - 1) / s[1] + 1) as usize;
            let mut o = ArrayD::<f64>::zeros(IxDyn(&[n, co, oh, ow]));
            for b in 0..n {
                for oc in 0..co {
                    let gi = oc / cog;
                    for y in 0..oh {
                        for xx in 0..ow {
                            let mut acc = bias.map_or(0.0, |bb| bb[[oc]]);
                            for ic in 0..cig {
                                for ky in 0..kh {
                                    for kx in 0..kw {
                                        let iy = y as i64 * s[0] - p[0] + ky as i64 * d[0];
                                        let ix = xx as i64 * s[1] - p[1] + kx as i64 * d[1];
                                        if iy >= 0 && ix >= 0 && iy < ih as i64 && ix < iw as i64 {
                                            acc += x[[b, gi * cig + ic, iy as usize, ix as usize]]
                                                * w[[oc, ic, ky, kx]];
                                        }
                                    }
                                }
                            }
                            o[[b, oc, y, xx]] = acc;
                        }
                    }
                }
            }
            out = o;
        } else {
            let cog = w.shape()[1];
            let co = cog * groups;
            let cig = c / groups;
            let oh =
                ((ih as i64 - 1) * s[0] - 2 * p[0] + d[0] * (kh as i64 - 1) + op[0] + 1) as usize;
            let ow =
                ((iw as i64 - 1) * s[1] - 2 * p[1] + d[1] * (kw as i64 - 1) + op[1] + 1) as usize;
            let mut o = ArrayD::<f64>::zeros(IxDyn(&[n, co, oh, ow]));
            for b in 0..n {
                for ic in 0..c {
                    let gi = ic / cig;
                    for y in 0..ih {
                        for xx in 0..iw {
                            for oc in 0..cog {
                                for ky in 0..kh {
                                    for kx in 0..kw {
                                        let oy = y as i64 * s[0] - p[0] + ky as i64 * d[0];
                                        let ox = xx as i64 * s[1] - p[1] + kx as i64 * d[1];
                                        if oy >= 0 && ox >= 0 && oy < oh as i64 && ox < ow as i64 {
                                            o[[b, gi * cog + oc, oy as usize, ox as usize]] +=
                                                x[[b, ic, y, xx]] * w[[ic, oc, ky, kx]];
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if let Some(bb) = bias {
                for b in 0..n {
                    for oc in 0..co {
                        o.slice_mut(ndarray::s![b, oc, .., ..])
                            .mapv_inplace(|v| v + bb[[oc]]);
                    }
                }
            }
            out = o;
        }
        if two {
            out
        } else {
            out.remove_axis(ndarray::Axis(2))
        }
    }

    #[test]
    fn hand_computed_2d() {
        // 1x1x3x3 input 1..9, 2x2 kernel of ones, stride 1: sums of 2x2 windows.
        let x =
            ArrayD::from_shape_vec(IxDyn(&[1, 1, 3, 3]), (1..=9).map(f64::from).collect()).unwrap();
        let w = ArrayD::from_elem(IxDyn(&[1, 1, 2, 2]), 1.0);
        let b = ArrayD::from_elem(IxDyn(&[1]), 0.5);
        let y = convolution(
            x.view(),
            w.view(),
            Some(b.view()),
            &[1],
            &[0],
            &[1],
            false,
            &[0],
            1,
        )
        .unwrap();
        assert_eq!(y.shape(), &[1, 1, 2, 2]);
        assert_eq!(
            y.iter().copied().collect::<Vec<_>>(),
            vec![12.5, 16.5, 24.5, 28.5]
        );
    }

    #[test]
    fn transposed_hand_computed() {
        // 1-D transposed, stride 2, kernel [1, 2]: each input scatters x*[1,2].
        let x = ArrayD::from_shape_vec(IxDyn(&[1, 1, 2]), vec![1.0, 3.0]).unwrap();
        let w = ArrayD::from_shape_vec(IxDyn(&[1, 1, 2]), vec![1.0, 2.0]).unwrap();
        let y = convolution(x.view(), w.view(), None, &[2], &[0], &[1], true, &[1], 1).unwrap();
        assert_eq!(
            y.iter().copied().collect::<Vec<_>>(),
            vec![1.0, 2.0, 3.0, 6.0, 0.0]
        );
    }

    #[test]
    fn unbatched_and_f32() {
        let mut r = Lcg(7);
        let x = r.array(&[3, 6, 5]);
        let w = r.array(&[4, 3, 3, 2]);
        let y = convolution(x.view(), w.view(), None, &[1], &[1], &[1], false, &[0], 1).unwrap();
        let xb = x.clone().insert_axis(ndarray::Axis(0));
        let yb = naive(&xb, &w, None, &[1, 1], &[1, 1], &[1, 1], false, &[0, 0], 1);
        assert_close(&y, &yb.remove_axis(ndarray::Axis(0)), 1e-12);
        let x32 = x.mapv(|v| v as f32);
        let w32 = w.mapv(|v| v as f32);
        let y32 = convolution(
            x32.view(),
            w32.view(),
            None,
            &[1],
            &[1],
            &[1],
            false,
            &[0],
            1,
        )
        .unwrap();
        assert_close(&y32.mapv(f64::from), &y, 1e-5);
    }

    #[test]
    fn conv3d_pointwise_matches_matmul() {
        let mut r = Lcg(3);
        let x = r.array(&[2, 3, 2, 2, 2]);
        let w = r.array(&[2, 3, 1, 1, 1]);
        let y = convolution(x.view(), w.view(), None, &[1], &[0], &[1], false, &[0], 1).unwrap();
        for b in 0..2 {
            for o in 0..2 {
                for z in 0..2 {
                    for yy in 0..2 {
                        for xx in 0..2 {
                            let e: f64 = (0..3)
                                .map(|c| w[[o, c, 0, 0, 0]] * x[[b, c, z, yy, xx]])
                                .sum();
                            assert!((y[[b, o, z, yy, xx]] - e).abs() < 1e-12);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn errors_not_panics() {
        let x = ArrayD::<f64>::zeros(IxDyn(&[1, 3, 4, 4]));
        let w = ArrayD::<f64>::zeros(IxDyn(&[2, 2, 3, 3]));
        let bad = |r: Result<ArrayD<f64>>| assert!(r.is_err());
        bad(convolution(
            x.view(),
            w.view(),
            None,
            &[1],
            &[0],
            &[1],
            false,
            &[0],
            1,
        ));
        let w = ArrayD::<f64>::zeros(IxDyn(&[2, 3, 5, 5]));
        bad(convolution(
            x.view(),
            w.view(),
            None,
            &[1],
            &[0],
            &[1],
            false,
            &[0],
            1,
        ));
        bad(convolution(
            x.view(),
            w.view(),
            None,
            &[0],
            &[2],
            &[1],
            false,
            &[0],
            1,
        ));
        bad(convolution(
            x.view(),
            w.view(),
            None,
            &[1, 1, 1],
            &[2],
            &[1],
            false,
            &[0],
            1,
        ));
        bad(convolution(
            x.view(),
            w.view(),
            None,
            &[1],
            &[2],
            &[1],
            false,
            &[0],
            0,
        ));
        let b = ArrayD::<f64>::zeros(IxDyn(&[3]));
        bad(convolution(
            x.view(),
            w.view(),
            Some(b.view()),
            &[1],
            &[2],
            &[1],
            false,
            &[0],
            1,
        ));
        let wt = ArrayD::<f64>::zeros(IxDyn(&[3, 2, 3, 3]));
        bad(convolution(
            x.view(),
            wt.view(),
            None,
            &[2],
            &[0],
            &[1],
            true,
            &[2],
            1,
        ));
        assert!(convolution(x.view(), wt.view(), None, &[2], &[0], &[1], true, &[1], 1).is_ok());
    }

    #[test]
    fn non_contiguous_input() {
        let mut r = Lcg(11);
        let x = r.array(&[1, 2, 5, 4]);
        let xt = x.view().permuted_axes(vec![0, 2, 1, 3]);
        assert!(!xt.is_standard_layout());
        let w = r.array(&[3, 5, 2, 2]);
        let y = convolution(xt.view(), w.view(), None, &[1], &[0], &[1], false, &[0], 1).unwrap();
        let yr = naive(
            &xt.to_owned(),
            &w,
            None,
            &[1, 1],
            &[0, 0],
            &[1, 1],
            false,
            &[0, 0],
            1,
        );
        assert_close(&y, &yr, 1e-12);
    }

    #[test]
    fn im2col_op() {
        let x =
            ArrayD::from_shape_vec(IxDyn(&[1, 3, 3]), (1..=9).map(f64::from).collect()).unwrap();
        let y = im2col(x.view(), &[2], &[1], &[0], &[1]).unwrap();
        assert_eq!(y.shape(), &[4, 4]);
        // row (ky, kx) = (0, 1): top-right of each window.
        assert_eq!(
            y.index_axis(ndarray::Axis(0), 1)
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            vec![2.0, 3.0, 5.0, 6.0]
        );
        let y = im2col(x.view(), &[3], &[1], &[1], &[2]).unwrap();
        assert_eq!(y.shape(), &[9, 4]);
        assert_eq!(
            y.index_axis(ndarray::Axis(0), 0)
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            vec![0.0, 0.0, 0.0, 5.0]
        );
        assert!(im2col(x.view(), &[5], &[1], &[0], &[1]).is_err());
    }

    #[test]
    fn conv3d_matches_sum_of_2d_slices() {
        let mut r = Lcg(17);
        let x = r.array(&[1, 2, 5, 4, 4]);
        let w = r.array(&[3, 2, 2, 3, 3]);
        let (sd, pd, dd) = (2i64, 1i64, 2i64);
        let y = convolution(
            x.view(),
            w.view(),
            None,
            &[sd, 1, 1],
            &[pd, 1, 1],
            &[dd, 1, 1],
            false,
            &[0],
            1,
        )
        .unwrap();
        // depth out = (5 + 2 - 2*1 - 1) / 2 + 1 = 3
        assert_eq!(y.shape(), &[1, 3, 3, 4, 4]);
        for z in 0..3i64 {
            let mut acc = ArrayD::<f64>::zeros(IxDyn(&[1, 3, 4, 4]));
            for a in 0..2i64 {
                let zi = z * sd - pd + a * dd;
                if !(0..5).contains(&zi) {
                    continue;
                }
                let xs = x
                    .slice(ndarray::s![.., .., zi as usize, .., ..])
                    .to_owned()
                    .into_dyn();
                let ws = w
                    .slice(ndarray::s![.., .., a as usize, .., ..])
                    .to_owned()
                    .into_dyn();
                acc = acc
                    + convolution(xs.view(), ws.view(), None, &[1], &[1], &[1], false, &[0], 1)
                        .unwrap();
            }
            let got = y
                .slice(ndarray::s![.., .., z as usize, .., ..])
                .to_owned()
                .into_dyn();
            assert_close(&got, &acc, 1e-12);
        }
    }

    /// Transposed convolution is the adjoint of convolution:
    /// <conv(x, w), y> == <x, conv_transpose(y, w)>, in 1, 2 and 3 dims.
    #[test]
    fn transposed_is_adjoint() {
        let mut r = Lcg(23);
        for (nd, groups) in [(1usize, 1usize), (2, 2), (3, 1), (3, 2)] {
            let sp: Vec<usize> = [7, 6, 5][..nd].to_vec();
            let ks: Vec<usize> = [3, 2, 3][..nd].to_vec();
            let (s, p, d) = (
                [2i64, 1, 3][..nd].to_vec(),
                [1i64, 0, 2][..nd].to_vec(),
                [1i64, 2, 1][..nd].to_vec(),
            );
            let (cin, cout) = (2 * groups, 3 * groups);
            let mut xs = vec![2, cin];
            xs.extend(&sp);
            let x = r.array(&xs);
            let mut wsh = vec![cout, cin / groups];
            wsh.extend(&ks);
            let w = r.array(&wsh);
            let fwd = convolution(
                x.view(),
                w.view(),
                None,
                &s,
                &p,
                &d,
                false,
                &[0],
                groups as i64,
            )
            .unwrap();
            let y = r.array(fwd.shape());
            // output_padding recovers the input size lost to flooring.
            let op: Vec<i64> = (0..nd)
                .map(|i| {
                    let o = fwd.shape()[2 + i] as i64;
                    sp[i] as i64 - ((o - 1) * s[i] - 2 * p[i] + d[i] * (ks[i] as i64 - 1) + 1)
                })
                .collect();
            // The forward weight (C_out, C_in / groups, k...) is already in
            // the transposed layout for mapping C_out channels back to C_in.
            let back = convolution(
                y.view(),
                w.view(),
                None,
                &s,
                &p,
                &d,
                true,
                &op,
                groups as i64,
            )
            .unwrap();
            assert_eq!(back.shape(), x.shape());
            let lhs: f64 = fwd.iter().zip(y.iter()).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(back.iter()).map(|(a, b)| a * b).sum();
            assert!(
                (lhs - rhs).abs() < 1e-10 * (1.0 + lhs.abs()),
                "{nd}-D: {lhs} vs {rhs}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn matches_naive(
            seed in 0u64..1000,
            two in any::<bool>(),
            transposed in any::<bool>(),
            n in 1usize..3,
            g in 1usize..4,
            cig in 1usize..3,
            cog in 1usize..3,
            k in 1usize..4,
            s in 1i64..4,
            p in 0i64..3,
            d in 1i64..3,
            sz in 1usize..7,
            with_bias in any::<bool>(),
            op_raw in 0i64..3,
        ) {
            let mut r = Lcg(seed);
            let c = cig * g;
            let spatial: Vec<usize> = if two { vec![sz, sz + 1] } else { vec![sz + 2] };
            let mut xs = vec![n, c];
            xs.extend(&spatial);
            let x = r.array(&xs);
            let mut ws = if transposed { vec![c, cog] } else { vec![cog * g, cig] };
            let ksh: Vec<usize> = if two { vec![k, (k % 3) + 1] } else { vec![k] };
            ws.extend(&ksh);
            let w = r.array(&ws);
            let b = r.array(&[cog * g]);
            let nd = spatial.len();
            let sv: Vec<i64> = (0..nd).map(|i| s + i as i64 % 2).collect();
            let pv = vec![p; nd];
            let dv = vec![d; nd];
            let opv: Vec<i64> = sv.iter().map(|&st| op_raw.min(st.max(d) - 1)).collect();
            let bias = if with_bias { Some(b.view()) } else { None };
            let res = convolution(x.view(), w.view(), bias, &sv, &pv, &dv, transposed, &opv, g as i64);
            // Reject configurations torch rejects too (output size <= 0).
            let valid = (0..nd).all(|i| {
                let (iz, kz) = (spatial[i] as i64, ksh[i] as i64);
                if transposed {
                    (iz - 1) * sv[i] - 2 * p + d * (kz - 1) + opv[i] + 1 > 0
                } else {
                    iz + 2 * p > d * (kz - 1)
                }
            });
            prop_assert_eq!(res.is_ok(), valid);
            if let Ok(y) = res {
                let yr = naive(&x, &w, if with_bias { Some(&b) } else { None }, &sv, &pv, &dv, transposed, &opv, g);
                assert_close(&y, &yr, 1e-10);
            }
        }
    }
}

#[cfg(test)]
mod perf {
    use super::*;
    use crate::interp::nn::{linear, norm, pool};
    use ndarray::Axis;

    fn rnd(shape: &[usize], seed: u64) -> ArrayD<f32> {
        let mut r = crate::interp::nn::testutil::Lcg(seed);
        ArrayD::from_shape_simple_fn(IxDyn(shape), || r.next() as f32 * 0.1)
    }

    fn conv_bn(
        x: &ArrayD<f32>,
        cout: usize,
        k: usize,
        s: i64,
        relu: bool,
        seed: u64,
    ) -> ArrayD<f32> {
        let cin = x.shape()[1];
        let w = rnd(&[cout, cin, k, k], seed);
        let y = convolution(
            x.view(),
            w.view(),
            None,
            &[s],
            &[k as i64 / 2],
            &[1],
            false,
            &[0],
            1,
        )
        .unwrap();
        let ones = ArrayD::from_elem(IxDyn(&[cout]), 1.0f32);
        let zeros = ArrayD::from_elem(IxDyn(&[cout]), 0.0f32);
        let y = norm::native_batch_norm_inference(
            y.view(),
            Some(ones.view()),
            Some(zeros.view()),
            zeros.view(),
            ones.view(),
            1e-5,
        )
        .unwrap();
        if relu {
            y.mapv(|v| v.max(0.0))
        } else {
            y
        }
    }

    /// ResNet-18 forward pass (batch 1, 224x224) with random weights; run
    /// with `cargo test --release -- --ignored resnet18` to time it.
    #[test]
    #[ignore]
    fn resnet18_timing() {
        let t0 = std::time::Instant::now();
        let x = rnd(&[1, 3, 224, 224], 1);
        let mut seed = 2;
        let mut x = conv_bn(&x, 64, 7, 2, true, seed);
        x = pool::max_pool2d_with_indices(x.view(), &[3], &[2], &[1], &[1], false)
            .unwrap()
            .0;
        for (stage, &c) in [64usize, 128, 256, 512].iter().enumerate() {
            for blk in 0..2 {
                let s = if stage > 0 && blk == 0 { 2 } else { 1 };
                seed += 1;
                let y = conv_bn(&x, c, 3, s, true, seed);
                seed += 1;
                let y = conv_bn(&y, c, 3, 1, false, seed);
                let sc = if s == 2 {
                    seed += 1;
                    conv_bn(&x, c, 1, 2, false, seed)
                } else {
                    x.clone()
                };
                x = (&y + &sc).mapv(|v| v.max(0.0));
            }
        }
        let x = pool::adaptive_avg_pool2d(x.view(), &[1]).unwrap();
        let x = x.index_axis(Axis(3), 0).index_axis(Axis(2), 0).to_owned();
        let w = rnd(&[1000, 512], 99);
        let y = linear::linear(x.view(), w.view(), None).unwrap();
        assert_eq!(y.shape(), &[1, 1000]);
        eprintln!("resnet18 forward: {:?}", t0.elapsed());
    }
}
