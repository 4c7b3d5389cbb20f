//! Control endpoints of the mock Kontur under `/_mock/kontur`: inbound documents, token expiry,
//! fault modes, counters and reset.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};

use super::faults::KonturMode;
use super::model::{party, DocumentDetails, InboundDocument, PARTIES};
use super::state::{now_rfc3339, KonturState};
use super::MAX_TOKEN_LIFETIME_SECONDS;
use crate::control::{DEFAULT_SLOW_DELAY_MS, MAX_SLOW_DELAY_MS};

/// Maximum number of documents that one `POST /_mock/kontur/inbox` injects.
pub const MAX_INJECT_COUNT: u32 = 1000;

/// Document type of injected documents when the request names none.
pub const DEFAULT_DOCUMENT_TYPE: &str = "Invoice";

/// Control API error: HTTP 400 with `{"error": message}`.
fn bad_request(message: String) -> Response {
    warn!(error = %message, "kontur control request rejected");
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

/// Parses a JSON control body, or returns an error message that shows the expected body.
fn parse_body<T: DeserializeOwned>(body: &Bytes, expected: &str) -> Result<T, String> {
    serde_json::from_slice(body)
        .map_err(|error| format!("invalid JSON body ({error}): expected {expected}"))
}

/// Body of `POST /_mock/kontur/inbox`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct InboxRequest {
    medi_id: String,
    document_type: Option<String>,
    document_number: Option<String>,
    document_date: Option<String>,
    text: Option<String>,
    count: Option<u32>,
    event_date_time: Option<String>,
}

/// `POST /_mock/kontur/inbox`: injects inbound documents into a box, each announced by a
/// `NewInboxMessage` event, and returns `{"mediId", "injected": [{eventId, eventPointer,
/// messageId, documentCirculationId, documentNumber}]}`.
///
/// `count` (1 to 1000, default 1) documents share the given details. A missing `documentType`
/// is `Invoice`, a missing `documentDate` is today (UTC), and missing numbers are generated.
/// Given an `eventDateTime` (RFC 3339), every event carries it, otherwise the current time.
pub async fn inject_inbox(State(state): State<KonturState>, body: Bytes) -> Response {
    let expected = r#"{"mediId": box GUID, "documentType"?, "documentNumber"?, "documentDate"?, "text"?, "count"?, "eventDateTime"?}"#;
    let request: InboxRequest = match parse_body(&body, expected) {
        Ok(request) => request,
        Err(message) => return bad_request(message),
    };

    let Some(party) = party(&request.medi_id) else {
        let boxes: Vec<&str> = PARTIES.iter().map(|party| party.medi_id).collect();
        return bad_request(format!(
            "unknown mediId \"{}\": the mock serves the boxes {}",
            request.medi_id,
            boxes.join(", ")
        ));
    };
    let count = request.count.unwrap_or(1);
    if !(1..=MAX_INJECT_COUNT).contains(&count) {
        return bad_request(format!(
            "count {count} is out of range: inject 1 to {MAX_INJECT_COUNT} documents at once"
        ));
    }
    if let Some(event_date_time) = &request.event_date_time {
        if chrono::DateTime::parse_from_rfc3339(event_date_time).is_err() {
            return bad_request(format!(
                "eventDateTime \"{event_date_time}\" is not RFC 3339, such as \"2025-06-02T09:15:00+03:00\""
            ));
        }
    }

    let today = now_rfc3339()[..10].to_owned();
    let document = InboundDocument {
        medi_id: party.medi_id,
        details: DocumentDetails {
            document_type: Some(
                request
                    .document_type
                    .unwrap_or_else(|| DEFAULT_DOCUMENT_TYPE.to_owned()),
            ),
            document_number: request.document_number,
            document_date: Some(request.document_date.unwrap_or(today)),
        },
        text: request.text,
        event_date_time: request.event_date_time,
    };
    let injected = state.inject(&document, count);

    info!(
        medi_id = party.medi_id,
        count, "kontur inbound documents injected"
    );
    Json(json!({ "mediId": party.medi_id, "injected": injected })).into_response()
}

/// `POST /_mock/kontur/expire-tokens`: invalidates every issued token now and returns
/// `{"expired": N}`, the number of tokens that were still valid.
pub async fn expire_tokens(State(state): State<KonturState>) -> Json<serde_json::Value> {
    let expired = state.expire_tokens();
    info!(expired, "kontur tokens expired");
    Json(json!({ "expired": expired }))
}

/// Body of `PUT /_mock/kontur/token-lifetime`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenLifetimeRequest {
    seconds: u64,
}

/// `GET /_mock/kontur/token-lifetime`: returns `{"seconds": N}`.
pub async fn get_token_lifetime(State(state): State<KonturState>) -> Json<serde_json::Value> {
    Json(json!({ "seconds": state.token_lifetime().as_secs() }))
}

/// `PUT /_mock/kontur/token-lifetime` with `{"seconds": N}` (1 to 86400): sets the lifetime of
/// tokens issued from now on and returns it. Tokens already issued keep their expiry.
pub async fn put_token_lifetime(State(state): State<KonturState>, body: Bytes) -> Response {
    let request: TokenLifetimeRequest =
        match parse_body(&body, r#"{"seconds": token lifetime in seconds}"#) {
            Ok(request) => request,
            Err(message) => return bad_request(message),
        };
    if !(1..=MAX_TOKEN_LIFETIME_SECONDS).contains(&request.seconds) {
        return bad_request(format!(
            "seconds {} is out of range: the token lifetime is 1 to {MAX_TOKEN_LIFETIME_SECONDS}",
            request.seconds
        ));
    }

    state.set_token_lifetime(Duration::from_secs(request.seconds));
    info!(seconds = request.seconds, "kontur token lifetime changed");
    Json(json!({ "seconds": request.seconds })).into_response()
}

/// Body of `PUT /_mock/kontur/mode`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeRequest {
    mode: String,
    delay_ms: Option<u64>,
}

fn mode_view(mode: KonturMode, slow_delay: Duration) -> Json<serde_json::Value> {
    if mode == KonturMode::Slow {
        let delay_ms = u64::try_from(slow_delay.as_millis()).unwrap_or(u64::MAX);
        return Json(json!({ "mode": mode.name(), "delay_ms": delay_ms }));
    }
    Json(json!({ "mode": mode.name() }))
}

/// `GET /_mock/kontur/mode`: returns `{"mode": "..."}`, with `delay_ms` added in the `slow` mode.
pub async fn get_mode(State(state): State<KonturState>) -> Json<serde_json::Value> {
    let (mode, slow_delay) = state.mode();
    mode_view(mode, slow_delay)
}

/// `PUT /_mock/kontur/mode` with `{"mode": "...", "delay_ms": N}`: sets the fault mode and
/// returns it as `GET` does. `delay_ms` defaults to 2000 and is used only by `slow`.
pub async fn put_mode(State(state): State<KonturState>, body: Bytes) -> Response {
    let expected = format!(
        r#"{{"mode": one of {}, "delay_ms": milliseconds for slow}}"#,
        KonturMode::valid_names()
    );
    let request: ModeRequest = match parse_body(&body, &expected) {
        Ok(request) => request,
        Err(message) => return bad_request(message),
    };

    let Some(mode) = KonturMode::from_name(&request.mode) else {
        return bad_request(format!(
            "unknown mode \"{}\": valid modes are {}",
            request.mode,
            KonturMode::valid_names()
        ));
    };
    let delay_ms = request.delay_ms.unwrap_or(DEFAULT_SLOW_DELAY_MS);
    if delay_ms > MAX_SLOW_DELAY_MS {
        return bad_request(format!(
            "delay_ms {delay_ms} is too large: the maximum is {MAX_SLOW_DELAY_MS}"
        ));
    }

    let slow_delay = Duration::from_millis(delay_ms);
    state.set_mode(mode, slow_delay);
    info!(mode = mode.name(), delay_ms, "kontur mode changed");
    mode_view(mode, slow_delay).into_response()
}

/// `GET /_mock/kontur/stats`: returns the request counters (`token_requests`, `tokens_issued`,
/// `parties_requests`, `events_requests`, `message_fetches`, `message_posts`, `unauthorized`),
/// `events_by_box`, `messages_stored`, `live_tokens`, `token_lifetime_seconds` and `mode`.
/// Request counters include requests that a fault mode or a check rejected.
pub async fn get_stats(State(state): State<KonturState>) -> Json<serde_json::Value> {
    Json(state.stats())
}

/// `POST /_mock/kontur/reset`: drops tokens, events and messages, zeroes the counters, restores
/// the mode and the token lifetime, and responds with 204.
pub async fn post_reset(State(state): State<KonturState>) -> StatusCode {
    state.reset();
    info!("kontur mock state reset");
    StatusCode::NO_CONTENT
}
