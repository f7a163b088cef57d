//! End-to-end conformance on the committed fixture cases: every case runs
//! in the reference interpreter before and after the export passes, and
//! both must match PyTorch's recorded outputs (and so each other).

use std::path::{Path, PathBuf};

use torchlift::check::{compare, Case};
use torchlift::model::{LoadOptions, Model};

mod common;
use common::{expects_unknown_op, fixture_case_dirs, versioned_case_dirs};

fn run_case(dir: &Path, run_passes: bool) -> Result<(), String> {
    let case = Case::load(dir).map_err(|e| e.to_string())?;
    let opts = LoadOptions {
        run_passes,
        verify_each_pass: true,
    };
    let mut model = Model::load_with(&case.model_path(), opts).map_err(|e| e.to_string())?;
    for (r, run) in case.runs.iter().enumerate() {
        let mut inputs: Vec<_> = run.inputs.iter().map(|t| t.clone_data()).collect();
        let got = model.run(&mut inputs).map_err(|e| format!("run{r}: {e}"))?;
        if got.len() != run.outputs.len() {
            return Err(format!(
                "run{r}: {} outputs, expected {}",
                got.len(),
                run.outputs.len()
            ));
        }
        for (k, (g, w)) in got.iter().zip(&run.outputs).enumerate() {
            compare(g, w, case.meta.rtol, case.meta.atol)
                .map_err(|m| format!("run{r} output_{k}: {m}"))?;
        }
    }
    Ok(())
}

fn check_dirs(dirs: &[PathBuf], run_passes: bool) {
    let mut failures = Vec::new();
    for dir in dirs {
        let name = dir
            .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
            .unwrap_or(dir)
            .display()
            .to_string();
        match (run_case(dir, run_passes), expects_unknown_op(dir)) {
            (Ok(()), false) => {}
            (Err(e), true) if e.contains("mylib.add_one_") => {}
            (Ok(()), true) => {
                failures.push(format!("{name}: ran although its custom op has no kernel"))
            }
            (Err(e), _) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}

fn check_all(run_passes: bool) {
    let dirs = fixture_case_dirs();
    assert!(dirs.len() >= 10, "fixture cases are missing");
    check_dirs(&dirs, run_passes);
}

/// Every release of the versions matrix must hold the whole matrix (a case
/// a release could not export would be listed in its NOTES.txt).
fn check_versions(run_passes: bool) {
    let dirs = versioned_case_dirs();
    for release in ["t2_6", "t2_8", "t2_10", "t2_12", "t2_15"] {
        let n = dirs
            .iter()
            .filter(|d| d.parent().and_then(|p| p.file_name()) == Some(release.as_ref()))
            .count();
        let want = if matches!(release, "t2_6" | "t2_15") {
            22
        } else {
            16
        };
        assert!(n >= want, "versions matrix {release}: {n} cases");
    }
    check_dirs(&dirs, run_passes);
}

#[test]
fn torch_releases_match_pytorch_as_saved() {
    check_versions(false);
}

#[test]
fn torch_releases_match_pytorch_after_export_passes() {
    check_versions(true);
}

#[test]
fn fixtures_match_pytorch_as_saved() {
    check_all(false);
}

#[test]
fn fixtures_match_pytorch_after_export_passes() {
    check_all(true);
}

#[test]
fn stateful_model_carries_buffers_across_calls() {
    // run1 of inplace_buffer only matches if run0's buffer updates persist;
    // a fresh model on run1's inputs must not match.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cases/inplace_buffer");
    let case = Case::load(&dir).expect("case");
    let mut fresh = Model::load(&case.model_path()).expect("model");
    let mut inputs: Vec<_> = case.runs[1].inputs.iter().map(|t| t.clone_data()).collect();
    let got = fresh.run(&mut inputs).expect("run");
    let all_match = got
        .iter()
        .zip(&case.runs[1].outputs)
        .all(|(g, w)| compare(g, w, case.meta.rtol, case.meta.atol).is_ok());
    assert!(
        !all_match,
        "run1 matched without run0's state: the case does not test state"
    );
}

#[test]
fn user_input_mutation_is_written_back() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cases/view_mutation");
    let case = Case::load(&dir).expect("case");
    for run_passes in [false, true] {
        let mut model = Model::load_with(
            &case.model_path(),
            LoadOptions {
                run_passes,
                verify_each_pass: true,
            },
        )
        .expect("model");
        let before: Vec<_> = case.runs[0].inputs.iter().map(|t| t.clone_data()).collect();
        let mut inputs: Vec<_> = before.iter().map(|t| t.clone_data()).collect();
        model.run(&mut inputs).expect("run");
        // The model does `inp.add_(1)` on its second input.
        let want: Vec<f64> = before[1]
            .to_f64_vec()
            .iter()
            .map(|&v| (v as f32 + 1.0) as f64)
            .collect();
        assert_eq!(inputs[1].to_f64_vec(), want, "run_passes={run_passes}");
        assert_eq!(
            inputs[0].to_f64_vec(),
            before[0].to_f64_vec(),
            "input 0 must not change"
        );
    }
}

#[test]
fn outputs_do_not_alias_model_state() {
    // inplace_buffer returns values computed from buffers that the next call
    // mutates; an output kept from call 0 must not change during call 1.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cases/inplace_buffer");
    let case = Case::load(&dir).expect("case");
    for run_passes in [false, true] {
        let mut model = Model::load_with(
            &case.model_path(),
            LoadOptions {
                run_passes,
                verify_each_pass: true,
            },
        )
        .expect("model");
        let mut in0: Vec<_> = case.runs[0].inputs.iter().map(|t| t.clone_data()).collect();
        let out0 = model.run(&mut in0).expect("run0");
        let snapshot: Vec<Vec<f64>> = out0.iter().map(|t| t.to_f64_vec()).collect();
        let mut in1: Vec<_> = case.runs[1].inputs.iter().map(|t| t.clone_data()).collect();
        model.run(&mut in1).expect("run1");
        let after: Vec<Vec<f64>> = out0.iter().map(|t| t.to_f64_vec()).collect();
        assert_eq!(snapshot, after, "run_passes={run_passes}");
    }
}

#[test]
fn merged_duplicate_outputs_are_distinct_tensors() {
    use torchlift::interp::{Scalar, Tensor};
    use torchlift::passes::{export_pipeline, PassContext};
    // Two copies of the input: CSE merges them into one value, but the
    // caller must still get two independent tensors.
    let text = "input %x: f32[3] = user_input\n\
                %a: f32[3] = aten.clone.default(self=%x)\n\
                %b: f32[3] = aten.clone.default(self=%x)\n\
                output %a = user_output\n\
                output %b = user_output\n";
    let mut program = torchlift::ir::parse::parse_program(text).expect("parse");
    let mut state = std::collections::BTreeMap::new();
    export_pipeline()
        .run(
            &mut program,
            &mut PassContext {
                weights: Some(&mut state),
            },
            true,
            |_, _| {},
        )
        .expect("passes");
    let mut model = Model {
        path: PathBuf::from("inline"),
        program,
        state,
        sample_inputs: None,
    };
    let mut inputs = vec![Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).expect("tensor")];
    let out = model.run(&mut inputs).expect("run");
    assert_eq!(out.len(), 2);
    assert!(
        !out[0].same_storage(&out[1]),
        "the two outputs share storage"
    );
    assert!(
        !out[0].same_storage(&inputs[0]),
        "an output shares storage with the input"
    );
    out[0].fill_(Scalar::Float(9.0)).expect("fill");
    assert_eq!(out[1].to_f64_vec(), vec![1.0, 2.0, 3.0]);
    assert_eq!(inputs[0].to_f64_vec(), vec![1.0, 2.0, 3.0]);
}
