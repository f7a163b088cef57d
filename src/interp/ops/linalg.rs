//! Matrix products. f32 and f64 go through the runtime's checked GEMM on the
//! operands' own strides (no copies); other dtypes use a plain loop (floats in
//! f64, integers in wrapping i64).

use torchlift_runtime::{dgemm, sgemm, MatRef};

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::interp::ops::elementwise::promote_types;
use crate::interp::tensor::{Element, Storage, Tensor};

fn mat<'a, E>(t: &Tensor, data: &'a [E]) -> MatRef<'a, E> {
    MatRef {
        data,
        offset: t.storage_offset(),
        rows: t.sizes()[0],
        cols: t.sizes()[1],
        rs: t.strides()[0],
        cs: t.strides()[1],
    }
}

/// Returns `alpha * a @ b + beta * c` for 2-d views `a` (m x k), `b` (k x n)
/// and dense row-major `c` (m x n) of dtype `T`, reusing `c`'s buffer.
fn gemm2<T: Element>(alpha: f64, a: &Tensor, b: &Tensor, beta: f64, c: Vec<T>) -> Vec<T> {
    let (m, k, n) = (a.sizes()[0], a.sizes()[1], b.sizes()[1]);
    if matches!(T::DTYPE, DType::F32 | DType::F64) {
        let mut st = T::into_storage(c);
        {
            let ga = a.storage();
            let gb_own;
            let sb: &Storage = if a.same_storage(b) {
                &ga
            } else {
                gb_own = b.storage();
                &gb_own
            };
            match (&*ga, sb, &mut st) {
                (Storage::F32(va), Storage::F32(vb), Storage::F32(cv)) => {
                    sgemm(alpha as f32, mat(a, va), mat(b, vb), beta as f32, cv)
                }
                (Storage::F64(va), Storage::F64(vb), Storage::F64(cv)) => {
                    dgemm(alpha, mat(a, va), mat(b, vb), beta, cv)
                }
                _ => unreachable!("operand dtypes were checked equal to the output dtype"),
            }
        }
        return T::storage_vec_mut(&mut st)
            .map(std::mem::take)
            .unwrap_or_default();
    }
    let mut c = c;
    let av = a.to_vec_as::<T>();
    let bv = b.to_vec_as::<T>();
    if T::DTYPE.is_float() {
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    s += av[i * k + p].to_f64() * bv[p * n + j].to_f64();
                }
                let old = if beta == 0.0 {
                    0.0
                } else {
                    beta * c[i * n + j].to_f64()
                };
                c[i * n + j] = T::from_f64(alpha * s + old);
            }
        }
    } else {
        let (al, be) = (alpha as i64, beta as i64);
        for i in 0..m {
            for j in 0..n {
                let mut s = 0i64;
                for p in 0..k {
                    s = s.wrapping_add(av[i * k + p].to_i64().wrapping_mul(bv[p * n + j].to_i64()));
                }
                let old = if beta == 0.0 {
                    0
                } else {
                    be.wrapping_mul(c[i * n + j].to_i64())
                };
                c[i * n + j] = T::from_i64(al.wrapping_mul(s).wrapping_add(old));
            }
        }
    }
    c
}

fn same_dtype(name: &str, a: &Tensor, b: &Tensor) -> Result<DType> {
    if a.dtype() != b.dtype() {
        return Err(Error::other(format!(
            "{name}: expected operands of one dtype, got {} and {}",
            a.dtype(),
            b.dtype()
        )));
    }
    Ok(a.dtype())
}

fn check_mm(name: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dim() != 2 || b.dim() != 2 {
        return Err(Error::other(format!(
            "{name}: expects 2-d operands, got shapes {:?} and {:?}",
            a.sizes(),
            b.sizes()
        )));
    }
    if a.sizes()[1] != b.sizes()[0] {
        return Err(Error::other(format!(
            "{name}: shapes {:?} and {:?} cannot be multiplied",
            a.sizes(),
            b.sizes()
        )));
    }
    Ok(())
}

/// Batched product into fresh storage: `out[i] = alpha * a[i] @ b[i] + beta * init[i]`.
fn batched(
    name: &str,
    a: &Tensor,
    b: &Tensor,
    init: Option<(&Tensor, f64)>,
    alpha: f64,
) -> Result<Tensor> {
    let dt = same_dtype(name, a, b)?;
    let (bs, m, n) = (a.sizes()[0], a.sizes()[1], b.sizes()[2]);
    let shape = [bs, m, n];
    crate::interp::tensor::dispatch_all!(dt, T, {
        let (init, beta) = match init {
            Some((t, beta)) if beta != 0.0 => {
                let t = t.broadcast_to(&shape).map_err(|_| {
                    Error::other(format!(
                        "{name}: input of shape {:?} does not broadcast to {shape:?}",
                        t.sizes()
                    ))
                })?;
                (Some(t), beta)
            }
            _ => (None, 0.0),
        };
        let mut out: Vec<T> = Vec::with_capacity(bs * m * n);
        for i in 0..bs as i64 {
            let c = match &init {
                Some(t) => t.select(0, i)?.to_vec_as::<T>(),
                None => vec![T::default(); m * n],
            };
            out.extend(gemm2::<T>(
                alpha,
                &a.select(0, i)?,
                &b.select(0, i)?,
                beta,
                c,
            ));
        }
        Ok(Tensor::from_vec_unchecked(out, &shape))
    })
}

/// `aten.mm`.
pub fn mm(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    check_mm("mm", a, b)?;
    let r = batched("mm", &a.unsqueeze(0)?, &b.unsqueeze(0)?, None, 1.0)?;
    r.squeeze_dims(&[0])
}

/// `aten.addmm(input, a, b, beta, alpha)`: `beta * input + alpha * a @ b`.
pub fn addmm(input: &Tensor, a: &Tensor, b: &Tensor, beta: f64, alpha: f64) -> Result<Tensor> {
    check_mm("addmm", a, b)?;
    let dt = same_dtype("addmm", a, b)?;
    let inp = input.to_dtype(promote_types(dt, input.dtype()));
    let inp = if inp.dim() <= 2 {
        inp
    } else {
        return Err(Error::other("addmm: input must be at most 2-d"));
    };
    let r = batched(
        "addmm",
        &a.unsqueeze(0)?,
        &b.unsqueeze(0)?,
        Some((&inp.unsqueeze(0)?, beta)),
        alpha,
    )?;
    r.squeeze_dims(&[0])
}

fn check_bmm(name: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dim() != 3 || b.dim() != 3 || a.sizes()[0] != b.sizes()[0] || a.sizes()[2] != b.sizes()[1]
    {
        return Err(Error::other(format!(
            "{name}: shapes {:?} and {:?} are not batched matrices that multiply",
            a.sizes(),
            b.sizes()
        )));
    }
    Ok(())
}

/// `aten.bmm`.
pub fn bmm(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    check_bmm("bmm", a, b)?;
    batched("bmm", a, b, None, 1.0)
}

/// `aten.baddbmm(input, a, b, beta, alpha)`.
pub fn baddbmm(input: &Tensor, a: &Tensor, b: &Tensor, beta: f64, alpha: f64) -> Result<Tensor> {
    check_bmm("baddbmm", a, b)?;
    let inp = input.to_dtype(a.dtype());
    batched("baddbmm", a, b, Some((&inp, beta)), alpha)
}

/// `aten.dot`: 1-d inner product (0-d result).
pub fn dot(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.dim() != 1 || b.dim() != 1 || a.sizes() != b.sizes() {
        return Err(Error::other(format!(
            "dot: expects 1-d operands of one length, got {:?} and {:?}",
            a.sizes(),
            b.sizes()
        )));
    }
    mm(&a.unsqueeze(0)?, &b.unsqueeze(1)?)?.reshape(&[])
}

/// `aten.matmul` with torch's rules for 1-d, 2-d and batched (broadcast) operands.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (da, db) = (a.dim(), b.dim());
    if da == 0 || db == 0 {
        return Err(Error::other("matmul: both operands need at least one dim"));
    }
    match (da, db) {
        (1, 1) => return dot(a, b),
        (2, 2) => return mm(a, b),
        (1, 2) => return mm(&a.unsqueeze(0)?, b)?.squeeze_dims(&[0]),
        (2, 1) => return mm(a, &b.unsqueeze(1)?)?.squeeze_dims(&[1]),
        _ => {}
    }
    if db <= 2 {
        // Fold a's batch dims into rows: one GEMM against b.
        let k = a.sizes()[da - 1];
        let rows = a.reshape(&[-1, k as i64])?;
        let bb = if db == 1 { b.unsqueeze(1)? } else { b.clone() };
        let r = mm(&rows, &bb)?;
        let mut shape: Vec<i64> = a.sizes()[..da - 1].iter().map(|&s| s as i64).collect();
        if db == 2 {
            shape.push(b.sizes()[1] as i64);
        }
        return r.reshape(&shape);
    }
    let a2 = if da == 1 { a.unsqueeze(0)? } else { a.clone() };
    let b2 = if db == 1 { b.unsqueeze(1)? } else { b.clone() };
    let (n, k) = (a2.sizes()[a2.dim() - 2], a2.sizes()[a2.dim() - 1]);
    let (k2, m) = (b2.sizes()[b2.dim() - 2], b2.sizes()[b2.dim() - 1]);
    if k != k2 {
        return Err(Error::other(format!(
            "matmul: shapes {:?} and {:?} cannot be multiplied",
            a.sizes(),
            b.sizes()
        )));
    }
    let batch = crate::interp::tensor::broadcast_shapes(
        &a2.sizes()[..a2.dim() - 2],
        &b2.sizes()[..b2.dim() - 2],
    )?;
    let nb: usize = batch.iter().product();
    let mut ea: Vec<usize> = batch.clone();
    ea.extend([n, k]);
    let mut eb: Vec<usize> = batch.clone();
    eb.extend([k, m]);
    let a3 = a2.broadcast_to(&ea)?.reshape_usize(&[nb, n, k])?;
    let b3 = b2.broadcast_to(&eb)?.reshape_usize(&[nb, k, m])?;
    let r = bmm(&a3, &b3)?;
    let mut shape: Vec<usize> = batch;
    if da > 1 {
        shape.push(n);
    }
    if db > 1 {
        shape.push(m);
    }
    r.reshape_usize(&shape)
}

/// `aten.linear`: `x @ w.T + b`.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = matmul(x, &w.t()?)?;
    match b {
        Some(b) => {
            crate::interp::ops::elementwise::add(&y, b, crate::interp::tensor::Scalar::Int(1))
        }
        None => Ok(y),
    }
}

/// One einsum term: its label ids, with `None` standing for `...`.
fn einsum_term(term: &str) -> Result<Vec<Option<usize>>> {
    let bad = || Error::other(format!("einsum: invalid subscripts {term:?}"));
    let mut out = Vec::new();
    let mut rest = term;
    let mut seen_ellipsis = false;
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("...") {
            if seen_ellipsis {
                return Err(bad());
            }
            seen_ellipsis = true;
            out.push(None);
            rest = r;
            continue;
        }
        // Uppercase labels sort before lowercase ones (implicit output order).
        let id = match c {
            'A'..='Z' => c as usize - 'A' as usize,
            'a'..='z' => 26 + c as usize - 'a' as usize,
            _ => return Err(bad()),
        };
        out.push(Some(id));
        rest = &rest[1..];
    }
    Ok(out)
}

/// `aten.einsum(equation, tensors)`: a sum of products over the labels not in
/// the output. Supports repeated labels (diagonals), `...` with broadcasting,
/// and the implicit output (labels seen once, in sorted order). Computed in
/// f64 and returned in the operands' promoted dtype.
pub fn einsum(equation: &str, operands: &[Tensor]) -> Result<Tensor> {
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let terms: Vec<_> = lhs.split(',').map(einsum_term).collect::<Result<_>>()?;
    if terms.len() != operands.len() || operands.is_empty() {
        return Err(Error::other(format!(
            "einsum: {equation:?} names {} operands, got {}",
            terms.len(),
            operands.len()
        )));
    }
    const ELL: usize = 52; // ids of the ellipsis dims start here
                           // Expand each term to one label id per dim.
    let mut ell_rank = 0;
    let mut expanded = Vec::new();
    for (term, x) in terms.iter().zip(operands) {
        let named = term.iter().filter(|l| l.is_some()).count();
        let has_ell = named != term.len();
        if x.dim() < named || (!has_ell && x.dim() != named) {
            return Err(Error::other(format!(
                "einsum: {equation:?} does not fit an operand of shape {:?}",
                x.sizes()
            )));
        }
        let e = x.dim() - named;
        ell_rank = ell_rank.max(e);
        expanded.push((term, e));
    }
    let labels: Vec<Vec<usize>> = expanded
        .iter()
        .map(|(term, e)| {
            term.iter()
                .flat_map(|l| match l {
                    Some(id) => vec![*id],
                    None => (ELL + ell_rank - e..ELL + ell_rank).collect(),
                })
                .collect()
        })
        .collect();
    let nlab = ELL + ell_rank;
    let mut size = vec![1usize; nlab];
    let mut count = vec![0usize; nlab];
    for (ls, x) in labels.iter().zip(operands) {
        for (&l, &n) in ls.iter().zip(x.sizes()) {
            count[l] += 1;
            if n != 1 && size[l] != 1 && size[l] != n {
                return Err(Error::other(format!(
                    "einsum: {equation:?}: a label has sizes {} and {n}",
                    size[l]
                )));
            }
            if n != 1 {
                size[l] = n;
            }
        }
    }
    let out_labels: Vec<usize> = match rhs {
        Some(r) => {
            let mut v = Vec::new();
            for l in einsum_term(r)? {
                match l {
                    Some(id) if count[id] > 0 && !v.contains(&id) => v.push(id),
                    None => v.extend(ELL..ELL + ell_rank),
                    _ => {
                        return Err(Error::other(format!(
                            "einsum: bad output subscripts in {equation:?}"
                        )))
                    }
                }
            }
            v
        }
        None => (ELL..nlab)
            .chain((0..ELL).filter(|&l| count[l] == 1))
            .collect(),
    };
    let red_labels: Vec<usize> = (0..nlab)
        .filter(|l| count[*l] > 0 && !out_labels.contains(l))
        .collect();
    // Per-operand strides by label (0 for broadcast dims; repeated labels add).
    let strides: Vec<Vec<usize>> = labels
        .iter()
        .zip(operands)
        .map(|(ls, x)| {
            let mut st = vec![0usize; nlab];
            let mut acc = 1usize;
            for (&l, &n) in ls.iter().zip(x.sizes()).rev() {
                if n != 1 {
                    st[l] += acc;
                }
                acc *= n;
            }
            st
        })
        .collect();
    let data: Vec<Vec<f64>> = operands.iter().map(|x| x.to_vec_as::<f64>()).collect();
    let dtype = operands
        .iter()
        .skip(1)
        .fold(operands[0].dtype(), |d, x| promote_types(d, x.dtype()));
    let out_shape: Vec<usize> = out_labels.iter().map(|&l| size[l]).collect();
    let out_n: usize = out_shape.iter().product();
    let red_n: usize = red_labels.iter().map(|&l| size[l]).product();
    let offsets = |ls: &[usize], mut i: usize, k: usize| -> usize {
        let mut off = 0;
        for &l in ls.iter().rev() {
            off += (i % size[l]) * strides[k][l];
            i /= size[l];
        }
        off
    };
    let mut out = Vec::with_capacity(out_n);
    for o in 0..out_n {
        let base: Vec<usize> = (0..operands.len())
            .map(|k| offsets(&out_labels, o, k))
            .collect();
        let mut acc = 0.0;
        for r in 0..red_n {
            let mut prod = 1.0;
            for (k, d) in data.iter().enumerate() {
                prod *= d[base[k] + offsets(&red_labels, r, k)];
            }
            acc += prod;
        }
        out.push(acc);
    }
    Ok(Tensor::from_vec(out, &out_shape)?.to_dtype(dtype))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: &[f32], s: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), s).unwrap()
    }

    #[test]
    fn mm_through_transposed_views_and_ints() {
        let a = f(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        let at = a.t().unwrap(); // 3x2 view
        let r = mm(&a, &at).unwrap();
        assert_eq!(r.to_f64_vec(), vec![14., 32., 32., 77.]);
        let ai = a.to_dtype(DType::I64);
        assert_eq!(
            mm(&ai, &ai.t().unwrap()).unwrap().to_i64_vec(),
            vec![14, 32, 32, 77]
        );
        assert!(mm(&a, &a).is_err());
        assert!(mm(&a, &ai.t().unwrap()).is_err());
        let bias = f(&[1., 10.], &[2]);
        let r = addmm(&bias, &a, &at, 2.0, 0.5).unwrap();
        assert_eq!(r.to_f64_vec(), vec![9., 36., 18., 58.5]);
    }

    #[test]
    fn matmul_shapes() {
        let a = f(&(0..24).map(|x| x as f32).collect::<Vec<_>>(), &[2, 3, 4]);
        let v = f(&[1., 1., 1., 1.], &[4]);
        let r = matmul(&a, &v).unwrap();
        assert_eq!(r.sizes(), &[2, 3]);
        assert_eq!(r.to_f64_vec()[0], 6.0);
        let b = f(&(0..8).map(|x| x as f32).collect::<Vec<_>>(), &[1, 4, 2]);
        let r = matmul(&a, &b).unwrap();
        assert_eq!(r.sizes(), &[2, 3, 2]);
        let r2 = matmul(&a, &b.select(0, 0).unwrap()).unwrap();
        assert_eq!(r.to_f64_vec(), r2.to_f64_vec());
        let r3 = matmul(&f(&[1., 0., 0.], &[3]), &a).unwrap();
        assert_eq!(r3.sizes(), &[2, 4]);
        assert_eq!(r3.to_f64_vec()[4..], [12., 13., 14., 15.]);
        assert_eq!(dot(&v, &v).unwrap().item_f64().unwrap(), 4.0);
        let bb = baddbmm(
            &f(&[1.0], &[1]),
            &a,
            &b.expand(&[2, 4, 2]).unwrap(),
            1.0,
            1.0,
        )
        .unwrap();
        assert_eq!(bb.to_f64_vec()[0], r.to_f64_vec()[0] + 1.0);
    }

    #[test]
    fn einsum_matmul_diagonal_outer_and_implicit() {
        let a = f(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        let b = f(&[1., 0., 2., 1., 0., 3.], &[3, 2]);
        let v = |t: Tensor| t.to_vec_as::<f32>();
        let mm = einsum("ij,jk->ik", &[a.clone(), b.clone()]).unwrap();
        assert_eq!(mm.sizes(), &[2, 2]);
        assert_eq!(v(mm), [5., 11., 14., 23.]);
        // implicit output: labels seen once, sorted
        assert_eq!(
            v(einsum("ij,jk", &[a.clone(), b]).unwrap()),
            [5., 11., 14., 23.]
        );
        assert_eq!(
            v(einsum("ij->ji", std::slice::from_ref(&a)).unwrap()),
            [1., 4., 2., 5., 3., 6.]
        );
        assert_eq!(v(einsum("ij->", std::slice::from_ref(&a)).unwrap()), [21.]);
        let sq = f(&[1., 2., 3., 4.], &[2, 2]);
        assert_eq!(
            v(einsum("ii->i", std::slice::from_ref(&sq)).unwrap()),
            [1., 4.]
        );
        assert_eq!(v(einsum("ii", &[sq]).unwrap()), [5.]);
        let c = f(&[1., 2.], &[2]);
        assert_eq!(
            v(einsum("i,j->ij", &[c.clone(), c.clone()]).unwrap()),
            [1., 2., 2., 4.]
        );
        // ellipsis with broadcasting
        let e = einsum(
            "...ij,...j->...i",
            &[a.reshape(&[1, 2, 3]).unwrap(), f(&[1., 1., 1.], &[3])],
        );
        assert_eq!(v(e.unwrap()), [6., 15.]);
        // mismatched operand counts and sizes are errors
        assert!(einsum("ij,jk->ik", std::slice::from_ref(&a)).is_err());
        assert!(einsum("ij,ij->i", &[a.clone(), c]).is_err());
        assert!(einsum("i?->i", &[a]).is_err());
    }
}
