//! Pass filetests: IR text in, IR text out.
//!
//! Each `tests/filetests/<dir>/*.tlir` file starts with `// pass: NAME[, NAME...]`,
//! then the input program, then a `// ---- expected ----` line, then the
//! program as printed after the passes ran (verified after each one). A
//! mismatch prints a unified diff. `TORCHLIFT_BLESS=1 cargo test --test
//! filetests` rewrites the expectations in place.
//!
//! A `// weights: arange` line gives every parameter and constant input a
//! tensor of its (static) shape holding 0, 1, 2, ... (for `fold_constants`).
//! An expected section that starts with `// error:` expects the passes to
//! fail with a message containing the rest of that line.
//!
//! `// pass: schedule` (in `tests/filetests/schedule/`) runs the compiler's
//! scheduler instead and expects its kernel plan as text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use torchlift::interp::Tensor;
use torchlift::ir::parse::parse_program;
use torchlift::ir::print::program_to_string;
use torchlift::ir::verify::verify_program;
use torchlift::ir::{InputKind, Program};
use torchlift::passes::{pass_by_name, PassContext};
use torchlift::DType;

const MARK: &str = "// ---- expected ----";

fn files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filetests");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).expect("tests/filetests exists") {
        let dir = dir.expect("dir entry").path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).expect("read dir") {
            let f = f.expect("entry").path();
            if f.extension().is_some_and(|e| e == "tlir") {
                out.push(f);
            }
        }
    }
    out.sort();
    out
}

fn arange_weights(p: &Program) -> BTreeMap<String, Tensor> {
    let mut w = BTreeMap::new();
    for spec in &p.signature.inputs {
        if !matches!(
            spec.kind,
            InputKind::Parameter | InputKind::ConstantTensor | InputKind::Buffer { .. }
        ) {
            continue;
        }
        let ty = p
            .graph
            .tensor_type(spec.value)
            .expect("weight input has a type");
        let shape = ty.static_shape().expect("weight input has a static shape");
        let n: usize = shape.iter().product();
        let t = Tensor::from_vec((0..n).map(|i| i as f64).collect::<Vec<f64>>(), &shape)
            .expect("tensor");
        let t = if ty.dtype == DType::F64 {
            t
        } else {
            t.to_dtype(ty.dtype)
        };
        w.insert(spec.target.clone().expect("weight target"), t);
    }
    w
}

/// Runs one file; returns (expected, got) text.
fn run_file(f: &Path) -> (String, String, String) {
    let text = std::fs::read_to_string(f).expect("read filetest");
    let (input, expected) = text
        .split_once(MARK)
        .unwrap_or_else(|| panic!("{}: no `{MARK}` line", f.display()));
    let passes: Vec<String> = input
        .lines()
        .find_map(|l| l.strip_prefix("// pass:"))
        .unwrap_or_else(|| panic!("{}: no `// pass:` line", f.display()))
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let mut p = parse_program(input).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    verify_program(&p).unwrap_or_else(|e| panic!("{}: input does not verify: {e}", f.display()));
    let mut weights = if input.contains("// weights: arange") {
        arange_weights(&p)
    } else {
        BTreeMap::new()
    };
    let mut cx = PassContext {
        weights: Some(&mut weights),
    };
    let mut got = String::new();
    for name in &passes {
        if name == "schedule" {
            got = match torchlift::codegen::schedule(&p) {
                Ok(plan) => torchlift::codegen::kernel::plan_text(&plan),
                Err(e) => format!("// error: {e}\n"),
            };
            break;
        }
        let pass =
            pass_by_name(name).unwrap_or_else(|| panic!("{}: unknown pass {name}", f.display()));
        if let Err(e) = pass.run(&mut p, &mut cx) {
            got = format!("// error: {e}\n");
            break;
        }
        verify_program(&p).unwrap_or_else(|e| panic!("{}: after {name}: {e}", f.display()));
    }
    if got.is_empty() {
        got = program_to_string(&p);
    }
    (
        input.trim_end().to_string(),
        expected.trim().to_string(),
        got,
    )
}

fn matches(expected: &str, got: &str) -> bool {
    match expected.strip_prefix("// error:") {
        Some(msg) => {
            got.starts_with("// error:") && got.contains(msg.lines().next().unwrap_or("").trim())
        }
        None => expected == got.trim(),
    }
}

#[test]
fn every_pass_has_filetests() {
    let covered: std::collections::HashSet<String> = files()
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).expect("read");
            text.lines()
                .find_map(|l| {
                    l.strip_prefix("// pass:").map(|s| {
                        s.split(',')
                            .map(|x| x.trim().to_string())
                            .collect::<Vec<_>>()
                    })
                })
                .unwrap_or_default()
        })
        .collect();
    for p in torchlift::passes::all_passes() {
        assert!(
            covered.contains(p.name()),
            "pass {} has no filetest",
            p.name()
        );
    }
}

#[test]
fn filetests() {
    let bless = std::env::var_os("TORCHLIFT_BLESS").is_some();
    let files = files();
    assert!(!files.is_empty(), "no filetests found");
    let mut failures = Vec::new();
    for f in &files {
        let (input, expected, got) = run_file(f);
        if matches(&expected, &got) {
            continue;
        }
        if bless {
            std::fs::write(f, format!("{input}\n{MARK}\n{got}")).expect("write filetest");
            continue;
        }
        let diff =
            similar::TextDiff::from_lines(&format!("{expected}\n"), &format!("{}\n", got.trim()))
                .unified_diff()
                .header("expected", "got")
                .to_string();
        failures.push(format!("{}:\n{diff}", f.display()));
    }
    println!("{} filetests run", files.len());
    assert!(
        failures.is_empty(),
        "{} filetests failed (TORCHLIFT_BLESS=1 rewrites them):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
