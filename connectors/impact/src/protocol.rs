//! The IMPACT wire format: the submit body, the status document, and the mapping of IMPACT
//! responses to replies and connector errors, as docs/impact-api.md describes them.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use uig_connector_api::{ConnectorError, ErrorKind, HttpResponse, RemoteState, Reply};

/// Maximum number of characters of IMPACT's error message copied into a connector error.
const UPSTREAM_MESSAGE_MAX_CHARS: usize = 300;

/// Maximum number of characters of an unexpected body quoted in a connector error.
const BODY_SNIPPET_MAX_CHARS: usize = 120;

/// Code of the transient error for a response body that does not follow the protocol.
pub const INVALID_RESPONSE: &str = "invalid_response";

/// Body of the submit request.
#[derive(Serialize)]
pub struct SubmitBody<'a> {
    /// The IMPACT message type: the entity the client named.
    #[serde(rename = "type")]
    pub entity: &'a str,
    /// The gateway's own id of the message, `uig-{message_id}`.
    #[serde(rename = "externalId")]
    pub external_id: &'a str,
    /// The client's message, embedded byte for byte.
    pub payload: &'a RawValue,
}

/// The request that a response belongs to, which decides how HTTP 404 is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `POST {submit_path}`.
    Submit,
    /// `GET {status_path}`.
    Status,
}

/// IMPACT's status document, returned by both endpoints. Unknown members are ignored.
#[derive(Deserialize)]
struct StatusDocument {
    #[serde(rename = "Status", alias = "status")]
    status: Option<String>,
    id: Option<Value>,
    result: Option<Box<RawValue>>,
    error: Option<Box<RawValue>>,
}

/// The reply data the connector returns to the engine for every IMPACT state.
#[derive(Serialize)]
struct ReplyData<'a> {
    /// IMPACT's id of the message.
    id: &'a str,
    /// IMPACT's state, upper case: `QUEUED`, `PROCESSING`, `DONE` or `ERROR`.
    status: &'a str,
    /// IMPACT's `result`, byte for byte, present once the state is `DONE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a RawValue>,
    /// IMPACT's `error`, byte for byte, present once the state is `ERROR`.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RawValue>,
}

/// Top level of an IMPACT error response: `{"error": {"code": ..., "message": ...}}`.
#[derive(Deserialize)]
struct ErrorEnvelope {
    error: Option<UpstreamError>,
}

/// IMPACT's `error` object. The code may be a string or a number.
#[derive(Deserialize)]
struct UpstreamError {
    code: Option<Value>,
    message: Option<String>,
}

impl UpstreamError {
    fn code_text(&self) -> Option<String> {
        match self.code.as_ref()? {
            Value::String(code) if !code.is_empty() => Some(code.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }
}

/// Maps the response to a submit into a reply or a connector error.
///
/// HTTP 200, 201 and 202 carry the status document: `QUEUED` and `PROCESSING` give a pending
/// reply under IMPACT's id, `DONE` a finished reply and `ERROR` a failed one. Other statuses map
/// as [`failure`] describes.
pub fn submit_reply(response: &HttpResponse) -> Result<Reply, ConnectorError> {
    match response.status {
        200..=299 => reply_from_document(response, None),
        _ => Err(failure(response, Operation::Submit)),
    }
}

/// Maps the response to a status query of the IMPACT message `external_id`, in the same way as
/// [`submit_reply`]. A document naming another id is an unexpected body.
pub fn status_reply(response: &HttpResponse, external_id: &str) -> Result<Reply, ConnectorError> {
    match response.status {
        200..=299 => reply_from_document(response, Some(external_id)),
        _ => Err(failure(response, Operation::Status)),
    }
}

/// Reads a status document from a 2xx response. A body that is not the documented JSON is a
/// transient [`INVALID_RESPONSE`] error, because a proxy or a restarting IMPACT may send one.
fn reply_from_document(response: &HttpResponse, expected_id: Option<&str>) -> Result<Reply, ConnectorError> {
    let document: StatusDocument = serde_json::from_slice(&response.body)
        .map_err(|error| unexpected_body(response, &format!("the body is not the IMPACT status document ({error})")))?;

    let Some(status) = document.status.as_deref() else {
        return Err(unexpected_body(response, "\"Status\" is missing"));
    };
    let id = match (document.id.as_ref(), expected_id) {
        (Some(Value::String(id)), _) if !id.is_empty() => id.clone(),
        (Some(Value::Number(number)), _) => number.to_string(),
        (None, Some(expected)) => expected.to_string(),
        (None, None) => return Err(unexpected_body(response, "\"id\" is missing")),
        (Some(_), _) => return Err(unexpected_body(response, "\"id\" is neither a non-empty string nor a number")),
    };
    if let Some(expected) = expected_id {
        if id != expected {
            return Err(unexpected_body(
                response,
                &format!("the document is about IMPACT message {id:?}, not the requested {expected:?}"),
            ));
        }
    }

    let status = status.to_ascii_uppercase();
    let state = match status.as_str() {
        "QUEUED" | "PROCESSING" => RemoteState::PENDING,
        "DONE" => RemoteState::DONE,
        "ERROR" => RemoteState::FAILED,
        _ => {
            return Err(unexpected_body(
                response,
                &format!("\"Status\" is {status:?}, expected QUEUED, PROCESSING, DONE or ERROR"),
            ))
        }
    };

    let data = ReplyData {
        id: &id,
        status: &status,
        result: document.result.as_deref().filter(|_| state == RemoteState::DONE),
        error: document.error.as_deref().filter(|_| state == RemoteState::FAILED),
    };
    let data = serde_json::to_string(&data)
        .map_err(|error| unexpected_body(response, &format!("the document cannot be re-encoded ({error})")))?;

    Ok(match state {
        RemoteState::PENDING => Reply::pending(id, data),
        RemoteState::DONE => Reply::done(data),
        _ => Reply { state, ..Reply::pending(id, data) },
    })
}

/// Maps a non-2xx IMPACT response to a connector error.
///
/// HTTP 400, 409 and 422 are permanent. HTTP 401 and 403 are auth errors. HTTP 408, 429 and 5xx
/// are transient, with `Retry-After` as the retry hint. HTTP 404 with IMPACT's error body is
/// permanent. Without that body the endpoint itself does not exist, which is a config error.
/// Any other status is permanent. IMPACT's `error.code` becomes the error code when it sent one.
pub fn failure(response: &HttpResponse, operation: Operation) -> ConnectorError {
    let status = response.status;
    let envelope: Option<ErrorEnvelope> = serde_json::from_slice(&response.body).ok();
    let upstream_error = envelope.as_ref().and_then(|envelope| envelope.error.as_ref());

    let (kind, default_code, summary) = match (status, operation) {
        (400, _) => (ErrorKind::PERMANENT, "bad_request", "IMPACT rejected the request as invalid".to_string()),
        (409, _) => (
            ErrorKind::PERMANENT,
            "conflict",
            "IMPACT reports a conflict: the idempotency key was used before with another body".to_string(),
        ),
        (422, _) => (ErrorKind::PERMANENT, "unprocessable_entity", "IMPACT rejected the message content".to_string()),
        (401, _) => (
            ErrorKind::AUTH,
            "unauthorized",
            "IMPACT rejected the credentials: check settings.username and settings.password".to_string(),
        ),
        (403, _) => (
            ErrorKind::AUTH,
            "forbidden",
            "IMPACT denied the user access: ask the IMPACT administrators to grant it, or check settings.username"
                .to_string(),
        ),
        (404, Operation::Submit) if upstream_error.is_some() => {
            (ErrorKind::PERMANENT, "not_found", "IMPACT rejected the submit as referring to something unknown".to_string())
        }
        (404, Operation::Status) if upstream_error.is_some() => {
            (ErrorKind::PERMANENT, "not_found", "IMPACT has no message with this id".to_string())
        }
        (404, _) => {
            let field = if operation == Operation::Submit { "settings.submit_path" } else { "settings.status_path" };
            return ConnectorError::config(format!(
                "IMPACT returned HTTP 404 without its JSON error body, so the endpoint does not exist at this address: \
                 check settings.base_url and {field} ({})",
                describe_body(response)
            ));
        }
        (408 | 429 | 500..=599, _) => {
            let summary = match status {
                408 => "IMPACT timed out reading the request, retry later",
                429 => "IMPACT rate limit exceeded, retry later",
                _ => "IMPACT failed, retry later",
            };
            let mut error = upstream_failure(ErrorKind::TRANSIENT, "", summary.to_string(), status, upstream_error);
            if let Some(milliseconds) = response.header("retry-after").and_then(parse_retry_after_ms) {
                error = error.with_retry_after_ms(milliseconds);
            }
            return error;
        }
        _ => (
            ErrorKind::PERMANENT,
            "",
            "IMPACT returned an HTTP status that its protocol does not define for this request".to_string(),
        ),
    };
    upstream_failure(kind, default_code, summary, status, upstream_error)
}

/// Builds the error for an IMPACT error response.
///
/// The code is IMPACT's `error.code` when given, else `default_code`. The message is `summary`
/// followed by the HTTP status, the code and IMPACT's own message in brackets.
fn upstream_failure(
    kind: ErrorKind,
    default_code: &str,
    summary: String,
    status: u16,
    upstream_error: Option<&UpstreamError>,
) -> ConnectorError {
    let code = upstream_error.and_then(UpstreamError::code_text).unwrap_or_else(|| default_code.to_string());

    let mut detail = format!("HTTP {status}");
    if !code.is_empty() {
        detail.push_str(&format!(", {code}"));
    }
    if let Some(message) = upstream_error.and_then(|error| error.message.as_deref()) {
        let message: String = message.chars().take(UPSTREAM_MESSAGE_MAX_CHARS).collect();
        detail.push_str(&format!(": {message}"));
    }

    ConnectorError::new(kind, format!("{summary} ({detail})")).with_code(code)
}

/// Builds the transient error for a 2xx body that is not what the protocol documents.
fn unexpected_body(response: &HttpResponse, reason: &str) -> ConnectorError {
    ConnectorError::transient(format!(
        "IMPACT returned an unexpected body with HTTP {}: {reason} ({})",
        response.status,
        describe_body(response)
    ))
    .with_code(INVALID_RESPONSE)
}

/// Describes a body by content type, size and its first characters.
fn describe_body(response: &HttpResponse) -> String {
    let content_type = response.header("content-type").unwrap_or("no content-type");
    let text = String::from_utf8_lossy(&response.body);
    let mut snippet: String = text.chars().take(BODY_SNIPPET_MAX_CHARS).collect();
    if text.chars().count() > BODY_SNIPPET_MAX_CHARS {
        snippet.push('…');
    }
    format!("{content_type}, {} bytes: {snippet:?}", response.body.len())
}

/// Parses a `Retry-After` value, delay-seconds or an HTTP date, into milliseconds from now.
/// A date in the past gives 0. Anything else gives `None`.
pub fn parse_retry_after_ms(value: &str) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }

    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let milliseconds = date.signed_duration_since(chrono::Utc::now()).num_milliseconds();
    Some(u64::try_from(milliseconds).unwrap_or(0))
}

#[cfg(test)]
mod tests;
