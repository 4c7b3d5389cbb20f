//! Scenario `baseline`: the bare hyper server, as a child process, under the same loads as the
//! gateway. Its figures are the reference of every ratio in the report.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::record_load;
use crate::bench::Bench;
use crate::load::{LoadClient, Plan, RequestSource, RequestSpec};
use crate::process::{free_port, ChildProcess};
use crate::report::{MemoryRow, BASELINE, BASELINE_LISTING, BASELINE_MEMORY};

/// Id of the baseline measured again at the end of a run.
pub const BASELINE_AT_END: &str = "baseline-end";

/// Starts the baseline server in the run's folder `folder_name`.
async fn start_server(bench: &mut Bench, folder_name: &str) -> anyhow::Result<(ChildProcess, SocketAddr)> {
    let folder = bench.folder(folder_name)?;
    let address: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let executable = std::env::current_exe().context("failed to locate the uig-bench executable")?;
    let mut command = Command::new(executable);
    command.args(["serve-baseline", "--listen", &address.to_string()]);
    let mut server = ChildProcess::spawn("uig-bench serve-baseline", &mut command, &folder.join("baseline.log"))?;
    server.wait_ready(&format!("http://{address}/"), Duration::from_secs(10)).await?;
    Ok((server, address))
}

/// Runs the baseline load on `connections` connections after a warm-up and records it as `id`.
async fn measure(bench: &mut Bench, server: &ChildProcess, address: SocketAddr, id: &str, label: &str, connections: usize) -> anyhow::Result<()> {
    let source: RequestSource = Arc::new(|_| RequestSpec::get("/".to_string()));
    let sizes = bench.sizes;
    let mut client = LoadClient::connect(address, connections).await?.measure_cpu_of(server.pid());
    client.run(Plan::seconds(sizes.warmup), Arc::clone(&source), None).await?;
    let result = client.run(Plan::seconds(sizes.load_duration), source, None).await?;
    record_load(bench, id, "baseline", label, connections, &result, None);
    Ok(())
}

/// Measures the baseline server at the throughput and at the listing connection counts, and its
/// idle memory.
pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    println!("baseline: bare hyper server, 60-byte JSON answers");
    let (mut server, address) = start_server(bench, "baseline").await?;

    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = server.resident_bytes()? as f64 / 1_048_576.0;
    bench.report.memory.push(MemoryRow { id: BASELINE_MEMORY.to_string(), process: "baseline server".to_string(), state: "idle".to_string(), megabytes: idle });

    let sizes = bench.sizes;
    for (id, connections) in [(BASELINE, sizes.connections), (BASELINE_LISTING, sizes.listing_connections)] {
        measure(bench, &server, address, id, "GET, 60-byte JSON answer", connections).await?;
    }
    server.check_running()?;
    Ok(())
}

/// Measures the baseline server again at the end of a run, at the throughput connection count.
/// Its ratio to the first baseline shows how much the machine's speed moved during the run, which
/// every other ratio shares.
pub async fn run_at_end(bench: &mut Bench) -> anyhow::Result<()> {
    println!("baseline again: the machine's speed at the end of the run");
    let (mut server, address) = start_server(bench, "baseline-end").await?;
    let connections = bench.sizes.connections;
    measure(bench, &server, address, BASELINE_AT_END, "GET, 60-byte JSON answer, again at the end of the run", connections).await?;
    server.check_running()?;
    Ok(())
}
