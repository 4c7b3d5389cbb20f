//! Counts of unread messages per client in blocks of its sequence, kept by triggers, so that
//! `list-new` finds page N without skipping over the unread messages of pages 1 to N-1.
//!
//! Two levels: level 1 counts blocks of 256 sequence numbers (`client_seq >> 8`), level 2 blocks
//! of 65,536 (`client_seq >> 16`). Triggers on `messages` change the counts in the same statement
//! as the row, so they cannot drift from the rows they count. Migration
//! `m20261205_000008_unread_insert_in_code` later drops the insert trigger: the engine counts new
//! messages itself, in the transaction that inserts them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000004_unread_counts"
    }
}

#[derive(DeriveIden)]
enum UnreadCounts {
    Table,
    ClientId,
    Level,
    Bucket,
    Unread,
}

/// Adds `delta` to both levels' counts of the block holding `row`'s sequence number.
fn change_counts(row: &str, delta: i32) -> String {
    [(1, 8), (2, 16)]
        .iter()
        .map(|(level, shift)| {
            format!(
                "INSERT INTO unread_counts (client_id, level, bucket, unread) \
                 VALUES ({row}.client_id, {level}, {row}.client_seq >> {shift}, {delta}) \
                 ON CONFLICT (client_id, level, bucket) DO UPDATE SET unread = unread + ({delta});"
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Returns the statement that creates the insert trigger, which migration 8 drops and its `down`
/// creates again.
pub(crate) fn insert_trigger() -> String {
    let insert = change_counts("NEW", 1);
    format!("CREATE TRIGGER tr_messages_unread_insert AFTER INSERT ON messages WHEN NEW.read_at IS NULL BEGIN\n{insert}\nEND")
}

fn sqlite_triggers() -> Vec<String> {
    let read = change_counts("OLD", -1);
    let unread = change_counts("NEW", 1);
    let delete = change_counts("OLD", -1);
    vec![
        insert_trigger(),
        format!(
            "CREATE TRIGGER tr_messages_unread_read AFTER UPDATE OF read_at ON messages \
             WHEN OLD.read_at IS NULL AND NEW.read_at IS NOT NULL BEGIN\n{read}\nEND"
        ),
        format!(
            "CREATE TRIGGER tr_messages_unread_unread AFTER UPDATE OF read_at ON messages \
             WHEN OLD.read_at IS NOT NULL AND NEW.read_at IS NULL BEGIN\n{unread}\nEND"
        ),
        format!("CREATE TRIGGER tr_messages_unread_delete AFTER DELETE ON messages WHEN OLD.read_at IS NULL BEGIN\n{delete}\nEND"),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // NOTE: only SQLite triggers are written yet, as only SQLite is wired in the engine. MariaDB
        // and PostgreSQL need the same four triggers in their own syntax.
        if manager.get_database_backend() != DatabaseBackend::Sqlite {
            return Err(DbErr::Migration("the unread_counts triggers are written for SQLite only".to_string()));
        }
        manager
            .create_table(
                Table::create()
                    .table(UnreadCounts::Table)
                    .col(ColumnDef::new(UnreadCounts::ClientId).integer().not_null())
                    .col(ColumnDef::new(UnreadCounts::Level).small_integer().not_null())
                    .col(ColumnDef::new(UnreadCounts::Bucket).big_integer().not_null())
                    .col(ColumnDef::new(UnreadCounts::Unread).big_integer().not_null())
                    .primary_key(Index::create().col(UnreadCounts::ClientId).col(UnreadCounts::Level).col(UnreadCounts::Bucket))
                    .to_owned(),
            )
            .await?;
        let connection = manager.get_connection();
        for (level, shift) in [(1, 8), (2, 16)] {
            connection
                .execute_unprepared(&format!(
                    "INSERT INTO unread_counts (client_id, level, bucket, unread) \
                     SELECT client_id, {level}, client_seq >> {shift}, count(*) FROM messages \
                     WHERE read_at IS NULL GROUP BY client_id, client_seq >> {shift}"
                ))
                .await?;
        }
        for trigger in sqlite_triggers() {
            connection.execute_unprepared(&trigger).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        for trigger in ["tr_messages_unread_insert", "tr_messages_unread_read", "tr_messages_unread_unread", "tr_messages_unread_delete"] {
            connection.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {trigger}")).await?;
        }
        manager.drop_table(Table::drop().table(UnreadCounts::Table).to_owned()).await
    }
}
