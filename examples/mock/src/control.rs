//! Shared mock state and the `/_mock` control endpoints: fault modes, counters, callback sink.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{info, warn};

/// Paid requests on the mock AVINFO account at start and after `POST /_mock/reset`.
pub const START_BALANCE: u64 = 1000;

/// Delay of the `slow` mode when `PUT /_mock/avinfo/mode` sends no `delay_ms`, in milliseconds.
pub const DEFAULT_SLOW_DELAY_MS: u64 = 2000;

/// Maximum `delay_ms` of the `slow` mode (two minutes), so a typo cannot hang a test run.
pub const MAX_SLOW_DELAY_MS: u64 = 120_000;

/// Maximum number of stored callbacks. The oldest are dropped first, so a long demo cannot
/// exhaust memory.
pub const MAX_STORED_CALLBACKS: usize = 10_000;

/// Callback request headers that the sink stores, as the Standard Webhooks scheme names them.
const WEBHOOK_HEADERS: [&str; 3] = ["webhook-id", "webhook-timestamp", "webhook-signature"];

/// Fault mode of the mock AVINFO API, switched at runtime by `PUT /_mock/avinfo/mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AvinfoMode {
    /// Lookups get the responses that the protocol describes.
    Normal,
    /// Lookups get HTTP 200 with `success: 0` and error code `source_unavailable`.
    Outage,
    /// Lookups get HTTP 402 with error code `no_balance`, whatever the balance.
    NoBalance,
    /// Lookups get HTTP 500 with a JSON error body.
    Error500,
    /// Lookups get the `Normal` responses after the configured delay.
    Slow,
}

impl AvinfoMode {
    const ALL: [AvinfoMode; 5] = [
        AvinfoMode::Normal,
        AvinfoMode::Outage,
        AvinfoMode::NoBalance,
        AvinfoMode::Error500,
        AvinfoMode::Slow,
    ];

    /// Returns the name used in the control API's JSON.
    pub fn name(self) -> &'static str {
        match self {
            AvinfoMode::Normal => "normal",
            AvinfoMode::Outage => "outage",
            AvinfoMode::NoBalance => "no_balance",
            AvinfoMode::Error500 => "error_500",
            AvinfoMode::Slow => "slow",
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

/// One request received by the callback sink, as `GET /_mock/callbacks` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct StoredCallback {
    /// Receive time, RFC 3339 in UTC.
    pub received_at: String,
    /// HTTP status the sink responded with: 200, or 500 while `fail_next` was above zero.
    pub status: u16,
    /// The `webhook-id`, `webhook-timestamp` and `webhook-signature` headers, null when absent.
    pub headers: BTreeMap<&'static str, Option<String>>,
    /// Raw request body, decoded as UTF-8 with invalid bytes replaced by U+FFFD.
    pub body: String,
}

/// Everything that `POST /_mock/reset` returns to its start value.
#[derive(Debug)]
struct RuntimeState {
    mode: AvinfoMode,
    slow_delay: Duration,
    balance: u64,
    requests: u64,
    requests_by_lookup: BTreeMap<String, u64>,
    callbacks: VecDeque<StoredCallback>,
    /// Callbacks received since the last reset, including those no longer stored.
    callbacks_total: u64,
    callback_failures_left: u64,
}

impl RuntimeState {
    fn starting_with(balance: u64) -> Self {
        RuntimeState {
            mode: AvinfoMode::Normal,
            slow_delay: Duration::from_millis(DEFAULT_SLOW_DELAY_MS),
            balance,
            requests: 0,
            requests_by_lookup: BTreeMap::new(),
            callbacks: VecDeque::new(),
            callbacks_total: 0,
            callback_failures_left: 0,
        }
    }
}

/// State shared by all handlers: the AVINFO API key and the resettable runtime state.
#[derive(Clone, Debug)]
pub struct MockState {
    avinfo_key: Arc<str>,
    /// Balance of the AVINFO account at start and after each reset.
    start_balance: u64,
    runtime: Arc<Mutex<RuntimeState>>,
}

impl MockState {
    /// Creates the state with `avinfo_key` as the only accepted AVINFO API key.
    pub fn new(avinfo_key: &str) -> Self {
        MockState::with_balance(avinfo_key, START_BALANCE)
    }

    /// Creates the state with an AVINFO account of `balance` paid requests (after each reset too).
    pub fn with_balance(avinfo_key: &str, balance: u64) -> Self {
        MockState {
            avinfo_key: Arc::from(avinfo_key),
            start_balance: balance,
            runtime: Arc::new(Mutex::new(RuntimeState::starting_with(balance))),
        }
    }

    /// Returns the accepted AVINFO API key.
    pub fn avinfo_key(&self) -> &str {
        &self.avinfo_key
    }

    /// Returns the current AVINFO fault mode and the delay of the `slow` mode.
    pub fn avinfo_mode(&self) -> (AvinfoMode, Duration) {
        let runtime = self.lock();
        (runtime.mode, runtime.slow_delay)
    }

    /// Counts one AVINFO request. `lookup` is the counter key such as `vin:XTA21099043765432`,
    /// or `None` when the request named no single VIN or plate.
    pub fn record_avinfo_request(&self, lookup: Option<&str>) {
        let mut runtime = self.lock();
        runtime.requests += 1;

        if let Some(lookup) = lookup {
            *runtime
                .requests_by_lookup
                .entry(lookup.to_owned())
                .or_insert(0) += 1;
        }
    }

    /// Takes one paid request from the balance and returns the balance left,
    /// or `None` when the balance is already zero.
    pub fn charge_request(&self) -> Option<u64> {
        let mut runtime = self.lock();
        runtime.balance = runtime.balance.checked_sub(1)?;
        Some(runtime.balance)
    }

    /// Sets the balance, so tests can reach zero without a thousand requests.
    #[cfg(test)]
    pub fn set_balance(&self, balance: u64) {
        self.lock().balance = balance;
    }

    fn lock(&self) -> MutexGuard<'_, RuntimeState> {
        // Each update under the lock writes whole values, so the state stays consistent and
        // usable even if a panic poisoned the lock.
        self.runtime.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Body of `PUT /_mock/avinfo/mode`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeRequest {
    mode: String,
    delay_ms: Option<u64>,
}

/// Body of `PUT /_mock/callbacks/mode`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbackModeRequest {
    fail_next: u64,
}

/// Control API error: HTTP 400 with `{"error": message}`.
fn bad_request(message: String) -> Response {
    warn!(error = %message, "control request rejected");
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

/// Parses a JSON control body, or returns an error message that shows the expected body.
fn parse_body<T: DeserializeOwned>(body: &Bytes, expected: &str) -> Result<T, String> {
    serde_json::from_slice(body)
        .map_err(|error| format!("invalid JSON body ({error}): expected {expected}"))
}

fn mode_view(mode: AvinfoMode, slow_delay: Duration) -> Json<serde_json::Value> {
    if mode == AvinfoMode::Slow {
        let delay_ms = u64::try_from(slow_delay.as_millis()).unwrap_or(u64::MAX);
        return Json(json!({ "mode": mode.name(), "delay_ms": delay_ms }));
    }
    Json(json!({ "mode": mode.name() }))
}

/// `GET /_mock/avinfo/mode`: returns `{"mode": "..."}`, with `delay_ms` added in the `slow` mode.
pub async fn get_avinfo_mode(State(state): State<MockState>) -> Json<serde_json::Value> {
    let (mode, slow_delay) = state.avinfo_mode();
    mode_view(mode, slow_delay)
}

/// `PUT /_mock/avinfo/mode`: sets the AVINFO fault mode from `{"mode": "...", "delay_ms": N}`
/// and returns it as `GET` does. `delay_ms` defaults to 2000 and is used only by `slow`.
pub async fn put_avinfo_mode(State(state): State<MockState>, body: Bytes) -> Response {
    let expected = format!(
        r#"{{"mode": one of {}, "delay_ms": milliseconds for slow}}"#,
        AvinfoMode::valid_names()
    );
    let request: ModeRequest = match parse_body(&body, &expected) {
        Ok(request) => request,
        Err(message) => return bad_request(message),
    };

    let Some(mode) = AvinfoMode::from_name(&request.mode) else {
        return bad_request(format!(
            "unknown mode \"{}\": valid modes are {}",
            request.mode,
            AvinfoMode::valid_names()
        ));
    };
    let delay_ms = request.delay_ms.unwrap_or(DEFAULT_SLOW_DELAY_MS);
    if delay_ms > MAX_SLOW_DELAY_MS {
        return bad_request(format!(
            "delay_ms {delay_ms} is too large: the maximum is {MAX_SLOW_DELAY_MS}"
        ));
    }

    let slow_delay = Duration::from_millis(delay_ms);
    {
        let mut runtime = state.lock();
        runtime.mode = mode;
        runtime.slow_delay = slow_delay;
    }
    info!(mode = mode.name(), delay_ms, "avinfo mode changed");
    mode_view(mode, slow_delay).into_response()
}

/// `GET /_mock/stats`: returns the AVINFO request counters, the balance and the number of
/// stored callbacks. `requests` counts every AVINFO request, rejected ones included.
pub async fn get_stats(State(state): State<MockState>) -> Json<serde_json::Value> {
    let runtime = state.lock();
    Json(json!({
        "avinfo": {
            "requests": runtime.requests,
            "by_key": runtime.requests_by_lookup,
            "balance": runtime.balance,
            "mode": runtime.mode.name(),
        },
        "callbacks": {
            "received": runtime.callbacks.len(),
            "total": runtime.callbacks_total,
            "fail_next": runtime.callback_failures_left,
        },
    }))
}

/// `POST /_mock/reset`: returns counters, mode, balance and the callback sink to their start
/// values and responds with 204.
pub async fn post_reset(State(state): State<MockState>) -> StatusCode {
    *state.lock() = RuntimeState::starting_with(state.start_balance);
    info!("mock state reset");
    StatusCode::NO_CONTENT
}

/// `POST /_mock/callbacks`: stores the webhook headers and the body, then responds with 200,
/// or with 500 while failures queued by `PUT /_mock/callbacks/mode` remain.
pub async fn receive_callback(
    State(state): State<MockState>,
    axum::extract::Query(query): axum::extract::Query<CallbackQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let stored_headers: BTreeMap<&'static str, Option<String>> = WEBHOOK_HEADERS
        .into_iter()
        .map(|name| {
            let value = headers
                .get(name)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
            (name, value)
        })
        .collect();
    let webhook_id = stored_headers["webhook-id"].clone().unwrap_or_default();

    let (status, failures_left) = {
        let mut runtime = state.lock();
        let status = if runtime.callback_failures_left > 0 {
            runtime.callback_failures_left -= 1;
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        };
        runtime.callbacks_total += 1;
        if runtime.callbacks.len() >= MAX_STORED_CALLBACKS {
            runtime.callbacks.pop_front();
        }
        runtime.callbacks.push_back(StoredCallback {
            received_at: chrono::Utc::now().to_rfc3339(),
            status: status.as_u16(),
            headers: stored_headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        (status, runtime.callback_failures_left)
    };

    info!(
        webhook_id,
        status = status.as_u16(),
        body_bytes = body.len(),
        "callback received"
    );
    if let Some(delay_ms) = query.delay_ms {
        // Stored first, responded to late: the sender times out after its request arrived.
        tokio::time::sleep(Duration::from_millis(delay_ms.min(MAX_SLOW_DELAY_MS))).await;
    }
    if status == StatusCode::OK {
        return (status, Json(json!({ "received": true }))).into_response();
    }
    let message = format!(
        "callback failed on purpose (mock fail_next): {failures_left} more failures queued"
    );
    (status, Json(json!({ "error": message }))).into_response()
}

/// `GET /_mock/callbacks`: returns the stored callbacks as a JSON array, newest last.
pub async fn list_callbacks(State(state): State<MockState>) -> Json<VecDeque<StoredCallback>> {
    Json(state.lock().callbacks.clone())
}

/// `GET /_mock/callbacks/mode`: returns `{"fail_next": N}`, the failures still queued.
pub async fn get_callbacks_mode(State(state): State<MockState>) -> Json<serde_json::Value> {
    Json(json!({ "fail_next": state.lock().callback_failures_left }))
}

/// `PUT /_mock/callbacks/mode`: makes the sink respond with 500 to the next `fail_next` callbacks
/// and returns `{"fail_next": N}`.
pub async fn put_callbacks_mode(State(state): State<MockState>, body: Bytes) -> Response {
    let request: CallbackModeRequest = match parse_body(
        &body,
        r#"{"fail_next": number of callbacks to fail with 500}"#,
    ) {
        Ok(request) => request,
        Err(message) => return bad_request(message),
    };

    state.lock().callback_failures_left = request.fail_next;
    info!(fail_next = request.fail_next, "callback failures queued");
    Json(json!({ "fail_next": request.fail_next })).into_response()
}

/// Query of `POST /_mock/callbacks`.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    /// Delay of the response in milliseconds (at most two minutes); the request is stored first.
    pub delay_ms: Option<u64>,
}

/// Query of `POST /_mock/redirect`.
#[derive(Debug, Deserialize)]
pub struct RedirectQuery {
    /// Status of the response: 301, 302, 303, 307 or 308.
    pub status: u16,
    /// Value of the `Location` header.
    pub to: String,
}

/// `POST /_mock/redirect?status=307&to=/_mock/callbacks`: responds with a redirect, for callback
/// redirect tests.
pub async fn redirect(axum::extract::Query(query): axum::extract::Query<RedirectQuery>) -> Response {
    let allowed = [301, 302, 303, 307, 308];
    if !allowed.contains(&query.status) {
        let body = json!({"error": format!("status must be one of {allowed:?}")});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    let status = StatusCode::from_u16(query.status).unwrap_or(StatusCode::TEMPORARY_REDIRECT);
    (status, [(axum::http::header::LOCATION, query.to)]).into_response()
}
