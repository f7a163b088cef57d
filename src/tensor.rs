//! The tensor of weights, inputs and outputs: a strided view into shared,
//! typed storage, with ndarray and `.npy` conversion. A leaf: it imports
//! nothing from the passes, the interpreter or the compiler, which all use
//! it.
//!
//! Views (`view`, `select`, `slice`, `transpose`, `as_strided`, ...) share
//! storage with their base, so an in-place write through a view (`copy_`,
//! `fill_`) is visible through the base, as in torch.

use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ndarray::{ArrayD, IxDyn};

use crate::dtype::DType;
use crate::error::{Error, Result};

/// An IEEE half-precision value, stored as its bit pattern.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct F16(pub u16);

/// A bfloat16 value, stored as its bit pattern.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct BF16(pub u16);

impl F16 {
    pub fn from_f32(x: f32) -> F16 {
        F16(torchlift_runtime::scalar::f32_to_f16(x))
    }

    pub fn to_f32(self) -> f32 {
        torchlift_runtime::scalar::f16_to_f32(self.0)
    }
}

impl BF16 {
    pub fn from_f32(x: f32) -> BF16 {
        let b = x.to_bits();
        if x.is_nan() {
            return BF16(((b >> 16) | 0x40) as u16);
        }
        let r = b.wrapping_add(0x7fff + ((b >> 16) & 1));
        BF16((r >> 16) as u16)
    }

    pub fn to_f32(self) -> f32 {
        f32::from_bits((self.0 as u32) << 16)
    }
}

/// Typed, shared element storage.
#[derive(Clone, Debug)]
pub enum Storage {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    I16(Vec<i16>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    Bool(Vec<bool>),
    F16(Vec<F16>),
    BF16(Vec<BF16>),
}

impl Storage {
    pub fn len(&self) -> usize {
        match self {
            Storage::F32(v) => v.len(),
            Storage::F64(v) => v.len(),
            Storage::I64(v) => v.len(),
            Storage::I32(v) => v.len(),
            Storage::I16(v) => v.len(),
            Storage::I8(v) => v.len(),
            Storage::U8(v) => v.len(),
            Storage::Bool(v) => v.len(),
            Storage::F16(v) => v.len(),
            Storage::BF16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A Rust element type that backs one [`DType`].
pub trait Element: Copy + Default + Send + Sync + std::fmt::Debug + 'static {
    const DTYPE: DType;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    fn to_i64(self) -> i64;
    fn from_i64(v: i64) -> Self;
    fn is_nonzero(self) -> bool;
    /// Addition as torch does it for this dtype (wrapping for ints, `or` for bool).
    fn add(self, o: Self) -> Self;
    /// Multiplication as torch does it for this dtype (`and` for bool).
    fn mul(self, o: Self) -> Self;
    fn storage_vec(s: &Storage) -> Option<&Vec<Self>>;
    fn storage_vec_mut(s: &mut Storage) -> Option<&mut Vec<Self>>;
    fn into_storage(v: Vec<Self>) -> Storage;
    fn write_le(self, out: &mut Vec<u8>);
    /// `b` has exactly `DTYPE.size_bytes()` bytes.
    fn read_le(b: &[u8]) -> Self;
}

macro_rules! int_element {
    ($t:ty, $dt:ident, $n:expr) => {
        impl Element for $t {
            const DTYPE: DType = DType::$dt;
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_i64(self) -> i64 {
                self as i64
            }
            #[inline]
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            #[inline]
            fn is_nonzero(self) -> bool {
                self != 0
            }
            #[inline]
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            #[inline]
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            fn storage_vec(s: &Storage) -> Option<&Vec<Self>> {
                match s {
                    Storage::$dt(v) => Some(v),
                    _ => None,
                }
            }
            fn storage_vec_mut(s: &mut Storage) -> Option<&mut Vec<Self>> {
                match s {
                    Storage::$dt(v) => Some(v),
                    _ => None,
                }
            }
            fn into_storage(v: Vec<Self>) -> Storage {
                Storage::$dt(v)
            }
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn read_le(b: &[u8]) -> Self {
                let mut a = [0u8; $n];
                a.copy_from_slice(&b[..$n]);
                <$t>::from_le_bytes(a)
            }
        }
    };
}

int_element!(i64, I64, 8);
int_element!(i32, I32, 4);
int_element!(i16, I16, 2);
int_element!(i8, I8, 1);
int_element!(u8, U8, 1);

macro_rules! float_element {
    ($t:ty, $dt:ident, $n:expr) => {
        impl Element for $t {
            const DTYPE: DType = DType::$dt;
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_i64(self) -> i64 {
                self as i64
            }
            #[inline]
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            #[inline]
            fn is_nonzero(self) -> bool {
                self != 0.0
            }
            #[inline]
            fn add(self, o: Self) -> Self {
                self + o
            }
            #[inline]
            fn mul(self, o: Self) -> Self {
                self * o
            }
            fn storage_vec(s: &Storage) -> Option<&Vec<Self>> {
                match s {
                    Storage::$dt(v) => Some(v),
                    _ => None,
                }
            }
            fn storage_vec_mut(s: &mut Storage) -> Option<&mut Vec<Self>> {
                match s {
                    Storage::$dt(v) => Some(v),
                    _ => None,
                }
            }
            fn into_storage(v: Vec<Self>) -> Storage {
                Storage::$dt(v)
            }
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn read_le(b: &[u8]) -> Self {
                let mut a = [0u8; $n];
                a.copy_from_slice(&b[..$n]);
                <$t>::from_le_bytes(a)
            }
        }
    };
}

float_element!(f32, F32, 4);
float_element!(f64, F64, 8);

macro_rules! half_element {
    ($t:ident, $dt:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$dt;
            #[inline]
            fn to_f64(self) -> f64 {
                self.to_f32() as f64
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                $t::from_f32(v as f32)
            }
            #[inline]
            fn to_i64(self) -> i64 {
                self.to_f32() as i64
            }
            #[inline]
            fn from_i64(v: i64) -> Self {
                $t::from_f32(v as f32)
            }
            #[inline]
            fn is_nonzero(self) -> bool {
                self.to_f32() != 0.0
            }
            fn add(self, o: Self) -> Self {
                $t::from_f32(self.to_f32() + o.to_f32())
            }
            fn mul(self, o: Self) -> Self {
                $t::from_f32(self.to_f32() * o.to_f32())
            }
            fn storage_vec(s: &Storage) -> Option<&Vec<Self>> {
                match s {
                    Storage::$dt(v) => Some(v),
                    _ => None,
                }
            }
            fn storage_vec_mut(s: &mut Storage) -> Option<&mut Vec<Self>> {
                match s {
                    Storage::$dt(v) => Some(v),
                    _ => None,
                }
            }
            fn into_storage(v: Vec<Self>) -> Storage {
                Storage::$dt(v)
            }
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.0.to_le_bytes());
            }
            fn read_le(b: &[u8]) -> Self {
                $t(u16::from_le_bytes([b[0], b[1]]))
            }
        }
    };
}

half_element!(F16, F16);
half_element!(BF16, BF16);

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    #[inline]
    fn to_f64(self) -> f64 {
        self as i64 as f64
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    #[inline]
    fn to_i64(self) -> i64 {
        self as i64
    }
    #[inline]
    fn from_i64(v: i64) -> Self {
        v != 0
    }
    #[inline]
    fn is_nonzero(self) -> bool {
        self
    }
    fn add(self, o: Self) -> Self {
        self | o
    }
    fn mul(self, o: Self) -> Self {
        self & o
    }
    fn storage_vec(s: &Storage) -> Option<&Vec<Self>> {
        match s {
            Storage::Bool(v) => Some(v),
            _ => None,
        }
    }
    fn storage_vec_mut(s: &mut Storage) -> Option<&mut Vec<Self>> {
        match s {
            Storage::Bool(v) => Some(v),
            _ => None,
        }
    }
    fn into_storage(v: Vec<Self>) -> Storage {
        Storage::Bool(v)
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
    fn read_le(b: &[u8]) -> Self {
        b[0] != 0
    }
}

/// Converts one element between dtypes with torch's cast rules
/// (float to int truncates toward zero, anything to bool is `!= 0`).
#[inline]
pub fn cast<S: Element, D: Element>(s: S) -> D {
    if S::DTYPE.is_float() {
        D::from_f64(s.to_f64())
    } else if D::DTYPE == DType::Bool {
        D::from_i64(s.is_nonzero() as i64)
    } else {
        D::from_i64(s.to_i64())
    }
}

/// Runs `$body` with `$T` bound to the element type of `$dt` (every dtype).
macro_rules! dispatch_all {
    ($dt:expr, $T:ident, $body:expr) => {
        match $dt {
            $crate::dtype::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::dtype::DType::F64 => {
                type $T = f64;
                $body
            }
            $crate::dtype::DType::I64 => {
                type $T = i64;
                $body
            }
            $crate::dtype::DType::I32 => {
                type $T = i32;
                $body
            }
            $crate::dtype::DType::I16 => {
                type $T = i16;
                $body
            }
            $crate::dtype::DType::I8 => {
                type $T = i8;
                $body
            }
            $crate::dtype::DType::U8 => {
                type $T = u8;
                $body
            }
            $crate::dtype::DType::Bool => {
                type $T = bool;
                $body
            }
            $crate::dtype::DType::F16 => {
                type $T = $crate::tensor::F16;
                $body
            }
            $crate::dtype::DType::BF16 => {
                type $T = $crate::tensor::BF16;
                $body
            }
        }
    };
}
pub(crate) use dispatch_all;

/// A Python number argument.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
}

impl Scalar {
    pub fn to_f64(self) -> f64 {
        match self {
            Scalar::Bool(b) => b as i64 as f64,
            Scalar::Int(i) => i as f64,
            Scalar::Float(f) => f,
        }
    }

    /// Truncates floats toward zero.
    pub fn to_i64(self) -> i64 {
        match self {
            Scalar::Bool(b) => b as i64,
            Scalar::Int(i) => i,
            Scalar::Float(f) => f as i64,
        }
    }

    pub fn to_bool(self) -> bool {
        match self {
            Scalar::Bool(b) => b,
            Scalar::Int(i) => i != 0,
            Scalar::Float(f) => f != 0.0,
        }
    }

    /// The dtype torch gives a wrapped Python number: bool, i64, or the
    /// default float dtype f32.
    pub fn default_dtype(self) -> DType {
        match self {
            Scalar::Bool(_) => DType::Bool,
            Scalar::Int(_) => DType::I64,
            Scalar::Float(_) => DType::F32,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Scalar::Float(_))
    }

    fn cast<T: Element>(self) -> T {
        match self {
            Scalar::Bool(b) => T::from_i64(b as i64),
            Scalar::Int(i) => T::from_i64(i),
            Scalar::Float(f) => T::from_f64(f),
        }
    }
}

impl From<f64> for Scalar {
    fn from(v: f64) -> Self {
        Scalar::Float(v)
    }
}
impl From<i64> for Scalar {
    fn from(v: i64) -> Self {
        Scalar::Int(v)
    }
}
impl From<bool> for Scalar {
    fn from(v: bool) -> Self {
        Scalar::Bool(v)
    }
}

/// An n-d array of one of the dtypes `.npy` interop supports.
#[derive(Clone, Debug)]
pub enum AnyArray {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    I64(ArrayD<i64>),
    I32(ArrayD<i32>),
    Bool(ArrayD<bool>),
}

/// A strided view into shared storage. Cloning shares the storage.
#[derive(Clone)]
pub struct Tensor {
    storage: Arc<RwLock<Storage>>,
    sizes: Vec<usize>,
    strides: Vec<isize>,
    offset: usize,
    dtype: DType,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor({}, sizes={:?}, strides={:?}, offset={}, values={:?})",
            self.dtype,
            self.sizes,
            self.strides,
            self.offset,
            if self.numel() <= 16 {
                self.to_f64_vec()
            } else {
                vec![]
            }
        )
    }
}

/// Row-major strides of `sizes`.
pub fn contiguous_strides(sizes: &[usize]) -> Vec<isize> {
    let mut s = vec![0isize; sizes.len()];
    let mut acc = 1isize;
    for d in (0..sizes.len()).rev() {
        s[d] = acc;
        acc *= sizes[d].max(1) as isize;
    }
    s
}

/// Calls `f` with every storage offset of a strided view, in C order.
pub fn for_each_offset(
    sizes: &[usize],
    strides: &[isize],
    offset: usize,
    mut f: impl FnMut(usize),
) {
    if sizes.contains(&0) {
        return;
    }
    let nd = sizes.len();
    if nd == 0 {
        f(offset);
        return;
    }
    let last = sizes[nd - 1];
    let ls = strides[nd - 1];
    let mut idx = vec![0usize; nd - 1];
    let mut base = offset as isize;
    loop {
        if ls == 1 {
            let b = base as usize;
            for o in b..b + last {
                f(o);
            }
        } else {
            for i in 0..last {
                f((base + i as isize * ls) as usize);
            }
        }
        let mut d = nd - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            base += strides[d];
            if idx[d] < sizes[d] {
                break;
            }
            base -= strides[d] * sizes[d] as isize;
            idx[d] = 0;
        }
    }
}

/// Wraps a possibly negative dim for a tensor of rank `ndim` (a 0-d tensor
/// accepts dims -1 and 0, as torch does).
pub fn wrap_dim(dim: i64, ndim: usize) -> Result<usize> {
    let n = ndim.max(1) as i64;
    if dim < -n || dim >= n {
        return Err(Error::other(format!(
            "dimension {dim} out of range for a tensor of rank {ndim}"
        )));
    }
    Ok(if dim < 0 { dim + n } else { dim } as usize)
}

/// Torch broadcasting of two shapes.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let x = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let y = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = if x == y || y == 1 {
            x
        } else if x == 1 {
            y
        } else {
            return Err(Error::other(format!(
                "shapes {a:?} and {b:?} are not broadcastable"
            )));
        };
    }
    Ok(out)
}

fn usizes(v: &[i64], what: &str) -> Result<Vec<usize>> {
    v.iter()
        .map(|&x| {
            usize::try_from(x)
                .map_err(|_| Error::other(format!("{what}: negative value {x} in {v:?}")))
        })
        .collect()
}

fn numel_of(sizes: &[usize]) -> Result<usize> {
    sizes
        .iter()
        .try_fold(1usize, |a, &s| a.checked_mul(s))
        .ok_or_else(|| Error::other(format!("shape {sizes:?} has too many elements")))
}

/// Torch's `computeStride`: strides for viewing (`oldshape`, `oldstride`) as
/// `newshape` without a copy, if possible.
fn compute_stride(
    oldshape: &[usize],
    oldstride: &[isize],
    newshape: &[usize],
) -> Option<Vec<isize>> {
    if oldshape.is_empty() {
        return Some(vec![1; newshape.len()]);
    }
    let numel: usize = oldshape.iter().product();
    if numel == 0 {
        return Some(contiguous_strides(newshape));
    }
    let mut newstride = vec![0isize; newshape.len()];
    let mut view_d = newshape.len() as isize - 1;
    let mut chunk_base_stride = *oldstride.last()?;
    let mut tensor_numel = 1usize;
    let mut view_numel = 1usize;
    for tensor_d in (0..oldshape.len()).rev() {
        tensor_numel *= oldshape[tensor_d];
        if tensor_d == 0
            || (oldshape[tensor_d - 1] != 1
                && oldstride[tensor_d - 1] != tensor_numel as isize * chunk_base_stride)
        {
            while view_d >= 0 && (view_numel < tensor_numel || newshape[view_d as usize] == 1) {
                newstride[view_d as usize] = view_numel as isize * chunk_base_stride;
                view_numel *= newshape[view_d as usize];
                view_d -= 1;
            }
            if view_numel != tensor_numel {
                return None;
            }
            if tensor_d > 0 {
                chunk_base_stride = oldstride[tensor_d - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    if view_d != -1 {
        return None;
    }
    Some(newstride)
}

impl Tensor {
    // ---------------------------------------------------------------- construction

    /// A contiguous tensor owning `data`.
    pub fn from_vec<T: Element>(data: Vec<T>, sizes: &[usize]) -> Result<Tensor> {
        let n = numel_of(sizes)?;
        if n != data.len() {
            return Err(Error::other(format!(
                "{} elements do not fill shape {sizes:?}",
                data.len()
            )));
        }
        Ok(Tensor {
            storage: Arc::new(RwLock::new(T::into_storage(data))),
            sizes: sizes.to_vec(),
            strides: contiguous_strides(sizes),
            offset: 0,
            dtype: T::DTYPE,
        })
    }

    pub fn from_vec_f32(data: Vec<f32>, sizes: &[usize]) -> Result<Tensor> {
        Self::from_vec(data, sizes)
    }

    /// Internal: `data.len()` is known to equal the numel of `sizes`.
    pub(crate) fn from_vec_unchecked<T: Element>(data: Vec<T>, sizes: &[usize]) -> Tensor {
        debug_assert_eq!(data.len(), sizes.iter().product::<usize>());
        Tensor {
            storage: Arc::new(RwLock::new(T::into_storage(data))),
            sizes: sizes.to_vec(),
            strides: contiguous_strides(sizes),
            offset: 0,
            dtype: T::DTYPE,
        }
    }

    /// A 0-d tensor holding `v` cast to `dtype`.
    pub fn scalar_f64(v: f64, dtype: DType) -> Tensor {
        Self::full(dtype, &[], Scalar::Float(v))
    }

    /// A 0-d tensor holding `s` cast to `dtype`.
    pub fn scalar(s: Scalar, dtype: DType) -> Tensor {
        Self::full(dtype, &[], s)
    }

    pub fn zeros(dtype: DType, sizes: &[usize]) -> Tensor {
        Self::full(dtype, sizes, Scalar::Int(0))
    }

    /// A contiguous tensor filled with `value` cast to `dtype`.
    pub fn full(dtype: DType, sizes: &[usize], value: Scalar) -> Tensor {
        let n: usize = sizes.iter().product();
        dispatch_all!(dtype, T, {
            let v: T = value.cast::<T>();
            Self::from_vec_unchecked(vec![v; n], sizes)
        })
    }

    /// A tensor of `sizes` from the little-endian bytes of its elements in
    /// row-major order; `bytes` must hold exactly that many elements.
    pub fn from_dense_bytes(dtype: DType, sizes: &[i64], bytes: &[u8]) -> Result<Tensor> {
        let numel = sizes.iter().try_fold(1usize, |a, &d| {
            usize::try_from(d).ok().and_then(|d| a.checked_mul(d))
        });
        if numel.and_then(|n| n.checked_mul(dtype.size_bytes())) != Some(bytes.len()) {
            return Err(Error::other(format!(
                "{} bytes are not a dense {dtype} tensor of shape {sizes:?}",
                bytes.len()
            )));
        }
        let mut strides = vec![1i64; sizes.len()];
        for k in (0..sizes.len().saturating_sub(1)).rev() {
            strides[k] = strides[k + 1] * sizes[k + 1].max(1);
        }
        Tensor::from_raw_bytes(dtype, sizes, &strides, 0, bytes)
    }

    /// A view of little-endian raw bytes (`sizes`, `strides` and the offset in
    /// elements, as torch stores them).
    pub fn from_raw_bytes(
        dtype: DType,
        sizes: &[i64],
        strides: &[i64],
        storage_offset: i64,
        bytes: &[u8],
    ) -> Result<Tensor> {
        let es = dtype.size_bytes();
        if bytes.len() % es != 0 {
            return Err(Error::other(format!(
                "{} bytes are not a whole number of {dtype} elements",
                bytes.len()
            )));
        }
        let len = bytes.len() / es;
        let storage = dispatch_all!(dtype, T, {
            T::into_storage(bytes.chunks_exact(es).map(T::read_le).collect::<Vec<T>>())
        });
        let base = Tensor {
            storage: Arc::new(RwLock::new(storage)),
            sizes: vec![len],
            strides: vec![1],
            offset: 0,
            dtype,
        };
        base.as_strided(sizes, strides, Some(storage_offset))
    }

    /// The elements in C order as little-endian bytes.
    pub fn to_contiguous_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.numel() * self.dtype.size_bytes());
        dispatch_all!(self.dtype, T, {
            for x in self.to_vec_as::<T>() {
                x.write_le(&mut out);
            }
        });
        out
    }

    // ---------------------------------------------------------------- accessors

    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }
    pub fn strides(&self) -> &[isize] {
        &self.strides
    }
    pub fn storage_offset(&self) -> usize {
        self.offset
    }
    pub fn dim(&self) -> usize {
        self.sizes.len()
    }
    /// Size of dim `d` (negative counts from the end).
    pub fn size(&self, d: i64) -> Result<usize> {
        if self.sizes.is_empty() {
            return Err(Error::other("size(): a 0-d tensor has no dims"));
        }
        Ok(self.sizes[wrap_dim(d, self.dim())?])
    }
    pub fn numel(&self) -> usize {
        self.sizes.iter().product()
    }
    /// True when both tensors view the same storage.
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }
    /// Read access to the whole shared storage (index it with `strides()` and
    /// `storage_offset()`).
    pub fn storage(&self) -> RwLockReadGuard<'_, Storage> {
        self.storage.read().unwrap_or_else(|e| e.into_inner())
    }
    fn storage_mut(&self) -> RwLockWriteGuard<'_, Storage> {
        self.storage.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `f` with the whole storage slice; `T` must match the dtype.
    pub fn with_data<T: Element, R>(&self, f: impl FnOnce(&[T]) -> R) -> Result<R> {
        let g = self.storage();
        let v = T::storage_vec(&g).ok_or_else(|| self.type_mismatch(T::DTYPE))?;
        Ok(f(v))
    }

    /// Calls `f` with the whole storage slice, writable; `T` must match the
    /// dtype. Writes are seen by every view of the storage.
    pub fn with_data_mut<T: Element, R>(&self, f: impl FnOnce(&mut [T]) -> R) -> Result<R> {
        let mut g = self.storage_mut();
        let dt = self.dtype;
        let v = T::storage_vec_mut(&mut g)
            .ok_or_else(|| Error::other(format!("tensor has dtype {dt}, not {}", T::DTYPE)))?;
        Ok(f(v))
    }

    fn type_mismatch(&self, want: DType) -> Error {
        Error::other(format!("tensor has dtype {}, not {want}", self.dtype))
    }

    pub fn is_contiguous(&self) -> bool {
        let mut acc = 1isize;
        for d in (0..self.sizes.len()).rev() {
            if self.sizes[d] != 1 && self.strides[d] != acc {
                return false;
            }
            acc *= self.sizes[d] as isize;
        }
        true
    }

    /// A contiguous tensor with the same values (`self` when already contiguous).
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous() {
            return self.clone();
        }
        self.clone_data()
    }

    /// A fresh contiguous copy that shares nothing with `self`.
    pub fn clone_data(&self) -> Tensor {
        dispatch_all!(self.dtype, T, {
            Self::from_vec_unchecked(self.to_vec_as::<T>(), &self.sizes)
        })
    }

    /// The elements in C order; `T` must match the dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype {
            return Err(self.type_mismatch(T::DTYPE));
        }
        Ok(self.to_vec_as::<T>())
    }

    /// The elements in C order, cast to `T`.
    pub fn to_vec_as<T: Element>(&self) -> Vec<T> {
        let n = self.numel();
        if n == 0 {
            return Vec::new();
        }
        let g = self.storage();
        dispatch_all!(self.dtype, S, {
            let Some(v) = S::storage_vec(&g) else {
                unreachable!("storage dtype agrees with tensor dtype")
            };
            if self.is_contiguous() {
                v[self.offset..self.offset + n]
                    .iter()
                    .map(|&x| cast::<S, T>(x))
                    .collect()
            } else {
                let mut out = Vec::with_capacity(n);
                for_each_offset(&self.sizes, &self.strides, self.offset, |o| {
                    out.push(cast::<S, T>(v[o]))
                });
                out
            }
        })
    }

    pub fn to_f64_vec(&self) -> Vec<f64> {
        self.to_vec_as::<f64>()
    }
    pub fn to_i64_vec(&self) -> Vec<i64> {
        self.to_vec_as::<i64>()
    }
    pub fn to_bool_vec(&self) -> Vec<bool> {
        self.to_vec_as::<bool>()
    }

    fn item_check(&self) -> Result<()> {
        if self.numel() != 1 {
            return Err(Error::other(format!(
                "a tensor of shape {:?} is not one element",
                self.sizes
            )));
        }
        Ok(())
    }
    pub fn item_f64(&self) -> Result<f64> {
        self.item_check()?;
        Ok(self.to_vec_as::<f64>()[0])
    }
    pub fn item_i64(&self) -> Result<i64> {
        self.item_check()?;
        Ok(self.to_vec_as::<i64>()[0])
    }
    /// The single element as a [`Scalar`] of the dtype's category.
    pub fn item(&self) -> Result<Scalar> {
        self.item_check()?;
        Ok(if self.dtype.is_float() {
            Scalar::Float(self.item_f64()?)
        } else if self.dtype == DType::Bool {
            Scalar::Bool(self.item_i64()? != 0)
        } else {
            Scalar::Int(self.item_i64()?)
        })
    }

    /// A copy cast to `dtype` (`self` when it already has that dtype).
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        if dtype == self.dtype {
            return self.clone();
        }
        dispatch_all!(dtype, T, {
            Self::from_vec_unchecked(self.to_vec_as::<T>(), &self.sizes)
        })
    }

    // ---------------------------------------------------------------- ndarray / npy

    pub fn to_array<T: Element>(&self) -> Result<ArrayD<T>> {
        let v = self.to_vec::<T>()?;
        ArrayD::from_shape_vec(IxDyn(&self.sizes), v).map_err(|e| Error::other(e.to_string()))
    }

    pub fn from_array<T: Element>(a: ArrayD<T>) -> Tensor {
        let sizes = a.shape().to_vec();
        let v: Vec<T> = a.iter().copied().collect();
        Self::from_vec_unchecked(v, &sizes)
    }

    pub fn to_any_array(&self) -> Result<AnyArray> {
        Ok(match self.dtype {
            DType::F32 => AnyArray::F32(self.to_array()?),
            DType::F64 => AnyArray::F64(self.to_array()?),
            DType::I64 => AnyArray::I64(self.to_array()?),
            DType::I32 => AnyArray::I32(self.to_array()?),
            DType::Bool => AnyArray::Bool(self.to_array()?),
            d => return Err(Error::other(format!("no array form for dtype {d}"))),
        })
    }

    pub fn from_any_array(a: AnyArray) -> Tensor {
        match a {
            AnyArray::F32(a) => Self::from_array(a),
            AnyArray::F64(a) => Self::from_array(a),
            AnyArray::I64(a) => Self::from_array(a),
            AnyArray::I32(a) => Self::from_array(a),
            AnyArray::Bool(a) => Self::from_array(a),
        }
    }

    /// Reads a `.npy` file of dtype f32, f64, i64, i32 or bool.
    pub fn read_npy(path: impl AsRef<Path>) -> Result<Tensor> {
        use ndarray_npy::read_npy;
        let p = path.as_ref();
        let io = |e: ndarray_npy::ReadNpyError| Error::other(format!("{}: {e}", p.display()));
        macro_rules! attempt {
            ($t:ty) => {
                match read_npy::<_, ArrayD<$t>>(p) {
                    Ok(a) => return Ok(Self::from_array(a)),
                    Err(ndarray_npy::ReadNpyError::WrongDescriptor(_)) => {}
                    Err(e) => return Err(io(e)),
                }
            };
        }
        attempt!(f32);
        attempt!(f64);
        attempt!(i64);
        attempt!(i32);
        attempt!(bool);
        Err(Error::other(format!(
            "{}: unsupported .npy dtype (want f32, f64, i64, i32 or bool)",
            p.display()
        )))
    }

    /// Writes a `.npy` file (dtypes f32, f64, i64, i32, bool).
    pub fn write_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        use ndarray_npy::write_npy;
        let p = path.as_ref();
        let r = match self.to_any_array()? {
            AnyArray::F32(a) => write_npy(p, &a),
            AnyArray::F64(a) => write_npy(p, &a),
            AnyArray::I64(a) => write_npy(p, &a),
            AnyArray::I32(a) => write_npy(p, &a),
            AnyArray::Bool(a) => write_npy(p, &a),
        };
        r.map_err(|e| Error::other(format!("{}: {e}", p.display())))
    }

    // ---------------------------------------------------------------- views

    fn with_geometry(&self, sizes: Vec<usize>, strides: Vec<isize>, offset: usize) -> Tensor {
        Tensor {
            storage: self.storage.clone(),
            sizes,
            strides,
            offset,
            dtype: self.dtype,
        }
    }

    /// `aten.alias`: a view of the same elements.
    pub fn alias(&self) -> Tensor {
        self.clone()
    }

    /// Resolves a shape with at most one -1 against `numel`.
    fn infer_shape(&self, shape: &[i64]) -> Result<Vec<usize>> {
        let n = self.numel();
        let mut infer = None;
        let mut known = 1usize;
        let mut out = Vec::with_capacity(shape.len());
        for (i, &s) in shape.iter().enumerate() {
            if s == -1 {
                if infer.is_some() {
                    return Err(Error::other(format!(
                        "shape {shape:?} has more than one -1"
                    )));
                }
                infer = Some(i);
                out.push(0);
            } else if s < 0 {
                return Err(Error::other(format!("invalid shape {shape:?}")));
            } else {
                known = known.saturating_mul(s as usize);
                out.push(s as usize);
            }
        }
        match infer {
            Some(i) => {
                if known == 0 || n % known != 0 {
                    return Err(Error::other(format!(
                        "shape {shape:?} is invalid for {n} elements"
                    )));
                }
                out[i] = n / known;
            }
            None if known != n => {
                return Err(Error::other(format!(
                    "shape {shape:?} is invalid for {n} elements"
                )))
            }
            None => {}
        }
        Ok(out)
    }

    /// `aten.view`: a view with a new shape (one dim may be -1); errors when
    /// the strides do not allow it.
    pub fn view(&self, shape: &[i64]) -> Result<Tensor> {
        let sizes = self.infer_shape(shape)?;
        match compute_stride(&self.sizes, &self.strides, &sizes) {
            Some(st) => Ok(self.with_geometry(sizes, st, self.offset)),
            None => Err(Error::other(format!(
                "view {shape:?} is not compatible with sizes {:?} and strides {:?}; use reshape",
                self.sizes, self.strides
            ))),
        }
    }

    /// `aten.reshape` / `aten._unsafe_view`: a view when possible, else a copy.
    pub fn reshape(&self, shape: &[i64]) -> Result<Tensor> {
        let sizes = self.infer_shape(shape)?;
        match compute_stride(&self.sizes, &self.strides, &sizes) {
            Some(st) => Ok(self.with_geometry(sizes, st, self.offset)),
            None => {
                let c = self.clone_data();
                let st = contiguous_strides(&sizes);
                Ok(c.with_geometry(sizes, st, 0))
            }
        }
    }

    /// Reshape to a `usize` shape (must have the same numel).
    pub fn reshape_usize(&self, sizes: &[usize]) -> Result<Tensor> {
        let s: Vec<i64> = sizes.iter().map(|&x| x as i64).collect();
        self.reshape(&s)
    }

    /// `aten.permute`.
    pub fn permute(&self, dims: &[i64]) -> Result<Tensor> {
        let nd = self.dim();
        if dims.len() != nd {
            return Err(Error::other(format!(
                "permute: {} dims given for a tensor of rank {nd}",
                dims.len()
            )));
        }
        let mut seen = vec![false; nd];
        let mut sizes = Vec::with_capacity(nd);
        let mut strides = Vec::with_capacity(nd);
        for &d in dims {
            let d = wrap_dim(d, nd)?;
            if seen[d] {
                return Err(Error::other(format!("permute: repeated dim in {dims:?}")));
            }
            seen[d] = true;
            sizes.push(self.sizes[d]);
            strides.push(self.strides[d]);
        }
        Ok(self.with_geometry(sizes, strides, self.offset))
    }

    /// `aten.transpose.int`.
    pub fn transpose(&self, d0: i64, d1: i64) -> Result<Tensor> {
        if self.dim() == 0 {
            wrap_dim(d0, 0)?;
            wrap_dim(d1, 0)?;
            return Ok(self.clone());
        }
        let a = wrap_dim(d0, self.dim())?;
        let b = wrap_dim(d1, self.dim())?;
        let mut t = self.clone();
        t.sizes.swap(a, b);
        t.strides.swap(a, b);
        Ok(t)
    }

    /// `aten.t`: transpose of a tensor of rank <= 2.
    pub fn t(&self) -> Result<Tensor> {
        match self.dim() {
            0 | 1 => Ok(self.clone()),
            2 => self.transpose(0, 1),
            n => Err(Error::other(format!("t() expects rank <= 2, got rank {n}"))),
        }
    }

    /// Moves dim `src` to position `dst` (a view).
    pub fn movedim(&self, src: i64, dst: i64) -> Result<Tensor> {
        let nd = self.dim();
        if nd == 0 {
            return Ok(self.clone());
        }
        let s = wrap_dim(src, nd)?;
        let d = wrap_dim(dst, nd)?;
        let mut order: Vec<i64> = (0..nd as i64).filter(|&i| i as usize != s).collect();
        order.insert(d, s as i64);
        self.permute(&order)
    }

    /// `aten.expand`: broadcast to `sizes` (-1 keeps a dim) as a stride-0 view.
    pub fn expand(&self, sizes: &[i64]) -> Result<Tensor> {
        let n = sizes.len();
        let nd = self.dim();
        if n < nd {
            return Err(Error::other(format!(
                "expand: target {sizes:?} has fewer dims than {:?}",
                self.sizes
            )));
        }
        let mut out_sizes = vec![0usize; n];
        let mut out_strides = vec![0isize; n];
        for i in 0..n {
            let want = sizes[i];
            if i < n - nd {
                if want < 0 {
                    return Err(Error::other(format!(
                        "expand: -1 not allowed in new leading dim of {sizes:?}"
                    )));
                }
                out_sizes[i] = want as usize;
                out_strides[i] = 0;
                continue;
            }
            let j = i - (n - nd);
            let have = self.sizes[j];
            if want == -1 || want as usize == have {
                out_sizes[i] = have;
                out_strides[i] = self.strides[j];
            } else if have == 1 && want >= 0 {
                out_sizes[i] = want as usize;
                out_strides[i] = 0;
            } else {
                return Err(Error::other(format!(
                    "expand: cannot expand {:?} to {sizes:?}",
                    self.sizes
                )));
            }
        }
        numel_of(&out_sizes)?;
        Ok(self.with_geometry(out_sizes, out_strides, self.offset))
    }

    /// Broadcast view to `sizes` (usize form of [`Tensor::expand`]).
    pub fn broadcast_to(&self, sizes: &[usize]) -> Result<Tensor> {
        let s: Vec<i64> = sizes.iter().map(|&x| x as i64).collect();
        self.expand(&s)
    }

    /// `aten.unsqueeze`.
    pub fn unsqueeze(&self, dim: i64) -> Result<Tensor> {
        let d = wrap_dim(dim, self.dim() + 1)?;
        let mut t = self.clone();
        let st = if d < self.dim() {
            self.strides[d] * self.sizes[d] as isize
        } else {
            1
        };
        t.sizes.insert(d, 1);
        t.strides.insert(d, st);
        Ok(t)
    }

    /// `aten.squeeze.dims` / `aten.squeeze.dim`: drop the listed dims of size 1.
    pub fn squeeze_dims(&self, dims: &[i64]) -> Result<Tensor> {
        let nd = self.dim();
        let mut drop = vec![false; nd];
        for &d in dims {
            if nd == 0 {
                wrap_dim(d, 0)?;
                continue;
            }
            let d = wrap_dim(d, nd)?;
            if self.sizes[d] == 1 {
                drop[d] = true;
            }
        }
        let mut t = self.clone();
        t.sizes = Vec::new();
        t.strides = Vec::new();
        for (i, &dropped) in drop.iter().enumerate() {
            if !dropped {
                t.sizes.push(self.sizes[i]);
                t.strides.push(self.strides[i]);
            }
        }
        Ok(t)
    }

    /// `aten.squeeze`: drop every dim of size 1.
    pub fn squeeze(&self) -> Tensor {
        let dims: Vec<i64> = (0..self.dim() as i64).collect();
        self.squeeze_dims(&dims).unwrap_or_else(|_| self.clone())
    }

    /// `aten.select.int`.
    pub fn select(&self, dim: i64, index: i64) -> Result<Tensor> {
        if self.dim() == 0 {
            return Err(Error::other("select() cannot be applied to a 0-d tensor"));
        }
        let d = wrap_dim(dim, self.dim())?;
        let n = self.sizes[d] as i64;
        if index < -n || index >= n {
            return Err(Error::other(format!(
                "select(): index {index} out of range for dim {d} of size {n}"
            )));
        }
        let i = if index < 0 { index + n } else { index };
        let mut t = self.clone();
        t.offset = (self.offset as isize + i as isize * self.strides[d]) as usize;
        t.sizes.remove(d);
        t.strides.remove(d);
        Ok(t)
    }

    /// `aten.slice.Tensor` with torch's clamping of `start`/`end` (`None`
    /// means the full range; negative values count from the end).
    pub fn slice(
        &self,
        dim: i64,
        start: Option<i64>,
        end: Option<i64>,
        step: i64,
    ) -> Result<Tensor> {
        if self.dim() == 0 {
            return Err(Error::other("slice() cannot be applied to a 0-d tensor"));
        }
        if step <= 0 {
            return Err(Error::other(format!(
                "slice step must be positive, got {step}"
            )));
        }
        let d = wrap_dim(dim, self.dim())?;
        let n = self.sizes[d] as i64;
        let norm = |v: i64| {
            let v = if v < 0 { v.saturating_add(n) } else { v };
            v.clamp(0, n)
        };
        let s = norm(start.unwrap_or(0));
        let e = norm(end.unwrap_or(n)).max(s);
        let len = if e == s { 0 } else { (e - s - 1) / step + 1 };
        // A step beyond the dim size selects at most one element; clamping it
        // keeps the stride product small.
        let step = step.min(n.max(1));
        let mut t = self.clone();
        t.offset = (self.offset as isize + s as isize * self.strides[d]) as usize;
        t.sizes[d] = len as usize;
        t.strides[d] = self.strides[d] * step as isize;
        Ok(t)
    }

    /// `aten.narrow`.
    pub fn narrow(&self, dim: i64, start: i64, length: i64) -> Result<Tensor> {
        let n = self.size(dim)? as i64;
        let s = if start < 0 { start + n } else { start };
        if s < 0 || s > n || length < 0 || length > n - s {
            return Err(Error::other(format!(
                "narrow: start {start} length {length} out of range for size {n}"
            )));
        }
        self.slice(dim, Some(s), Some(s + length), 1)
    }

    /// `aten.as_strided` over the same storage; `offset` None keeps the current one.
    pub fn as_strided(
        &self,
        sizes: &[i64],
        strides: &[i64],
        offset: Option<i64>,
    ) -> Result<Tensor> {
        if sizes.len() != strides.len() {
            return Err(Error::other(format!(
                "as_strided: sizes {sizes:?} and strides {strides:?} differ in length"
            )));
        }
        let sz = usizes(sizes, "as_strided sizes")?;
        let st = usizes(strides, "as_strided strides")?;
        let off = match offset {
            Some(o) => usize::try_from(o)
                .map_err(|_| Error::other(format!("as_strided: negative offset {o}")))?,
            None => self.offset,
        };
        numel_of(&sz)?;
        let len = self.storage().len();
        if !sz.contains(&0) {
            let mut hi = off as u128;
            for (&s, &t) in sz.iter().zip(&st) {
                hi += (s as u128 - 1) * t as u128;
            }
            if hi >= len as u128 {
                return Err(Error::other(format!(
                    "as_strided: sizes {sizes:?} strides {strides:?} offset {off} exceed storage of {len} elements"
                )));
            }
        }
        Ok(self.with_geometry(sz, st.iter().map(|&x| x as isize).collect(), off))
    }

    /// `aten.unflatten`: split dim `dim` into `sizes` (one may be -1).
    pub fn unflatten(&self, dim: i64, sizes: &[i64]) -> Result<Tensor> {
        let d = wrap_dim(dim, self.dim())?;
        let mut shape: Vec<i64> = self.sizes[..d].iter().map(|&x| x as i64).collect();
        let inner = Tensor::zeros(DType::Bool, &[]).with_geometry(vec![self.sizes[d]], vec![1], 0);
        let part = inner.infer_shape(sizes)?;
        shape.extend(part.iter().map(|&x| x as i64));
        shape.extend(self.sizes[d + 1..].iter().map(|&x| x as i64));
        self.view(&shape)
    }

    /// `aten.flatten.using_ints`: merge dims `start..=end` (copies if needed).
    pub fn flatten(&self, start: i64, end: i64) -> Result<Tensor> {
        if self.dim() == 0 {
            return self.reshape(&[1]);
        }
        let s = wrap_dim(start, self.dim())?;
        let e = wrap_dim(end, self.dim())?;
        if s > e {
            return Err(Error::other("flatten: start dim must not exceed end dim"));
        }
        let mut shape: Vec<i64> = self.sizes[..s].iter().map(|&x| x as i64).collect();
        shape.push(self.sizes[s..=e].iter().product::<usize>() as i64);
        shape.extend(self.sizes[e + 1..].iter().map(|&x| x as i64));
        self.reshape(&shape)
    }

    /// `aten.split.Tensor`: pieces of `size` along `dim` (the last may be smaller).
    pub fn split(&self, size: i64, dim: i64) -> Result<Vec<Tensor>> {
        let n = self.size(dim)?;
        if size < 0 || (size == 0 && n != 0) {
            return Err(Error::other(format!("split: invalid split size {size}")));
        }
        if n == 0 {
            return Ok(vec![self.clone()]);
        }
        let size = size as usize;
        let mut out = Vec::new();
        let mut s = 0;
        while s < n {
            let e = (s + size).min(n);
            out.push(self.slice(dim, Some(s as i64), Some(e as i64), 1)?);
            s = e;
        }
        Ok(out)
    }

    /// `aten.split_with_sizes`.
    pub fn split_with_sizes(&self, sizes: &[i64], dim: i64) -> Result<Vec<Tensor>> {
        let n = self.size(dim)? as i64;
        if sizes.iter().any(|&s| s < 0) || sizes.iter().sum::<i64>() != n {
            return Err(Error::other(format!(
                "split_with_sizes: {sizes:?} do not sum to dim size {n}"
            )));
        }
        let mut s = 0;
        let mut out = Vec::new();
        for &l in sizes {
            out.push(self.slice(dim, Some(s), Some(s + l), 1)?);
            s += l;
        }
        Ok(out)
    }

    /// `aten.unbind.int`.
    pub fn unbind(&self, dim: i64) -> Result<Vec<Tensor>> {
        let n = self.size(dim)?;
        (0..n as i64).map(|i| self.select(dim, i)).collect()
    }

    /// `aten.chunk`.
    pub fn chunk(&self, chunks: i64, dim: i64) -> Result<Vec<Tensor>> {
        if chunks <= 0 {
            return Err(Error::other(format!(
                "chunk: chunks must be positive, got {chunks}"
            )));
        }
        let n = self.size(dim)? as i64;
        let size = if n == 0 { 1 } else { (n - 1) / chunks + 1 };
        if n == 0 {
            return self.split(0, dim);
        }
        self.split(size, dim)
    }

    /// `aten.diagonal`: a view of the diagonal of dims `d1`, `d2`, appended last.
    pub fn diagonal(&self, offset: i64, d1: i64, d2: i64) -> Result<Tensor> {
        let nd = self.dim();
        let a = wrap_dim(d1, nd)?;
        let b = wrap_dim(d2, nd)?;
        if a == b || nd < 2 {
            return Err(Error::other(
                "diagonal: dims must differ on a tensor of rank >= 2",
            ));
        }
        let (na, nb) = (self.sizes[a] as i64, self.sizes[b] as i64);
        let (len, off) = if offset >= 0 {
            (
                (na).min(nb - offset).max(0),
                offset as isize * self.strides[b],
            )
        } else {
            (
                (na + offset).min(nb).max(0),
                -offset as isize * self.strides[a],
            )
        };
        let mut sizes = Vec::new();
        let mut strides = Vec::new();
        for i in 0..nd {
            if i != a && i != b {
                sizes.push(self.sizes[i]);
                strides.push(self.strides[i]);
            }
        }
        sizes.push(len as usize);
        strides.push(self.strides[a] + self.strides[b]);
        let o = if len == 0 {
            self.offset
        } else {
            (self.offset as isize + off) as usize
        };
        Ok(self.with_geometry(sizes, strides, o))
    }

    /// Internal: a view with negative strides along `dims` (used by `flip`).
    pub(crate) fn reversed_view(&self, dims: &[usize]) -> Tensor {
        let mut t = self.clone();
        for &d in dims {
            if t.sizes[d] > 0 {
                t.offset = (t.offset as isize + (t.sizes[d] as isize - 1) * t.strides[d]) as usize;
                t.strides[d] = -t.strides[d];
            }
        }
        t
    }

    // ---------------------------------------------------------------- in-place

    /// `aten.copy_`: writes `src` (broadcast to this shape and cast to this
    /// dtype) through this view into the shared storage.
    pub fn copy_(&self, src: &Tensor) -> Result<()> {
        let b = src.broadcast_to(&self.sizes).map_err(|_| {
            Error::other(format!(
                "copy_: source shape {:?} does not broadcast to {:?}",
                src.sizes, self.sizes
            ))
        })?;
        dispatch_all!(self.dtype, T, {
            let vals = b.to_vec_as::<T>();
            self.write_values(&vals);
        });
        Ok(())
    }

    /// Writes `vals` (C order, `numel` long, matching dtype) through this view.
    fn write_values<T: Element>(&self, vals: &[T]) {
        let mut g = self.storage_mut();
        let Some(v) = T::storage_vec_mut(&mut g) else {
            unreachable!("storage dtype agrees with tensor dtype")
        };
        let mut i = 0;
        for_each_offset(&self.sizes, &self.strides, self.offset, |o| {
            v[o] = vals[i];
            i += 1;
        });
    }

    /// `aten.fill_.Scalar`.
    pub fn fill_(&self, value: Scalar) -> Result<()> {
        dispatch_all!(self.dtype, T, {
            let x: T = value.cast::<T>();
            let mut g = self.storage_mut();
            let Some(v) = T::storage_vec_mut(&mut g) else {
                unreachable!("storage dtype agrees with tensor dtype")
            };
            for_each_offset(&self.sizes, &self.strides, self.offset, |o| v[o] = x);
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: Vec<f32>, s: &[usize]) -> Tensor {
        Tensor::from_vec(v, s).unwrap()
    }

    #[test]
    fn inplace_through_transposed_view_is_seen_by_base() {
        let base = t((0..6).map(|x| x as f32).collect(), &[2, 3]);
        let tv = base.transpose(0, 1).unwrap(); // 3x2
        let row = tv.select(0, 2).unwrap(); // base[:, 2]
        row.fill_(Scalar::Float(-1.0)).unwrap();
        assert_eq!(base.to_f64_vec(), vec![0., 1., -1., 3., 4., -1.]);
        tv.slice(0, Some(0), Some(1), 1)
            .unwrap()
            .copy_(&t(vec![9.0], &[1]))
            .unwrap();
        assert_eq!(base.to_f64_vec(), vec![9., 1., -1., 9., 4., -1.]);
    }

    #[test]
    fn slice_clamps_like_torch() {
        let x = t((0..10).map(|x| x as f32).collect(), &[10]);
        assert_eq!(
            x.slice(0, Some(-3), None, 1).unwrap().to_f64_vec(),
            vec![7., 8., 9.]
        );
        assert_eq!(
            x.slice(0, Some(2), Some(100), 3).unwrap().to_f64_vec(),
            vec![2., 5., 8.]
        );
        assert_eq!(x.slice(0, Some(8), Some(3), 1).unwrap().numel(), 0);
        assert_eq!(
            x.slice(0, Some(-100), Some(2), 1).unwrap().to_f64_vec(),
            vec![0., 1.]
        );
        assert!(x.slice(3, None, None, 1).is_err());
        assert!(x.slice(0, None, None, 0).is_err());
    }

    #[test]
    fn view_and_reshape() {
        let x = t((0..6).map(|x| x as f32).collect(), &[2, 3]);
        let tt = x.t().unwrap();
        assert!(tt.view(&[6]).is_err());
        assert_eq!(
            tt.reshape(&[-1]).unwrap().to_f64_vec(),
            vec![0., 3., 1., 4., 2., 5.]
        );
        let v = x.view(&[3, -1]).unwrap();
        assert_eq!(v.sizes(), &[3, 2]);
        assert!(v.same_storage(&x));
        assert!(x.view(&[4, -1]).is_err());
        // A transposed view that can still be split without copying.
        let y = t((0..24).map(|x| x as f32).collect(), &[2, 3, 4])
            .permute(&[1, 0, 2])
            .unwrap();
        let z = y.view(&[3, 2, 2, 2]).unwrap();
        assert!(z.same_storage(&y));
        assert_eq!(z.to_f64_vec(), y.to_f64_vec());
    }

    #[test]
    fn raw_bytes_roundtrip_and_bounds() {
        let bytes: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let x = Tensor::from_raw_bytes(DType::F32, &[2, 2], &[1, 2], 0, &bytes).unwrap();
        assert_eq!(x.to_f64_vec(), vec![1., 3., 2., 4.]);
        let back = x.to_contiguous_bytes();
        assert_eq!(&back[4..8], &3.0f32.to_le_bytes());
        assert!(Tensor::from_raw_bytes(DType::F32, &[2, 2], &[2, 1], 1, &bytes).is_err());
    }

    #[test]
    fn half_conversions() {
        for v in [0.0f32, 1.0, -2.5, 65504.0, 6.1e-5, 1e-7, 0.1] {
            let h = F16::from_f32(v).to_f32();
            assert!((h - v).abs() <= v.abs() * 1e-3 + 6e-8, "{v} -> {h}");
        }
        assert_eq!(F16::from_f32(1.0).0, 0x3c00);
        assert_eq!(F16::from_f32(1e6).to_f32(), f32::INFINITY);
        assert_eq!(BF16::from_f32(1.0).0, 0x3f80);
        assert_eq!(BF16::from_f32(3.0).to_f32(), 3.0);
    }

    #[test]
    fn expand_squeeze_unsqueeze() {
        let x = t(vec![1., 2., 3.], &[3, 1]);
        let e = x.expand(&[2, -1, 4]).unwrap();
        assert_eq!(e.sizes(), &[2, 3, 4]);
        assert_eq!(e.strides()[0], 0);
        assert!(x.expand(&[2, 2]).is_err());
        assert_eq!(x.squeeze().sizes(), &[3]);
        assert_eq!(x.unsqueeze(0).unwrap().sizes(), &[1, 3, 1]);
        assert_eq!(x.unsqueeze(-1).unwrap().sizes(), &[3, 1, 1]);
        assert!(x.unsqueeze(3).is_err());
        let sp = t((0..7).map(|x| x as f32).collect(), &[7])
            .split(3, 0)
            .unwrap();
        assert_eq!(
            sp.iter().map(|s| s.numel()).collect::<Vec<_>>(),
            vec![3, 3, 1]
        );
    }

    #[test]
    fn npy_roundtrip() {
        let dir = std::env::temp_dir().join(format!("interp_npy_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.npy");
        let x = Tensor::from_vec(vec![1i64, -2, 3, 4, 5, 6], &[2, 3]).unwrap();
        x.write_npy(&p).unwrap();
        let y = Tensor::read_npy(&p).unwrap();
        assert_eq!(y.dtype(), DType::I64);
        assert_eq!(y.sizes(), &[2, 3]);
        assert_eq!(y.to_i64_vec(), vec![1, -2, 3, 4, 5, 6]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
