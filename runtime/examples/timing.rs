//! Quick GEMM timings: `cargo run -p torchlift-runtime --release --example timing`.
//! Prints GFLOP/s of `gemm` and of `matrixmultiply::sgemm` on a few shapes,
//! on one thread and on two.

use std::time::Instant;
use torchlift_runtime::{gemm, Act, GemmDims, Strides};

fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() / reps as f64
}

fn main() {
    let shapes = [
        (1, 256, 256, 256),
        (1, 1, 512, 512),
        (1, 512, 512, 512),
        (1, 64, 3136, 576),
        (8, 128, 64, 128),
    ];
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for &(batch, m, n, k) in &shapes {
            let d = GemmDims { batch, m, n, k };
            let a: Vec<f32> = (0..batch * m * k).map(|i| (i % 13) as f32 * 0.1).collect();
            let b: Vec<f32> = (0..batch * k * n).map(|i| (i % 7) as f32 * 0.1).collect();
            let mut c = vec![0.0f32; batch * m * n];
            let flops = 2.0 * (batch * m * n * k) as f64;
            let reps = (2e9 / flops).clamp(3.0, 2000.0) as usize;
            let (sa, sb) = (Strides::row_major(m, k), Strides::row_major(k, n));
            let ours = pool.install(|| {
                time(reps, || {
                    assert!(gemm(d, &a, sa, &b, sb, None, &mut c, m * n, n, Act::None));
                })
            });
            let mm = time(reps, || {
                for t in 0..batch {
                    // SAFETY: dense row-major operands of the given sizes.
                    unsafe {
                        matrixmultiply::sgemm(
                            m,
                            k,
                            n,
                            1.0,
                            a[t * m * k..].as_ptr(),
                            k as isize,
                            1,
                            b[t * k * n..].as_ptr(),
                            n as isize,
                            1,
                            0.0,
                            c[t * m * n..].as_mut_ptr(),
                            n as isize,
                            1,
                        )
                    }
                }
            });
            println!(
                "threads {threads} {batch}x{m}x{n}x{k}: gemm {:.1} GFLOP/s, matrixmultiply (1 thread) {:.1} GFLOP/s",
                flops / ours / 1e9,
                flops / mm / 1e9
            );
        }
    }
}
