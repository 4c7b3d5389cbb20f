//! overload: clients send large messages far beyond `limits.max_queue_depth` while the delivery
//! worker is off, then the gateway restarts with the worker on and delivers what it accepted.
//!
//! Each send is tried once, so every response is counted as it came. The gateway's resident memory is
//! sampled from `/proc/PID/status` during the sends.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{rejection_summary, run_senders, settle_outcome, wait_settled, Context};
use crate::accounting::Evidence;
use crate::client::{SendResponse, ApiClient, Outgoing, Ticket, ASYNC_SEND};
use crate::processes::{resident_kib, Gateway, Launch, Mock, TESTKIT_LIBRARY};
use crate::report::Outcome;
use crate::sink::SinkRecorder;

/// Client threads sending at once.
const SENDERS: usize = 8;
/// Growth of the gateway's resident memory above its idle size that counts as bounded, in KiB.
const RSS_GROWTH_BOUND_KIB: u64 = 256 * 1024;

/// Runs the scenario.
pub fn run(context: &Context) -> Result<Outcome> {
    let mut outcome = Outcome::new("overload");
    let sends = context.messages(2000, 300);
    let budget = Duration::from_secs(context.seconds(300, 60));
    let max_queue_depth: u64 = if context.quick { 20 } else { 50 };
    let message_bytes: usize = if context.quick { 64 * 1024 } else { 256 * 1024 };

    let workdir = context.workdir("overload")?;
    let mock = Mock::start(&context.binaries, workdir.path(), "mock")?;
    let mut gateway = Gateway::start(&context.binaries, workdir.path(), &config(false, max_queue_depth), Launch::Plain)?;
    let callbacks = SinkRecorder::start(&mock.url);
    let client = ApiClient::new(&gateway.url, &gateway.token, &gateway.secret, Duration::from_secs(30))?;
    let pid = gateway.pid().expect("the gateway runs");
    let idle_rss = gateway.rss_kib().unwrap_or_default();

    let padding = "x".repeat(message_bytes);
    let callback = mock.sink_url();
    let started = Instant::now();
    let peak_rss = AtomicU64::new(idle_rss);
    let sending = AtomicBool::new(true);
    let (tickets, no_responses) = std::thread::scope(|scope| {
        scope.spawn(|| {
            while sending.load(Ordering::Relaxed) {
                if let Some(rss) = resident_kib(pid) {
                    peak_rss.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let no_responses = AtomicU64::new(0);
        let tickets = run_senders(SENDERS, sends, |index| {
            let outgoing = Outgoing {
                recipient: "testkit".to_string(),
                entity: "echo".to_string(),
                message: format!(r#"{{"n":{index},"padding":"{padding}"}}"#),
                callback: Some(callback.clone()),
                idempotency_key: format!("overload-{index}"),
            };
            let mut ticket = Ticket::untried(&outgoing.idempotency_key);
            if started.elapsed() < budget {
                match client.send(ASYNC_SEND, &outgoing) {
                    SendResponse::Stored { id, replayed, .. } => (ticket.id, ticket.replayed) = (Some(id), replayed),
                    SendResponse::Rejected { http_status, code, retry_after } => ticket.rejections.push((http_status, code, retry_after.is_some())),
                    SendResponse::NoResponse { .. } => {
                        no_responses.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            ticket
        });
        sending.store(false, Ordering::Relaxed);
        (tickets, no_responses.into_inner())
    });
    let send_seconds = started.elapsed().as_secs_f64();
    let peak_rss = peak_rss.into_inner();

    gateway.write_config(&config(true, max_queue_depth))?;
    gateway.restart()?;
    let (rows, drain) = wait_settled(&gateway.database_path, Duration::from_secs(60))?;
    let receipts = callbacks.receipts();
    settle_outcome(&mut outcome, &Evidence { tickets: &tickets, rows: &rows, callbacks: Some(&receipts), deliveries: None });

    let accepted = outcome.tally.accepted;
    let rejections: Vec<&(u16, String, bool)> = tickets.iter().flat_map(|ticket| &ticket.rejections).collect();
    let queue_full = rejections.iter().filter(|(status, code, retry_after)| *status == 503 && code == "queue_full" && *retry_after).count();
    outcome.check(
        "accepted no more than max_queue_depth",
        accepted <= max_queue_depth && accepted > 0,
        format!("{accepted} accepted, max_queue_depth = {max_queue_depth}"),
    );
    outcome.check(
        "every other send got 503 queue_full with Retry-After",
        queue_full == rejections.len() && accepted + queue_full as u64 == sends && no_responses == 0,
        format!("{queue_full} of {} rejections; {no_responses} sends without a response; rejections: {}", rejections.len(), rejection_summary(&tickets)),
    );
    outcome.check("a rejected send stores nothing", rows.len() as u64 == accepted, format!("{} messages in the ledger", rows.len()));
    let growth = peak_rss.saturating_sub(idle_rss);
    outcome.check(
        "resident memory stays bounded",
        growth <= RSS_GROWTH_BOUND_KIB,
        format!("idle {} MiB, peak {} MiB, growth {} MiB (bound {} MiB)", idle_rss / 1024, peak_rss / 1024, growth / 1024, RSS_GROWTH_BOUND_KIB / 1024),
    );
    outcome.note(format!(
        "{sends} sends of {} KiB by {SENDERS} threads in {send_seconds:.1} s with the worker off; after a restart with it on, the ledger settled in {:.1} s",
        message_bytes / 1024,
        drain.as_secs_f64()
    ));
    Ok(outcome)
}

fn config(worker_enabled: bool, max_queue_depth: u64) -> String {
    format!(
        r#"[worker]
enabled = {worker_enabled}
poll_interval_ms = 100
lease_seconds = 30

[callbacks]
timeout_ms = 2000

[limits]
client_rate_per_second = 0
max_queue_depth = {max_queue_depth}

[connectors.testkit]
library = "{TESTKIT_LIBRARY}"
required = true
deadline_ms = 2000
max_attempts = 3
"#
    )
}
