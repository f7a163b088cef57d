//! Conformance cases (the format of `CASES.md`) and the comparison rule.
//!
//! A case folder holds `model.pt2`, `case.json` and `runN/input_K.npy`,
//! `runN/output_K.npy`. [`Case::load`] reads it; [`compare`] applies the
//! tolerance rule: `|got - want| <= atol + rtol * |want|` elementwise, NaN
//! matching NaN, infinities matching exactly, integers and bools equal.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::tensor::Tensor;

#[derive(Clone, Debug, Deserialize)]
pub struct CaseMeta {
    pub name: String,
    #[serde(default)]
    pub family: String,
    #[serde(default)]
    pub ir: String,
    #[serde(default)]
    pub dynamic: bool,
    #[serde(default)]
    pub stateful: bool,
    pub rtol: f64,
    pub atol: f64,
    #[serde(default)]
    pub torch: String,
    pub runs: Vec<RunMeta>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RunMeta {
    pub inputs: usize,
    pub outputs: usize,
}

pub struct Run {
    pub inputs: Vec<Tensor>,
    pub outputs: Vec<Tensor>,
}

pub struct Case {
    pub dir: PathBuf,
    pub meta: CaseMeta,
    pub runs: Vec<Run>,
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

impl Case {
    pub fn model_path(&self) -> PathBuf {
        self.dir.join("model.pt2")
    }

    pub fn load(dir: &Path) -> Result<Case> {
        let meta_path = dir.join("case.json");
        let text = std::fs::read_to_string(&meta_path).map_err(|e| io_err(&meta_path, e))?;
        let meta: CaseMeta = serde_json::from_str(&text)
            .map_err(|e| Error::other(format!("{}: {e}", meta_path.display())))?;
        let mut runs = Vec::new();
        for (i, r) in meta.runs.iter().enumerate() {
            let run_dir = dir.join(format!("run{i}"));
            let read = |kind: &str, n: usize| -> Result<Vec<Tensor>> {
                (0..n)
                    .map(|k| Tensor::read_npy(run_dir.join(format!("{kind}_{k}.npy"))))
                    .collect()
            };
            runs.push(Run {
                inputs: read("input", r.inputs)?,
                outputs: read("output", r.outputs)?,
            });
        }
        Ok(Case {
            dir: dir.to_path_buf(),
            meta,
            runs,
        })
    }
}

/// The largest errors seen over a comparison.
#[derive(Copy, Clone, Debug, Default)]
pub struct Deviation {
    pub max_abs: f64,
    pub max_rel: f64,
}

impl Deviation {
    pub fn merge(&mut self, o: Deviation) {
        self.max_abs = self.max_abs.max(o.max_abs);
        self.max_rel = self.max_rel.max(o.max_rel);
    }
}

/// Compares `got` against `want`. On mismatch the error says where.
pub fn compare(
    got: &Tensor,
    want: &Tensor,
    rtol: f64,
    atol: f64,
) -> std::result::Result<Deviation, String> {
    if got.dtype() != want.dtype() {
        return Err(format!(
            "dtype {} but expected {}",
            got.dtype(),
            want.dtype()
        ));
    }
    if got.sizes() != want.sizes() {
        return Err(format!(
            "shape {:?} but expected {:?}",
            got.sizes(),
            want.sizes()
        ));
    }
    let g = got.to_f64_vec();
    let w = want.to_f64_vec();
    let exact = !got.dtype().is_float();
    let mut dev = Deviation::default();
    for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
        let ok = if exact {
            a == b
        } else if a.is_nan() || b.is_nan() {
            a.is_nan() && b.is_nan()
        } else if a.is_infinite() || b.is_infinite() {
            a == b
        } else {
            (a - b).abs() <= atol + rtol * b.abs()
        };
        if a.is_finite() && b.is_finite() {
            let abs = (a - b).abs();
            dev.max_abs = dev.max_abs.max(abs);
            if b != 0.0 {
                dev.max_rel = dev.max_rel.max(abs / b.abs());
            }
        }
        if !ok {
            let idx = unravel(i, got.sizes());
            return Err(format!(
                "max_abs={:.2e} at {idx:?} (got {a}, want {b})",
                (a - b).abs()
            ));
        }
    }
    Ok(dev)
}

fn unravel(mut i: usize, sizes: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; sizes.len()];
    for d in (0..sizes.len()).rev() {
        let s = sizes[d].max(1);
        idx[d] = i % s;
        i /= s;
    }
    idx
}
