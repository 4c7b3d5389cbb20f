//! CI smoke test: each fault scenario in `--quick` mode against debug builds of the gateway, the
//! mock and the plugins, one scenario at a time.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the crate lies in the workspace").to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace().join("target"))
}

/// Builds the debug gateway, mock and plugins once per test process. The engine's tests take the
/// same lock file, so parallel test binaries do not race on uplifted files.
fn build_binaries() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        std::fs::create_dir_all(target_dir()).expect("create the target folder");
        let lock = std::fs::File::create(target_dir().join("uig-test-build.lock")).expect("create the build lock");
        fs2::FileExt::lock_exclusive(&lock).expect("take the build lock");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "uig-engine", "-p", "uig-mock", "-p", "uig-connector-avinfo", "-p", "uig-connector-testkit"])
            .current_dir(workspace())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of the gateway, mock and plugins failed");
        fs2::FileExt::unlock(&lock).expect("release the build lock");
    });
}

/// Runs one scenario in quick mode and returns its JSON result. Scenarios run one at a time, so
/// that another scenario's load does not skew latency and memory numbers.
fn run_quick(scenario: &str) -> Value {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    build_binaries();

    let json_path = std::env::temp_dir().join(format!("uig-faults-{scenario}-{}.json", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_uig-faults"))
        .args([scenario, "--quick", "--json"])
        .arg(&json_path)
        .arg("--bin-dir")
        .arg(target_dir().join("debug"))
        .output()
        .expect("run uig-faults");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));

    let text = std::fs::read_to_string(&json_path).unwrap_or_else(|error| panic!("uig-faults wrote no JSON ({error}):\n{stdout}"));
    let _ = std::fs::remove_file(&json_path);
    let results: Value = serde_json::from_str(&text).expect("uig-faults JSON parses");
    let result = results[0].clone();
    assert_eq!(result["scenario"], scenario);
    result
}

/// Checks the counts and the verdict of one scenario's result.
fn assert_clean(result: &Value) {
    let scenario = &result["scenario"];
    let problems = &result["problems"];
    assert_eq!(result["error"], Value::Null, "{scenario} did not run to its end");
    assert!(result["accepted"].as_u64().unwrap_or(0) > 0, "{scenario} accepted nothing: {result:#}");
    assert_eq!(result["lost"], 0, "{scenario} lost messages: {problems:#}");
    assert_eq!(result["duplicated"], 0, "{scenario} has unexplained duplicates: {problems:#}");
    let failed_checks: Vec<&Value> = result["checks"].as_array().map(|checks| checks.iter().filter(|check| check["passed"] != true).collect()).unwrap_or_default();
    assert!(failed_checks.is_empty(), "{scenario} failed checks: {failed_checks:#?}");
    assert_eq!(result["passed"], true);
}

#[test]
fn kill9_quick() {
    assert_clean(&run_quick("kill9"));
}

#[test]
fn flaky_upstream_quick() {
    assert_clean(&run_quick("flaky_upstream"));
}

#[test]
fn callback_retries_quick() {
    assert_clean(&run_quick("callback_retries"));
}

#[test]
fn slow_system_quick() {
    assert_clean(&run_quick("slow_system"));
}

#[test]
fn overload_quick() {
    assert_clean(&run_quick("overload"));
}

#[test]
fn storage_fault_quick() {
    assert_clean(&run_quick("storage_fault"));
}
