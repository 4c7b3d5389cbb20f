//! The writes of one group-commit batch: accepted messages, attempt results and claims, run
//! straight on the writer connection's SQLite handle through rusqlite
//! ([`crate::db::Db::with_writer_handle`]).
//!
//! Each statement is prepared once per batch and run once per row. As nothing crosses a thread per
//! statement, a batch keeps the single writer busy only for SQLite's own work and the commit.
//!
//! Inserts and results have the same effect as their sea-orm counterparts in the parent module
//! ([`super::insert_message`], [`super::finish_delivery_on`], [`super::finish_sync_on`],
//! [`super::finish_callback_on`]). `engine/tests/ledger_batch.rs` compares them on two ledgers and
//! checks the claims.
//!
//! NOTE: SQLite only, like the rest of the writer. MariaDB and PostgreSQL need the sea-orm path
//! or their own driver here, and MariaDB has no `UPDATE ... RETURNING` for the claims.

use std::collections::HashMap;

use rusqlite::{named_params, params, Connection, OptionalExtension, Row, Statement, ToSql};

use super::unread::NewUnread;
use super::{now_ms, AttemptRecord, DeliveryResult, NewMessage, Stored};
use crate::db::message;
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

/// The outcome of storing one [`Finish`].
pub enum Finished {
    /// False when the worker no longer held the lease, so only the attempt was stored.
    Delivery(bool),
    Callback,
    /// The message as stored.
    Sync(Box<message::Model>),
}

/// The columns of `messages` in the order of [`message::Model`]'s fields, for [`message_row`]. A
/// macro, so that `concat!` builds each statement's text once, at compile time.
macro_rules! message_columns {
    () => {
        "id, client_id, client_seq, direction, recipient, entity, message, status, data, error, \
         external_id, attempts, next_attempt_at, lease_owner, lease_until, callback_url, callback_state, callback_attempts, \
         callback_next_at, request_hash, idempotency_key, read_at, created_at, updated_at, pool, request_ts"
    };
}

/// Columns that delivery and sync results both set from a [`Change`].
macro_rules! change_columns {
    () => {
        "status = :status, \
         data = CASE WHEN :set_data THEN :data ELSE data END, \
         external_id = CASE WHEN :set_external_id THEN :external_id ELSE external_id END, \
         error = CASE WHEN :set_error THEN :error ELSE error END, \
         next_attempt_at = :next_attempt_at, lease_owner = NULL, lease_until = NULL, updated_at = :now"
    };
}

/// Ids of up to `:limit` messages of `:pool` in one state, due for delivery at `:now`, earliest
/// first: one range of `ix_messages_pool_due_nonnull`, whatever the size of the ledger. A leased
/// message keeps the end of its lease in `next_attempt_at`, so that one index finds expired leases
/// too.
macro_rules! due_in_state {
    ($status:literal, $extra:literal) => {
        concat!(
            "SELECT id, next_attempt_at FROM (SELECT id, next_attempt_at FROM messages WHERE pool = :pool AND status = '",
            $status,
            "' AND next_attempt_at <= :now",
            $extra,
            " ORDER BY next_attempt_at, id LIMIT :limit)"
        )
    };
}

/// Condition of messages whose callback is due at `:now`.
macro_rules! callback_due {
    () => {
        "callback_state = 'pending' AND callback_next_at <= :now"
    };
}

/// Reads a row selected or returned with `message_columns!()`.
fn message_row(row: &Row) -> rusqlite::Result<message::Model> {
    Ok(message::Model {
        id: row.get(0)?,
        client_id: row.get(1)?,
        client_seq: row.get(2)?,
        direction: row.get(3)?,
        recipient: row.get(4)?,
        entity: row.get(5)?,
        message: row.get(6)?,
        status: row.get(7)?,
        data: row.get(8)?,
        error: row.get(9)?,
        external_id: row.get(10)?,
        attempts: row.get(11)?,
        next_attempt_at: row.get(12)?,
        lease_owner: row.get(13)?,
        lease_until: row.get(14)?,
        callback_url: row.get(15)?,
        callback_state: row.get(16)?,
        callback_attempts: row.get(17)?,
        callback_next_at: row.get(18)?,
        request_hash: row.get(19)?,
        idempotency_key: row.get(20)?,
        read_at: row.get(21)?,
        created_at: row.get(22)?,
        updated_at: row.get(23)?,
        pool: row.get(24)?,
        request_ts: row.get(25)?,
    })
}

/// The writes of one batch, inside the transaction that [`crate::db::write_transaction`] opened.
/// [`Batch::complete`] must run before the transaction commits.
pub struct Batch<'c> {
    connection: &'c Connection,
    /// The next sequence number of each client that stored a message in this batch.
    next_seq: HashMap<i32, i64>,
    /// Messages stored in this batch, all unread, for `unread_counts`.
    unread: NewUnread,
}

impl<'c> Batch<'c> {
    pub fn new(connection: &'c Connection) -> Batch<'c> {
        Batch { connection, next_seq: HashMap::new(), unread: NewUnread::default() }
    }

    /// Adds the messages stored by this batch to the unread counts, with one statement per block
    /// of the client's sequence rather than per message.
    pub fn complete(mut self) -> rusqlite::Result<()> {
        self.unread.store(self.connection)
    }

    /// Stores a message unless the same client already sent the same idempotency key (since
    /// `idempotency_since`) or request hash, as [`super::insert_message`] does. Messages stored
    /// earlier in this batch count as sent before.
    pub fn insert(&mut self, new: &NewMessage, idempotency_since: i64) -> rusqlite::Result<Stored> {
        self.insert_with(new, idempotency_since, None)
    }

    /// Stores a sync lookup, whose one attempt has already run, with that attempt's result and its
    /// attempt row. A repeated request, found as in [`Batch::insert`], keeps the earlier message
    /// and stores no attempt.
    pub fn insert_with_result(&mut self, new: &NewMessage, idempotency_since: i64, attempt: &AttemptRecord, result: &DeliveryResult) -> rusqlite::Result<Stored> {
        let stored = self.insert_with(new, idempotency_since, Some(Change::of(result, true)))?;
        if let Stored::Created(message) = &stored {
            self.insert_attempt(AttemptRecord { message_id: message.id, ..attempt.clone() })?;
        }
        Ok(stored)
    }

    fn insert_with(&mut self, new: &NewMessage, idempotency_since: i64, result_change: Option<Change>) -> rusqlite::Result<Stored> {
        if let Some(existing) = self.find_repeat_unchecked(new, idempotency_since)? {
            return Ok(Stored::Existing(existing));
        }
        let seq = match self.next_seq.get(&new.client_id) {
            Some(seq) => *seq,
            None => self.last_sequence(new.client_id)? + 1,
        };

        // The stored row is built here from the values bound below, instead of read back with
        // RETURNING, which makes SQLite copy each inserted row into a temporary table.
        let now = now_ms();
        let mut row = message::Model {
            id: 0,
            client_id: new.client_id,
            client_seq: seq,
            direction: "outbound".to_string(),
            recipient: new.recipient.clone(),
            entity: new.entity.clone(),
            message: new.message.clone(),
            status: result_change.as_ref().map_or(new.status, |change| change.status).as_str().to_string(),
            data: result_change.as_ref().and_then(|change| change.data).map(str::to_string),
            error: result_change.as_ref().and_then(|change| change.error.flatten()).map(str::to_string),
            external_id: result_change.as_ref().and_then(|change| change.external_id.flatten()).map(str::to_string),
            attempts: i32::from(result_change.is_some()),
            next_attempt_at: if result_change.is_some() { None } else { new.next_attempt_at(now) },
            lease_owner: new.lease.as_ref().filter(|_| result_change.is_none()).map(|(owner, _)| owner.clone()),
            lease_until: new.lease.as_ref().filter(|_| result_change.is_none()).map(|(_, length_ms)| now + length_ms),
            callback_url: new.callback_url.clone(),
            callback_state: None,
            callback_attempts: 0,
            callback_next_at: None,
            request_hash: new.request_hash.clone(),
            idempotency_key: new.idempotency_key.clone(),
            read_at: None,
            created_at: now,
            updated_at: now,
            pool: new.pool.clone(),
            request_ts: new.request_ts,
        };
        // Numbered parameters: binding each by name costs a lookup of the name per value.
        let mut insert = self.connection.prepare_cached(
            "INSERT INTO messages (client_id, client_seq, direction, recipient, entity, message, status, attempts, \
             next_attempt_at, lease_owner, lease_until, callback_url, callback_attempts, request_hash, request_ts, \
             idempotency_key, created_at, updated_at, pool, data, error, external_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
        )?;
        let inserted = insert.execute(params![
            row.client_id,
            row.client_seq,
            row.direction,
            row.recipient,
            row.entity,
            row.message,
            row.status,
            row.attempts,
            row.next_attempt_at,
            row.lease_owner,
            row.lease_until,
            row.callback_url,
            row.callback_attempts,
            row.request_hash,
            row.request_ts,
            row.idempotency_key,
            row.created_at,
            row.updated_at,
            row.pool,
            row.data,
            row.error,
            row.external_id,
        ]);
        let row = inserted.map(|_| {
            row.id = self.connection.last_insert_rowid();
            row
        });
        match row {
            Ok(row) => {
                self.next_seq.insert(new.client_id, seq + 1);
                self.unread.add(new.client_id, seq);
                Ok(Stored::Created(row))
            }
            // A unique index contains the same request (time and hash, or hash alone when unsigned),
            // or the idempotency key from before the window. SQLite undoes only the failed
            // statement. The earlier message is the one `insert_message` returns: a repeat of the
            // request first, then the key at any age.
            Err(rusqlite::Error::SqliteFailure(failure, message)) if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE => {
                let existing = match self.find_repeat(new, idempotency_since)? {
                    Some(existing) => Some(existing),
                    None => self.find_by_key(new, 0)?,
                };
                match existing {
                    Some(existing) => Ok(Stored::Existing(existing)),
                    None => Err(rusqlite::Error::SqliteFailure(failure, message)),
                }
            }
            Err(error) => Err(error),
        }
    }

    /// Finds the earlier message of a repeated send among those that the insert's unique indexes
    /// would not reject: the idempotency key within its window, and for a signed send, an unsigned
    /// row from before migration 6 with the same hash. A repeat of a signed send (same time and
    /// hash) or of an unsigned one (same hash) fails the insert instead, which then reads the
    /// earlier message with [`Batch::find_repeat`]. So the usual send, which is new, reads none of
    /// the request indexes twice.
    fn find_repeat_unchecked(&self, new: &NewMessage, idempotency_since: i64) -> rusqlite::Result<Option<message::Model>> {
        if let Some(found) = self.find_by_key(new, idempotency_since)? {
            return Ok(Some(found));
        }
        match (&new.request_hash, new.request_ts) {
            (Some(hash), Some(_)) => self.find_unsigned(new.client_id, hash),
            _ => Ok(None),
        }
    }

    /// Finds the earlier message of a repeated send as `super::find_repeat` does.
    fn find_repeat(&self, new: &NewMessage, idempotency_since: i64) -> rusqlite::Result<Option<message::Model>> {
        if let Some(found) = self.find_by_key(new, idempotency_since)? {
            return Ok(Some(found));
        }
        let Some(hash) = &new.request_hash else {
            return Ok(None);
        };
        // Signed rows by time and hash, rows from before migration 6 by hash, each through its
        // partial unique index.
        if let Some(signed_at) = new.request_ts {
            let sql = concat!("SELECT ", message_columns!(), " FROM messages WHERE client_id = ?1 AND request_ts = ?2 AND request_hash = ?3 LIMIT 1");
            let found = self.connection.prepare_cached(sql)?.query_row((new.client_id, signed_at, hash), message_row).optional()?;
            if found.is_some() {
                return Ok(found);
            }
        }
        self.find_unsigned(new.client_id, hash)
    }

    fn find_by_key(&self, new: &NewMessage, idempotency_since: i64) -> rusqlite::Result<Option<message::Model>> {
        let Some(key) = &new.idempotency_key else {
            return Ok(None);
        };
        let sql = concat!("SELECT ", message_columns!(), " FROM messages WHERE client_id = ?1 AND idempotency_key = ?2 AND created_at >= ?3 LIMIT 1");
        self.connection.prepare_cached(sql)?.query_row((new.client_id, key, idempotency_since), message_row).optional()
    }

    fn find_unsigned(&self, client_id: i32, hash: &str) -> rusqlite::Result<Option<message::Model>> {
        let sql = concat!("SELECT ", message_columns!(), " FROM messages WHERE client_id = ?1 AND request_ts IS NULL AND request_hash = ?2 LIMIT 1");
        self.connection.prepare_cached(sql)?.query_row((client_id, hash), message_row).optional()
    }

    fn last_sequence(&self, client_id: i32) -> rusqlite::Result<i64> {
        let mut select = self.connection.prepare_cached("SELECT client_seq FROM messages WHERE client_id = ?1 ORDER BY client_seq DESC LIMIT 1")?;
        Ok(select.query_row([client_id], |row| row.get(0)).optional()?.unwrap_or(0))
    }

    /// Stores one result and its attempt row.
    pub fn finish(&mut self, finish: Finish) -> rusqlite::Result<Finished> {
        match finish {
            Finish::Delivery { owner, attempt, result } => {
                let message_id = attempt.message_id;
                self.insert_attempt(attempt)?;
                Ok(Finished::Delivery(self.update_delivery(message_id, &owner, &result)?))
            }
            Finish::Callback { attempt, state, next_at } => {
                let message_id = attempt.message_id;
                self.insert_attempt(attempt)?;
                let mut update = self.connection.prepare_cached(
                    "UPDATE messages SET callback_state = ?2, callback_next_at = ?3, callback_attempts = callback_attempts + 1 WHERE id = ?1",
                )?;
                update.execute((message_id, state, next_at))?;
                Ok(Finished::Callback)
            }
            Finish::Sync { attempt, result } => {
                let message_id = attempt.message_id;
                self.insert_attempt(attempt)?;
                Ok(Finished::Sync(Box::new(self.update_sync(message_id, &result)?)))
            }
        }
    }

    fn insert_attempt(&self, attempt: AttemptRecord) -> rusqlite::Result<()> {
        let mut insert = self.connection.prepare_cached(
            "INSERT INTO attempts (message_id, kind, number, started_at, duration_ms, outcome, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        insert.execute((attempt.message_id, attempt.kind, attempt.number, attempt.started_at, attempt.duration_ms, attempt.outcome, attempt.error))?;
        Ok(())
    }

    /// Applies a delivery result if `owner` still holds the lease. Returns whether it did.
    fn update_delivery(&self, message_id: i64, owner: &str, result: &DeliveryResult) -> rusqlite::Result<bool> {
        let mut update = self.connection.prepare_cached(concat!(
            "UPDATE messages SET ",
            change_columns!(),
            ", attempts = attempts + 1, \
             callback_state = CASE WHEN :callback_due THEN (CASE WHEN callback_url IS NOT NULL THEN 'pending' ELSE NULL END) ELSE callback_state END, \
             callback_next_at = CASE WHEN :callback_due THEN :now ELSE callback_next_at END \
             WHERE id = :id AND lease_owner = :owner"
        ))?;
        Change::of(result, false).bind(&mut update, message_id, Some(owner))?;
        Ok(update.raw_execute()? == 1)
    }

    /// Applies the result of a sync send and returns the stored message.
    fn update_sync(&self, message_id: i64, result: &DeliveryResult) -> rusqlite::Result<message::Model> {
        let mut update =
            self.connection.prepare_cached(concat!("UPDATE messages SET ", change_columns!(), ", attempts = 1 WHERE id = :id RETURNING ", message_columns!()))?;
        Change::of(result, true).bind(&mut update, message_id, None)?;
        let mut rows = update.raw_query();
        match rows.next()? {
            Some(row) => message_row(row),
            None => Err(rusqlite::Error::QueryReturnedNoRows),
        }
    }
}

impl Batch<'_> {
    /// Leases up to `limit` due messages of `pool` to `owner`, earliest due first, in one
    /// statement, so two workers never hold one message. Due are queued and retrying messages whose
    /// time has come, and processing messages whose lease ran out (their instance died).
    ///
    /// Each state is read as its own index range, so a claim reads at most three times `limit`
    /// index entries. One condition with `OR` would make SQLite scan every message of the pool.
    pub fn claim_deliveries(&self, owner: &str, pool: &str, limit: u64, lease_ms: i64) -> rusqlite::Result<Vec<message::Model>> {
        let mut claim = self.connection.prepare_cached(concat!(
            "UPDATE messages SET status = 'processing', lease_owner = :owner, lease_until = :until, next_attempt_at = :until, \
             updated_at = :now WHERE id IN (SELECT id FROM (",
            due_in_state!("queued", ""),
            " UNION ALL ",
            due_in_state!("retrying", ""),
            " UNION ALL ",
            due_in_state!("processing", " AND lease_owner IS NOT NULL AND lease_until < :now"),
            ") ORDER BY next_attempt_at, id LIMIT :limit) RETURNING ",
            message_columns!()
        ))?;
        let now = now_ms();
        let rows = claim.query_map(
            named_params! { ":pool": pool, ":now": now, ":owner": owner, ":until": now + lease_ms, ":limit": limit as i64 },
            message_row,
        )?;
        let mut claimed = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        claimed.sort_by_key(|message| message.id);
        Ok(claimed)
    }

    /// Takes up to `limit` messages whose callback is due, earliest first, and moves their next
    /// callback time `lease_ms` ahead, so that no other claim takes them while the POST runs.
    pub fn claim_callbacks(&self, limit: u64, lease_ms: i64) -> rusqlite::Result<Vec<message::Model>> {
        let mut claim = self.connection.prepare_cached(concat!(
            "UPDATE messages SET callback_next_at = :until WHERE id IN (SELECT id FROM messages WHERE ",
            callback_due!(),
            " ORDER BY callback_next_at LIMIT :limit) AND ",
            callback_due!(),
            " RETURNING ",
            message_columns!()
        ))?;
        let now = now_ms();
        let rows = claim.query_map(named_params! { ":now": now, ":until": now + lease_ms, ":limit": limit as i64 }, message_row)?;
        rows.collect()
    }
}

/// The changes a delivery or sync result makes to the message's row. `None` keeps a column as it is.
struct Change<'r> {
    status: Status,
    data: Option<&'r str>,
    external_id: Option<Option<&'r str>>,
    error: Option<Option<&'r str>>,
    next_attempt_at: Option<i64>,
    /// The message reached a terminal status, so its callback (if it asked for one) becomes due.
    callback_due: bool,
}

impl<'r> Change<'r> {
    /// Binds the change, the message id and the lease owner to the parameters of `statement` that
    /// use them.
    fn bind(&self, statement: &mut Statement, message_id: i64, owner: Option<&str>) -> rusqlite::Result<()> {
        let now = now_ms();
        let values: [(&str, &dyn ToSql); 12] = [
            (":id", &message_id),
            (":owner", &owner),
            (":status", &self.status.as_str()),
            (":set_data", &self.data.is_some()),
            (":data", &self.data),
            (":set_external_id", &self.external_id.is_some()),
            (":external_id", &self.external_id.flatten()),
            (":set_error", &self.error.is_some()),
            (":error", &self.error.flatten()),
            (":next_attempt_at", &self.next_attempt_at),
            (":callback_due", &self.callback_due),
            (":now", &now),
        ];
        for (name, value) in values {
            if let Some(index) = statement.parameter_index(name)? {
                statement.raw_bind_parameter(index, value)?;
            }
        }
        Ok(())
    }

    fn of(result: &'r DeliveryResult, sync: bool) -> Change<'r> {
        let change = |status, data, external_id, error, next_attempt_at, callback_due| Change { status, data, external_id, error, next_attempt_at, callback_due };
        match result {
            DeliveryResult::Delivered { data } if sync => change(Status::Delivered, Some(data.as_str()), None, None, None, false),
            DeliveryResult::Delivered { data } => change(Status::Delivered, Some(data.as_str()), None, Some(None), None, true),
            DeliveryResult::Pending { data, external_id } => change(Status::Processing, Some(data.as_str()), Some(external_id.as_deref()), None, None, false),
            // A sync send is not retried by the worker: its transient error fails it at once.
            DeliveryResult::Retry { error, .. } if sync => change(Status::Failed, None, None, Some(Some(error.as_str())), None, false),
            DeliveryResult::Retry { error, next_attempt_at } => change(Status::Retrying, None, None, Some(Some(error.as_str())), Some(*next_attempt_at), false),
            DeliveryResult::Failed { error } => change(Status::Failed, None, None, Some(Some(error.as_str())), None, !sync),
        }
    }
}
