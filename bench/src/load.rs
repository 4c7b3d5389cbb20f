//! The load generator: keep-alive HTTP/1.1 connections on loopback, a bounded number of requests
//! or seconds, closed-loop or at a fixed rate, with every latency recorded in a histogram.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::process::group_cpu_seconds;
use crate::sign::{timestamp_now, LateSigned};

/// Highest latency the histograms record, in microseconds (one minute); longer ones count as this.
const MAX_LATENCY_MICROS: u64 = 60_000_000;

/// Error messages kept per load, so a failing run shows its causes without flooding the output.
const ERROR_SAMPLES: usize = 5;

/// Requests built in advance per second of a closed-loop load that is bounded by time alone, set
/// above the rate of the fastest server measured (the baseline, 87,813 to 115,294 per second in the
/// full runs of docs/benchmarks/gaps.md). A load that outruns them builds the rest during the
/// load, and its row in the report gives how many.
const PREBUILT_PER_SECOND: f64 = 150_000.0;

/// One request to send. Cloning it copies no path or body bytes.
#[derive(Clone)]
pub struct RequestSpec {
    pub method: Method,
    /// Path with the query string.
    pub uri: Uri,
    /// Form-encoded body, empty for none.
    pub form_body: Bytes,
    /// A form body to sign with the time of sending, instead of `form_body`.
    pub late_signed: Option<Arc<LateSigned>>,
}

impl RequestSpec {
    /// Builds a GET of `path_and_query`.
    pub fn get(path_and_query: String) -> RequestSpec {
        RequestSpec { method: Method::GET, uri: parse_uri(path_and_query), form_body: Bytes::new(), late_signed: None }
    }

    /// Builds a POST of a form-encoded body that is signed when the request is sent.
    pub fn post_late_signed(path: &str, form: LateSigned) -> RequestSpec {
        RequestSpec { method: Method::POST, uri: parse_uri(path.to_string()), form_body: Bytes::new(), late_signed: Some(Arc::new(form)) }
    }
}

/// Parses a path and query that the benchmark itself wrote. An invalid one is a bug in the benchmark.
fn parse_uri(path_and_query: String) -> Uri {
    Uri::try_from(path_and_query).expect("the benchmark builds valid request paths")
}

/// Requests of one load, built before its clock starts, so that the load generator's work of
/// building them (encoding and signing above all) takes less CPU from the server under test on the
/// shared cores. Sends are signed at the time of sending ([`LateSigned`]), so the server receives the
/// timestamps a client would send. During the load, the HMAC only reads the timestamp and the end
/// of the string to sign, and finishes.
pub struct Prepared {
    plan: Plan,
    source: RequestSource,
    requests: Vec<RequestSpec>,
}

impl Prepared {
    /// Builds the requests of `plan` from `source`: all of them for a load bounded by a count or
    /// paced at a fixed rate, [`PREBUILT_PER_SECOND`] per second for a closed-loop load bounded by
    /// time alone.
    pub fn new(plan: Plan, source: RequestSource) -> Prepared {
        let by_time = plan.duration.map(|duration| {
            let rate = match plan.pacing {
                Pacing::ClosedLoop => PREBUILT_PER_SECOND,
                Pacing::FixedRate(rate) => rate,
            };
            (duration.as_secs_f64() * rate).ceil() as u64 + 1
        });
        let count = match (plan.requests, by_time) {
            (Some(requests), Some(by_time)) => requests.min(by_time),
            (Some(count), None) | (None, Some(count)) => count,
            (None, None) => 0,
        };
        let requests = (0..count).map(|offset| source(plan.first_index + offset)).collect();
        Prepared { plan, source, requests }
    }

    /// Returns request `offset` of the load and whether it had to be built now.
    fn request(&self, offset: u64) -> (RequestSpec, bool) {
        match usize::try_from(offset).ok().and_then(|offset| self.requests.get(offset)) {
            Some(request) => (request.clone(), false),
            None => ((self.source)(self.plan.first_index + offset), true),
        }
    }
}

/// Builds request number `index` of a load.
pub type RequestSource = Arc<dyn Fn(u64) -> RequestSpec + Send + Sync>;

/// Checks a 2xx response body; returns why it does not count as a success.
pub type ResponseCheck = Arc<dyn Fn(&[u8]) -> Result<(), String> + Send + Sync>;

/// Start times of a load's requests.
#[derive(Clone, Copy, Debug)]
pub enum Pacing {
    /// Each connection sends its next request as soon as it has read the previous response.
    ClosedLoop,
    /// Request `i` is due at `start + i / rate`, with `rate` in requests per second. Latency counts
    /// from the due time, so a stalled server also delays the requests queued behind it.
    FixedRate(f64),
}

impl Pacing {
    /// Returns when request `offset` of a load that started at `start` is due, and whether the
    /// sender must sleep until then (`now` is the current time).
    ///
    /// A closed loop never sleeps, and a fixed-rate request sleeps only when it is ahead of its
    /// due time. tokio's timer rounds every deadline up to its next millisecond tick, so even a
    /// sleep until `now` lasts about 1 ms.
    pub fn schedule(self, start: Instant, offset: u64, now: Instant) -> (Instant, bool) {
        match self {
            Pacing::ClosedLoop => (now, false),
            Pacing::FixedRate(rate) => {
                let due = start + Duration::from_secs_f64(offset as f64 / rate);
                (due, due > now)
            }
        }
    }
}

/// Bounds and pacing of one load. A load stops at whichever bound it meets first.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Requests to send; `None` for no count bound.
    pub requests: Option<u64>,
    /// Time after which no new request starts; `None` for no time bound.
    pub duration: Option<Duration>,
    pub pacing: Pacing,
    /// Index of the first request passed to the [`RequestSource`].
    pub first_index: u64,
}

impl Plan {
    /// Builds a closed-loop load of `requests` requests.
    pub fn requests(requests: u64) -> Plan {
        Plan { requests: Some(requests), duration: None, pacing: Pacing::ClosedLoop, first_index: 0 }
    }

    /// Builds a closed-loop load that runs for `duration`.
    pub fn seconds(duration: Duration) -> Plan {
        Plan { requests: None, duration: Some(duration), pacing: Pacing::ClosedLoop, first_index: 0 }
    }
}

/// Outcome of a load: counts, wall time and the latency histogram in microseconds.
#[derive(Clone, Debug)]
pub struct LoadResult {
    /// Requests with a 2xx response that passed the response check.
    pub succeeded: u64,
    /// Requests that failed: non-2xx, a failed check, or a connection error.
    pub errors: u64,
    /// Time from the first request to the last response, summed over merged loads.
    pub elapsed: Duration,
    /// Latency of every request, successful or not, in microseconds.
    pub latency: Histogram<u64>,
    /// The first few error messages.
    pub error_samples: Vec<String>,
    /// CPU time that the server under test used during the load, in seconds, when measured.
    pub server_cpu_seconds: Option<f64>,
    /// Requests built during the load because the load outran the ones built before it.
    pub built_during_load: u64,
    /// Requests that slept until their due time: fixed-rate requests ahead of it, never those of
    /// a closed loop.
    pub waited: u64,
}

/// Figures of a load, as the report shows them.
#[derive(Clone, Debug, Serialize)]
pub struct LoadSummary {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Server CPU time per request in milliseconds, when measured. Unlike req/s, it hardly depends
    /// on what else runs on the machine.
    pub server_cpu_ms_per_request: Option<f64>,
    pub error_samples: Vec<String>,
}

impl LoadResult {
    fn empty() -> LoadResult {
        LoadResult {
            succeeded: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            latency: new_histogram(),
            error_samples: Vec::new(),
            server_cpu_seconds: None,
            built_during_load: 0,
            waited: 0,
        }
    }

    /// Adds `other`, a later load of the same measurement: counts, time and histograms add up.
    pub fn merge(&mut self, other: LoadResult) {
        self.succeeded += other.succeeded;
        self.errors += other.errors;
        self.built_during_load += other.built_during_load;
        self.waited += other.waited;
        self.elapsed += other.elapsed;
        self.latency.add(&other.latency).expect("histograms share their bounds");
        self.server_cpu_seconds = match (self.server_cpu_seconds, other.server_cpu_seconds) {
            (None, None) => None,
            (mine, theirs) => Some(mine.unwrap_or(0.0) + theirs.unwrap_or(0.0)),
        };
        for sample in other.error_samples {
            if self.error_samples.len() < ERROR_SAMPLES {
                self.error_samples.push(sample);
            }
        }
    }

    /// Successful requests per second of wall time.
    pub fn requests_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds == 0.0 {
            return 0.0;
        }
        self.succeeded as f64 / seconds
    }

    /// Returns the summary figures; latencies in milliseconds.
    pub fn summary(&self) -> LoadSummary {
        let millis = |micros: u64| micros as f64 / 1000.0;
        let requests = self.succeeded + self.errors;
        LoadSummary {
            requests,
            errors: self.errors,
            seconds: self.elapsed.as_secs_f64(),
            requests_per_second: self.requests_per_second(),
            p50_ms: millis(self.latency.value_at_quantile(0.50)),
            p99_ms: millis(self.latency.value_at_quantile(0.99)),
            max_ms: millis(self.latency.max()),
            server_cpu_ms_per_request: self.server_cpu_seconds.filter(|_| requests > 0).map(|seconds| seconds * 1000.0 / requests as f64),
            error_samples: self.error_samples.clone(),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3).expect("valid histogram bounds")
}

/// Keep-alive connections to one server, reused by successive loads.
pub struct LoadClient {
    address: SocketAddr,
    host: String,
    senders: Vec<SendRequest<Full<Bytes>>>,
    /// Process group of the server under test, whose CPU time each load measures.
    server_group: Option<u32>,
}

async fn connect(address: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    if !address.ip().is_loopback() {
        bail!("refusing to load {address}: the benchmark sends traffic to loopback addresses only");
    }
    let stream = TcpStream::connect(address).await.with_context(|| format!("failed to connect to {address}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // The connection ends when the sender is dropped or the server closes it. A closed
        // connection fails the next request, which counts as an error.
        let _ = connection.await;
    });
    Ok(sender)
}

impl LoadClient {
    /// Opens `connections` connections to `address`, which must be a loopback address.
    pub async fn connect(address: SocketAddr, connections: usize) -> anyhow::Result<LoadClient> {
        let mut senders = Vec::with_capacity(connections);
        for _ in 0..connections {
            senders.push(connect(address).await?);
        }
        Ok(LoadClient { address, host: address.to_string(), senders, server_group: None })
    }

    /// Measures the CPU time of process group `group` (a child started by the benchmark) during
    /// each load.
    pub fn measure_cpu_of(mut self, group: u32) -> LoadClient {
        self.server_group = Some(group);
        self
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.senders.len()
    }

    /// Builds the requests of one load, then runs it over all connections and returns its result.
    /// Connections that break are reopened and the failed request counts as an error.
    pub async fn run(&mut self, plan: Plan, source: RequestSource, check: Option<ResponseCheck>) -> anyhow::Result<LoadResult> {
        let prepared = tokio::task::spawn_blocking(move || Prepared::new(plan, source)).await.context("building the requests panicked")?;
        self.run_prepared(prepared, check).await
    }

    /// Runs a load whose requests were built by [`Prepared::new`], like [`LoadClient::run`].
    pub async fn run_prepared(&mut self, prepared: Prepared, check: Option<ResponseCheck>) -> anyhow::Result<LoadResult> {
        let plan = prepared.plan;
        if plan.requests.is_none() && plan.duration.is_none() {
            bail!("a load needs a request count or a duration");
        }

        let next_index = Arc::new(AtomicU64::new(0));
        let cpu_before = self.server_group.and_then(group_cpu_seconds);
        let start = Instant::now();
        let context = Arc::new(Worker { address: self.address, host: self.host.clone(), plan, prepared, check, next_index, start });

        let mut tasks = Vec::new();
        for sender in self.senders.drain(..) {
            let context = Arc::clone(&context);
            tasks.push(tokio::spawn(async move { context.drive(sender).await }));
        }

        let mut result = LoadResult::empty();
        let mut last_response = start;
        for task in tasks {
            let (sender, part, finished_at) = task.await.context("load task panicked")?;
            self.senders.push(sender);
            last_response = last_response.max(finished_at);
            result.merge(part);
        }
        result.elapsed = last_response - start;
        let cpu_after = self.server_group.and_then(group_cpu_seconds);
        result.server_cpu_seconds = cpu_before.zip(cpu_after).map(|(before, after)| after - before);
        Ok(result)
    }
}

/// State shared by the connection tasks of one load.
struct Worker {
    address: SocketAddr,
    host: String,
    plan: Plan,
    prepared: Prepared,
    check: Option<ResponseCheck>,
    next_index: Arc<AtomicU64>,
    start: Instant,
}

impl Worker {
    /// Sends requests on one connection until the plan's bounds are met. Returns the connection,
    /// its share of the result and the time of its last response.
    async fn drive(&self, mut sender: SendRequest<Full<Bytes>>) -> (SendRequest<Full<Bytes>>, LoadResult, Instant) {
        let mut result = LoadResult::empty();
        let mut last_response = self.start;
        let deadline = self.plan.duration.map(|duration| self.start + duration);

        loop {
            let offset = self.next_index.fetch_add(1, Ordering::Relaxed);
            if self.plan.requests.is_some_and(|requests| offset >= requests) {
                break;
            }
            let now = Instant::now();
            let (due, sleep) = self.plan.pacing.schedule(self.start, offset, now);
            if deadline.is_some_and(|deadline| due >= deadline || now >= deadline) {
                break;
            }
            if sleep {
                result.waited += 1;
                tokio::time::sleep_until(due).await;
            }

            let (spec, built_now) = self.prepared.request(offset);
            result.built_during_load += u64::from(built_now);
            let outcome = self.send(&mut sender, spec).await;
            let responded = Instant::now();
            last_response = responded;
            let micros = u64::try_from((responded - due).as_micros()).unwrap_or(u64::MAX).clamp(1, MAX_LATENCY_MICROS);
            result.latency.record(micros).expect("value within the histogram bounds");

            match outcome {
                Ok(()) => result.succeeded += 1,
                Err(error) => {
                    result.errors += 1;
                    if result.error_samples.len() < ERROR_SAMPLES {
                        result.error_samples.push(error);
                    }
                    if sender.is_closed() {
                        match connect(self.address).await {
                            Ok(reopened) => sender = reopened,
                            Err(error) => {
                                result.error_samples.push(format!("reconnect failed: {error:#}"));
                                break;
                            }
                        }
                    }
                }
            }
        }
        (sender, result, last_response)
    }

    /// Sends one request and reads the whole response. Returns why the request failed.
    async fn send(&self, sender: &mut SendRequest<Full<Bytes>>, spec: RequestSpec) -> Result<(), String> {
        let body = match &spec.late_signed {
            Some(form) => Bytes::from(form.finish(&timestamp_now())),
            None => spec.form_body,
        };
        let mut builder = Request::builder().method(spec.method).uri(spec.uri).header(hyper::header::HOST, &self.host);
        if !body.is_empty() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let request = builder.body(Full::new(body)).map_err(|error| format!("invalid request: {error}"))?;

        sender.ready().await.map_err(|error| format!("connection failed: {error}"))?;
        let response = sender.send_request(request).await.map_err(|error| format!("request failed: {error}"))?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|error| format!("reading the response failed: {error}"))?.to_bytes();

        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(format!("HTTP {status}: {text}"));
        }
        match &self.check {
            Some(check) => check(&body),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns a source whose requests carry their index in the path.
    fn indexed() -> RequestSource {
        Arc::new(|index| RequestSpec::get(format!("/{index}")))
    }

    fn path(request: &RequestSpec) -> &str {
        request.uri.path()
    }

    #[test]
    fn only_requests_ahead_of_their_rate_wait() {
        let start = Instant::now();
        let later = start + Duration::from_millis(50);
        assert_eq!(Pacing::ClosedLoop.schedule(start, 7, later), (later, false), "a closed loop sends at once");

        let paced = Pacing::FixedRate(1_000.0);
        let ahead = start + Duration::from_millis(100);
        assert_eq!(paced.schedule(start, 100, later), (ahead, true), "request 100 is due at 100 ms");
        let behind = start + Duration::from_millis(20);
        assert_eq!(paced.schedule(start, 20, later), (behind, false), "a late request goes at once and keeps its due time");
        assert_eq!(paced.schedule(start, 50, later), (later, false), "a request due now goes at once");
    }

    /// Connects to the in-process baseline server on `address` once it listens.
    async fn connect_when_listening(address: SocketAddr) -> LoadClient {
        for _ in 0..100 {
            if let Ok(client) = LoadClient::connect(address, 1).await {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the baseline server on {address} did not listen within 5 s");
    }

    #[tokio::test]
    async fn closed_loop_never_sleeps() {
        let address: SocketAddr = format!("127.0.0.1:{}", crate::process::free_port().unwrap()).parse().unwrap();
        tokio::spawn(crate::baseline::serve(address));
        let mut client = connect_when_listening(address).await;
        let source: RequestSource = Arc::new(|_| RequestSpec::get("/".to_string()));

        let closed = client.run(Plan::requests(200), Arc::clone(&source), None).await.unwrap();
        assert_eq!(closed.succeeded, 200);
        assert_eq!(closed.waited, 0, "no closed-loop request sleeps");

        // 2,000 per second spaces the requests 0.5 ms apart, more than a loopback request takes.
        let paced = Plan { pacing: Pacing::FixedRate(2_000.0), ..Plan::requests(100) };
        let paced = client.run(paced, source, None).await.unwrap();
        assert_eq!(paced.succeeded, 100);
        assert!(paced.waited > 0, "fixed-rate requests ahead of their due time sleep");
    }

    #[test]
    fn prepared_count_follows_plan() {
        let by_count = Prepared::new(Plan { first_index: 10, ..Plan::requests(3) }, indexed());
        assert_eq!(by_count.requests.iter().map(path).collect::<Vec<_>>(), ["/10", "/11", "/12"]);

        let by_time = Prepared::new(Plan::seconds(Duration::from_millis(100)), indexed());
        assert_eq!(by_time.requests.len(), 15_001, "100 ms at 150,000 per second, plus one");

        let paced = Plan { pacing: Pacing::FixedRate(200.0), ..Plan::seconds(Duration::from_secs(2)) };
        assert_eq!(Prepared::new(paced, indexed()).requests.len(), 401);

        let both = Plan { requests: Some(7), ..Plan::seconds(Duration::from_secs(1)) };
        assert_eq!(Prepared::new(both, indexed()).requests.len(), 7, "the smaller bound wins");
    }

    #[test]
    fn requests_past_prepared_are_built_on_demand() {
        let prepared = Prepared::new(Plan { first_index: 100, ..Plan::requests(2) }, indexed());
        let (first, built_now) = prepared.request(1);
        assert_eq!(path(&first), "/101");
        assert!(!built_now);
        let (late, built_now) = prepared.request(5);
        assert_eq!(path(&late), "/105");
        assert!(built_now);
    }

    #[test]
    fn merge_adds_counts_and_time() {
        let mut first = LoadResult::empty();
        first.succeeded = 10;
        first.elapsed = Duration::from_secs(1);
        first.latency.record(1000).unwrap();
        let mut second = LoadResult::empty();
        second.succeeded = 30;
        second.errors = 2;
        second.elapsed = Duration::from_secs(1);
        second.latency.record(3000).unwrap();

        first.merge(second);

        assert_eq!(first.succeeded, 40);
        assert_eq!(first.errors, 2);
        assert_eq!(first.requests_per_second(), 20.0);
        assert_eq!(first.latency.len(), 2);
        // The histogram keeps 3 significant digits, so 3 ms reads back within 0.1%.
        assert!((first.summary().max_ms - 3.0).abs() <= 0.003, "max {}", first.summary().max_ms);
    }
}
