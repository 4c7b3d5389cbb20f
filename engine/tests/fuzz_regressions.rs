//! Replays the committed inputs in `fuzz/regressions/params` and `fuzz/regressions/timestamp`
//! through the harnesses of the fuzz targets, which are included here by path.

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/input.rs"]
mod input;
#[path = "../../fuzz/src/params.rs"]
mod params;
#[path = "../../fuzz/src/timestamp.rs"]
mod timestamp;

/// Inputs that still crash a harness, with the reason. `replay_all` skips them and the ignored
/// `known_crashes` test replays them, so they turn into ordinary regressions once fixed.
const KNOWN_CRASHES: &[(&str, &str)] = &[];

fn regression_directory(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target)
}

/// Returns the input files of a target, sorted, without the README.
fn inputs(target: &str) -> Vec<PathBuf> {
    let directory = regression_directory(target);
    let entries = fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("failed to read {}: {error}", directory.display()));

    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file() && path.file_name().is_some_and(|name| name != "README.md"))
        .collect();
    files.sort();
    files
}

fn is_known_crash(target: &str, path: &Path) -> bool {
    let name = format!(
        "{target}/{}",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    KNOWN_CRASHES.iter().any(|(known, _)| *known == name)
}

/// Runs `check` on each file and returns the names of the files that panicked.
fn replay(files: &[PathBuf], check: fn(&[u8])) -> Vec<String> {
    let mut failed = Vec::new();
    for path in files {
        let data = fs::read(path)
            .unwrap_or_else(|error| panic!("failed to read {}: {error}", path.display()));
        if panic::catch_unwind(|| check(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    failed
}

fn replay_all(target: &str, check: fn(&[u8])) {
    let files: Vec<PathBuf> = inputs(target)
        .into_iter()
        .filter(|path| !is_known_crash(target, path))
        .collect();
    assert!(
        !files.is_empty(),
        "no inputs in {}",
        regression_directory(target).display()
    );

    let failed = replay(&files, check);
    assert!(
        failed.is_empty(),
        "{} of {} inputs panicked: {failed:#?}",
        failed.len(),
        files.len()
    );
}

#[test]
fn params_regressions_pass() {
    replay_all("params", params::check);
}

#[test]
fn timestamp_regressions_pass() {
    replay_all("timestamp", timestamp::check);
}

#[test]
#[ignore = "each input in KNOWN_CRASHES still panics; see the reason beside it"]
fn known_crashes() {
    for (name, reason) in KNOWN_CRASHES {
        let (target, file) = name.split_once('/').expect("target/file");
        let check: fn(&[u8]) = match target {
            "params" => params::check,
            "timestamp" => timestamp::check,
            _ => panic!("unknown target in {name}"),
        };

        let path = regression_directory(target).join(file);
        let failed = replay(&[path], check);
        assert!(failed.is_empty(), "{name} still panics: {reason}");
    }
}
