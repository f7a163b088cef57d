//! The command line: exit codes and one-line errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use torchlift::interp::Tensor;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn torchlift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_torchlift"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run torchlift")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A fresh scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("torchlift-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// Asserts a failed run: exit status 1, one line on stderr containing `needle`.
fn assert_one_line_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "{err:?} does not mention {needle:?}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn inspect_prints_signature_graph_ranges_weights_and_histogram() {
    let o = torchlift(&["inspect", "tests/fixtures/cases/dyn_batch/model.pt2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for part in [
        "inputs:",
        "user_input",
        "outputs:",
        "range constraints:",
        "weights:",
        "graph:",
        "op histogram:",
        "aten.silu.default",
    ] {
        assert!(out.contains(part), "missing {part:?} in:\n{out}");
    }
}

#[test]
fn inspect_prints_nested_subgraphs() {
    let o = torchlift(&["inspect", "tests/fixtures/cases/inplace_buffer/model.pt2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("higher_order.wrap_with_set_grad_enabled"),
        "{out}"
    );
    assert!(out.contains("graph submod_"), "{out}");
}

#[test]
fn inspect_after_a_pass_shows_the_rewritten_graph() {
    let o = torchlift(&[
        "inspect",
        "tests/fixtures/cases/inplace_buffer/model.pt2",
        "--after",
        "functionalize",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("graph after functionalize:"), "{out}");
    assert!(out.contains("buffer_mutation"), "{out}");
    let o = torchlift(&[
        "inspect",
        "tests/fixtures/cases/tiny_mlp/model.pt2",
        "--after",
        "no_such_pass",
    ]);
    assert_one_line_error(&o, "no_such_pass");
}

#[test]
fn run_uses_sample_inputs_and_writes_npy() {
    let dir = scratch("run");
    let o = torchlift(&[
        "run",
        "examples/mlp/model.pt2",
        "--output-dir",
        dir.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("output_0: f32 [2, 10]"),
        "{}",
        stdout(&o)
    );
    let got = Tensor::read_npy(dir.join("output_0.npy")).expect("output written");
    let want = Tensor::read_npy(root().join("examples/mlp/run0/output_0.npy")).expect("reference");
    torchlift::check::compare(&got, &want, 1e-4, 1e-5).expect("matches PyTorch");
}

fn write_input(dir: &Path, name: &str, t: &Tensor) -> String {
    let p = dir.join(name);
    t.write_npy(&p).expect("write npy");
    p.to_string_lossy().into_owned()
}

#[test]
fn wrong_dtype_names_the_input() {
    let dir = scratch("dtype");
    let x = Tensor::from_vec(vec![0i64; 3 * 12], &[3, 12]).expect("tensor");
    let f = write_input(&dir, "x.npy", &x);
    let o = torchlift(&[
        "run",
        "tests/fixtures/cases/dyn_batch/model.pt2",
        "--input",
        &f,
    ]);
    assert_one_line_error(&o, "input x: dtype is i64");
}

#[test]
fn wrong_rank_names_the_input() {
    let dir = scratch("rank");
    let x = Tensor::from_vec(vec![0f32; 12], &[12]).expect("tensor");
    let f = write_input(&dir, "x.npy", &x);
    let o = torchlift(&[
        "run",
        "tests/fixtures/cases/dyn_batch/model.pt2",
        "--input",
        &f,
    ]);
    assert_one_line_error(&o, "input x");
}

#[test]
fn wrong_static_dim_names_the_input_and_dim() {
    let dir = scratch("static");
    let x = Tensor::from_vec(vec![0f32; 3 * 13], &[3, 13]).expect("tensor");
    let f = write_input(&dir, "x.npy", &x);
    let o = torchlift(&[
        "run",
        "tests/fixtures/cases/dyn_batch/model.pt2",
        "--input",
        &f,
    ]);
    assert_one_line_error(&o, "input x: dim 1 is 13");
}

#[test]
fn symbol_outside_its_range_names_the_input_and_range() {
    let dir = scratch("range");
    let x = Tensor::from_vec(vec![0f32; 65 * 12], &[65, 12]).expect("tensor");
    let f = write_input(&dir, "x.npy", &x);
    let o = torchlift(&[
        "run",
        "tests/fixtures/cases/dyn_batch/model.pt2",
        "--input",
        &f,
    ]);
    assert_one_line_error(&o, "input x");
    assert!(stderr(&o).contains("64"), "{}", stderr(&o));
    // Inside the range it runs.
    let x = Tensor::from_vec(vec![0f32; 64 * 12], &[64, 12]).expect("tensor");
    let f = write_input(&dir, "x64.npy", &x);
    let o = torchlift(&[
        "run",
        "tests/fixtures/cases/dyn_batch/model.pt2",
        "--input",
        &f,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn wrong_input_count_is_an_error() {
    let o = torchlift(&[
        "run",
        "tests/fixtures/cases/dyn_batch/model.pt2",
        "--input",
        "examples/mlp/run0/input_0.npy",
        "--input",
        "examples/mlp/run0/input_0.npy",
    ]);
    assert_one_line_error(&o, "takes 1 inputs");
}

#[test]
fn corrupt_archive_is_a_one_line_error() {
    let dir = scratch("corrupt");
    let bad = dir.join("bad.pt2");
    std::fs::write(&bad, b"this is not a zip").expect("write");
    for cmd in ["inspect", "run"] {
        let o = torchlift(&[cmd, bad.to_str().expect("utf8")]);
        assert_one_line_error(&o, "bad.pt2");
    }
    let mut bytes = std::fs::read(root().join("examples/mlp/model.pt2")).expect("read");
    bytes.truncate(bytes.len() / 2);
    let trunc = dir.join("truncated.pt2");
    std::fs::write(&trunc, bytes).expect("write");
    let o = torchlift(&["inspect", trunc.to_str().expect("utf8")]);
    assert_one_line_error(&o, "truncated.pt2");
}

#[test]
fn unknown_op_names_the_op_node_and_source_line() {
    let o = torchlift(&["run", "tests/fixtures/cases/custom_op_nokernel/model.pt2"]);
    assert_one_line_error(&o, "mylib.add_one_.default");
    let err = stderr(&o);
    assert!(err.contains("node add_one_"), "{err}");
    assert!(err.contains("make_fixtures.py:"), "{err}");
}

#[test]
fn check_reports_each_case_and_a_closing_line() {
    let o = torchlift(&[
        "check",
        "--backend",
        "interp",
        "examples/mlp",
        "tests/fixtures/cases/tiny_cnn",
        "tests/fixtures/cases/custom_op_nokernel",
    ]);
    assert_eq!(o.status.code(), Some(1), "a failing case makes check fail");
    let out = stdout(&o);
    assert!(out.contains("PASS mlp"), "{out}");
    assert!(out.contains("PASS tiny_cnn"), "{out}");
    assert!(out.contains("ERROR custom_op_nokernel"), "{out}");
    assert!(out.trim_end().ends_with("2 passed, 1 failed"), "{out}");
    let o = torchlift(&["check", "examples/mlp"]);
    assert!(o.status.success(), "{}", stdout(&o));
}

#[test]
fn check_reports_a_wrong_answer_as_fail() {
    // A copy of a case whose recorded output was changed.
    let dir = scratch("wrong");
    let case = dir.join("mlp");
    std::fs::create_dir_all(case.join("run0")).expect("mkdir");
    for f in ["model.pt2", "case.json", "run0/input_0.npy"] {
        std::fs::copy(root().join("examples/mlp").join(f), case.join(f)).expect("copy");
    }
    let want = Tensor::read_npy(root().join("examples/mlp/run0/output_0.npy")).expect("read");
    let shifted =
        torchlift::interp::ops::elementwise::add(&want, 0.5, torchlift::interp::Scalar::Int(1))
            .expect("add");
    shifted
        .write_npy(case.join("run0/output_0.npy"))
        .expect("write");
    let o = torchlift(&["check", case.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("FAIL mlp"), "{}", stdout(&o));
    assert!(stdout(&o).contains("run0 output_0"), "{}", stdout(&o));
}

#[test]
fn run_with_the_jit_backend_matches_pytorch() {
    let dir = scratch("run-jit");
    let o = torchlift(&[
        "run",
        "examples/mlp/model.pt2",
        "--backend",
        "jit",
        "--output-dir",
        dir.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = Tensor::read_npy(dir.join("output_0.npy")).expect("output written");
    let want = Tensor::read_npy(root().join("examples/mlp/run0/output_0.npy")).expect("reference");
    torchlift::check::compare(&got, &want, 1e-4, 1e-5).expect("matches PyTorch");
}

#[test]
fn jit_refusal_names_the_op_node_and_source_line() {
    let o = torchlift(&[
        "run",
        "tests/fixtures/cases/custom_op_nokernel/model.pt2",
        "--backend",
        "jit",
    ]);
    assert_one_line_error(&o, "unsupported operator mylib.add_one_.default");
    assert!(stderr(&o).contains("make_fixtures.py:"), "{}", stderr(&o));
}

#[test]
fn the_jit_is_the_default_backend() {
    let o = torchlift(&["run", "tests/fixtures/cases/custom_op_nokernel/model.pt2"]);
    assert_one_line_error(&o, "unsupported operator mylib.add_one_.default");
    let o = torchlift(&["check", "examples/mlp"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("jit"), "{}", stdout(&o));
}

#[test]
fn inspect_kernels_prints_the_plan_with_its_nodes_and_the_arena() {
    let o = torchlift(&[
        "inspect",
        "--kernels",
        "tests/fixtures/cases/tiny_cnn/model.pt2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for part in [
        "kernel 0",
        "extern conv2d(",
        "pointwise [",
        "aten.convolution.default",
        "make_fixtures.py:",
        "kernels: ",
        "arena: ",
    ] {
        assert!(out.contains(part), "{part} missing from {out}");
    }
}

#[test]
fn check_with_the_jit_reports_passes_and_refusals_apart() {
    let o = torchlift(&[
        "check",
        "--backend",
        "jit",
        "examples/mlp",
        "tests/fixtures/cases/dyn_batch",
        "tests/fixtures/cases/custom_op_nokernel",
    ]);
    assert_eq!(o.status.code(), Some(1), "a refused case makes check fail");
    let out = stdout(&o);
    assert!(
        out.contains("PASS mlp") && out.contains("compile="),
        "{out}"
    );
    assert!(out.contains("PASS dyn_batch"), "{out}");
    assert!(out.contains("REFUSED custom_op_nokernel"), "{out}");
    assert!(
        out.trim_end().ends_with("2 passed, 0 failed, 1 refused"),
        "{out}"
    );
}
