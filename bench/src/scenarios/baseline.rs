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

/// Measures the baseline server at the throughput and at the listing connection counts, and its
/// idle memory.
pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    println!("baseline: bare hyper server, 60-byte JSON answers");
    let folder = bench.folder("baseline")?;
    let address: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let executable = std::env::current_exe().context("failed to locate the uig-bench executable")?;
    let mut command = Command::new(executable);
    command.args(["serve-baseline", "--listen", &address.to_string()]);
    let mut server = ChildProcess::spawn("uig-bench serve-baseline", &mut command, &folder.join("baseline.log"))?;
    server.wait_ready(&format!("http://{address}/"), Duration::from_secs(10)).await?;

    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = server.resident_bytes()? as f64 / 1_048_576.0;
    bench.report.memory.push(MemoryRow { id: BASELINE_MEMORY.to_string(), process: "baseline server".to_string(), state: "idle".to_string(), megabytes: idle });

    let source: RequestSource = Arc::new(|_| RequestSpec::get("/".to_string()));
    let sizes = bench.sizes;
    for (id, connections) in [(BASELINE, sizes.connections), (BASELINE_LISTING, sizes.listing_connections)] {
        let mut client = LoadClient::connect(address, connections).await?.measure_cpu_of(server.pid());
        client.run(Plan::seconds(sizes.warmup), Arc::clone(&source), None).await?;
        let result = client.run(Plan::seconds(sizes.load_duration), Arc::clone(&source), None).await?;
        record_load(bench, id, "baseline", "GET, 60-byte JSON answer", connections, &result, None);
    }
    server.check_running()?;
    Ok(())
}
