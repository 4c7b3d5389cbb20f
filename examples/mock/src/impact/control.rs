//! Control endpoints of the mock IMPACT under `/_mock/impact`: fault mode, progress, state and
//! reset.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::{ImpactMode, ImpactState, Runtime, DEFAULT_SLOW_DELAY_MS, MAX_SLOW_DELAY_MS};

/// Maximum `status_queries_until_done`, so a typo cannot leave messages pending for good.
pub const MAX_STATUS_QUERIES_UNTIL_DONE: u32 = 1000;

/// Body of `PUT /_mock/impact/mode`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeRequest {
    mode: String,
    delay_ms: Option<u64>,
}

/// Body of `PUT /_mock/impact/progress`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgressRequest {
    status_queries_until_done: u32,
}

/// Control API error: HTTP 400 with `{"error": message}`.
fn bad_request(message: String) -> Response {
    warn!(error = %message, "impact control request rejected");
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

/// Parses a JSON control body, or returns an error message that shows the expected body.
fn parse_body<T: DeserializeOwned>(body: &Bytes, expected: &str) -> Result<T, String> {
    serde_json::from_slice(body)
        .map_err(|error| format!("invalid JSON body ({error}): expected {expected}"))
}

fn mode_view(mode: ImpactMode, slow_delay: Duration) -> Value {
    if mode == ImpactMode::Slow {
        let delay_ms = u64::try_from(slow_delay.as_millis()).unwrap_or(u64::MAX);
        return json!({ "mode": mode.name(), "delay_ms": delay_ms });
    }
    json!({ "mode": mode.name() })
}

/// `GET /_mock/impact/mode`: returns `{"mode": "..."}`, with `delay_ms` added in the `slow` mode.
pub async fn get_mode(State(state): State<ImpactState>) -> Json<Value> {
    let (mode, slow_delay) = state.mode();
    Json(mode_view(mode, slow_delay))
}

/// `PUT /_mock/impact/mode`: sets the fault mode from `{"mode": "...", "delay_ms": N}` and
/// returns it as `GET` does. `delay_ms` defaults to 2000 and is used only by `slow`.
pub async fn put_mode(State(state): State<ImpactState>, body: Bytes) -> Response {
    let expected = format!(
        r#"{{"mode": one of {}, "delay_ms": milliseconds for slow}}"#,
        ImpactMode::valid_names()
    );
    let request: ModeRequest = match parse_body(&body, &expected) {
        Ok(request) => request,
        Err(message) => return bad_request(message),
    };

    let Some(mode) = ImpactMode::from_name(&request.mode) else {
        return bad_request(format!(
            "unknown mode \"{}\": valid modes are {}",
            request.mode,
            ImpactMode::valid_names()
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
    info!(mode = mode.name(), delay_ms, "impact mode changed");
    Json(mode_view(mode, slow_delay)).into_response()
}

/// `GET /_mock/impact/progress`: returns `{"status_queries_until_done": N}`.
pub async fn get_progress(State(state): State<ImpactState>) -> Json<Value> {
    let queries = state.lock().status_queries_until_done;
    Json(json!({ "status_queries_until_done": queries }))
}

/// `PUT /_mock/impact/progress`: sets how many status queries a message submitted from now on
/// takes to finish, from `{"status_queries_until_done": N}`. 0 finishes messages at submit.
pub async fn put_progress(State(state): State<ImpactState>, body: Bytes) -> Response {
    let request: ProgressRequest = match parse_body(
        &body,
        r#"{"status_queries_until_done": number of status queries, 0 to finish at submit}"#,
    ) {
        Ok(request) => request,
        Err(message) => return bad_request(message),
    };
    let queries = request.status_queries_until_done;
    if queries > MAX_STATUS_QUERIES_UNTIL_DONE {
        return bad_request(format!(
            "status_queries_until_done {queries} is too large: the maximum is {MAX_STATUS_QUERIES_UNTIL_DONE}"
        ));
    }

    state.lock().status_queries_until_done = queries;
    info!(
        status_queries_until_done = queries,
        "impact progress changed"
    );
    Json(json!({ "status_queries_until_done": queries })).into_response()
}

/// `GET /_mock/impact/state`: returns the mode, the progress setting, request counters, every
/// stored message and the submits per idempotency key.
pub async fn get_state(State(state): State<ImpactState>) -> Json<Value> {
    let runtime = state.lock();
    Json(json!({
        "mode": mode_view(runtime.mode, runtime.slow_delay),
        "status_queries_until_done": runtime.status_queries_until_done,
        "requests": {
            "submit": runtime.submit_requests,
            "status": runtime.status_requests,
        },
        "submissions": runtime.store.views(),
        "submit_counts": runtime.store.submit_counts(),
    }))
}

/// `POST /_mock/impact/reset`: drops every stored message and returns the mode, the progress
/// setting and the counters to their start values. Responds with 204.
pub async fn post_reset(State(state): State<ImpactState>) -> StatusCode {
    *state.lock() = Runtime::default();
    info!("impact mock state reset");
    StatusCode::NO_CONTENT
}
