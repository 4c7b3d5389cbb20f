//! Command `clients`: the CPU that an HTTP client spends per request, for the three clients the
//! engine could use for plugin requests and callbacks, against the same AVINFO lookups on
//! `uig-mock`. It measures how much CPU a leaner client than reqwest would save on sync sends
//! and e2e (see docs/benchmarks/gaps.md).
//!
//! The three clients run in turn in this one process, after an untimed warm-up of each, in rounds
//! with the order rotated, each with the same number of concurrent tasks. The CPU figure is this
//! whole process's user and system time per request, so it includes the work common to all three
//! (the tasks, the response check). The differences between the rows are the clients'.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as PooledClient;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::bench::Sizes;
use crate::mock::{vin, Mock, AVINFO_KEY};
use crate::process::Binaries;
use crate::scenarios::is_avinfo_success;

/// The clients compared, in the order of the first round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// reqwest, built as the engine builds its plugin client, with a timeout on each request.
    Reqwest,
    /// hyper-util's pooled client, the one that reqwest runs on.
    Pooled,
    /// hyper's connection API: one connection per task and no pool.
    Connection,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Reqwest, Kind::Pooled, Kind::Connection];

    /// Returns the order of the clients in round `round`: each takes each place once in three rounds.
    fn order(round: usize) -> [Kind; 3] {
        std::array::from_fn(|place| Kind::ALL[(round + place) % Kind::ALL.len()])
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Reqwest => "reqwest, as the engine builds it (per-request timeout, no redirects)",
            Kind::Pooled => "hyper-util pooled client (below reqwest)",
            Kind::Connection => "hyper connection API, one connection per task",
        }
    }
}

/// Rounds of each client: enough to show the spread, few enough for a quick look.
fn rounds(sizes: Sizes) -> usize {
    if sizes.mock_requests < 1_000 {
        1
    } else {
        3
    }
}

/// Requests per client and round: ten times the mock-bound loads of the other scenarios, since
/// nothing here waits on the gateway.
fn requests(sizes: Sizes) -> u64 {
    sizes.mock_requests * 10
}

/// Figures of one client in one round.
struct Figures {
    requests_per_second: f64,
    cpu_ms_per_request: f64,
}

/// Runs the comparison and prints its table.
pub async fn run(binaries: &Binaries, sizes: Sizes, folder: &std::path::Path) -> anyhow::Result<()> {
    let mock = Mock::start(binaries, folder).await?;
    let connections = sizes.connections as u64;
    // Whole requests per task, so that every task sends as many.
    let per_task = (requests(sizes) / connections).max(1);
    println!("clients: {} AVINFO lookups per client and round, {connections} tasks, straight to uig-mock", per_task * connections);

    let next_index = Arc::new(AtomicU64::new(0));
    for kind in Kind::ALL {
        measure(kind, &mock.url, connections, 4, Arc::clone(&next_index)).await?;
    }
    let mut results: Vec<(Kind, Vec<Figures>)> = Kind::ALL.iter().map(|kind| (*kind, Vec::new())).collect();
    for round in 0..rounds(sizes) {
        for kind in Kind::order(round) {
            mock.reset().await?;
            let figures = measure(kind, &mock.url, connections, per_task, Arc::clone(&next_index)).await?;
            println!("  round {}: {}: {:.0} req/s, {:.4} ms CPU per request", round + 1, kind.label(), figures.requests_per_second, figures.cpu_ms_per_request);
            let slot = Kind::ALL.iter().position(|known| *known == kind).expect("every kind is in ALL");
            results[slot].1.push(figures);
        }
    }

    println!("\n| client | req/s (median) | CPU ms per request (median) | CPU ms per request, each round |");
    println!("|---|---:|---:|---|");
    for (kind, figures) in &results {
        let rates: Vec<f64> = figures.iter().map(|figure| figure.requests_per_second).collect();
        let costs: Vec<f64> = figures.iter().map(|figure| figure.cpu_ms_per_request).collect();
        let per_round: Vec<String> = costs.iter().map(|cost| format!("{cost:.4}")).collect();
        println!("| {} | {:.0} | {:.4} | {} |", kind.label(), median(&rates), median(&costs), per_round.join(", "));
    }
    println!("\nCPU is this process's user and system time per request, the work common to the three clients included.");
    Ok(())
}

/// Sends `per_task` lookups on each of `connections` tasks of client `kind` and returns the rate and
/// the process's CPU per request. Every response must be a successful lookup.
async fn measure(kind: Kind, base: &str, connections: u64, per_task: u64, next_index: Arc<AtomicU64>) -> anyhow::Result<Figures> {
    let reqwest_client = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(30)).redirect(reqwest::redirect::Policy::none()).build()?;
    // reqwest and the connection API below set TCP_NODELAY, so this client does too.
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let pooled: PooledClient<_, Full<Bytes>> = PooledClient::builder(TokioExecutor::new()).build(connector);
    let authority = base.trim_start_matches("http://").to_string();

    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let base = base.to_string();
        let authority = authority.clone();
        let next_index = Arc::clone(&next_index);
        let reqwest_client = reqwest_client.clone();
        let pooled = pooled.clone();
        tasks.push(tokio::spawn(async move {
            let path = |index: u64| format!("/api/v1/vehicle?key={AVINFO_KEY}&vin={}", vin(index));
            let url = |index: u64| format!("{base}{}", path(index));
            match kind {
                Kind::Reqwest => {
                    for _ in 0..per_task {
                        let index = next_index.fetch_add(1, Ordering::Relaxed);
                        let response = reqwest_client.get(url(index)).timeout(Duration::from_secs(10)).send().await?;
                        check(response.status().as_u16(), &response.bytes().await?)?;
                    }
                }
                Kind::Pooled => {
                    for _ in 0..per_task {
                        let index = next_index.fetch_add(1, Ordering::Relaxed);
                        let request = hyper::Request::get(url(index)).body(Full::new(Bytes::new()))?;
                        let response = pooled.request(request).await?;
                        let status = response.status().as_u16();
                        check(status, &response.into_body().collect().await?.to_bytes())?;
                    }
                }
                Kind::Connection => {
                    let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
                    stream.set_nodelay(true)?;
                    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                    tokio::spawn(connection);
                    for _ in 0..per_task {
                        let index = next_index.fetch_add(1, Ordering::Relaxed);
                        let request = hyper::Request::get(path(index)).header("host", authority.as_str()).body(Full::new(Bytes::new()))?;
                        sender.ready().await?;
                        let response = sender.send_request(request).await?;
                        let status = response.status().as_u16();
                        check(status, &response.into_body().collect().await?.to_bytes())?;
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    for position in 0..tasks.len() {
        let finished = (&mut tasks[position]).await.context("a client task panicked").and_then(|sent| sent);
        if let Err(error) = finished {
            for rest in &tasks[position + 1..] {
                rest.abort();
            }
            return Err(error.context(format!("client {}", kind.label())));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu_before;
    let sent = (per_task * connections) as f64;
    Ok(Figures { requests_per_second: sent / elapsed, cpu_ms_per_request: cpu * 1000.0 / sent })
}

/// Accepts a 200 response with `"success":1`, as the sync scenario's direct lookups do.
fn check(status: u16, body: &[u8]) -> anyhow::Result<()> {
    if status != 200 || !is_avinfo_success(body) {
        bail!("AVINFO lookup failed with HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)]));
    }
    Ok(())
}

/// User and system CPU time of this process so far, in seconds.
fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes only into the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        length if length % 2 == 1 => sorted[length / 2],
        length => (sorted[length / 2 - 1] + sorted[length / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_takes_each_place_once() {
        let rounds: Vec<[Kind; 3]> = (0..3).map(Kind::order).collect();
        for kind in Kind::ALL {
            for order in &rounds {
                assert!(order.contains(&kind), "round {order:?} runs {kind:?}");
            }
            for place in 0..3 {
                assert!(rounds.iter().any(|order| order[place] == kind), "{kind:?} comes at place {place} in one of {rounds:?}");
            }
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn check_needs_status_and_success() {
        assert!(check(200, br#"{"success":1,"data":{}}"#).is_ok());
        assert!(check(402, br#"{"success":1}"#).is_err());
        assert!(check(200, br#"{"success":0,"error":"no_balance"}"#).is_err());
    }
}
