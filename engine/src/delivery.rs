//! One delivery or status-refresh attempt through a connector, turned into a ledger result.

use std::time::Instant;

use serde_json::json;
use uig_connector_api::{ConnectorError, RemoteState, Reply, SendRequest, StatusRequest};

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

/// Sends through the connector and decides the result: delivered, pending, retry (transient error
/// with attempts left) or failed. `max_attempts` of 1 makes every error final.
pub async fn attempt_send(connector: &ConnectorHandle, request: SendRequest, max_attempts: u32) -> (AttemptRecord, DeliveryResult) {
    let message_id = request.message_id;
    let attempt = request.attempt;
    let started_at = now_ms();
    let clock = Instant::now();
    let outcome = connector.send(request).await.map_err(|error| error.into_connector_error()).and_then(checked_reply);
    let duration_ms = clock.elapsed().as_millis() as i64;

    let record = |outcome: &str, error: Option<String>| AttemptRecord {
        message_id,
        kind: "delivery",
        number: attempt as i32,
        started_at,
        duration_ms,
        outcome: outcome.to_string(),
        error,
    };

    match outcome {
        Ok(reply) if reply.state == RemoteState::PENDING => {
            let external_id = reply.external_id.into_option().map(|id| id.to_string());
            (record("pending", None), DeliveryResult::Pending { data: reply.data.to_string(), external_id })
        }
        Ok(reply) if reply.state == RemoteState::FAILED => {
            let error = json!({"kind": "permanent", "code": "recipient_failed", "message": "the recipient reports that processing failed", "attempt": attempt, "data": serde_json::from_str::<serde_json::Value>(&reply.data).ok()}).to_string();
            (record("permanent", Some(error.clone())), DeliveryResult::Failed { error })
        }
        Ok(reply) => (record("ok", None), DeliveryResult::Delivered { data: reply.data.to_string() }),
        Err(error) => {
            let text = error_json(&error, attempt);
            tracing::warn!(message_id, connector = %connector.name, attempt, kind = error.kind.name(), error = %error.message, "delivery attempt failed");
            let result = if error.kind.is_retryable() && attempt < max_attempts {
                let delay = retry::backoff_ms(&connector.config.retry, attempt + 1, error.retry_after_ms.into_option());
                DeliveryResult::Retry { error: text.clone(), next_attempt_at: now_ms() + delay as i64 }
            } else {
                DeliveryResult::Failed { error: text.clone() }
            };
            (record(error.kind.name(), Some(text)), result)
        }
    }
}

/// Asks the connector for the state of a pending message.
pub async fn attempt_refresh(connector: &ConnectorHandle, request: StatusRequest) -> (AttemptRecord, DeliveryResult) {
    let message_id = request.message_id;
    let started_at = now_ms();
    let clock = Instant::now();
    let outcome = connector.refresh_status(request).await.map_err(|error| error.into_connector_error()).and_then(checked_reply);
    let duration_ms = clock.elapsed().as_millis() as i64;
    let record = |outcome: &str, error: Option<String>| AttemptRecord {
        message_id,
        kind: "status",
        number: 1,
        started_at,
        duration_ms,
        outcome: outcome.to_string(),
        error,
    };

    match outcome {
        Ok(reply) if reply.state == RemoteState::PENDING => {
            (record("pending", None), DeliveryResult::Pending { data: reply.data.to_string(), external_id: None })
        }
        Ok(reply) if reply.state == RemoteState::FAILED => {
            let error = json!({"kind": "permanent", "code": "recipient_failed", "message": "the recipient reports that processing failed"}).to_string();
            (record("permanent", Some(error.clone())), DeliveryResult::Failed { error })
        }
        Ok(reply) => (record("ok", None), DeliveryResult::Delivered { data: reply.data.to_string() }),
        Err(error) => {
            let text = error_json(&error, 1);
            tracing::warn!(message_id, connector = %connector.name, kind = error.kind.name(), error = %error.message, "status refresh failed");
            // A failed refresh leaves the message `processing`, because the recipient may still finish it.
            (record(error.kind.name(), Some(text.clone())), DeliveryResult::Retry { error: text, next_attempt_at: 0 })
        }
    }
}
