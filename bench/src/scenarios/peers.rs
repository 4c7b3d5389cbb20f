//! Scenario `peers`: nginx and Node-RED in front of the mock, loaded like the sync scenario's
//! direct lookups, for comparison with the sync sends through the AVINFO plugin.

use super::nginx::{self, Nginx};
use super::node_red::{self, NodeRed};
use super::{avinfo_success, ensure_baseline, record_load, record_not_measured, run_mock_bound, sync, vehicle_lookups};
use crate::bench::Bench;
use crate::load::LoadClient;

/// Measures nginx and Node-RED; a peer that cannot be installed or started is reported as not
/// measured, with the reason, and the scenario goes on.
pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    ensure_baseline(bench).await?;
    if bench.report.load("sync-plugin").is_none() {
        sync::run(bench).await?;
    }
    println!("peers: nginx and Node-RED proxying the same lookups to the mock");
    let connections = bench.sizes.connections;

    let label = "nginx proxy_pass to uig-mock, distinct VINs";
    match measure_nginx(bench).await {
        Ok((result, version)) => record_load(bench, "nginx", "peers", &format!("{label}; {version}"), connections, &result, None),
        Err(error) => record_not_measured(bench, "nginx", "peers", label, connections, &format!("{error:#}")),
    }

    let label = "Node-RED http in → http request → http response, distinct VINs";
    match measure_node_red(bench).await {
        Ok((result, version)) => record_load(bench, "node-red", "peers", &format!("{label}; Node-RED {version}"), connections, &result, None),
        Err(error) => record_not_measured(bench, "node-red", "peers", label, connections, &format!("{error:#}")),
    }
    Ok(())
}

async fn measure_nginx(bench: &mut Bench) -> anyhow::Result<(crate::load::LoadResult, String)> {
    let folder = bench.folder("nginx")?;
    let binary = nginx::find_or_install(&folder.join("apt-get.log"))?;
    let mock = bench.mock().await?;
    let proxy = Nginx::start(&binary, &folder, mock.address, "/_mock/stats").await?;
    let mut client = LoadClient::connect(proxy.address, bench.sizes.connections).await?.measure_cpu_of(proxy.process.pid());
    let result = run_mock_bound(&mut client, &mock, bench.sizes.mock_requests, vehicle_lookups(), Some(avinfo_success())).await?;
    Ok((result, proxy.version.clone()))
}

async fn measure_node_red(bench: &mut Bench) -> anyhow::Result<(crate::load::LoadResult, String)> {
    let folder = bench.folder("node-red")?;
    // The cargo target folder is the parent of the profile folder with the binaries.
    let target = bench.binaries.directory.parent().unwrap_or(&bench.workspace);
    let cache = target.join("bench-peers/node-red");
    let script = node_red::find_or_install(&cache, &folder.join("npm.log"))?;
    let mock = bench.mock().await?;
    let peer = NodeRed::start(&script, &folder, mock.address).await?;
    let mut client = LoadClient::connect(peer.address, bench.sizes.connections).await?.measure_cpu_of(peer.process.pid());
    let result = run_mock_bound(&mut client, &mock, bench.sizes.mock_requests, vehicle_lookups(), Some(avinfo_success())).await?;
    Ok((result, peer.version.clone()))
}
