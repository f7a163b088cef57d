//! Splitting a range of work items over the current rayon pool.
//!
//! Kernels call [`parallel_chunks`]; generated code calls
//! [`torchlift_rt_parallel_for`] with a C callback. Both run on the pool the
//! caller is in (`ThreadPool::install`), so the caller picks the thread count.

use crate::abi::{guard, OK};
use rayon::prelude::*;

/// How many chunks `[0, n)` is cut into: each at least `grain` items long
/// (`grain == 0` counts as 1), at most four per pool thread.
fn chunk_count(n: usize, grain: usize) -> usize {
    let grain = grain.max(1);
    let threads = rayon::current_num_threads().max(1);
    if n <= grain || threads == 1 {
        return 1;
    }
    (n / grain).clamp(1, 4 * threads)
}

/// The bounds of chunk `i` of `chunks` near-equal chunks of `[0, n)`.
fn chunk_bounds(n: usize, chunks: usize, i: usize) -> (usize, usize) {
    let at = |i: usize| ((n as u128 * i as u128) / chunks as u128) as usize;
    (at(i), at(i + 1))
}

/// Calls `f(start, end)` on contiguous chunks covering `[0, n)`, each at
/// least `grain` long (except possibly the last), in parallel on the current
/// rayon pool. When the range fits one chunk or the pool has one thread,
/// `f(0, n)` runs on the calling thread. Does nothing when `n == 0`.
pub fn parallel_chunks(n: usize, grain: usize, f: impl Fn(usize, usize) + Sync) {
    if n == 0 {
        return;
    }
    let chunks = chunk_count(n, grain);
    if chunks == 1 {
        f(0, n);
        return;
    }
    (0..chunks).into_par_iter().for_each(|i| {
        let (s, e) = chunk_bounds(n, chunks, i);
        f(s, e)
    });
}

/// The callback type of [`torchlift_rt_parallel_for`].
pub type ChunkFn = unsafe extern "C" fn(ctx: *const u8, start: i64, end: i64) -> i32;

/// A pointer the callback's contract lets every worker thread use.
#[derive(Copy, Clone)]
struct SharedPtr(*const u8);
// SAFETY: `torchlift_rt_parallel_for`'s caller guarantees that `f` may be
// called with `ctx` from any thread concurrently.
unsafe impl Send for SharedPtr {}
// SAFETY: as above.
unsafe impl Sync for SharedPtr {}

impl SharedPtr {
    /// The pointer (a method, so closures capture the whole `SharedPtr`).
    fn get(self) -> *const u8 {
        self.0
    }
}

/// Runs `f(ctx, start, end)` over contiguous chunks of `[0, n)` of at least
/// `grain` items (`grain <= 0` means 1), at most four chunks per thread of
/// the current rayon pool, and returns the status of the first chunk (in
/// range order) whose call returned nonzero, or 0. When `n <= grain` or the
/// pool has one thread, `f(ctx, 0, n)` runs once on the calling thread.
/// `n <= 0` returns 0 without calling `f`.
///
/// # Safety
/// `f` is a function of type [`ChunkFn`] that is safe to call concurrently
/// from several threads with `ctx` and disjoint ranges inside `[0, n)`.
#[no_mangle]
pub unsafe extern "C" fn torchlift_rt_parallel_for(
    f: *const u8,
    ctx: *const u8,
    n: i64,
    grain: i64,
) -> i32 {
    if n <= 0 {
        return OK;
    }
    if f.is_null() {
        return crate::abi::INVALID;
    }
    // SAFETY: the caller guarantees `f` is a `ChunkFn`; function and data
    // pointers have the same size on every supported target.
    let f: ChunkFn = unsafe { std::mem::transmute::<*const u8, ChunkFn>(f) };
    let ctx = SharedPtr(ctx);
    guard(move || {
        let n = n as usize;
        let chunks = chunk_count(n, grain.max(1) as usize);
        let call = |start: usize, end: usize| {
            // SAFETY: the caller guarantees concurrent calls on disjoint
            // ranges of `[0, n)` are sound; `start < end <= n` fit in `i64`.
            unsafe { f(ctx.get(), start as i64, end as i64) }
        };
        if chunks == 1 {
            return call(0, n);
        }
        (0..chunks)
            .into_par_iter()
            .map(|i| {
                let (s, e) = chunk_bounds(n, chunks, i);
                (i, call(s, e))
            })
            .filter(|&(_, s)| s != OK)
            .min_by_key(|&(i, _)| i)
            .map_or(OK, |(_, s)| s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    struct Sums {
        total: AtomicI64,
        calls: AtomicI64,
        fail_from: i64,
    }

    unsafe extern "C" fn add_range(ctx: *const u8, start: i64, end: i64) -> i32 {
        // SAFETY: the tests pass a pointer to a live `Sums`.
        let s = unsafe { &*(ctx as *const Sums) };
        s.calls.fetch_add(1, Ordering::Relaxed);
        s.total
            .fetch_add((start..end).sum::<i64>(), Ordering::Relaxed);
        if end > s.fail_from {
            (start + 100) as i32
        } else {
            0
        }
    }

    fn run(n: i64, grain: i64, fail_from: i64) -> (i32, i64, i64) {
        let s = Sums {
            total: AtomicI64::new(0),
            calls: AtomicI64::new(0),
            fail_from,
        };
        let f: ChunkFn = add_range;
        // SAFETY: `add_range` only touches atomics of the live `s`.
        let st = unsafe {
            torchlift_rt_parallel_for(f as *const u8, &s as *const Sums as *const u8, n, grain)
        };
        (
            st,
            s.total.load(Ordering::Relaxed),
            s.calls.load(Ordering::Relaxed),
        )
    }

    #[test]
    fn covers_the_range_once_on_several_threads() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| {
            for (n, grain) in [(1000, 7), (1000, 0), (5, 10), (10, 10), (11, 10), (1, -3)] {
                let (st, total, calls) = run(n, grain, i64::MAX);
                assert_eq!(st, 0);
                assert_eq!(total, n * (n - 1) / 2, "n {n} grain {grain}");
                assert!(calls <= 12, "{calls} chunks");
                if n <= grain.max(1) {
                    assert_eq!(calls, 1);
                }
            }
            // Chunks of at least `grain`.
            let (_, _, calls) = run(1000, 300, i64::MAX);
            assert!(calls <= 3);
            assert_eq!(run(0, 1, 0), (0, 0, 0));
            assert_eq!(run(-5, 1, 0), (0, 0, 0));
            // The first failing chunk's status wins: chunks ending past 500.
            let (st, total, _) = run(1000, 1, 500);
            assert_eq!(total, 1000 * 999 / 2);
            assert!(st >= 100 && st - 100 <= 500, "{st}");
            let (st, ..) = run(1000, 1, 0);
            assert_eq!(st, 100);
        });
    }

    #[test]
    fn one_thread_runs_inline() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        pool.install(|| {
            assert_eq!(run(1000, 1, i64::MAX), (0, 1000 * 999 / 2, 1));
        });
    }

    #[test]
    fn chunks_cover_the_range() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            for (n, grain) in [(0, 1), (1, 1), (97, 5), (1000, 1), (64, 64)] {
                let seen = AtomicI64::new(0);
                parallel_chunks(n, grain, |s, e| {
                    assert!(s < e && e <= n);
                    assert!(e - s >= grain.max(1) || (s, e) == (0, n));
                    seen.fetch_add((e - s) as i64, Ordering::Relaxed);
                });
                assert_eq!(seen.load(Ordering::Relaxed), n as i64);
            }
        });
    }
}
