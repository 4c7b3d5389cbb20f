//! The `clients` table: client systems allowed to call the API.

use sea_orm::entity::prelude::*;

/// One client system.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "clients")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// Unique name, shown in logs and the CLI.
    pub name: String,
    /// Lowercase hex SHA-256 of the token; the token itself is never stored.
    pub token_hash: String,
    /// The HMAC secret, encrypted with the master key (see `crypto`).
    pub secret_ciphertext: String,
    /// Connector names this client may send to, comma-separated.
    pub allowed_recipients: String,
    /// Host names (optionally `host:port`) allowed in callback URLs, comma-separated.
    pub callback_hosts: String,
    pub disabled: bool,
    /// Unix milliseconds.
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
