//! OpenID Connect client credentials: obtains access tokens and keeps them in the host cache.

use std::sync::{Mutex, PoisonError};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use uig_connector_api::reexports::RString;
use uig_connector_api::sdk::HostContext;
use uig_connector_api::{ConnectorError, ErrorKind, HttpRequest, HttpResponse};

use crate::response::{describe_body, shorten, with_retry_after};
use crate::settings::Settings;

/// Seconds before a token's expiry at which the cached copy is dropped, for tokens that live
/// at least twice as long.
const RENEW_MARGIN_SECONDS: u64 = 60;

/// Assumed lifetime of a token whose response has no `expires_in`, in seconds.
const ASSUMED_LIFETIME_SECONDS: u64 = 300;

/// Text that replaces the client secret wherever an upstream message would show it.
const REDACTED: &str = "***";

/// Successful token response. Unknown members are ignored.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    expires_in: Option<Value>,
    token_type: Option<String>,
}

/// OAuth 2.0 error response (RFC 6749, section 5.2).
#[derive(Deserialize)]
struct OAuthError {
    error: Option<String>,
    error_description: Option<String>,
}

/// Access tokens of one client: read from the host cache, requested when missing or rejected.
pub struct TokenSource {
    host: HostContext,
    token_url: String,
    /// `Authorization` header value of the token request, HTTP Basic with the client
    /// credentials. It contains the secret, so it never reaches a log or message.
    basic_authorization: String,
    client_secret: String,
    scope: String,
    timeout_ms: u64,
    /// Host cache key of the token, one per client id, scope and token endpoint.
    cache_key: String,
    /// Serializes token requests, so concurrent calls that find no token make one request.
    refresh: Mutex<()>,
}

impl TokenSource {
    /// Creates the token source for the client in `settings`.
    pub fn new(settings: &Settings, host: HostContext) -> Self {
        TokenSource {
            token_url: settings.token_endpoint().to_string(),
            basic_authorization: basic_authorization(&settings.client_id, &settings.client_secret),
            client_secret: settings.client_secret.clone(),
            scope: settings.requested_scope().to_string(),
            timeout_ms: settings.timeout_ms,
            cache_key: format!(
                "access_token client_id={} scope={} token_url={}",
                settings.client_id,
                settings.requested_scope(),
                settings.token_endpoint()
            ),
            refresh: Mutex::new(()),
            host,
        }
    }

    /// Returns the cached access token, or requests a new one when none is cached.
    pub fn current(&self) -> Result<String, ConnectorError> {
        if let Some(token) = self.host.cache_get(&self.cache_key) {
            return Ok(token);
        }

        let _guard = self.refresh.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(token) = self.host.cache_get(&self.cache_key) {
            return Ok(token);
        }
        self.request_token()
    }

    /// Returns a token other than `rejected`, which the API has just rejected with HTTP 401.
    ///
    /// Another call may already have replaced it in the cache, and then that token is used.
    /// Otherwise a new token is requested, even though the cached one has not yet expired.
    pub fn renew(&self, rejected: &str) -> Result<String, ConnectorError> {
        let _guard = self.refresh.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(token) = self.host.cache_get(&self.cache_key).filter(|token| token != rejected) {
            return Ok(token);
        }
        self.request_token()
    }

    /// Requests a token with the client credentials grant and caches it until shortly before
    /// it expires.
    fn request_token(&self) -> Result<String, ConnectorError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", &self.scope)
            .finish();
        let mut request = HttpRequest::post(self.token_url.clone(), body.into_bytes())
            .header("Authorization", &self.basic_authorization)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json");
        request.timeout_ms = self.timeout_ms;
        // A token request has no effect that a repetition could double.
        request.idempotent = true;

        let response = self.host.http(request).map_err(|http_error| {
            let mut error = http_error.into_connector_error();
            error.message = RString::from(format!("token request to Kontur failed: {}", error.message));
            error
        })?;
        let (token, lifetime_seconds) = self.parse_token_response(&response)?;

        let ttl_seconds = cache_ttl_seconds(lifetime_seconds);
        self.host.cache_put(&self.cache_key, token.clone(), ttl_seconds);
        self.host.info(&format!(
            "obtained a Kontur access token for scope {:?}, valid for {lifetime_seconds} s and cached for {ttl_seconds} s",
            self.scope
        ));
        Ok(token)
    }

    /// Maps a token endpoint response to the token and its lifetime in seconds, or to the error.
    ///
    /// OAuth errors with HTTP 400 or 401 are auth errors with the OAuth `error` as the code.
    /// HTTP 408, 429 and 5xx and malformed bodies are transient. Any other status means that
    /// `token_url` does not point at a token endpoint, which is a config error.
    fn parse_token_response(&self, response: &HttpResponse) -> Result<(String, u64), ConnectorError> {
        let status = response.status;
        if status != 200 {
            return Err(self.token_error(response));
        }

        let parsed: TokenResponse = serde_json::from_slice(&response.body).map_err(|error| {
            ConnectorError::transient(format!(
                "Kontur token endpoint returned a malformed JSON body ({}): {error}",
                describe_body(response)
            ))
        })?;
        let Some(token) = parsed.access_token.filter(|token| !token.trim().is_empty()) else {
            return Err(ConnectorError::transient(format!(
                "Kontur token endpoint returned no access_token ({})",
                describe_body(response)
            )));
        };

        let token_type = parsed.token_type.unwrap_or_default();
        if !token_type.eq_ignore_ascii_case("bearer") {
            return Err(ConnectorError::config(format!(
                "Kontur token endpoint issued a token of type {token_type:?}, but the Medi API accepts only Bearer \
                 tokens: check settings.token_url and settings.scope"
            ))
            .with_code("unsupported_token_type"));
        }

        let lifetime_seconds = match parsed.expires_in.as_ref().and_then(lifetime_from_json) {
            Some(seconds) => seconds,
            None => {
                self.host.warn(&format!(
                    "Kontur token response has no valid expires_in, assuming {ASSUMED_LIFETIME_SECONDS} s"
                ));
                ASSUMED_LIFETIME_SECONDS
            }
        };
        Ok((token, lifetime_seconds))
    }

    /// Builds the error for a token endpoint response other than HTTP 200.
    fn token_error(&self, response: &HttpResponse) -> ConnectorError {
        let status = response.status;
        let oauth: Option<OAuthError> = serde_json::from_slice(&response.body).ok();
        let code = oauth.as_ref().and_then(|body| body.error.clone()).unwrap_or_default();
        let description = oauth.as_ref().and_then(|body| body.error_description.as_deref()).map(shorten);

        let mut detail = format!("HTTP {status}");
        if !code.is_empty() {
            detail.push_str(&format!(", {code}"));
        }
        if let Some(description) = description {
            detail.push_str(&format!(": {}", self.redact(&description)));
        }

        let (kind, summary) = match (status, code.as_str()) {
            (400 | 401, "invalid_scope") => {
                (ErrorKind::AUTH, "Kontur token endpoint rejected the scope: check settings.scope".to_string())
            }
            (400 | 401, "") => (
                ErrorKind::AUTH,
                format!(
                    "Kontur token endpoint rejected the token request without an OAuth error body ({})",
                    describe_body(response)
                ),
            ),
            (400 | 401, _) => (
                ErrorKind::AUTH,
                "Kontur token endpoint rejected the client credentials: check settings.client_id and \
                 settings.client_secret"
                    .to_string(),
            ),
            (408 | 429 | 500..=599, _) => {
                (ErrorKind::TRANSIENT, "Kontur token endpoint failed, retry later".to_string())
            }
            _ => (
                ErrorKind::CONFIG,
                format!(
                    "Kontur token endpoint returned an unexpected HTTP status ({}): check settings.token_url",
                    describe_body(response)
                ),
            ),
        };

        let error = ConnectorError::new(kind, format!("{summary} ({detail})")).with_code(code);
        if kind == ErrorKind::TRANSIENT {
            return with_retry_after(error, response);
        }
        error
    }

    /// Replaces the client secret in upstream text.
    fn redact(&self, text: &str) -> String {
        text.replace(&self.client_secret, REDACTED)
    }
}

/// Builds the HTTP Basic header value of the client credentials. RFC 6749 (section 2.3.1)
/// form-urlencodes the id and the secret before they are joined and base64-encoded.
fn basic_authorization(client_id: &str, client_secret: &str) -> String {
    let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let credentials = format!("{}:{}", encode(client_id), encode(client_secret));
    format!("Basic {}", STANDARD.encode(credentials))
}

/// Reads `expires_in` as whole seconds from a JSON number or numeric string.
fn lifetime_from_json(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => {
            number.as_u64().or_else(|| number.as_f64().filter(|seconds| *seconds >= 0.0).map(|seconds| seconds as u64))
        }
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// Returns how long a token of `lifetime_seconds` stays cached: 60 s less than its lifetime,
/// or half of it for tokens shorter than two minutes, and at least one second.
pub fn cache_ttl_seconds(lifetime_seconds: u64) -> u64 {
    let margin = RENEW_MARGIN_SECONDS.min(lifetime_seconds / 2);
    lifetime_seconds.saturating_sub(margin).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_keeps_margin_before_expiry() {
        assert_eq!(cache_ttl_seconds(3600), 3540);
        assert_eq!(cache_ttl_seconds(120), 60);
        assert_eq!(cache_ttl_seconds(100), 50);
        assert_eq!(cache_ttl_seconds(1), 1);
        assert_eq!(cache_ttl_seconds(0), 1);
    }

    #[test]
    fn basic_header_encodes_credentials() {
        assert_eq!(
            basic_authorization("demo-kontur", "demo-kontur-secret"),
            "Basic ZGVtby1rb250dXI6ZGVtby1rb250dXItc2VjcmV0"
        );

        let header = basic_authorization("id:1", "p&ss word");
        let decoded = STANDARD.decode(header.trim_start_matches("Basic ")).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "id%3A1:p%26ss+word");
    }

    #[test]
    fn lifetime_accepts_numbers_and_strings() {
        assert_eq!(lifetime_from_json(&serde_json::json!(3600)), Some(3600));
        assert_eq!(lifetime_from_json(&serde_json::json!(3600.0)), Some(3600));
        assert_eq!(lifetime_from_json(&serde_json::json!("300")), Some(300));
        assert_eq!(lifetime_from_json(&serde_json::json!(-5)), None);
        assert_eq!(lifetime_from_json(&serde_json::json!(null)), None);
    }
}
