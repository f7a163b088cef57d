//! The JIT driver: compiles a [`Model`]'s program in memory with
//! `cranelift_jit` and calls it with the semantics of [`Model::run`].
//!
//! The runtime's entry points are registered from the same list
//! ([`RtFn::ALL`]) that the lowering declares them from.

use std::collections::BTreeMap;

use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::default_libcall_names;
use torchlift_runtime::abi::RtFn;

use crate::error::{Error, Result};
use crate::interp::tensor::Tensor;
use crate::ir::{Arg, InputKind, OutputKind, Program};
use crate::model::Model;
use crate::sym::SymExpr;

use super::lower::{lower_program_full, SizeCheck};
use super::FrameLayout;

/// The signature of the generated entry function.
type EntryFn = unsafe extern "C" fn(*const *mut u8, *const i64);

/// A model compiled to native code, with its own copy of the model's state.
pub struct JitModel {
    /// Owns the code `entry` points into; `None` only while dropping.
    module: Option<JITModule>,
    entry: EntryFn,
    program: Program,
    layout: FrameLayout,
    /// Parameters, buffers and constants by state-dict name; buffers change
    /// from call to call.
    pub state: BTreeMap<String, Tensor>,
    /// The buffer of each slot. State slots are filled when compiling and
    /// when a buffer is mutated; the generated code never writes them.
    bufs: Vec<Vec<f32>>,
    clif: String,
    /// Size equalities the code relies on, checked before each call.
    checks: Vec<SizeCheck>,
}

impl JitModel {
    /// Compiles the model's program. Anything outside the supported slice is
    /// refused here, with an error naming the node.
    pub fn compile(model: &Model) -> Result<JitModel> {
        let p = &model.program;
        let layout = FrameLayout::new(p)?;
        let mut builder = JITBuilder::new(default_libcall_names())
            .map_err(|e| Error::other(format!("jit: host ISA: {e}")))?;
        for f in RtFn::ALL {
            let s = f.symbol();
            builder.symbol(s.name, s.addr);
        }
        let mut module = JITModule::new(builder);
        let lowered = lower_program_full(&mut module, p)?;
        let id = lowered.id;
        module
            .finalize_definitions()
            .map_err(|e| Error::other(format!("jit: linking: {e}")))?;
        let code = module.get_finalized_function(id);
        // SAFETY: `id` was defined by `lower_program` with exactly the
        // signature `EntryFn` (two pointer parameters, no result, the default
        // call convention of the host), and the code stays alive as long as
        // `module`, which `JitModel` owns next to the pointer.
        let entry = unsafe { std::mem::transmute::<*const u8, EntryFn>(code) };
        let mut jm = JitModel {
            module: Some(module),
            entry,
            program: p.clone(),
            bufs: vec![Vec::new(); layout.slots.len()],
            layout,
            state: model.state.clone(),
            clif: lowered.clif,
            checks: lowered.checks,
        };
        for spec in &p.signature.inputs {
            match &spec.kind {
                InputKind::UserInput => {}
                _ if jm.layout.slot(spec.value).is_none() => {}
                InputKind::Parameter | InputKind::Buffer { .. } | InputKind::ConstantTensor => {
                    let target = spec.target.as_deref().unwrap_or("");
                    let t = jm.state.get(target).ok_or_else(|| {
                        Error::other(format!("the archive has no weight named {target}"))
                    })?;
                    let data = t.to_vec::<f32>()?;
                    let slot = jm.slot(spec.value)?;
                    jm.check_static_len(slot, &data, target)?;
                    jm.bufs[slot] = data;
                }
                other => {
                    return Err(Error::other(format!(
                        "jit backend does not support {} inputs yet",
                        other.name()
                    )))
                }
            }
        }
        Ok(jm)
    }

    /// The generated function as CLIF text, annotated with the aten nodes.
    pub fn clif(&self) -> &str {
        &self.clif
    }

    fn slot(&self, v: crate::ir::ValueId) -> Result<usize> {
        self.layout.slot(v).ok_or_else(|| {
            Error::other(format!("jit: %{} has no slot", self.program.graph.name(v)))
        })
    }

    /// Checks that a state tensor has the statically known size of its slot.
    fn check_static_len(&self, slot: usize, data: &[f32], name: &str) -> Result<()> {
        let shape = &self.layout.shapes[slot];
        let want: Option<i64> = shape
            .iter()
            .try_fold(1i64, |acc, d| acc.checked_mul(d.as_int()?));
        match want {
            Some(w) if usize::try_from(w).ok() == Some(data.len()) => Ok(()),
            _ => Err(Error::other(format!(
                "jit backend needs weight {name} to have a static shape matching the graph"
            ))),
        }
    }

    /// Calls the compiled model on user inputs (in signature order) and
    /// returns the user outputs, like [`Model::run`].
    pub fn run(&mut self, inputs: &mut [Tensor]) -> Result<Vec<Tensor>> {
        let p = &self.program;
        let g = &p.graph;
        let user = p.user_inputs();
        let env = crate::model::bind_user_inputs(p, inputs)?;
        let mut syms = Vec::with_capacity(self.layout.symbols.len());
        for s in &self.layout.symbols {
            let v = env.get(s).copied().ok_or_else(|| {
                Error::other(format!(
                    "jit backend needs every shape symbol bound by the inputs; {s} is not"
                ))
            })?;
            syms.push(v);
        }
        // Every dim is evaluated (and checked) here, so the generated code,
        // which recomputes them, cannot divide by zero or overflow.
        let mut sizes: Vec<Vec<usize>> = Vec::with_capacity(self.layout.slots.len());
        for (slot, shape) in self.layout.shapes.iter().enumerate() {
            let mut dims = Vec::with_capacity(shape.len());
            let mut numel: usize = 1;
            for d in shape {
                let v = d
                    .eval_map(&env)
                    .and_then(|v| usize::try_from(v).ok())
                    .ok_or_else(|| {
                        Error::other(format!(
                            "dim {d} of %{} does not evaluate to a size",
                            g.name(self.layout.slots[slot])
                        ))
                    })?;
                numel = numel
                    .checked_mul(v)
                    .filter(|&n| n <= isize::MAX as usize / 4)
                    .ok_or_else(|| Error::other("a tensor of the graph is too large"))?;
                dims.push(v);
            }
            sizes.push(dims);
            if self.bufs[slot].len() != numel {
                // State slots already have their (static) size.
                self.bufs[slot].resize(numel, 0.0);
            }
        }
        for c in &self.checks {
            let (l, r) = (c.lhs.eval_map(&env), c.rhs.eval_map(&env));
            if l.is_none() || l != r {
                return Err(Error::Node {
                    node: c.node.clone(),
                    loc: c.loc.clone(),
                    msg: format!(
                        "{}: {} = {:?} but {} = {:?} with these inputs",
                        c.what, c.lhs, l, c.rhs, r
                    ),
                });
            }
        }
        for (&v, t) in user.iter().zip(inputs.iter()) {
            if let Some(slot) = self.layout.slot(v) {
                self.bufs[slot] = t.to_vec::<f32>()?;
            }
        }
        let ptrs: Vec<*mut u8> = self
            .bufs
            .iter_mut()
            .map(|b| b.as_mut_ptr().cast::<u8>())
            .collect();
        // SAFETY: `entry` has the signature `EntryFn`. `ptrs` has one entry
        // per slot, each a distinct allocation holding exactly the number of
        // f32 elements that the slot's dims evaluate to with `syms` (checked
        // above), which is what the generated code indexes; `syms` has one
        // entry per symbol of the layout. The code writes only node-output
        // slots and calls runtime kernels whose contracts these sizes meet.
        unsafe { (self.entry)(ptrs.as_ptr(), syms.as_ptr()) };

        let mut values = Vec::with_capacity(g.outputs.len());
        for (i, arg) in g.outputs.iter().enumerate() {
            let Arg::Value(v) = arg else {
                return Err(Error::other(format!("graph output {i} is not a tensor")));
            };
            let slot = self.slot(*v)?;
            values.push(Tensor::from_vec_f32(self.bufs[slot].clone(), &sizes[slot])?);
        }
        let result = crate::model::apply_outputs(p, &self.state, inputs, values)?;
        // Mutated weights are read from their slots on the next call.
        for spec in &p.signature.inputs {
            let updated = p.signature.outputs.iter().any(|o| {
                matches!(
                    o.kind,
                    OutputKind::BufferMutation | OutputKind::ParameterMutation
                ) && o.target.is_some()
                    && o.target == spec.target
            });
            if let (true, Some(slot), Some(t)) = (
                updated,
                self.layout.slot(spec.value),
                spec.target.as_deref().and_then(|n| self.state.get(n)),
            ) {
                self.bufs[slot] = t.to_vec::<f32>()?;
            }
        }
        Ok(result)
    }
}

impl Drop for JitModel {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: the only pointer into the module's code is `entry`,
            // which is private to `self` and never called again.
            unsafe { module.free_memory() };
        }
    }
}

/// One shape expression compiled on its own, as the graph function computes
/// it: `fn(syms: *const i64) -> i64`. It lets tests check the dim lowering
/// against [`SymExpr::eval`].
pub struct JitDim {
    module: Option<JITModule>,
    entry: DimFn,
    expr: SymExpr,
    symbols: Vec<String>,
}

type DimFn = unsafe extern "C" fn(*const i64) -> i64;

impl JitDim {
    pub fn compile(expr: &SymExpr, symbols: &[String]) -> Result<JitDim> {
        let builder = JITBuilder::new(default_libcall_names())
            .map_err(|e| Error::other(format!("jit: host ISA: {e}")))?;
        let mut module = JITModule::new(builder);
        let id = super::lower::lower_dim_function(&mut module, expr, symbols)?;
        module
            .finalize_definitions()
            .map_err(|e| Error::other(format!("jit: linking: {e}")))?;
        let code = module.get_finalized_function(id);
        // SAFETY: `id` was defined by `lower_dim_function` with the signature
        // `DimFn` (one pointer parameter, one i64 result, the host's default
        // call convention); the code lives as long as `module`, owned by
        // the returned value.
        let entry = unsafe { std::mem::transmute::<*const u8, DimFn>(code) };
        Ok(JitDim {
            module: Some(module),
            entry,
            expr: expr.clone(),
            symbols: symbols.to_vec(),
        })
    }

    /// The compiled value with `values[j]` bound to `symbols[j]`, or `None`
    /// when [`SymExpr::eval`] fails (unbound symbol, division by zero,
    /// overflow): the compiled code is never called on such values.
    pub fn eval(&self, values: &[i64]) -> Option<i64> {
        if values.len() != self.symbols.len() {
            return None;
        }
        let env = |s: &str| {
            let j = self.symbols.iter().position(|x| x == s)?;
            values.get(j).copied()
        };
        self.expr.eval(&env)?;
        // SAFETY: `entry` has the signature `DimFn` and reads `syms[j]` for
        // the symbols' indices only, all `< values.len()`; the reference
        // evaluation above succeeded, so no divisor is zero.
        Some(unsafe { (self.entry)(values.as_ptr()) })
    }
}

impl Drop for JitDim {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: `entry`, the only pointer into the code, is private to
            // `self` and never called again.
            unsafe { module.free_memory() };
        }
    }
}
