//! nginx as a peer: a `proxy_pass` to the mock with keep-alive upstream connections, run in the
//! foreground from a generated config in a temporary prefix.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::process::{free_port, run_output, ChildProcess};

/// Debian packages tried in order when nginx is missing.
const PACKAGES: [&str; 2] = ["nginx-light", "nginx"];

/// Debian's hook that keeps an installed package from starting its service when it exits with 101.
const POLICY_RC: &str = "/usr/sbin/policy-rc.d";

/// A running nginx proxy.
pub struct Nginx {
    pub address: SocketAddr,
    pub version: String,
    pub process: ChildProcess,
}

fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin")]).map(|directory| directory.join("nginx")).find(|candidate| candidate.is_file())
}

/// Checks that Debian's package scripts may not start services, so that installing nginx starts
/// no system nginx listening on all interfaces.
fn services_blocked() -> bool {
    let script = std::fs::read_to_string(POLICY_RC).unwrap_or_default();
    script.lines().any(|line| line.trim() == "exit 101")
}

/// Returns the nginx binary, installing a Debian package when it is missing and the install can
/// start no service. The error names the reason when nginx is not available.
pub fn find_or_install(log: &Path) -> anyhow::Result<PathBuf> {
    if let Some(binary) = find_binary() {
        return Ok(binary);
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !services_blocked() {
        bail!("nginx not found; install it with `apt-get install -y nginx-light` (uig-bench installs it only as root and where {POLICY_RC} keeps services from starting)");
    }

    let apt_get = |args: &[&str]| -> bool {
        println!("  running apt-get {}", args.join(" "));
        let Ok(output) = std::fs::File::options().create(true).append(true).open(log) else {
            return false;
        };
        let Ok(errors) = output.try_clone() else {
            return false;
        };
        Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive").stdout(output).stderr(errors).status().is_ok_and(|status| status.success())
    };
    let mut updated = false;
    for package in PACKAGES {
        if apt_get(&["install", "-y", "--no-install-recommends", package]) {
            break;
        }
        if !updated {
            updated = true;
            if apt_get(&["update"]) && apt_get(&["install", "-y", "--no-install-recommends", package]) {
                break;
            }
        }
    }
    find_binary().with_context(|| format!("installing {} failed; see {}", PACKAGES.join(" or "), log.display()))
}

/// Returns the nginx config: one loopback server that proxies everything to `upstream`.
fn config_text(folder: &Path, address: SocketAddr, upstream: SocketAddr) -> String {
    let folder = folder.display();
    format!(
        r#"# Written by uig-bench: a reverse proxy to uig-mock on loopback.
daemon off;
master_process on;
worker_processes auto;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;

    upstream mock {{
        server {upstream};
        keepalive 64;
    }}

    server {{
        listen {address};
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"#
    )
}

impl Nginx {
    /// Starts nginx in `folder` as a proxy to `upstream` and waits until `ready_path` responds with 2xx.
    pub async fn start(binary: &Path, folder: &Path, upstream: SocketAddr, ready_path: &str) -> anyhow::Result<Nginx> {
        let address: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let config = folder.join("nginx.conf");
        std::fs::write(&config, config_text(folder, address, upstream))?;
        let version_output = Command::new(binary).arg("-v").output()?;
        let version = String::from_utf8_lossy(&version_output.stderr).trim().trim_start_matches("nginx version: ").to_string();
        run_output(Command::new(binary).arg("-t").arg("-p").arg(folder).arg("-c").arg(&config).arg("-e").arg(folder.join("error.log")))
            .context("nginx rejected the generated config")?;

        let mut command = Command::new(binary);
        command.arg("-p").arg(folder).arg("-c").arg(&config).arg("-e").arg(folder.join("error.log"));
        let mut process = ChildProcess::spawn("nginx", &mut command, &folder.join("nginx.out"))?;
        process.wait_ready(&format!("http://{address}{ready_path}"), Duration::from_secs(10)).await?;
        Ok(Nginx { address, version, process })
    }
}
