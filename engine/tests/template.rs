//! Adding a connector without rebuilding the engine: builds examples/connector-template as a crate
//! of its own, puts its plugin alone into a fresh plugins folder, and delivers through it with the
//! same `uig` binary that the other tests use.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

use common::{Gateway, GatewayOptions, Mock};

const WAIT: Duration = Duration::from_secs(20);

/// File name of the template's plugin library on this platform.
fn library_name() -> String {
    format!("{}uig_connector_relay{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)
}

/// Builds the template once per test process, outside the workspace, and returns its library.
///
/// The build runs with `--offline`: the template needs only crates that the workspace build has
/// already put into the local registry cache.
fn build_template() -> &'static Path {
    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let manifest = common::workspace().join("examples/connector-template/Cargo.toml");
        let target = common::target_dir().join("connector-template");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--offline", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target)
            .status()
            .expect("run cargo");
        assert!(status.success(), "cargo build --manifest-path {} failed", manifest.display());
        target.join("debug").join(library_name())
    })
}

/// Copies the template's library into a new folder that contains nothing else.
fn plugins_folder() -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    std::fs::copy(build_template(), folder.path().join(library_name())).unwrap();
    let files: Vec<_> = std::fs::read_dir(folder.path()).unwrap().collect();
    assert_eq!(files.len(), 1);
    folder
}

/// Returns a `[connectors.NAME]` section of the relay plugin that posts to `path` on the mock.
fn relay_section(name: &str, mock: &Mock, path: &str) -> String {
    format!(
        "[connectors.{name}]\nlibrary = \"{}\"\nrequired = true\nallowed_urls = [\"{url}{path}\"]\nmax_attempts = 3\n\n\
         [connectors.{name}.settings]\nbase_url = \"{url}\"\npath = \"{path}\"\ntimeout_ms = 3000\n\n",
        library_name(),
        url = mock.url,
    )
}

/// Starts a gateway whose `plugins_dir` is `plugins` and whose connectors are the relay to the
/// mock's callback sink (`relay`) and the relay to a path the mock does not serve (`nowhere`).
fn start_gateway(mock: &Mock, plugins: &Path) -> Gateway {
    let extra_config = relay_section("relay", mock, "/_mock/callbacks") + &relay_section("nowhere", mock, "/_mock/nowhere");
    let options = GatewayOptions { extra_config, avinfo: false, testkit: false, ..GatewayOptions::default() };
    let harness_plugins = format!("plugins_dir = \"{}\"", common::debug_dir().display());
    Gateway::start_edited(mock, options, |text| {
        assert!(text.contains(&harness_plugins), "the harness config no longer sets plugins_dir as expected:\n{text}");
        text.replacen(&harness_plugins, &format!("plugins_dir = \"{}\"", plugins.display()), 1)
    })
}

fn send(gateway: &Gateway, mode: &str, recipient: &str, message: &str) -> (u16, Value) {
    gateway.call("POST", &format!("/{mode}/message/send"), &[("recipient", recipient), ("entity", "record"), ("message", message)])
}

/// Lists the bodies that the mock's callback sink received, oldest first.
fn received_bodies(mock: &Mock) -> Vec<Value> {
    let list: Value = reqwest::blocking::get(format!("{}/_mock/callbacks", mock.url)).unwrap().json().unwrap();
    list.as_array().unwrap().iter().map(|stored| serde_json::from_str(stored["body"].as_str().unwrap()).unwrap()).collect()
}

#[test]
fn template_plugin_delivers() {
    let mock = Mock::start();
    let plugins = plugins_folder();
    let gateway = start_gateway(&mock, plugins.path());

    let ready: Value = reqwest::blocking::get(format!("{}/health/ready", gateway.url)).unwrap().json().unwrap();
    let relay = ready["connectors"].as_array().unwrap().iter().find(|connector| connector["name"] == "relay").cloned();
    assert_eq!(relay.map(|connector| connector["plugin"].clone()), Some(json!("relay")), "{ready}");

    let (status, sync) = send(&gateway, "sync", "relay", r#"{"n": 1, "text": "Привет"}"#);
    assert_eq!(status, 200, "{sync}");
    assert_eq!(sync["status"], "delivered", "{sync}");
    assert_eq!(sync["data"], json!({"received": true}));

    let (status, queued) = send(&gateway, "async", "relay", r#"{"n": 2}"#);
    assert_eq!(status, 202, "{queued}");
    let async_id = queued["id"].as_i64().unwrap();
    let delivered = gateway.wait_status(async_id, &["delivered", "failed"], WAIT);
    assert_eq!(delivered["status"], "delivered", "{delivered}");
    assert_eq!(delivered["data"], json!({"received": true}));

    let bodies = received_bodies(&mock);
    assert_eq!(
        bodies,
        [
            json!({"message_id": sync["id"], "entity": "record", "payload": {"n": 1, "text": "Привет"}}),
            json!({"message_id": async_id, "entity": "record", "payload": {"n": 2}}),
        ]
    );
}

#[test]
fn template_plugin_maps_errors() {
    let mock = Mock::start();
    let plugins = plugins_folder();
    let gateway = start_gateway(&mock, plugins.path());

    let (status, body) = send(&gateway, "sync", "nowhere", r#"{"n": 3}"#);

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["error"]["kind"], "permanent");
    assert_eq!(body["error"]["code"], "http_404");
    assert!(received_bodies(&mock).is_empty());
}
