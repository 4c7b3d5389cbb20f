//! The `directory_entries` table: reference directories read from external systems.

use sea_orm::entity::prelude::*;

/// One entry of a synchronised directory.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "directory_entries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub connector: String,
    pub directory: String,
    pub code: String,
    pub name: String,
    pub parent: Option<String>,
    pub alt_code: Option<String>,
    pub synced_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
