//! Fills a gateway's SQLite ledger with copies of one real message, directly and fast, so the
//! listing scenario can read pages of a large table without sending a million requests first.

use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

use anyhow::{bail, Context};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row};

/// Rows inserted per statement and transaction.
const CHUNK_ROWS: u64 = 100_000;

/// Columns whose value each copy gets anew; every other column is copied from the template row.
///
/// `client_seq` continues the client's dense sequence, `request_hash` gets a random 64-hex value
/// (its unique index allows no repeats), the times, the signed one included, count up by a
/// millisecond per row, every third copy is read (so `list-new` pages skip read messages), and no
/// copy has an idempotency key.
fn fresh_value(column: &str) -> Option<&'static str> {
    match column {
        "client_seq" => Some("template.client_seq + n.i"),
        "request_hash" => Some("lower(hex(randomblob(32)))"),
        "created_at" | "updated_at" => Some("template.created_at + n.i"),
        "request_ts" => Some("template.request_ts + n.i"),
        "read_at" => Some("CASE WHEN (template.client_seq + n.i) % 3 = 0 THEN template.created_at + n.i END"),
        "idempotency_key" => Some("NULL"),
        _ => None,
    }
}

/// Appends copies of the client's newest message until the client has `target_rows` messages.
/// Returns the rows added. The gateway must not run meanwhile.
///
/// The copies are written with `synchronous = OFF`, since filling is setup, not measurement, and
/// the file is synced once at the end.
pub async fn fill_to(database_path: &Path, client_name: &str, target_rows: u64) -> anyhow::Result<u64> {
    let url = format!("sqlite://{}", database_path.display());
    let mut connection = SqliteConnectOptions::from_str(&url)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Off)
        .pragma("cache_size", "-262144")
        .connect()
        .await
        .with_context(|| format!("failed to open {}", database_path.display()))?;

    let client_id: i64 = sqlx::query_scalar("SELECT id FROM clients WHERE name = ?").bind(client_name).fetch_one(&mut connection).await.with_context(|| format!("client {client_name:?} not found"))?;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE client_id = ?").bind(client_id).fetch_one(&mut connection).await?;
    if stored == 0 {
        bail!("client {client_name:?} has no message to copy: send one first");
    }
    let stored = stored as u64;
    if stored >= target_rows {
        return Ok(0);
    }

    let columns: Vec<String> = sqlx::query("PRAGMA table_info(messages)").fetch_all(&mut connection).await?.iter().map(|row| row.get::<String, _>("name")).filter(|name| name != "id").collect();
    let values: Vec<String> = columns.iter().map(|column| fresh_value(column).map(str::to_string).unwrap_or_else(|| format!("template.\"{column}\""))).collect();
    let quoted: Vec<String> = columns.iter().map(|column| format!("\"{column}\"")).collect();
    let statement = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
         INSERT INTO messages ({}) SELECT {} FROM n, \
         (SELECT * FROM messages WHERE client_id = ?2 ORDER BY client_seq DESC LIMIT 1) AS template",
        quoted.join(", "),
        values.join(", ")
    );

    let started = Instant::now();
    let mut added = 0;
    while stored + added < target_rows {
        let chunk = CHUNK_ROWS.min(target_rows - stored - added);
        let mut transaction = connection.begin().await?;
        sqlx::query(&statement).bind(chunk as i64).bind(client_id).execute(&mut *transaction).await.context("failed to copy messages")?;
        transaction.commit().await?;
        added += chunk;
    }
    // The engine counts the unread messages it inserts itself, so rows copied around it are
    // counted here, as `uig_engine::ledger::unread::recount` does.
    let mut transaction = connection.begin().await?;
    sqlx::query("DELETE FROM unread_counts").execute(&mut *transaction).await?;
    for (level, shift) in [(1, 8), (2, 16)] {
        let recount = format!(
            "INSERT INTO unread_counts (client_id, level, bucket, unread) SELECT client_id, {level}, client_seq >> {shift}, count(*) \
             FROM messages WHERE read_at IS NULL GROUP BY client_id, client_seq >> {shift}"
        );
        sqlx::query(&recount).execute(&mut *transaction).await.context("failed to count the unread messages")?;
    }
    transaction.commit().await?;
    connection.close().await?;
    // Closing checkpointed the WAL into the database file, unsynced. Without this sync the kernel
    // writes those pages back during the first seconds of the next measurement, which raised the
    // tail latency of the first listing variant measured after a fill.
    std::fs::File::open(database_path)
        .and_then(|file| file.sync_all())
        .with_context(|| format!("failed to sync {}", database_path.display()))?;
    println!("  stored {added} copies in {:.1} s ({} messages now)", started.elapsed().as_secs_f64(), stored + added);
    Ok(added)
}
