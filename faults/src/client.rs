//! Signed client of the UIG message API (signature version 1), with the retry habits of a careful
//! client: the same `Idempotency-Key` on every try, `Retry-After` honoured, a lost connection retried.

use std::time::{Duration, Instant};

use hmac::Mac;
use serde_json::Value;

/// Path of the asynchronous send.
pub const ASYNC_SEND: &str = "/async/message/send";
/// Path of the synchronous send.
pub const SYNC_SEND: &str = "/sync/message/send";

/// Characters that RFC 3986 leaves unreserved stay as they are; every other byte is percent-encoded.
const RFC3986: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// One message to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub recipient: String,
    pub entity: String,
    /// JSON text of the message.
    pub message: String,
    /// Callback URL (async sends only).
    pub callback: Option<String>,
    /// `Idempotency-Key` header, the same on every try of one logical send.
    pub idempotency_key: String,
}

/// The API's response to one send request.
#[derive(Debug, Clone)]
pub enum SendResponse {
    /// 202 or 200: the message is stored under `id`. `replayed` is the `idempotent-replayed` header.
    Stored { id: i64, status: String, replayed: bool },
    /// Any other HTTP status, with the API's error code and the `Retry-After` seconds.
    Rejected { http_status: u16, code: String, retry_after: Option<u64> },
    /// No HTTP response: connection refused or reset, or a timeout.
    NoResponse { reason: String },
}

/// A client of one gateway, signing as one API client.
#[derive(Clone)]
pub struct ApiClient {
    base_url: String,
    token: String,
    secret: String,
    http: reqwest::blocking::Client,
}

impl ApiClient {
    /// Creates a client of the gateway at `base_url` (`http://127.0.0.1:PORT`). `timeout` bounds
    /// each request.
    pub fn new(base_url: &str, token: &str, secret: &str, timeout: Duration) -> anyhow::Result<ApiClient> {
        let http = reqwest::blocking::Client::builder().timeout(timeout).build()?;
        Ok(ApiClient { base_url: base_url.to_string(), token: token.to_string(), secret: secret.to_string(), http })
    }

    /// Sends `outgoing` once to `path` (async or sync send) as a signed form-encoded POST.
    pub fn send(&self, path: &str, outgoing: &Outgoing) -> SendResponse {
        let mut params = vec![
            ("recipient".to_string(), outgoing.recipient.clone()),
            ("entity".to_string(), outgoing.entity.clone()),
            ("message".to_string(), outgoing.message.clone()),
        ];
        if let Some(callback) = &outgoing.callback {
            params.push(("callback".to_string(), callback.clone()));
        }
        let signed = sign(&self.token, &self.secret, "POST", path, params, &now_timestamp());
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(&signed).finish();

        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept-language", "en")
            .header("idempotency-key", &outgoing.idempotency_key)
            .body(body)
            .send();
        let response = match response {
            Ok(response) => response,
            Err(error) => return SendResponse::NoResponse { reason: describe_error(&error) },
        };

        let http_status = response.status().as_u16();
        let replayed = response.headers().get("idempotent-replayed").is_some_and(|value| value == "true");
        let retry_after = response.headers().get("retry-after").and_then(|value| value.to_str().ok()).and_then(|text| text.parse().ok());
        let text = match response.text() {
            Ok(text) => text,
            Err(error) => return SendResponse::NoResponse { reason: format!("HTTP {http_status} with an unreadable body: {}", describe_error(&error)) },
        };
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));

        match (http_status, body["id"].as_i64()) {
            (200 | 202, Some(id)) => {
                let status = body["status"].as_str().unwrap_or_default().to_string();
                SendResponse::Stored { id, status, replayed }
            }
            _ => {
                let code = body["error"]["code"].as_str().unwrap_or("no_error_code").to_string();
                SendResponse::Rejected { http_status, code, retry_after }
            }
        }
    }
}

/// Returns the error and its first cause, which carries "connection refused" and the like.
fn describe_error(error: &reqwest::Error) -> String {
    match std::error::Error::source(error) {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    }
}

/// Returns the current time as RFC 3339 in UTC, the timestamp form the API accepts.
fn now_timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Signs `params` for `METHOD PATH` per signature version 1 and returns them with `timestamp`,
/// `token` and `hash` added.
pub fn sign(token: &str, secret: &str, method: &str, path: &str, mut params: Vec<(String, String)>, timestamp: &str) -> Vec<(String, String)> {
    params.push(("timestamp".to_string(), timestamp.to_string()));

    let encode = |text: &str| percent_encoding::utf8_percent_encode(text, RFC3986).to_string();
    let mut canonical: Vec<(String, String)> = params.iter().map(|(name, value)| (encode(name), encode(value))).collect();
    canonical.sort();
    let canonical: Vec<String> = canonical.into_iter().map(|(name, value)| format!("{name}={value}")).collect();
    let string_to_sign = format!("{method}\n{path}\n{}\n{token}", canonical.join("&"));

    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts a key of any length");
    mac.update(string_to_sign.as_bytes());
    let hash = hex::encode(mac.finalize().into_bytes());

    params.push(("token".to_string(), token.to_string()));
    params.push(("hash".to_string(), hash));
    params
}

/// One logical send, retried under one `Idempotency-Key`, and every response it got.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub key: String,
    /// Id of the first 2xx response; none when the send was given up.
    pub id: Option<i64>,
    /// Whether the 2xx response carried `idempotent-replayed: true`.
    pub replayed: bool,
    /// Rejections (HTTP status, error code, whether `Retry-After` came) before the 2xx response.
    pub rejections: Vec<(u16, String, bool)>,
    /// Tries that got no HTTP response.
    pub no_responses: u32,
    /// Reason of the last try without an HTTP response.
    pub last_no_response: Option<String>,
    /// Wall-clock time of the first try, for latencies measured against the mock's clock.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// When the 2xx response arrived.
    pub accepted_at: Option<Instant>,
}

impl Ticket {
    /// Creates the ticket of a send under `key` that starts now.
    pub fn untried(key: &str) -> Ticket {
        Ticket {
            key: key.to_string(),
            id: None,
            replayed: false,
            rejections: Vec::new(),
            no_responses: 0,
            last_no_response: None,
            started_at: chrono::Utc::now(),
            accepted_at: None,
        }
    }
}

/// Retry rules of [`send_with_retries`].
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Give up when the next try would start after this instant.
    pub give_up_at: Instant,
    /// Maximum pause after a 429 or 503, even when `Retry-After` requests a longer one.
    pub max_pause: Duration,
    /// Pause after a try without an HTTP response.
    pub no_response_pause: Duration,
}

/// Sends `outgoing` until a 2xx response, a rejection other than 429 and 503, or `policy.give_up_at`.
pub fn send_with_retries(client: &ApiClient, path: &str, outgoing: &Outgoing, policy: RetryPolicy) -> Ticket {
    let mut ticket = Ticket::untried(&outgoing.idempotency_key);
    loop {
        let pause = match client.send(path, outgoing) {
            SendResponse::Stored { id, replayed, .. } => {
                ticket.id = Some(id);
                ticket.replayed = replayed;
                ticket.accepted_at = Some(Instant::now());
                return ticket;
            }
            SendResponse::Rejected { http_status, code, retry_after } => {
                ticket.rejections.push((http_status, code, retry_after.is_some()));
                if http_status != 429 && http_status != 503 {
                    return ticket;
                }
                Duration::from_secs(retry_after.unwrap_or(1)).min(policy.max_pause)
            }
            SendResponse::NoResponse { reason } => {
                ticket.no_responses += 1;
                ticket.last_no_response = Some(reason);
                policy.no_response_pause
            }
        };
        if Instant::now() + pause >= policy.give_up_at {
            return ticket;
        }
        std::thread::sleep(pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_readme_vector() {
        let params = vec![
            ("recipient".to_string(), "avinfo".to_string()),
            ("entity".to_string(), "vehicle".to_string()),
            ("message".to_string(), r#"{"vin":"XTA21099043765432","fio":"Иванов П.","phone":"+7 495"}"#.to_string()),
        ];
        let signed = sign("tok-demo", "secret-demo", "POST", ASYNC_SEND, params, "2026-12-04T12:00:00+03:00");
        let hash = signed.iter().find(|(name, _)| name == "hash").map(|(_, value)| value.as_str());
        assert_eq!(hash, Some("4109d4839532cf0163ee877a5a61601720cbd31e0409c3dd4e32d8c23a9aa0f0"));
    }

    #[test]
    fn signed_params_carry_token_and_timestamp() {
        let signed = sign("t", "s", "POST", SYNC_SEND, Vec::new(), "1700000000");
        let names: Vec<&str> = signed.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["timestamp", "token", "hash"]);
    }
}
