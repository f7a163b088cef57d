//! Loads a `.pt2` archive, compiles it, and calls it from several threads,
//! one session each, on the sample input of a case folder.
//!
//! `cargo run --release --example run_model [CASE_DIR]` (default:
//! `examples/mlp`, whose `run0/input_0.npy` is the input and
//! `run0/output_0.npy` what PyTorch computed).

use std::path::PathBuf;

use ndarray::ArrayD;
use ndarray_npy::read_npy;
use torchlift::{CompileOptions, CompiledModel, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/mlp"));
    let model = CompiledModel::load(dir.join("model.pt2"), &CompileOptions::default())?;
    for s in model.inputs() {
        println!("input  {} {} {:?}", s.name, s.dtype, s.dims);
    }
    for s in model.outputs() {
        println!("output {} {} {:?}", s.name, s.dtype, s.dims);
    }
    let x: ArrayD<f32> = read_npy(dir.join("run0/input_0.npy"))?;
    let want: ArrayD<f32> = read_npy(dir.join("run0/output_0.npy"))?;
    // The compiled model is shared; each thread calls it through its own
    // session.
    std::thread::scope(|s| -> Result<(), torchlift::Error> {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (model, x) = (&model, x.clone());
                s.spawn(move || {
                    let mut session = model.session();
                    session.run_values(&mut [Value::from(x)])
                })
            })
            .collect();
        for h in handles {
            let out = h.join().expect("a calling thread panicked")?;
            let y = out[0].as_f32().expect("an f32 output");
            let err = y
                .iter()
                .zip(want.iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            println!(
                "output shape {:?}, max |torchlift - torch| = {err:.2e}",
                y.shape()
            );
        }
        Ok(())
    })?;
    Ok(())
}
