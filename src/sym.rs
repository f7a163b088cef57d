//! Symbolic dimension expressions.
