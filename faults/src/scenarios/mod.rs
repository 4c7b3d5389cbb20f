//! The fault scenarios and what they share: sizes, working folders, concurrent senders and the
//! wait for the ledger to settle.

mod callback_retries;
mod flaky_upstream;
mod kill9;
mod overload;
mod slow_system;
mod storage_fault;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::client::Ticket;
use crate::ledger::{Ledger, MessageRow};
use crate::processes::Binaries;
use crate::report::Outcome;

/// A fault scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Every scenario below, in this order.
    All,
    /// SIGKILL of the gateway every few seconds during async sends.
    #[value(name = "kill9")]
    Kill9,
    /// AVINFO returns HTTP 500, then times out, then resets connections, then recovers.
    #[value(name = "flaky_upstream")]
    FlakyUpstream,
    /// The callback receiver responds with 500, 500, then 200, with a gateway restart between attempts.
    #[value(name = "callback_retries")]
    CallbackRetries,
    /// One connector takes seconds per call in its own pool while another is called.
    #[value(name = "slow_system")]
    SlowSystem,
    /// Sends beyond `limits.max_queue_depth` with the worker stopped.
    #[value(name = "overload")]
    Overload,
    /// Writes to the database fail (file size limit) during sends.
    #[value(name = "storage_fault")]
    StorageFault,
}

impl Scenario {
    /// Every runnable scenario, in run order.
    pub const EACH: [Scenario; 6] =
        [Scenario::Kill9, Scenario::FlakyUpstream, Scenario::CallbackRetries, Scenario::SlowSystem, Scenario::Overload, Scenario::StorageFault];

    /// Name printed in the table.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::All => "all",
            Scenario::Kill9 => "kill9",
            Scenario::FlakyUpstream => "flaky_upstream",
            Scenario::CallbackRetries => "callback_retries",
            Scenario::SlowSystem => "slow_system",
            Scenario::Overload => "overload",
            Scenario::StorageFault => "storage_fault",
        }
    }

    /// Runs the scenario; an error means it could not run to its end.
    pub fn run(self, context: &Context) -> Result<Outcome> {
        match self {
            Scenario::All => anyhow::bail!("\"all\" is a list of scenarios, not one"),
            Scenario::Kill9 => kill9::run(context),
            Scenario::FlakyUpstream => flaky_upstream::run(context),
            Scenario::CallbackRetries => callback_retries::run(context),
            Scenario::SlowSystem => slow_system::run(context),
            Scenario::Overload => overload::run(context),
            Scenario::StorageFault => storage_fault::run(context),
        }
    }
}

/// Settings shared by every scenario.
pub struct Context {
    pub binaries: Binaries,
    /// Small counts and short phases, for CI.
    pub quick: bool,
    /// Overrides each scenario's message count.
    pub messages: Option<u64>,
    /// Overrides each scenario's time budget in seconds.
    pub seconds: Option<u64>,
    /// Keeps the working folders (configs, databases, logs) instead of removing them.
    pub keep_temp: bool,
}

impl Context {
    /// Returns the message count: `--messages`, else `full` or, with `--quick`, `quick`.
    pub fn messages(&self, full: u64, quick: u64) -> u64 {
        self.messages.unwrap_or(if self.quick { quick } else { full }).max(1)
    }

    /// Returns the time budget in seconds: `--seconds`, else `full` or, with `--quick`, `quick`.
    pub fn seconds(&self, full: u64, quick: u64) -> u64 {
        self.seconds.unwrap_or(if self.quick { quick } else { full }).max(1)
    }

    /// Creates the working folder of `scenario` under the system's temp folder.
    pub fn workdir(&self, scenario: &str) -> Result<Workdir> {
        let dir = tempfile::Builder::new().prefix(&format!("uig-faults-{scenario}-")).tempdir().context("creating a temp folder")?;
        let path = dir.path().to_path_buf();
        Ok(Workdir { dir: Some(dir), path, keep: self.keep_temp })
    }
}

/// A scenario's temp folder, removed on drop unless kept.
pub struct Workdir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    keep: bool,
}

impl Workdir {
    /// Folder path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            if self.keep {
                eprintln!("kept {}", dir.keep().display());
            }
        }
    }
}

/// Runs `send(index)` for indexes `0..count` on `threads` threads and returns the tickets, by index.
pub fn run_senders(threads: usize, count: u64, send: impl Fn(u64) -> Ticket + Sync) -> Vec<Ticket> {
    let next = AtomicU64::new(0);
    let tickets = Mutex::new(Vec::with_capacity(count as usize));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return;
                }
                let ticket = send(index);
                tickets.lock().expect("tickets lock").push((index, ticket));
            });
        }
    });
    let mut tickets = tickets.into_inner().expect("tickets lock");
    tickets.sort_by_key(|(index, _)| *index);
    tickets.into_iter().map(|(_, ticket)| ticket).collect()
}

/// Sleeps until `at`, if it is still ahead.
pub fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        std::thread::sleep(at - now);
    }
}

/// Waits until every message in the ledger is settled (final status, callback done) or `timeout`
/// passes; returns the rows and how long the wait took.
pub fn wait_settled(database: &Path, timeout: Duration) -> Result<(Vec<MessageRow>, Duration)> {
    let ledger = Ledger::open(database)?;
    let started = Instant::now();
    loop {
        let rows = ledger.messages()?;
        let settled = rows.iter().all(MessageRow::is_settled);
        if settled || started.elapsed() >= timeout {
            return Ok((rows, started.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Returns the `percent` percentile of `values` (nearest rank), or 0 when empty.
pub fn percentile(values: &[f64], percent: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((percent / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Counts rejections by `HTTP status code` over all tickets, for notes.
pub fn rejection_summary(tickets: &[Ticket]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for (status, code, _) in tickets.iter().flat_map(|ticket| &ticket.rejections) {
        *counts.entry(format!("{status} {code}")).or_insert(0u64) += 1;
    }
    if counts.is_empty() {
        return "none".to_string();
    }
    counts.iter().map(|(response, count)| format!("{count} x {response}")).collect::<Vec<_>>().join(", ")
}

/// Returns the standard result counts and problems of `outcome` from the evidence.
pub fn settle_outcome(outcome: &mut Outcome, evidence: &crate::accounting::Evidence) {
    outcome.tally = crate::accounting::account(evidence);
    let tally = &outcome.tally;
    let failed_ok = tally.failed_without_error == 0;
    outcome.check("failed messages carry their last error", failed_ok, format!("{} failed, {} without an error", tally.failed, tally.failed_without_error));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_uses_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&values, 100.0), 100.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[7.0], 1.0), 7.0);
    }
}
