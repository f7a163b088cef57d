//! Accuracy sweep for the inline math approximations in `codegen::math`.
//!
//! Each function is JIT-compiled twice (F32 and F32X4) into a loop kernel
//! `extern "C" fn(x: *const f32, y: *mut f32, n: i64)` and compared against a reference
//! computed in f64 with `libm` and rounded to f32. NaN must map to NaN, infinities must
//! be exact, and the error in ulps must not exceed `MathFn::max_ulp`.
//!
//! By default the sweep takes every 4099th f32 bit pattern, a dense grid on `[-20, 20]`
//! and a list of special values. `MATH_SWEEP_STRIDE=16` (in a release build) runs the
//! full-range sweep; `MATH_SWEEP_REPORT=1` prints the measured maxima, the worst inputs
//! and the machine-instruction count of each expansion.

use cranelift_codegen::ir::types::{F32, F32X4, I64};
use cranelift_codegen::ir::{AbiParam, BlockArg, InstBuilder, MemFlagsData};
use cranelift_codegen::{ir, Context};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};
use torchlift::codegen::math::{emit, MathFn, SIN_COS_MAX_ARG};

type Kernel = unsafe extern "C" fn(*const f32, *mut f32, i64);

/// A JIT module holding the scalar and vector kernels of one function.
struct Kernels {
    _module: JITModule,
    scalar: Kernel,
    vector: Kernel,
    /// Machine instructions of the expansion (kernel minus an identity kernel).
    insts: [usize; 2],
}

/// Builds the loop kernel; `f = None` builds an identity kernel (the loop overhead).
fn define_kernel(
    module: &mut JITModule,
    ctx: &mut Context,
    fctx: &mut FunctionBuilderContext,
    name: &str,
    f: Option<MathFn>,
    vector: bool,
) -> (cranelift_module::FuncId, usize) {
    let ptr = module.target_config().pointer_type();
    ctx.func.signature.params.push(AbiParam::new(ptr));
    ctx.func.signature.params.push(AbiParam::new(ptr));
    ctx.func.signature.params.push(AbiParam::new(I64));
    let (ty, lanes) = if vector { (F32X4, 4) } else { (F32, 1) };
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, fctx);
        let entry = b.create_block();
        let header = b.create_block();
        let body = b.create_block();
        let exit = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.append_block_param(header, I64);
        b.switch_to_block(entry);
        let params = b.block_params(entry).to_vec();
        let (xp, yp, n) = (params[0], params[1], params[2]);
        let zero = b.ins().iconst(I64, 0);
        b.ins().jump(header, &[BlockArg::Value(zero)]);

        b.switch_to_block(header);
        let i = b.block_params(header)[0];
        let more = b.ins().icmp(ir::condcodes::IntCC::SignedLessThan, i, n);
        b.ins().brif(more, body, &[], exit, &[]);

        b.switch_to_block(body);
        let off = b.ins().ishl_imm_u(i, 2);
        let xa = b.ins().iadd(xp, off);
        let ya = b.ins().iadd(yp, off);
        let flags = MemFlagsData::new().with_notrap();
        let x = b.ins().load(ty, flags, xa, 0);
        let y = match f {
            Some(f) => emit(&mut b, f, x),
            None => x,
        };
        b.ins().store(flags, y, ya, 0);
        let next = b.ins().iadd_imm_s(i, lanes);
        b.ins().jump(header, &[BlockArg::Value(next)]);

        b.switch_to_block(exit);
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(module.target_config());
    }
    let id = module
        .declare_function(name, Linkage::Local, &ctx.func.signature)
        .expect("declare kernel");
    ctx.set_disasm(true);
    module.define_function(id, ctx).expect("compile kernel");
    let insts = ctx
        .compiled_code()
        .and_then(|c| c.vcode.as_ref())
        .map_or(0, |v| {
            v.lines()
                .filter(|l| {
                    let t = l.trim();
                    !t.is_empty() && !t.ends_with(':')
                })
                .count()
        });
    module.clear_context(ctx);
    (id, insts)
}

fn compile(f: MathFn) -> Kernels {
    let builder = JITBuilder::with_flags(&[("opt_level", "speed")], default_libcall_names())
        .expect("host ISA");
    let mut module = JITModule::new(builder);
    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    let mut ids = Vec::new();
    let mut insts = [0usize; 2];
    for (slot, vector) in [false, true].into_iter().enumerate() {
        let (_, base) = define_kernel(
            &mut module,
            &mut ctx,
            &mut fctx,
            &format!("id{slot}"),
            None,
            vector,
        );
        let (id, n) = define_kernel(
            &mut module,
            &mut ctx,
            &mut fctx,
            &format!("k{slot}"),
            Some(f),
            vector,
        );
        insts[slot] = n.saturating_sub(base);
        ids.push(id);
    }
    module.finalize_definitions().expect("finalize");
    let scalar = module.get_finalized_function(ids[0]);
    let vector = module.get_finalized_function(ids[1]);
    // SAFETY: both pointers are finalized functions of `module`, defined above with the
    // signature (ptr, ptr, i64) -> () in the host's default calling convention, which
    // matches `Kernel`. `module` is kept alive in `Kernels` as long as the pointers.
    let (scalar, vector) = unsafe {
        (
            std::mem::transmute::<*const u8, Kernel>(scalar),
            std::mem::transmute::<*const u8, Kernel>(vector),
        )
    };
    Kernels {
        _module: module,
        scalar,
        vector,
        insts,
    }
}

fn run(k: Kernel, xs: &[f32], ys: &mut [f32]) {
    assert_eq!(xs.len(), ys.len());
    assert_eq!(xs.len() % 4, 0);
    let n = i64::try_from(xs.len()).expect("length fits i64");
    // SAFETY: the kernel reads `n` f32 values from `xs` and writes `n` to `ys` (4 at a
    // time for the vector kernel, `n` is a multiple of 4), both valid for that length;
    // the accesses are unaligned-safe (no `aligned` flag).
    unsafe { k(xs.as_ptr(), ys.as_mut_ptr(), n) }
}

fn reference(f: MathFn, x: f32) -> f32 {
    let d = f64::from(x);
    let r = match f {
        MathFn::Exp => libm::exp(d),
        MathFn::Log => libm::log(d),
        MathFn::Tanh => libm::tanh(d),
        MathFn::Erf => libm::erf(d),
        MathFn::Sigmoid => 1.0 / (1.0 + libm::exp(-d)),
        MathFn::Expm1 => libm::expm1(d),
        MathFn::Log1p => libm::log1p(d),
        MathFn::Sin => libm::sin(d),
        MathFn::Cos => libm::cos(d),
    };
    r as f32
}

/// Ordered integer key: adjacent floats differ by 1, and -0 sits one below +0.
fn key(x: f32) -> i64 {
    let b = x.to_bits();
    let mag = i64::from(b & 0x7FFF_FFFF);
    if b >> 31 == 1 {
        -mag - 1
    } else {
        mag
    }
}

/// Distance in ulps; `u64::MAX` for a NaN mismatch or an inexact infinity.
fn ulp_dist(got: f32, want: f32) -> u64 {
    if want.is_nan() || got.is_nan() {
        return if want.is_nan() && got.is_nan() {
            0
        } else {
            u64::MAX
        };
    }
    if (want.is_infinite() || got.is_infinite()) && got != want {
        return u64::MAX;
    }
    key(got).abs_diff(key(want))
}

fn in_domain(f: MathFn, x: f32) -> bool {
    match f {
        MathFn::Sin | MathFn::Cos => x.is_nan() || x.abs() <= SIN_COS_MAX_ARG,
        _ => true,
    }
}

fn special_values() -> Vec<f32> {
    let mut v = vec![
        0.0,
        1.0,
        2.0,
        0.5,
        0.625,
        0.921_875,
        3.92,
        4.0,
        9.0,
        10.0,
        20.0,
        30.0,
        87.33,
        88.0,
        88.37,
        88.72,
        88.73,
        89.0,
        103.0,
        103.97,
        104.0,
        1.0e-3,
        1.0e-7,
        1.0e-20,
        1.0e4,
        SIN_COS_MAX_ARG,
        std::f32::consts::FRAC_PI_2,
        std::f32::consts::PI,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::from_bits(0x007F_FFFF),
        f32::MAX,
        f32::INFINITY,
        f32::NAN,
        f32::EPSILON,
        0.999_999_94,
        1.000_000_1,
    ];
    let neg: Vec<f32> = v.iter().map(|x| -x).collect();
    v.extend(neg);
    v
}

fn inputs(stride: u64) -> Vec<f32> {
    let mut xs: Vec<f32> = (0..=u64::from(u32::MAX))
        .step_by(usize::try_from(stride).expect("stride fits usize"))
        .map(|b| f32::from_bits(u32::try_from(b).expect("bit pattern")))
        .collect();
    let dense = 1 << 20;
    xs.extend((0..=dense).map(|i| -20.0 + 40.0 * (i as f32) / (dense as f32)));
    xs.extend(special_values());
    while xs.len() % 4 != 0 {
        xs.push(0.0);
    }
    xs
}

/// Sweeps one function; returns the max ulp error of the scalar and vector kernels.
fn sweep(f: MathFn) -> [u64; 2] {
    let stride: u64 = std::env::var("MATH_SWEEP_STRIDE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4099);
    let report = std::env::var_os("MATH_SWEEP_REPORT").is_some();
    let k = compile(f);
    let xs = inputs(stride);
    let mut worst = [(0u64, 0.0f32); 2];
    let mut ys = vec![0.0f32; 1 << 16];
    for chunk in xs.chunks(1 << 16) {
        let ys = &mut ys[..chunk.len()];
        let want: Vec<f32> = chunk.iter().map(|&x| reference(f, x)).collect();
        for (slot, kernel) in [k.scalar, k.vector].into_iter().enumerate() {
            run(kernel, chunk, ys);
            for ((&x, &got), &w) in chunk.iter().zip(ys.iter()).zip(&want) {
                if !in_domain(f, x) {
                    assert!(
                        got.is_nan(),
                        "{f:?}({x:e}) outside the documented range: {got}"
                    );
                    continue;
                }
                let d = ulp_dist(got, w);
                if d > worst[slot].0 {
                    worst[slot] = (d, x);
                }
                assert!(
                    d <= u64::from(f.max_ulp()),
                    "{f:?} {}: x = {x:e} ({:#010x}) got {got:e} want {w:e} ({d} ulp)",
                    ["scalar", "vector"][slot],
                    x.to_bits()
                );
            }
        }
    }
    if report {
        println!(
            "{f:?}: scalar {} ulp (x = {:e}), vector {} ulp (x = {:e}), insts {} / {}, {} inputs",
            worst[0].0,
            worst[0].1,
            worst[1].0,
            worst[1].1,
            k.insts[0],
            k.insts[1],
            xs.len()
        );
    }
    [worst[0].0, worst[1].0]
}

macro_rules! sweep_tests {
    ($($name:ident => $f:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let [s, v] = sweep($f);
                assert!(s <= u64::from($f.max_ulp()) && v <= u64::from($f.max_ulp()));
            }
        )*
    };
}

sweep_tests! {
    sweep_exp => MathFn::Exp,
    sweep_log => MathFn::Log,
    sweep_tanh => MathFn::Tanh,
    sweep_erf => MathFn::Erf,
    sweep_sigmoid => MathFn::Sigmoid,
    sweep_expm1 => MathFn::Expm1,
    sweep_log1p => MathFn::Log1p,
    sweep_sin => MathFn::Sin,
    sweep_cos => MathFn::Cos,
}

#[test]
fn all_lists_every_function() {
    assert_eq!(MathFn::ALL.len(), 9);
    for (i, a) in MathFn::ALL.iter().enumerate() {
        assert!(!MathFn::ALL[i + 1..].contains(a));
    }
}
