//! kill9: clients send asynchronously while the gateway is killed with SIGKILL every few seconds
//! and started again.
//!
//! Each message is a testkit `post` whose delivery POSTs `message ID` to a second mock, so every
//! delivery that reached the recipient is visible, and each requests a callback to the sink mock.
//! Clients retry a send that got no response with the same `Idempotency-Key`.

use std::time::{Duration, Instant};

use anyhow::Result;
use rand::Rng;

use super::{rejection_summary, run_senders, settle_outcome, sleep_until, wait_settled, Context};
use crate::accounting::Evidence;
use crate::client::{send_with_retries, ApiClient, Outgoing, RetryPolicy, ASYNC_SEND};
use crate::processes::{Gateway, Launch, Mock, TESTKIT_LIBRARY};
use crate::report::Outcome;
use crate::sink::SinkRecorder;

/// Client threads sending at once.
const SENDERS: usize = 4;

/// Runs the scenario.
pub fn run(context: &Context) -> Result<Outcome> {
    let mut outcome = Outcome::new("kill9");
    let messages = context.messages(10_000, 300);
    // Sends are spread evenly over this time, so that the kills fall among them.
    let send_phase = Duration::from_secs(context.seconds(120, 15));
    let (kill_after_min_ms, kill_after_max_ms) = if context.quick { (1500, 3000) } else { (2000, 5000) };

    let workdir = context.workdir("kill9")?;
    let sink = Mock::start(&context.binaries, workdir.path(), "sink")?;
    let recipient = Mock::start(&context.binaries, workdir.path(), "recipient")?;
    let sections = config(&recipient.url);
    let mut gateway = Gateway::start(&context.binaries, workdir.path(), &sections, Launch::Plain)?;
    let callbacks = SinkRecorder::start(&sink.url);
    let deliveries = SinkRecorder::start(&recipient.url);

    let client = ApiClient::new(&gateway.url, &gateway.token, &gateway.secret, Duration::from_secs(10))?;
    let started = Instant::now();
    let interval = send_phase / messages as u32;
    let policy = RetryPolicy {
        give_up_at: started + send_phase + Duration::from_secs(120),
        max_pause: Duration::from_secs(1),
        no_response_pause: Duration::from_millis(100),
    };
    let target = format!("{}/_mock/callbacks", recipient.url);
    let callback = sink.sink_url();
    let send = |index: u64| {
        sleep_until(started + interval * index as u32);
        let outgoing = Outgoing {
            recipient: "testkit".to_string(),
            entity: "post".to_string(),
            message: format!(r#"{{"url":"{target}","idempotent":true,"n":{index}}}"#),
            callback: Some(callback.clone()),
            idempotency_key: format!("kill9-{index}"),
        };
        send_with_retries(&client, ASYNC_SEND, &outgoing, policy)
    };

    let mut kills = 0u32;
    let mut restart_ms = Vec::new();
    let tickets = std::thread::scope(|scope| -> Result<_> {
        let senders = scope.spawn(|| run_senders(SENDERS, messages, send));
        let mut random = rand::thread_rng();
        while !senders.is_finished() {
            let kill_at = Instant::now() + Duration::from_millis(random.gen_range(kill_after_min_ms..=kill_after_max_ms));
            while Instant::now() < kill_at && !senders.is_finished() {
                std::thread::sleep(Duration::from_millis(50));
            }
            if senders.is_finished() {
                break;
            }
            let restart = Instant::now();
            gateway.kill9();
            kills += 1;
            gateway.spawn()?;
            restart_ms.push(restart.elapsed().as_millis() as f64);
        }
        Ok(senders.join().expect("sender threads do not panic"))
    })?;
    let send_seconds = started.elapsed().as_secs_f64();

    let (rows, drain) = wait_settled(&gateway.database_path, Duration::from_secs(if context.quick { 75 } else { 180 }))?;
    let callback_receipts = callbacks.receipts();
    let delivery_receipts = deliveries.receipts();
    settle_outcome(
        &mut outcome,
        &Evidence { tickets: &tickets, rows: &rows, callbacks: Some(&callback_receipts), deliveries: Some(&delivery_receipts) },
    );

    let accepted = tickets.iter().filter(|ticket| ticket.id.is_some()).count();
    let tally = outcome.tally.clone();
    outcome.check("gateway killed during the sends", kills >= 2, format!("{kills} kills with SIGKILL, each followed by a restart"));
    outcome.check("every send accepted with 202 in the end", accepted == tickets.len(), format!("{accepted} of {} sends", tickets.len()));
    outcome.check(
        "callbacks and recipient requests agree with the ledger",
        tally.mismatched == 0,
        format!("{} disagreements", tally.mismatched),
    );
    outcome.check(
        "sinks read without gaps",
        !callbacks.overflowed() && !deliveries.overflowed(),
        "the mocks keep only their newest 10,000 requests, so the suite reads them every 0.5 s",
    );

    let callback_repeats = repeats(&callback_receipts, |status| (200..300).contains(&status));
    let delivery_repeats = repeats(&delivery_receipts, |_| true);
    let no_responses: u32 = tickets.iter().map(|ticket| ticket.no_responses).sum();
    let replayed = tickets.iter().filter(|ticket| ticket.replayed).count();
    outcome.note(format!(
        "{messages} sends by {SENDERS} threads in {send_seconds:.1} s ({:.0} accepted/s); {kills} kills, restart to ready {:.0} ms median",
        accepted as f64 / send_seconds,
        super::percentile(&restart_ms, 50.0)
    ));
    outcome.note(format!(
        "tries without a response (gateway down): {no_responses}; responses replayed by Idempotency-Key: {replayed}; rejections: {}",
        rejection_summary(&tickets)
    ));
    outcome.note(format!(
        "redelivered: {callback_repeats} repeated callbacks, {delivery_repeats} repeated requests at the recipient; stored but never accepted with a 2xx response: {}",
        tally.unacknowledged
    ));
    outcome.note(format!("ledger settled {:.1} s after the last send", drain.as_secs_f64()));
    Ok(outcome)
}

/// Counts requests beyond the first per message id among those whose sink status passes `counts`.
fn repeats(receipts: &[crate::sink::Receipt], counts: impl Fn(u16) -> bool) -> u64 {
    let mut per_id = std::collections::HashMap::new();
    for receipt in receipts.iter().filter(|receipt| counts(receipt.status)) {
        if let Some(id) = receipt.message_id() {
            *per_id.entry(id).or_insert(0u64) += 1;
        }
    }
    per_id.values().map(|count| count - 1).sum()
}

fn config(recipient_url: &str) -> String {
    format!(
        r#"[worker]
poll_interval_ms = 100
claim_batch = 64
# Short, so messages whose worker was killed are claimed again soon after a restart.
lease_seconds = 5

[callbacks]
timeout_ms = 2000
max_attempts = 20

[callbacks.retry]
initial_backoff_ms = 200
max_backoff_ms = 2000

[limits]
client_rate_per_second = 0
max_queue_depth = 0

[connectors.testkit]
library = "{TESTKIT_LIBRARY}"
required = true
allowed_urls = ["{recipient_url}"]
concurrency = 16
deadline_ms = 3000
http_timeout_ms = 2000
max_attempts = 10

[connectors.testkit.retry]
initial_backoff_ms = 200
max_backoff_ms = 2000
"#
    )
}
