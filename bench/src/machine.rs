//! Facts about the machine and the source tree that a benchmark result depends on.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The machine a run was measured on, read from /proc and the system tools.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Output of `nproc`: the cores this process may use.
    pub cores: String,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    /// Start of the run, RFC 3339 in UTC.
    pub date: String,
    /// /proc/loadavg at the start and at the end of the run.
    pub load_average_start: String,
    pub load_average_end: String,
    /// `git describe`-style commit of the measured tree, with `-dirty` for uncommitted changes.
    pub commit: String,
    /// 4 KiB writes with `fdatasync` per second in the run's temporary folder, where the gateways
    /// keep their databases. A `synchronous = FULL` commit waits for at least one such sync.
    pub fsyncs_per_second: Option<f64>,
}

/// Measures synced 4 KiB writes per second in `folder`: up to 500 writes or 1 s, whichever ends
/// first. Returns `None` when the file cannot be written.
pub fn fsync_rate(folder: &Path) -> Option<f64> {
    let path = folder.join("fsync-probe");
    let mut file = std::fs::File::create(&path).ok()?;
    let block = [0u8; 4096];
    let started = Instant::now();
    let mut writes = 0;
    while writes < 500 && started.elapsed() < Duration::from_secs(1) {
        file.write_all(&block).ok()?;
        file.sync_data().ok()?;
        writes += 1;
    }
    let rate = writes as f64 / started.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Some(rate)
}

fn command_output(program: &str, args: &[&str], directory: &Path) -> Option<String> {
    let output = Command::new(program).args(args).current_dir(directory).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Returns the first three fields of /proc/loadavg (1, 5 and 15 minute averages).
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

impl Machine {
    /// Reads the machine facts; a fact that cannot be read is `unknown`.
    /// `scratch` is the folder whose disk the fsync rate is measured on.
    pub fn read(workspace: &Path, scratch: &Path) -> Machine {
        let unknown = || "unknown".to_string();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|line| line.starts_with("model name"))
            .and_then(|line| line.split_once(':'))
            .map(|(_, model)| model.trim().to_string())
            .unwrap_or_else(unknown);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find(|line| line.starts_with("MemTotal:"))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|text| text.trim().to_string()).unwrap_or_else(|_| unknown());
        let commit = command_output("git", &["describe", "--always", "--dirty"], workspace).unwrap_or_else(unknown);

        Machine {
            cores: command_output("nproc", &[], workspace).unwrap_or_else(unknown),
            cpu_model,
            memory_gib: memory_kib / 1024.0 / 1024.0,
            kernel,
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            load_average_start: load_average(),
            load_average_end: String::new(),
            commit,
            fsyncs_per_second: fsync_rate(scratch),
        }
    }

    /// Renders the facts as a Markdown list.
    pub fn markdown(&self) -> String {
        let fsyncs = self.fsyncs_per_second.map(|rate| format!("{rate:.0}")).unwrap_or_else(|| "unknown".to_string());
        format!(
            "- cores (`nproc`): {}\n- CPU: {}\n- memory: {:.1} GiB\n- kernel: {}\n- disk: {fsyncs} synced 4 KiB writes per second (`fdatasync`) in the run's temporary folder\n- date: {}\n- load average (1, 5, 15 min) at start: {}; at end: {}\n- commit: {}\n",
            self.cores, self.cpu_model, self.memory_gib, self.kernel, self.date, self.load_average_start, self.load_average_end, self.commit
        )
    }
}
