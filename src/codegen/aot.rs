//! The ahead-of-time driver: the JIT's schedule and lowering, written into
//! an object file by `cranelift-object` instead of into memory. One
//! lowering, two drivers.
//!
//! An object holds the kernels and the entry function, and one exported
//! data symbol, [`ARTIFACT_SYMBOL`], an [`ArtifactDesc`] that points at the
//! entry, the program after the passes (IR text) and the weights. Loading
//! it ([`CompiledModel::from_artifact`]) parses the program, schedules it
//! again (scheduling is deterministic) and refuses the artifact unless the
//! plan's fingerprint equals the one recorded when compiling; then it runs
//! with exactly the JIT's driver.
//!
//! The weights are one blob (see `weights`): read-only data of the object
//! (embedded, the default), or a side file that loading maps (external).
//! The code reads them in place; loading reads only the blob's index.

use cranelift_codegen::settings::{self, Configurable};
use cranelift_module::{default_libcall_names, DataDescription, Linkage, Module};
use cranelift_object::{ObjectBuilder, ObjectModule};

use crate::error::{Error, Result};
use crate::model::Model;
use crate::tensor::Tensor;

use super::jit::{state_names, CompiledModel, EntryFn};
use super::kernel::plan_text;
use super::lower::{lower_plan, LowerOptions, ENTRY_NAME};
use super::schedule::schedule;
use super::weights::{fnv1a, write_blob, Weights};

/// The exported data symbol of every artifact.
pub const ARTIFACT_SYMBOL: &str = "torchlift_artifact";
/// `ArtifactDesc::magic`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"TLIFTAOT");
/// `ArtifactDesc::abi_version`; bumped when the layout or the driver's
/// expectations change.
pub const ABI_VERSION: u32 = 2;

/// What an artifact's [`ARTIFACT_SYMBOL`] holds (`tl_artifact` in the C
/// header).
#[repr(C)]
pub struct ArtifactDesc {
    pub magic: u64,
    pub abi_version: u32,
    /// The [`TargetCpu`] features the code needs, as a bit set.
    pub features: u32,
    pub entry: Option<EntryFn>,
    pub program: *const u8,
    pub program_len: u64,
    /// The weight blob, or null when the weights are in a side file.
    pub weights: *const u8,
    pub weights_len: u64,
    /// The side file's name as written beside the artifact (UTF-8, no
    /// NUL), or null when the weights are embedded.
    pub weights_file: *const u8,
    pub weights_file_len: u64,
    /// FNV-1a of the plan's text form.
    pub fingerprint: u64,
    /// The custom ops the program calls, with the kernels linked for them.
    pub custom_ops: *const CustomOpEntry,
    pub n_custom_ops: u64,
}

/// A custom op of an artifact (`tl_custom_op` in the C header): its torch
/// schema, and the C kernel the linker resolved by its symbol
/// ([`crate::custom::kernel_symbol`]).
#[repr(C)]
pub struct CustomOpEntry {
    pub schema: *const u8,
    pub schema_len: u64,
    pub kernel: Option<crate::custom::CKernel>,
}

/// Where an artifact keeps its weights.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WeightsPlacement {
    /// Read-only data of the artifact.
    Embedded,
    /// A side file (`<stem>.weights`) beside the artifact, mapped at load.
    External,
}

/// Where to find the weights of an artifact at load.
#[derive(Copy, Clone, Debug)]
pub enum WeightSource<'a> {
    /// The artifact's own (embedded) weights.
    Embedded,
    /// A side file written by `--weights external`, mapped read-only.
    File(&'a std::path::Path),
    /// The bytes of such a file, in memory the caller keeps alive and
    /// unchanged for as long as the model lives.
    Memory(&'a [u8]),
}

/// How to compile an artifact.
#[derive(Copy, Clone, Debug)]
pub struct AotOptions {
    pub emit: Emit,
    pub target: TargetCpu,
    pub weights: WeightsPlacement,
}

impl Default for AotOptions {
    fn default() -> AotOptions {
        AotOptions {
            emit: Emit::Sharedlib,
            target: TargetCpu::Native,
            weights: WeightsPlacement::Embedded,
        }
    }
}

/// The CPU an artifact is compiled for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TargetCpu {
    /// Every feature of the compiling machine.
    Native,
    /// SSE4.2 and POPCNT.
    X86_64V2,
    /// `x86-64-v2` plus AVX2, FMA, BMI1/2, LZCNT.
    X86_64V3,
}

const FEAT_V2: u32 = 1;
const FEAT_AVX2_FMA: u32 = 2;
/// AVX-512F: only `native` on a machine that has it; it lets the runtime
/// use its AVX-512 kernels.
const FEAT_AVX512: u32 = 4;
const FEAT_ALL: u32 = FEAT_V2 | FEAT_AVX2_FMA | FEAT_AVX512;

impl TargetCpu {
    pub fn parse(s: &str) -> Option<TargetCpu> {
        Some(match s {
            "native" => TargetCpu::Native,
            "x86-64-v2" => TargetCpu::X86_64V2,
            "x86-64-v3" => TargetCpu::X86_64V3,
            _ => return None,
        })
    }

    fn features(self) -> u32 {
        match self {
            TargetCpu::X86_64V2 => FEAT_V2,
            TargetCpu::X86_64V3 => FEAT_V2 | FEAT_AVX2_FMA,
            TargetCpu::Native => {
                let mut f = 0;
                if host_has(FEAT_V2) {
                    f |= FEAT_V2;
                }
                if host_has(FEAT_AVX2_FMA) {
                    f |= FEAT_AVX2_FMA;
                }
                if host_has(FEAT_AVX2_FMA | FEAT_AVX512) {
                    f |= FEAT_AVX512;
                }
                f
            }
        }
    }
}

fn host_has(features: u32) -> bool {
    // A feature this build does not know is one the CPU cannot be shown
    // to have.
    if features & !FEAT_ALL != 0 {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let v2 = std::arch::is_x86_feature_detected!("sse4.2")
            && std::arch::is_x86_feature_detected!("popcnt");
        let v3 = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("bmi2");
        let avx512 = std::arch::is_x86_feature_detected!("avx512f");
        (features & FEAT_V2 == 0 || v2)
            && (features & FEAT_AVX2_FMA == 0 || v3)
            && (features & FEAT_AVX512 == 0 || avx512)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        features == 0
    }
}

fn feature_names(f: u32) -> String {
    let mut v = Vec::new();
    if f & FEAT_V2 != 0 {
        v.push("sse4.2+popcnt");
    }
    if f & FEAT_AVX2_FMA != 0 {
        v.push("avx2+fma+bmi2");
    }
    if f & FEAT_AVX512 != 0 {
        v.push("avx512f");
    }
    if f & !FEAT_ALL != 0 {
        v.push("features this torchlift does not know");
    }
    if v.is_empty() {
        "baseline x86-64".into()
    } else {
        v.join(", ")
    }
}

/// An object file and what to write beside it.
pub struct Artifact {
    pub object: Vec<u8>,
    /// The plan's text form, as `inspect --kernels` prints it.
    pub plan: String,
    pub fingerprint: u64,
    pub features: u32,
    /// The weight blob, when it goes to a side file.
    pub weights_file: Option<Vec<u8>>,
}

/// Compiles `model` (after the passes) into an object file for `target`.
/// With external weights, `weights_file` names the side file the loader
/// looks for beside the artifact.
pub fn compile_object(
    model: &Model,
    target: TargetCpu,
    weights_file: Option<&str>,
) -> Result<Artifact> {
    // The code is compiled from the program as the artifact stores it (IR
    // text with source lines), which loading parses and schedules again.
    let program = crate::ir::print::program_to_string_with(
        &model.program,
        crate::ir::print::PrintOptions { source_lines: true },
    );
    let p = &crate::ir::parse::parse_program(&program)?;
    let plan = schedule(p)?;
    let text = plan_text(&plan);
    let isa = isa_for(target)?;
    let builder = ObjectBuilder::new(isa, "torchlift_model", default_libcall_names())
        .map_err(|e| Error::other(format!("aot: {e}")))?;
    let mut module = ObjectModule::new(builder);
    // The code calls `parallel_for`, which runs inline on one thread.
    let lowered = lower_plan(&mut module, &plan, LowerOptions { parallel: true })?;
    let fingerprint = fnv1a(text.as_bytes());
    let blob = write_blob(&model.state, state_names(&plan), fingerprint)?;
    let (weights, side) = match weights_file {
        None => (blob, None),
        Some(_) => (Vec::new(), Some(blob)),
    };
    let blob = |module: &mut ObjectModule, name: &str, bytes: Vec<u8>| -> Result<_> {
        let id = module
            .declare_data(name, Linkage::Local, false, false)
            .map_err(|e| Error::other(format!("aot: {e}")))?;
        let mut d = DataDescription::new();
        d.define(bytes.into_boxed_slice());
        d.set_align(64);
        module
            .define_data(id, &d)
            .map_err(|e| Error::other(format!("aot: {e}")))?;
        Ok(id)
    };
    let (program_len, weights_len) = (program.len() as u64, weights.len() as u64);
    let program_id = blob(&mut module, "torchlift_program", program.into_bytes())?;
    let weights_id = match side {
        None => Some(blob(&mut module, "torchlift_weights", weights)?),
        Some(_) => None,
    };
    let file = weights_file.unwrap_or("").as_bytes().to_vec();
    let file_len = file.len() as u64;
    let file_id = match weights_file {
        Some(_) => Some(blob(&mut module, "torchlift_weights_file", file)?),
        None => None,
    };
    // Custom ops: one imported kernel symbol each, and a table.
    let mut custom = Vec::new();
    for (t, op) in crate::custom::used_by(p) {
        let op = op.ok_or_else(|| {
            Error::other(format!(
                "aot: custom op {} is not registered or declared (`--custom-op SCHEMA`)",
                t.strip_prefix("torch.ops.").unwrap_or(&t)
            ))
        })?;
        let mut sig = module.make_signature();
        let ptr = module.target_config().pointer_type();
        sig.params.push(cranelift_codegen::ir::AbiParam::new(ptr));
        sig.params.push(cranelift_codegen::ir::AbiParam::new(
            cranelift_codegen::ir::types::I32,
        ));
        sig.returns.push(cranelift_codegen::ir::AbiParam::new(
            cranelift_codegen::ir::types::I32,
        ));
        let f = module
            .declare_function(&crate::custom::kernel_symbol(&t), Linkage::Import, &sig)
            .map_err(|e| Error::other(format!("aot: {e}")))?;
        let name = blob(
            &mut module,
            &format!("torchlift_custom_schema_{}", custom.len()),
            op.schema.text.clone().into_bytes(),
        )?;
        custom.push((name, op.schema.text.len() as u64, f));
    }
    let custom_id = if custom.is_empty() {
        None
    } else {
        let id = module
            .declare_data("torchlift_custom_ops", Linkage::Local, false, false)
            .map_err(|e| Error::other(format!("aot: {e}")))?;
        let mut d = DataDescription::new();
        let mut bytes = Vec::new();
        for (_, len, _) in &custom {
            bytes.extend_from_slice(&[0; 8]);
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(&[0; 8]);
        }
        d.define(bytes.into_boxed_slice());
        d.set_align(8);
        for (k, (name, _, f)) in custom.iter().enumerate() {
            let g = module.declare_data_in_data(*name, &mut d);
            d.write_data_addr((k * 24) as u32, g, 0);
            let fr = module.declare_func_in_data(*f, &mut d);
            d.write_function_addr((k * 24 + 16) as u32, fr);
        }
        module
            .define_data(id, &d)
            .map_err(|e| Error::other(format!("aot: {e}")))?;
        Some(id)
    };
    let features = target.features();
    let mut desc = Vec::new();
    desc.extend_from_slice(&MAGIC.to_le_bytes());
    desc.extend_from_slice(&ABI_VERSION.to_le_bytes());
    desc.extend_from_slice(&features.to_le_bytes());
    desc.extend_from_slice(&[0; 8]); // entry, relocated
    desc.extend_from_slice(&[0; 8]); // program, relocated
    desc.extend_from_slice(&program_len.to_le_bytes());
    desc.extend_from_slice(&[0; 8]); // weights, relocated or null
    desc.extend_from_slice(&weights_len.to_le_bytes());
    desc.extend_from_slice(&[0; 8]); // weights_file, relocated or null
    desc.extend_from_slice(&file_len.to_le_bytes());
    desc.extend_from_slice(&fingerprint.to_le_bytes());
    desc.extend_from_slice(&[0; 8]); // custom_ops, relocated or null
    desc.extend_from_slice(&(custom.len() as u64).to_le_bytes());
    debug_assert_eq!(desc.len(), std::mem::size_of::<ArtifactDesc>());
    let desc_id = module
        .declare_data(ARTIFACT_SYMBOL, Linkage::Export, false, false)
        .map_err(|e| Error::other(format!("aot: {e}")))?;
    let mut d = DataDescription::new();
    d.define(desc.into_boxed_slice());
    d.set_align(8);
    let f = module.declare_func_in_data(lowered.entry, &mut d);
    d.write_function_addr(16, f);
    let g = module.declare_data_in_data(program_id, &mut d);
    d.write_data_addr(24, g, 0);
    if let Some(id) = weights_id {
        let g = module.declare_data_in_data(id, &mut d);
        d.write_data_addr(40, g, 0);
    }
    if let Some(id) = file_id {
        let g = module.declare_data_in_data(id, &mut d);
        d.write_data_addr(56, g, 0);
    }
    if let Some(id) = custom_id {
        let g = module.declare_data_in_data(id, &mut d);
        d.write_data_addr(80, g, 0);
    }
    module
        .define_data(desc_id, &d)
        .map_err(|e| Error::other(format!("aot: {e}")))?;
    let object = module
        .finish()
        .emit()
        .map_err(|e| Error::other(format!("aot: writing the object: {e}")))?;
    Ok(Artifact {
        object,
        plan: text,
        fingerprint,
        features,
        weights_file: side,
    })
}

fn isa_for(target: TargetCpu) -> Result<std::sync::Arc<dyn cranelift_codegen::isa::TargetIsa>> {
    let bad = |e: String| Error::other(format!("aot: target {target:?}: {e}"));
    let mut flags = settings::builder();
    for (k, v) in [("opt_level", "speed"), ("is_pic", "true")] {
        flags.set(k, v).map_err(|e| bad(e.to_string()))?;
    }
    let mut isa = match target {
        TargetCpu::Native => cranelift_native::builder().map_err(|e| bad(e.to_string()))?,
        _ => cranelift_codegen::isa::lookup_by_name("x86_64-unknown-linux-gnu")
            .map_err(|e| bad(e.to_string()))?,
    };
    let v2 = [
        "has_sse3",
        "has_ssse3",
        "has_sse41",
        "has_sse42",
        "has_popcnt",
    ];
    let v3 = [
        "has_avx",
        "has_avx2",
        "has_fma",
        "has_bmi1",
        "has_bmi2",
        "has_lzcnt",
    ];
    let enable: Vec<&str> = match target {
        TargetCpu::Native => Vec::new(),
        TargetCpu::X86_64V2 => v2.to_vec(),
        TargetCpu::X86_64V3 => v2.iter().chain(&v3).copied().collect(),
    };
    for f in enable {
        isa.enable(f).map_err(|e| bad(e.to_string()))?;
    }
    isa.finish(settings::Flags::new(flags))
        .map_err(|e| bad(e.to_string()))
}

impl CompiledModel {
    /// Loads a model compiled ahead of time, with embedded weights, from
    /// its descriptor.
    ///
    /// # Safety
    /// `desc` must point at the [`ARTIFACT_SYMBOL`] of an object written by
    /// [`compile_object`] and linked with this build's runtime and driver,
    /// and that code and data must stay loaded while the result is alive.
    pub unsafe fn from_artifact(
        desc: *const ArtifactDesc,
        threads: usize,
    ) -> Result<CompiledModel> {
        // SAFETY: the caller's contract, passed on.
        unsafe { CompiledModel::from_artifact_with(desc, WeightSource::Embedded, threads) }
    }

    /// Loads a model compiled ahead of time, with its weights from
    /// `weights`.
    ///
    /// # Safety
    /// As [`CompiledModel::from_artifact`]; with [`WeightSource::Memory`],
    /// the bytes must also stay alive and unchanged while the result is.
    pub unsafe fn from_artifact_with(
        desc: *const ArtifactDesc,
        weights: WeightSource<'_>,
        threads: usize,
    ) -> Result<CompiledModel> {
        // SAFETY: the caller guarantees `desc` points at a descriptor.
        let d = unsafe { check_desc(desc)? };
        // The runtime kernels match the artifact's target: an artifact for
        // x86-64-v2 keeps the runtime it links to SSE kernels.
        limit_runtime(d.features);
        let entry = d
            .entry
            .ok_or_else(|| Error::other("artifact: no entry function"))?;
        // SAFETY: the descriptor's pointers and lengths describe blobs of
        // the object, alive as long as the object (the caller's contract).
        let text = unsafe { desc_bytes(d.program, d.program_len) }
            .ok_or_else(|| Error::other("artifact: no program"))?;
        let text = std::str::from_utf8(text)
            .map_err(|_| Error::other("artifact: the program is not UTF-8"))?;
        // SAFETY: as above.
        unsafe { register_custom_ops(d)? };
        let program = crate::ir::parse::parse_program(text)?;
        crate::ir::verify::verify_program(&program)?;
        let plan = schedule(&program)?;
        if fnv1a(plan_text(&plan).as_bytes()) != d.fingerprint {
            return Err(Error::other(
                "artifact: its code was compiled from a different plan than this torchlift makes",
            ));
        }
        // SAFETY: as above.
        let embedded = unsafe { desc_bytes(d.weights, d.weights_len) };
        let weights = match (weights, embedded) {
            // SAFETY: the object's read-only data outlives the model.
            (WeightSource::Embedded, Some(b)) => unsafe {
                Weights::borrowed(b, d.fingerprint, "embedded in the artifact")?
            },
            (WeightSource::Embedded, None) => {
                return Err(Error::other(format!(
                    "artifact: its weights are in a side file ({}); load it with that file",
                    // SAFETY: as above.
                    desc_weights_file(d).unwrap_or_else(|| "unnamed".into())
                )));
            }
            (_, Some(_)) => {
                return Err(Error::other(
                    "artifact: its weights are embedded; it takes no weight file",
                ))
            }
            (WeightSource::File(path), None) => Weights::map_file(path, d.fingerprint)?,
            // SAFETY: the caller keeps the memory alive and unchanged.
            (WeightSource::Memory(b), None) => unsafe {
                Weights::borrowed(b, d.fingerprint, "given in memory")?
            },
        };
        // SAFETY: `entry` is the entry function of the object, which was
        // lowered from `schedule(program)`: `plan` is that plan (its
        // fingerprint was checked above).
        unsafe { CompiledModel::from_code(program, plan, entry, weights, threads) }
    }
}

/// Registers the kernels an artifact linked for its custom ops.
///
/// # Safety
/// `d` is a checked descriptor of a loaded artifact.
unsafe fn register_custom_ops(d: &ArtifactDesc) -> Result<()> {
    let n = usize::try_from(d.n_custom_ops).unwrap_or(usize::MAX);
    if n == 0 {
        return Ok(());
    }
    if d.custom_ops.is_null() || n > 1 << 16 {
        return Err(Error::other("artifact: a corrupt custom op table"));
    }
    // SAFETY: the table has `n` entries in the object's data.
    let table = unsafe { std::slice::from_raw_parts(d.custom_ops, n) };
    for e in table {
        // SAFETY: each entry's schema is a blob of the object.
        let schema = unsafe { desc_bytes(e.schema, e.schema_len) }
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(|| Error::other("artifact: a corrupt custom op schema"))?;
        let kernel = e.kernel.ok_or_else(|| {
            Error::other(format!("artifact: custom op {schema} has no linked kernel"))
        })?;
        crate::custom::register_linked(schema, kernel)?;
    }
    Ok(())
}

/// The descriptor at `desc`, checked for magic, version and CPU features.
///
/// # Safety
/// `desc` is null or points at an [`ArtifactDesc`].
unsafe fn check_desc<'a>(desc: *const ArtifactDesc) -> Result<&'a ArtifactDesc> {
    if desc.is_null() {
        return Err(Error::other("artifact: null descriptor"));
    }
    // SAFETY: non-null, and the caller's contract.
    let d = unsafe { &*desc };
    if d.magic != MAGIC {
        return Err(Error::other(
            "artifact: not a torchlift artifact (bad magic)",
        ));
    }
    if d.abi_version != ABI_VERSION {
        return Err(Error::other(format!(
            "artifact: ABI version {}, this torchlift reads {ABI_VERSION}",
            d.abi_version
        )));
    }
    if !host_has(d.features) {
        return Err(Error::other(format!(
            "artifact: compiled for a CPU with {}, which this one lacks",
            feature_names(d.features)
        )));
    }
    Ok(d)
}

/// Caps the runtime's kernels at what an artifact was compiled for.
fn limit_runtime(features: u32) {
    use torchlift_runtime::cpu;
    cpu::limit_to(if features & FEAT_AVX512 != 0 {
        cpu::LEVEL_AVX512
    } else if features & FEAT_AVX2_FMA != 0 {
        cpu::LEVEL_AVX2
    } else {
        cpu::LEVEL_BASELINE
    });
}

/// The `n` bytes at `p`, or `None` for a null pointer.
///
/// # Safety
/// A non-null `p` addresses `n` bytes that outlive `'a`.
unsafe fn desc_bytes<'a>(p: *const u8, n: u64) -> Option<&'a [u8]> {
    let n = usize::try_from(n).ok()?;
    if p.is_null() || n > isize::MAX as usize {
        return None;
    }
    // SAFETY: the caller's contract.
    Some(unsafe { std::slice::from_raw_parts(p, n) })
}

/// The name of the side file an artifact's weights are in, if they are.
///
/// # Safety
/// `d` is a checked descriptor of a loaded artifact.
pub unsafe fn desc_weights_file(d: &ArtifactDesc) -> Option<String> {
    // SAFETY: the caller's contract.
    let b = unsafe { desc_bytes(d.weights_file, d.weights_file_len) }?;
    Some(String::from_utf8_lossy(b).into_owned())
}

/// What `torchlift compile` writes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Emit {
    /// The model's object file alone: link it with `libtorchlift.a`.
    Object,
    /// A static library: the model's object and the torchlift runtime,
    /// driver and C API.
    Staticlib,
    /// A self-contained shared library (needs libc, libm, libpthread,
    /// libgcc_s and the dynamic loader).
    Sharedlib,
}

/// The C API functions a shared library must export.
const C_API: &[&str] = &[
    "tl_model_create",
    "tl_model_create_with_weights",
    "tl_model_create_from_buffer",
    "tl_model_verify_weights",
    "tl_model_io",
    "tl_model_destroy",
    "tl_model_count",
    "tl_session_create",
    "tl_session_destroy",
    "tl_session_run",
    "tl_session_output",
    "tl_last_error",
];

/// `libtorchlift.a`: `$TORCHLIFT_STATICLIB`, or the newest of the
/// `libtorchlift.a` beside the running executable (`target/release` after
/// `cargo build --release`) and the ones cargo left in that folder's
/// `deps/` (test and bench builds do not copy theirs up). The newest, so
/// that a bench or test build never links a stale runtime.
pub fn find_staticlib() -> Result<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("TORCHLIFT_STATICLIB") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe().map_err(|e| Error::other(format!("aot: {e}")))?;
    let mut dirs = Vec::new();
    if let Some(d) = exe.parent() {
        dirs.push(d.to_path_buf());
        dirs.push(d.join("deps"));
        if let Some(up) = d.parent() {
            dirs.push(up.to_path_buf());
        }
    }
    let mut newest: Option<(std::time::SystemTime, std::path::PathBuf)> = None;
    for d in &dirs {
        let Ok(rd) = std::fs::read_dir(d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = name == "libtorchlift.a"
                || (name.starts_with("libtorchlift-") && name.ends_with(".a"));
            if !ours {
                continue;
            }
            if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                if newest.as_ref().map_or(true, |(n, _)| t > *n) {
                    newest = Some((t, e.path()));
                }
            }
        }
    }
    newest.map(|(_, p)| p).ok_or_else(|| {
        Error::other(
            "aot: libtorchlift.a not found beside the torchlift executable \
             (build it with `cargo build --release`, or set TORCHLIFT_STATICLIB)",
        )
    })
}

fn run_tool(cmd: &mut std::process::Command) -> Result<()> {
    let what = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| Error::other(format!("aot: running {what}: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(Error::other(format!("aot: {what} failed: {first}")));
    }
    Ok(())
}

/// Compiles `model` and writes the artifact at `out`, with `torchlift.h`
/// and `<stem>.json` (the manifest) beside it.
pub fn write_artifact(model: &Model, opts: &AotOptions, out: &std::path::Path) -> Result<()> {
    let emit = opts.emit;
    let io = |e: std::io::Error, p: &std::path::Path| {
        Error::other(format!("writing {}: {e}", p.display()))
    };
    let dir = out.parent().unwrap_or(std::path::Path::new("."));
    if !dir.as_os_str().is_empty() {
        std::fs::create_dir_all(dir).map_err(|e| io(e, dir))?;
    }
    let stem = artifact_stem(out);
    let side_name = format!("{stem}.weights");
    let side = match opts.weights {
        WeightsPlacement::Embedded => None,
        WeightsPlacement::External => Some(side_name.as_str()),
    };
    let art = compile_object(model, opts.target, side)?;
    if let Some(blob) = &art.weights_file {
        let p = dir.join(&side_name);
        std::fs::write(&p, blob).map_err(|e| io(e, &p))?;
    }
    let obj = match emit {
        Emit::Object => out.to_path_buf(),
        _ => dir.join(format!("{stem}.model.o")),
    };
    std::fs::write(&obj, &art.object).map_err(|e| io(e, &obj))?;
    match emit {
        Emit::Object => {}
        Emit::Staticlib => {
            let lib = find_staticlib()?;
            let base = std::fs::read(&lib).map_err(|e| io(e, &lib))?;
            let bundled = append_member(
                &base,
                "model.o",
                &art.object,
                &[ARTIFACT_SYMBOL, ENTRY_NAME],
            )?;
            std::fs::write(out, bundled).map_err(|e| io(e, out))?;
            let _ = std::fs::remove_file(&obj);
        }
        Emit::Sharedlib => {
            let lib = find_staticlib()?;
            let mut cmd = std::process::Command::new("cc");
            cmd.arg("-shared").arg("-o").arg(out).arg(&obj).arg(&lib);
            for f in C_API {
                cmd.arg(format!("-Wl,-u,{f}"));
            }
            cmd.args([
                "-Wl,--gc-sections",
                "-Wl,--strip-debug",
                "-Wl,--as-needed",
                "-lgcc_s",
                "-lpthread",
                "-lm",
                "-ldl",
                "-lc",
            ]);
            run_tool(&mut cmd)?;
            let _ = std::fs::remove_file(&obj);
        }
    }
    let header = dir.join("torchlift.h");
    std::fs::write(&header, crate::capi::HEADER).map_err(|e| io(e, &header))?;
    let manifest = dir.join(format!("{stem}.json"));
    let text = manifest_json(model, opts, &art, side)?;
    std::fs::write(&manifest, text).map_err(|e| io(e, &manifest))?;
    Ok(())
}

/// The stem an artifact's side files are named by: `libr18.so` → `r18`.
pub fn artifact_stem(out: &std::path::Path) -> String {
    out.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("model")
        .trim_start_matches("lib")
        .to_string()
}

fn manifest_json(
    model: &Model,
    opts: &AotOptions,
    art: &Artifact,
    side: Option<&str>,
) -> Result<String> {
    use serde_json::json;
    let p = &model.program;
    let dims = |t: &crate::ir::ValueType| -> serde_json::Value {
        match t {
            crate::ir::ValueType::Tensor(t) => json!({
                "dtype": t.dtype.name(),
                "dims": t.shape.iter().map(|d| match d.as_int() {
                    Some(n) => json!(n),
                    None => json!(d.to_string()),
                }).collect::<Vec<_>>(),
            }),
            other => json!({ "dtype": crate::ir::print::type_text(other), "dims": [] }),
        }
    };
    let inputs: Vec<_> = p
        .user_inputs()
        .into_iter()
        .map(|v| {
            let mut o = dims(p.graph.ty(v));
            o["name"] = json!(p.graph.name(v));
            o
        })
        .collect();
    let outputs: Vec<_> = p
        .user_output_indices()
        .into_iter()
        .map(|i| match &p.graph.outputs[i] {
            crate::ir::Arg::Value(v) => {
                let mut o = dims(p.graph.ty(*v));
                o["name"] = json!(p.graph.name(*v));
                o
            }
            _ => json!({ "name": format!("output {i}"), "dtype": "i64", "dims": [] }),
        })
        .collect();
    let symbols: serde_json::Map<String, serde_json::Value> = p
        .range_constraints
        .iter()
        .map(|(k, r)| (k.clone(), json!({ "min": r.min, "max": r.max })))
        .collect();
    let m = json!({
        "format": "torchlift-artifact",
        "abi_version": ABI_VERSION,
        "torchlift_version": env!("CARGO_PKG_VERSION"),
        "torch_version": crate::pt2::Archive::open(&model.path)
            .ok()
            .map(|a| a.program.torch_version),
        "target_cpu": format!("{:?}", opts.target),
        "cpu_features": feature_names(art.features),
        "fingerprint": format!("{:016x}", art.fingerprint),
        "custom_ops": crate::custom::used_by(&model.program)
            .into_iter()
            .map(|(t, op)| json!({
                "schema": op.map(|o| o.schema.text),
                "kernel_symbol": crate::custom::kernel_symbol(&t),
            }))
            .collect::<Vec<_>>(),
        "weights": match side {
            Some(f) => json!({ "placement": "external", "file": f }),
            None => json!({ "placement": "embedded" }),
        },
        "symbol": ARTIFACT_SYMBOL,
        "c_api": C_API,
        "inputs": inputs,
        "outputs": outputs,
        "symbols": symbols,
    });
    serde_json::to_string_pretty(&m).map_err(|e| Error::other(e.to_string()))
}

type Raw = *mut std::ffi::c_void;
type CreateFn = unsafe extern "C" fn(*const ArtifactDesc, i32, *mut Raw) -> i32;
type CreateWithFn =
    unsafe extern "C" fn(*const ArtifactDesc, *const std::ffi::c_char, i32, *mut Raw) -> i32;
type SessionCreateFn = unsafe extern "C" fn(Raw, *mut Raw) -> i32;
type RunFn = unsafe extern "C" fn(Raw, *const crate::capi::TlTensor, i32) -> i32;
type OutputFn = unsafe extern "C" fn(Raw, i32, *mut crate::capi::TlTensor) -> i32;
type CountFn = unsafe extern "C" fn(Raw, i32) -> i32;
type StatusFn = unsafe extern "C" fn(Raw) -> i32;
type DestroyFn = unsafe extern "C" fn(Raw);
type ErrorFn = unsafe extern "C" fn() -> *const std::ffi::c_char;

/// The C API of a loaded shared library.
struct Api {
    session_create: SessionCreateFn,
    run: RunFn,
    output: OutputFn,
    count: CountFn,
    verify: StatusFn,
    last_error: ErrorFn,
    session_destroy: DestroyFn,
    model_destroy: DestroyFn,
}

impl Api {
    fn error(&self) -> String {
        // SAFETY: `tl_last_error` returns a NUL-terminated string owned by
        // the library, valid until this thread's next failure.
        let p = unsafe { (self.last_error)() };
        if p.is_null() {
            return String::new();
        }
        // SAFETY: as above.
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned()
    }
}

/// A shared-library artifact, loaded and called through its own C API
/// (what `torchlift check --backend aot` runs). Like a [`CompiledModel`],
/// any number of threads may call it at once, each through its own
/// [`SharedSession`].
pub struct SharedArtifact {
    model: Raw,
    api: Api,
    /// The session [`SharedArtifact::run`] uses.
    session: Option<SharedSessionRaw>,
    /// Declared last: dropped after the handles above are destroyed.
    _lib: libloading::Library,
}

struct SharedSessionRaw(Raw);

// SAFETY: the C API makes a model immutable after creation and safe to
// share between threads (torchlift.h); the function pointers are plain code.
unsafe impl Send for SharedArtifact {}
// SAFETY: as above: `&SharedArtifact` only creates sessions and reads.
unsafe impl Sync for SharedArtifact {}

/// One caller's session on a [`SharedArtifact`].
pub struct SharedSession<'a> {
    art: &'a SharedArtifact,
    raw: SharedSessionRaw,
}

// SAFETY: a session may move between threads; it is used by one at a time
// (`run` takes `&mut self`).
unsafe impl Send for SharedSession<'_> {}

impl SharedArtifact {
    /// Loads `path`, creates its model (`threads`: pool size, 0 = one per
    /// core). External weights are read from the side file the artifact
    /// names, beside it. The manifest beside it, if there, must describe
    /// this artifact.
    pub fn open(path: &std::path::Path, threads: usize) -> Result<SharedArtifact> {
        let bad = |e: String| Error::other(format!("loading {}: {e}", path.display()));
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        check_elf(&bytes).map_err(|e| bad(e.to_string()))?;
        drop(bytes);
        // SAFETY: loading runs the library's initializers; a torchlift
        // artifact has none beyond the Rust runtime's.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| bad(e.to_string()))?;
        macro_rules! sym {
            ($name:literal, $t:ty) => {{
                // SAFETY: the artifact exports the C API with the types of
                // `torchlift.h`, which `$t` restates.
                let s: libloading::Symbol<$t> = unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|e| bad(e.to_string()))?;
                *s
            }};
        }
        let create = sym!("tl_model_create", CreateFn);
        let create_with = sym!("tl_model_create_with_weights", CreateWithFn);
        // SAFETY: `torchlift_artifact` is the artifact's exported descriptor.
        let desc: *const ArtifactDesc = unsafe {
            let s: libloading::Symbol<*const ArtifactDesc> = lib
                .get(b"torchlift_artifact\0")
                .map_err(|e| bad(e.to_string()))?;
            *s
        };
        // SAFETY: the descriptor of the library just loaded.
        let d = unsafe { check_desc(desc) }.map_err(|e| bad(e.to_string()))?;
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        check_manifest(
            &dir.join(format!("{}.json", artifact_stem(path))),
            d.fingerprint,
        )
        .map_err(|e| bad(e.to_string()))?;
        // SAFETY: as above.
        let side = unsafe { desc_weights_file(d) };
        let mut a = SharedArtifact {
            model: std::ptr::null_mut(),
            api: Api {
                session_create: sym!("tl_session_create", SessionCreateFn),
                run: sym!("tl_session_run", RunFn),
                output: sym!("tl_session_output", OutputFn),
                count: sym!("tl_model_count", CountFn),
                verify: sym!("tl_model_verify_weights", StatusFn),
                last_error: sym!("tl_last_error", ErrorFn),
                session_destroy: sym!("tl_session_destroy", DestroyFn),
                model_destroy: sym!("tl_model_destroy", DestroyFn),
            },
            session: None,
            _lib: lib,
        };
        let threads = i32::try_from(threads).unwrap_or(0);
        // SAFETY: the functions are the artifact's C API; the out-pointer
        // is a valid field and the path a NUL-terminated string.
        let status = unsafe {
            match side {
                None => create(desc, threads, &mut a.model),
                Some(name) => {
                    let p = dir.join(name);
                    let c = std::ffi::CString::new(p.to_string_lossy().into_owned())
                        .map_err(|_| bad("the weights path holds a NUL".into()))?;
                    create_with(desc, c.as_ptr(), threads, &mut a.model)
                }
            }
        };
        if status != 0 {
            return Err(bad(a.api.error()));
        }
        let s = a.session()?;
        let raw = SharedSessionRaw(s.raw.0);
        std::mem::forget(s);
        a.session = Some(raw);
        Ok(a)
    }

    /// A new session: the model's state as loaded.
    pub fn session(&self) -> Result<SharedSession<'_>> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: `model` is live and `raw` a valid out-pointer.
        if unsafe { (self.api.session_create)(self.model, &mut raw) } != 0 {
            return Err(Error::other(self.api.error()));
        }
        Ok(SharedSession {
            art: self,
            raw: SharedSessionRaw(raw),
        })
    }

    /// Checks every weight byte against the checksum recorded when
    /// compiling.
    pub fn verify_weights(&self) -> Result<()> {
        // SAFETY: `model` is live.
        if unsafe { (self.api.verify)(self.model) } != 0 {
            return Err(Error::other(self.api.error()));
        }
        Ok(())
    }

    /// One call on `inputs` (user inputs in signature order), in the
    /// artifact's own session.
    pub fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let raw = self
            .session
            .as_ref()
            .map(|s| s.0)
            .ok_or_else(|| Error::other("the artifact has no session"))?;
        run_session(&self.api, self.model, raw, inputs)
    }
}

impl SharedSession<'_> {
    /// One call on `inputs` (user inputs in signature order).
    pub fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        run_session(&self.art.api, self.art.model, self.raw.0, inputs)
    }
}

impl Drop for SharedSession<'_> {
    fn drop(&mut self) {
        // SAFETY: the handle came from `tl_session_create` and is destroyed
        // once, before its model (the borrow of `art` guarantees it).
        unsafe { (self.art.api.session_destroy)(self.raw.0) };
    }
}

fn run_session(api: &Api, model: Raw, session: Raw, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    let dense = crate::capi::DenseTensors::new(inputs);
    let ts = &dense.views;
    // SAFETY: `session` is live and used by this thread only; `ts` holds
    // valid tensors whose shapes and bytes outlive the call.
    if unsafe { (api.run)(session, ts.as_ptr(), ts.len() as i32) } != 0 {
        return Err(Error::other(api.error()));
    }
    // SAFETY: `model` is live.
    let n = unsafe { (api.count)(model, 1) };
    let mut outs = Vec::new();
    for i in 0..n {
        let mut t = crate::capi::TlTensor {
            dtype: 0,
            rank: 0,
            shape: std::ptr::null(),
            data: std::ptr::null_mut(),
        };
        // SAFETY: `session` is live and `t` a valid out-pointer.
        if unsafe { (api.output)(session, i, &mut t) } != 0 {
            return Err(Error::other(api.error()));
        }
        // SAFETY: the session owns the output: `shape` has `rank` entries
        // and `data` the dense elements, until the next call.
        outs.push(unsafe { crate::capi::tensor_from_c(&t, i as usize)? });
    }
    Ok(outs)
}

impl Drop for SharedArtifact {
    fn drop(&mut self) {
        // SAFETY: the handles came from the library's C API and are
        // destroyed once, session first; the library outlives both calls.
        unsafe {
            if let Some(s) = self.session.take() {
                (self.api.session_destroy)(s.0);
            }
            if !self.model.is_null() {
                (self.api.model_destroy)(self.model);
            }
        }
    }
}

/// Refuses a manifest beside an artifact that is not valid JSON or does
/// not describe the artifact (a missing manifest is fine: nothing needs it
/// to load).
pub fn check_manifest(path: &std::path::Path, fingerprint: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let bad = |why: String| Error::other(format!("manifest {}: {why}", path.display()));
    let m: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON ({e})")))?;
    if m["format"] != "torchlift-artifact" {
        return Err(bad("not a torchlift artifact manifest".into()));
    }
    let want = format!("{fingerprint:016x}");
    if m["fingerprint"].as_str() != Some(want.as_str()) {
        return Err(bad(format!(
            "describes a different artifact (fingerprint {}, the library's is {want})",
            m["fingerprint"]
        )));
    }
    for k in ["inputs", "outputs"] {
        if !m[k].is_array() {
            return Err(bad(format!("has no {k} list")));
        }
    }
    Ok(())
}

/// `archive` (a GNU `ar` archive, as rustc writes static libraries) with
/// one more member, `obj`, whose global `symbols` join the symbol index.
///
/// The index is rewritten here rather than by `ar s`: GNU `ar` cannot read
/// the LLVM bitcode some of rustc's members carry and would drop their
/// symbols from the index.
pub fn append_member(archive: &[u8], name: &str, obj: &[u8], symbols: &[&str]) -> Result<Vec<u8>> {
    let bad = |what: &str| Error::other(format!("aot: libtorchlift.a: {what}"));
    const AR_MAGIC: &[u8] = b"!<arch>\n";
    if !archive.starts_with(AR_MAGIC) {
        return Err(bad("not an ar archive"));
    }
    let h = archive
        .get(AR_MAGIC.len()..AR_MAGIC.len() + 60)
        .ok_or_else(|| bad("truncated"))?;
    if &h[58..60] != b"`\n" {
        return Err(bad("a member header is corrupt"));
    }
    let size: usize = std::str::from_utf8(&h[48..58])
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| bad("a member size is corrupt"))?;
    let wide = h.starts_with(b"/SYM64/");
    if !(wide || h.starts_with(b"/ ")) {
        return Err(bad("no symbol index"));
    }
    let w = if wide { 8 } else { 4 };
    let body = archive
        .get(AR_MAGIC.len() + 60..AR_MAGIC.len() + 60 + size)
        .ok_or_else(|| bad("truncated"))?;
    let num = |b: &[u8]| -> u64 { b.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x)) };
    let count = usize::try_from(num(body.get(..w).ok_or_else(|| bad("truncated"))?))
        .map_err(|_| bad("index too large"))?;
    let offs_end = count
        .checked_mul(w)
        .and_then(|n| n.checked_add(w))
        .ok_or_else(|| bad("index too large"))?;
    let offsets: Vec<u64> = body
        .get(w..offs_end)
        .ok_or_else(|| bad("truncated"))?
        .chunks(w)
        .map(num)
        .collect();
    let names = &body[offs_end..];
    let old_total = 60 + size + size % 2;
    let rest = archive
        .get(AR_MAGIC.len() + old_total..)
        .ok_or_else(|| bad("truncated"))?;
    let mut new_names = names.to_vec();
    for s in symbols {
        new_names.extend_from_slice(s.as_bytes());
        new_names.push(0);
    }
    let new_count = count + symbols.len();
    let new_size = w + new_count * w + new_names.len();
    let new_total = 60 + new_size + new_size % 2;
    let delta = new_total as i64 - old_total as i64;
    let obj_at = (AR_MAGIC.len() + new_total + rest.len()) as u64;
    if !wide && obj_at > u64::from(u32::MAX) {
        return Err(bad("too large for a 32-bit symbol index"));
    }
    let put = |out: &mut Vec<u8>, v: u64| out.extend_from_slice(&v.to_be_bytes()[8 - w..]);
    let member_header = |name: &str, size: usize| -> Vec<u8> {
        format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}`\n", 0, 0, 0, 644).into_bytes()
    };
    let mut out = Vec::with_capacity(archive.len() + obj.len() + 4096);
    out.extend_from_slice(AR_MAGIC);
    out.extend_from_slice(&member_header(if wide { "/SYM64/" } else { "/" }, new_size));
    put(&mut out, new_count as u64);
    for &o in &offsets {
        let o = u64::try_from(o as i64 + delta).map_err(|_| bad("a member offset is corrupt"))?;
        put(&mut out, o);
    }
    for _ in symbols {
        put(&mut out, obj_at);
    }
    out.extend_from_slice(&new_names);
    if new_size % 2 == 1 {
        out.push(b'\n');
    }
    out.extend_from_slice(rest);
    debug_assert_eq!(out.len() as u64, obj_at);
    out.extend_from_slice(&member_header(&format!("{name}/"), obj.len()));
    out.extend_from_slice(obj);
    if obj.len() % 2 == 1 {
        out.push(b'\n');
    }
    Ok(out)
}

/// Refuses a file that is not a whole 64-bit ELF shared object: every
/// segment and the section headers must lie inside the file (a truncated
/// library would fault on first touch instead of failing to load).
pub fn check_elf(bytes: &[u8]) -> Result<()> {
    let bad = |what: &str| Error::other(format!("not a loadable artifact: {what}"));
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return Err(bad("not a little-endian 64-bit ELF file"));
    }
    let u16_at = |o: usize| u64::from(u16::from_le_bytes([bytes[o], bytes[o + 1]]));
    let u64_at = |o: usize| -> Result<u64> {
        let b = bytes.get(o..o + 8).ok_or_else(|| bad("truncated"))?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    };
    let len = bytes.len() as u64;
    let (phoff, shoff) = (u64_at(0x20)?, u64_at(0x28)?);
    let (phsz, phnum, shsz, shnum) = (u16_at(0x36), u16_at(0x38), u16_at(0x3a), u16_at(0x3c));
    let end = |off: u64, n: u64, sz: u64| n.checked_mul(sz).and_then(|x| off.checked_add(x));
    if end(phoff, phnum, phsz).map_or(true, |e| e > len)
        || end(shoff, shnum, shsz).map_or(true, |e| e > len)
    {
        return Err(bad("truncated (headers past the end of the file)"));
    }
    for i in 0..phnum {
        let at = usize::try_from(phoff + i * phsz).map_err(|_| bad("corrupt"))?;
        let (off, filesz) = (u64_at(at + 8)?, u64_at(at + 0x20)?);
        if off.checked_add(filesz).map_or(true, |e| e > len) {
            return Err(bad("truncated (a segment past the end of the file)"));
        }
    }
    Ok(())
}
