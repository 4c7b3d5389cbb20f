//! Mock of IMPACT, the JSON REST system that docs/impact-api.md describes, under `/impact`.
//!
//! Requests need HTTP Basic authentication with `--impact-user` and `--impact-password`. A
//! submit is stored once per idempotency key, and each message moves from `QUEUED` through
//! `PROCESSING` to `DONE` as its status is queried. Control endpoints under `/_mock/impact`
//! switch fault modes and the number of queries a message takes.

mod api;
mod control;
mod store;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;

use store::{MessageStore, DEFAULT_STATUS_QUERIES_UNTIL_DONE};

/// Path prefix of the mocked IMPACT API, so that its routes cannot clash with other mocked
/// systems. The connector's `base_url` ends with it.
pub const BASE_PATH: &str = "/impact";

/// Delay of the `slow` mode when `PUT /_mock/impact/mode` sends no `delay_ms`, in milliseconds.
pub const DEFAULT_SLOW_DELAY_MS: u64 = 2000;

/// Maximum `delay_ms` of the `slow` mode (two minutes), so a typo cannot hang a test run.
pub const MAX_SLOW_DELAY_MS: u64 = 120_000;

/// Command-line settings of the mock IMPACT.
#[derive(Clone, Debug, clap::Args)]
pub struct ImpactOptions {
    /// User name that IMPACT requests must send with HTTP Basic authentication.
    #[arg(
        long,
        value_name = "USER",
        default_value = "demo-impact",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub impact_user: String,

    /// Password that IMPACT requests must send with HTTP Basic authentication.
    #[arg(
        long,
        value_name = "PASSWORD",
        default_value = "demo-impact-password",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub impact_password: String,
}

/// Fault mode of the mock IMPACT, switched at runtime by `PUT /_mock/impact/mode`.
///
/// In every mode but `normal` and `slow` the request takes effect first (a submit is stored, a
/// status query counts) and only the response is broken, as when IMPACT fails after its commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImpactMode {
    /// Requests get the responses that the protocol describes.
    Normal,
    /// Requests get HTTP 500 with a JSON error body.
    Error500,
    /// Requests get the `normal` responses after the configured delay.
    Slow,
    /// The connection is closed before the response body is complete.
    Reset,
    /// Requests get HTTP 200 with a truncated JSON body.
    Malformed,
}

impl ImpactMode {
    const ALL: [ImpactMode; 5] = [
        ImpactMode::Normal,
        ImpactMode::Error500,
        ImpactMode::Slow,
        ImpactMode::Reset,
        ImpactMode::Malformed,
    ];

    /// Returns the name used in the control API's JSON.
    pub fn name(self) -> &'static str {
        match self {
            ImpactMode::Normal => "normal",
            ImpactMode::Error500 => "error_500",
            ImpactMode::Slow => "slow",
            ImpactMode::Reset => "reset",
            ImpactMode::Malformed => "malformed",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.name() == name)
    }

    fn valid_names() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|mode| mode.name()).collect();
        names.join(", ")
    }
}

/// Everything that `POST /_mock/impact/reset` returns to its start value.
#[derive(Debug)]
struct Runtime {
    mode: ImpactMode,
    slow_delay: Duration,
    status_queries_until_done: u32,
    store: MessageStore,
    submit_requests: u64,
    status_requests: u64,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime {
            mode: ImpactMode::Normal,
            slow_delay: Duration::from_millis(DEFAULT_SLOW_DELAY_MS),
            status_queries_until_done: DEFAULT_STATUS_QUERIES_UNTIL_DONE,
            store: MessageStore::default(),
            submit_requests: 0,
            status_requests: 0,
        }
    }
}

/// Credentials and runtime state of the mock IMPACT.
#[derive(Clone, Debug)]
pub struct ImpactState {
    user: Arc<str>,
    password: Arc<str>,
    runtime: Arc<Mutex<Runtime>>,
}

impl ImpactState {
    /// Creates the state with the credentials from the command line.
    pub fn new(options: &ImpactOptions) -> Self {
        ImpactState {
            user: Arc::from(options.impact_user.as_str()),
            password: Arc::from(options.impact_password.as_str()),
            runtime: Arc::new(Mutex::new(Runtime::default())),
        }
    }

    /// Reports whether `user` and `password` are the configured credentials.
    fn is_authorized(&self, user: &str, password: &str) -> bool {
        user == &*self.user && password == &*self.password
    }

    /// Returns the fault mode and the delay of the `slow` mode.
    fn mode(&self) -> (ImpactMode, Duration) {
        let runtime = self.lock();
        (runtime.mode, runtime.slow_delay)
    }

    fn lock(&self) -> MutexGuard<'_, Runtime> {
        // Each update under the lock writes whole values, so the state stays consistent and
        // usable even if a panic poisoned the lock.
        self.runtime.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Builds the router of the mock IMPACT, control endpoints included.
pub fn router(state: ImpactState) -> Router {
    Router::new()
        .route(&format!("{BASE_PATH}/api/v1/messages"), post(api::submit))
        .route(
            &format!("{BASE_PATH}/api/v1/messages/{{id}}"),
            get(api::status),
        )
        .route(
            "/_mock/impact/mode",
            get(control::get_mode).put(control::put_mode),
        )
        .route(
            "/_mock/impact/progress",
            get(control::get_progress).put(control::put_progress),
        )
        .route("/_mock/impact/state", get(control::get_state))
        .route("/_mock/impact/reset", post(control::post_reset))
        .with_state(state)
}
