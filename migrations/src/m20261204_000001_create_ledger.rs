//! Creates clients, messages, attempts and directory mappings.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000001_create_ledger"
    }
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    Id,
    Name,
    TokenHash,
    SecretCiphertext,
    AllowedRecipients,
    CallbackHosts,
    Disabled,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    ClientId,
    ClientSeq,
    Direction,
    Recipient,
    Entity,
    Message,
    Status,
    Data,
    Error,
    ExternalId,
    Attempts,
    NextAttemptAt,
    LeaseOwner,
    LeaseUntil,
    CallbackUrl,
    CallbackState,
    CallbackAttempts,
    CallbackNextAt,
    RequestHash,
    IdempotencyKey,
    ReadAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Attempts {
    Table,
    Id,
    MessageId,
    Kind,
    Number,
    StartedAt,
    DurationMs,
    Outcome,
    Error,
}

#[derive(DeriveIden)]
enum DirectoryMappings {
    Table,
    Id,
    Connector,
    Directory,
    InternalCode,
    ExternalCode,
    Name,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Clients::Table)
                    .col(ColumnDef::new(Clients::Id).integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Clients::Name).string_len(100).not_null().unique_key())
                    .col(ColumnDef::new(Clients::TokenHash).string_len(64).not_null().unique_key())
                    .col(ColumnDef::new(Clients::SecretCiphertext).text().not_null())
                    .col(ColumnDef::new(Clients::AllowedRecipients).text().not_null())
                    .col(ColumnDef::new(Clients::CallbackHosts).text().not_null())
                    .col(ColumnDef::new(Clients::Disabled).boolean().not_null().default(false))
                    .col(ColumnDef::new(Clients::CreatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .col(ColumnDef::new(Messages::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Messages::ClientId).integer().not_null())
                    .col(ColumnDef::new(Messages::ClientSeq).big_integer().not_null())
                    .col(ColumnDef::new(Messages::Direction).string_len(16).not_null())
                    .col(ColumnDef::new(Messages::Recipient).string_len(100).not_null())
                    .col(ColumnDef::new(Messages::Entity).string_len(100).not_null())
                    .col(ColumnDef::new(Messages::Message).text().not_null())
                    .col(ColumnDef::new(Messages::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Messages::Data).text().null())
                    .col(ColumnDef::new(Messages::Error).text().null())
                    .col(ColumnDef::new(Messages::ExternalId).string_len(255).null())
                    .col(ColumnDef::new(Messages::Attempts).integer().not_null().default(0))
                    .col(ColumnDef::new(Messages::NextAttemptAt).big_integer().null())
                    .col(ColumnDef::new(Messages::LeaseOwner).string_len(64).null())
                    .col(ColumnDef::new(Messages::LeaseUntil).big_integer().null())
                    .col(ColumnDef::new(Messages::CallbackUrl).text().null())
                    .col(ColumnDef::new(Messages::CallbackState).string_len(16).null())
                    .col(ColumnDef::new(Messages::CallbackAttempts).integer().not_null().default(0))
                    .col(ColumnDef::new(Messages::CallbackNextAt).big_integer().null())
                    .col(ColumnDef::new(Messages::RequestHash).string_len(64).null())
                    .col(ColumnDef::new(Messages::IdempotencyKey).string_len(255).null())
                    .col(ColumnDef::new(Messages::ReadAt).big_integer().null())
                    .col(ColumnDef::new(Messages::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Messages::UpdatedAt).big_integer().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Messages::Table, Messages::ClientId)
                            .to(Clients::Table, Clients::Id),
                    )
                    .to_owned(),
            )
            .await?;

        // Listings: a client's messages by id, and its unread ones by id.
        let indexes = [
            Index::create().name("ix_messages_client_id").table(Messages::Table).col(Messages::ClientId).col(Messages::Id).to_owned(),
            Index::create()
                .name("ix_messages_client_unread")
                .table(Messages::Table)
                .col(Messages::ClientId)
                .col(Messages::ReadAt)
                .col(Messages::Id)
                .to_owned(),
            // list-all pages: a dense per-client sequence turns page N into one index range.
            Index::create()
                .name("ux_messages_client_seq")
                .table(Messages::Table)
                .col(Messages::ClientId)
                .col(Messages::ClientSeq)
                .unique()
                .to_owned(),
            // The worker's claim query: due deliveries by status and time.
            Index::create().name("ix_messages_due").table(Messages::Table).col(Messages::Status).col(Messages::NextAttemptAt).to_owned(),
            Index::create()
                .name("ix_messages_callback_due")
                .table(Messages::Table)
                .col(Messages::CallbackState)
                .col(Messages::CallbackNextAt)
                .to_owned(),
            // Replay and idempotency: one message per client and request hash or key.
            Index::create()
                .name("ux_messages_request_hash")
                .table(Messages::Table)
                .col(Messages::ClientId)
                .col(Messages::RequestHash)
                .unique()
                .to_owned(),
            Index::create()
                .name("ux_messages_idempotency_key")
                .table(Messages::Table)
                .col(Messages::ClientId)
                .col(Messages::IdempotencyKey)
                .unique()
                .to_owned(),
        ];
        for index in indexes {
            manager.create_index(index).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Attempts::Table)
                    .col(ColumnDef::new(Attempts::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Attempts::MessageId).big_integer().not_null())
                    .col(ColumnDef::new(Attempts::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(Attempts::Number).integer().not_null())
                    .col(ColumnDef::new(Attempts::StartedAt).big_integer().not_null())
                    .col(ColumnDef::new(Attempts::DurationMs).big_integer().not_null())
                    .col(ColumnDef::new(Attempts::Outcome).string_len(32).not_null())
                    .col(ColumnDef::new(Attempts::Error).text().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Attempts::Table, Attempts::MessageId)
                            .to(Messages::Table, Messages::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("ix_attempts_message").table(Attempts::Table).col(Attempts::MessageId).col(Attempts::Id).to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(DirectoryMappings::Table)
                    .col(ColumnDef::new(DirectoryMappings::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(DirectoryMappings::Connector).string_len(100).not_null())
                    .col(ColumnDef::new(DirectoryMappings::Directory).string_len(100).not_null())
                    .col(ColumnDef::new(DirectoryMappings::InternalCode).string_len(255).not_null())
                    .col(ColumnDef::new(DirectoryMappings::ExternalCode).string_len(255).not_null())
                    .col(ColumnDef::new(DirectoryMappings::Name).text().null())
                    .col(ColumnDef::new(DirectoryMappings::UpdatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_directory_mappings_external")
                    .table(DirectoryMappings::Table)
                    .col(DirectoryMappings::Connector)
                    .col(DirectoryMappings::Directory)
                    .col(DirectoryMappings::ExternalCode)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_directory_mappings_internal")
                    .table(DirectoryMappings::Table)
                    .col(DirectoryMappings::Connector)
                    .col(DirectoryMappings::Directory)
                    .col(DirectoryMappings::InternalCode)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Table::drop().table(DirectoryMappings::Table).to_owned(),
            Table::drop().table(Attempts::Table).to_owned(),
            Table::drop().table(Messages::Table).to_owned(),
            Table::drop().table(Clients::Table).to_owned(),
        ] {
            manager.drop_table(table).await?;
        }
        Ok(())
    }
}
