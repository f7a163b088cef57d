//! Higher-order ops in the interpreter: their bodies run as nested graphs.

use std::collections::HashMap;

use crate::error::Result;
use crate::ir::{Arg, Graph, Hop, ValueType};
use crate::DType;

use super::eval::{run_subgraph_with, Args, EvalMode, RValue};
use super::ops::shape::stack;
use super::tensor::Tensor;

/// Splits a HOP's positional arguments into the body graph and its operands.
fn body_and_operands<'a>(a: &Args<'a>) -> Result<(&'a crate::ir::Graph, Vec<RValue>)> {
    let mut graph = None;
    let mut operands = Vec::new();
    for na in &a.node.args {
        match &na.value {
            Arg::Graph(sg) if graph.is_none() => graph = Some(&sg.graph),
            other if graph.is_some() => operands.push(a.value(other)?),
            _ => {}
        }
    }
    let g = graph.ok_or_else(|| a.err("higher-order op without a body graph"))?;
    Ok((g, operands))
}

pub(crate) fn eval_hop(
    a: &Args<'_>,
    h: Hop,
    syms: &HashMap<String, i64>,
    mode: EvalMode,
) -> Result<Vec<RValue>> {
    match h {
        Hop::WrapWithSetGradEnabled => {
            // Inference only: gradient mode does not change values.
            let (g, ops) = body_and_operands(a)?;
            run_subgraph_with(g, ops, syms, mode)
        }
        Hop::WrapWithAutocast => {
            // (device_type, dtype, enabled, cache_enabled, body, *operands)
            let enabled = matches!(a.positional(2), Some(Arg::Bool(true)));
            let dtype = match a.positional(1) {
                Some(Arg::DType(d)) => Some(*d),
                _ => None,
            };
            let device = match a.positional(0) {
                Some(Arg::Str(s)) => s.as_str(),
                _ => "cpu",
            };
            let inner = if enabled {
                if device != "cpu" {
                    return Err(a.err(format!("autocast on device {device} is not supported")));
                }
                // CPU autocast defaults to bfloat16.
                let d = dtype.unwrap_or(DType::BF16);
                if !matches!(d, DType::BF16 | DType::F16) {
                    return Err(a.err(format!("autocast to {d} is not supported")));
                }
                EvalMode { autocast: Some(d) }
            } else {
                EvalMode { autocast: None }
            };
            let (g, ops) = body_and_operands(a)?;
            run_subgraph_with(g, ops, syms, inner)
        }
        Hop::AutoFunctionalized | Hop::AutoFunctionalizedV2 => eval_auto_functionalized(a, h),
        Hop::Cond => eval_cond(a, syms, mode),
        Hop::WhileLoop => eval_while_loop(a, syms, mode),
        Hop::Map => eval_map(a, syms, mode),
        Hop::Scan => eval_scan(a, syms, mode),
        other => Err(a.err(format!("higher-order op {} is not supported", other.name()))),
    }
}

/// The graph passed as positional argument `i`.
fn graph_arg<'a>(a: &Args<'a>, i: usize, what: &str) -> Result<&'a Graph> {
    match a.positional(i) {
        Some(Arg::Graph(sg)) => Ok(&sg.graph),
        _ => Err(a.err(format!("argument {i} ({what}) is not a graph"))),
    }
}

/// The values of the tuple passed as positional argument `i`.
fn tuple_arg(a: &Args<'_>, i: usize, what: &str) -> Result<Vec<RValue>> {
    let arg = a
        .positional(i)
        .ok_or_else(|| a.err(format!("missing argument {i} ({what})")))?;
    Ok(match a.value(arg)? {
        RValue::List(items) => items,
        RValue::None => Vec::new(),
        one => vec![one],
    })
}

/// The truth of a predicate: a bool, a number or a one-element tensor.
fn truth(a: &Args<'_>, what: &str, v: &RValue) -> Result<bool> {
    match v {
        RValue::Bool(b) => Ok(*b),
        RValue::Int(i) => Ok(*i != 0),
        RValue::Float(f) => Ok(*f != 0.0),
        RValue::Tensor(t) if t.numel() == 1 => {
            Ok(t.item().map_err(|e| a.err(e.to_string()))?.to_bool())
        }
        RValue::Tensor(_) => {
            Err(a.err(format!("{what} must have one element, got {}", describe(v))))
        }
        other => Err(a.err(format!(
            "{what} must be a bool, a number or a one-element tensor, got {}",
            other.kind()
        ))),
    }
}

/// A value as error messages show it: `f32[2, 3]`, `an int`.
fn describe(v: &RValue) -> String {
    match v {
        RValue::Tensor(t) => format!("{}{:?}", t.dtype(), t.sizes()),
        other => other.kind().to_string(),
    }
}

/// A tensor result that no later in-place op can write through to `t`.
fn fresh(v: RValue) -> RValue {
    match v {
        RValue::Tensor(t) => RValue::Tensor(t.clone_data()),
        other => other,
    }
}

/// `cond(pred, true_fn, false_fn, operands)`.
fn eval_cond(a: &Args<'_>, syms: &HashMap<String, i64>, mode: EvalMode) -> Result<Vec<RValue>> {
    let pred_arg = a
        .positional(0)
        .ok_or_else(|| a.err("cond without a predicate"))?;
    let pred = truth(a, "the predicate of cond", &a.value(pred_arg)?)?;
    let branch = graph_arg(a, if pred { 1 } else { 2 }, "a branch")?;
    let operands = tuple_arg(a, 3, "operands")?;
    let outs = run_subgraph_with(branch, operands, syms, mode)?;
    if outs.len() < a.node.outputs.len() {
        return Err(a.err(format!(
            "the {} branch returned {} values, the node has {} outputs",
            if pred { "true" } else { "false" },
            outs.len(),
            a.node.outputs.len()
        )));
    }
    Ok(outs)
}

/// Whether `new` may replace the loop-carried value `old`: the same kind,
/// dtype and rank, and the same size in every dim the node's output type
/// `ty` fixes (a dim recorded as a symbol may change).
fn same_carry(old: &RValue, new: &RValue, ty: Option<&ValueType>) -> bool {
    match (old, new) {
        (RValue::Tensor(o), RValue::Tensor(n)) => {
            let fixed = |d: usize| match ty {
                Some(ValueType::Tensor(t)) => t.shape.get(d).map_or(true, |s| s.as_int().is_some()),
                _ => true,
            };
            o.dtype() == n.dtype()
                && o.dim() == n.dim()
                && (0..o.dim()).all(|d| !fixed(d) || o.sizes()[d] == n.sizes()[d])
        }
        (RValue::Tensor(_), _) | (_, RValue::Tensor(_)) => false,
        _ => true,
    }
}

/// `while_loop(cond_fn, body_fn, carried_inputs, additional_inputs)`.
fn eval_while_loop(
    a: &Args<'_>,
    syms: &HashMap<String, i64>,
    mode: EvalMode,
) -> Result<Vec<RValue>> {
    let cond_g = graph_arg(a, 0, "cond_fn")?;
    let body_g = graph_arg(a, 1, "body_fn")?;
    let mut carried = tuple_arg(a, 2, "carried_inputs")?;
    let extra = tuple_arg(a, 3, "additional_inputs")?;
    let call = |g: &Graph, carried: &[RValue]| {
        let mut inputs = carried.to_vec();
        inputs.extend(extra.iter().cloned());
        run_subgraph_with(g, inputs, syms, mode)
    };
    let mut iterations = 0usize;
    loop {
        let pred = call(cond_g, &carried)?;
        let [pred] = pred.as_slice() else {
            return Err(a.err(format!(
                "the condition of while_loop returned {} values, expected one",
                pred.len()
            )));
        };
        if !truth(a, "the condition of while_loop", pred)? {
            break;
        }
        let next = call(body_g, &carried)?;
        if next.len() != carried.len() {
            return Err(a.err(format!(
                "the body of while_loop returned {} values for {} carried inputs",
                next.len(),
                carried.len()
            )));
        }
        for (k, (old, new)) in carried.iter().zip(&next).enumerate() {
            let ty = a.node.outputs.get(k).map(|&o| a.g.ty(o));
            if !same_carry(old, new, ty) {
                return Err(a.err(format!(
                    "the body of while_loop returned {} for carried input {k}, which is {} \
                     (iteration {iterations})",
                    describe(new),
                    describe(old)
                )));
            }
        }
        carried = next;
        iterations += 1;
    }
    if iterations == 0 {
        // torch returns copies of the inputs when the body never runs.
        carried = carried.into_iter().map(fresh).collect();
    }
    Ok(carried)
}

/// The tensors of `xs`, which all have the same leading size; returns it.
fn leading(a: &Args<'_>, op: &str, xs: &[RValue]) -> Result<(Vec<Tensor>, usize)> {
    let mut ts = Vec::with_capacity(xs.len());
    for (k, x) in xs.iter().enumerate() {
        match x {
            RValue::Tensor(t) if t.dim() > 0 => ts.push(t.clone()),
            other => {
                return Err(a.err(format!(
                    "{op}: xs[{k}] must be a tensor of rank 1 or more, got {}",
                    describe(other)
                )))
            }
        }
    }
    let Some(first) = ts.first() else {
        return Err(a.err(format!("{op} without xs")));
    };
    let len = first.sizes()[0];
    if let Some((k, t)) = ts.iter().enumerate().find(|(_, t)| t.sizes()[0] != len) {
        return Err(a.err(format!(
            "{op}: xs[{k}] has leading size {}, xs[0] has {len}",
            t.sizes()[0]
        )));
    }
    Ok((ts, len))
}

/// Stacks the per-step results `steps[i][k]` into one tensor per `k`.
fn stack_steps(a: &Args<'_>, op: &str, steps: Vec<Vec<RValue>>) -> Result<Vec<RValue>> {
    let Some(n) = steps.first().map(Vec::len) else {
        return Ok(Vec::new());
    };
    let mut cols: Vec<Vec<Tensor>> = vec![Vec::with_capacity(steps.len()); n];
    for (i, step) in steps.into_iter().enumerate() {
        if step.len() != n {
            return Err(a.err(format!(
                "{op}: step {i} returned {} values, step 0 returned {n}",
                step.len()
            )));
        }
        for (k, v) in step.into_iter().enumerate() {
            match v {
                RValue::Tensor(t) => cols[k].push(t),
                other => {
                    return Err(a.err(format!(
                        "{op}: output {k} must be a tensor, got {}",
                        other.kind()
                    )))
                }
            }
        }
    }
    cols.iter()
        .enumerate()
        .map(|(k, ts)| {
            stack(ts, 0)
                .map(RValue::Tensor)
                .map_err(|e| a.err(format!("{op}: output {k}: {e}")))
        })
        .collect()
}

/// Zero-step results: empty tensors of the node's recorded output types
/// `first..`.
fn empty_outputs(
    a: &Args<'_>,
    op: &str,
    first: usize,
    syms: &HashMap<String, i64>,
) -> Result<Vec<RValue>> {
    a.node.outputs[first.min(a.node.outputs.len())..]
        .iter()
        .map(|&o| {
            let t = match a.g.ty(o) {
                ValueType::Tensor(t) => t,
                _ => return Err(a.err(format!("{op} over no elements: output of unknown type"))),
            };
            let sizes = t
                .shape
                .iter()
                .map(|d| d.eval_map(syms).and_then(|v| usize::try_from(v).ok()))
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| a.err(format!("{op} over no elements: output size unknown")))?;
            Ok(RValue::Tensor(Tensor::zeros(t.dtype, &sizes)))
        })
        .collect()
}

/// `map_impl(f, xs, pos_args)`: `f(xs[0][i], ..., *pos_args)` for every
/// `i` of the leading dim, each output stacked along a new dim 0.
fn eval_map(a: &Args<'_>, syms: &HashMap<String, i64>, mode: EvalMode) -> Result<Vec<RValue>> {
    let f = graph_arg(a, 0, "f")?;
    let (xs, len) = leading(a, "map_impl", &tuple_arg(a, 1, "xs")?)?;
    let pos = tuple_arg(a, 2, "pos_args")?;
    if len == 0 {
        return empty_outputs(a, "map_impl", 0, syms);
    }
    let mut steps = Vec::with_capacity(len);
    for i in 0..len {
        let mut inputs = Vec::with_capacity(xs.len() + pos.len());
        for x in &xs {
            let s = x.select(0, i as i64).map_err(|e| a.err(e.to_string()))?;
            inputs.push(RValue::Tensor(s));
        }
        inputs.extend(pos.iter().cloned());
        steps.push(run_subgraph_with(f, inputs, syms, mode)?);
    }
    stack_steps(a, "map_impl", steps)
}

/// `scan(combine_fn, init, xs, additional_inputs)`: `combine_fn(*carry,
/// *xs[i], *additional_inputs)` returns the next carry followed by the
/// outputs of step `i`; the result is the last carry followed by the
/// outputs stacked along a new dim 0.
fn eval_scan(a: &Args<'_>, syms: &HashMap<String, i64>, mode: EvalMode) -> Result<Vec<RValue>> {
    let combine = graph_arg(a, 0, "combine_fn")?;
    let init = tuple_arg(a, 1, "init")?;
    let (xs, len) = leading(a, "scan", &tuple_arg(a, 2, "xs")?)?;
    let extra = tuple_arg(a, 3, "additional_inputs")?;
    let n_carry = init.len();
    if len == 0 {
        let mut out: Vec<RValue> = init.into_iter().map(fresh).collect();
        out.extend(empty_outputs(a, "scan", n_carry, syms)?);
        return Ok(out);
    }
    let mut carry = init;
    let mut steps = Vec::with_capacity(len);
    for i in 0..len {
        let mut inputs = carry.clone();
        for x in &xs {
            let s = x.select(0, i as i64).map_err(|e| a.err(e.to_string()))?;
            inputs.push(RValue::Tensor(s));
        }
        inputs.extend(extra.iter().cloned());
        let mut outs = run_subgraph_with(combine, inputs, syms, mode)?;
        if outs.len() < n_carry {
            return Err(a.err(format!(
                "the combine function of scan returned {} values for {n_carry} carried values",
                outs.len()
            )));
        }
        let ys = outs.split_off(n_carry);
        for (k, (old, new)) in carry.iter().zip(&outs).enumerate() {
            if !same_carry(old, new, None) {
                return Err(a.err(format!(
                    "the combine function of scan returned {} for carry {k}, which is {} (step {i})",
                    describe(new),
                    describe(old)
                )));
            }
        }
        carry = outs;
        steps.push(ys);
    }
    let mut out = carry;
    out.extend(stack_steps(a, "scan", steps)?);
    Ok(out)
}

/// `auto_functionalized_v2(op, _x_base_index=i, _all_bases=[...], ...)`
/// (and v1, `auto_functionalized(op, x=%a, ...)`) of a registered custom
/// op: the op runs on copies of the bases (v1: of the mutated arguments);
/// the results are the op's own, then those copies.
fn eval_auto_functionalized(a: &Args<'_>, h: Hop) -> Result<Vec<RValue>> {
    use crate::custom::CustomArg;
    let n = a.node;
    let target = n
        .args
        .iter()
        .find_map(|x| match &x.value {
            Arg::Operator(o) => Some(o.as_str()),
            _ => None,
        })
        .ok_or_else(|| a.err("auto_functionalized without an operator"))?;
    let op = crate::custom::lookup(target)
        .ok_or_else(|| a.err(crate::custom::unsupported_message(target)))?;
    let tensor = |v: RValue| match v {
        RValue::Tensor(t) => Ok(t.clone_data()),
        other => Err(a.err(format!("a base is a {}, not a tensor", other.kind()))),
    };
    let v2 = h == Hop::AutoFunctionalizedV2;
    let mut bases = Vec::new();
    if v2 {
        if let Some(Arg::List(items)) = n.arg("_all_bases") {
            for it in items {
                bases.push(tensor(a.value(it)?)?);
            }
        }
    }
    let mut args = Vec::new();
    let mut copies = Vec::new();
    for sa in &op.schema.args {
        let index = format!("_{}_base_index", sa.name);
        let c = if let (true, Some(arg)) = (v2, n.arg(&index)) {
            if n.arg(&format!("_{}_size", sa.name)).is_some() {
                return Err(a.err(format!(
                    "argument {} of {target} is a view of its base; not supported",
                    sa.name
                )));
            }
            let Arg::Int(i) = arg else {
                return Err(a.err(format!("{index} is not an int")));
            };
            let t = usize::try_from(*i)
                .ok()
                .and_then(|i| bases.get(i))
                .ok_or_else(|| a.err(format!("{index} out of range")))?;
            CustomArg::Tensor(t.clone())
        } else {
            match n.args.iter().find(|x| x.name == sa.name) {
                None => CustomArg::None,
                Some(x) => match a.value(&x.value)? {
                    RValue::Tensor(t) if sa.mutated && !v2 => {
                        let t = t.clone_data();
                        copies.push(t.clone());
                        CustomArg::Tensor(t)
                    }
                    v => CustomArg::from(v),
                },
            }
        };
        args.push((sa.name.clone(), c));
    }
    let call = crate::custom::CustomArgs {
        op: op.schema.name.clone(),
        args,
    };
    let own = crate::custom::call_in_place(&op, &call).map_err(|e| match e {
        e @ crate::error::Error::Node { .. } => e,
        e => a.err(e.to_string()),
    })?;
    let written = if v2 { bases } else { copies };
    let mut out: Vec<RValue> = own.into_iter().map(RValue::Tensor).collect();
    // Placeholders for own results the graph records but the op did not
    // return (torch writes one for `-> ()`).
    while out.len() + written.len() < n.outputs.len() {
        out.push(RValue::None);
    }
    out.extend(written.into_iter().map(RValue::Tensor));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::eval::{run_graph, RValue};
    use super::Tensor;
    use crate::ir::parse::parse_program;

    fn run(text: &str, inputs: Vec<Tensor>) -> crate::Result<Vec<Tensor>> {
        let p = parse_program(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let ins = inputs.into_iter().map(RValue::Tensor).collect();
        run_graph(&p.graph, ins, &HashMap::new())?
            .into_iter()
            .map(RValue::into_tensor)
            .collect()
    }

    fn f(v: &[f32], s: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), s).unwrap()
    }

    const COND: &str = "input %p: f32[2] = user_input\ninput %x: f32[3] = user_input\n\
        %r: f32[3] = higher_order.cond(%p, graph t {\n\
          input %a: f32[3]\n\
          %b: f32[3] = aten.neg.default(self=%a)\n\
          output %b\n\
        }, graph e {\n\
          input %a: f32[3]\n\
          %b: f32[3] = aten.mul.Tensor(self=%a, other=2.0)\n\
          output %b\n\
        }, [%x])\n\
        output %r = user_output\n";

    #[test]
    fn cond_takes_the_branch_its_predicate_picks() {
        let text = COND.replace("%p: f32[2]", "%p: f32[]");
        let x = || f(&[1., -2., 3.], &[3]);
        let out = run(&text, vec![f(&[0.5], &[]), x()]).unwrap();
        assert_eq!(out[0].to_f64_vec(), [-1., 2., -3.]);
        let out = run(&text, vec![f(&[0.0], &[]), x()]).unwrap();
        assert_eq!(out[0].to_f64_vec(), [2., -4., 6.]);
    }

    #[test]
    fn cond_with_a_many_element_predicate_is_an_error() {
        let e = run(COND, vec![f(&[1., 1.], &[2]), f(&[1., 2., 3.], &[3])])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("node r") && e.contains("predicate of cond must have one element"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }

    const WHILE: &str = "input %i: i64[] = user_input\ninput %x: f32[2] = user_input\n\
        %n: i64[], %y: f32[2] = higher_order.while_loop(graph c {\n\
          input %a: i64[]\n\
          input %b: f32[2]\n\
          %l: bool[] = aten.lt.Scalar(self=%a, other=3)\n\
          output %l\n\
        }, graph body {\n\
          input %a: i64[]\n\
          input %b: f32[2]\n\
          %a1: i64[] = aten.add.Scalar(self=%a, other=1)\n\
          %b1: f32[2] = aten.mul.Tensor(self=%b, other=2.0)\n\
          output %a1\n\
          output %b1\n\
        }, [%i, %x], [])\n\
        output %n = user_output\n\
        output %y = user_output\n";

    #[test]
    fn while_loop_runs_until_its_condition_fails() {
        let i = |v: i64| Tensor::from_vec(vec![v], &[]).unwrap();
        let out = run(WHILE, vec![i(0), f(&[1., -1.], &[2])]).unwrap();
        assert_eq!(out[0].to_i64_vec(), [3]);
        assert_eq!(out[1].to_f64_vec(), [8., -8.]);
        // No iteration: copies of the inputs.
        let x = f(&[1., -1.], &[2]);
        let out = run(WHILE, vec![i(5), x.clone()]).unwrap();
        assert_eq!(out[1].to_f64_vec(), [1., -1.]);
        assert!(!out[1].same_storage(&x));
    }

    #[test]
    fn while_loop_body_changing_a_shape_is_an_error() {
        let text = WHILE.replace(
            "%b1: f32[2] = aten.mul.Tensor(self=%b, other=2.0)",
            "%b1: f32[4] = aten.cat.default(tensors=[%b, %b])",
        );
        let i = Tensor::from_vec(vec![0i64], &[]).unwrap();
        let e = run(&text, vec![i, f(&[1., -1.], &[2])])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("node n") && e.contains("f32[4]") && e.contains("carried input 1"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        // A condition that is not one element.
        let text = WHILE.replace(
            "%l: bool[] = aten.lt.Scalar(self=%a, other=3)",
            "%l: bool[2] = aten.gt.Scalar(self=%b, other=0)",
        );
        let i = Tensor::from_vec(vec![0i64], &[]).unwrap();
        let e = run(&text, vec![i, f(&[1., -1.], &[2])])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("condition of while_loop must have one element"),
            "{e}"
        );
    }

    #[test]
    fn map_and_scan_stack_their_steps() {
        let map = "input %xs: f32[3, 2] = user_input\ninput %w: f32[2] = user_input\n\
            %m: f32[3, 2] = higher_order.map_impl(graph body {\n\
              input %x: f32[2]\n\
              input %v: f32[2]\n\
              %y: f32[2] = aten.mul.Tensor(self=%x, other=%v)\n\
              output %y\n\
            }, [%xs], [%w])\n\
            output %m = user_output\n";
        let out = run(
            map,
            vec![f(&[1., 2., 3., 4., 5., 6.], &[3, 2]), f(&[10., -1.], &[2])],
        )
        .unwrap();
        assert_eq!(out[0].sizes(), [3, 2]);
        assert_eq!(out[0].to_f64_vec(), [10., -2., 30., -4., 50., -6.]);
        let scan = "input %xs: f32[3, 2] = user_input\ninput %init: f32[2] = user_input\n\
            %c: f32[2], %ys: f32[3] = higher_order.scan(graph combine {\n\
              input %a: f32[2]\n\
              input %b: f32[2]\n\
              %n: f32[2] = aten.add.Tensor(self=%a, other=%b)\n\
              %s: f32[] = aten.sum.default(self=%n)\n\
              output %n\n\
              output %s\n\
            }, [%init], [%xs], [])\n\
            output %c = user_output\n\
            output %ys = user_output\n";
        let out = run(
            scan,
            vec![f(&[1., 2., 3., 4., 5., 6.], &[3, 2]), f(&[0., 1.], &[2])],
        )
        .unwrap();
        assert_eq!(out[0].to_f64_vec(), [9., 13.]);
        assert_eq!(out[1].to_f64_vec(), [4., 11., 22.]);
    }
}
