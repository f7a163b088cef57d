//! Native code generation with Cranelift.
//!
//! One lowering, two drivers: [`lower::lower_program`] turns a functional
//! core-ATen [`Program`] into one Cranelift function over any
//! `&mut dyn Module`; [`jit`] drives it with a `JITModule` (object files will
//! drive the same lowering with an `ObjectModule`).
//!
//! The generated function is
//! `extern "C" fn(bufs: *const *mut u8, syms: *const i64)`:
//! `bufs[i]` is the dense, row-major buffer of value slot `i` (see
//! [`FrameLayout`]) and `syms[j]` the run-time value of shape symbol `j`.
//! Sizes and loop bounds are computed in the generated code from the
//! symbolic dims, so one compiled function serves every allowed input shape.
//! The caller allocates the buffers from the same dims evaluated with the
//! bound symbols.
//!
//! Anything outside the supported slice (another dtype, another op) is
//! refused when compiling, with an error naming the node.

pub mod jit;
pub mod lower;

use std::collections::{BTreeSet, HashMap};

use crate::error::{Error, Result};
use crate::ir::{Arg, Program, ValueId, ValueType};
use crate::sym::SymExpr;
use crate::DType;

pub use lower::lower_program;

/// The name of the generated entry function in its module.
pub const ENTRY_NAME: &str = "torchlift_graph";

/// Where each value lives at run time: one slot (buffer) per graph input and
/// per node output, and one index per shape symbol.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameLayout {
    /// The value held by each slot, in slot order: graph inputs first (those
    /// something reads), then node outputs something reads, in graph order.
    pub slots: Vec<ValueId>,
    /// The shape of each slot's value.
    pub shapes: Vec<Vec<SymExpr>>,
    /// Shape symbols, sorted by name; `syms[j]` is the value of `symbols[j]`.
    pub symbols: Vec<String>,
    slot_of: HashMap<ValueId, usize>,
}

impl FrameLayout {
    /// Assigns slots, checking that every value is an `f32` tensor of known
    /// shape. Errors name the node (or graph input) at fault.
    pub fn new(p: &Program) -> Result<FrameLayout> {
        let g = &p.graph;
        let mut layout = FrameLayout {
            slots: Vec::new(),
            shapes: Vec::new(),
            symbols: Vec::new(),
            slot_of: HashMap::new(),
        };
        let mut symbols = BTreeSet::new();
        let mut add = |layout: &mut FrameLayout, v: ValueId| -> std::result::Result<(), String> {
            let tt = match g.ty(v) {
                ValueType::Tensor(t) => t,
                ValueType::UnknownTensor => return Err("has no known dtype and shape".into()),
                other => {
                    return Err(format!(
                        "is a {}; the jit backend supports only tensors yet",
                        crate::ir::print::type_text(other)
                    ))
                }
            };
            if tt.dtype != DType::F32 {
                return Err(format!(
                    "has dtype {}; the jit backend supports only f32 yet",
                    tt.dtype
                ));
            }
            for d in &tt.shape {
                symbols.extend(d.free_symbols());
            }
            layout.slot_of.insert(v, layout.slots.len());
            layout.slots.push(v);
            layout.shapes.push(tt.shape.clone());
            Ok(())
        };
        // Inputs nothing reads (a batch norm's step counter in eval mode)
        // get no slot, whatever their type.
        let uses = g.use_counts();
        for &v in g.inputs.iter().filter(|v| uses[v.index()] > 0) {
            add(&mut layout, v).map_err(|m| Error::input(g.name(v), m))?;
        }
        // Likewise node outputs nothing reads (a max pool's indices, a batch
        // norm's saved statistics): no slot, whatever their type.
        for n in &g.nodes {
            for &v in n.outputs.iter().filter(|v| uses[v.index()] > 0) {
                add(&mut layout, v).map_err(|m| n.error(format!("output %{} {m}", g.name(v))))?;
            }
        }
        for (i, o) in g.outputs.iter().enumerate() {
            if !matches!(o, Arg::Value(_)) {
                return Err(Error::other(format!(
                    "graph output {i} is not a tensor value; the jit backend supports only tensor outputs yet"
                )));
            }
        }
        layout.symbols = symbols.into_iter().collect();
        Ok(layout)
    }

    /// The slot of a value, if it has one.
    pub fn slot(&self, v: ValueId) -> Option<usize> {
        self.slot_of.get(&v).copied()
    }

    /// The index of a shape symbol in `syms`.
    pub fn symbol_index(&self, name: &str) -> Option<usize> {
        self.symbols.binary_search_by(|s| s.as_str().cmp(name)).ok()
    }
}
