//! torch type promotion (`torch.result_type`).

use crate::DType;

/// One operand of an elementwise op, as type promotion sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Operand {
    /// A tensor with at least one dimension.
    Tensor(DType),
    /// A 0-dim tensor: it only raises the category.
    ZeroDim(DType),
    /// A Python scalar (`Arg::Int`, `Arg::Float`, `Arg::Bool` or a symbolic
    /// scalar): it only raises the category; floats default to f32.
    IntScalar,
    FloatScalar,
    BoolScalar,
}

fn int_rank(d: DType) -> u8 {
    match d {
        DType::Bool => 0,
        DType::U8 => 1,
        DType::I8 => 1,
        DType::I16 => 2,
        DType::I32 => 3,
        _ => 4,
    }
}

/// `torch.promote_types` for the supported dtypes.
pub fn promote_types(a: DType, b: DType) -> DType {
    use DType::*;
    if a == b {
        return a;
    }
    match (a, b) {
        (Bool, x) | (x, Bool) => x,
        (x, y) if x.is_float() && y.is_float() => match (x, y) {
            (F16, BF16) | (BF16, F16) => F32,
            _ => {
                if x.size_bytes() >= y.size_bytes() {
                    x
                } else {
                    y
                }
            }
        },
        (x, y) if x.is_float() => {
            let _ = y;
            x
        }
        (_, y) if y.is_float() => y,
        (U8, I8) | (I8, U8) => I16,
        (x, y) => {
            if int_rank(x) >= int_rank(y) {
                x
            } else {
                y
            }
        }
    }
}

fn promote_skip(a: Option<DType>, b: Option<DType>) -> Option<DType> {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => Some(promote_types(a, b)),
    }
}

fn combine_categories(higher: Option<DType>, lower: Option<DType>) -> Option<DType> {
    if let Some(h) = higher {
        if h.is_float() {
            return higher;
        }
    }
    if higher == Some(DType::Bool) || lower.is_some_and(|l| l.is_float()) {
        return promote_skip(higher, lower);
    }
    if higher.is_some() {
        return higher;
    }
    lower
}

/// `torch.result_type` over the operands; `None` if there are none.
pub fn result_type(ops: &[Operand]) -> Option<DType> {
    let (mut dim, mut zero, mut wrapped) = (None, None, None);
    for op in ops {
        match *op {
            Operand::Tensor(d) => dim = promote_skip(dim, Some(d)),
            Operand::ZeroDim(d) => zero = promote_skip(zero, Some(d)),
            Operand::IntScalar => wrapped = promote_skip(wrapped, Some(DType::I64)),
            Operand::FloatScalar => wrapped = promote_skip(wrapped, Some(DType::F32)),
            Operand::BoolScalar => wrapped = promote_skip(wrapped, Some(DType::Bool)),
        }
    }
    combine_categories(dim, combine_categories(zero, wrapped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use DType::*;
    use Operand::*;

    #[test]
    fn promotion_cases() {
        assert_eq!(result_type(&[Tensor(I64), FloatScalar]), Some(F32));
        assert_eq!(result_type(&[Tensor(I32), Tensor(I64)]), Some(I64));
        assert_eq!(result_type(&[Tensor(Bool), Tensor(Bool)]), Some(Bool));
        assert_eq!(result_type(&[Tensor(F32), ZeroDim(F64)]), Some(F32));
        assert_eq!(result_type(&[Tensor(I32), IntScalar]), Some(I32));
        assert_eq!(result_type(&[Tensor(Bool), IntScalar]), Some(I64));
        assert_eq!(result_type(&[Tensor(I32), ZeroDim(F64)]), Some(F64));
        assert_eq!(result_type(&[Tensor(F16), FloatScalar]), Some(F16));
        assert_eq!(result_type(&[Tensor(U8), Tensor(I8)]), Some(I16));
        assert_eq!(result_type(&[ZeroDim(I64), FloatScalar]), Some(F32));
        assert_eq!(result_type(&[Tensor(F16), Tensor(BF16)]), Some(F32));
    }
}
