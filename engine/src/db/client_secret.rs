//! The `client_secrets` table: earlier secrets of a client, valid until they expire.

use sea_orm::entity::prelude::*;

/// One earlier secret, kept valid for a while after a rotation.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "client_secrets")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub client_id: i32,
    /// The secret, encrypted with the master key.
    pub secret_ciphertext: String,
    pub created_at: i64,
    /// Unix milliseconds after which requests signed with this secret are rejected.
    pub expires_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
