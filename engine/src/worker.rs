//! The delivery worker: claims due messages under a lease and delivers them through connectors.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use uig_connector_api::{ConnectorError, SendRequest};

use crate::db::message;
use crate::delivery;
use crate::engine::Engine;
use crate::ledger::{self, now_ms, AttemptRecord, DeliveryResult};

/// Runs one delivery loop per worker pool until `shutdown` turns true, then waits for in-flight
/// deliveries to finish.
pub async fn run(engine: Arc<Engine>, shutdown: watch::Receiver<bool>) {
    let mut loops = tokio::task::JoinSet::new();
    for (pool, capacity) in engine.config.pool_concurrency() {
        loops.spawn(run_pool(engine.clone(), pool, capacity as usize, shutdown.clone()));
    }
    while loops.join_next().await.is_some() {}
}

/// Delivers the messages of one pool, at most `capacity` at once.
async fn run_pool(engine: Arc<Engine>, pool: String, capacity: usize, mut shutdown: watch::Receiver<bool>) {
    let in_flight = Arc::new(Semaphore::new(capacity));
    let poll_interval = Duration::from_millis(engine.config.worker.poll_interval_ms);
    let lease_ms = (engine.config.worker.lease_seconds * 1000) as i64;
    let claim_batch = engine.config.worker.claim_batch;
    let wake = engine.pools.get(&pool).cloned().expect("every configured pool has a wake-up signal");
    tracing::info!(instance = %engine.instance_id, %pool, capacity, "delivery worker started");

    loop {
        if *shutdown.borrow() {
            break;
        }
        if in_flight.available_permits() < capacity / 2 {
            // Woken by a finished delivery: let a few more slots free up, so that one claim
            // statement takes several messages instead of one each.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let free = (in_flight.available_permits() as u64).min(claim_batch);
        let claimed = if free == 0 {
            Vec::new()
        } else {
            match engine.claims.deliveries(&engine.instance_id, &pool, free, lease_ms).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::error!(%pool, %error, "claiming due messages failed");
                    Vec::new()
                }
            }
        };

        let claimed_any = !claimed.is_empty();
        for message in claimed {
            let permit = in_flight.clone().acquire_owned().await.expect("worker semaphore is never closed");
            let engine = engine.clone();
            let wake = wake.clone();
            tokio::spawn(async move {
                deliver(&engine, message).await;
                drop(permit);
                // A free slot may take the next due message now instead of at the next poll.
                wake.notify_one();
            });
        }
        if claimed_any && in_flight.available_permits() > 0 {
            continue;
        }

        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(poll_interval) => {}
            _ = shutdown.changed() => {}
        }
    }

    tracing::info!(%pool, "delivery worker stopping, waiting for deliveries in flight");
    let _all = in_flight.acquire_many(capacity as u32).await;
    tracing::info!(%pool, "delivery worker stopped");
}

async fn deliver(engine: &Engine, message: message::Model) {
    let attempt = message.attempts as u32 + 1;
    let Some(connector) = engine.connectors.get(&message.recipient) else {
        // The connector was removed from the config or failed to load after the message was accepted.
        let error = ConnectorError::transient(format!("connector \"{}\" is not loaded on this instance", message.recipient));
        let record = AttemptRecord {
            message_id: message.id,
            kind: "delivery",
            number: attempt as i32,
            started_at: now_ms(),
            duration_ms: 0,
            outcome: "unavailable".into(),
            error: Some(delivery::error_json(&error, attempt)),
        };
        let result = DeliveryResult::Retry { error: delivery::error_json(&error, attempt), next_attempt_at: now_ms() + 60_000 };
        finish(engine, message.id, record, result).await;
        return;
    };

    if let Some(open_for) = connector.breaker.open_for() {
        // Not an attempt: the plugin is not called, so the message waits without using one up.
        let next_attempt_at = now_ms() + open_for.as_millis() as i64;
        match ledger::postpone(&engine.db, &engine.instance_id, &message, next_attempt_at).await {
            Ok(_) => tracing::debug!(message_id = message.id, connector = %connector.name, "circuit breaker open, delivery postponed"),
            Err(error) => tracing::error!(message_id = message.id, %error, "postponing the delivery failed"),
        }
        return;
    }

    let request = SendRequest {
        message_id: message.id,
        entity: message.entity.as_str().into(),
        payload: message.message.as_str().into(),
        attempt,
    };
    let give_up_at = message.created_at.saturating_add(connector.config.max_age_seconds as i64 * 1000);
    let (record, result) = delivery::attempt_send(connector, request, connector.config.max_attempts, give_up_at).await;
    let terminal = matches!(result, DeliveryResult::Delivered { .. } | DeliveryResult::Failed { .. });
    finish(engine, message.id, record, result.clone()).await;

    match &result {
        DeliveryResult::Delivered { .. } => tracing::info!(message_id = message.id, connector = %connector.name, attempt, "message delivered"),
        DeliveryResult::Failed { .. } => tracing::warn!(message_id = message.id, connector = %connector.name, attempt, "message failed"),
        DeliveryResult::Retry { next_attempt_at, .. } => {
            tracing::info!(message_id = message.id, connector = %connector.name, attempt, retry_in_ms = next_attempt_at - now_ms(), "delivery will be retried")
        }
        DeliveryResult::Pending { .. } => tracing::info!(message_id = message.id, connector = %connector.name, "recipient is processing the message"),
    }
    if terminal && message.callback_url.is_some() {
        engine.callback_due.notify_one();
    }
}

async fn finish(engine: &Engine, message_id: i64, record: AttemptRecord, result: DeliveryResult) {
    match engine.finisher.delivery(&engine.instance_id, record, result).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(message_id, "lease lost before the result was stored; another worker owns the message"),
        // The lease stays; the message is claimed again when it runs out.
        Err(error) => tracing::error!(message_id, %error, "storing the delivery result failed"),
    }
}
