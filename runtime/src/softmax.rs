//! Softmax and log-softmax over one axis, multithreaded, in `f32` with a
//! vectorizable `exp` (sums accumulate in `f64`).

use rayon::prelude::*;

/// `e^x` in `f32`, within about 1 ulp on the normal range: `x = n ln 2 + r`
/// with `|r| <= ln 2 / 2`, a degree-7 polynomial for `e^r`, and `2^n` built
/// from its bits. Results below the normal range flush to 0; above it, +inf.
/// Written without branches or library calls so that loops over it
/// vectorize.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    exp_f32_tail(x, 0.0)
}

/// `e^(a - b)` with the rounding error of `a - b` carried into the
/// exponential (TwoSum), so that the result is as accurate as if the
/// difference were exact.
#[inline(always)]
pub fn exp_diff(a: f32, b: f32) -> f32 {
    let s = a - b;
    let bb = s - a;
    let err = (a - (s - bb)) + (-b - bb);
    exp_f32_tail(s, err)
}

/// `e^(x + tail)` for a `tail` far below `x`'s ulp (see [`exp_f32`]).
#[inline(always)]
fn exp_f32_tail(x: f32, tail: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: rounds to an integer.
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let xc = x.clamp(-87.33, 88.72);
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let ni = t.to_bits() as i32 - MAGIC.to_bits() as i32;
    let r = xc - n * LN2_HI - n * LN2_LO + tail;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_2e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let er = (p * r * r + r) + 1.0;
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    let v = er * scale;
    let v = if x < -87.33 { 0.0 } else { v };
    let v = if x > 88.72 { f32::INFINITY } else { v };
    // NaN in, NaN out (the clamp above turned it into a number).
    if x.is_nan() {
        x
    } else {
        v
    }
}

/// Softmax (or log-softmax) of one contiguous line.
#[inline(always)]
fn line_contiguous(x: &[f32], y: &mut [f32], log: bool) {
    let max = x
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    if max == f32::NEG_INFINITY && !log {
        // Every score is -inf: torch's `_safe_softmax` gives zeros.
        y.fill(0.0);
        return;
    }
    if x.iter().any(|v| v.is_nan()) {
        y.fill(f32::NAN);
        return;
    }
    // Eight `f64` partial sums: every term keeps its own accuracy (an `f32`
    // running sum would lose the small terms next to the largest, 1).
    let mut acc = [0.0f64; 8];
    let mut xs = x.chunks_exact(8);
    let mut ys = y.chunks_exact_mut(8);
    for (xc, yc) in (&mut xs).zip(&mut ys) {
        for ((o, &v), a) in yc.iter_mut().zip(xc).zip(acc.iter_mut()) {
            let e = exp_diff(v, max);
            *o = e;
            *a += e as f64;
        }
    }
    let mut sum: f64 = acc.iter().sum();
    for (o, &v) in ys.into_remainder().iter_mut().zip(xs.remainder()) {
        let e = exp_diff(v, max);
        *o = e;
        sum += e as f64;
    }
    if log {
        let lse = sum.ln() as f32;
        for (o, &v) in y.iter_mut().zip(x) {
            *o = (v - max) - lse;
        }
    } else {
        let inv = (1.0 / sum) as f32;
        y.iter_mut().for_each(|o| *o *= inv);
    }
}

/// Softmax (or log-softmax) of the `len` lines, `inner` apart, of one
/// `len x inner` slab, vectorized across `inner`.
#[inline(always)]
fn slab_strided(x: &[f32], y: &mut [f32], len: usize, inner: usize, log: bool) {
    let mut max = vec![f32::NEG_INFINITY; inner];
    let mut nan = vec![false; inner];
    for row in x.chunks_exact(inner).take(len) {
        for ((m, n), &v) in max.iter_mut().zip(nan.iter_mut()).zip(row) {
            *m = if v > *m { v } else { *m };
            *n |= v.is_nan();
        }
    }
    let mut sum = vec![0.0f64; inner];
    for (yr, xr) in y.chunks_exact_mut(inner).zip(x.chunks_exact(inner)) {
        for (((o, s), &v), &m) in yr.iter_mut().zip(sum.iter_mut()).zip(xr).zip(&max) {
            let e = exp_diff(v, m);
            *o = e;
            *s += e as f64;
        }
    }
    let scale: Vec<f32> = sum
        .iter()
        .map(|&s| if log { s.ln() as f32 } else { (1.0 / s) as f32 })
        .collect();
    for (yr, xr) in y.chunks_exact_mut(inner).zip(x.chunks_exact(inner)) {
        for (i, (o, &v)) in yr.iter_mut().zip(xr).enumerate() {
            *o = if nan[i] {
                f32::NAN
            } else if log {
                (v - max[i]) - scale[i]
            } else if max[i] == f32::NEG_INFINITY {
                0.0
            } else {
                *o * scale[i]
            };
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn line_contiguous_avx2(x: &[f32], y: &mut [f32], log: bool) {
    line_contiguous(x, y, log)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn slab_strided_avx2(x: &[f32], y: &mut [f32], len: usize, inner: usize, log: bool) {
    slab_strided(x, y, len, inner, log)
}

fn has_avx2() -> bool {
    crate::cpu::avx2_fma()
}

/// Softmax (or log-softmax) of each line of `len` elements, `inner` apart,
/// of an `outer x len x inner` array, in parallel over lines on the current
/// rayon pool. A softmax line whose elements are all `-inf` becomes zeros.
/// Returns `false`, writing nothing, when a slice length is not
/// `outer * len * inner`.
pub fn softmax_lines(
    x: &[f32],
    y: &mut [f32],
    outer: usize,
    len: usize,
    inner: usize,
    log: bool,
) -> bool {
    let Some(n) = outer.checked_mul(len).and_then(|v| v.checked_mul(inner)) else {
        return false;
    };
    if x.len() != n || y.len() != n {
        return false;
    }
    if n == 0 {
        return true;
    }
    let avx2 = has_avx2();
    let slab = len * inner;
    if inner == 1 {
        let lines_per_task = (8192 / len).max(1);
        y.par_chunks_mut(len * lines_per_task)
            .zip(x.par_chunks(len * lines_per_task))
            .for_each(|(yb, xb)| {
                for (yl, xl) in yb.chunks_mut(len).zip(xb.chunks(len)) {
                    #[cfg(target_arch = "x86_64")]
                    if avx2 {
                        // SAFETY: the CPU has AVX2 and FMA.
                        unsafe { line_contiguous_avx2(xl, yl, log) };
                        continue;
                    }
                    let _ = avx2;
                    line_contiguous(xl, yl, log);
                }
            });
    } else {
        y.par_chunks_mut(slab)
            .zip(x.par_chunks(slab))
            .for_each(|(ys, xs)| {
                #[cfg(target_arch = "x86_64")]
                if avx2 {
                    // SAFETY: the CPU has AVX2 and FMA.
                    unsafe { slab_strided_avx2(xs, ys, len, inner, log) };
                    return;
                }
                slab_strided(xs, ys, len, inner, log);
            });
    }
    true
}

/// The `f64` reference the fast kernel is tested against.
pub fn softmax_lines_reference(
    x: &[f32],
    y: &mut [f32],
    outer: usize,
    len: usize,
    inner: usize,
    log: bool,
) {
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| o * len * inner + j * inner + i;
            let max = (0..len)
                .map(|j| x[at(j)] as f64)
                .fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = (0..len).map(|j| (x[at(j)] as f64 - max).exp()).sum();
            for j in 0..len {
                let d = x[at(j)] as f64 - max;
                y[at(j)] = if log {
                    (d - sum.ln()) as f32
                } else if max == f64::NEG_INFINITY {
                    0.0
                } else {
                    (d.exp() / sum) as f32
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::fast_tests::Rng;

    #[test]
    fn exp_is_within_two_ulp() {
        let mut worst = 0u32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let got = exp_f32(x);
            let want = (x as f64).exp() as f32;
            let ulp = (got.to_bits() as i64 - want.to_bits() as i64).unsigned_abs() as u32;
            worst = worst.max(ulp);
            x += 0.000_37;
        }
        assert!(worst <= 2, "{worst} ulp");
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn matches_the_f64_reference() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let mut rng = Rng(99);
        pool.install(|| {
            for (outer, len, inner) in [
                (3, 1, 1),
                (5, 17, 1),
                (2, 1000, 1),
                (700, 33, 1),
                (2, 7, 5),
                (3, 100, 19),
                (1, 4, 300),
            ] {
                let n = outer * len * inner;
                let x: Vec<f32> = (0..n).map(|_| rng.f32() * 20.0).collect();
                for log in [false, true] {
                    let mut want = vec![0.0; n];
                    softmax_lines_reference(&x, &mut want, outer, len, inner, log);
                    let mut got = vec![f32::NAN; n];
                    assert!(softmax_lines(&x, &mut got, outer, len, inner, log));
                    for (g, w) in got.iter().zip(&want) {
                        let tol = 1e-6 * w.abs() + 1e-30;
                        assert!(
                            (g - w).abs() <= tol,
                            "{outer}x{len}x{inner} log {log}: {g} vs {w}"
                        );
                    }
                }
            }
        });
    }

    #[test]
    fn masked_lines() {
        let ninf = f32::NEG_INFINITY;
        // A fully masked line gives zeros; a partly masked one ignores -inf.
        let x = [ninf, ninf, ninf, 0.0, ninf, 0.0];
        let mut y = [9.0f32; 6];
        assert!(softmax_lines(&x, &mut y, 2, 3, 1, false));
        assert_eq!(y, [0.0, 0.0, 0.0, 0.5, 0.0, 0.5]);
        // The same along a strided axis (inner = 2: columns of 3 x 2).
        let x = [ninf, 0.0, ninf, ninf, ninf, 0.0];
        assert!(softmax_lines(&x, &mut y, 1, 3, 2, false));
        assert_eq!(y, [0.0, 0.5, 0.0, 0.0, 0.0, 0.5]);
        assert!(!softmax_lines(&x, &mut y, 1, 4, 2, false));
    }
}
