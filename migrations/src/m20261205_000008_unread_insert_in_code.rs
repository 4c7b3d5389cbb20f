//! New messages are counted in `unread_counts` by the engine instead of a trigger.
//!
//! SQLite keeps a statement journal for a statement that fires a trigger: a copy of every page the
//! statement changes, so that a failing trigger can undo its statement alone. For an insert into
//! `messages` that is every page of the table and its indexes that the row touches, and the
//! trigger's two upserts ran once per message. The engine now adds one batch's new messages with
//! one upsert per block of the client's sequence (`ledger::unread::NewUnread`), in the transaction
//! that inserts them. The triggers on reading, unreading and deleting stay.
//!
//! An engine of an earlier version that still writes to a migrated ledger stores its new messages
//! without counting them, so a `list-new` page found by its number may start at the wrong
//! message. The README's row on `uig migrate` says to stop every instance that shares the ledger
//! first.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

use crate::m20261204_000004_unread_counts::insert_trigger;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261205_000008_unread_insert_in_code"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // NOTE: written for SQLite, like migration 4 whose trigger it drops.
        if manager.get_database_backend() != DatabaseBackend::Sqlite {
            return Err(DbErr::Migration("the unread_counts triggers are written for SQLite only".to_string()));
        }
        manager.get_connection().execute_unprepared("DROP TRIGGER IF EXISTS tr_messages_unread_insert").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Counts stored meanwhile are right: the engine added every unread message it inserted.
        let connection = manager.get_connection();
        connection.execute_unprepared("DROP TRIGGER IF EXISTS tr_messages_unread_insert").await?;
        connection.execute_unprepared(&insert_trigger()).await?;
        Ok(())
    }
}
