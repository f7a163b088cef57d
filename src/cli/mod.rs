//! The subcommands.

pub mod check;
pub mod inspect;
pub mod run;
