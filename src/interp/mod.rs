//! The reference interpreter: slow but exact, the oracle every backend is
//! checked against.
//!
//! - [`tensor`]: the strided, storage-sharing [`tensor::Tensor`] and its views.
//! - [`ops`]: generic (non-NN) ATen kernels over it.

pub mod ops;
pub mod tensor;

pub use tensor::{Element, Scalar, Storage, Tensor};
