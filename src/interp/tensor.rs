//! placeholder
pub struct Tensor;
