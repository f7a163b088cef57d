//! Fixture case folders shared by the end-to-end tests (`conformance`, and
//! any backend's tests that want the same cases: `mod common;`).

use std::path::{Path, PathBuf};

/// The case folders directly under `root` (those with a `case.json`), sorted.
pub fn case_dirs_in(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("case.json").exists())
        .collect();
    v.sort();
    v
}

/// `tests/fixtures/cases/*`: the project's own cases (torch 2.15).
pub fn fixture_case_dirs() -> Vec<PathBuf> {
    case_dirs_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cases"))
}

/// The versions matrix: `tests/fixtures/versions/t2_N/CASE` for every torch
/// release folder, sorted by release, then by case. Each release folder
/// holds the same small models, written by that release in the training
/// and the core form (`make_fixtures.py --out`).
pub fn versioned_case_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/versions");
    let mut releases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    // t2_6 before t2_10
    releases.sort_by_key(|p| {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        let minor = name
            .as_deref()
            .and_then(|n| n.rsplit('_').next())
            .and_then(|m| m.parse::<u32>().ok());
        (minor, p.clone())
    });
    releases.iter().flat_map(|r| case_dirs_in(r)).collect()
}

/// Cases whose model uses a custom op that has no kernel: they must fail
/// with an error naming the op.
pub fn expects_unknown_op(dir: &Path) -> bool {
    dir.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("custom_op_nokernel"))
}
