//! The embedding API: load and compile an archive once, then call it from
//! any number of threads on `ndarray` values of their real dtypes.
//!
//! The crate documentation shows a complete call.
//!
//! [`CompiledModel`] is immutable and `Send + Sync`: code and weights are
//! shared. A [`Session`] holds one caller's arena and its own copy of the
//! buffers a call mutates, so state persists across that session's calls
//! exactly as in PyTorch and no two sessions see each other's state.
//! Inputs that do not match the signature are refused with an error that
//! names the input and the dim.

use std::path::Path;

use ndarray::ArrayD;

use crate::codegen::jit::{CompileOptions, CompiledModel, Session};
use crate::error::Result;
use crate::ir::{Dim, OutputKind, ValueType};
use crate::model::{LoadOptions, Model};
use crate::tensor::{Tensor, BF16, F16};
use crate::DType;

/// A tensor value of one of the dtypes torchlift computes in.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    F16(ArrayD<F16>),
    BF16(ArrayD<BF16>),
    I64(ArrayD<i64>),
    I32(ArrayD<i32>),
    I16(ArrayD<i16>),
    I8(ArrayD<i8>),
    U8(ArrayD<u8>),
    Bool(ArrayD<bool>),
}

macro_rules! value_kinds {
    ($($variant:ident $t:ty, $as:ident;)*) => {
        $(
            impl From<ArrayD<$t>> for Value {
                fn from(a: ArrayD<$t>) -> Value {
                    Value::$variant(a)
                }
            }
        )*

        impl Value {
            $(
                /// The array, when the value has this dtype.
                pub fn $as(&self) -> Option<&ArrayD<$t>> {
                    match self {
                        Value::$variant(a) => Some(a),
                        _ => None,
                    }
                }
            )*

            pub fn dtype(&self) -> DType {
                match self {
                    $(Value::$variant(_) => DType::$variant,)*
                }
            }

            pub fn shape(&self) -> &[usize] {
                match self {
                    $(Value::$variant(a) => a.shape(),)*
                }
            }

            fn to_tensor(&self) -> Tensor {
                match self {
                    $(Value::$variant(a) => Tensor::from_array(a.clone()),)*
                }
            }

            fn from_tensor(t: &Tensor) -> Result<Value> {
                Ok(match t.dtype() {
                    $(DType::$variant => Value::$variant(t.to_array::<$t>()?),)*
                })
            }
        }
    };
}

value_kinds! {
    F32 f32, as_f32;
    F64 f64, as_f64;
    F16 F16, as_f16;
    BF16 BF16, as_bf16;
    I64 i64, as_i64;
    I32 i32, as_i32;
    I16 i16, as_i16;
    I8 i8, as_i8;
    U8 u8, as_u8;
    Bool bool, as_bool;
}

/// One dimension of an input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DimSpec {
    Fixed(usize),
    /// A symbolic size: every input dim with the same symbol has the same
    /// size, within `min..=max` (`max == None`: unbounded).
    Symbol {
        name: String,
        min: i64,
        max: Option<i64>,
    },
    /// A size computed from the symbols (`2*s0`).
    Expr(String),
}

/// The name, dtype and dims of one user input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoSpec {
    pub name: String,
    pub dtype: DType,
    pub dims: Vec<DimSpec>,
}

impl CompiledModel {
    /// Loads an archive, runs the export passes and compiles it.
    pub fn load(path: impl AsRef<Path>, opts: &CompileOptions) -> Result<CompiledModel> {
        let model = Model::load_with(path.as_ref(), LoadOptions::default())?;
        CompiledModel::compile_with(&model, opts)
    }

    /// The user inputs, in call order.
    pub fn inputs(&self) -> Vec<IoSpec> {
        let p = self.program();
        p.user_inputs()
            .into_iter()
            .map(|v| io_spec(p, p.graph.name(v), p.graph.ty(v)))
            .collect()
    }

    /// The user outputs, in order. A symbolic scalar output is a 0-d value
    /// (i64, f64 or bool).
    pub fn outputs(&self) -> Vec<IoSpec> {
        let p = self.program();
        p.user_output_indices()
            .into_iter()
            .map(|i| match &p.graph.outputs[i] {
                crate::ir::Arg::Value(v) => io_spec(p, p.graph.name(*v), p.graph.ty(*v)),
                _ => io_spec(p, &format!("output {i}"), &ValueType::SymInt),
            })
            .collect()
    }

    /// Calls the model once in a fresh session on typed values.
    pub fn run_values(&self, inputs: &mut [Value]) -> Result<Vec<Value>> {
        self.session().run_values(inputs)
    }
}

impl Session {
    /// Calls the model on typed values (user inputs in signature order) and
    /// returns the user outputs. A mutated user input is written back into
    /// its value, as torch writes it into the caller's tensor.
    pub fn run_values(&mut self, inputs: &mut [Value]) -> Result<Vec<Value>> {
        let mut ts: Vec<Tensor> = inputs.iter().map(Value::to_tensor).collect();
        let outs = self.run(&mut ts)?;
        let p = self.program();
        let user = p.user_inputs();
        for o in &p.signature.outputs {
            if o.kind != OutputKind::UserInputMutation {
                continue;
            }
            let at = user
                .iter()
                .position(|&v| Some(p.graph.name(v)) == o.target.as_deref());
            if let (Some(i), true) = (at, at.is_some_and(|i| i < inputs.len())) {
                inputs[i] = Value::from_tensor(&ts[i])?;
            }
        }
        outs.iter().map(Value::from_tensor).collect()
    }
}

fn io_spec(p: &crate::ir::Program, name: &str, ty: &ValueType) -> IoSpec {
    let dim = |d: &Dim| match d.as_int() {
        Some(n) => DimSpec::Fixed(n.max(0) as usize),
        None => match d {
            crate::sym::SymExpr::Symbol(s) => {
                let r = p.range_constraints.get(s);
                DimSpec::Symbol {
                    name: s.clone(),
                    min: r.map_or(0, |r| r.min),
                    max: r.and_then(|r| r.max),
                }
            }
            e => DimSpec::Expr(e.to_string()),
        },
    };
    let (dtype, dims) = match ty {
        ValueType::Tensor(t) => (t.dtype, t.shape.iter().map(dim).collect()),
        ValueType::SymFloat => (DType::F64, Vec::new()),
        ValueType::SymBool => (DType::Bool, Vec::new()),
        _ => (DType::I64, Vec::new()),
    };
    IoSpec {
        name: name.to_string(),
        dtype,
        dims,
    }
}
