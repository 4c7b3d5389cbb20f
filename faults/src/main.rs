//! uig-faults: runs fault scenarios against the real `uig` and `uig-mock` binaries and prints
//! accepted / delivered / failed / lost / duplicated counts per scenario.

mod accounting;
mod client;
mod ledger;
mod processes;
mod proxy;
mod report;
mod scenarios;
mod sink;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::Parser;

use crate::processes::Binaries;
use crate::report::Outcome;
use crate::scenarios::{Context, Scenario};

/// Command line of uig-faults.
#[derive(Debug, Parser)]
#[command(
    name = "uig-faults",
    version,
    about = "Run fault scenarios against the real uig gateway and uig-mock on loopback, and account for every message",
    after_help = "It builds nothing: build the binaries first, for example\n  cargo build --release -p uig-engine -p uig-mock -p uig-connector-avinfo -p uig-connector-testkit\n\
                  Exit status 1 when a scenario lost a message, has an unexplained duplicate or failed a check."
)]
struct Cli {
    /// Scenarios to run, in the order given.
    #[arg(value_enum, default_values_t = [Scenario::All])]
    scenarios: Vec<Scenario>,

    /// Number of messages of each scenario (defaults: kill9 10000, flaky_upstream 300,
    /// callback_retries 20, slow_system 200 per window, overload 2000, storage_fault 300).
    #[arg(long, value_name = "N")]
    messages: Option<u64>,

    /// Length of each scenario's send phase in seconds (defaults: kill9 120, flaky_upstream 32,
    /// slow_system 20, overload 300, storage_fault 15). kill9 spreads its sends evenly over it;
    /// flaky_upstream (4 phases), slow_system (2 windows) and storage_fault (3 phases) divide it;
    /// overload stops sending after it.
    #[arg(long, value_name = "S")]
    seconds: Option<u64>,

    /// Small counts and short phases for CI: each scenario well under a minute.
    #[arg(long)]
    quick: bool,

    /// Folder with uig, uig-mock and the plugins. Default: the folder of this executable.
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,

    /// Also writes the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Keeps each scenario's temp folder (configs, databases, logs) and prints its path.
    #[arg(long)]
    keep_temp: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the chosen scenarios and prints the table; returns whether all passed.
fn run(cli: Cli) -> Result<bool> {
    let bin_dir = match cli.bin_dir {
        Some(dir) => dir,
        None => std::env::current_exe()?.parent().context("the executable has no folder")?.to_path_buf(),
    };
    let context = Context { binaries: Binaries::locate(&bin_dir)?, quick: cli.quick, messages: cli.messages, seconds: cli.seconds, keep_temp: cli.keep_temp };

    let mut chosen = Vec::new();
    for scenario in cli.scenarios {
        if scenario == Scenario::All {
            chosen.extend(Scenario::EACH);
        } else {
            chosen.push(scenario);
        }
    }

    let mut outcomes = Vec::new();
    for scenario in chosen {
        eprintln!("running {} ...", scenario.name());
        let started = Instant::now();
        let mut outcome = scenario.run(&context).unwrap_or_else(|error| {
            let mut outcome = Outcome::new(scenario.name());
            outcome.error = Some(format!("{error:#}"));
            outcome
        });
        outcome.seconds = started.elapsed().as_secs_f64();
        eprintln!("{} {} in {:.1} s", scenario.name(), if outcome.passed() { "passed" } else { "FAILED" }, outcome.seconds);
        outcomes.push(outcome);
    }

    print!("{}", report::render(&outcomes));
    if let Some(path) = &cli.json {
        let results: Vec<_> = outcomes.iter().map(Outcome::to_json).collect();
        std::fs::write(path, serde_json::to_string_pretty(&results)?).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(outcomes.iter().all(Outcome::passed))
}
