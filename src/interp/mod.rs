//! The reference interpreter: slow but exact, the oracle every backend is
//! checked against.
//!
//! - [`tensor`]: the strided, storage-sharing [`Tensor`], its views, and the
//!   in-place writes (`copy_`, `fill_`) that every in-place op reduces to.
//! - [`ops`]: generic (non-NN) ATen kernels over it.

pub mod ops;
pub mod tensor;

pub use tensor::{AnyArray, Element, Scalar, Storage, Tensor};
