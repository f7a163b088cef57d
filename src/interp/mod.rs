//! The reference interpreter.
pub mod tensor;
