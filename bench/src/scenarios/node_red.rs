//! Node-RED as a peer: a flow of `http in` → `http request` → `http response` that makes the same
//! AVINFO lookup at the mock, installed with npm into a cache folder under target/.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;

use crate::process::{free_port, ChildProcess};

/// The npm package installed: major version 4, the last that runs on Node.js 18 and 20
/// (Node-RED 5 requires Node.js 22.9 or newer).
const PACKAGE: &str = "node-red@4";

/// Path of the flow's readiness endpoint, which responds without calling the mock.
pub const READY_PATH: &str = "/ready";

/// A running Node-RED.
pub struct NodeRed {
    pub address: SocketAddr,
    pub version: String,
    pub process: ChildProcess,
}

/// Returns the `red.js` of a Node-RED installed under `cache`, installing it with npm first when
/// missing. The error names the reason when Node-RED is not available.
pub fn find_or_install(cache: &Path, log: &Path) -> anyhow::Result<PathBuf> {
    let script = cache.join("node_modules/node-red/red.js");
    if script.is_file() {
        return Ok(script);
    }
    let node_found = Command::new("node").arg("--version").output().is_ok_and(|output| output.status.success());
    if !node_found {
        bail!("node not found on the PATH; install Node.js 18 or newer");
    }

    std::fs::create_dir_all(cache)?;
    println!("  running npm install {PACKAGE} into {}", cache.display());
    let output = std::fs::File::create(log)?;
    let status = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--omit=dev", "--prefix"])
        .arg(cache)
        .arg(PACKAGE)
        .stdout(output.try_clone()?)
        .stderr(output)
        .status()
        .context("failed to run npm")?;
    if !status.success() || !script.is_file() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(3).collect();
        bail!("npm install {PACKAGE} failed ({status}): {}", tail.into_iter().rev().collect::<Vec<_>>().join(" / "));
    }
    Ok(script)
}

/// Returns the flow: `GET /api/v1/vehicle` is looked up at `upstream` with the same query
/// parameters, over a keep-alive connection, and the upstream response is returned unchanged.
fn flows(upstream: SocketAddr) -> serde_json::Value {
    let lookup_url = format!("http://{upstream}/api/v1/vehicle?key={{{{{{req.query.key}}}}}}&vin={{{{{{req.query.vin}}}}}}");
    json!([
        {"id": "uig-bench-tab", "type": "tab", "label": "uig-bench"},
        {"id": "lookup-in", "type": "http in", "z": "uig-bench-tab", "url": "/api/v1/vehicle", "method": "get", "wires": [["lookup-request"]]},
        {"id": "lookup-request", "type": "http request", "z": "uig-bench-tab", "method": "GET", "ret": "txt", "paytoqs": "ignore",
         "url": lookup_url, "persist": true, "wires": [["lookup-response"]]},
        {"id": "lookup-response", "type": "http response", "z": "uig-bench-tab", "statusCode": "", "headers": {}, "wires": []},
        {"id": "ready-in", "type": "http in", "z": "uig-bench-tab", "url": READY_PATH, "method": "get", "wires": [["ready-response"]]},
        {"id": "ready-response", "type": "http response", "z": "uig-bench-tab", "statusCode": "200", "headers": {}, "wires": []}
    ])
}

/// Returns the settings file: loopback only, no editor or admin API, warnings only in the log.
fn settings_text(address: SocketAddr) -> String {
    format!(
        r#"// Written by uig-bench: Node-RED on loopback with only the benchmark flow.
module.exports = {{
    uiHost: "{host}",
    uiPort: {port},
    flowFile: "flows.json",
    httpAdminRoot: false,
    httpNodeRoot: "/",
    credentialSecret: false,
    logging: {{ console: {{ level: "warn", metrics: false, audit: false }} }},
    editorTheme: {{ projects: {{ enabled: false }} }},
    externalModules: {{ autoInstall: false }},
    diagnostics: {{ enabled: false }},
    telemetry: {{ enabled: false, updateNotification: false }}
}};
"#,
        host = address.ip(),
        port = address.port()
    )
}

impl NodeRed {
    /// Starts Node-RED from `script` with its user folder in `folder` and waits for the flow.
    pub async fn start(script: &Path, folder: &Path, upstream: SocketAddr) -> anyhow::Result<NodeRed> {
        let address: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        std::fs::write(folder.join("flows.json"), serde_json::to_string_pretty(&flows(upstream))?)?;
        let settings = folder.join("settings.js");
        std::fs::write(&settings, settings_text(address))?;
        let package = script.parent().context("red.js has no folder")?.join("package.json");
        let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&package)?)?;
        let version = manifest["version"].as_str().unwrap_or("unknown").to_string();

        let mut command = Command::new("node");
        command.arg(script).arg("--settings").arg(&settings).arg("--userDir").arg(folder);
        let mut process = ChildProcess::spawn("node-red", &mut command, &folder.join("node-red.log"))?;
        process.wait_ready(&format!("http://{address}{READY_PATH}"), Duration::from_secs(60)).await?;
        Ok(NodeRed { address, version, process })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_url_uses_mustache_query() {
        let upstream: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        let url = flows(upstream)[2]["url"].as_str().unwrap().to_string();
        assert_eq!(url, "http://127.0.0.1:9090/api/v1/vehicle?key={{{req.query.key}}}&vin={{{req.query.vin}}}");
    }
}
