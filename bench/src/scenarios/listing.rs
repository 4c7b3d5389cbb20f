//! Scenario `listing`: `list-new` and `list-all` page latency at two ledger sizes of one client,
//! at the first page, in the middle by anchor id, at a fixed page number, and at the page number
//! in the middle of the listing (which grows with the table). Two gateways run side by side, one
//! per ledger size, and each variant is read in rounds that alternate between them.

use std::sync::Arc;

use super::fill::fill_to;
use super::{ensure_baseline, WARMUP_INDEX};
use crate::bench::Bench;
use crate::gateway::{Gateway, GatewayOptions, CLIENT_NAME};
use crate::load::{LoadClient, Plan, RequestSource, RequestSpec, ResponseCheck};
use crate::mock::vin;
use crate::report::ListingRow;
use crate::sign::{signed_form, Credentials};

/// Page size of every listing request.
pub const PER_PAGE: u64 = 100;

/// Highest page number that the page-number variant reads.
const DEEPEST_PAGE: u64 = 50;

/// Returns the page number in the middle of `listing` when the client has `rows` messages. Two thirds
/// of them are unread (see [`fill_to`]), and list-all has them all.
pub fn middle_page(listing: &str, rows: u64) -> u64 {
    let listed = if listing == "list-new" { rows * 2 / 3 } else { rows };
    (listed / PER_PAGE / 2).max(1)
}

/// Returns a source of signed listing requests; every request is the same page.
fn listing_requests(credentials: Credentials, listing: &'static str, params: Vec<(&'static str, String)>) -> RequestSource {
    let path = format!("/sync/message/{listing}");
    Arc::new(move |_| {
        let mut all: Vec<(&str, &str)> = vec![("per_page", "100")];
        all.extend(params.iter().map(|(name, value)| (*name, value.as_str())));
        RequestSpec::get(format!("{path}?{}", signed_form(&credentials, "GET", &path, &all)))
    })
}

/// Accepts a listing response only with at least one message on the page.
fn non_empty_page() -> ResponseCheck {
    Arc::new(|body| {
        if body.windows(9).any(|window| window == br#""data":[{"#) {
            return Ok(());
        }
        Err(format!("empty page: {}", String::from_utf8_lossy(&body[..body.len().min(300)])))
    })
}

/// Stores one real message through a sync send, the template that the fill copies.
async fn send_template(gateway: &Gateway) -> anyhow::Result<()> {
    let path = "/sync/message/send";
    let message = format!(r#"{{"vin":"{}","ref":{WARMUP_INDEX}}}"#, vin(WARMUP_INDEX));
    let form = signed_form(&gateway.credentials, "POST", path, &[("recipient", "avinfo"), ("entity", "vehicle"), ("message", &message)]);
    let response = reqwest::Client::new()
        .post(format!("{}{path}", gateway.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() || !body.contains(r#""status":"delivered""#) {
        anyhow::bail!("the template sync send failed with {status}: {body}");
    }
    Ok(())
}

/// Each variant is read in this many rounds, alternating between the two ledger sizes, so that
/// both sizes meet the same moments of the machine's noise. Their p99s are compared.
const ROUNDS: u64 = 6;

/// Returns the requests of round `round` of [`ROUNDS`], which together make `requests`.
fn round_share(requests: u64, round: u64) -> u64 {
    requests * (round + 1) / ROUNDS - requests * round / ROUNDS
}

/// Returns the order in which round `round` reads the two ledger sizes: smaller first in even
/// rounds, larger first in odd ones.
fn round_order(round: u64) -> [usize; 2] {
    if round % 2 == 0 {
        [0, 1]
    } else {
        [1, 0]
    }
}

/// Returns the page variants of `listing` for a client with `rows` messages, named as the report
/// shows them. Ids are 1..=rows, because this client's messages are the only ones in the table.
fn variants(listing: &str, rows: u64, page_number: u64) -> [(String, Vec<(&'static str, String)>); 4] {
    [
        ("first page".to_string(), vec![]),
        ("after the middle id".to_string(), vec![("id", (rows / 2).to_string())]),
        (format!("page {page_number}"), vec![("page", page_number.to_string())]),
        ("middle page by number".to_string(), vec![("page", middle_page(listing, rows).to_string())]),
    ]
}

/// Measures every listing variant at both sizes of [`crate::bench::Sizes::listing_rows`], on two
/// gateways that run side by side, each with a ledger of one size.
pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    ensure_baseline(bench).await?;
    println!("listing: list-new and list-all pages");
    let sizes = bench.sizes;
    anyhow::ensure!(sizes.listing_requests > 0, "the listing scenario needs at least one request per variant");
    let mock = bench.mock().await?;
    mock.reset().await?;
    let mut gateways = Vec::new();
    for rows in sizes.listing_rows {
        let mut gateway = bench.start_gateway(&format!("listing-{rows}"), GatewayOptions { worker: false }).await?;
        send_template(&gateway).await?;
        gateway.stop();
        fill_to(&gateway.database_path, CLIENT_NAME, rows).await?;
        gateway.start().await?;
        gateways.push(gateway);
    }
    let page_number = (sizes.listing_rows[0] / PER_PAGE / 2).clamp(1, DEEPEST_PAGE);

    let mut measured: [Vec<ListingRow>; 2] = [Vec::new(), Vec::new()];
    for listing in ["list-new", "list-all"] {
        for variant in 0..4 {
            let mut loads = Vec::new();
            for (gateway, rows) in gateways.iter_mut().zip(sizes.listing_rows) {
                let (name, params) = variants(listing, rows, page_number)[variant].clone();
                let source = listing_requests(gateway.credentials.clone(), listing, params);
                let mut client = LoadClient::connect(gateway.address, sizes.listing_connections).await?.measure_cpu_of(gateway.process()?.pid());
                client.run(Plan::requests(sizes.listing_connections as u64 * 5), Arc::clone(&source), Some(non_empty_page())).await?;
                loads.push((name, source, client, None::<crate::load::LoadResult>));
            }
            for round in 0..ROUNDS {
                for size in round_order(round) {
                    let share = round_share(sizes.listing_requests, round);
                    if share == 0 {
                        continue;
                    }
                    let (_, source, client, total) = &mut loads[size];
                    let result = client.run(Plan::requests(share), Arc::clone(source), Some(non_empty_page())).await?;
                    match total {
                        Some(total) => total.merge(result),
                        None => *total = Some(result),
                    }
                }
            }
            for (size, (variant, _, _, total)) in loads.into_iter().enumerate() {
                let rows = sizes.listing_rows[size];
                let figures = total.expect("every round reads both sizes").summary();
                println!("  {listing} {variant} at {rows} messages: p50 {:.2} ms, p99 {:.2} ms, {} errors", figures.p50_ms, figures.p99_ms, figures.errors);
                for sample in &figures.error_samples {
                    println!("    error: {sample}");
                }
                measured[size].push(ListingRow { listing: listing.to_string(), variant, rows, connections: sizes.listing_connections, figures });
            }
        }
    }
    for gateway in &mut gateways {
        gateway.process()?.check_running()?;
    }
    let [smaller, larger] = measured;
    bench.report.listings.extend(smaller.into_iter().chain(larger));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_share_out_every_request() {
        for requests in [1, 5, 6, 40, 500, 6_000, 6_001] {
            let shares: Vec<u64> = (0..ROUNDS).map(|round| round_share(requests, round)).collect();
            assert_eq!(shares.iter().sum::<u64>(), requests, "shares of {requests}: {shares:?}");
            assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1, "uneven shares of {requests}: {shares:?}");
        }
    }

    #[test]
    fn rounds_alternate_which_size_goes_first() {
        let firsts: Vec<usize> = (0..ROUNDS).map(|round| round_order(round)[0]).collect();
        assert_eq!(firsts, [0, 1, 0, 1, 0, 1]);
        assert!((0..ROUNDS).all(|round| round_order(round).contains(&0) && round_order(round).contains(&1)));
    }
}
