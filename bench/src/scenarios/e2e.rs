//! Scenarios `e2e` and `memory`: async sends with a callback URL into a gateway whose worker is on,
//! timed from the first send to the last callback at the mock's sink, while the gateway's resident
//! memory is sampled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde_json::Value;

use super::intake::async_sends;
use super::{ensure_baseline, record_load};
use crate::bench::Bench;
use crate::gateway::GatewayOptions;
use crate::load::{LoadClient, LoadResult, Plan, Prepared};
use crate::mock::{Mock, AVINFO_BALANCE};
use crate::process::{group_cpu_seconds, resident_bytes};
use crate::report::MemoryRow;

/// Interval of the resident memory samples.
const MEMORY_SAMPLE_INTERVAL: Duration = Duration::from_millis(50);

/// Interval at which the mock's callback count is read.
const CALLBACK_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Callbacks the mock's sink keeps; it drops the oldest beyond this, so a load may not send more.
const SINK_CAPACITY: u64 = 10_000;

/// Slowest delivery rate the load waits for, in messages per second, before it gives up.
const SLOWEST_RATE: u64 = 100;

/// Samples the resident memory of `pid` until `stop` is set; returns the highest sample in bytes.
async fn sample_peak(pid: u32, stop: Arc<AtomicBool>) -> u64 {
    let mut peak = 0;
    while !stop.load(Ordering::Relaxed) {
        if let Ok(bytes) = resident_bytes(pid) {
            peak = peak.max(bytes);
        }
        tokio::time::sleep(MEMORY_SAMPLE_INTERVAL).await;
    }
    peak
}

/// Reads the sink's callbacks; returns how many report `delivered`, and a histogram of the time
/// from the message's `created_at` to the callback's arrival, in microseconds.
async fn delivery_latencies(mock: &Mock) -> anyhow::Result<(u64, Histogram<u64>)> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut delivered = 0;
    for callback in mock.callbacks().await? {
        let body: Value = serde_json::from_str(callback["body"].as_str().unwrap_or_default()).context("callback body is not JSON")?;
        if body["status"] == "delivered" {
            delivered += 1;
        }
        let created = body["created_at"].as_str().and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok());
        let received = callback["received_at"].as_str().and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok());
        if let (Some(created), Some(received)) = (created, received) {
            let micros = (received - created).num_microseconds().unwrap_or(0);
            histogram.saturating_record(u64::try_from(micros).unwrap_or(0).max(1));
        }
    }
    Ok((delivered, histogram))
}

/// Measures idle memory, then sends the end-to-end load and records messages per second from the
/// first send to the last callback, the delivery latencies and the peak memory.
pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    ensure_baseline(bench).await?;
    println!("e2e: async sends with callbacks, worker on; memory of the gateway");
    let sizes = bench.sizes;
    let messages = sizes.e2e_messages;
    if messages > SINK_CAPACITY {
        bail!("the e2e load sends {messages} messages, more than the {SINK_CAPACITY} callbacks the mock's sink keeps");
    }
    let mock = bench.mock().await?;
    let mut gateway = bench.start_gateway("e2e", GatewayOptions { worker: true }).await?;
    let pid = gateway.process()?.pid();

    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = resident_bytes(pid)? as f64 / 1_048_576.0;
    bench.report.memory.push(MemoryRow { id: "gateway-idle".to_string(), process: "uig serve".to_string(), state: "idle, 4 plugins loaded".to_string(), megabytes: idle });

    // Distinct VINs stay below the mock's balance, so every lookup succeeds; the rest are cache hits.
    let vins = messages.min(AVINFO_BALANCE - 200);
    mock.reset().await?;
    let callback = format!("{}/_mock/callbacks", mock.url);
    let source = async_sends(gateway.credentials.clone(), vins, Some(callback));
    let mut client = LoadClient::connect(gateway.address, sizes.connections).await?.measure_cpu_of(pid);
    let prepared = Prepared::new(Plan::requests(messages), source);

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample_peak(pid, Arc::clone(&stop)));
    let cpu_before = group_cpu_seconds(pid);
    let started = Instant::now();
    let sender = tokio::spawn(async move { client.run_prepared(prepared, None).await });

    let timeout = Duration::from_secs(30 + messages / SLOWEST_RATE);
    let mut received = 0;
    while received < messages {
        if started.elapsed() > timeout {
            stop.store(true, Ordering::Relaxed);
            bail!("only {received} of {messages} callbacks arrived within {timeout:?}");
        }
        tokio::time::sleep(CALLBACK_POLL_INTERVAL).await;
        received = mock.callbacks_received().await?;
    }
    let elapsed = started.elapsed();
    let cpu_after = group_cpu_seconds(pid);
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.await? as f64 / 1_048_576.0;
    let sends: LoadResult = sender.await??;
    gateway.process()?.check_running()?;

    record_load(bench, "e2e-intake", "e2e", "signed async send with callback URL, worker on", sizes.connections, &sends, None);
    let (delivered, latency) = delivery_latencies(&mock).await?;
    let balance = mock.balance().await?;
    let note = (balance == 0).then(|| "the mock's AVINFO balance ran out, so some lookups failed".to_string());
    let server_cpu_seconds = cpu_before.zip(cpu_after).map(|(before, after)| after - before);
    let end_to_end = LoadResult { succeeded: delivered, errors: messages - delivered.min(messages), elapsed, latency, error_samples: Vec::new(), server_cpu_seconds, built_during_load: sends.built_during_load, waited: 0 };
    record_load(bench, "e2e", "e2e", "first send to last callback; latency from stored to callback received", sizes.connections, &end_to_end, note);

    bench.report.memory.push(MemoryRow { id: "gateway-e2e-peak".to_string(), process: "uig serve".to_string(), state: "peak during e2e (50 ms samples)".to_string(), megabytes: peak });
    println!("  memory: idle {idle:.1} MB, peak during e2e {peak:.1} MB");
    Ok(())
}
