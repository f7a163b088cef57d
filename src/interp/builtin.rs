//! Python builtins: tuple indexing and arithmetic on symbolic scalars.

use crate::error::Result;
use crate::ir::Builtin;

use super::eval::{Args, RValue};

fn num(a: &Args<'_>, v: &RValue) -> Result<f64> {
    match v {
        RValue::Int(i) => Ok(*i as f64),
        RValue::Float(f) => Ok(*f),
        RValue::Bool(b) => Ok(*b as i64 as f64),
        other => Err(a.err(format!("expected a number, got {}", other.kind()))),
    }
}

pub(crate) fn eval_builtin(a: &Args<'_>, b: Builtin) -> Result<Vec<RValue>> {
    let arg = |i: usize| -> Result<RValue> {
        let x = a
            .positional(i)
            .ok_or_else(|| a.err(format!("missing argument {i}")))?;
        a.value(x)
    };
    if b == Builtin::Getitem {
        let (seq, idx) = (arg(0)?, arg(1)?);
        let RValue::Int(i) = idx else {
            return Err(a.err("getitem index is not an int"));
        };
        let RValue::List(items) = seq else {
            return Err(a.err(format!("getitem on {}", seq.kind())));
        };
        let len = items.len() as i64;
        let k = if i < 0 { i + len } else { i };
        return match usize::try_from(k)
            .ok()
            .and_then(|k| items.into_iter().nth(k))
        {
            Some(v) => Ok(vec![v]),
            None => Err(a.err(format!("getitem index {i} out of range for {len} items"))),
        };
    }
    let x = arg(0)?;
    let both_int = |y: &RValue| matches!((&x, y), (RValue::Int(_), RValue::Int(_)));
    let unary =
        |f: fn(f64) -> f64| -> Result<Vec<RValue>> { Ok(vec![RValue::Float(f(num(a, &x)?))]) };
    let out = match b {
        Builtin::Neg => match x {
            RValue::Int(i) => RValue::Int(-i),
            _ => RValue::Float(-num(a, &x)?),
        },
        Builtin::Not | Builtin::SymNot => RValue::Bool(num(a, &x)? == 0.0),
        Builtin::SymFloat => RValue::Float(num(a, &x)?),
        Builtin::SymInt => RValue::Int(num(a, &x)? as i64),
        Builtin::SymSqrt => return unary(f64::sqrt),
        Builtin::Ceil => RValue::Int(num(a, &x)?.ceil() as i64),
        Builtin::Floor => RValue::Int(num(a, &x)?.floor() as i64),
        _ => {
            let y = arg(1)?;
            let ints = both_int(&y);
            let (p, q) = (num(a, &x)?, num(a, &y)?);
            let (ip, iq) = (p as i64, q as i64);
            match b {
                Builtin::Add if ints => RValue::Int(ip + iq),
                Builtin::Sub if ints => RValue::Int(ip - iq),
                Builtin::Mul if ints => RValue::Int(ip * iq),
                Builtin::Add => RValue::Float(p + q),
                Builtin::Sub => RValue::Float(p - q),
                Builtin::Mul => RValue::Float(p * q),
                Builtin::TrueDiv => RValue::Float(p / q),
                Builtin::FloorDiv | Builtin::Mod if ints && iq == 0 => {
                    return Err(a.err("integer division by zero"))
                }
                Builtin::FloorDiv if ints => RValue::Int(py_floordiv(ip, iq)),
                Builtin::FloorDiv => RValue::Float((p / q).floor()),
                Builtin::Mod if ints => RValue::Int(py_mod(ip, iq)),
                Builtin::Mod => RValue::Float(p - q * (p / q).floor()),
                Builtin::Pow if ints && iq >= 0 => RValue::Int(ip.pow(iq as u32)),
                Builtin::Pow => RValue::Float(p.powf(q)),
                Builtin::Eq => RValue::Bool(p == q),
                Builtin::Ne => RValue::Bool(p != q),
                Builtin::Lt => RValue::Bool(p < q),
                Builtin::Le => RValue::Bool(p <= q),
                Builtin::Gt => RValue::Bool(p > q),
                Builtin::Ge => RValue::Bool(p >= q),
                Builtin::And => RValue::Bool(p != 0.0 && q != 0.0),
                Builtin::Or => RValue::Bool(p != 0.0 || q != 0.0),
                Builtin::SymMax if ints => RValue::Int(ip.max(iq)),
                Builtin::SymMin if ints => RValue::Int(ip.min(iq)),
                Builtin::SymMax => RValue::Float(p.max(q)),
                Builtin::SymMin => RValue::Float(p.min(q)),
                _ => return Err(a.err(format!("builtin {} is not supported", b.target()))),
            }
        }
    };
    Ok(vec![out])
}

/// Python's `//` on ints: rounds toward negative infinity.
fn py_floordiv(p: i64, q: i64) -> i64 {
    let d = p / q;
    if (p % q != 0) && ((p < 0) != (q < 0)) {
        d - 1
    } else {
        d
    }
}

/// Python's `%` on ints: the result has the sign of the divisor.
fn py_mod(p: i64, q: i64) -> i64 {
    p - q * py_floordiv(p, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_division_and_modulo_follow_python() {
        assert_eq!(py_floordiv(-7, 2), -4);
        assert_eq!(py_floordiv(7, -2), -4);
        assert_eq!(py_floordiv(-7, -2), 3);
        assert_eq!(py_floordiv(7, 2), 3);
        assert_eq!(py_mod(-7, 2), 1);
        assert_eq!(py_mod(7, -2), -1);
        assert_eq!(py_mod(6, 3), 0);
    }
}
