//! The JIT driver: schedules a [`Model`]'s program, lowers the plan into a
//! `JITModule` (with `opt_level = speed` and the host's CPU features) and
//! calls it with the semantics of [`Model::run`].
//!
//! Per call, the driver binds the shape symbols from the inputs, evaluates
//! every size the code uses (so the generated code never divides by zero
//! or overflows), places the arena's slots, copies the user inputs into
//! their slots, and calls the entry function on the model's thread pool.
//! A steady-state call allocates only the outputs it returns.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::default_libcall_names;
use torchlift_runtime::abi::RtFn;
use torchlift_runtime::scalar::SCALAR_FNS;

use crate::error::{Error, Result};
use crate::interp::{self, RValue};
use crate::ir::{Arg, Graph, Node, OutputKind, Program, ValueId, ValueType};
use crate::model::Model;
use crate::sym::SymExpr;
use crate::tensor::Tensor;

use super::kernel::{BufKind, KernelKind, OutputRef, Plan, View};
use super::lower::{lower_plan, LowerOptions, FALLBACK_NAME};
use super::memory::ArenaPlan;
use super::schedule::{kernel_sizes, schedule};
use super::weights::{Aligned, Weights};

/// The signature of the generated entry function.
pub(crate) type EntryFn = unsafe extern "C" fn(*const u8) -> i32;

/// Options of a compilation.
#[derive(Clone, Debug, Default)]
pub struct CompileOptions {
    /// Threads of the model's pool (0: as many as rayon's global pool has,
    /// which is one per core unless the program set it).
    pub threads: usize,
}

/// One node run by its reference kernel: the node alone in a graph of its
/// own, whose inputs are the node's tensor and scalar arguments.
struct FallbackNode {
    graph: Graph,
    inputs: Vec<View>,
    syms: Vec<SymExpr>,
    outputs: Vec<View>,
    node: Node,
}

/// What the fallback host function sees during a call.
struct Host<'a> {
    plan: &'a Plan,
    fallbacks: &'a [Option<FallbackNode>],
    env: &'a HashMap<String, i64>,
    ptrs: &'a [*mut u8],
    lens: &'a [usize],
    error: Mutex<Option<Error>>,
}

/// The context the generated code reads: buffer table, symbols, host.
#[repr(C)]
struct Ctx {
    bufs: *const *mut u8,
    syms: *const i64,
    host: *const u8,
}

/// What compiling produced: code, plan and weights. Immutable once built,
/// shared by every session.
struct Compiled {
    /// Owns the code `entry` points into; `None` only while dropping.
    module: Option<JITModule>,
    entry: EntryFn,
    program: Program,
    plan: Plan,
    arena_plan: ArenaPlan,
    fallbacks: Vec<Option<FallbackNode>>,
    /// Every size expression the code computes, checked before each call.
    sizes: Vec<SymExpr>,
    pool: rayon::ThreadPool,
    clif: String,
    /// The weights the plan reads, shared by every session.
    weights: Weights,
    /// The state buffers calls update, as loaded: each session starts
    /// from copies of these.
    state: BTreeMap<String, Tensor>,
    /// The address of each state buffer no call changes, by plan buffer
    /// (inside `weights`).
    const_ptrs: HashMap<usize, *const u8>,
    /// The state buffers calls update (buffer and parameter mutations).
    mutated: Vec<usize>,
}

// SAFETY: after `finalize_definitions` the module's code and data are never
// written again; the only pointer into them is `entry`. Everything else is
// owned data, read-only after compiling: calls write only to the buffers of
// their own `Session` (the code writes no state buffer, which compiling
// checks), so any number of threads may call through one `Compiled`.
unsafe impl Send for Compiled {}
// SAFETY: as above; `&Compiled` gives no way to mutate it.
unsafe impl Sync for Compiled {}

impl Drop for Compiled {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: the only pointer into the module's code is `entry`;
            // every session holds an `Arc` to this value, so none is alive.
            unsafe { module.free_memory() };
        }
    }
}

/// A model compiled to native code. Cheap to clone, `Send + Sync`: code and
/// weights are shared, and any number of threads may call it at once, each
/// through its own [`Session`].
#[derive(Clone)]
pub struct CompiledModel {
    inner: std::sync::Arc<Compiled>,
}

/// One caller's view of a [`CompiledModel`]: the arena, the placement for
/// the last input shapes, and the model's buffers, which persist from call
/// to call exactly as in PyTorch (a buffer mutation in one call is seen by
/// the next call of the same session, and by no other session).
pub struct Session {
    model: std::sync::Arc<Compiled>,
    /// The state as this session's calls see it: buffers that calls update
    /// are this session's own copies; the rest are shared.
    state: BTreeMap<String, Tensor>,
    /// The bytes of each updated state buffer, by plan buffer.
    mut_bytes: HashMap<usize, Aligned>,
    arena: Aligned,
    scratch: Vec<u8>,
    /// The placement for the last call's input shapes.
    bound: Option<Bound>,
}

/// The size of a model's thread pool: `threads`, or with 0 as many as
/// rayon's global pool has.
fn pool_size(threads: usize) -> usize {
    if threads == 0 {
        rayon::current_num_threads()
    } else {
        threads
    }
}

/// What `assemble` builds a `Compiled` from.
struct Parts {
    module: Option<JITModule>,
    entry: EntryFn,
    program: Program,
    plan: Plan,
    clif: String,
    weights: Weights,
}

/// A compiled model and one session: the simplest way to call it from one
/// thread.
pub struct JitModel {
    model: CompiledModel,
    session: Session,
}

/// Everything a call derives from its inputs' shapes.
struct Bound {
    shapes: Vec<(crate::DType, Vec<usize>)>,
    env: HashMap<String, i64>,
    syms: Vec<i64>,
    /// Byte length and address of each buffer.
    lens: Vec<usize>,
    ptrs: Vec<*mut u8>,
    /// The arena offset of each arena buffer.
    arena_off: Vec<Option<usize>>,
}

// SAFETY: the raw pointers in a `Session` (in `Bound`) address the
// session's own arena and buffers, or the shared read-only weights of its
// `Compiled` (which is `Sync`); they are only used through `&mut self`.
unsafe impl Send for Session {}

fn rt_symbols(builder: &mut JITBuilder) {
    for f in RtFn::ALL {
        let s = f.symbol();
        builder.symbol(s.name, s.addr);
    }
    for f in SCALAR_FNS {
        builder.symbol(f.name, f.addr);
    }
    builder.symbol(
        "torchlift_f32_to_f16_bits",
        torchlift_runtime::scalar::torchlift_f32_to_f16_bits as extern "C" fn(f32) -> i32
            as *const u8,
    );
    builder.symbol(
        FALLBACK_NAME,
        torchlift_fallback as unsafe extern "C" fn(*const u8, i64) -> i32 as *const u8,
    );
}

impl JitModel {
    /// Compiles the model's program with the default options.
    pub fn compile(model: &Model) -> Result<JitModel> {
        JitModel::compile_with(model, &CompileOptions::default())
    }

    /// Compiles the model's program. Anything the compiler cannot handle is
    /// refused here, with an error naming the node.
    pub fn compile_with(model: &Model, opts: &CompileOptions) -> Result<JitModel> {
        let model = CompiledModel::compile_with(model, opts)?;
        let session = model.session();
        Ok(JitModel { model, session })
    }

    /// The generated functions as CLIF text, annotated with the aten nodes.
    pub fn clif(&self) -> &str {
        self.model.clif()
    }

    /// The kernel plan.
    pub fn plan(&self) -> &Plan {
        self.model.plan()
    }

    /// The buffers that calls update, as the calls so far left them.
    pub fn state(&self) -> &BTreeMap<String, Tensor> {
        self.session.state()
    }

    /// Calls the compiled model on user inputs (in signature order) and
    /// returns the user outputs, like [`Model::run`].
    pub fn run(&mut self, inputs: &mut [Tensor]) -> Result<Vec<Tensor>> {
        self.session.run(inputs)
    }

    /// The shared compiled model, for more sessions.
    pub fn compiled(&self) -> &CompiledModel {
        &self.model
    }
}

impl CompiledModel {
    /// Compiles the model's program with the default options.
    pub fn compile(model: &Model) -> Result<CompiledModel> {
        CompiledModel::compile_with(model, &CompileOptions::default())
    }

    /// Compiles the model's program. Anything the compiler cannot handle is
    /// refused here, with an error naming the node.
    pub fn compile_with(model: &Model, opts: &CompileOptions) -> Result<CompiledModel> {
        let p = &model.program;
        for (t, op) in crate::custom::used_by(p) {
            if op.map_or(true, |o| matches!(o.imp, crate::custom::Impl::Linked)) {
                return Err(Error::other(format!(
                    "the JIT needs a kernel for custom op {}: register one with torchlift::custom::register",
                    t.strip_prefix("torch.ops.").unwrap_or(&t)
                )));
            }
        }
        let plan = schedule(p)?;
        let mut builder =
            JITBuilder::with_flags(&[("opt_level", "speed")], default_libcall_names())
                .map_err(|e| Error::other(format!("jit: host ISA: {e}")))?;
        rt_symbols(&mut builder);
        let mut module = JITModule::new(builder);
        let threads = pool_size(opts.threads);
        let lowered = lower_plan(
            &mut module,
            &plan,
            LowerOptions {
                parallel: threads > 1,
            },
        )?;
        module
            .finalize_definitions()
            .map_err(|e| Error::other(format!("jit: linking: {e}")))?;
        let code = module.get_finalized_function(lowered.entry);
        // SAFETY: the entry was defined by `lower_plan` with exactly the
        // signature `EntryFn` (one pointer parameter, an i32 result, the
        // host's default call convention), and the code stays alive as long
        // as `module`, which `Compiled` owns next to the pointer.
        let entry = unsafe { std::mem::transmute::<*const u8, EntryFn>(code) };
        // Copies of its own: calls on the compiled model must not move the
        // state of the model it came from.
        let weights = Weights::from_state(&model.state, state_names(&plan))?;
        let parts = Parts {
            module: Some(module),
            entry,
            program: p.clone(),
            plan,
            clif: lowered.clif,
            weights,
        };
        CompiledModel::assemble(parts, threads)
    }

    /// A compiled model around code compiled ahead of time: `entry` is the
    /// entry function `lower_plan` made for `schedule(program)`.
    ///
    /// # Safety
    /// `entry` must be that function, linked with the runtime and the
    /// fallback host, and stay callable for as long as the result is alive.
    pub(crate) unsafe fn from_code(
        program: Program,
        plan: Plan,
        entry: EntryFn,
        weights: Weights,
        threads: usize,
    ) -> Result<CompiledModel> {
        let parts = Parts {
            module: None,
            entry,
            program,
            plan,
            clif: String::new(),
            weights,
        };
        CompiledModel::assemble(parts, threads)
    }

    fn assemble(parts: Parts, threads: usize) -> Result<CompiledModel> {
        let Parts {
            module,
            entry,
            program,
            plan,
            clif,
            weights,
        } = parts;
        let threads = pool_size(threads);
        let p = &program;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| Error::other(format!("creating the thread pool: {e}")))?;
        let arena_plan = ArenaPlan::new(&plan);
        let mut sizes: Vec<SymExpr> = plan.kernels.iter().flat_map(kernel_sizes).collect();
        for b in &plan.buffers {
            sizes.extend(b.shape.iter().cloned());
        }
        sizes.sort_by_key(|s| s.to_string());
        sizes.dedup();
        let fallbacks = plan
            .kernels
            .iter()
            .map(|k| fallback_node(p, k))
            .collect::<Result<Vec<_>>>()?;
        let updated: Vec<String> = p
            .signature
            .outputs
            .iter()
            .filter(|o| {
                matches!(
                    o.kind,
                    OutputKind::BufferMutation | OutputKind::ParameterMutation
                )
            })
            .filter_map(|o| o.target.clone())
            .collect();
        let mut c = Compiled {
            module,
            entry,
            program: program.clone(),
            plan,
            arena_plan,
            fallbacks,
            sizes,
            pool,
            clif,
            weights,
            state: BTreeMap::new(),
            const_ptrs: HashMap::new(),
            mutated: Vec::new(),
        };
        for k in &c.plan.kernels {
            for b in k.writes() {
                if let BufKind::State(name) = &c.plan.buffers[b.0 as usize].kind {
                    return Err(Error::other(format!(
                        "internal compiler error: a kernel writes the state buffer {name}"
                    )));
                }
            }
        }
        for (i, b) in c.plan.buffers.iter().enumerate() {
            if let BufKind::State(name) = &b.kind {
                let e = c.weights.get(name).ok_or_else(|| {
                    Error::other(format!("the archive has no weight named {name}"))
                })?;
                check_state(e.dtype, &e.sizes, b.dtype, &b.shape, name)?;
                if updated.contains(name) {
                    let sizes: Vec<i64> = e.sizes.iter().map(|&d| d as i64).collect();
                    let t = Tensor::from_dense_bytes(e.dtype, &sizes, e.bytes())?;
                    c.state.insert(name.clone(), t);
                    c.mutated.push(i);
                } else {
                    c.const_ptrs.insert(i, e.ptr());
                }
            }
        }
        Ok(CompiledModel {
            inner: std::sync::Arc::new(c),
        })
    }

    /// A new session: the model's state as loaded, and an empty arena.
    pub fn session(&self) -> Session {
        let c = &self.inner;
        let mut state: BTreeMap<String, Tensor> = c.state.clone();
        let mut mut_bytes = HashMap::new();
        for &i in &c.mutated {
            if let BufKind::State(name) = &c.plan.buffers[i].kind {
                if let Some(t) = c.state.get(name) {
                    let own = t.clone_data();
                    mut_bytes.insert(i, Aligned::from_bytes(&own.to_contiguous_bytes()));
                    state.insert(name.clone(), own);
                }
            }
        }
        Session {
            model: c.clone(),
            state,
            mut_bytes,
            arena: Aligned::default(),
            scratch: Vec::new(),
            bound: None,
        }
    }

    /// Reads every weight byte of an artifact and compares the checksum
    /// recorded when compiling (loading reads only the weights' index). A
    /// JIT-compiled model's weights are its own copies: nothing to check.
    pub fn verify_weights(&self) -> Result<()> {
        self.inner.weights.verify()
    }

    /// The generated functions as CLIF text, annotated with the aten nodes.
    pub fn clif(&self) -> &str {
        &self.inner.clif
    }

    /// The kernel plan.
    pub fn plan(&self) -> &Plan {
        &self.inner.plan
    }

    /// The program it was compiled from (after the passes).
    pub fn program(&self) -> &Program {
        &self.inner.program
    }

    /// Calls the model once in a fresh session: for models without buffer
    /// mutations, or when each call should see the state as loaded. A
    /// [`Session`] reuses its arena and keeps state across calls.
    pub fn run(&self, inputs: &mut [Tensor]) -> Result<Vec<Tensor>> {
        self.session().run(inputs)
    }
}

impl Session {
    /// The program of the compiled model.
    pub fn program(&self) -> &Program {
        &self.model.program
    }

    /// The buffers that calls update (buffer and parameter mutations), as
    /// this session's calls left them.
    pub fn state(&self) -> &BTreeMap<String, Tensor> {
        &self.state
    }

    /// Binds the symbols from the inputs' shapes and places every buffer;
    /// a call with the same input dtypes and shapes as the last one reuses
    /// the last placement (it was valid for exactly those shapes).
    fn prepare(&mut self, inputs: &[Tensor]) -> Result<()> {
        let same = self.bound.as_ref().is_some_and(|b| {
            b.shapes.len() == inputs.len()
                && b.shapes
                    .iter()
                    .zip(inputs)
                    .all(|((d, s), t)| *d == t.dtype() && s.as_slice() == t.sizes())
        });
        if same {
            return Ok(());
        }
        self.bound = None;
        let env = crate::model::bind_user_inputs(&self.model.program, inputs)?;
        let mut syms = Vec::with_capacity(self.model.plan.symbols.len());
        for s in &self.model.plan.symbols {
            let v = env.get(s).copied().ok_or_else(|| {
                Error::other(format!(
                    "the compiled model needs every shape symbol bound by the inputs; {s} is not"
                ))
            })?;
            syms.push(v);
        }
        for s in &self.model.sizes {
            if s.eval_map(&env).is_none() {
                return Err(Error::other(format!(
                    "the size {s} does not evaluate with these inputs"
                )));
            }
        }
        for c in &self.model.plan.checks {
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
        let (offsets, total) =
            self.model.arena_plan.offsets(&env).ok_or_else(|| {
                Error::other("the arena's size does not evaluate with these inputs")
            })?;
        if total > isize::MAX as usize / 2 {
            return Err(Error::other("the tensors of the graph are too large"));
        }
        self.arena.ensure(total.max(1));
        // Byte lengths of every buffer, then their addresses.
        let nb = self.model.plan.buffers.len();
        let mut lens = Vec::with_capacity(nb);
        for b in &self.model.plan.buffers {
            let n = b.numel().eval_map(&env).unwrap_or(0).max(0) as usize;
            lens.push(n * b.dtype.size_bytes());
        }
        let arena_base = self.arena.bytes_mut().as_mut_ptr();
        let mut ptrs: Vec<*mut u8> = Vec::with_capacity(nb);
        let mut arena_off = vec![None; nb];
        for (i, b) in self.model.plan.buffers.iter().enumerate() {
            let p = match (&b.kind, self.model.arena_plan.slot_of[i]) {
                (BufKind::State(_), _) => match self.mut_bytes.get_mut(&i) {
                    Some(a) => a.bytes_mut().as_mut_ptr(),
                    // Shared weights: the code only reads them (compiling
                    // checked that no kernel writes a state buffer).
                    None => self
                        .model
                        .const_ptrs
                        .get(&i)
                        .map(|p| p.cast_mut())
                        .ok_or_else(|| Error::other(format!("state buffer {} missing", b.name)))?,
                },
                (_, Some(s)) => {
                    arena_off[i] = Some(offsets[s]);
                    // SAFETY: the slot's offset lies inside the arena, which
                    // was grown to `total` bytes above.
                    unsafe { arena_base.add(offsets[s]) }
                }
                (_, None) => return Err(Error::other(format!("buffer {} has no slot", b.name))),
            };
            ptrs.push(p);
        }
        self.bound = Some(Bound {
            shapes: inputs
                .iter()
                .map(|t| (t.dtype(), t.sizes().to_vec()))
                .collect(),
            env,
            syms,
            lens,
            ptrs,
            arena_off,
        });
        Ok(())
    }

    /// Calls the compiled model on user inputs (in signature order) and
    /// returns the user outputs, like [`Model::run`].
    pub fn run(&mut self, inputs: &mut [Tensor]) -> Result<Vec<Tensor>> {
        self.prepare(inputs)?;
        let b = self
            .bound
            .take()
            .ok_or_else(|| Error::other("internal compiler error: no placement"))?;
        let r = self.call(inputs, &b);
        self.bound = Some(b);
        r
    }

    fn call(&mut self, inputs: &mut [Tensor], bound: &Bound) -> Result<Vec<Tensor>> {
        let (env, syms, lens, ptrs) = (&bound.env, &bound.syms, &bound.lens, &bound.ptrs);
        // User inputs into their slots.
        for (i, b) in self.model.plan.buffers.iter().enumerate() {
            if let BufKind::UserInput(k) = b.kind {
                let t = &inputs[k];
                self.scratch.clear();
                write_contiguous(t, &mut self.scratch);
                if self.scratch.len() != lens[i] {
                    return Err(Error::input(
                        b.name.clone(),
                        format!("has {} bytes, {} expected", self.scratch.len(), lens[i]),
                    ));
                }
                let off = bound.arena_off[i].unwrap_or(0);
                self.arena.bytes_mut()[off..off + lens[i]].copy_from_slice(&self.scratch);
            }
        }
        let host = Host {
            plan: &self.model.plan,
            fallbacks: &self.model.fallbacks,
            env,
            ptrs,
            lens,
            error: Mutex::new(None),
        };
        let ctx = Ctx {
            bufs: ptrs.as_ptr(),
            syms: syms.as_ptr(),
            host: (&host as *const Host).cast(),
        };
        let entry = self.model.entry;
        let ctx_addr = &ctx as *const Ctx as usize;
        // SAFETY: `entry` has the signature `EntryFn`. `ctx` holds one
        // pointer per plan buffer, each addressing at least the bytes the
        // buffer's dims give with these symbols (state buffers were checked
        // when compiling; arena slots are at least as large as every buffer
        // placed in them, and buffers sharing a slot are never live at
        // once); every size the code computes evaluated above, and `syms`
        // has one value per plan symbol. `host` outlives the call.
        let status = self
            .model
            .pool
            .install(|| unsafe { entry(ctx_addr as *const u8) });
        if status != 0 {
            let k = (status - 1) as usize;
            let kernel = self.model.plan.kernels.get(k);
            let detail = host.error.lock().ok().and_then(|mut e| e.take());
            if let Some(e @ Error::Node { .. }) = detail {
                return Err(e);
            }
            let detail = detail.map(|e| e.to_string());
            let msg = match (kernel, detail) {
                (_, Some(d)) => d,
                (Some(k), None) => k.failure().to_string(),
                (None, None) => format!("the compiled code failed with status {status}"),
            };
            let origin = kernel.and_then(|k| k.origins.last());
            return Err(match origin {
                Some(o) => Error::Node {
                    node: o.node.clone(),
                    loc: o.loc.clone(),
                    msg,
                },
                None => Error::other(msg),
            });
        }
        let mut values = Vec::with_capacity(self.model.plan.outputs.len());
        for (i, o) in self.model.plan.outputs.iter().enumerate() {
            values.push(match o {
                OutputRef::Tensor(v) => read_view(v, &self.model.plan, env, ptrs, lens)?,
                OutputRef::Int(e) => {
                    let x = e.eval_map(env).ok_or_else(|| {
                        Error::other(format!("graph output {i} does not evaluate"))
                    })?;
                    Tensor::scalar(crate::tensor::Scalar::Int(x), crate::DType::I64)
                }
                OutputRef::Other => {
                    return Err(Error::other(format!("graph output {i} is not a tensor")))
                }
            });
        }
        let result = crate::model::apply_outputs(&self.model.program, &self.state, inputs, values)?;
        // Mutated state is read from its buffer on the next call.
        let plan = &self.model.plan;
        for &i in &self.model.mutated {
            let BufKind::State(name) = &plan.buffers[i].kind else {
                continue;
            };
            if let (Some(t), Some(a)) = (self.state.get(name), self.mut_bytes.get_mut(&i)) {
                self.scratch.clear();
                write_contiguous(t, &mut self.scratch);
                let n = self.scratch.len().min(a.bytes().len());
                a.bytes_mut()[..n].copy_from_slice(&self.scratch[..n]);
            }
        }
        Ok(result)
    }
}

/// The names of the state buffers `plan` reads, in buffer order.
pub(crate) fn state_names(plan: &Plan) -> Vec<&str> {
    plan.buffers
        .iter()
        .filter_map(|b| match &b.kind {
            BufKind::State(name) => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

fn check_state(
    have: crate::DType,
    sizes: &[usize],
    dtype: crate::DType,
    shape: &[SymExpr],
    name: &str,
) -> Result<()> {
    let want: Option<Vec<usize>> = shape
        .iter()
        .map(|d| d.as_int().and_then(|v| usize::try_from(v).ok()))
        .collect();
    if have != dtype || want.as_deref() != Some(sizes) {
        return Err(Error::other(format!(
            "weight {name} is {have}{sizes:?} but the graph reads it as {dtype} with a static shape {:?}",
            shape.iter().map(|d| d.to_string()).collect::<Vec<_>>()
        )));
    }
    Ok(())
}

/// Appends the elements of `t` in C order as little-endian bytes.
fn write_contiguous(t: &Tensor, out: &mut Vec<u8>) {
    use crate::tensor::Element;
    fn go<T: Element>(t: &Tensor, out: &mut Vec<u8>) {
        let n = t.numel();
        let off = t.storage_offset();
        if t.is_contiguous() {
            let _ = t.with_data::<T, _>(|d| {
                for &x in &d[off..off + n] {
                    x.write_le(out);
                }
            });
        } else {
            for x in t.to_vec_as::<T>() {
                x.write_le(out);
            }
        }
    }
    use crate::tensor::{BF16, F16};
    use crate::DType as D;
    match t.dtype() {
        D::F32 => go::<f32>(t, out),
        D::F64 => go::<f64>(t, out),
        D::I64 => go::<i64>(t, out),
        D::I32 => go::<i32>(t, out),
        D::I16 => go::<i16>(t, out),
        D::I8 => go::<i8>(t, out),
        D::U8 => go::<u8>(t, out),
        D::Bool => go::<bool>(t, out),
        D::F16 => go::<F16>(t, out),
        D::BF16 => go::<BF16>(t, out),
    }
}

/// The evaluated `(sizes, strides, offset)` of a view.
fn eval_view(v: &View, env: &HashMap<String, i64>) -> Result<(Vec<i64>, Vec<i64>, i64)> {
    let ev = |e: &SymExpr| {
        e.eval_map(env)
            .ok_or_else(|| Error::other(format!("the size {e} does not evaluate")))
    };
    let sizes = v.shape.iter().map(ev).collect::<Result<Vec<_>>>()?;
    let strides = v.strides.iter().map(ev).collect::<Result<Vec<_>>>()?;
    Ok((sizes, strides, ev(&v.offset)?))
}

/// A view of a buffer as a fresh tensor.
fn read_view(
    v: &View,
    plan: &Plan,
    env: &HashMap<String, i64>,
    ptrs: &[*mut u8],
    lens: &[usize],
) -> Result<Tensor> {
    let (sizes, strides, offset) = eval_view(v, env)?;
    let es = v.dtype.size_bytes() as i64;
    let numel: i64 = sizes.iter().product();
    let span = if numel == 0 {
        0
    } else {
        offset
            + sizes
                .iter()
                .zip(&strides)
                .map(|(&n, &s)| (n - 1) * s)
                .sum::<i64>()
            + 1
    };
    let b = v.buf.index();
    let need = (span.max(0) * es) as usize;
    if need > lens[b] || offset < 0 || strides.iter().any(|&s| s < 0) {
        return Err(Error::other(format!(
            "internal compiler error: a view of {} reaches past its buffer",
            plan.buffer(v.buf).name
        )));
    }
    let bytes: &[u8] = if need == 0 {
        &[]
    } else {
        // SAFETY: `ptrs[b]` addresses `lens[b]` initialized bytes (an arena
        // slot or a state buffer) that nothing writes while this runs;
        // `need <= lens[b]`.
        unsafe { std::slice::from_raw_parts(ptrs[b], need) }
    };
    let t = Tensor::from_raw_bytes(v.dtype, &sizes, &strides, offset, bytes)?;
    // A dense view from offset 0 owns exactly its elements already.
    if offset == 0 && span == numel && t.is_contiguous() {
        Ok(t)
    } else {
        Ok(t.clone_data())
    }
}

fn fallback_node(p: &Program, k: &super::kernel::Kernel) -> Result<Option<FallbackNode>> {
    let KernelKind::Fallback {
        node,
        values,
        inputs,
        syms,
        outputs,
    } = &k.kind
    else {
        return Ok(None);
    };
    let g = &p.graph;
    let n = &g.nodes[*node];
    let mut sub = Graph::new();
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    for &v in values {
        let nv = sub.add_value(g.name(v), g.ty(v).clone());
        sub.inputs.push(nv);
        map.insert(v, nv);
    }
    for (v, _) in syms {
        let nv = sub.add_value(g.name(*v), ValueType::SymInt);
        sub.inputs.push(nv);
        map.insert(*v, nv);
    }
    let mut nn = n.clone();
    for a in &mut nn.args {
        remap(&mut a.value, &map);
    }
    let mut outs = Vec::new();
    for &v in &n.outputs {
        let nv = sub.add_value(g.name(v), g.ty(v).clone());
        map.insert(v, nv);
        outs.push(nv);
    }
    nn.outputs = outs.clone();
    sub.nodes.push(nn);
    sub.outputs = outs.into_iter().map(Arg::Value).collect();
    Ok(Some(FallbackNode {
        graph: sub,
        inputs: inputs.clone(),
        syms: syms.iter().map(|(_, e)| e.clone()).collect(),
        outputs: outputs.clone(),
        node: n.clone(),
    }))
}

fn remap(a: &mut Arg, map: &HashMap<ValueId, ValueId>) {
    match a {
        Arg::Value(v) => {
            if let Some(n) = map.get(v) {
                *v = *n;
            }
        }
        Arg::List(items) => items.iter_mut().for_each(|x| remap(x, map)),
        _ => {}
    }
}

/// The host function fallback kernels call.
///
/// # Safety
/// `ctx` is the context `JitModel::run` passed to the entry function, and
/// `kernel` is the index of a fallback kernel of its plan.
// The name generated code imports (`FALLBACK_NAME`); exported so that
// ahead-of-time objects link against it.
#[no_mangle]
pub unsafe extern "C" fn torchlift_fallback(ctx: *const u8, kernel: i64) -> i32 {
    let ctx = ctx.cast::<Ctx>();
    // SAFETY: guaranteed by the caller: `ctx` is live for the whole call and
    // its `host` is the `Host` built by `run`.
    let host = unsafe { &*((*ctx).host as *const Host) };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_fallback(host, kernel as usize)
    }));
    let err = match r {
        Ok(Ok(())) => return 0,
        Ok(Err(e)) => e,
        Err(_) => Error::other("the reference kernel panicked"),
    };
    if let Ok(mut slot) = host.error.lock() {
        *slot = Some(err);
    }
    1
}

fn run_fallback(host: &Host, k: usize) -> Result<()> {
    let f = host
        .fallbacks
        .get(k)
        .and_then(|f| f.as_ref())
        .ok_or_else(|| Error::other("internal compiler error: not a fallback kernel"))?;
    let mut args = Vec::new();
    for v in &f.inputs {
        let t = read_view(v, host.plan, host.env, host.ptrs, host.lens)?;
        args.push(RValue::Tensor(t));
    }
    for e in &f.syms {
        let x = e
            .eval_map(host.env)
            .ok_or_else(|| f.node.error(format!("the size {e} does not evaluate")))?;
        args.push(RValue::Int(x));
    }
    let outs = interp::run_graph(&f.graph, args, host.env)?;
    for (o, v) in outs.into_iter().zip(&f.outputs) {
        let t = o.into_tensor().map_err(|e| f.node.error(e.to_string()))?;
        let (sizes, _, _) = eval_view(v, host.env)?;
        let got: Vec<i64> = t.sizes().iter().map(|&s| s as i64).collect();
        if got != sizes || t.dtype() != v.dtype {
            return Err(f.node.error(format!(
                "the reference kernel returned {}{:?}, the graph says {}{:?}",
                t.dtype(),
                got,
                v.dtype,
                sizes
            )));
        }
        let bytes = t.to_contiguous_bytes();
        let b = v.buf.index();
        if bytes.len() > host.lens[b] {
            return Err(f
                .node
                .error("the reference kernel's result overflows its buffer"));
        }
        // SAFETY: `ptrs[b]` addresses `lens[b]` writable bytes of this
        // kernel's output buffer, which no other kernel touches while the
        // fallback (which runs alone) writes it.
        let dst = unsafe { std::slice::from_raw_parts_mut(host.ptrs[b], bytes.len()) };
        dst.copy_from_slice(&bytes);
    }
    Ok(())
}

/// One shape expression compiled on its own, as the kernels compute it:
/// `fn(syms: *const i64) -> i64`. It lets tests check the dim lowering
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
