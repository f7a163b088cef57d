//! Indexing kernels: gather/scatter, advanced indexing, embedding, and the
//! functional `*_scatter` forms of view writes.
//!
//! Index tensors must have an integer dtype; out-of-range indices are errors
//! (negative indices count from the end where torch allows it).

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::interp::ops::elementwise::{broadcast_all, Operand};
use crate::interp::tensor::{dispatch_all, for_each_offset, wrap_dim, Element, Tensor};

fn check_index_dtype(name: &str, t: &Tensor) -> Result<()> {
    if t.dtype().is_int() {
        Ok(())
    } else {
        Err(Error::other(format!(
            "{name}: index tensor must be an integer tensor, got {}",
            t.dtype()
        )))
    }
}

fn wrap_index(name: &str, i: i64, n: usize) -> Result<usize> {
    let n = n as i64;
    if i < -n || i >= n {
        return Err(Error::other(format!(
            "{name}: index {i} is out of bounds for size {n}"
        )));
    }
    Ok(if i < 0 { i + n } else { i } as usize)
}

/// The part of `t` whose shape is `sizes` (each `sizes[k] <= t.sizes()[k]`).
fn leading_view(name: &str, t: &Tensor, sizes: &[usize]) -> Result<Tensor> {
    if t.dim() != sizes.len() || t.sizes().iter().zip(sizes).any(|(a, b)| b > a) {
        return Err(Error::other(format!(
            "{name}: shape {:?} is smaller than the index shape {sizes:?}",
            t.sizes()
        )));
    }
    let mut v = t.clone();
    for (d, &n) in sizes.iter().enumerate() {
        v = v.slice(d as i64, Some(0), Some(n as i64), 1)?;
    }
    Ok(v)
}

/// For gather/scatter: storage offsets into `t` addressed by `index` along `d`.
fn dim_targets(
    name: &str,
    t: &Tensor,
    d: usize,
    index: &Tensor,
    check_other: bool,
) -> Result<Vec<usize>> {
    check_index_dtype(name, index)?;
    if index.dim() != t.dim() && !(t.dim() == 0 && index.dim() <= 1) {
        return Err(Error::other(format!(
            "{name}: index has rank {} but the tensor has rank {}",
            index.dim(),
            t.dim()
        )));
    }
    if t.dim() == 0 {
        let idx = index.to_i64_vec();
        return idx
            .iter()
            .map(|&i| wrap_index(name, i, 1).map(|_| t.storage_offset()))
            .collect();
    }
    if check_other {
        for k in 0..t.dim() {
            if k != d && index.sizes()[k] > t.sizes()[k] {
                return Err(Error::other(format!(
                    "{name}: index shape {:?} exceeds tensor shape {:?} in dim {k}",
                    index.sizes(),
                    t.sizes()
                )));
            }
        }
    }
    let idx = index.to_i64_vec();
    let n = t.sizes()[d];
    let mut st = t.strides().to_vec();
    let sd = st[d];
    st[d] = 0;
    let mut out = Vec::with_capacity(idx.len());
    let mut k = 0;
    let mut err = None;
    for_each_offset(index.sizes(), &st, t.storage_offset(), |o| {
        match wrap_index(name, idx[k], n) {
            Ok(i) => out.push((o as isize + i as isize * sd) as usize),
            Err(e) => {
                err.get_or_insert(e);
            }
        }
        k += 1;
    });
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// `aten.gather`.
pub fn gather(x: &Tensor, dim: i64, index: &Tensor) -> Result<Tensor> {
    let d = wrap_dim(dim, x.dim())?;
    let targets = dim_targets("gather", x, d, index, true)?;
    dispatch_all!(x.dtype(), T, {
        let v: Vec<T> = x.with_data::<T, _>(|data| targets.iter().map(|&o| data[o]).collect())?;
        Ok(Tensor::from_vec_unchecked(v, index.sizes()))
    })
}

fn scatter_impl(
    name: &str,
    x: &Tensor,
    dim: i64,
    index: &Tensor,
    src: Operand,
    reduce: Option<&str>,
) -> Result<Tensor> {
    let d = wrap_dim(dim, x.dim())?;
    let out = x.clone_data();
    let targets = dim_targets(name, &out, d, index, true)?;
    let src_t = src.tensor();
    let vals_t = match src {
        Operand::T(t) => leading_view(name, t, index.sizes())?,
        Operand::S(_) => src_t.broadcast_to(index.sizes())?,
    };
    #[derive(Clone, Copy)]
    enum Mode {
        Set,
        Add,
        Mul,
    }
    let mode = match reduce {
        None => Mode::Set,
        Some("add" | "sum") => Mode::Add,
        Some("multiply" | "prod") => Mode::Mul,
        Some(r) => return Err(Error::other(format!("{name}: unknown reduce mode {r:?}"))),
    };
    dispatch_all!(out.dtype(), T, {
        let vals = vals_t.to_vec_as::<T>();
        out.with_data_mut::<T, _>(|data| {
            for (&o, &v) in targets.iter().zip(&vals) {
                data[o] = match mode {
                    Mode::Set => v,
                    Mode::Add => data[o].add(v),
                    Mode::Mul => data[o].mul(v),
                };
            }
        })?;
    });
    Ok(out)
}

/// `aten.scatter.src` / `.value` / `.reduce` / `.value_reduce`
/// (`reduce`: None, "add" or "multiply").
pub fn scatter<'a>(
    x: &Tensor,
    dim: i64,
    index: &Tensor,
    src: impl Into<Operand<'a>>,
    reduce: Option<&str>,
) -> Result<Tensor> {
    scatter_impl("scatter", x, dim, index, src.into(), reduce)
}

/// `aten.scatter_add`.
pub fn scatter_add(x: &Tensor, dim: i64, index: &Tensor, src: &Tensor) -> Result<Tensor> {
    scatter_impl("scatter_add", x, dim, index, Operand::T(src), Some("add"))
}

/// Applies a scatter reduction in one lane type; `targets[i]` receives `vals[i]`.
fn scatter_reduce_lane<T: Copy>(
    data: &mut [T],
    targets: &[usize],
    vals: &[T],
    include_self: bool,
    identity: T,
    op: impl Fn(T, T) -> T,
    mean: Option<&dyn Fn(T, usize) -> T>,
) {
    let mut count: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    if !include_self {
        for &o in targets {
            data[o] = identity;
        }
    }
    for (&o, &v) in targets.iter().zip(vals) {
        data[o] = op(data[o], v);
        *count.entry(o).or_insert(include_self as usize) += 1;
    }
    if let Some(m) = mean {
        for (&o, &c) in &count {
            data[o] = m(data[o], c.max(1));
        }
    }
}

/// `aten.scatter_reduce.two` (`reduce`: "sum", "prod", "mean", "amax", "amin").
pub fn scatter_reduce(
    x: &Tensor,
    dim: i64,
    index: &Tensor,
    src: &Tensor,
    reduce: &str,
    include_self: bool,
) -> Result<Tensor> {
    let d = wrap_dim(dim, x.dim())?;
    let name = "scatter_reduce";
    if !matches!(reduce, "sum" | "prod" | "mean" | "amax" | "amin") {
        return Err(Error::other(format!(
            "{name}: unknown reduce mode {reduce:?}"
        )));
    }
    let src = leading_view(name, src, index.sizes())?;
    if x.dtype().is_float() {
        let out = x.to_dtype(DType::F64).clone_data();
        let targets = dim_targets(name, &out, d, index, true)?;
        let vals = src.to_vec_as::<f64>();
        out.with_data_mut::<f64, _>(|data| {
            let nanmax = |a: f64, b: f64| {
                if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else {
                    a.max(b)
                }
            };
            let nanmin = |a: f64, b: f64| {
                if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else {
                    a.min(b)
                }
            };
            let mean = |a: f64, c: usize| a / c as f64;
            match reduce {
                "sum" => scatter_reduce_lane(
                    data,
                    &targets,
                    &vals,
                    include_self,
                    0.0,
                    |a, b| a + b,
                    None,
                ),
                "mean" => scatter_reduce_lane(
                    data,
                    &targets,
                    &vals,
                    include_self,
                    0.0,
                    |a, b| a + b,
                    Some(&mean),
                ),
                "prod" => scatter_reduce_lane(
                    data,
                    &targets,
                    &vals,
                    include_self,
                    1.0,
                    |a, b| a * b,
                    None,
                ),
                "amax" => scatter_reduce_lane(
                    data,
                    &targets,
                    &vals,
                    include_self,
                    f64::NEG_INFINITY,
                    nanmax,
                    None,
                ),
                _ => scatter_reduce_lane(
                    data,
                    &targets,
                    &vals,
                    include_self,
                    f64::INFINITY,
                    nanmin,
                    None,
                ),
            }
        })?;
        Ok(out.to_dtype(x.dtype()))
    } else {
        let out = x.to_dtype(DType::I64).clone_data();
        let targets = dim_targets(name, &out, d, index, true)?;
        let vals = src.to_vec_as::<i64>();
        out.with_data_mut::<i64, _>(|data| {
            let mean = |a: i64, c: usize| a.div_euclid(c as i64);
            match reduce {
                "sum" => scatter_reduce_lane(
                    data,
                    &targets,
                    &vals,
                    include_self,
                    0,
                    i64::wrapping_add,
                    None,
                ),
                "mean" => scatter_reduce_lane(
                    data,
                    &targets,
                    &vals,
                    include_self,
                    0,
                    i64::wrapping_add,
                    Some(&mean),
                ),
                "prod" => scatter_reduce_lane(
                    data,
                    &targets,
                    &vals,
                    include_self,
                    1,
                    i64::wrapping_mul,
                    None,
                ),
                "amax" => scatter_reduce_lane(
                    data,
                    &targets,
                    &vals,
                    include_self,
                    i64::MIN,
                    i64::max,
                    None,
                ),
                _ => scatter_reduce_lane(
                    data,
                    &targets,
                    &vals,
                    include_self,
                    i64::MAX,
                    i64::min,
                    None,
                ),
            }
        })?;
        Ok(out.to_dtype(x.dtype()))
    }
}

/// The gather plan of an advanced-indexing expression.
struct IndexPlan {
    /// Broadcast shape of the index tensors.
    b_shape: Vec<usize>,
    /// Sizes of the dims not indexed, in order.
    rest_sizes: Vec<usize>,
    /// Storage offsets of each indexed position (one per element of `b_shape`).
    bases: Vec<usize>,
    /// Offsets of the non-indexed sub-block, relative to a base.
    rest_offsets: Vec<usize>,
    /// Where the broadcast dims go when the indexed dims are adjacent.
    adjacent_at: Option<usize>,
}

impl IndexPlan {
    fn internal_shape(&self) -> Vec<usize> {
        let mut s = self.b_shape.clone();
        s.extend(&self.rest_sizes);
        s
    }

    /// Permutation taking the internal `[B..., rest...]` layout to torch's.
    fn to_final_perm(&self) -> Option<Vec<i64>> {
        let p = self.adjacent_at.filter(|&p| p > 0)?;
        let nb = self.b_shape.len() as i64;
        let nr = self.rest_sizes.len() as i64;
        let p = p as i64;
        let mut perm: Vec<i64> = (nb..nb + p).collect();
        perm.extend(0..nb);
        perm.extend(nb + p..nb + nr);
        Some(perm)
    }

    fn final_shape(&self) -> Vec<usize> {
        let s = self.internal_shape();
        match self.to_final_perm() {
            Some(p) => p.iter().map(|&i| s[i as usize]).collect(),
            None => s,
        }
    }
}

fn plan_index(x: &Tensor, indices: &[Option<Tensor>]) -> Result<IndexPlan> {
    // Bool masks become one long index per masked dim.
    let mut idx: Vec<Option<Tensor>> = Vec::new();
    for ix in indices {
        match ix {
            Some(t) if matches!(t.dtype(), DType::Bool | DType::U8) => {
                let pos = idx.len();
                let k = t.dim();
                if pos + k > x.dim() || x.sizes()[pos..pos + k] != *t.sizes() {
                    return Err(Error::other(format!(
                        "index: mask of shape {:?} does not match the indexed shape {:?} at dim {pos}",
                        t.sizes(),
                        x.sizes()
                    )));
                }
                let nz = nonzero(t)?;
                for j in 0..k {
                    idx.push(Some(nz.select(1, j as i64)?));
                }
                if k == 0 {
                    return Err(Error::other("index: 0-d boolean masks are not supported"));
                }
            }
            Some(t) => {
                check_index_dtype("index", t)?;
                idx.push(Some(t.clone()));
            }
            None => idx.push(None),
        }
    }
    if idx.len() > x.dim() {
        return Err(Error::other(format!(
            "index: too many indices ({}) for a tensor of rank {}",
            idx.len(),
            x.dim()
        )));
    }
    idx.resize(x.dim(), None);
    let pos: Vec<usize> = (0..idx.len()).filter(|&i| idx[i].is_some()).collect();
    if pos.is_empty() {
        return Err(Error::other("index: at least one index tensor is required"));
    }
    let ts: Vec<&Tensor> = idx.iter().flatten().collect();
    let b_shape = broadcast_all(&ts)?;
    let adjacent = pos.windows(2).all(|w| w[1] == w[0] + 1);
    let rest: Vec<usize> = (0..x.dim()).filter(|i| idx[*i].is_none()).collect();
    let rest_sizes: Vec<usize> = rest.iter().map(|&d| x.sizes()[d]).collect();
    let rest_strides: Vec<isize> = rest.iter().map(|&d| x.strides()[d]).collect();
    let mut rest_offsets = Vec::new();
    for_each_offset(&rest_sizes, &rest_strides, 0, |o| rest_offsets.push(o));
    let nb: usize = b_shape.iter().product();
    let mut bases = vec![x.storage_offset() as isize; nb];
    for (&p, t) in pos.iter().zip(&ts) {
        let v = t.broadcast_to(&b_shape)?.to_i64_vec();
        let n = x.sizes()[p];
        let st = x.strides()[p];
        for (b, &i) in bases.iter_mut().zip(&v) {
            *b += wrap_index("index", i, n)? as isize * st;
        }
    }
    Ok(IndexPlan {
        b_shape,
        rest_sizes,
        bases: bases.into_iter().map(|b| b as usize).collect(),
        rest_offsets,
        adjacent_at: if adjacent { Some(pos[0]) } else { None },
    })
}

/// `aten.index.Tensor`: advanced indexing with optional index tensors (bool
/// masks allowed). Index tensors broadcast together; their result dims go
/// where the indexed dims were when those are adjacent, else first.
pub fn index(x: &Tensor, indices: &[Option<Tensor>]) -> Result<Tensor> {
    let plan = plan_index(x, indices)?;
    let internal = plan.internal_shape();
    let t = dispatch_all!(x.dtype(), T, {
        let v: Vec<T> = x.with_data::<T, _>(|data| {
            let mut out = Vec::with_capacity(plan.bases.len() * plan.rest_offsets.len());
            for &b in &plan.bases {
                out.extend(plan.rest_offsets.iter().map(|&r| data[b + r]));
            }
            out
        })?;
        Tensor::from_vec_unchecked(v, &internal)
    });
    match plan.to_final_perm() {
        Some(p) => Ok(t.permute(&p)?.contiguous()),
        None => Ok(t),
    }
}

/// `aten.index_put` (functional; `accumulate` adds instead of storing).
pub fn index_put(
    x: &Tensor,
    indices: &[Option<Tensor>],
    values: &Tensor,
    accumulate: bool,
) -> Result<Tensor> {
    let out = x.clone_data();
    let plan = plan_index(&out, indices)?;
    let fin = plan.final_shape();
    let mut v = values.broadcast_to(&fin).map_err(|_| {
        Error::other(format!(
            "index_put: values of shape {:?} do not broadcast to {fin:?}",
            values.sizes()
        ))
    })?;
    if let Some(p) = plan.to_final_perm() {
        let mut inv = vec![0i64; p.len()];
        for (i, &q) in p.iter().enumerate() {
            inv[q as usize] = i as i64;
        }
        v = v.permute(&inv)?;
    }
    dispatch_all!(out.dtype(), T, {
        let vals = v.to_vec_as::<T>();
        out.with_data_mut::<T, _>(|data| {
            let mut k = 0;
            for &b in &plan.bases {
                for &r in &plan.rest_offsets {
                    let o = b + r;
                    data[o] = if accumulate {
                        data[o].add(vals[k])
                    } else {
                        vals[k]
                    };
                    k += 1;
                }
            }
        })?;
    });
    Ok(out)
}

/// `aten.index_select`.
pub fn index_select(x: &Tensor, dim: i64, idx: &Tensor) -> Result<Tensor> {
    if idx.dim() > 1 {
        return Err(Error::other("index_select: the index must be 0-d or 1-d"));
    }
    if x.dim() == 0 {
        wrap_dim(dim, 0)?;
        return self::index(&x.reshape(&[1])?, &[Some(idx.reshape(&[-1])?)])?.reshape(&[]);
    }
    let d = wrap_dim(dim, x.dim())?;
    let mut ix: Vec<Option<Tensor>> = vec![None; d];
    ix.push(Some(idx.reshape(&[-1])?));
    self::index(x, &ix)
}

/// `aten.embedding(weight, indices)`: rows of a 2-d `weight`.
pub fn embedding(weight: &Tensor, indices: &Tensor) -> Result<Tensor> {
    if weight.dim() != 2 {
        return Err(Error::other("embedding: weight must be 2-d"));
    }
    let rows = index_select(weight, 0, &indices.reshape(&[-1])?)?;
    let mut shape: Vec<i64> = indices.sizes().iter().map(|&s| s as i64).collect();
    shape.push(weight.sizes()[1] as i64);
    rows.reshape(&shape)
}

/// `aten.nonzero`: `[n, rank]` i64 coordinates of the nonzero elements.
pub fn nonzero(x: &Tensor) -> Result<Tensor> {
    let v = x.to_bool_vec();
    let nd = x.dim();
    let mut out = Vec::new();
    let mut n = 0;
    for (k, &b) in v.iter().enumerate() {
        if b {
            let mut rem = k;
            let start = out.len();
            out.resize(start + nd, 0i64);
            for d in (0..nd).rev() {
                out[start + d] = (rem % x.sizes()[d]) as i64;
                rem /= x.sizes()[d];
            }
            n += 1;
        }
    }
    Ok(Tensor::from_vec_unchecked(out, &[n, nd]))
}

/// `aten.masked_select`: the elements where the (broadcast) mask is true, as 1-d.
pub fn masked_select(x: &Tensor, mask: &Tensor) -> Result<Tensor> {
    if mask.dtype() != DType::Bool {
        return Err(Error::other(format!(
            "masked_select: mask must be bool, got {}",
            mask.dtype()
        )));
    }
    let shape = broadcast_all(&[x, mask])?;
    let xb = x.broadcast_to(&shape)?;
    let m = mask.broadcast_to(&shape)?.to_bool_vec();
    dispatch_all!(x.dtype(), T, {
        let v: Vec<T> = xb
            .to_vec_as::<T>()
            .into_iter()
            .zip(m)
            .filter(|p| p.1)
            .map(|p| p.0)
            .collect();
        let n = v.len();
        Ok(Tensor::from_vec_unchecked(v, &[n]))
    })
}

/// `aten.select_scatter`.
pub fn select_scatter(x: &Tensor, src: &Tensor, dim: i64, index: i64) -> Result<Tensor> {
    let out = x.clone_data();
    out.select(dim, index)?.copy_(src)?;
    Ok(out)
}

/// `aten.slice_scatter`.
pub fn slice_scatter(
    x: &Tensor,
    src: &Tensor,
    dim: i64,
    start: Option<i64>,
    end: Option<i64>,
    step: i64,
) -> Result<Tensor> {
    let out = x.clone_data();
    out.slice(dim, start, end, step)?.copy_(src)?;
    Ok(out)
}

/// `aten.as_strided_scatter` (geometry relative to a contiguous copy of `x`).
pub fn as_strided_scatter(
    x: &Tensor,
    src: &Tensor,
    sizes: &[i64],
    strides: &[i64],
    offset: Option<i64>,
) -> Result<Tensor> {
    let out = x.clone_data();
    out.as_strided(sizes, strides, Some(offset.unwrap_or(0)))?
        .copy_(src)?;
    Ok(out)
}

/// `aten.diagonal_scatter`.
pub fn diagonal_scatter(x: &Tensor, src: &Tensor, offset: i64, d1: i64, d2: i64) -> Result<Tensor> {
    let out = x.clone_data();
    out.diagonal(offset, d1, d2)?.copy_(src)?;
    Ok(out)
}

/// `aten.masked_scatter`: fills masked positions with consecutive `source` elements.
pub fn masked_scatter(x: &Tensor, mask: &Tensor, source: &Tensor) -> Result<Tensor> {
    let shape = broadcast_all(&[x, mask])?;
    let out = x.broadcast_to(&shape)?.clone_data();
    let m = mask.broadcast_to(&shape)?.to_bool_vec();
    let need = m.iter().filter(|&&b| b).count();
    if need > source.numel() {
        return Err(Error::other(format!(
            "masked_scatter: {need} masked elements but source has {}",
            source.numel()
        )));
    }
    dispatch_all!(out.dtype(), T, {
        let s = source.to_vec_as::<T>();
        out.with_data_mut::<T, _>(|data| {
            let mut k = 0;
            for (o, &b) in m.iter().enumerate() {
                if b {
                    data[o] = s[k];
                    k += 1;
                }
            }
        })?;
    });
    Ok(out)
}

/// `aten.embedding_bag`: per bag, the sum (mode 0), mean (1) or max (2) of
/// the weight rows its indices pick (times `per_sample_weights` for sum),
/// skipping `padding_idx`; an empty bag gives zeros. Bags are the rows of a
/// 2-D `indices`, or the slices of a 1-D one between `offsets` (with
/// `include_last_offset`, the last offset closes the last bag).
///
/// Returns `(output, offset2bag, bag_size, max_indices)`; `offset2bag` is
/// empty for a plain sum, as in aten.
pub fn embedding_bag(
    weight: &Tensor,
    indices: &Tensor,
    offsets: Option<&Tensor>,
    mode: i64,
    per_sample_weights: Option<&Tensor>,
    include_last_offset: bool,
    padding_idx: Option<i64>,
) -> Result<Vec<Tensor>> {
    let err = |m: String| Error::other(format!("embedding_bag: {m}"));
    if weight.dim() != 2 || !(0..=2).contains(&mode) {
        return Err(err(format!(
            "needs a 2-D weight and mode 0, 1 or 2, got shape {:?}, mode {mode}",
            weight.sizes()
        )));
    }
    let (rows, width) = (weight.sizes()[0], weight.sizes()[1]);
    let idx = indices.to_vec_as::<i64>();
    let n = idx.len();
    let starts: Vec<usize> = match (indices.dim(), offsets) {
        (2, None) => {
            let l = indices.sizes()[1];
            (0..indices.sizes()[0]).map(|b| b * l).collect()
        }
        (1, Some(o)) => {
            let mut v = Vec::new();
            for x in o.to_vec_as::<i64>() {
                let x = usize::try_from(x)
                    .ok()
                    .filter(|&x| x <= n && v.last().map_or(true, |&p| p <= x))
                    .ok_or_else(|| err(format!("offset {x} is out of order or range")))?;
                v.push(x);
            }
            if include_last_offset {
                v.pop();
            }
            v
        }
        _ => return Err(err("needs 2-D indices, or 1-D indices with offsets".into())),
    };
    let psw = match per_sample_weights {
        Some(p) if mode == 0 && p.numel() == n => Some(p.to_vec_as::<f64>()),
        Some(_) => {
            return Err(err(
                "per_sample_weights need mode sum and one weight per index".into(),
            ))
        }
        None => None,
    };
    let bags = starts.len();
    let end_of = |b: usize| -> usize {
        match offsets {
            Some(o) if include_last_offset => o.to_vec_as::<i64>()[b + 1] as usize,
            _ => starts.get(b + 1).copied().unwrap_or(n),
        }
    };
    let w = weight.to_vec_as::<f64>();
    let mut out = vec![0.0; bags * width];
    let mut offset2bag = vec![0i64; n];
    let mut bag_size = vec![0i64; bags];
    let mut max_idx = vec![-1i64; if mode == 2 { bags * width } else { bags }];
    for b in 0..bags {
        let o = &mut out[b * width..][..width];
        let mut count = 0usize;
        for (i, &r) in idx
            .iter()
            .enumerate()
            .take(end_of(b).max(starts[b]))
            .skip(starts[b])
        {
            offset2bag[i] = b as i64;
            let ri = usize::try_from(r)
                .ok()
                .filter(|&r| r < rows)
                .ok_or_else(|| err(format!("index {r} is out of range for {rows} rows")))?;
            if padding_idx.is_some_and(|p| p.rem_euclid(rows.max(1) as i64) == r) {
                continue;
            }
            let row = &w[ri * width..][..width];
            let scale = psw.as_ref().map_or(1.0, |p| p[i]);
            for (j, (d, &x)) in o.iter_mut().zip(row).enumerate() {
                if mode == 2 {
                    if count == 0 || x > *d {
                        *d = x;
                        max_idx[b * width + j] = r;
                    }
                } else {
                    *d += x * scale;
                }
            }
            count += 1;
        }
        if mode == 1 && count > 0 {
            o.iter_mut().for_each(|d| *d /= count as f64);
        }
        bag_size[b] = count as i64;
    }
    if mode != 2 {
        max_idx = bag_size.clone();
    }
    if mode == 0 && psw.is_none() {
        offset2bag.clear();
    }
    let max_shape: Vec<usize> = if mode == 2 {
        vec![bags, width]
    } else {
        vec![bags]
    };
    Ok(vec![
        Tensor::from_vec(out, &[bags, width])?.to_dtype(weight.dtype()),
        Tensor::from_vec(offset2bag.clone(), &[offset2bag.len()])?,
        Tensor::from_vec(bag_size, &[bags])?,
        Tensor::from_vec(max_idx, &max_shape)?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::ops::create::arange;
    use crate::interp::tensor::Scalar;

    fn ar(n: i64, shape: &[i64]) -> Tensor {
        arange(Scalar::Int(0), Scalar::Int(n), Scalar::Int(1), None)
            .unwrap()
            .reshape(shape)
            .unwrap()
    }
    fn i(v: &[i64], s: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), s).unwrap()
    }

    #[test]
    fn index_adjacent_and_not() {
        let x = ar(24, &[2, 3, 4]);
        // x[:, [0, 2], [1, 3]] -> adjacent: shape [2, 2]
        let r = index(&x, &[None, Some(i(&[0, 2], &[2])), Some(i(&[1, 3], &[2]))]).unwrap();
        assert_eq!(r.sizes(), &[2, 2]);
        assert_eq!(r.to_i64_vec(), vec![1, 11, 13, 23]);
        // x[[0, 1], :, [1, 3]] -> not adjacent: index dims first, shape [2, 3]
        let r = index(&x, &[Some(i(&[0, 1], &[2])), None, Some(i(&[1, -1], &[2]))]).unwrap();
        assert_eq!(r.sizes(), &[2, 3]);
        assert_eq!(r.to_i64_vec(), vec![1, 5, 9, 15, 19, 23]);
        // x[:, [[0], [2]]] -> shape [2, 2, 1, 4]
        let r = index(&x, &[None, Some(i(&[0, 2], &[2, 1]))]).unwrap();
        assert_eq!(r.sizes(), &[2, 2, 1, 4]);
        assert_eq!(r.to_i64_vec()[4..8], [8, 9, 10, 11]);
        assert!(index(&x, &[Some(i(&[2], &[1]))]).is_err());
        let m = Tensor::from_vec(vec![true, false, true], &[3]).unwrap();
        let r = index(&x, &[None, Some(m)]).unwrap();
        assert_eq!(r.sizes(), &[2, 2, 4]);
        assert_eq!(r.to_i64_vec()[4], 8);
    }

    #[test]
    fn index_put_accumulates() {
        let x = Tensor::zeros(DType::F32, &[3, 2]);
        let v = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
        let r = index_put(
            &x,
            &[Some(i(&[0, 0], &[2]))],
            &v.reshape(&[2, 1]).unwrap(),
            true,
        )
        .unwrap();
        assert_eq!(r.to_f64_vec(), vec![3., 3., 0., 0., 0., 0.]);
        let r = index_put(
            &x,
            &[None, Some(i(&[1], &[1]))],
            &v.select(0, 0).unwrap(),
            false,
        )
        .unwrap();
        assert_eq!(r.to_f64_vec(), vec![0., 1., 0., 1., 0., 1.]);
    }

    #[test]
    fn gather_scatter_select() {
        let x = ar(6, &[2, 3]);
        let g = gather(&x, 1, &i(&[2, 0, 1, 1], &[2, 2])).unwrap();
        assert_eq!(g.to_i64_vec(), vec![2, 0, 4, 4]);
        assert!(gather(&x, 1, &i(&[3], &[1, 1])).is_err());
        let s = scatter_add(
            &Tensor::zeros(DType::I64, &[3]),
            0,
            &i(&[0, 0, 2], &[3]),
            &i(&[1, 2, 3], &[3]),
        )
        .unwrap();
        assert_eq!(s.to_i64_vec(), vec![3, 0, 3]);
        let s = scatter(&x, 0, &i(&[1, 0], &[1, 2]), 9i64, None).unwrap();
        assert_eq!(s.to_i64_vec(), vec![0, 9, 2, 9, 4, 5]);
        let e = embedding(&x.t().unwrap(), &i(&[2, 0], &[2])).unwrap();
        assert_eq!(e.to_i64_vec(), vec![2, 5, 0, 3]);
        assert_eq!(
            index_select(&x, 0, &i(&[1], &[1])).unwrap().to_i64_vec(),
            vec![3, 4, 5]
        );
        let ss = slice_scatter(&x, &i(&[7, 7], &[2, 1]), 1, Some(1), Some(2), 1).unwrap();
        assert_eq!(ss.to_i64_vec(), vec![0, 7, 2, 3, 7, 5]);
        assert_eq!(nonzero(&x).unwrap().sizes(), &[5, 2]);
        let m = Tensor::from_vec(vec![false, true, true], &[3]).unwrap();
        assert_eq!(
            masked_select(&x, &m).unwrap().to_i64_vec(),
            vec![1, 2, 4, 5]
        );
        let xf = x.to_dtype(DType::F32);
        let idx = i(&[0, 0, 1], &[3]);
        let src = Tensor::from_vec(vec![5.0f32, 1.0, 2.0], &[3]).unwrap();
        let base = xf.select(0, 1).unwrap(); // [3, 4, 5]
        let r = scatter_reduce(&base, 0, &idx, &src, "amax", true).unwrap();
        assert_eq!(r.to_f64_vec(), vec![5., 4., 5.]);
        let r = scatter_reduce(&base, 0, &idx, &src, "mean", false).unwrap();
        assert_eq!(r.to_f64_vec(), vec![3., 2., 5.]);
        let r = scatter_reduce(&base, 0, &idx, &src, "mean", true).unwrap();
        assert_eq!(r.to_f64_vec(), vec![3., 3., 5.]);
    }

    #[test]
    fn embedding_bag_modes_offsets_and_padding() {
        let w = Tensor::from_vec(vec![1f32, 10., 2., 20., 3., 30., 4., 40.], &[4, 2]).unwrap();
        let idx = Tensor::from_vec(vec![0i64, 1, 2, 3, 3], &[5]).unwrap();
        let off = Tensor::from_vec(vec![0i64, 2, 2], &[3]).unwrap();
        let r = embedding_bag(&w, &idx, Some(&off), 0, None, false, None).unwrap();
        assert_eq!(r[0].sizes(), &[3, 2]);
        // bags [0, 1], [] and [2, 3, 3]
        assert_eq!(r[0].to_f64_vec(), vec![3., 30., 0., 0., 11., 110.]);
        assert_eq!(r[1].numel(), 0);
        let r = embedding_bag(&w, &idx, Some(&off), 1, None, false, Some(3)).unwrap();
        assert_eq!(r[0].to_f64_vec(), vec![1.5, 15., 0., 0., 3., 30.]);
        assert_eq!(r[2].to_i64_vec(), vec![2, 0, 1]);
        let r = embedding_bag(&w, &idx, Some(&off), 2, None, true, None).unwrap();
        assert_eq!(r[0].sizes(), &[2, 2]);
        assert_eq!(r[0].to_f64_vec(), vec![2., 20., 0., 0.]);
        // 2-D indices are one bag per row
        let idx2 = Tensor::from_vec(vec![0i64, 1, 2, 3], &[2, 2]).unwrap();
        let r = embedding_bag(&w, &idx2, None, 0, None, false, None).unwrap();
        assert_eq!(r[0].to_f64_vec(), vec![3., 30., 7., 70.]);
        // bad indices and offsets are errors
        let bad = Tensor::from_vec(vec![4i64], &[1]).unwrap();
        let o0 = Tensor::from_vec(vec![0i64], &[1]).unwrap();
        assert!(embedding_bag(&w, &bad, Some(&o0), 0, None, false, None).is_err());
        let back = Tensor::from_vec(vec![2i64, 1], &[2]).unwrap();
        assert!(embedding_bag(&w, &idx, Some(&back), 0, None, false, None).is_err());
    }
}
