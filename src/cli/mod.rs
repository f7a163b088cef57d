//! The subcommands.

pub mod bench;
pub mod check;
pub mod compile;
pub mod inspect;
pub mod run;

use torchlift::codegen::jit::JitModel;
use torchlift::interp::Tensor;
use torchlift::model::Model;
use torchlift::Result;

use crate::Backend;

/// A loaded model, ready to be called by the chosen backend.
pub enum Runner {
    Interp(Box<Model>),
    Jit(Box<JitModel>),
    Aot(Box<compile::AotRunner>),
}

impl Runner {
    /// Prepares `model` for `backend` (for the JIT: compiles it; an error
    /// means the JIT does not support the model).
    pub fn new(model: Model, backend: Backend) -> Result<Runner> {
        Ok(match backend {
            Backend::Interp => Runner::Interp(Box::new(model)),
            Backend::Jit => Runner::Jit(Box::new(JitModel::compile(&model)?)),
            Backend::Aot => Runner::Aot(Box::new(compile::AotRunner::new(&model)?)),
        })
    }

    pub fn run(&mut self, inputs: &mut [Tensor]) -> Result<Vec<Tensor>> {
        match self {
            Runner::Interp(m) => m.run(inputs),
            Runner::Jit(j) => j.run(inputs),
            Runner::Aot(a) => a.run(inputs),
        }
    }
}
