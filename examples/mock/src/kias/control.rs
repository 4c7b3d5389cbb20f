//! Control endpoints of the mock KIAS under `/_mock/kias`: fault modes, response encodings,
//! session expiry, the stored state and reset.

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

use super::encoding::ResponseEncoding;
use super::state::{FaultPlan, KiasMode, KiasState, Runtime};
use crate::control::{DEFAULT_SLOW_DELAY_MS, MAX_SLOW_DELAY_MS};

/// Control API error: HTTP 400 with `{"error": message}`.
fn bad_request(message: String) -> Response {
    warn!(error = %message, "kias control request rejected");
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

/// Parses a JSON control body, or returns an error message that shows the expected body.
fn parse_body<T: DeserializeOwned>(body: &Bytes, expected: &str) -> Result<T, String> {
    serde_json::from_slice(body)
        .map_err(|error| format!("invalid JSON body ({error}): expected {expected}"))
}

/// Body of `PUT /_mock/kias/mode`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeRequest {
    mode: String,
    delay_ms: Option<u64>,
    count: Option<u64>,
    procedure: Option<String>,
}

/// Body of `PUT /_mock/kias/encoding`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EncodingRequest {
    encoding: String,
}

fn mode_view(plan: &FaultPlan) -> Value {
    let mut view = json!({ "mode": plan.mode.name() });
    if plan.mode == KiasMode::Slow {
        view["delay_ms"] = json!(u64::try_from(plan.delay.as_millis()).unwrap_or(u64::MAX));
    }
    if let Some(remaining) = plan.remaining {
        view["count"] = json!(remaining);
    }
    if let Some(procedure) = &plan.procedure {
        view["procedure"] = json!(procedure);
    }
    view
}

/// `GET /_mock/kias/mode`: returns `{"mode"}`, with `delay_ms` in the `slow` mode, `count` when
/// the mode ends after that many more calls, and `procedure` when it affects only that one.
pub async fn get_mode(State(state): State<KiasState>) -> Json<Value> {
    Json(mode_view(&state.lock().fault))
}

/// `PUT /_mock/kias/mode`: sets the fault mode from `{"mode", "delay_ms"?, "count"?,
/// "procedure"?}` and returns it as `GET` does.
///
/// `delay_ms` (default 2000, at most 120000) is used only by `slow`. `count` limits the mode to
/// that many calls, after which the mock returns to `normal`. `procedure` limits it to calls of
/// that procedure, such as `User_A7Create`. `normal` clears both limits.
pub async fn put_mode(State(state): State<KiasState>, body: Bytes) -> Response {
    let expected = format!(
        r#"{{"mode": one of {}, "delay_ms"?: milliseconds for slow, "count"?: calls affected, "procedure"?: procedure name}}"#,
        KiasMode::valid_names()
    );
    let request: ModeRequest = match parse_body(&body, &expected) {
        Ok(request) => request,
        Err(message) => return bad_request(message),
    };

    let Some(mode) = KiasMode::from_name(&request.mode) else {
        return bad_request(format!(
            "unknown mode \"{}\": valid modes are {}",
            request.mode,
            KiasMode::valid_names()
        ));
    };
    let delay_ms = request.delay_ms.unwrap_or(DEFAULT_SLOW_DELAY_MS);
    if delay_ms > MAX_SLOW_DELAY_MS {
        return bad_request(format!(
            "delay_ms {delay_ms} is too large: the maximum is {MAX_SLOW_DELAY_MS}"
        ));
    }
    if request.count == Some(0) {
        return bad_request(
            "count 0 is invalid: give the number of calls to affect, or leave count out to affect every call"
                .to_owned(),
        );
    }
    if request
        .procedure
        .as_deref()
        .is_some_and(|procedure| procedure.trim().is_empty())
    {
        return bad_request(
            "procedure is empty: name a procedure such as \"User_A7Create\", or leave it out"
                .to_owned(),
        );
    }

    let plan = if mode == KiasMode::Normal {
        FaultPlan::default()
    } else {
        FaultPlan {
            mode,
            delay: Duration::from_millis(delay_ms),
            remaining: request.count,
            procedure: request
                .procedure
                .map(|procedure| procedure.trim().to_owned()),
        }
    };
    let view = mode_view(&plan);
    state.lock().fault = plan;
    info!(mode = mode.name(), %view, "kias mode changed");
    Json(view).into_response()
}

/// `GET /_mock/kias/encoding`: returns `{"encoding"}`.
pub async fn get_encoding(State(state): State<KiasState>) -> Json<Value> {
    Json(json!({ "encoding": state.lock().encoding.name() }))
}

/// `PUT /_mock/kias/encoding`: sets the encoding of SOAP responses from `{"encoding"}` and
/// returns it as `GET` does.
pub async fn put_encoding(State(state): State<KiasState>, body: Bytes) -> Response {
    let expected = format!(
        r#"{{"encoding": one of {}}}"#,
        ResponseEncoding::valid_names()
    );
    let request: EncodingRequest = match parse_body(&body, &expected) {
        Ok(request) => request,
        Err(message) => return bad_request(message),
    };
    let Some(encoding) = ResponseEncoding::from_name(&request.encoding) else {
        return bad_request(format!(
            "unknown encoding \"{}\": valid encodings are {}",
            request.encoding,
            ResponseEncoding::valid_names()
        ));
    };

    state.lock().encoding = encoding;
    info!(encoding = encoding.name(), "kias response encoding changed");
    Json(json!({ "encoding": encoding.name() })).into_response()
}

/// `GET /_mock/kias/state`: returns the counters (`auth_count`, `sessions`, `requests`,
/// `calls`), the stored `receipts`, `payments` and `notifications`, the mode and the encoding.
pub async fn get_state(State(state): State<KiasState>) -> Json<Value> {
    let runtime = state.lock();
    let payments: Vec<_> = runtime.confirmations.values().collect();
    Json(json!({
        "auth_count": runtime.auth_count,
        "sessions": runtime.sessions.len(),
        "requests": {
            "total": runtime.requests,
            "by_soap_version": runtime.requests_by_version,
        },
        "calls": runtime.calls_by_procedure,
        "receipts": runtime.receipts,
        "payments": payments,
        "notifications": runtime.notifications,
        "mode": mode_view(&runtime.fault),
        "encoding": runtime.encoding.name(),
    }))
}

/// `POST /_mock/kias/expire-sessions`: ends every session now, so the next call with an old
/// `Sid` gets error `001`, and returns `{"expired": N}`.
pub async fn expire_sessions(State(state): State<KiasState>) -> Json<Value> {
    let expired = {
        let mut runtime = state.lock();
        let count = runtime.sessions.len();
        runtime.sessions.clear();
        count
    };
    info!(expired, "kias sessions expired");
    Json(json!({ "expired": expired }))
}

/// `POST /_mock/kias/reset`: returns sessions, counters, stored records, mode and encoding to
/// their start values and responds with 204.
pub async fn post_reset(State(state): State<KiasState>) -> StatusCode {
    *state.lock() = Runtime::default();
    info!("kias mock state reset");
    StatusCode::NO_CONTENT
}
