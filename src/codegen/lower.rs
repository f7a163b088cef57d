//! Lowering of a kernel [`Plan`] to Cranelift functions, over any
//! `&mut dyn Module`.
//!
//! Each pointwise or reduction kernel becomes one function
//! `fn(ctx, start, end) -> status` over a range of its outer index space;
//! the entry function `fn(ctx) -> status` runs the kernels in order (through
//! the runtime's `parallel_for` when a kernel is large enough), calls the
//! runtime for extern kernels and the host for fallback kernels, and stops
//! at the first failure, returning `1 + the failing kernel's index`.
//!
//! `ctx` points to three pointers: the table of buffer base addresses (one
//! per plan buffer), the shape symbols' values (`i64`, in
//! [`Plan::symbols`] order), and the host's fallback state.
//!
//! A pointwise kernel's innermost loop runs in `f32x4` (four elements per
//! iteration, then a scalar tail) when its expression is `f32` arithmetic
//! the vector unit has: contiguous loads become vector loads, loads that do
//! not move along the innermost dim are splatted, and any other load is
//! gathered lane by lane. Other kernels run scalar loops.

use std::collections::HashMap;

use cranelift_codegen::ir::{
    condcodes::{FloatCC, IntCC},
    types, AbiParam, Block, FuncRef, Function, InstBuilder, MemFlagsData, Signature, Type,
    UserFuncName, Value,
};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Linkage, Module};
use torchlift_runtime::abi::{AbiType, RtFn};
use torchlift_runtime::scalar::SCALAR_FNS;

use crate::error::{Error, Result};
use crate::sym::SymExpr;
use crate::DType;

use super::kernel::{
    Act, BinOp, BufId, CmpOp, Expr, Extern, Kernel, KernelKind, Plan, RedOp, UnOp, View, E,
};
use super::schedule::kernel_sizes;

/// The name of the generated entry function in its module.
pub const ENTRY_NAME: &str = "torchlift_graph";
/// The host function fallback kernels call: `fn(ctx, kernel) -> status`.
pub const FALLBACK_NAME: &str = "torchlift_fallback";
/// The innermost dim is split into chunks of this many elements, so that
/// even a 1-d kernel has a range to split across threads.
pub const CHUNK: i64 = 1024;
/// A kernel with fewer elements than this runs on the calling thread.
pub const PARALLEL_MIN_ELEMS: i64 = 32 * 1024;

fn flags() -> MemFlagsData {
    MemFlagsData::trusted()
}

fn vflags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// The result of lowering a plan.
pub struct Lowered {
    pub entry: FuncId,
    /// Every function as CLIF text, each headed by the aten nodes it came
    /// from.
    pub clif: String,
}

/// How the lowering may use the runtime.
#[derive(Copy, Clone, Debug)]
pub struct LowerOptions {
    /// Split large kernels across the calling thread pool.
    pub parallel: bool,
}

fn internal(msg: impl std::fmt::Display) -> Error {
    Error::other(format!("internal compiler error: {msg}"))
}

/// The register type holding a value of `d` (half types compute in f32;
/// bool is a byte 0 or 1).
pub fn reg_type(d: DType) -> Type {
    match d {
        DType::F32 | DType::F16 | DType::BF16 => types::F32,
        DType::F64 => types::F64,
        DType::I64 => types::I64,
        DType::I32 => types::I32,
        DType::I16 => types::I16,
        DType::I8 | DType::U8 | DType::Bool => types::I8,
    }
}

fn unsigned(d: DType) -> bool {
    matches!(d, DType::U8 | DType::Bool)
}

/// Functions declared in the module, shared by every function lowered.
#[derive(Default)]
struct Decls {
    ids: HashMap<String, FuncId>,
}

impl Decls {
    fn declare(
        &mut self,
        module: &mut dyn Module,
        name: &str,
        params: &[Type],
        ret: Option<Type>,
    ) -> Result<FuncId> {
        if let Some(&id) = self.ids.get(name) {
            return Ok(id);
        }
        let mut sig = module.make_signature();
        sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
        sig.returns.extend(ret.map(AbiParam::new));
        let id = module
            .declare_function(name, Linkage::Import, &sig)
            .map_err(|e| internal(format!("declaring {name}: {e}")))?;
        self.ids.insert(name.to_string(), id);
        Ok(id)
    }
}

/// Lowers `plan` into `module`; returns the entry function.
pub fn lower_plan(module: &mut dyn Module, plan: &Plan, opts: LowerOptions) -> Result<Lowered> {
    let ptr = module.target_config().pointer_type();
    if ptr != types::I64 {
        return Err(Error::other("the compiler supports 64-bit targets only"));
    }
    let mut decls = Decls::default();
    let mut clif = String::new();
    let mut kernel_ids = Vec::with_capacity(plan.kernels.len());
    let mut fcx = FunctionBuilderContext::new();
    let tc = module.target_config();
    for (i, k) in plan.kernels.iter().enumerate() {
        let from: Vec<String> = k
            .origins
            .iter()
            .map(|o| match &o.loc.0 {
                Some(l) => format!("{} = {} ({l})", o.node, o.op),
                None => format!("{} = {}", o.node, o.op),
            })
            .collect();
        let id = match &k.kind {
            KernelKind::Pointwise { .. } | KernelKind::Reduction { .. } => {
                let mut sig = module.make_signature();
                sig.params.push(AbiParam::new(ptr));
                sig.params.push(AbiParam::new(types::I64));
                sig.params.push(AbiParam::new(types::I64));
                sig.returns.push(AbiParam::new(types::I32));
                let name = format!("torchlift_kernel_{i}");
                let id = module
                    .declare_function(&name, Linkage::Local, &sig)
                    .map_err(|e| internal(format!("declaring {name}: {e}")))?;
                let mut ctx: Context = module.make_context();
                ctx.func.signature = sig;
                ctx.func.name = UserFuncName::user(0, id.as_u32());
                {
                    let b = FunctionBuilder::new(&mut ctx.func, &mut fcx);
                    let mut fx = Fx::new(b, module, &mut decls, plan);
                    fx.kernel_fn(k)?;
                    fx.b.finalize(tc);
                }
                let _ = writeln_clif(&mut clif, &format!("kernel {i}"), &from, &ctx.func);
                define(module, id, &mut ctx, &format!("kernel {i}"))?;
                Some(id)
            }
            _ => None,
        };
        kernel_ids.push(id);
    }
    // The entry function.
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(ptr));
    sig.returns.push(AbiParam::new(types::I32));
    let entry = module
        .declare_function(ENTRY_NAME, Linkage::Export, &sig)
        .map_err(|e| internal(format!("declaring {ENTRY_NAME}: {e}")))?;
    let mut ctx: Context = module.make_context();
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, entry.as_u32());
    {
        let b = FunctionBuilder::new(&mut ctx.func, &mut fcx);
        let mut fx = Fx::new(b, module, &mut decls, plan);
        fx.entry_fn(&kernel_ids, opts)?;
        fx.b.finalize(tc);
    }
    let _ = writeln_clif(&mut clif, "entry", &[], &ctx.func);
    define(module, entry, &mut ctx, "the entry function")?;
    Ok(Lowered { entry, clif })
}

fn writeln_clif(out: &mut String, what: &str, from: &[String], f: &Function) -> std::fmt::Result {
    use std::fmt::Write;
    writeln!(out, "; {what}")?;
    for l in from {
        writeln!(out, ";   {l}")?;
    }
    writeln!(out, "{}", f.display())
}

fn define(module: &mut dyn Module, id: FuncId, ctx: &mut Context, what: &str) -> Result<()> {
    module.define_function(id, ctx).map_err(|e| {
        let detail = match &e {
            cranelift_module::ModuleError::Compilation(
                cranelift_codegen::CodegenError::Verifier(errs),
            ) => format!("the verifier rejected {what}: {errs}"),
            other => format!("compiling {what}: {other:?}"),
        };
        internal(detail)
    })
}

/// The body of a loop: `(fx, i, carried) -> next carried values`.
type LoopBody<'f, T> = dyn FnMut(&mut T, Value, &[Value]) -> Result<Vec<Value>> + 'f;

/// A value in a vector loop body: the same for every lane, or one per lane.
#[derive(Copy, Clone)]
enum Vv {
    S(Value),
    V(Value),
}

struct Fx<'a, 'b> {
    b: FunctionBuilder<'b>,
    module: &'a mut dyn Module,
    decls: &'a mut Decls,
    plan: &'a Plan,
    ctx: Value,
    syms: Value,
    bufs: Value,
    dims: HashMap<SymExpr, Value>,
    bases: HashMap<BufId, Value>,
    funcs: HashMap<FuncId, FuncRef>,
    /// The block returning status 1 (a kernel's failure).
    fail: Option<Block>,
}

impl<'a, 'b> Fx<'a, 'b> {
    fn new(
        b: FunctionBuilder<'b>,
        module: &'a mut dyn Module,
        decls: &'a mut Decls,
        plan: &'a Plan,
    ) -> Self {
        let dummy = Value::from_u32(0);
        Fx {
            b,
            module,
            decls,
            plan,
            ctx: dummy,
            syms: dummy,
            bufs: dummy,
            dims: HashMap::new(),
            bases: HashMap::new(),
            funcs: HashMap::new(),
            fail: None,
        }
    }

    fn iconst(&mut self, v: i64) -> Value {
        self.b.ins().iconst(types::I64, v)
    }

    /// Loads the context pointers and computes `sizes` in the current
    /// (entry) block.
    fn prologue(&mut self, ctx: Value, sizes: &[SymExpr], bufs: &[BufId]) -> Result<()> {
        self.ctx = ctx;
        self.bufs = self.b.ins().load(types::I64, flags(), ctx, 0);
        self.syms = self.b.ins().load(types::I64, flags(), ctx, 8);
        for s in sizes {
            lower_dim(
                &mut self.b,
                &mut self.dims,
                &self.plan.symbols,
                self.syms,
                s,
            )?;
        }
        for &buf in bufs {
            if self.bases.contains_key(&buf) {
                continue;
            }
            let off = i32::try_from(buf.index() * 8).map_err(|_| internal("too many buffers"))?;
            let p = self.b.ins().load(types::I64, flags(), self.bufs, off);
            self.bases.insert(buf, p);
        }
        Ok(())
    }

    fn dim(&mut self, e: &SymExpr) -> Result<Value> {
        if let Some(c) = e.as_int() {
            return Ok(self.iconst(c));
        }
        self.dims
            .get(e)
            .copied()
            .ok_or_else(|| internal(format!("dim {e} was not computed")))
    }

    fn base(&self, b: BufId) -> Result<Value> {
        self.bases
            .get(&b)
            .copied()
            .ok_or_else(|| internal(format!("buffer {} has no base", b.0)))
    }

    fn func_ref(&mut self, id: FuncId) -> FuncRef {
        if let Some(&r) = self.funcs.get(&id) {
            return r;
        }
        let r = self.module.declare_func_in_func(id, self.b.func);
        self.funcs.insert(id, r);
        r
    }

    fn call_named(
        &mut self,
        name: &str,
        params: &[Type],
        ret: Option<Type>,
        args: &[Value],
    ) -> Result<Option<Value>> {
        let id = self.decls.declare(&mut *self.module, name, params, ret)?;
        let r = self.func_ref(id);
        let inst = self.b.ins().call(r, args);
        Ok(self.b.inst_results(inst).first().copied())
    }

    fn fail_block(&mut self) -> Block {
        if let Some(b) = self.fail {
            return b;
        }
        let b = self.b.create_block();
        self.fail = Some(b);
        b
    }

    /// Jumps to the failure block when `bad` is non-zero.
    fn fail_if(&mut self, bad: Value) {
        let fail = self.fail_block();
        let ok = self.b.create_block();
        self.b.ins().brif(bad, fail, &[], ok, &[]);
        self.b.switch_to_block(ok);
    }

    fn finish_fail(&mut self) {
        if let Some(f) = self.fail {
            self.b.switch_to_block(f);
            let one = self.b.ins().iconst(types::I32, 1);
            self.b.ins().return_(&[one]);
        }
    }

    /// `for i in lo..hi` with loop-carried values; `body` returns the next
    /// carried values.
    fn for_range(
        &mut self,
        lo: Value,
        hi: Value,
        step: i64,
        carried: &[(Value, Type)],
        body: &mut LoopBody<'_, Self>,
    ) -> Result<Vec<Value>> {
        let header = self.b.create_block();
        let inner = self.b.create_block();
        let exit = self.b.create_block();
        self.b.append_block_param(header, types::I64);
        for &(_, t) in carried {
            self.b.append_block_param(header, t);
            self.b.append_block_param(exit, t);
        }
        let mut args: Vec<cranelift_codegen::ir::BlockArg> = vec![lo.into()];
        args.extend(
            carried
                .iter()
                .map(|&(v, _)| cranelift_codegen::ir::BlockArg::from(v)),
        );
        self.b.ins().jump(header, &args);
        self.b.switch_to_block(header);
        let params = self.b.block_params(header).to_vec();
        let i = params[0];
        let cur = params[1..].to_vec();
        // `i + step <= hi`, i.e. a whole step fits.
        let last = self.b.ins().iadd_imm_s(i, step - 1);
        let more = self.b.ins().icmp(IntCC::SignedLessThan, last, hi);
        let exit_args: Vec<cranelift_codegen::ir::BlockArg> = cur
            .iter()
            .map(|&v| cranelift_codegen::ir::BlockArg::from(v))
            .collect();
        self.b.ins().brif(more, inner, &[], exit, &exit_args);
        self.b.switch_to_block(inner);
        let next = body(self, i, &cur)?;
        let i2 = self.b.ins().iadd_imm_s(i, step);
        let mut args: Vec<cranelift_codegen::ir::BlockArg> = vec![i2.into()];
        args.extend(
            next.iter()
                .map(|&v| cranelift_codegen::ir::BlockArg::from(v)),
        );
        self.b.ins().jump(header, &args);
        self.b.switch_to_block(exit);
        Ok(self.b.block_params(exit).to_vec())
    }

    /// `for i in (lo..hi).step_by(step)` over whole steps only; returns
    /// where the loop stopped (for a vector loop, where its scalar tail
    /// starts).
    fn strided_loop(
        &mut self,
        lo: Value,
        hi: Value,
        step: i64,
        body: &mut dyn FnMut(&mut Self, Value) -> Result<()>,
    ) -> Result<Value> {
        let out = self.for_range(lo, hi, step, &[(lo, types::I64)], &mut |fx, i, _| {
            body(fx, i)?;
            let n = fx.b.ins().iadd_imm_s(i, step);
            Ok(vec![n])
        })?;
        Ok(out[0])
    }

    // ---- kernels ----

    fn kernel_fn(&mut self, k: &Kernel) -> Result<()> {
        let entry = self.b.create_block();
        self.b.append_block_params_for_function_params(entry);
        self.b.switch_to_block(entry);
        let ps = self.b.block_params(entry).to_vec();
        let (ctx, start, end) = (ps[0], ps[1], ps[2]);
        let mut bufs = k.reads();
        bufs.extend(k.writes());
        self.prologue(ctx, &kernel_sizes(k), &bufs)?;
        match &k.kind {
            KernelKind::Pointwise { out, expr } => self.pointwise(out, expr, start, end)?,
            KernelKind::Reduction {
                out,
                reduced,
                op,
                expr,
            } => self.reduction(out, reduced, *op, expr, start, end)?,
            _ => return Err(internal("not a loop kernel")),
        }
        let zero = self.b.ins().iconst(types::I32, 0);
        self.b.ins().return_(&[zero]);
        self.finish_fail();
        self.b.seal_all_blocks();
        Ok(())
    }

    /// Splits flat index `o` into the indices of `dims` (row-major).
    fn unflatten(&mut self, o: Value, dims: &[SymExpr]) -> Result<Vec<Value>> {
        let mut idx = vec![o; dims.len()];
        let mut rest = o;
        for d in (0..dims.len()).rev() {
            if d == 0 {
                idx[0] = rest;
                break;
            }
            let n = self.dim(&dims[d])?;
            idx[d] = self.b.ins().urem(rest, n);
            rest = self.b.ins().udiv(rest, n);
        }
        Ok(idx)
    }

    fn pointwise(&mut self, out: &View, expr: &E, start: Value, end: Value) -> Result<()> {
        let r = out.shape.len();
        if r == 0 {
            let y = self.scalar(expr, &[], &mut HashMap::new())?;
            let at = self.offset_value(&out.offset, &out.strides, &[])?;
            return self.store_elem(out.buf, out.dtype, at, y);
        }
        let vector = out.strides[r - 1] == SymExpr::Int(1) && vectorizable(expr, true);
        let last = self.dim(&out.shape[r - 1])?;
        let ch = self.iconst(CHUNK);
        let nch = self.b.ins().iadd_imm_s(last, CHUNK - 1);
        let nch = self.b.ins().udiv(nch, ch);
        let outer = out.shape[..r - 1].to_vec();
        self.for_range(start, end, 1, &[], &mut |fx, row, _| {
            let c = fx.b.ins().urem(row, nch);
            let o = fx.b.ins().udiv(row, nch);
            let mut idx = fx.unflatten(o, &outer)?;
            let j0 = fx.b.ins().imul_imm_s(c, CHUNK);
            let j1 = fx.b.ins().iadd_imm_s(j0, CHUNK);
            let j1 = fx.b.ins().smin(j1, last);
            let mut j = j0;
            // Whatever does not move along the innermost dim is computed
            // once per row.
            let mut hoisted = HashMap::new();
            idx.push(j0);
            fx.hoist(expr, (r - 1) as u8, &idx, &mut hoisted)?;
            idx.pop();
            if vector {
                let mut idxv = idx.clone();
                j = fx.strided_loop(j0, j1, 4, &mut |fx, j| {
                    idxv.push(j);
                    let mut memo: HashMap<Expr, Vv> = HashMap::new();
                    for (e, &v) in &hoisted {
                        let v = if e.dtype() == DType::Bool {
                            let w = fx.b.ins().uextend(types::I32, v);
                            Vv::S(fx.b.ins().ineg(w))
                        } else {
                            Vv::S(v)
                        };
                        memo.insert(e.clone(), v);
                    }
                    let y = fx.vector(expr, &idxv, r - 1, &mut memo)?;
                    let y = fx.splat_if(y);
                    let at = fx.offset_value(&out.offset, &out.strides, &idxv)?;
                    idxv.pop();
                    let addr = fx.addr(out.buf, DType::F32, at)?;
                    fx.b.ins().store(vflags(), y, addr, 0);
                    Ok(())
                })?;
            }
            fx.strided_loop(j, j1, 1, &mut |fx, j| {
                idx.push(j);
                let mut memo = hoisted.clone();
                let y = fx.scalar(expr, &idx, &mut memo)?;
                let at = fx.offset_value(&out.offset, &out.strides, &idx)?;
                idx.pop();
                fx.store_elem(out.buf, out.dtype, at, y)
            })?;
            Ok(vec![])
        })?;
        Ok(())
    }

    /// Computes, in the current block, every maximal subexpression of `e`
    /// that does not read loop variable `var` and is worth computing once.
    fn hoist(
        &mut self,
        e: &Expr,
        var: u8,
        idx: &[Value],
        out: &mut HashMap<Expr, Value>,
    ) -> Result<()> {
        if !e.uses_var(var) {
            if !matches!(
                e,
                Expr::Var(_) | Expr::Int(..) | Expr::Float(..) | Expr::Size(_)
            ) && !out.contains_key(e)
            {
                let v = self.scalar(e, idx, out)?;
                out.insert(e.clone(), v);
            }
            return Ok(());
        }
        match e {
            Expr::Var(_) | Expr::Size(_) | Expr::Int(..) | Expr::Float(..) => Ok(()),
            Expr::Load(_, _, a) | Expr::Unary(_, a) | Expr::Cast(_, a) | Expr::Index(a, _) => {
                self.hoist(a, var, idx, out)
            }
            Expr::Binary(_, a, b) | Expr::Cmp(_, a, b) => {
                self.hoist(a, var, idx, out)?;
                self.hoist(b, var, idx, out)
            }
            Expr::Where(c, a, b) => {
                self.hoist(c, var, idx, out)?;
                self.hoist(a, var, idx, out)?;
                self.hoist(b, var, idx, out)
            }
        }
    }

    fn reduction(
        &mut self,
        out: &View,
        reduced: &[SymExpr],
        op: RedOp,
        expr: &E,
        start: Value,
        end: Value,
    ) -> Result<()> {
        let src = expr.dtype();
        if matches!(op, RedOp::ArgMax | RedOp::ArgMin) {
            return self.arg_reduction(out, reduced, op == RedOp::ArgMax, expr, start, end);
        }
        let acc_dt = match (op, src) {
            (RedOp::Any | RedOp::All, _) => DType::Bool,
            (RedOp::Max | RedOp::Min, d) if d.is_float() => {
                if d == DType::F64 {
                    DType::F64
                } else {
                    DType::F32
                }
            }
            (RedOp::Max | RedOp::Min, d) => d,
            (_, d) if d.is_float() => DType::F64,
            (_, _) => {
                if out.dtype.is_float() {
                    DType::F64
                } else {
                    DType::I64
                }
            }
        };
        let at = reg_type(acc_dt);
        let init = match op {
            RedOp::Sum | RedOp::Mean | RedOp::Any => self.konst(0.0, acc_dt),
            RedOp::Prod | RedOp::All => self.konst(1.0, acc_dt),
            RedOp::Max => self.extreme(acc_dt, false),
            RedOp::Min => self.extreme(acc_dt, true),
            RedOp::ArgMax | RedOp::ArgMin => return Err(internal("an arg-reduction's combine")),
        };
        let no = out.shape.len();
        let out_shape = out.shape.clone();
        let mut count = self.iconst(1);
        let mut bounds = Vec::new();
        for d in reduced {
            let v = self.dim(d)?;
            count = self.b.ins().imul(count, v);
            bounds.push(v);
        }
        self.for_range(start, end, 1, &[], &mut |fx, o, _| {
            let mut idx = fx.unflatten(o, &out_shape)?;
            let acc = fx.reduce_level(&bounds, &mut idx, init, at, acc_dt, op, expr)?;
            let mut y = acc;
            if op == RedOp::Mean {
                let c = fx.cast_value(count, DType::I64, acc_dt)?;
                y = fx.b.ins().fdiv(y, c);
            }
            let y = fx.cast_value(y, acc_dt, out.dtype)?;
            idx.truncate(no);
            let a = fx.offset_value(&out.offset, &out.strides, &idx)?;
            fx.store_elem(out.buf, out.dtype, a, y)?;
            Ok(vec![])
        })?;
        Ok(())
    }

    /// `argmax` / `argmin`: per output element, the running extreme, its
    /// position and the count of elements seen are carried through the
    /// reduced loops; an element replaces the extreme when strictly beyond
    /// it, or when it is NaN and the extreme is not (so the first NaN
    /// wins, and the first of equal extremes).
    fn arg_reduction(
        &mut self,
        out: &View,
        reduced: &[SymExpr],
        max: bool,
        expr: &E,
        start: Value,
        end: Value,
    ) -> Result<()> {
        let acc_dt = match expr.dtype() {
            DType::F64 => DType::F64,
            d if d.is_float() => DType::F32,
            d => d,
        };
        let init = self.extreme(acc_dt, !max);
        let no = out.shape.len();
        let out_shape = out.shape.clone();
        let bounds = self.dims_of(reduced)?;
        self.for_range(start, end, 1, &[], &mut |fx, o, _| {
            let mut idx = fx.unflatten(o, &out_shape)?;
            let zero = fx.iconst(0);
            let state = [init, zero, zero];
            let [_, pos, _] = fx.arg_level(&bounds, &mut idx, state, acc_dt, max, expr)?;
            idx.truncate(no);
            let a = fx.offset_value(&out.offset, &out.strides, &idx)?;
            let y = fx.cast_value(pos, DType::I64, out.dtype)?;
            fx.store_elem(out.buf, out.dtype, a, y)?;
            Ok(vec![])
        })?;
        Ok(())
    }

    /// One reduced loop of an arg-reduction; `state` is (extreme, its
    /// position, elements seen).
    fn arg_level(
        &mut self,
        bounds: &[Value],
        idx: &mut Vec<Value>,
        state: [Value; 3],
        acc_dt: DType,
        max: bool,
        expr: &E,
    ) -> Result<[Value; 3]> {
        let [best, pos, seen] = state;
        let Some((&n, rest)) = bounds.split_first() else {
            let x = self.scalar(expr, idx, &mut HashMap::new())?;
            let x = self.cast_value(x, expr.dtype(), acc_dt)?;
            let take = if acc_dt.is_float() {
                let beyond = if max {
                    FloatCC::GreaterThan
                } else {
                    FloatCC::LessThan
                };
                let beyond = self.b.ins().fcmp(beyond, x, best);
                let x_nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
                let best_num = self.b.ins().fcmp(FloatCC::Ordered, best, best);
                let nan = self.b.ins().band(x_nan, best_num);
                self.b.ins().bor(beyond, nan)
            } else {
                let cc = match (max, unsigned(acc_dt)) {
                    (true, true) => IntCC::UnsignedGreaterThan,
                    (true, false) => IntCC::SignedGreaterThan,
                    (false, true) => IntCC::UnsignedLessThan,
                    (false, false) => IntCC::SignedLessThan,
                };
                self.b.ins().icmp(cc, x, best)
            };
            let best = self.b.ins().select(take, x, best);
            let pos = self.b.ins().select(take, seen, pos);
            let seen = self.b.ins().iadd_imm_s(seen, 1);
            return Ok([best, pos, seen]);
        };
        let zero = self.iconst(0);
        let at = reg_type(acc_dt);
        let carried = [(best, at), (pos, types::I64), (seen, types::I64)];
        let out = self.for_range(zero, n, 1, &carried, &mut |fx, i, cur| {
            idx.push(i);
            let r = fx.arg_level(rest, idx, [cur[0], cur[1], cur[2]], acc_dt, max, expr)?;
            idx.pop();
            Ok(r.to_vec())
        })?;
        Ok([out[0], out[1], out[2]])
    }

    #[allow(clippy::too_many_arguments)]
    fn reduce_level(
        &mut self,
        bounds: &[Value],
        idx: &mut Vec<Value>,
        acc: Value,
        at: Type,
        acc_dt: DType,
        op: RedOp,
        expr: &E,
    ) -> Result<Value> {
        let Some((&n, rest)) = bounds.split_first() else {
            let x = self.scalar(expr, idx, &mut HashMap::new())?;
            let x = self.cast_value(x, expr.dtype(), acc_dt)?;
            return Ok(self.combine(op, acc_dt, acc, x));
        };
        let zero = self.iconst(0);
        let out = self.for_range(zero, n, 1, &[(acc, at)], &mut |fx, i, cur| {
            idx.push(i);
            let r = fx.reduce_level(rest, idx, cur[0], at, acc_dt, op, expr)?;
            idx.pop();
            Ok(vec![r])
        })?;
        Ok(out[0])
    }

    fn combine(&mut self, op: RedOp, d: DType, a: Value, x: Value) -> Value {
        let float = d.is_float();
        match op {
            RedOp::Sum | RedOp::Mean if float => self.b.ins().fadd(a, x),
            RedOp::Sum | RedOp::Mean => self.b.ins().iadd(a, x),
            RedOp::Prod if float => self.b.ins().fmul(a, x),
            RedOp::Prod => self.b.ins().imul(a, x),
            RedOp::Max if float => self.b.ins().fmax(a, x),
            RedOp::Min if float => self.b.ins().fmin(a, x),
            RedOp::Max if unsigned(d) => self.b.ins().umax(a, x),
            RedOp::Min if unsigned(d) => self.b.ins().umin(a, x),
            RedOp::Max => self.b.ins().smax(a, x),
            RedOp::Min => self.b.ins().smin(a, x),
            RedOp::Any => self.b.ins().bor(a, x),
            RedOp::All => self.b.ins().band(a, x),
            // Never reached: `reduction` lowers these with `arg_level`.
            RedOp::ArgMax | RedOp::ArgMin => a,
        }
    }

    fn extreme(&mut self, d: DType, max: bool) -> Value {
        match d {
            DType::F32 => {
                let v = if max {
                    f32::INFINITY
                } else {
                    f32::NEG_INFINITY
                };
                self.b.ins().f32const(v)
            }
            DType::F64 => {
                let v = if max {
                    f64::INFINITY
                } else {
                    f64::NEG_INFINITY
                };
                self.b.ins().f64const(v)
            }
            _ => {
                let (lo, hi) = match d {
                    DType::I64 => (i64::MIN, i64::MAX),
                    DType::I32 => (i32::MIN as i64, i32::MAX as i64),
                    DType::I16 => (i16::MIN as i64, i16::MAX as i64),
                    DType::I8 => (i8::MIN as i64, i8::MAX as i64),
                    DType::U8 => (0, 255),
                    _ => (0, 1),
                };
                self.b.ins().iconst(reg_type(d), if max { hi } else { lo })
            }
        }
    }

    // ---- element access ----

    fn offset_value(&mut self, off: &SymExpr, strides: &[SymExpr], idx: &[Value]) -> Result<Value> {
        let mut acc = self.dim(off)?;
        for (s, &i) in strides.iter().zip(idx) {
            match s.as_int() {
                Some(0) => continue,
                Some(1) => acc = self.b.ins().iadd(acc, i),
                _ => {
                    let sv = self.dim(s)?;
                    let t = self.b.ins().imul(i, sv);
                    acc = self.b.ins().iadd(acc, t);
                }
            }
        }
        Ok(acc)
    }

    fn addr(&mut self, buf: BufId, d: DType, elem: Value) -> Result<Value> {
        let base = self.base(buf)?;
        let bytes = self.b.ins().imul_imm_s(elem, d.size_bytes() as i64);
        Ok(self.b.ins().iadd(base, bytes))
    }

    fn load_elem(&mut self, buf: BufId, d: DType, elem: Value) -> Result<Value> {
        let a = self.addr(buf, d, elem)?;
        Ok(match d {
            DType::F16 => {
                let h = self.b.ins().load(types::I16, flags(), a, 0);
                self.f16_to_f32(h)
            }
            DType::BF16 => {
                let h = self.b.ins().load(types::I16, flags(), a, 0);
                let w = self.b.ins().uextend(types::I32, h);
                let w = self.b.ins().ishl_imm_s(w, 16);
                self.b.ins().bitcast(types::F32, MemFlagsData::new(), w)
            }
            _ => self.b.ins().load(reg_type(d), flags(), a, 0),
        })
    }

    fn store_elem(&mut self, buf: BufId, d: DType, elem: Value, v: Value) -> Result<()> {
        let a = self.addr(buf, d, elem)?;
        let v = match d {
            DType::F16 => {
                let r = self.call_named(
                    "torchlift_f32_to_f16_bits",
                    &[types::F32],
                    Some(types::I32),
                    &[v],
                )?;
                let r = r.ok_or_else(|| internal("no result"))?;
                self.b.ins().ireduce(types::I16, r)
            }
            DType::BF16 => {
                let w = self.bf16_round_bits(v);
                let w = self.b.ins().ushr_imm_s(w, 16);
                self.b.ins().ireduce(types::I16, w)
            }
            _ => v,
        };
        self.b.ins().store(flags(), v, a, 0);
        Ok(())
    }

    /// `f16` bits (`I16`) to `f32`.
    fn f16_to_f32(&mut self, h: Value) -> Value {
        // Shift the exponent and mantissa into f32 position and rescale by
        // 2^112, which handles normals and subnormals; infinities and NaNs
        // get an all-ones exponent.
        let w = self.b.ins().uextend(types::I32, h);
        let mag = self.b.ins().band_imm_s(w, 0x7fff);
        let sign = self.b.ins().band_imm_s(w, 0x8000);
        let sign = self.b.ins().ishl_imm_s(sign, 16);
        let bits = self.b.ins().ishl_imm_s(mag, 13);
        let f = self.b.ins().bitcast(types::F32, MemFlagsData::new(), bits);
        let scale = self.b.ins().f32const(f32::from_bits(0x7780_0000)); // 2^112
        let f = self.b.ins().fmul(f, scale);
        let fb = self.b.ins().bitcast(types::I32, MemFlagsData::new(), f);
        let special = self
            .b
            .ins()
            .icmp_imm_s(IntCC::UnsignedGreaterThanOrEqual, mag, 0x7c00);
        let inf_nan = self.b.ins().bor_imm_s(bits, 0x7f80_0000);
        let r = self.b.ins().select(special, inf_nan, fb);
        let r = self.b.ins().bor(r, sign);
        self.b.ins().bitcast(types::F32, MemFlagsData::new(), r)
    }

    /// The f32 bits of `v` rounded to bfloat16 (ties to even), low half zero.
    fn bf16_round_bits(&mut self, v: Value) -> Value {
        let w = self.b.ins().bitcast(types::I32, MemFlagsData::new(), v);
        let lsb = self.b.ins().ushr_imm_s(w, 16);
        let lsb = self.b.ins().band_imm_s(lsb, 1);
        let r = self.b.ins().iadd_imm_s(w, 0x7fff);
        let r = self.b.ins().iadd(r, lsb);
        let hi_mask = self
            .b
            .ins()
            .iconst(types::I32, 0xffff_0000u32 as i32 as i64);
        let r = self.b.ins().band(r, hi_mask);
        // NaN stays NaN (quiet).
        let nan = self.b.ins().fcmp(FloatCC::Unordered, v, v);
        let q = self.b.ins().bor_imm_s(w, 0x0040_0000);
        let q = self.b.ins().band(q, hi_mask);
        self.b.ins().select(nan, q, r)
    }

    fn konst(&mut self, v: f64, d: DType) -> Value {
        match reg_type(d) {
            types::F32 => {
                let x = v as f32;
                let x = match d {
                    DType::F16 => torchlift_runtime::scalar::f16_round(x),
                    DType::BF16 => f32::from_bits(
                        (x.to_bits().wrapping_add(0x7fff + ((x.to_bits() >> 16) & 1)))
                            & 0xffff_0000,
                    ),
                    _ => x,
                };
                self.b.ins().f32const(x)
            }
            types::F64 => self.b.ins().f64const(v),
            t => self.b.ins().iconst(t, v as i64),
        }
    }

    // ---- scalar expressions ----

    fn scalar(
        &mut self,
        e: &Expr,
        idx: &[Value],
        memo: &mut HashMap<Expr, Value>,
    ) -> Result<Value> {
        if let Some(&v) = memo.get(e) {
            return Ok(v);
        }
        let v = match e {
            Expr::Var(d) => *idx
                .get(*d as usize)
                .ok_or_else(|| internal(format!("loop variable {d} out of range")))?,
            Expr::Size(s) => self.dim(s)?,
            Expr::Int(v, d) => self.b.ins().iconst(reg_type(*d), *v),
            Expr::Float(bits, d) => self.konst(f64::from_bits(*bits), *d),
            Expr::Load(buf, d, off) => {
                let o = self.scalar(off, idx, memo)?;
                self.load_elem(*buf, *d, o)?
            }
            Expr::Index(x, size) => {
                let x = self.scalar(x, idx, memo)?;
                let n = self.dim(size)?;
                let neg = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, x, 0);
                let wrapped = self.b.ins().iadd(x, n);
                let x = self.b.ins().select(neg, wrapped, x);
                let lo = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, x, 0);
                let hi = self.b.ins().icmp(IntCC::SignedGreaterThanOrEqual, x, n);
                let bad = self.b.ins().bor(lo, hi);
                self.fail_if(bad);
                x
            }
            Expr::Unary(op, a) => {
                let d = a.dtype();
                let x = self.scalar(a, idx, memo)?;
                self.unary(*op, d, x)?
            }
            Expr::Binary(op, a, b) => {
                let d = a.dtype();
                let x = self.scalar(a, idx, memo)?;
                let y = self.scalar(b, idx, memo)?;
                self.binary(*op, d, x, y)?
            }
            Expr::Cmp(op, a, b) => {
                let d = a.dtype();
                let x = self.scalar(a, idx, memo)?;
                let y = self.scalar(b, idx, memo)?;
                self.compare(*op, d, x, y)
            }
            Expr::Where(c, a, b) => {
                let c = self.scalar(c, idx, memo)?;
                let x = self.scalar(a, idx, memo)?;
                let y = self.scalar(b, idx, memo)?;
                self.b.ins().select(c, x, y)
            }
            Expr::Cast(to, a) => {
                let x = self.scalar(a, idx, memo)?;
                self.cast_value(x, a.dtype(), *to)?
            }
        };
        memo.insert(e.clone(), v);
        Ok(v)
    }

    fn math_call(&mut self, name: &str, d: DType, args: &[Value]) -> Result<Value> {
        let f = SCALAR_FNS
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| internal(format!("no scalar function {name}")))?;
        let mut a64 = Vec::new();
        for &x in args {
            a64.push(if reg_type(d) == types::F32 {
                self.b.ins().fpromote(types::F64, x)
            } else {
                x
            });
        }
        let params = vec![types::F64; f.arity];
        let r = self
            .call_named(name, &params, Some(types::F64), &a64)?
            .ok_or_else(|| internal("no result"))?;
        Ok(if reg_type(d) == types::F32 {
            self.b.ins().fdemote(types::F32, r)
        } else {
            r
        })
    }

    fn unary(&mut self, op: UnOp, d: DType, x: Value) -> Result<Value> {
        let float = d.is_float();
        let t = reg_type(d);
        Ok(match op {
            UnOp::Neg if float => self.b.ins().fneg(x),
            UnOp::Neg => self.b.ins().ineg(x),
            UnOp::Abs if float => self.b.ins().fabs(x),
            UnOp::Abs if unsigned(d) => x,
            UnOp::Abs => self.b.ins().iabs(x),
            UnOp::Sqrt => self.b.ins().sqrt(x),
            UnOp::Rsqrt => {
                let s = self.b.ins().sqrt(x);
                let one = self.konst(1.0, d);
                self.b.ins().fdiv(one, s)
            }
            UnOp::Reciprocal => {
                let one = self.konst(1.0, d);
                self.b.ins().fdiv(one, x)
            }
            UnOp::Floor => self.b.ins().floor(x),
            UnOp::Ceil => self.b.ins().ceil(x),
            UnOp::Round => self.b.ins().nearest(x),
            UnOp::Trunc => self.b.ins().trunc(x),
            UnOp::Not if d == DType::Bool => self.b.ins().bxor_imm_s(x, 1),
            UnOp::Not => self.b.ins().bnot(x),
            UnOp::IsNan => self.b.ins().fcmp(FloatCC::Unordered, x, x),
            UnOp::Relu if float => {
                let z = self.konst(0.0, d);
                // NaN stays NaN, as in torch.
                let neg = self.b.ins().fcmp(FloatCC::LessThan, x, z);
                self.b.ins().select(neg, z, x)
            }
            UnOp::Relu => {
                let z = self.b.ins().iconst(t, 0);
                if unsigned(d) {
                    x
                } else {
                    self.b.ins().smax(x, z)
                }
            }
            UnOp::Sign if float => {
                let z = self.konst(0.0, d);
                let one = self.konst(1.0, d);
                let m1 = self.konst(-1.0, d);
                let pos = self.b.ins().fcmp(FloatCC::GreaterThan, x, z);
                let neg = self.b.ins().fcmp(FloatCC::LessThan, x, z);
                let r = self.b.ins().select(neg, m1, x);
                let r = self.b.ins().select(pos, one, r);
                // ±0 and NaN stay as they are.
                r
            }
            UnOp::Sign => {
                let z = self.b.ins().iconst(t, 0);
                let pos = self.b.ins().icmp(IntCC::SignedGreaterThan, x, z);
                let neg = self.b.ins().icmp(IntCC::SignedLessThan, x, z);
                let pos = self.widen_bool(t, pos);
                let neg = self.widen_bool(t, neg);
                self.b.ins().isub(pos, neg)
            }
            op if reg_type(d) == types::F32 && inline_math(op).is_some() => {
                let f = inline_math(op).ok_or_else(|| internal("no inline math"))?;
                super::math::emit(&mut self.b, f, x)
            }
            UnOp::Exp => self.math_call("torchlift_exp", d, &[x])?,
            UnOp::Expm1 => self.math_call("torchlift_expm1", d, &[x])?,
            UnOp::Log => self.math_call("torchlift_log", d, &[x])?,
            UnOp::Log1p => self.math_call("torchlift_log1p", d, &[x])?,
            UnOp::Log2 => self.math_call("torchlift_log2", d, &[x])?,
            UnOp::Tanh => self.math_call("torchlift_tanh", d, &[x])?,
            UnOp::Sigmoid => self.math_call("torchlift_sigmoid", d, &[x])?,
            UnOp::Erf => self.math_call("torchlift_erf", d, &[x])?,
            UnOp::Sin => self.math_call("torchlift_sin", d, &[x])?,
            UnOp::Cos => self.math_call("torchlift_cos", d, &[x])?,
            UnOp::Tan => self.math_call("torchlift_tan", d, &[x])?,
        })
    }

    /// A comparison result (`I8`) as an integer of type `t`.
    fn widen_bool(&mut self, t: Type, c: Value) -> Value {
        if t == types::I8 {
            c
        } else {
            self.b.ins().uextend(t, c)
        }
    }

    fn int_div_checked(&mut self, y: Value) {
        let z = self.b.ins().icmp_imm_s(IntCC::Equal, y, 0);
        self.fail_if(z);
    }

    fn binary(&mut self, op: BinOp, d: DType, x: Value, y: Value) -> Result<Value> {
        let float = d.is_float();
        let u = unsigned(d);
        Ok(match op {
            BinOp::Add if float => self.b.ins().fadd(x, y),
            BinOp::Add => self.b.ins().iadd(x, y),
            BinOp::Sub if float => self.b.ins().fsub(x, y),
            BinOp::Sub => self.b.ins().isub(x, y),
            BinOp::Mul if float => self.b.ins().fmul(x, y),
            BinOp::Mul => self.b.ins().imul(x, y),
            BinOp::Div if float => self.b.ins().fdiv(x, y),
            BinOp::Div => {
                self.int_div_checked(y);
                if u {
                    self.b.ins().udiv(x, y)
                } else {
                    self.b.ins().sdiv(x, y)
                }
            }
            BinOp::FloorDiv | BinOp::Rem | BinOp::Fmod if u && !float => {
                self.int_div_checked(y);
                if op == BinOp::FloorDiv {
                    self.b.ins().udiv(x, y)
                } else {
                    self.b.ins().urem(x, y)
                }
            }
            BinOp::FloorDiv | BinOp::Rem | BinOp::Fmod if !float => {
                self.int_div_checked(y);
                let t = reg_type(d);
                // Avoid the one overflowing quotient (MIN / -1) trapping.
                let m1 = self.b.ins().icmp_imm_s(IntCC::Equal, y, -1);
                let one = self.b.ins().iconst(t, 1);
                let ys = self.b.ins().select(m1, one, y);
                let q = self.b.ins().sdiv(x, ys);
                let negx = self.b.ins().ineg(x);
                let q = self.b.ins().select(m1, negx, q);
                let r = self.b.ins().srem(x, ys);
                let zero = self.b.ins().iconst(t, 0);
                let r = self.b.ins().select(m1, zero, r);
                if op == BinOp::Fmod {
                    return Ok(r);
                }
                let nz = self.b.ins().icmp_imm_s(IntCC::NotEqual, r, 0);
                let sx = self.b.ins().bxor(r, y);
                let neg = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, sx, 0);
                let adj = self.b.ins().band(nz, neg);
                if op == BinOp::FloorDiv {
                    let adj = self.widen_bool(t, adj);
                    self.b.ins().isub(q, adj)
                } else {
                    let r2 = self.b.ins().iadd(r, y);
                    self.b.ins().select(adj, r2, r)
                }
            }
            // Floats: torch's formulas on the exact remainder, in f64.
            BinOp::FloorDiv => self.math_call("torchlift_floor_divide", d, &[x, y])?,
            BinOp::Rem => self.math_call("torchlift_remainder", d, &[x, y])?,
            BinOp::Fmod => self.math_call("torchlift_fmod", d, &[x, y])?,
            BinOp::Max if float => self.b.ins().fmax(x, y),
            BinOp::Min if float => self.b.ins().fmin(x, y),
            BinOp::Max if u => self.b.ins().umax(x, y),
            BinOp::Min if u => self.b.ins().umin(x, y),
            BinOp::Max => self.b.ins().smax(x, y),
            BinOp::Min => self.b.ins().smin(x, y),
            BinOp::BitAnd => self.b.ins().band(x, y),
            BinOp::BitOr => self.b.ins().bor(x, y),
            BinOp::BitXor => self.b.ins().bxor(x, y),
            BinOp::Pow if float => self.math_call("torchlift_pow", d, &[x, y])?,
            BinOp::Atan2 if float => self.math_call("torchlift_atan2", d, &[x, y])?,
            BinOp::Pow | BinOp::Atan2 => {
                return Err(internal(format!("{op:?} on {d} has no lowering")));
            }
        })
    }

    fn compare(&mut self, op: CmpOp, d: DType, x: Value, y: Value) -> Value {
        if d.is_float() {
            let cc = match op {
                CmpOp::Eq => FloatCC::Equal,
                CmpOp::Ne => FloatCC::NotEqual,
                CmpOp::Lt => FloatCC::LessThan,
                CmpOp::Le => FloatCC::LessThanOrEqual,
                CmpOp::Gt => FloatCC::GreaterThan,
                CmpOp::Ge => FloatCC::GreaterThanOrEqual,
            };
            self.b.ins().fcmp(cc, x, y)
        } else {
            let u = unsigned(d);
            let cc = match (op, u) {
                (CmpOp::Eq, _) => IntCC::Equal,
                (CmpOp::Ne, _) => IntCC::NotEqual,
                (CmpOp::Lt, false) => IntCC::SignedLessThan,
                (CmpOp::Le, false) => IntCC::SignedLessThanOrEqual,
                (CmpOp::Gt, false) => IntCC::SignedGreaterThan,
                (CmpOp::Ge, false) => IntCC::SignedGreaterThanOrEqual,
                (CmpOp::Lt, true) => IntCC::UnsignedLessThan,
                (CmpOp::Le, true) => IntCC::UnsignedLessThanOrEqual,
                (CmpOp::Gt, true) => IntCC::UnsignedGreaterThan,
                (CmpOp::Ge, true) => IntCC::UnsignedGreaterThanOrEqual,
            };
            self.b.ins().icmp(cc, x, y)
        }
    }

    /// An `f32` register value rounded to the precision of `to` (a no-op
    /// unless `to` is a half type).
    fn round_to(&mut self, to: DType, y: Value) -> Result<Value> {
        Ok(match to {
            DType::BF16 => {
                let w = self.bf16_round_bits(y);
                self.b.ins().bitcast(types::F32, MemFlagsData::new(), w)
            }
            DType::F16 => self.math_call("torchlift_round_f16", DType::F32, &[y])?,
            _ => y,
        })
    }

    /// Converts a register value of dtype `from` to `to`, as torch casts.
    fn cast_value(&mut self, x: Value, from: DType, to: DType) -> Result<Value> {
        if from == to {
            return Ok(x);
        }
        let (tf, tt) = (reg_type(from), reg_type(to));
        if to == DType::Bool {
            return Ok(if from.is_float() {
                let z = self.konst(0.0, from);
                self.b.ins().fcmp(FloatCC::NotEqual, x, z)
            } else {
                self.b.ins().icmp_imm_s(IntCC::NotEqual, x, 0)
            });
        }
        Ok(match (from.is_float(), to.is_float()) {
            (true, true) => {
                let y = match (tf, tt) {
                    (types::F32, types::F64) => self.b.ins().fpromote(types::F64, x),
                    (types::F64, types::F32) => self.b.ins().fdemote(types::F32, x),
                    _ => x,
                };
                self.round_to(to, y)?
            }
            (true, false) => {
                if tt == types::I64 || tt == types::I32 {
                    self.b.ins().fcvt_to_sint_sat(tt, x)
                } else {
                    let w = self.b.ins().fcvt_to_sint_sat(types::I32, x);
                    self.b.ins().ireduce(tt, w)
                }
            }
            (false, true) => {
                let y = if unsigned(from) {
                    self.b.ins().fcvt_from_uint(tt, x)
                } else {
                    self.b.ins().fcvt_from_sint(tt, x)
                };
                self.round_to(to, y)?
            }
            (false, false) => {
                if tt.bits() > tf.bits() {
                    if unsigned(from) {
                        self.b.ins().uextend(tt, x)
                    } else {
                        self.b.ins().sextend(tt, x)
                    }
                } else if tt.bits() < tf.bits() {
                    self.b.ins().ireduce(tt, x)
                } else {
                    x
                }
            }
        })
    }

    // ---- vector expressions ----

    fn splat_if(&mut self, v: Vv) -> Value {
        match v {
            Vv::V(x) => x,
            Vv::S(x) => {
                let t = self.b.func.dfg.value_type(x);
                let vt = if t == types::F32 {
                    types::F32X4
                } else {
                    types::I32X4
                };
                self.b.ins().splat(vt, x)
            }
        }
    }

    /// `e` for the four lanes `idx[lane] .. idx[lane] + 3` of loop variable
    /// `lane`.
    fn vector(
        &mut self,
        e: &Expr,
        idx: &[Value],
        lane: usize,
        memo: &mut HashMap<Expr, Vv>,
    ) -> Result<Vv> {
        if let Some(&v) = memo.get(e) {
            return Ok(v);
        }
        if !e.uses_var(lane as u8) {
            let s = self.scalar(e, idx, &mut HashMap::new())?;
            let v = if e.dtype() == DType::Bool {
                // A uniform condition: an all-ones or all-zeros lane mask.
                let w = self.b.ins().uextend(types::I32, s);
                let w = self.b.ins().ineg(w);
                Vv::S(w)
            } else {
                Vv::S(s)
            };
            memo.insert(e.clone(), v);
            return Ok(v);
        }
        let v = match e {
            Expr::Load(buf, d, off) => {
                if unit_stride(off, lane as u8) {
                    let o = self.scalar(off, idx, &mut HashMap::new())?;
                    let a = self.addr(*buf, *d, o)?;
                    Vv::V(self.b.ins().load(types::F32X4, vflags(), a, 0))
                } else {
                    let mut acc = self.b.ins().f32const(0.0);
                    acc = self.b.ins().splat(types::F32X4, acc);
                    for l in 0..4u8 {
                        let mut li = idx.to_vec();
                        li[lane] = self.b.ins().iadd_imm_s(idx[lane], l as i64);
                        let o = self.scalar(off, &li, &mut HashMap::new())?;
                        let x = self.load_elem(*buf, *d, o)?;
                        acc = self.b.ins().insertlane(acc, x, l);
                    }
                    Vv::V(acc)
                }
            }
            Expr::Unary(op, a) => {
                let x = self.vector(a, idx, lane, memo)?;
                let x = self.splat_if(x);
                Vv::V(match op {
                    UnOp::Neg => self.b.ins().fneg(x),
                    UnOp::Abs => self.b.ins().fabs(x),
                    UnOp::Sqrt => self.b.ins().sqrt(x),
                    UnOp::Rsqrt | UnOp::Reciprocal => {
                        let one = self.b.ins().f32const(1.0);
                        let one = self.b.ins().splat(types::F32X4, one);
                        let d = if *op == UnOp::Rsqrt {
                            self.b.ins().sqrt(x)
                        } else {
                            x
                        };
                        self.b.ins().fdiv(one, d)
                    }
                    UnOp::Floor => self.b.ins().floor(x),
                    UnOp::Ceil => self.b.ins().ceil(x),
                    UnOp::Round => self.b.ins().nearest(x),
                    UnOp::Trunc => self.b.ins().trunc(x),
                    UnOp::Relu => {
                        let z = self.b.ins().f32const(0.0);
                        let z = self.b.ins().splat(types::F32X4, z);
                        let neg = self.b.ins().fcmp(FloatCC::LessThan, x, z);
                        let m = self.b.ins().bitcast(
                            types::F32X4,
                            MemFlagsData::new()
                                .with_endianness(cranelift_codegen::ir::Endianness::Little),
                            neg,
                        );
                        self.b.ins().bitselect(m, z, x)
                    }
                    op => match inline_math(*op) {
                        Some(f) => super::math::emit(&mut self.b, f, x),
                        None => return Err(internal(format!("{op:?} has no vector lowering"))),
                    },
                })
            }
            Expr::Binary(op, a, b) => {
                let x = self.vector(a, idx, lane, memo)?;
                let y = self.vector(b, idx, lane, memo)?;
                let (x, y) = (self.splat_if(x), self.splat_if(y));
                Vv::V(match op {
                    BinOp::Add => self.b.ins().fadd(x, y),
                    BinOp::Sub => self.b.ins().fsub(x, y),
                    BinOp::Mul => self.b.ins().fmul(x, y),
                    BinOp::Div => self.b.ins().fdiv(x, y),
                    BinOp::Max => self.b.ins().fmax(x, y),
                    BinOp::Min => self.b.ins().fmin(x, y),
                    _ => return Err(internal(format!("{op:?} has no vector lowering"))),
                })
            }
            Expr::Cmp(op, a, b) => {
                let x = self.vector(a, idx, lane, memo)?;
                let y = self.vector(b, idx, lane, memo)?;
                let (x, y) = (self.splat_if(x), self.splat_if(y));
                let cc = match op {
                    CmpOp::Eq => FloatCC::Equal,
                    CmpOp::Ne => FloatCC::NotEqual,
                    CmpOp::Lt => FloatCC::LessThan,
                    CmpOp::Le => FloatCC::LessThanOrEqual,
                    CmpOp::Gt => FloatCC::GreaterThan,
                    CmpOp::Ge => FloatCC::GreaterThanOrEqual,
                };
                Vv::V(self.b.ins().fcmp(cc, x, y))
            }
            Expr::Where(c, a, b) => {
                let m = self.vector(c, idx, lane, memo)?;
                let m = self.splat_if(m);
                let x = self.vector(a, idx, lane, memo)?;
                let y = self.vector(b, idx, lane, memo)?;
                let (x, y) = (self.splat_if(x), self.splat_if(y));
                let le =
                    MemFlagsData::new().with_endianness(cranelift_codegen::ir::Endianness::Little);
                let m = self.b.ins().bitcast(types::F32X4, le, m);
                Vv::V(self.b.ins().bitselect(m, x, y))
            }
            other => {
                return Err(internal(format!("{other:?} has no vector lowering")));
            }
        };
        memo.insert(e.clone(), v);
        Ok(v)
    }

    // ---- extern kernels ----

    /// The address of a view's first element.
    fn view_ptr(&mut self, v: &View) -> Result<Value> {
        let off = self.dim(&v.offset)?;
        self.addr(v.buf, v.dtype, off)
    }

    fn opt_view_ptr(&mut self, v: Option<&View>) -> Result<Value> {
        match v {
            Some(v) => self.view_ptr(v),
            None => Ok(self.iconst(0)),
        }
    }

    fn call_rt(&mut self, f: RtFn, args: &[Value]) -> Result<Value> {
        let s = f.symbol();
        let params: Vec<Type> = s.params.iter().map(|&t| abi_type(t)).collect();
        if params.len() != args.len() {
            return Err(internal(format!(
                "{} takes {} arguments, {} given",
                s.name,
                params.len(),
                args.len()
            )));
        }
        self.call_named(s.name, &params, Some(types::I32), args)?
            .ok_or_else(|| internal("no result"))
    }

    fn dims_of(&mut self, ds: &[SymExpr]) -> Result<Vec<Value>> {
        ds.iter().map(|d| self.dim(d)).collect()
    }

    fn extern_call(&mut self, e: &Extern) -> Result<Value> {
        match e {
            Extern::Gemm {
                batch,
                m,
                n,
                k,
                a,
                b,
                bias,
                c,
            } => {
                let mut args = self.dims_of(&[batch.clone(), m.clone(), n.clone(), k.clone()])?;
                for v in [a, b] {
                    args.push(self.view_ptr(v)?);
                    let st = self.dims_of(&v.strides)?;
                    if st.len() == 2 {
                        args.push(self.iconst(0));
                    }
                    args.extend(st);
                }
                match bias {
                    Some(v) => {
                        args.push(self.view_ptr(v)?);
                        let st = self.dims_of(&v.strides)?;
                        let r = st.len();
                        args.extend_from_slice(&st[r - 2..]);
                    }
                    None => {
                        let z = self.iconst(0);
                        args.extend([z, z, z]);
                    }
                }
                args.push(self.view_ptr(c)?);
                let st = self.dims_of(&c.strides)?;
                if st.len() == 2 {
                    args.push(self.iconst(0));
                    args.push(st[0]);
                } else {
                    args.extend_from_slice(&st[..2]);
                }
                self.call_rt(RtFn::Gemm, &args)
            }
            Extern::Conv2d {
                x,
                w,
                bias,
                y,
                params,
                groups,
                act,
            } => {
                let mut args = vec![
                    self.view_ptr(x)?,
                    self.view_ptr(w)?,
                    self.opt_view_ptr(bias.as_ref())?,
                    self.view_ptr(y)?,
                ];
                args.extend(self.dims_of(&x.shape)?);
                args.push(self.dim(&w.shape[0])?);
                args.extend(self.dims_of(&w.shape[2..4])?);
                args.extend(self.dims_of(&y.shape[2..4])?);
                for &p in params {
                    args.push(self.iconst(p));
                }
                args.push(self.iconst(*groups));
                args.push(self.iconst(bias.is_some() as i64));
                match act {
                    Act::None => self.call_rt(RtFn::Conv2d, &args),
                    Act::Relu | Act::Clamp(..) => {
                        let (code, lo, hi) = match act {
                            Act::Clamp(lo, hi) => (2, *lo, *hi),
                            _ => (1, 0.0, 0.0),
                        };
                        args.push(self.iconst(code));
                        args.push(self.b.ins().f32const(lo));
                        args.push(self.b.ins().f32const(hi));
                        self.call_rt(RtFn::Conv2dAct, &args)
                    }
                }
            }
            Extern::MaxPool2d { x, y, params } => {
                let r = x.shape.len();
                let planes = SymExpr::mul(x.shape[..r - 2].to_vec());
                let mut args = vec![self.view_ptr(x)?, self.view_ptr(y)?, self.dim(&planes)?];
                args.extend(self.dims_of(&x.shape[r - 2..])?);
                args.extend(self.dims_of(&y.shape[r - 2..])?);
                for &p in params {
                    args.push(self.iconst(p));
                }
                self.call_rt(RtFn::MaxPool2d, &args)
            }
            Extern::Softmax {
                x,
                y,
                outer,
                len,
                inner,
                log,
            } => {
                let mut args = vec![self.view_ptr(x)?, self.view_ptr(y)?];
                args.extend(self.dims_of(&[outer.clone(), len.clone(), inner.clone()])?);
                let f = if *log {
                    RtFn::LogSoftmax
                } else {
                    RtFn::Softmax
                };
                self.call_rt(f, &args)
            }
            Extern::LayerNorm {
                x,
                y,
                weight,
                bias,
                rows,
                cols,
                eps,
            } => {
                let args = vec![
                    self.view_ptr(x)?,
                    self.view_ptr(y)?,
                    self.opt_view_ptr(weight.as_ref())?,
                    self.opt_view_ptr(bias.as_ref())?,
                    self.dim(rows)?,
                    self.dim(cols)?,
                    self.b.ins().f32const(*eps),
                ];
                self.call_rt(RtFn::LayerNorm, &args)
            }
            Extern::Sdpa {
                q,
                k,
                v,
                mask,
                y,
                causal,
                scale,
            } => {
                let mut args = vec![
                    self.view_ptr(q)?,
                    self.view_ptr(k)?,
                    self.view_ptr(v)?,
                    self.opt_view_ptr(mask.as_ref())?,
                    self.view_ptr(y)?,
                ];
                args.extend(self.dims_of(&q.shape[..2])?);
                args.push(self.dim(&k.shape[1])?);
                args.push(self.dim(&q.shape[2])?);
                args.push(self.dim(&k.shape[2])?);
                args.push(self.dim(&q.shape[3])?);
                args.push(self.dim(&v.shape[3])?);
                match mask {
                    Some(m) => args.extend(self.dims_of(&m.strides)?),
                    None => {
                        let z = self.iconst(0);
                        args.extend([z, z, z, z]);
                    }
                }
                args.push(self.iconst(*causal as i64));
                args.push(self.b.ins().f32const(*scale));
                self.call_rt(RtFn::Sdpa, &args)
            }
            Extern::Scatter {
                offsets,
                values,
                out,
                op,
                include_self,
            } => {
                let f = match out.dtype {
                    DType::F64 => RtFn::ScatterF64,
                    DType::I64 => RtFn::ScatterI64,
                    d => return Err(internal(format!("a scatter into {d}"))),
                };
                let out_len = SymExpr::mul(out.shape.clone());
                let n = SymExpr::mul(values.shape.clone());
                let args = vec![
                    self.view_ptr(out)?,
                    self.dim(&out_len)?,
                    self.view_ptr(offsets)?,
                    self.view_ptr(values)?,
                    self.dim(&n)?,
                    self.iconst(op.code()),
                    self.iconst(*include_self as i64),
                ];
                self.call_rt(f, &args)
            }
            Extern::Argsort {
                x,
                idx,
                rows,
                len,
                k,
                descending,
            } => {
                let mut args = vec![self.view_ptr(x)?, self.view_ptr(idx)?];
                args.extend(self.dims_of(&[rows.clone(), len.clone(), k.clone()])?);
                args.push(self.iconst(*descending as i64));
                self.call_rt(RtFn::Argsort, &args)
            }
        }
    }

    // ---- the entry function ----

    fn entry_fn(&mut self, kernel_ids: &[Option<FuncId>], opts: LowerOptions) -> Result<()> {
        let entry = self.b.create_block();
        self.b.append_block_params_for_function_params(entry);
        self.b.switch_to_block(entry);
        let ctx = self.b.block_params(entry)[0];
        let mut sizes = Vec::new();
        let mut bufs = Vec::new();
        for k in &self.plan.kernels {
            sizes.extend(kernel_sizes(k));
            bufs.extend(k.reads());
            bufs.extend(k.writes());
        }
        // Loop-kernel range sizes.
        for k in &self.plan.kernels {
            if let Some(s) = rows_and_grain(k).map(|r| r.0) {
                sizes.push(s);
            }
        }
        sizes.sort_by_key(|s| s.to_string());
        sizes.dedup();
        bufs.sort();
        bufs.dedup();
        self.prologue(ctx, &sizes, &bufs)?;
        let fail = self.b.create_block();
        self.b.append_block_param(fail, types::I32);
        let plan = self.plan;
        for (i, k) in plan.kernels.iter().enumerate() {
            let status = match &k.kind {
                KernelKind::Pointwise { .. } | KernelKind::Reduction { .. } => {
                    let id = kernel_ids[i].ok_or_else(|| internal("kernel not declared"))?;
                    let (rows, grain, elems) =
                        rows_and_grain(k).ok_or_else(|| internal("kernel has no range"))?;
                    let rows_v = self.dim(&rows)?;
                    let f = self.func_ref(id);
                    let small = elems.as_int().is_some_and(|n| n < PARALLEL_MIN_ELEMS);
                    if opts.parallel && !small {
                        let fp = self.b.ins().func_addr(types::I64, f);
                        let g = self.iconst(grain);
                        let s = self.call_named(
                            "torchlift_rt_parallel_for",
                            &[types::I64, types::I64, types::I64, types::I64],
                            Some(types::I32),
                            &[fp, ctx, rows_v, g],
                        )?;
                        s.ok_or_else(|| internal("no result"))?
                    } else {
                        let zero = self.iconst(0);
                        let inst = self.b.ins().call(f, &[ctx, zero, rows_v]);
                        self.b.inst_results(inst)[0]
                    }
                }
                KernelKind::Extern(e) => self.extern_call(e)?,
                KernelKind::Fallback { .. } => {
                    let ki = self.iconst(i as i64);
                    self.call_named(
                        FALLBACK_NAME,
                        &[types::I64, types::I64],
                        Some(types::I32),
                        &[ctx, ki],
                    )?
                    .ok_or_else(|| internal("no result"))?
                }
            };
            let next = self.b.create_block();
            let code = self.b.ins().iconst(types::I32, i as i64 + 1);
            self.b.ins().brif(status, fail, &[code.into()], next, &[]);
            self.b.switch_to_block(next);
        }
        let zero = self.b.ins().iconst(types::I32, 0);
        self.b.ins().return_(&[zero]);
        self.b.switch_to_block(fail);
        let code = self.b.block_params(fail)[0];
        self.b.ins().return_(&[code]);
        self.b.seal_all_blocks();
        Ok(())
    }
}

/// The size of a loop kernel's outer range, the grain (rows per task) and
/// the number of elements it computes.
pub fn rows_and_grain(k: &Kernel) -> Option<(SymExpr, i64, SymExpr)> {
    match &k.kind {
        KernelKind::Pointwise { out, .. } => {
            let r = out.shape.len();
            if r == 0 {
                return Some((SymExpr::Int(1), 1, SymExpr::Int(1)));
            }
            let last = &out.shape[r - 1];
            let nch = SymExpr::floor_div(
                SymExpr::add(vec![last.clone(), SymExpr::Int(CHUNK - 1)]),
                SymExpr::Int(CHUNK),
            );
            let mut rows = out.shape[..r - 1].to_vec();
            rows.push(nch);
            let per_row = last.as_int().map(|l| l.clamp(1, CHUNK)).unwrap_or(CHUNK);
            let grain = (16 * 1024 / per_row).max(1);
            Some((SymExpr::mul(rows), grain, SymExpr::mul(out.shape.clone())))
        }
        KernelKind::Reduction { out, reduced, .. } => {
            let per = SymExpr::mul(reduced.clone())
                .as_int()
                .unwrap_or(1024)
                .max(1);
            let grain = (16 * 1024 / per).max(1);
            let mut all = out.shape.clone();
            all.extend(reduced.iter().cloned());
            Some((SymExpr::mul(out.shape.clone()), grain, SymExpr::mul(all)))
        }
        _ => None,
    }
}

/// The inline polynomial for an op, where one exists for every argument
/// (sin and cos are exact only up to `math::SIN_COS_MAX_ARG`, so they call
/// libm).
fn inline_math(op: UnOp) -> Option<super::math::MathFn> {
    use super::math::MathFn;
    Some(match op {
        UnOp::Exp => MathFn::Exp,
        UnOp::Expm1 => MathFn::Expm1,
        UnOp::Log => MathFn::Log,
        UnOp::Log1p => MathFn::Log1p,
        UnOp::Tanh => MathFn::Tanh,
        UnOp::Sigmoid => MathFn::Sigmoid,
        UnOp::Erf => MathFn::Erf,
        _ => return None,
    })
}

/// Whether `off` is `base + var` with `base` independent of `var`.
fn unit_stride(off: &Expr, var: u8) -> bool {
    match off {
        Expr::Var(v) => *v == var,
        Expr::Binary(BinOp::Add, a, b) => {
            (unit_stride(a, var) && !b.uses_var(var)) || (unit_stride(b, var) && !a.uses_var(var))
        }
        _ => false,
    }
}

/// Whether `e` can be computed four lanes at a time. `top` is true for the
/// stored value (which must be `f32`).
fn vectorizable(e: &Expr, top: bool) -> bool {
    let f32 = e.dtype() == DType::F32;
    match e {
        Expr::Load(_, d, _) => *d == DType::F32,
        Expr::Float(_, d) => *d == DType::F32,
        Expr::Unary(op, a) => {
            f32 && (matches!(
                op,
                UnOp::Neg
                    | UnOp::Abs
                    | UnOp::Sqrt
                    | UnOp::Rsqrt
                    | UnOp::Reciprocal
                    | UnOp::Floor
                    | UnOp::Ceil
                    | UnOp::Round
                    | UnOp::Trunc
                    | UnOp::Relu
            ) || inline_math(*op).is_some())
                && vectorizable(a, false)
        }
        Expr::Binary(op, a, b) => {
            f32 && matches!(
                op,
                BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Max | BinOp::Min
            ) && vectorizable(a, false)
                && vectorizable(b, false)
        }
        Expr::Cmp(_, a, b) => {
            !top && a.dtype() == DType::F32 && vectorizable(a, false) && vectorizable(b, false)
        }
        Expr::Where(c, a, b) => {
            f32 && vectorizable(c, false) && vectorizable(a, false) && vectorizable(b, false)
        }
        _ => false,
    }
}

/// Lowers a shape expression to `i64` arithmetic on the symbols, caching
/// each subexpression.
pub(super) fn lower_dim(
    b: &mut FunctionBuilder<'_>,
    cache: &mut HashMap<SymExpr, Value>,
    symbols: &[String],
    syms: Value,
    e: &SymExpr,
) -> Result<Value> {
    if let Some(&v) = cache.get(e) {
        return Ok(v);
    }
    let i64t = types::I64;
    let v = match e {
        SymExpr::Int(c) => b.ins().iconst(i64t, *c),
        SymExpr::Symbol(s) => {
            let j = symbols
                .iter()
                .position(|x| x == s)
                .ok_or_else(|| internal(format!("unknown symbol {s}")))?;
            let off = i32::try_from(j * 8).map_err(|_| internal("too many symbols"))?;
            b.ins().load(i64t, flags(), syms, off)
        }
        SymExpr::Add(ts) | SymExpr::Mul(ts) | SymExpr::Max(ts) | SymExpr::Min(ts) => {
            let vals = ts
                .iter()
                .map(|t| lower_dim(b, cache, symbols, syms, t))
                .collect::<Result<Vec<_>>>()?;
            let mut acc = vals[0];
            for &x in &vals[1..] {
                acc = match e {
                    SymExpr::Add(_) => b.ins().iadd(acc, x),
                    SymExpr::Mul(_) => b.ins().imul(acc, x),
                    SymExpr::Max(_) => b.ins().smax(acc, x),
                    _ => b.ins().smin(acc, x),
                };
            }
            acc
        }
        SymExpr::FloorDiv(a, d) | SymExpr::Mod(a, d) | SymExpr::PythonMod(a, d) => {
            // The caller evaluated every dim before the call, so the
            // divisor is not zero here.
            let a = lower_dim(b, cache, symbols, syms, a)?;
            let d = lower_dim(b, cache, symbols, syms, d)?;
            let q = b.ins().sdiv(a, d);
            let r = b.ins().srem(a, d);
            // Round towards negative infinity: adjust when the remainder
            // is non-zero and its sign differs from the divisor's.
            let nz = b.ins().icmp_imm_s(IntCC::NotEqual, r, 0);
            let x = b.ins().bxor(r, d);
            let neg = b.ins().icmp_imm_s(IntCC::SignedLessThan, x, 0);
            let adjust = b.ins().band(nz, neg);
            let adjust = b.ins().uextend(i64t, adjust);
            if matches!(e, SymExpr::FloorDiv(..)) {
                b.ins().isub(q, adjust)
            } else {
                let add = b.ins().imul(adjust, d);
                b.ins().iadd(r, add)
            }
        }
        SymExpr::CleanDiv(a, d) => {
            let a = lower_dim(b, cache, symbols, syms, a)?;
            let d = lower_dim(b, cache, symbols, syms, d)?;
            b.ins().sdiv(a, d)
        }
        other => {
            return Err(Error::other(format!(
                "the compiler does not support the shape expression {other} yet"
            )))
        }
    };
    cache.insert(e.clone(), v);
    Ok(v)
}

/// Lowers one dim expression as `fn(syms: *const i64) -> i64`, for testing
/// [`lower_dim`] on its own.
pub fn lower_dim_function(
    module: &mut dyn Module,
    e: &SymExpr,
    symbols: &[String],
) -> Result<FuncId> {
    let mut sig = Signature::new(module.isa().default_call_conv());
    sig.params.push(AbiParam::new(types::I64));
    sig.returns.push(AbiParam::new(types::I64));
    let id = module
        .declare_function("torchlift_dim", Linkage::Export, &sig)
        .map_err(|e| internal(format!("declaring torchlift_dim: {e}")))?;
    let mut ctx: Context = module.make_context();
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    let mut fcx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut ctx.func, &mut fcx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let syms = b.block_params(entry)[0];
    let v = lower_dim(&mut b, &mut HashMap::new(), symbols, syms, e)?;
    b.ins().return_(&[v]);
    b.seal_all_blocks();
    b.finalize(module.target_config());
    define(module, id, &mut ctx, "a dim")?;
    Ok(id)
}

/// The ABI type of a runtime parameter as a Cranelift type.
pub fn abi_type(t: AbiType) -> Type {
    match t {
        AbiType::I64 | AbiType::Ptr => types::I64,
        AbiType::F32 => types::F32,
    }
}
