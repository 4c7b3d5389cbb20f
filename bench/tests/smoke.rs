//! Smoke tests: `uig-bench all --quick --tiny` runs every scenario against the binaries of the
//! test's own profile, and every scenario yields figures. `uig-bench clients --tiny` prints figures
//! for each client. They check that the harness works, not that any target is met.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Builds the engine, the mock and the plugins in the profile folder of the uig-bench binary.
///
/// The engine's integration tests build the same packages. Both hold an exclusive `flock` on
/// target/uig-test-build.lock meanwhile, so parallel test binaries do not race on the files that
/// cargo copies into the profile folder.
fn build_binaries(profile_folder: &Path) {
    let target = profile_folder.parent().unwrap();
    let lock = std::fs::File::create(target.join("uig-test-build.lock")).expect("create the build lock file");
    // SAFETY: flock only reads the descriptor, which stays open until the end of this function.
    let locked = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
    assert_eq!(locked, 0, "flock of the build lock failed");

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command.args(["build", "--quiet"]);
    if profile_folder.file_name().is_some_and(|name| name == "release") {
        command.arg("--release");
    }
    for package in ["uig-engine", "uig-mock", "uig-connector-avinfo", "uig-connector-kontur", "uig-connector-kias", "uig-connector-impact"] {
        command.args(["-p", package]);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let status = command.current_dir(workspace).status().expect("run cargo");
    assert!(status.success(), "cargo build of the benchmarked binaries failed");
}

fn load<'a>(results: &'a Value, id: &str) -> &'a Value {
    let loads = results["loads"].as_array().expect("results.json has loads");
    let row = loads.iter().find(|row| row["id"] == id).unwrap_or_else(|| panic!("no load {id:?} in results.json"));
    &row["figures"]
}

#[test]
fn all_scenarios_yield_figures() {
    let executable = PathBuf::from(env!("CARGO_BIN_EXE_uig-bench"));
    let profile_folder = executable.parent().unwrap().to_path_buf();
    build_binaries(&profile_folder);
    let out = tempfile::tempdir().unwrap();

    let output = Command::new(&executable).args(["all", "--quick", "--tiny", "--out"]).arg(out.path()).output().expect("run uig-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "uig-bench all failed with {}\nstdout:\n{stdout}\nstderr:\n{stderr}", output.status);

    let results: Value = serde_json::from_str(&std::fs::read_to_string(out.path().join("results.json")).unwrap()).unwrap();
    for id in ["baseline", "baseline-listing", "intake", "intake-half-rate", "sync-direct", "sync-plugin", "sync-cache-hit", "e2e-intake", "e2e", "baseline-end"] {
        let figures = load(&results, id);
        assert!(figures["requests"].as_u64().is_some_and(|requests| requests > 0), "load {id} sent no request: {figures}");
        assert_eq!(figures["errors"], 0, "load {id} had errors: {figures}");
        assert!(figures["requests_per_second"].as_f64().is_some_and(|rate| rate > 0.0), "load {id} has no rate: {figures}");
        assert!(figures["p99_ms"].as_f64().is_some_and(|p99| p99 > 0.0), "load {id} has no p99: {figures}");
    }

    let listings = results["listings"].as_array().unwrap();
    assert_eq!(listings.len(), 16, "expected 2 listings × 4 pages × 2 sizes");
    for row in listings {
        assert_eq!(row["figures"]["errors"], 0, "listing had errors: {row}");
        assert!(row["figures"]["p99_ms"].as_f64().is_some_and(|p99| p99 > 0.0), "listing has no p99: {row}");
    }

    let memory = results["memory"].as_array().unwrap();
    for id in ["baseline-idle", "gateway-idle", "gateway-e2e-peak"] {
        let row = memory.iter().find(|row| row["id"] == id).unwrap_or_else(|| panic!("no memory row {id:?}"));
        assert!(row["megabytes"].as_f64().is_some_and(|megabytes| megabytes > 0.0), "memory {id} is empty: {row}");
    }

    let page = std::fs::read_to_string(out.path().join("README.md")).unwrap();
    assert!(page.contains("| target | measured | result |"), "README.md has no targets table");
    let chart = std::fs::read_to_string(out.path().join("results.svg")).unwrap();
    assert!(chart.contains("<svg"), "results.svg is not an SVG image");
}

#[test]
fn clients_print_a_row_per_client() {
    let executable = PathBuf::from(env!("CARGO_BIN_EXE_uig-bench"));
    build_binaries(executable.parent().unwrap());

    let output = Command::new(&executable).args(["clients", "--tiny"]).output().expect("run uig-bench clients");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "uig-bench clients failed with {}\nstdout:\n{stdout}\nstderr:\n{stderr}", output.status);

    for client in ["| reqwest, as the engine builds it", "| hyper-util pooled client", "| hyper connection API"] {
        let row = stdout.lines().find(|line| line.starts_with(client)).unwrap_or_else(|| panic!("no row {client:?} in:\n{stdout}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let rate: f64 = cells[2].parse().unwrap_or_else(|_| panic!("no rate in {row:?}"));
        let cpu: f64 = cells[3].parse().unwrap_or_else(|_| panic!("no CPU figure in {row:?}"));
        assert!(rate > 0.0, "row {row:?} has no rate");
        assert!(cpu > 0.0, "row {row:?} has no CPU per request");
    }
}
