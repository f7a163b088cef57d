//! A program: the graph plus its export signature and symbol ranges.

use std::collections::BTreeMap;

use crate::sym::SymRange;

use super::graph::{Arg, Graph, ValueId};

/// What a graph input is, as torch's `InputSpec` says.
#[derive(Clone, Debug, PartialEq)]
pub enum InputKind {
    UserInput,
    Parameter,
    Buffer {
        persistent: bool,
    },
    ConstantTensor,
    CustomObj,
    Token,
    /// A non-tensor user input fixed at export time.
    ConstantInput(Arg),
}

impl InputKind {
    pub fn name(&self) -> &'static str {
        match self {
            InputKind::UserInput => "user_input",
            InputKind::Parameter => "parameter",
            InputKind::Buffer { persistent: true } => "buffer",
            InputKind::Buffer { persistent: false } => "buffer_nonpersistent",
            InputKind::ConstantTensor => "constant_tensor",
            InputKind::CustomObj => "custom_obj",
            InputKind::Token => "token",
            InputKind::ConstantInput(_) => "constant_input",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    pub kind: InputKind,
    /// The graph input this spec describes.
    pub value: ValueId,
    /// The state-dict name of a parameter, buffer or constant.
    pub target: Option<String>,
}

/// What a graph output is, as torch's `OutputSpec` says.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OutputKind {
    UserOutput,
    LossOutput,
    BufferMutation,
    GradientToParameter,
    GradientToUserInput,
    UserInputMutation,
    ParameterMutation,
    Token,
}

impl OutputKind {
    pub const ALL: &'static [OutputKind] = &[
        OutputKind::UserOutput,
        OutputKind::LossOutput,
        OutputKind::BufferMutation,
        OutputKind::GradientToParameter,
        OutputKind::GradientToUserInput,
        OutputKind::UserInputMutation,
        OutputKind::ParameterMutation,
        OutputKind::Token,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OutputKind::UserOutput => "user_output",
            OutputKind::LossOutput => "loss_output",
            OutputKind::BufferMutation => "buffer_mutation",
            OutputKind::GradientToParameter => "gradient_to_parameter",
            OutputKind::GradientToUserInput => "gradient_to_user_input",
            OutputKind::UserInputMutation => "user_input_mutation",
            OutputKind::ParameterMutation => "parameter_mutation",
            OutputKind::Token => "token",
        }
    }

    pub fn from_name(s: &str) -> Option<OutputKind> {
        OutputKind::ALL.iter().copied().find(|k| k.name() == s)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutputSpec {
    pub kind: OutputKind,
    /// The buffer, parameter or user input name a mutation writes to.
    pub target: Option<String>,
}

/// The signature: one spec per graph input and per graph output, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Signature {
    pub inputs: Vec<InputSpec>,
    pub outputs: Vec<OutputSpec>,
}

/// A whole exported program, without its weights.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Program {
    pub graph: Graph,
    pub signature: Signature,
    /// Valid ranges of the shape symbols, by symbol name.
    pub range_constraints: BTreeMap<String, SymRange>,
}

impl Program {
    /// The user inputs' values, in call order.
    pub fn user_inputs(&self) -> Vec<ValueId> {
        self.signature
            .inputs
            .iter()
            .filter(|s| s.kind == InputKind::UserInput)
            .map(|s| s.value)
            .collect()
    }

    /// Indices into `graph.outputs` of the user outputs, in order.
    pub fn user_output_indices(&self) -> Vec<usize> {
        self.signature
            .outputs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind == OutputKind::UserOutput)
            .map(|(i, _)| i)
            .collect()
    }

    pub fn input_spec(&self, v: ValueId) -> Option<&InputSpec> {
        self.signature.inputs.iter().find(|s| s.value == v)
    }

    /// Pairs each graph output index with its spec.
    pub fn outputs(&self) -> impl Iterator<Item = (&Arg, &OutputSpec)> {
        self.graph.outputs.iter().zip(&self.signature.outputs)
    }
}
