//! The JIT backend against the reference interpreter and PyTorch's recorded
//! outputs: every supported op, broadcasting, symbolic dims at several
//! sizes, the fixture models in the slice, and compile-time refusals.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use torchlift::check::{compare, Case};
use torchlift::codegen::jit::JitModel;
use torchlift::interp::tensor::Tensor;
use torchlift::ir::parse::parse_program;
use torchlift::model::{LoadOptions, Model};
use torchlift::DType;

mod common;

/// A model from IR text, with the given weights.
fn model(text: &str, weights: &[(&str, Tensor)]) -> Model {
    let program = parse_program(text).expect("IR text parses");
    torchlift::ir::verify::verify_program(&program).expect("IR text verifies");
    let state: BTreeMap<String, Tensor> = weights
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    Model {
        path: PathBuf::from("test.tlir"),
        program,
        state,
        sample_inputs: None,
    }
}

/// Deterministic values in about [-2, 2], varied per `seed`.
fn data(sizes: &[usize], seed: u32) -> Tensor {
    let n: usize = sizes.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| ((i as f32 + 1.0) * 0.731 + seed as f32 * 1.37).sin() * 2.0)
        .collect();
    Tensor::from_vec_f32(v, sizes).unwrap()
}

fn positive(sizes: &[usize], seed: u32) -> Tensor {
    let t = data(sizes, seed);
    let v: Vec<f32> = t
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.abs() + 0.1)
        .collect();
    Tensor::from_vec_f32(v, sizes).unwrap()
}

/// Runs the JIT and the interpreter on the same inputs and checks that the
/// outputs agree (shape exactly, values within `1e-5` relative).
fn jit_matches_interp(m: &mut Model, inputs: &[Tensor]) -> Vec<Tensor> {
    let mut jit = JitModel::compile(m).expect("compiles");
    let got = jit
        .run(&mut inputs.iter().map(|t| t.clone_data()).collect::<Vec<_>>())
        .expect("jit runs");
    let want = m
        .run(&mut inputs.iter().map(|t| t.clone_data()).collect::<Vec<_>>())
        .expect("interpreter runs");
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        if let Err(e) = compare(g, w, 1e-5, 1e-6) {
            panic!("output {k}: {e}\n{}", jit.clif());
        }
    }
    got
}

#[test]
fn binary_ops_with_tensor_and_scalar_operands() {
    let text = r#"
input %x: f32[3, 4] = user_input
input %y: f32[3, 4] = user_input
%add: f32[3, 4] = aten.add.Tensor(self=%x, other=%y, alpha=2)
%sub: f32[3, 4] = aten.sub.Tensor(self=%x, other=%y)
%mul: f32[3, 4] = aten.mul.Tensor(self=%x, other=%y)
%div: f32[3, 4] = aten.div.Tensor(self=%x, other=%y)
%max: f32[3, 4] = aten.maximum.default(self=%x, other=%y)
%min: f32[3, 4] = aten.minimum.default(self=%x, other=%y)
%adds: f32[3, 4] = aten.add.Scalar(self=%x, other=2.5)
%subs: f32[3, 4] = aten.sub.Tensor(self=%x, other=1, alpha=3)
%muls: f32[3, 4] = aten.mul.Scalar(self=%x, other=-0.5)
%divs: f32[3, 4] = aten.div.Tensor(self=%x, other=4)
output %add = user_output
output %sub = user_output
output %mul = user_output
output %div = user_output
output %max = user_output
output %min = user_output
output %adds = user_output
output %subs = user_output
output %muls = user_output
output %divs = user_output
"#;
    let mut m = model(text, &[]);
    let (x, y) = (data(&[3, 4], 1), positive(&[3, 4], 2));
    let out = jit_matches_interp(&mut m, &[x.clone(), y.clone()]);
    // One value by hand: add with alpha.
    let (xv, yv) = (x.to_vec::<f32>().unwrap(), y.to_vec::<f32>().unwrap());
    let got = out[0].to_vec::<f32>().unwrap();
    assert!((got[5] - (xv[5] + 2.0 * yv[5])).abs() < 1e-6);
}

#[test]
fn unary_ops_in_code_and_in_the_runtime() {
    let text = r#"
input %x: f32[2, 5] = user_input
input %p: f32[2, 5] = user_input
%neg: f32[2, 5] = aten.neg.default(self=%x)
%abs: f32[2, 5] = aten.abs.default(self=%x)
%sqrt: f32[2, 5] = aten.sqrt.default(self=%p)
%relu: f32[2, 5] = aten.relu.default(self=%x)
%ht: f32[2, 5] = aten.hardtanh.default(self=%x, min_val=-0.5, max_val=0.75)
%cmin: f32[2, 5] = aten.clamp.default(self=%x, min=0.1)
%cmm: f32[2, 5] = aten.clamp.default(self=%x, min=-1, max=1)
%exp: f32[2, 5] = aten.exp.default(self=%x)
%log: f32[2, 5] = aten.log.default(self=%p)
%tanh: f32[2, 5] = aten.tanh.default(self=%x)
%sig: f32[2, 5] = aten.sigmoid.default(self=%x)
%silu: f32[2, 5] = aten.silu.default(self=%x)
%erf: f32[2, 5] = aten.erf.default(self=%x)
%gelu: f32[2, 5] = aten.gelu.default(self=%x)
%gelut: f32[2, 5] = aten.gelu.default(self=%x, approximate="tanh")
%clone: f32[2, 5] = aten.clone.default(self=%x)
output %neg = user_output
output %abs = user_output
output %sqrt = user_output
output %relu = user_output
output %ht = user_output
output %cmin = user_output
output %cmm = user_output
output %exp = user_output
output %log = user_output
output %tanh = user_output
output %sig = user_output
output %silu = user_output
output %erf = user_output
output %gelu = user_output
output %gelut = user_output
output %clone = user_output
"#;
    let mut m = model(text, &[]);
    let out = jit_matches_interp(&mut m, &[data(&[2, 5], 3), positive(&[2, 5], 4)]);
    assert!(out[3].to_vec::<f32>().unwrap().iter().all(|&v| v >= 0.0));
}

#[test]
fn relu_and_maximum_propagate_nan() {
    let text = r#"
input %x: f32[3] = user_input
%r: f32[3] = aten.relu.default(self=%x)
%m: f32[3] = aten.maximum.default(self=%x, other=%x)
output %r = user_output
output %m = user_output
"#;
    let mut m = model(text, &[]);
    let x = Tensor::from_vec_f32(vec![f32::NAN, -1.0, 2.0], &[3]).unwrap();
    let out = jit_matches_interp(&mut m, &[x]);
    assert!(out[0].to_vec::<f32>().unwrap()[0].is_nan());
}

#[test]
fn numpy_broadcasting_of_operands() {
    let text = r#"
input %a: f32[2, 1, 4] = user_input
input %b: f32[3, 1] = user_input
input %c: f32[4] = user_input
input %s: f32[] = user_input
%ab: f32[2, 3, 4] = aten.add.Tensor(self=%a, other=%b)
%abc: f32[2, 3, 4] = aten.mul.Tensor(self=%ab, other=%c)
%cs: f32[4] = aten.sub.Tensor(self=%c, other=%s)
%sc: f32[4] = aten.div.Tensor(self=%s, other=%c)
output %abc = user_output
output %cs = user_output
output %sc = user_output
"#;
    let mut m = model(text, &[]);
    let s = Tensor::from_vec_f32(vec![0.5], &[]).unwrap();
    jit_matches_interp(
        &mut m,
        &[data(&[2, 1, 4], 5), data(&[3, 1], 6), positive(&[4], 7), s],
    );
}

const SYMBOLIC: &str = r#"
range s0 = [1, 64]
input %w: f32[8, 3] = parameter "fc.weight_t"
input %b: f32[3] = parameter "fc.bias"
input %x: f32[s0, 8] = user_input
%h: f32[s0, 3] = aten.addmm.default(self=%b, mat1=%x, mat2=%w)
%r: f32[s0, 3] = aten.relu.default(self=%h)
%sm: f32[s0, 3] = aten._softmax.default(self=%h, dim=0, half_to_float=false)
%flat: f32[3*s0] = aten.view.default(self=%sm, size=[-1])
%sq: f32[3*s0] = aten.mul.Tensor(self=%flat, other=%flat)
%tot: f32[] = aten.sum.dim_IntList(self=%sq, dim=[])
output %r = user_output
output %flat = user_output
output %tot = user_output
"#;

#[test]
fn one_compiled_function_serves_every_batch_size() {
    let weights = [
        ("fc.weight_t", data(&[8, 3], 8)),
        ("fc.bias", data(&[3], 9)),
    ];
    let mut m = model(SYMBOLIC, &weights);
    let mut jit = JitModel::compile(&m).unwrap();
    for batch in [1, 5, 2] {
        let x = data(&[batch, 8], batch as u32);
        let got = jit.run(&mut [x.clone_data()]).unwrap();
        let want = m.run(&mut [x]).unwrap();
        assert_eq!(got[1].sizes(), &[3 * batch]);
        for (g, w) in got.iter().zip(&want) {
            compare(g, w, 1e-5, 1e-6).unwrap();
        }
    }
}

#[test]
fn input_outside_the_symbol_range_is_an_error_not_a_crash() {
    let weights = [
        ("fc.weight_t", data(&[8, 3], 8)),
        ("fc.bias", data(&[3], 9)),
    ];
    let m = model(SYMBOLIC, &weights);
    let mut jit = JitModel::compile(&m).unwrap();
    let e = jit.run(&mut [data(&[65, 8], 1)]).unwrap_err().to_string();
    assert!(e.contains("outside the range"), "{e}");
    let e = jit.run(&mut [data(&[2, 7], 1)]).unwrap_err().to_string();
    assert!(e.contains("input x"), "{e}");
}

#[test]
fn matrix_products_permutes_and_reductions() {
    let text = r#"
input %a: f32[4, 3] = user_input
input %bt: f32[5, 3] = user_input
input %bias: f32[4, 5] = user_input
input %t: f32[2, 3, 4] = user_input
%b: f32[3, 5] = aten.permute.default(self=%bt, dims=[1, 0])
%mm: f32[4, 5] = aten.mm.default(self=%a, mat2=%b)
%addmm: f32[4, 5] = aten.addmm.default(self=%bias, mat1=%a, mat2=%b)
%p3: f32[4, 2, 3] = aten.permute.default(self=%t, dims=[2, 0, -2])
%s1: f32[2, 4] = aten.sum.dim_IntList(self=%t, dim=[1])
%s2: f32[1, 3, 1] = aten.sum.dim_IntList(self=%t, dim=[0, -1], keepdim=true)
%sa: f32[] = aten.sum.default(self=%t)
%ls: f32[2, 3, 4] = aten._log_softmax.default(self=%t, dim=1, half_to_float=false)
%sm: f32[2, 3, 4] = aten.softmax.int(self=%t, dim=-1)
output %mm = user_output
output %addmm = user_output
output %p3 = user_output
output %s1 = user_output
output %s2 = user_output
output %sa = user_output
output %ls = user_output
output %sm = user_output
"#;
    let mut m = model(text, &[]);
    jit_matches_interp(
        &mut m,
        &[
            data(&[4, 3], 10),
            data(&[5, 3], 11),
            data(&[4, 5], 12),
            data(&[2, 3, 4], 13),
        ],
    );
}

#[test]
fn mutated_user_input_is_written_back() {
    let text = r#"
input %x: f32[3] = user_input
%y: f32[3] = aten.add.Tensor(self=%x, other=1)
%z: f32[3] = aten.mul.Tensor(self=%y, other=2)
output %y = user_input_mutation "x"
output %z = user_output
"#;
    let m = model(text, &[]);
    let mut jit = JitModel::compile(&m).unwrap();
    let mut inputs = [Tensor::from_vec_f32(vec![1.0, 2.0, 3.0], &[3]).unwrap()];
    let out = jit.run(&mut inputs).unwrap();
    assert_eq!(inputs[0].to_vec::<f32>().unwrap(), vec![2.0, 3.0, 4.0]);
    assert_eq!(out[0].to_vec::<f32>().unwrap(), vec![4.0, 6.0, 8.0]);
}

#[test]
fn mutated_buffer_persists_to_the_next_call() {
    let text = r#"
input %buf: f32[2] = buffer "acc"
input %x: f32[2] = user_input
%new: f32[2] = aten.add.Tensor(self=%buf, other=%x)
output %new = buffer_mutation "acc"
output %new = user_output
"#;
    let acc = Tensor::from_vec_f32(vec![0.0, 0.0], &[2]).unwrap();
    let m = model(text, &[("acc", acc)]);
    let mut jit = JitModel::compile(&m).unwrap();
    let x = || Tensor::from_vec_f32(vec![1.0, 2.0], &[2]).unwrap();
    jit.run(&mut [x()]).unwrap();
    let out = jit.run(&mut [x()]).unwrap();
    assert_eq!(out[0].to_vec::<f32>().unwrap(), vec![2.0, 4.0]);
    assert_eq!(jit.state()["acc"].to_vec::<f32>().unwrap(), vec![2.0, 4.0]);
}

#[test]
fn unknown_op_is_refused_at_compile_time_naming_the_node() {
    let text = r#"
input %x: f32[3] = user_input
%r: f32[3] = aten.relu.default(self=%x)
%c: f32[3] = mylib.frobnicate.default(self=%r)
output %c = user_output
"#;
    let m = model(text, &[]);
    let e = JitModel::compile(&m).err().expect("refused").to_string();
    assert!(
        e.contains("node c") && e.contains("unsupported operator mylib.frobnicate.default"),
        "{e}"
    );
}

#[test]
fn f64_and_integer_graphs_match_the_interpreter() {
    let text = r#"
input %x: f64[3] = user_input
%r: f64[3] = aten.relu.default(self=%x)
%e: f64[3] = aten.exp.default(self=%r)
output %e = user_output
"#;
    let x = Tensor::from_vec(vec![-1.0f64, 0.5, 2.0], &[3]).unwrap();
    jit_matches_interp(&mut model(text, &[]), &[x]);
    let ints = r#"
input %x: i64[4] = user_input
%q: i64[4] = aten.div.Tensor_mode(self=%x, other=3, rounding_mode="floor")
%m: i64[4] = aten.remainder.Scalar(self=%x, other=3)
%s: i64[4] = aten.add.Tensor(self=%q, other=%m)
%b: bool[4] = aten.gt.Scalar(self=%s, other=0)
%w: i64[4] = aten.where.self(condition=%b, self=%s, other=%x)
output %w = user_output
"#;
    let x = Tensor::from_vec(vec![-7i64, -1, 5, 9], &[4]).unwrap();
    jit_matches_interp(&mut model(ints, &[]), &[x]);
}

#[test]
fn broadcast_between_unrelated_symbols_is_checked_before_each_call() {
    let text = r#"
range s0 = [1, 8]
range s1 = [1, 8]
input %x: f32[s0] = user_input
input %y: f32[s1] = user_input
%z: f32[s0] = aten.add.Tensor(self=%x, other=%y)
output %z = user_output
"#;
    let mut jit = JitModel::compile(&model(text, &[])).unwrap();
    let out = jit.run(&mut [data(&[3], 1), data(&[3], 2)]).unwrap();
    assert_eq!(out[0].sizes(), &[3]);
    let e = jit
        .run(&mut [data(&[3], 1), data(&[2], 2)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("node z") && e.contains("dim 0"), "{e}");
}

#[test]
fn generated_code_is_annotated_with_the_aten_nodes() {
    let text = r#"
input %x: f32[3] = user_input
%r: f32[3] = aten.relu.default(self=%x)
%e: f32[3] = aten.exp.default(self=%r)
output %e = user_output
"#;
    let jit = JitModel::compile(&model(text, &[])).unwrap();
    let clif = jit.clif();
    // relu and exp fuse into one kernel, which names both nodes.
    assert!(clif.contains("; kernel 0"), "{clif}");
    assert!(clif.contains(";   r = aten.relu.default"), "{clif}");
    assert!(clif.contains(";   e = aten.exp.default"), "{clif}");
    assert!(!clif.contains("; kernel 1"), "{clif}");
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a conformance case on the JIT and checks every run against PyTorch's
/// outputs and the interpreter's.
fn check_fixture(dir: &Path) {
    let case = Case::load(dir).unwrap();
    let mut m = Model::load_with(&case.model_path(), LoadOptions::default()).unwrap();
    let mut jit = JitModel::compile(&m).unwrap();
    for run in &case.runs {
        let got = jit
            .run(
                &mut run
                    .inputs
                    .iter()
                    .map(|t| t.clone_data())
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        let interp = m
            .run(
                &mut run
                    .inputs
                    .iter()
                    .map(|t| t.clone_data())
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        assert_eq!(got.len(), run.outputs.len());
        for ((g, want), i) in got.iter().zip(&run.outputs).zip(&interp) {
            compare(g, want, case.meta.rtol, case.meta.atol).unwrap();
            compare(g, i, case.meta.rtol, case.meta.atol).unwrap();
        }
    }
}

/// Every committed case (the project's fixtures and the torch-release
/// matrix) on the JIT against PyTorch's outputs and the interpreter; the
/// custom-op cases without a kernel must be refused naming the op.
#[test]
fn every_fixture_and_release_case_matches_pytorch() {
    let mut dirs = common::fixture_case_dirs();
    dirs.extend(common::versioned_case_dirs());
    assert!(dirs.len() > 100, "only {} cases found", dirs.len());
    for dir in dirs {
        if common::expects_unknown_op(&dir) {
            let case = Case::load(&dir).unwrap();
            let m = Model::load_with(&case.model_path(), LoadOptions::default()).unwrap();
            let e = JitModel::compile(&m).err().expect("refused").to_string();
            assert!(e.contains("mylib.add_one_"), "{}: {e}", dir.display());
            continue;
        }
        let r = std::panic::catch_unwind(|| check_fixture(&dir));
        assert!(r.is_ok(), "{}", dir.display());
    }
}

#[test]
fn example_mlp_matches_pytorch() {
    check_fixture(&root().join("examples/mlp"));
}

#[test]
fn fixture_tiny_mlp_core_matches_pytorch() {
    check_fixture(&root().join("tests/fixtures/cases/tiny_mlp_core"));
}

#[test]
fn fixture_dyn_batch_matches_pytorch_at_both_batch_sizes() {
    check_fixture(&root().join("tests/fixtures/cases/dyn_batch"));
}

#[test]
fn dim_arithmetic_in_generated_code_agrees_with_sym_eval() {
    use torchlift::codegen::jit::JitDim;
    use torchlift::sym::SymExpr;
    let symbols = vec!["s0".to_string(), "s1".to_string()];
    for text in [
        "s0",
        "2*s0 + 3",
        "s0*s1",
        "(s0 - 5)//2 + 3",
        "s0//s1",
        "Mod(s0, s1)",
        "Max(s0, s1) - Min(s0, 3)",
    ] {
        let e = SymExpr::parse_infix(text).unwrap();
        let f = JitDim::compile(&e, &symbols).unwrap();
        for a in -7..=7 {
            for b in [-3, -2, -1, 1, 2, 3, 5] {
                let want = e.eval(&|s| if s == "s0" { Some(a) } else { Some(b) });
                assert_eq!(f.eval(&[a, b]), want, "{text} at s0={a}, s1={b}");
            }
        }
        // A zero divisor never reaches the compiled code.
        if text.contains("//s1") || text.contains("Mod") {
            assert_eq!(f.eval(&[4, 0]), None);
        }
    }
}

#[test]
fn output_type_inconsistent_with_the_inputs_is_refused() {
    let text = r#"
input %x: f32[3] = user_input
%e: f32[4] = aten.exp.default(self=%x)
output %e = user_output
"#;
    let e = JitModel::compile(&model(text, &[]))
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("node e") && e.contains("does not match"), "{e}");
}

#[test]
fn view_sizes_not_provably_equal_are_checked_before_each_call() {
    let text = r#"
range s0 = [1, 16]
input %x: f32[s0] = user_input
%v: f32[2*(s0//2)] = aten.view.default(self=%x, size=[-1])
output %v = user_output
"#;
    let mut jit = JitModel::compile(&model(text, &[])).unwrap();
    let x = Tensor::from_vec_f32(vec![1.0, 2.0, 3.0, 4.0], &[4]).unwrap();
    let out = jit.run(&mut [x]).unwrap();
    assert_eq!(out[0].to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
    let odd = Tensor::from_vec_f32(vec![1.0, 2.0, 3.0], &[3]).unwrap();
    let e = jit.run(&mut [odd]).unwrap_err().to_string();
    assert!(e.contains("node v") && e.contains("element count"), "{e}");
}

#[test]
fn unused_inputs_of_other_dtypes_need_no_slot() {
    let text = r#"
input %steps: i64[] = buffer "bn.num_batches_tracked"
input %x: f32[2] = user_input
%r: f32[2] = aten.relu.default(self=%x)
output %r = user_output
"#;
    let steps = Tensor::from_vec(vec![0i64], &[]).unwrap();
    let mut m = model(text, &[("bn.num_batches_tracked", steps)]);
    jit_matches_interp(&mut m, &[data(&[2], 1)]);
}

/// As [`jit_matches_interp`] with the given tolerances (for ops whose
/// accumulation order differs between the backends).
fn jit_close_to_interp(m: &mut Model, inputs: &[Tensor], rtol: f64, atol: f64) {
    let mut jit = JitModel::compile(m).expect("compiles");
    let got = jit
        .run(&mut inputs.iter().map(|t| t.clone_data()).collect::<Vec<_>>())
        .expect("jit runs");
    let want = m
        .run(&mut inputs.iter().map(|t| t.clone_data()).collect::<Vec<_>>())
        .expect("interpreter runs");
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.sizes(), w.sizes(), "output {k}");
        if let Err(e) = compare(g, w, rtol, atol) {
            panic!("output {k}: {e}");
        }
    }
}

fn dims(v: &[usize]) -> String {
    v.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `(n, c, h, w, oc, kernel, stride, pad, dil, groups, bias)`.
type ConvCase = (
    usize,
    usize,
    usize,
    usize,
    usize,
    [usize; 2],
    usize,
    usize,
    usize,
    usize,
    bool,
);

/// `(c, h, w, kernel, stride (empty = kernel), pad, dil)`.
type PoolCase = (
    usize,
    usize,
    usize,
    [usize; 2],
    &'static [usize],
    usize,
    usize,
);

#[test]
fn convolution_strides_padding_dilation_groups_and_bias() {
    // (n, c, h, w, oc, k, stride, pad, dil, groups, bias)
    let cases: &[ConvCase] = &[
        (1, 3, 9, 7, 4, [3, 3], 1, 1, 1, 1, true),
        (2, 3, 9, 8, 5, [3, 3], 2, 1, 1, 1, false),
        (1, 4, 8, 8, 6, [1, 1], 2, 0, 1, 2, true),
        (2, 6, 7, 7, 6, [3, 3], 1, 1, 1, 6, false),
        (1, 4, 10, 9, 4, [3, 2], 1, 2, 2, 2, true),
        (1, 2, 5, 5, 3, [5, 5], 3, 2, 1, 1, true),
    ];
    for (i, &(n, c, h, w, oc, k, s, p, d, g, bias)) in cases.iter().enumerate() {
        let oh = (h + 2 * p - d * (k[0] - 1) - 1) / s + 1;
        let ow = (w + 2 * p - d * (k[1] - 1) - 1) / s + 1;
        let ws = [oc, c / g, k[0], k[1]];
        let bias_in = if bias {
            format!("input %b: f32[{oc}] = user_input\n")
        } else {
            String::new()
        };
        let bias_arg = if bias { "%b" } else { "None" };
        let text = format!(
            "input %x: f32[{}] = user_input\ninput %w: f32[{}] = user_input\n{bias_in}\
             %y: f32[{n}, {oc}, {oh}, {ow}] = aten.convolution.default(input=%x, weight=%w, \
             bias={bias_arg}, stride=[{s}, {s}], padding=[{p}, {p}], dilation=[{d}, {d}], \
             transposed=false, output_padding=[0, 0], groups={g})\noutput %y = user_output\n",
            dims(&[n, c, h, w]),
            dims(&ws),
        );
        let mut inputs = vec![data(&[n, c, h, w], i as u32), data(&ws, 10 + i as u32)];
        if bias {
            inputs.push(data(&[oc], 20 + i as u32));
        }
        jit_close_to_interp(&mut model(&text, &[]), &inputs, 1e-4, 1e-5);
    }
}

#[test]
fn convolution_with_a_symbolic_batch_and_height() {
    let text = r#"
range s0 = [1, 4]
range s1 = [3, 32]
input %x: f32[s0, 2, s1, 6] = user_input
input %w: f32[3, 2, 3, 3] = user_input
%y: f32[s0, 3, ((s1 - 1)//2) + 1, 3] = aten.convolution.default(input=%x, weight=%w, bias=None, stride=[2, 2], padding=[1, 1], dilation=[1, 1], transposed=false, output_padding=[0, 0], groups=1)
output %y = user_output
"#;
    let mut m = model(text, &[]);
    for (b, h) in [(1, 5), (3, 8), (2, 11)] {
        jit_close_to_interp(
            &mut m,
            &[data(&[b, 2, h, 6], b as u32), data(&[3, 2, 3, 3], 7)],
            1e-4,
            1e-5,
        );
    }
}

#[test]
fn batch_norm_inference_with_and_without_affine() {
    for affine in [true, false] {
        let (decl, args) = if affine {
            (
                "input %g: f32[4] = user_input\ninput %b: f32[4] = user_input\n",
                "weight=%g, bias=%b",
            )
        } else {
            ("", "weight=None, bias=None")
        };
        let text = format!(
            "input %x: f32[2, 4, 3, 5] = user_input\ninput %m: f32[4] = user_input\n\
             input %v: f32[4] = user_input\n{decl}\
             %y: f32[2, 4, 3, 5], %s1: f32[0], %s2: f32[0] = \
             aten._native_batch_norm_legit_no_training.default(input=%x, {args}, \
             running_mean=%m, running_var=%v, momentum=0.1, eps=1e-5)\n\
             output %y = user_output\n"
        );
        let mut inputs = vec![data(&[2, 4, 3, 5], 1), data(&[4], 2), positive(&[4], 3)];
        if affine {
            inputs.push(data(&[4], 4));
            inputs.push(data(&[4], 5));
        }
        jit_close_to_interp(&mut model(&text, &[]), &inputs, 1e-5, 1e-6);
    }
}

#[test]
fn max_pool_values_with_unused_indices() {
    // (c, h, w, kernel, stride (empty = kernel), pad, dil)
    let cases: &[PoolCase] = &[
        (3, 8, 8, [2, 2], &[], 0, 1),
        (2, 9, 7, [3, 3], &[2, 2], 1, 1),
        (2, 10, 11, [3, 2], &[1, 2], 1, 2),
        (1, 5, 5, [3, 3], &[1], 0, 1),
    ];
    for (i, &(c, h, w, k, st, p, d)) in cases.iter().enumerate() {
        let s = if st.is_empty() {
            k
        } else {
            [st[0], *st.last().unwrap()]
        };
        let oh = (h + 2 * p - d * (k[0] - 1) - 1) / s[0] + 1;
        let ow = (w + 2 * p - d * (k[1] - 1) - 1) / s[1] + 1;
        let st = st
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            "input %x: f32[2, {c}, {h}, {w}] = user_input\n\
             %y: f32[2, {c}, {oh}, {ow}], %idx: i64[2, {c}, {oh}, {ow}] = \
             aten.max_pool2d_with_indices.default(self=%x, kernel_size=[{}, {}], stride=[{st}], \
             padding=[{p}], dilation=[{d}], ceil_mode=false)\noutput %y = user_output\n",
            k[0], k[1]
        );
        jit_matches_interp(&mut model(&text, &[]), &[data(&[2, c, h, w], i as u32)]);
    }
}

#[test]
fn max_pool_propagates_nan() {
    let text = r#"
input %x: f32[1, 1, 2, 4] = user_input
%y: f32[1, 1, 1, 2], %idx: i64[1, 1, 1, 2] = aten.max_pool2d_with_indices.default(self=%x, kernel_size=[2, 2])
output %y = user_output
"#;
    let x = Tensor::from_vec_f32(
        vec![1.0, f32::NAN, 3.0, 4.0, 5.0, 6.0, 7.0, -8.0],
        &[1, 1, 2, 4],
    )
    .unwrap();
    let mut jit = JitModel::compile(&model(text, &[])).unwrap();
    let out = jit.run(&mut [x]).unwrap()[0].to_vec::<f32>().unwrap();
    assert!(out[0].is_nan());
    assert_eq!(out[1], 7.0);
}

#[test]
fn mean_over_dims_with_and_without_keepdim() {
    let text = r#"
range s0 = [1, 8]
input %x: f32[s0, 3, 4, 5] = user_input
%a: f32[s0, 3, 1, 1] = aten.mean.dim(self=%x, dim=[-1, -2], keepdim=true)
%b: f32[3, 4] = aten.mean.dim(self=%x, dim=[0, 3])
output %a = user_output
output %b = user_output
"#;
    let mut m = model(text, &[]);
    for b in [1, 3] {
        jit_close_to_interp(&mut m, &[data(&[b, 3, 4, 5], b as u32)], 1e-5, 1e-6);
    }
}

#[test]
fn pool_indices_ceil_mode_and_transposed_convolution_match_the_interpreter() {
    let indices = r#"
input %x: f32[1, 1, 4, 4] = user_input
%y: f32[1, 1, 2, 2], %idx: i64[1, 1, 2, 2] = aten.max_pool2d_with_indices.default(self=%x, kernel_size=[2, 2])
output %idx = user_output
"#;
    jit_matches_interp(&mut model(indices, &[]), &[data(&[1, 1, 4, 4], 3)]);
    let ceil = r#"
input %x: f32[1, 1, 5, 5] = user_input
%y: f32[1, 1, 3, 3], %idx: i64[1, 1, 3, 3] = aten.max_pool2d_with_indices.default(self=%x, kernel_size=[2, 2], stride=[2, 2], padding=[0, 0], dilation=[1, 1], ceil_mode=true)
output %y = user_output
"#;
    jit_matches_interp(&mut model(ceil, &[]), &[data(&[1, 1, 5, 5], 4)]);
    let transposed = r#"
input %x: f32[1, 2, 4, 4] = user_input
input %w: f32[2, 2, 3, 3] = user_input
%y: f32[1, 2, 6, 6] = aten.convolution.default(input=%x, weight=%w, bias=None, stride=[1, 1], padding=[0, 0], dilation=[1, 1], transposed=true, output_padding=[0, 0], groups=1)
output %y = user_output
"#;
    jit_close_to_interp(
        &mut model(transposed, &[]),
        &[data(&[1, 2, 4, 4], 5), data(&[2, 2, 3, 3], 6)],
        1e-5,
        1e-6,
    );
}

#[test]
fn fixture_tiny_cnn_matches_pytorch() {
    check_fixture(&root().join("tests/fixtures/cases/tiny_cnn"));
}

#[test]
fn an_index_out_of_range_is_an_error_naming_the_node() {
    let text = r#"
input %w: f32[4, 3] = parameter "emb.weight"
input %i: i64[5] = user_input
%e: f32[5, 3] = aten.embedding.default(weight=%w, indices=%i)
%r: f32[5, 3] = aten.relu.default(self=%e)
output %r = user_output
"#;
    let w = data(&[4, 3], 9);
    let m = model(text, &[("emb.weight", w)]);
    let mut jit = JitModel::compile(&m).unwrap();
    let ids = |v: Vec<i64>| Tensor::from_vec(v, &[5]).unwrap();
    let ok = jit.run(&mut [ids(vec![0, 3, 3, 2, 1])]).unwrap();
    assert_eq!(ok[0].sizes(), &[5, 3]);
    // Past the end, or negative (embedding ids do not wrap, as in torch).
    for bad in [vec![0, 4, 1, 1, 1], vec![0, 1, -1, 1, 1]] {
        let e = jit.run(&mut [ids(bad)]).unwrap_err().to_string();
        assert!(e.contains("node") && e.contains("out of range"), "{e}");
    }
    // The failure leaves nothing behind: the next call is whole again.
    let again = jit.run(&mut [ids(vec![0, 3, 3, 2, 1])]).unwrap();
    assert_eq!(
        again[0].to_vec::<f32>().unwrap(),
        ok[0].to_vec::<f32>().unwrap()
    );
}

#[test]
fn integer_division_by_zero_is_an_error_not_a_crash() {
    let text = r#"
input %x: i64[3] = user_input
input %y: i64[3] = user_input
%q: i64[3] = aten.div.Tensor_mode(self=%x, other=%y, rounding_mode="floor")
output %q = user_output
"#;
    let mut jit = JitModel::compile(&model(text, &[])).unwrap();
    let t = |v: Vec<i64>| Tensor::from_vec(v, &[3]).unwrap();
    let e = jit
        .run(&mut [t(vec![1, 2, 3]), t(vec![1, 0, 1])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("node q") && e.contains("divided by zero"), "{e}");
}

#[test]
fn control_flow_runs_in_the_interpreter_at_every_size() {
    // map_impl over a symbolic leading dim, inside the true branch of a
    // cond whose predicate comes from the data.
    let text = r#"
range s0 = [1, 64]
input %x: f32[s0, 3] = user_input
input %w: f32[3, 2] = parameter "w"
%s: f32[] = aten.sum.default(self=%x)
%p: bool[] = aten.gt.Scalar(self=%s, other=0)
%r: f32[s0, 2] = higher_order.cond(%p, graph t {
  input %a: f32[s0, 3]
  input %b: f32[3, 2]
  %m: f32[s0, 2] = higher_order.map_impl(graph body {
    input %row: f32[3]
    input %v: f32[3, 2]
    %u: f32[1, 3] = aten.unsqueeze.default(self=%row, dim=0)
    %y: f32[1, 2] = aten.mm.default(self=%u, mat2=%v)
    %z: f32[2] = aten.squeeze.dim(self=%y, dim=0)
    output %z
  }, [%a], [%b])
  output %m
}, graph f {
  input %a: f32[s0, 3]
  input %b: f32[3, 2]
  %n: f32[s0, 2] = aten.mm.default(self=%a, mat2=%b)
  %e: f32[s0, 2] = aten.neg.default(self=%n)
  output %e
}, [%x, %w])
%o: f32[s0, 2] = aten.relu.default(self=%r)
output %o = user_output
"#;
    let mut m = model(text, &[("w", data(&[3, 2], 9))]);
    let mut jit = JitModel::compile(&m).unwrap();
    for (rows, seed) in [(1, 1), (5, 2), (7, 3), (4, 4)] {
        let x = data(&[rows, 3], seed);
        let got = jit.run(&mut [x.clone_data()]).unwrap();
        let want = m.run(&mut [x]).unwrap();
        assert_eq!(got[0].sizes(), &[rows, 2]);
        compare(&got[0], &want[0], 1e-6, 1e-6).unwrap();
    }
}

#[test]
fn control_flow_errors_name_the_node_and_leave_the_model_usable() {
    // An embedding inside the body of a while_loop inside a cond branch:
    // an id out of range is a run-time error naming the inner node.
    let text = r#"
input %w: f32[4, 2] = parameter "w"
input %ids: i64[3] = user_input
%s: i64[] = aten.sum.default(self=%ids)
%p: bool[] = aten.ge.Scalar(self=%s, other=0)
%k0: i64[] = aten.full.default(size=[], fill_value=0, dtype=i64)
%z0: f32[3, 2] = aten.full.default(size=[3, 2], fill_value=0.0, dtype=f32)
%k: i64[], %y: f32[3, 2] = higher_order.cond(%p, graph t {
  input %a: i64[3]
  input %b: f32[4, 2]
  input %j0: i64[]
  input %h0: f32[3, 2]
  %jj: i64[], %hh: f32[3, 2] = higher_order.while_loop(graph c {
    input %j: i64[]
    input %h: f32[3, 2]
    input %ia: i64[3]
    input %wb: f32[4, 2]
    %l: bool[] = aten.lt.Scalar(self=%j, other=2)
    output %l
  }, graph body {
    input %j: i64[]
    input %h: f32[3, 2]
    input %ia: i64[3]
    input %wb: f32[4, 2]
    %j1: i64[] = aten.add.Scalar(self=%j, other=1)
    %emb: f32[3, 2] = aten.embedding.default(weight=%wb, indices=%ia)
    %h1: f32[3, 2] = aten.add.Tensor(self=%h, other=%emb)
    output %j1
    output %h1
  }, [%j0, %h0], [%a, %b])
  output %jj
  output %hh
}, graph f {
  input %a: i64[3]
  input %b: f32[4, 2]
  input %j0: i64[]
  input %h0: f32[3, 2]
  output %j0
  output %h0
}, [%ids, %w, %k0, %z0])
output %k = user_output
output %y = user_output
"#;
    let w = data(&[4, 2], 5);
    let m = model(text, &[("w", w.clone())]);
    let mut jit = JitModel::compile(&m).unwrap();
    let ids = |v: Vec<i64>| Tensor::from_vec(v, &[3]).unwrap();
    let e = jit.run(&mut [ids(vec![0, 7, 1])]).unwrap_err().to_string();
    assert!(e.contains("node emb") && e.contains("out of range"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let ok = jit.run(&mut [ids(vec![3, 0, 1])]).unwrap();
    assert_eq!(ok[0].to_i64_vec(), [2]);
    let w = w.to_vec::<f32>().unwrap();
    let want: Vec<f32> = [3, 0, 1]
        .iter()
        .flat_map(|&r| [2.0 * w[2 * r], 2.0 * w[2 * r + 1]])
        .collect();
    assert_eq!(ok[1].to_vec::<f32>().unwrap(), want);
}

#[test]
fn symbolic_scalars_and_zero_dim_tensors_are_outputs() {
    let text = r#"
range s0 = [1, 64]
input %x: f32[s0, 3] = user_input
%n: sym_int = aten.sym_size.int(self=%x, dim=0)
%m: sym_int = _operator.mul(%n, 3)
%f: sym_float = torch.sym_float(%m)
%b: sym_bool = _operator.eq(%n, 2)
%t: f32[] = aten.sum.default(self=%x)
%z: f32[] = aten.mul.Tensor(self=%t, other=%f)
output %m = user_output
output %f = user_output
output %b = user_output
output %t = user_output
output %z = user_output
"#;
    let mut m = model(text, &[]);
    for batch in [2, 5] {
        let got = jit_matches_interp(&mut m, &[data(&[batch, 3], 1)]);
        assert_eq!(got[0].to_f64_vec(), vec![3.0 * batch as f64]);
        assert_eq!(got[1].to_f64_vec(), vec![3.0 * batch as f64]);
        assert_eq!(got[2].to_f64_vec(), vec![f64::from(u8::from(batch == 2))]);
        assert!(got[3].sizes().is_empty() && got[4].sizes().is_empty());
        let dtypes: Vec<DType> = got.iter().map(|t| t.dtype()).collect();
        assert_eq!(
            dtypes,
            [DType::I64, DType::F64, DType::Bool, DType::F32, DType::F32]
        );
    }
}
