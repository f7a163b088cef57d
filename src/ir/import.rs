//! Builds a Program from a deserialized archive.
