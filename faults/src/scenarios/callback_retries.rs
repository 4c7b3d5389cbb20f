//! callback_retries: the callback receiver responds with 500, 500, then 200, and the gateway is killed
//! and restarted between the second and the third attempt.
//!
//! The sink's `fail_next` counts requests, not messages, so all messages are sent in one burst.
//! Their first callbacks then all come before any second one, as long as the burst's spread stays
//! below the shortest first retry delay (half of `initial_backoff_ms`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::{percentile, settle_outcome, wait_settled, Context};
use crate::accounting::Evidence;
use crate::client::{send_with_retries, ApiClient, Outgoing, RetryPolicy, ASYNC_SEND};
use crate::ledger::Ledger;
use crate::processes::{Gateway, Launch, Mock, TESTKIT_LIBRARY};
use crate::report::Outcome;
use crate::sink::{Receipt, SinkRecorder};

/// Delay before the second callback attempt, before jitter, in milliseconds.
const INITIAL_BACKOFF_MS: u64 = 2000;
/// Growth of the delay per attempt.
const MULTIPLIER: u64 = 3;

/// Runs the scenario.
pub fn run(context: &Context) -> Result<Outcome> {
    let mut outcome = Outcome::new("callback_retries");
    let messages = context.messages(20, 8);

    let workdir = context.workdir("callback_retries")?;
    let mock = Mock::start(&context.binaries, workdir.path(), "mock")?;
    let mut gateway = Gateway::start(&context.binaries, workdir.path(), &config(), Launch::Plain)?;
    let callbacks = SinkRecorder::start(&mock.url);
    mock.fail_next_callbacks(2 * messages)?;

    let client = ApiClient::new(&gateway.url, &gateway.token, &gateway.secret, Duration::from_secs(10))?;
    let policy = RetryPolicy { give_up_at: Instant::now() + Duration::from_secs(30), max_pause: Duration::from_secs(1), no_response_pause: Duration::from_millis(200) };
    let tickets: Vec<_> = (0..messages)
        .map(|index| {
            let outgoing = Outgoing {
                recipient: "testkit".to_string(),
                entity: "echo".to_string(),
                message: format!(r#"{{"n":{index}}}"#),
                callback: Some(mock.sink_url()),
                idempotency_key: format!("callback-{index}"),
            };
            send_with_retries(&client, ASYNC_SEND, &outgoing, policy)
        })
        .collect();

    // After the second failed attempt of every message is stored, kill and restart.
    let ledger = Ledger::open(&gateway.database_path)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = ledger.messages()?;
        if rows.len() as u64 == messages && rows.iter().all(|row| row.callback_attempts >= 2) {
            break;
        }
        if Instant::now() >= deadline {
            bail!("the second callback attempts were not all stored within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed_at = chrono::Utc::now();
    let restart = Instant::now();
    gateway.restart()?;
    let down_ms = restart.elapsed().as_millis();

    let (rows, _) = wait_settled(&gateway.database_path, Duration::from_secs(60))?;
    let receipts = callbacks.receipts();
    settle_outcome(&mut outcome, &Evidence { tickets: &tickets, rows: &rows, callbacks: Some(&receipts), deliveries: None });

    let per_message = group(&receipts);
    let sequences_ok = per_message.values().filter(|list| list.iter().map(|receipt| receipt.status).eq([500, 500, 200])).count();
    outcome.check(
        "each message got exactly 500, 500, 200",
        sequences_ok as u64 == messages && per_message.len() as u64 == messages,
        format!("{sequences_ok} of {messages} messages"),
    );
    let mut outcomes_by_message: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for attempt in Ledger::open(&gateway.database_path)?.attempts("callback")? {
        outcomes_by_message.entry(attempt.message_id).or_default().push(format!("{} {}", attempt.number, attempt.outcome));
    }
    let stored_ok = rows
        .iter()
        .filter(|row| row.callback_attempts == 3 && row.callback_state.as_deref() == Some("delivered"))
        .filter(|row| outcomes_by_message.get(&row.id).is_some_and(|outcomes| outcomes == &["1 retry", "2 retry", "3 ok"]))
        .count();
    outcome.check(
        "ledger stores attempts 1 retry, 2 retry, 3 ok",
        stored_ok as u64 == messages,
        format!("{stored_ok} of {messages} messages"),
    );

    let first_gaps = gaps(&per_message, 0);
    let second_gaps = gaps(&per_message, 1);
    let growing = per_message.values().filter(|list| list.len() == 3 && gap_ms(list, 1) > gap_ms(list, 0)).count();
    outcome.check("the delay grows from one attempt to the next", growing as u64 == messages, format!("{growing} of {messages} messages"));
    let third_after_kill = per_message.values().filter(|list| list.len() == 3 && list[2].received_at > killed_at).count();
    outcome.check(
        "the restart fell between the second and third attempts",
        third_after_kill as u64 == messages,
        format!("{third_after_kill} of {messages} third attempts came after the kill; the gateway was down {down_ms} ms"),
    );
    let first_times: Vec<_> = per_message.values().filter_map(|list| list.first()).map(|receipt| receipt.received_at).collect();
    let first_spread = spread_ms(&first_times);
    outcome.check(
        "first callbacks came as one burst",
        first_spread < (INITIAL_BACKOFF_MS / 2) as f64,
        format!("spread {first_spread:.0} ms, below {} ms keeps fail_next per round", INITIAL_BACKOFF_MS / 2),
    );

    outcome.note(format!(
        "delay 1st->2nd: min {:.0} / median {:.0} / max {:.0} ms (configured {}..{} ms)",
        first_gaps.first().copied().unwrap_or_default(),
        percentile(&first_gaps, 50.0),
        first_gaps.last().copied().unwrap_or_default(),
        INITIAL_BACKOFF_MS / 2,
        INITIAL_BACKOFF_MS
    ));
    outcome.note(format!(
        "delay 2nd->3rd: min {:.0} / median {:.0} / max {:.0} ms (configured {}..{} ms, gateway restarted in between)",
        second_gaps.first().copied().unwrap_or_default(),
        percentile(&second_gaps, 50.0),
        second_gaps.last().copied().unwrap_or_default(),
        INITIAL_BACKOFF_MS * MULTIPLIER / 2,
        INITIAL_BACKOFF_MS * MULTIPLIER
    ));
    Ok(outcome)
}

fn group(receipts: &[Receipt]) -> BTreeMap<i64, Vec<&Receipt>> {
    let mut grouped: BTreeMap<i64, Vec<&Receipt>> = BTreeMap::new();
    for receipt in receipts {
        if let Some(id) = receipt.message_id() {
            grouped.entry(id).or_default().push(receipt);
        }
    }
    grouped
}

fn gap_ms(list: &[&Receipt], index: usize) -> f64 {
    (list[index + 1].received_at - list[index].received_at).num_microseconds().unwrap_or_default() as f64 / 1000.0
}

/// Returns the sorted gaps after attempt `index + 1` over the messages that have the next attempt.
fn gaps(per_message: &BTreeMap<i64, Vec<&Receipt>>, index: usize) -> Vec<f64> {
    let mut gaps: Vec<f64> = per_message.values().filter(|list| list.len() > index + 1).map(|list| gap_ms(list, index)).collect();
    gaps.sort_by(f64::total_cmp);
    gaps
}

fn spread_ms(times: &[chrono::DateTime<chrono::Utc>]) -> f64 {
    match (times.iter().min(), times.iter().max()) {
        (Some(first), Some(last)) => (*last - *first).num_milliseconds() as f64,
        _ => 0.0,
    }
}

fn config() -> String {
    format!(
        r#"[worker]
poll_interval_ms = 100
lease_seconds = 30

[callbacks]
timeout_ms = 2000
max_attempts = 5

[callbacks.retry]
initial_backoff_ms = {INITIAL_BACKOFF_MS}
max_backoff_ms = 60000
multiplier = {MULTIPLIER}.0

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
