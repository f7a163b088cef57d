//! The embedding API: typed values, signatures, input errors, and one
//! compiled model called from many threads at once.

use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use ndarray_npy::read_npy;
use torchlift::{CompileOptions, CompiledModel, DType, DimSpec, Session, Value};

fn case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cases")
        .join(name)
}

fn load(name: &str) -> CompiledModel {
    CompiledModel::load(case(name).join("model.pt2"), &CompileOptions { threads: 2 })
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn input(name: &str) -> ArrayD<f32> {
    read_npy(case(name).join("run0/input_0.npy")).unwrap()
}

/// Call `k` of a sequence: the case's input, scaled so each call differs.
fn varied(x: &ArrayD<f32>, k: usize) -> Value {
    Value::from(x.mapv(|v| v * (1.0 + (k % 7) as f32 * 0.25)))
}

fn calls(session: &mut Session, x: &ArrayD<f32>, n: usize) -> Vec<Vec<Value>> {
    (0..n)
        .map(|k| session.run_values(&mut [varied(x, k)]).unwrap())
        .collect()
}

#[test]
fn compiled_models_and_sessions_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<CompiledModel>();
    send::<Session>();
}

#[test]
fn outputs_match_pytorch_and_have_their_dtypes() {
    let m = load("tiny_mlp");
    let out = m.run_values(&mut [Value::from(input("tiny_mlp"))]).unwrap();
    let want: ArrayD<f32> = read_npy(case("tiny_mlp").join("run0/output_0.npy")).unwrap();
    let got = out[0].as_f32().expect("f32");
    assert_eq!(got.shape(), want.shape());
    for (a, b) in got.iter().zip(want.iter()) {
        assert!((a - b).abs() <= 1e-5 + 1e-4 * b.abs(), "{a} vs {b}");
    }
    // Integer and bool values round-trip with their dtypes.
    let ids = load("tiny_indexing");
    for spec in ids.inputs() {
        assert_ne!(spec.dtype, DType::F32, "{spec:?}");
    }
}

#[test]
fn signature_lists_dtypes_and_symbolic_dims() {
    let m = load("dyn_batch");
    let ins = m.inputs();
    assert_eq!(ins.len(), 1);
    assert_eq!(ins[0].dtype, DType::F32);
    match &ins[0].dims[0] {
        DimSpec::Symbol { min, max, .. } => assert_eq!((*min, *max), (1, Some(64))),
        other => panic!("batch dim is {other:?}"),
    }
    assert_eq!(ins[0].dims[1], DimSpec::Fixed(12));
    assert_eq!(m.outputs().len(), 3);
}

#[test]
fn inputs_off_the_signature_name_the_input_and_the_dim() {
    let m = load("dyn_batch");
    let mut s = m.session();
    let name = m.inputs()[0].name.clone();
    let e = s
        .run_values(&mut [Value::from(ArrayD::<f64>::zeros(vec![3, 12]))])
        .unwrap_err()
        .to_string();
    assert!(e.contains(&name) && e.contains("f64"), "{e}");
    let e = s
        .run_values(&mut [Value::from(ArrayD::<f32>::zeros(vec![3, 11]))])
        .unwrap_err()
        .to_string();
    assert!(e.contains(&name) && e.contains("dim 1"), "{e}");
    let e = s
        .run_values(&mut [Value::from(ArrayD::<f32>::zeros(vec![65, 12]))])
        .unwrap_err()
        .to_string();
    assert!(e.contains(&name) && e.contains("dim 0"), "{e}");
    let e = s
        .run_values(&mut [Value::from(ArrayD::<f32>::zeros(vec![12]))])
        .unwrap_err()
        .to_string();
    assert!(e.contains(&name), "{e}");
    // The session is whole after refusing them.
    s.run_values(&mut [Value::from(ArrayD::<f32>::zeros(vec![3, 12]))])
        .unwrap();
}

/// 8 threads × 1000 calls on one compiled model give what serial calls
/// give: stateless (a fresh result per input) and stateful (each thread's
/// session carries its own buffers through the same call sequence).
#[test]
fn eight_threads_of_a_thousand_calls_match_serial_calls() {
    const THREADS: usize = 8;
    const CALLS: usize = 1000;
    for (name, stateful) in [("tiny_mlp", false), ("inplace_buffer", true)] {
        let m = load(name);
        let x = input(name);
        let serial = calls(&mut m.session(), &x, CALLS);
        if stateful {
            // The buffers move: a later call differs from a first call on
            // the same input, and a new session starts from the loaded state.
            let again = m.session().run_values(&mut [varied(&x, 7)]).unwrap();
            assert_ne!(serial[7], again, "{name}: state did not persist");
            assert_eq!(
                serial[0], again,
                "{name}: a new session did not start fresh"
            );
        }
        let results: Vec<Vec<Vec<Value>>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (m, x) = (&m, &x);
                    s.spawn(move || calls(&mut m.session(), x, CALLS))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (t, r) in results.iter().enumerate() {
            for (k, (a, b)) in r.iter().zip(&serial).enumerate() {
                assert_eq!(a, b, "{name}: thread {t}, call {k}");
            }
        }
    }
}
