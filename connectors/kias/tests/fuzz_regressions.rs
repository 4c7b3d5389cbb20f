//! Replays the committed inputs in `fuzz/regressions/kias_decode` through the harness of the
//! `kias_decode` fuzz target, which is included here by path.

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

#[path = "../../../fuzz/src/input.rs"]
mod input;
#[path = "../../../fuzz/src/kias_decode.rs"]
mod kias_decode;

/// Inputs that still crash the harness, with the reason. `regressions_pass` skips them and the
/// ignored `known_crashes` test replays them, so they turn into ordinary regressions once fixed.
/// A stack overflow aborts the test process instead of failing one test.
const KNOWN_CRASHES: &[(&str, &str)] = &[];

fn regression_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/kias_decode")
}

/// Returns the input files, sorted, without the README.
fn inputs() -> Vec<PathBuf> {
    let directory = regression_directory();
    let entries = fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("failed to read {}: {error}", directory.display()));

    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file() && path.file_name().is_some_and(|name| name != "README.md"))
        .collect();
    files.sort();
    files
}

fn is_known_crash(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    KNOWN_CRASHES.iter().any(|(known, _)| *known == name)
}

/// Runs the harness on each file and returns the names of the files that panicked.
fn replay(files: &[PathBuf]) -> Vec<String> {
    let mut failed = Vec::new();
    for path in files {
        let data = fs::read(path)
            .unwrap_or_else(|error| panic!("failed to read {}: {error}", path.display()));
        if panic::catch_unwind(|| kias_decode::check(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    failed
}

#[test]
fn regressions_pass() {
    let files: Vec<PathBuf> = inputs()
        .into_iter()
        .filter(|path| !is_known_crash(path))
        .collect();
    assert!(
        !files.is_empty(),
        "no inputs in {}",
        regression_directory().display()
    );

    let failed = replay(&files);
    assert!(
        failed.is_empty(),
        "{} of {} inputs panicked: {failed:#?}",
        failed.len(),
        files.len()
    );
}

#[test]
#[ignore = "each input in KNOWN_CRASHES still panics; see the reason beside it"]
fn known_crashes() {
    for (file, reason) in KNOWN_CRASHES {
        let failed = replay(&[regression_directory().join(file)]);
        assert!(failed.is_empty(), "{file} still panics: {reason}");
    }
}
