//! `torchlift compile`, and the runner of `check --backend aot`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use torchlift::codegen::aot::{
    write_artifact, AotOptions, Emit, SharedArtifact, TargetCpu, WeightsPlacement,
};
use torchlift::interp::Tensor;
use torchlift::model::Model;
use torchlift::Result;

use crate::{EmitKind, TargetCpuArg, WeightsArg};

pub fn run(
    model: &Path,
    out: &Path,
    emit: EmitKind,
    target: TargetCpuArg,
    weights: WeightsArg,
    custom_ops: &[String],
) -> Result<ExitCode> {
    // Declared before loading: functionalization needs their schemas.
    for s in custom_ops {
        torchlift::custom::declare(s)?;
    }
    let m = Model::load(model)?;
    let emit = match emit {
        EmitKind::Object => Emit::Object,
        EmitKind::Staticlib => Emit::Staticlib,
        EmitKind::Sharedlib => Emit::Sharedlib,
    };
    let target = match target {
        TargetCpuArg::Native => TargetCpu::Native,
        TargetCpuArg::X86_64V2 => TargetCpu::X86_64V2,
        TargetCpuArg::X86_64V3 => TargetCpu::X86_64V3,
    };
    let weights = match weights {
        WeightsArg::Embedded => WeightsPlacement::Embedded,
        WeightsArg::External => WeightsPlacement::External,
    };
    let opts = AotOptions {
        emit,
        target,
        weights,
    };
    write_artifact(&m, &opts, out)?;
    let dir = out.parent().unwrap_or(Path::new("."));
    println!(
        "wrote {} (with {} and the manifest)",
        out.display(),
        dir.join("torchlift.h").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A model compiled to a shared library in a folder of its own, loaded
/// through the library's C API; the folder is removed on drop.
pub struct AotRunner {
    artifact: Option<SharedArtifact>,
    dir: PathBuf,
}

impl AotRunner {
    pub fn new(model: &Model) -> Result<AotRunner> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "torchlift-aot-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let mut r = AotRunner {
            artifact: None,
            dir,
        };
        let lib = r.dir.join("libmodel.so");
        write_artifact(model, &AotOptions::default(), &lib)?;
        let a = SharedArtifact::open(&lib, 0)?;
        a.verify_weights()?;
        r.artifact = Some(a);
        Ok(r)
    }

    pub fn run(&mut self, inputs: &mut [Tensor]) -> Result<Vec<Tensor>> {
        match &mut self.artifact {
            Some(a) => a.run(inputs),
            None => Err(torchlift::Error::other("the artifact is not loaded")),
        }
    }
}

impl Drop for AotRunner {
    fn drop(&mut self) {
        self.artifact = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
