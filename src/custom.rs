//! Custom operators with kernels the user gives: the registry that the
//! interpreter, the JIT and ahead-of-time artifacts share.
//!
//! torch writes a call of a custom operator such as `mylib::add_one_` by
//! name only; its Python kernel stays behind. To run such a program, give
//! torchlift the operator's schema (the string `torch.library` was given)
//! and a kernel:
//!
//! ```no_run
//! use torchlift::tensor::Tensor;
//! torchlift::custom::register("mylib::add_one_(Tensor(a!) x) -> ()", |args| {
//!     let x = args.tensor(0)?;
//!     let y: Vec<f32> = x.to_vec::<f32>()?.iter().map(|v| v + 1.0).collect();
//!     x.copy_(&Tensor::from_vec(y, x.sizes())?)?;
//!     Ok(vec![])
//! })
//! .unwrap();
//! ```
//!
//! The schema says which arguments the op mutates (`Tensor(a!)`). With it,
//! functionalization turns the in-place call of the training IR, and the
//! `auto_functionalized_v2` call of the core IR, into one functional node
//! (`custom "torch.ops.mylib.add_one_.default"`) whose outputs are the new
//! values of the mutated arguments, then the op's own results. The kernel
//! runs on copies of the mutated arguments and writes them in place.
//!
//! Ahead-of-time artifacts link kernels by symbol: an artifact that calls
//! `mylib::add_one_` refers to the C function
//! `torchlift_op_mylib__add_one_` (see [`kernel_symbol`] and
//! `torchlift.h`), which the program that links the artifact defines. Such
//! an op is declared to the compiler with its schema alone
//! ([`declare`], `torchlift compile --custom-op SCHEMA`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// One argument of a custom op call, in schema order.
#[derive(Clone, Debug)]
pub enum CustomArg {
    Tensor(Tensor),
    Int(i64),
    Float(f64),
    Bool(bool),
    None,
    /// Anything else (lists, strings): passed by name only.
    Other,
}

/// The arguments of one call.
pub struct CustomArgs {
    pub op: String,
    pub args: Vec<(String, CustomArg)>,
}

impl CustomArgs {
    /// Tensor argument `i` (schema order).
    pub fn tensor(&self, i: usize) -> Result<&Tensor> {
        match self.args.get(i) {
            Some((_, CustomArg::Tensor(t))) => Ok(t),
            _ => Err(Error::other(format!(
                "{}: argument {i} is not a tensor",
                self.op
            ))),
        }
    }
}

/// A Rust kernel: gets the arguments (mutated tensors are the kernel's to
/// write in place) and returns the op's own results.
pub type Kernel = dyn Fn(&CustomArgs) -> Result<Vec<Tensor>> + Send + Sync;

/// A C kernel (`tl_op_kernel` in `torchlift.h`): the op's tensor
/// arguments in schema order; it writes the mutated ones in place and
/// returns 0 on success.
pub type CKernel = unsafe extern "C" fn(*mut crate::capi::TlTensor, i32) -> i32;

/// What runs an op.
#[derive(Clone)]
pub enum Impl {
    Rust(Arc<Kernel>),
    C(CKernel),
    /// Declared for ahead-of-time compiling; the kernel is linked by
    /// symbol into the program that loads the artifact.
    Linked,
}

/// An argument of a schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaArg {
    pub name: String,
    pub is_tensor: bool,
    pub mutated: bool,
}

/// A parsed operator schema: `ns::name[.overload](args) -> returns`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomSchema {
    /// The schema as given.
    pub text: String,
    /// `ns::name`.
    pub name: String,
    pub overload: String,
    pub args: Vec<SchemaArg>,
    pub returns: usize,
}

impl CustomSchema {
    pub fn parse(s: &str) -> Result<CustomSchema> {
        let bad = |why: &str| Error::other(format!("custom op schema {s:?}: {why}"));
        let open = s.find('(').ok_or_else(|| bad("no argument list"))?;
        let head = s[..open].trim();
        let (name, overload) = match head.split_once('.') {
            Some((n, o)) => (n, o),
            None => (head, "default"),
        };
        let (ns, op) = name
            .split_once("::")
            .ok_or_else(|| bad("the name is not namespace::name"))?;
        let ident =
            |x: &str| !x.is_empty() && x.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident(ns) || !ident(op) || !ident(overload) {
            return Err(bad("the name is not namespace::name[.overload]"));
        }
        let mut depth = 0i32;
        let mut close = None;
        for (i, c) in s[open..].char_indices() {
            match c {
                '(' | '[' => depth += 1,
                ')' | ']' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(open + i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let close = close.ok_or_else(|| bad("unbalanced parentheses"))?;
        let mut args = Vec::new();
        for part in split_top(&s[open + 1..close]) {
            let part = part.trim();
            if part.is_empty() || part == "*" {
                continue;
            }
            let decl = part.split('=').next().unwrap_or(part).trim();
            let (ty, name) = decl
                .rsplit_once(char::is_whitespace)
                .ok_or_else(|| bad(&format!("argument {part:?} has no name")))?;
            let ty = ty.trim();
            args.push(SchemaArg {
                name: name.to_string(),
                is_tensor: ty.starts_with("Tensor") && !ty.starts_with("Tensor[]"),
                mutated: ty.contains("!)"),
            });
        }
        let rest = s[close + 1..].trim();
        let ret = rest
            .strip_prefix("->")
            .ok_or_else(|| bad("no `-> returns`"))?
            .trim();
        let returns = if ret == "()" {
            0
        } else if let Some(inner) = ret.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
            split_top(inner).len()
        } else {
            1
        };
        Ok(CustomSchema {
            text: s.to_string(),
            name: name.to_string(),
            overload: overload.to_string(),
            args,
            returns,
        })
    }

    /// The target torch writes: `torch.ops.ns.name.overload`.
    pub fn target(&self) -> String {
        format!(
            "torch.ops.{}.{}",
            self.name.replace("::", "."),
            self.overload
        )
    }

    /// The indices of the mutated tensor arguments.
    pub fn mutated(&self) -> Vec<usize> {
        (0..self.args.len())
            .filter(|&i| self.args[i].is_tensor && self.args[i].mutated)
            .collect()
    }
}

fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !s[start..].trim().is_empty() {
        out.push(&s[start..]);
    }
    out
}

/// A registered op.
#[derive(Clone)]
pub struct CustomOp {
    pub schema: CustomSchema,
    pub imp: Impl,
}

fn registry() -> &'static RwLock<HashMap<String, CustomOp>> {
    static R: std::sync::OnceLock<RwLock<HashMap<String, CustomOp>>> = std::sync::OnceLock::new();
    R.get_or_init(|| RwLock::new(HashMap::new()))
}

fn insert(schema: &str, imp: Impl) -> Result<()> {
    let schema = CustomSchema::parse(schema)?;
    if matches!(imp, Impl::C(_)) && schema.returns > 0 {
        return Err(Error::other(format!(
            "custom op {}: a C kernel can only write its mutated arguments; \
             this op returns {} values",
            schema.name, schema.returns
        )));
    }
    let mut r = registry()
        .write()
        .map_err(|_| Error::other("the custom op registry is poisoned"))?;
    r.insert(schema.target(), CustomOp { schema, imp });
    Ok(())
}

/// Registers a Rust kernel for the op `schema` describes (replacing any
/// earlier one). Every program loaded or compiled afterwards can call it.
pub fn register(
    schema: &str,
    kernel: impl Fn(&CustomArgs) -> Result<Vec<Tensor>> + Send + Sync + 'static,
) -> Result<()> {
    insert(schema, Impl::Rust(Arc::new(kernel)))
}

/// Registers a C kernel (what `tl_register_op` does).
pub fn register_c(schema: &str, kernel: CKernel) -> Result<()> {
    insert(schema, Impl::C(kernel))
}

/// Declares an op for ahead-of-time compiling: the artifact links its
/// kernel by symbol ([`kernel_symbol`]).
pub fn declare(schema: &str) -> Result<()> {
    let s = CustomSchema::parse(schema)?;
    if s.returns > 0 {
        return Err(Error::other(format!(
            "custom op {}: a kernel linked by symbol is a C kernel, which can only \
             write its mutated arguments; this op returns {} values",
            s.name, s.returns
        )));
    }
    insert(schema, Impl::Linked)
}

/// Registers the C kernel an artifact linked for `schema`, unless the
/// process registered a kernel of its own for the op.
pub fn register_linked(schema: &str, kernel: CKernel) -> Result<()> {
    let s = CustomSchema::parse(schema)?;
    if let Some(op) = lookup(&s.target()) {
        if !matches!(op.imp, Impl::Linked) {
            return Ok(());
        }
    }
    register_c(schema, kernel)
}

/// The custom ops a program calls in functional form, by target, each
/// with its registered op (`None`: not registered).
pub fn used_by(p: &crate::ir::Program) -> Vec<(String, Option<CustomOp>)> {
    fn walk(g: &crate::ir::Graph, seen: &mut std::collections::BTreeSet<String>) {
        for n in &g.nodes {
            if let crate::ir::Op::Custom(t) = &n.op {
                seen.insert(t.clone());
            }
            for sg in n.subgraphs() {
                walk(&sg.graph, seen);
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    walk(&p.graph, &mut seen);
    seen.into_iter()
        .map(|t| {
            let op = lookup(&t);
            (t, op)
        })
        .collect()
}

/// Removes an op from the registry.
pub fn unregister(target: &str) {
    if let Ok(mut r) = registry().write() {
        r.remove(target);
    }
}

/// The op registered for `target` (`torch.ops.ns.name.overload`).
pub fn lookup(target: &str) -> Option<CustomOp> {
    registry().read().ok()?.get(target).cloned()
}

/// The error for an op torchlift has no kernel for.
pub fn unsupported_message(target: &str) -> String {
    let short = target.strip_prefix("torch.ops.").unwrap_or(target);
    if target.starts_with("torch.ops.aten.") || !target.starts_with("torch.ops.") {
        return format!("unsupported operator {short}");
    }
    format!(
        "unsupported operator {short} (a custom op: register its kernel with \
         torchlift::custom::register, or declare it with \
         `compile --custom-op SCHEMA` and link {})",
        kernel_symbol(target)
    )
}

/// The C symbol of an op's kernel in an artifact:
/// `torch.ops.mylib.add_one_.default` → `torchlift_op_mylib__add_one_`
/// (`_<overload>` appended for an overload other than `default`).
pub fn kernel_symbol(target: &str) -> String {
    let t = target.strip_prefix("torch.ops.").unwrap_or(target);
    let (path, overload) = t.rsplit_once('.').unwrap_or((t, "default"));
    let (ns, name) = path.split_once('.').unwrap_or(("", path));
    let mut s = format!("torchlift_op_{ns}__{name}");
    if overload != "default" {
        s.push('_');
        s.push_str(overload);
    }
    s
}

/// Calls `op` on `args`: mutated tensors are copied first, and the
/// results are the new values of the mutated tensors, then the op's own.
pub fn call_functional(op: &CustomOp, args: Vec<(String, CustomArg)>) -> Result<Vec<Tensor>> {
    let mutated = op.schema.mutated();
    let mut args = args;
    for &i in &mutated {
        if let Some((_, CustomArg::Tensor(t))) = args.get_mut(i) {
            *t = t.clone_data();
        }
    }
    let call = CustomArgs {
        op: op.schema.name.clone(),
        args,
    };
    let own = call_in_place(op, &call)?;
    let mut out = Vec::new();
    for &i in &mutated {
        out.push(call.tensor(i)?.clone());
    }
    out.extend(own);
    Ok(out)
}

/// Calls `op` with its mutated tensors written in place.
pub fn call_in_place(op: &CustomOp, call: &CustomArgs) -> Result<Vec<Tensor>> {
    let name = &op.schema.name;
    let own = match &op.imp {
        Impl::Rust(k) => k(call)?,
        Impl::C(k) => {
            call_c(*k, call)?;
            Vec::new()
        }
        Impl::Linked => {
            return Err(Error::other(format!(
                "custom op {name} is declared for linking by symbol ({}) but has no kernel here",
                kernel_symbol(&op.schema.target())
            )))
        }
    };
    if own.len() != op.schema.returns {
        return Err(Error::other(format!(
            "the kernel of {name} returned {} values; its schema says {}",
            own.len(),
            op.schema.returns
        )));
    }
    Ok(own)
}

fn call_c(k: CKernel, call: &CustomArgs) -> Result<()> {
    let tensors: Vec<&Tensor> = call
        .args
        .iter()
        .filter_map(|(_, a)| match a {
            CustomArg::Tensor(t) => Some(t),
            _ => None,
        })
        .collect();
    let mut dense = crate::capi::DenseTensors::new(tensors.iter().copied());
    let cs = &mut dense.views;
    // SAFETY: the kernel has the `tl_op_kernel` signature; each tensor's
    // shape has `rank` entries and its data the dense bytes, valid for the
    // call.
    let status = unsafe { k(cs.as_mut_ptr(), cs.len() as i32) };
    if status != 0 {
        return Err(Error::other(format!(
            "the kernel of {} failed with status {status}",
            call.op
        )));
    }
    // The kernel wrote the dense copies: put them back.
    for (i, t) in tensors.iter().enumerate() {
        let (s, b) = dense.get(i);
        let back = Tensor::from_dense_bytes(t.dtype(), s, b)?;
        t.copy_(&back)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_parse() {
        let s = CustomSchema::parse("mylib::add_one_(Tensor(a!) x) -> ()").unwrap();
        assert_eq!(s.target(), "torch.ops.mylib.add_one_.default");
        assert_eq!(s.mutated(), vec![0]);
        assert_eq!(s.returns, 0);
        let s = CustomSchema::parse(
            "ns::f.out(Tensor x, Tensor(b!) y, *, float alpha=1., int[] dims=[1, 2]) -> (Tensor, Tensor)",
        )
        .unwrap();
        assert_eq!(s.target(), "torch.ops.ns.f.out");
        assert_eq!(
            s.args.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            ["x", "y", "alpha", "dims"]
        );
        assert_eq!(s.mutated(), vec![1]);
        assert_eq!(s.returns, 2);
        for bad in [
            "add_one_(Tensor x) -> ()",
            "a::b(Tensor x",
            "a::b(Tensor) -> ()",
        ] {
            assert!(CustomSchema::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn symbols() {
        assert_eq!(
            kernel_symbol("torch.ops.mylib.add_one_.default"),
            "torchlift_op_mylib__add_one_"
        );
        assert_eq!(kernel_symbol("torch.ops.a.b.out"), "torchlift_op_a__b_out");
    }
}
