//! Generic ATen kernels. Every kernel returns `Result<Tensor>` and reports bad
//! arguments (shapes, dims, indices, dtypes) as errors instead of panicking.
//!
//! Binary kernels take [`elementwise::Operand`]s: a tensor or a Python number,
//! so `add(&x, 1.5)` and `add(&x, &y)` both work (`impl Into<Operand>`).
pub mod create;
pub mod elementwise;
pub mod index;
pub mod linalg;
pub mod reduce;
pub mod shape;
