//! Database access: connections, migrations and the sea-orm entities.
//!
//! SQLite gets two pools: a single-connection writer, through which every write goes in order, and a
//! reader pool for queries. That keeps concurrent requests from ever meeting "database is locked".
//! Other backends use one pool for both roles.

pub mod attempt;
pub mod client;
pub mod client_secret;
pub mod directory_entry;
pub mod directory_mapping;
pub mod feed_cursor;
pub mod feed_event;
pub mod job;
pub mod job_run;
pub mod message;
pub mod unread_count;

use std::str::FromStr;
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr, SqlxSqliteConnector};
use sea_orm_migration::MigratorTrait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use uig_migrations::Migrator;

/// WAL frames (pages) past which `uig serve`'s checkpoints make the next write start the WAL file
/// over ([`Db::checkpoint_wal`]): 262,144 frames of 4 KiB and a 24-byte header, about 1.1 GB.
/// Each restart makes the writer wait for a checkpoint of its own: 5 to 14 ms under the
/// benchmark's full intake load, measured with a limit of 16,384 frames. That limit was reached
/// about once a second under that load, and the intake p99 at half rate rose from 6 to 8 ms to
/// 11 to 24 ms.
pub const WAL_RESTART_FRAMES: i64 = 262_144;

/// Size in bytes that SQLite cuts a WAL file back to on the first commit after it starts the file
/// over: [`WAL_RESTART_FRAMES`] and 65,536 more frames, about 1.35 GB. The checkpoint runs once a
/// second, so the file grows past the restart limit by up to a second of writes (about 15,000
/// frames at the benchmark's full intake rate). Only a larger burst is cut off, and the usual
/// file is reused without being extended.
pub const WAL_SIZE_LIMIT: u64 = (WAL_RESTART_FRAMES as u64 + 65_536) * (4096 + 24) + 32;

/// Connections to the ledger database.
#[derive(Clone, Debug)]
pub struct Db {
    /// Pool for reads.
    pub reader: DatabaseConnection,
    /// Connection for writes (one connection on SQLite).
    pub writer: DatabaseConnection,
}

impl Db {
    /// Connects to `url`; SQLite files are created when missing and configured for concurrent use
    /// (WAL, `synchronous = FULL` so a commit is on disk before the API responds, 5 s busy timeout).
    pub async fn connect(url: &str) -> Result<Db, DbErr> {
        if !url.starts_with("sqlite:") {
            return Err(DbErr::Custom(format!(
                "unsupported database URL \"{}\": this build supports sqlite://FILE",
                redact_url(url)
            )));
        }

        let options = SqliteConnectOptions::from_str(url)
            .map_err(|error| DbErr::Custom(format!("invalid database URL: {error}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // `uig serve` checkpoints in the background (`checkpoint_wal`), so a commit does not
            // wait for the database file's fsync. CLI commands leave it to SQLite's close.
            .pragma("wal_autocheckpoint", "0")
            // A WAL file that is started over keeps its size, so without a limit a burst
            // would keep its disk space until the gateway stops.
            .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string())
            // A statement that fires a trigger (the unread counts' triggers on reads and
            // deletions) makes SQLite keep a statement journal of the pages it changes. Past
            // 64 KiB per transaction that journal went to a temp file, a write syscall per page.
            // Kept in memory, it made sync cache hits 16% faster while inserts still fired a trigger.
            .pragma("temp_store", "memory")
            // Room for a whole listing page (per_page is at most 1000, plus one row for has_more),
            // so the connection's thread does not wait for the reader halfway through a page.
            .row_buffer_size(1024);

        let connect_error = |error: sqlx::Error| DbErr::Custom(format!("cannot open database: {error}"));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            // A ping before each use is a round trip to the connection's thread, and a connection
            // to a local file does not drop.
            .test_before_acquire(false)
            // After a failed COMMIT, SQLite has rolled back but sqlx still counts an open
            // transaction, so its next "transaction" would be a savepoint whose release commits
            // nothing. Such a connection is dropped and a fresh one opened.
            .before_acquire(|connection, _meta| {
                Box::pin(async move {
                    let depth = <sqlx::sqlite::SqliteTransactionManager as sqlx::TransactionManager>::get_transaction_depth(connection);
                    if depth != 0 {
                        tracing::error!(depth, "writer connection left inside a transaction by a failed commit; reopening it");
                        return Ok(false);
                    }
                    Ok(true)
                })
            })
            .connect_with(options.clone())
            .await
            .map_err(connect_error)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options.read_only(false))
            .await
            .map_err(connect_error)?;

        Ok(Db {
            reader: SqlxSqliteConnector::from_sqlx_sqlite_pool(reader),
            writer: SqlxSqliteConnector::from_sqlx_sqlite_pool(writer),
        })
    }

    /// Copies committed WAL pages into the database file (a PASSIVE checkpoint), without blocking
    /// the writer unless the WAL has `restart_frames` or more. Returns the WAL's frame count and
    /// how many of them are in the database file.
    ///
    /// SQLite starts the WAL file over only when a write transaction begins with every frame
    /// already in the database file. Under constant load the group-commit thread begins its next
    /// transaction as soon as the last one commits, so a checkpoint on a reader connection never
    /// catches up and the file grows without end. So when the WAL has `restart_frames` or more
    /// ([`WAL_RESTART_FRAMES`] in `uig serve`), a second checkpoint runs on the writer connection
    /// between two of its transactions. It copies only the frames committed since the first
    /// checkpoint, and the next write starts the file over. A read transaction that began before
    /// it and is still open stops both the copy and the restart, and the next call tries again.
    pub async fn checkpoint_wal(&self, restart_frames: i64) -> Result<(i64, i64), DbErr> {
        use sea_orm::{ConnectionTrait, Statement};

        let row = self
            .reader
            .query_one(Statement::from_string(self.reader.get_database_backend(), "PRAGMA wal_checkpoint(PASSIVE)"))
            .await?
            .ok_or_else(|| DbErr::Custom("wal_checkpoint returned no row".to_string()))?;
        let frames: i64 = row.try_get_by_index(1)?;
        let copied: i64 = row.try_get_by_index(2)?;
        if frames < restart_frames {
            return Ok((frames, copied));
        }
        let checkpoint = |sqlite: &rusqlite::Connection| sqlite.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| Ok((row.get(1)?, row.get(2)?)));
        self.with_writer_handle(|sqlite| in_place(|| checkpoint(sqlite)))
            .await?
            .map_err(|error| DbErr::Custom(format!("checkpoint on the writer connection failed: {error}")))
    }

    /// Runs `work` in one write transaction on the writer connection's own SQLite handle
    /// ([`Db::with_writer_handle`], [`write_transaction`]). If `work` or the commit fails, nothing
    /// of it is stored.
    pub async fn write_batch<T>(&self, work: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>) -> Result<T, DbErr> {
        self.with_writer_handle(|sqlite| write_transaction(sqlite, work))
            .await?
            .map_err(|error| DbErr::Custom(format!("storing a batch failed: {error}")))
    }

    /// Locks the writer connection and runs `work` on its SQLite handle through rusqlite.
    /// Statements run on the calling thread, without a hand-off to sqlx's connection thread for
    /// each, so a batch of many statements keeps the single writer busy only for SQLite's own work.
    /// Other writes wait until `work` returns.
    ///
    /// If `work` returns or panics inside a transaction, the transaction is rolled back. A
    /// connection that stays inside one is closed, so the pool opens a fresh one.
    ///
    /// The calling thread blocks while `work` runs. Callers: the group-commit thread,
    /// [`Db::checkpoint_wal`] (inside [`in_place`]) and tests.
    pub async fn with_writer_handle<T>(&self, work: impl FnOnce(&rusqlite::Connection) -> T) -> Result<T, DbErr> {
        with_handle(&self.writer, "writer", work).await
    }

    /// Takes a connection of the reader pool and runs `work` on its SQLite handle through
    /// rusqlite, for reads of many short statements (a `list-new` page by number). On a
    /// multi-threaded runtime, the worker thread hands its other tasks over while `work` runs.
    pub async fn with_reader_handle<T>(&self, work: impl FnOnce(&rusqlite::Connection) -> T) -> Result<T, DbErr> {
        with_handle(&self.reader, "reader", |sqlite| in_place(|| work(sqlite))).await
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        Migrator::up(&self.writer, None).await
    }
}

/// Runs blocking `work` on the calling runtime thread. On a multi-threaded runtime the thread
/// first hands its other tasks over. On a current-thread runtime that would panic, so `work`
/// runs directly.
fn in_place<T>(work: impl FnOnce() -> T) -> T {
    let multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|runtime| runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_threaded {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// Runs `work` on the SQLite handle of a connection of `pool`; see [`Db::with_writer_handle`].
async fn with_handle<T>(pool: &DatabaseConnection, name: &str, work: impl FnOnce(&rusqlite::Connection) -> T) -> Result<T, DbErr> {
    let sqlx_error = |error: sqlx::Error| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(error));
    let mut connection = pool.get_sqlite_connection_pool().acquire().await.map_err(sqlx_error)?;
    let mut locked = connection.lock_handle().await.map_err(sqlx_error)?;
    // SAFETY: sqlx's connection thread makes no call on the handle while `locked` lives, which
    // is until the end of this function, after `sqlite` is dropped. A connection made with
    // `from_handle` does not close the handle when dropped.
    let sqlite = unsafe { rusqlite::Connection::from_handle(locked.as_raw_handle().as_ptr()) }
        .map_err(|error| DbErr::Custom(format!("cannot use the {name} connection: {error}")))?;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&sqlite)));
    let stuck = !sqlite.is_autocommit() && {
        tracing::error!(connection = name, "work on a connection left it inside a transaction; rolling it back");
        if let Err(error) = sqlite.execute_batch("ROLLBACK") {
            tracing::error!(%error, "rolling back the open transaction failed");
        }
        !sqlite.is_autocommit()
    };
    drop(sqlite);
    drop(locked);
    if stuck {
        tracing::error!(connection = name, "the connection is still inside a transaction; closing it so that the pool opens a fresh one");
        connection.close_on_drop();
    }
    match result {
        Ok(result) => Ok(result),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Runs `work` in one read transaction on `sqlite`, so that all its reads see one snapshot.
///
/// A read transaction has nothing to keep, so it ends the same way whatever `work` returned, and
/// `work`'s result is returned even when the end fails. A transaction left open that way is
/// rolled back before the connection goes back to its pool ([`Db::with_reader_handle`]).
pub fn read_transaction<T, E: From<rusqlite::Error>>(sqlite: &rusqlite::Connection, work: impl FnOnce(&rusqlite::Connection) -> Result<T, E>) -> Result<T, E> {
    sqlite.execute_batch("BEGIN")?;
    let result = work(sqlite);
    if let Err(error) = sqlite.execute_batch("COMMIT") {
        tracing::warn!(%error, "ending a read transaction failed; the connection rolls it back");
    }
    result
}

/// Runs `work` between `BEGIN IMMEDIATE` and `COMMIT` on `sqlite`. If `work` or the commit fails,
/// the transaction is rolled back.
pub fn write_transaction<T>(sqlite: &rusqlite::Connection, work: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    sqlite.execute_batch("BEGIN IMMEDIATE")?;
    let result = work(sqlite).and_then(|value| sqlite.execute_batch("COMMIT").map(|()| value));
    if result.is_err() && !sqlite.is_autocommit() {
        if let Err(error) = sqlite.execute_batch("ROLLBACK") {
            tracing::error!(%error, "rolling back a failed write transaction failed");
        }
    }
    result
}

/// Removes the password from a database URL before it reaches a log or an error message.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => format!("{}://***{}", &url[..scheme_end], &url[at..]),
        _ => url.to_string(),
    }
}
