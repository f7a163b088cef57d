//! `torchlift bench`: time compilation and calls of one model.
//!
//! Compile time (load + export passes + code generation) and run time are
//! reported apart. Run time is the median and the minimum over `--iters`
//! calls after `--warmup` calls, on the archive's sample inputs (or the
//! given ones). The thread count is rayon's (`RAYON_NUM_THREADS`), printed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use torchlift::model::Model;
use torchlift::tensor::Tensor;
use torchlift::{Error, Result};

use super::Runner;
use crate::Backend;

pub fn run(
    path: &Path,
    backend: Backend,
    inputs: &[PathBuf],
    warmup: usize,
    iters: usize,
) -> Result<ExitCode> {
    if iters == 0 {
        return Err(Error::other("--iters must be at least 1"));
    }
    let t0 = Instant::now();
    let model = Model::load(path)?;
    let args: Vec<Tensor> = if inputs.is_empty() {
        model.sample_inputs.clone().ok_or_else(|| {
            Error::other("the archive has no sample inputs; pass --input FILE.npy for each input")
        })?
    } else {
        inputs.iter().map(Tensor::read_npy).collect::<Result<_>>()?
    };
    let name = match backend {
        Backend::Interp => "interp",
        Backend::Jit => "jit",
        Backend::Aot => "aot",
    };
    let mut runner = Runner::new(model, backend)?;
    let compile_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut times = Vec::with_capacity(iters);
    for i in 0..warmup + iters {
        // Fresh inputs each call: a model may mutate its inputs.
        let mut xs: Vec<Tensor> = args.iter().map(|t| t.clone_data()).collect();
        let t = Instant::now();
        runner.run(&mut xs)?;
        if i >= warmup {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    let batch = args
        .first()
        .and_then(|t| t.sizes().first().copied())
        .unwrap_or(1);
    println!(
        "{} backend={name} threads={} batch={batch} compile={compile_ms:.1}ms run_median={:.3}ms run_min={:.3}ms iters={iters}",
        path.display(),
        rayon::current_num_threads(),
        times[times.len() / 2],
        times[0],
    );
    Ok(ExitCode::SUCCESS)
}
