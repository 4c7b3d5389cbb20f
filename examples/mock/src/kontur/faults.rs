//! Request counting and the fault modes of the mock Kontur, applied around every vendor route.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tracing::info;

use super::api::vendor_error;
use super::state::{KonturState, RequestKind};

/// Maximum body size that the `malformed` mode reads before cutting it, in bytes.
const MAX_MALFORMED_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Fault mode of the mock Kontur, switched at runtime by `PUT /_mock/kontur/mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KonturMode {
    /// Requests get the responses that the protocol describes.
    Normal,
    /// Requests get HTTP 500 with the vendor error body and have no effect.
    Error500,
    /// Requests get the `Normal` responses after the configured delay.
    Slow,
    /// The connection is closed without a response, and the request has no effect.
    Reset,
    /// Requests take effect, and the response body is cut in half, so it is not valid JSON.
    Malformed,
}

impl KonturMode {
    const ALL: [KonturMode; 5] = [
        KonturMode::Normal,
        KonturMode::Error500,
        KonturMode::Slow,
        KonturMode::Reset,
        KonturMode::Malformed,
    ];

    /// Returns the name used in the control API's JSON.
    pub fn name(self) -> &'static str {
        match self {
            KonturMode::Normal => "normal",
            KonturMode::Error500 => "error_500",
            KonturMode::Slow => "slow",
            KonturMode::Reset => "reset",
            KonturMode::Malformed => "malformed",
        }
    }

    /// Returns the mode named `name`, or `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.name() == name)
    }

    /// Returns the valid names, comma-separated, for error messages.
    pub fn valid_names() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|mode| mode.name()).collect();
        names.join(", ")
    }
}

/// Returns the counter of a vendor request, or `None` for a path that no counter covers.
fn request_kind(method: &Method, path: &str) -> Option<RequestKind> {
    match (method, path) {
        (_, "/connect/token") => Some(RequestKind::Token),
        (_, "/V2/events") => Some(RequestKind::Events),
        (&Method::POST, "/V2/messages") => Some(RequestKind::MessagePost),
        (_, path) if path.starts_with("/V2/messages/") => Some(RequestKind::MessageFetch),
        (_, path) if path.starts_with("/V2/parties") => Some(RequestKind::Parties),
        _ => None,
    }
}

/// Counts the request, then responds as the current fault mode dictates.
///
/// `error_500` and `reset` respond before the handler runs, so the request has no effect.
/// `malformed` runs the handler and cuts its response body in half, keeping the status.
pub async fn count_and_apply_mode(
    State(state): State<KonturState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if let Some(kind) = request_kind(request.method(), &path) {
        state.record_request(kind);
    }

    let (mode, slow_delay) = state.mode();
    match mode {
        KonturMode::Normal => next.run(request).await,
        KonturMode::Slow => {
            tokio::time::sleep(slow_delay).await;
            next.run(request).await
        }
        KonturMode::Error500 => {
            info!(
                path,
                "kontur request failed on purpose (mock mode error_500)"
            );
            internal_error(&path)
        }
        KonturMode::Reset => {
            info!(
                path,
                "kontur connection closed on purpose (mock mode reset)"
            );
            // Unwinding out of the handler ends the task that serves this connection, so the
            // socket is closed with no response sent. `resume_unwind` skips the panic hook,
            // so nothing is printed. Tests must drive this mode over a socket, because a
            // `oneshot` call would unwind into the test.
            std::panic::resume_unwind(Box::new("mock mode reset"))
        }
        KonturMode::Malformed => {
            let response = next.run(request).await;
            info!(
                path,
                "kontur response body cut on purpose (mock mode malformed)"
            );
            truncate_body(response).await
        }
    }
}

/// Builds the HTTP 500 of `error_500`: an OAuth error body on the token endpoint, the vendor
/// error body elsewhere.
fn internal_error(path: &str) -> Response {
    let message = "internal server error (mock mode error_500)";
    if path == "/connect/token" {
        let body = json!({"error": "server_error", "error_description": message});
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response();
    }
    vendor_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalServerError",
        message,
    )
}

/// Replaces the body of `response` with its first half.
async fn truncate_body(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = match to_bytes(body, MAX_MALFORMED_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };

    let cut = bytes.slice(..bytes.len() / 2);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(cut))
}
