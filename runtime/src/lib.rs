//! torchlift-runtime: the kernels that compiled code and the reference
//! interpreter call into.
//!
//! Each kernel has a safe Rust entry point that checks its arguments. The raw
//! pointer work lives in small `unsafe` blocks inside, each with a `SAFETY:`
//! comment stating why the access is in bounds.

pub mod abi;
pub mod attention;
pub mod cpu;
pub mod gemm;
pub mod nn;
pub mod norm;
pub mod order;
pub mod parallel;
pub mod scalar;
pub mod softmax;

pub use parallel::parallel_chunks;

pub use gemm::{dgemm, gemm, sgemm, Act, Bias, GemmDims, MatRef, Strides};
