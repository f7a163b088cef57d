//! Per-op differential tests of the compiler against the reference
//! interpreter, over the dtypes torch uses: each natively lowered op runs
//! as a one-node graph on both backends with the same inputs, and must not
//! fall back to the reference kernel.
//!
//! Tolerances: integer and bool results exact; f32 and f64 within a few
//! ulps of the interpreter (which computes in f64 and rounds); f16 and bf16
//! within one unit of their precision (the compiler computes half types in
//! f32 without rounding between fused ops, as torch's kernels do inside
//! one op).

use std::collections::BTreeMap;
use std::path::PathBuf;

use torchlift::check::compare;
use torchlift::codegen::jit::JitModel;
use torchlift::codegen::kernel::KernelKind;
use torchlift::interp::tensor::Tensor;
use torchlift::ir::parse::parse_program;
use torchlift::model::Model;
use torchlift::DType;

fn model(text: &str) -> Model {
    let program = parse_program(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    torchlift::ir::verify::verify_program(&program).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Model {
        path: PathBuf::from("op.tlir"),
        program,
        state: BTreeMap::new(),
        sample_inputs: None,
    }
}

/// Deterministic values of `dtype`: floats in about [-3, 3] (positive when
/// asked), integers in [-7, 7] (positive: [1, 7]), bools alternating.
fn data(dtype: DType, n: usize, seed: u32, positive: bool) -> Tensor {
    let v: Vec<f64> = (0..n)
        .map(|i| {
            let x = ((i as f64 + 1.0) * 0.917 + seed as f64 * 1.31).sin() * 3.0;
            let x = if positive { x.abs() + 0.25 } else { x };
            if dtype.is_float() {
                x
            } else if dtype == DType::Bool {
                ((i + seed as usize) % 3 == 0) as i64 as f64
            } else if positive {
                (x.round().abs() + 1.0).min(7.0)
            } else {
                x.round() * 2.0
            }
        })
        .collect();
    let t = Tensor::from_vec(v, &[n]).unwrap();
    t.to_dtype(dtype).reshape(&[2, (n / 2) as i64]).unwrap()
}

fn tolerance(d: DType) -> (f64, f64) {
    match d {
        DType::F32 => (2e-6, 1e-6),
        DType::F64 => (1e-12, 1e-12),
        DType::F16 => (2e-3, 2e-3),
        DType::BF16 => (1.6e-2, 1.6e-2),
        _ => (0.0, 0.0),
    }
}

/// Runs the one-node graph `body` (using `%x`, `%y` of `dt` and shape
/// [2, 8]) on both backends and compares.
fn check(body: &str, inputs: &[(&str, DType, bool)], out: DType) {
    check_shaped(body, inputs, &[2, 8], out)
}

/// As [`check`], with inputs of `shape`.
fn check_shaped(body: &str, inputs: &[(&str, DType, bool)], shape: &[usize], out: DType) {
    let each: Vec<(&str, DType, bool, &[usize])> =
        inputs.iter().map(|&(n, d, p)| (n, d, p, shape)).collect();
    check_each(body, &each, out)
}

/// As [`check`], each input with its own shape (an empty shape is a
/// 0-d tensor).
fn check_each(body: &str, inputs: &[(&str, DType, bool, &[usize])], out: DType) {
    let mut text = String::new();
    for (name, dt, _, shape) in inputs {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        text.push_str(&format!(
            "input %{name}: {dt}[{}] = user_input\n",
            dims.join(", ")
        ));
    }
    text.push_str(body);
    // A body with several outputs lists them itself.
    if !body.contains("\noutput ") {
        text.push_str("\noutput %r = user_output\n");
    }
    let mut m = model(&text);
    let mut jit = JitModel::compile(&m).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let natively = jit
        .plan()
        .kernels
        .iter()
        .all(|k| !matches!(k.kind, KernelKind::Fallback { .. }));
    assert!(natively, "falls back to the reference kernel:\n{text}");
    let xs: Vec<Tensor> = inputs
        .iter()
        .enumerate()
        .map(|(i, (_, dt, pos, shape))| {
            let n: usize = shape.iter().product();
            let sizes: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            // `data` makes [2, n / 2]; build an even count, then cut.
            let t = data(*dt, 2 * n.div_ceil(2).max(1), i as u32 + 1, *pos);
            let t = t.reshape(&[-1]).unwrap().narrow(0, 0, n as i64).unwrap();
            t.contiguous().reshape(&sizes).unwrap()
        })
        .collect();
    let got = jit
        .run(&mut xs.iter().map(|t| t.clone_data()).collect::<Vec<_>>())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let want = m
        .run(&mut xs.iter().map(|t| t.clone_data()).collect::<Vec<_>>())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(got.len(), want.len(), "{text}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.dtype(), w.dtype(), "{text}");
        let (rtol, atol) = tolerance(g.dtype());
        if let Err(e) = compare(g, w, rtol, atol) {
            panic!(
                "{e}\n{text}\ngot  {:?}\nwant {:?}",
                g.to_f64_vec(),
                w.to_f64_vec()
            );
        }
    }
    assert_eq!(got[0].dtype(), out, "{text}");
}

const FLOATS: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];
const INTS: [DType; 4] = [DType::I64, DType::I32, DType::I16, DType::I8];

#[test]
fn unary_float_ops_in_every_float_dtype() {
    let ops = [
        ("neg", false),
        ("abs", false),
        ("sqrt", true),
        ("rsqrt", true),
        ("reciprocal", true),
        ("exp", false),
        ("expm1", false),
        ("log", true),
        ("log1p", true),
        ("tanh", false),
        ("sigmoid", false),
        ("erf", false),
        ("sin", false),
        ("cos", false),
        ("floor", false),
        ("ceil", false),
        ("round", false),
        ("trunc", false),
        ("relu", false),
        ("sign", false),
        ("silu", false),
        ("gelu", false),
        ("hardswish", false),
    ];
    for dt in FLOATS {
        for (op, positive) in ops {
            let body = format!("%r: {dt}[2, 8] = aten.{op}.default(self=%x)");
            check(&body, &[("x", dt, positive)], dt);
        }
    }
}

#[test]
fn binary_ops_in_float_and_integer_dtypes() {
    for dt in FLOATS.iter().chain(&INTS) {
        let dt = *dt;
        for op in [
            "add.Tensor",
            "sub.Tensor",
            "mul.Tensor",
            "maximum.default",
            "minimum.default",
        ] {
            let body = format!("%r: {dt}[2, 8] = aten.{op}(self=%x, other=%y)");
            check(&body, &[("x", dt, false), ("y", dt, false)], dt);
        }
        let body = format!("%r: {dt}[2, 8] = aten.remainder.Tensor(self=%x, other=%y)");
        check(&body, &[("x", dt, false), ("y", dt, true)], dt);
        let body = format!(
            "%r: {dt}[2, 8] = aten.div.Tensor_mode(self=%x, other=%y, rounding_mode=\"floor\")"
        );
        check(&body, &[("x", dt, false), ("y", dt, true)], dt);
    }
    for dt in FLOATS {
        let body = format!("%r: {dt}[2, 8] = aten.div.Tensor(self=%x, other=%y)");
        check(&body, &[("x", dt, false), ("y", dt, true)], dt);
    }
    // Integer true division promotes to the default float dtype.
    let body = "%r: f32[2, 8] = aten.div.Tensor(self=%x, other=%y)";
    check(
        body,
        &[("x", DType::I64, false), ("y", DType::I64, true)],
        DType::F32,
    );
}

#[test]
fn comparisons_and_logic_give_bools() {
    for dt in [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::I64,
        DType::I32,
        DType::U8,
    ] {
        for op in ["eq", "ne", "lt", "le", "gt", "ge"] {
            let body = format!("%r: bool[2, 8] = aten.{op}.Tensor(self=%x, other=%y)");
            check(&body, &[("x", dt, true), ("y", dt, true)], DType::Bool);
        }
    }
    for op in [
        "bitwise_and.Tensor",
        "bitwise_or.Tensor",
        "bitwise_xor.Tensor",
        "logical_and.default",
        "logical_or.default",
    ] {
        let body = format!("%r: bool[2, 8] = aten.{op}(self=%x, other=%y)");
        check(
            &body,
            &[("x", DType::Bool, false), ("y", DType::Bool, false)],
            DType::Bool,
        );
    }
    let body = "%r: bool[2, 8] = aten.logical_not.default(self=%x)";
    check(body, &[("x", DType::Bool, false)], DType::Bool);
    let body = "%r: i64[2, 8] = aten.bitwise_not.default(self=%x)";
    check(body, &[("x", DType::I64, false)], DType::I64);
}

#[test]
fn where_and_casts_between_dtypes() {
    for dt in [DType::F32, DType::F64, DType::BF16, DType::I64, DType::I8] {
        let body = format!("%r: {dt}[2, 8] = aten.where.self(condition=%c, self=%x, other=%y)");
        check(
            &body,
            &[
                ("c", DType::Bool, false),
                ("x", dt, false),
                ("y", dt, false),
            ],
            dt,
        );
    }
    let all = [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::U8,
        DType::Bool,
    ];
    for from in all {
        for to in all {
            // Negative floats to u8 are undefined in C and torch alike.
            let positive = to == DType::U8;
            let body = format!("%r: {to}[2, 8] = aten._to_copy.default(self=%x, dtype={to})");
            check(&body, &[("x", from, positive)], to);
        }
    }
}

#[test]
fn reductions_in_float_and_integer_dtypes() {
    for dt in [DType::F32, DType::F64, DType::BF16] {
        for op in [
            "sum.dim_IntList",
            "mean.dim",
            "amax.default",
            "amin.default",
        ] {
            let body = format!("%r: {dt}[2] = aten.{op}(self=%x, dim=[1])");
            check(&body, &[("x", dt, false)], dt);
        }
    }
    for dt in [DType::I64, DType::I32] {
        for op in ["amax.default", "amin.default"] {
            let body = format!("%r: {dt}[2] = aten.{op}(self=%x, dim=[1])");
            check(&body, &[("x", dt, false)], dt);
        }
        // Sums of integers are i64, as in torch.
        let body = "%r: i64[2] = aten.sum.dim_IntList(self=%x, dim=[1])";
        check(body, &[("x", dt, false)], DType::I64);
    }
}

#[test]
fn constant_padding_pads_crops_and_fills() {
    for dt in [DType::F32, DType::I64, DType::BF16] {
        // Last dim: 2 before, 1 after; first dim: crop 1 before, pad 2 after.
        let body = format!(
            "%r: {dt}[3, 11] = aten.constant_pad_nd.default(self=%x, pad=[2, 1, -1, 2], value=5)"
        );
        check(&body, &[("x", dt, false)], dt);
    }
    let body =
        "%r: f32[2, 9] = aten.pad.default(self=%x, pad=[0, 1], mode=\"constant\", value=-1.5)";
    check(body, &[("x", DType::F32, false)], DType::F32);
}

#[test]
fn average_pooling_with_padding_ceil_mode_and_divisors() {
    // (output spatial size, arguments) over a [1, 2, 5, 6] input.
    let cases = [
        ("2, 3", "kernel_size=[2, 2]"),
        ("3, 3", "kernel_size=[3, 3], stride=[2, 2], padding=[1, 1]"),
        ("3, 3", "kernel_size=[3, 3], stride=[2, 2], padding=[1, 1], ceil_mode=false, count_include_pad=false"),
        ("3, 3", "kernel_size=[2, 2], stride=[2, 2], padding=[0, 0], ceil_mode=true, count_include_pad=false"),
        ("3, 3", "kernel_size=[2, 2], stride=[2, 2], padding=[0, 0], ceil_mode=true, count_include_pad=true"),
        ("5, 6", "kernel_size=[3, 3], stride=[1, 1], padding=[1, 1], ceil_mode=false, count_include_pad=true, divisor_override=4"),
    ];
    for dt in [DType::F32, DType::F64] {
        for (out, args) in cases {
            let body = format!("%r: {dt}[1, 2, {out}] = aten.avg_pool2d.default(self=%x, {args})");
            check_shaped(&body, &[("x", dt, false)], &[1, 2, 5, 6], dt);
        }
    }
}

#[test]
fn first_differences_along_a_dim() {
    for dt in [DType::F32, DType::I64, DType::Bool] {
        let body = format!("%r: {dt}[2, 7] = aten.diff.default(self=%x, n=1, dim=1)");
        check(&body, &[("x", dt, false)], dt);
        let body = format!("%r: {dt}[1, 8] = aten.diff.default(self=%x, n=1, dim=0)");
        check(&body, &[("x", dt, false)], dt);
        // With prepend and append: the difference of the concatenation.
        let two = [("x", dt, false), ("y", dt, false)];
        let body = format!("%r: {dt}[2, 15] = aten.diff.default(self=%x, n=1, dim=1, prepend=%y)");
        check(&body, &two, dt);
        let body = format!("%r: {dt}[3, 8] = aten.diff.default(self=%x, n=1, dim=0, append=%y)");
        check(&body, &two, dt);
        let body = format!(
            "%r: {dt}[2, 23] = aten.diff.default(self=%x, n=1, dim=-1, prepend=%y, append=%z)"
        );
        check(
            &body,
            &[("x", dt, false), ("y", dt, false), ("z", dt, false)],
            dt,
        );
    }
}

#[test]
fn clamp_by_tensors_on_either_or_both_sides() {
    for dt in [DType::F32, DType::F16, DType::I64] {
        let three = [("x", dt, false), ("lo", dt, false), ("hi", dt, false)];
        let body = format!("%r: {dt}[2, 8] = aten.clamp.Tensor(self=%x, min=%lo, max=%hi)");
        check(&body, &three, dt);
        let body = format!("%r: {dt}[2, 8] = aten.clamp.Tensor(self=%x, min=%lo)");
        check(&body, &three[..2], dt);
        let body = format!("%r: {dt}[2, 8] = aten.clamp.Tensor(self=%x, min=None, max=%lo)");
        check(&body, &three[..2], dt);
        let body = format!("%r: {dt}[2, 8] = aten.clamp_min.Tensor(self=%x, min=%lo)");
        check(&body, &three[..2], dt);
        let body = format!("%r: {dt}[2, 8] = aten.clamp_max.Tensor(self=%x, max=%lo)");
        check(&body, &three[..2], dt);
    }
}

#[test]
fn arg_reductions_take_the_first_extreme_and_the_first_nan() {
    let dts = [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::U8,
    ];
    for dt in dts {
        // Integer data has ties: the first index wins.
        let positive = dt == DType::U8;
        for op in ["argmax", "argmin"] {
            for (out, args) in [
                ("[2]", "dim=1"),
                ("[8]", "dim=0"),
                ("[2, 1]", "dim=-1, keepdim=true"),
                ("[]", "dim=None"),
                ("[1, 1]", "dim=None, keepdim=true"),
            ] {
                let body = format!("%r: i64{out} = aten.{op}.default(self=%x, {args})");
                check(&body, &[("x", dt, positive)], DType::I64);
            }
        }
    }
    // log of negative values: NaNs, of which the first is both extremes.
    for dt in FLOATS {
        for op in ["argmax", "argmin"] {
            let body = format!(
                "%l: {dt}[2, 8] = aten.log.default(self=%x)\n\
                 %r: i64[2] = aten.{op}.default(self=%l, dim=1)"
            );
            check(&body, &[("x", dt, false)], DType::I64);
        }
    }
}

#[test]
fn variance_and_standard_deviation_with_torch_corrections() {
    for dt in FLOATS {
        for op in ["var", "std"] {
            for (out, args) in [
                ("[2]", "correction(self=%x, dim=[1], correction=1)"),
                ("[8]", "correction(self=%x, dim=[0], correction=0)"),
                (
                    "[2, 1]",
                    "correction(self=%x, dim=[-1], correction=2.5, keepdim=true)",
                ),
                ("[]", "correction(self=%x, dim=None)"),
                ("[1, 1]", "correction(self=%x, dim=[0, 1], keepdim=true)"),
                ("[2]", "dim(self=%x, dim=[1], unbiased=false)"),
                ("[]", "default(self=%x)"),
                ("[]", "default(self=%x, unbiased=false)"),
            ] {
                let body = format!("%r: {dt}{out} = aten.{op}.{args}");
                check(&body, &[("x", dt, false)], dt);
            }
        }
        // More corrections than elements: the divisor is clamped at 0.
        let body = format!("%r: {dt}[8] = aten.var.correction(self=%x, dim=[0], correction=3)");
        check(&body, &[("x", dt, false)], dt);
    }
}

#[test]
fn cumulative_sums_and_products_along_each_dim() {
    for dt in FLOATS {
        for op in ["cumsum", "cumprod"] {
            for dim in [0, 1, -1] {
                let body = format!("%r: {dt}[2, 8] = aten.{op}.default(self=%x, dim={dim})");
                check(&body, &[("x", dt, false)], dt);
            }
        }
    }
    // Integer and bool inputs accumulate in i64 (wrapping), as in torch.
    for dt in [DType::I64, DType::I32, DType::I8, DType::U8, DType::Bool] {
        for op in ["cumsum", "cumprod"] {
            let body = format!("%r: i64[2, 8] = aten.{op}.default(self=%x, dim=1)");
            check(&body, &[("x", dt, dt == DType::U8)], DType::I64);
        }
    }
    // An explicit result dtype.
    let body = "%r: f64[2, 8] = aten.cumsum.default(self=%x, dim=1, dtype=f64)";
    check(body, &[("x", DType::F32, false)], DType::F64);
    let body = "%r: f32[2, 8] = aten.cumprod.default(self=%x, dim=1, dtype=f32)";
    check(body, &[("x", DType::I32, false)], DType::F32);
}

#[test]
fn operator_aliases() {
    for dt in [DType::Bool, DType::I64, DType::I8] {
        for op in ["__and__", "__or__", "__xor__"] {
            let body = format!("%r: {dt}[2, 8] = aten.{op}.Tensor(self=%x, other=%y)");
            check(&body, &[("x", dt, false), ("y", dt, false)], dt);
        }
    }
    for dt in [DType::F32, DType::F16, DType::I64] {
        let body = format!("%r: {dt}[2, 8] = aten.clip.default(self=%x, min=-1, max=2)");
        check(&body, &[("x", dt, false)], dt);
    }
}

#[test]
fn nearest_upsampling_follows_torch_source_indices() {
    // (output spatial size, arguments) over a [1, 2, 3, 4] input: kept,
    // doubled, enlarged, shrunk, and given scales that disagree with the
    // sizes (torch uses the scales).
    let cases = [
        ("3, 4", "default(self=%x, output_size=[3, 4])"),
        ("6, 8", "default(self=%x, output_size=[6, 8])"),
        ("7, 5", "default(self=%x, output_size=[7, 5])"),
        ("2, 3", "default(self=%x, output_size=[2, 3])"),
        (
            "7, 9",
            "default(self=%x, output_size=[7, 9], scales_h=2.5, scales_w=2.25)",
        ),
        (
            "4, 6",
            "vec(input=%x, output_size=None, scale_factors=[1.5, 1.5])",
        ),
        (
            "5, 7",
            "vec(input=%x, output_size=[5, 7], scale_factors=None)",
        ),
    ];
    for dt in FLOATS {
        for (out, args) in cases {
            let body = format!("%r: {dt}[1, 2, {out}] = aten.upsample_nearest2d.{args}");
            check_shaped(&body, &[("x", dt, false)], &[1, 2, 3, 4], dt);
        }
    }
    // A 3-d input (channels, height, width).
    let body = "%r: f32[2, 5, 7] = aten.upsample_nearest2d.default(self=%x, output_size=[5, 7])";
    check_shaped(body, &[("x", DType::F32, false)], &[2, 3, 4], DType::F32);
}

#[test]
fn activations_in_every_float_dtype() {
    let cases = [
        "elu.default(self=%x)",
        "elu.default(self=%x, alpha=0.5, scale=2, input_scale=1.5)",
        "celu.default(self=%x)",
        "celu.default(self=%x, alpha=2.5)",
        "selu.default(self=%x)",
        "softplus.default(self=%x)",
        "softplus.default(self=%x, beta=2, threshold=3)",
        "log_sigmoid.default(self=%x)",
        "hardshrink.default(self=%x)",
        "hardshrink.default(self=%x, lambd=1.25)",
        "frac.default(self=%x)",
        "tan.default(self=%x)",
    ];
    for dt in FLOATS {
        for c in cases {
            let body = format!("%r: {dt}[2, 8] = aten.{c}");
            check(&body, &[("x", dt, false)], dt);
        }
    }
}

#[test]
fn fmod_floor_divide_and_hypot() {
    for dt in FLOATS.iter().chain(&INTS) {
        let dt = *dt;
        for op in ["fmod.Tensor", "floor_divide.default", "remainder.Tensor"] {
            let body = format!("%r: {dt}[2, 8] = aten.{op}(self=%x, other=%y)");
            // Negative divisors too: the signs of the results differ.
            let y = [("x", dt, false), ("y", dt, true)];
            check(&body, &y, dt);
            let body = format!(
                "%n: {dt}[2, 8] = aten.neg.default(self=%y)\n\
                 %r: {dt}[2, 8] = aten.{op}(self=%x, other=%n)"
            );
            check(&body, &y, dt);
        }
        for s in ["3", "-2"] {
            for op in ["fmod.Scalar", "floor_divide.Scalar", "remainder.Scalar"] {
                let body = format!("%r: {dt}[2, 8] = aten.{op}(self=%x, other={s})");
                check(&body, &[("x", dt, false)], dt);
            }
        }
    }
    for dt in FLOATS {
        let body = format!("%r: {dt}[2, 8] = aten.fmod.Scalar(self=%x, other=0.7)");
        check(&body, &[("x", dt, false)], dt);
        // 1.0 // 0.1 is 9 in torch (and Python); half types are left out:
        // torch divides them by the number unrounded, the interpreter by
        // the number rounded to the half type.
        if matches!(dt, DType::F32 | DType::F64) {
            let body = format!("%r: {dt}[2, 8] = aten.floor_divide.Scalar(self=%x, other=0.1)");
            check(&body, &[("x", dt, false)], dt);
        }
        let body = format!("%r: {dt}[2, 8] = aten.hypot.default(self=%x, other=%y)");
        check(&body, &[("x", dt, false), ("y", dt, false)], dt);
    }
}

#[test]
fn lerp_addcmul_and_addcdiv() {
    for dt in FLOATS {
        for w in ["0.25", "0.75", "-0.6"] {
            let body = format!("%r: {dt}[2, 8] = aten.lerp.Scalar(self=%x, end=%y, weight={w})");
            check(&body, &[("x", dt, false), ("y", dt, false)], dt);
        }
        // Weights on both sides of 0.5.
        let body = format!("%r: {dt}[2, 8] = aten.lerp.Tensor(self=%x, end=%y, weight=%w)");
        check(
            &body,
            &[("x", dt, false), ("y", dt, false), ("w", dt, false)],
            dt,
        );
        for op in ["addcmul", "addcdiv"] {
            for v in ["", ", value=-0.5"] {
                let body = format!(
                    "%r: {dt}[2, 8] = aten.{op}.default(self=%x, tensor1=%y, tensor2=%z{v})"
                );
                check(
                    &body,
                    &[("x", dt, false), ("y", dt, false), ("z", dt, true)],
                    dt,
                );
            }
        }
    }
    for dt in INTS {
        let body = format!(
            "%r: {dt}[2, 8] = aten.addcmul.default(self=%x, tensor1=%y, tensor2=%z, value=3)"
        );
        check(
            &body,
            &[("x", dt, false), ("y", dt, false), ("z", dt, false)],
            dt,
        );
    }
}

#[test]
fn prelu_glu_and_triangles() {
    let x: &[usize] = &[2, 3, 4];
    for dt in FLOATS {
        for (op, w) in [("prelu", 3usize), ("prelu", 1), ("_prelu_kernel", 3)] {
            let body = format!("%r: {dt}[2, 3, 4] = aten.{op}.default(self=%x, weight=%w)");
            check_each(&body, &[("x", dt, false, x), ("w", dt, false, &[w])], dt);
        }
        for (dim, out) in [("-1", "2, 3, 2"), ("0", "1, 3, 4"), ("2", "2, 3, 2")] {
            let body = format!("%r: {dt}[{out}] = aten.glu.default(self=%x, dim={dim})");
            check_shaped(&body, &[("x", dt, false)], x, dt);
        }
        let body = format!("%r: {dt}[2, 3, 2] = aten.glu.default(self=%x)");
        check_shaped(&body, &[("x", dt, false)], x, dt);
    }
    for dt in [
        DType::F32,
        DType::F64,
        DType::BF16,
        DType::I64,
        DType::I8,
        DType::Bool,
    ] {
        for op in ["tril", "triu"] {
            for d in ["", ", diagonal=1", ", diagonal=-2", ", diagonal=5"] {
                let body = format!("%r: {dt}[2, 3, 4] = aten.{op}.default(self=%x{d})");
                check_shaped(&body, &[("x", dt, false)], x, dt);
            }
        }
    }
}

const SOME: [DType; 5] = [DType::F32, DType::F64, DType::BF16, DType::I64, DType::Bool];

#[test]
fn reshaping_aliases_and_narrowing() {
    let x: &[usize] = &[2, 3, 4];
    for dt in SOME {
        let cases = [
            (
                "6, 4",
                "flatten.using_ints(self=%x, start_dim=0, end_dim=1)",
            ),
            ("24", "flatten.using_ints(self=%x)"),
            ("2, 3, 2, 2", "unflatten.int(self=%x, dim=-1, sizes=[2, 2])"),
            ("4, 3, 2", "numpy_T.default(self=%x)"),
            (
                "2, 2, 4",
                "narrow.default(self=%x, dim=1, start=1, length=2)",
            ),
            (
                "2, 3, 1",
                "narrow.default(self=%x, dim=-1, start=-2, length=1)",
            ),
        ];
        for (out, args) in cases {
            let body = format!("%r: {dt}[{out}] = aten.{args}");
            check_shaped(&body, &[("x", dt, false)], x, dt);
        }
        let body = format!("%r: {dt}[4, 6] = aten.view_as.default(self=%x, other=%y)");
        check_each(&body, &[("x", dt, false, x), ("y", dt, false, &[4, 6])], dt);
        let body = format!("%r: {dt}[2, 3, 4] = aten.expand_as.default(self=%x, other=%y)");
        check_each(&body, &[("x", dt, false, &[3, 1]), ("y", dt, false, x)], dt);
        // Several outputs: chunk, unbind.
        let body = format!(
            "%a: {dt}[2, 2, 4], %b: {dt}[2, 1, 4] = aten.chunk.default(self=%x, chunks=2, dim=1)\n\
             output %a = user_output\noutput %b = user_output"
        );
        check_shaped(&body, &[("x", dt, false)], x, dt);
        let body = format!(
            "%a: {dt}[2, 4], %b: {dt}[2, 4], %c: {dt}[2, 4] = aten.unbind.int(self=%x, dim=1)\n\
             output %a = user_output\noutput %b = user_output\noutput %c = user_output"
        );
        check_shaped(&body, &[("x", dt, false)], x, dt);
    }
}

#[test]
fn flips_rolls_repeats_and_stacks() {
    let x: &[usize] = &[2, 3, 4];
    for dt in SOME {
        let cases = [
            ("2, 3, 4", "flip.default(self=%x, dims=[0, -1])"),
            (
                "2, 3, 4",
                "roll.default(self=%x, shifts=[1, -5], dims=[2, 1])",
            ),
            ("2, 3, 4", "roll.default(self=%x, shifts=[7])"),
            ("2, 3, 4", "roll.default(self=%x, shifts=[-3], dims=[])"),
            ("4, 3, 8", "repeat.default(self=%x, repeats=[2, 1, 2])"),
            (
                "2, 2, 9, 4",
                "repeat.default(self=%x, repeats=[2, 1, 3, 1])",
            ),
        ];
        for (out, args) in cases {
            let body = format!("%r: {dt}[{out}] = aten.{args}");
            check_shaped(&body, &[("x", dt, false)], x, dt);
        }
        for (dim, out) in [(0, "2, 2, 3, 4"), (2, "2, 3, 2, 4"), (-1, "2, 3, 4, 2")] {
            let body = format!("%r: {dt}[{out}] = aten.stack.default(tensors=[%x, %y], dim={dim})");
            check_shaped(&body, &[("x", dt, false), ("y", dt, false)], x, dt);
        }
    }
}

#[test]
fn diagonals_and_diagonal_matrices() {
    let x: &[usize] = &[3, 4, 5];
    for dt in SOME {
        let cases = [
            ("5, 3", "diagonal.default(self=%x)"),
            ("5, 2", "diagonal.default(self=%x, offset=2)"),
            ("5, 2", "diagonal.default(self=%x, offset=-1)"),
            (
                "3, 4",
                "diagonal.default(self=%x, offset=0, dim1=2, dim2=1)",
            ),
            (
                "4, 2",
                "diagonal.default(self=%x, offset=3, dim1=0, dim2=-1)",
            ),
            ("5, 0", "diagonal.default(self=%x, offset=4)"),
        ];
        for (out, args) in cases {
            let body = format!("%r: {dt}[{out}] = aten.{args}");
            check_shaped(&body, &[("x", dt, false)], x, dt);
        }
        for (k, out) in [(0, "3"), (1, "3"), (-2, "1")] {
            let body = format!("%r: {dt}[{out}] = aten.diag.default(self=%x, diagonal={k})");
            check_shaped(&body, &[("x", dt, false)], &[3, 4], dt);
        }
        for (k, side) in [(0, 4), (2, 6), (-1, 5)] {
            let body =
                format!("%r: {dt}[{side}, {side}] = aten.diag.default(self=%x, diagonal={k})");
            check_shaped(&body, &[("x", dt, false)], &[4], dt);
        }
    }
}

#[test]
fn reflection_replication_and_circular_padding() {
    for dt in [DType::F32, DType::F64, DType::BF16, DType::I64] {
        for kind in ["reflection", "replication"] {
            let cases = [
                ("1d", "2, 3, 7", "[2, 1]", &[2usize, 3, 4][..]),
                ("2d", "2, 5, 7", "[1, 2, 2, 0]", &[2, 3, 4][..]),
                ("3d", "1, 4, 5, 6", "[1, 1, 0, 2, 1, 0]", &[1, 3, 3, 4][..]),
            ];
            for (d, out, pad, shape) in cases {
                let body =
                    format!("%r: {dt}[{out}] = aten.{kind}_pad{d}.default(self=%x, padding={pad})");
                check_shaped(&body, &[("x", dt, false)], shape, dt);
            }
        }
        for mode in ["reflect", "replicate", "circular"] {
            let body = format!(
                "%r: {dt}[2, 6, 7] = aten.pad.default(self=%x, pad=[3, 0, 1, 2], mode=\"{mode}\")"
            );
            check_shaped(&body, &[("x", dt, false)], &[2, 3, 4], dt);
        }
    }
}

#[test]
fn pixel_and_channel_shuffles() {
    for dt in FLOATS {
        let body =
            format!("%r: {dt}[1, 2, 6, 4] = aten.pixel_shuffle.default(self=%x, upscale_factor=2)");
        check_shaped(&body, &[("x", dt, false)], &[1, 8, 3, 2], dt);
        let body =
            format!("%r: {dt}[2, 3, 3] = aten.pixel_shuffle.default(self=%x, upscale_factor=3)");
        check_shaped(&body, &[("x", dt, false)], &[18, 1, 1], dt);
    }
    for dt in SOME {
        let body = format!(
            "%r: {dt}[1, 12, 3, 2] = aten.pixel_unshuffle.default(self=%x, downscale_factor=2)"
        );
        check_shaped(&body, &[("x", dt, false)], &[1, 3, 6, 4], dt);
        let body = format!("%r: {dt}[2, 6, 3] = aten.channel_shuffle.default(self=%x, groups=3)");
        check_shaped(&body, &[("x", dt, false)], &[2, 6, 3], dt);
        let body = format!("%r: {dt}[2, 6] = aten.channel_shuffle.default(self=%x, groups=2)");
        check_shaped(&body, &[("x", dt, false)], &[2, 6], dt);
    }
}

#[test]
fn creation_of_filled_empty_and_spaced_tensors() {
    for dt in SOME {
        for body in [
            format!("%r: {dt}[2, 8] = aten.zero.default(self=%x)"),
            format!("%r: {dt}[2, 8] = aten.empty_like.default(self=%x)"),
            format!("%r: {dt}[3, 2] = aten.new_empty.default(self=%x, size=[3, 2])"),
            format!("%r: {dt}[3] = aten.new_full.default(self=%x, size=[3], fill_value=2)"),
            format!("%r: {dt}[2, 3] = aten.empty.memory_format(size=[2, 3], dtype={dt})"),
            format!(
                "%r: {dt}[2, 3] = aten.empty_strided.default(size=[2, 3], stride=[1, 2], dtype={dt})"
            ),
        ] {
            check(&body, &[("x", dt, false)], dt);
        }
    }
    for dt in FLOATS.iter().chain(&[DType::I64, DType::I32]) {
        let dt = *dt;
        for (steps, a, b) in [
            (5, "0", "1"),
            (7, "-2.5", "3"),
            (1, "4", "9"),
            (0, "0", "1"),
            (6, "3", "-3"),
        ] {
            let body = format!(
                "%r: {dt}[{steps}] = aten.linspace.default(start={a}, end={b}, steps={steps}, dtype={dt})"
            );
            check(&body, &[], dt);
        }
    }
}

#[test]
fn max_and_min_with_indices_values_and_both() {
    let x: &[usize] = &[3, 4, 5];
    let dts = [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::I32,
        DType::I8,
        DType::U8,
    ];
    for dt in dts {
        let pos = dt == DType::U8;
        for op in ["max", "min"] {
            for (args, out) in [
                ("dim=1", "3, 5"),
                ("dim=-1, keepdim=true", "3, 4, 1"),
                ("dim=0", "4, 5"),
            ] {
                let body = format!(
                    "%r: {dt}[{out}], %i: i64[{out}] = aten.{op}.dim(self=%x, {args})\n\
                     output %r = user_output\noutput %i = user_output"
                );
                check_shaped(&body, &[("x", dt, pos)], x, dt);
            }
            let body = format!("%r: {dt}[] = aten.{op}.default(self=%x)");
            check_shaped(&body, &[("x", dt, pos)], x, dt);
            let body = format!("%r: {dt}[3, 4, 5] = aten.{op}.other(self=%x, other=%y)");
            check_shaped(&body, &[("x", dt, pos), ("y", dt, pos)], x, dt);
        }
        for (args, out) in [
            ("", ""),
            ("dim=1", "3, 5"),
            ("dim=2, keepdim=true", "3, 4, 1"),
        ] {
            let sep = if args.is_empty() { "" } else { ", " };
            let body = format!(
                "%lo: {dt}[{out}], %hi: {dt}[{out}] = aten.aminmax.default(self=%x{sep}{args})\n\
                 output %lo = user_output\noutput %hi = user_output"
            );
            check_shaped(&body, &[("x", dt, pos)], x, dt);
        }
    }
    // NaNs: the first NaN is the extreme, its index the result.
    for dt in FLOATS {
        for op in ["max", "min"] {
            let body = format!(
                "%l: {dt}[3, 4, 5] = aten.log.default(self=%x)\n\
                 %r: {dt}[3, 5], %i: i64[3, 5] = aten.{op}.dim(self=%l, dim=1)\n\
                 output %r = user_output\noutput %i = user_output"
            );
            check_shaped(&body, &[("x", dt, false)], x, dt);
        }
    }
}

#[test]
fn logsumexp_and_vector_norms() {
    let x: &[usize] = &[3, 4, 5];
    for dt in FLOATS {
        for (args, out) in [
            ("dim=[1]", "3, 5"),
            ("dim=[0, 2], keepdim=true", "1, 4, 1"),
            ("dim=[-1]", "3, 4"),
        ] {
            let body = format!("%r: {dt}[{out}] = aten.logsumexp.default(self=%x, {args})");
            check_shaped(&body, &[("x", dt, false)], x, dt);
        }
        // Rows of -inf (log of zeros) and of +inf.
        let body = format!(
            "%z: {dt}[3, 4, 5] = aten.mul.Scalar(self=%x, other=0)\n\
             %l: {dt}[3, 4, 5] = aten.log.default(self=%z)\n\
             %r: {dt}[3, 5] = aten.logsumexp.default(self=%l, dim=[1])"
        );
        check_shaped(&body, &[("x", dt, false)], x, dt);
        let body = format!(
            "%z: {dt}[3, 4, 5] = aten.mul.Scalar(self=%x, other=0)\n\
             %l: {dt}[3, 4, 5] = aten.reciprocal.default(self=%z)\n\
             %a: {dt}[3, 4, 5] = aten.abs.default(self=%l)\n\
             %r: {dt}[3, 5] = aten.logsumexp.default(self=%a, dim=[1])"
        );
        check_shaped(&body, &[("x", dt, false)], x, dt);
        for ord in ["2", "1", "3", "0.5", "0", "inf", "-inf"] {
            for (args, out) in [
                ("", ""),
                (", dim=[1]", "3, 5"),
                (", dim=[0, 2], keepdim=true", "1, 4, 1"),
            ] {
                let body = format!(
                    "%r: {dt}[{out}] = aten.linalg_vector_norm.default(self=%x, ord={ord}{args})"
                );
                check_shaped(&body, &[("x", dt, false)], x, dt);
            }
        }
        let body = format!("%r: {dt}[3, 5] = aten.cosine_similarity.default(x1=%x, x2=%y)");
        check_shaped(&body, &[("x", dt, false), ("y", dt, false)], x, dt);
        let body = format!(
            "%r: {dt}[3, 4] = aten.cosine_similarity.default(x1=%x, x2=%y, dim=-1, eps=0.5)"
        );
        check_shaped(&body, &[("x", dt, false), ("y", dt, false)], x, dt);
        for (args, out) in [
            ("", "3, 4"),
            (", p=1, keepdim=true", "3, 4, 1"),
            (", p=3, eps=0", "3, 4"),
        ] {
            let body =
                format!("%r: {dt}[{out}] = aten.pairwise_distance.default(x1=%x, x2=%y{args})");
            check_shaped(&body, &[("x", dt, false), ("y", dt, false)], x, dt);
        }
    }
    // Integer logsumexp gives f32; a result dtype for the norm.
    let body = "%r: f32[3, 5] = aten.logsumexp.default(self=%x, dim=[1])";
    check_shaped(body, &[("x", DType::I64, false)], x, DType::F32);
    let body = "%r: f64[3, 5] = aten.linalg_vector_norm.default(self=%x, dim=[1], dtype=f64)";
    check_shaped(body, &[("x", DType::F32, false)], x, DType::F64);
}

#[test]
fn outer_and_cross_products_dot_and_distances() {
    for dt in [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::I32,
    ] {
        let body = format!("%r: {dt}[4, 3] = aten.outer.default(self=%x, vec2=%y)");
        check_each(&body, &[("x", dt, false, &[4]), ("y", dt, false, &[3])], dt);
        let body = format!("%r: {dt}[] = aten.dot.default(self=%x, tensor=%y)");
        check_each(&body, &[("x", dt, false, &[6]), ("y", dt, false, &[6])], dt);
        let x: &[usize] = &[2, 3, 4];
        let y: &[usize] = &[4, 3, 2];
        for (body, shape) in [
            (
                format!("%r: {dt}[2, 3, 4] = aten.cross.default(self=%x, other=%y)"),
                x,
            ),
            (
                format!("%r: {dt}[2, 3, 4] = aten.cross.default(self=%x, other=%y, dim=1)"),
                x,
            ),
            (
                format!("%r: {dt}[4, 2, 3] = aten.linalg_cross.default(self=%x, other=%y)"),
                &[4, 2, 3][..],
            ),
            (
                format!("%r: {dt}[4, 3, 2] = aten.linalg_cross.default(self=%x, other=%y, dim=-2)"),
                y,
            ),
        ] {
            check_shaped(&body, &[("x", dt, false), ("y", dt, false)], shape, dt);
        }
        // Broadcast operands.
        let body = format!("%r: {dt}[2, 3] = aten.linalg_cross.default(self=%x, other=%y)");
        check_each(
            &body,
            &[("x", dt, false, &[2, 3]), ("y", dt, false, &[3])],
            dt,
        );
    }
    for dt in FLOATS {
        for (p, args) in [
            ("2", ""),
            ("1", ", compute_mode=None"),
            ("3", ""),
            ("inf", ""),
        ] {
            let body = format!("%r: {dt}[2, 3, 5] = aten.cdist.default(x1=%x, x2=%y, p={p}{args})");
            check_each(
                &body,
                &[("x", dt, false, &[2, 3, 4]), ("y", dt, false, &[2, 5, 4])],
                dt,
            );
            let body = format!("%r: {dt}[3, 5] = aten._cdist_forward.default(x1=%x, x2=%y, p={p}, compute_mode=None)");
            check_each(
                &body,
                &[("x", dt, false, &[3, 4]), ("y", dt, false, &[5, 4])],
                dt,
            );
        }
    }
}

#[test]
fn index_aliases_scatters_and_repeats() {
    for dt in SOME {
        let body = format!("%r: {dt}[3, 4] = aten._unsafe_index.Tensor(self=%x, indices=[%i])");
        check_each(
            &body,
            &[("x", dt, false, &[8, 4]), ("i", DType::I64, true, &[3])],
            dt,
        );
        for (src, args) in [
            ("3", ""),
            ("2", ", offset=1"),
            ("2", ", offset=-1"),
            ("3", ", offset=0, dim1=1, dim2=0"),
        ] {
            let body =
                format!("%r: {dt}[3, 3] = aten.diagonal_scatter.default(self=%x, src=%s{args})");
            check_each(
                &body,
                &[
                    ("x", dt, false, &[3, 3]),
                    ("s", dt, false, &[src.parse().unwrap()]),
                ],
                dt,
            );
        }
        let body = format!("%r: {dt}[2, 3, 4] = aten.diagonal_scatter.default(self=%x, src=%s, offset=1, dim1=1, dim2=2)");
        check_each(
            &body,
            &[("x", dt, false, &[2, 3, 4]), ("s", dt, false, &[2, 3])],
            dt,
        );
        for (args, out) in [
            ("dim=1", "2, 6, 4"),
            ("dim=-1", "2, 3, 8"),
            ("dim=None", "48"),
        ] {
            let body = format!(
                "%r: {dt}[{out}] = aten.repeat_interleave.self_int(self=%x, repeats=2, {args})"
            );
            check_shaped(&body, &[("x", dt, false)], &[2, 3, 4], dt);
        }
    }
    // Outside training, native_dropout is the identity and an all-true mask.
    let body = "%r: f32[2, 8], %m: bool[2, 8] = aten.native_dropout.default(input=%x, p=0.5, train=false)\n\
                output %r = user_output\noutput %m = user_output";
    check(body, &[("x", DType::F32, false)], DType::F32);
}

#[test]
fn rms_norm_and_weight_norm() {
    let x: &[usize] = &[2, 3, 4];
    for dt in FLOATS {
        for (ns, w, eps) in [
            ("[4]", None, ""),
            ("[4]", Some(&[4usize][..]), ", eps=0.001"),
            ("[3, 4]", Some(&[3, 4][..]), ""),
            ("[3, 4]", None, ", eps=None"),
        ] {
            let (wa, mut inputs) = match w {
                Some(_) => (", weight=%w", vec![("x", dt, false, x)]),
                None => ("", vec![("x", dt, false, x)]),
            };
            if let Some(w) = w {
                inputs.push(("w", dt, false, w));
            }
            let body = format!(
                "%r: {dt}[2, 3, 4] = aten.rms_norm.default(input=%x, normalized_shape={ns}{wa}{eps})"
            );
            check_each(&body, &inputs, dt);
        }
        for (dim, g) in [
            ("0", &[2usize, 1, 1][..]),
            ("2", &[1, 1, 4][..]),
            ("-1", &[][..]),
        ] {
            let body =
                format!("%r: {dt}[2, 3, 4] = aten._weight_norm.default(v=%v, g=%g, dim={dim})");
            check_each(&body, &[("v", dt, false, x), ("g", dt, true, g)], dt);
        }
    }
}

#[test]
fn linear_cubic_and_nearest_exact_resampling() {
    // (output spatial size, arguments) over a [1, 2, 3, 4] input.
    let sized = [
        ("3, 4", "output_size=[3, 4]"),
        ("6, 8", "output_size=[6, 8]"),
        ("7, 5", "output_size=[7, 5]"),
        ("2, 3", "output_size=[2, 3]"),
        ("1, 1", "output_size=[1, 1]"),
    ];
    for dt in FLOATS {
        for op in ["upsample_bilinear2d", "upsample_bicubic2d"] {
            for align in ["false", "true"] {
                for (out, args) in sized {
                    let body = format!(
                        "%r: {dt}[1, 2, {out}] = aten.{op}.default(self=%x, {args}, align_corners={align})"
                    );
                    check_shaped(&body, &[("x", dt, false)], &[1, 2, 3, 4], dt);
                }
                let body = format!(
                    "%r: {dt}[1, 2, 7, 9] = aten.{op}.default(self=%x, output_size=[7, 9], align_corners={align}, scales_h=2.5, scales_w=2.25)"
                );
                check_shaped(&body, &[("x", dt, false)], &[1, 2, 3, 4], dt);
                let body = format!(
                    "%r: {dt}[1, 2, 4, 6] = aten.{op}.vec(input=%x, output_size=None, align_corners={align}, scale_factors=[1.5, 1.5])"
                );
                check_shaped(&body, &[("x", dt, false)], &[1, 2, 3, 4], dt);
            }
        }
        for (out, args) in sized {
            let body = format!(
                "%r: {dt}[1, 2, {out}] = aten._upsample_nearest_exact2d.default(self=%x, {args})"
            );
            check_shaped(&body, &[("x", dt, false)], &[1, 2, 3, 4], dt);
        }
        let body = format!(
            "%r: {dt}[2, 5, 7] = aten._upsample_nearest_exact2d.vec(input=%x, output_size=[5, 7], scale_factors=None)"
        );
        check_shaped(&body, &[("x", dt, false)], &[2, 3, 4], dt);
        for align in ["false", "true"] {
            for (out, args) in [
                ("9", "default(self=%x, output_size=[9]"),
                ("3", "default(self=%x, output_size=[3]"),
                ("10", "default(self=%x, output_size=[10], scales=2.4"),
                ("6", "vec(input=%x, output_size=None, scale_factors=[1.5]"),
            ] {
                let body = format!(
                    "%r: {dt}[2, 3, {out}] = aten.upsample_linear1d.{args}, align_corners={align})"
                );
                check_shaped(&body, &[("x", dt, false)], &[2, 3, 4], dt);
            }
        }
    }
}

#[test]
fn one_and_three_dimensional_and_adaptive_pooling() {
    for dt in FLOATS {
        // avg_pool1d and max_pool1d over a [2, 3, 9] input.
        for (out, args) in [
            ("4", "kernel_size=[2]"),
            ("5", "kernel_size=[3], stride=[2], padding=[1]"),
            ("5", "kernel_size=[3], stride=[2], padding=[1], ceil_mode=false, count_include_pad=false"),
            ("5", "kernel_size=[2], stride=[2], padding=[0], ceil_mode=true, count_include_pad=true"),
        ] {
            let body = format!("%r: {dt}[2, 3, {out}] = aten.avg_pool1d.default(self=%x, {args})");
            check_shaped(&body, &[("x", dt, false)], &[2, 3, 9], dt);
        }
        for (out, args) in [
            ("4", "kernel_size=[2]"),
            ("5", "kernel_size=[3], stride=[2], padding=[1]"),
            (
                "4",
                "kernel_size=[3], stride=[2], padding=[1], dilation=[2]",
            ),
            (
                "5",
                "kernel_size=[2], stride=[2], padding=[0], dilation=[1], ceil_mode=true",
            ),
        ] {
            let body = format!("%r: {dt}[2, 3, {out}] = aten.max_pool1d.default(self=%x, {args})");
            check_shaped(&body, &[("x", dt, false)], &[2, 3, 9], dt);
        }
        // avg_pool3d over a [1, 2, 3, 4, 5] input.
        for (out, args) in [
            ("1, 2, 2", "kernel_size=[2, 2, 2]"),
            ("2, 2, 3", "kernel_size=[3, 3, 3], stride=[2, 2, 2], padding=[1, 1, 1]"),
            ("2, 2, 3", "kernel_size=[3, 3, 3], stride=[2, 2, 2], padding=[1, 1, 1], ceil_mode=false, count_include_pad=false"),
            ("3, 4, 5", "kernel_size=[3, 3, 3], stride=[1, 1, 1], padding=[1, 1, 1], ceil_mode=false, count_include_pad=true, divisor_override=5"),
        ] {
            let body = format!("%r: {dt}[1, 2, {out}] = aten.avg_pool3d.default(self=%x, {args})");
            check_shaped(&body, &[("x", dt, false)], &[1, 2, 3, 4, 5], dt);
        }
        for o in ["1", "3", "4", "7", "9", "12"] {
            let body = format!(
                "%r: {dt}[2, 3, {o}] = aten.adaptive_avg_pool1d.default(self=%x, output_size=[{o}])"
            );
            check_shaped(&body, &[("x", dt, false)], &[2, 3, 9], dt);
        }
        for (o, shape) in [
            ("1, 1", &[1usize, 2, 5, 7][..]),
            ("2, 3", &[1, 2, 5, 7][..]),
            ("4, 7", &[2, 5, 7][..]),
            ("6, 9", &[1, 2, 5, 7][..]),
        ] {
            let lead = if shape.len() == 4 { "1, 2" } else { "2" };
            let body = format!(
                "%r: {dt}[{lead}, {o}] = aten._adaptive_avg_pool2d.default(self=%x, output_size=[{o}])"
            );
            check_shaped(&body, &[("x", dt, false)], shape, dt);
            let body = format!(
                "%r: {dt}[{lead}, {o}], %i: i64[{lead}, {o}] = aten.adaptive_max_pool2d.default(self=%x, output_size=[{o}])"
            );
            check_shaped(&body, &[("x", dt, false)], shape, dt);
        }
    }
}

#[test]
fn group_norm_and_batch_statistics() {
    for dt in FLOATS {
        let x: &[usize] = &[2, 6, 3, 2];
        for (g, affine) in [(3, true), (1, false), (6, true), (2, false)] {
            let (wb, mut inputs) = if affine {
                (
                    "weight=%w, bias=%b",
                    vec![
                        ("x", dt, false, x),
                        ("w", dt, false, &[6][..]),
                        ("b", dt, false, &[6][..]),
                    ],
                )
            } else {
                ("weight=None, bias=None", vec![("x", dt, false, x)])
            };
            inputs.truncate(if affine { 3 } else { 1 });
            let body = format!(
                "%r: {dt}[2, 6, 3, 2], %m: {dt}[2, {g}], %s: {dt}[2, {g}] = aten.native_group_norm.default(input=%x, {wb}, N=2, C=6, HxW=6, group={g}, eps=1e-05)\n\
                 output %r = user_output\noutput %m = user_output\noutput %s = user_output"
            );
            check_each(&body, &inputs, dt);
        }
        let x: &[usize] = &[4, 3, 5];
        for affine in [true, false] {
            let (wb, inputs) = if affine {
                (
                    "weight=%w, bias=%b",
                    vec![
                        ("x", dt, false, x),
                        ("w", dt, false, &[3][..]),
                        ("b", dt, false, &[3][..]),
                    ],
                )
            } else {
                ("weight=None, bias=None", vec![("x", dt, false, x)])
            };
            let body = format!(
                "%r: {dt}[4, 3, 5], %m: {dt}[3], %s: {dt}[3] = aten._native_batch_norm_legit.no_stats(input=%x, {wb}, training=true, momentum=0.1, eps=0.001)\n\
                 output %r = user_output\noutput %m = user_output\noutput %s = user_output"
            );
            check_each(&body, &inputs, dt);
        }
        let body = format!(
            "%r: {dt}[4, 3, 5], %m: {dt}[0], %s: {dt}[0] = aten._native_batch_norm_legit.default(input=%x, weight=%w, bias=%b, running_mean=%rm, running_var=%rv, training=false, momentum=0.1, eps=1e-05)"
        );
        check_each(
            &body,
            &[
                ("x", dt, false, &[4, 3, 5]),
                ("w", dt, false, &[3]),
                ("b", dt, false, &[3]),
                ("rm", dt, false, &[3]),
                ("rv", dt, true, &[3]),
            ],
            dt,
        );
    }
}

#[test]
fn matmul_linear_and_other_contractions() {
    let mm_cases: [(&[usize], &[usize], &str); 10] = [
        (&[4], &[4], ""),
        (&[4], &[4, 3], "3"),
        (&[2, 4], &[4], "2"),
        (&[2, 4], &[4, 3], "2, 3"),
        (&[2, 2, 4], &[4, 3], "2, 2, 3"),
        (&[2, 4], &[2, 4, 3], "2, 2, 3"),
        (&[3, 1, 2, 4], &[2, 4, 3], "3, 2, 2, 3"),
        (&[4], &[2, 4, 3], "2, 3"),
        (&[2, 2, 4], &[4], "2, 2"),
        (&[2, 2, 4], &[2, 4, 3], "2, 2, 3"),
    ];
    for dt in [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::I32,
    ] {
        for (a, b, out) in mm_cases {
            let body = format!("%r: {dt}[{out}] = aten.matmul.default(self=%x, other=%y)");
            check_each(&body, &[("x", dt, false, a), ("y", dt, false, b)], dt);
        }
    }
    for dt in FLOATS {
        for (x, out) in [
            (&[4usize][..], "3"),
            (&[2, 4][..], "2, 3"),
            (&[2, 2, 4][..], "2, 2, 3"),
        ] {
            let body =
                format!("%r: {dt}[{out}] = aten.linear.default(input=%x, weight=%w, bias=%b)");
            check_each(
                &body,
                &[
                    ("x", dt, false, x),
                    ("w", dt, false, &[3, 4]),
                    ("b", dt, false, &[3]),
                ],
                dt,
            );
            let body = format!("%r: {dt}[{out}] = aten.linear.default(input=%x, weight=%w)");
            check_each(&body, &[("x", dt, false, x), ("w", dt, false, &[3, 4])], dt);
        }
        for args in ["", ", beta=0.5, alpha=2", ", beta=0, alpha=1.5"] {
            let body = format!(
                "%r: {dt}[2, 3, 5] = aten.baddbmm.default(self=%s, batch1=%x, batch2=%y{args})"
            );
            check_each(
                &body,
                &[
                    ("s", dt, false, &[3, 5]),
                    ("x", dt, false, &[2, 3, 4]),
                    ("y", dt, false, &[2, 4, 5]),
                ],
                dt,
            );
        }
        let body = format!(
            "%r: {dt}[2, 3] = aten.bilinear.default(input1=%x, input2=%y, weight=%w, bias=%b)"
        );
        check_each(
            &body,
            &[
                ("x", dt, false, &[2, 4]),
                ("y", dt, false, &[2, 5]),
                ("w", dt, false, &[3, 4, 5]),
                ("b", dt, false, &[3]),
            ],
            dt,
        );
        let body = format!(
            "%r: {dt}[2, 3] = aten._trilinear.default(i1=%x, i2=%w, i3=%y, expand1=[1, 3], expand2=[0], expand3=[1, 2], sumdim=[2, 3])"
        );
        check_each(
            &body,
            &[
                ("x", dt, false, &[2, 4]),
                ("w", dt, false, &[3, 4, 5]),
                ("y", dt, false, &[2, 5]),
            ],
            dt,
        );
        for (eq, shapes, out) in [
            ("ij,jk->ik", vec![&[2usize, 4][..], &[4, 3][..]], "2, 3"),
            ("ij,jk", vec![&[2, 4][..], &[4, 3][..]], "2, 3"),
            (
                "bij,bjk->bik",
                vec![&[2, 2, 4][..], &[2, 4, 3][..]],
                "2, 2, 3",
            ),
            ("ii->i", vec![&[3, 3][..]], "3"),
            ("ii", vec![&[3, 3][..]], ""),
            (
                "...ij,...jk->...ik",
                vec![&[2, 2, 4][..], &[4, 3][..]],
                "2, 2, 3",
            ),
            ("i,j->ij", vec![&[3][..], &[4][..]], "3, 4"),
            ("ijk->kji", vec![&[2, 3, 4][..]], "4, 3, 2"),
            (
                "bn,anm,bm->ba",
                vec![&[2, 4][..], &[3, 4, 5][..], &[2, 5][..]],
                "2, 3",
            ),
        ] {
            let names = ["x", "y", "z"];
            let list: Vec<String> = (0..shapes.len())
                .map(|i| format!("%{}", names[i]))
                .collect();
            let body = format!(
                "%r: {dt}[{out}] = aten.einsum.default(equation=\"{eq}\", tensors=[{}])",
                list.join(", ")
            );
            let inputs: Vec<(&str, DType, bool, &[usize])> = shapes
                .iter()
                .enumerate()
                .map(|(i, s)| (names[i], dt, false, *s))
                .collect();
            check_each(&body, &inputs, dt);
        }
    }
}

#[test]
fn matrix_products_beyond_f32() {
    // f32 with scaling factors takes the same path.
    for args in [", beta=2, alpha=3", ", beta=0, alpha=0.5"] {
        let body = format!("%r: f32[2, 3] = aten.addmm.default(self=%b, mat1=%x, mat2=%y{args})");
        let f = DType::F32;
        check_each(
            &body,
            &[
                ("b", f, false, &[2, 3]),
                ("x", f, false, &[2, 4]),
                ("y", f, false, &[4, 3]),
            ],
            f,
        );
    }
    for dt in [DType::F64, DType::F16, DType::BF16, DType::I64, DType::I32] {
        let body = format!("%r: {dt}[2, 3] = aten.mm.default(self=%x, mat2=%y)");
        check_each(
            &body,
            &[("x", dt, false, &[2, 4]), ("y", dt, false, &[4, 3])],
            dt,
        );
        let body = format!("%r: {dt}[2, 2, 3] = aten.bmm.default(self=%x, mat2=%y)");
        check_each(
            &body,
            &[("x", dt, false, &[2, 2, 4]), ("y", dt, false, &[2, 4, 3])],
            dt,
        );
        for args in ["", ", beta=2, alpha=3", ", beta=0"] {
            let body =
                format!("%r: {dt}[2, 3] = aten.addmm.default(self=%b, mat1=%x, mat2=%y{args})");
            check_each(
                &body,
                &[
                    ("b", dt, false, &[3]),
                    ("x", dt, false, &[2, 4]),
                    ("y", dt, false, &[4, 3]),
                ],
                dt,
            );
        }
    }
}

#[test]
fn im2col_blocks_with_padding_dilation_and_stride() {
    for dt in FLOATS {
        for (out, args, shape) in [
            (
                "1, 8, 6",
                "kernel_size=[2, 2], dilation=[1, 1], padding=[0, 0], stride=[1, 1]",
                &[1usize, 2, 3, 4][..],
            ),
            (
                "18, 12",
                "kernel_size=[3, 3], dilation=[1, 1], padding=[1, 1], stride=[1, 1]",
                &[2, 3, 4][..],
            ),
            (
                "1, 12, 4",
                "kernel_size=[2, 3], dilation=[2, 1], padding=[1, 0], stride=[2, 1]",
                &[1, 2, 3, 4][..],
            ),
            (
                "2, 2, 4",
                "kernel_size=[1], dilation=[1], padding=[0], stride=[2]",
                &[2, 2, 3, 4][..],
            ),
        ] {
            let body = format!("%r: {dt}[{out}] = aten.im2col.default(self=%x, {args})");
            check_shaped(&body, &[("x", dt, false)], shape, dt);
        }
    }
}

/// An input of [`check_each`]: name, dtype, positive, shape.
type Input<'a> = (&'a str, DType, bool, &'a [usize]);

const WITH_BOOL: [DType; 6] = [
    DType::F32,
    DType::F64,
    DType::BF16,
    DType::I64,
    DType::I32,
    DType::Bool,
];

#[test]
fn scatters_along_a_dim_with_duplicate_indices() {
    let i = DType::I64;
    for dt in WITH_BOOL {
        // Positive integer data lies in [1, 7]: indices into dims of 8.
        for (dim, base) in [
            ("1", &[2usize, 8][..]),
            ("0", &[8, 8][..]),
            ("-1", &[3, 8][..]),
        ] {
            let out = base
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let ins = [
                ("x", dt, false, base),
                ("i", i, true, &[2, 8][..]),
                ("s", dt, false, &[2, 8][..]),
            ];
            let mut bodies = vec![
                format!("%r: {dt}[{out}] = aten.scatter.src(self=%x, dim={dim}, index=%i, src=%s)"),
                format!(
                    "%r: {dt}[{out}] = aten.scatter.value(self=%x, dim={dim}, index=%i, value=1)"
                ),
            ];
            if dt != DType::Bool {
                bodies.extend([
                    format!("%r: {dt}[{out}] = aten.scatter_add.default(self=%x, dim={dim}, index=%i, src=%s)"),
                    format!("%r: {dt}[{out}] = aten.scatter.reduce(self=%x, dim={dim}, index=%i, src=%s, reduce=\"add\")"),
                    format!("%r: {dt}[{out}] = aten.scatter.reduce(self=%x, dim={dim}, index=%i, src=%s, reduce=\"multiply\")"),
                    format!("%r: {dt}[{out}] = aten.scatter.value_reduce(self=%x, dim={dim}, index=%i, value=2, reduce=\"add\")"),
                ]);
                for red in ["sum", "prod", "mean", "amax", "amin"] {
                    for inc in ["true", "false"] {
                        bodies.push(format!(
                            "%r: {dt}[{out}] = aten.scatter_reduce.two(self=%x, dim={dim}, index=%i, src=%s, reduce=\"{red}\", include_self={inc})"
                        ));
                    }
                }
            }
            for body in bodies {
                check_each(&body, &ins, dt);
            }
        }
        // A source larger than the index: its leading part is read.
        let body = format!("%r: {dt}[2, 8] = aten.scatter.src(self=%x, dim=1, index=%i, src=%s)");
        check_each(
            &body,
            &[
                ("x", dt, false, &[2, 8]),
                ("i", i, true, &[2, 3]),
                ("s", dt, false, &[2, 5]),
            ],
            dt,
        );
    }
}

#[test]
fn index_put_and_index_add() {
    let i = DType::I64;
    for dt in WITH_BOOL {
        let accs: &[&str] = if dt == DType::Bool {
            &["false"]
        } else {
            &["false", "true"]
        };
        for acc in accs {
            let cases: [(&str, &str, Vec<Input>); 5] = [
                (
                    "8, 4",
                    "[%i]",
                    vec![
                        ("x", dt, false, &[8, 4]),
                        ("i", i, true, &[3]),
                        ("v", dt, false, &[3, 4]),
                    ],
                ),
                (
                    "8, 4",
                    "[%i]",
                    vec![
                        ("x", dt, false, &[8, 4]),
                        ("i", i, true, &[3]),
                        ("v", dt, false, &[4]),
                    ],
                ),
                (
                    "8, 8",
                    "[%i, %j]",
                    vec![
                        ("x", dt, false, &[8, 8]),
                        ("i", i, true, &[3]),
                        ("j", i, true, &[3]),
                        ("v", dt, false, &[3]),
                    ],
                ),
                (
                    "4, 8",
                    "[None, %i]",
                    vec![
                        ("x", dt, false, &[4, 8]),
                        ("i", i, true, &[6]),
                        ("v", dt, false, &[4, 6]),
                    ],
                ),
                (
                    "8, 2, 8",
                    "[%i, None, %j]",
                    vec![
                        ("x", dt, false, &[8, 2, 8]),
                        ("i", i, true, &[3]),
                        ("j", i, true, &[3]),
                        ("v", dt, false, &[3, 2]),
                    ],
                ),
            ];
            for (out, ix, ins) in cases {
                for op in ["index_put.default", "_unsafe_index_put.default"] {
                    let body = format!(
                        "%r: {dt}[{out}] = aten.{op}(self=%x, indices={ix}, values=%v, accumulate={acc})"
                    );
                    check_each(&body, &ins, dt);
                }
            }
        }
        if dt != DType::Bool {
            for (args, x, src) in [
                (
                    "dim=0, index=%i, source=%s",
                    &[8usize, 3][..],
                    &[4usize, 3][..],
                ),
                (
                    "dim=1, index=%i, source=%s, alpha=2",
                    &[3, 8][..],
                    &[3, 4][..],
                ),
            ] {
                let out = x
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                let body = format!("%r: {dt}[{out}] = aten.index_add.default(self=%x, {args})");
                check_each(
                    &body,
                    &[
                        ("x", dt, false, x),
                        ("i", i, true, &[4]),
                        ("s", dt, false, src),
                    ],
                    dt,
                );
            }
        }
        // index_copy writes the source's slices; index_fill one value.
        let ins: [Input; 3] = [
            ("x", dt, false, &[3, 8]),
            ("i", i, true, &[4]),
            ("s", dt, false, &[3, 4]),
        ];
        let body = format!(
            "%r: {dt}[3, 8] = aten.index_copy.default(self=%x, dim=1, index=%i, source=%s)"
        );
        check_each(&body, &ins, dt);
        let body = format!(
            "%r: {dt}[3, 8] = aten.index_fill.int_Scalar(self=%x, dim=-1, index=%i, value=1)"
        );
        check_each(&body, &ins[..2], dt);
        let ins: [Input; 3] = [
            ("x", dt, false, &[8, 3]),
            ("i", i, true, &[4]),
            ("v", dt, false, &[]),
        ];
        let body = format!(
            "%r: {dt}[8, 3] = aten.index_fill.int_Tensor(self=%x, dim=0, index=%i, value=%v)"
        );
        check_each(&body, &ins, dt);
    }
}

#[test]
fn sorts_are_stable_with_nans_last() {
    let x: &[usize] = &[3, 4, 5];
    let dts = [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::I32,
        DType::I8,
        DType::U8,
        DType::Bool,
    ];
    for dt in dts {
        let pos = dt == DType::U8;
        for (dim, k) in [("0", 2), ("1", 3), ("2", 5), ("-1", 1)] {
            for desc in ["false", "true"] {
                let body = format!(
                    "%r: {dt}[3, 4, 5], %i: i64[3, 4, 5] = aten.sort.default(self=%x, dim={dim}, descending={desc})\n\
                     output %r = user_output\noutput %i = user_output"
                );
                check_shaped(&body, &[("x", dt, pos)], x, dt);
                let body = format!(
                    "%r: {dt}[3, 4, 5], %i: i64[3, 4, 5] = aten.sort.stable(self=%x, stable=true, dim={dim}, descending={desc})\n\
                     output %r = user_output\noutput %i = user_output"
                );
                check_shaped(&body, &[("x", dt, pos)], x, dt);
                let body = format!(
                    "%r: i64[3, 4, 5] = aten.argsort.default(self=%x, dim={dim}, descending={desc})"
                );
                check_shaped(&body, &[("x", dt, pos)], x, DType::I64);
                let mut out = [3, 4, 5];
                let d = if dim == "-1" {
                    2
                } else {
                    dim.parse::<usize>().unwrap()
                };
                out[d] = k;
                let out = out
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                let largest = if desc == "true" { "true" } else { "false" };
                let body = format!(
                    "%r: {dt}[{out}], %i: i64[{out}] = aten.topk.default(self=%x, k={k}, dim={dim}, largest={largest})\n\
                     output %r = user_output\noutput %i = user_output"
                );
                check_shaped(&body, &[("x", dt, pos)], x, dt);
            }
        }
    }
    // NaNs (logs of negatives) sort last ascending, first descending.
    for dt in FLOATS {
        for desc in ["false", "true"] {
            let body = format!(
                "%l: {dt}[3, 4, 5] = aten.log.default(self=%x)\n\
                 %r: {dt}[3, 4, 5], %i: i64[3, 4, 5] = aten.sort.default(self=%l, dim=1, descending={desc})\n\
                 output %r = user_output\noutput %i = user_output"
            );
            check_shaped(&body, &[("x", dt, false)], x, dt);
        }
    }
}

#[test]
fn recurrent_layers_unrolled_over_time() {
    // (op, gates, hidden inputs) with input size 3, hidden 4, 2 layers.
    for dt in [DType::F32, DType::F64, DType::BF16] {
        for (op, g) in [
            ("lstm", 4usize),
            ("gru", 3),
            ("rnn_tanh", 1),
            ("rnn_relu", 1),
        ] {
            for (bidir, batch_first, unbatched) in [
                (false, false, false),
                (true, false, false),
                (false, true, false),
                (true, true, true),
            ] {
                let (layers, hid, inp) = (2usize, 4usize, 3usize);
                let dirs = if bidir { 2 } else { 1 };
                let (t, b) = (3usize, 2usize);
                let x: Vec<usize> = if unbatched {
                    vec![t, inp]
                } else if batch_first {
                    vec![b, t, inp]
                } else {
                    vec![t, b, inp]
                };
                let st: Vec<usize> = if unbatched {
                    vec![layers * dirs, hid]
                } else {
                    vec![layers * dirs, b, hid]
                };
                let mut shapes: Vec<(String, Vec<usize>)> =
                    vec![("x".into(), x.clone()), ("h".into(), st.clone())];
                if op == "lstm" {
                    shapes.push(("c".into(), st.clone()));
                }
                let dims = |v: &[usize]| {
                    v.iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                // Weights of the usual scale (the data is in [-3, 3]).
                let mut params = Vec::new();
                let mut scaled = String::new();
                for l in 0..layers {
                    let in_l = if l == 0 { inp } else { dirs * hid };
                    for d in 0..dirs {
                        for (k, s) in [
                            ("wi", vec![g * hid, in_l]),
                            ("wh", vec![g * hid, hid]),
                            ("bi", vec![g * hid]),
                            ("bh", vec![g * hid]),
                        ] {
                            let name = format!("{k}{l}{d}");
                            scaled.push_str(&format!(
                                "%s{name}: {dt}[{}] = aten.mul.Scalar(self=%{name}, other=0.25)\n",
                                dims(&s)
                            ));
                            params.push(format!("%s{name}"));
                            shapes.push((name, s));
                        }
                    }
                }
                let mut out = x.clone();
                let last = out.len() - 1;
                out[last] = dirs * hid;
                let hx = if op == "lstm" { "[%h, %c]" } else { "%h" };
                let extra = if op == "lstm" {
                    format!(", %cn: {dt}[{}]", dims(&st))
                } else {
                    String::new()
                };
                let outs = if op == "lstm" {
                    "output %r = user_output\noutput %hn = user_output\noutput %cn = user_output"
                } else {
                    "output %r = user_output\noutput %hn = user_output"
                };
                let body = format!(
                    "{scaled}%r: {dt}[{}], %hn: {dt}[{}]{extra} = aten.{op}.input(input=%x, hx={hx}, params=[{}], has_biases=true, num_layers={layers}, dropout=0.0, train=false, bidirectional={bidir}, batch_first={batch_first})\n{outs}",
                    dims(&out),
                    dims(&st),
                    params.join(", ")
                );
                let inputs: Vec<Input> = shapes
                    .iter()
                    .map(|(n, s)| (n.as_str(), dt, false, s.as_slice()))
                    .collect();
                check_each(&body, &inputs, dt);
            }
        }
    }
}

#[test]
fn lstm_with_projections() {
    for dt in [DType::F32, DType::F64] {
        for bidir in [false, true] {
            let dirs = if bidir { 2 } else { 1 };
            // Input 3, hidden 4, projection 2, sequence 3, batch 2.
            let st = format!("{dirs}, 2, 2");
            let cs = format!("{dirs}, 2, 4");
            let mut shapes: Vec<(String, Vec<usize>)> = vec![
                ("x".into(), vec![3, 2, 3]),
                ("h".into(), vec![dirs, 2, 2]),
                ("c".into(), vec![dirs, 2, 4]),
            ];
            let mut params = Vec::new();
            let mut scaled = String::new();
            for d in 0..dirs {
                for (k, s) in [
                    ("wi", vec![16usize, 3]),
                    ("wh", vec![16, 2]),
                    ("bi", vec![16]),
                    ("bh", vec![16]),
                    ("wr", vec![2, 4]),
                ] {
                    let name = format!("{k}{d}");
                    let dims: Vec<String> = s.iter().map(|v| v.to_string()).collect();
                    scaled.push_str(&format!(
                        "%s{name}: {dt}[{}] = aten.mul.Scalar(self=%{name}, other=0.25)\n",
                        dims.join(", ")
                    ));
                    params.push(format!("%s{name}"));
                    shapes.push((name, s));
                }
            }
            let body = format!(
                "{scaled}%r: {dt}[3, 2, {}], %hn: {dt}[{st}], %cn: {dt}[{cs}] = aten.lstm.input(input=%x, hx=[%h, %c], params=[{}], has_biases=true, num_layers=1, dropout=0.0, train=false, bidirectional={bidir}, batch_first=false)\n\
                 output %r = user_output\noutput %hn = user_output\noutput %cn = user_output",
                2 * dirs,
                params.join(", ")
            );
            let inputs: Vec<Input> = shapes
                .iter()
                .map(|(n, s)| (n.as_str(), dt, false, s.as_slice()))
                .collect();
            check_each(&body, &inputs, dt);
        }
    }
}

#[test]
fn embedding_bags_sum_and_mean() {
    let i = DType::I64;
    for dt in FLOATS {
        for mode in [0, 1] {
            // Offsets [0, 2, 4] and [0, 0, 5] (empty bags) over 6 indices.
            for offs in [
                "aten.arange.start_step(start=0, end=6, step=2, dtype=i64)",
                "aten.mul.Scalar(self=%a, other=0)",
            ] {
                for last in ["false", "true"] {
                    let bags = if last == "true" { 2 } else { 3 };
                    let body = format!(
                        "%a: i64[3] = aten.arange.start_step(start=0, end=6, step=2, dtype=i64)\n\
                         %o: i64[3] = {offs}\n\
                         %r: {dt}[{bags}, 3], %b: i64[6], %c: i64[{bags}], %d: i64[{bags}] = aten._embedding_bag.default(weight=%w, indices=%i, offsets=%o, mode={mode}, include_last_offset={last})"
                    );
                    check_each(
                        &body,
                        &[("w", dt, false, &[8, 3]), ("i", i, true, &[6])],
                        dt,
                    );
                }
            }
            for pad in ["padding_idx=3", "padding_idx=-5", "padding_idx=None"] {
                let body = format!(
                    "%o: i64[3] = aten.arange.start_step(start=0, end=6, step=2, dtype=i64)\n\
                     %r: {dt}[3, 3], %b: i64[6], %c: i64[3], %d: i64[3] = aten.embedding_bag.padding_idx(weight=%w, indices=%i, offsets=%o, scale_grad_by_freq=false, mode={mode}, sparse=false, per_sample_weights=None, include_last_offset=false, {pad})"
                );
                check_each(
                    &body,
                    &[("w", dt, false, &[8, 3]), ("i", i, true, &[6])],
                    dt,
                );
            }
            let body = format!(
                "%r: {dt}[3, 3], %b: i64[0], %c: i64[3], %d: i64[3] = aten._embedding_bag.default(weight=%w, indices=%i, offsets=None, mode={mode}, padding_idx=4)"
            );
            check_each(
                &body,
                &[("w", dt, false, &[8, 3]), ("i", i, true, &[3, 2])],
                dt,
            );
        }
        let body = format!(
            "%o: i64[3] = aten.arange.start_step(start=0, end=6, step=2, dtype=i64)\n\
             %r: {dt}[3, 3], %b: i64[6], %c: i64[3], %d: i64[3] = aten.embedding_bag.default(weight=%w, indices=%i, offsets=%o, mode=0, per_sample_weights=%p)"
        );
        check_each(
            &body,
            &[
                ("w", dt, false, &[8, 3]),
                ("i", i, true, &[6]),
                ("p", dt, false, &[6]),
            ],
            dt,
        );
    }
}

#[test]
fn strided_views_and_scatters_of_dense_storage() {
    for dt in SOME {
        for (out, args) in [
            ("2, 3", "size=[2, 3], stride=[3, 1]"),
            ("3, 2", "size=[3, 2], stride=[1, 3], storage_offset=1"),
            ("4, 2", "size=[4, 2], stride=[0, 5], storage_offset=2"),
            ("2, 2, 2", "size=[2, 2, 2], stride=[8, 1, 4]"),
        ] {
            let body = format!(
                "%c: {dt}[2, 8] = aten.clone.default(self=%x)\n\
                 %r: {dt}[{out}] = aten.as_strided.default(self=%c, {args})"
            );
            check(&body, &[("x", dt, false)], dt);
        }
        for (src, args) in [
            (
                &[2usize, 3][..],
                "size=[2, 3], stride=[8, 2], storage_offset=1",
            ),
            (&[4][..], "size=[4], stride=[3]"),
            (&[3][..], "size=[2, 3], stride=[8, 1]"),
        ] {
            let body = format!(
                "%r: {dt}[2, 8] = aten.as_strided_scatter.default(self=%x, src=%s, {args})"
            );
            check_each(
                &body,
                &[("x", dt, false, &[2, 8]), ("s", dt, false, src)],
                dt,
            );
        }
    }
}

/// A convolution case: input, weight, output channels, output shape,
/// arguments, whether it has a bias.
type ConvCase = (
    &'static [usize],
    &'static [usize],
    usize,
    &'static str,
    &'static str,
    bool,
);

#[test]
fn convolutions_beyond_the_f32_runtime_call() {
    // (input, weight, output channels, output, arguments, with a bias).
    let cases: [ConvCase; 7] = [
        // Plain 2-d convolutions.
        (&[1, 2, 5, 5], &[3, 2, 3, 3], 3, "1, 3, 3, 3", "stride=[1, 1], padding=[0, 0], dilation=[1, 1], transposed=false, output_padding=[0, 0], groups=1", true),
        (&[2, 4, 5, 6], &[4, 2, 3, 2], 4, "2, 4, 3, 2", "stride=[2, 2], padding=[1, 0], dilation=[1, 2], transposed=false, output_padding=[0, 0], groups=2", false),
        // 1-d and 3-d.
        (&[2, 2, 7], &[3, 2, 3], 3, "2, 3, 4", "stride=[2], padding=[1], dilation=[1], transposed=false, output_padding=[0], groups=1", true),
        (&[1, 2, 3, 4, 4], &[2, 2, 2, 3, 3], 2, "1, 2, 2, 2, 2", "stride=[1, 1, 1], padding=[0, 0, 0], dilation=[1, 1, 1], transposed=false, output_padding=[0, 0, 0], groups=1", true),
        // Transposed: stride, padding, output padding, dilation, groups.
        (&[1, 2, 3, 3], &[2, 3, 3, 3], 3, "1, 3, 5, 5", "stride=[1, 1], padding=[0, 0], dilation=[1, 1], transposed=true, output_padding=[0, 0], groups=1", true),
        (&[2, 4, 3, 4], &[4, 1, 3, 2], 2, "2, 2, 6, 8", "stride=[2, 2], padding=[1, 0], dilation=[1, 1], transposed=true, output_padding=[1, 0], groups=2", true),
        (&[1, 2, 4], &[2, 2, 3], 2, "1, 2, 10", "stride=[2], padding=[1], dilation=[2], transposed=true, output_padding=[1], groups=1", false),
    ];
    for dt in FLOATS {
        for (x, w, oc, out, args, bias) in cases {
            let b = if bias { "%b" } else { "None" };
            let body = format!(
                "%r: {dt}[{out}] = aten.convolution.default(input=%x, weight=%w, bias={b}, {args})"
            );
            let bshape = [oc];
            let mut ins: Vec<Input> = vec![("x", dt, false, x), ("w", dt, false, w)];
            if bias {
                ins.push(("b", dt, false, &bshape));
            }
            check_each(&body, &ins, dt);
        }
    }
}
