//! Migrations on a ledger of an earlier version.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::MigratorTrait;
use uig_engine::db::Db;
use uig_migrations::Migrator;

/// Returns the names of the `messages` indexes whose name starts with `prefix`, sorted.
async fn indexes(db: &Db, prefix: &str) -> Vec<String> {
    let sql = format!("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages' AND name LIKE '{prefix}%' ORDER BY name");
    let rows = db.writer.query_all(Statement::from_string(DbBackend::Sqlite, sql)).await.unwrap();
    rows.iter().map(|row| row.try_get_by_index::<String>(0).unwrap()).collect()
}

/// The request-time migration finishes when an earlier run stopped after some of its steps:
/// SQLite runs migrations outside a transaction, so the column and an index may already exist.
#[tokio::test]
async fn request_time_migration_finishes_after_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("upgrade.db").display())).await.unwrap();
    Migrator::up(&db.writer, Some(5)).await.unwrap();
    assert_eq!(indexes(&db, "ux_messages_request").await, ["ux_messages_request_hash"]);

    // What a run stopped after its first two steps leaves behind.
    db.writer.execute_unprepared("ALTER TABLE messages ADD COLUMN request_ts BIGINT NULL").await.unwrap();
    db.writer
        .execute_unprepared("CREATE UNIQUE INDEX ux_messages_request ON messages (client_id, request_ts, request_hash) WHERE request_ts IS NOT NULL")
        .await
        .unwrap();

    Migrator::up(&db.writer, None).await.unwrap();
    assert_eq!(indexes(&db, "ux_messages_request").await, ["ux_messages_request", "ux_messages_request_hash_unsigned"]);
    assert!(Migrator::get_pending_migrations(&db.writer).await.unwrap().is_empty());

    // Down and up again leave the same indexes.
    Migrator::down(&db.writer, Some(1)).await.unwrap();
    assert_eq!(indexes(&db, "ux_messages_request").await, ["ux_messages_request_hash"]);
    Migrator::up(&db.writer, None).await.unwrap();
    assert_eq!(indexes(&db, "ux_messages_request").await, ["ux_messages_request", "ux_messages_request_hash_unsigned"]);
}
