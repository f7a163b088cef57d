//! The reference interpreter: slow but exact, the oracle every backend is
//! checked against.
//!
//! - [`tensor`]: the strided, storage-sharing [`Tensor`], its views, and the
//!   in-place writes (`copy_`, `fill_`) that every in-place op reduces to.
//! - [`ops`]: generic (non-NN) ATen kernels over it.
//! - `eval`: runs a graph node by node; `aten`, `hop` and `builtin`
//!   dispatch each node to its kernel.

mod aten;
mod builtin;
mod eval;
mod hop;
pub mod nn;
pub mod ops;
/// The tensor type lives in the leaf module `crate::tensor`; this path stays
/// for existing users.
pub use crate::tensor;

pub use aten::kernel_ops;
pub use eval::{constant_value, run_graph, EvalMode, RValue};
pub use tensor::{AnyArray, Element, Scalar, Storage, Tensor};
