//! (module under construction)
pub mod nn;
