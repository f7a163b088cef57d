//! `torchlift check`: conformance cases against PyTorch's recorded outputs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use torchlift::check::{compare, Case, Deviation};
use torchlift::model::{LoadOptions, Model};
use torchlift::Result;

use super::Runner;
use crate::Backend;

enum Outcome {
    Pass {
        dev: Deviation,
        compile_ms: f64,
        run_ms: f64,
    },
    Fail(String),
    Error(String),
    /// The backend does not support the model yet (a compile-time refusal).
    Refused(String),
}

pub fn run(cases: &[PathBuf], backend: Backend, opts: LoadOptions) -> Result<ExitCode> {
    let backend_name = match backend {
        Backend::Interp => "interp",
        Backend::Jit => "jit",
        Backend::Aot => "aot",
    };
    let (mut passed, mut failed, mut refused) = (0, 0, 0);
    for dir in cases {
        let name = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let outcome =
            std::panic::catch_unwind(|| check_case(dir, backend, opts)).unwrap_or_else(|p| {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Outcome::Error(format!("internal error (panic): {msg}"))
            });
        match outcome {
            Outcome::Pass {
                dev,
                compile_ms,
                run_ms,
            } => {
                passed += 1;
                println!(
                    "PASS {name:<20} {backend_name:<6} max_abs={:.1e} max_rel={:.1e}  compile={compile_ms:.0}ms run={run_ms:.2}ms",
                    dev.max_abs, dev.max_rel
                );
            }
            Outcome::Fail(msg) => {
                failed += 1;
                println!("FAIL {name:<20} {backend_name:<6} {msg}");
            }
            Outcome::Refused(msg) => {
                refused += 1;
                println!(
                    "REFUSED {name:<17} {backend_name:<6} {}",
                    msg.replace('\n', " ")
                );
            }
            Outcome::Error(msg) => {
                failed += 1;
                println!(
                    "ERROR {name:<19} {backend_name:<6} {}",
                    msg.replace('\n', " ")
                );
            }
        }
    }
    if refused > 0 {
        println!("{passed} passed, {failed} failed, {refused} refused");
    } else {
        println!("{passed} passed, {failed} failed");
    }
    Ok(if failed == 0 && refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn check_case(dir: &Path, backend: Backend, opts: LoadOptions) -> Outcome {
    let case = match Case::load(dir) {
        Ok(c) => c,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    let t0 = Instant::now();
    let model = match Model::load_with(&case.model_path(), opts) {
        Ok(m) => m,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    let mut model = match Runner::new(model, backend) {
        Ok(r) => r,
        // Only compilation for the JIT can fail here: a refusal.
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    let compile_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut dev = Deviation::default();
    let mut run_ms = 0.0;
    for (r, run) in case.runs.iter().enumerate() {
        let mut inputs: Vec<_> = run.inputs.iter().map(|t| t.clone_data()).collect();
        let t1 = Instant::now();
        let got = match model.run(&mut inputs) {
            Ok(o) => o,
            Err(e) => return Outcome::Error(format!("run{r}: {e}")),
        };
        run_ms += t1.elapsed().as_secs_f64() * 1e3;
        if got.len() != run.outputs.len() {
            return Outcome::Fail(format!(
                "run{r}: {} outputs but expected {}",
                got.len(),
                run.outputs.len()
            ));
        }
        for (k, (g, w)) in got.iter().zip(&run.outputs).enumerate() {
            match compare(g, w, case.meta.rtol, case.meta.atol) {
                Ok(d) => dev.merge(d),
                Err(msg) => return Outcome::Fail(format!("run{r} output_{k}: {msg}")),
            }
        }
    }
    Outcome::Pass {
        dev,
        compile_ms,
        run_ms: run_ms / case.runs.len().max(1) as f64,
    }
}
