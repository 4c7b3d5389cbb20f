//! Child processes of the benchmark: locating the built binaries, starting servers on free loopback
//! ports, waiting for them, and killing them when their guard is dropped.

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The command that builds everything the benchmark starts, quoted in errors.
pub const BUILD_COMMAND: &str =
    "cargo build --release -p uig-bench -p uig-engine -p uig-mock -p uig-connector-avinfo -p uig-connector-kontur -p uig-connector-kias -p uig-connector-impact";

/// Connector plugins that every benchmark gateway loads.
pub const PLUGINS: [&str; 4] = ["avinfo", "kontur", "kias", "impact"];

/// Paths of the built binaries and plugins.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// Folder with the binaries and the plugin `.so` files (a cargo profile folder).
    pub directory: PathBuf,
    pub uig: PathBuf,
    pub mock: PathBuf,
}

impl Binaries {
    /// Finds `uig`, `uig-mock` and the plugins of [`PLUGINS`] in `directory`.
    ///
    /// Errors name every missing file and the command that builds them.
    pub fn find(directory: &Path) -> anyhow::Result<Binaries> {
        let binaries = Binaries { directory: directory.to_path_buf(), uig: directory.join("uig"), mock: directory.join("uig-mock") };

        let mut missing: Vec<PathBuf> = Vec::new();
        for path in [&binaries.uig, &binaries.mock] {
            if !path.is_file() {
                missing.push(path.clone());
            }
        }
        for plugin in PLUGINS {
            let path = binaries.plugin_path(plugin);
            if !path.is_file() {
                missing.push(path);
            }
        }
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(|path| path.display().to_string()).collect();
            bail!("missing {}: build them with `{BUILD_COMMAND}` (or pass --bin-dir)", list.join(", "));
        }
        Ok(binaries)
    }

    /// Returns the path of the plugin library of `connector`.
    pub fn plugin_path(&self, connector: &str) -> PathBuf {
        self.directory.join(format!("libuig_connector_{connector}.so"))
    }
}

/// Returns a loopback port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("failed to bind a loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// A started child process. Dropping it kills the child's whole process group, so servers that
/// fork workers (nginx) stop too, also when the benchmark unwinds from a panic.
pub struct ChildProcess {
    name: String,
    child: Child,
    log_path: PathBuf,
}

impl ChildProcess {
    /// Starts `command` in a process group of its own, with stdout and stderr appended to `log_path`.
    ///
    /// The child also gets SIGKILL if the thread that started it dies, which covers a benchmark
    /// killed with SIGKILL. So call this from the main thread only: a runtime's blocking thread
    /// that ends after being idle would take the child with it.
    pub fn spawn(name: &str, command: &mut Command, log_path: &Path) -> anyhow::Result<ChildProcess> {
        let log = File::options().create(true).append(true).open(log_path).with_context(|| format!("failed to open {}", log_path.display()))?;
        command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }

        let child = command.spawn().with_context(|| format!("failed to start {name} ({:?})", command.get_program()))?;
        Ok(ChildProcess { name: name.to_string(), child, log_path: log_path.to_path_buf() })
    }

    /// Process id of the child (the group leader).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Returns an error with the log tail if the child has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited with {status}; last log lines:\n{}", self.name, self.log_tail(20));
        }
        Ok(())
    }

    /// Returns the last `lines` lines of the child's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Polls `url` until it responds with 2xx. Fails when the child exits or `timeout` passes.
    pub async fn wait_ready(&mut self, url: &str, timeout: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(response) = client.get(url).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            self.check_running()?;
            if Instant::now() > deadline {
                bail!("{} timed out: no 2xx response at {url} within {timeout:?}; last log lines:\n{}", self.name, self.log_tail(20));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resident memory of the child in bytes (VmRSS of /proc/PID/status).
    pub fn resident_bytes(&self) -> anyhow::Result<u64> {
        resident_bytes(self.pid())
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let Ok(group) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill has no memory effects; a negative pid addresses the child's own group.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Returns the CPU time (user and system) used so far by the live processes of process group
/// `group`, in seconds, read from /proc/PID/stat. Processes that already exited are not counted.
pub fn group_cpu_seconds(group: u32) -> Option<f64> {
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks_per_second <= 0 {
        return None;
    }

    let mut ticks: u64 = 0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name is in brackets and may contain spaces, so the fields count from
        // the last ')': state, ppid, pgrp, ..., utime is the 12th and stime the 13th.
        let Some((_, fields)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = fields.split_whitespace().collect();
        if fields.len() < 13 || fields[2] != group.to_string() {
            continue;
        }
        let user: u64 = fields[11].parse().unwrap_or(0);
        let system: u64 = fields[12].parse().unwrap_or(0);
        ticks += user + system;
    }
    Some(ticks as f64 / ticks_per_second as f64)
}

/// Reads VmRSS of process `pid` from /proc, in bytes.
pub fn resident_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("failed to read {path}"))?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).with_context(|| format!("no VmRSS line in {path}"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1).context("VmRSS line without a number")?.parse()?;
    Ok(kilobytes * 1024)
}

/// Runs `command` to completion and returns its stdout, or an error with its stderr.
pub fn run_output(command: &mut Command) -> anyhow::Result<String> {
    let output = command.stdin(Stdio::null()).output().with_context(|| format!("failed to run {:?}", command.get_program()))?;
    if !output.status.success() {
        bail!("{:?} failed with {}: {}", command, output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
