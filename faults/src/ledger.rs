//! Reads the gateway's SQLite ledger directly, to account for every message id.

use std::path::Path;

use anyhow::{Context, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

/// One row of the `messages` table, as far as the accounting needs it.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub id: i64,
    pub status: String,
    /// The last error as JSON text; set on every failed message.
    pub error: Option<String>,
    pub attempts: i64,
    pub callback_url: Option<String>,
    /// `pending`, `delivered` or `failed`; none before a callback is due.
    pub callback_state: Option<String>,
    pub callback_attempts: i64,
    pub idempotency_key: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl MessageRow {
    /// Reports whether delivery is over: the status is final and a requested callback is no
    /// longer pending.
    pub fn is_settled(&self) -> bool {
        let final_status = self.status == "delivered" || self.status == "failed";
        let callback_done = self.callback_url.is_none() || matches!(self.callback_state.as_deref(), Some("delivered" | "failed"));
        final_status && callback_done
    }
}

/// One row of the `attempts` table.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub message_id: i64,
    pub number: i64,
    /// `ok`, `retry`, `failed`, or the connector error kind.
    pub outcome: String,
    pub error: Option<String>,
}

type MessageTuple = (i64, String, Option<String>, i64, Option<String>, Option<String>, i64, Option<String>, i64);
type AttemptTuple = (i64, i64, String, Option<String>);

/// A reader of one ledger file. It may run next to a live gateway: SQLite in WAL mode lets readers
/// and the writer work at once.
pub struct Ledger {
    runtime: tokio::runtime::Runtime,
    pool: SqlitePool,
}

impl Ledger {
    /// Opens the ledger at `path`, which must exist.
    pub fn open(path: &Path) -> Result<Ledger> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let options = SqliteConnectOptions::new().filename(path).create_if_missing(false);
        let pool = runtime
            .block_on(SqlitePoolOptions::new().max_connections(1).connect_with(options))
            .with_context(|| format!("opening the ledger {}", path.display()))?;
        Ok(Ledger { runtime, pool })
    }

    /// Returns every message, by id.
    pub fn messages(&self) -> Result<Vec<MessageRow>> {
        let query = "SELECT id, status, error, attempts, callback_url, callback_state, callback_attempts, idempotency_key, created_at FROM messages ORDER BY id";
        let rows: Vec<MessageTuple> = self.runtime.block_on(sqlx::query_as(query).fetch_all(&self.pool)).context("reading messages")?;
        Ok(rows
            .into_iter()
            .map(|(id, status, error, attempts, callback_url, callback_state, callback_attempts, idempotency_key, created_at)| MessageRow {
                id,
                status,
                error,
                attempts,
                callback_url,
                callback_state,
                callback_attempts,
                idempotency_key,
                created_at,
            })
            .collect())
    }

    /// Returns every attempt of `kind`, by message id and attempt id.
    pub fn attempts(&self, kind: &str) -> Result<Vec<AttemptRow>> {
        let query = "SELECT message_id, number, outcome, error FROM attempts WHERE kind = ? ORDER BY message_id, id";
        let rows: Vec<AttemptTuple> = self.runtime.block_on(sqlx::query_as(query).bind(kind).fetch_all(&self.pool)).context("reading attempts")?;
        Ok(rows
            .into_iter()
            .map(|(message_id, number, outcome, error)| AttemptRow { message_id, number, outcome, error })
            .collect())
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.runtime.block_on(self.pool.close());
    }
}
