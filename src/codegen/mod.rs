//! Native code generation with Cranelift.
//!
//! ```text
//! Program ─ schedule ─▶ Plan (kernels: pointwise | reduction | extern | fallback)
//!         ─ memory   ─▶ ArenaPlan (liveness slots, symbolic sizes)
//!         ─ lower    ─▶ one CLIF function per loop kernel + the entry, over &mut dyn Module
//!         ─ jit      ─▶ JITModule in memory
//!         ─ aot      ─▶ ObjectModule: an object file (see `aot`)
//! ```
//!
//! [`schedule`] fuses views and elementwise chains into the kernels that
//! consume them ([`kernel`] is the kernel IR and its text form);
//! [`memory`] places every intermediate in one arena; [`lower`] emits the
//! code (f32x4 inner loops where the expression allows); [`jit`] drives it.

pub mod aot;
pub mod jit;
pub mod kernel;
pub mod lower;
pub mod math;
pub mod memory;
pub mod schedule;
pub(crate) mod weights;

pub use lower::{lower_plan, ENTRY_NAME};
pub use schedule::schedule;
