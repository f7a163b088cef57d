//! Scaled dot-product attention with an additive mask, causal masking and
//! grouped-query heads, multithreaded over query rows.

use std::cell::RefCell;

use crate::gemm::{gemm, with_scratch, Act, GemmDims, Scratch, Strides};
use crate::softmax::exp_diff;
use rayon::prelude::*;

thread_local! {
    /// The `lq x lk` scores of one head, reused across calls on this thread.
    static SCORES: Scratch = const { RefCell::new(Vec::new()) };
}

/// From this many query rows on, a head is computed as two matrix
/// products around a row softmax instead of row by row.
const GEMM_MIN_ROWS: usize = 16;

/// Sizes and mask strides of one attention call: `q: [b, hq, lq, d]`,
/// `k: [b, hk, lk, d]`, `v: [b, hk, lk, dv]`, `y: [b, hq, lq, dv]`, all
/// dense; the mask element for `(bi, h, i, j)` is at
/// `bi*m_bs + h*m_hs + i*m_qs + j*m_ks`.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Sdpa {
    pub b: usize,
    pub hq: usize,
    pub hk: usize,
    pub lq: usize,
    pub lk: usize,
    pub d: usize,
    pub dv: usize,
    pub mask_strides: [usize; 4],
    pub causal: bool,
    pub scale: f32,
}

impl Sdpa {
    /// The lengths of `q`, `k`, `v`, `y` and the span of the mask, or `None`
    /// when `hk` does not divide `hq` or a length overflows.
    pub fn lens(&self) -> Option<[usize; 5]> {
        if self.hq > 0 && (self.hk == 0 || !self.hq.is_multiple_of(self.hk)) {
            return None;
        }
        let p = |xs: &[usize]| xs.iter().try_fold(1usize, |a, &x| a.checked_mul(x));
        let mask = if [self.b, self.hq, self.lq, self.lk].contains(&0) {
            0
        } else {
            let [bs, hs, qs, ks] = self.mask_strides;
            (self.b - 1)
                .checked_mul(bs)?
                .checked_add((self.hq - 1).checked_mul(hs)?)?
                .checked_add((self.lq - 1).checked_mul(qs)?)?
                .checked_add((self.lk - 1).checked_mul(ks)?)?
                .checked_add(1)?
        };
        Some([
            p(&[self.b, self.hq, self.lq, self.d])?,
            p(&[self.b, self.hk, self.lk, self.d])?,
            p(&[self.b, self.hk, self.lk, self.dv])?,
            p(&[self.b, self.hq, self.lq, self.dv])?,
            mask,
        ])
    }
}

/// `y = softmax(scale * q @ k^T + mask (+ causal -inf above the diagonal))
/// @ v` per batch item and query head; query head `h` reads key/value head
/// `h / (hq / hk)`. A row whose scores are all `-inf` gives zeros (torch's
/// `_safe_softmax`). Returns `false`, writing nothing, when the sizes are
/// inconsistent or a slice length differs from them.
pub fn sdpa(
    p: &Sdpa,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    y: &mut [f32],
) -> bool {
    let Some([lq_len, lk_len, lv_len, ly, lm]) = p.lens() else {
        return false;
    };
    if q.len() != lq_len
        || k.len() != lk_len
        || v.len() != lv_len
        || y.len() != ly
        || mask.is_some_and(|m| m.len() < lm)
    {
        return false;
    }
    if ly == 0 {
        return true;
    }
    if p.lk == 0 {
        // No keys: every row is fully masked.
        y.fill(0.0);
        return true;
    }
    if p.lq >= GEMM_MIN_ROWS {
        return heads_by_gemm(p, q, k, v, mask, y);
    }
    let avx2 = has_avx2();
    let per_task = (32 * 1024 / (p.lk * (p.d + p.dv)).max(1)).clamp(1, 64);
    y.par_chunks_mut(p.dv * per_task)
        .enumerate()
        .for_each(|(task, ys)| {
            let mut scores = vec![0.0f32; p.lk];
            for (r, yr) in ys.chunks_mut(p.dv).enumerate() {
                let row = task * per_task + r;
                #[cfg(target_arch = "x86_64")]
                if avx2 {
                    // SAFETY: the CPU has AVX2 and FMA.
                    unsafe { query_row_avx2(p, q, k, v, mask, row, &mut scores, yr) };
                    continue;
                }
                let _ = avx2;
                query_row(p, q, k, v, mask, row, &mut scores, yr);
            }
        });
    true
}

/// Each head as `S = scale * Q K^T (+ mask)`, a safe softmax of each row
/// of `S` in place, then `Y = S V`, with the runtime's GEMM.
fn heads_by_gemm(
    p: &Sdpa,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    y: &mut [f32],
) -> bool {
    let (lq, lk, d, dv) = (p.lq, p.lk, p.d, p.dv);
    let ok = std::sync::atomic::AtomicBool::new(true);
    y.par_chunks_mut(lq * dv).enumerate().for_each(|(bh, yh)| {
        let (bi, h) = (bh / p.hq, bh % p.hq);
        let kvh = h / (p.hq / p.hk);
        let qh = &q[bh * lq * d..][..lq * d];
        let kh = &k[(bi * p.hk + kvh) * lk * d..][..lk * d];
        let vh = &v[(bi * p.hk + kvh) * lk * dv..][..lk * dv];
        with_scratch(&SCORES, lq * lk, |s| {
            let dims = GemmDims {
                batch: 1,
                m: lq,
                n: lk,
                k: d,
            };
            // K^T: element (c, j) is k[j * d + c].
            let kt = Strides {
                bs: 0,
                rs: 1,
                cs: d,
            };
            let good = gemm(
                dims,
                qh,
                Strides::row_major(lq, d),
                kh,
                kt,
                None,
                s,
                0,
                lk,
                Act::None,
            );
            for (i, row) in s.chunks_mut(lk).enumerate() {
                let visible = if p.causal { (i + 1).min(lk) } else { lk };
                for x in row.iter_mut() {
                    *x *= p.scale;
                }
                if let Some(m) = mask {
                    let [bs, hs, qs, ks] = p.mask_strides;
                    let base = bi * bs + h * hs + i * qs;
                    for (j, x) in row.iter_mut().enumerate() {
                        *x += m[base + j * ks];
                    }
                }
                let (live, dead) = row.split_at_mut(visible);
                dead.fill(0.0);
                let max = live
                    .iter()
                    .fold(f32::NEG_INFINITY, |a, &x| if x > a { x } else { a });
                if max == f32::NEG_INFINITY {
                    // Every key is masked: the row of `Y` is zero.
                    live.fill(0.0);
                    continue;
                }
                let mut sum = 0.0f64;
                for x in live.iter_mut() {
                    *x = exp_diff(*x, max);
                    sum += *x as f64;
                }
                let inv = (1.0 / sum) as f32;
                for x in live.iter_mut() {
                    *x *= inv;
                }
            }
            let dims = GemmDims {
                batch: 1,
                m: lq,
                n: dv,
                k: lk,
            };
            let good = good
                && gemm(
                    dims,
                    s,
                    Strides::row_major(lq, lk),
                    vh,
                    Strides::row_major(lk, dv),
                    None,
                    yh,
                    0,
                    dv,
                    Act::None,
                );
            if !good {
                ok.store(false, std::sync::atomic::Ordering::Relaxed);
            }
        });
    });
    ok.into_inner()
}

fn has_avx2() -> bool {
    crate::cpu::avx2_fma()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn query_row_avx2(
    p: &Sdpa,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    row: usize,
    scores: &mut [f32],
    y: &mut [f32],
) {
    query_row(p, q, k, v, mask, row, scores, y)
}

/// `x · y` in eight `f32` lanes.
#[inline(always)]
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut xs = x.chunks_exact(8);
    let mut ys = y.chunks_exact(8);
    for (a, b) in (&mut xs).zip(&mut ys) {
        for ((s, &u), &w) in acc.iter_mut().zip(a).zip(b) {
            *s = u.mul_add(w, *s);
        }
    }
    let tail: f32 = xs
        .remainder()
        .iter()
        .zip(ys.remainder())
        .map(|(a, b)| a * b)
        .sum();
    acc.iter().sum::<f32>() + tail
}

/// One output row: query row `row` of the flattened `[b * hq * lq]` rows.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn query_row(
    p: &Sdpa,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    row: usize,
    scores: &mut [f32],
    y: &mut [f32],
) {
    let i = row % p.lq;
    let h = (row / p.lq) % p.hq;
    let bi = row / (p.lq * p.hq);
    let kvh = h / (p.hq / p.hk);
    let qr = &q[row * p.d..][..p.d];
    let kh = &k[(bi * p.hk + kvh) * p.lk * p.d..][..p.lk * p.d];
    let vh = &v[(bi * p.hk + kvh) * p.lk * p.dv..][..p.lk * p.dv];
    // Keys past the diagonal are masked out: only `0..visible` count.
    let visible = if p.causal { (i + 1).min(p.lk) } else { p.lk };
    let scores = &mut scores[..visible];
    for (j, s) in scores.iter_mut().enumerate() {
        *s = p.scale * dot(qr, &kh[j * p.d..][..p.d]);
    }
    if let Some(m) = mask {
        let [bs, hs, qs, ks] = p.mask_strides;
        let base = bi * bs + h * hs + i * qs;
        if ks == 1 {
            for (s, &mv) in scores.iter_mut().zip(&m[base..][..visible]) {
                *s += mv;
            }
        } else {
            for (j, s) in scores.iter_mut().enumerate() {
                *s += m[base + j * ks];
            }
        }
    }
    let max = scores
        .iter()
        .fold(f32::NEG_INFINITY, |a, &s| if s > a { s } else { a });
    y.fill(0.0);
    if max == f32::NEG_INFINITY {
        return;
    }
    let mut sum = 0.0f64;
    for (j, &s) in scores.iter().enumerate() {
        let e = exp_diff(s, max);
        if e == 0.0 {
            continue;
        }
        sum += e as f64;
        for (o, &vv) in y.iter_mut().zip(&vh[j * p.dv..][..p.dv]) {
            *o = e.mul_add(vv, *o);
        }
    }
    let inv = (1.0 / sum) as f32;
    y.iter_mut().for_each(|o| *o *= inv);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::fast_tests::Rng;

    fn reference(p: &Sdpa, q: &[f32], k: &[f32], v: &[f32], mask: Option<&[f32]>) -> Vec<f64> {
        let mut y = vec![0.0; p.b * p.hq * p.lq * p.dv];
        let [bs, hs, qs, ks] = p.mask_strides;
        for bi in 0..p.b {
            for h in 0..p.hq {
                let kvh = h / (p.hq / p.hk);
                for i in 0..p.lq {
                    let mut s: Vec<f64> = (0..p.lk)
                        .map(|j| {
                            let mut acc = 0.0;
                            for c in 0..p.d {
                                acc += q[((bi * p.hq + h) * p.lq + i) * p.d + c] as f64
                                    * k[((bi * p.hk + kvh) * p.lk + j) * p.d + c] as f64;
                            }
                            acc * p.scale as f64
                                + mask.map_or(0.0, |m| m[bi * bs + h * hs + i * qs + j * ks] as f64)
                        })
                        .collect();
                    if p.causal {
                        s.iter_mut()
                            .skip(i + 1)
                            .for_each(|x| *x = f64::NEG_INFINITY);
                    }
                    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    if max == f64::NEG_INFINITY {
                        continue;
                    }
                    let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for c in 0..p.dv {
                        let mut acc = 0.0;
                        for j in 0..p.lk {
                            acc += e[j] * v[((bi * p.hk + kvh) * p.lk + j) * p.dv + c] as f64;
                        }
                        y[((bi * p.hq + h) * p.lq + i) * p.dv + c] = acc / sum;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn matches_an_f64_reference() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let mut rng = Rng(2024);
        let ninf = f32::NEG_INFINITY;
        // (b, hq, hk, lq, lk, d, dv, mask kind, causal)
        let cases = [
            (1, 1, 1, 1, 1, 1, 1, 0, false),
            (2, 4, 4, 5, 7, 8, 8, 0, false),
            (1, 8, 2, 9, 9, 16, 12, 0, true),
            (2, 2, 1, 6, 11, 5, 3, 1, false),
            (1, 3, 3, 40, 40, 32, 32, 2, true),
            (2, 2, 2, 4, 6, 7, 9, 3, false),
            (2, 2, 1, 3, 5, 4, 4, 4, true),
            // From 16 query rows on, heads go through the GEMM path.
            (2, 4, 2, 17, 23, 8, 12, 3, false),
            (2, 2, 1, 20, 20, 4, 4, 4, true),
            (1, 2, 2, 33, 19, 16, 8, 1, false),
            (1, 1, 1, 16, 1, 3, 5, 0, true),
        ];
        pool.install(|| {
            for (b, hq, hk, lq, lk, d, dv, kind, causal) in cases {
                // Mask kinds: none; [lk] broadcast; [lq, lk] broadcast over
                // b and h; full [b, hq, lq, lk] with -inf rows; [b, 1, 1, lk]
                // padding mask with a fully masked batch item.
                let strides = match kind {
                    0 | 1 => [0, 0, 0, 1],
                    2 => [0, 0, lk, 1],
                    3 => [hq * lq * lk, lq * lk, lk, 1],
                    _ => [lk, 0, 0, 1],
                };
                let mut p = Sdpa {
                    b,
                    hq,
                    hk,
                    lq,
                    lk,
                    d,
                    dv,
                    mask_strides: strides,
                    causal,
                    scale: 1.0 / (d as f32).sqrt(),
                };
                let [lqn, lkn, lvn, ly, lm] = p.lens().unwrap();
                let q = rng.vec(lqn);
                let k = rng.vec(lkn);
                let v = rng.vec(lvn);
                let mut m: Vec<f32> = (0..lm).map(|_| rng.f32()).collect();
                match kind {
                    3 => m[..lk].fill(ninf),
                    4 => {
                        m[..lk].fill(ninf);
                        m[lk + 1] = ninf;
                    }
                    _ => {}
                }
                let mask = (kind != 0).then_some(&m[..]);
                if kind == 0 {
                    p.mask_strides = [0; 4];
                }
                let want = reference(&p, &q, &k, &v, mask);
                let mut y = vec![f32::NAN; ly];
                assert!(sdpa(&p, &q, &k, &v, mask, &mut y));
                for (g, w) in y.iter().zip(&want) {
                    assert!((*g as f64 - w).abs() < 1e-5, "{p:?}: {g} vs {w}");
                }
                if kind == 3 {
                    assert!(y[..dv].iter().all(|&v| v == 0.0));
                }
            }
        });
        let p = Sdpa {
            b: 1,
            hq: 3,
            hk: 2,
            lq: 1,
            lk: 1,
            d: 1,
            dv: 1,
            mask_strides: [0; 4],
            causal: false,
            scale: 1.0,
        };
        assert!(p.lens().is_none());
    }
}
