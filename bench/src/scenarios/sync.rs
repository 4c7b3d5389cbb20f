//! Scenario `sync`: signed sync sends through the AVINFO plugin, next to the same lookups sent
//! straight to the mock. Then sync sends that the plugin serves from its cache.

use std::sync::Arc;

use super::{avinfo_success, ensure_baseline, record_load, run_mock_bound, vehicle_lookups, WARMUP_INDEX};
use crate::bench::Bench;
use crate::gateway::GatewayOptions;
use crate::load::{LoadClient, Plan, RequestSource, RequestSpec, ResponseCheck};
use crate::mock::vin;
use crate::sign::{Credentials, LateSigned};

/// Path of the sync send.
const SYNC_SEND: &str = "/sync/message/send";

/// Index of the one VIN of the cache-hit load, outside every range of distinct VINs.
const CACHED_VIN: u64 = 7_777_777_777;

/// Returns a source of signed sync sends to AVINFO. `vin_of` picks the VIN of request `index`, and
/// the index also goes into the message (`ref`), so no two requests are replays of each other.
fn sync_sends(credentials: Credentials, vin_of: fn(u64) -> u64) -> RequestSource {
    Arc::new(move |index| {
        let message = format!(r#"{{"vin":"{}","ref":{index}}}"#, vin(vin_of(index)));
        let params = [("recipient", "avinfo"), ("entity", "vehicle"), ("message", message.as_str())];
        RequestSpec::post_late_signed(SYNC_SEND, LateSigned::new(&credentials, "POST", SYNC_SEND, &params))
    })
}

/// Accepts a sync response only when the message was delivered, because a failed plugin call
/// still gets 200 with `"status":"failed"`.
fn delivered() -> ResponseCheck {
    Arc::new(|body| {
        if body.windows(20).any(|window| window == br#""status":"delivered""#) {
            return Ok(());
        }
        Err(format!("sync send not delivered: {}", String::from_utf8_lossy(&body[..body.len().min(300)])))
    })
}

/// Measures the direct lookups, the sync sends with cache misses, and the sync sends with cache hits.
pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    ensure_baseline(bench).await?;
    println!("sync: AVINFO lookups through the plugin and straight to the mock");
    let sizes = bench.sizes;
    let mock = bench.mock().await?;

    let mut direct = LoadClient::connect(mock.address, sizes.connections).await?.measure_cpu_of(mock.pid());
    let result = run_mock_bound(&mut direct, &mock, sizes.mock_requests, vehicle_lookups(), Some(avinfo_success())).await?;
    record_load(bench, "sync-direct", "sync", "GET /api/v1/vehicle straight to uig-mock, distinct VINs", sizes.connections, &result, None);
    drop(direct);

    let mut gateway = bench.start_gateway("sync", GatewayOptions { worker: false }).await?;
    let mut client = LoadClient::connect(gateway.address, sizes.connections).await?.measure_cpu_of(gateway.process()?.pid());
    let misses = sync_sends(gateway.credentials.clone(), |index| index);
    let result = run_mock_bound(&mut client, &mock, sizes.mock_requests, misses, Some(delivered())).await?;
    record_load(bench, "sync-plugin", "sync", "signed sync send through the AVINFO plugin, distinct VINs (cache misses)", sizes.connections, &result, None);

    let hits = sync_sends(gateway.credentials.clone(), |_| CACHED_VIN);
    let warmup = Plan { first_index: WARMUP_INDEX, ..Plan::seconds(sizes.warmup) };
    client.run(warmup, Arc::clone(&hits), Some(delivered())).await?;
    let result = client.run(Plan::seconds(sizes.load_duration), hits, Some(delivered())).await?;
    record_load(bench, "sync-cache-hit", "sync", "signed sync send through the AVINFO plugin, one VIN (cache hits)", sizes.connections, &result, None);
    Ok(())
}
