//! A running `uig-mock`: the AVINFO API the connector calls and the callback sink, with its
//! control endpoints.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::process::{free_port, Binaries, ChildProcess};

/// AVINFO API key that the mock accepts (its default).
pub const AVINFO_KEY: &str = "demo-avinfo-key";

/// Successful lookups the mock's AVINFO account allows before it responds with 402 `no_balance`,
/// set with `--avinfo-balance`. `POST /_mock/reset` restores the balance.
pub const AVINFO_BALANCE: u64 = 1_000_000_000;

/// Returns a valid 17-character VIN that is distinct for every `index` below 10^13. It never ends
/// in `00000`, for which the mock returns 404.
pub fn vin(index: u64) -> String {
    format!("XTA{index:013}7")
}

/// A running mock with an HTTP client for its control endpoints.
pub struct Mock {
    pub url: String,
    pub address: SocketAddr,
    process: ChildProcess,
    http: reqwest::Client,
}

impl Mock {
    /// Starts `uig-mock` on a free loopback port with logs at warn level, written to `directory`.
    pub async fn start(binaries: &Binaries, directory: &Path) -> anyhow::Result<Mock> {
        let port = free_port()?;
        let address: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let mut command = Command::new(&binaries.mock);
        command.args(["--listen", &address.to_string(), "--avinfo-balance", &AVINFO_BALANCE.to_string()]).env("RUST_LOG", "warn");
        let mut process = ChildProcess::spawn("uig-mock", &mut command, &directory.join("uig-mock.log"))?;

        let url = format!("http://{address}");
        process.wait_ready(&format!("{url}/_mock/stats"), Duration::from_secs(30)).await?;
        Ok(Mock { url, address, process, http: reqwest::Client::new() })
    }

    /// Process id of the mock, the leader of its process group.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Restores the AVINFO balance, counters and mode and empties the callback sink.
    pub async fn reset(&self) -> anyhow::Result<()> {
        let response = self.http.post(format!("{}/_mock/reset", self.url)).send().await.context("POST /_mock/reset failed")?;
        if !response.status().is_success() {
            bail!("POST /_mock/reset failed with {}", response.status());
        }
        Ok(())
    }

    /// Reads `GET /_mock/stats`.
    pub async fn stats(&self) -> anyhow::Result<Value> {
        let response = self.http.get(format!("{}/_mock/stats", self.url)).send().await.context("GET /_mock/stats failed")?;
        Ok(response.error_for_status()?.json().await?)
    }

    /// Returns the number of callbacks in the sink, which keeps the newest 10,000.
    pub async fn callbacks_received(&self) -> anyhow::Result<u64> {
        let stats = self.stats().await?;
        stats["callbacks"]["received"].as_u64().context("GET /_mock/stats has no callbacks.received")
    }

    /// AVINFO balance left.
    pub async fn balance(&self) -> anyhow::Result<u64> {
        let stats = self.stats().await?;
        stats["avinfo"]["balance"].as_u64().context("GET /_mock/stats has no avinfo.balance")
    }

    /// Reads the stored callbacks (`GET /_mock/callbacks`).
    pub async fn callbacks(&self) -> anyhow::Result<Vec<Value>> {
        let response = self.http.get(format!("{}/_mock/callbacks", self.url)).send().await.context("GET /_mock/callbacks failed")?;
        Ok(response.error_for_status()?.json().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vin_is_valid_and_distinct() {
        let first = vin(0);
        let last = vin(9_999_999_999_999);
        assert_eq!(first.len(), 17);
        assert_eq!(last.len(), 17);
        assert_ne!(vin(1), vin(2));
        assert!(!first.ends_with("00000"));
        assert!(first.chars().all(|character| character.is_ascii_digit() || "ABCDEFGHJKLMNPRSTUVWXYZ".contains(character)));
    }
}
