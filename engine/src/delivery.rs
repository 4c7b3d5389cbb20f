//! One delivery or status-refresh attempt through a connector, turned into a ledger result.

use std::time::Instant;

use serde_json::json;
use uig_connector_api::{ConnectorError, ErrorKind, RemoteState, Reply, SendRequest, StatusRequest};

use crate::ledger::{now_ms, AttemptRecord, DeliveryResult};
use crate::plugins::ConnectorHandle;
use crate::retry;

/// Renders a connector error as the JSON text stored in `messages.error` and shown by `get`.
pub fn error_json(error: &ConnectorError, attempt: u32) -> String {
    let code = (!error.code.is_empty()).then(|| error.code.to_string());
    json!({"kind": error.kind.name(), "code": code, "message": error.message.as_str(), "attempt": attempt}).to_string()
}

/// Checks that the plugin's reply is JSON text. Anything else fails the attempt as permanent.
fn checked_reply(reply: Reply) -> Result<Reply, ConnectorError> {
    match serde_json::from_str::<serde::de::IgnoredAny>(&reply.data) {
        Ok(_) => Ok(reply),
        Err(error) => Err(ConnectorError::permanent(format!("plugin returned a reply that is not JSON: {error}")).with_code("invalid_plugin_reply")),
    }
}

/// Timing and identity of one attempt, filled in once its outcome is known.
struct AttemptClock {
    message_id: i64,
    kind: &'static str,
    number: u32,
    started_at: i64,
    clock: Instant,
}

impl AttemptClock {
    fn start(message_id: i64, kind: &'static str, number: u32) -> Self {
        AttemptClock { message_id, kind, number, started_at: now_ms(), clock: Instant::now() }
    }

    fn record(&self, outcome: &str, error: Option<String>) -> AttemptRecord {
        AttemptRecord {
            message_id: self.message_id,
            kind: self.kind,
            number: self.number as i32,
            started_at: self.started_at,
            duration_ms: self.clock.elapsed().as_millis() as i64,
            outcome: outcome.to_string(),
            error,
        }
    }

    /// Turns a plugin outcome into the attempt row and the ledger result. `on_error` decides what a
    /// connector error does to the message.
    fn settle(
        &self,
        outcome: Result<Reply, ConnectorError>,
        on_error: impl FnOnce(&ConnectorError, String) -> DeliveryResult,
    ) -> (AttemptRecord, DeliveryResult) {
        match outcome {
            Ok(reply) if reply.state == RemoteState::PENDING => {
                let external_id = reply.external_id.into_option().map(|id| id.to_string());
                (self.record("pending", None), DeliveryResult::Pending { data: reply.data.to_string(), external_id })
            }
            Ok(reply) if reply.state == RemoteState::FAILED => {
                let data = serde_json::from_str::<serde_json::Value>(&reply.data).ok();
                let error = json!({"kind": "permanent", "code": "recipient_failed", "message": "the recipient reports that processing failed", "attempt": self.number, "data": data}).to_string();
                (self.record("permanent", Some(error.clone())), DeliveryResult::Failed { error })
            }
            Ok(reply) => (self.record("ok", None), DeliveryResult::Delivered { data: reply.data.to_string() }),
            Err(error) => {
                let text = error_json(&error, self.number);
                tracing::warn!(message_id = self.message_id, attempt = self.number, kind = error.kind.name(), error = %error.message, "{} attempt failed", self.kind);
                let result = on_error(&error, text.clone());
                (self.record(error.kind.name(), Some(text)), result)
            }
        }
    }
}

/// Sends through the connector and decides the result: delivered, pending, retry (a transient error
/// with attempts and age left) or failed. `max_attempts` of 1 makes every error final. A retry that
/// would start after `give_up_at` (Unix ms) fails the message instead.
pub async fn attempt_send(connector: &ConnectorHandle, request: SendRequest, max_attempts: u32, give_up_at: i64) -> (AttemptRecord, DeliveryResult) {
    let attempt = request.attempt;
    let clock = AttemptClock::start(request.message_id, "delivery", attempt);
    let outcome = connector.send(request).await.map_err(|error| error.into_connector_error()).and_then(checked_reply);

    clock.settle(outcome, |error, text| {
        if !error.kind.is_retryable() || attempt >= max_attempts {
            return DeliveryResult::Failed { error: text };
        }
        let delay = retry::backoff_ms(&connector.config.retry, attempt + 1, error.retry_after_ms.into_option());
        let next_attempt_at = now_ms() + delay as i64;
        if next_attempt_at > give_up_at {
            let mut error: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            error["gave_up"] = json!(format!("the next attempt would start after max_age_seconds = {}", connector.config.max_age_seconds));
            return DeliveryResult::Failed { error: error.to_string() };
        }
        DeliveryResult::Retry { error: text, next_attempt_at }
    })
}

/// Asks the connector for the state of a pending message.
pub async fn attempt_refresh(connector: &ConnectorHandle, request: StatusRequest) -> (AttemptRecord, DeliveryResult) {
    let clock = AttemptClock::start(request.message_id, "status", 1);
    let outcome = connector.refresh_status(request).await.map_err(|error| error.into_connector_error()).and_then(checked_reply);

    // A permanent error (the recipient has no record of the message) fails it. Any other failed
    // refresh leaves the message `processing`, because the recipient may still finish it.
    clock.settle(outcome, |error, text| {
        if error.kind == ErrorKind::PERMANENT {
            DeliveryResult::Failed { error: text }
        } else {
            DeliveryResult::Retry { error: text, next_attempt_at: 0 }
        }
    })
}
