//! Scaled dot-product attention (`aten.scaled_dot_product_attention`),
//! following torch's math backend.

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;
use torchlift_runtime::MatRef;

use super::{dense, Float};
use crate::error::{Error, Result};

const OP: &str = "scaled_dot_product_attention";

/// An attention mask, broadcastable to `(..., L, S)`.
#[derive(Clone, Debug)]
pub enum AttnMask<'a, T> {
    /// `true` = attend, `false` = masked out (score set to `-inf`).
    Bool(ArrayViewD<'a, bool>),
    /// Added to the scaled scores.
    Float(ArrayViewD<'a, T>),
}

/// Numpy-style broadcast of two shapes.
fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for (i, o) in out.iter_mut().enumerate() {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        *o = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// `x` broadcast to `shape` and copied out densely.
fn materialize<T: Clone>(name: &str, x: &ArrayViewD<'_, T>, shape: &[usize]) -> Result<Vec<T>> {
    let b = x.broadcast(IxDyn(shape)).ok_or_else(|| {
        Error::other(format!(
            "{OP}: {name} of shape {:?} cannot be broadcast to {shape:?}",
            x.shape()
        ))
    })?;
    Ok(dense(&b))
}

/// `repeat_interleave(x, reps, dim=-3)`.
fn repeat_heads<T: Float>(x: &ArrayViewD<'_, T>, reps: usize) -> ArrayD<T> {
    let ax = ndarray::Axis(x.ndim() - 3);
    let idx: Vec<usize> = (0..x.shape()[ax.0] * reps).map(|i| i / reps).collect();
    x.select(ax, &idx)
}

/// `aten.scaled_dot_product_attention(query, key, value, attn_mask,
/// dropout_p, is_causal, scale, enable_gqa)`.
///
/// `query` is `(..., L, E)`, `key` `(..., S, E)`, `value` `(..., S, Ev)`;
/// leading dims broadcast. The result is `(..., L, Ev)`:
/// `softmax(q @ k^T * scale + mask) @ v` with `scale = 1 / sqrt(E)` by
/// default. `is_causal` applies the top-left aligned lower-triangular mask
/// `ones(L, S).tril()` and cannot be combined with `attn_mask`. With
/// `enable_gqa`, key/value heads (dim -3) are repeated (interleaved) to the
/// query head count. `dropout_p` must be 0 (inference only).
///
/// Fully masked rows (every score `-inf`) produce 0, as torch's math
/// backend does since it switched to `_safe_softmax` (torch 2.5); older
/// releases produced NaN.
#[allow(clippy::too_many_arguments)]
pub fn scaled_dot_product_attention<T: Float>(
    query: ArrayViewD<'_, T>,
    key: ArrayViewD<'_, T>,
    value: ArrayViewD<'_, T>,
    attn_mask: Option<AttnMask<'_, T>>,
    dropout_p: f64,
    is_causal: bool,
    scale: Option<f64>,
    enable_gqa: bool,
) -> Result<ArrayD<T>> {
    if dropout_p != 0.0 {
        return Err(Error::other(format!(
            "{OP}: dropout_p must be 0 in inference, got {dropout_p}"
        )));
    }
    if is_causal && attn_mask.is_some() {
        return Err(Error::other(format!(
            "{OP}: explicit attn_mask should not be set when is_causal=True"
        )));
    }
    let (qr, kr, vr) = (query.ndim(), key.ndim(), value.ndim());
    if qr < 2 || kr < 2 || vr < 2 {
        return Err(Error::other(format!(
            "{OP}: query, key and value must have at least 2 dimensions, got shapes {:?}, {:?}, {:?}",
            query.shape(),
            key.shape(),
            value.shape()
        )));
    }
    let (l, e) = (query.shape()[qr - 2], query.shape()[qr - 1]);
    let (s, ek) = (key.shape()[kr - 2], key.shape()[kr - 1]);
    let (sv, ev) = (value.shape()[vr - 2], value.shape()[vr - 1]);
    if ek != e || sv != s {
        return Err(Error::other(format!(
            "{OP}: incompatible shapes query {:?}, key {:?}, value {:?} (expected (..., L, E), (..., S, E), (..., S, Ev))",
            query.shape(),
            key.shape(),
            value.shape()
        )));
    }
    // Grouped-query attention: repeat key/value heads.
    let (mut key_rep, mut value_rep) = (None, None);
    if enable_gqa && qr >= 3 && kr >= 3 && vr >= 3 {
        let hq = query.shape()[qr - 3];
        let (hk, hv) = (key.shape()[kr - 3], value.shape()[vr - 3]);
        if hk == 0 || hv == 0 || hq % hk != 0 || hq % hv != 0 {
            return Err(Error::other(format!(
                "{OP}: with enable_gqa, query heads {hq} must be a multiple of key heads {hk} and value heads {hv}"
            )));
        }
        if hk != hq {
            key_rep = Some(repeat_heads(&key, hq / hk));
        }
        if hv != hq {
            value_rep = Some(repeat_heads(&value, hq / hv));
        }
    }
    let key = key_rep.as_ref().map_or(key, |k| k.view());
    let value = value_rep.as_ref().map_or(value, |v| v.view());

    let incompatible = || {
        Error::other(format!(
            "{OP}: leading dimensions of query {:?}, key {:?} and value {:?} do not broadcast",
            query.shape(),
            key.shape(),
            value.shape()
        ))
    };
    let mut batch = broadcast_shapes(&query.shape()[..qr - 2], &key.shape()[..kr - 2])
        .ok_or_else(incompatible)?;
    batch = broadcast_shapes(&batch, &value.shape()[..vr - 2]).ok_or_else(incompatible)?;
    let mask_lead = match &attn_mask {
        Some(AttnMask::Bool(m)) if m.ndim() > 2 => Some(&m.shape()[..m.ndim() - 2]),
        Some(AttnMask::Float(m)) if m.ndim() > 2 => Some(&m.shape()[..m.ndim() - 2]),
        _ => None,
    };
    if let Some(ml) = mask_lead {
        batch = broadcast_shapes(&batch, ml).ok_or_else(|| {
            Error::other(format!(
                "{OP}: attn_mask leading dims {ml:?} do not broadcast with {batch:?}"
            ))
        })?;
    }
    let nb: usize = batch.iter().product();
    let full = |tail: [usize; 2]| -> Vec<usize> { batch.iter().copied().chain(tail).collect() };
    let q = materialize("query", &query, &full([l, e]))?;
    let k = materialize("key", &key, &full([s, e]))?;
    let v = materialize("value", &value, &full([s, ev]))?;
    let mask: Option<Vec<T>> = match &attn_mask {
        None => None,
        Some(AttnMask::Float(m)) => Some(materialize("attn_mask", m, &full([l, s]))?),
        Some(AttnMask::Bool(m)) => Some(
            materialize("attn_mask", m, &full([l, s]))?
                .into_iter()
                .map(|b| if b { T::zero() } else { T::neg_infinity() })
                .collect(),
        ),
    };
    let scale = T::of(scale.unwrap_or(1.0 / (e as f64).sqrt()));

    let mut out = vec![T::zero(); nb * l * ev];
    if l * ev > 0 {
        out.par_chunks_mut(l * ev).enumerate().for_each(|(b, o)| {
            let mut p = vec![T::zero(); l * s];
            let kt = MatRef {
                data: &k,
                offset: b * s * e,
                rows: e,
                cols: s,
                rs: 1,
                cs: e as isize,
            };
            let qb = MatRef {
                data: &q,
                offset: b * l * e,
                rows: l,
                cols: e,
                rs: e as isize,
                cs: 1,
            };
            T::gemm(scale, qb, kt, T::zero(), &mut p);
            for i in 0..l {
                let row = &mut p[i * s..(i + 1) * s];
                if let Some(m) = &mask {
                    let mr = &m[(b * l + i) * s..][..s];
                    row.iter_mut().zip(mr).for_each(|(x, &a)| *x = *x + a);
                }
                if is_causal {
                    row.iter_mut()
                        .skip(i + 1)
                        .for_each(|x| *x = T::neg_infinity());
                }
                softmax_row(row);
            }
            let vb = MatRef {
                data: &v,
                offset: b * s * ev,
                rows: s,
                cols: ev,
                rs: ev as isize,
                cs: 1,
            };
            T::gemm(T::one(), MatRef::row_major(&p, l, s), vb, T::zero(), o);
        });
    }
    let oshape = full([l, ev]);
    ArrayD::from_shape_vec(IxDyn(&oshape), out).map_err(|e| Error::other(format!("{OP}: {e}")))
}

/// In-place softmax; a row whose entries are all `-inf` becomes all 0
/// (torch's `_safe_softmax`).
fn softmax_row<T: Float>(row: &mut [T]) {
    if row.iter().all(|&x| x == T::neg_infinity()) {
        row.fill(T::zero());
        return;
    }
    let m = row.iter().fold(T::neg_infinity(), |a, &x| {
        if x.is_nan() || a.is_nan() {
            T::nan()
        } else {
            a.max(x)
        }
    });
    let mut sum = T::zero();
    for x in row.iter_mut() {
        *x = (*x - m).exp();
        sum = sum + *x;
    }
    for x in row.iter_mut() {
        *x = *x / sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::nn::testutil::{assert_close, Lcg};
    use ndarray::{s, Array2, Ix2};

    /// Explicit `softmax(q k^T * scale + bias) v` on 2-D matrices.
    fn reference(
        q: &Array2<f64>,
        k: &Array2<f64>,
        v: &Array2<f64>,
        scale: f64,
        bias: Option<&Array2<f64>>,
    ) -> Array2<f64> {
        let mut sc = q.dot(&k.t()) * scale;
        if let Some(b) = bias {
            sc += b;
        }
        for mut r in sc.rows_mut() {
            let m = r.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            r.mapv_inplace(|x| (x - m).exp());
            let sum = r.sum();
            r.mapv_inplace(|x| x / sum);
        }
        sc.dot(v)
    }

    fn m2(a: ArrayViewD<'_, f64>) -> Array2<f64> {
        a.into_dimensionality::<Ix2>().unwrap().to_owned()
    }

    #[test]
    fn matches_explicit_softmax() {
        let mut r = Lcg(9);
        let q = r.array(&[2, 3, 4, 5]);
        let k = r.array(&[2, 3, 6, 5]);
        let v = r.array(&[2, 3, 6, 7]);
        let y = scaled_dot_product_attention(
            q.view(),
            k.view(),
            v.view(),
            None,
            0.0,
            false,
            None,
            false,
        )
        .unwrap();
        assert_eq!(y.shape(), &[2, 3, 4, 7]);
        let ys = scaled_dot_product_attention(
            q.view(),
            k.view(),
            v.view(),
            None,
            0.0,
            false,
            Some(0.3),
            false,
        )
        .unwrap();
        for b in 0..2 {
            for h in 0..3 {
                let (qb, kb, vb) = (
                    m2(q.slice(s![b, h, .., ..]).into_dyn()),
                    m2(k.slice(s![b, h, .., ..]).into_dyn()),
                    m2(v.slice(s![b, h, .., ..]).into_dyn()),
                );
                let e = reference(&qb, &kb, &vb, 1.0 / 5f64.sqrt(), None);
                assert_close(
                    &y.slice(s![b, h, .., ..]).to_owned().into_dyn(),
                    &e.into_dyn(),
                    1e-12,
                );
                let e = reference(&qb, &kb, &vb, 0.3, None);
                assert_close(
                    &ys.slice(s![b, h, .., ..]).to_owned().into_dyn(),
                    &e.into_dyn(),
                    1e-12,
                );
            }
        }
    }

    #[test]
    fn causal_and_masks() {
        let mut r = Lcg(10);
        let q = r.array(&[3, 4]);
        let k = r.array(&[5, 4]);
        let v = r.array(&[5, 2]);
        let y = scaled_dot_product_attention(
            q.view(),
            k.view(),
            v.view(),
            None,
            0.0,
            true,
            None,
            false,
        )
        .unwrap();
        // top-left aligned tril over (3, 5): row i attends to keys 0..=i.
        let mut bias = Array2::<f64>::zeros((3, 5));
        for i in 0..3 {
            for j in i + 1..5 {
                bias[[i, j]] = f64::NEG_INFINITY;
            }
        }
        let e = reference(
            &m2(q.view()),
            &m2(k.view()),
            &m2(v.view()),
            0.5,
            Some(&bias),
        );
        assert_close(&y, &e.into_dyn(), 1e-12);
        // First row attends only to key 0: output is v[0].
        assert!((y[[0, 0]] - v[[0, 0]]).abs() < 1e-12);
        // Same via a bool mask, and a float mask.
        let bm = bias.mapv(|x| x == 0.0).into_dyn();
        let yb = scaled_dot_product_attention(
            q.view(),
            k.view(),
            v.view(),
            Some(AttnMask::Bool(bm.view())),
            0.0,
            false,
            None,
            false,
        )
        .unwrap();
        assert_close(&yb, &y, 1e-12);
        let fm = r.array(&[1, 5]);
        let yf = scaled_dot_product_attention(
            q.view(),
            k.view(),
            v.view(),
            Some(AttnMask::Float(fm.view())),
            0.0,
            false,
            None,
            false,
        )
        .unwrap();
        let fb = Array2::from_shape_fn((3, 5), |(_, j)| fm[[0, j]]);
        let e = reference(&m2(q.view()), &m2(k.view()), &m2(v.view()), 0.5, Some(&fb));
        assert_close(&yf, &e.into_dyn(), 1e-12);
        // Fully masked row -> zeros.
        let mut bm2 = Array2::from_elem((3, 5), true);
        bm2.row_mut(1).fill(false);
        let y0 = scaled_dot_product_attention(
            q.view(),
            k.view(),
            v.view(),
            Some(AttnMask::Bool(bm2.view().into_dyn())),
            0.0,
            false,
            None,
            false,
        )
        .unwrap();
        assert_eq!((y0[[1, 0]], y0[[1, 1]]), (0.0, 0.0));
        assert!(y0[[0, 0]].is_finite());
        // Errors.
        assert!(scaled_dot_product_attention(
            q.view(),
            k.view(),
            v.view(),
            None,
            0.1,
            false,
            None,
            false
        )
        .is_err());
        assert!(scaled_dot_product_attention(
            q.view(),
            k.view(),
            v.view(),
            Some(AttnMask::Bool(bm.view())),
            0.0,
            true,
            None,
            false
        )
        .is_err());
        assert!(scaled_dot_product_attention(
            q.view(),
            v.view(),
            v.view(),
            None,
            0.0,
            false,
            None,
            false
        )
        .is_err());
    }

    #[test]
    fn gqa_and_broadcast() {
        let mut r = Lcg(12);
        let q = r.array(&[1, 4, 2, 3]);
        let k = r.array(&[1, 2, 5, 3]);
        let v = r.array(&[1, 2, 5, 3]);
        let y = scaled_dot_product_attention(
            q.view(),
            k.view(),
            v.view(),
            None,
            0.0,
            false,
            None,
            true,
        )
        .unwrap();
        for h in 0..4 {
            let e = reference(
                &m2(q.slice(s![0, h, .., ..]).into_dyn()),
                &m2(k.slice(s![0, h / 2, .., ..]).into_dyn()),
                &m2(v.slice(s![0, h / 2, .., ..]).into_dyn()),
                1.0 / 3f64.sqrt(),
                None,
            );
            assert_close(
                &y.slice(s![0, h, .., ..]).to_owned().into_dyn(),
                &e.into_dyn(),
                1e-12,
            );
        }
        assert!(scaled_dot_product_attention(
            q.view(),
            k.view(),
            v.view(),
            None,
            0.0,
            false,
            None,
            false
        )
        .is_err());
        // Key/value without batch dims broadcast over the query's.
        let k2 = r.array(&[5, 3]);
        let v2 = r.array(&[5, 3]);
        let y2 = scaled_dot_product_attention(
            q.view(),
            k2.view(),
            v2.view(),
            None,
            0.0,
            false,
            None,
            false,
        )
        .unwrap();
        assert_eq!(y2.shape(), &[1, 4, 2, 3]);
        let e = reference(
            &m2(q.slice(s![0, 3, .., ..]).into_dyn()),
            &m2(k2.view()),
            &m2(v2.view()),
            1.0 / 3f64.sqrt(),
            None,
        );
        assert_close(
            &y2.slice(s![0, 3, .., ..]).to_owned().into_dyn(),
            &e.into_dyn(),
            1e-12,
        );
    }
}
