//! Scenario `intake`: signed async sends into a gateway whose worker is off, so that the figures
//! cover the API and the durable insert alone. Then the same sends at half the rate reached.

use std::sync::Arc;

use super::{ensure_baseline, record_load, WARMUP_INDEX};
use crate::bench::Bench;
use crate::gateway::GatewayOptions;
use crate::load::{LoadClient, Pacing, Plan, RequestSource, RequestSpec};
use crate::mock::vin;
use crate::sign::{Credentials, LateSigned};

/// Path of the async send.
pub const ASYNC_SEND: &str = "/async/message/send";

/// Distinct VINs that the intake messages cycle through.
const INTAKE_VINS: u64 = 1_000;

/// Returns a source of signed form-encoded async sends to AVINFO. Each request carries its index in
/// the message (`ref`, which the connector ignores), so no two requests are replays of each other.
/// With `callback`, every message names that callback URL.
pub fn async_sends(credentials: Credentials, vins: u64, callback: Option<String>) -> RequestSource {
    Arc::new(move |index| {
        let message = format!(r#"{{"vin":"{}","ref":{index}}}"#, vin(index % vins));
        let mut params = vec![("recipient", "avinfo"), ("entity", "vehicle"), ("message", message.as_str())];
        if let Some(callback) = &callback {
            params.push(("callback", callback));
        }
        RequestSpec::post_late_signed(ASYNC_SEND, LateSigned::new(&credentials, "POST", ASYNC_SEND, &params))
    })
}

/// Measures closed-loop intake, then a fixed-rate load at half the rate reached.
pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    ensure_baseline(bench).await?;
    println!("intake: signed async sends, worker off");
    let sizes = bench.sizes;
    let mut gateway = bench.start_gateway("intake", GatewayOptions { worker: false }).await?;
    let source = async_sends(gateway.credentials.clone(), INTAKE_VINS, None);
    let mut client = LoadClient::connect(gateway.address, sizes.connections).await?.measure_cpu_of(gateway.process()?.pid());

    let warmup = Plan { first_index: WARMUP_INDEX, ..Plan::seconds(sizes.warmup) };
    client.run(warmup, Arc::clone(&source), None).await?;
    let full = client.run(Plan::seconds(sizes.load_duration), Arc::clone(&source), None).await?;
    record_load(bench, "intake", "intake", "signed async send, durable insert", sizes.connections, &full, None);

    let half_rate = full.requests_per_second() / 2.0;
    if half_rate < 1.0 {
        anyhow::bail!("intake reached {:.1} req/s, too little for a load at half that rate", full.requests_per_second());
    }
    let paced = Plan {
        duration: Some(sizes.load_duration),
        pacing: Pacing::FixedRate(half_rate),
        first_index: 2 * WARMUP_INDEX,
        ..Plan::seconds(sizes.load_duration)
    };
    let half = client.run(paced, source, None).await?;
    let label = format!("signed async send at half that rate ({half_rate:.0} req/s)");
    record_load(bench, "intake-half-rate", "intake", &label, sizes.connections, &half, None);
    Ok(())
}
