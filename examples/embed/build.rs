//! Compiles `examples/mlp/model.pt2` ahead of time into an object file and
//! links it into this program as a static library.

use std::path::PathBuf;

use torchlift::codegen::aot::{write_artifact, AotOptions, Emit};
use torchlift::model::Model;

fn main() {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let archive = here.join("../mlp/model.pt2");
    println!("cargo:rerun-if-changed={}", archive.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let model = Model::load(&archive).unwrap_or_else(|e| panic!("loading the model: {e}"));
    let obj = out.join("mlp.o");
    let opts = AotOptions {
        emit: Emit::Object,
        ..AotOptions::default()
    };
    write_artifact(&model, &opts, &obj).unwrap_or_else(|e| panic!("compiling the model: {e}"));
    // A one-member archive of a plain object: the system `ar` indexes it.
    let lib = out.join("libmlp_model.a");
    let _ = std::fs::remove_file(&lib);
    let status = std::process::Command::new("ar")
        .arg("crs")
        .arg(&lib)
        .arg(&obj)
        .status()
        .unwrap_or_else(|e| panic!("running ar: {e}"));
    assert!(status.success(), "ar failed");
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=mlp_model");
}
