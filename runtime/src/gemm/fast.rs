//! Batched, strided, multithreaded `f32` GEMM with a fused bias and
//! activation epilogue.
//!
//! `C_t = act(bias + A_t @ B_t)` for each batch index `t`, where every
//! operand has its own batch, row and column strides (in elements, possibly
//! 0 for broadcasting) and `C` is row-major with column stride 1. The work
//! is split over batch items and blocks of rows or columns of `C` on the
//! current rayon pool. Each block runs a packed GEMM with an AVX2+FMA 6x16
//! microkernel when the CPU has it, and `matrixmultiply` otherwise.

use rayon::prelude::*;

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
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Kernel::Avx512;
        }
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
    let (pm, pn) = split(r.d);
    let jobs = r.d.batch * pm * pn;
    let job = |j: usize| {
        let (t, rest) = (j / (pm * pn), j % (pm * pn));
        let (bi, bj) = (rest / pn, rest % pn);
        let rows = (r.d.m * bi / pm, r.d.m * (bi + 1) / pm);
        let cols = (r.d.n * bj / pn, r.d.n * (bj + 1) / pn);
        // SAFETY: jobs cover disjoint (batch, row block, column block)
        // parts of `c`; the rest is the caller's contract.
        unsafe { block(r, kern, t, rows, cols) }
    };
    if jobs == 1 || split_is_sequential(r.d) {
        (0..jobs).for_each(job);
    } else {
        (0..jobs).into_par_iter().for_each(job);
    }
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
unsafe fn block(r: &Raw, kern: Kernel, t: usize, rows: (usize, usize), cols: (usize, usize)) {
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
    match kern {
        Kernel::Portable => {
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
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Kernel::Avx2` is only chosen when the CPU has AVX2 and FMA.
        Kernel::Avx2 => unsafe { packed::block::<packed::Avx2>(r, a, b, c, rows, cols) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Kernel::Avx512` is only chosen when the CPU has AVX-512F,
        // AVX2 and FMA.
        Kernel::Avx512 => unsafe { packed::block::<packed::Avx512>(r, a, b, c, rows, cols) },
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

#[cfg(target_arch = "x86_64")]
mod packed {
    use super::{epilogue, Raw};
    use std::arch::x86_64::*;

    const KC: usize = 256;
    const NC: usize = 2048;

    /// A register-blocked microkernel: `MR x NR` tiles.
    pub(super) trait MicroKernel {
        const MR: usize;
        const NR: usize;
        /// Rows of `a` packed at a time (a multiple of `MR`).
        const MC: usize;

        /// `c (MR x NR, row stride rs_c) = (accumulate ? c : 0) + a @ b`
        /// over `kc` packed steps.
        ///
        /// # Safety
        /// `a` holds `kc * MR`, `b` `kc * NR` elements; the tile at `c` is
        /// writable (and readable when `accumulate`); the CPU has the
        /// kernel's features.
        unsafe fn tile(
            kc: usize,
            a: *const f32,
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
            b: *const f32,
            c: *mut f32,
            rs_c: usize,
            acc: bool,
        ) {
            // SAFETY: forwarded contract; the caller checked AVX2 and FMA.
            unsafe { kernel_avx2(kc, a, b, c, rs_c, acc) }
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
            b: *const f32,
            c: *mut f32,
            rs_c: usize,
            acc: bool,
        ) {
            // SAFETY: forwarded contract; the caller checked AVX-512F.
            unsafe { kernel_avx512(kc, a, b, c, rs_c, acc) }
        }
    }

    /// Room for the largest tile.
    const TILE_MAX: usize = 12 * 32;

    /// The packed GEMM of one block of `c` (see [`super::block`]); `a`, `b`
    /// and `c` point at the block's first row/column.
    ///
    /// # Safety
    /// As [`super::block`]; the CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block<K: MicroKernel>(
        r: &Raw,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        rows: (usize, usize),
        cols: (usize, usize),
    ) {
        let (mr_full, nr_full, mc_step) = (K::MR, K::NR, K::MC);
        let (mb, nb, k) = (rows.1 - rows.0, cols.1 - cols.0, r.d.k);
        let kc_max = k.min(KC);
        let nc_max = nb.min(NC).next_multiple_of(nr_full);
        let mc_max = mb.min(mc_step).next_multiple_of(mr_full);
        let mut bp = vec![0.0f32; kc_max * nc_max];
        let mut ap = vec![0.0f32; kc_max * mc_max];
        let mut tmp = [0.0f32; TILE_MAX];
        for jc in (0..nb).step_by(NC) {
            let nc = (nb - jc).min(NC);
            for pc in (0..k).step_by(KC) {
                let kc = (k - pc).min(KC);
                let (first, last) = (pc == 0, pc + kc == k);
                // SAFETY: rows `pc..pc+kc`, columns `jc..jc+nc` of the
                // block's `b` are in bounds.
                unsafe {
                    pack_b(
                        nr_full,
                        b.add(pc * r.sb.rs + jc * r.sb.cs),
                        r.sb.rs,
                        r.sb.cs,
                        kc,
                        nc,
                        &mut bp,
                    )
                };
                for ic in (0..mb).step_by(mc_step) {
                    let mc = (mb - ic).min(mc_step);
                    // SAFETY: rows `ic..ic+mc`, columns `pc..pc+kc` of the
                    // block's `a` are in bounds.
                    unsafe {
                        pack_a(
                            mr_full,
                            a.add(ic * r.sa.rs + pc * r.sa.cs),
                            r.sa.rs,
                            r.sa.cs,
                            mc,
                            kc,
                            &mut ap,
                        )
                    };
                    for jr in (0..nc).step_by(nr_full) {
                        let nr = (nc - jr).min(nr_full);
                        let bpanel = bp[jr * kc..].as_ptr();
                        for ir in (0..mc).step_by(mr_full) {
                            let mr = (mc - ir).min(mr_full);
                            let apanel = ap[ir * kc..].as_ptr();
                            let (i, j) = (ic + ir, jc + jr);
                            // SAFETY: tile (i, j) of `mr x nr` lies inside
                            // the block of `c`; the panels hold `kc` steps.
                            unsafe {
                                let ct = c.add(i * r.c_rs + j);
                                if mr == mr_full && nr == nr_full {
                                    K::tile(kc, apanel, bpanel, ct, r.c_rs, !first);
                                } else {
                                    K::tile(kc, apanel, bpanel, tmp.as_mut_ptr(), nr_full, false);
                                    for ti in 0..mr {
                                        let row = ct.add(ti * r.c_rs);
                                        for tj in 0..nr {
                                            let v = tmp[ti * nr_full + tj];
                                            *row.add(tj) = if first { v } else { *row.add(tj) + v };
                                        }
                                    }
                                }
                                if last {
                                    epilogue(r, ct, rows.0 + i, cols.0 + j, mr, nr);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Packs `kc x nc` of `b` into panels of `NR` columns, each `kc` rows of
    /// `NR` (zero padded).
    ///
    /// # Safety
    /// Every `(p, j)` with `p < kc`, `j < nc` at `b + p*rs + j*cs` is in
    /// bounds; `out` holds `kc * nc.next_multiple_of(NR)` elements.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn pack_b(
        nr_full: usize,
        b: *const f32,
        rs: usize,
        cs: usize,
        kc: usize,
        nc: usize,
        out: &mut [f32],
    ) {
        #[allow(non_snake_case)]
        let NR = nr_full;
        for (panel, j0) in (0..nc).step_by(NR).enumerate() {
            let nr = (nc - j0).min(NR);
            let dst = &mut out[panel * kc * NR..][..kc * NR];
            if nr == NR && cs == 1 {
                for p in 0..kc {
                    // SAFETY: `NR` contiguous elements of row `p` are in bounds.
                    let src = unsafe { std::slice::from_raw_parts(b.add(p * rs + j0), NR) };
                    dst[p * NR..][..NR].copy_from_slice(src);
                }
            } else {
                for j in 0..NR {
                    if j >= nr {
                        for p in 0..kc {
                            dst[p * NR + j] = 0.0;
                        }
                        continue;
                    }
                    // SAFETY: column `j0 + j < nc` is in bounds.
                    let col = unsafe { b.add((j0 + j) * cs) };
                    for p in 0..kc {
                        // SAFETY: as above, row `p < kc`.
                        dst[p * NR + j] = unsafe { *col.add(p * rs) };
                    }
                }
            }
        }
    }

    /// Packs `mc x kc` of `a` into panels of `MR` rows, each `kc` columns of
    /// `MR` (zero padded).
    ///
    /// # Safety
    /// Every `(i, p)` with `i < mc`, `p < kc` at `a + i*rs + p*cs` is in
    /// bounds; `out` holds `kc * mc.next_multiple_of(MR)` elements.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn pack_a(
        mr_full: usize,
        a: *const f32,
        rs: usize,
        cs: usize,
        mc: usize,
        kc: usize,
        out: &mut [f32],
    ) {
        #[allow(non_snake_case)]
        let MR = mr_full;
        for (panel, i0) in (0..mc).step_by(MR).enumerate() {
            let mr = (mc - i0).min(MR);
            let dst = &mut out[panel * kc * MR..][..kc * MR];
            for i in 0..MR {
                if i >= mr {
                    for p in 0..kc {
                        dst[p * MR + i] = 0.0;
                    }
                    continue;
                }
                // SAFETY: row `i0 + i < mc` is in bounds.
                let row = unsafe { a.add((i0 + i) * rs) };
                for p in 0..kc {
                    // SAFETY: as above, column `p < kc`.
                    dst[p * MR + i] = unsafe { *row.add(p * cs) };
                }
            }
        }
    }

    /// The 6x16 tile (see [`MicroKernel::tile`]).
    ///
    /// # Safety
    /// As [`MicroKernel::tile`]; the CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn kernel_avx2(
        kc: usize,
        a: *const f32,
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
                    let ai = _mm256_broadcast_ss(&*a.add(i));
                    row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                    row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
                }
                a = a.add(MR);
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

    /// The 12x32 tile (see [`MicroKernel::tile`]).
    ///
    /// # Safety
    /// As [`MicroKernel::tile`]; the CPU has AVX-512F.
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn kernel_avx512(
        kc: usize,
        a: *const f32,
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
                    let ai = _mm512_set1_ps(*a.add(i));
                    row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                    row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
                }
                a = a.add(MR);
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
        let (m, n, k) = (d.m, d.n, d.k);
        let operand = |rng: &mut Rng, rows: usize, cols: usize| {
            let pad = rng.below(3);
            let mut s = if rng.below(2) == 0 {
                Strides {
                    bs: 0,
                    rs: cols + pad,
                    cs: 1,
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
