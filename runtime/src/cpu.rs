//! Which vector kernels the runtime may use: what the CPU has, capped by
//! the lowest CPU target of the ahead-of-time artifacts loaded into the
//! process (an artifact compiled for `x86-64-v2` keeps the runtime that it
//! links to SSE kernels, so that it runs the code it was tested with).

use std::sync::atomic::{AtomicU8, Ordering};

/// Baseline x86-64 (or another architecture): portable kernels only.
pub const LEVEL_BASELINE: u8 = 0;
/// AVX2 and FMA.
pub const LEVEL_AVX2: u8 = 2;
/// AVX-512F as well.
pub const LEVEL_AVX512: u8 = 3;

static CEILING: AtomicU8 = AtomicU8::new(u8::MAX);

/// Caps the kernels at `level` for the rest of the process (a cap only
/// ever goes down).
pub fn limit_to(level: u8) {
    CEILING.fetch_min(level, Ordering::Relaxed);
}

fn allowed(level: u8) -> bool {
    CEILING.load(Ordering::Relaxed) >= level
}

/// AVX2 and FMA kernels may run.
pub fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        allowed(LEVEL_AVX2)
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// AVX-512F kernels may run.
pub fn avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        allowed(LEVEL_AVX512) && avx2_fma() && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}
