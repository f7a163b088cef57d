//! Ahead-of-time artifacts: `torchlift compile` writes an object, a static
//! or a shared library with its header and manifest; the shared library is
//! loaded and called through its C API; a C program links both library
//! kinds; corrupt artifacts are refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::ArrayD;
use ndarray_npy::read_npy;
use torchlift::codegen::aot::SharedArtifact;
use torchlift::codegen::jit::JitModel;
use torchlift::interp::Tensor;
use torchlift::model::Model;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn case(name: &str) -> PathBuf {
    root().join("tests/fixtures/cases").join(name)
}

/// A fresh folder under the target directory.
fn scratch(tag: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("aot-{tag}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn compile(model: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_torchlift"))
        .arg("compile")
        .arg(model)
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn compile_ok(model: &Path, out: &Path, extra: &[&str]) {
    let o = compile(model, out, extra);
    assert!(
        o.status.success(),
        "compile failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn input(name: &str) -> Tensor {
    Tensor::from_array::<f32>(read_npy(case(name).join("run0/input_0.npy")).unwrap())
}

/// `got` (f32) matches the first output PyTorch gave for case `name`.
fn matches_case(name: &str, got: &[f32]) {
    let want: ArrayD<f32> = read_npy(case(name).join("run0/output_0.npy")).unwrap();
    close(got, want.as_slice().unwrap());
}

/// The values of the first line `examples/c/run_model.c` prints.
fn printed_output(stdout: &[u8]) -> Vec<f32> {
    let out = String::from_utf8_lossy(stdout);
    out.lines()
        .next()
        .unwrap()
        .split(':')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
}

fn close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(want) {
        assert!((a - b).abs() <= 1e-5 + 1e-4 * b.abs(), "{a} vs {b}");
    }
}

#[test]
fn shared_library_matches_the_jit_and_pytorch() {
    let dir = scratch("shared");
    let lib = dir.join("libmlp.so");
    compile_ok(&case("tiny_mlp").join("model.pt2"), &lib, &[]);
    assert!(dir.join("torchlift.h").is_file());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("mlp.json")).unwrap()).unwrap();
    assert_eq!(manifest["symbol"], "torchlift_artifact");
    assert_eq!(manifest["inputs"][0]["dtype"], "f32");
    assert!(manifest["torch_version"]
        .as_str()
        .unwrap()
        .starts_with("2."));

    let mut a = SharedArtifact::open(&lib, 1).unwrap();
    let x = input("tiny_mlp");
    let got = a.run(std::slice::from_ref(&x)).unwrap();
    let m = Model::load(&case("tiny_mlp").join("model.pt2")).unwrap();
    let want = JitModel::compile(&m)
        .unwrap()
        .run(&mut [x.clone_data()])
        .unwrap();
    assert_eq!(
        got[0].to_vec::<f32>().unwrap(),
        want[0].to_vec::<f32>().unwrap(),
        "the artifact and the JIT run the same code"
    );
    let torch: ArrayD<f32> = read_npy(case("tiny_mlp").join("run0/output_0.npy")).unwrap();
    close(&got[0].to_vec::<f32>().unwrap(), torch.as_slice().unwrap());
    // A wrong input is an error naming it, and the artifact stays usable.
    let e = a
        .run(&[Tensor::zeros(torchlift::DType::F32, &[3])])
        .unwrap_err();
    assert!(e.to_string().contains("input"), "{e}");
    a.run(&[x]).unwrap();

    // Only the C library, libm, libgcc_s and the loader.
    if let Ok(o) = Command::new("ldd").arg(&lib).output() {
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        for line in text.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            let ok = [
                "linux-vdso",
                "libc.so",
                "libm.so",
                "libpthread",
                "libgcc_s",
                "ld-linux",
            ]
            .iter()
            .any(|k| name.contains(k));
            assert!(ok, "unexpected dependency {name}:\n{text}");
        }
    } else {
        eprintln!("skipping the dependency check: ldd is not available");
    }
}

#[test]
fn stateful_artifact_keeps_buffers_per_session() {
    let dir = scratch("stateful");
    let lib = dir.join("libbuf.so");
    compile_ok(&case("inplace_buffer").join("model.pt2"), &lib, &[]);
    let m = Model::load(&case("inplace_buffer").join("model.pt2")).unwrap();
    let mut jit = JitModel::compile(&m).unwrap();
    let mut a = SharedArtifact::open(&lib, 1).unwrap();
    let x = input("inplace_buffer");
    for _ in 0..3 {
        let got = a.run(std::slice::from_ref(&x)).unwrap();
        let want = jit.run(&mut [x.clone_data()]).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.dtype(), w.dtype());
            assert_eq!(g.to_contiguous_bytes(), w.to_contiguous_bytes());
        }
    }
}

/// Runs `cc`, or returns false (with the reason printed) when there is none.
fn cc(args: &[&std::ffi::OsStr]) -> bool {
    match Command::new("cc").args(args).output() {
        Ok(o) => {
            assert!(
                o.status.success(),
                "cc failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            true
        }
        Err(e) => {
            eprintln!("skipping the C build: no C compiler ({e})");
            false
        }
    }
}

#[test]
fn c_program_links_the_static_and_the_shared_library() {
    let dir = scratch("c");
    let model = root().join("examples/mlp/model.pt2");
    let x: ArrayD<f32> = read_npy(root().join("examples/mlp/run0/input_0.npy")).unwrap();
    let want: ArrayD<f32> = read_npy(root().join("examples/mlp/run0/output_0.npy")).unwrap();
    let raw: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join("x.f32"), raw).unwrap();
    let src = root().join("examples/c/run_model.c");
    compile_ok(&model, &dir.join("libmlp.a"), &["--emit", "staticlib"]);
    compile_ok(&model, &dir.join("libmlp.so"), &["--emit", "sharedlib"]);
    let ext = dir.join("ext");
    compile_ok(&model, &ext.join("libmlp.so"), &["--weights", "external"]);
    let inc = dir.as_os_str();
    let stat = dir.join("run_static");
    let shared = dir.join("run_shared");
    let rpath = format!("-Wl,-rpath,{}", dir.display());
    let built = cc(&[
        "-O2".as_ref(),
        "-I".as_ref(),
        inc,
        src.as_os_str(),
        dir.join("libmlp.a").as_os_str(),
        "-lm".as_ref(),
        "-lpthread".as_ref(),
        "-ldl".as_ref(),
        "-o".as_ref(),
        stat.as_os_str(),
    ]) && cc(&[
        "-O2".as_ref(),
        "-I".as_ref(),
        inc,
        src.as_os_str(),
        "-L".as_ref(),
        inc,
        "-lmlp".as_ref(),
        rpath.as_ref(),
        "-o".as_ref(),
        shared.as_os_str(),
    ]);
    let external = ext.join("run_external");
    let ext_rpath = format!("-Wl,-rpath,{}", ext.display());
    let built = built
        && cc(&[
            "-O2".as_ref(),
            "-I".as_ref(),
            ext.as_os_str(),
            src.as_os_str(),
            "-L".as_ref(),
            ext.as_os_str(),
            "-lmlp".as_ref(),
            ext_rpath.as_ref(),
            "-o".as_ref(),
            external.as_os_str(),
        ]);
    if !built {
        return;
    }
    for exe in [&stat, &shared, &external] {
        let mut cmd = Command::new(exe);
        if exe == &external {
            cmd.env("TORCHLIFT_WEIGHTS", ext.join("mlp.weights"));
        }
        cmd.arg(dir.join("x.f32"));
        for d in x.shape() {
            cmd.arg(d.to_string());
        }
        let o = cmd.output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{}: {}",
            exe.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        close(&printed_output(&o.stdout), want.as_slice().unwrap());
        assert!(out.contains("refused: input"), "{out}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("input x: dtype 0 ["), "{err}");
    }
}

#[test]
fn corrupt_artifacts_and_missing_cpu_features_are_refused() {
    let dir = scratch("corrupt");
    let lib = dir.join("libmlp.so");
    compile_ok(&case("tiny_mlp").join("model.pt2"), &lib, &[]);
    let bytes = std::fs::read(&lib).unwrap();
    // Truncated: the loader refuses it.
    let cut = dir.join("libcut.so");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    assert!(SharedArtifact::open(&cut, 1).is_err());
    // The descriptor's magic overwritten. It starts with the magic and the
    // ABI version (2), which nothing else in the file does.
    let magic = b"TLIFTAOT\x02\0\0\0";
    let hits: Vec<usize> = bytes
        .windows(magic.len())
        .enumerate()
        .filter(|(_, w)| w == magic)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "one descriptor in the file");
    let at = hits[0];
    let mut bad = bytes.clone();
    bad[at] ^= 0xff;
    let badp = dir.join("libbad.so");
    std::fs::write(&badp, &bad).unwrap();
    let e = SharedArtifact::open(&badp, 1)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("bad magic"), "{e}");
    // The features word (after the magic and the ABI version) asks for
    // more than any CPU has.
    let mut feat = bytes.clone();
    feat[at + 12..at + 16].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let featp = dir.join("libfeat.so");
    std::fs::write(&featp, &feat).unwrap();
    let e = SharedArtifact::open(&featp, 1)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("lacks"), "{e}");
}

#[test]
fn an_x86_64_v3_artifact_loads_and_runs_here() {
    let v3 = std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("bmi2");
    let dir = scratch("v3");
    let lib = dir.join("libv3.so");
    compile_ok(
        &case("tiny_cnn").join("model.pt2"),
        &lib,
        &["--target-cpu", "x86-64-v3"],
    );
    let r = SharedArtifact::open(&lib, 1);
    if !v3 {
        let e = r.err().expect("refused on a CPU without AVX2").to_string();
        assert!(e.contains("lacks"), "{e}");
        eprintln!("this CPU lacks x86-64-v3: checked that the artifact is refused");
        return;
    }
    let mut a = r.unwrap();
    let x = input("tiny_cnn");
    let got = a.run(&[x]).unwrap();
    matches_case("tiny_cnn", &got[0].to_vec::<f32>().unwrap());
}

#[test]
fn external_weights_are_mapped_and_damage_to_them_or_the_manifest_is_refused() {
    let dir = scratch("external");
    let lib = dir.join("libmlp.so");
    compile_ok(
        &case("tiny_mlp").join("model.pt2"),
        &lib,
        &["--weights", "external"],
    );
    let weights = dir.join("mlp.weights");
    let manifest = dir.join("mlp.json");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    assert_eq!(m["weights"]["placement"], "external");
    assert_eq!(m["weights"]["file"], "mlp.weights");
    let x = input("tiny_mlp");
    let want: ArrayD<f32> = read_npy(case("tiny_mlp").join("run0/output_0.npy")).unwrap();
    {
        let mut a = SharedArtifact::open(&lib, 1).unwrap();
        a.verify_weights().unwrap();
        let got = a.run(std::slice::from_ref(&x)).unwrap();
        close(&got[0].to_vec::<f32>().unwrap(), want.as_slice().unwrap());
    }
    let good = std::fs::read(&weights).unwrap();
    let refused = |what: &str| -> String {
        match SharedArtifact::open(&lib, 1) {
            Err(e) => e.to_string(),
            Ok(a) => match a.verify_weights() {
                Err(e) => e.to_string(),
                Ok(()) => panic!("{what}: accepted"),
            },
        }
    };
    // Truncated at several points, a flipped byte in the header, in the
    // index and in the data: each refused, naming the weights.
    for cut in [0, 16, 100, good.len() / 2, good.len() - 1] {
        std::fs::write(&weights, &good[..cut]).unwrap();
        let e = refused(&format!("cut at {cut}"));
        assert!(e.contains("weights"), "cut at {cut}: {e}");
    }
    for at in [3, 20, 80, good.len() - 5] {
        let mut b = good.clone();
        b[at] ^= 0x10;
        std::fs::write(&weights, &b).unwrap();
        let e = refused(&format!("flip at {at}"));
        assert!(e.contains("weights"), "flip at {at}: {e}");
    }
    std::fs::remove_file(&weights).unwrap();
    let e = refused("missing");
    assert!(e.contains("mlp.weights"), "{e}");
    // The weights of another model are refused by their fingerprint.
    let other = scratch("external-other");
    compile_ok(
        &case("tiny_cnn").join("model.pt2"),
        &other.join("libcnn.so"),
        &["--weights", "external"],
    );
    std::fs::copy(other.join("cnn.weights"), &weights).unwrap();
    let e = refused("another model's weights");
    assert!(e.contains("fingerprint"), "{e}");
    std::fs::write(&weights, &good).unwrap();
    // A truncated manifest, or one of another artifact.
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, &text[..text.len() / 2]).unwrap();
    let e = refused("truncated manifest");
    assert!(e.contains("manifest"), "{e}");
    std::fs::copy(other.join("cnn.json"), &manifest).unwrap();
    let e = refused("another manifest");
    assert!(e.contains("different artifact"), "{e}");
    std::fs::write(&manifest, &text).unwrap();
    SharedArtifact::open(&lib, 1).unwrap();
}

/// 8 threads × 1000 calls on one loaded shared library, each thread with
/// its own session, give what serial calls give: stateless and stateful.
#[test]
fn eight_threads_of_a_thousand_artifact_calls_match_serial_calls() {
    const THREADS: usize = 8;
    const CALLS: usize = 1000;
    for (name, stateful) in [("tiny_mlp", false), ("inplace_buffer", true)] {
        let dir = scratch(&format!("threads-{name}"));
        let lib = dir.join("libm.so");
        compile_ok(&case(name).join("model.pt2"), &lib, &[]);
        let a = SharedArtifact::open(&lib, 2).unwrap();
        let x = input(name);
        let varied = |k: usize| {
            let scale = 1.0 + (k % 7) as f32 * 0.25;
            Tensor::from_array(x.to_array::<f32>().unwrap().mapv(|v| v * scale))
        };
        let calls = |s: &mut torchlift::codegen::aot::SharedSession<'_>| -> Vec<Vec<Vec<u8>>> {
            (0..CALLS)
                .map(|k| {
                    s.run(&[varied(k)])
                        .unwrap()
                        .iter()
                        .map(|t| t.to_contiguous_bytes())
                        .collect()
                })
                .collect()
        };
        let serial = calls(&mut a.session().unwrap());
        if stateful {
            let again: Vec<Vec<u8>> = a
                .session()
                .unwrap()
                .run(&[varied(7)])
                .unwrap()
                .iter()
                .map(|t| t.to_contiguous_bytes())
                .collect();
            assert_ne!(serial[7], again, "{name}: state did not persist");
            assert_eq!(
                serial[0], again,
                "{name}: a new session did not start fresh"
            );
        }
        let results: Vec<Vec<Vec<Vec<u8>>>> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (a, calls) = (&a, &calls);
                    sc.spawn(move || calls(&mut a.session().unwrap()))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (t, r) in results.iter().enumerate() {
            for (k, (got, want)) in r.iter().zip(&serial).enumerate() {
                assert_eq!(got, want, "{name}: thread {t}, call {k}");
            }
        }
    }
}

/// A custom op's C kernel, linked by symbol: the `custom_op_nokernel`
/// fixtures (training and core IR), compiled with `--custom-op`, linked
/// with `examples/c/add_one.c` into a C program, match PyTorch; without
/// the declaration, compiling is refused naming the op and the symbol.
#[test]
fn custom_op_kernels_link_by_symbol() {
    const SCHEMA: &str = "mylib::add_one_(Tensor(a!) x) -> ()";
    let dir = scratch("custom");
    let o = compile(
        &case("custom_op_nokernel").join("model.pt2"),
        &dir.join("libno.a"),
        &["--emit", "staticlib"],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("mylib.add_one_.default") && err.contains("torchlift_op_mylib__add_one_"),
        "{err}"
    );
    for name in ["custom_op_nokernel", "custom_op_nokernel_core"] {
        let lib = dir.join(format!("lib{name}.a"));
        compile_ok(
            &case(name).join("model.pt2"),
            &lib,
            &["--emit", "staticlib", "--custom-op", SCHEMA],
        );
        let x = input(name);
        let raw: Vec<u8> = x
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let xin = dir.join(format!("{name}.f32"));
        std::fs::write(&xin, raw).unwrap();
        let exe = dir.join(format!("run_{name}"));
        let built = cc(&[
            "-O2".as_ref(),
            "-I".as_ref(),
            dir.as_os_str(),
            root().join("examples/c/run_model.c").as_os_str(),
            root().join("examples/c/add_one.c").as_os_str(),
            lib.as_os_str(),
            "-lm".as_ref(),
            "-lpthread".as_ref(),
            "-ldl".as_ref(),
            "-o".as_ref(),
            exe.as_os_str(),
        ]);
        if !built {
            return;
        }
        let mut cmd = Command::new(&exe);
        cmd.arg(&xin);
        for d in x.sizes() {
            cmd.arg(d.to_string());
        }
        let o = cmd.output().unwrap();
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        matches_case(name, &printed_output(&o.stdout));
    }
}

/// An x86-64-v2 artifact: SSE code, and its runtime kept to its portable
/// kernels; it matches PyTorch here too.
#[test]
fn an_x86_64_v2_artifact_runs_its_portable_kernels() {
    let dir = scratch("v2");
    let lib = dir.join("libv2.so");
    compile_ok(
        &case("tiny_cnn").join("model.pt2"),
        &lib,
        &["--target-cpu", "x86-64-v2"],
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("v2.json")).unwrap()).unwrap();
    assert_eq!(m["cpu_features"], "sse4.2+popcnt");
    let mut a = SharedArtifact::open(&lib, 1).unwrap();
    let got = a.run(&[input("tiny_cnn")]).unwrap();
    matches_case("tiny_cnn", &got[0].to_vec::<f32>().unwrap());
}
