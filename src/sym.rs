//! Symbolic dimension expressions.
//!
//! Exported programs describe dynamic sizes with sympy expressions, stored as
//! `srepr` strings (`Mul(Integer(2), Symbol('s0', integer=True))`). This module
//! parses them into [`SymExpr`], keeps them in a light canonical form (so that
//! equal sizes compare equal), prints them in a compact infix form that
//! [`SymExpr::parse_infix`] reads back, and evaluates them once the symbols
//! are bound.

use std::collections::BTreeSet;
use std::fmt;

use crate::error::{Error, Result};

/// Deepest nesting accepted by the parsers: deeper input is rejected rather
/// than risking a stack overflow.
const MAX_DEPTH: usize = 200;

/// A symbolic integer expression.
///
/// Build compound expressions with [`SymExpr::add`], [`SymExpr::mul`] and the
/// other constructors: they keep the canonical form that equality relies on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SymExpr {
    Int(i64),
    Symbol(String),
    /// Sum; canonical: flattened, at least two terms, like terms combined,
    /// non-constant terms sorted, the constant (if any) last.
    Add(Vec<SymExpr>),
    /// Product; canonical: flattened, at least two factors, the constant
    /// coefficient (if not 1) first, the other factors sorted.
    Mul(Vec<SymExpr>),
    /// Floor division (Python `//`).
    FloorDiv(Box<SymExpr>, Box<SymExpr>),
    /// sympy `Mod`.
    Mod(Box<SymExpr>, Box<SymExpr>),
    /// Python `%` (the result takes the sign of the divisor).
    PythonMod(Box<SymExpr>, Box<SymExpr>),
    /// Division known to be exact.
    CleanDiv(Box<SymExpr>, Box<SymExpr>),
    Pow(Box<SymExpr>, Box<SymExpr>),
    Max(Vec<SymExpr>),
    Min(Vec<SymExpr>),
    CeilToInt(Box<SymExpr>),
    FloorToInt(Box<SymExpr>),
    TruncToInt(Box<SymExpr>),
    /// The rational number `p/q`, `q > 1`, in lowest terms.
    Rational(i64, i64),
    /// Any other sympy function (`Eq`, `Ne`, `IntTrueDiv`, ...), kept by name.
    /// It prints and parses, but does not evaluate.
    Func(String, Vec<SymExpr>),
}

/// The range of values a symbol may take: `min..=max`, `max == None` meaning
/// unbounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SymRange {
    pub min: i64,
    pub max: Option<i64>,
}

/// Bounds at or beyond this magnitude are treated as infinite: torch writes
/// integer infinity as `null`, as `Infinity`, or as a huge integer.
const INFINITE_BOUND: i64 = i64::MAX / 2;

impl SymRange {
    /// From the optional bounds of a serialized `RangeConstraint`. A missing
    /// or huge bound means unbounded.
    pub fn from_bounds(min_val: Option<i64>, max_val: Option<i64>) -> SymRange {
        let min = match min_val {
            Some(v) if v > -INFINITE_BOUND => v,
            _ => i64::MIN,
        };
        let max = match max_val {
            Some(v) if v < INFINITE_BOUND => Some(v),
            _ => None,
        };
        SymRange { min, max }
    }

    /// Parses one `range_constraints` entry given as JSON, e.g.
    /// `{"min_val": 1, "max_val": 4096}`. Bounds may be integers, `null`,
    /// missing, huge integers, floats or the strings `"Infinity"` /
    /// `"-Infinity"`; all but finite integers mean unbounded.
    pub fn from_json(v: &serde_json::Value) -> Result<SymRange> {
        let obj = v
            .as_object()
            .ok_or_else(|| Error::schema(format!("range constraint is not an object: {v}")))?;
        let min = obj.get("min_val").map(json_bound).transpose()?.flatten();
        let max = obj.get("max_val").map(json_bound).transpose()?.flatten();
        Ok(SymRange::from_bounds(min, max))
    }

    pub fn contains(&self, v: i64) -> bool {
        v >= self.min && self.max.map_or(true, |m| v <= m)
    }
}

/// One bound of a range constraint: `None` when infinite.
pub fn json_bound(v: &serde_json::Value) -> Result<Option<i64>> {
    use serde_json::Value;
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if n.is_u64() {
                Ok(None)
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e18 => {
                        Ok(Some(f as i64))
                    }
                    _ => Ok(None),
                }
            }
        }
        Value::String(s) => match s.as_str() {
            "Infinity" | "inf" | "-Infinity" | "-inf" | "oo" | "-oo" | "int_oo" | "-int_oo" => {
                Ok(None)
            }
            other => other
                .parse::<i64>()
                .map(Some)
                .map_err(|_| Error::schema(format!("range bound {other:?} is not an integer"))),
        },
        other => Err(Error::schema(format!(
            "range bound {other} is not an integer"
        ))),
    }
}

fn floor_div(a: i64, b: i64) -> Option<i64> {
    if b == 0 {
        return None;
    }
    let q = a.checked_div(b)?;
    if (a % b != 0) && ((a < 0) != (b < 0)) {
        q.checked_sub(1)
    } else {
        Some(q)
    }
}

fn python_mod(a: i64, b: i64) -> Option<i64> {
    if b == 0 {
        return None;
    }
    let r = a.checked_rem(b)?;
    if r != 0 && ((r < 0) != (b < 0)) {
        r.checked_add(b)
    } else {
        Some(r)
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    let (mut a, mut b) = (a.unsigned_abs(), b.unsigned_abs());
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    i64::try_from(a).unwrap_or(1)
}

impl SymExpr {
    pub fn int(v: i64) -> SymExpr {
        SymExpr::Int(v)
    }

    pub fn symbol(name: impl Into<String>) -> SymExpr {
        SymExpr::Symbol(name.into())
    }

    /// The constant value, if the expression is a plain integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            SymExpr::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// Splits a term into its integer coefficient and the rest.
    fn split_coeff(self) -> (i64, Option<SymExpr>) {
        match self {
            SymExpr::Int(v) => (v, None),
            SymExpr::Mul(mut fs) => match fs.first() {
                Some(SymExpr::Int(c)) => {
                    let c = *c;
                    fs.remove(0);
                    let rest = if fs.len() == 1 {
                        fs.pop().unwrap_or(SymExpr::Int(1))
                    } else {
                        SymExpr::Mul(fs)
                    };
                    (c, Some(rest))
                }
                _ => (1, Some(SymExpr::Mul(fs))),
            },
            other => (1, Some(other)),
        }
    }

    /// The canonical sum of `terms`.
    pub fn add(terms: Vec<SymExpr>) -> SymExpr {
        let mut flat = Vec::new();
        for t in terms {
            match t {
                SymExpr::Add(ts) => flat.extend(ts),
                other => flat.push(other),
            }
        }
        let mut consts: Vec<i64> = Vec::new();
        let mut others: Vec<(SymExpr, i64)> = Vec::new();
        for t in flat {
            match t.split_coeff() {
                (c, None) => consts.push(c),
                (c, Some(rest)) => others.push((rest, c)),
            }
        }
        others.sort();
        let mut merged: Vec<(SymExpr, i64)> = Vec::new();
        for (rest, c) in others {
            if let Some(last) = merged.last_mut() {
                if last.0 == rest {
                    if let Some(s) = last.1.checked_add(c) {
                        last.1 = s;
                        continue;
                    }
                }
            }
            merged.push((rest, c));
        }
        let mut out: Vec<SymExpr> = Vec::new();
        for (rest, c) in merged {
            match c {
                0 => {}
                1 => out.push(rest),
                c => out.push(SymExpr::mul(vec![SymExpr::Int(c), rest])),
            }
        }
        out.extend(fold_consts(consts, |a, b| a.checked_add(b), 0));
        match out.len() {
            0 => SymExpr::Int(0),
            1 => out.pop().unwrap_or(SymExpr::Int(0)),
            _ => SymExpr::Add(out),
        }
    }

    /// The canonical product of `factors`.
    pub fn mul(factors: Vec<SymExpr>) -> SymExpr {
        let mut flat = Vec::new();
        for f in factors {
            match f {
                SymExpr::Mul(fs) => flat.extend(fs),
                other => flat.push(other),
            }
        }
        let mut consts = Vec::new();
        let mut others = Vec::new();
        for f in flat {
            match f {
                SymExpr::Int(v) => consts.push(v),
                other => others.push(other),
            }
        }
        if consts.contains(&0) {
            return SymExpr::Int(0);
        }
        others.sort();
        let mut out = fold_consts(consts, |a, b| a.checked_mul(b), 1);
        out.extend(others);
        match out.len() {
            0 => SymExpr::Int(1),
            1 => out.pop().unwrap_or(SymExpr::Int(1)),
            _ => SymExpr::Mul(out),
        }
    }

    /// `-e`.
    pub fn negate(e: SymExpr) -> SymExpr {
        match e {
            SymExpr::Int(v) => match v.checked_neg() {
                Some(n) => SymExpr::Int(n),
                None => SymExpr::Mul(vec![SymExpr::Int(-1), SymExpr::Int(v)]),
            },
            other => SymExpr::mul(vec![SymExpr::Int(-1), other]),
        }
    }

    pub fn floor_div(a: SymExpr, b: SymExpr) -> SymExpr {
        match (&a, &b) {
            (_, SymExpr::Int(1)) => a,
            (SymExpr::Int(x), SymExpr::Int(y)) => match floor_div(*x, *y) {
                Some(v) => SymExpr::Int(v),
                None => SymExpr::FloorDiv(Box::new(a), Box::new(b)),
            },
            _ => SymExpr::FloorDiv(Box::new(a), Box::new(b)),
        }
    }

    pub fn python_mod(a: SymExpr, b: SymExpr) -> SymExpr {
        match (&a, &b) {
            (SymExpr::Int(x), SymExpr::Int(y)) => match python_mod(*x, *y) {
                Some(v) => SymExpr::Int(v),
                None => SymExpr::PythonMod(Box::new(a), Box::new(b)),
            },
            _ => SymExpr::PythonMod(Box::new(a), Box::new(b)),
        }
    }

    pub fn pow(a: SymExpr, b: SymExpr) -> SymExpr {
        match (&a, &b) {
            (_, SymExpr::Int(1)) => a,
            (SymExpr::Int(x), SymExpr::Int(y)) if *y >= 0 => {
                match u32::try_from(*y).ok().and_then(|y| x.checked_pow(y)) {
                    Some(v) => SymExpr::Int(v),
                    None => SymExpr::Pow(Box::new(a), Box::new(b)),
                }
            }
            _ => SymExpr::Pow(Box::new(a), Box::new(b)),
        }
    }

    /// `Max`/`Min`: flattened, deduplicated, sorted, constants folded.
    fn minmax(args: Vec<SymExpr>, is_max: bool) -> SymExpr {
        let mut flat = Vec::new();
        for a in args {
            match a {
                SymExpr::Max(v) if is_max => flat.extend(v),
                SymExpr::Min(v) if !is_max => flat.extend(v),
                other => flat.push(other),
            }
        }
        let mut best: Option<i64> = None;
        let mut others: Vec<SymExpr> = Vec::new();
        for a in flat {
            match a {
                SymExpr::Int(v) => {
                    best = Some(match best {
                        None => v,
                        Some(b) if is_max => b.max(v),
                        Some(b) => b.min(v),
                    })
                }
                other => others.push(other),
            }
        }
        others.sort();
        others.dedup();
        let mut out: Vec<SymExpr> = best.into_iter().map(SymExpr::Int).collect();
        out.extend(others);
        match out.len() {
            1 => out.pop().unwrap_or(SymExpr::Int(0)),
            _ if is_max => SymExpr::Max(out),
            _ => SymExpr::Min(out),
        }
    }

    pub fn max(args: Vec<SymExpr>) -> SymExpr {
        Self::minmax(args, true)
    }

    pub fn min(args: Vec<SymExpr>) -> SymExpr {
        Self::minmax(args, false)
    }

    pub fn rational(p: i64, q: i64) -> SymExpr {
        if q == 0 {
            return SymExpr::Func("Rational".into(), vec![SymExpr::Int(p), SymExpr::Int(q)]);
        }
        let g = gcd(p, q);
        let (mut p, mut q) = (p / g, q / g);
        if q < 0 {
            match (p.checked_neg(), q.checked_neg()) {
                (Some(a), Some(b)) => {
                    p = a;
                    q = b;
                }
                _ => {
                    return SymExpr::Func("Rational".into(), vec![SymExpr::Int(p), SymExpr::Int(q)])
                }
            }
        }
        if q == 1 {
            SymExpr::Int(p)
        } else {
            SymExpr::Rational(p, q)
        }
    }

    /// Builds the expression for a function call by name, canonicalizing the
    /// known ones. Unknown names become [`SymExpr::Func`].
    pub fn call(name: &str, mut args: Vec<SymExpr>) -> SymExpr {
        let two = |args: &mut Vec<SymExpr>| -> Option<(SymExpr, SymExpr)> {
            if args.len() == 2 {
                let b = args.pop()?;
                let a = args.pop()?;
                Some((a, b))
            } else {
                None
            }
        };
        let one = |args: &mut Vec<SymExpr>| -> Option<SymExpr> {
            if args.len() == 1 {
                args.pop()
            } else {
                None
            }
        };
        match name {
            "Add" if !args.is_empty() => return SymExpr::add(args),
            "Mul" if !args.is_empty() => return SymExpr::mul(args),
            "Max" if !args.is_empty() => return SymExpr::max(args),
            "Min" if !args.is_empty() => return SymExpr::min(args),
            "FloorDiv" => {
                if let Some((a, b)) = two(&mut args) {
                    return SymExpr::floor_div(a, b);
                }
            }
            "PythonMod" => {
                if let Some((a, b)) = two(&mut args) {
                    return SymExpr::python_mod(a, b);
                }
            }
            "Mod" => {
                if let Some((a, b)) = two(&mut args) {
                    return SymExpr::Mod(Box::new(a), Box::new(b));
                }
            }
            "CleanDiv" => {
                if let Some((a, b)) = two(&mut args) {
                    return SymExpr::CleanDiv(Box::new(a), Box::new(b));
                }
            }
            "Pow" => {
                if let Some((a, b)) = two(&mut args) {
                    return SymExpr::pow(a, b);
                }
            }
            "Rational" => {
                if let [SymExpr::Int(p), SymExpr::Int(q)] = args.as_slice() {
                    return SymExpr::rational(*p, *q);
                }
            }
            "CeilToInt" => {
                if let Some(a) = one(&mut args) {
                    return SymExpr::CeilToInt(Box::new(a));
                }
            }
            "FloorToInt" => {
                if let Some(a) = one(&mut args) {
                    return SymExpr::FloorToInt(Box::new(a));
                }
            }
            "TruncToInt" => {
                if let Some(a) = one(&mut args) {
                    return SymExpr::TruncToInt(Box::new(a));
                }
            }
            _ => {}
        }
        SymExpr::Func(name.to_string(), args)
    }

    /// Evaluates with the symbols bound by `env`; `None` if a symbol is
    /// unbound, on overflow, division by zero, or a non-integer result.
    pub fn eval(&self, env: &dyn Fn(&str) -> Option<i64>) -> Option<i64> {
        Some(match self {
            SymExpr::Int(v) => *v,
            SymExpr::Symbol(s) => env(s)?,
            SymExpr::Add(ts) => {
                let mut acc: i64 = 0;
                for t in ts {
                    acc = acc.checked_add(t.eval(env)?)?;
                }
                acc
            }
            SymExpr::Mul(fs) => {
                let mut acc: i64 = 1;
                for f in fs {
                    acc = acc.checked_mul(f.eval(env)?)?;
                }
                acc
            }
            SymExpr::FloorDiv(a, b) => floor_div(a.eval(env)?, b.eval(env)?)?,
            SymExpr::Mod(a, b) | SymExpr::PythonMod(a, b) => {
                python_mod(a.eval(env)?, b.eval(env)?)?
            }
            SymExpr::CleanDiv(a, b) => {
                let (a, b) = (a.eval(env)?, b.eval(env)?);
                if b == 0 || a.checked_rem(b)? != 0 {
                    return None;
                }
                a.checked_div(b)?
            }
            SymExpr::Pow(a, b) => {
                let (a, b) = (a.eval(env)?, b.eval(env)?);
                a.checked_pow(u32::try_from(b).ok()?)?
            }
            SymExpr::Max(v) => {
                let mut best: Option<i64> = None;
                for e in v {
                    let x = e.eval(env)?;
                    best = Some(best.map_or(x, |b| b.max(x)));
                }
                best?
            }
            SymExpr::Min(v) => {
                let mut best: Option<i64> = None;
                for e in v {
                    let x = e.eval(env)?;
                    best = Some(best.map_or(x, |b| b.min(x)));
                }
                best?
            }
            SymExpr::CeilToInt(a) | SymExpr::FloorToInt(a) | SymExpr::TruncToInt(a) => {
                a.eval(env)?
            }
            SymExpr::Rational(..) | SymExpr::Func(..) => return None,
        })
    }

    /// Evaluates with symbols bound by a map.
    pub fn eval_map(&self, env: &std::collections::HashMap<String, i64>) -> Option<i64> {
        self.eval(&|s| env.get(s).copied())
    }

    /// The names of the symbols the expression mentions.
    pub fn free_symbols(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.collect_symbols(&mut out);
        out
    }

    fn collect_symbols(&self, out: &mut BTreeSet<String>) {
        match self {
            SymExpr::Int(_) | SymExpr::Rational(..) => {}
            SymExpr::Symbol(s) => {
                out.insert(s.clone());
            }
            SymExpr::Add(v) | SymExpr::Mul(v) | SymExpr::Max(v) | SymExpr::Min(v) => {
                v.iter().for_each(|e| e.collect_symbols(out))
            }
            SymExpr::Func(_, v) => v.iter().for_each(|e| e.collect_symbols(out)),
            SymExpr::FloorDiv(a, b)
            | SymExpr::Mod(a, b)
            | SymExpr::PythonMod(a, b)
            | SymExpr::CleanDiv(a, b)
            | SymExpr::Pow(a, b) => {
                a.collect_symbols(out);
                b.collect_symbols(out);
            }
            SymExpr::CeilToInt(a) | SymExpr::FloorToInt(a) | SymExpr::TruncToInt(a) => {
                a.collect_symbols(out)
            }
        }
    }

    /// Parses a sympy `srepr` string. Plain names (`s0`), plain integers and
    /// infix text (as printed by `Display`) are accepted too.
    pub fn parse_srepr(s: &str) -> Result<SymExpr> {
        let mut p = Parser::new(s)?;
        let srepr = p.srepr(0).and_then(|e| {
            p.expect_end()?;
            Ok(e)
        });
        match srepr {
            Ok(e) => Ok(e),
            Err(first) => SymExpr::parse_infix(s).map_err(|_| first),
        }
    }

    /// Parses the infix form printed by `Display`.
    pub fn parse_infix(s: &str) -> Result<SymExpr> {
        let mut p = Parser::new(s)?;
        let e = p.infix_expr(0)?;
        p.expect_end()?;
        Ok(e)
    }

    /// Binding strength for printing: 1 sum, 2 product/division, 3 unary
    /// minus, 4 power, 5 atom.
    fn prec(&self) -> u8 {
        match self {
            SymExpr::Int(v) if *v < 0 => 3,
            SymExpr::Int(_) | SymExpr::Symbol(_) => 5,
            SymExpr::Add(_) => 1,
            SymExpr::Mul(fs) => match fs.first() {
                Some(SymExpr::Int(-1)) if fs.len() == 2 => 3,
                _ => 2,
            },
            SymExpr::FloorDiv(..) | SymExpr::PythonMod(..) => 2,
            SymExpr::Pow(..) => 4,
            _ => 5,
        }
    }
}

fn fold_consts(consts: Vec<i64>, op: impl Fn(i64, i64) -> Option<i64>, unit: i64) -> Vec<SymExpr> {
    let mut out = Vec::new();
    let mut acc: Option<i64> = None;
    for c in consts {
        acc = Some(match acc {
            None => c,
            Some(a) => match op(a, c) {
                Some(v) => v,
                None => {
                    out.push(SymExpr::Int(a));
                    c
                }
            },
        });
    }
    if let Some(a) = acc {
        if a != unit || !out.is_empty() {
            out.push(SymExpr::Int(a));
        }
    }
    out
}

struct Wrap<'a>(&'a SymExpr, bool);

impl fmt::Display for Wrap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.1 {
            write!(f, "({})", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

fn write_args(f: &mut fmt::Formatter<'_>, name: &str, args: &[&SymExpr]) -> fmt::Result {
    write!(f, "{name}(")?;
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            write!(f, ", ")?;
        }
        write!(f, "{a}")?;
    }
    write!(f, ")")
}

impl fmt::Display for SymExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SymExpr::Int(v) => write!(f, "{v}"),
            SymExpr::Symbol(s) => write!(f, "{s}"),
            SymExpr::Add(ts) => {
                for (i, t) in ts.iter().enumerate() {
                    if i == 0 {
                        write!(f, "{t}")?;
                        continue;
                    }
                    match t.clone().split_coeff() {
                        (c, rest) if c < 0 && c != i64::MIN => {
                            let pos = match rest {
                                None => SymExpr::Int(-c),
                                Some(r) => SymExpr::mul(vec![SymExpr::Int(-c), r]),
                            };
                            write!(f, " - {}", Wrap(&pos, pos.prec() <= 1))?;
                        }
                        _ => write!(f, " + {t}")?,
                    }
                }
                Ok(())
            }
            SymExpr::Mul(fs) => {
                for (i, x) in fs.iter().enumerate() {
                    if i == 0 {
                        if let SymExpr::Int(-1) = x {
                            if fs.len() > 1 {
                                write!(f, "-")?;
                                continue;
                            }
                        }
                        write!(f, "{}", Wrap(x, x.prec() < 3))?;
                    } else {
                        let after_minus = i == 1 && fs.first() == Some(&SymExpr::Int(-1));
                        if !after_minus {
                            write!(f, "*")?;
                        }
                        write!(f, "{}", Wrap(x, x.prec() <= 3))?;
                    }
                }
                Ok(())
            }
            SymExpr::FloorDiv(a, b) => {
                write!(f, "{}//{}", Wrap(a, a.prec() < 2), Wrap(b, b.prec() <= 3))
            }
            SymExpr::PythonMod(a, b) => {
                write!(f, "{} % {}", Wrap(a, a.prec() < 2), Wrap(b, b.prec() <= 3))
            }
            SymExpr::Pow(a, b) => {
                write!(f, "{}**{}", Wrap(a, a.prec() < 5), Wrap(b, b.prec() < 3))
            }
            SymExpr::Mod(a, b) => write_args(f, "Mod", &[a, b]),
            SymExpr::CleanDiv(a, b) => write_args(f, "CleanDiv", &[a, b]),
            SymExpr::Max(v) => write_args(f, "Max", &v.iter().collect::<Vec<_>>()),
            SymExpr::Min(v) => write_args(f, "Min", &v.iter().collect::<Vec<_>>()),
            SymExpr::CeilToInt(a) => write_args(f, "CeilToInt", &[a]),
            SymExpr::FloorToInt(a) => write_args(f, "FloorToInt", &[a]),
            SymExpr::TruncToInt(a) => write_args(f, "TruncToInt", &[a]),
            SymExpr::Rational(p, q) => write!(f, "Rational({p}, {q})"),
            SymExpr::Func(name, v) => write_args(f, name, &v.iter().collect::<Vec<_>>()),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// An unsigned integer literal (may exceed `i64::MAX` by one for
    /// `-9223372036854775808`).
    Num(u64),
    Ident(String),
    Str(String),
    LParen,
    RParen,
    Comma,
    Eq,
    Plus,
    Minus,
    Star,
    StarStar,
    SlashSlash,
    Percent,
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Tok>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn err(src: &str, msg: impl Into<String>) -> Error {
        Error::Sym {
            expr: src.to_string(),
            msg: msg.into(),
        }
    }

    fn new(src: &'a str) -> Result<Parser<'a>> {
        let mut toks = Vec::new();
        let chars: Vec<char> = src.chars().collect();
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            match c {
                ' ' | '\t' | '\n' | '\r' => i += 1,
                '(' => {
                    toks.push(Tok::LParen);
                    i += 1
                }
                ')' => {
                    toks.push(Tok::RParen);
                    i += 1
                }
                ',' => {
                    toks.push(Tok::Comma);
                    i += 1
                }
                '=' => {
                    toks.push(Tok::Eq);
                    i += 1
                }
                '+' => {
                    toks.push(Tok::Plus);
                    i += 1
                }
                '-' => {
                    toks.push(Tok::Minus);
                    i += 1
                }
                '%' => {
                    toks.push(Tok::Percent);
                    i += 1
                }
                '*' => {
                    if chars.get(i + 1) == Some(&'*') {
                        toks.push(Tok::StarStar);
                        i += 2
                    } else {
                        toks.push(Tok::Star);
                        i += 1
                    }
                }
                '/' => {
                    if chars.get(i + 1) == Some(&'/') {
                        toks.push(Tok::SlashSlash);
                        i += 2
                    } else {
                        return Err(Self::err(src, "true division '/' is not supported"));
                    }
                }
                '\'' | '"' => {
                    let q = c;
                    let start = i + 1;
                    let mut j = start;
                    loop {
                        match chars.get(j) {
                            None => return Err(Self::err(src, "unterminated string")),
                            Some(&d) if d == q => break,
                            Some(_) => j += 1,
                        }
                    }
                    toks.push(Tok::Str(
                        chars.get(start..j).unwrap_or(&[]).iter().collect(),
                    ));
                    i = j + 1;
                }
                d if d.is_ascii_digit() => {
                    let start = i;
                    while chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
                        i += 1;
                    }
                    let text: String = chars.get(start..i).unwrap_or(&[]).iter().collect();
                    let v: u64 = text
                        .parse()
                        .ok()
                        .filter(|v| *v <= i64::MAX as u64 + 1)
                        .ok_or_else(|| Self::err(src, format!("integer {text} out of range")))?;
                    toks.push(Tok::Num(v));
                }
                a if a.is_alphabetic() || a == '_' => {
                    let start = i;
                    while chars
                        .get(i)
                        .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
                    {
                        i += 1;
                    }
                    toks.push(Tok::Ident(
                        chars.get(start..i).unwrap_or(&[]).iter().collect(),
                    ));
                }
                other => {
                    return Err(Self::err(src, format!("unexpected character {other:?}")));
                }
            }
        }
        Ok(Parser { src, toks, pos: 0 })
    }

    fn error(&self, msg: impl Into<String>) -> Error {
        Self::err(self.src, msg)
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn peek2(&self) -> Option<&Tok> {
        self.toks.get(self.pos + 1)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    fn expect(&mut self, t: Tok) -> Result<()> {
        match self.next() {
            Some(ref got) if *got == t => Ok(()),
            got => Err(self.error(format!("expected {t:?}, found {got:?}"))),
        }
    }

    fn expect_end(&self) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(self.error(format!("unexpected trailing {t:?}"))),
        }
    }

    fn check_depth(&self, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            Err(self.error("expression nested too deeply"))
        } else {
            Ok(())
        }
    }

    fn int_literal(&self, v: u64, negative: bool) -> Result<i64> {
        if negative {
            if v == i64::MAX as u64 + 1 {
                Ok(i64::MIN)
            } else {
                i64::try_from(v)
                    .map(|x| -x)
                    .map_err(|_| self.error("integer out of range"))
            }
        } else {
            i64::try_from(v).map_err(|_| self.error("integer out of range"))
        }
    }

    // ---- srepr ----

    fn srepr(&mut self, depth: usize) -> Result<SymExpr> {
        self.check_depth(depth)?;
        match self.next() {
            Some(Tok::Num(v)) => Ok(SymExpr::Int(self.int_literal(v, false)?)),
            Some(Tok::Minus) => match self.next() {
                Some(Tok::Num(v)) => Ok(SymExpr::Int(self.int_literal(v, true)?)),
                t => Err(self.error(format!("expected an integer after '-', found {t:?}"))),
            },
            Some(Tok::Ident(name)) => {
                if self.peek() != Some(&Tok::LParen) {
                    return Ok(SymExpr::Symbol(name));
                }
                self.expect(Tok::LParen)?;
                match name.as_str() {
                    "Integer" => {
                        let e = self.srepr(depth + 1)?;
                        self.skip_kwargs()?;
                        self.expect(Tok::RParen)?;
                        match e {
                            SymExpr::Int(_) => Ok(e),
                            _ => Err(self.error("Integer() of a non-integer")),
                        }
                    }
                    "Symbol" | "Dummy" => {
                        let n = match self.next() {
                            Some(Tok::Str(s)) => s,
                            t => {
                                return Err(
                                    self.error(format!("expected a symbol name, found {t:?}"))
                                )
                            }
                        };
                        self.skip_kwargs()?;
                        self.expect(Tok::RParen)?;
                        if n.is_empty() {
                            return Err(self.error("empty symbol name"));
                        }
                        Ok(SymExpr::Symbol(n))
                    }
                    _ => {
                        let mut args = Vec::new();
                        loop {
                            match self.peek() {
                                Some(Tok::RParen) => break,
                                Some(Tok::Ident(_)) if self.peek2() == Some(&Tok::Eq) => {
                                    self.skip_kwargs()?;
                                    break;
                                }
                                _ => {}
                            }
                            args.push(self.srepr(depth + 1)?);
                            match self.peek() {
                                Some(Tok::Comma) => {
                                    self.pos += 1;
                                }
                                _ => break,
                            }
                        }
                        self.expect(Tok::RParen)?;
                        Ok(SymExpr::call(&name, args))
                    }
                }
            }
            t => Err(self.error(format!("unexpected {t:?}"))),
        }
    }

    /// Skips `, name=value, ...` up to (not including) the closing paren.
    fn skip_kwargs(&mut self) -> Result<()> {
        loop {
            match self.peek() {
                Some(Tok::Comma) => {
                    self.pos += 1;
                }
                Some(Tok::Ident(_)) if self.peek2() == Some(&Tok::Eq) => {
                    self.pos += 2;
                    match self.next() {
                        Some(Tok::Ident(_)) | Some(Tok::Num(_)) | Some(Tok::Str(_)) => {}
                        t => return Err(self.error(format!("bad keyword value {t:?}"))),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    // ---- infix ----

    fn infix_expr(&mut self, depth: usize) -> Result<SymExpr> {
        self.check_depth(depth)?;
        let mut terms = vec![self.infix_term(depth + 1)?];
        loop {
            match self.peek() {
                Some(Tok::Plus) => {
                    self.pos += 1;
                    terms.push(self.infix_term(depth + 1)?);
                }
                Some(Tok::Minus) => {
                    self.pos += 1;
                    let t = self.infix_term(depth + 1)?;
                    terms.push(SymExpr::negate(t));
                }
                _ => break,
            }
        }
        Ok(if terms.len() == 1 {
            terms.pop().unwrap_or(SymExpr::Int(0))
        } else {
            SymExpr::add(terms)
        })
    }

    fn infix_term(&mut self, depth: usize) -> Result<SymExpr> {
        self.check_depth(depth)?;
        let mut acc = self.infix_unary(depth + 1)?;
        loop {
            match self.peek() {
                Some(Tok::Star) => {
                    self.pos += 1;
                    let r = self.infix_unary(depth + 1)?;
                    acc = SymExpr::mul(vec![acc, r]);
                }
                Some(Tok::SlashSlash) => {
                    self.pos += 1;
                    let r = self.infix_unary(depth + 1)?;
                    acc = SymExpr::floor_div(acc, r);
                }
                Some(Tok::Percent) => {
                    self.pos += 1;
                    let r = self.infix_unary(depth + 1)?;
                    acc = SymExpr::python_mod(acc, r);
                }
                _ => return Ok(acc),
            }
        }
    }

    fn infix_unary(&mut self, depth: usize) -> Result<SymExpr> {
        self.check_depth(depth)?;
        if self.peek() == Some(&Tok::Minus) {
            self.pos += 1;
            // A negative literal, unless it is the base of a power.
            if let (Some(Tok::Num(v)), next) = (self.peek().cloned(), self.peek2()) {
                if next != Some(&Tok::StarStar) {
                    self.pos += 1;
                    return Ok(SymExpr::Int(self.int_literal(v, true)?));
                }
            }
            let e = self.infix_unary(depth + 1)?;
            return Ok(SymExpr::negate(e));
        }
        self.infix_power(depth + 1)
    }

    fn infix_power(&mut self, depth: usize) -> Result<SymExpr> {
        self.check_depth(depth)?;
        let base = self.infix_atom(depth + 1)?;
        if self.peek() == Some(&Tok::StarStar) {
            self.pos += 1;
            let exp = self.infix_unary(depth + 1)?;
            return Ok(SymExpr::pow(base, exp));
        }
        Ok(base)
    }

    fn infix_atom(&mut self, depth: usize) -> Result<SymExpr> {
        self.check_depth(depth)?;
        match self.next() {
            Some(Tok::Num(v)) => Ok(SymExpr::Int(self.int_literal(v, false)?)),
            Some(Tok::LParen) => {
                let e = self.infix_expr(depth + 1)?;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            Some(Tok::Ident(name)) => {
                if self.peek() != Some(&Tok::LParen) {
                    return Ok(SymExpr::Symbol(name));
                }
                if matches!(name.as_str(), "Symbol" | "Dummy" | "Integer") {
                    return Err(self.error(format!("malformed {name}(...)")));
                }
                self.pos += 1;
                let mut args = Vec::new();
                if self.peek() != Some(&Tok::RParen) {
                    loop {
                        args.push(self.infix_expr(depth + 1)?);
                        if self.peek() == Some(&Tok::Comma) {
                            self.pos += 1;
                        } else {
                            break;
                        }
                    }
                }
                self.expect(Tok::RParen)?;
                Ok(SymExpr::call(&name, args))
            }
            t => Err(self.error(format!("unexpected {t:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(n: &str) -> SymExpr {
        SymExpr::symbol(n)
    }

    #[test]
    fn srepr_basic() {
        let e = SymExpr::parse_srepr("Symbol('s77', positive=True, integer=True)").unwrap();
        assert_eq!(e, s("s77"));
        let e = SymExpr::parse_srepr("Mul(Integer(48), Symbol('s0', positive=True, integer=True))")
            .unwrap();
        assert_eq!(e.to_string(), "48*s0");
        let e = SymExpr::parse_srepr("Add(Integer(-1), Symbol('s0', integer=True))").unwrap();
        assert_eq!(e.to_string(), "s0 - 1");
        let e = SymExpr::parse_srepr("FloorDiv(Symbol('s0'), Integer(2))").unwrap();
        assert_eq!(e.to_string(), "s0//2");
        let e = SymExpr::parse_srepr("Max(Integer(1), Symbol('s0'))").unwrap();
        assert_eq!(e.to_string(), "Max(1, s0)");
        assert_eq!(SymExpr::parse_srepr("s3").unwrap(), s("s3"));
        assert_eq!(SymExpr::parse_srepr("-7").unwrap(), SymExpr::Int(-7));
        assert_eq!(
            SymExpr::parse_srepr("Integer(-1)").unwrap(),
            SymExpr::Int(-1)
        );
        assert_eq!(
            SymExpr::parse_srepr("s0 + 1").unwrap().to_string(),
            "s0 + 1"
        );
        assert_eq!(
            SymExpr::parse_srepr("Rational(2, 4)").unwrap(),
            SymExpr::Rational(1, 2)
        );
        let e = SymExpr::parse_srepr(
            "CeilToInt(Mul(Rational(1, 2), Symbol('s1', integer=True, positive=True)))",
        )
        .unwrap();
        assert!(matches!(e, SymExpr::CeilToInt(_)));
    }

    #[test]
    fn srepr_errors() {
        for bad in [
            "",
            "Mul(",
            "Symbol(s0)",
            "Integer(Symbol('x'))",
            "Add(Integer(1),, )",
            "s0 +",
            "99999999999999999999",
            "'x",
            "a / b",
            "#",
        ] {
            match SymExpr::parse_srepr(bad) {
                Err(Error::Sym { expr, .. }) => assert_eq!(expr, bad),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
        let deep = "Add(".repeat(10_000);
        assert!(SymExpr::parse_srepr(&deep).is_err());
        let deep = "(".repeat(10_000);
        assert!(SymExpr::parse_infix(&deep).is_err());
    }

    #[test]
    fn simplify() {
        let e = SymExpr::add(vec![s("a"), SymExpr::Int(0)]);
        assert_eq!(e, s("a"));
        let e = SymExpr::mul(vec![s("a"), SymExpr::Int(1)]);
        assert_eq!(e, s("a"));
        let e = SymExpr::add(vec![
            s("b"),
            s("a"),
            s("b"),
            SymExpr::Int(2),
            SymExpr::Int(3),
        ]);
        assert_eq!(e.to_string(), "a + 2*b + 5");
        let e1 = SymExpr::mul(vec![s("x"), SymExpr::Int(2), s("y")]);
        let e2 = SymExpr::mul(vec![s("y"), s("x"), SymExpr::Int(2)]);
        assert_eq!(e1, e2);
        assert_eq!(
            SymExpr::add(vec![s("a"), SymExpr::negate(s("a"))]),
            SymExpr::Int(0)
        );
    }

    #[test]
    fn eval_and_symbols() {
        let e = SymExpr::parse_infix("(s0 + 3)//2 * s1 - s0 % 4").unwrap();
        let env = |n: &str| match n {
            "s0" => Some(5),
            "s1" => Some(3),
            _ => None,
        };
        assert_eq!(e.eval(&env), Some((5 + 3) / 2 * 3 - 5 % 4));
        assert_eq!(
            e.free_symbols().into_iter().collect::<Vec<_>>(),
            vec!["s0".to_string(), "s1".to_string()]
        );
        assert_eq!(SymExpr::parse_infix("-7//2").unwrap().as_int(), Some(-4));
        assert_eq!(SymExpr::parse_infix("s9").unwrap().eval(&env), None);
    }

    #[test]
    fn ranges() {
        let r = SymRange::from_json(&serde_json::json!({"min_val": 1, "max_val": 4096})).unwrap();
        assert_eq!(
            r,
            SymRange {
                min: 1,
                max: Some(4096)
            }
        );
        let r = SymRange::from_json(&serde_json::json!({"min_val": 2, "max_val": null})).unwrap();
        assert_eq!(r.max, None);
        let r = SymRange::from_json(&serde_json::json!({"min_val": 0})).unwrap();
        assert_eq!(r.max, None);
        let r =
            SymRange::from_json(&serde_json::json!({"min_val": 0, "max_val": "Infinity"})).unwrap();
        assert_eq!(r.max, None);
        let r = SymRange::from_json(
            &serde_json::json!({"min_val": 0, "max_val": 9223372036854775807u64}),
        )
        .unwrap();
        assert_eq!(r.max, None);
        assert!(SymRange::from_json(&serde_json::json!([1])).is_err());
        assert!(r.contains(5));
    }

    fn arb_expr() -> impl Strategy<Value = SymExpr> {
        let leaf = prop_oneof![
            (-20i64..20).prop_map(SymExpr::Int),
            prop_oneof![Just("s0"), Just("s1"), Just("s2")].prop_map(SymExpr::symbol),
        ];
        leaf.prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 2..4).prop_map(SymExpr::add),
                prop::collection::vec(inner.clone(), 2..4).prop_map(SymExpr::mul),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| SymExpr::floor_div(a, b)),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| SymExpr::python_mod(a, b)),
                (inner.clone(), (0i64..3).prop_map(SymExpr::Int))
                    .prop_map(|(a, b)| SymExpr::pow(a, b)),
                prop::collection::vec(inner.clone(), 2..4).prop_map(SymExpr::max),
                prop::collection::vec(inner.clone(), 2..4).prop_map(SymExpr::min),
                inner.clone().prop_map(SymExpr::negate),
                inner.clone().prop_map(|a| SymExpr::CeilToInt(Box::new(a))),
                inner.clone().prop_map(|a| SymExpr::TruncToInt(Box::new(a))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| SymExpr::CleanDiv(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| SymExpr::call("Eq", vec![a, b])),
                (-5i64..5, 2i64..7).prop_map(|(p, q)| SymExpr::rational(p, q)),
                (inner.clone(), inner).prop_map(|(a, b)| SymExpr::Mod(Box::new(a), Box::new(b))),
            ]
        })
    }

    proptest! {
        #[test]
        fn infix_round_trip(e in arb_expr()) {
            let text = e.to_string();
            let back = SymExpr::parse_infix(&text);
            prop_assert_eq!(back.as_ref().ok(), Some(&e), "text {}", text);
        }

        #[test]
        fn parse_never_panics(s in "[-+*/%()a-zA-Z0-9,' =]{0,40}") {
            let _ = SymExpr::parse_srepr(&s);
            let _ = SymExpr::parse_infix(&s);
        }
    }
}
