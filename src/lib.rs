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
//! - [`codegen`] is the compiler: kernel IR, scheduler, Cranelift lowering
//!   and the JIT driver.
//!
//! # Embedding
//!
//! Compile once, then call from any number of threads, one [`Session`]
//! each, on `ndarray` values of their real dtypes ([`Value`]):
//!
//! ```no_run
//! use ndarray::ArrayD;
//! use torchlift::{CompileOptions, CompiledModel, Value};
//!
//! # fn main() -> torchlift::Result<()> {
//! let model = CompiledModel::load("model.pt2", &CompileOptions::default())?;
//! for spec in model.inputs() {
//!     println!("input {}: {} {:?}", spec.name, spec.dtype, spec.dims);
//! }
//! // One session per caller: it owns the buffers that persist across calls.
//! let mut session = model.session();
//! let x = ArrayD::<f32>::zeros(vec![2, 16]);
//! let outputs = session.run_values(&mut [Value::from(x)])?;
//! let y: &ArrayD<f32> = outputs[0].as_f32().expect("an f32 output");
//! println!("{y}");
//! # Ok(())
//! # }
//! ```
//!
//! [`CompiledModel::inputs`] and [`CompiledModel::outputs`] describe the
//! signature (dtypes, and dims that are fixed or symbolic with their
//! ranges); inputs that do not match it are refused with an error naming
//! the input and the dim.

pub mod api;
pub mod capi;
pub mod check;
pub mod codegen;
pub mod custom;
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

pub use api::{DimSpec, IoSpec, Value};
pub use codegen::jit::{CompileOptions, CompiledModel, Session};
pub use dtype::DType;
pub use error::{Error, Result};
