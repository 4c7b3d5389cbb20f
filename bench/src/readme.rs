//! Writes a run's outputs: the benchmark page README.md, results.json and results.svg.

use std::path::Path;

use anyhow::Context;

use crate::bench::Sizes;
use crate::gateway::{AVINFO_CONCURRENCY, WORKER_CONCURRENCY};
use crate::process::BUILD_COMMAND;
use crate::report::{format_count, Report};
use crate::scenarios::listing::{middle_page, PER_PAGE};

/// Returns the method section, with the sizes of this run.
fn method(sizes: Sizes) -> String {
    let seconds = sizes.load_duration.as_secs_f64();
    format!(
        r#"## Method

- **Load generator.** uig-bench's own: tokio and the hyper HTTP/1.1 client, with keep-alive
  connections opened before the timer starts. Loads are closed-loop unless a row says otherwise,
  so each connection sends its next request at once when it has read the previous response. No
  request of a closed loop sleeps, because tokio's timer rounds deadlines up to its next 1 ms
  tick. Runs before commit a8fc274 slept before each request, which held the baseline at 64
  connections to 33,354 to 41,647 req/s (87,813 to 115,294 without the sleep), and at one
  connection to 870 req/s (about 15,000). Every
  latency goes into an HDR histogram with 3 significant digits. req/s is successful requests
  divided by the time from the first request to the last response. A request is an error when
  the status is not 2xx, the body check fails, or the connection fails.
- **Baseline again.** An `all` run ends with the baseline load once more. Its ratio to the first
  baseline shows how much the machine's speed moved during the run, which every ratio shares.
- **Dirty pages flushed.** Before each scenario the benchmark calls `sync(2)`, so that the
  kernel's writeback of earlier writes (the build, an earlier scenario's ledgers) does not fall
  inside a measurement.
- **Requests built in advance.** Each load's requests are built before its timer starts, so
  that building them takes little CPU from the server on the shared cores. Signed sends get
  their timestamp and HMAC when they are sent, as a client signs them. The HMAC reads the
  string to sign up to the timestamp in advance, and the rest when the request is sent.
  Listing requests (reads) are signed in advance. A time-bound load past 150,000 requests per
  second would build the rest during the load, and its row would give how many.
- **Server CPU.** User and system time of the server under test, summed over its process group
  from `/proc/PID/stat` before and after the load, per request. It is counted in clock ticks
  (usually 10 ms), which is coarse for the shortest loads. For sync sends it covers the gateway,
  not the mock behind it.
- **Fixed rate.** Request i is due at start + i / rate, and its latency counts from that due time,
  so a stalled server also delays the requests queued behind it.
- **baseline.** `uig-bench serve-baseline`, a child process with tokio's default runtime and
  hyper's HTTP/1.1 server, responds to every request with the same 60-byte JSON body. It is measured
  with the same connection counts as the other loads, for {seconds} s after a warm-up.
- **intake.** Signed form-encoded `POST /async/message/send` (recipient `avinfo`, entity
  `vehicle`) for {seconds} s, with the worker off, so the queue only grows. Each request is
  signed with a fresh timestamp, and a `ref` member in the message makes every request distinct,
  so none is a replay. SQLite runs in WAL mode with `synchronous = FULL`. The second row sends the
  same requests at a fixed rate of half the rate that the first row reached.
- **sync.** Signed `POST /sync/message/send` through the AVINFO plugin, next to the same lookups
  sent to `uig-mock` directly (`GET /api/v1/vehicle`). Every request has its own VIN, so the
  plugin's cache never hits. Each of these loads sends {mock} requests. The mock starts with a
  balance of {balance} paid AVINFO lookups, and an untimed `POST /_mock/reset` restores it before
  each of these loads and the peers' loads. Each load ends with fewer requests in flight than
  connections, which lowers req/s a little compared with a longer load. The cache-hit row sends
  one VIN for {seconds} s. The gateway's config lists AVINFO's
  `vehicle` in `lookups`, as `examples/uig.toml` does, so each sync send is stored once, with its
  result, after the plugin call.
- **e2e.** {e2e} signed async sends with a callback URL at the mock's sink, with the worker on.
  The time runs from the first send until the sink's count, read every 20 ms, reaches the number
  of messages. The messages cycle through at most 800 VINs, so the later lookups are plugin
  cache hits. Latency is per message, from its `created_at` to the sink's receive time.
- **listing.** One real message is stored through a sync send. Then SQL copies it into the
  ledger (`client_seq` dense, fresh request hashes, every third copy read) until the client has
  {small} messages in one gateway's ledger and {large} in another's, each gateway stopped during
  its fill. Both gateways then run side by side. Each page variant is read {listing} times at
  each size over {listing_connections}, with `per_page=100`, ascending, in six rounds that
  alternate between the two sizes, so that both meet the same moments of the machine's noise
  (their p99s are compared). The variants are
  the first page, the page after the middle id, a fixed page number, and the page number in the
  middle of the listing (for list-new at {large} messages, page {deep_new}, past {deep_skip}
  unread messages). The "× baseline" column is relative to the baseline over the same number
  of connections.
- **memory.** VmRSS from `/proc/PID/status`: the gateway after 1 s idle with its four plugins
  loaded, and the highest of the samples taken every 50 ms during e2e.
- **peers.** nginx from Debian's package, run in the foreground with a generated config
  (`worker_processes auto`, `proxy_pass` to the mock with 64 keep-alive upstream connections,
  access log off). Node-RED 4 from npm, run with a flow of `http in` → `http request` (keep-alive)
  → `http response` and the editor off. Both get the same lookups as the direct row.
- **Gateway config.** Every scenario starts a gateway with a new database. Its request rate limit
  is off (`client_rate_per_second = 0`), `max_queue_depth` is 100,000,000, and the AVINFO, Kontur,
  KIAS and IMPACT plugins are loaded, with AVINFO at `concurrency = {AVINFO_CONCURRENCY}` and the
  worker pool at `claim_batch = {WORKER_CONCURRENCY}` deliveries in flight (default 64). Other keys
  keep their defaults. The gateway and the mock log at level `warn`.
"#,
        mock = format_count(sizes.mock_requests),
        balance = format_count(crate::mock::AVINFO_BALANCE),
        e2e = format_count(sizes.e2e_messages),
        small = format_count(sizes.listing_rows[0]),
        large = format_count(sizes.listing_rows[1]),
        listing = format_count(sizes.listing_requests),
        deep_new = format_count(middle_page("list-new", sizes.listing_rows[1])),
        deep_skip = format_count((middle_page("list-new", sizes.listing_rows[1]) - 1) * PER_PAGE),
        listing_connections = match sizes.listing_connections {
            1 => "one connection".to_string(),
            count => format!("{count} connections"),
        },
    )
}

/// Renders the benchmark page.
pub fn page(report: &Report, sizes: Sizes, reduced: bool) -> String {
    let mut text = String::from("# UIG benchmarks\n\n");
    text.push_str(
        "Figures of one run of `uig-bench` (the crate in `bench/`), written by it. All servers ran on this \
         machine over loopback, beside a bare hyper server (the baseline) measured in the same run. The \
         machine's cores are shared by the load generator, the servers and whatever else was running, so \
         absolute figures move between runs; the ratios to the baseline are the figures to compare.\n\n",
    );
    if reduced {
        text.push_str("**This was a reduced run (`--quick` or `--tiny`): its loads are short and its figures are rough.**\n\n");
    }

    text.push_str("## Command\n\nThe build, then a full run:\n\n```sh\n");
    text.push_str(BUILD_COMMAND);
    text.push_str("\ncargo run --release -p uig-bench -- all --peers\n```\n\n");
    text.push_str(&format!("This run: `{}`, {:.0} s in all.\n\n", report.command, report.run_seconds));

    text.push_str("## Machine\n\n");
    if let Some(machine) = &report.machine {
        text.push_str(&machine.markdown());
    }
    text.push('\n');

    text.push_str("## Results\n\n");
    text.push_str(&report.tables_markdown());
    text.push_str("\n![Requests per second as a multiple of the baseline](results.svg)\n\n");
    text.push_str(&method(sizes));
    text
}

/// Writes README.md, results.json and results.svg into `out`.
pub fn write_outputs(report: &Report, out: &Path, sizes: Sizes, reduced: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("failed to create {}", out.display()))?;
    std::fs::write(out.join("README.md"), page(report, sizes, reduced))?;
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(report)? + "\n")?;
    crate::plot::write_svg(report, &out.join("results.svg"))?;
    Ok(())
}
