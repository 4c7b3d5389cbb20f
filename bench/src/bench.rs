//! State of one benchmark run: sizes, binaries, the temporary folder, the shared mock and the report.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use crate::gateway::{Gateway, GatewayOptions};
use crate::mock::Mock;
use crate::process::Binaries;
use crate::report::Report;

/// Request counts and durations of a run.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Connections of the throughput loads.
    pub connections: usize,
    /// Closed-loop time before a timed load, not measured.
    pub warmup: Duration,
    /// Length of each timed load.
    pub load_duration: Duration,
    /// Requests of each load that calls the mock's AVINFO API.
    pub mock_requests: u64,
    /// Messages of the end-to-end load.
    pub e2e_messages: u64,
    /// Stored messages of the two listing measurements, smaller first.
    pub listing_rows: [u64; 2],
    /// Requests per listing variant. A full run sends 6,000, so that a p99 rests on its 60
    /// slowest requests. With 2,000, the p99 of list-all's first page at 1,000,000 messages came
    /// out 1.71× its 10,000 figure in one run, while their p50s differed by 10%.
    pub listing_requests: u64,
    /// Connections of the listing loads: one, so that a page's latency includes no wait behind
    /// other pages.
    pub listing_connections: usize,
}

impl Sizes {
    /// The sizes of a full run, whose figures go into docs/benchmarks.
    pub const FULL: Sizes = Sizes {
        connections: 64,
        warmup: Duration::from_millis(500),
        load_duration: Duration::from_secs(5),
        mock_requests: 5_400,
        e2e_messages: 10_000,
        listing_rows: [10_000, 1_000_000],
        listing_requests: 6_000,
        listing_connections: 1,
    };

    /// `--quick`: a run of about a minute, for development.
    pub const QUICK: Sizes = Sizes {
        connections: 64,
        warmup: Duration::from_millis(200),
        load_duration: Duration::from_millis(1_500),
        mock_requests: 1_800,
        e2e_messages: 3_000,
        listing_rows: [10_000, 100_000],
        listing_requests: 500,
        listing_connections: 1,
    };

    /// `--tiny`: the smallest loads that still exercise every path, for the smoke test. Its
    /// figures mean nothing.
    pub const TINY: Sizes = Sizes {
        connections: 64,
        warmup: Duration::from_millis(50),
        load_duration: Duration::from_millis(300),
        mock_requests: 128,
        e2e_messages: 128,
        listing_rows: [300, 3_000],
        listing_requests: 40,
        listing_connections: 1,
    };
}

/// One run: what it measures with and what it found so far.
pub struct Bench {
    pub binaries: Binaries,
    pub sizes: Sizes,
    pub report: Report,
    /// Workspace root.
    pub workspace: PathBuf,
    temp: TempDir,
    mock: Option<Arc<Mock>>,
    folders: usize,
}

impl Bench {
    /// Creates a run that keeps its databases, configs and logs in a new temporary folder.
    pub fn new(binaries: Binaries, sizes: Sizes, workspace: PathBuf) -> anyhow::Result<Bench> {
        let temp = tempfile::Builder::new().prefix("uig-bench-").tempdir()?;
        Ok(Bench { binaries, sizes, report: Report::default(), workspace, temp, mock: None, folders: 0 })
    }

    /// Returns the run's temporary folder.
    pub fn temp_path(&self) -> &std::path::Path {
        self.temp.path()
    }

    /// Returns a new empty folder in the run's temporary folder, named after `purpose`.
    pub fn folder(&mut self, purpose: &str) -> anyhow::Result<PathBuf> {
        self.folders += 1;
        let path = self.temp.path().join(format!("{:02}-{purpose}", self.folders));
        std::fs::create_dir_all(&path)?;
        Ok(path)
    }

    /// Returns the run's mock, starting it on first use.
    pub async fn mock(&mut self) -> anyhow::Result<Arc<Mock>> {
        if let Some(mock) = &self.mock {
            return Ok(Arc::clone(mock));
        }
        let folder = self.folder("mock")?;
        let mock = Arc::new(Mock::start(&self.binaries, &folder).await?);
        self.mock = Some(Arc::clone(&mock));
        Ok(mock)
    }

    /// Prepares and starts a gateway with a fresh database, pointed at the run's mock.
    pub async fn start_gateway(&mut self, purpose: &str, options: GatewayOptions) -> anyhow::Result<Gateway> {
        let mock = self.mock().await?;
        let folder = self.folder(purpose)?;
        let mut gateway = Gateway::prepare(&self.binaries, &folder, &mock.url, options)?;
        gateway.start().await?;
        Ok(gateway)
    }
}
