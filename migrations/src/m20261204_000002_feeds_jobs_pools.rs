//! Adds worker pools to messages, feed cursors with their seen events, scheduled jobs with their run
//! history, and synchronised directory entries.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000002_feeds_jobs_pools"
    }
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Pool,
    Status,
    NextAttemptAt,
}

#[derive(DeriveIden)]
enum FeedCursors {
    Table,
    Id,
    Connector,
    Feed,
    Cursor,
    LeaseOwner,
    LeaseUntil,
    LastPolledAt,
    LastError,
    EventsTotal,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum FeedEvents {
    Table,
    Id,
    Connector,
    Feed,
    ExternalId,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Name,
    LastTick,
    LeaseOwner,
    LeaseUntil,
    LastStartedAt,
    LastDurationMs,
    LastOutcome,
    LastDetail,
    Runs,
    Failures,
}

#[derive(DeriveIden)]
enum JobRuns {
    Table,
    Id,
    Job,
    Tick,
    Instance,
    StartedAt,
    DurationMs,
    Outcome,
    Detail,
}

#[derive(DeriveIden)]
enum DirectoryEntries {
    Table,
    Id,
    Connector,
    Directory,
    Code,
    Name,
    Parent,
    AltCode,
    SyncedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .add_column(ColumnDef::new(Messages::Pool).string_len(64).not_null().default("worker"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_messages_pool_due")
                    .table(Messages::Table)
                    .col(Messages::Pool)
                    .col(Messages::Status)
                    .col(Messages::NextAttemptAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(FeedCursors::Table)
                    .col(ColumnDef::new(FeedCursors::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(FeedCursors::Connector).string_len(100).not_null())
                    .col(ColumnDef::new(FeedCursors::Feed).string_len(255).not_null())
                    .col(ColumnDef::new(FeedCursors::Cursor).text().null())
                    .col(ColumnDef::new(FeedCursors::LeaseOwner).string_len(64).null())
                    .col(ColumnDef::new(FeedCursors::LeaseUntil).big_integer().null())
                    .col(ColumnDef::new(FeedCursors::LastPolledAt).big_integer().null())
                    .col(ColumnDef::new(FeedCursors::LastError).text().null())
                    .col(ColumnDef::new(FeedCursors::EventsTotal).big_integer().not_null().default(0))
                    .col(ColumnDef::new(FeedCursors::UpdatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_feed_cursors_feed")
                    .table(FeedCursors::Table)
                    .col(FeedCursors::Connector)
                    .col(FeedCursors::Feed)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(FeedEvents::Table)
                    .col(ColumnDef::new(FeedEvents::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(FeedEvents::Connector).string_len(100).not_null())
                    .col(ColumnDef::new(FeedEvents::Feed).string_len(255).not_null())
                    .col(ColumnDef::new(FeedEvents::ExternalId).string_len(255).not_null())
                    .col(ColumnDef::new(FeedEvents::ReceivedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_feed_events_external")
                    .table(FeedEvents::Table)
                    .col(FeedEvents::Connector)
                    .col(FeedEvents::Feed)
                    .col(FeedEvents::ExternalId)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .col(ColumnDef::new(Jobs::Name).string_len(100).not_null().primary_key())
                    .col(ColumnDef::new(Jobs::LastTick).big_integer().null())
                    .col(ColumnDef::new(Jobs::LeaseOwner).string_len(64).null())
                    .col(ColumnDef::new(Jobs::LeaseUntil).big_integer().null())
                    .col(ColumnDef::new(Jobs::LastStartedAt).big_integer().null())
                    .col(ColumnDef::new(Jobs::LastDurationMs).big_integer().null())
                    .col(ColumnDef::new(Jobs::LastOutcome).string_len(16).null())
                    .col(ColumnDef::new(Jobs::LastDetail).text().null())
                    .col(ColumnDef::new(Jobs::Runs).big_integer().not_null().default(0))
                    .col(ColumnDef::new(Jobs::Failures).big_integer().not_null().default(0))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(JobRuns::Table)
                    .col(ColumnDef::new(JobRuns::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(JobRuns::Job).string_len(100).not_null())
                    .col(ColumnDef::new(JobRuns::Tick).big_integer().not_null())
                    .col(ColumnDef::new(JobRuns::Instance).string_len(64).not_null())
                    .col(ColumnDef::new(JobRuns::StartedAt).big_integer().not_null())
                    .col(ColumnDef::new(JobRuns::DurationMs).big_integer().not_null())
                    .col(ColumnDef::new(JobRuns::Outcome).string_len(16).not_null())
                    .col(ColumnDef::new(JobRuns::Detail).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(Index::create().name("ix_job_runs_job").table(JobRuns::Table).col(JobRuns::Job).col(JobRuns::Id).to_owned())
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(DirectoryEntries::Table)
                    .col(ColumnDef::new(DirectoryEntries::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(DirectoryEntries::Connector).string_len(100).not_null())
                    .col(ColumnDef::new(DirectoryEntries::Directory).string_len(100).not_null())
                    .col(ColumnDef::new(DirectoryEntries::Code).string_len(255).not_null())
                    .col(ColumnDef::new(DirectoryEntries::Name).text().not_null())
                    .col(ColumnDef::new(DirectoryEntries::Parent).string_len(255).null())
                    .col(ColumnDef::new(DirectoryEntries::AltCode).string_len(255).null())
                    .col(ColumnDef::new(DirectoryEntries::SyncedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_directory_entries_code")
                    .table(DirectoryEntries::Table)
                    .col(DirectoryEntries::Connector)
                    .col(DirectoryEntries::Directory)
                    .col(DirectoryEntries::Code)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Table::drop().table(DirectoryEntries::Table).to_owned(),
            Table::drop().table(JobRuns::Table).to_owned(),
            Table::drop().table(Jobs::Table).to_owned(),
            Table::drop().table(FeedEvents::Table).to_owned(),
            Table::drop().table(FeedCursors::Table).to_owned(),
        ] {
            manager.drop_table(table).await?;
        }
        manager.drop_index(Index::drop().name("ix_messages_pool_due").table(Messages::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(Messages::Table).drop_column(Messages::Pool).to_owned()).await
    }
}
