//! The subcommands.

pub mod bench;
pub mod check;
pub mod inspect;
pub mod run;
