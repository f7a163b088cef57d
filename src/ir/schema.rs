//! The schema of every ATen overload torchlift knows: argument names, types
//! and defaults, as PyTorch states them.
//!
//! The table ([`schema_table`](super::schema_table)) is generated from
//! `src/ir/gen/schemas.txt`, PyTorch's own schema strings, by
//! `tests/schema_table.rs`, which also fails when the generated file is out of
//! date. It is the one place where an argument's default is written down:
//! archives leave out arguments that have their default value, and
//! [`Node::arg`](super::Node::arg) fills them in from here, so the passes,
//! the interpreter and the compiler all read the same value.

use std::sync::OnceLock;

use super::graph::Arg;
use super::schema_table::SCHEMAS;

/// The element type of an argument, without list or optional markers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Base {
    Tensor,
    Int,
    SymInt,
    Float,
    Bool,
    Scalar,
    ScalarType,
    Layout,
    Device,
    MemoryFormat,
    Str,
    Generator,
}

/// The type of an argument: `int[2]?` is `Int` with `list: Some(2)` and
/// `optional: true`; `Tensor?[]` is a list of optional tensors.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ArgType {
    pub base: Base,
    /// `Some(n)` for a list of fixed length `n`, `Some(0)` for any length.
    pub list: Option<u8>,
    /// The elements of the list may be `None` (`Tensor?[]`).
    pub elem_optional: bool,
    /// The whole argument may be `None`.
    pub optional: bool,
}

/// A default value as the schema writes it.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum DefaultArg {
    None,
    Int(i64),
    Float(f64),
    Bool(bool),
    Ints(&'static [i64]),
    Floats(&'static [f64]),
    Bools(&'static [bool]),
    Str(&'static str),
}

#[derive(Copy, Clone, Debug, PartialEq)]
pub struct ArgSchema {
    pub name: &'static str,
    pub ty: ArgType,
    pub default: Option<DefaultArg>,
    /// After the `*`: passed by name only.
    pub kwarg_only: bool,
    /// Written in place (`Tensor(a!)`).
    pub mutable: bool,
}

#[derive(Copy, Clone, Debug, PartialEq)]
pub struct OpSchema {
    /// The operator name without `aten::` (`add`, `add_`).
    pub name: &'static str,
    /// The overload; `default` for the unnamed one.
    pub overload: &'static str,
    pub args: &'static [ArgSchema],
    /// The return types, as written (`Tensor`, `Tensor(a!)`, `Tensor[]`).
    pub returns: &'static [&'static str],
}

impl OpSchema {
    pub fn arg(&self, name: &str) -> Option<(usize, &'static ArgSchema)> {
        self.args.iter().enumerate().find(|(_, a)| a.name == name)
    }

    /// The `aten.NAME.OVERLOAD` form used in messages.
    pub fn qualified(&self) -> String {
        format!("aten.{}.{}", self.name, self.overload)
    }
}

/// Every known overload, sorted by name and then overload.
pub fn all() -> &'static [OpSchema] {
    SCHEMAS
}

/// The schema of `aten.NAME.OVERLOAD`.
pub fn lookup(name: &str, overload: &str) -> Option<&'static OpSchema> {
    SCHEMAS
        .binary_search_by(|s| (s.name, s.overload).cmp(&(name, overload)))
        .ok()
        .map(|i| &SCHEMAS[i])
}

/// The default of argument `name` of `schema`, as an IR argument; `None`
/// when it has none or its default is `None`.
pub fn default_arg(schema: &'static OpSchema, name: &str) -> Option<&'static Arg> {
    static ARGS: OnceLock<Vec<Vec<Option<Arg>>>> = OnceLock::new();
    let table = ARGS.get_or_init(|| {
        SCHEMAS
            .iter()
            .map(|s| {
                s.args
                    .iter()
                    .map(|a| match a.default {
                        // A `None` default reads as an absent argument.
                        None | Some(DefaultArg::None) => None,
                        Some(d) => Some(to_arg(a, d)),
                    })
                    .collect()
            })
            .collect()
    });
    let index = SCHEMAS
        .binary_search_by(|s| (s.name, s.overload).cmp(&(schema.name, schema.overload)))
        .ok()?;
    let (i, _) = schema.arg(name)?;
    table[index][i].as_ref()
}

/// How an archive would have written the default value.
fn to_arg(a: &ArgSchema, d: DefaultArg) -> Arg {
    match d {
        DefaultArg::None => Arg::None,
        // A scalar default of a list (`int[2] padding=0`) is that value for
        // every entry, as in torch.
        DefaultArg::Int(v) if a.ty.list.is_some() => {
            Arg::Ints(vec![v; usize::from(a.ty.list.unwrap_or(1).max(1))])
        }
        DefaultArg::Int(v) if a.ty.base == Base::Float => Arg::Float(v as f64),
        DefaultArg::Int(v) => Arg::Int(v),
        DefaultArg::Float(v) => Arg::Float(v),
        DefaultArg::Bool(v) if a.ty.list.is_some() => {
            Arg::Bools(vec![v; usize::from(a.ty.list.unwrap_or(1).max(1))])
        }
        DefaultArg::Bool(v) => Arg::Bool(v),
        DefaultArg::Ints(v) => Arg::Ints(v.to_vec()),
        DefaultArg::Floats(v) => Arg::Floats(v.to_vec()),
        DefaultArg::Bools(v) => Arg::Bools(v.to_vec()),
        DefaultArg::Str(s) => Arg::Str(s.to_string()),
    }
}

/// What is wrong with an ATen node's arguments, checked against its schema:
/// an overload the table does not have, an argument the schema does not
/// name, or a required argument left out.
pub fn check_node(n: &super::Node) -> Option<String> {
    let super::Op::Aten(op, overload) = &n.op else {
        return None;
    };
    let Some(s) = lookup(op.name(), overload) else {
        return Some(format!(
            "aten.{}.{overload} is not a known overload",
            op.name()
        ));
    };
    for a in &n.args {
        if s.arg(&a.name).is_none() {
            return Some(format!(
                "{} has no argument named {:?}",
                s.qualified(),
                a.name
            ));
        }
    }
    for a in s.args {
        if a.default.is_none() && !a.ty.optional && n.args.iter().all(|x| x.name != a.name) {
            return Some(format!(
                "{} is missing its argument {}",
                s.qualified(),
                a.name
            ));
        }
    }
    None
}

/// Arguments of one overload passed on to another (an in-place op to its
/// functional form, `add.out` to `add.Tensor`). An argument name that the
/// target schema lacks takes the name at the same position there:
/// `dropout_(self, ...)` is `dropout(input, ...)`.
pub fn carry_args(
    args: Vec<super::NamedArg>,
    from: Option<&OpSchema>,
    to: Option<&OpSchema>,
) -> Vec<super::NamedArg> {
    let (Some(from), Some(to)) = (from, to) else {
        return args;
    };
    args.into_iter()
        .map(|mut a| {
            if to.arg(&a.name).is_none() {
                if let Some(t) = from.arg(&a.name).and_then(|(i, _)| to.args.get(i)) {
                    a.name = t.name.to_string();
                    a.kwarg = t.kwarg_only;
                }
            }
            a
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for w in SCHEMAS.windows(2) {
            assert!(
                (w[0].name, w[0].overload) < (w[1].name, w[1].overload),
                "{} then {}",
                w[0].qualified(),
                w[1].qualified()
            );
        }
    }

    #[test]
    fn defaults_come_from_the_schema() {
        let conv = lookup("convolution", "default").unwrap();
        assert_eq!(default_arg(conv, "input"), None);
        let add = lookup("add", "Tensor").unwrap();
        assert_eq!(default_arg(add, "alpha"), Some(&Arg::Int(1)));
        let sum = lookup("sum", "dim_IntList").unwrap();
        assert_eq!(default_arg(sum, "keepdim"), Some(&Arg::Bool(false)));
        let pool = lookup("max_pool2d", "default").unwrap();
        assert_eq!(default_arg(pool, "stride"), Some(&Arg::Ints(vec![])));
        assert_eq!(default_arg(pool, "dilation"), Some(&Arg::Ints(vec![1, 1])));
        assert_eq!(default_arg(pool, "padding"), Some(&Arg::Ints(vec![0, 0])));
        assert!(lookup("add", "no_such_overload").is_none());
    }
}
