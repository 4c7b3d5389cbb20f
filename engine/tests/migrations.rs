//! Migrations on a ledger of an earlier version.

use sea_orm::{ConnectionTrait, DbBackend, QueryTrait, Statement};
use sea_orm_migration::MigratorTrait;
use uig_engine::crypto::MasterKey;
use uig_engine::db::Db;
use uig_engine::ledger;
use uig_migrations::Migrator;

/// Returns the first column of the rows that `sql` selects, as text.
async fn names(db: &Db, sql: &str) -> Vec<String> {
    let rows = db.writer.query_all(Statement::from_string(DbBackend::Sqlite, sql)).await.unwrap();
    rows.iter().map(|row| row.try_get_by_index::<String>(0).unwrap()).collect()
}

/// Returns the names of the `messages` indexes whose name starts with `prefix`, sorted.
async fn indexes(db: &Db, prefix: &str) -> Vec<String> {
    names(db, &format!("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages' AND name LIKE '{prefix}%' ORDER BY name")).await
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

    // Down and up again leave the same indexes. Migrations 9, 8 and 7 go down first.
    Migrator::down(&db.writer, Some(4)).await.unwrap();
    assert_eq!(indexes(&db, "ux_messages_request").await, ["ux_messages_request_hash"]);
    Migrator::up(&db.writer, None).await.unwrap();
    assert_eq!(indexes(&db, "ux_messages_request").await, ["ux_messages_request", "ux_messages_request_hash_unsigned"]);
}

/// Returns the details of SQLite's query plan for `sql`.
async fn plan(db: &Db, sql: &str) -> String {
    plan_of(db, Statement::from_string(DbBackend::Sqlite, sql)).await
}

/// Returns the details of SQLite's query plan for `statement`, with its values bound.
async fn plan_of(db: &Db, statement: Statement) -> String {
    let values = statement.values.map(|values| values.0).unwrap_or_default();
    let explain = Statement::from_sql_and_values(DbBackend::Sqlite, format!("EXPLAIN QUERY PLAN {}", statement.sql), values);
    let rows = db.writer.query_all(explain).await.unwrap();
    rows.iter().map(|row| row.try_get_by_index::<String>(3).unwrap()).collect::<Vec<_>>().join("; ")
}

/// After migration 7 the idempotency key and the callback state have partial indexes. They serve
/// the key lookup and the callback claim, the key stays unique per client, and messages without
/// a key or callback are left out of them.
#[tokio::test]
async fn partial_indexes_serve_their_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("partial.db").display())).await.unwrap();
    Migrator::up(&db.writer, Some(6)).await.unwrap();
    let key = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
    let client_id = uig_engine::clients::create(&db, &key, "partial", &[], &[], None, None).await.unwrap().id;
    let insert = |seq: i64, idempotency_key: &str, callback_state: &str| {
        format!(
            "INSERT INTO messages (client_id, client_seq, direction, recipient, entity, message, status, idempotency_key, \
             callback_state, callback_next_at, created_at, updated_at, pool) \
             VALUES ({client_id}, {seq}, 'outbound', 'testkit', 'echo', '{{}}', 'delivered', {idempotency_key}, {callback_state}, 5, 1, 1, 'worker')"
        )
    };
    db.writer.execute_unprepared(&insert(1, "'key-1'", "'pending'")).await.unwrap();
    db.writer.execute_unprepared(&insert(2, "NULL", "NULL")).await.unwrap();

    Migrator::up(&db.writer, None).await.unwrap();
    assert_eq!(indexes(&db, "ux_messages_idempotency").await, ["ux_messages_idempotency_key_nonnull"]);
    assert_eq!(indexes(&db, "ix_messages_callback").await, ["ix_messages_callback_due_nonnull"]);
    let partial_sql = "SELECT count(*) FROM pragma_index_list('messages') \
         WHERE name IN ('ux_messages_idempotency_key_nonnull', 'ix_messages_callback_due_nonnull') AND partial = 1";
    let partial = db.writer.query_one(Statement::from_string(DbBackend::Sqlite, partial_sql)).await.unwrap().unwrap();
    assert_eq!(partial.try_get_by_index::<i64>(0).unwrap(), 2, "both new indexes are partial");

    let by_key = plan(&db, &format!("SELECT id FROM messages WHERE client_id = {client_id} AND idempotency_key = 'key-1' AND created_at >= 0")).await;
    assert!(by_key.contains("ux_messages_idempotency_key_nonnull"), "{by_key}");
    let due = plan(&db, "SELECT id FROM messages WHERE callback_state = 'pending' AND callback_next_at <= 10 ORDER BY callback_next_at LIMIT 5").await;
    assert!(due.contains("ix_messages_callback_due_nonnull"), "{due}");

    let repeat = db.writer.execute_unprepared(&insert(3, "'key-1'", "NULL")).await.unwrap_err();
    assert!(repeat.to_string().contains("UNIQUE constraint failed"), "{repeat}");
    db.writer.execute_unprepared(&insert(4, "NULL", "NULL")).await.unwrap();
    let entries = |index: &str| format!("SELECT count(*) FROM messages INDEXED BY {index} WHERE {}", if index.starts_with("ux") { "idempotency_key IS NOT NULL" } else { "callback_state IS NOT NULL" });
    for index in ["ux_messages_idempotency_key_nonnull", "ix_messages_callback_due_nonnull"] {
        let row = db.writer.query_one(Statement::from_string(DbBackend::Sqlite, entries(index))).await.unwrap().unwrap();
        assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 1, "{index}");
    }
}

/// Returns the names of the triggers on `messages`, sorted.
async fn triggers(db: &Db) -> Vec<String> {
    names(db, "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'messages' ORDER BY name").await
}

/// Migration 8 drops the insert trigger of the unread counts and keeps the other three. Rolling it
/// back creates the trigger again, and it counts a new message.
#[tokio::test]
async fn unread_insert_trigger_moves_to_code() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("unread.db").display())).await.unwrap();
    Migrator::up(&db.writer, None).await.unwrap();
    assert_eq!(triggers(&db).await, ["tr_messages_unread_delete", "tr_messages_unread_read", "tr_messages_unread_unread"]);

    // Migration 9 goes down first.
    Migrator::down(&db.writer, Some(2)).await.unwrap();
    assert_eq!(triggers(&db).await, ["tr_messages_unread_delete", "tr_messages_unread_insert", "tr_messages_unread_read", "tr_messages_unread_unread"]);
    let key = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
    let client_id = uig_engine::clients::create(&db, &key, "unread", &[], &[], None, None).await.unwrap().id;
    db.writer
        .execute_unprepared(&format!(
            "INSERT INTO messages (client_id, client_seq, direction, recipient, entity, message, status, created_at, updated_at, pool) \
             VALUES ({client_id}, 1, 'outbound', 'testkit', 'echo', '{{}}', 'queued', 1, 1, 'worker')"
        ))
        .await
        .unwrap();
    let counted = db.writer.query_one(Statement::from_string(DbBackend::Sqlite, "SELECT sum(unread) FROM unread_counts")).await.unwrap().unwrap();
    assert_eq!(counted.try_get_by_index::<i64>(0).unwrap(), 2, "one message counted at both levels");

    Migrator::up(&db.writer, None).await.unwrap();
    assert!(!triggers(&db).await.contains(&"tr_messages_unread_insert".to_string()), "the trigger is dropped again");
}

/// Returns the names of the partial indexes of `messages`, sorted.
async fn partial_indexes(db: &Db) -> Vec<String> {
    names(db, "SELECT name FROM pragma_index_list('messages') WHERE partial = 1 ORDER BY name").await
}

/// After migration 9 one partial index contains the messages with a due time, in place of the two
/// full indexes of due messages. The delivery claim and the counts of waiting and due messages
/// read it and count as before, and finished messages are left out of it. Rolling the migration
/// back restores the full indexes.
#[tokio::test]
async fn waiting_index_skips_finished_messages() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("waiting.db").display())).await.unwrap();
    Migrator::up(&db.writer, Some(8)).await.unwrap();
    assert_eq!(indexes(&db, "ix_messages_pool_due").await, ["ix_messages_pool_due"]);
    let key = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
    let client_id = uig_engine::clients::create(&db, &key, "waiting", &[], &[], None, None).await.unwrap().id;
    let now = ledger::now_ms();
    let later = now + 3_600_000;
    // Due now: the queued message and the processing one whose lease ran out. Waiting, not due:
    // the retrying message. Leased and not due: the last processing one. Finished: no due time.
    let rows = [
        ("queued", "1", "NULL", "NULL"),
        ("retrying", &later.to_string(), "NULL", "NULL"),
        ("processing", "1", "'gone'", "1"),
        ("processing", &later.to_string(), "'alive'", &later.to_string()),
        ("delivered", "NULL", "NULL", "NULL"),
        ("failed", "NULL", "NULL", "NULL"),
    ];
    for (seq, (status, due, owner, until)) in rows.iter().enumerate() {
        db.writer
            .execute_unprepared(&format!(
                "INSERT INTO messages (client_id, client_seq, direction, recipient, entity, message, status, next_attempt_at, \
                 lease_owner, lease_until, created_at, updated_at, pool) \
                 VALUES ({client_id}, {}, 'outbound', 'testkit', 'echo', '{{}}', '{status}', {due}, {owner}, {until}, 1, 1, 'worker')",
                seq + 1
            ))
            .await
            .unwrap();
    }
    let counts = (ledger::count_waiting(&db).await.unwrap(), ledger::count_due(&db).await.unwrap());
    assert_eq!(counts, (2, 2), "waiting and due before the migration");

    Migrator::up(&db.writer, None).await.unwrap();
    assert!(indexes(&db, "ix_messages_due").await.is_empty());
    assert_eq!(indexes(&db, "ix_messages_pool_due").await, ["ix_messages_pool_due_nonnull"]);
    assert!(partial_indexes(&db).await.contains(&"ix_messages_pool_due_nonnull".to_string()));
    let entries = "SELECT count(*) FROM messages INDEXED BY ix_messages_pool_due_nonnull WHERE next_attempt_at IS NOT NULL";
    let entries = db.writer.query_one(Statement::from_string(DbBackend::Sqlite, entries)).await.unwrap().unwrap();
    assert_eq!(entries.try_get_by_index::<i64>(0).unwrap(), 4, "the two finished messages are left out");
    assert_eq!((ledger::count_waiting(&db).await.unwrap(), ledger::count_due(&db).await.unwrap()), counts);

    // The claim's statements for two of its states, copied from `due_in_state!` in ledger/batch.rs.
    let claims = [
        "SELECT id, next_attempt_at FROM messages WHERE pool = 'worker' AND status = 'queued' AND next_attempt_at <= 5 \
         ORDER BY next_attempt_at, id LIMIT 10",
        "SELECT id, next_attempt_at FROM messages WHERE pool = 'worker' AND status = 'processing' AND next_attempt_at <= 5 \
         AND lease_owner IS NOT NULL AND lease_until < 5 ORDER BY next_attempt_at, id LIMIT 10",
    ];
    for sql in claims {
        let claim_plan = plan(&db, sql).await;
        assert!(claim_plan.contains("INDEX ix_messages_pool_due_nonnull"), "{sql}: {claim_plan}");
    }
    // The counts' selections as the engine builds them.
    for select in [ledger::waiting(), ledger::due(now)] {
        let statement = select.build(DbBackend::Sqlite);
        let sql = statement.sql.clone();
        let count_plan = plan_of(&db, statement).await;
        assert!(count_plan.contains("INDEX ix_messages_pool_due_nonnull"), "{sql}: {count_plan}");
    }

    Migrator::down(&db.writer, Some(1)).await.unwrap();
    assert_eq!(indexes(&db, "ix_messages_due").await, ["ix_messages_due"]);
    assert_eq!(indexes(&db, "ix_messages_pool_due").await, ["ix_messages_pool_due"]);
    assert_eq!((ledger::count_waiting(&db).await.unwrap(), ledger::count_due(&db).await.unwrap()), counts);
}
