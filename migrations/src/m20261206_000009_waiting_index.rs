//! One partial index of the messages the worker still has to look at, instead of two full ones.
//!
//! `ix_messages_due` (status, due time) and `ix_messages_pool_due` (pool, status, due time) held
//! an entry for every message, although only waiting and leased messages have a due time: a
//! delivered or failed message has `next_attempt_at` NULL. So a sync send, stored with its result,
//! went into both for nothing, and a ledger of a million delivered messages kept a million
//! entries in each. `ix_messages_pool_due_nonnull` contains only the messages with a due time. The
//! delivery claim finds its ranges in it as before, because its condition `next_attempt_at <= ?`
//! excludes NULL. The engine's counts of waiting and due messages name `next_attempt_at` for the
//! same reason and read the new index whole: one entry per waiting or leased message, where the
//! range of the dropped `ix_messages_due` read one per waiting message.
//!
//! The new index is built before the old ones are dropped, so the claim always has an index, and
//! a migration stopped halfway finishes on the next start.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000009_waiting_index"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // NOTE: written for SQLite, like migration 7. PostgreSQL takes the same statements;
        // MariaDB has no partial indexes and would keep the full ones.
        if manager.get_database_backend() != DatabaseBackend::Sqlite {
            return Err(DbErr::Migration("the partial index of waiting messages is written for SQLite only".to_string()));
        }
        let connection = manager.get_connection();
        for statement in [
            "CREATE INDEX IF NOT EXISTS ix_messages_pool_due_nonnull ON messages (pool, status, next_attempt_at) \
             WHERE next_attempt_at IS NOT NULL",
            "DROP INDEX IF EXISTS ix_messages_pool_due",
            "DROP INDEX IF EXISTS ix_messages_due",
        ] {
            connection.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        for statement in [
            "CREATE INDEX IF NOT EXISTS ix_messages_due ON messages (status, next_attempt_at)",
            "CREATE INDEX IF NOT EXISTS ix_messages_pool_due ON messages (pool, status, next_attempt_at)",
            "DROP INDEX IF EXISTS ix_messages_pool_due_nonnull",
        ] {
            connection.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}
