//! Adds earlier client secrets that stay valid for a while after a rotation.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000003_client_secrets"
    }
}

#[derive(DeriveIden)]
enum ClientSecrets {
    Table,
    Id,
    ClientId,
    SecretCiphertext,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ClientSecrets::Table)
                    .col(ColumnDef::new(ClientSecrets::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(ClientSecrets::ClientId).integer().not_null())
                    .col(ColumnDef::new(ClientSecrets::SecretCiphertext).text().not_null())
                    .col(ColumnDef::new(ClientSecrets::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(ClientSecrets::ExpiresAt).big_integer().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(ClientSecrets::Table, ClientSecrets::ClientId)
                            .to(Clients::Table, Clients::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("ix_client_secrets_client").table(ClientSecrets::Table).col(ClientSecrets::ClientId).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ClientSecrets::Table).to_owned()).await
    }
}
