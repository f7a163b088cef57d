//! Recurrent layers: `aten.lstm.input`, `aten.gru.input`,
//! `aten.rnn_tanh.input` and `aten.rnn_relu.input`.
//!
//! Shared conventions (as aten):
//! - `input` is `(T, B, I)`, or `(B, T, I)` with `batch_first`, or unbatched
//!   `(T, I)` (then hidden states are `(layers * dirs, H)` and `batch_first`
//!   is ignored).
//! - `params` holds, for each layer and then each direction (forward, then
//!   reverse): `w_ih (G*H, in)`, `w_hh (G*H, H_out)`, then if `has_biases`
//!   `b_ih (G*H)`, `b_hh (G*H)`, then for an LSTM with projections
//!   `w_hr (H_out, H)`. `G` is 4 (LSTM gates i, f, g, o), 3 (GRU gates r, z,
//!   n) or 1 (plain RNN). `in` is `I` for layer 0 and `dirs * H_out` after.
//! - The output is `(T, B, dirs * H_out)` (batch first if requested), the
//!   forward direction's features first; final states are
//!   `(layers * dirs, B, H_out)` ordered `layer * dirs + direction`.
//! - Dropout between layers is only applied when training; training with a
//!   non-zero dropout is rejected since the interpreter is deterministic.

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use torchlift_runtime::MatRef;

use super::{dense, Float};
use crate::error::{Error, Result};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Lstm,
    Gru,
    Tanh,
    Relu,
}

impl Kind {
    fn gates(self) -> usize {
        match self {
            Kind::Lstm => 4,
            Kind::Gru => 3,
            Kind::Tanh | Kind::Relu => 1,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Lstm => "lstm",
            Kind::Gru => "gru",
            Kind::Tanh => "rnn_tanh",
            Kind::Relu => "rnn_relu",
        }
    }
}

/// `x (m, k) @ w (n, k)^T (+ bias)` as a dense `(m, n)` vector.
fn matmul_t<T: Float>(
    x: &[T],
    m: usize,
    k: usize,
    w: &[T],
    n: usize,
    bias: Option<&[T]>,
) -> Vec<T> {
    let mut out = vec![T::zero(); m * n];
    if let Some(b) = bias {
        for row in out.chunks_mut(n.max(1)) {
            row.copy_from_slice(&b[..row.len()]);
        }
    }
    if m > 0 && n > 0 {
        let wt = MatRef {
            data: w,
            offset: 0,
            rows: k,
            cols: n,
            rs: 1,
            cs: k as isize,
        };
        let beta = if bias.is_some() { T::one() } else { T::zero() };
        T::gemm(T::one(), MatRef::row_major(x, m, k), wt, beta, &mut out);
    }
    out
}

fn sigmoid<T: Float>(x: T) -> T {
    T::one() / (T::one() + (-x).exp())
}

struct DirParams<T> {
    w_ih: Vec<T>,
    w_hh: Vec<T>,
    b_ih: Option<Vec<T>>,
    b_hh: Option<Vec<T>>,
    w_hr: Option<Vec<T>>,
}

fn check_shape<T>(
    op: &str,
    name: &str,
    idx: usize,
    a: &ArrayViewD<'_, T>,
    want: &[usize],
) -> Result<()> {
    if a.shape() != want {
        return Err(Error::other(format!(
            "{op}: params[{idx}] ({name}) must have shape {want:?}, got {:?}",
            a.shape()
        )));
    }
    Ok(())
}

/// The shared recurrent engine. `c0` is present exactly for LSTMs.
#[allow(clippy::too_many_arguments)]
#[allow(clippy::type_complexity)]
fn run<T: Float>(
    kind: Kind,
    input: ArrayViewD<'_, T>,
    h0: ArrayViewD<'_, T>,
    c0: Option<ArrayViewD<'_, T>>,
    params: &[ArrayViewD<'_, T>],
    has_biases: bool,
    num_layers: i64,
    dropout: f64,
    train: bool,
    bidirectional: bool,
    batch_first: bool,
) -> Result<(ArrayD<T>, ArrayD<T>, Option<ArrayD<T>>)> {
    let op = kind.name();
    if num_layers <= 0 {
        return Err(Error::other(format!(
            "{op}: num_layers must be positive, got {num_layers}"
        )));
    }
    if train && dropout != 0.0 && num_layers > 1 {
        return Err(Error::other(format!(
            "{op}: dropout {dropout} in training mode is not supported (the interpreter is deterministic)"
        )));
    }
    let layers = num_layers as usize;
    let dirs = if bidirectional { 2 } else { 1 };
    let g = kind.gates();
    let unbatched = input.ndim() == 2;
    if !unbatched && input.ndim() != 3 {
        return Err(Error::other(format!(
            "{op}: input must be 3-D (batched) or 2-D (unbatched), got shape {:?}",
            input.shape()
        )));
    }
    // Normalise input to (T, B, I).
    let x = if unbatched {
        input.insert_axis(ndarray::Axis(1))
    } else if batch_first {
        input.permuted_axes(vec![1, 0, 2])
    } else {
        input
    };
    let (t_len, b, i_sz) = (x.shape()[0], x.shape()[1], x.shape()[2]);

    // Parameters.
    let per = 2 + if has_biases { 2 } else { 0 };
    let proj = if kind == Kind::Lstm && params.len() == layers * dirs * (per + 1) {
        true
    } else if params.len() == layers * dirs * per {
        false
    } else {
        return Err(Error::other(format!(
            "{op}: expected {} parameter tensors for {layers} layer(s), {dirs} direction(s), has_biases={has_biases}, got {}",
            layers * dirs * per,
            params.len()
        )));
    };
    let per = per + usize::from(proj);
    let w0 = &params[0];
    if w0.ndim() != 2 || w0.shape()[0] % g != 0 {
        return Err(Error::other(format!(
            "{op}: params[0] (w_ih) must be 2-D with a multiple of {g} rows, got shape {:?}",
            w0.shape()
        )));
    }
    let h = w0.shape()[0] / g;
    let hout = if proj {
        params[per - 1].shape().first().copied().unwrap_or(0)
    } else {
        h
    };
    let mut all = Vec::with_capacity(layers * dirs);
    for l in 0..layers {
        let in_l = if l == 0 { i_sz } else { dirs * hout };
        for d in 0..dirs {
            let base = (l * dirs + d) * per;
            let p = &params[base..base + per];
            check_shape(op, "w_ih", base, &p[0], &[g * h, in_l])?;
            check_shape(op, "w_hh", base + 1, &p[1], &[g * h, hout])?;
            let (b_ih, b_hh) = if has_biases {
                check_shape(op, "b_ih", base + 2, &p[2], &[g * h])?;
                check_shape(op, "b_hh", base + 3, &p[3], &[g * h])?;
                (Some(dense(&p[2])), Some(dense(&p[3])))
            } else {
                (None, None)
            };
            let w_hr = if proj {
                check_shape(op, "w_hr", base + per - 1, &p[per - 1], &[hout, h])?;
                Some(dense(&p[per - 1]))
            } else {
                None
            };
            all.push(DirParams {
                w_ih: dense(&p[0]),
                w_hh: dense(&p[1]),
                b_ih,
                b_hh,
                w_hr,
            });
        }
    }

    // Initial states.
    let state_shape = |size: usize| -> Vec<usize> {
        if unbatched {
            vec![layers * dirs, size]
        } else {
            vec![layers * dirs, b, size]
        }
    };
    if h0.shape() != state_shape(hout).as_slice() {
        return Err(Error::other(format!(
            "{op}: initial hidden state must have shape {:?}, got {:?}",
            state_shape(hout),
            h0.shape()
        )));
    }
    let h0 = dense(&h0);
    let c0 = match c0 {
        Some(c) => {
            if c.shape() != state_shape(h).as_slice() {
                return Err(Error::other(format!(
                    "{op}: initial cell state must have shape {:?}, got {:?}",
                    state_shape(h),
                    c.shape()
                )));
            }
            Some(dense(&c))
        }
        None => None,
    };

    let mut layer_in = dense(&x);
    let mut in_sz = i_sz;
    let mut h_n = vec![T::zero(); layers * dirs * b * hout];
    let mut c_n = vec![T::zero(); layers * dirs * b * h];
    let feat = dirs * hout;
    for l in 0..layers {
        let mut layer_out = vec![T::zero(); t_len * b * feat];
        for d in 0..dirs {
            let ld = l * dirs + d;
            let p = &all[ld];
            let gi = matmul_t(
                &layer_in,
                t_len * b,
                in_sz,
                &p.w_ih,
                g * h,
                p.b_ih.as_deref(),
            );
            let mut hs = h0[ld * b * hout..][..b * hout].to_vec();
            let mut cs = c0
                .as_ref()
                .map(|c| c[ld * b * h..][..b * h].to_vec())
                .unwrap_or_default();
            let mut hraw = vec![T::zero(); b * h];
            for step in 0..t_len {
                let t = if d == 0 { step } else { t_len - 1 - step };
                let gh = matmul_t(&hs, b, hout, &p.w_hh, g * h, p.b_hh.as_deref());
                let gi_t = &gi[t * b * g * h..][..b * g * h];
                for j in 0..b {
                    let a = &gi_t[j * g * h..][..g * h];
                    let r = &gh[j * g * h..][..g * h];
                    for u in 0..h {
                        match kind {
                            Kind::Lstm => {
                                let ig = sigmoid(a[u] + r[u]);
                                let fg = sigmoid(a[h + u] + r[h + u]);
                                let gg = (a[2 * h + u] + r[2 * h + u]).tanh();
                                let og = sigmoid(a[3 * h + u] + r[3 * h + u]);
                                let c = fg * cs[j * h + u] + ig * gg;
                                cs[j * h + u] = c;
                                hraw[j * h + u] = og * c.tanh();
                            }
                            Kind::Gru => {
                                let rg = sigmoid(a[u] + r[u]);
                                let zg = sigmoid(a[h + u] + r[h + u]);
                                let ng = (a[2 * h + u] + rg * r[2 * h + u]).tanh();
                                hraw[j * h + u] = (T::one() - zg) * ng + zg * hs[j * hout + u];
                            }
                            Kind::Tanh => hraw[j * h + u] = (a[u] + r[u]).tanh(),
                            Kind::Relu => hraw[j * h + u] = (a[u] + r[u]).max(T::zero()),
                        }
                    }
                }
                hs = match &p.w_hr {
                    Some(w_hr) => matmul_t(&hraw, b, h, w_hr, hout, None),
                    None => hraw.clone(),
                };
                for j in 0..b {
                    layer_out[(t * b + j) * feat + d * hout..][..hout]
                        .copy_from_slice(&hs[j * hout..][..hout]);
                }
            }
            h_n[ld * b * hout..][..b * hout].copy_from_slice(&hs);
            if kind == Kind::Lstm {
                c_n[ld * b * h..][..b * h].copy_from_slice(&cs);
            }
        }
        layer_in = layer_out;
        in_sz = feat;
    }

    let mk = |shape: Vec<usize>, v: Vec<T>| {
        ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| Error::other(format!("{op}: {e}")))
    };
    let out = if unbatched {
        mk(vec![t_len, feat], layer_in)?
    } else if batch_first {
        mk(vec![t_len, b, feat], layer_in)?
            .permuted_axes(vec![1, 0, 2])
            .as_standard_layout()
            .into_owned()
    } else {
        mk(vec![t_len, b, feat], layer_in)?
    };
    let h_n = mk(state_shape(hout), h_n)?;
    let c_n = if kind == Kind::Lstm {
        Some(mk(state_shape(h), c_n)?)
    } else {
        None
    };
    Ok((out, h_n, c_n))
}

/// `aten.lstm.input(input, hx, params, has_biases, num_layers, dropout,
/// train, bidirectional, batch_first) -> (output, h_n, c_n)`.
///
/// `hx` is `[h0, c0]`. Gates (rows of `w_ih`/`w_hh`) are ordered i, f, g, o:
/// `c' = f*c + i*g`, `h' = o * tanh(c')`, and with projections
/// `h' = w_hr @ h'`. See the module docs for shapes.
#[allow(clippy::too_many_arguments)]
#[allow(clippy::type_complexity)]
pub fn lstm<T: Float>(
    input: ArrayViewD<'_, T>,
    hx: &[ArrayViewD<'_, T>],
    params: &[ArrayViewD<'_, T>],
    has_biases: bool,
    num_layers: i64,
    dropout: f64,
    train: bool,
    bidirectional: bool,
    batch_first: bool,
) -> Result<(ArrayD<T>, ArrayD<T>, ArrayD<T>)> {
    let [h0, c0] = hx else {
        return Err(Error::other(format!(
            "lstm: hx must hold 2 tensors (h0, c0), got {}",
            hx.len()
        )));
    };
    let (out, h_n, c_n) = run(
        Kind::Lstm,
        input,
        h0.view(),
        Some(c0.view()),
        params,
        has_biases,
        num_layers,
        dropout,
        train,
        bidirectional,
        batch_first,
    )?;
    let c_n = c_n.ok_or_else(|| Error::other("lstm: missing cell state"))?;
    Ok((out, h_n, c_n))
}

macro_rules! single_state_rnn {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name<T: Float>(
            input: ArrayViewD<'_, T>,
            hx: ArrayViewD<'_, T>,
            params: &[ArrayViewD<'_, T>],
            has_biases: bool,
            num_layers: i64,
            dropout: f64,
            train: bool,
            bidirectional: bool,
            batch_first: bool,
        ) -> Result<(ArrayD<T>, ArrayD<T>)> {
            let (out, h_n, _) = run(
                $kind,
                input,
                hx,
                None,
                params,
                has_biases,
                num_layers,
                dropout,
                train,
                bidirectional,
                batch_first,
            )?;
            Ok((out, h_n))
        }
    };
}

single_state_rnn!(
    /// `aten.gru.input(input, hx, params, has_biases, num_layers, dropout,
    /// train, bidirectional, batch_first) -> (output, h_n)`.
    ///
    /// Gates r, z, n: `r = σ(W_ir x + b_ir + W_hr h + b_hr)`, `z` likewise,
    /// `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`, `h' = (1 - z) n + z h`.
    gru,
    Kind::Gru
);

single_state_rnn!(
    /// `aten.rnn_tanh.input(...) -> (output, h_n)`:
    /// `h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`.
    rnn_tanh,
    Kind::Tanh
);

single_state_rnn!(
    /// `aten.rnn_relu.input(...) -> (output, h_n)`:
    /// `h' = relu(W_ih x + b_ih + W_hh h + b_hh)`.
    rnn_relu,
    Kind::Relu
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::nn::testutil::{assert_close, Lcg};

    fn a(shape: &[usize], v: Vec<f64>) -> ArrayD<f64> {
        ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
    }

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn lstm_one_unit_by_hand() {
        // H = 1, I = 1: gates = w_ih * x + w_hh * h + b_ih + b_hh.
        let w_ih = a(&[4, 1], vec![0.5, -0.3, 0.8, 0.1]);
        let w_hh = a(&[4, 1], vec![0.2, 0.4, -0.6, 0.7]);
        let b_ih = a(&[4], vec![0.1, 0.0, -0.1, 0.2]);
        let b_hh = a(&[4], vec![0.0, 0.3, 0.05, -0.1]);
        let x = a(&[2, 1, 1], vec![1.0, -2.0]);
        let h0 = a(&[1, 1, 1], vec![0.3]);
        let c0 = a(&[1, 1, 1], vec![-0.5]);
        let params = [w_ih.view(), w_hh.view(), b_ih.view(), b_hh.view()];
        let (out, hn, cn) = lstm(
            x.view(),
            &[h0.view(), c0.view()],
            &params,
            true,
            1,
            0.0,
            false,
            false,
            false,
        )
        .unwrap();
        let (mut h, mut c) = (0.3, -0.5);
        let mut outs = vec![];
        for xt in [1.0, -2.0] {
            let gate = |k: usize| w_ih[[k, 0]] * xt + w_hh[[k, 0]] * h + b_ih[[k]] + b_hh[[k]];
            let (i, f, g, o) = (sig(gate(0)), sig(gate(1)), gate(2).tanh(), sig(gate(3)));
            c = f * c + i * g;
            h = o * c.tanh();
            outs.push(h);
        }
        assert_close(&out, &a(&[2, 1, 1], outs), 1e-14);
        assert!((hn[[0, 0, 0]] - h).abs() < 1e-14 && (cn[[0, 0, 0]] - c).abs() < 1e-14);
        // Unbatched input gives the same numbers.
        let (out_u, hn_u, _) = lstm(
            x.view().into_shape_with_order(IxDyn(&[2, 1])).unwrap(),
            &[
                h0.view().into_shape_with_order(IxDyn(&[1, 1])).unwrap(),
                c0.view().into_shape_with_order(IxDyn(&[1, 1])).unwrap(),
            ],
            &params,
            true,
            1,
            0.0,
            false,
            false,
            false,
        )
        .unwrap();
        assert_eq!(out_u.shape(), &[2, 1]);
        assert!((out_u[[1, 0]] - h).abs() < 1e-14 && (hn_u[[0, 0]] - h).abs() < 1e-14);
        // Wrong parameter count / shapes are errors.
        assert!(lstm(
            x.view(),
            &[h0.view(), c0.view()],
            &params[..3],
            true,
            1,
            0.0,
            false,
            false,
            false
        )
        .is_err());
        assert!(lstm(
            x.view(),
            &[h0.view()],
            &params,
            true,
            1,
            0.0,
            false,
            false,
            false
        )
        .is_err());
        assert!(lstm(
            x.view(),
            &[h0.view(), c0.view()],
            &params,
            true,
            1,
            0.0,
            false,
            true,
            false
        )
        .is_err());
    }

    /// Reference single-direction LSTM layer on (T, B, I), batch by batch.
    #[allow(clippy::type_complexity)]
    fn ref_lstm_dir(
        x: &ArrayD<f64>,
        p: &[ArrayD<f64>],
        h0: &[f64],
        c0: &[f64],
        reverse: bool,
    ) -> (Vec<Vec<Vec<f64>>>, Vec<f64>, Vec<f64>) {
        let (t_len, b, i_sz) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let hsz = p[1].shape()[1];
        let mut outs = vec![vec![vec![0.0; hsz]; b]; t_len];
        let mut hn = vec![];
        let mut cn = vec![];
        for j in 0..b {
            let mut h = h0[j * hsz..(j + 1) * hsz].to_vec();
            let mut c = c0[j * hsz..(j + 1) * hsz].to_vec();
            for s in 0..t_len {
                let t = if reverse { t_len - 1 - s } else { s };
                let gate = |k: usize, u: usize, h: &[f64]| {
                    let r = k * hsz + u;
                    let mut v = p[2][[r]] + p[3][[r]];
                    for q in 0..i_sz {
                        v += p[0][[r, q]] * x[[t, j, q]];
                    }
                    for q in 0..hsz {
                        v += p[1][[r, q]] * h[q];
                    }
                    v
                };
                let mut nh = vec![0.0; hsz];
                for u in 0..hsz {
                    let (i, f, g, o) = (
                        sig(gate(0, u, &h)),
                        sig(gate(1, u, &h)),
                        gate(2, u, &h).tanh(),
                        sig(gate(3, u, &h)),
                    );
                    c[u] = f * c[u] + i * g;
                    nh[u] = o * c[u].tanh();
                }
                h = nh;
                outs[t][j] = h.clone();
            }
            hn.extend(h);
            cn.extend(c);
        }
        (outs, hn, cn)
    }

    #[test]
    fn lstm_bidirectional_two_layers_batch_first() {
        let mut r = Lcg(21);
        let (t_len, b, i_sz, h) = (3, 2, 3, 2);
        let mut params = vec![];
        for l in 0..2 {
            for _ in 0..2 {
                let in_l = if l == 0 { i_sz } else { 2 * h };
                params.push(r.array(&[4 * h, in_l]));
                params.push(r.array(&[4 * h, h]));
                params.push(r.array(&[4 * h]));
                params.push(r.array(&[4 * h]));
            }
        }
        let x = r.array(&[b, t_len, i_sz]);
        let h0 = r.array(&[4, b, h]);
        let c0 = r.array(&[4, b, h]);
        let pv: Vec<_> = params.iter().map(|p| p.view()).collect();
        let (out, hn, cn) = lstm(
            x.view(),
            &[h0.view(), c0.view()],
            &pv,
            true,
            2,
            0.0,
            false,
            true,
            true,
        )
        .unwrap();
        assert_eq!(out.shape(), &[b, t_len, 2 * h]);
        assert_eq!(hn.shape(), &[4, b, h]);
        // Reference: layer by layer on (T, B, I).
        let mut layer_in = x.view().permuted_axes(vec![1, 0, 2]).to_owned();
        for l in 0..2 {
            let mut next = ArrayD::zeros(IxDyn(&[t_len, b, 2 * h]));
            for d in 0..2 {
                let ld = l * 2 + d;
                let hs: Vec<f64> = h0.slice(ndarray::s![ld, .., ..]).iter().copied().collect();
                let cs: Vec<f64> = c0.slice(ndarray::s![ld, .., ..]).iter().copied().collect();
                let (o, hn_r, cn_r) =
                    ref_lstm_dir(&layer_in, &params[ld * 4..ld * 4 + 4], &hs, &cs, d == 1);
                for t in 0..t_len {
                    for j in 0..b {
                        for u in 0..h {
                            next[[t, j, d * h + u]] = o[t][j][u];
                        }
                    }
                }
                let got_h: Vec<f64> = hn.slice(ndarray::s![ld, .., ..]).iter().copied().collect();
                let got_c: Vec<f64> = cn.slice(ndarray::s![ld, .., ..]).iter().copied().collect();
                for (x, y) in got_h.iter().zip(&hn_r).chain(got_c.iter().zip(&cn_r)) {
                    assert!((x - y).abs() < 1e-12);
                }
            }
            layer_in = next;
        }
        let expect = layer_in
            .permuted_axes(vec![1, 0, 2])
            .as_standard_layout()
            .into_owned();
        assert_close(&out, &expect, 1e-12);
    }

    #[test]
    fn gru_and_rnn_by_hand() {
        let w_ih = a(&[3, 1], vec![0.5, -0.4, 0.9]);
        let w_hh = a(&[3, 1], vec![0.3, 0.2, -0.7]);
        let b_ih = a(&[3], vec![0.1, -0.2, 0.05]);
        let b_hh = a(&[3], vec![-0.1, 0.15, 0.25]);
        let x = a(&[2, 1, 1], vec![0.7, -1.1]);
        let h0 = a(&[1, 1, 1], vec![0.4]);
        let params = [w_ih.view(), w_hh.view(), b_ih.view(), b_hh.view()];
        let (out, hn) = gru(
            x.view(),
            h0.view(),
            &params,
            true,
            1,
            0.0,
            false,
            false,
            false,
        )
        .unwrap();
        let mut h = 0.4;
        let mut outs = vec![];
        for xt in [0.7, -1.1] {
            let rg = sig(0.5 * xt + 0.1 + 0.3 * h - 0.1);
            let zg = sig(-0.4 * xt - 0.2 + 0.2 * h + 0.15);
            let ng = (0.9 * xt + 0.05 + rg * (-0.7 * h + 0.25)).tanh();
            h = (1.0 - zg) * ng + zg * h;
            outs.push(h);
        }
        assert_close(&out, &a(&[2, 1, 1], outs), 1e-14);
        assert!((hn[[0, 0, 0]] - h).abs() < 1e-14);

        let w_ih = a(&[1, 1], vec![2.0]);
        let w_hh = a(&[1, 1], vec![-1.0]);
        let p = [w_ih.view(), w_hh.view()];
        let x = a(&[3, 1, 1], vec![1.0, 0.5, -1.0]);
        let h0 = a(&[1, 1, 1], vec![0.0]);
        let (out, _) =
            rnn_relu(x.view(), h0.view(), &p, false, 1, 0.0, false, false, false).unwrap();
        // h1 = relu(2) = 2, h2 = relu(1 - 2) = 0, h3 = relu(-2 - 0) = 0
        assert_eq!(out.iter().copied().collect::<Vec<_>>(), vec![2.0, 0.0, 0.0]);
        let (out, _) =
            rnn_tanh(x.view(), h0.view(), &p, false, 1, 0.0, false, false, false).unwrap();
        let h1 = 2f64.tanh();
        let h2 = (1.0 - h1).tanh();
        assert!((out[[1, 0, 0]] - h2).abs() < 1e-15);
        assert!(rnn_tanh(x.view(), h0.view(), &p, false, 1, 0.5, true, false, false).is_ok());
        assert!(rnn_tanh(x.view(), h0.view(), &p, false, 0, 0.0, false, false, false).is_err());
    }

    #[test]
    fn lstm_projection() {
        let mut r = Lcg(30);
        let (h, p_sz) = (3, 2);
        let params = [
            r.array(&[4 * h, 2]),
            r.array(&[4 * h, p_sz]),
            r.array(&[4 * h]),
            r.array(&[4 * h]),
            r.array(&[p_sz, h]),
        ];
        let pv: Vec<_> = params.iter().map(|p| p.view()).collect();
        let x = r.array(&[2, 1, 2]);
        let h0 = r.array(&[1, 1, p_sz]);
        let c0 = r.array(&[1, 1, h]);
        let (out, hn, cn) = lstm(
            x.view(),
            &[h0.view(), c0.view()],
            &pv,
            true,
            1,
            0.0,
            false,
            false,
            false,
        )
        .unwrap();
        assert_eq!(out.shape(), &[2, 1, p_sz]);
        assert_eq!(hn.shape(), &[1, 1, p_sz]);
        assert_eq!(cn.shape(), &[1, 1, h]);
        // Step 1 by hand.
        let mut c1 = vec![0.0; h];
        let mut hr = vec![0.0; h];
        for u in 0..h {
            let gate = |k: usize| {
                let rr = k * h + u;
                params[2][[rr]]
                    + params[3][[rr]]
                    + (0..2)
                        .map(|q| params[0][[rr, q]] * x[[0, 0, q]])
                        .sum::<f64>()
                    + (0..p_sz)
                        .map(|q| params[1][[rr, q]] * h0[[0, 0, q]])
                        .sum::<f64>()
            };
            c1[u] = sig(gate(1)) * c0[[0, 0, u]] + sig(gate(0)) * gate(2).tanh();
            hr[u] = sig(gate(3)) * c1[u].tanh();
        }
        for k in 0..p_sz {
            let e: f64 = (0..h).map(|u| params[4][[k, u]] * hr[u]).sum();
            assert!((out[[0, 0, k]] - e).abs() < 1e-12);
        }
    }
}
