//! The mocked IMPACT endpoints, `POST /impact/api/v1/messages` and
//! `GET /impact/api/v1/messages/{id}`, with HTTP Basic authentication and the fault modes.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::store::{Submission, SubmitOutcome, MAX_KEY_CHARS, MAX_MESSAGES, MESSAGE_TYPES};
use super::{ImpactMode, ImpactState};

/// Header that carries the idempotency key of a submit.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Body of the `malformed` mode: the start of a status document, cut off.
const MALFORMED_BODY: &str = r#"{"Status": "QUEU"#;

/// Body of the `reset` mode, sent under a `Content-Length` it does not reach, so the server
/// closes the connection before the response is complete.
const RESET_BODY: &str = r#"{"Status""#;

/// `Content-Length` announced in the `reset` mode.
const RESET_ANNOUNCED_LENGTH: &str = "4096";

/// An IMPACT error response: `{"error": {"code": ..., "message": ...}}` with `status`.
#[derive(Debug)]
struct ImpactError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ImpactError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ImpactError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ImpactError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"IMPACT\""),
            );
        }
        response
    }
}

/// Checks the `Authorization: Basic` header against the configured credentials.
fn check_credentials(state: &ImpactState, headers: &HeaderMap) -> Result<(), ImpactError> {
    let unauthorized =
        |message: &str| ImpactError::new(StatusCode::UNAUTHORIZED, "unauthorized", message);

    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "missing Authorization header: send HTTP Basic credentials",
        ));
    };
    let encoded = value
        .to_str()
        .ok()
        .and_then(|text| text.strip_prefix("Basic "))
        .ok_or_else(|| unauthorized("the Authorization header is not HTTP Basic"))?;
    let decoded = BASE64
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| unauthorized("the Basic credentials are not Base64 of UTF-8 text"))?;
    let (user, password) = decoded.split_once(':').ok_or_else(|| {
        unauthorized("the Basic credentials have no \":\" between user and password")
    })?;

    if !state.is_authorized(user, password) {
        warn!(user, "impact request with invalid credentials");
        return Err(unauthorized(
            "invalid user name or password: use the --impact-user and --impact-password that uig-mock was started with",
        ));
    }
    Ok(())
}

/// Returns the idempotency key of a submit, or 400 when it is missing, empty or too long.
fn idempotency_key(headers: &HeaderMap) -> Result<String, ImpactError> {
    let invalid = |message: String| {
        ImpactError::new(StatusCode::BAD_REQUEST, "invalid_idempotency_key", message)
    };

    let Some(value) = headers.get(IDEMPOTENCY_HEADER) else {
        return Err(invalid(
            "missing Idempotency-Key header: every submit needs a key that stays the same when it is repeated"
                .to_string(),
        ));
    };
    let key = value
        .to_str()
        .map_err(|_| invalid("the Idempotency-Key header is not visible ASCII".to_string()))?;
    if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
        return Err(invalid(format!(
            "the Idempotency-Key header must have 1 to {MAX_KEY_CHARS} characters"
        )));
    }
    Ok(key.to_string())
}

/// Parses and checks a submit body: 400 when it is not a JSON object with a string `type`, a
/// string `externalId` and a `payload`, 422 when the type is unknown or the payload is not an
/// object.
fn parse_submission(body: &Bytes) -> Result<Submission, ImpactError> {
    let invalid =
        |message: String| ImpactError::new(StatusCode::BAD_REQUEST, "invalid_request", message);
    let expected = r#"expected {"type": "claim", "externalId": "...", "payload": {...}}"#;

    let value: Value = serde_json::from_slice(body)
        .map_err(|error| invalid(format!("the body is not JSON ({error}): {expected}")))?;
    let Some(object) = value.as_object() else {
        return Err(invalid(format!(
            "the body is not a JSON object: {expected}"
        )));
    };
    let Some(message_type) = object.get("type").and_then(Value::as_str) else {
        return Err(invalid(format!(
            "\"type\" is missing or not a string: {expected}"
        )));
    };
    let Some(external_id) = object.get("externalId").and_then(Value::as_str) else {
        return Err(invalid(format!(
            "\"externalId\" is missing or not a string: {expected}"
        )));
    };
    let Some(payload) = object.get("payload") else {
        return Err(invalid(format!("\"payload\" is missing: {expected}")));
    };

    if !MESSAGE_TYPES.contains(&message_type) {
        return Err(ImpactError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_type",
            format!(
                "unknown message type \"{message_type}\": valid types are {}",
                MESSAGE_TYPES.join(", ")
            ),
        ));
    }
    if !payload.is_object() {
        return Err(ImpactError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
            format!("\"payload\" must be a JSON object, got {payload}"),
        ));
    }

    Ok(Submission {
        message_type: message_type.to_string(),
        external_id: external_id.to_string(),
        payload: payload.clone(),
    })
}

/// Builds the response to a submit in the `normal` mode.
fn submit_response(
    state: &ImpactState,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ImpactError> {
    state.lock().submit_requests += 1;
    check_credentials(state, headers)?;
    let key = idempotency_key(headers)?;
    let submission = parse_submission(body)?;

    let outcome = {
        let mut runtime = state.lock();
        let queries_until_done = runtime.status_queries_until_done;
        runtime.store.submit(&key, submission, queries_until_done)
    };
    match outcome {
        SubmitOutcome::Created(stored) => {
            info!(id = %stored.id, key, status = stored.status().name(), "impact message stored");
            Ok((StatusCode::ACCEPTED, Json(stored.document())).into_response())
        }
        SubmitOutcome::Replayed(stored) => {
            info!(id = %stored.id, key, submit_count = stored.submit_count, "impact submit repeated, nothing stored");
            let mut response = (StatusCode::OK, Json(stored.document())).into_response();
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(response)
        }
        SubmitOutcome::Conflict(stored) => Err(ImpactError::new(
            StatusCode::CONFLICT,
            "idempotency_conflict",
            format!(
                "idempotency key \"{key}\" was used for {} with another type, externalId or payload: use a new key for a new message",
                stored.id
            ),
        )),
        SubmitOutcome::Full => Err(ImpactError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_full",
            format!("the mock stores at most {MAX_MESSAGES} messages: POST /_mock/impact/reset to empty it"),
        )),
    }
}

/// Builds the response to a status query in the `normal` mode.
fn status_response(
    state: &ImpactState,
    headers: &HeaderMap,
    id: &str,
) -> Result<Response, ImpactError> {
    state.lock().status_requests += 1;
    check_credentials(state, headers)?;

    let Some(stored) = state.lock().store.query(id) else {
        return Err(ImpactError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no message with id \"{id}\""),
        ));
    };
    info!(
        id,
        status = stored.status().name(),
        status_queries = stored.status_queries,
        "impact status queried"
    );
    Ok(Json(stored.document()).into_response())
}

/// Replaces the normal response as the fault mode dictates.
fn apply_fault(mode: ImpactMode, response: Response) -> Response {
    match mode {
        ImpactMode::Normal | ImpactMode::Slow => response,
        ImpactMode::Error500 => ImpactError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal server error (mock mode error_500)",
        )
        .into_response(),
        ImpactMode::Malformed => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            MALFORMED_BODY,
        )
            .into_response(),
        ImpactMode::Reset => {
            let mut response = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from(RESET_BODY),
            )
                .into_response();
            response.headers_mut().insert(
                header::CONTENT_LENGTH,
                HeaderValue::from_static(RESET_ANNOUNCED_LENGTH),
            );
            response
        }
    }
}

/// Runs `respond` in the current fault mode: waits first in the `slow` mode, and breaks the
/// response afterwards in the fault modes.
async fn in_mode(
    state: &ImpactState,
    respond: impl FnOnce() -> Result<Response, ImpactError>,
) -> Response {
    let (mode, slow_delay) = state.mode();
    if mode == ImpactMode::Slow {
        tokio::time::sleep(slow_delay).await;
    }

    let response = respond().unwrap_or_else(|error| {
        info!(
            status = error.status.as_u16(),
            code = error.code,
            "impact request rejected"
        );
        error.into_response()
    });
    apply_fault(mode, response)
}

/// `POST /impact/api/v1/messages`: stores a message once per idempotency key and returns its
/// status document, 202 for a new message and 200 for a repeat.
pub async fn submit(State(state): State<ImpactState>, headers: HeaderMap, body: Bytes) -> Response {
    in_mode(&state, || submit_response(&state, &headers, &body)).await
}

/// `GET /impact/api/v1/messages/{id}`: counts a status query and returns the status document.
pub async fn status(
    State(state): State<ImpactState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    in_mode(&state, || status_response(&state, &headers, &id)).await
}
