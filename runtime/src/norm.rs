//! Layer normalization over the last axis, multithreaded.

use rayon::prelude::*;

/// `y = (x - mean) / sqrt(var + eps) * w + b` for each row of `cols`
/// contiguous elements (`var` biased, as in torch; `w` 1 and `b` 0 when
/// absent). Statistics accumulate in `f64`. Runs in parallel over rows on
/// the current rayon pool. Returns `false`, writing nothing, when a slice
/// length disagrees with `rows x cols` (or `cols` for `w`/`b`).
pub fn layer_norm(
    x: &[f32],
    y: &mut [f32],
    w: Option<&[f32]>,
    b: Option<&[f32]>,
    rows: usize,
    cols: usize,
    eps: f32,
) -> bool {
    let Some(n) = rows.checked_mul(cols) else {
        return false;
    };
    if x.len() != n || y.len() != n || [w, b].iter().flatten().any(|s| s.len() != cols) {
        return false;
    }
    if n == 0 {
        return true;
    }
    let avx2 = has_avx2();
    let per_task = (8192 / cols).max(1);
    y.par_chunks_mut(cols * per_task)
        .zip(x.par_chunks(cols * per_task))
        .for_each(|(ys, xs)| {
            for (yr, xr) in ys.chunks_mut(cols).zip(xs.chunks(cols)) {
                #[cfg(target_arch = "x86_64")]
                if avx2 {
                    // SAFETY: the CPU has AVX2 and FMA.
                    unsafe { row_avx2(xr, yr, w, b, eps) };
                    continue;
                }
                let _ = avx2;
                row(xr, yr, w, b, eps);
            }
        });
    true
}

fn has_avx2() -> bool {
    crate::cpu::avx2_fma()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn row_avx2(x: &[f32], y: &mut [f32], w: Option<&[f32]>, b: Option<&[f32]>, eps: f32) {
    row(x, y, w, b, eps)
}

/// The sum of `f(v)` over `x` in four `f64` lanes.
#[inline(always)]
fn sum64(x: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0f64; 4];
    let mut it = x.chunks_exact(4);
    for c in &mut it {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v as f64);
        }
    }
    let tail: f64 = it.remainder().iter().map(|&v| f(v as f64)).sum();
    acc.iter().sum::<f64>() + tail
}

#[inline(always)]
fn row(x: &[f32], y: &mut [f32], w: Option<&[f32]>, b: Option<&[f32]>, eps: f32) {
    let n = x.len() as f64;
    let mean = sum64(x, |v| v) / n;
    let var = sum64(x, |v| (v - mean) * (v - mean)) / n;
    let rstd = (1.0 / (var + eps as f64).sqrt()) as f32;
    let mean = mean as f32;
    match (w, b) {
        (Some(w), Some(b)) => {
            for (((o, &v), &wv), &bv) in y.iter_mut().zip(x).zip(w).zip(b) {
                *o = (v - mean) * rstd * wv + bv;
            }
        }
        (Some(w), None) => {
            for ((o, &v), &wv) in y.iter_mut().zip(x).zip(w) {
                *o = (v - mean) * rstd * wv;
            }
        }
        (None, Some(b)) => {
            for ((o, &v), &bv) in y.iter_mut().zip(x).zip(b) {
                *o = (v - mean) * rstd + bv;
            }
        }
        (None, None) => {
            for (o, &v) in y.iter_mut().zip(x) {
                *o = (v - mean) * rstd;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::fast_tests::Rng;

    #[test]
    fn matches_an_f64_reference() {
        let mut rng = Rng(5);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for (rows, cols) in [(1, 1), (3, 7), (100, 768), (2000, 5)] {
            let x: Vec<f32> = (0..rows * cols).map(|_| rng.f32() * 4.0 + 3.0).collect();
            let w = rng.vec(cols);
            let b = rng.vec(cols);
            for (wo, bo) in [
                (None, None),
                (Some(&w[..]), Some(&b[..])),
                (Some(&w[..]), None),
            ] {
                let mut y = vec![f32::NAN; rows * cols];
                pool.install(|| assert!(layer_norm(&x, &mut y, wo, bo, rows, cols, 1e-5)));
                for r in 0..rows {
                    let xr = &x[r * cols..][..cols];
                    let mean = xr.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
                    let var =
                        xr.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cols as f64;
                    for c in 0..cols {
                        let mut want = (xr[c] as f64 - mean) / (var + 1e-5).sqrt();
                        want *= wo.map_or(1.0, |w| w[c] as f64);
                        want += bo.map_or(0.0, |b| b[c] as f64);
                        let got = y[r * cols + c] as f64;
                        assert!((got - want).abs() < 1e-5, "{rows}x{cols}: {got} vs {want}");
                    }
                }
            }
        }
        let mut y = [7.0f32; 4];
        assert!(!layer_norm(
            &[0.0; 4],
            &mut y,
            Some(&[1.0]),
            None,
            2,
            2,
            1e-5
        ));
        assert_eq!(y, [7.0; 4]);
    }
}
