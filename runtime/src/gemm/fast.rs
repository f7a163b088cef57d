//! Batched, strided, multithreaded `f32` GEMM with a fused bias and
//! activation epilogue.
//!
//! `C_t = act(bias + A_t @ B_t)` for each batch index `t`, where every
//! operand has its own batch, row and column strides (in elements, possibly
//! 0 for broadcasting) and `C` is row-major with column stride 1.
//!
//! Paths, on the current rayon pool:
//! - at most four rows with a `B` whose rows or columns are contiguous
//!   (linear layers at small batch): `B` is read in place, no packing, the
//!   columns split over jobs (module `small`);
//! - otherwise with AVX2+FMA (6x16) or AVX-512 (12x32) microkernels: each
//!   batch item packs every panel of `B` and of `A` exactly once into a
//!   thread-local scratch shared by all jobs (the packing itself split over
//!   the pool), then jobs compute disjoint blocks of tiles. When `C` has
//!   at most a few thousand columns and `A` is row-major, `A` is not
//!   packed at all: the kernel reads it in place (module `packed`). Many
//!   batch items run in parallel, one item per job;
//! - `matrixmultiply` on blocks of `C` on other CPUs.
//!
//! Steady-state calls allocate nothing: the scratch grows to the largest
//! problem seen on each thread and is kept.

use rayon::prelude::*;
use std::cell::RefCell;

/// Element strides of a batched matrix operand: element `(t, i, j)` is at
/// `t * bs + i * rs + j * cs`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Strides {
    pub bs: usize,
    pub rs: usize,
    pub cs: usize,
}

impl Strides {
    /// A dense row-major `rows x cols` matrix, batches `rows * cols` apart.
    pub fn row_major(rows: usize, cols: usize) -> Self {
        Strides {
            bs: rows * cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The number of elements an operand of `batch x rows x cols` spans:
    /// one past its last element, 0 when empty, `None` on overflow.
    pub fn span(&self, batch: usize, rows: usize, cols: usize) -> Option<usize> {
        if batch == 0 || rows == 0 || cols == 0 {
            return Some(0);
        }
        let last = (batch - 1)
            .checked_mul(self.bs)?
            .checked_add((rows - 1).checked_mul(self.rs)?)?
            .checked_add((cols - 1).checked_mul(self.cs)?)?;
        last.checked_add(1)
    }
}

/// The activation applied to every output element after the bias.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Act {
    None,
    Relu,
    /// Clamp to `[lo, hi]` (`relu6` is `Clamp(0, 6)`).
    Clamp(f32, f32),
}

impl Act {
    /// `act(v)`.
    #[inline(always)]
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Act::None => v,
            // `max` would turn NaN into 0; torch's relu keeps NaN.
            Act::Relu => {
                if v < 0.0 {
                    0.0
                } else {
                    v
                }
            }
            Act::Clamp(lo, hi) => {
                let v = if v < lo { lo } else { v };
                if v > hi {
                    hi
                } else {
                    v
                }
            }
        }
    }
}

/// Sizes of a batched GEMM.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct GemmDims {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// A 2-D bias broadcast over the batch: element `(i, j)` is at
/// `i * rs + j * cs`.
#[derive(Copy, Clone, Debug)]
pub struct Bias<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

/// The whole problem as raw pointers, validated by [`gemm`]. Jobs write
/// disjoint blocks of `c`.
#[derive(Copy, Clone)]
struct Raw {
    d: GemmDims,
    a: *const f32,
    sa: Strides,
    b: *const f32,
    sb: Strides,
    /// Null when there is no bias.
    bias: *const f32,
    bias_rs: usize,
    bias_cs: usize,
    c: *mut f32,
    c_bs: usize,
    c_rs: usize,
    act: Act,
}

// SAFETY: `Raw` is only built by `gemm` from borrows that outlive every job;
// jobs read `a`, `b`, `bias` and write pairwise disjoint blocks of `c`.
unsafe impl Send for Raw {}
// SAFETY: as above.
unsafe impl Sync for Raw {}

/// Below this many multiply-adds a GEMM stays on the calling thread.
const PARALLEL_MIN_WORK: usize = 32 * 1024;

/// `c[t*c_bs + i*c_rs + j] = act(bias[i, j] + Σ_p a[t, i, p] * b[t, p, j])`.
///
/// Returns `false`, writing nothing, when an operand does not fit its slice,
/// `c`'s rows or batches would overlap (`c_rs < n` with `m > 1`, or
/// `c_bs` less than one matrix with `batch > 1`), or a span overflows.
/// `c` is only written, never read for its old value.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    d: GemmDims,
    a: &[f32],
    sa: Strides,
    b: &[f32],
    sb: Strides,
    bias: Option<Bias<'_>>,
    c: &mut [f32],
    c_bs: usize,
    c_rs: usize,
    act: Act,
) -> bool {
    let GemmDims { batch, m, n, k } = d;
    let fits = |len: usize, s: Strides, rows: usize, cols: usize| {
        s.span(batch, rows, cols).is_some_and(|l| l <= len)
    };
    let cs = Strides {
        bs: c_bs,
        rs: c_rs,
        cs: 1,
    };
    if !fits(a.len(), sa, m, k) || !fits(b.len(), sb, k, n) || !fits(c.len(), cs, m, n) {
        return false;
    }
    if m > 1 && c_rs < n {
        return false;
    }
    let mat = if m == 0 || n == 0 {
        0
    } else {
        (m - 1) * c_rs + n
    };
    if batch > 1 && c_bs < mat {
        return false;
    }
    if let Some(bi) = bias {
        let s = Strides {
            bs: 0,
            rs: bi.rs,
            cs: bi.cs,
        };
        if !fits(bi.data.len(), s, m, n) {
            return false;
        }
    }
    if batch == 0 || m == 0 || n == 0 {
        return true;
    }
    let raw = Raw {
        d,
        a: a.as_ptr(),
        sa,
        b: b.as_ptr(),
        sb,
        bias: bias.map_or(std::ptr::null(), |b| b.data.as_ptr()),
        bias_rs: bias.map_or(0, |b| b.rs),
        bias_cs: bias.map_or(0, |b| b.cs),
        c: c.as_mut_ptr(),
        c_bs,
        c_rs,
        act,
    };
    // SAFETY: every operand was checked to lie inside its slice, `c` is a
    // unique borrow (so it overlaps no input) whose rows and batches are
    // disjoint, and the slices outlive the call.
    unsafe { run(&raw, kernel()) };
    true
}

/// Which block kernel runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// `matrixmultiply` plus a separate epilogue pass.
    Portable,
    /// The packed AVX2+FMA 6x16 microkernel.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// The packed AVX-512 12x32 microkernel.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

/// The fastest kernel this CPU runs.
pub(crate) fn kernel() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx512f() {
        return Kernel::Avx512;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx2_fma() {
        return Kernel::Avx2;
    }
    Kernel::Portable
}

/// How the rows and columns of each batch item are split into jobs.
fn split(d: GemmDims) -> (usize, usize) {
    let threads = rayon::current_num_threads().max(1);
    let work = d.m.saturating_mul(d.n).saturating_mul(d.k.max(1));
    if threads == 1 || work.saturating_mul(d.batch) < PARALLEL_MIN_WORK {
        return (1, 1);
    }
    let want = 2 * threads;
    if d.batch >= want {
        return (1, 1);
    }
    let need = want.div_ceil(d.batch);
    // Blocks of at least 48 rows or 64 columns (multiples of the tile).
    let (pm_max, pn_max) = (d.m.div_ceil(48), d.n.div_ceil(64));
    if d.m >= d.n {
        let pm = need.min(pm_max).max(1);
        (pm, need.div_ceil(pm).min(pn_max).max(1))
    } else {
        let pn = need.min(pn_max).max(1);
        (need.div_ceil(pn).min(pm_max).max(1), pn)
    }
}

/// Runs the whole problem, in parallel jobs when it is big enough.
///
/// # Safety
/// `r` describes in-bounds operands and a `c` that overlaps no input and
/// whose rows and batch items are disjoint.
unsafe fn run(r: &Raw, kern: Kernel) {
    // SAFETY (all arms): forwarded contract; the packed kernels are only
    // chosen when the CPU has their features (see `kernel`).
    unsafe {
        if small::run(r, kern) {
            return;
        }
        match kern {
            Kernel::Portable => run_portable(r),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => packed::run::<packed::Avx2>(r),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => packed::run::<packed::Avx512>(r),
        }
    }
}

/// [`run`] with `matrixmultiply` on blocks of `c`.
///
/// # Safety
/// As [`run`].
unsafe fn run_portable(r: &Raw) {
    let (pm, pn) = split(r.d);
    let jobs = r.d.batch * pm * pn;
    let job = |j: usize| {
        let (t, rest) = (j / (pm * pn), j % (pm * pn));
        let (bi, bj) = (rest / pn, rest % pn);
        let rows = (r.d.m * bi / pm, r.d.m * (bi + 1) / pm);
        let cols = (r.d.n * bj / pn, r.d.n * (bj + 1) / pn);
        // SAFETY: jobs cover disjoint (batch, row block, column block)
        // parts of `c`; the rest is the caller's contract.
        unsafe { block(r, t, rows, cols) }
    };
    if jobs == 1 || split_is_sequential(r.d) {
        (0..jobs).for_each(job);
    } else {
        (0..jobs).into_par_iter().for_each(job);
    }
}

thread_local! {
    /// Packed GEMM operands, reused across calls on this thread.
    static PACK_SCRATCH: Scratch = const { RefCell::new(Vec::new()) };
}

/// A thread's scratch buffers for one purpose: a stack, so that a call
/// nested inside another (a job stolen while the outer one waits) takes a
/// buffer of its own, and after warm-up every level has one.
pub(crate) type Scratch = RefCell<Vec<Vec<f32>>>;

/// Runs `f` on `len` elements of a buffer from the thread-local stack
/// `key`, growing it (the only allocation) when it is too short. The
/// contents are whatever an earlier call left: `f` must write before it
/// reads.
pub(crate) fn with_scratch<R>(
    key: &'static std::thread::LocalKey<Scratch>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    let mut buf = key.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    if buf.len() < len {
        buf = vec![0.0; len];
    }
    let out = f(&mut buf[..len]);
    key.with(|s| s.borrow_mut().push(buf));
    out
}

fn split_is_sequential(d: GemmDims) -> bool {
    rayon::current_num_threads() <= 1
        || d.m
            .saturating_mul(d.n)
            .saturating_mul(d.k.max(1))
            .saturating_mul(d.batch)
            < PARALLEL_MIN_WORK
}

/// Computes rows `rows.0..rows.1` and columns `cols.0..cols.1` of batch
/// item `t` of `c`.
///
/// # Safety
/// As [`run`]; no other thread writes this block concurrently.
unsafe fn block(r: &Raw, t: usize, rows: (usize, usize), cols: (usize, usize)) {
    let (mb, nb) = (rows.1 - rows.0, cols.1 - cols.0);
    if mb == 0 || nb == 0 {
        return;
    }
    // SAFETY (all pointer offsets below): the offsets address elements
    // inside the operands, which `gemm` checked lie in their slices.
    let a = unsafe { r.a.add(t * r.sa.bs + rows.0 * r.sa.rs) };
    let b = unsafe { r.b.add(t * r.sb.bs + cols.0 * r.sb.cs) };
    let c = unsafe { r.c.add(t * r.c_bs + rows.0 * r.c_rs + cols.0) };
    let k = r.d.k;
    if k == 0 {
        // SAFETY: the block lies inside `c`.
        unsafe { epilogue_fill(r, c, rows, cols) };
        return;
    }
    // SAFETY: the operands are in bounds for the block's sizes and
    // strides; `c` has row stride `c_rs` and column stride 1.
    unsafe {
        matrixmultiply::sgemm(
            mb,
            k,
            nb,
            1.0,
            a,
            r.sa.rs as isize,
            r.sa.cs as isize,
            b,
            r.sb.rs as isize,
            r.sb.cs as isize,
            0.0,
            c,
            r.c_rs as isize,
            1,
        );
        epilogue(r, c, rows.0, cols.0, mb, nb);
    }
}

/// Adds the bias and applies the activation to the `mb x nb` tile at `c`
/// (rows from `i0`, columns from `j0` of the whole matrix).
///
/// # Safety
/// The tile lies inside `c` and no other thread touches it; the bias (if
/// any) covers rows `i0..i0+mb` and columns `j0..j0+nb`.
#[inline(always)]
unsafe fn epilogue(r: &Raw, c: *mut f32, i0: usize, j0: usize, mb: usize, nb: usize) {
    if r.bias.is_null() && r.act == Act::None {
        return;
    }
    for i in 0..mb {
        // SAFETY: row `i` of the tile is `nb` elements inside `c`.
        let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * r.c_rs), nb) };
        if !r.bias.is_null() {
            // SAFETY: `gemm` checked the bias covers every (i, j) of `c`.
            let bp = unsafe { r.bias.add((i0 + i) * r.bias_rs + j0 * r.bias_cs) };
            if r.bias_cs == 1 {
                // SAFETY: as above, `nb` contiguous elements.
                let br = unsafe { std::slice::from_raw_parts(bp, nb) };
                row.iter_mut().zip(br).for_each(|(o, &v)| *o += v);
            } else if r.bias_cs == 0 {
                // SAFETY: as above.
                let v = unsafe { *bp };
                row.iter_mut().for_each(|o| *o += v);
            } else {
                for (j, o) in row.iter_mut().enumerate() {
                    // SAFETY: as above.
                    *o += unsafe { *bp.add(j * r.bias_cs) };
                }
            }
        }
        match r.act {
            Act::None => {}
            act => row.iter_mut().for_each(|o| *o = act.apply(*o)),
        }
    }
}

/// Writes `act(bias)` (or `act(0)`) into the block: the `k == 0` product.
///
/// # Safety
/// As [`epilogue`].
unsafe fn epilogue_fill(r: &Raw, c: *mut f32, rows: (usize, usize), cols: (usize, usize)) {
    let (mb, nb) = (rows.1 - rows.0, cols.1 - cols.0);
    for i in 0..mb {
        // SAFETY: row `i` of the block is `nb` elements inside `c`.
        unsafe { std::slice::from_raw_parts_mut(c.add(i * r.c_rs), nb) }.fill(0.0);
    }
    // SAFETY: as above.
    unsafe { epilogue(r, c, rows.0, cols.0, mb, nb) };
}

/// Products with at most [`small::MAX_M`] rows (`x @ W` of linear layers at
/// small batch): read `b` in place, no packing, split over columns.
mod small {
    use super::{epilogue, split_is_sequential, with_scratch, Kernel, Raw, PACK_SCRATCH};
    use rayon::prelude::*;

    /// The most rows this path takes.
    pub(super) const MAX_M: usize = 4;
    /// Columns per job and per stack accumulator when `b`'s rows are
    /// contiguous.
    const ROW_CHUNK: usize = 256;
    /// Columns per job when `b`'s columns are contiguous.
    const COL_CHUNK: usize = 64;
    /// Lanes of the dot-product accumulators.
    const LANES: usize = 16;

    /// Runs the problem when it suits this path (`m <= MAX_M`, `k > 0`, and
    /// `b` with contiguous rows or columns); returns whether it did.
    ///
    /// # Safety
    /// As [`super::run`]; `kern` is one the CPU runs.
    pub(super) unsafe fn run(r: &Raw, kern: Kernel) -> bool {
        let d = r.d;
        if d.m > MAX_M || d.k == 0 || d.m == 0 || d.n == 0 {
            return false;
        }
        let rows = r.sb.cs == 1;
        if !rows && r.sb.rs != 1 {
            return false;
        }
        let chunk = if rows { ROW_CHUNK } else { COL_CHUNK };
        let chunks = d.n.div_ceil(chunk);
        let jobs = d.batch * chunks;
        // `a` with contiguous rows for the dot products: gathered into
        // scratch when its columns are strided.
        let gather = !rows && r.sa.cs != 1;
        let a_len = if gather { d.batch * d.m * d.k } else { 0 };
        with_scratch(&PACK_SCRATCH, a_len, |ga| {
            if gather {
                for t in 0..d.batch {
                    for i in 0..d.m {
                        let dst = &mut ga[(t * d.m + i) * d.k..][..d.k];
                        for (p, o) in dst.iter_mut().enumerate() {
                            // SAFETY: `(t, i, p)` is an element of `a`.
                            *o = unsafe { *r.a.add(t * r.sa.bs + i * r.sa.rs + p * r.sa.cs) };
                        }
                    }
                }
            }
            let ga = Addr(ga.as_ptr());
            let job = |j: usize| {
                let (t, ch) = (j / chunks, j % chunks);
                let j0 = ch * chunk;
                let w = (d.n - j0).min(chunk);
                // SAFETY: jobs write disjoint column ranges of one batch
                // item of `c`; the operands are in bounds (caller).
                unsafe {
                    let (a, ars, acs) = if gather {
                        (ga.get().add(t * d.m * d.k), d.k, 1)
                    } else {
                        (r.a.add(t * r.sa.bs), r.sa.rs, r.sa.cs)
                    };
                    let b = r.b.add(t * r.sb.bs + j0 * r.sb.cs);
                    let c = r.c.add(t * r.c_bs + j0);
                    let s = Sub {
                        a,
                        ars,
                        acs,
                        b,
                        c,
                        w,
                    };
                    dispatch(r, &s, rows, kern);
                    epilogue(r, c, 0, j0, d.m, w);
                }
            };
            if jobs == 1 || split_is_sequential(d) {
                (0..jobs).for_each(job);
            } else {
                (0..jobs).into_par_iter().for_each(job);
            }
        });
        true
    }

    #[derive(Copy, Clone)]
    struct Addr(*const f32);
    // SAFETY: the scratch it points to is only read while every job runs.
    unsafe impl Send for Addr {}
    // SAFETY: as above.
    unsafe impl Sync for Addr {}

    impl Addr {
        fn get(self) -> *const f32 {
            self.0
        }
    }

    /// One job: columns `j0..j0+w` of one batch item. `a` is `m x k` with
    /// strides `ars, acs` (`acs == 1` for the dot products); `b` and `c`
    /// point at column `j0`.
    struct Sub {
        a: *const f32,
        ars: usize,
        acs: usize,
        b: *const f32,
        c: *mut f32,
        w: usize,
    }

    /// # Safety
    /// As [`run`], for the job `s`.
    unsafe fn dispatch(r: &Raw, s: &Sub, rows: bool, kern: Kernel) {
        // SAFETY: the kernel's features were checked when it was chosen.
        unsafe {
            match kern {
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx512 => {
                    if rows {
                        rows_avx512(r, s)
                    } else {
                        cols_avx512(r, s)
                    }
                }
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx2 => {
                    if rows {
                        rows_avx2(r, s)
                    } else {
                        cols_avx2(r, s)
                    }
                }
                Kernel::Portable => {
                    if rows {
                        rows_body::<false>(r, s)
                    } else {
                        cols_body::<PortableDots>(r, s)
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn rows_avx512(r: &Raw, s: &Sub) {
        // SAFETY: forwarded contract.
        unsafe { rows_body::<true>(r, s) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_avx2(r: &Raw, s: &Sub) {
        // SAFETY: forwarded contract.
        unsafe { rows_body::<true>(r, s) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn cols_avx512(r: &Raw, s: &Sub) {
        // SAFETY: forwarded contract.
        unsafe { cols_body::<Avx512Dots>(r, s) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn cols_avx2(r: &Raw, s: &Sub) {
        // SAFETY: forwarded contract.
        unsafe { cols_body::<Avx2Dots>(r, s) }
    }

    /// `x * y + z`, fused when the caller has FMA.
    #[inline(always)]
    fn madd<const FMA: bool>(x: f32, y: f32, z: f32) -> f32 {
        if FMA {
            x.mul_add(y, z)
        } else {
            x * y + z
        }
    }

    /// `b` rows contiguous: `c[i, :] = Σ_p a[i, p] * b[p, :]` accumulated
    /// in a stack buffer, four rows of `b` per pass.
    ///
    /// # Safety
    /// As [`dispatch`]; `b` has column stride 1 and `w <= ROW_CHUNK`.
    #[inline(always)]
    unsafe fn rows_body<const FMA: bool>(r: &Raw, s: &Sub) {
        let (m, k, w) = (r.d.m, r.d.k, s.w);
        let mut acc = [[0.0f32; ROW_CHUNK]; MAX_M];
        // SAFETY: `(i, p)` of `a` and `w` elements of each row `p` of `b`
        // from column `j0` are in bounds.
        let av = |i: usize, p: usize| unsafe { *s.a.add(i * s.ars + p * s.acs) };
        let brow = |p: usize| unsafe { std::slice::from_raw_parts(s.b.add(p * r.sb.rs), w) };
        let mut p = 0;
        while p + 4 <= k {
            let (b0, b1, b2, b3) = (brow(p), brow(p + 1), brow(p + 2), brow(p + 3));
            for (i, acc) in acc.iter_mut().enumerate().take(m) {
                let (x0, x1, x2, x3) = (av(i, p), av(i, p + 1), av(i, p + 2), av(i, p + 3));
                for j in 0..w {
                    let mut v = acc[j];
                    v = madd::<FMA>(x0, b0[j], v);
                    v = madd::<FMA>(x1, b1[j], v);
                    v = madd::<FMA>(x2, b2[j], v);
                    v = madd::<FMA>(x3, b3[j], v);
                    acc[j] = v;
                }
            }
            p += 4;
        }
        while p < k {
            let b0 = brow(p);
            for (i, acc) in acc.iter_mut().enumerate().take(m) {
                let x0 = av(i, p);
                for j in 0..w {
                    acc[j] = madd::<FMA>(x0, b0[j], acc[j]);
                }
            }
            p += 1;
        }
        for (i, acc) in acc.iter().enumerate().take(m) {
            // SAFETY: row `i` of `c` has `w` elements from column `j0`.
            let out = unsafe { std::slice::from_raw_parts_mut(s.c.add(i * r.c_rs), w) };
            out.copy_from_slice(&acc[..w]);
        }
    }

    /// `b` columns contiguous: `c[i, j] = dot(a[i, :], b[:, j])`, up to
    /// four columns at a time.
    ///
    /// # Safety
    /// As [`dispatch`]; `b` has row stride 1 and `a` column stride 1; the
    /// CPU runs `D`.
    #[inline(always)]
    unsafe fn cols_body<D: Dots>(r: &Raw, s: &Sub) {
        let (m, k) = (r.d.m, r.d.k);
        // SAFETY (pointer offsets): row `i` of `a` and column `j` of this
        // job's `b` hold `k` contiguous elements each, and `(i, j)` is in
        // this job's part of `c`.
        let col = |j: usize| unsafe { s.b.add(j * r.sb.cs) };
        let mut j = 0;
        while j + 4 <= s.w {
            let cols = [col(j), col(j + 1), col(j + 2), col(j + 3)];
            for i in 0..m {
                // SAFETY: as above; columns `j..j+4` are below `w`.
                unsafe {
                    let v = D::dot4(s.a.add(i * s.ars), cols, k);
                    let out = s.c.add(i * r.c_rs + j);
                    for (q, v) in v.into_iter().enumerate() {
                        *out.add(q) = v;
                    }
                }
            }
            j += 4;
        }
        while j < s.w {
            for i in 0..m {
                // SAFETY: as above; column `j` is below `w`.
                unsafe { *s.c.add(i * r.c_rs + j) = D::dot1(s.a.add(i * s.ars), col(j), k) };
            }
            j += 1;
        }
    }

    /// Dot products of `k` contiguous elements.
    trait Dots {
        /// `[dot(x, y[0]), ..., dot(x, y[3])]`.
        ///
        /// # Safety
        /// Every pointer addresses `k` readable elements; the CPU has the
        /// implementation's features.
        unsafe fn dot4(x: *const f32, y: [*const f32; 4], k: usize) -> [f32; 4];
        /// `dot(x, y)`.
        ///
        /// # Safety
        /// As [`Dots::dot4`].
        unsafe fn dot1(x: *const f32, y: *const f32, k: usize) -> f32;
    }

    /// Plain Rust dot products.
    struct PortableDots;

    impl Dots for PortableDots {
        unsafe fn dot4(x: *const f32, y: [*const f32; 4], k: usize) -> [f32; 4] {
            // SAFETY: forwarded contract.
            y.map(|y| unsafe { Self::dot1(x, y, k) })
        }
        unsafe fn dot1(x: *const f32, y: *const f32, k: usize) -> f32 {
            // SAFETY: forwarded contract.
            let (x, y) = unsafe {
                (
                    std::slice::from_raw_parts(x, k),
                    std::slice::from_raw_parts(y, k),
                )
            };
            let mut acc = [0.0f32; LANES];
            let full = k / LANES * LANES;
            for (xs, ys) in x[..full]
                .chunks_exact(LANES)
                .zip(y[..full].chunks_exact(LANES))
            {
                for l in 0..LANES {
                    acc[l] += xs[l] * ys[l];
                }
            }
            let tail: f32 = x[full..].iter().zip(&y[full..]).map(|(a, b)| a * b).sum();
            acc.iter().sum::<f32>() + tail
        }
    }

    #[cfg(target_arch = "x86_64")]
    struct Avx512Dots;
    #[cfg(target_arch = "x86_64")]
    struct Avx2Dots;

    #[cfg(target_arch = "x86_64")]
    impl Dots for Avx512Dots {
        #[inline(always)]
        unsafe fn dot4(x: *const f32, y: [*const f32; 4], k: usize) -> [f32; 4] {
            use std::arch::x86_64::*;
            // SAFETY: loads stay below `k` (the tail is masked); the caller
            // checked AVX-512F.
            unsafe {
                let mut acc = [_mm512_setzero_ps(); 4];
                let mut p = 0;
                while p + 16 <= k {
                    let xv = _mm512_loadu_ps(x.add(p));
                    for q in 0..4 {
                        acc[q] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(y[q].add(p)), acc[q]);
                    }
                    p += 16;
                }
                if p < k {
                    let mask: __mmask16 = (1u32 << (k - p)) as u16 - 1;
                    let mask = if k - p == 16 { u16::MAX } else { mask };
                    let xv = _mm512_maskz_loadu_ps(mask, x.add(p));
                    for q in 0..4 {
                        let yv = _mm512_maskz_loadu_ps(mask, y[q].add(p));
                        acc[q] = _mm512_fmadd_ps(xv, yv, acc[q]);
                    }
                }
                acc.map(|v| _mm512_reduce_add_ps(v))
            }
        }
        #[inline(always)]
        unsafe fn dot1(x: *const f32, y: *const f32, k: usize) -> f32 {
            // SAFETY: forwarded contract.
            unsafe { Self::dot4(x, [y; 4], k)[0] }
        }
    }

    #[cfg(target_arch = "x86_64")]
    impl Dots for Avx2Dots {
        #[inline(always)]
        unsafe fn dot4(x: *const f32, y: [*const f32; 4], k: usize) -> [f32; 4] {
            use std::arch::x86_64::*;
            // SAFETY: loads stay below `k`; the caller checked AVX2 and FMA.
            unsafe {
                let mut acc = [_mm256_setzero_ps(); 4];
                let mut p = 0;
                while p + 8 <= k {
                    let xv = _mm256_loadu_ps(x.add(p));
                    for q in 0..4 {
                        acc[q] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(y[q].add(p)), acc[q]);
                    }
                    p += 8;
                }
                let mut out = [0.0f32; 4];
                for q in 0..4 {
                    let mut lanes = [0.0f32; 8];
                    _mm256_storeu_ps(lanes.as_mut_ptr(), acc[q]);
                    let mut t = 0.0f32;
                    for pp in p..k {
                        t = (*x.add(pp)).mul_add(*y[q].add(pp), t);
                    }
                    out[q] = (lanes[0] + lanes[4])
                        + (lanes[1] + lanes[5])
                        + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]))
                        + t;
                }
                out
            }
        }
        #[inline(always)]
        unsafe fn dot1(x: *const f32, y: *const f32, k: usize) -> f32 {
            // SAFETY: forwarded contract.
            unsafe { Self::dot4(x, [y; 4], k)[0] }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod packed {
    use super::{epilogue, epilogue_fill, with_scratch, Raw, PACK_SCRATCH};
    use rayon::prelude::*;
    use std::arch::x86_64::*;

    /// Depth of one block of the packed operands.
    pub(super) const KC: usize = 256;
    /// Columns of `c` one job sweeps before moving to the next depth block.
    const NC: usize = 2048;
    /// Up to this many column panels (`n <= DIRECT_A_PANELS * NR`) the
    /// kernel reads a row-major `a` in place instead of packing it: the
    /// twelve (or six) row streams prefetch well, and measured on resnet18
    /// convolutions and square products this is never slower than packing
    /// and much faster when `n` is small (each element of `a` is used too
    /// few times to repay its packing). Wider products still pack, to keep
    /// the kernel's reads of `a` contiguous over long sweeps.
    const DIRECT_A_PANELS: usize = 128;

    /// A register-blocked microkernel: `MR x NR` tiles.
    pub(super) trait MicroKernel {
        const MR: usize;
        const NR: usize;
        /// Rows of `a` swept at a time (a multiple of `MR`).
        const MC: usize;

        /// `c (MR x NR, row stride rs_c) = (accumulate ? c : 0) + a @ b`
        /// over `kc` steps of a packed `b` panel and an `a` panel that is
        /// packed (`lda == 0`: step `p` at `a + p*MR`) or read in place
        /// (element `(i, p)` at `a + i*lda + p`).
        ///
        /// # Safety
        /// `a` and `b` hold `kc` steps as described; the tile at `c` is
        /// writable (and readable when `accumulate`); the CPU has the
        /// kernel's features.
        unsafe fn tile(
            kc: usize,
            a: *const f32,
            lda: usize,
            b: *const f32,
            c: *mut f32,
            rs_c: usize,
            accumulate: bool,
        );
    }

    /// The AVX2+FMA 6x16 kernel.
    pub(super) struct Avx2;
    /// The AVX-512 12x32 kernel.
    pub(super) struct Avx512;

    impl MicroKernel for Avx2 {
        const MR: usize = 6;
        const NR: usize = 16;
        const MC: usize = 96;

        #[inline]
        unsafe fn tile(
            kc: usize,
            a: *const f32,
            lda: usize,
            b: *const f32,
            c: *mut f32,
            rs_c: usize,
            acc: bool,
        ) {
            // SAFETY: forwarded contract; the caller checked AVX2 and FMA.
            unsafe {
                if lda == 0 {
                    kernel_avx2::<false>(kc, a, 0, b, c, rs_c, acc)
                } else {
                    kernel_avx2::<true>(kc, a, lda, b, c, rs_c, acc)
                }
            }
        }
    }

    impl MicroKernel for Avx512 {
        const MR: usize = 12;
        const NR: usize = 32;
        const MC: usize = 144;

        #[inline]
        unsafe fn tile(
            kc: usize,
            a: *const f32,
            lda: usize,
            b: *const f32,
            c: *mut f32,
            rs_c: usize,
            acc: bool,
        ) {
            // SAFETY: forwarded contract; the caller checked AVX-512F.
            unsafe {
                if lda == 0 {
                    kernel_avx512::<false>(kc, a, 0, b, c, rs_c, acc)
                } else {
                    kernel_avx512::<true>(kc, a, lda, b, c, rs_c, acc)
                }
            }
        }
    }

    /// Room for the largest tile.
    const TILE_MAX: usize = 12 * 32;

    /// A pointer into the packing scratch that pack and compute jobs share;
    /// each job writes a disjoint part of it, and compute jobs only read it
    /// after every pack job finished.
    #[derive(Copy, Clone)]
    struct Shared(*mut f32);
    // SAFETY: see the type's documentation; the buffer outlives the jobs.
    unsafe impl Send for Shared {}
    // SAFETY: as above.
    unsafe impl Sync for Shared {}

    impl Shared {
        fn get(self) -> *mut f32 {
            self.0
        }
    }

    /// How one batch item's GEMM is laid out in the packing scratch.
    ///
    /// Packed `b` comes first: depth block `pc` (rows `pc..pc+kc`) starts at
    /// `pc * n_pad` and holds `n_pad / NR` panels of `kc x NR`. Then packed
    /// `a`: depth block `pc` at `b_len + pc * a_rows` holds the packed row
    /// panels (from panel `a_first` on) as `kc x MR` each. When `a` is read
    /// in place only its last, partial row panel (if any) is packed.
    #[derive(Copy, Clone)]
    struct Plan {
        m: usize,
        n: usize,
        k: usize,
        m_panels: usize,
        n_panels: usize,
        n_pad: usize,
        /// The first row panel that is packed (`m_panels` when none is).
        a_first: usize,
        /// Rows of `a` packed per depth step.
        a_rows: usize,
        /// Whether full row panels of `a` are read in place.
        direct_a: bool,
    }

    impl Plan {
        fn new<K: MicroKernel>(r: &Raw) -> Self {
            let (m, n, k) = (r.d.m, r.d.n, r.d.k);
            let m_panels = m.div_ceil(K::MR);
            let n_panels = n.div_ceil(K::NR);
            let direct_a = r.sa.cs == 1 && n_panels <= DIRECT_A_PANELS;
            let a_first = if direct_a { m / K::MR } else { 0 };
            Plan {
                m,
                n,
                k,
                m_panels,
                n_panels,
                n_pad: n_panels * K::NR,
                a_first,
                a_rows: (m_panels - a_first) * K::MR,
                direct_a,
            }
        }

        fn scratch_len(&self) -> usize {
            self.k * (self.n_pad + self.a_rows)
        }
    }

    /// Runs the whole problem with the packed kernel `K`: batch items in
    /// parallel when there are many, otherwise one item at a time with the
    /// packing and the tiles of each item split over the pool.
    ///
    /// # Safety
    /// As [`super::run`]; the CPU has `K`'s features (AVX2 and FMA at least).
    pub(super) unsafe fn run<K: MicroKernel>(r: &Raw) {
        let plan = Plan::new::<K>(r);
        let threads = rayon::current_num_threads().max(1);
        let seq = super::split_is_sequential(r.d);
        let len = plan.scratch_len();
        if r.d.k == 0 {
            // SAFETY: each batch item's `m x n` block lies inside `c`.
            (0..r.d.batch).for_each(|t| unsafe {
                epilogue_fill(r, r.c.add(t * r.c_bs), (0, r.d.m), (0, r.d.n))
            });
            return;
        }
        if seq || r.d.batch >= 2 * threads {
            let item = |t: usize| {
                with_scratch(&PACK_SCRATCH, len, |s| {
                    // SAFETY: batch items write disjoint parts of `c`; the
                    // scratch is this thread's and `len` long.
                    unsafe { one::<K>(r, &plan, t, false, s.as_mut_ptr()) }
                })
            };
            if seq {
                (0..r.d.batch).for_each(item);
            } else {
                (0..r.d.batch).into_par_iter().for_each(item);
            }
        } else {
            with_scratch(&PACK_SCRATCH, len, |s| {
                for t in 0..r.d.batch {
                    // SAFETY: as above.
                    unsafe { one::<K>(r, &plan, t, true, s.as_mut_ptr()) }
                }
            });
        }
    }

    /// Batch item `t`: packs every panel of `b` (and of `a`, unless read in
    /// place) exactly once into `scratch`, then computes the tiles of `c`.
    ///
    /// # Safety
    /// As [`run`]; `scratch` holds `plan.scratch_len()` elements used by no
    /// one else; `k > 0`.
    unsafe fn one<K: MicroKernel>(r: &Raw, plan: &Plan, t: usize, par: bool, scratch: *mut f32) {
        let (mr_full, nr_full) = (K::MR, K::NR);
        let (m, n, k) = (plan.m, plan.n, plan.k);
        // SAFETY: batch item `t` starts inside each operand.
        let (a, b, c) = unsafe {
            (
                r.a.add(t * r.sa.bs),
                r.b.add(t * r.sb.bs),
                r.c.add(t * r.c_bs),
            )
        };
        let (a, b, c) = (Shared(a.cast_mut()), Shared(b.cast_mut()), Shared(c));
        let bp = Shared(scratch);
        // SAFETY: the `a` part starts `k * n_pad` into the scratch.
        let ap = Shared(unsafe { scratch.add(k * plan.n_pad) });
        let kblocks = k.div_ceil(KC);
        let a_packed = plan.m_panels - plan.a_first;
        let per_block = plan.n_panels + a_packed;
        let pack = |task: usize| {
            let (blk, which) = (task / per_block, task % per_block);
            let pc = blk * KC;
            let kc = (k - pc).min(KC);
            if which < plan.n_panels {
                let j0 = which * nr_full;
                // SAFETY: panel `which` of block `blk` is a disjoint
                // `kc x NR` part of the `b` scratch; rows `pc..pc+kc` and
                // columns `j0..min(j0+NR, n)` of `b` are in bounds.
                unsafe {
                    let dst = bp.get().add(pc * plan.n_pad + j0 * kc);
                    pack_b(
                        nr_full,
                        b.get().add(pc * r.sb.rs + j0 * r.sb.cs),
                        r.sb.rs,
                        r.sb.cs,
                        kc,
                        (n - j0).min(nr_full),
                        dst,
                    )
                }
            } else {
                let ip = plan.a_first + which - plan.n_panels;
                let i0 = ip * mr_full;
                // SAFETY: as above, for the packed row panel `ip` of `a`.
                unsafe {
                    let dst = ap
                        .get()
                        .add(pc * plan.a_rows + (ip - plan.a_first) * mr_full * kc);
                    pack_a(
                        mr_full,
                        a.get().add(i0 * r.sa.rs + pc * r.sa.cs),
                        r.sa.rs,
                        r.sa.cs,
                        (m - i0).min(mr_full),
                        kc,
                        dst,
                    )
                }
            }
        };
        let tasks = kblocks * per_block;
        if par && tasks > 1 {
            (0..tasks).into_par_iter().with_min_len(4).for_each(pack);
        } else {
            (0..tasks).for_each(pack);
        }
        // Jobs: blocks of row panels x blocks of column panels.
        let (pm, pn) = if par {
            let want = 2 * rayon::current_num_threads().max(1);
            if plan.n_panels >= plan.m_panels {
                let pn = want.min(plan.n_panels);
                (want.div_ceil(pn).min(plan.m_panels), pn)
            } else {
                let pm = want.min(plan.m_panels);
                (pm, want.div_ceil(pm).min(plan.n_panels))
            }
        } else {
            (1, 1)
        };
        let job = |j: usize| {
            let (bi, bj) = (j / pn, j % pn);
            let rows = (plan.m_panels * bi / pm, plan.m_panels * (bi + 1) / pm);
            let cols = (plan.n_panels * bj / pn, plan.n_panels * (bj + 1) / pn);
            // SAFETY: jobs compute disjoint panels of `c`; the packing
            // finished before any job started.
            unsafe { tiles::<K>(r, plan, a.get(), bp.get(), ap.get(), c.get(), rows, cols) }
        };
        if par && pm * pn > 1 {
            (0..pm * pn).into_par_iter().for_each(job);
        } else {
            (0..pm * pn).for_each(job);
        }
    }

    /// Row panels `rows.0..rows.1` x column panels `cols.0..cols.1` of one
    /// batch item's `c`, from the packed operands.
    ///
    /// # Safety
    /// As [`one`], after packing; no other thread writes these panels.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tiles<K: MicroKernel>(
        r: &Raw,
        plan: &Plan,
        a: *const f32,
        bp: *const f32,
        ap: *const f32,
        c: *mut f32,
        rows: (usize, usize),
        cols: (usize, usize),
    ) {
        let (mr_full, nr_full) = (K::MR, K::NR);
        let (m, n, k) = (plan.m, plan.n, plan.k);
        let (mc_panels, nc_panels) = (K::MC / mr_full, NC / nr_full);
        let mut tmp = [0.0f32; TILE_MAX];
        for jc in (cols.0..cols.1).step_by(nc_panels) {
            let jc_end = (jc + nc_panels).min(cols.1);
            for pc in (0..k).step_by(KC) {
                let kc = (k - pc).min(KC);
                let (first, last) = (pc == 0, pc + kc == k);
                for ic in (rows.0..rows.1).step_by(mc_panels) {
                    let ic_end = (ic + mc_panels).min(rows.1);
                    for jp in jc..jc_end {
                        let j = jp * nr_full;
                        let nr = (n - j).min(nr_full);
                        // SAFETY: panel `jp` of depth block `pc` is packed.
                        let bpanel = unsafe { bp.add(pc * plan.n_pad + j * kc) };
                        for ip in ic..ic_end {
                            let i = ip * mr_full;
                            let mr = (m - i).min(mr_full);
                            // SAFETY: row panel `ip` is either read in place
                            // (a full panel of a row-major `a`) or packed.
                            let (apanel, lda) = unsafe {
                                if ip < plan.a_first {
                                    (a.add(i * r.sa.rs + pc), r.sa.rs)
                                } else {
                                    let q = ip - plan.a_first;
                                    (ap.add(pc * plan.a_rows + q * mr_full * kc), 0)
                                }
                            };
                            debug_assert!(plan.direct_a || lda == 0);
                            // SAFETY: tile (i, j) of `mr x nr` lies inside
                            // `c`; the panels hold `kc` steps.
                            unsafe {
                                let ct = c.add(i * r.c_rs + j);
                                if mr == mr_full && nr == nr_full {
                                    K::tile(kc, apanel, lda, bpanel, ct, r.c_rs, !first);
                                } else {
                                    let tp = tmp.as_mut_ptr();
                                    K::tile(kc, apanel, lda, bpanel, tp, nr_full, false);
                                    for ti in 0..mr {
                                        let row = ct.add(ti * r.c_rs);
                                        for tj in 0..nr {
                                            let v = tmp[ti * nr_full + tj];
                                            *row.add(tj) = if first { v } else { *row.add(tj) + v };
                                        }
                                    }
                                }
                                if last {
                                    epilogue(r, ct, i, j, mr, nr);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Packs columns `0..nc` (`nc <= NR`) of `kc` rows of `b` into one
    /// `kc x NR` panel (zero padded).
    ///
    /// # Safety
    /// Every `(p, j)` with `p < kc`, `j < nc` at `b + p*rs + j*cs` is in
    /// bounds; `out` addresses `kc * NR` writable elements.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn pack_b(
        nr_full: usize,
        b: *const f32,
        rs: usize,
        cs: usize,
        kc: usize,
        nc: usize,
        out: *mut f32,
    ) {
        #[allow(non_snake_case)]
        let NR = nr_full;
        // SAFETY: the caller's contract.
        let dst = unsafe { std::slice::from_raw_parts_mut(out, kc * NR) };
        if nc == NR && cs == 1 {
            for p in 0..kc {
                // SAFETY: `NR` contiguous elements of row `p` are in bounds.
                let src = unsafe { std::slice::from_raw_parts(b.add(p * rs), NR) };
                dst[p * NR..][..NR].copy_from_slice(src);
            }
        } else if rs == 1 {
            // Columns are contiguous: read each column once.
            for j in 0..NR {
                if j >= nc {
                    for p in 0..kc {
                        dst[p * NR + j] = 0.0;
                    }
                    continue;
                }
                // SAFETY: column `j < nc` holds `kc` contiguous elements.
                let col = unsafe { std::slice::from_raw_parts(b.add(j * cs), kc) };
                for (p, &v) in col.iter().enumerate() {
                    dst[p * NR + j] = v;
                }
            }
        } else {
            for p in 0..kc {
                let line = &mut dst[p * NR..][..NR];
                for (j, o) in line.iter_mut().enumerate() {
                    // SAFETY: `(p, j)` with `j < nc` is in bounds.
                    *o = if j < nc {
                        unsafe { *b.add(p * rs + j * cs) }
                    } else {
                        0.0
                    };
                }
            }
        }
    }

    /// Packs rows `0..mc` (`mc <= MR`) of `kc` columns of `a` into one
    /// `kc x MR` panel (zero padded).
    ///
    /// # Safety
    /// Every `(i, p)` with `i < mc`, `p < kc` at `a + i*rs + p*cs` is in
    /// bounds; `out` addresses `kc * MR` writable elements.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn pack_a(
        mr_full: usize,
        a: *const f32,
        rs: usize,
        cs: usize,
        mc: usize,
        kc: usize,
        out: *mut f32,
    ) {
        #[allow(non_snake_case)]
        let MR = mr_full;
        // SAFETY: the caller's contract.
        let dst = unsafe { std::slice::from_raw_parts_mut(out, kc * MR) };
        if rs == 1 && mc == MR {
            // Columns are contiguous: copy `MR` elements per step.
            for p in 0..kc {
                // SAFETY: column `p` holds `MR` contiguous elements.
                let src = unsafe { std::slice::from_raw_parts(a.add(p * cs), MR) };
                dst[p * MR..][..MR].copy_from_slice(src);
            }
            return;
        }
        for i in 0..MR {
            if i >= mc {
                for p in 0..kc {
                    dst[p * MR + i] = 0.0;
                }
                continue;
            }
            // SAFETY: row `i < mc` is in bounds.
            let row = unsafe { a.add(i * rs) };
            for p in 0..kc {
                // SAFETY: as above, column `p < kc`.
                dst[p * MR + i] = unsafe { *row.add(p * cs) };
            }
        }
    }

    /// The 6x16 tile (see [`MicroKernel::tile`]); `DIRECT` reads `a` in
    /// place with row stride `lda`.
    ///
    /// # Safety
    /// As [`MicroKernel::tile`]; the CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn kernel_avx2<const DIRECT: bool>(
        kc: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        c: *mut f32,
        rs_c: usize,
        accumulate: bool,
    ) {
        const MR: usize = 6;
        const NR: usize = 16;
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let (mut a, mut b) = (a, b);
        for _ in 0..kc {
            // SAFETY: step `p < kc` of both panels is in bounds.
            unsafe {
                let b0 = _mm256_loadu_ps(b);
                let b1 = _mm256_loadu_ps(b.add(8));
                for (i, row) in acc.iter_mut().enumerate() {
                    let ap = if DIRECT { a.add(i * lda) } else { a.add(i) };
                    let ai = _mm256_broadcast_ss(&*ap);
                    row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                    row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
                }
                a = a.add(if DIRECT { 1 } else { MR });
                b = b.add(NR);
            }
        }
        for (i, row) in acc.iter().enumerate() {
            // SAFETY: row `i` of the tile is `NR` elements at `c + i*rs_c`.
            unsafe {
                let p = c.add(i * rs_c);
                let (mut v0, mut v1) = (row[0], row[1]);
                if accumulate {
                    v0 = _mm256_add_ps(v0, _mm256_loadu_ps(p));
                    v1 = _mm256_add_ps(v1, _mm256_loadu_ps(p.add(8)));
                }
                _mm256_storeu_ps(p, v0);
                _mm256_storeu_ps(p.add(8), v1);
            }
        }
    }

    /// The 12x32 tile (see [`MicroKernel::tile`]); `DIRECT` reads `a` in
    /// place with row stride `lda`.
    ///
    /// # Safety
    /// As [`MicroKernel::tile`]; the CPU has AVX-512F.
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn kernel_avx512<const DIRECT: bool>(
        kc: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        c: *mut f32,
        rs_c: usize,
        accumulate: bool,
    ) {
        const MR: usize = 12;
        const NR: usize = 32;
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        let (mut a, mut b) = (a, b);
        for _ in 0..kc {
            // SAFETY: step `p < kc` of both panels is in bounds.
            unsafe {
                let b0 = _mm512_loadu_ps(b);
                let b1 = _mm512_loadu_ps(b.add(16));
                for (i, row) in acc.iter_mut().enumerate() {
                    let ap = if DIRECT { a.add(i * lda) } else { a.add(i) };
                    let ai = _mm512_set1_ps(*ap);
                    row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                    row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
                }
                a = a.add(if DIRECT { 1 } else { MR });
                b = b.add(NR);
            }
        }
        for (i, row) in acc.iter().enumerate() {
            // SAFETY: row `i` of the tile is `NR` elements at `c + i*rs_c`.
            unsafe {
                let p = c.add(i * rs_c);
                let (mut v0, mut v1) = (row[0], row[1]);
                if accumulate {
                    v0 = _mm512_add_ps(v0, _mm512_loadu_ps(p));
                    v1 = _mm512_add_ps(v1, _mm512_loadu_ps(p.add(16)));
                }
                _mm512_storeu_ps(p, v0);
                _mm512_storeu_ps(p.add(16), v1);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small xorshift generator for reproducible test data.
    pub(crate) struct Rng(pub u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        pub(crate) fn f32(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
        pub(crate) fn vec(&mut self, n: usize) -> Vec<f32> {
            (0..n).map(|_| self.f32()).collect()
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn naive(
        d: GemmDims,
        a: &[f32],
        sa: Strides,
        b: &[f32],
        sb: Strides,
        bias: Option<Bias<'_>>,
        c_bs: usize,
        c_rs: usize,
        act: Act,
        c: &mut [f64],
    ) {
        for t in 0..d.batch {
            for i in 0..d.m {
                for j in 0..d.n {
                    let mut s = bias.map_or(0.0, |b| b.data[i * b.rs + j * b.cs] as f64);
                    for p in 0..d.k {
                        s += a[t * sa.bs + i * sa.rs + p * sa.cs] as f64
                            * b[t * sb.bs + p * sb.rs + j * sb.cs] as f64;
                    }
                    c[t * c_bs + i * c_rs + j] = act.apply(s as f32) as f64;
                }
            }
        }
    }

    fn check_random(rng: &mut Rng, kern: Kernel) {
        let pick = |rng: &mut Rng| [1, 2, 3, 5, 6, 7, 16, 17, 31, 64, 97][rng.below(11)];
        let d = GemmDims {
            batch: 1 + rng.below(3),
            m: pick(rng),
            n: pick(rng),
            k: if rng.below(8) == 0 { 300 } else { pick(rng) },
        };
        check(rng, d, kern);
    }

    /// Checks `d` with random layouts (row- or column-major operands with
    /// padding, broadcast batches, bias kinds, activations) against the
    /// naive product, through `gemm` and through `run` with `kern`.
    fn check(rng: &mut Rng, d: GemmDims, kern: Kernel) {
        let (m, n, k) = (d.m, d.n, d.k);
        let operand = |rng: &mut Rng, rows: usize, cols: usize| {
            let pad = rng.below(3);
            let layout = rng.below(5);
            let mut s = if layout < 2 {
                Strides {
                    bs: 0,
                    rs: cols + pad,
                    cs: 1,
                }
            } else if layout == 4 {
                // Neither rows nor columns contiguous.
                Strides {
                    bs: 0,
                    rs: 2 * cols + pad,
                    cs: 2,
                }
            } else {
                Strides {
                    bs: 0,
                    rs: 1,
                    cs: rows + pad,
                }
            };
            s.bs = if rng.below(4) == 0 {
                0
            } else {
                s.span(1, rows, cols).unwrap() + rng.below(3)
            };
            let len = s.span(d.batch, rows, cols).unwrap();
            (rng.vec(len), s)
        };
        let (a, sa) = operand(rng, m, k);
        let (b, sb) = operand(rng, k, n);
        let bias_data;
        let bias = match rng.below(4) {
            0 => None,
            which => {
                let (rs, cs) = [(0, 1), (1, 0), (n + 1, 2)][which - 1];
                bias_data = rng.vec((m - 1) * rs + (n - 1) * cs + 1);
                Some(Bias {
                    data: &bias_data,
                    rs,
                    cs,
                })
            }
        };
        let act = [Act::None, Act::Relu, Act::Clamp(-0.5, 0.25)][rng.below(3)];
        let c_rs = n + rng.below(2);
        let c_bs = (m - 1) * c_rs + n + rng.below(2);
        let len = (d.batch - 1) * c_bs + (m - 1) * c_rs + n;
        let mut c = vec![f32::NAN; len];
        let mut want = vec![f64::NAN; len];
        naive(d, &a, sa, &b, sb, bias, c_bs, c_rs, act, &mut want);
        let raw_ok = gemm(d, &a, sa, &b, sb, bias, &mut c, c_bs, c_rs, act);
        assert!(raw_ok);
        // Re-run with the requested kernel.
        c.fill(f32::NAN);
        let raw = Raw {
            d,
            a: a.as_ptr(),
            sa,
            b: b.as_ptr(),
            sb,
            bias: bias.map_or(std::ptr::null(), |b| b.data.as_ptr()),
            bias_rs: bias.map_or(0, |b| b.rs),
            bias_cs: bias.map_or(0, |b| b.cs),
            c: c.as_mut_ptr(),
            c_bs,
            c_rs,
            act,
        };
        // SAFETY: `gemm` accepted exactly these operands above.
        unsafe { run(&raw, kern) };
        for (idx, (g, w)) in c.iter().zip(&want).enumerate() {
            if w.is_nan() {
                assert!(g.is_nan(), "gap at {idx} written");
                continue;
            }
            let tol = 1e-5 * (k as f64).sqrt().max(1.0) * 4.0;
            assert!(
                (*g as f64 - w).abs() <= tol,
                "{d:?} {sa:?} {sb:?} {kern:?} at {idx}: {g} vs {w}"
            );
        }
    }

    #[test]
    fn random_shapes_match_naive_product() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let mut rng = Rng(0x9e3779b97f4a7c15);
        pool.install(|| {
            for _ in 0..200 {
                check_random(&mut rng, kernel());
                check_random(&mut rng, Kernel::Portable);
                #[cfg(target_arch = "x86_64")]
                if kernel() == Kernel::Avx512 {
                    check_random(&mut rng, Kernel::Avx2);
                }
            }
        });
    }

    #[test]
    fn small_m_and_wide_products_match_naive_product() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let mut rng = Rng(0x5eed);
        pool.install(|| {
            for m in [1, 2, 3, 4, 5, 13] {
                for n in [1, 5, 33, 300, 515] {
                    for k in [1, 15, 17, 257, 770] {
                        let d = GemmDims {
                            batch: 1 + rng.below(2),
                            m,
                            n,
                            k,
                        };
                        check(&mut rng, d, kernel());
                        if rng.below(3) == 0 {
                            check(&mut rng, d, Kernel::Portable);
                        }
                        #[cfg(target_arch = "x86_64")]
                        if kernel() == Kernel::Avx512 && rng.below(2) == 0 {
                            check(&mut rng, d, Kernel::Avx2);
                        }
                    }
                }
            }
        });
    }

    #[test]
    fn large_product_in_parallel_matches_portable() {
        let d = GemmDims {
            batch: 1,
            m: 300,
            n: 2100,
            k: 520,
        };
        let mut rng = Rng(7);
        let a = rng.vec(d.m * d.k);
        let b = rng.vec(d.k * d.n);
        let bias_data = rng.vec(d.n);
        let bias = Some(Bias {
            data: &bias_data,
            rs: 0,
            cs: 1,
        });
        let mut c = vec![0.0; d.m * d.n];
        let mut want = vec![0.0; d.m * d.n];
        let (sa, sb) = (Strides::row_major(d.m, d.k), Strides::row_major(d.k, d.n));
        assert!(gemm(d, &a, sa, &b, sb, bias, &mut c, 0, d.n, Act::Relu));
        for i in 0..d.m {
            for j in 0..d.n {
                let mut s = bias_data[j] as f64;
                for p in 0..d.k {
                    s += a[i * d.k + p] as f64 * b[p * d.n + j] as f64;
                }
                want[i * d.n + j] = s.max(0.0) as f32;
            }
        }
        for (g, w) in c.iter().zip(&want) {
            assert!((g - w).abs() < 1e-4, "{g} vs {w}");
        }
    }

    #[test]
    fn k_zero_writes_the_bias() {
        let d = GemmDims {
            batch: 2,
            m: 2,
            n: 3,
            k: 0,
        };
        let bias = [1.0, -2.0];
        let mut c = [9.0f32; 12];
        let bias = Some(Bias {
            data: &bias,
            rs: 1,
            cs: 0,
        });
        let s = Strides::default();
        assert!(gemm(d, &[], s, &[], s, bias, &mut c, 6, 3, Act::Relu));
        assert_eq!(
            c,
            [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
        );
    }

    #[test]
    fn rejects_operands_outside_their_slices_or_overlapping_rows() {
        let d = GemmDims {
            batch: 1,
            m: 2,
            n: 2,
            k: 2,
        };
        let x = [1.0f32; 4];
        let mut c = [5.0f32; 4];
        let s = Strides::row_major(2, 2);
        let wide = Strides {
            bs: 0,
            rs: 3,
            cs: 1,
        };
        assert!(!gemm(d, &x, wide, &x, s, None, &mut c, 4, 2, Act::None));
        assert!(!gemm(d, &x, s, &x, s, None, &mut c, 4, 1, Act::None));
        let two = GemmDims { batch: 2, ..d };
        assert!(!gemm(two, &x, s, &x, s, None, &mut c, 0, 2, Act::None));
        let bias = Some(Bias {
            data: &x[..1],
            rs: 1,
            cs: 0,
        });
        assert!(!gemm(d, &x, s, &x, s, bias, &mut c, 4, 2, Act::None));
        assert_eq!(c, [5.0; 4]);
    }
}
