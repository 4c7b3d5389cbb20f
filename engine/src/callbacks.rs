//! The callback worker: POSTs each finished message to its client's callback URL, signed per the
//! Standard Webhooks spec, until the receiver returns 2xx or the attempts run out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tokio::sync::{watch, Semaphore};

use crate::api::messages::format_time;
use crate::db::message;
use crate::engine::Engine;
use crate::ledger::{now_ms, AttemptRecord};
use crate::retry;
use crate::signature;

/// Runs until `shutdown` turns true.
///
/// Up to `callbacks.concurrency` POSTs are in flight at once. A freed slot is filled by the next
/// claim at once, so one slow receiver does not hold back the callbacks claimed with it.
pub async fn run(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    let poll_interval = Duration::from_millis(engine.config.worker.poll_interval_ms);
    // A claimed callback is not due again before its POST has surely timed out.
    let lease_ms = engine.config.callbacks.timeout_ms as i64 + 30_000;
    let capacity = engine.config.callbacks.concurrency.max(1);
    let in_flight = Arc::new(Semaphore::new(capacity));
    tracing::info!(capacity, "callback worker started");

    loop {
        if *shutdown.borrow() {
            break;
        }
        let free = in_flight.available_permits() as u64;
        let claimed = if free == 0 {
            Vec::new()
        } else {
            match engine.claims.callbacks(free, lease_ms).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::error!(%error, "claiming due callbacks failed");
                    Vec::new()
                }
            }
        };
        let claimed_any = !claimed.is_empty();
        for message in claimed {
            let permit = in_flight.clone().acquire_owned().await.expect("callback semaphore is never closed");
            let engine = engine.clone();
            tokio::spawn(async move {
                deliver(&engine, message).await;
                drop(permit);
                engine.callback_due.notify_one();
            });
        }
        if claimed_any && in_flight.available_permits() > 0 {
            continue;
        }

        tokio::select! {
            _ = engine.callback_due.notified() => {}
            _ = tokio::time::sleep(poll_interval) => {}
            _ = shutdown.changed() => {}
        }
    }
    tracing::info!("callback worker stopping, waiting for callbacks in flight");
    let _all = in_flight.acquire_many(capacity as u32).await;
    tracing::info!("callback worker stopped");
}

/// The callback body: the message summary with the recipient's reply and the last error.
#[derive(serde::Serialize)]
struct CallbackBody<'m> {
    id: i64,
    status: &'m str,
    created_at: String,
    updated_at: String,
    recipient: &'m str,
    entity: &'m str,
    data: Option<&'m RawValue>,
    error: Option<&'m RawValue>,
}

/// Builds the callback body. `data` and `error` are stored JSON text and go out byte for byte as
/// stored. Text that serde_json cannot read as one JSON value goes out as null.
pub fn callback_body(message: &message::Model) -> Vec<u8> {
    let body = CallbackBody {
        id: message.id,
        status: &message.status,
        created_at: format_time(message.created_at),
        updated_at: format_time(message.updated_at),
        recipient: &message.recipient,
        entity: &message.entity,
        data: raw_json(&message.data),
        error: raw_json(&message.error),
    };
    serde_json::to_vec(&body).expect("a callback body always serializes")
}

/// Returns stored text as raw JSON, or None when it is missing or not JSON.
fn raw_json(text: &Option<String>) -> Option<&RawValue> {
    text.as_deref().and_then(|text| serde_json::from_str(text).ok())
}

async fn deliver(engine: &Engine, message: message::Model) {
    let attempt = message.callback_attempts as u32 + 1;
    let started_at = now_ms();
    let clock = Instant::now();
    let outcome = post(engine, &message).await;
    let record = |outcome: &str, error: Option<String>| AttemptRecord {
        message_id: message.id,
        kind: "callback",
        number: attempt as i32,
        started_at,
        duration_ms: clock.elapsed().as_millis() as i64,
        outcome: outcome.to_string(),
        error,
    };

    let stored = match outcome {
        Ok(status) => {
            tracing::info!(message_id = message.id, attempt, status, "callback delivered");
            engine.finisher.callback(record("ok", None), "delivered", None).await
        }
        Err(error) if attempt >= engine.config.callbacks.max_attempts => {
            tracing::warn!(message_id = message.id, attempt, %error, "callback failed, attempts exhausted");
            engine.finisher.callback(record("failed", Some(error)), "failed", None).await
        }
        Err(error) => {
            let delay = retry::backoff_ms(&engine.config.callbacks.retry, attempt + 1, None) as i64;
            tracing::info!(message_id = message.id, attempt, %error, retry_in_ms = delay, "callback failed, will retry");
            engine.finisher.callback(record("retry", Some(error)), "pending", Some(now_ms() + delay)).await
        }
    };
    if let Err(error) = stored {
        tracing::error!(message_id = message.id, %error, "storing the callback result failed");
    }
}

/// POSTs the signed callback; Ok is the 2xx status, Err the reason of a failure.
async fn post(engine: &Engine, message: &message::Model) -> Result<u16, String> {
    let url = message.callback_url.as_deref().ok_or("no callback URL")?;
    let client = engine
        .clients
        .by_id(message.client_id)
        .await
        .map_err(|error| format!("client lookup failed: {error}"))?
        .ok_or("the client no longer exists")?;

    // The allow-list is checked again: it may have changed since the message was accepted.
    let parsed = reqwest::Url::parse(url).map_err(|_| "invalid callback URL".to_string())?;
    let host = parsed.host_str().unwrap_or("");
    if !client.may_call_back(host, parsed.port_or_known_default()) {
        return Err(format!("callback host \"{host}\" is no longer on the client's allow-list"));
    }

    let body = callback_body(message);
    let timestamp = chrono::Utc::now().timestamp();
    let webhook_id = message.id.to_string();
    // One signature per active secret, space-separated: a receiver with either secret accepts it.
    let signature = client
        .active_secrets()
        .map(|secret| signature::webhook_signature(secret.as_bytes(), &webhook_id, timestamp, &body))
        .collect::<Vec<_>>()
        .join(" ");

    // 307 and 308 keep the method and body, so the same signed POST follows them; every hop is
    // checked against the allow-list. 301, 302 and 303 would turn the POST into a GET, so they fail.
    let mut target = parsed;
    for _ in 0..=MAX_CALLBACK_REDIRECTS {
        let response = engine
            .callback_http
            .post(target.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", &signature)
            .body(body.clone())
            .send()
            .await
            .map_err(|error| format!("callback request failed: {}", std::error::Error::source(&error).map(|s| s.to_string()).unwrap_or_else(|| "connection error".into())))?;

        let status = response.status();
        if status.is_success() {
            return Ok(status.as_u16());
        }
        if !status.is_redirection() {
            return Err(format!("callback receiver answered HTTP {}", status.as_u16()));
        }
        let location = response.headers().get("location").and_then(|value| value.to_str().ok()).unwrap_or("");
        let next = target.join(location).map_err(|_| format!("callback receiver answered HTTP {} with an invalid Location", status.as_u16()))?;
        let target_shown = without_query(&next);
        if status != reqwest::StatusCode::TEMPORARY_REDIRECT && status != reqwest::StatusCode::PERMANENT_REDIRECT {
            return Err(format!(
                "callback receiver answered HTTP {} (redirect to {target_shown}); only 307 and 308 keep the POST, so this counts as a failure",
                status.as_u16()
            ));
        }
        let host = next.host_str().unwrap_or("");
        if !client.may_call_back(host, next.port_or_known_default()) {
            return Err(format!("callback receiver redirected to {target_shown}, whose host \"{host}\" is not on the client's allow-list"));
        }
        target = next;
    }
    Err(format!("callback receiver redirected more than {MAX_CALLBACK_REDIRECTS} times"))
}

/// Most redirects (307 or 308) one callback attempt follows.
const MAX_CALLBACK_REDIRECTS: usize = 5;

/// Returns the URL without its query and fragment, for messages: a query may carry a token.
fn without_query(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(data: Option<&str>, error: Option<&str>) -> message::Model {
        message::Model {
            id: 42,
            client_id: 1,
            client_seq: 1,
            direction: "outbound".into(),
            recipient: "avinfo".into(),
            entity: "vehicle".into(),
            message: "{}".into(),
            status: "delivered".into(),
            data: data.map(String::from),
            error: error.map(String::from),
            external_id: None,
            attempts: 1,
            next_attempt_at: None,
            lease_owner: None,
            lease_until: None,
            callback_url: Some("http://127.0.0.1:9/hook".into()),
            callback_state: Some("pending".into()),
            callback_attempts: 0,
            callback_next_at: Some(0),
            request_hash: None,
            request_ts: None,
            idempotency_key: None,
            read_at: None,
            created_at: 1_764_892_800_000,
            updated_at: 1_764_892_800_250,
            pool: "worker".into(),
        }
    }

    #[test]
    fn body_carries_stored_json_as_stored() {
        let body = callback_body(&message(Some(r#"{"vin": "XTA", "n": [1, 2]}"#), Some(r#"{"kind":"transient"}"#)));
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains(r#""data":{"vin": "XTA", "n": [1, 2]}"#), "{text}");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["id"], 42);
        assert_eq!(body["status"], "delivered");
        assert_eq!(body["created_at"], format_time(1_764_892_800_000));
        assert_eq!(body["updated_at"], format_time(1_764_892_800_250));
        assert_eq!(body["recipient"], "avinfo");
        assert_eq!(body["entity"], "vehicle");
        assert_eq!(body["error"]["kind"], "transient");
        let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["id", "status", "created_at", "updated_at", "recipient", "entity", "data", "error"]);
    }

    #[test]
    fn missing_or_broken_json_goes_out_as_null() {
        let body: serde_json::Value = serde_json::from_slice(&callback_body(&message(None, Some("not json")))).unwrap();
        assert!(body["data"].is_null());
        assert!(body["error"].is_null());
        assert!(body.as_object().unwrap().contains_key("data"));
    }
}
