//! `torchlift run`: one call of a model.

use std::path::Path;
use std::process::ExitCode;

use torchlift::model::{LoadOptions, Model};
use torchlift::tensor::Tensor;
use torchlift::{Error, Result};

use super::Runner;
use crate::Backend;

pub fn run(
    path: &Path,
    backend: Backend,
    inputs: &[std::path::PathBuf],
    out_dir: Option<&Path>,
    no_passes: bool,
) -> Result<ExitCode> {
    let opts = LoadOptions {
        run_passes: !no_passes,
        ..LoadOptions::default()
    };
    let model = Model::load_with(path, opts)?;
    let mut args: Vec<Tensor> = if inputs.is_empty() {
        match &model.sample_inputs {
            Some(s) => s.iter().map(|t| t.clone_data()).collect(),
            None => {
                return Err(Error::other(
                    "the archive has no sample inputs; pass --input FILE.npy for each input",
                ))
            }
        }
    } else {
        inputs.iter().map(Tensor::read_npy).collect::<Result<_>>()?
    };
    let outputs = Runner::new(model, backend)?.run(&mut args)?;
    if let Some(dir) = out_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            path: dir.display().to_string(),
            source: e,
        })?;
    }
    for (k, t) in outputs.iter().enumerate() {
        println!("output_{k}: {} {:?} {}", t.dtype(), t.sizes(), summary(t));
        if let Some(dir) = out_dir {
            t.write_npy(dir.join(format!("output_{k}.npy")))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// min / max / mean of the values, and the first few.
pub fn summary(t: &Tensor) -> String {
    let v = t.to_f64_vec();
    if v.is_empty() {
        return "(empty)".into();
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let head: Vec<String> = v.iter().take(4).map(|x| format!("{x:.4}")).collect();
    format!(
        "min={min:.4} max={max:.4} mean={mean:.4} [{}{}]",
        head.join(", "),
        if v.len() > 4 { ", ..." } else { "" }
    )
}
