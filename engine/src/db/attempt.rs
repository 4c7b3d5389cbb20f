//! The `attempts` table: every delivery, callback and status refresh attempt.

use sea_orm::entity::prelude::*;

/// One attempt. Times are Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "attempts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub message_id: i64,
    /// `delivery`, `callback` or `status`.
    pub kind: String,
    /// Attempt number within its kind, starting at 1.
    pub number: i32,
    pub started_at: i64,
    pub duration_ms: i64,
    /// `ok`, `pending`, or the error kind (`transient`, `permanent`, `auth`, `config`, `panicked`, `timeout`).
    pub outcome: String,
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
