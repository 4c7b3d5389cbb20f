//! Scenario `listing`: `list-new` and `list-all` page latency at two ledger sizes of one client,
//! at the first page, in the middle by anchor id, at a fixed page number, and at the page number
//! in the middle of the listing (which grows with the table).

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

/// Measures every listing variant at both sizes of [`crate::bench::Sizes::listing_rows`].
pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    ensure_baseline(bench).await?;
    println!("listing: list-new and list-all pages");
    let sizes = bench.sizes;
    let mock = bench.mock().await?;
    mock.reset().await?;
    let mut gateway = bench.start_gateway("listing", GatewayOptions { worker: false }).await?;
    send_template(&gateway).await?;
    let page_number = (sizes.listing_rows[0] / PER_PAGE / 2).clamp(1, DEEPEST_PAGE);

    for rows in sizes.listing_rows {
        gateway.stop();
        fill_to(&gateway.database_path, CLIENT_NAME, rows).await?;
        gateway.start().await?;

        // Ids are 1..=rows, because this client's messages are the only ones in the table.
        let middle = (rows / 2).to_string();
        for listing in ["list-new", "list-all"] {
            let variants: [(String, Vec<(&'static str, String)>); 4] = [
                ("first page".to_string(), vec![]),
                ("after the middle id".to_string(), vec![("id", middle.clone())]),
                (format!("page {page_number}"), vec![("page", page_number.to_string())]),
                ("middle page by number".to_string(), vec![("page", middle_page(listing, rows).to_string())]),
            ];
            for (variant, params) in &variants {
                let source = listing_requests(gateway.credentials.clone(), listing, params.clone());
                let mut client = LoadClient::connect(gateway.address, sizes.listing_connections).await?.measure_cpu_of(gateway.process()?.pid());
                client.run(Plan::requests(sizes.listing_connections as u64 * 5), Arc::clone(&source), Some(non_empty_page())).await?;
                let result = client.run(Plan::requests(sizes.listing_requests), source, Some(non_empty_page())).await?;
                let figures = result.summary();
                println!("  {listing} {variant} at {rows} messages: p50 {:.2} ms, p99 {:.2} ms, {} errors", figures.p50_ms, figures.p99_ms, figures.errors);
                for sample in &figures.error_samples {
                    println!("    error: {sample}");
                }
                bench.report.listings.push(ListingRow { listing: listing.to_string(), variant: variant.clone(), rows, connections: sizes.listing_connections, figures });
            }
        }
    }
    gateway.process()?.check_running()?;
    Ok(())
}
