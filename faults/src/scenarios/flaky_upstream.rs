//! flaky_upstream: AVINFO returns HTTP 500, then takes longer than the connector's HTTP timeout, then
//! resets connections, then recovers, while clients send at a steady rate.
//!
//! `uig-mock` has modes for the first two faults. Connection resets come from a proxy between the
//! gateway and the mock ([`crate::proxy`]), because the mock has no such mode.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;

use super::{rejection_summary, run_senders, settle_outcome, sleep_until, wait_settled, Context};
use crate::accounting::Evidence;
use crate::client::{send_with_retries, ApiClient, Outgoing, RetryPolicy, ASYNC_SEND};
use crate::ledger::{AttemptRow, Ledger};
use crate::processes::{Gateway, Launch, Mock, AVINFO_LIBRARY};
use crate::proxy::FaultProxy;
use crate::report::Outcome;
use crate::sink::SinkRecorder;

/// The connector's HTTP timeout, in milliseconds.
const HTTP_TIMEOUT_MS: u64 = 1000;
/// Delay of the mock's slow mode, above [`HTTP_TIMEOUT_MS`].
const SLOW_DELAY_MS: u64 = 2500;
/// The phases in order: the fault of each and its name in the notes.
const PHASES: [&str; 4] = ["error_500", "slow", "reset", "recovered"];

/// Runs the scenario.
pub fn run(context: &Context) -> Result<Outcome> {
    let mut outcome = Outcome::new("flaky_upstream");
    let messages = context.messages(300, 60);
    let phase = Duration::from_secs_f64(context.seconds(32, 12) as f64 / PHASES.len() as f64);

    let workdir = context.workdir("flaky_upstream")?;
    let mock = Mock::start(&context.binaries, workdir.path(), "mock")?;
    let proxy = FaultProxy::start(format!("127.0.0.1:{}", mock.port).parse()?)?;
    let gateway = Gateway::start(&context.binaries, workdir.path(), &config(&proxy.url()), Launch::Plain)?;
    let callbacks = SinkRecorder::start(&mock.url);

    let client = ApiClient::new(&gateway.url, &gateway.token, &gateway.secret, Duration::from_secs(10))?;
    let started = Instant::now();
    let interval = phase * PHASES.len() as u32 / messages as u32;
    let policy = RetryPolicy { give_up_at: started + phase * 8, max_pause: Duration::from_secs(1), no_response_pause: Duration::from_millis(200) };
    let callback = mock.sink_url();
    let send = |index: u64| {
        sleep_until(started + interval * index as u32);
        let outgoing = Outgoing {
            recipient: "avinfo".to_string(),
            entity: "vehicle".to_string(),
            message: format!(r#"{{"vin":"{}"}}"#, vin(index)),
            callback: Some(callback.clone()),
            idempotency_key: format!("flaky-{index}"),
        };
        send_with_retries(&client, ASYNC_SEND, &outgoing, policy)
    };

    let (tickets, recovered_at) = std::thread::scope(|scope| -> Result<_> {
        let senders = scope.spawn(|| run_senders(4, messages, send));
        mock.set_avinfo_mode("error_500", 0)?;
        sleep_until(started + phase);
        mock.set_avinfo_mode("slow", SLOW_DELAY_MS)?;
        sleep_until(started + phase * 2);
        mock.set_avinfo_mode("normal", 0)?;
        proxy.set_resetting(true);
        sleep_until(started + phase * 3);
        proxy.set_resetting(false);
        let recovered_at = chrono::Utc::now().timestamp_millis();
        Ok((senders.join().expect("sender threads do not panic"), recovered_at))
    })?;

    let (rows, drain) = wait_settled(&gateway.database_path, Duration::from_secs(90))?;
    let receipts = callbacks.receipts();
    settle_outcome(&mut outcome, &Evidence { tickets: &tickets, rows: &rows, callbacks: Some(&receipts), deliveries: None });

    let attempts = Ledger::open(&gateway.database_path)?.attempts("delivery")?;
    let by_fault = count_by_fault(&attempts);
    let seen = |fault: &str| by_fault.get(fault).copied().unwrap_or(0);
    outcome.check("HTTP 500 responses reached the connector", seen("http_500") > 0, format!("{} attempts failed with HTTP 500", seen("http_500")));
    outcome.check(
        "timeouts reached the connector",
        seen("timeout") > 0,
        format!("{} attempts timed out after {HTTP_TIMEOUT_MS} ms (mock delay {SLOW_DELAY_MS} ms)", seen("timeout")),
    );
    outcome.check(
        "connection resets reached the connector",
        seen("reset") > 0 && proxy.resets() > 0,
        format!("{} attempts failed on a reset; the proxy reset {} connections", seen("reset"), proxy.resets()),
    );
    let late = rows.iter().filter(|row| row.created_at >= recovered_at && row.status != "delivered").count();
    outcome.check("messages sent after the recovery are delivered", late == 0, format!("{late} of them are not delivered"));

    let failed_by_fault = count_by_fault(&last_errors(&rows));
    outcome.note(format!("{messages} sends over 4 phases of {:.1} s: {}", phase.as_secs_f64(), PHASES.join(", ")));
    outcome.note(format!("delivery attempts by outcome: {}", describe(&by_fault)));
    outcome.note(format!("last error of the failed messages: {}", describe(&failed_by_fault)));
    outcome.note(format!("client rejections: {}; settled {:.1} s after the last send", rejection_summary(&tickets), drain.as_secs_f64()));
    let balance = mock.stats().ok().and_then(|stats| stats["avinfo"]["balance"].as_u64());
    outcome.note(format!("mock AVINFO balance left: {balance:?} (at 0 lookups fail with no_balance)"));
    Ok(outcome)
}

/// Returns a distinct valid VIN per index, never ending in 00000 (the mock's "not found").
fn vin(index: u64) -> String {
    format!("XTA{index:013}1")
}

/// Sorts attempts by the fault behind them, from the stored error.
fn count_by_fault(attempts: &[AttemptRow]) -> BTreeMap<&'static str, u64> {
    let mut counts = BTreeMap::new();
    for attempt in attempts {
        *counts.entry(fault_of(attempt)).or_insert(0) += 1;
    }
    counts
}

fn fault_of(attempt: &AttemptRow) -> &'static str {
    if attempt.outcome == "ok" {
        return "ok";
    }
    let error: Value = attempt.error.as_deref().and_then(|text| serde_json::from_str(text).ok()).unwrap_or_default();
    let message = error["message"].as_str().unwrap_or_default();
    if message.contains("HTTP 500") {
        "http_500"
    } else if message.contains("timed out") || message.contains("deadline") {
        "timeout"
    } else if message.contains("reset by peer") || message.contains("connection closed") || message.contains("interrupted") {
        "reset"
    } else {
        "other"
    }
}

/// Makes one attempt-like row per failed message from its last error.
fn last_errors(rows: &[crate::ledger::MessageRow]) -> Vec<AttemptRow> {
    rows.iter()
        .filter(|row| row.status == "failed")
        .map(|row| AttemptRow { message_id: row.id, number: row.attempts, outcome: "failed".to_string(), error: row.error.clone() })
        .collect()
}

fn describe(counts: &BTreeMap<&'static str, u64>) -> String {
    if counts.is_empty() {
        return "none".to_string();
    }
    counts.iter().map(|(fault, count)| format!("{fault} {count}")).collect::<Vec<_>>().join(", ")
}

fn config(avinfo_url: &str) -> String {
    format!(
        r#"[worker]
poll_interval_ms = 100
lease_seconds = 30

[callbacks]
timeout_ms = 2000

[callbacks.retry]
initial_backoff_ms = 200
max_backoff_ms = 2000

[limits]
client_rate_per_second = 0

[connectors.avinfo]
library = "{AVINFO_LIBRARY}"
required = true
allowed_urls = ["{avinfo_url}"]
concurrency = 8
deadline_ms = 5000
http_timeout_ms = {HTTP_TIMEOUT_MS}
max_attempts = 8

[connectors.avinfo.retry]
initial_backoff_ms = 250
max_backoff_ms = 2000

# Off, so that every retry meets the fault of its phase; the breaker has its own engine tests.
[connectors.avinfo.circuit_breaker]
enabled = false

[connectors.avinfo.settings]
base_url = "{avinfo_url}"
api_key = "demo-avinfo-key"
cache_ttl_seconds = 3600
timeout_ms = {HTTP_TIMEOUT_MS}
"#
    )
}
