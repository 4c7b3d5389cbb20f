//! The benchmark scenarios and the steps they share.

pub mod baseline;
pub mod e2e;
pub mod fill;
pub mod intake;
pub mod listing;
pub mod nginx;
pub mod node_red;
pub mod peers;
pub mod sync;

use std::sync::Arc;

use crate::bench::Bench;
use crate::load::{LoadClient, LoadResult, Plan, RequestSource, RequestSpec, ResponseCheck};
use crate::mock::{vin, Mock, AVINFO_BALANCE, AVINFO_KEY};
use crate::report::{LoadRow, BASELINE};

/// Lookups per round of a load that calls the mock's AVINFO API, below its balance.
const MOCK_ROUND: u64 = 10_000_000;

/// First request index of warm-up loads, far from the indexes of measured requests, so the two
/// never share a VIN or a signed request.
pub const WARMUP_INDEX: u64 = 1_000_000_000;

/// Runs the baseline first unless this run already measured it, so every ratio has its reference.
pub async fn ensure_baseline(bench: &mut Bench) -> anyhow::Result<()> {
    if bench.report.load(BASELINE).is_none() {
        baseline::run(bench).await?;
    }
    Ok(())
}

/// Returns a source of direct AVINFO lookups of `GET /api/v1/vehicle`, one VIN per request index.
/// Proxies in front of the mock get the same requests.
pub fn vehicle_lookups() -> RequestSource {
    Arc::new(|index| RequestSpec::get(format!("/api/v1/vehicle?key={AVINFO_KEY}&vin={}", vin(index))))
}

/// Reports whether an AVINFO response body contains `"success":1`.
pub fn is_avinfo_success(body: &[u8]) -> bool {
    body.windows(11).any(|window| window == br#""success":1"#)
}

/// Accepts an AVINFO response only with `"success":1`, so an error relayed with 200 counts as an error.
pub fn avinfo_success() -> ResponseCheck {
    Arc::new(|body| {
        if is_avinfo_success(body) {
            return Ok(());
        }
        Err(format!("AVINFO response without success: {}", String::from_utf8_lossy(&body[..body.len().min(200)])))
    })
}

/// Sends `total` requests that each make the mock charge one AVINFO lookup, after a warm-up of
/// one request per connection.
///
/// The mock responds with 402 `no_balance` once its balance is spent, until `POST /_mock/reset`,
/// so a load longer than [`MOCK_ROUND`] runs in rounds with a reset before each. Only the rounds are timed,
/// and each round ends with fewer requests in flight than connections while the last responses
/// arrive.
pub async fn run_mock_bound(client: &mut LoadClient, mock: &Mock, total: u64, source: RequestSource, check: Option<ResponseCheck>) -> anyhow::Result<LoadResult> {
    const { assert!(MOCK_ROUND < AVINFO_BALANCE) };
    mock.reset().await?;
    let warmup = Plan { first_index: WARMUP_INDEX, ..Plan::requests(client.connections() as u64) };
    client.run(warmup, Arc::clone(&source), check.clone()).await?;

    let mut result: Option<LoadResult> = None;
    let mut sent = 0;
    while sent < total {
        let round = MOCK_ROUND.min(total - sent);
        mock.reset().await?;
        let plan = Plan { first_index: sent, ..Plan::requests(round) };
        let part = client.run(plan, Arc::clone(&source), check.clone()).await?;
        match &mut result {
            Some(result) => result.merge(part),
            None => result = Some(part),
        }
        sent += round;
    }
    result.ok_or_else(|| anyhow::anyhow!("a load that calls the mock needs at least one request"))
}

/// Adds a load's figures to the report and prints them.
pub fn record_load(bench: &mut Bench, id: &str, scenario: &str, label: &str, connections: usize, result: &LoadResult, note: Option<String>) {
    let figures = result.summary();
    println!(
        "  {label}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms, {} requests, {} errors",
        figures.requests_per_second, figures.p50_ms, figures.p99_ms, figures.max_ms, figures.requests, figures.errors
    );
    for sample in &figures.error_samples {
        println!("    error: {sample}");
    }
    // Requests built during the load took CPU from the server under test, so the report notes them.
    let built_note = (result.built_during_load > 0).then(|| format!("{} requests built during the load", result.built_during_load));
    if let Some(built_note) = &built_note {
        println!("    note: {built_note}");
    }
    let note = match (note, built_note) {
        (Some(note), Some(built_note)) => Some(format!("{note}; {built_note}")),
        (note, built_note) => note.or(built_note),
    };
    bench.report.loads.push(LoadRow {
        id: id.to_string(),
        scenario: scenario.to_string(),
        label: label.to_string(),
        connections,
        figures: Some(figures),
        note,
    });
}

/// Adds a load that could not run, with the reason, to the report.
pub fn record_not_measured(bench: &mut Bench, id: &str, scenario: &str, label: &str, connections: usize, reason: &str) {
    println!("  {label}: not measured: {reason}");
    bench.report.loads.push(LoadRow {
        id: id.to_string(),
        scenario: scenario.to_string(),
        label: label.to_string(),
        connections,
        figures: None,
        note: Some(reason.to_string()),
    });
}
