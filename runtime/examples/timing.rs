//! Quick kernel timings: `cargo run -p torchlift-runtime --release --example timing`.
//!
//! Prints, on one thread and on two, the best time of several runs and the
//! GFLOP/s of `gemm` on a few shapes (linear layers at batch 1 among them)
//! and of `conv2d_act` on the convolutions of resnet18 and mobilenet_v2 at
//! batch 1. An argument filters the shapes by substring (`timing conv`).

use std::time::Instant;
use torchlift_runtime::nn::{conv2d_act, Conv2d};
use torchlift_runtime::{gemm, Act, GemmDims, Strides};

/// The best of several timed runs of `f`, in seconds (after a warm-up).
fn best(flops: f64, mut f: impl FnMut()) -> f64 {
    f();
    let reps = (1e9 / flops).clamp(5.0, 1000.0) as usize;
    let mut best = f64::INFINITY;
    // Several rounds; each round's mean over `reps` calls, keep the minimum.
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..reps.div_ceil(5) {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / reps.div_ceil(5) as f64);
    }
    best
}

fn conv(
    c: usize,
    hw: usize,
    oc: usize,
    k: usize,
    stride: usize,
    pad: usize,
    groups: usize,
) -> Conv2d {
    let o = (hw + 2 * pad - k) / stride + 1;
    Conv2d {
        n: 1,
        c,
        h: hw,
        w: hw,
        oc,
        kh: k,
        kw: k,
        oh: o,
        ow: o,
        stride: [stride, stride],
        pad: [pad, pad],
        dil: [1, 1],
        groups,
    }
}

fn main() {
    let filter = std::env::args().nth(1).unwrap_or_default();
    // (batch, m, n, k, b transposed)
    let gemms = [
        (1, 1, 768, 768, false),
        (1, 1, 768, 768, true),
        (1, 1, 3072, 768, false),
        (1, 1, 3072, 768, true),
        (1, 4, 768, 768, true),
        (1, 8, 768, 768, false),
        (1, 128, 256, 256, false),
        (1, 256, 256, 256, false),
        (1, 512, 512, 512, false),
        (1, 64, 3136, 576, false),
        (8, 128, 64, 128, false),
    ];
    let convs = [
        ("r18 stem 3x224->64 7x7s2", conv(3, 224, 64, 7, 2, 3, 1)),
        ("r18 64x56 3x3", conv(64, 56, 64, 3, 1, 1, 1)),
        ("r18 128x28 3x3", conv(128, 28, 128, 3, 1, 1, 1)),
        ("r18 256x14 3x3", conv(256, 14, 256, 3, 1, 1, 1)),
        ("r18 512x7 3x3", conv(512, 7, 512, 3, 1, 1, 1)),
        ("r18 64x56->128 3x3s2", conv(64, 56, 128, 3, 2, 1, 1)),
        ("r18 256x14->512 3x3s2", conv(256, 14, 512, 3, 2, 1, 1)),
        ("r18 down 64x56->128 1x1s2", conv(64, 56, 128, 1, 2, 0, 1)),
        ("r18 down 128x28->256 1x1s2", conv(128, 28, 256, 1, 2, 0, 1)),
        ("r18 down 256x14->512 1x1s2", conv(256, 14, 512, 1, 2, 0, 1)),
        ("mbv2 dw 32x112 3x3", conv(32, 112, 32, 3, 1, 1, 32)),
        ("mbv2 dw 144x56 3x3s2", conv(144, 56, 144, 3, 2, 1, 144)),
        ("mbv2 dw 576x14 3x3", conv(576, 14, 576, 3, 1, 1, 576)),
        ("mbv2 pw 16x112->96 1x1", conv(16, 112, 96, 1, 1, 0, 1)),
        ("mbv2 pw 144x56->24 1x1", conv(144, 56, 24, 1, 1, 0, 1)),
        ("mbv2 pw 192x28->32 1x1", conv(192, 28, 32, 1, 1, 0, 1)),
        ("mbv2 pw 960x7->160 1x1", conv(960, 7, 160, 1, 1, 0, 1)),
        ("mbv2 pw 320x7->1280 1x1", conv(320, 7, 1280, 1, 1, 0, 1)),
    ];
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for &(batch, m, n, k, bt) in &gemms {
            let name = format!("gemm {batch}x{m}x{n}x{k}{}", if bt { " bT" } else { "" });
            if !name.contains(&filter) {
                continue;
            }
            let d = GemmDims { batch, m, n, k };
            let a: Vec<f32> = (0..batch * m * k).map(|i| (i % 13) as f32 * 0.1).collect();
            let b: Vec<f32> = (0..batch * k * n).map(|i| (i % 7) as f32 * 0.1).collect();
            let mut c = vec![0.0f32; batch * m * n];
            let flops = 2.0 * (batch * m * n * k) as f64;
            let sa = Strides::row_major(m, k);
            let sb = if bt {
                Strides {
                    bs: k * n,
                    rs: 1,
                    cs: k,
                }
            } else {
                Strides::row_major(k, n)
            };
            let t = pool.install(|| {
                best(flops, || {
                    assert!(gemm(d, &a, sa, &b, sb, None, &mut c, m * n, n, Act::None));
                })
            });
            println!(
                "threads {threads} {name:<34} {:9.3} ms {:7.1} GFLOP/s",
                t * 1e3,
                flops / t / 1e9
            );
        }
        for (name, p) in &convs {
            let name = format!("conv {name}");
            if !name.contains(&filter) {
                continue;
            }
            let [lx, lw, lb, ly] = p.lens().unwrap();
            let x: Vec<f32> = (0..lx).map(|i| (i % 13) as f32 * 0.1).collect();
            let w: Vec<f32> = (0..lw).map(|i| (i % 7) as f32 * 0.01).collect();
            let bias = vec![0.5f32; lb];
            let mut y = vec![0.0f32; ly];
            let flops = 2.0 * (ly * lw / p.oc) as f64;
            let t = pool.install(|| {
                best(flops, || {
                    assert!(conv2d_act(p, &x, &w, Some(&bias), &mut y, Act::Relu));
                })
            });
            println!(
                "threads {threads} {name:<34} {:9.3} ms {:7.1} GFLOP/s",
                t * 1e3,
                flops / t / 1e9
            );
        }
    }
}
