//! Replay detection by signed time and hash. Messages sent through the API store the time their
//! request was signed for (`request_ts`), and the unique index of repeated requests becomes
//! (client, signed time, hash). A client signs its requests with the current time, so new index
//! entries land at the end of the client's range instead of on a random page of a hash-ordered
//! index: a batch of new messages writes a few pages of this index instead of one per message.
//!
//! Rows stored before this migration have no signed time. A partial index keeps their hashes, so
//! that a request sent before the upgrade and repeated after it is still found.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261205_000006_request_time"
    }
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    RequestTs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // NOTE: partial indexes are written for SQLite, as only SQLite is wired in the engine.
        // PostgreSQL takes the same statements; MariaDB has no partial indexes and needs another
        // way to look up the hashes of older rows.
        if manager.get_database_backend() != DatabaseBackend::Sqlite {
            return Err(DbErr::Migration("the request_ts indexes are written for SQLite only".to_string()));
        }
        // sea-orm-migration wraps a migration in a transaction on PostgreSQL only. On SQLite each
        // step can run again instead, so a migration stopped halfway finishes on the next start.
        if !manager.has_column("messages", "request_ts").await? {
            manager
                .alter_table(Table::alter().table(Messages::Table).add_column(ColumnDef::new(Messages::RequestTs).big_integer().null()).to_owned())
                .await?;
        }
        let connection = manager.get_connection();
        for statement in [
            "CREATE UNIQUE INDEX IF NOT EXISTS ux_messages_request ON messages (client_id, request_ts, request_hash) \
             WHERE request_ts IS NOT NULL",
            "CREATE UNIQUE INDEX IF NOT EXISTS ux_messages_request_hash_unsigned ON messages (client_id, request_hash) \
             WHERE request_ts IS NULL AND request_hash IS NOT NULL",
            "DROP INDEX IF EXISTS ux_messages_request_hash",
        ] {
            connection.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        for statement in [
            "CREATE UNIQUE INDEX IF NOT EXISTS ux_messages_request_hash ON messages (client_id, request_hash)",
            "DROP INDEX IF EXISTS ux_messages_request",
            "DROP INDEX IF EXISTS ux_messages_request_hash_unsigned",
        ] {
            connection.execute_unprepared(statement).await?;
        }
        if manager.has_column("messages", "request_ts").await? {
            manager.alter_table(Table::alter().table(Messages::Table).drop_column(Messages::RequestTs).to_owned()).await?;
        }
        Ok(())
    }
}
