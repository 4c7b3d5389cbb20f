//! Child processes of a scenario: `uig-mock` and `uig serve` on free loopback ports, with their
//! stderr copied into log files in the scenario's folder.

use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

/// Master key of every gateway the suite starts. The databases it protects are thrown away.
pub const MASTER_KEY: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f";

/// File name of the AVINFO plugin.
pub const AVINFO_LIBRARY: &str = "libuig_connector_avinfo.so";
/// File name of the test plugin.
pub const TESTKIT_LIBRARY: &str = "libuig_connector_testkit.so";

/// Maximum wait for a started process to respond at its health URL.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The binaries and plugins under test.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub uig: PathBuf,
    pub mock: PathBuf,
    pub plugins_dir: PathBuf,
}

impl Binaries {
    /// Finds `uig`, `uig-mock` and the AVINFO and testkit plugins in `dir`; the error lists what is
    /// missing and the build command.
    pub fn locate(dir: &Path) -> Result<Binaries> {
        // The gateway resolves a relative plugins_dir against its config file's folder.
        let dir = &dir.canonicalize().with_context(|| format!("binary folder {}", dir.display()))?;
        let binaries = Binaries { uig: dir.join("uig"), mock: dir.join("uig-mock"), plugins_dir: dir.to_path_buf() };
        let required = [binaries.uig.clone(), binaries.mock.clone(), dir.join(AVINFO_LIBRARY), dir.join(TESTKIT_LIBRARY)];
        let missing: Vec<String> = required.iter().filter(|path| !path.is_file()).map(|path| path.display().to_string()).collect();
        if !missing.is_empty() {
            bail!(
                "missing {}: build them with `cargo build --release -p uig-engine -p uig-mock -p uig-connector-avinfo -p uig-connector-testkit`, or pass their folder with --bin-dir",
                missing.join(", ")
            );
        }
        Ok(binaries)
    }
}

/// Returns a loopback port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Starts `command` with stdout discarded and stderr appended to `log_path` by a copying thread.
///
/// A pipe, not the file itself, is the child's stderr, so a file size limit set on the child
/// does not stop its logging.
fn spawn_logged(command: &mut Command, log_path: &Path) -> Result<Child> {
    let mut log = OpenOptions::new().create(true).append(true).open(log_path).with_context(|| format!("opening {}", log_path.display()))?;
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().with_context(|| format!("starting {command:?}"))?;
    let mut stderr = child.stderr.take().expect("stderr is piped");
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut stderr, &mut log);
    });
    Ok(child)
}

/// Waits until `url` responds with 2xx; fails when `child` exits first or after [`READY_TIMEOUT`].
fn wait_ready(url: &str, child: &mut Child, name: &str, log_path: &Path) -> Result<()> {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(response) = http.get(url).send() {
            if response.status().is_success() {
                return Ok(());
            }
        }
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited with {status} before it was ready; its log is {}", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{name} did not respond at {url} within {} s; its log is {}", READY_TIMEOUT.as_secs(), log_path.display())
}

/// Stops a child with SIGKILL and reaps it.
fn kill_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Returns the resident set size of process `pid` in KiB, read from `/proc/PID/status` (`VmRSS`).
pub fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A running `uig-mock`.
pub struct Mock {
    pub url: String,
    pub port: u16,
    child: Child,
    http: reqwest::blocking::Client,
}

impl Mock {
    /// Starts a mock on a free port, logging to `FOLDER/NAME.log`.
    pub fn start(binaries: &Binaries, folder: &Path, name: &str) -> Result<Mock> {
        let port = free_port()?;
        let log_path = folder.join(format!("{name}.log"));
        let mut command = Command::new(&binaries.mock);
        command.args(["--listen", &format!("127.0.0.1:{port}")]).env("RUST_LOG", "warn");
        let mut child = spawn_logged(&mut command, &log_path)?;
        let url = format!("http://127.0.0.1:{port}");
        if let Err(error) = wait_ready(&format!("{url}/_mock/stats"), &mut child, name, &log_path) {
            kill_child(&mut child);
            return Err(error);
        }
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Mock { url, port, child, http })
    }

    /// URL of the callback sink.
    pub fn sink_url(&self) -> String {
        format!("{}/_mock/callbacks", self.url)
    }

    /// Switches the AVINFO fault mode (`normal`, `outage`, `no_balance`, `error_500`, `slow`).
    pub fn set_avinfo_mode(&self, mode: &str, delay_ms: u64) -> Result<()> {
        self.put("/_mock/avinfo/mode", json!({"mode": mode, "delay_ms": delay_ms}))
    }

    /// Makes the callback sink respond to the next `count` requests with 500.
    pub fn fail_next_callbacks(&self, count: u64) -> Result<()> {
        self.put("/_mock/callbacks/mode", json!({"fail_next": count}))
    }

    /// Reads `GET /_mock/stats`.
    pub fn stats(&self) -> Result<Value> {
        Ok(self.http.get(format!("{}/_mock/stats", self.url)).send()?.error_for_status()?.json()?)
    }

    fn put(&self, path: &str, body: Value) -> Result<()> {
        let response = self.http.put(format!("{}{path}", self.url)).json(&body).send()?;
        if !response.status().is_success() {
            bail!("PUT {path} {body} returned {}: {}", response.status(), response.text().unwrap_or_default());
        }
        Ok(())
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}

/// Way of starting `uig serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// Directly.
    Plain,
    /// Through `sh` with SIGXFSZ ignored, so that a file size limit (RLIMIT_FSIZE) makes writes
    /// fail with EFBIG, like a full disk, instead of killing the process.
    IgnoreFileSizeSignal,
}

/// A gateway: its folder, config, database and client, and the `uig serve` process when running.
pub struct Gateway {
    pub url: String,
    pub config_path: PathBuf,
    pub database_path: PathBuf,
    pub log_path: PathBuf,
    pub token: String,
    pub secret: String,
    /// How many times `uig serve` was started.
    pub starts: u32,
    uig: PathBuf,
    port: u16,
    plugins_dir: PathBuf,
    launch: Launch,
    child: Option<Child>,
}

impl Gateway {
    /// Writes the config (the listen address, database and plugin folder, then `sections`),
    /// creates client `faults` that may send to every connector and call back to 127.0.0.1, and
    /// starts `uig serve`.
    pub fn start(binaries: &Binaries, folder: &Path, sections: &str, launch: Launch) -> Result<Gateway> {
        let port = free_port()?;
        let mut gateway = Gateway {
            url: format!("http://127.0.0.1:{port}"),
            config_path: folder.join("uig.toml"),
            database_path: folder.join("uig.db"),
            log_path: folder.join("uig.log"),
            token: String::new(),
            secret: String::new(),
            starts: 0,
            uig: binaries.uig.clone(),
            port,
            plugins_dir: binaries.plugins_dir.clone(),
            launch,
            child: None,
        };
        gateway.write_config(sections)?;
        gateway.add_client()?;
        gateway.spawn()?;
        Ok(gateway)
    }

    /// Replaces the config's sections. A running `uig serve` reads them at its next start.
    pub fn write_config(&self, sections: &str) -> Result<()> {
        let text = format!(
            "listen = \"127.0.0.1:{}\"\ndatabase_url = \"sqlite://{}\"\nplugins_dir = \"{}\"\n\n{sections}",
            self.port,
            self.database_path.display(),
            self.plugins_dir.display(),
        );
        std::fs::write(&self.config_path, text).with_context(|| format!("writing {}", self.config_path.display()))
    }

    fn add_client(&mut self) -> Result<()> {
        let config = self.config_path.to_string_lossy().to_string();
        let output = Command::new(&self.uig)
            .args(["client", "add", "faults", "--config", &config, "--allow", "*", "--callback-host", "127.0.0.1", "--json"])
            .env("UIG_MASTER_KEY", MASTER_KEY)
            .output()
            .context("running uig client add")?;
        if !output.status.success() {
            bail!("uig client add failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let created: Value = serde_json::from_slice(&output.stdout).context("reading the JSON of uig client add")?;
        let field = |name: &str| created[name].as_str().map(str::to_string).ok_or_else(|| anyhow!("uig client add printed no {name}: {created}"));
        self.token = field("token")?;
        self.secret = field("secret")?;
        Ok(())
    }

    /// Starts `uig serve` and waits until `/health/ready` responds with 200.
    pub fn spawn(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("the gateway is already running");
        }
        let config = self.config_path.to_string_lossy().to_string();
        let mut command = match self.launch {
            Launch::Plain => {
                let mut command = Command::new(&self.uig);
                command.args(["serve", "--config", &config]);
                command
            }
            Launch::IgnoreFileSizeSignal => {
                // An ignored signal stays ignored across exec, so `uig` inherits it.
                let mut command = Command::new("sh");
                command.args(["-c", "trap '' XFSZ; exec \"$0\" \"$@\""]).arg(&self.uig).args(["serve", "--config", &config]);
                command
            }
        };
        command.env("UIG_MASTER_KEY", MASTER_KEY).env("UIG_LOG", "info,sqlx=warn");
        let mut child = spawn_logged(&mut command, &self.log_path)?;
        if let Err(error) = wait_ready(&format!("{}/health/ready", self.url), &mut child, "uig serve", &self.log_path) {
            kill_child(&mut child);
            return Err(error);
        }
        self.starts += 1;
        self.child = Some(child);
        Ok(())
    }

    /// Kills `uig serve` with SIGKILL, as a crash or an OOM kill would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_child(&mut child);
        }
    }

    /// Kills and starts `uig serve` again.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9();
        self.spawn()
    }

    /// Process id of the running `uig serve`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Resident set size of the running `uig serve` in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        resident_kib(self.pid()?)
    }

    /// Reports whether `uig serve` is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}
