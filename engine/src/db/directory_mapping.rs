//! The `directory_mappings` table: internal codes and each connector's external codes.

use sea_orm::entity::prelude::*;

/// One code pair of a reference directory.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "directory_mappings")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub connector: String,
    pub directory: String,
    pub internal_code: String,
    pub external_code: String,
    pub name: Option<String>,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
