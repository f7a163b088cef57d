//! Load time of an ahead-of-time artifact: `tl_model_create_with_weights`
//! (external weights, mapped) plus `tl_session_create`, through the shared
//! library's C API as a C program calls it, and the same with embedded
//! weights (`tl_model_create`).
//!
//! `cargo bench --bench load` loads `examples/mlp`; set
//! `TORCHLIFT_LOAD_MODEL=../shared/zoo/resnet18/model.pt2` for resnet18.
//! Threads of the model's pool: 2.

use std::ffi::{c_char, c_void, CString};
use std::path::{Path, PathBuf};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use torchlift::codegen::aot::{write_artifact, AotOptions, ArtifactDesc, WeightsPlacement};
use torchlift::model::Model;

type Raw = *mut c_void;
type CreateFn = unsafe extern "C" fn(*const ArtifactDesc, i32, *mut Raw) -> i32;
type CreateWithFn = unsafe extern "C" fn(*const ArtifactDesc, *const c_char, i32, *mut Raw) -> i32;
type SessionFn = unsafe extern "C" fn(Raw, *mut Raw) -> i32;
type DestroyFn = unsafe extern "C" fn(Raw);
type ErrorFn = unsafe extern "C" fn() -> *const c_char;

struct Lib {
    _lib: libloading::Library,
    desc: *const ArtifactDesc,
    create: CreateFn,
    create_with: CreateWithFn,
    session: SessionFn,
    session_destroy: DestroyFn,
    model_destroy: DestroyFn,
    last_error: ErrorFn,
}

fn open(path: &Path) -> Lib {
    // SAFETY: a torchlift artifact, written just now by this build; its C
    // API has the types of `torchlift.h`, restated above.
    unsafe {
        let lib = libloading::Library::new(path).expect("dlopen");
        let desc = *lib
            .get::<*const ArtifactDesc>(b"torchlift_artifact\0")
            .expect("descriptor");
        Lib {
            desc,
            create: *lib.get(b"tl_model_create\0").expect("symbol"),
            create_with: *lib.get(b"tl_model_create_with_weights\0").expect("symbol"),
            session: *lib.get(b"tl_session_create\0").expect("symbol"),
            session_destroy: *lib.get(b"tl_session_destroy\0").expect("symbol"),
            model_destroy: *lib.get(b"tl_model_destroy\0").expect("symbol"),
            last_error: *lib.get(b"tl_last_error\0").expect("symbol"),
            _lib: lib,
        }
    }
}

impl Lib {
    /// Creates a model (from `weights`, or embedded) and a session, then
    /// destroys both.
    fn load(&self, weights: Option<&CString>) {
        let (mut m, mut s): (Raw, Raw) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: the C API of a loaded artifact; valid out-pointers; the
        // handles are destroyed once, the session first.
        unsafe {
            let status = match weights {
                Some(w) => (self.create_with)(self.desc, w.as_ptr(), 2, &mut m),
                None => (self.create)(self.desc, 2, &mut m),
            };
            let error = || std::ffi::CStr::from_ptr((self.last_error)()).to_string_lossy();
            assert_eq!(status, 0, "tl_model_create: {}", error());
            assert_eq!(
                (self.session)(m, &mut s),
                0,
                "tl_session_create: {}",
                error()
            );
            (self.session_destroy)(s);
            (self.model_destroy)(m);
        }
    }
}

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model_path = std::env::var_os("TORCHLIFT_LOAD_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("examples/mlp/model.pt2"));
    let name = model_path
        .parent()
        .and_then(|p| p.file_name())
        .map_or("model".into(), |n| n.to_string_lossy().into_owned());
    let model = Model::load(&model_path).expect("load the model");
    let dir = std::env::temp_dir().join(format!("torchlift-load-bench-{}", std::process::id()));
    for (tag, placement) in [
        ("external", WeightsPlacement::External),
        ("embedded", WeightsPlacement::Embedded),
    ] {
        let lib_path = dir.join(tag).join("libmodel.so");
        let opts = AotOptions {
            weights: placement,
            ..AotOptions::default()
        };
        write_artifact(&model, &opts, &lib_path).expect("compile the artifact");
        let weights = (placement == WeightsPlacement::External).then(|| {
            CString::new(
                dir.join(tag)
                    .join("model.weights")
                    .to_string_lossy()
                    .into_owned(),
            )
            .expect("path")
        });
        let t = Instant::now();
        let lib = open(&lib_path);
        lib.load(weights.as_ref());
        println!(
            "load/{name}/{tag}: first dlopen + model + session {:.2} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
        c.bench_function(&format!("load/{name}/{tag}"), |b| {
            b.iter(|| lib.load(weights.as_ref()))
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
