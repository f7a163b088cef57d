//! The export passes: from the saved training IR to a functional core-ATen
//! graph that a code generator can trust.
//!
//! A [`Pass`] is a named unit that rewrites a [`Program`] in place. Passes
//! are grouped in named [`Pipeline`]s. When verification is on (tests and
//! debug builds) the verifier runs after every pass, so a pass that breaks
//! an invariant is named at once.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::ir::{verify, Program};
use crate::tensor::Tensor;

pub mod cleanup;
pub mod decompose;
pub mod fold_bn;
pub mod functionalize;
pub mod hops;
pub mod rewrite;
pub mod shape_prop;

/// What passes may read and write besides the program: the weights, by
/// state-dict name (parameters, buffers and constants).
#[derive(Default)]
pub struct PassContext<'a> {
    pub weights: Option<&'a mut BTreeMap<String, Tensor>>,
}

pub trait Pass {
    /// The name used by `--after` and in filetests.
    fn name(&self) -> &'static str;
    /// Rewrites the program. Returns whether anything changed.
    fn run(&self, p: &mut Program, cx: &mut PassContext<'_>) -> Result<bool>;
}

/// A named, ordered list of passes.
pub struct Pipeline {
    pub name: &'static str,
    pub passes: Vec<Box<dyn Pass>>,
}

impl Pipeline {
    /// Runs every pass in order, verifying after each when `verify` is set.
    /// `after` is called with each pass name and the program it produced.
    pub fn run(
        &self,
        p: &mut Program,
        cx: &mut PassContext<'_>,
        verify_each: bool,
        mut after: impl FnMut(&str, &Program),
    ) -> Result<()> {
        for pass in &self.passes {
            pass.run(p, cx)?;
            if verify_each {
                verify::verify_program(p)
                    .map_err(|e| Error::Verify(format!("after pass {}: {}", pass.name(), e)))?;
            }
            after(pass.name(), p);
        }
        Ok(())
    }
}

/// Whether the export pipeline leaves no node of op `a` in any graph: the
/// in-place ops (functionalized), the ops decomposition always rewrites,
/// and the run-time assertions cleanup drops.
pub fn export_removes(a: crate::ir::Aten) -> bool {
    a.functional_form().is_some()
        || decompose::DECOMPOSED_AWAY.contains(&a)
        || cleanup::DROPPED.contains(&a)
}

/// Whether pipelines verify after each pass by default: in debug builds.
pub const VERIFY_BY_DEFAULT: bool = cfg!(debug_assertions);

/// Every pass, by name.
pub fn all_passes() -> Vec<Box<dyn Pass>> {
    vec![
        Box::new(hops::InlineHops),
        Box::new(hops::RemoveAutoFunctionalized),
        Box::new(functionalize::Functionalize),
        Box::new(decompose::Decompose),
        Box::new(shape_prop::ShapeProp),
        Box::new(cleanup::RemoveNoops),
        Box::new(cleanup::CommonSubexpressionElimination),
        Box::new(cleanup::FoldConstants),
        Box::new(fold_bn::FoldBatchNorm),
        Box::new(cleanup::DeadCodeElimination),
    ]
}

pub fn pass_by_name(name: &str) -> Option<Box<dyn Pass>> {
    all_passes().into_iter().find(|p| p.name() == name)
}

/// The export pipeline: training IR in, functional core-ATen IR out.
pub fn export_pipeline() -> Pipeline {
    Pipeline {
        name: "export",
        passes: all_passes(),
    }
}
