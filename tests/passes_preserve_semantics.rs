//! Every pass preserves what a program computes.
//!
//! Each program below, written in IR text, runs in the reference
//! interpreter before any pass and again after each pass of
//! [`all_passes`], in order. Weights hold 0, 1, 2, ... (as with
//! `// weights: arange` in the filetests) and user inputs hold fixed small
//! values; the user outputs must stay the same. The interpreter gives views
//! and in-place ops torch's aliasing semantics, so for the programs that
//! mutate through views this checks functionalization against the
//! original, not against another rewrite.

use std::collections::{BTreeMap, HashMap};

use torchlift::interp::{run_graph, RValue, Tensor};
use torchlift::ir::parse::parse_program;
use torchlift::ir::print::program_to_string;
use torchlift::ir::{Arg, InputKind, OutputKind, OutputSpec, Program, ValueId, ValueType};
use torchlift::passes::{all_passes, PassContext};
use torchlift::DType;

fn arange(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64).collect()
}

/// Small values of both signs, different for each user input.
fn user_values(n: usize, which: usize) -> Vec<f64> {
    (0..n)
        .map(|i| ((i * 7 + which * 3) % 11) as f64 * 0.5 - 2.5)
        .collect()
}

fn tensor(data: Vec<f64>, shape: &[usize], dtype: DType) -> Tensor {
    let t = Tensor::from_vec(data, shape).expect("tensor");
    if dtype == DType::F64 {
        t
    } else {
        t.to_dtype(dtype)
    }
}

fn static_type(p: &Program, v: torchlift::ir::ValueId) -> (DType, Vec<usize>) {
    let ty = p.graph.tensor_type(v).expect("input has a tensor type");
    let shape = ty.static_shape().expect("input has a static shape");
    (ty.dtype, shape)
}

fn arange_weights(p: &Program) -> BTreeMap<String, Tensor> {
    let mut w = BTreeMap::new();
    for spec in &p.signature.inputs {
        if matches!(
            spec.kind,
            InputKind::Parameter | InputKind::ConstantTensor | InputKind::Buffer { .. }
        ) {
            let (dtype, shape) = static_type(p, spec.value);
            let n = shape.iter().product();
            w.insert(
                spec.target.clone().expect("weight target"),
                tensor(arange(n), &shape, dtype),
            );
        }
    }
    w
}

/// Runs `p` on fresh copies of its inputs; returns its user outputs.
fn run(p: &Program, weights: &BTreeMap<String, Tensor>) -> Vec<Vec<f64>> {
    let mut inputs = Vec::new();
    let mut user = 0;
    for spec in &p.signature.inputs {
        let t = match spec.kind {
            InputKind::UserInput => {
                let (dtype, shape) = static_type(p, spec.value);
                let n = shape.iter().product();
                user += 1;
                tensor(user_values(n, user), &shape, dtype)
            }
            _ => {
                let name = spec.target.as_deref().expect("weight target");
                // A copy: the program may mutate its buffers.
                weights[name].clone_data()
            }
        };
        inputs.push(RValue::Tensor(t));
    }
    let outs = run_graph(&p.graph, inputs, &HashMap::new())
        .unwrap_or_else(|e| panic!("run failed: {e}\n{}", program_to_string(p)));
    p.signature
        .outputs
        .iter()
        .zip(outs)
        .filter(|(s, _)| s.kind == OutputKind::UserOutput)
        .map(|(_, v)| match v {
            RValue::Tensor(t) => {
                // The dtype (as text) too: a value that only changed
                // dtype would otherwise compare equal.
                let mut d: Vec<f64> = format!("{}", t.dtype()).bytes().map(f64::from).collect();
                d.push(t.sizes().len() as f64);
                d.extend(t.sizes().iter().map(|&s| s as f64));
                d.extend(t.to_f64_vec());
                d
            }
            other => panic!("user output is not a tensor: {other:?}"),
        })
        .collect()
}

/// Runs `p` with every tensor-typed value as an output and checks each
/// value's dtype and (static) shape against its recorded type.
fn check_recorded_types(p: &Program, weights: &BTreeMap<String, Tensor>, after: &str) {
    let mut q = p.clone();
    let vals: Vec<ValueId> = q
        .graph
        .nodes
        .iter()
        .flat_map(|n| n.outputs.iter().copied())
        .filter(|&v| matches!(q.graph.ty(v), ValueType::Tensor(_)))
        .collect();
    q.graph.outputs = vals.iter().map(|&v| Arg::Value(v)).collect();
    q.signature.outputs = vals
        .iter()
        .map(|_| OutputSpec {
            kind: OutputKind::UserOutput,
            target: None,
        })
        .collect();
    let got = run(&q, weights);
    for (&v, out) in vals.iter().zip(got) {
        let ty = q.graph.tensor_type(v).expect("tensor type");
        let dtype = format!("{}", ty.dtype);
        let Some(shape) = ty.static_shape() else {
            continue;
        };
        let mut want: Vec<f64> = dtype.bytes().map(f64::from).collect();
        want.push(shape.len() as f64);
        want.extend(shape.iter().map(|&d| d as f64));
        assert_eq!(
            &out[..want.len()],
            &want[..],
            "after {after}: %{} is recorded as {} (dtype bytes, rank, dims)",
            q.graph.name(v),
            torchlift::ir::print::type_text(q.graph.ty(v))
        );
    }
}

fn check(text: &str) {
    let mut p = parse_program(text).expect("parse");
    let mut weights = arange_weights(&p);
    let want = run(&p, &weights);
    for pass in all_passes() {
        let mut cx = PassContext {
            weights: Some(&mut weights),
        };
        pass.run(&mut p, &mut cx)
            .unwrap_or_else(|e| panic!("pass {} failed: {e}", pass.name()));
        if pass.name() != "inline_hops" && pass.name() != "remove_auto_functionalized" {
            // From functionalize on the graph is functional: every value can
            // be an output.
            check_recorded_types(&p, &weights, pass.name());
        }
        let got = run(&p, &weights);
        assert_eq!(
            want,
            got,
            "user outputs changed after pass {}:\n{}",
            pass.name(),
            program_to_string(&p)
        );
    }
}

#[test]
fn linear_with_folded_weight_and_duplicates() {
    check(
        r#"
input %w: f32[4, 3] = parameter "fc.weight"
input %b: f32[4] = parameter "fc.bias"
input %x: f32[2, 3] = user_input
%t: f32[3, 4] = aten.permute.default(self=%w, dims=[1, 0])
%y: f32[2, 4] = aten.addmm.default(self=%b, mat1=%x, mat2=%t)
%r1: f32[2, 4] = aten.relu.default(self=%y)
%r2: f32[2, 4] = aten.relu.default(self=%y)
%c: f32[2, 4] = aten.clone.default(self=%r2)
%dead: f32[2, 4] = aten.neg.default(self=%c)
%z: f32[2, 4] = aten.add.Tensor(self=%r1, other=%c)
output %z = user_output
"#,
    );
}

#[test]
fn set_grad_and_autocast_disabled_regions() {
    check(
        r#"
input %w: f32[4, 3] = parameter "fc.weight"
input %x: f32[2, 3] = user_input
%r: f32[2, 4] = higher_order.wrap_with_set_grad_enabled(false, graph submod_1 {
  input %a: f32[2, 3]
  input %ww: f32[4, 3]
  %l: f32[2, 4] = higher_order.wrap_with_autocast("cpu", None, false, None, graph submod_2 {
    input %p: f32[2, 3]
    input %q: f32[4, 3]
    %o: f32[2, 4] = aten.linear.default(input=%p, weight=%q)
    output %o
  }, %a, %ww)
  %h: f32[2, 4] = aten.relu.default(self=%l)
  output %h
}, %x, %w)
output %r = user_output
"#,
    );
}

#[test]
fn buffer_and_user_input_mutation() {
    check(
        r#"
input %m: f32[3] = buffer "bn.num"
input %x: f32[3] = user_input
%a: f32[3] = aten.add_.Tensor(self=%m, other=1)
%b: f32[3] = aten.mul_.Tensor(self=%x, other=2)
%y: f32[3] = aten.add.Tensor(self=%x, other=%m)
output %y = user_output
"#,
    );
}

#[test]
fn chained_inplace() {
    check(
        r#"
input %x: f32[3] = user_input
%h: f32[3] = aten.clone.default(self=%x)
%a: f32[3] = aten.add_.Tensor(self=%h, other=1)
%m: f32[3] = aten.mul_.Tensor(self=%a, other=2)
%y: f32[3] = aten.sub.Tensor(self=%h, other=%m)
output %y = user_output
output %h = user_output
"#,
    );
}

#[test]
fn mutation_through_select_and_slice_with_step() {
    check(
        r#"
input %x: f32[3, 6] = user_input
%h: f32[3, 6] = aten.clone.default(self=%x)
%s: f32[6] = aten.select.int(self=%h, dim=0, index=1)
%a: f32[6] = aten.add_.Tensor(self=%s, other=1)
%t: f32[3, 2] = aten.slice.Tensor(self=%h, dim=1, start=1, end=5, step=2)
%b: f32[3, 2] = aten.mul_.Tensor(self=%t, other=10)
output %h = user_output
output %s = user_output
"#,
    );
}

#[test]
fn mutation_through_view_transpose_and_as_strided() {
    check(
        r#"
input %x: f32[2, 6] = user_input
%h: f32[2, 6] = aten.clone.default(self=%x)
%v: f32[3, 4] = aten.view.default(self=%h, size=[3, 4])
%a: f32[3, 4] = aten.add_.Tensor(self=%v, other=1)
%t: f32[4, 3] = aten.transpose.int(self=%v, dim0=0, dim1=1)
%s: f32[3] = aten.select.int(self=%t, dim=0, index=2)
%b: f32[3] = aten.mul_.Tensor(self=%s, other=-1)
%g: f32[2, 2] = aten.as_strided.default(self=%h, size=[2, 2], stride=[1, 2], storage_offset=1)
%c: f32[2, 2] = aten.add_.Tensor(self=%g, other=100)
output %h = user_output
output %t = user_output
"#,
    );
}

#[test]
fn mutation_through_view_of_view_unbind_and_split() {
    check(
        r#"
input %x: f32[5, 4] = user_input
%h: f32[5, 4] = aten.clone.default(self=%x)
%s: f32[4] = aten.select.int(self=%h, dim=0, index=1)
%t: f32[2] = aten.slice.Tensor(self=%s, dim=0, start=0, end=2)
%a: f32[2] = aten.add_.Tensor(self=%t, other=1)
[%u0: f32[4], %u1: f32[4], %u2: f32[4], %u3: f32[4], %u4: f32[4]] = aten.unbind.int(self=%h)
%b: f32[4] = aten.mul_.Tensor(self=%u3, other=3)
[%p0: f32[2, 4], %p1: f32[2, 4], %p2: f32[1, 4]] = aten.split.Tensor(self=%h, split_size=2)
%c: f32[1, 4] = aten.add_.Tensor(self=%p2, other=7)
%d: f32[2, 4] = aten.neg_.default(self=%p0)
output %h = user_output
output %u1 = user_output
"#,
    );
}

#[test]
fn view_read_after_base_mutated() {
    check(
        r#"
input %x: f32[3, 4] = user_input
%h: f32[3, 4] = aten.clone.default(self=%x)
%s: f32[4] = aten.select.int(self=%h, dim=0, index=0)
%a: f32[3, 4] = aten.mul_.Tensor(self=%h, other=2)
%y: f32[4] = aten.neg.default(self=%s)
%b: f32[3, 4] = aten.add_.Tensor(self=%h, other=1)
%z: f32[4] = aten.add.Tensor(self=%s, other=%y)
output %z = user_output
"#,
    );
}

#[test]
fn copy_and_fill() {
    check(
        r#"
input %x: f32[2, 3] = user_input
input %z: f32[3] = user_input
%h: f32[2, 3] = aten.clone.default(self=%x)
%s: f32[3] = aten.select.int(self=%h, dim=0, index=0)
%c: f32[3] = aten.copy_.default(self=%s, src=%z)
%r: f32[3] = aten.select.int(self=%h, dim=0, index=1)
%f: f32[3] = aten.fill_.Scalar(self=%r, value=7)
output %h = user_output
"#,
    );
}

#[test]
fn autocast_region_with_disabled_inner_region() {
    check(
        r#"
input %w: f32[4, 3] = parameter "fc.weight"
input %x: f32[2, 3] = user_input
input %m: f32[4, 4] = user_input
%r: bf16[2, 4] = higher_order.wrap_with_autocast("cpu", bf16, true, None, graph submod_1 {
  input %a: f32[2, 3]
  input %ww: f32[4, 3]
  input %mm: f32[4, 4]
  %l: bf16[2, 4] = aten.linear.default(input=%a, weight=%ww)
  %i: f32[4, 4] = higher_order.wrap_with_autocast("cpu", None, false, None, graph submod_2 {
    input %p: f32[4, 4]
    %q: f32[4, 4] = aten.mm.default(self=%p, mat2=%p)
    output %q
  }, %mm)
  %o: bf16[2, 4] = aten.mm.default(self=%l, mat2=%i)
  output %o
}, %x, %w, %m)
output %r = user_output
"#,
    );
}

#[test]
fn out_variant_into_a_slice_of_an_intermediate() {
    check(
        r#"
input %x: f32[4, 3] = user_input
%c: f32[4, 3] = aten.clone.default(self=%x)
%s: f32[2, 3] = aten.slice.Tensor(self=%c, dim=0, start=1, end=3)
%r: f32[2, 3] = aten.add.out(self=%s, other=1.5, out=%s)
%y: f32[4, 3] = aten.mul.Tensor(self=%c, other=2)
output %y = user_output
output %r = user_output
"#,
    );
}

#[test]
fn inplace_ops_keep_the_dtype_of_self() {
    check(
        r#"
input %x: f32[4] = user_input
input %y: f32[4] = user_input
input %z: f16[4] = user_input
%h: f32[4] = aten.clone.default(self=%x)
%e: f32[4] = aten.lt_.Tensor(self=%h, other=%y)
%k: f16[4] = aten.clone.default(self=%z)
%a: f16[4] = aten.add_.Tensor(self=%k, other=%y)
output %h = user_output
output %k = user_output
"#,
    );
}

#[test]
fn shape_prop_types_match_computed_values() {
    check(
        r#"
input %x: f32[2, 3, 4] = user_input
input %i: i64[3, 4] = user_input
input %w: f32[4, 5] = parameter "fc.weight"
%a: ? = aten.matmul.default(self=%x, other=%w)
%b: ? = aten.div.Tensor(self=%i, other=2)
%c: ? = aten.floor_divide.default(self=%i, other=2)
%d: ? = aten.mean.dim(self=%x, dim=[-1], keepdim=true)
%e: ? = aten.cat.default(tensors=[%x, %x], dim=1)
%f: ? = aten.stack.default(tensors=[%i, %i], dim=2)
%g: ? = aten.softmax.int(self=%a, dim=-1)
%h: ? = aten.argmax.default(self=%x, dim=1)
%v: ? = aten.eq.Scalar(self=%i, other=1)
%k: ? = aten.where.self(condition=%v, self=%x, other=0.0)
%l: ? = aten.pow.Tensor_Scalar(self=%i, exponent=2)
%m: ? = aten.sum.default(self=%i)
%n: ? = aten.cumsum.default(self=%i, dim=0)
%o: ? = aten.amax.default(self=%x, dim=[0, 2])
%p: ? = aten.layer_norm.default(input=%x, normalized_shape=[4])
%q: ? = aten.unsqueeze.default(self=%m, dim=0)
%r: ? = aten.expand.default(self=%q, size=[3, -1])
%s: ? = aten.var.correction(self=%x, dim=[1], correction=1)
%t: ? = aten.masked_fill.Scalar(self=%x, mask=%v, value=1)
%u: ? = aten.bitwise_and.Tensor(self=%i, other=%c)
%z: ? = aten.add.Tensor(self=%v, other=%v)
output %a = user_output
output %b = user_output
output %c = user_output
output %d = user_output
output %e = user_output
output %f = user_output
output %g = user_output
output %h = user_output
output %k = user_output
output %l = user_output
output %m = user_output
output %n = user_output
output %o = user_output
output %p = user_output
output %r = user_output
output %s = user_output
output %t = user_output
output %u = user_output
output %z = user_output
"#,
    );
}

#[test]
fn mutation_through_more_views() {
    check(
        r#"
input %m: f32[4, 4] = buffer "state"
input %x: f32[2, 3, 4] = user_input
%h: f32[2, 3, 4] = aten.clone.default(self=%x)
%p: f32[4, 2, 3] = aten.permute.default(self=%h, dims=[2, 0, 1])
%n: f32[4, 1, 3] = aten.narrow.default(self=%p, dim=1, start=1, length=1)
%q: f32[4, 3] = aten.squeeze.dim(self=%n, dim=1)
%a: f32[4, 3] = aten.add_.Tensor(self=%q, other=10)
%f: f32[6, 4] = aten.flatten.using_ints(self=%h, start_dim=0, end_dim=1)
%t: f32[4, 6] = aten.t.default(self=%f)
%u: f32[1, 4, 6] = aten.unsqueeze.default(self=%t, dim=0)
%b: f32[1, 4, 6] = aten.mul_.Tensor(self=%u, other=-1)
%d: f32[4] = aten.diagonal.default(self=%m)
%c: f32[4] = aten.add_.Tensor(self=%d, other=%d)
%al: f32[4, 4] = aten.alias.default(self=%m)
%r: f32[4] = aten.select.int(self=%al, dim=1, index=-1)
%e: f32[4] = aten.sub_.Tensor(self=%r, other=1)
%y: f32[4, 4] = aten.mul.Tensor(self=%m, other=2)
output %h = user_output
output %q = user_output
output %y = user_output
"#,
    );
}

#[test]
fn views_taken_between_mutations() {
    check(
        r#"
input %x: f32[3, 4] = user_input
%h: f32[3, 4] = aten.clone.default(self=%x)
%s: f32[4] = aten.select.int(self=%h, dim=0, index=2)
%a: f32[4] = aten.mul_.Tensor(self=%s, other=3)
%v: f32[2, 6] = aten.view.default(self=%h, size=[2, 6])
%b: f32[3, 4] = aten.add_.Tensor(self=%h, other=1)
%w: f32[6] = aten.select.int(self=%v, dim=0, index=1)
%c: f32[6] = aten.neg_.default(self=%w)
%y: f32[4] = aten.add.Tensor(self=%s, other=1)
output %y = user_output
output %v = user_output
output %h = user_output
"#,
    );
}

#[test]
fn folded_constant_next_to_a_weight_of_the_same_name() {
    check(
        r#"
input %w: f32[4, 3] = parameter "w"
input %_folded_t: f32[3, 4] = parameter "_folded_t"
input %x: f32[2, 3] = user_input
%t: f32[3, 4] = aten.permute.default(self=%w, dims=[1, 0])
%a: f32[2, 4] = aten.mm.default(self=%x, mat2=%t)
%b: f32[2, 4] = aten.mm.default(self=%x, mat2=%_folded_t)
%y: f32[2, 4] = aten.add.Tensor(self=%a, other=%b)
output %y = user_output
"#,
    );
}

/// The model runtime writes mutated inputs back after the call: a user
/// output must not be the mutated input itself.
#[test]
fn user_output_copy_of_a_mutated_input_stays_a_copy() {
    let text = r#"
input %x: f32[3] = user_input
%c: f32[3] = aten.clone.default(self=%x)
%a: f32[3] = aten.add_.Tensor(self=%x, other=1)
output %c = user_output
"#;
    let mut m = torchlift::model::Model {
        path: Default::default(),
        program: parse_program(text).expect("parse"),
        state: BTreeMap::new(),
        sample_inputs: None,
    };
    m.run_pipeline(true, |_, _| {}).expect("pipeline");
    let mut inputs = vec![Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).expect("tensor")];
    let out = m.run(&mut inputs).expect("run");
    assert_eq!(
        out[0].to_f64_vec(),
        vec![1.0, 2.0, 3.0],
        "{}",
        program_to_string(&m.program)
    );
    assert_eq!(inputs[0].to_f64_vec(), vec![2.0, 3.0, 4.0]);
}

#[test]
fn control_flow_bodies_with_inplace_ops_and_regions() {
    // User inputs are (i * 7 + k * 3) % 11 * 0.5 - 2.5: x starts at 0.5,
    // so x.sum() > 0 picks the true branch; the loop runs while i < 3.
    check(
        r#"
input %w: f32[3, 3] = parameter "w"
input %x: f32[2, 3] = user_input
input %i: i64[] = user_input
%s: f32[] = aten.sum.default(self=%x)
%p: bool[] = aten.gt.Scalar(self=%s, other=0)
%r: f32[2, 3] = higher_order.cond(%p, graph t {
  input %a: f32[2, 3]
  input %b: f32[3, 3]
  %c: f32[2, 3] = aten.clone.default(self=%a)
  %d: f32[2, 3] = aten.relu_.default(self=%c)
  %e: f32[2, 3] = higher_order.wrap_with_set_grad_enabled(false, graph g {
    input %q: f32[2, 3]
    input %v: f32[3, 3]
    %m: f32[2, 3] = aten.mm.default(self=%q, mat2=%v)
    output %m
  }, %c, %b)
  output %e
}, graph f {
  input %a: f32[2, 3]
  input %b: f32[3, 3]
  %n: f32[2, 3] = aten.neg.default(self=%a)
  output %n
}, [%x, %w])
%k: i64[], %y: f32[2, 3] = higher_order.while_loop(graph c {
  input %j: i64[]
  input %h: f32[2, 3]
  input %z: f32[2, 3]
  %l: bool[] = aten.lt.Scalar(self=%j, other=3)
  output %l
}, graph body {
  input %j: i64[]
  input %h: f32[2, 3]
  input %z: f32[2, 3]
  %j1: i64[] = aten.add.Scalar(self=%j, other=1)
  %h0: f32[2, 3] = aten.mul.Tensor(self=%h, other=0.5)
  %h1: f32[2, 3] = aten.add.Tensor(self=%h0, other=%z)
  output %j1
  output %h1
}, [%i, %r], [%x])
%x0: f32[3] = aten.select.int(self=%x, dim=0, index=0)
%cy: f32[3], %ys: f32[2, 3] = higher_order.scan(graph combine {
  input %cc: f32[3]
  input %xx: f32[3]
  %nx: f32[3] = aten.add.Tensor(self=%cc, other=%xx)
  %t2: f32[3] = aten.tanh.default(self=%nx)
  output %nx
  output %t2
}, [%x0], [%y], [])
output %k = user_output
output %cy = user_output
output %ys = user_output
"#,
    );
}
