//! Reference-interpreter benchmarks: load + export passes ("compile") and one
//! call ("run") kept apart, on the small models shipped with the repository.
//!
//! `cargo bench --bench interp`. Threads: rayon's default (all cores).

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use torchlift::check::Case;
use torchlift::model::Model;

fn cases() -> Vec<(&'static str, &'static str)> {
    vec![
        ("mlp_b2", "examples/mlp"),
        ("cnn_1x3x16x16", "tests/fixtures/cases/tiny_cnn"),
        ("attention", "tests/fixtures/cases/tiny_attention"),
        ("lstm", "tests/fixtures/cases/tiny_lstm"),
    ]
}

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, dir) in cases() {
        let case = Case::load(&root.join(dir)).expect("case");
        let path = case.model_path();
        c.bench_function(&format!("compile/{name}"), |b| {
            b.iter(|| Model::load(&path).expect("load"))
        });
        let mut model = Model::load(&path).expect("load");
        let inputs = case.runs[0].inputs.clone();
        c.bench_function(&format!("run/{name}"), |b| {
            b.iter(|| {
                let mut xs: Vec<_> = inputs.iter().map(|t| t.clone_data()).collect();
                model.run(&mut xs).expect("run")
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
