//! A steady-state call of a compiled model allocates nothing but the outputs
//! it returns: intermediates live in the arena, the placement is reused for
//! inputs of the same shapes, and the runtime kernels reuse their scratch.
//!
//! A counting global allocator sees every allocation of every thread. On
//! one thread the count is exact. With a thread pool, rayon's job queues
//! allocate a block now and then (one per few dozen jobs queued), whatever
//! the model: there the test bounds the average over many calls.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use torchlift::codegen::jit::{CompileOptions, JitModel};
use torchlift::interp::tensor::Tensor;
use torchlift::ir::parse::parse_program;
use torchlift::model::Model;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to the system allocator with the caller's
// arguments unchanged; counting has no effect on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is `GlobalAlloc::alloc`'s.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(p, l, n) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn data(sizes: &[usize], seed: u32) -> Tensor {
    let n: usize = sizes.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| ((i as f32 + 1.0) * 0.731 + seed as f32 * 1.37).sin())
        .collect();
    Tensor::from_vec_f32(v, sizes).unwrap()
}

/// An MLP of `layers` linear + GELU layers on a `[8, 64]` input, then a
/// log-softmax: GEMMs, fused pointwise kernels and a runtime softmax. With
/// no layers and no softmax, the model returns its input: no kernel runs.
fn mlp(layers: usize) -> Model {
    let mut text = String::from("input %x0: f32[8, 64] = user_input\n");
    let mut weights = BTreeMap::new();
    for i in 0..layers {
        text.push_str(&format!(
            "input %w{i}: f32[64, 64] = parameter \"w{i}\"\ninput %b{i}: f32[64] = parameter \"b{i}\"\n"
        ));
        weights.insert(format!("w{i}"), data(&[64, 64], i as u32 + 1));
        weights.insert(format!("b{i}"), data(&[64], i as u32 + 100));
    }
    for i in 0..layers {
        let j = i + 1;
        text.push_str(&format!(
            "%m{i}: f32[8, 64] = aten.addmm.default(self=%b{i}, mat1=%x{i}, mat2=%w{i})\n\
             %g{i}: f32[8, 64] = aten.gelu.default(self=%m{i})\n\
             %x{j}: f32[8, 64] = aten.add.Tensor(self=%g{i}, other=%x{i})\n"
        ));
    }
    if layers == 0 {
        text.push_str("output %x0 = user_output\n");
    } else {
        text.push_str(&format!(
            "%y: f32[8, 64] = aten._log_softmax.default(self=%x{layers}, dim=1, half_to_float=false)\noutput %y = user_output\n"
        ));
    }
    let program = parse_program(&text).expect("IR text parses");
    Model {
        path: PathBuf::from("mlp.tlir"),
        program,
        state: weights,
        sample_inputs: None,
    }
}

/// Allocations made by `calls` steady-state calls.
fn allocations(layers: usize, threads: usize, calls: usize) -> usize {
    let m = mlp(layers);
    let mut jit = JitModel::compile_with(&m, &CompileOptions { threads }).expect("compiles");
    let x = data(&[8, 64], 7);
    for _ in 0..5 {
        jit.run(&mut [x.clone()]).expect("runs");
    }
    let mut inputs: Vec<[Tensor; 1]> = (0..calls).map(|_| [x.clone()]).collect();
    let before = ALLOCS.load(Ordering::SeqCst);
    for i in inputs.iter_mut() {
        let out = jit.run(i).expect("runs");
        assert_eq!(out.len(), 1);
    }
    let after = ALLOCS.load(Ordering::SeqCst);
    after - before
}

// One test function: the allocator counts every thread of the process, so
// nothing else may run while it measures.
#[test]
fn steady_state_calls_allocate_only_their_outputs() {
    // Returning one output with no kernel at all: the cost of the output
    // tensor and the vectors that carry results back.
    let output_only = allocations(0, 1, 1);
    for layers in [2, 12] {
        let n = allocations(layers, 1, 1);
        assert_eq!(
            n, output_only,
            "{layers} layers on 1 thread: {n} allocations, returning the output alone takes {output_only}"
        );
    }
    // On a pool of 2 threads, over many calls.
    const CALLS: usize = 50;
    let output_only = allocations(0, 2, CALLS);
    let large = allocations(12, 2, CALLS);
    // 12 layers queue about 40 jobs a call; an allocation per kernel would
    // add 36 a call.
    let extra = large.saturating_sub(output_only) as f64 / CALLS as f64;
    eprintln!("2 threads: {extra:.2} allocations a call beyond the output's");
    assert!(
        extra < 1.0,
        "{extra:.2} allocations a call beyond the output's ({large} against {output_only} in {CALLS} calls)"
    );
}
