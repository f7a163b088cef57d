//! Calls the model that `build.rs` compiled ahead of time and linked in,
//! through the same typed API as the JIT: `cargo run -p
//! torchlift-embed-example` from the repository's root.

use std::path::PathBuf;

use ndarray::ArrayD;
use ndarray_npy::read_npy;
use torchlift::codegen::aot::ArtifactDesc;
use torchlift::{CompiledModel, Value};

extern "C" {
    /// The descriptor of the artifact `build.rs` linked.
    static torchlift_artifact: ArtifactDesc;
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: `torchlift_artifact` is the descriptor of the object that
    // build.rs compiled with this torchlift and linked into this program.
    let model = unsafe { CompiledModel::from_artifact(std::ptr::addr_of!(torchlift_artifact), 0)? };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../mlp/run0");
    let x: ArrayD<f32> = read_npy(dir.join("input_0.npy"))?;
    let want: ArrayD<f32> = read_npy(dir.join("output_0.npy"))?;
    let mut session = model.session();
    let out = session.run_values(&mut [Value::from(x)])?;
    let y = out[0].as_f32().ok_or("the output is not f32")?;
    let err = y
        .iter()
        .zip(want.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!(
        "output shape {:?}, max |torchlift - torch| = {err:.2e}",
        y.shape()
    );
    if err > 1e-4 {
        return Err(format!("the output differs from PyTorch's by {err}").into());
    }
    Ok(())
}
