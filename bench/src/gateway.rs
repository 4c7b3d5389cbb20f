//! A benchmark gateway: its config, database and client, and the `uig serve` process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::mock::AVINFO_KEY;
use crate::process::{free_port, run_output, Binaries, ChildProcess};
use crate::sign::Credentials;

/// Master key of every benchmark gateway. It only encrypts the client secret in a throwaway
/// database in a temporary folder.
const MASTER_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Name of the client that every benchmark gateway creates.
pub const CLIENT_NAME: &str = "bench";

/// Concurrent calls into the AVINFO plugin, as many as the load's connections, so the
/// connector's limit does not cap the sync loads.
pub const AVINFO_CONCURRENCY: usize = 64;

/// Deliveries in flight at once in the worker pool (`worker.claim_batch`, default 64). An
/// AVINFO delivery is a future, not a thread, so a deeper pipeline is cheap; 128 keeps the cores
/// busy while results wait for their group commit (e2e about 6% faster than with 64).
pub const WORKER_CONCURRENCY: u64 = 128;

/// Log filter of `uig serve`: warnings and errors only, so that per-request log lines do not
/// take CPU from the measurement.
const GATEWAY_LOG: &str = "warn";

/// Options of a benchmark gateway.
#[derive(Clone, Copy, Debug)]
pub struct GatewayOptions {
    /// Runs the delivery and callback workers (`[worker] enabled`).
    pub worker: bool,
}

/// A gateway with its own folder, config, SQLite database and client.
pub struct Gateway {
    pub url: String,
    pub address: SocketAddr,
    pub credentials: Credentials,
    pub config_path: PathBuf,
    pub database_path: PathBuf,
    directory: PathBuf,
    binaries: Binaries,
    process: Option<ChildProcess>,
}

/// Returns the gateway config: loopback listener, SQLite in `directory`, request rate limit off,
/// a queue limit no load reaches, and all four connectors with AVINFO pointed at the mock.
pub fn config_text(binaries: &Binaries, directory: &Path, address: SocketAddr, mock_url: &str, options: GatewayOptions) -> String {
    let directory_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/directories/avinfo.csv");
    format!(
        r#"# Written by uig-bench for one benchmark gateway.
listen = "{address}"
database_url = "sqlite://{database}"
plugins_dir = "{plugins}"
directory_files = ["{directory_file}"]

[worker]
enabled = {worker}
claim_batch = {WORKER_CONCURRENCY}

[limits]
client_rate_per_second = 0
max_queue_depth = 100000000

[connectors.avinfo]
library = "libuig_connector_avinfo.so"
required = true
concurrency = {AVINFO_CONCURRENCY}
allowed_urls = ["{mock_url}"]
lookups = ["vehicle"]

[connectors.avinfo.settings]
base_url = "{mock_url}"
api_key = "{AVINFO_KEY}"
cache_ttl_seconds = 3600

[connectors.kontur]
library = "libuig_connector_kontur.so"
required = true
allowed_urls = ["{mock_url}"]

[connectors.kontur.settings]
base_url = "{mock_url}"
token_url = "{mock_url}/connect/token"
client_id = "demo-kontur"
client_secret = "demo-kontur-secret"

[connectors.kias]
library = "libuig_connector_kias.so"
required = true
allowed_urls = ["{mock_url}/kiasSvc.asmx"]

[connectors.kias.settings]
endpoint = "{mock_url}/kiasSvc.asmx"
app_id = 1001
user = "demo"
password = "demo-kias-password"

[connectors.impact]
library = "libuig_connector_impact.so"
required = true
allowed_urls = ["{mock_url}/impact"]

[connectors.impact.settings]
base_url = "{mock_url}/impact"
username = "demo-impact"
password = "demo-impact-password"
"#,
        database = directory.join("uig.db").display(),
        plugins = binaries.directory.display(),
        directory_file = directory_file.display(),
        worker = options.worker,
    )
}

impl Gateway {
    /// Writes the config into the empty folder `directory` and creates the client
    /// [`CLIENT_NAME`] (which also creates and migrates the database). Does not start the server.
    pub fn prepare(binaries: &Binaries, directory: &Path, mock_url: &str, options: GatewayOptions) -> anyhow::Result<Gateway> {
        std::fs::create_dir_all(directory)?;
        let address: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let config_path = directory.join("uig.toml");
        std::fs::write(&config_path, config_text(binaries, directory, address, mock_url, options))?;

        let config = config_path.to_str().context("config path is not UTF-8")?;
        let output = run_output(
            Command::new(&binaries.uig)
                .args(["client", "add", CLIENT_NAME, "--config", config, "--allow", "*", "--callback-host", "127.0.0.1", "--json"])
                .env("UIG_MASTER_KEY", MASTER_KEY)
                .env("UIG_LOG", GATEWAY_LOG),
        )?;
        let created: Value = serde_json::from_str(&output).with_context(|| format!("`uig client add` printed no JSON: {output}"))?;
        let field = |name: &str| created[name].as_str().map(str::to_string).with_context(|| format!("`uig client add` printed no {name}: {output}"));
        let credentials = Credentials { token: field("token")?, secret: field("secret")? };

        Ok(Gateway {
            url: format!("http://{address}"),
            address,
            credentials,
            database_path: directory.join("uig.db"),
            config_path,
            directory: directory.to_path_buf(),
            binaries: binaries.clone(),
            process: None,
        })
    }

    /// Starts `uig serve` and waits until `/health/ready` responds with 200.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new(&self.binaries.uig);
        command.arg("serve").arg("--config").arg(&self.config_path).env("UIG_MASTER_KEY", MASTER_KEY).env("UIG_LOG", GATEWAY_LOG);
        let mut process = ChildProcess::spawn("uig serve", &mut command, &self.directory.join("uig.log"))?;
        process.wait_ready(&format!("{}/health/ready", self.url), Duration::from_secs(60)).await?;
        self.process = Some(process);
        Ok(())
    }

    /// Kills the server (the database stays).
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Returns the running server process.
    pub fn process(&mut self) -> anyhow::Result<&mut ChildProcess> {
        self.process.as_mut().context("the gateway is not running")
    }
}
