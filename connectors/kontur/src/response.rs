//! Mapping of Kontur Medi API responses to JSON bodies or connector errors.

use serde::Deserialize;
use serde_json::Value;
use uig_connector_api::{ConnectorError, ErrorKind, HttpResponse};

/// Maximum number of characters of a Kontur error message copied into a connector error.
const UPSTREAM_MESSAGE_MAX_CHARS: usize = 300;

/// Maximum number of `innerErrors` entries copied into a connector error.
const INNER_ERRORS_MAX: usize = 3;

/// Kontur's error body: `{"error": {"errorCode", "message"}, "innerErrors": [...]}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    error: Option<VendorError>,
    #[serde(default)]
    inner_errors: Vec<VendorError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VendorError {
    error_code: Option<String>,
    message: Option<String>,
}

/// Maps a Medi API response to its JSON body, or to the connector error for it.
///
/// `action` names the call in messages, such as `reading events of box 6f1c…`. A 2xx body that
/// is not JSON is transient. HTTP 400 is permanent, 401 is an auth error (the caller has already
/// renewed the token once), 403 is a config error, and 404 with Kontur's error body is permanent.
/// A 404 without that body means that the URL is wrong, which is a config error. HTTP 408, 429
/// and 5xx are transient with the `Retry-After` hint. Any other status is permanent. The vendor
/// `errorCode` becomes the error's code and also appears in its message.
pub fn api_body(response: &HttpResponse, action: &str) -> Result<Value, ConnectorError> {
    let status = response.status;
    if (200..300).contains(&status) {
        return serde_json::from_slice(&response.body).map_err(|error| {
            ConnectorError::transient(format!(
                "Kontur returned a malformed JSON body for {action} ({}): {error}",
                describe_body(response)
            ))
        });
    }

    let body: Option<ErrorBody> = serde_json::from_slice(&response.body).ok();
    let vendor = body.as_ref().filter(|body| body.error.is_some());

    let error = match status {
        400 => vendor_failure(ErrorKind::PERMANENT, "BadRequest", format!("Kontur rejected {action}"), status, vendor),
        401 => vendor_failure(
            ErrorKind::AUTH,
            "Unauthorized",
            format!(
                "Kontur rejected a newly issued access token for {action}: check that settings.scope grants the \
                 Medi API to settings.client_id"
            ),
            status,
            vendor,
        ),
        403 => vendor_failure(
            ErrorKind::CONFIG,
            "Forbidden",
            format!("Kontur denied {action}: check that the box belongs to the account of settings.client_id"),
            status,
            vendor,
        ),
        404 if vendor.is_some() => vendor_failure(
            ErrorKind::PERMANENT,
            "NotFound",
            format!("Kontur found nothing for {action}"),
            status,
            vendor,
        ),
        404 => ConnectorError::config(format!(
            "Kontur returned HTTP 404 without its JSON error body for {action}, so the endpoint does not exist at \
             this address: check settings.base_url ({})",
            describe_body(response)
        )),
        408 | 429 | 500..=599 => {
            let summary = match status {
                408 => format!("Kontur timed out reading the request for {action}, retry later"),
                429 => format!("Kontur rate limit exceeded for {action}, retry later"),
                _ => format!("Kontur failed {action}, retry later"),
            };
            with_retry_after(vendor_failure(ErrorKind::TRANSIENT, "", summary, status, vendor), response)
        }
        _ => vendor_failure(
            ErrorKind::PERMANENT,
            "",
            format!("Kontur returned an HTTP status for {action} that the Medi API does not define"),
            status,
            vendor,
        ),
    };
    Err(error)
}

/// Builds the error for a Kontur error response.
///
/// The code is the vendor's `errorCode` when given, else `default_code`. The message is `summary`
/// followed by the HTTP status, the code, Kontur's message and the first inner errors in brackets.
fn vendor_failure(
    kind: ErrorKind,
    default_code: &str,
    summary: String,
    status: u16,
    body: Option<&ErrorBody>,
) -> ConnectorError {
    let vendor = body.and_then(|body| body.error.as_ref());
    let vendor_code =
        vendor.and_then(|error| error.error_code.as_deref()).map(str::trim).filter(|code| !code.is_empty());
    let code = vendor_code.unwrap_or(default_code);

    let mut detail = format!("HTTP {status}");
    if !code.is_empty() {
        detail.push_str(&format!(", {code}"));
    }
    if let Some(message) = vendor.and_then(|error| error.message.as_deref()) {
        detail.push_str(&format!(": {}", shorten(message)));
    }
    let inner_errors = body.map(|body| body.inner_errors.as_slice()).unwrap_or_default();
    for inner in inner_errors.iter().take(INNER_ERRORS_MAX) {
        let inner_code = inner.error_code.as_deref().unwrap_or("-");
        let inner_message = inner.message.as_deref().map(shorten).unwrap_or_default();
        detail.push_str(&format!("; inner error {inner_code}: {inner_message}"));
    }
    if inner_errors.len() > INNER_ERRORS_MAX {
        detail.push_str(&format!("; {} more inner errors", inner_errors.len() - INNER_ERRORS_MAX));
    }

    ConnectorError::new(kind, format!("{summary} ({detail})")).with_code(code)
}

/// Cuts an upstream message to [`UPSTREAM_MESSAGE_MAX_CHARS`] characters.
pub fn shorten(message: &str) -> String {
    message.chars().take(UPSTREAM_MESSAGE_MAX_CHARS).collect()
}

/// Adds the response's `Retry-After` to a transient error as its retry hint.
pub fn with_retry_after(error: ConnectorError, response: &HttpResponse) -> ConnectorError {
    match response.header("retry-after").and_then(parse_retry_after) {
        Some(milliseconds) => error.with_retry_after_ms(milliseconds),
        None => error,
    }
}

/// Parses a `Retry-After` value, either seconds or an HTTP date, into milliseconds from now.
/// A date in the past gives 0.
pub fn parse_retry_after(value: &str) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }

    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let milliseconds = (date.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
    Some(u64::try_from(milliseconds).unwrap_or(0))
}

/// Describes a body by status, content type and size, without copying its content.
pub fn describe_body(response: &HttpResponse) -> String {
    let content_type = response.header("content-type").unwrap_or("no content-type");
    format!("HTTP {}, {}, {} bytes", response.status, content_type, response.body.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uig_connector_api::reexports::{RString, RVec, Tuple2};

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        let headers = headers.iter().map(|(name, value)| Tuple2(RString::from(*name), RString::from(*value))).collect();
        HttpResponse { status, headers, body: RVec::from(body.as_bytes().to_vec()) }
    }

    fn vendor_body(code: &str, message: &str) -> String {
        serde_json::json!({"error": {"errorCode": code, "message": message}, "innerErrors": []}).to_string()
    }

    #[test]
    fn status_table() {
        let cases = [
            (400, "BadEventsCount", ErrorKind::PERMANENT),
            (400, "InvalidLastEventPointer", ErrorKind::PERMANENT),
            (401, "Unauthorized", ErrorKind::AUTH),
            (403, "HasNoAccessToMediId", ErrorKind::CONFIG),
            (404, "MessageNotFound", ErrorKind::PERMANENT),
            (408, "RequestTimeout", ErrorKind::TRANSIENT),
            (429, "TooManyRequests", ErrorKind::TRANSIENT),
            (500, "InternalServerError", ErrorKind::TRANSIENT),
            (503, "ServiceUnavailable", ErrorKind::TRANSIENT),
            (409, "Conflict", ErrorKind::PERMANENT),
        ];
        for (status, code, kind) in cases {
            let body = vendor_body(code, "описание ошибки");

            let error = api_body(&response(status, &[], &body), "reading events").unwrap_err();

            assert_eq!(error.kind, kind, "HTTP {status}");
            assert_eq!(error.code.as_str(), code, "HTTP {status}");
            assert!(error.message.contains(&format!("HTTP {status}, {code}: описание ошибки")), "{}", error.message);
        }
    }

    #[test]
    fn default_codes_without_vendor_body() {
        let cases = [(400, "BadRequest"), (401, "Unauthorized"), (403, "Forbidden"), (500, "")];
        for (status, code) in cases {
            let error = api_body(&response(status, &[], "<html>oops</html>"), "posting a message").unwrap_err();

            assert_eq!(error.code.as_str(), code, "HTTP {status}");
            assert!(!error.message.contains("oops"), "{}", error.message);
        }
    }

    #[test]
    fn bare_404_is_config() {
        let error =
            api_body(&response(404, &[("content-type", "text/plain")], "Not Found"), "reading events").unwrap_err();

        assert_eq!(error.kind, ErrorKind::CONFIG);
        assert!(error.message.contains("settings.base_url"), "{}", error.message);
        assert!(error.message.contains("text/plain, 9 bytes"), "{}", error.message);
    }

    #[test]
    fn inner_errors_listed_and_capped() {
        let body = serde_json::json!({
            "error": {"errorCode": "ValidationFailed", "message": "invalid message"},
            "innerErrors": [
                {"errorCode": "A", "message": "first"},
                {"errorCode": "B", "message": "second"},
                {"errorCode": "C", "message": "third"},
                {"errorCode": "D", "message": "fourth"},
                {"errorCode": "E", "message": "fifth"},
            ]
        });

        let error = api_body(&response(400, &[], &body.to_string()), "posting a message").unwrap_err();

        assert!(error.message.contains("inner error A: first; inner error B: second; inner error C: third"));
        assert!(error.message.contains("2 more inner errors"), "{}", error.message);
        assert!(!error.message.contains("fourth"), "{}", error.message);
    }

    #[test]
    fn long_vendor_message_cut() {
        let body = vendor_body("BadRequest", &"x".repeat(1000));

        let error = api_body(&response(400, &[], &body), "posting a message").unwrap_err();

        assert!(error.message.len() < 500, "{} bytes", error.message.len());
    }

    #[test]
    fn retry_after_seconds_honoured() {
        let error =
            api_body(&response(429, &[("retry-after", "7")], &vendor_body("TooManyRequests", "slow down")), "x")
                .unwrap_err();

        assert_eq!(error.retry_after_ms.into_option(), Some(7_000));
    }

    #[test]
    fn retry_after_http_date_honoured() {
        let at = chrono::Utc::now() + chrono::Duration::seconds(120);
        let header = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();

        let error = api_body(&response(503, &[("retry-after", &header)], ""), "x").unwrap_err();

        let hint = error.retry_after_ms.into_option().unwrap();
        assert!((100_000..=120_000).contains(&hint), "{hint}");
    }

    #[test]
    fn retry_after_garbage_ignored() {
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("Mon, 01 Jan 2001 00:00:00 GMT"), Some(0));
    }

    #[test]
    fn malformed_success_body_is_transient() {
        let error =
            api_body(&response(200, &[("content-type", "application/json")], r#"{"events": [{"#), "reading events")
                .unwrap_err();

        assert_eq!(error.kind, ErrorKind::TRANSIENT);
        assert!(error.message.starts_with("Kontur returned a malformed JSON body for reading events"));
        assert!(error.message.contains("application/json, 13 bytes"), "{}", error.message);
    }

    #[test]
    fn success_body_parsed() {
        let body = api_body(&response(200, &[], r#"{"count": 0}"#), "reading events").unwrap();

        assert_eq!(body["count"], 0);
    }
}
