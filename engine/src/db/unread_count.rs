//! The `unread_counts` table: unread messages per client in blocks of its sequence, kept by
//! triggers on `messages` (see migration `m20261204_000004_unread_counts`).

use sea_orm::entity::prelude::*;

/// Unread messages of one client whose `client_seq >> shift` is `bucket`; the shift is 8 on level
/// 1 and 16 on level 2.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "unread_counts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub client_id: i32,
    #[sea_orm(primary_key, auto_increment = false)]
    pub level: i16,
    #[sea_orm(primary_key, auto_increment = false)]
    pub bucket: i64,
    pub unread: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
