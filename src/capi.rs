//! The C API of ahead-of-time artifacts (`torchlift.h`, written beside each
//! artifact by `torchlift compile`; [`HEADER`] is its text).
//!
//! Handles are opaque. A model is created from an artifact's descriptor
//! and is immutable: any number of threads may use one model at once. A
//! session belongs to one thread at a time; it holds that caller's arena,
//! the buffers that persist across its calls, and the outputs of its last
//! call. Every function that can fail returns a status (0 is success) and
//! leaves a message that `tl_last_error` returns on the same thread.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use crate::codegen::aot::{ArtifactDesc, WeightSource};
use crate::codegen::jit::{CompiledModel, Session};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::DType;

/// Status codes.
pub const TL_OK: i32 = 0;
pub const TL_ERROR: i32 = 1;
pub const TL_INVALID_ARGUMENT: i32 = 2;

/// The C header, `torchlift.h`.
pub const HEADER: &str = include_str!("capi/torchlift.h");

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_error(msg: String) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Runs `f`, turning errors and panics into a status and a message.
fn guard(f: impl FnOnce() -> Result<()>) -> i32 {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => TL_OK,
        Ok(Err(e)) => {
            set_error(e.to_string());
            TL_ERROR
        }
        Err(_) => {
            set_error("internal error: a panic inside torchlift".into());
            TL_ERROR
        }
    }
}

fn invalid(what: &str) -> i32 {
    set_error(format!("invalid argument: {what}"));
    TL_INVALID_ARGUMENT
}

/// `tl_dtype` codes.
pub(crate) fn dtype_code(d: DType) -> i32 {
    match d {
        DType::F32 => 0,
        DType::F64 => 1,
        DType::F16 => 2,
        DType::BF16 => 3,
        DType::I64 => 4,
        DType::I32 => 5,
        DType::I16 => 6,
        DType::I8 => 7,
        DType::U8 => 8,
        DType::Bool => 9,
    }
}

fn dtype_of(code: i32) -> Option<DType> {
    Some(match code {
        0 => DType::F32,
        1 => DType::F64,
        2 => DType::F16,
        3 => DType::BF16,
        4 => DType::I64,
        5 => DType::I32,
        6 => DType::I16,
        7 => DType::I8,
        8 => DType::U8,
        9 => DType::Bool,
        _ => return None,
    })
}

/// `tl_tensor`: a dense, row-major tensor the caller owns (inputs) or the
/// session owns (outputs).
#[repr(C)]
pub struct TlTensor {
    pub dtype: i32,
    pub rank: i32,
    pub shape: *const i64,
    pub data: *mut u8,
}

/// Dense copies of tensors and `tl_tensor` views of them (the views point
/// into the copies, which live as long as this value).
pub(crate) struct DenseTensors {
    shapes: Vec<Vec<i64>>,
    bytes: Vec<Vec<u8>>,
    pub views: Vec<TlTensor>,
}

impl DenseTensors {
    pub(crate) fn new<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) -> DenseTensors {
        let mut d = DenseTensors {
            shapes: Vec::new(),
            bytes: Vec::new(),
            views: Vec::new(),
        };
        let mut dtypes = Vec::new();
        for t in tensors {
            dtypes.push(dtype_code(t.dtype()));
            d.shapes.push(t.sizes().iter().map(|&x| x as i64).collect());
            d.bytes.push(t.to_contiguous_bytes());
        }
        // The views point at the heap buffers, which stay put when `d` moves.
        for ((code, s), b) in dtypes.into_iter().zip(&d.shapes).zip(d.bytes.iter_mut()) {
            d.views.push(TlTensor {
                dtype: code,
                rank: s.len() as i32,
                shape: s.as_ptr(),
                data: b.as_mut_ptr(),
            });
        }
        d
    }

    /// Shape and bytes of tensor `i`.
    pub(crate) fn get(&self, i: usize) -> (&[i64], &[u8]) {
        (&self.shapes[i], &self.bytes[i])
    }
}

pub struct TlModel {
    model: CompiledModel,
    inputs: Vec<IoInfo>,
    outputs: Vec<IoInfo>,
}

pub struct TlSession {
    session: Session,
    /// The last call's outputs: shapes and dense bytes.
    outputs: Vec<(DType, Vec<i64>, Vec<u8>)>,
}

/// Creates a model from an artifact's descriptor (`&torchlift_artifact`)
/// with embedded weights. `threads` is the size of its thread pool (0: one
/// per core).
///
/// # Safety
/// `artifact` is the descriptor of a linked torchlift artifact; `out` is a
/// valid pointer.
#[no_mangle]
pub unsafe extern "C" fn tl_model_create(
    artifact: *const ArtifactDesc,
    threads: i32,
    out: *mut *mut TlModel,
) -> i32 {
    // SAFETY: the caller's contract, passed on.
    unsafe { create(artifact, WeightSource::Embedded, threads, out) }
}

/// Creates a model whose weights are in the side file at `path` (written by
/// `--weights external`), mapped read-only.
///
/// # Safety
/// As `tl_model_create`; `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn tl_model_create_with_weights(
    artifact: *const ArtifactDesc,
    path: *const c_char,
    threads: i32,
    out: *mut *mut TlModel,
) -> i32 {
    if path.is_null() {
        return invalid("tl_model_create_with_weights needs a path");
    }
    // SAFETY: `path` is NUL-terminated (the caller's contract).
    let path = unsafe { std::ffi::CStr::from_ptr(path) };
    let Ok(path) = path.to_str() else {
        return invalid("the weights path is not UTF-8");
    };
    let path = std::path::Path::new(path);
    // SAFETY: the caller's contract, passed on.
    unsafe { create(artifact, WeightSource::File(path), threads, out) }
}

/// Creates a model whose weights are the `len` bytes at `data` (the
/// contents of a side file), which must stay valid and unchanged until the
/// model is destroyed.
///
/// # Safety
/// As `tl_model_create`; `data` addresses `len` readable bytes that outlive
/// the model.
#[no_mangle]
pub unsafe extern "C" fn tl_model_create_from_buffer(
    artifact: *const ArtifactDesc,
    data: *const u8,
    len: u64,
    threads: i32,
    out: *mut *mut TlModel,
) -> i32 {
    let Ok(n) = usize::try_from(len) else {
        return invalid("the weights buffer is too large");
    };
    if data.is_null() || n > isize::MAX as usize {
        return invalid("tl_model_create_from_buffer needs a buffer");
    }
    // SAFETY: `data` addresses `len` bytes that outlive the model.
    let bytes = unsafe { std::slice::from_raw_parts(data, n) };
    // SAFETY: the caller's contract, passed on.
    unsafe { create(artifact, WeightSource::Memory(bytes), threads, out) }
}

/// # Safety
/// As `tl_model_create`, with `weights` alive as long as the model.
unsafe fn create(
    artifact: *const ArtifactDesc,
    weights: WeightSource<'_>,
    threads: i32,
    out: *mut *mut TlModel,
) -> i32 {
    if out.is_null() || artifact.is_null() {
        return invalid("creating a model needs an artifact and an output pointer");
    }
    guard(|| {
        let threads = usize::try_from(threads).unwrap_or(0);
        // SAFETY: the caller passes the descriptor of a linked artifact,
        // which stays loaded while the model is alive, and weights that
        // stay alive as long.
        let model = unsafe { CompiledModel::from_artifact_with(artifact, weights, threads)? };
        let info = |specs: Vec<crate::api::IoSpec>| specs.into_iter().map(IoInfo::new).collect();
        let b = Box::new(TlModel {
            inputs: info(model.inputs()),
            outputs: info(model.outputs()),
            model,
        });
        // SAFETY: `out` is valid (checked non-null; the caller's contract).
        unsafe { *out = Box::into_raw(b) };
        Ok(())
    })
}

/// Reads every weight byte and compares the checksum recorded when
/// compiling (loading reads only the weights' index).
///
/// # Safety
/// `m` is a live model.
#[no_mangle]
pub unsafe extern "C" fn tl_model_verify_weights(m: *const TlModel) -> i32 {
    if m.is_null() {
        return invalid("tl_model_verify_weights needs a model");
    }
    // SAFETY: `m` is a live model.
    let m = unsafe { &*m };
    guard(|| m.model.verify_weights())
}

/// `tl_io_info`: one input or output of the signature.
#[repr(C)]
pub struct TlIoInfo {
    pub name: *const c_char,
    pub dtype: i32,
    pub rank: i32,
    /// Each dim's size, or -1 where it is symbolic.
    pub dims: *const i64,
    /// Each dim's symbol or expression ("s0", "2*s0"), or null where fixed.
    pub dim_names: *const *const c_char,
    /// Each dim's range: min and max (-1: unbounded); both the size for a
    /// fixed dim.
    pub dim_min: *const i64,
    pub dim_max: *const i64,
}

/// The owned strings and arrays behind a `TlIoInfo`.
struct IoInfo {
    name: CString,
    dtype: i32,
    dims: Vec<i64>,
    names: Vec<Option<CString>>,
    name_ptrs: Vec<*const c_char>,
    min: Vec<i64>,
    max: Vec<i64>,
}

impl IoInfo {
    fn new(spec: crate::api::IoSpec) -> IoInfo {
        use crate::api::DimSpec;
        let c = |s: &str| CString::new(s.replace('\0', " ")).unwrap_or_default();
        let mut info = IoInfo {
            name: c(&spec.name),
            dtype: dtype_code(spec.dtype),
            dims: Vec::new(),
            names: Vec::new(),
            name_ptrs: Vec::new(),
            min: Vec::new(),
            max: Vec::new(),
        };
        for d in &spec.dims {
            let (size, name, lo, hi) = match d {
                DimSpec::Fixed(n) => (*n as i64, None, *n as i64, *n as i64),
                DimSpec::Symbol { name, min, max } => (-1, Some(c(name)), *min, max.unwrap_or(-1)),
                DimSpec::Expr(e) => (-1, Some(c(e)), 0, -1),
            };
            info.dims.push(size);
            info.names.push(name);
            info.min.push(lo);
            info.max.push(hi);
        }
        info.name_ptrs = info
            .names
            .iter()
            .map(|n| n.as_ref().map_or(std::ptr::null(), |n| n.as_ptr()))
            .collect();
        info
    }

    fn c(&self) -> TlIoInfo {
        TlIoInfo {
            name: self.name.as_ptr(),
            dtype: self.dtype,
            rank: self.dims.len() as i32,
            dims: self.dims.as_ptr(),
            dim_names: self.name_ptrs.as_ptr(),
            dim_min: self.min.as_ptr(),
            dim_max: self.max.as_ptr(),
        }
    }
}

/// Describes input `i` (`outputs` == 0) or output `i` (`outputs` != 0). The
/// strings and arrays belong to the model.
///
/// # Safety
/// `m` is a live model; `out` is valid.
#[no_mangle]
pub unsafe extern "C" fn tl_model_io(
    m: *const TlModel,
    outputs: i32,
    i: i32,
    out: *mut TlIoInfo,
) -> i32 {
    if m.is_null() || out.is_null() {
        return invalid("tl_model_io needs a model and an output pointer");
    }
    // SAFETY: `m` is a live model.
    let m = unsafe { &*m };
    let list = if outputs != 0 { &m.outputs } else { &m.inputs };
    let Some(info) = usize::try_from(i).ok().and_then(|i| list.get(i)) else {
        return invalid("no such input or output");
    };
    // SAFETY: `out` is valid.
    unsafe { *out = info.c() };
    TL_OK
}

/// # Safety
/// `m` is null or a model from `tl_model_create` with no live session.
#[no_mangle]
pub unsafe extern "C" fn tl_model_destroy(m: *mut TlModel) {
    if !m.is_null() {
        // SAFETY: `m` came from `Box::into_raw` in `tl_model_create`.
        drop(unsafe { Box::from_raw(m) });
    }
}

/// The number of user inputs (`inputs`) or outputs (`outputs` != 0).
///
/// # Safety
/// `m` is a live model.
#[no_mangle]
pub unsafe extern "C" fn tl_model_count(m: *const TlModel, outputs: i32) -> i32 {
    if m.is_null() {
        return -1;
    }
    // SAFETY: `m` is a live model.
    let m = unsafe { &*m };
    let n = if outputs != 0 {
        m.outputs.len()
    } else {
        m.inputs.len()
    };
    n as i32
}

/// Creates a session: the model's state as loaded and an empty arena.
///
/// # Safety
/// `m` is a live model that outlives the session; `out` is valid.
#[no_mangle]
pub unsafe extern "C" fn tl_session_create(m: *const TlModel, out: *mut *mut TlSession) -> i32 {
    if m.is_null() || out.is_null() {
        return invalid("tl_session_create needs a model and an output pointer");
    }
    guard(|| {
        // SAFETY: `m` is a live model.
        let session = unsafe { &*m }.model.session();
        let b = Box::new(TlSession {
            session,
            outputs: Vec::new(),
        });
        // SAFETY: `out` is valid.
        unsafe { *out = Box::into_raw(b) };
        Ok(())
    })
}

/// # Safety
/// `s` is null or a session from `tl_session_create`.
#[no_mangle]
pub unsafe extern "C" fn tl_session_destroy(s: *mut TlSession) {
    if !s.is_null() {
        // SAFETY: `s` came from `Box::into_raw` in `tl_session_create`.
        drop(unsafe { Box::from_raw(s) });
    }
}

/// Calls the model on `n` user inputs in signature order. The outputs are
/// read with `tl_session_output` until the next call.
///
/// # Safety
/// `s` is a live session used by this thread only; `inputs` points at `n`
/// tensors whose `shape` has `rank` entries and whose `data` holds the
/// dense elements.
#[no_mangle]
pub unsafe extern "C" fn tl_session_run(s: *mut TlSession, inputs: *const TlTensor, n: i32) -> i32 {
    if s.is_null() || (inputs.is_null() && n != 0) || n < 0 {
        return invalid("tl_session_run needs a session and its inputs");
    }
    // SAFETY: `s` is a live session of this thread.
    let s = unsafe { &mut *s };
    guard(|| {
        let mut ts = Vec::with_capacity(n as usize);
        for i in 0..n as usize {
            // SAFETY: `inputs` has `n` elements.
            let t = unsafe { &*inputs.add(i) };
            // SAFETY: the caller's contract for `inputs`.
            ts.push(unsafe { tensor_from_c(t, i)? });
        }
        let outs = s.session.run(&mut ts)?;
        s.outputs = outs
            .iter()
            .map(|t| {
                let shape = t.sizes().iter().map(|&d| d as i64).collect();
                (t.dtype(), shape, t.to_contiguous_bytes())
            })
            .collect();
        Ok(())
    })
}

/// # Safety
/// `t.shape` has `t.rank` entries and `t.data` the dense bytes they give.
pub(crate) unsafe fn tensor_from_c(t: &TlTensor, i: usize) -> Result<Tensor> {
    let dtype = dtype_of(t.dtype)
        .ok_or_else(|| Error::input(format!("#{i}"), format!("has dtype code {}", t.dtype)))?;
    if t.rank < 0 || t.rank > 64 || (t.rank > 0 && t.shape.is_null()) {
        return Err(Error::input(
            format!("#{i}"),
            format!("has rank {}", t.rank),
        ));
    }
    let shape: &[i64] = if t.rank == 0 {
        &[]
    } else {
        // SAFETY: `shape` has `rank` entries (the caller's contract).
        unsafe { std::slice::from_raw_parts(t.shape, t.rank as usize) }
    };
    let numel = shape
        .iter()
        .try_fold(1usize, |a, &d| {
            usize::try_from(d).ok().and_then(|d| a.checked_mul(d))
        })
        .ok_or_else(|| Error::input(format!("#{i}"), format!("has shape {shape:?}")))?;
    let len = numel
        .checked_mul(dtype.size_bytes())
        .ok_or_else(|| Error::input(format!("#{i}"), "is too large"))?;
    if t.data.is_null() && len > 0 {
        return Err(Error::input(format!("#{i}"), "has no data"));
    }
    let bytes: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: `data` holds the dense elements (the caller's contract).
        unsafe { std::slice::from_raw_parts(t.data, len) }
    };
    Tensor::from_dense_bytes(dtype, shape, bytes)
}

/// Output `i` of the last call: dtype, rank, shape and dense data, owned by
/// the session and valid until its next call or its destruction.
///
/// # Safety
/// `s` is a live session; `out` is valid.
#[no_mangle]
pub unsafe extern "C" fn tl_session_output(s: *const TlSession, i: i32, out: *mut TlTensor) -> i32 {
    if s.is_null() || out.is_null() {
        return invalid("tl_session_output needs a session and an output pointer");
    }
    // SAFETY: `s` is a live session.
    let s = unsafe { &*s };
    let Some((d, shape, bytes)) = usize::try_from(i).ok().and_then(|i| s.outputs.get(i)) else {
        return invalid("no such output of the last call");
    };
    // SAFETY: `out` is valid.
    unsafe {
        *out = TlTensor {
            dtype: dtype_code(*d),
            rank: shape.len() as i32,
            shape: shape.as_ptr(),
            data: bytes.as_ptr().cast_mut(),
        };
    }
    TL_OK
}

/// The message of this thread's last failed call ("" if none).
#[no_mangle]
pub extern "C" fn tl_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}
