//! Kernels that write through indices or order elements: scatters into a
//! buffer at element offsets computed by generated code, and a stable
//! argsort of rows.
//!
//! The scatter kernels combine in `f64` (float tensors) or wrapping `i64`
//! (integer and bool tensors): generated code converts the destination and
//! the values before the call and back after it.

use std::cmp::Ordering;

/// How a scatter combines a value with the element it lands on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ScatterOp {
    /// The value replaces the element (the last of several wins).
    Set,
    Add,
    Mul,
    /// The mean of the values (and the element, when it is included).
    Mean,
    /// The maximum; a NaN wins.
    Amax,
    /// The minimum; a NaN wins.
    Amin,
}

impl ScatterOp {
    /// The operation of an ABI code (see [`ScatterOp::code`]).
    pub fn from_code(c: i64) -> Option<ScatterOp> {
        Some(match c {
            0 => ScatterOp::Set,
            1 => ScatterOp::Add,
            2 => ScatterOp::Mul,
            3 => ScatterOp::Mean,
            4 => ScatterOp::Amax,
            5 => ScatterOp::Amin,
            _ => return None,
        })
    }

    /// The ABI code of the operation.
    pub fn code(self) -> i64 {
        match self {
            ScatterOp::Set => 0,
            ScatterOp::Add => 1,
            ScatterOp::Mul => 2,
            ScatterOp::Mean => 3,
            ScatterOp::Amax => 4,
            ScatterOp::Amin => 5,
        }
    }
}

/// An element type a scatter combines in.
pub trait Lane: Copy {
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn max(self, o: Self) -> Self;
    fn min(self, o: Self) -> Self;
    /// The mean of a sum over `count` (> 0) elements.
    fn mean(self, count: usize) -> Self;
    /// The element an excluded destination starts from.
    fn identity(op: ScatterOp) -> Self;
}

impl Lane for f64 {
    fn add(self, o: f64) -> f64 {
        self + o
    }
    fn mul(self, o: f64) -> f64 {
        self * o
    }
    fn max(self, o: f64) -> f64 {
        if self.is_nan() || o.is_nan() {
            f64::NAN
        } else {
            f64::max(self, o)
        }
    }
    fn min(self, o: f64) -> f64 {
        if self.is_nan() || o.is_nan() {
            f64::NAN
        } else {
            f64::min(self, o)
        }
    }
    fn mean(self, count: usize) -> f64 {
        self / count as f64
    }
    fn identity(op: ScatterOp) -> f64 {
        match op {
            ScatterOp::Mul => 1.0,
            ScatterOp::Amax => f64::NEG_INFINITY,
            ScatterOp::Amin => f64::INFINITY,
            _ => 0.0,
        }
    }
}

impl Lane for i64 {
    fn add(self, o: i64) -> i64 {
        self.wrapping_add(o)
    }
    fn mul(self, o: i64) -> i64 {
        self.wrapping_mul(o)
    }
    fn max(self, o: i64) -> i64 {
        Ord::max(self, o)
    }
    fn min(self, o: i64) -> i64 {
        Ord::min(self, o)
    }
    fn mean(self, count: usize) -> i64 {
        self.div_euclid(count as i64)
    }
    fn identity(op: ScatterOp) -> i64 {
        match op {
            ScatterOp::Mul => 1,
            ScatterOp::Amax => i64::MIN,
            ScatterOp::Amin => i64::MAX,
            _ => 0,
        }
    }
}

/// Combines `values[i]` into `out[offsets[i]]` in order. Without
/// `include_self`, every destination first becomes the operation's
/// identity and does not count towards a mean. Returns `false`, writing
/// nothing, when an offset lies outside `out` or the lengths differ.
pub fn scatter<T: Lane>(
    out: &mut [T],
    offsets: &[i64],
    values: &[T],
    op: ScatterOp,
    include_self: bool,
) -> bool {
    if offsets.len() != values.len() {
        return false;
    }
    let n = out.len();
    let mut at = Vec::with_capacity(offsets.len());
    for &o in offsets {
        match usize::try_from(o) {
            Ok(o) if o < n => at.push(o),
            _ => return false,
        }
    }
    if !include_self && op != ScatterOp::Set {
        for &o in &at {
            out[o] = T::identity(op);
        }
    }
    let mut counts = if op == ScatterOp::Mean {
        vec![0usize; n]
    } else {
        Vec::new()
    };
    for (&o, &v) in at.iter().zip(values) {
        out[o] = match op {
            ScatterOp::Set => v,
            ScatterOp::Add | ScatterOp::Mean => out[o].add(v),
            ScatterOp::Mul => out[o].mul(v),
            ScatterOp::Amax => out[o].max(v),
            ScatterOp::Amin => out[o].min(v),
        };
        if op == ScatterOp::Mean {
            counts[o] += 1;
        }
    }
    if op == ScatterOp::Mean {
        for &o in &at {
            let c = counts[o];
            if c > 0 {
                out[o] = out[o].mean((c + include_self as usize).max(1));
                // Each destination divides once.
                counts[o] = 0;
            }
        }
    }
    true
}

/// The total order of sorting: a NaN is larger than every number and equal
/// to another NaN, as torch sorts.
fn order(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// For each of the `rows` rows of `len` keys of `x`, the positions of its
/// first `k` elements in stable sorted order (equal keys keep their order,
/// also when descending) into the row of `k` of `idx`. Returns `false`,
/// writing nothing, when the lengths do not match `rows`, `len` and `k`.
pub fn argsort(
    x: &[f64],
    idx: &mut [i64],
    rows: usize,
    len: usize,
    k: usize,
    descending: bool,
) -> bool {
    if k > len || Some(x.len()) != rows.checked_mul(len) || Some(idx.len()) != rows.checked_mul(k) {
        return false;
    }
    if k == 0 {
        return true;
    }
    let mut perm: Vec<usize> = Vec::with_capacity(len);
    for (row, out) in x.chunks(len).zip(idx.chunks_mut(k)) {
        perm.clear();
        perm.extend(0..len);
        perm.sort_by(|&i, &j| {
            let o = order(row[i], row[j]);
            if descending {
                o.reverse()
            } else {
                o
            }
        });
        for (o, &p) in out.iter_mut().zip(&perm) {
            *o = p as i64;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scatters_combine_in_order() {
        let mut out = vec![1.0, 2.0, 3.0];
        assert!(scatter(
            &mut out,
            &[0, 2, 0],
            &[5.0, 6.0, 7.0],
            ScatterOp::Set,
            true
        ));
        assert_eq!(out, vec![7.0, 2.0, 6.0]);
        let mut out = vec![1.0, 2.0, 3.0];
        assert!(scatter(
            &mut out,
            &[0, 2, 0],
            &[5.0, 6.0, 7.0],
            ScatterOp::Add,
            true
        ));
        assert_eq!(out, vec![13.0, 2.0, 9.0]);
        let mut out = vec![1.0, 2.0, 3.0];
        assert!(scatter(
            &mut out,
            &[0, 0],
            &[5.0, 7.0],
            ScatterOp::Mean,
            true
        ));
        assert_eq!(out, vec![13.0 / 3.0, 2.0, 3.0]);
        let mut out = vec![1.0, 2.0, 3.0];
        assert!(scatter(
            &mut out,
            &[0, 0],
            &[5.0, 7.0],
            ScatterOp::Mean,
            false
        ));
        assert_eq!(out, vec![6.0, 2.0, 3.0]);
        let mut out = vec![1i64, 2, 3];
        assert!(scatter(&mut out, &[1, 1], &[5, -7], ScatterOp::Amin, false));
        assert_eq!(out, vec![1, -7, 3]);
        let mut out = vec![1.0, 2.0];
        assert!(scatter(&mut out, &[1], &[f64::NAN], ScatterOp::Amax, true));
        assert!(out[1].is_nan());
        let mut out = vec![1.0, 2.0];
        assert!(!scatter(&mut out, &[2], &[1.0], ScatterOp::Set, true));
        assert!(!scatter(&mut out, &[-1], &[1.0], ScatterOp::Set, true));
        assert_eq!(out, vec![1.0, 2.0]);
    }

    #[test]
    fn argsort_is_stable_with_nans_largest() {
        let x = [3.0, f64::NAN, 1.0, 3.0, -0.0, 0.0];
        let mut idx = [0i64; 6];
        assert!(argsort(&x, &mut idx, 1, 6, 6, false));
        assert_eq!(idx, [4, 5, 2, 0, 3, 1]);
        assert!(argsort(&x, &mut idx, 1, 6, 6, true));
        assert_eq!(idx, [1, 0, 3, 2, 4, 5]);
        let mut top = [0i64; 4];
        assert!(argsort(&x, &mut top, 2, 3, 2, true));
        assert_eq!(top, [1, 0, 0, 1]);
        assert!(!argsort(&x, &mut top, 2, 3, 4, true));
    }
}
