//! Indexes that leave out the rows they never find. Most messages have no idempotency key and
//! no callback, yet every insert added an entry for their NULLs to `ux_messages_idempotency_key`
//! and `ix_messages_callback_due`. Partial indexes on the rows with a value serve the same
//! lookups, because the lookups compare these columns with a value (`idempotency_key = ?`,
//! `callback_state = 'pending'`), which SQLite reads as excluding NULL. Uniqueness does not change:
//! a unique index never compared NULLs.
//!
//! The new indexes are built before the old ones are dropped, so uniqueness holds at every step
//! and a migration stopped halfway finishes on the next start.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261205_000007_partial_indexes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // NOTE: written for SQLite, as only SQLite is wired in the engine. PostgreSQL takes the
        // same statements; MariaDB has no partial indexes and would keep the full ones.
        if manager.get_database_backend() != DatabaseBackend::Sqlite {
            return Err(DbErr::Migration("the partial indexes are written for SQLite only".to_string()));
        }
        let connection = manager.get_connection();
        for statement in [
            "CREATE UNIQUE INDEX IF NOT EXISTS ux_messages_idempotency_key_nonnull ON messages (client_id, idempotency_key) \
             WHERE idempotency_key IS NOT NULL",
            "CREATE INDEX IF NOT EXISTS ix_messages_callback_due_nonnull ON messages (callback_state, callback_next_at) \
             WHERE callback_state IS NOT NULL",
            "DROP INDEX IF EXISTS ux_messages_idempotency_key",
            "DROP INDEX IF EXISTS ix_messages_callback_due",
        ] {
            connection.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        for statement in [
            "CREATE UNIQUE INDEX IF NOT EXISTS ux_messages_idempotency_key ON messages (client_id, idempotency_key)",
            "CREATE INDEX IF NOT EXISTS ix_messages_callback_due ON messages (callback_state, callback_next_at)",
            "DROP INDEX IF EXISTS ux_messages_idempotency_key_nonnull",
            "DROP INDEX IF EXISTS ix_messages_callback_due_nonnull",
        ] {
            connection.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}
