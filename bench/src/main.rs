//! uig-bench: measures the UIG gateway beside a bare HTTP server and peer proxies on loopback, in
//! one run, and writes the results as Markdown, JSON and an SVG chart.

mod baseline;
mod bench;
mod clients;
mod gateway;
mod load;
mod machine;
mod mock;
mod plot;
mod process;
mod readme;
mod report;
mod scenarios;
mod sign;
mod targets;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::bench::{Bench, Sizes};
use crate::machine::Machine;
use crate::process::Binaries;

/// Command line of uig-bench.
#[derive(Debug, Parser)]
#[command(
    name = "uig-bench",
    about = "Benchmark UIG on loopback beside a bare hyper server (and nginx and Node-RED with --peers)",
    after_help = "Build first: cargo build --release -p uig-bench -p uig-engine -p uig-mock -p uig-connector-avinfo -p uig-connector-kontur -p uig-connector-kias -p uig-connector-impact"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Smaller loads (well under a minute for `all`); the results go to --out only when it is given.
    #[arg(long, global = true)]
    quick: bool,

    /// The smallest loads that run every path, for the smoke test; the figures mean nothing.
    #[arg(long, global = true)]
    tiny: bool,

    /// With `all`: also measure nginx and Node-RED (installed with apt-get and npm when missing).
    #[arg(long, global = true)]
    peers: bool,

    /// Folder for README.md, results.json and results.svg. Default: docs/benchmarks of the
    /// workspace for a full `all` run; other runs only print unless this is given.
    #[arg(long, global = true, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Folder with uig, uig-mock and the plugin .so files. Default: the folder of this executable.
    #[arg(long, global = true, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
enum Command {
    /// Every scenario in turn (peers only with --peers).
    All,
    /// The bare hyper server alone.
    Baseline,
    /// Signed async sends with the worker off, and at half the rate reached.
    Intake,
    /// Async sends with callbacks, first send to last callback (includes the memory figures).
    E2e,
    /// Sync sends through the AVINFO plugin, with cache misses and hits, and lookups straight to the mock.
    Sync,
    /// list-new and list-all pages at two ledger sizes.
    Listing,
    /// Gateway memory idle and during e2e (runs e2e).
    Memory,
    /// nginx and Node-RED in front of the mock (runs sync too, for the comparison).
    Peers,
    /// CPU per request of reqwest and of hyper's own clients against the mock (not part of `all`).
    Clients,
    /// Serve the baseline response until killed (the baseline scenario starts it).
    ServeBaseline {
        /// Loopback address and port to listen on.
        #[arg(long, value_name = "ADDRESS:PORT")]
        listen: SocketAddr,
    },
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the bench crate lives in the workspace").to_path_buf()
}

/// Returns the scenarios that `command` runs, in order.
fn scenario_names(command: Command, peers: bool) -> Vec<&'static str> {
    match command {
        Command::All if peers => vec!["baseline", "intake", "sync", "e2e", "listing", "peers", "baseline-end"],
        Command::All => vec!["baseline", "intake", "sync", "e2e", "listing", "baseline-end"],
        Command::Baseline => vec!["baseline"],
        Command::Intake => vec!["intake"],
        Command::E2e | Command::Memory => vec!["e2e"],
        Command::Sync => vec!["sync"],
        Command::Listing => vec!["listing"],
        Command::Peers => vec!["peers"],
        Command::Clients | Command::ServeBaseline { .. } => vec![],
    }
}

/// Writes the page cache's dirty pages to disk (`sync(2)`), so that the kernel does not write back
/// what was written before a scenario (a build just before the run, an earlier scenario's ledgers)
/// while that scenario is measured. After a release build, 190 MB were dirty, and the kernel wrote
/// them back in bursts of about 80 MB during the first scenarios.
fn flush_dirty_pages() {
    // SAFETY: sync(2) takes no arguments and returns nothing. It touches no memory of this process.
    unsafe { libc::sync() };
}

async fn run_scenario(bench: &mut Bench, name: &str) -> anyhow::Result<()> {
    match name {
        "baseline" => scenarios::baseline::run(bench).await,
        "intake" => scenarios::intake::run(bench).await,
        "sync" => scenarios::sync::run(bench).await,
        "e2e" => scenarios::e2e::run(bench).await,
        "listing" => scenarios::listing::run(bench).await,
        "peers" => scenarios::peers::run(bench).await,
        "baseline-end" => scenarios::baseline::run_at_end(bench).await,
        _ => anyhow::bail!("unknown scenario {name:?}"),
    }
}

/// Runs the scenarios of the command line, writes the outputs, and returns whether every
/// scenario finished.
async fn run(cli: &Cli) -> anyhow::Result<bool> {
    let started = Instant::now();
    let workspace = workspace_root();
    let sizes = if cli.tiny {
        Sizes::TINY
    } else if cli.quick {
        Sizes::QUICK
    } else {
        Sizes::FULL
    };
    let bin_dir = match &cli.bin_dir {
        // Absolute, because the gateways run in folders of their own.
        Some(directory) => std::path::absolute(directory).with_context(|| format!("--bin-dir {}: cannot resolve the path", directory.display()))?,
        None => std::env::current_exe()?.parent().context("the executable has no folder")?.to_path_buf(),
    };
    let binaries = Binaries::find(&bin_dir)?;
    if cli.command == Command::Clients {
        let folder = tempfile::Builder::new().prefix("uig-bench-clients-").tempdir()?;
        clients::run(&binaries, sizes, folder.path()).await?;
        return Ok(true);
    }
    let mut bench = Bench::new(binaries, sizes, workspace.clone())?;
    bench.report.machine = Some(Machine::read(&workspace, bench.temp_path()));
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    bench.report.command = format!("uig-bench {}", arguments.join(" "));

    let mut finished = true;
    for name in scenario_names(cli.command, cli.peers) {
        flush_dirty_pages();
        if let Err(error) = run_scenario(&mut bench, name).await {
            finished = false;
            eprintln!("scenario {name} failed: {error:#}");
            scenarios::record_not_measured(&mut bench, &format!("{name}-failed"), name, "scenario failed", sizes.connections, &format!("{error:#}"));
        }
    }

    if let Some(machine) = &mut bench.report.machine {
        machine.load_average_end = machine::load_average();
    }
    bench.report.run_seconds = started.elapsed().as_secs_f64();
    bench.report.targets = targets::evaluate(&bench.report);
    println!("\n{}", bench.report.tables_markdown());
    println!("run took {:.0} s", bench.report.run_seconds);

    let full_run = cli.command == Command::All && !cli.quick && !cli.tiny;
    let out = cli.out.clone().or_else(|| full_run.then(|| workspace.join("docs/benchmarks")));
    if let Some(out) = out {
        readme::write_outputs(&bench.report, &out, sizes, cli.quick || cli.tiny)?;
        println!("wrote {}", out.display());
    }
    Ok(finished)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: failed to start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };

    if let Command::ServeBaseline { listen } = cli.command {
        return match runtime.block_on(baseline::serve(listen)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        };
    }

    // Ctrl-C drops the run's future, whose destructors kill every child process and remove the
    // temporary folder.
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run(&cli) => Some(outcome),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match outcome {
        Some(Ok(true)) => ExitCode::SUCCESS,
        Some(Ok(false)) => ExitCode::FAILURE,
        Some(Err(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
        None => {
            eprintln!("interrupted: servers stopped");
            ExitCode::from(130)
        }
    }
}
