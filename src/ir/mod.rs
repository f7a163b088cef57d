//! The graph IR: what every pass rewrites and every backend walks.
//!
//! A [`Graph`] is an ordered list of [`Node`]s over SSA values. Values are
//! named (the names torch gave them) and typed ([`ValueType`]: a tensor with
//! dtype and symbolic shape, or a symbolic int/float/bool). Operators are a
//! closed enum ([`Op`]); higher-order ops carry nested [`Graph`]s as
//! arguments. The export signature sits beside the graph in [`Program`].
//!
//! - [`import`] builds a [`Program`] from a deserialized archive.
//! - [`print`] and [`parse`] are the stable text form (used by filetests).
//! - [`verify`] checks the invariants every pass must keep.
//! - [`schema`] holds every overload's argument names, types and defaults.
//! - [`releases`] documents what each torch release writes differently and
//!   corrects what some of them record wrong.

mod aten;
mod graph;
pub mod import;
mod op;
pub mod parse;
pub mod print;
mod program;
pub mod releases;
pub mod schema;
#[rustfmt::skip]
mod schema_table;
pub mod verify;

pub use aten::Aten;
pub use graph::{
    Arg, Dim, Graph, NamedArg, Node, NodeMeta, TensorType, ValueData, ValueId, ValueType,
};
pub use op::{Builtin, Hop, Op};
pub use program::{InputKind, InputSpec, OutputKind, OutputSpec, Program, Signature};
