//! Results of a whole batch stored in a few statements: one insert for every attempt and one
//! `UPDATE ... FROM (VALUES ...)` per kind of result, instead of two statements per result.
//!
//! Each statement is a round trip to the SQLite connection's thread, so the number of statements
//! per batch, not the rows, sets how long a batch keeps the single writer connection busy.
//!
//! NOTE: the `UPDATE ... FROM (VALUES ...)` form with `?` placeholders is SQLite's (PostgreSQL
//! accepts it with `$n` placeholders; MariaDB needs `UPDATE ... JOIN`).

use std::collections::{HashMap, HashSet};

use sea_orm::{ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, Statement, Value};

use super::{attempt_row, finish_callback_on, finish_delivery_on, finish_sync_on, now_ms, AttemptRecord, DeliveryResult};
use crate::db::{attempt, message};
use crate::status::Status;

/// One result to store.
pub enum Finish {
    /// A delivery attempt by the worker that holds the lease as `owner`.
    Delivery { owner: String, attempt: AttemptRecord, result: DeliveryResult },
    /// A callback attempt and the callback's next state.
    Callback { attempt: AttemptRecord, state: &'static str, next_at: Option<i64> },
    /// The one attempt of a sync send.
    Sync { attempt: AttemptRecord, result: DeliveryResult },
}

impl Finish {
    fn attempt(&self) -> &AttemptRecord {
        match self {
            Finish::Delivery { attempt, .. } | Finish::Callback { attempt, .. } | Finish::Sync { attempt, .. } => attempt,
        }
    }
}

/// The outcome of storing one [`Finish`], in the same order as the batch.
pub enum Finished {
    /// False when the worker no longer held the lease, so only the attempt was stored.
    Delivery(bool),
    Callback,
    /// The message as stored.
    Sync(Box<message::Model>),
}

/// Stores every result of `batch` inside the caller's transaction.
///
/// Two results for one message in a batch (a late sync result and the worker's redelivery) are
/// stored one by one in order, as one update per message would mix them.
pub async fn finish_batch<C: ConnectionTrait>(connection: &C, batch: Vec<Finish>) -> Result<Vec<Finished>, DbErr> {
    let mut seen = HashSet::with_capacity(batch.len());
    if !batch.iter().all(|finish| seen.insert(finish.attempt().message_id)) {
        return finish_one_by_one(connection, batch).await;
    }

    let now = now_ms();
    insert_attempts(connection, &batch).await?;

    let mut deliveries = Vec::new();
    let mut callbacks = Vec::new();
    let mut syncs = Vec::new();
    for finish in &batch {
        match finish {
            Finish::Delivery { owner, attempt, result } => deliveries.push((attempt.message_id, Some(owner.as_str()), result)),
            Finish::Sync { attempt, result } => syncs.push((attempt.message_id, None, result)),
            Finish::Callback { attempt, state, next_at } => callbacks.push((attempt.message_id, *state, *next_at)),
        }
    }

    let leased = if deliveries.is_empty() { HashSet::new() } else { update_deliveries(connection, &deliveries, now).await? };
    if !callbacks.is_empty() {
        update_callbacks(connection, &callbacks).await?;
    }
    let mut stored: HashMap<i64, message::Model> = if syncs.is_empty() {
        HashMap::new()
    } else {
        update_syncs(connection, &syncs, now).await?.into_iter().map(|row| (row.id, row)).collect()
    };

    let mut results = Vec::with_capacity(batch.len());
    for finish in batch {
        results.push(match finish {
            Finish::Delivery { attempt, .. } => Finished::Delivery(leased.contains(&attempt.message_id)),
            Finish::Callback { .. } => Finished::Callback,
            Finish::Sync { attempt, .. } => {
                let row = stored.remove(&attempt.message_id).ok_or_else(|| DbErr::RecordNotFound(format!("message {}", attempt.message_id)))?;
                Finished::Sync(Box::new(row))
            }
        });
    }
    Ok(results)
}

async fn finish_one_by_one<C: ConnectionTrait>(connection: &C, batch: Vec<Finish>) -> Result<Vec<Finished>, DbErr> {
    let mut results = Vec::with_capacity(batch.len());
    for finish in batch {
        results.push(match finish {
            Finish::Delivery { owner, attempt, result } => Finished::Delivery(finish_delivery_on(connection, &owner, attempt, result).await?),
            Finish::Callback { attempt, state, next_at } => {
                finish_callback_on(connection, attempt, state, next_at).await?;
                Finished::Callback
            }
            Finish::Sync { attempt, result } => Finished::Sync(Box::new(finish_sync_on(connection, attempt, result).await?)),
        });
    }
    Ok(results)
}

async fn insert_attempts<C: ConnectionTrait>(connection: &C, batch: &[Finish]) -> Result<(), DbErr> {
    let rows = batch.iter().map(|finish| attempt_row(finish.attempt().clone()));
    attempt::Entity::insert_many(rows).exec_without_returning(connection).await?;
    Ok(())
}

/// The columns a delivery or sync result sets, as one row of a `VALUES` list: id, owner, status,
/// whether data is set, data, whether external_id is set, external_id, whether error is set,
/// error, next_attempt_at, and whether a callback becomes due.
fn result_row(id: i64, owner: Option<&str>, result: &DeliveryResult, sync: bool) -> Vec<Value> {
    let text = |value: Option<&str>| Value::from(value.map(str::to_string));
    let (status, data, external_id, error, next_attempt_at, callback_due): (Status, Option<&str>, Option<Option<&str>>, Option<Option<&str>>, Option<i64>, bool) =
        match result {
            DeliveryResult::Delivered { data } => (Status::Delivered, Some(data.as_str()), None, Some(None), None, true),
            DeliveryResult::Pending { data, external_id } => (Status::Processing, Some(data.as_str()), Some(external_id.as_deref()), None, None, false),
            // A sync send is not retried by the worker: its transient error fails it at once.
            DeliveryResult::Retry { error, .. } if sync => (Status::Failed, None, None, Some(Some(error.as_str())), None, false),
            DeliveryResult::Retry { error, next_attempt_at } => (Status::Retrying, None, None, Some(Some(error.as_str())), Some(*next_attempt_at), false),
            DeliveryResult::Failed { error } => (Status::Failed, None, None, Some(Some(error.as_str())), None, !sync),
        };
    vec![
        Value::from(id),
        text(owner),
        Value::from(status.as_str()),
        Value::from(data.is_some()),
        text(data),
        Value::from(external_id.is_some()),
        text(external_id.flatten()),
        Value::from(error.is_some()),
        text(error.flatten()),
        Value::from(next_attempt_at),
        Value::from(callback_due),
    ]
}

/// Returns `VALUES (?1, ?2, ...), (...)` for `rows` rows of `columns` numbered placeholders each;
/// numbers from `rows * columns + 1` on are left for the statement's other values.
fn values_list(rows: usize, columns: usize) -> String {
    let rows: Vec<String> = (0..rows)
        .map(|row| {
            let placeholders: Vec<String> = (1..=columns).map(|column| format!("?{}", row * columns + column)).collect();
            format!("({})", placeholders.join(", "))
        })
        .collect();
    format!("VALUES {}", rows.join(", "))
}

/// Columns set from a [`result_row`] by both delivery and sync results.
const RESULT_COLUMNS: &str = "status = v.column3, \
     data = CASE WHEN v.column4 THEN v.column5 ELSE messages.data END, \
     external_id = CASE WHEN v.column6 THEN v.column7 ELSE messages.external_id END, \
     error = CASE WHEN v.column8 THEN v.column9 ELSE messages.error END, \
     lease_owner = NULL, lease_until = NULL";

/// Applies delivery results as [`finish_delivery_on`] does. Returns the ids whose lease was still
/// valid, because only those rows change.
async fn update_deliveries<C: ConnectionTrait>(connection: &C, rows: &[(i64, Option<&str>, &DeliveryResult)], now: i64) -> Result<HashSet<i64>, DbErr> {
    let mut values: Vec<Value> = rows.iter().flat_map(|(id, owner, result)| result_row(*id, *owner, result, false)).collect();
    values.push(Value::from(now));
    values.push(Value::from(now));
    let sql = format!(
        "UPDATE messages SET {RESULT_COLUMNS}, attempts = messages.attempts + 1, next_attempt_at = v.column10, \
         callback_state = CASE WHEN v.column11 THEN (CASE WHEN messages.callback_url IS NOT NULL THEN 'pending' ELSE NULL END) \
         ELSE messages.callback_state END, \
         callback_next_at = CASE WHEN v.column11 THEN ?{now_a} ELSE messages.callback_next_at END, updated_at = ?{now_b} \
         FROM ({values}) AS v WHERE messages.id = v.column1 AND messages.lease_owner = v.column2 RETURNING messages.id",
        values = values_list(rows.len(), 11),
        now_a = rows.len() * 11 + 1,
        now_b = rows.len() * 11 + 2,
    );
    let returned = connection.query_all(Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)).await?;
    returned.iter().map(|row| row.try_get_by_index::<i64>(0)).collect()
}

/// Applies sync results as [`finish_sync_on`] does and returns the stored rows.
async fn update_syncs<C: ConnectionTrait>(connection: &C, rows: &[(i64, Option<&str>, &DeliveryResult)], now: i64) -> Result<Vec<message::Model>, DbErr> {
    let mut values: Vec<Value> = rows.iter().flat_map(|(id, owner, result)| result_row(*id, *owner, result, true)).collect();
    values.push(Value::from(now));
    let sql = format!(
        "UPDATE messages SET {RESULT_COLUMNS}, attempts = 1, updated_at = ?{now_at} \
         FROM ({values}) AS v WHERE messages.id = v.column1 RETURNING *",
        values = values_list(rows.len(), 11),
        now_at = rows.len() * 11 + 1,
    );
    let returned = connection.query_all(Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)).await?;
    returned.iter().map(|row| message::Model::from_query_result(row, "")).collect()
}

/// Applies callback results as [`finish_callback_on`] does.
async fn update_callbacks<C: ConnectionTrait>(connection: &C, rows: &[(i64, &'static str, Option<i64>)]) -> Result<(), DbErr> {
    let values: Vec<Value> = rows.iter().flat_map(|(id, state, next_at)| [Value::from(*id), Value::from(*state), Value::from(*next_at)]).collect();
    let sql = format!(
        "UPDATE messages SET callback_state = v.column2, callback_next_at = v.column3, callback_attempts = messages.callback_attempts + 1 \
         FROM ({}) AS v WHERE messages.id = v.column1",
        values_list(rows.len(), 3)
    );
    connection.execute(Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)).await?;
    Ok(())
}
