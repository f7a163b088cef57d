//! Custom operators with Rust kernels: the `custom_op_nokernel` fixtures
//! (`mylib::add_one_`, in place in the training IR, under
//! `auto_functionalized_v2` in the core IR) are refused with a named error
//! until a kernel is registered, then match PyTorch on the interpreter
//! (before and after the passes) and the JIT.
//!
//! One test: the registry is process-wide, so the order (refused, then
//! registered) must not interleave with another test.

use std::path::{Path, PathBuf};

use torchlift::check::{compare, Case};
use torchlift::codegen::jit::JitModel;
use torchlift::model::{LoadOptions, Model};
use torchlift::tensor::Tensor;

const SCHEMA: &str = "mylib::add_one_(Tensor(a!) x) -> ()";

fn case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cases")
        .join(name)
}

fn load(c: &Case, passes: bool) -> torchlift::Result<Model> {
    let opts = LoadOptions {
        run_passes: passes,
        ..LoadOptions::default()
    };
    Model::load_with(&c.model_path(), opts)
}

fn check(name: &str, got: &[Tensor], c: &Case) {
    assert_eq!(got.len(), c.runs[0].outputs.len(), "{name}");
    for (g, w) in got.iter().zip(&c.runs[0].outputs) {
        compare(g, w, c.meta.rtol, c.meta.atol).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn custom_op_kernels_run_on_the_interpreter_and_the_jit() {
    let names = ["custom_op_nokernel", "custom_op_nokernel_core"];
    let cases: Vec<Case> = names
        .iter()
        .map(|n| Case::load(&case(n)).unwrap())
        .collect();
    for (name, c) in names.iter().zip(&cases) {
        let inputs = || {
            c.runs[0]
                .inputs
                .iter()
                .map(|t| t.clone_data())
                .collect::<Vec<_>>()
        };
        let e = load(c, true)
            .and_then(|mut m| m.run(&mut inputs()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("mylib.add_one_.default"), "{name}: {e}");
        assert!(e.contains("torchlift_op_mylib__add_one_"), "{name}: {e}");
        let m = load(c, true).unwrap();
        let e = JitModel::compile(&m).err().expect("refused").to_string();
        assert!(e.contains("mylib.add_one_.default"), "{name}: {e}");
    }

    torchlift::custom::register(SCHEMA, |args| {
        let x = args.tensor(0)?;
        let y: Vec<f32> = x.to_vec::<f32>()?.iter().map(|v| v + 1.0).collect();
        x.copy_(&Tensor::from_vec(y, x.sizes())?)?;
        Ok(vec![])
    })
    .unwrap();
    for (name, c) in names.iter().zip(&cases) {
        let inputs = || {
            c.runs[0]
                .inputs
                .iter()
                .map(|t| t.clone_data())
                .collect::<Vec<_>>()
        };
        // The interpreter on the graph as saved (the in-place call), and
        // after the passes (one functional node).
        for passes in [false, true] {
            let mut m = load(c, passes).unwrap();
            let got = m.run(&mut inputs()).unwrap();
            check(&format!("{name} interp passes={passes}"), &got, c);
        }
        let m = load(c, true).unwrap();
        assert!(
            torchlift::ir::print::program_to_string(&m.program)
                .contains("custom \"torch.ops.mylib.add_one_.default\""),
            "{name}: not functionalized"
        );
        let mut jit = JitModel::compile(&m).unwrap();
        for _ in 0..2 {
            let got = jit.run(&mut inputs()).unwrap();
            check(&format!("{name} jit"), &got, c);
        }
    }
    // A kernel that fails is an error naming the node, not a crash.
    torchlift::custom::register(SCHEMA, |_| Err(torchlift::Error::other("no luck"))).unwrap();
    let mut m = load(&cases[0], true).unwrap();
    let e = m
        .run(&mut cases[0].runs[0].inputs.clone())
        .unwrap_err()
        .to_string();
    assert!(e.contains("add_one_") && e.contains("no luck"), "{e}");
}
