//! Lowering of a functional core-ATen graph to one Cranelift function.
//!
//! Every node becomes a block of CLIF (annotated with the node in
//! [`clif_text`]): elementwise ops and copies become loop nests over the
//! output's index space with NumPy broadcasting of the operands; GEMMs and
//! transcendental functions call the runtime (`torchlift_runtime::abi`).
//! Dims are lowered from their [`SymExpr`] to `i64` arithmetic once, in the
//! entry block, so every later block can use them.

use std::collections::HashMap;

use cranelift_codegen::ir::{
    condcodes::IntCC, types, AbiParam, Block, FuncRef, Function, InstBuilder, MemFlagsData,
    Signature, Type, UserFuncName, Value,
};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Linkage, Module};
use torchlift_runtime::abi::{AbiType, RtFn};

use crate::error::{Error, Result, SourceLoc};
use crate::interp::tensor::wrap_dim;
use crate::ir::{Arg, Aten, Graph, Node, Op, Program, ValueId};
use crate::sym::SymExpr;

use super::{FrameLayout, ENTRY_NAME};

/// Lowers `p` into `module` as the function [`ENTRY_NAME`] and returns its id.
pub fn lower_program(module: &mut dyn Module, p: &Program) -> Result<FuncId> {
    Ok(lower_program_full(module, p)?.id)
}

/// A size equality the generated code relies on that could not be proved
/// symbolically; the caller checks it with the bound symbols before every
/// call.
#[derive(Clone, Debug)]
pub struct SizeCheck {
    pub node: String,
    pub loc: SourceLoc,
    pub what: String,
    pub lhs: SymExpr,
    pub rhs: SymExpr,
}

/// The result of lowering a program.
pub struct Lowered {
    pub id: FuncId,
    /// The CLIF text, each node's first block preceded by a comment naming
    /// the aten node and its source line.
    pub clif: String,
    /// Size equalities to check before each call.
    pub checks: Vec<SizeCheck>,
}

/// As [`lower_program`], also returning the annotated CLIF and the run-time
/// size checks.
pub fn lower_program_full(module: &mut dyn Module, p: &Program) -> Result<Lowered> {
    let layout = FrameLayout::new(p)?;
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(ptr));
    sig.params.push(AbiParam::new(ptr));
    let id = module
        .declare_function(ENTRY_NAME, Linkage::Export, &sig)
        .map_err(|e| Error::other(format!("jit: declaring {ENTRY_NAME}: {e}")))?;
    let mut ctx: Context = module.make_context();
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    let mut fcx = FunctionBuilderContext::new();
    let frontend = module.target_config();
    let (notes, checks) = {
        let b = FunctionBuilder::new(&mut ctx.func, &mut fcx);
        let mut l = Lower {
            b,
            module: &mut *module,
            g: &p.graph,
            layout: &layout,
            ptr,
            bufs: Vec::new(),
            dims: HashMap::new(),
            rt: HashMap::new(),
            notes: Vec::new(),
            checks: Vec::new(),
        };
        l.body()?;
        let Lower {
            b, notes, checks, ..
        } = l;
        b.finalize(frontend);
        (notes, checks)
    };
    let text = clif_text(&ctx.func, &notes);
    module
        .define_function(id, &mut ctx)
        .map_err(|e| Error::other(format!("jit: compiling the graph: {e:?}")))?;
    Ok(Lowered {
        id,
        clif: text,
        checks,
    })
}

/// Lowers one dim expression as `fn(syms: *const i64) -> i64`, for testing
/// [`lower_dim`] on its own.
pub fn lower_dim_function(
    module: &mut dyn Module,
    e: &SymExpr,
    symbols: &[String],
) -> Result<FuncId> {
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(ptr));
    sig.returns.push(AbiParam::new(types::I64));
    let id = module
        .declare_function("torchlift_dim", Linkage::Export, &sig)
        .map_err(|e| Error::other(format!("jit: declaring torchlift_dim: {e}")))?;
    let mut ctx: Context = module.make_context();
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    let mut fcx = FunctionBuilderContext::new();
    let frontend = module.target_config();
    let mut b = FunctionBuilder::new(&mut ctx.func, &mut fcx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let syms = b.block_params(entry)[0];
    let v = lower_dim(&mut b, &mut HashMap::new(), symbols, syms, e)?;
    b.ins().return_(&[v]);
    b.seal_all_blocks();
    b.finalize(frontend);
    module
        .define_function(id, &mut ctx)
        .map_err(|e| Error::other(format!("jit: compiling a dim: {e:?}")))?;
    Ok(id)
}

/// The function as CLIF text, each node's first block preceded by a comment
/// naming the aten node and its source line.
fn clif_text(func: &Function, notes: &[(Block, String)]) -> String {
    struct Annotated<'a>(&'a HashMap<Block, &'a str>);
    impl cranelift_codegen::write::FuncWriter for Annotated<'_> {
        fn write_block_header(
            &mut self,
            w: &mut dyn std::fmt::Write,
            func: &Function,
            block: Block,
            indent: usize,
        ) -> std::fmt::Result {
            if let Some(note) = self.0.get(&block) {
                writeln!(w, "; {note}")?;
            }
            cranelift_codegen::write::PlainWriter.write_block_header(w, func, block, indent)
        }
        fn write_instruction(
            &mut self,
            w: &mut dyn std::fmt::Write,
            func: &Function,
            aliases: &cranelift_codegen::entity::SecondaryMap<Value, Vec<Value>>,
            inst: cranelift_codegen::ir::Inst,
            indent: usize,
        ) -> std::fmt::Result {
            cranelift_codegen::write::PlainWriter.write_instruction(w, func, aliases, inst, indent)
        }
    }
    let map: HashMap<Block, &str> = notes.iter().map(|(b, s)| (*b, s.as_str())).collect();
    let mut out = String::new();
    let _ = cranelift_codegen::write::decorate_function(&mut Annotated(&map), &mut out, func);
    out
}

/// One operand of an elementwise loop.
#[derive(Clone, Debug)]
enum Operand {
    /// A tensor value, broadcast to the output's shape.
    Tensor(ValueId),
    /// A scalar constant.
    Scalar(f32),
}

/// The scalar computation of an elementwise loop, on the loaded operands.
#[derive(Copy, Clone, Debug)]
enum Ew {
    Copy,
    /// `a + alpha * b`.
    Add(f32),
    /// `a - alpha * b`.
    Sub(f32),
    Mul,
    Div,
    Neg,
    Abs,
    Sqrt,
    Relu,
    Max,
    Min,
    Clamp(Option<f32>, Option<f32>),
}

struct Lower<'a, 'b> {
    b: FunctionBuilder<'b>,
    module: &'a mut dyn Module,
    g: &'a Graph,
    layout: &'a FrameLayout,
    ptr: Type,
    /// Base pointer of each slot, loaded in the entry block.
    bufs: Vec<Value>,
    /// Every slot dim, computed in the entry block.
    dims: HashMap<SymExpr, Value>,
    rt: HashMap<RtFn, FuncRef>,
    notes: Vec<(Block, String)>,
    checks: Vec<SizeCheck>,
}

fn flags() -> MemFlagsData {
    MemFlagsData::trusted()
}

fn unsupported(n: &Node) -> Error {
    n.error(format!("jit backend does not support {} yet", n.op))
}

impl<'a> Lower<'a, '_> {
    fn body(&mut self) -> Result<()> {
        let entry = self.b.create_block();
        self.b.append_block_params_for_function_params(entry);
        self.b.switch_to_block(entry);
        let bufs_ptr = self.b.block_params(entry)[0];
        let syms_ptr = self.b.block_params(entry)[1];
        for i in 0..self.layout.slots.len() {
            let off = i32::try_from(i * self.ptr.bytes() as usize)
                .map_err(|_| Error::other("jit: too many values"))?;
            let p = self.b.ins().load(self.ptr, flags(), bufs_ptr, off);
            self.bufs.push(p);
        }
        let shapes = self.layout.shapes.clone();
        for shape in &shapes {
            for d in shape {
                lower_dim(
                    &mut self.b,
                    &mut self.dims,
                    &self.layout.symbols,
                    syms_ptr,
                    d,
                )?;
            }
        }
        for n in &self.g.nodes {
            let block = self.b.create_block();
            self.b.ins().jump(block, &[]);
            self.b.switch_to_block(block);
            let loc = n.meta.source_line();
            let outs: Vec<String> = n
                .outputs
                .iter()
                .map(|&v| format!("%{}", self.g.name(v)))
                .collect();
            self.notes
                .push((block, format!("{} = {}{loc}", outs.join(", "), n.op)));
            self.node(n)?;
        }
        self.b.ins().return_(&[]);
        self.b.seal_all_blocks();
        Ok(())
    }

    /// A dim computed in the entry block, or a constant emitted here.
    fn dim(&mut self, e: &SymExpr) -> Result<Value> {
        match (self.dims.get(e), e) {
            (Some(&v), _) => Ok(v),
            (None, SymExpr::Int(c)) => Ok(self.iconst(*c)),
            _ => Err(Error::other(format!("jit: dim {e} was not computed"))),
        }
    }

    fn shape(&self, v: ValueId) -> Result<&'a [SymExpr]> {
        let s = self
            .layout
            .slot(v)
            .ok_or_else(|| Error::other(format!("jit: %{} has no slot", self.g.name(v))))?;
        Ok(&self.layout.shapes[s])
    }

    fn buf(&self, v: ValueId) -> Result<Value> {
        let s = self
            .layout
            .slot(v)
            .ok_or_else(|| Error::other(format!("jit: %{} has no slot", self.g.name(v))))?;
        Ok(self.bufs[s])
    }

    /// Refuses a node whose output type is not the shape its inputs give.
    fn expect_shape(&self, n: &Node, out: ValueId, want: &[SymExpr]) -> Result<()> {
        let got = self.shape(out)?;
        if got == want {
            return Ok(());
        }
        let show = |s: &[SymExpr]| {
            s.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(n.error(format!(
            "output type [{}] does not match the shape [{}] of its inputs",
            show(got),
            show(want)
        )))
    }

    fn iconst(&mut self, c: i64) -> Value {
        self.b.ins().iconst(types::I64, c)
    }

    /// The product of `dims` (1 when empty).
    fn product(&mut self, dims: &[SymExpr]) -> Result<Value> {
        let mut acc = self.iconst(1);
        for d in dims {
            let v = self.dim(d)?;
            acc = self.b.ins().imul(acc, v);
        }
        Ok(acc)
    }

    /// Row-major element strides of a dense array of shape `dims`.
    fn strides(&mut self, dims: &[SymExpr]) -> Result<Vec<Value>> {
        let mut out = vec![self.iconst(1); dims.len()];
        for i in (0..dims.len().saturating_sub(1)).rev() {
            let d = self.dim(&dims[i + 1])?;
            out[i] = self.b.ins().imul(out[i + 1], d);
        }
        Ok(out)
    }

    /// Emits loops over `bounds` (outermost first) and calls `body` with the
    /// indices in the innermost block.
    fn loop_nest(
        &mut self,
        bounds: &[Value],
        body: &mut dyn FnMut(&mut Self, &[Value]) -> Result<()>,
    ) -> Result<()> {
        let mut idx = Vec::with_capacity(bounds.len());
        self.loop_level(bounds, &mut idx, body)
    }

    fn loop_level(
        &mut self,
        bounds: &[Value],
        idx: &mut Vec<Value>,
        body: &mut dyn FnMut(&mut Self, &[Value]) -> Result<()>,
    ) -> Result<()> {
        let Some((&n, rest)) = bounds.split_first() else {
            return body(self, idx);
        };
        let header = self.b.create_block();
        let inner = self.b.create_block();
        let exit = self.b.create_block();
        self.b.append_block_param(header, types::I64);
        let zero = self.iconst(0);
        self.b.ins().jump(header, &[zero.into()]);
        self.b.switch_to_block(header);
        let i = self.b.block_params(header)[0];
        let more = self.b.ins().icmp(IntCC::SignedLessThan, i, n);
        self.b.ins().brif(more, inner, &[], exit, &[]);
        self.b.switch_to_block(inner);
        idx.push(i);
        self.loop_level(rest, idx, body)?;
        idx.pop();
        let next = self.b.ins().iadd_imm_s(i, 1);
        self.b.ins().jump(header, &[next.into()]);
        self.b.switch_to_block(exit);
        Ok(())
    }

    /// `base + 4 * (sum of idx[d] * strides[d])`.
    fn address(&mut self, base: Value, idx: &[Value], strides: &[Value]) -> Value {
        let mut off = self.iconst(0);
        for (&i, &s) in idx.iter().zip(strides) {
            let t = self.b.ins().imul(i, s);
            off = self.b.ins().iadd(off, t);
        }
        let bytes = self.b.ins().ishl_imm_u(off, 2);
        let bytes = if self.ptr == types::I64 {
            bytes
        } else {
            self.b.ins().ireduce(self.ptr, bytes)
        };
        self.b.ins().iadd(base, bytes)
    }

    /// Strides that read `src` (shape `src_shape`) broadcast to `out_shape`.
    fn broadcast_strides(
        &mut self,
        n: &Node,
        src_shape: &[SymExpr],
        out_shape: &[SymExpr],
    ) -> Result<Vec<Value>> {
        if src_shape.len() > out_shape.len() {
            return Err(n.error("operand has a higher rank than the result"));
        }
        let dense = self.strides(src_shape)?;
        let lead = out_shape.len() - src_shape.len();
        let zero = self.iconst(0);
        let mut out = vec![zero; out_shape.len()];
        for (i, s) in src_shape.iter().enumerate() {
            let o = &out_shape[lead + i];
            out[lead + i] = if s == o {
                dense[i]
            } else if *s == SymExpr::Int(1) {
                zero
            } else {
                return Err(n.error(format!(
                    "jit backend cannot broadcast a dim {s} to {o}: not provably equal or 1"
                )));
            };
        }
        Ok(out)
    }

    /// `out = op(operands...)` elementwise, operands broadcast to `out`.
    fn elementwise(&mut self, n: &Node, out: ValueId, op: Ew, operands: &[Operand]) -> Result<()> {
        let out_shape = self.shape(out)?;
        let out_buf = self.buf(out)?;
        // A single flat loop when no operand broadcasts.
        let flat = operands.iter().all(|o| match o {
            Operand::Tensor(v) => self.shape(*v).is_ok_and(|s| s == out_shape),
            Operand::Scalar(_) => true,
        });
        let (bounds, out_strides) = if flat {
            let numel = self.product(out_shape)?;
            (vec![numel], vec![self.iconst(1)])
        } else {
            let b = out_shape
                .iter()
                .map(|d| self.dim(d))
                .collect::<Result<Vec<_>>>()?;
            (b, self.strides(out_shape)?)
        };
        /// Where an operand's elements come from inside the loop.
        enum Src {
            Strided(Value, Vec<Value>),
            Scalar(f32),
        }
        let mut srcs = Vec::new();
        for o in operands {
            srcs.push(match o {
                Operand::Tensor(v) => {
                    let strides = if flat {
                        out_strides.clone()
                    } else {
                        let s = self.shape(*v)?;
                        self.broadcast_strides(n, s, out_shape)?
                    };
                    Src::Strided(self.buf(*v)?, strides)
                }
                Operand::Scalar(c) => Src::Scalar(*c),
            });
        }
        self.loop_nest(&bounds, &mut |l, idx| {
            let mut xs = Vec::with_capacity(srcs.len());
            for src in &srcs {
                xs.push(match src {
                    Src::Strided(base, strides) => {
                        let addr = l.address(*base, idx, strides);
                        l.b.ins().load(types::F32, flags(), addr, 0)
                    }
                    Src::Scalar(c) => l.b.ins().f32const(*c),
                });
            }
            let y = l.scalar_op(op, &xs);
            let addr = l.address(out_buf, idx, &out_strides);
            l.b.ins().store(flags(), y, addr, 0);
            Ok(())
        })
    }

    fn scalar_op(&mut self, op: Ew, xs: &[Value]) -> Value {
        match op {
            Ew::Copy => xs[0],
            Ew::Add(alpha) | Ew::Sub(alpha) => {
                let mut y = xs[1];
                if alpha != 1.0 {
                    let a = self.b.ins().f32const(alpha);
                    y = self.b.ins().fmul(a, y);
                }
                if matches!(op, Ew::Add(_)) {
                    self.b.ins().fadd(xs[0], y)
                } else {
                    self.b.ins().fsub(xs[0], y)
                }
            }
            Ew::Mul => self.b.ins().fmul(xs[0], xs[1]),
            Ew::Div => self.b.ins().fdiv(xs[0], xs[1]),
            Ew::Neg => self.b.ins().fneg(xs[0]),
            Ew::Abs => self.b.ins().fabs(xs[0]),
            Ew::Sqrt => self.b.ins().sqrt(xs[0]),
            Ew::Relu => {
                let z = self.b.ins().f32const(0.0);
                self.b.ins().fmax(xs[0], z)
            }
            Ew::Max => self.b.ins().fmax(xs[0], xs[1]),
            Ew::Min => self.b.ins().fmin(xs[0], xs[1]),
            Ew::Clamp(lo, hi) => {
                let mut y = xs[0];
                if let Some(lo) = lo {
                    let c = self.b.ins().f32const(lo);
                    y = self.b.ins().fmax(y, c);
                }
                if let Some(hi) = hi {
                    let c = self.b.ins().f32const(hi);
                    y = self.b.ins().fmin(y, c);
                }
                y
            }
        }
    }

    fn runtime(&mut self, f: RtFn) -> Result<FuncRef> {
        if let Some(&r) = self.rt.get(&f) {
            return Ok(r);
        }
        let sym = f.symbol();
        let mut sig: Signature = self.module.make_signature();
        for p in sym.params {
            sig.params.push(AbiParam::new(match p {
                AbiType::I64 => types::I64,
                AbiType::F32 => types::F32,
                AbiType::Ptr => self.ptr,
            }));
        }
        let id = self
            .module
            .declare_function(sym.name, Linkage::Import, &sig)
            .map_err(|e| Error::other(format!("jit: declaring {}: {e}", sym.name)))?;
        let r = self.module.declare_func_in_func(id, self.b.func);
        self.rt.insert(f, r);
        Ok(r)
    }

    fn call(&mut self, f: RtFn, args: &[Value]) -> Result<()> {
        let r = self.runtime(f)?;
        self.b.ins().call(r, args);
        Ok(())
    }

    fn node(&mut self, n: &Node) -> Result<()> {
        let Op::Aten(a, overload) = &n.op else {
            return Err(unsupported(n));
        };
        // Outputs nothing reads have no slot. A node none of whose outputs
        // is read computes nothing observable; one whose extra outputs are
        // read is outside the slice.
        let Some((&out, extra)) = n.outputs.split_first() else {
            return Err(unsupported(n));
        };
        if let Some(&v) = extra.iter().find(|&&v| self.layout.slot(v).is_some()) {
            return Err(n.error(format!(
                "jit backend does not support {} with its output %{} used yet",
                n.op,
                self.g.name(v)
            )));
        }
        if self.layout.slot(out).is_none() {
            return Ok(());
        }
        let tensor = |name: &str| -> Result<ValueId> {
            n.arg(name)
                .and_then(Arg::as_value)
                .ok_or_else(|| n.error(format!("argument {name} is not a tensor")))
        };
        let layout: &FrameLayout = self.layout;
        let operand = |name: &str| -> Result<Operand> {
            match n.arg(name) {
                Some(Arg::Value(v)) if layout.slot(*v).is_some() => Ok(Operand::Tensor(*v)),
                Some(a) => scalar(a)
                    .map(Operand::Scalar)
                    .ok_or_else(|| n.error(format!("argument {name} is not a tensor or a number"))),
                None => Err(n.error(format!("argument {name} is missing"))),
            }
        };
        let opt_scalar = |name: &str, default: f32| -> Result<f32> {
            match n.arg(name) {
                None | Some(Arg::None) => Ok(default),
                Some(a) => {
                    scalar(a).ok_or_else(|| n.error(format!("argument {name} is not a number")))
                }
            }
        };
        let opt_bound = |name: &str| -> Result<Option<f32>> {
            match n.arg(name) {
                None | Some(Arg::None) => Ok(None),
                Some(a) => scalar(a)
                    .map(Some)
                    .ok_or_else(|| n.error(format!("argument {name} is not a number"))),
            }
        };
        use Aten::*;
        match (a, overload.as_str()) {
            (Add | Sub, "Tensor" | "Scalar") => {
                let alpha = opt_scalar("alpha", 1.0)?;
                let op = if *a == Add {
                    Ew::Add(alpha)
                } else {
                    Ew::Sub(alpha)
                };
                let ops = [operand("self")?, operand("other")?];
                self.elementwise(n, out, op, &ops)
            }
            (Mul | Div, "Tensor" | "Scalar") | (Maximum | Minimum, "default") => {
                let op = match a {
                    Mul => Ew::Mul,
                    Div => Ew::Div,
                    Maximum => Ew::Max,
                    _ => Ew::Min,
                };
                let ops = [operand("self")?, operand("other")?];
                self.elementwise(n, out, op, &ops)
            }
            (Neg | Abs | Sqrt | Relu | Clone | Alias, "default") => {
                // Every buffer is dense row-major: `clone`'s memory_format is moot.
                let op = match a {
                    Neg => Ew::Neg,
                    Abs => Ew::Abs,
                    Sqrt => Ew::Sqrt,
                    Relu => Ew::Relu,
                    _ => Ew::Copy,
                };
                self.elementwise(n, out, op, &[Operand::Tensor(tensor("self")?)])
            }
            (Hardtanh, "default") => {
                let lo = opt_scalar("min_val", -1.0)?;
                let hi = opt_scalar("max_val", 1.0)?;
                let op = Ew::Clamp(Some(lo), Some(hi));
                self.elementwise(n, out, op, &[Operand::Tensor(tensor("self")?)])
            }
            (Clamp, "default") | (ClampMin | ClampMax, "default") => {
                let (lo, hi) = match a {
                    Clamp => (opt_bound("min")?, opt_bound("max")?),
                    ClampMin => (opt_bound("min")?, None),
                    _ => (None, opt_bound("max")?),
                };
                let op = Ew::Clamp(lo, hi);
                self.elementwise(n, out, op, &[Operand::Tensor(tensor("self")?)])
            }
            (View | Reshape | InternalUnsafeView, "default") => {
                // Buffers are dense: a view is a copy of the same elements.
                let src = tensor("self")?;
                let (src_n, out_n) = (
                    SymExpr::mul(self.shape(src)?.to_vec()),
                    SymExpr::mul(self.shape(out)?.to_vec()),
                );
                if src_n != out_n {
                    self.checks.push(SizeCheck {
                        node: n.name.clone(),
                        loc: n.meta.source_line(),
                        what: "element count of the view".into(),
                        lhs: out_n,
                        rhs: src_n,
                    });
                }
                let count = self.product(self.shape(out)?)?;
                let (s, d) = (self.buf(src)?, self.buf(out)?);
                let ones = [self.iconst(1)];
                self.loop_nest(&[count], &mut |l, idx| {
                    let from = l.address(s, idx, &ones);
                    let x = l.b.ins().load(types::F32, flags(), from, 0);
                    let to = l.address(d, idx, &ones);
                    l.b.ins().store(flags(), x, to, 0);
                    Ok(())
                })
            }
            (Permute, "default") => {
                let src = tensor("self")?;
                let src_shape = self.shape(src)?;
                let dims = n
                    .arg("dims")
                    .and_then(Arg::as_ints)
                    .ok_or_else(|| n.error("argument dims is not a list of ints"))?;
                let rank = src_shape.len();
                let perm = dims
                    .iter()
                    .map(|&d| wrap_dim(d, rank).map_err(|e| n.error(e.to_string())))
                    .collect::<Result<Vec<_>>>()?;
                if perm.len() != rank {
                    return Err(n.error("permute: dims do not match the rank"));
                }
                let want: Vec<SymExpr> = perm.iter().map(|&p| src_shape[p].clone()).collect();
                self.expect_shape(n, out, &want)?;
                let src_strides = self.strides(src_shape)?;
                let strides: Vec<Value> = perm.iter().map(|&p| src_strides[p]).collect();
                let out_shape = self.shape(out)?;
                let bounds = out_shape
                    .iter()
                    .map(|d| self.dim(d))
                    .collect::<Result<Vec<_>>>()?;
                let out_strides = self.strides(out_shape)?;
                let (s, d) = (self.buf(src)?, self.buf(out)?);
                self.loop_nest(&bounds, &mut |l, idx| {
                    let from = l.address(s, idx, &strides);
                    let x = l.b.ins().load(types::F32, flags(), from, 0);
                    let to = l.address(d, idx, &out_strides);
                    l.b.ins().store(flags(), x, to, 0);
                    Ok(())
                })
            }
            (Exp | Log | Tanh | Sigmoid | Silu | Erf, "default") | (Gelu, "default") => {
                let f = match a {
                    Exp => RtFn::Exp,
                    Log => RtFn::Log,
                    Tanh => RtFn::Tanh,
                    Sigmoid => RtFn::Sigmoid,
                    Silu => RtFn::Silu,
                    Erf => RtFn::Erf,
                    _ => match n.arg("approximate") {
                        None | Some(Arg::None) => RtFn::Gelu,
                        Some(Arg::Str(s)) if s == "none" => RtFn::Gelu,
                        Some(Arg::Str(s)) if s == "tanh" => RtFn::GeluTanh,
                        Some(_) => return Err(n.error("gelu: unknown approximation")),
                    },
                };
                let src = tensor("self")?;
                self.expect_shape(n, out, self.shape(src)?)?;
                let count = self.product(self.shape(out)?)?;
                let args = [self.buf(src)?, self.buf(out)?, count];
                self.call(f, &args)
            }
            (Softmax | LogSoftmax, "int")
            | (InternalSoftmax | InternalLogSoftmax | InternalSafeSoftmax, "default") => {
                if matches!(n.arg("half_to_float"), Some(Arg::Bool(true)))
                    || !matches!(n.arg("dtype"), None | Some(Arg::None))
                {
                    return Err(n.error(format!(
                        "jit backend does not support {} with a dtype change yet",
                        n.op
                    )));
                }
                let src = tensor("self")?;
                let shape = self.shape(src)?;
                self.expect_shape(n, out, shape)?;
                let dim = match n.arg("dim") {
                    Some(Arg::Int(d)) => *d,
                    _ => return Err(n.error("argument dim is not an int")),
                };
                let d = wrap_dim(dim, shape.len().max(1)).map_err(|e| n.error(e.to_string()))?;
                let (outer, len, inner) = if shape.is_empty() {
                    (self.iconst(1), self.iconst(1), self.iconst(1))
                } else {
                    (
                        self.product(&shape[..d])?,
                        self.dim(&shape[d])?,
                        self.product(&shape[d + 1..])?,
                    )
                };
                let f = if matches!(a, LogSoftmax | InternalLogSoftmax) {
                    RtFn::LogSoftmax
                } else {
                    RtFn::Softmax
                };
                let args = [self.buf(src)?, self.buf(out)?, outer, len, inner];
                self.call(f, &args)
            }
            (Addmm | Mm, "default") => {
                if *a == Addmm
                    && (opt_scalar("alpha", 1.0)? != 1.0 || opt_scalar("beta", 1.0)? != 1.0)
                {
                    return Err(n.error(
                        "jit backend does not support addmm with alpha or beta other than 1 yet",
                    ));
                }
                let m1 = tensor(if *a == Mm { "self" } else { "mat1" })?;
                let m2 = tensor("mat2")?;
                let s1 = self.shape(m1)?;
                let s2 = self.shape(m2)?;
                let [m, k] = s1 else {
                    return Err(n.error("mat1 is not a matrix"));
                };
                let [k2, nn] = s2 else {
                    return Err(n.error("mat2 is not a matrix"));
                };
                if k != k2 {
                    return Err(n.error(format!("inner dims {k} and {k2} differ")));
                }
                self.expect_shape(n, out, &[m.clone(), nn.clone()])?;
                let beta_zero = if *a == Addmm {
                    // `out = bias` broadcast, then `out += mat1 @ mat2`.
                    let bias = tensor("self")?;
                    self.elementwise(n, out, Ew::Copy, &[Operand::Tensor(bias)])?;
                    0
                } else {
                    1
                };
                let (m, k, nn) = (self.dim(m)?, self.dim(k)?, self.dim(nn)?);
                let bz = self.iconst(beta_zero);
                let args = [
                    m,
                    k,
                    nn,
                    self.buf(m1)?,
                    k,
                    self.buf(m2)?,
                    nn,
                    self.buf(out)?,
                    nn,
                    bz,
                ];
                self.call(RtFn::Sgemm, &args)
            }
            (Sum, "dim_IntList" | "default") => {
                if !matches!(n.arg("dtype"), None | Some(Arg::None)) {
                    return Err(n.error("jit backend does not support sum with a dtype yet"));
                }
                let src = tensor("self")?;
                let shape = self.shape(src)?;
                let rank = shape.len();
                let dims: Vec<usize> = match n.arg("dim") {
                    None | Some(Arg::None) => (0..rank).collect(),
                    Some(arg) => {
                        let ds = arg
                            .as_ints()
                            .ok_or_else(|| n.error("argument dim is not a list of ints"))?;
                        if ds.is_empty() {
                            (0..rank).collect()
                        } else {
                            ds.iter()
                                .map(|&d| {
                                    wrap_dim(d, rank.max(1)).map_err(|e| n.error(e.to_string()))
                                })
                                .collect::<Result<_>>()?
                        }
                    }
                };
                let keepdim = matches!(n.arg("keepdim"), Some(Arg::Bool(true)));
                let want: Vec<SymExpr> = shape
                    .iter()
                    .enumerate()
                    .filter_map(|(i, d)| match (dims.contains(&i), keepdim) {
                        (false, _) => Some(d.clone()),
                        (true, true) => Some(SymExpr::Int(1)),
                        (true, false) => None,
                    })
                    .collect();
                self.expect_shape(n, out, &want)?;
                self.reduce_sum(src, out, shape, &dims)
            }
            (Mean, "dim") => {
                if !matches!(n.arg("dtype"), None | Some(Arg::None)) {
                    return Err(n.error("jit backend does not support mean with a dtype yet"));
                }
                let src = tensor("self")?;
                let shape = self.shape(src)?;
                let rank = shape.len();
                let ds = match n.arg("dim") {
                    None | Some(Arg::None) => Vec::new(),
                    Some(arg) => arg
                        .as_ints()
                        .ok_or_else(|| n.error("argument dim is not a list of ints"))?,
                };
                let mut dims: Vec<usize> = if ds.is_empty() {
                    (0..rank).collect()
                } else {
                    ds.iter()
                        .map(|&d| wrap_dim(d, rank.max(1)).map_err(|e| n.error(e.to_string())))
                        .collect::<Result<_>>()?
                };
                dims.sort_unstable();
                dims.dedup();
                let keepdim = matches!(n.arg("keepdim"), Some(Arg::Bool(true)));
                let want: Vec<SymExpr> = shape
                    .iter()
                    .enumerate()
                    .filter_map(|(i, d)| match (dims.contains(&i), keepdim) {
                        (false, _) => Some(d.clone()),
                        (true, true) => Some(SymExpr::Int(1)),
                        (true, false) => None,
                    })
                    .collect();
                self.expect_shape(n, out, &want)?;
                self.reduce_sum(src, out, shape, &dims)?;
                // Divide by the number of elements reduced into each one.
                let reduced: Vec<SymExpr> = dims.iter().map(|&d| shape[d].clone()).collect();
                let count = self.product(&reduced)?;
                let count = self.b.ins().fcvt_from_sint(types::F32, count);
                let numel = self.product(self.shape(out)?)?;
                let out_buf = self.buf(out)?;
                let ones = [self.iconst(1)];
                self.loop_nest(&[numel], &mut |l, idx| {
                    let at = l.address(out_buf, idx, &ones);
                    let x = l.b.ins().load(types::F32, flags(), at, 0);
                    let y = l.b.ins().fdiv(x, count);
                    l.b.ins().store(flags(), y, at, 0);
                    Ok(())
                })
            }
            (Convolution, "default") => self.convolution(n, out),
            (InternalNativeBatchNormLegitNoTraining, "default") => self.batch_norm(n, out),
            (MaxPool2dWithIndices, "default") => self.max_pool2d(n, out),
            _ => Err(unsupported(n)),
        }
    }

    /// Requires `lhs == rhs`: proved when the two are the same expression,
    /// refused when both are different constants, otherwise checked with the
    /// bound symbols before every call.
    fn require_eq(&mut self, n: &Node, what: &str, lhs: SymExpr, rhs: SymExpr) -> Result<()> {
        if lhs == rhs {
            return Ok(());
        }
        if let (Some(l), Some(r)) = (lhs.as_int(), rhs.as_int()) {
            return Err(n.error(format!("{what} is {l} but the inputs give {r}")));
        }
        self.checks.push(SizeCheck {
            node: n.name.clone(),
            loc: n.meta.source_line(),
            what: what.into(),
            lhs,
            rhs,
        });
        Ok(())
    }

    /// The pointer `0`, for an absent optional operand.
    fn null(&mut self) -> Value {
        self.b.ins().iconst(self.ptr, 0)
    }

    /// `aten.convolution`: 2-D, not transposed, weight of static shape.
    fn convolution(&mut self, n: &Node, out: ValueId) -> Result<()> {
        let tensor = |name: &str| -> Result<ValueId> {
            n.arg(name)
                .and_then(Arg::as_value)
                .ok_or_else(|| n.error(format!("argument {name} is not a tensor")))
        };
        if !matches!(n.arg("transposed"), Some(Arg::Bool(false))) {
            return Err(n.error("jit backend supports only non-transposed convolution yet"));
        }
        let (x, w) = (tensor("input")?, tensor("weight")?);
        let xs = self.shape(x)?.to_vec();
        let ws = self.shape(w)?.to_vec();
        if xs.len() != 4 || ws.len() != 4 {
            return Err(n.error("jit backend supports only 2-D convolution ([N, C, H, W]) yet"));
        }
        let wk: Vec<i64> = ws
            .iter()
            .map(|d| d.as_int())
            .collect::<Option<_>>()
            .ok_or_else(|| n.error("jit backend needs a convolution weight of static shape"))?;
        let pair = |name: &str| -> Result<[i64; 2]> {
            let v = n
                .arg(name)
                .and_then(Arg::as_ints)
                .ok_or_else(|| n.error(format!("argument {name} is not a list of ints")))?;
            match v[..] {
                [a] if a >= 0 => Ok([a, a]),
                [a, b] if a >= 0 && b >= 0 => Ok([a, b]),
                _ => Err(n.error(format!("argument {name} is not two non-negative ints"))),
            }
        };
        let (stride, pad, dil) = (pair("stride")?, pair("padding")?, pair("dilation")?);
        let groups = match n.arg("groups") {
            Some(Arg::Int(g)) if *g > 0 => *g,
            _ => return Err(n.error("argument groups is not a positive int")),
        };
        if stride.contains(&0) || dil.contains(&0) {
            return Err(n.error("stride and dilation must be positive"));
        }
        let [oc, cg, kh, kw] = wk[..] else {
            unreachable!("the weight has rank 4")
        };
        if oc % groups != 0 {
            return Err(n.error(format!(
                "{oc} output channels are not divisible by {groups} groups"
            )));
        }
        self.require_eq(
            n,
            "input channels",
            xs[1].clone(),
            SymExpr::Int(cg * groups),
        )?;
        let os = self.shape(out)?.to_vec();
        if os.len() != 4 {
            return Err(n.error("the output is not [N, C, H, W]"));
        }
        self.require_eq(n, "output batch", os[0].clone(), xs[0].clone())?;
        self.require_eq(n, "output channels", os[1].clone(), SymExpr::Int(oc))?;
        for (i, k) in [kh, kw].into_iter().enumerate() {
            let want = window_out(&xs[2 + i], k, stride[i], pad[i], dil[i]);
            self.require_eq(n, "output spatial size", os[2 + i].clone(), want)?;
        }
        let bias = match n.arg("bias") {
            None | Some(Arg::None) => None,
            Some(Arg::Value(b)) => {
                let bs = self.shape(*b)?.to_vec();
                self.require_eq(n, "bias length", SymExpr::mul(bs), SymExpr::Int(oc))?;
                Some(*b)
            }
            Some(_) => return Err(n.error("argument bias is not a tensor")),
        };
        let (bias_ptr, has_bias) = match bias {
            Some(b) => (self.buf(b)?, self.iconst(1)),
            None => (self.null(), self.iconst(0)),
        };
        let mut args = vec![self.buf(x)?, self.buf(w)?, bias_ptr, self.buf(out)?];
        for d in [&xs[0], &xs[1], &xs[2], &xs[3]] {
            args.push(self.dim(d)?);
        }
        for c in [oc, kh, kw] {
            args.push(self.iconst(c));
        }
        for d in [&os[2], &os[3]] {
            args.push(self.dim(d)?);
        }
        for c in [stride, pad, dil].concat() {
            args.push(self.iconst(c));
        }
        args.push(self.iconst(groups));
        args.push(has_bias);
        self.call(RtFn::Conv2d, &args)
    }

    /// `aten._native_batch_norm_legit_no_training`, output 0.
    fn batch_norm(&mut self, n: &Node, out: ValueId) -> Result<()> {
        let tensor = |name: &str| -> Result<ValueId> {
            n.arg(name)
                .and_then(Arg::as_value)
                .ok_or_else(|| n.error(format!("argument {name} is not a tensor")))
        };
        let opt_tensor = |name: &str| -> Result<Option<ValueId>> {
            match n.arg(name) {
                None | Some(Arg::None) => Ok(None),
                Some(Arg::Value(v)) => Ok(Some(*v)),
                Some(_) => Err(n.error(format!("argument {name} is not a tensor"))),
            }
        };
        let x = tensor("input")?;
        let xs = self.shape(x)?.to_vec();
        if xs.len() < 2 {
            return Err(n.error("batch norm input has fewer than 2 dims"));
        }
        self.expect_shape(n, out, &xs)?;
        let eps = match n.arg("eps") {
            Some(Arg::Float(e)) => *e,
            Some(Arg::Int(e)) => *e as f64,
            _ => return Err(n.error("argument eps is not a number")),
        };
        let c = xs[1].clone();
        let mut per_channel = Vec::new();
        for (name, v) in [
            ("running_mean", Some(tensor("running_mean")?)),
            ("running_var", Some(tensor("running_var")?)),
            ("weight", opt_tensor("weight")?),
            ("bias", opt_tensor("bias")?),
        ] {
            match v {
                Some(v) => {
                    let s = self.shape(v)?.to_vec();
                    self.require_eq(n, &format!("{name} length"), SymExpr::mul(s), c.clone())?;
                    per_channel.push((self.buf(v)?, self.iconst(1)));
                }
                None => per_channel.push((self.null(), self.iconst(0))),
            }
        }
        let nb = self.dim(&xs[0])?;
        let cv = self.dim(&c)?;
        let inner = self.product(&xs[2..])?;
        let eps_bits = self.iconst(eps.to_bits() as i64);
        let args = [
            self.buf(x)?,
            self.buf(out)?,
            per_channel[0].0,
            per_channel[1].0,
            per_channel[2].0,
            per_channel[3].0,
            per_channel[2].1,
            per_channel[3].1,
            nb,
            cv,
            inner,
            eps_bits,
        ];
        self.call(RtFn::BatchNorm, &args)
    }

    /// `aten.max_pool2d_with_indices`, values only (output 0), floor rounding.
    fn max_pool2d(&mut self, n: &Node, out: ValueId) -> Result<()> {
        let x = n
            .arg("self")
            .and_then(Arg::as_value)
            .ok_or_else(|| n.error("argument self is not a tensor"))?;
        if matches!(n.arg("ceil_mode"), Some(Arg::Bool(true))) {
            return Err(n.error("jit backend does not support max pooling with ceil_mode yet"));
        }
        let ints = |name: &str, default: &[i64]| -> Result<Vec<i64>> {
            match n.arg(name) {
                None | Some(Arg::None) => Ok(default.to_vec()),
                Some(a) => a
                    .as_ints()
                    .ok_or_else(|| n.error(format!("argument {name} is not a list of ints"))),
            }
        };
        let two = |name: &str, v: Vec<i64>| -> Result<[i64; 2]> {
            match v[..] {
                [a] if a >= 0 => Ok([a, a]),
                [a, b] if a >= 0 && b >= 0 => Ok([a, b]),
                _ => Err(n.error(format!(
                    "argument {name} is not one or two non-negative ints"
                ))),
            }
        };
        let kernel = two("kernel_size", ints("kernel_size", &[])?)?;
        let stride = ints("stride", &[])?;
        let stride = if stride.is_empty() {
            kernel
        } else {
            two("stride", stride)?
        };
        let pad = two("padding", ints("padding", &[0])?)?;
        let dil = two("dilation", ints("dilation", &[1])?)?;
        if kernel.contains(&0) || stride.contains(&0) || dil.contains(&0) {
            return Err(n.error("kernel_size, stride and dilation must be positive"));
        }
        if (0..2).any(|i| pad[i] > kernel[i] / 2) {
            return Err(n.error("padding must be at most half the kernel size"));
        }
        let xs = self.shape(x)?.to_vec();
        if xs.len() != 3 && xs.len() != 4 {
            return Err(n.error("max pool input is not [N, C, H, W] or [C, H, W]"));
        }
        let r = xs.len();
        let os = self.shape(out)?.to_vec();
        if os.len() != r {
            return Err(n.error("max pool output rank differs from the input's"));
        }
        for i in 0..r - 2 {
            self.require_eq(n, "output leading dim", os[i].clone(), xs[i].clone())?;
        }
        for i in 0..2 {
            let want = window_out(&xs[r - 2 + i], kernel[i], stride[i], pad[i], dil[i]);
            self.require_eq(n, "output spatial size", os[r - 2 + i].clone(), want)?;
        }
        let mut args = vec![self.buf(x)?, self.buf(out)?, self.product(&xs[..r - 2])?];
        for d in [&xs[r - 2], &xs[r - 1], &os[r - 2], &os[r - 1]] {
            args.push(self.dim(d)?);
        }
        for c in [kernel, stride, pad, dil].concat() {
            args.push(self.iconst(c));
        }
        self.call(RtFn::MaxPool2d, &args)
    }

    /// `out = sum of src over dims` (accumulated in `f32`, in index order).
    fn reduce_sum(
        &mut self,
        src: ValueId,
        out: ValueId,
        shape: &[SymExpr],
        dims: &[usize],
    ) -> Result<()> {
        let out_buf = self.buf(out)?;
        let count = self.product(self.shape(out)?)?;
        let ones = [self.iconst(1)];
        self.loop_nest(&[count], &mut |l, idx| {
            let z = l.b.ins().f32const(0.0);
            let to = l.address(out_buf, idx, &ones);
            l.b.ins().store(flags(), z, to, 0);
            Ok(())
        })?;
        // The result's strides over the source's index space: 0 on reduced dims.
        let kept: Vec<SymExpr> = shape
            .iter()
            .enumerate()
            .map(|(i, d)| {
                if dims.contains(&i) {
                    SymExpr::Int(1)
                } else {
                    d.clone()
                }
            })
            .collect();
        let mut out_strides = self.strides(&kept)?;
        let zero = self.iconst(0);
        for &d in dims {
            out_strides[d] = zero;
        }
        let in_strides = self.strides(shape)?;
        let bounds = shape
            .iter()
            .map(|d| self.dim(d))
            .collect::<Result<Vec<_>>>()?;
        let in_buf = self.buf(src)?;
        self.loop_nest(&bounds, &mut |l, idx| {
            let from = l.address(in_buf, idx, &in_strides);
            let x = l.b.ins().load(types::F32, flags(), from, 0);
            let to = l.address(out_buf, idx, &out_strides);
            let acc = l.b.ins().load(types::F32, flags(), to, 0);
            let y = l.b.ins().fadd(acc, x);
            l.b.ins().store(flags(), y, to, 0);
            Ok(())
        })
    }
}

/// Lowers a dim to `i64` arithmetic at the current position, once per
/// distinct expression (`cache`); symbol `symbols[j]` is read from `syms[j]`.
///
/// Division and remainder round like Python (`//`, `%`): towards negative
/// infinity. The caller must have checked that no divisor is zero.
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
                .ok_or_else(|| Error::other(format!("jit: unknown symbol {s}")))?;
            let off = i32::try_from(j * 8).map_err(|_| Error::other("jit: too many symbols"))?;
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
                "jit backend does not support the shape expression {other} yet"
            )))
        }
    };
    cache.insert(e.clone(), v);
    Ok(v)
}

/// The output length of a window of `k` taps, `dil` apart, sliding by
/// `stride` over `h` padded by `pad` on both sides (floor rounding).
fn window_out(h: &SymExpr, k: i64, stride: i64, pad: i64, dil: i64) -> SymExpr {
    let room = SymExpr::add(vec![h.clone(), SymExpr::Int(2 * pad - dil * (k - 1) - 1)]);
    SymExpr::add(vec![
        SymExpr::floor_div(room, SymExpr::Int(stride)),
        SymExpr::Int(1),
    ])
}

/// A number argument as `f32`.
fn scalar(a: &Arg) -> Option<f32> {
    match a {
        Arg::Int(v) => Some(*v as f32),
        Arg::Float(v) => Some(*v as f32),
        _ => None,
    }
}
