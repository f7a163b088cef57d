//! A loaded model: the program, its weights and its mutable state, ready to
//! be called.
//!
//! [`Model::load`] reads an archive, imports the graph and (unless told not
//! to) runs the export pipeline. [`Model::run`] checks the inputs against the
//! signature, runs the graph and applies its side effects: buffer updates
//! persist to the next call, and user-input mutations are written back to
//! the caller's tensors.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::interp::{self, RValue};
use crate::ir::{import, InputKind, OutputKind, Program};
use crate::passes::{self, PassContext};
use crate::pt2::{Archive, TensorData};
use crate::tensor::{Scalar, Tensor};
use crate::DType;

#[derive(Copy, Clone, Debug)]
pub struct LoadOptions {
    /// Run the export pipeline (functionalization, decomposition, ...).
    pub run_passes: bool,
    /// Verify the graph after every pass.
    pub verify_each_pass: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            run_passes: true,
            verify_each_pass: passes::VERIFY_BY_DEFAULT,
        }
    }
}

pub struct Model {
    pub path: PathBuf,
    pub program: Program,
    /// Parameters, buffers and constants by state-dict name. Buffers change
    /// from call to call.
    pub state: BTreeMap<String, Tensor>,
    /// The inputs saved with the archive, if any.
    pub sample_inputs: Option<Vec<Tensor>>,
}

pub fn tensor_from_data(t: &TensorData, what: &str) -> Result<Tensor> {
    Tensor::from_raw_bytes(t.dtype, &t.sizes, &t.strides, t.storage_offset, &t.storage)
        .map_err(|e| Error::archive(what.to_string(), e.to_string()))
}

impl Model {
    pub fn load(path: &Path) -> Result<Model> {
        Model::load_with(path, LoadOptions::default())
    }

    pub fn load_with(path: &Path, opts: LoadOptions) -> Result<Model> {
        let archive = Archive::open(path)?;
        let mut model = Model::from_archive(&archive)?;
        if opts.run_passes {
            model.run_pipeline(opts.verify_each_pass, |_, _| {})?;
        }
        Ok(model)
    }

    /// The model as saved: imported, no passes run.
    pub fn from_archive(archive: &Archive) -> Result<Model> {
        let program = import::import_program(&archive.program)?;
        crate::ir::verify::verify_program(&program)?;
        let mut state = BTreeMap::new();
        for (name, t) in archive.weights.iter().chain(&archive.constants) {
            state.insert(
                name.clone(),
                tensor_from_data(t, &format!("weight {name}"))?,
            );
        }
        let sample_inputs = match &archive.sample_inputs {
            Some(ts) => Some(
                ts.iter()
                    .enumerate()
                    .map(|(i, t)| tensor_from_data(t, &format!("sample input {i}")))
                    .collect::<Result<Vec<_>>>()?,
            ),
            None => None,
        };
        Ok(Model {
            path: archive.path.clone(),
            program,
            state,
            sample_inputs,
        })
    }

    /// Runs the export pipeline, calling `after` with each pass's result.
    pub fn run_pipeline(
        &mut self,
        verify_each: bool,
        after: impl FnMut(&str, &Program),
    ) -> Result<()> {
        let mut cx = PassContext {
            weights: Some(&mut self.state),
        };
        passes::export_pipeline().run(&mut self.program, &mut cx, verify_each, after)
    }

    /// Calls the model on user inputs (in signature order) and returns the
    /// user outputs.
    pub fn run(&mut self, inputs: &mut [Tensor]) -> Result<Vec<Tensor>> {
        let p = &self.program;
        let syms = bind_user_inputs(p, inputs)?;
        let mut args = Vec::with_capacity(p.graph.inputs.len());
        let mut next_user = 0;
        for spec in &p.signature.inputs {
            let v = match &spec.kind {
                InputKind::UserInput => {
                    let t = inputs[next_user].clone();
                    next_user += 1;
                    RValue::Tensor(t)
                }
                InputKind::Parameter | InputKind::Buffer { .. } | InputKind::ConstantTensor => {
                    let target = spec.target.as_deref().unwrap_or("");
                    match self.state.get(target) {
                        Some(t) => RValue::Tensor(t.clone()),
                        None => {
                            return Err(Error::other(format!(
                                "the archive has no weight named {target}"
                            )))
                        }
                    }
                }
                InputKind::ConstantInput(a) => interp::constant_value(a),
                InputKind::CustomObj | InputKind::Token => RValue::None,
            };
            args.push(v);
        }
        let outs = interp::run_graph(&p.graph, args, &syms)?;
        let mut values = Vec::with_capacity(outs.len());
        for (i, v) in outs.into_iter().enumerate() {
            // A symbolic scalar output is a 0-d tensor: i64, f64 or bool.
            let t = match v {
                RValue::Int(x) => Tensor::scalar(Scalar::Int(x), DType::I64),
                RValue::Float(x) => Tensor::scalar(Scalar::Float(x), DType::F64),
                RValue::Bool(x) => Tensor::scalar(Scalar::Bool(x), DType::Bool),
                v => v
                    .into_tensor()
                    .map_err(|e| Error::other(format!("graph output {i}: {e}")))?,
            };
            values.push(t);
        }
        apply_outputs(p, &self.state, inputs, values)
    }
}

/// Checks the user inputs against the signature (count, then dtype, rank,
/// static dims and symbol ranges) and binds the shape symbols.
pub fn bind_user_inputs(p: &Program, inputs: &[Tensor]) -> Result<HashMap<String, i64>> {
    let user = p.user_inputs();
    if inputs.len() != user.len() {
        return Err(Error::other(format!(
            "the model takes {} inputs ({}), {} were given",
            user.len(),
            user.iter()
                .map(|&v| p.graph.name(v))
                .collect::<Vec<_>>()
                .join(", "),
            inputs.len()
        )));
    }
    let shapes: Vec<_> = inputs
        .iter()
        .map(|t| (t.dtype(), t.sizes().to_vec()))
        .collect();
    passes::shape_prop::bind_inputs(p, &shapes)
}

/// Applies a call's graph outputs (one per output spec, in order): buffer and
/// parameter mutations are written into `state`, user-input mutations into
/// the caller's `inputs`, and the user outputs are returned. A user output
/// never aliases the state, the inputs or another output (later calls, or
/// the caller writing to one output, would change it).
pub fn apply_outputs(
    p: &Program,
    state: &BTreeMap<String, Tensor>,
    inputs: &mut [Tensor],
    values: Vec<Tensor>,
) -> Result<Vec<Tensor>> {
    let user = p.user_inputs();
    let mut result: Vec<Tensor> = Vec::new();
    for (t, spec) in values.into_iter().zip(&p.signature.outputs) {
        let target = spec.target.as_deref().unwrap_or("");
        match spec.kind {
            OutputKind::UserOutput => {
                let aliases = state
                    .values()
                    .chain(inputs.iter())
                    .chain(result.iter())
                    .any(|s| s.same_storage(&t));
                result.push(if aliases { t.clone_data() } else { t });
            }
            OutputKind::BufferMutation | OutputKind::ParameterMutation => match state.get(target) {
                Some(s) => s.copy_(&t)?,
                None => return Err(Error::other(format!("mutation of unknown buffer {target}"))),
            },
            OutputKind::UserInputMutation => {
                match user.iter().position(|&v| p.graph.name(v) == target) {
                    Some(i) => inputs[i].copy_(&t)?,
                    None => {
                        return Err(Error::other(format!(
                            "mutation of unknown user input {target}"
                        )))
                    }
                }
            }
            _ => {}
        }
    }
    Ok(result)
}
