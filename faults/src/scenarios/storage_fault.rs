//! storage_fault: the gateway's writes fail for a while during sends, as on a full disk.
//!
//! The suite runs `uig serve` with SIGXFSZ ignored and lowers its file size limit (RLIMIT_FSIZE)
//! with `prlimit --pid` to 1 byte, so every write to the database, its WAL and its journal fails
//! with EFBIG. Reads keep working. Then the limit is lifted again. The suite runs as an ordinary
//! process owner: no mount, no root, and a read-only folder would not do, because root ignores
//! permissions and the gateway keeps its database files open in WAL mode.
//!
//! Clients retry a 503 with the same `Idempotency-Key` after its `Retry-After`.
//!
//! NOTE: the gateway's stderr is a pipe here, and the file size limit does not apply to pipes. A
//! gateway that logs to a file on the full disk meets a further failure that this scenario misses.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use super::{rejection_summary, run_senders, settle_outcome, sleep_until, wait_settled, Context};
use crate::accounting::Evidence;
use crate::client::{send_with_retries, ApiClient, Outgoing, RetryPolicy, ASYNC_SEND};
use crate::processes::{Gateway, Launch, Mock, TESTKIT_LIBRARY};
use crate::report::Outcome;
use crate::sink::SinkRecorder;

/// Runs the scenario.
pub fn run(context: &Context) -> Result<Outcome> {
    let mut outcome = Outcome::new("storage_fault");
    let sends = context.messages(300, 90);
    // Three phases: healthy, failing writes, recovered.
    let phase = Duration::from_secs_f64(context.seconds(15, 9) as f64 / 3.0);

    let workdir = context.workdir("storage_fault")?;
    let mock = Mock::start(&context.binaries, workdir.path(), "mock")?;
    let mut gateway = Gateway::start(&context.binaries, workdir.path(), &config(), Launch::IgnoreFileSizeSignal)?;
    let callbacks = SinkRecorder::start(&mock.url);
    let pid = gateway.pid().expect("the gateway runs");
    let client = ApiClient::new(&gateway.url, &gateway.token, &gateway.secret, Duration::from_secs(10))?;

    let started = Instant::now();
    let interval = phase * 3 / sends as u32;
    let policy = RetryPolicy { give_up_at: started + phase * 3 + Duration::from_secs(30), max_pause: Duration::from_millis(500), no_response_pause: Duration::from_millis(200) };
    let callback = mock.sink_url();
    let send = |index: u64| {
        sleep_until(started + interval * index as u32);
        let outgoing = Outgoing {
            recipient: "testkit".to_string(),
            entity: "echo".to_string(),
            message: format!(r#"{{"n":{index}}}"#),
            callback: Some(callback.clone()),
            idempotency_key: format!("storage-{index}"),
        };
        send_with_retries(&client, ASYNC_SEND, &outgoing, policy)
    };

    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let (tickets, limited_at, lifted_at, ready_during_fault) = std::thread::scope(|scope| -> Result<_> {
        let senders = scope.spawn(|| run_senders(4, sends, send));
        sleep_until(started + phase);
        set_file_size_limit(pid, "1")?;
        let limited_at = Instant::now();
        std::thread::sleep(phase / 2);
        let ready = http.get(format!("{}/health/ready", gateway.url)).send().map(|response| response.status().as_u16()).ok();
        sleep_until(started + phase * 2);
        set_file_size_limit(pid, "unlimited")?;
        let lifted_at = Instant::now();
        Ok((senders.join().expect("sender threads do not panic"), limited_at, lifted_at, ready))
    })?;
    let survived = gateway.is_running();

    // Longer than the lease, after which a delivery whose result could not be stored is redone.
    let resume_wait = Duration::from_secs(30);
    let (mut rows, _) = wait_settled(&gateway.database_path, resume_wait)?;
    let unsettled = rows.iter().filter(|row| !row.is_settled()).count();
    outcome.check(
        "delivery resumes without a restart",
        unsettled == 0,
        format!("{unsettled} messages unsettled {} s after the sends", resume_wait.as_secs()),
    );
    if unsettled > 0 {
        gateway.restart()?;
        (rows, _) = wait_settled(&gateway.database_path, Duration::from_secs(60))?;
    }
    let receipts = callbacks.receipts();
    settle_outcome(&mut outcome, &Evidence { tickets: &tickets, rows: &rows, callbacks: Some(&receipts), deliveries: None });

    let rejections: Vec<&(u16, String, bool)> = tickets.iter().flat_map(|ticket| &ticket.rejections).collect();
    let unavailable = rejections.iter().filter(|(status, code, retry_after)| *status == 503 && code == "temporarily_unavailable" && *retry_after).count();
    outcome.check(
        "failed writes return 503 temporarily_unavailable with Retry-After",
        unavailable > 0 && unavailable == rejections.len(),
        format!("{unavailable} of {} rejections; all rejections: {}", rejections.len(), rejection_summary(&tickets)),
    );
    outcome.check("the gateway survives the failing writes", survived, "no SIGXFSZ kill, no exit");
    let accepted_during_fault = tickets
        .iter()
        // A response in flight when the limit was set may arrive a moment later.
        .filter(|ticket| ticket.accepted_at.is_some_and(|accepted_at| accepted_at > limited_at + Duration::from_millis(250) && accepted_at < lifted_at))
        .count();
    outcome.check(
        "no send accepted while every write fails",
        accepted_during_fault == 0,
        format!("{accepted_during_fault} sends got 202 while the file size limit was 1 byte"),
    );
    let recovered = tickets.iter().filter(|ticket| ticket.accepted_at.is_some_and(|accepted_at| accepted_at > lifted_at) && !ticket.rejections.is_empty()).count();
    outcome.check("sends rejected during the fault are accepted after it", recovered > 0, format!("{recovered} sends"));
    let no_responses: u32 = tickets.iter().map(|ticket| ticket.no_responses).sum();
    outcome.check("every try got an HTTP response", no_responses == 0, format!("{no_responses} tries without a response"));

    let stored_despite_503 = tickets.iter().filter(|ticket| ticket.replayed && !ticket.rejections.is_empty()).count();
    outcome.note(format!(
        "{sends} sends over 3 phases of {:.1} s (healthy, RLIMIT_FSIZE = 1 byte, lifted); /health/ready during the fault: {}",
        phase.as_secs_f64(),
        ready_during_fault.map_or("no response".to_string(), |status| status.to_string())
    ));
    outcome.note(format!(
        "sends rejected with 503 whose message was stored after all (a retry with the same Idempotency-Key got it back): {stored_despite_503}"
    ));
    Ok(outcome)
}

/// Sets the soft file size limit of process `pid` to `bytes` (a number or `unlimited`) with
/// `prlimit` from util-linux.
fn set_file_size_limit(pid: u32, bytes: &str) -> Result<()> {
    let output = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--fsize={bytes}:")])
        .output()
        .context("running prlimit (util-linux) to change the gateway's file size limit")?;
    if !output.status.success() {
        bail!("prlimit --pid {pid} --fsize={bytes}: failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

fn config() -> String {
    format!(
        r#"[worker]
poll_interval_ms = 100
lease_seconds = 10

[callbacks]
timeout_ms = 2000

[callbacks.retry]
initial_backoff_ms = 200
max_backoff_ms = 2000

[limits]
client_rate_per_second = 0

[connectors.testkit]
library = "{TESTKIT_LIBRARY}"
required = true
deadline_ms = 2000
max_attempts = 3
"#
    )
}
