//! Polling external feeds: the stored pointer, the poller's lease, and the routing of new events.
//!
//! A batch and the pointer after it are stored in one transaction, so a crash between fetching and
//! storing repeats the batch. Event ids already stored are skipped, so a repeated batch adds nothing.

use std::collections::HashMap;

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, Set, TransactionTrait};
use serde_json::{json, Map, Value};
use uig_connector_api::reexports::ROption;
use uig_connector_api::{ConnectorError, FeedItem, PollRequest};

use crate::config::{ForwardConfig, PollFeedJob, RouteConfig};
use crate::db::{client, feed_cursor, feed_event, message, Db};
use crate::delivery::error_json;
use crate::engine::Engine;
use crate::ledger::{self, now_ms};
use crate::status::Status;

/// Counts of one poll run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollSummary {
    /// Batches read.
    pub batches: u32,
    /// New events stored.
    pub new_events: u64,
    /// Events skipped because an earlier batch stored them.
    pub repeated_events: u64,
    /// Messages created in client inboxes and for forwarding.
    pub messages: u64,
    /// True when another instance held the feed, so this run did nothing.
    pub skipped: bool,
}

impl PollSummary {
    /// Returns one line for the job log.
    pub fn describe(&self) -> String {
        if self.skipped {
            return "another poller holds the feed".to_string();
        }
        format!(
            "{} batches, {} new events, {} repeated events, {} messages",
            self.batches, self.new_events, self.repeated_events, self.messages
        )
    }
}

/// Polls one feed from its stored pointer until a batch comes back short or `max_batches` is reached.
pub async fn poll(engine: &Engine, job: &PollFeedJob) -> Result<PollSummary, String> {
    let Some(connector) = engine.connectors.get(&job.connector) else {
        return Err(format!("connector \"{}\" is not loaded on this instance", job.connector));
    };
    // One batch takes at most the plugin call's deadline plus a short commit, and each commit renews
    // the lease. A poller that died blocks its feed for about this long.
    let lease_ms = connector.config.deadline_ms as i64 + 5_000;
    let owner = engine.instance_id.as_str();
    ensure_row(&engine.db, &job.connector, &job.feed).await.map_err(storage_error)?;
    if !acquire(&engine.db, &job.connector, &job.feed, owner, lease_ms).await.map_err(storage_error)? {
        return Ok(PollSummary { skipped: true, ..PollSummary::default() });
    }

    let mut summary = PollSummary::default();
    let result = async {
        for _ in 0..job.max_batches {
            let row = find(&engine.db, &job.connector, &job.feed).await.map_err(storage_error)?.ok_or("feed row vanished")?;
            let request = PollRequest {
                feed: job.feed.as_str().into(),
                cursor: row.cursor.clone().map(Into::into).into(),
                limit: job.batch,
            };
            let batch = match connector.poll_feed(request).await {
                Ok(batch) => batch,
                Err(error) => {
                    let error = error.into_connector_error();
                    record_error(&engine.db, &job.connector, &job.feed, owner, &error).await.map_err(storage_error)?;
                    return Err(describe_poll_error(job, &error));
                }
            };
            summary.batches += 1;
            let full = batch.items.len() as u32 >= job.batch;
            let next_cursor = match batch.next_cursor {
                ROption::RSome(cursor) => Some(cursor.to_string()),
                ROption::RNone => None,
            };
            let items: Vec<FeedItem> = batch.items.into_iter().collect();
            let stored = store_batch(engine, job, owner, lease_ms, &items, next_cursor).await?;
            summary.new_events += stored.new_events;
            summary.repeated_events += stored.repeated_events;
            summary.messages += stored.messages;
            if !full || items.is_empty() {
                break;
            }
        }
        Ok(())
    }
    .await;

    release(&engine.db, &job.connector, &job.feed, owner).await.map_err(storage_error)?;
    if summary.messages > 0 {
        engine.wake_all_pools();
    }
    result.map(|()| summary)
}

/// Turns a failed poll into the run's error; a pointer the system rejects needs an operator.
fn describe_poll_error(job: &PollFeedJob, error: &ConnectorError) -> String {
    let feed = format!("{}/{}", job.connector, job.feed);
    if error.kind.is_retryable() {
        return format!("feed {feed}: {error}; the next run repeats the batch");
    }
    tracing::error!(
        %feed,
        error = %error,
        "feed poll rejected: the stored pointer is kept; check it with `uig cursor list` and set it with `uig cursor set {feed} VALUE`"
    );
    format!("feed {feed}: {error}; the pointer is kept, check it with `uig cursor list`")
}

fn storage_error(error: DbErr) -> String {
    format!("ledger error: {error}")
}

/// Counts of one stored batch.
struct Stored {
    new_events: u64,
    repeated_events: u64,
    messages: u64,
}

/// Stores the new events of a batch, their messages and the pointer after the batch, in one
/// transaction fenced by this instance's lease.
async fn store_batch(
    engine: &Engine,
    job: &PollFeedJob,
    owner: &str,
    lease_ms: i64,
    items: &[FeedItem],
    next_cursor: Option<String>,
) -> Result<Stored, String> {
    let routes: Vec<&RouteConfig> = engine
        .config
        .routes
        .iter()
        .filter(|route| route.connector == job.connector && route.feed.as_deref().is_none_or(|feed| feed == job.feed))
        .collect();
    let transaction = engine.db.writer.begin().await.map_err(storage_error)?;
    let mut clients = ClientIds::default();
    let mut stored = Stored { new_events: 0, repeated_events: 0, messages: 0 };
    let now = now_ms();

    for item in items {
        let external_id = item.external_id.as_str();
        let seen = feed_event::Entity::find()
            .filter(feed_event::Column::Connector.eq(&job.connector))
            .filter(feed_event::Column::Feed.eq(&job.feed))
            .filter(feed_event::Column::ExternalId.eq(external_id))
            .one(&transaction)
            .await
            .map_err(storage_error)?;
        if seen.is_some() {
            stored.repeated_events += 1;
            continue;
        }
        feed_event::ActiveModel {
            connector: Set(job.connector.clone()),
            feed: Set(job.feed.clone()),
            external_id: Set(external_id.to_string()),
            received_at: Set(now),
            ..Default::default()
        }
        .insert(&transaction)
        .await
        .map_err(storage_error)?;
        stored.new_events += 1;

        let content: Value = serde_json::from_str(&item.content).map_err(|error| {
            format!("feed {}/{}: event {external_id} content is not JSON ({error}); the batch is not stored", job.connector, job.feed)
        })?;
        let envelope = json!({"connector": job.connector, "feed": job.feed, "external_id": external_id}).to_string();
        let mut routed = false;
        for route in routes.iter().filter(|route| route.entity.as_deref().is_none_or(|entity| entity == item.entity.as_str())) {
            routed = true;
            for name in &route.clients {
                let client_id = clients.resolve(&transaction, name).await?;
                let inbound = inbound_message(client_id, &job.connector, item, &envelope, now);
                ledger::insert_sequenced(&transaction, inbound).await.map_err(storage_error)?;
                stored.messages += 1;
            }
            for forward in &route.forward {
                let client_id = clients.resolve(&transaction, &forward.client).await?;
                let outbound = forwarded_message(engine, client_id, forward, &content, &envelope, now);
                ledger::insert_sequenced(&transaction, outbound).await.map_err(storage_error)?;
                stored.messages += 1;
            }
        }
        if !routed {
            tracing::info!(connector = %job.connector, feed = %job.feed, entity = %item.entity, external_id, "no route takes this event; it is marked seen only");
        }
    }

    let mut update = feed_cursor::Entity::update_many()
        .col_expr(feed_cursor::Column::LastPolledAt, Expr::value(now))
        .col_expr(feed_cursor::Column::LastError, Expr::value(Option::<String>::None))
        .col_expr(feed_cursor::Column::LeaseUntil, Expr::value(now + lease_ms))
        .col_expr(feed_cursor::Column::EventsTotal, Expr::col(feed_cursor::Column::EventsTotal).add(stored.new_events as i64))
        .col_expr(feed_cursor::Column::UpdatedAt, Expr::value(now));
    if let Some(cursor) = next_cursor {
        update = update.col_expr(feed_cursor::Column::Cursor, Expr::value(cursor));
    }
    let fenced = update
        .filter(feed_cursor::Column::Connector.eq(&job.connector))
        .filter(feed_cursor::Column::Feed.eq(&job.feed))
        .filter(feed_cursor::Column::LeaseOwner.eq(owner))
        .exec(&transaction)
        .await
        .map_err(storage_error)?;
    if fenced.rows_affected != 1 {
        transaction.rollback().await.map_err(storage_error)?;
        return Err(format!("feed {}/{}: the poller's lease ran out before the batch was stored; the next run repeats it", job.connector, job.feed));
    }
    transaction.commit().await.map_err(storage_error)?;
    Ok(stored)
}

/// Client ids by name, looked up once per batch.
#[derive(Default)]
struct ClientIds(HashMap<String, i32>);

impl ClientIds {
    async fn resolve(&mut self, transaction: &DatabaseTransaction, name: &str) -> Result<i32, String> {
        if let Some(id) = self.0.get(name) {
            return Ok(*id);
        }
        let found = client::Entity::find().filter(client::Column::Name.eq(name)).one(transaction).await.map_err(storage_error)?;
        let Some(found) = found else {
            return Err(format!("routing names client \"{name}\", which does not exist: add it with `uig client add {name}`; the batch is not stored"));
        };
        self.0.insert(name.to_string(), found.id);
        Ok(found.id)
    }
}

/// Builds a `received` message for a client's inbox: `data` is the event content, `message` names its source.
fn inbound_message(client_id: i32, connector: &str, item: &FeedItem, envelope: &str, now: i64) -> message::ActiveModel {
    message::ActiveModel {
        client_id: Set(client_id),
        client_seq: Set(0),
        direction: Set("inbound".to_string()),
        recipient: Set(connector.to_string()),
        entity: Set(item.entity.to_string()),
        message: Set(envelope.to_string()),
        status: Set(Status::Received.as_str().to_string()),
        data: Set(Some(item.content.to_string())),
        attempts: Set(0),
        callback_attempts: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        pool: Set(crate::config::DEFAULT_POOL.to_string()),
        ..Default::default()
    }
}

/// Builds a queued outbound message from an event by a forward rule.
fn forwarded_message(engine: &Engine, client_id: i32, forward: &ForwardConfig, content: &Value, envelope: &str, now: i64) -> message::ActiveModel {
    let payload = project(content, forward);
    message::ActiveModel {
        client_id: Set(client_id),
        client_seq: Set(0),
        direction: Set("outbound".to_string()),
        recipient: Set(forward.recipient.clone()),
        entity: Set(forward.entity.clone()),
        message: Set(payload.to_string()),
        status: Set(Status::Queued.as_str().to_string()),
        next_attempt_at: Set(Some(now)),
        attempts: Set(0),
        callback_attempts: Set(0),
        // One forwarded message per event and rule, even if a repeated batch slipped past the event check.
        idempotency_key: Set(Some(forward_key(envelope, forward))),
        created_at: Set(now),
        updated_at: Set(now),
        pool: Set(engine.config.pool_for(&forward.recipient, &forward.entity)),
        ..Default::default()
    }
}

/// Idempotency key of a forwarded message: a hash of the source event and the rule's target.
fn forward_key(envelope: &str, forward: &ForwardConfig) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new().chain_update(envelope).chain_update([0]).chain_update(&forward.recipient).chain_update([0]).chain_update(&forward.entity).finalize();
    format!("forward:{}", hex::encode(digest))
}

/// Builds a forwarded message: the chosen fields of the event plus the fixed ones.
pub fn project(content: &Value, forward: &ForwardConfig) -> Value {
    let mut object = Map::new();
    if let Value::Object(fields) = content {
        for (key, value) in fields {
            if forward.fields.as_ref().is_none_or(|wanted| wanted.iter().any(|name| name == key)) {
                object.insert(key.clone(), value.clone());
            }
        }
    }
    for (key, value) in &forward.set {
        object.insert(key.clone(), serde_json::to_value(value).unwrap_or(Value::Null));
    }
    Value::Object(object)
}

async fn find(db: &Db, connector: &str, feed: &str) -> Result<Option<feed_cursor::Model>, DbErr> {
    feed_cursor::Entity::find()
        .filter(feed_cursor::Column::Connector.eq(connector))
        .filter(feed_cursor::Column::Feed.eq(feed))
        .one(&db.writer)
        .await
}

/// Creates the feed's row on its first poll.
async fn ensure_row(db: &Db, connector: &str, feed: &str) -> Result<(), DbErr> {
    if find(db, connector, feed).await?.is_some() {
        return Ok(());
    }
    let row = feed_cursor::ActiveModel {
        connector: Set(connector.to_string()),
        feed: Set(feed.to_string()),
        events_total: Set(0),
        updated_at: Set(now_ms()),
        ..Default::default()
    };
    match row.insert(&db.writer).await {
        Ok(_) => Ok(()),
        // Another instance created it first.
        Err(_) if find(db, connector, feed).await?.is_some() => Ok(()),
        Err(error) => Err(error),
    }
}

/// Takes the feed's lease unless another live poller holds it.
async fn acquire(db: &Db, connector: &str, feed: &str, owner: &str, lease_ms: i64) -> Result<bool, DbErr> {
    let now = now_ms();
    let free = Condition::any()
        .add(feed_cursor::Column::LeaseUntil.is_null())
        .add(feed_cursor::Column::LeaseUntil.lt(now))
        .add(feed_cursor::Column::LeaseOwner.eq(owner));
    let result = feed_cursor::Entity::update_many()
        .col_expr(feed_cursor::Column::LeaseOwner, Expr::value(owner))
        .col_expr(feed_cursor::Column::LeaseUntil, Expr::value(now + lease_ms))
        .filter(feed_cursor::Column::Connector.eq(connector))
        .filter(feed_cursor::Column::Feed.eq(feed))
        .filter(free)
        .exec(&db.writer)
        .await?;
    Ok(result.rows_affected == 1)
}

async fn release(db: &Db, connector: &str, feed: &str, owner: &str) -> Result<(), DbErr> {
    feed_cursor::Entity::update_many()
        .col_expr(feed_cursor::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(feed_cursor::Column::LeaseUntil, Expr::value(Option::<i64>::None))
        .filter(feed_cursor::Column::Connector.eq(connector))
        .filter(feed_cursor::Column::Feed.eq(feed))
        .filter(feed_cursor::Column::LeaseOwner.eq(owner))
        .exec(&db.writer)
        .await?;
    Ok(())
}

async fn record_error(db: &Db, connector: &str, feed: &str, owner: &str, error: &ConnectorError) -> Result<(), DbErr> {
    let now = now_ms();
    feed_cursor::Entity::update_many()
        .col_expr(feed_cursor::Column::LastError, Expr::value(error_json(error, 0)))
        .col_expr(feed_cursor::Column::LastPolledAt, Expr::value(now))
        .col_expr(feed_cursor::Column::UpdatedAt, Expr::value(now))
        .filter(feed_cursor::Column::Connector.eq(connector))
        .filter(feed_cursor::Column::Feed.eq(feed))
        .filter(feed_cursor::Column::LeaseOwner.eq(owner))
        .exec(&db.writer)
        .await?;
    Ok(())
}

/// Returns every stored feed, for `uig cursor list`.
pub async fn list(db: &Db) -> Result<Vec<feed_cursor::Model>, DbErr> {
    feed_cursor::Entity::find().all(&db.reader).await
}

/// Sets (or clears, with `None`) the pointer of `connector/feed`, creating the row if needed.
/// Returns the previous pointer.
pub async fn set_cursor(db: &Db, connector: &str, feed: &str, cursor: Option<String>) -> Result<Option<String>, DbErr> {
    ensure_row(db, connector, feed).await?;
    let previous = find(db, connector, feed).await?.and_then(|row| row.cursor);
    feed_cursor::Entity::update_many()
        .col_expr(feed_cursor::Column::Cursor, Expr::value(cursor))
        .col_expr(feed_cursor::Column::LastError, Expr::value(Option::<String>::None))
        .col_expr(feed_cursor::Column::UpdatedAt, Expr::value(now_ms()))
        .filter(feed_cursor::Column::Connector.eq(connector))
        .filter(feed_cursor::Column::Feed.eq(feed))
        .exec(&db.writer)
        .await?;
    Ok(previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(fields: Option<Vec<&str>>, set: &str) -> ForwardConfig {
        ForwardConfig {
            recipient: "kias".into(),
            entity: "notify".into(),
            client: "crm".into(),
            fields: fields.map(|names| names.into_iter().map(String::from).collect()),
            set: toml::from_str(set).unwrap(),
        }
    }

    #[test]
    fn projection_keeps_chosen_fields_and_adds_fixed_ones() {
        let content = json!({"mediId": "m1", "messageId": "x", "content": "QUJD", "meta": {"a": 1}});
        let projected = project(&content, &forward(Some(vec!["mediId", "messageId"]), "EventType = \"KONTUR_DOCUMENT\""));
        assert_eq!(projected, json!({"mediId": "m1", "messageId": "x", "EventType": "KONTUR_DOCUMENT"}));
    }

    #[test]
    fn projection_without_field_list_copies_everything() {
        let content = json!({"a": 1, "b": [2]});
        assert_eq!(project(&content, &forward(None, "")), content);
    }
}
