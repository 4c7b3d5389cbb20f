//! Test harness: builds the plugins and the mock, starts `uig-mock` and the real `uig` binary on
//! loopback ports, and signs requests the way a client does.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Returns the workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Returns the cargo target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace().join("target"))
}

/// Folder with the debug plugins and the mock binary.
pub fn debug_dir() -> PathBuf {
    target_dir().join("debug")
}

/// Folder of the testkit plugin built against a newer interface minor version.
pub fn newer_dir() -> PathBuf {
    target_dir().join("newer-interface").join("debug")
}

/// Folder of the testkit plugin built with `async-send`, which the engine polls as a future.
pub fn async_send_dir() -> PathBuf {
    target_dir().join("async-send").join("debug")
}

/// Folder of the testkit plugin built against a foreign interface version.
pub fn foreign_dir() -> PathBuf {
    target_dir().join("foreign-interface").join("debug")
}

fn cargo_build(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo).args(["build", "--quiet"]).args(args).current_dir(workspace()).status().expect("run cargo");
    assert!(status.success(), "cargo build {args:?} failed");
}

/// Builds the plugins and the mock once per test process; cargo's own lock serializes processes.
pub fn build_artifacts() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        // One process at a time, so parallel test binaries do not race on uplifted files.
        let lock_path = target_dir().join("uig-test-build.lock");
        std::fs::create_dir_all(target_dir()).unwrap();
        let lock = std::fs::File::create(&lock_path).unwrap();
        fs2::FileExt::lock_exclusive(&lock).unwrap();
        cargo_build(&[
            "-p",
            "uig-connector-avinfo",
            "-p",
            "uig-connector-testkit",
            "-p",
            "uig-connector-kontur",
            "-p",
            "uig-connector-kias",
            "-p",
            "uig-connector-impact",
            "-p",
            "uig-mock",
        ]);
        let foreign_target = target_dir().join("foreign-interface");
        cargo_build(&[
            "-p",
            "uig-connector-testkit",
            "--features",
            "foreign-interface-version",
            "--target-dir",
            foreign_target.to_str().unwrap(),
        ]);
        let newer_target = target_dir().join("newer-interface");
        cargo_build(&[
            "-p",
            "uig-connector-testkit",
            "--features",
            "newer-interface-version",
            "--target-dir",
            newer_target.to_str().unwrap(),
        ]);
        let async_target = target_dir().join("async-send");
        cargo_build(&["-p", "uig-connector-testkit", "--features", "async-send", "--target-dir", async_target.to_str().unwrap()]);
        fs2::FileExt::unlock(&lock).unwrap();
    });
}

/// Returns a loopback port that is free now, below the kernel's range of ephemeral ports. A port
/// from that range (what binding port 0 returns) may be taken by an outgoing connection of a
/// parallel test before the server under test binds it.
pub fn free_port() -> u16 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let ephemeral_start: u16 = range.split_whitespace().next().and_then(|low| low.parse().ok()).unwrap_or(32768);
    loop {
        let port = rand::Rng::gen_range(&mut rand::thread_rng(), 10_000..ephemeral_start);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits until `url` answers with a 2xx status. Returns the exit status if the process exits
/// first, and panics after 30 s.
fn wait_for_http(url: &str, child: &mut Child, process_name: &str) -> Result<(), std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(30);
    // A short timeout, because another process that holds the port may accept and never answer.
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(1)).build().unwrap();
    while Instant::now() < deadline {
        if let Ok(response) = client.get(url).send() {
            if response.status().is_success() {
                return Ok(());
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{process_name} did not become ready at {url}");
}

/// A running `uig-mock`.
pub struct Mock {
    pub url: String,
    child: Child,
}

impl Mock {
    /// Starts the mock on a free port.
    pub fn start() -> Mock {
        build_artifacts();
        let port = free_port();
        let mut child = Command::new(debug_dir().join("uig-mock"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start uig-mock");
        let url = format!("http://127.0.0.1:{port}");
        if let Err(status) = wait_for_http(&format!("{url}/_mock/stats"), &mut child, "uig-mock") {
            panic!("uig-mock exited early with {status}");
        }
        Mock { url, child }
    }

    /// Reads the mock's request counters.
    pub fn stats(&self) -> Value {
        reqwest::blocking::get(format!("{}/_mock/stats", self.url)).unwrap().json().unwrap()
    }

    /// Number of AVINFO requests the mock has served.
    pub fn avinfo_requests(&self) -> u64 {
        self.stats()["avinfo"]["requests"].as_u64().unwrap()
    }

    /// Switches the AVINFO fault mode.
    pub fn set_mode(&self, mode: &str) {
        let response = reqwest::blocking::Client::new()
            .put(format!("{}/_mock/avinfo/mode", self.url))
            .json(&serde_json::json!({"mode": mode, "delay_ms": 3000}))
            .send()
            .unwrap();
        assert!(response.status().is_success());
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Options of a gateway under test.
pub struct GatewayOptions {
    /// Extra TOML appended to the generated config.
    pub extra_config: String,
    /// Whether to add the avinfo connector pointed at the mock.
    pub avinfo: bool,
    /// Whether to add the testkit connector.
    pub testkit: bool,
    /// Callback hosts of the test client.
    pub callback_hosts: Vec<String>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions { extra_config: String::new(), avinfo: true, testkit: true, callback_hosts: vec!["127.0.0.1".to_string()] }
    }
}

/// A running `uig serve` with its own database and a client.
pub struct Gateway {
    pub url: String,
    pub token: String,
    pub secret: String,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    child: Option<Child>,
    log_path: PathBuf,
}

/// The master key used by every test gateway.
pub const MASTER_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// Returns the config text for a gateway on `port`.
pub fn config_text(dir: &Path, port: u16, mock_url: &str, options: &GatewayOptions) -> String {
    let mut text = format!(
        "listen = \"127.0.0.1:{port}\"\ndatabase_url = \"sqlite://{}\"\nplugins_dir = \"{}\"\ndirectory_files = [\"{}\"]\n\n[worker]\npoll_interval_ms = 100\nlease_seconds = 60\n\n[callbacks]\ntimeout_ms = 2000\nmax_attempts = 4\n\n[callbacks.retry]\ninitial_backoff_ms = 200\nmax_backoff_ms = 1000\n\n",
        dir.join("uig.db").display(),
        debug_dir().display(),
        workspace().join("examples/directories/avinfo.csv").display(),
    );
    if options.avinfo {
        text.push_str(&format!(
            "[connectors.avinfo]\nlibrary = \"libuig_connector_avinfo.so\"\nrequired = true\nlookups = [\"vehicle\"]\nallowed_urls = [\"{mock_url}\"]\ndeadline_ms = 10000\nmax_attempts = 3\n\n[connectors.avinfo.retry]\ninitial_backoff_ms = 200\nmax_backoff_ms = 1000\n\n[connectors.avinfo.settings]\nbase_url = \"{mock_url}\"\napi_key = \"demo-avinfo-key\"\ncache_ttl_seconds = 3600\n\n"
        ));
    }
    if options.testkit {
        text.push_str(&format!(
            "[connectors.testkit]\nlibrary = \"libuig_connector_testkit.so\"\nlookups = [\"lookup\"]\nallowed_urls = [\"{mock_url}\"]\ndeadline_ms = 2000\nconcurrency = 4\nmax_attempts = 3\n\n[connectors.testkit.retry]\ninitial_backoff_ms = 200\nmax_backoff_ms = 1000\n\n"
        ));
    }
    text.push_str(&options.extra_config);
    text
}

/// Runs `uig` with arguments and the test master key; returns stdout, panics on failure.
pub fn uig(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_uig")).args(args).env("UIG_MASTER_KEY", MASTER_KEY).output().expect("run uig");
    assert!(output.status.success(), "uig {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

impl Gateway {
    /// Starts a gateway with the default options.
    pub fn start(mock: &Mock) -> Gateway {
        Gateway::start_with(mock, GatewayOptions::default())
    }

    /// Starts a gateway: writes its config, creates the client `test`, runs `uig serve`.
    pub fn start_with(mock: &Mock, options: GatewayOptions) -> Gateway {
        Gateway::start_edited(mock, options, |text| text)
    }

    /// Starts a gateway like [`Gateway::start_with`], with the config text passed through `edit`
    /// first, for settings that `extra_config` cannot override (TOML rejects a repeated table).
    pub fn start_edited(mock: &Mock, options: GatewayOptions, edit: impl FnOnce(String) -> String) -> Gateway {
        build_artifacts();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config_path = dir.path().join("uig.toml");
        std::fs::write(&config_path, edit(config_text(dir.path(), port, &mock.url, &options))).unwrap();

        let config = config_path.to_str().unwrap();
        let hosts = options.callback_hosts.join(",");
        let mut args = vec!["client", "add", "test", "--config", config, "--allow", "*", "--json"];
        if !hosts.is_empty() {
            args.extend(["--callback-host", hosts.as_str()]);
        }
        let created: Value = serde_json::from_str(&uig(&args)).unwrap();

        let mut gateway = Gateway {
            url: format!("http://127.0.0.1:{port}"),
            token: created["token"].as_str().unwrap().to_string(),
            secret: created["secret"].as_str().unwrap().to_string(),
            log_path: dir.path().join("uig.log"),
            config_path,
            dir,
            child: None,
        };
        gateway.spawn();
        gateway
    }

    /// Starts the server process (again). If another process took the port in the meantime, the
    /// gateway moves to a new port, and `url` follows it.
    pub fn spawn(&mut self) {
        for _ in 0..5 {
            let log_start = self.log().len();
            let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path).unwrap();
            let mut child = Command::new(env!("CARGO_BIN_EXE_uig"))
                .args(["serve", "--config", self.config_path.to_str().unwrap()])
                .env("UIG_MASTER_KEY", MASTER_KEY)
                .env("UIG_LOG", "info,uig_engine=debug,sqlx=warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start uig serve");
            match wait_for_http(&format!("{}/health/ready", self.url), &mut child, "uig serve") {
                Ok(()) => {
                    self.child = Some(child);
                    return;
                }
                Err(_) if self.log()[log_start..].contains("Address already in use") => self.move_to_new_port(),
                Err(status) => panic!("uig serve exited early with {status}"),
            }
        }
        panic!("uig serve found its port taken five times");
    }

    /// Points the config's `listen` and `url` at a new free port.
    fn move_to_new_port(&mut self) {
        let old = self.url.trim_start_matches("http://").to_string();
        let new = format!("127.0.0.1:{}", free_port());
        let text = std::fs::read_to_string(&self.config_path).unwrap();
        let moved = text.replace(&format!("listen = \"{old}\""), &format!("listen = \"{new}\""));
        assert_ne!(moved, text, "the config has no listen = \"{old}\" line");
        std::fs::write(&self.config_path, moved).unwrap();
        self.url = format!("http://{new}");
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the gateway is running");
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM failed");
        child.wait().unwrap()
    }

    /// Stops the server process with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Returns the server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Signs `params` for `method path` with this gateway's client.
    pub fn sign(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Vec<(String, String)> {
        sign_with(&self.token, &self.secret, method, path, params)
    }

    /// Sends a signed form-encoded request (query string for GET) with the token as a parameter.
    pub fn call(&self, method: &str, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let signed = self.sign(method, path, params);
        self.send_raw(method, path, &signed, &[])
    }

    /// Sends parameters as they are (no signing), with extra headers.
    pub fn send_raw(&self, method: &str, path: &str, params: &[(String, String)], headers: &[(&str, &str)]) -> (u16, Value) {
        let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        let client = reqwest::blocking::Client::new();
        let mut request = if method == "GET" {
            client.get(format!("{}{path}?{encoded}", self.url))
        } else {
            client
                .request(method.parse().unwrap(), format!("{}{path}", self.url))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encoded)
        };
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// Polls `get` until the message reaches one of `statuses`, or panics after `timeout`.
    pub fn wait_status(&self, id: i64, statuses: &[&str], timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (code, body) = self.call("GET", "/sync/message/get", &[("id", &id.to_string())]);
            assert_eq!(code, 200, "{body}");
            if statuses.contains(&body["status"].as_str().unwrap()) {
                return body;
            }
            assert!(Instant::now() < deadline, "message {id} stayed {} (wanted {statuses:?})", body["status"]);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Returns the number of stored messages, read through `uig message count`.
    pub fn count_messages(&self) -> i64 {
        let output = uig(&["message", "count", "--config", self.config_path.to_str().unwrap()]);
        output.trim().parse().unwrap()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- gateway log ----\n{}", self.log());
        }
    }
}

/// Signs `params` (a timestamp of now is added unless present) with an independent HMAC
/// implementation; returns the parameters with `token` and `hash`.
pub fn sign_with(token: &str, secret: &str, method: &str, path: &str, params: &[(&str, &str)]) -> Vec<(String, String)> {
    use hmac::Mac;

    let mut all: Vec<(String, String)> = params.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
    if !all.iter().any(|(name, _)| name == "timestamp") {
        all.push(("timestamp".to_string(), chrono::Utc::now().to_rfc3339()));
    }
    let enc = |text: &str| percent_encoding::utf8_percent_encode(text, RFC3986).to_string();
    let mut canonical: Vec<(String, String)> = all.iter().map(|(name, value)| (enc(name), enc(value))).collect();
    canonical.sort();
    let canonical = canonical.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("&");
    let string_to_sign = format!("{method}\n{path}\n{canonical}\n{token}");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(string_to_sign.as_bytes());
    let hash = hex::encode(mac.finalize().into_bytes());
    all.push(("token".to_string(), token.to_string()));
    all.push(("hash".to_string(), hash));
    all
}

/// Characters RFC 3986 leaves unreserved stay; everything else is percent-encoded.
const RFC3986: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Polls `check` every 50 ms until it returns true, or panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `body` against the gateway's database on a private runtime.
pub fn with_db<T>(gateway: &Gateway, body: impl AsyncFnOnce(&uig_engine::db::Db) -> T) -> T {
    let url = format!("sqlite://{}", gateway.dir.path().join("uig.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let db = uig_engine::db::Db::connect(&url).await.unwrap();
        body(&db).await
    })
}
