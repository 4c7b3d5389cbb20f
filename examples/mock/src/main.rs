//! uig-mock: loopback-only mock of AVINFO, Kontur, KIAS, IMPACT and of a client's callback
//! receiver, for UIG demos and tests.

mod avinfo;
mod catalog;
mod control;
mod impact;
mod kias;
mod kontur;
mod vehicle;

#[cfg(test)]
mod tests;

use std::io::IsTerminal;
use std::net::SocketAddr;

use anyhow::Context;
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use tokio::net::TcpListener;
use tracing::info;
use tracing_subscriber::EnvFilter;

use crate::control::MockState;

const AFTER_HELP: &str = r#"AVINFO lookups (docs/avinfo-api.md):
  GET  /api/v1/vehicle?key=KEY&vin=VIN     or  ?key=KEY&plate=PLATE (percent-encoded UTF-8)
       Any valid VIN or plate gets vehicle data derived from a SHA-256 of it, so equal
       requests get equal data (OSAGO dates follow today's date). VINs ending in 00000
       and plates numbered 000 (А000АА77) get 404 not_found. The balance starts at 1000
       and decreases by one per successful answer.

Kontur Medi API v2 (docs/kontur-api.md): POST /connect/token, GET /V2/parties,
  GET /V2/events, GET and POST /V2/messages. Boxes: insurer
  6f1c0b7e-3d2a-4c59-9a41-2b8e5d7f0a13, clinic c3a9e2d4-8b71-4f06-b5d2-7e1f9a0c4b68.
  Control under /_mock/kontur/: POST inbox (inject documents), POST expire-tokens,
  GET|PUT token-lifetime, GET|PUT mode, GET stats, POST reset.

KIAS SOAP service (docs/kias-api.md): POST /kiasSvc.asmx (SOAP 1.1 and 1.2),
  GET /kiasSvc.asmx?WSDL. Control under /_mock/kias/.

IMPACT REST API (docs/impact-api.md) under /impact/api/v1/messages.
  Control under /_mock/impact/: PUT mode, PUT progress, GET state, POST reset.

AVINFO and callback control endpoints:
  GET  /_mock/avinfo/mode
  PUT  /_mock/avinfo/mode       {"mode": "normal|outage|no_balance|error_500|slow",
                                 "delay_ms": 2000}   (delay_ms: slow mode only, max 120000)
  GET  /_mock/stats             AVINFO request counters, per VIN or plate, the balance, and
                                the callbacks stored and received in total
  POST /_mock/reset             reset AVINFO counters, mode, balance and stored callbacks
                                (each other system has its own /_mock/SYSTEM/reset)
  POST /_mock/callbacks         store a callback (webhook-* headers and the body);
                                ?delay_ms=N answers N ms after storing it
  GET  /_mock/callbacks         stored callbacks, newest last
  GET  /_mock/callbacks/mode
  PUT  /_mock/callbacks/mode    {"fail_next": N}: answer the next N callbacks with 500
  POST /_mock/redirect?status=307&to=URL   answer with that redirect (301, 302, 303, 307, 308)

Logs go to stderr; RUST_LOG sets the level (default info)."#;

/// Command line of uig-mock.
#[derive(Debug, Parser)]
#[command(
    name = "uig-mock",
    version,
    about = "Mock AVINFO, Kontur, KIAS and IMPACT APIs and a callback receiver for UIG demos and tests, loopback only",
    after_help = AFTER_HELP
)]
struct Cli {
    /// Address and port to listen on. Only loopback addresses (127.0.0.0/8, [::1]) are accepted.
    #[arg(
        long,
        value_name = "ADDRESS:PORT",
        default_value = "127.0.0.1:9090",
        value_parser = parse_loopback_address
    )]
    listen: SocketAddr,

    /// API key that AVINFO lookups must send in the `key` query parameter.
    #[arg(
        long,
        value_name = "KEY",
        default_value = "demo-avinfo-key",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    avinfo_key: String,

    /// Paid AVINFO lookups on the mock account at start and after each reset; 402 after that.
    #[arg(long, value_name = "N", default_value_t = control::START_BALANCE)]
    avinfo_balance: u64,

    #[command(flatten)]
    kontur: kontur::KonturOptions,

    #[command(flatten)]
    kias: kias::KiasOptions,

    #[command(flatten)]
    impact: impact::ImpactOptions,
}

/// States of every mocked system.
#[derive(Clone)]
pub struct Systems {
    /// AVINFO and the callback sink.
    pub avinfo: MockState,
    /// Kontur.Strakhovanie.
    pub kontur: kontur::KonturState,
    /// KIAS.
    pub kias: kias::KiasState,
    /// IMPACT.
    pub impact: impact::ImpactState,
}

/// Builds the mock's router: every mocked system and the control endpoints under `/_mock`.
pub fn app(systems: Systems) -> Router {
    avinfo_router(systems.avinfo)
        .merge(kontur::router(systems.kontur))
        .merge(kias::router(systems.kias))
        .merge(impact::router(systems.impact))
}

/// Builds the router of AVINFO (under `/api/v1`) and of the shared control endpoints.
pub fn avinfo_router(state: MockState) -> Router {
    Router::new()
        .route("/api/v1/vehicle", get(avinfo::get_vehicle))
        .route(
            "/_mock/avinfo/mode",
            get(control::get_avinfo_mode).put(control::put_avinfo_mode),
        )
        .route("/_mock/stats", get(control::get_stats))
        .route("/_mock/redirect", post(control::redirect))
        .route("/_mock/reset", post(control::post_reset))
        .route(
            "/_mock/callbacks",
            get(control::list_callbacks).post(control::receive_callback),
        )
        .route(
            "/_mock/callbacks/mode",
            get(control::get_callbacks_mode).put(control::put_callbacks_mode),
        )
        .with_state(state)
}

/// Parses `--listen` and rejects any address outside loopback, so the mock is never reachable
/// from other hosts.
fn parse_loopback_address(text: &str) -> Result<SocketAddr, String> {
    let address: SocketAddr = text
        .parse()
        .map_err(|_| format!("\"{text}\" is not an IP address and port such as 127.0.0.1:9090"))?;
    if address.ip().is_loopback() {
        return Ok(address);
    }
    Err(format!(
        "uig-mock listens only on loopback (127.0.0.0/8 or [::1]), such as 127.0.0.1:{}",
        address.port()
    ))
}

/// Waits for ctrl-c (SIGINT) or, on Unix, SIGTERM, which is how demo scripts stop the mock.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "failed to listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };

    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "failed to listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = interrupt => info!("ctrl-c received, stopping"),
        () = terminate => info!("SIGTERM received, stopping"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let cli = Cli::parse();

    let listener = TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("failed to listen on {}", cli.listen))?;
    let address = listener
        .local_addr()
        .context("failed to read the listening address")?;
    info!(%address, "uig-mock listening");

    let systems = Systems {
        avinfo: MockState::with_balance(&cli.avinfo_key, cli.avinfo_balance),
        kontur: kontur::KonturState::new(&cli.kontur),
        kias: kias::KiasState::new(&cli.kias),
        impact: impact::ImpactState::new(&cli.impact),
    };
    axum::serve(listener, app(systems))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server failed")?;
    info!("uig-mock stopped");
    Ok(())
}
