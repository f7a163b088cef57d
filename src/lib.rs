//! torchlift: compile `torch.export` programs (`.pt2` archives) into native
//! CPU code.
//!
//! The pipeline:
//!
//! ```text
//! model.pt2 ──pt2──▶ schema ──ir::import──▶ Graph (training IR)
//!   ──passes──▶ functional core-ATen Graph ──interp / codegen──▶ outputs
//! ```
//!
//! - [`pt2`] reads archives (the PT2 layout and the torch 2.6/2.7 layout).
//! - [`sym`] holds symbolic dimension expressions.
//! - [`ir`] is the graph IR: typed ids, a closed op enum, a text form, a verifier.
//! - [`passes`] are the export passes: functionalization, HOP inlining,
//!   decomposition, shape propagation, cleanups.
//! - [`interp`] is the reference interpreter, the oracle of every backend.

pub mod check;
pub mod codegen;
pub mod dtype;
pub mod error;
pub mod interp;
pub mod ir;
pub mod model;
pub mod passes;
pub mod promote;
pub mod pt2;
pub mod sym;
pub mod tensor;

pub use dtype::DType;
pub use error::{Error, Result};
