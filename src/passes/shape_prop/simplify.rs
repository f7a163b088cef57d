//! Simplification of dims with the symbols' ranges: interval bounds decide
//! `Min`/`Max`, and constant factors distribute over sums so that the
//! result cancels (`s0 - Max(s0 - 3, 0)` is `3` when `s0 >= 3`).

use crate::sym::SymExpr;

use super::Ranges;

/// Lower and upper bounds of `e` (`None`: unbounded or unknown).
fn bounds(e: &SymExpr, r: &Ranges) -> (Option<i64>, Option<i64>) {
    match e {
        SymExpr::Int(v) => (Some(*v), Some(*v)),
        SymExpr::Symbol(s) => match r.get(s) {
            Some(rg) => (Some(rg.min).filter(|&m| m != i64::MIN), rg.max),
            None => (None, None),
        },
        SymExpr::Add(ts) => {
            let mut lo = Some(0i64);
            let mut hi = Some(0i64);
            for t in ts {
                let (a, b) = bounds(t, r);
                lo = lo.zip(a).and_then(|(x, y)| x.checked_add(y));
                hi = hi.zip(b).and_then(|(x, y)| x.checked_add(y));
            }
            (lo, hi)
        }
        SymExpr::Mul(fs) => match fs.as_slice() {
            [SymExpr::Int(c), rest] => {
                let (a, b) = bounds(rest, r);
                let sc = |x: Option<i64>| x.and_then(|x| x.checked_mul(*c));
                if *c >= 0 {
                    (sc(a), sc(b))
                } else {
                    (sc(b), sc(a))
                }
            }
            _ => (None, None),
        },
        SymExpr::Max(v) => {
            let bs: Vec<_> = v.iter().map(|x| bounds(x, r)).collect();
            let lo = bs.iter().filter_map(|b| b.0).max();
            let hi = bs.iter().map(|b| b.1).collect::<Option<Vec<_>>>();
            (lo, hi.and_then(|h| h.into_iter().max()))
        }
        SymExpr::Min(v) => {
            let bs: Vec<_> = v.iter().map(|x| bounds(x, r)).collect();
            let hi = bs.iter().filter_map(|b| b.1).min();
            let lo = bs.iter().map(|b| b.0).collect::<Option<Vec<_>>>();
            (lo.and_then(|l| l.into_iter().min()), hi)
        }
        _ => (None, None),
    }
}

/// Keeps the arguments of a `Max` (`is_max`) or `Min` that may win: one
/// that another always beats (by the bounds of their difference) goes.
fn decide(args: Vec<SymExpr>, is_max: bool, r: &Ranges) -> SymExpr {
    let n = args.len();
    let mut dropped = vec![false; n];
    for i in 0..n {
        for j in 0..n {
            if i == j || dropped[j] {
                continue;
            }
            let diff = simplify(&super::util::sub(args[i].clone(), args[j].clone()), r);
            let (lo, hi) = bounds(&diff, r);
            let beaten = if is_max {
                hi.is_some_and(|h| h <= 0)
            } else {
                lo.is_some_and(|l| l >= 0)
            };
            if beaten {
                dropped[i] = true;
                break;
            }
        }
    }
    let keep: Vec<SymExpr> = args
        .iter()
        .zip(&dropped)
        .filter(|(_, d)| !**d)
        .map(|(a, _)| a.clone())
        .collect();
    let keep = if keep.is_empty() { args } else { keep };
    if is_max {
        SymExpr::max(keep)
    } else {
        SymExpr::min(keep)
    }
}

pub fn simplify(e: &SymExpr, r: &Ranges) -> SymExpr {
    match e {
        SymExpr::Add(ts) => SymExpr::add(ts.iter().map(|t| simplify(t, r)).collect()),
        SymExpr::Mul(fs) => {
            let fs: Vec<SymExpr> = fs.iter().map(|f| simplify(f, r)).collect();
            match fs.as_slice() {
                [SymExpr::Int(c), SymExpr::Add(ts)] => SymExpr::add(
                    ts.iter()
                        .map(|t| SymExpr::mul(vec![SymExpr::Int(*c), t.clone()]))
                        .collect(),
                ),
                _ => SymExpr::mul(fs),
            }
        }
        SymExpr::Max(v) => decide(v.iter().map(|x| simplify(x, r)).collect(), true, r),
        SymExpr::Min(v) => decide(v.iter().map(|x| simplify(x, r)).collect(), false, r),
        SymExpr::FloorDiv(a, b) => super::util::div(simplify(a, r), simplify(b, r)),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sym::SymRange;

    fn ranges() -> Ranges {
        let mut r = Ranges::new();
        r.insert(
            "s0".into(),
            SymRange {
                min: 3,
                max: Some(64),
            },
        );
        r.insert("s1".into(), SymRange { min: 1, max: None });
        r
    }

    fn simp(text: &str) -> String {
        simplify(&SymExpr::parse_infix(text).unwrap(), &ranges()).to_string()
    }

    #[test]
    fn ranges_decide_min_and_max() {
        assert_eq!(simp("Min(3, s0)"), "3");
        assert_eq!(simp("Min(4, s0)"), "Min(4, s0)");
        assert_eq!(simp("Max(s0 - 3, 0)"), "s0 - 3");
        assert_eq!(simp("s0 - Max(s0 - 3, 0)"), "3");
        assert_eq!(simp("Min(s1, 100)"), "Min(100, s1)");
        assert_eq!(simp("Max(s1, 0)"), "s1");
        assert_eq!(simp("Max(s0, s0 + 1)"), "s0 + 1");
    }
}
