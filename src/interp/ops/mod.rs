//! Generic (non-NN) ATen kernels over [`Tensor`](crate::interp::tensor::Tensor).
//!
//! Every kernel is `pub fn name(args...) -> Result<Tensor>` (or a tuple of
//! tensors) and reports bad arguments (shapes, dims, indices, dtypes) as
//! errors instead of panicking. Results are fresh contiguous tensors unless
//! the kernel is documented as a view.
//!
//! - [`elementwise`]: broadcasting, `result_type` promotion, binary and unary
//!   math. Binary kernels take [`elementwise::Operand`]s, a tensor or a Python
//!   number, through `impl Into<Operand>`: `add(&x, &y, alpha)`,
//!   `mul(&x, 0.5)`, `pow(2.0, &x)`.
//! - [`reduce`]: sums, means, extremes, arg-extremes, var/std, scans,
//!   softmax, norms, sort/topk.
//! - [`shape`]: cat, stack, repeat, flip, roll, tril/triu, padding, clone.
//! - [`index`]: gather/scatter, advanced indexing (`index.Tensor`,
//!   `index_put`), embedding, and the functional `*_scatter` view writes.
//! - [`create`]: factories (arange, full, zeros, linspace, eye, `*_like`, `new_*`).
//! - [`linalg`]: mm, bmm, matmul, addmm, baddbmm, dot, linear.

pub mod create;
pub mod elementwise;
pub mod index;
pub mod linalg;
pub mod reduce;
pub mod shape;
