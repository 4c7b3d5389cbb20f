//! slow_system: one connector (testkit `sleep`) takes seconds per call in its own worker pool while
//! clients call another (AVINFO). The other's latency is measured without and with the slow load.
//!
//! Latency is measured twice: the round trip of a sync send, and for async sends the time from the
//! send to the callback's arrival at the sink (both clocks are this machine's).

use std::time::{Duration, Instant};

use anyhow::Result;

use super::{percentile, settle_outcome, sleep_until, wait_settled, Context};
use crate::accounting::Evidence;
use crate::client::{send_with_retries, ApiClient, SendResponse, Outgoing, RetryPolicy, Ticket, ASYNC_SEND, SYNC_SEND};
use crate::processes::{Gateway, Launch, Mock, AVINFO_LIBRARY, TESTKIT_LIBRARY};
use crate::report::Outcome;
use crate::sink::{Receipt, SinkRecorder};

/// Concurrency of the slow connector's own pool.
const SLOW_POOL: u64 = 2;
/// Distinct VINs the fast traffic looks up; AVINFO caches them, so the mock's balance suffices.
const VINS: u64 = 20;

/// Latencies of the fast connector in one window, in milliseconds.
struct Window {
    sync_ms: Vec<f64>,
    async_tickets: Vec<Ticket>,
    sync_errors: u64,
}

/// Runs the scenario.
pub fn run(context: &Context) -> Result<Outcome> {
    let mut outcome = Outcome::new("slow_system");
    let per_window = context.messages(200, 40);
    let window = Duration::from_secs_f64(context.seconds(20, 8) as f64 / 2.0);
    let sleep_ms: u64 = if context.quick { 3_000 } else { 10_000 };
    // Enough slow messages to keep the slow pool full during the whole window.
    let slow_messages = SLOW_POOL * (window.as_millis() as u64 / sleep_ms + 2);

    let workdir = context.workdir("slow_system")?;
    let mock = Mock::start(&context.binaries, workdir.path(), "mock")?;
    let gateway = Gateway::start(&context.binaries, workdir.path(), &config(&mock.url, sleep_ms), Launch::Plain)?;
    let callbacks = SinkRecorder::start(&mock.url);
    let client = ApiClient::new(&gateway.url, &gateway.token, &gateway.secret, Duration::from_secs(30))?;
    let policy = RetryPolicy {
        give_up_at: Instant::now() + Duration::from_secs(600),
        max_pause: Duration::from_secs(1),
        no_response_pause: Duration::from_millis(200),
    };

    // Warm-up: one lookup per VIN fills the AVINFO cache, so both windows measure the same path.
    for index in 0..VINS {
        let _ = client.send(SYNC_SEND, &fast_message(index, "warmup", None));
    }

    let baseline = measure(&client, &mock.sink_url(), per_window, window, "base", policy);

    let slow_tickets: Vec<Ticket> = (0..slow_messages)
        .map(|index| {
            let outgoing = Outgoing {
                recipient: "slow".to_string(),
                entity: "sleep".to_string(),
                message: format!(r#"{{"ms":{sleep_ms},"n":{index}}}"#),
                callback: Some(mock.sink_url()),
                idempotency_key: format!("slow-{index}"),
            };
            send_with_retries(&client, ASYNC_SEND, &outgoing, policy)
        })
        .collect();
    let loaded = measure(&client, &mock.sink_url(), per_window, window, "loaded", policy);

    let drain_timeout = Duration::from_millis(sleep_ms * slow_messages / SLOW_POOL + 60_000);
    let (rows, _) = wait_settled(&gateway.database_path, drain_timeout)?;
    let receipts = callbacks.receipts();
    let tickets: Vec<Ticket> = baseline.async_tickets.iter().chain(&loaded.async_tickets).chain(&slow_tickets).cloned().collect();
    settle_outcome(&mut outcome, &Evidence { tickets: &tickets, rows: &rows, callbacks: Some(&receipts), deliveries: None });

    let base_async = async_latencies(&baseline.async_tickets, &receipts);
    let loaded_async = async_latencies(&loaded.async_tickets, &receipts);
    let (base_p50, base_p99) = (percentile(&baseline.sync_ms, 50.0), percentile(&baseline.sync_ms, 99.0));
    let (loaded_p50, loaded_p99) = (percentile(&loaded.sync_ms, 50.0), percentile(&loaded.sync_ms, 99.0));
    let (base_async_p50, base_async_p99) = (percentile(&base_async, 50.0), percentile(&base_async, 99.0));
    let (loaded_async_p50, loaded_async_p99) = (percentile(&loaded_async, 50.0), percentile(&loaded_async, 99.0));

    // Bounds with room for a shared two-core machine: twice the baseline plus a fixed margin.
    let unaffected = |base: f64, loaded: f64, margin: f64| loaded <= 2.0 * base + margin;
    outcome.check(
        "sync p50 and p99 of the other connector unaffected",
        unaffected(base_p50, loaded_p50, 50.0) && unaffected(base_p99, loaded_p99, 250.0),
        format!("p50 {base_p50:.1} -> {loaded_p50:.1} ms, p99 {base_p99:.1} -> {loaded_p99:.1} ms (bound: 2 x baseline + 50 / 250 ms)"),
    );
    outcome.check(
        "async p50 and p99 of the other connector unaffected",
        unaffected(base_async_p50, loaded_async_p50, 100.0) && unaffected(base_async_p99, loaded_async_p99, 500.0),
        format!(
            "p50 {base_async_p50:.1} -> {loaded_async_p50:.1} ms, p99 {base_async_p99:.1} -> {loaded_async_p99:.1} ms (bound: 2 x baseline + 100 / 500 ms)"
        ),
    );
    let sync_errors = baseline.sync_errors + loaded.sync_errors;
    outcome.check("sync sends return delivered", sync_errors == 0, format!("{sync_errors} sync sends were not delivered"));
    let slow_delivered = rows.iter().filter(|row| row.status == "delivered").count() as u64;
    outcome.note(format!(
        "windows of {:.1} s with {per_window} sync + {per_window} async AVINFO sends each; {slow_messages} testkit sleeps of {sleep_ms} ms in pool \"slow\" (concurrency {SLOW_POOL}) during the second",
        window.as_secs_f64()
    ));
    outcome.note(format!(
        "sync send, ms:            p50 {base_p50:>7.1} -> {loaded_p50:>7.1}   p99 {base_p99:>7.1} -> {loaded_p99:>7.1}   (without -> with the slow connector)"
    ));
    outcome.note(format!(
        "async send to callback, ms: p50 {base_async_p50:>7.1} -> {loaded_async_p50:>7.1}   p99 {base_async_p99:>7.1} -> {loaded_async_p99:>7.1}"
    ));
    outcome.note(format!("messages delivered in total: {slow_delivered} of {}", rows.len()));
    Ok(outcome)
}

fn fast_message(index: u64, window: &str, callback: Option<String>) -> Outgoing {
    Outgoing {
        recipient: "avinfo".to_string(),
        entity: "vehicle".to_string(),
        message: format!(r#"{{"vin":"XTA{:013}1"}}"#, index % VINS),
        callback,
        idempotency_key: format!("fast-{window}-{index}"),
    }
}

/// Sends `count` sync and `count` async AVINFO lookups evenly over `window` and returns the latencies.
fn measure(client: &ApiClient, sink_url: &str, count: u64, window: Duration, name: &str, policy: RetryPolicy) -> Window {
    let started = Instant::now();
    let interval = window / count as u32;
    std::thread::scope(|scope| {
        let async_sender = scope.spawn(|| {
            (0..count)
                .map(|index| {
                    sleep_until(started + interval * index as u32);
                    let outgoing = fast_message(index, &format!("{name}-async"), Some(sink_url.to_string()));
                    send_with_retries(client, ASYNC_SEND, &outgoing, policy)
                })
                .collect::<Vec<_>>()
        });
        let mut sync_ms = Vec::new();
        let mut sync_errors = 0;
        for index in 0..count {
            sleep_until(started + interval * index as u32 + interval / 2);
            let outgoing = fast_message(index, &format!("{name}-sync"), None);
            let sent = Instant::now();
            match client.send(SYNC_SEND, &outgoing) {
                SendResponse::Stored { status, .. } if status == "delivered" => sync_ms.push(sent.elapsed().as_secs_f64() * 1000.0),
                _ => sync_errors += 1,
            }
        }
        let async_tickets = async_sender.join().expect("the async sender does not panic");
        Window { sync_ms, async_tickets, sync_errors }
    })
}

/// Returns, per accepted ticket with a callback, the milliseconds from its send to the first callback.
fn async_latencies(tickets: &[Ticket], receipts: &[Receipt]) -> Vec<f64> {
    let first_arrival: std::collections::HashMap<i64, chrono::DateTime<chrono::Utc>> = receipts
        .iter()
        .rev()
        .filter_map(|receipt| Some((receipt.message_id()?, receipt.received_at)))
        .collect();
    tickets
        .iter()
        .filter_map(|ticket| {
            let arrival = first_arrival.get(&ticket.id?)?;
            Some((*arrival - ticket.started_at).num_microseconds()? as f64 / 1000.0)
        })
        .collect()
}

fn config(mock_url: &str, sleep_ms: u64) -> String {
    let deadline_ms = sleep_ms + 5_000;
    format!(
        r#"[worker]
poll_interval_ms = 100
lease_seconds = 60

[callbacks]
timeout_ms = 2000

[limits]
client_rate_per_second = 0

[pools.slow]
concurrency = {SLOW_POOL}

[connectors.avinfo]
library = "{AVINFO_LIBRARY}"
required = true
allowed_urls = ["{mock_url}"]
# The sync sends take the lookup path (stored once, after the call), as in examples/uig.toml.
lookups = ["vehicle"]
deadline_ms = 5000
max_attempts = 3

[connectors.avinfo.settings]
base_url = "{mock_url}"
api_key = "demo-avinfo-key"
cache_ttl_seconds = 3600

[connectors.slow]
library = "{TESTKIT_LIBRARY}"
required = true
pool = "slow"
concurrency = {SLOW_POOL}
deadline_ms = {deadline_ms}
max_attempts = 1
"#
    )
}
