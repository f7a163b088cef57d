//! Operators: a closed enum parsed from torch target strings.

use std::fmt;

use super::aten::Aten;

impl Aten {
    /// The functional form of an in-place op: `add_` → `add`.
    pub fn functional_form(self) -> Option<Aten> {
        let name = self.name();
        if name.starts_with("__") || !name.ends_with('_') {
            return None;
        }
        Aten::from_name(&name[..name.len() - 1])
    }

    /// Whether CPU autocast runs this op in the lower-precision dtype.
    pub fn autocast_lower_precision(self) -> bool {
        use Aten::*;
        matches!(
            self,
            Conv1d
                | Conv2d
                | Conv3d
                | ConvTranspose1d
                | ConvTranspose2d
                | Convolution
                | Bmm
                | Mm
                | Linear
                | Matmul
                | Baddbmm
                | Addmm
                | Addbmm
                | ScaledDotProductAttention
                | Prelu
        )
    }
}

/// Higher-order operators: ops that take graphs or operators as arguments.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Hop {
    WrapWithSetGradEnabled,
    WrapWithAutocast,
    AutoFunctionalized,
    AutoFunctionalizedV2,
    Cond,
    WhileLoop,
    Map,
    Scan,
    InvokeSubgraph,
    WithEffects,
}

impl Hop {
    pub const ALL: &'static [Hop] = &[
        Hop::WrapWithSetGradEnabled,
        Hop::WrapWithAutocast,
        Hop::AutoFunctionalized,
        Hop::AutoFunctionalizedV2,
        Hop::Cond,
        Hop::WhileLoop,
        Hop::Map,
        Hop::Scan,
        Hop::InvokeSubgraph,
        Hop::WithEffects,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Hop::WrapWithSetGradEnabled => "wrap_with_set_grad_enabled",
            Hop::WrapWithAutocast => "wrap_with_autocast",
            Hop::AutoFunctionalized => "auto_functionalized",
            Hop::AutoFunctionalizedV2 => "auto_functionalized_v2",
            Hop::Cond => "cond",
            Hop::WhileLoop => "while_loop",
            Hop::Map => "map_impl",
            Hop::Scan => "scan",
            Hop::InvokeSubgraph => "invoke_subgraph",
            Hop::WithEffects => "with_effects",
        }
    }

    pub fn from_name(s: &str) -> Option<Hop> {
        Hop::ALL.iter().copied().find(|h| h.name() == s)
    }
}

/// Python builtins that appear as targets: tuple indexing and arithmetic on
/// symbolic scalars.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Builtin {
    Getitem,
    Add,
    Sub,
    Mul,
    FloorDiv,
    TrueDiv,
    Mod,
    Pow,
    Neg,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Not,
    SymMax,
    SymMin,
    SymFloat,
    SymInt,
    SymSqrt,
    SymNot,
    Ceil,
    Floor,
}

impl Builtin {
    pub const ALL: &'static [Builtin] = &[
        Builtin::Getitem,
        Builtin::Add,
        Builtin::Sub,
        Builtin::Mul,
        Builtin::FloorDiv,
        Builtin::TrueDiv,
        Builtin::Mod,
        Builtin::Pow,
        Builtin::Neg,
        Builtin::Eq,
        Builtin::Ne,
        Builtin::Lt,
        Builtin::Le,
        Builtin::Gt,
        Builtin::Ge,
        Builtin::And,
        Builtin::Or,
        Builtin::Not,
        Builtin::SymMax,
        Builtin::SymMin,
        Builtin::SymFloat,
        Builtin::SymInt,
        Builtin::SymSqrt,
        Builtin::SymNot,
        Builtin::Ceil,
        Builtin::Floor,
    ];

    /// The full target string.
    pub fn target(self) -> &'static str {
        match self {
            Builtin::Getitem => "_operator.getitem",
            Builtin::Add => "_operator.add",
            Builtin::Sub => "_operator.sub",
            Builtin::Mul => "_operator.mul",
            Builtin::FloorDiv => "_operator.floordiv",
            Builtin::TrueDiv => "_operator.truediv",
            Builtin::Mod => "_operator.mod",
            Builtin::Pow => "_operator.pow",
            Builtin::Neg => "_operator.neg",
            Builtin::Eq => "_operator.eq",
            Builtin::Ne => "_operator.ne",
            Builtin::Lt => "_operator.lt",
            Builtin::Le => "_operator.le",
            Builtin::Gt => "_operator.gt",
            Builtin::Ge => "_operator.ge",
            Builtin::And => "_operator.and_",
            Builtin::Or => "_operator.or_",
            Builtin::Not => "_operator.not_",
            Builtin::SymMax => "torch.sym_max",
            Builtin::SymMin => "torch.sym_min",
            Builtin::SymFloat => "torch.sym_float",
            Builtin::SymInt => "torch.sym_int",
            Builtin::SymSqrt => "torch._sym_sqrt",
            Builtin::SymNot => "torch.sym_not",
            Builtin::Ceil => "math.ceil",
            Builtin::Floor => "math.floor",
        }
    }
}

/// An operator. Closed: everything torchlift can reason about is a variant;
/// anything else is kept as `Unsupported` so that the graph still loads,
/// prints and verifies, and only execution or compilation refuses it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `torch.ops.aten.NAME.OVERLOAD`.
    Aten(Aten, String),
    /// `torch.ops.higher_order.NAME`.
    Hop(Hop),
    Builtin(Builtin),
    /// Any other target, verbatim (custom ops, unknown aten names).
    Unsupported(String),
    /// A registered custom op in functional form (see [`crate::custom`]):
    /// its outputs are the new values of its mutated tensor arguments, in
    /// schema order, then the op's own results.
    Custom(String),
}

impl Op {
    /// Parses a target string as the archive writes it.
    pub fn from_target(target: &str) -> Op {
        if let Some(rest) = target.strip_prefix("torch.ops.aten.") {
            let (name, overload) = rest.rsplit_once('.').unwrap_or((rest, "default"));
            if let Some(a) = Aten::from_name(name) {
                return Op::Aten(a, overload.to_string());
            }
        } else if let Some(rest) = target.strip_prefix("torch.ops.higher_order.") {
            if let Some(h) = Hop::from_name(rest) {
                return Op::Hop(h);
            }
        } else if let Some(b) = Builtin::ALL.iter().find(|b| b.target() == target) {
            return Op::Builtin(*b);
        }
        Op::Unsupported(target.to_string())
    }

    /// The full target string, the inverse of [`Op::from_target`].
    pub fn target(&self) -> String {
        match self {
            Op::Aten(a, o) => format!("torch.ops.aten.{}.{o}", a.name()),
            Op::Hop(h) => format!("torch.ops.higher_order.{}", h.name()),
            Op::Builtin(b) => b.target().to_string(),
            Op::Unsupported(t) | Op::Custom(t) => t.clone(),
        }
    }

    pub fn aten(&self) -> Option<Aten> {
        match self {
            Op::Aten(a, _) => Some(*a),
            _ => None,
        }
    }

    pub fn is(&self, a: Aten) -> bool {
        self.aten() == Some(a)
    }

    pub fn overload(&self) -> &str {
        match self {
            Op::Aten(_, o) => o,
            _ => "",
        }
    }
}

/// The short form used in IR text and histograms: the target without its
/// `torch.ops.` prefix (`aten.add.Tensor`, `higher_order.cond`).
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.target();
        f.write_str(t.strip_prefix("torch.ops.").unwrap_or(&t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aten_targets_round_trip() {
        for t in [
            "torch.ops.aten.add.Tensor",
            "torch.ops.aten.add_.Tensor",
            "torch.ops.aten._softmax.default",
            "torch.ops.aten.__and__.Tensor",
            "torch.ops.higher_order.wrap_with_set_grad_enabled",
            "_operator.getitem",
            "torch.ops.mylib.custom.default",
            "torch.ops.aten.not_a_real_op.default",
        ] {
            assert_eq!(Op::from_target(t).target(), t);
        }
    }

    #[test]
    fn unknown_names_are_unsupported() {
        assert!(matches!(
            Op::from_target("torch.ops.aten.not_a_real_op.default"),
            Op::Unsupported(_)
        ));
        assert!(matches!(
            Op::from_target("torch.ops.mylib.add_one_.default"),
            Op::Unsupported(_)
        ));
        assert_eq!(
            Op::from_target("torch.ops.aten.relu_.default"),
            Op::Aten(Aten::ReluInplace, "default".into())
        );
    }

    #[test]
    fn every_aten_name_parses_back() {
        for a in Aten::ALL {
            assert_eq!(Aten::from_name(a.name()), Some(*a));
        }
    }
}
