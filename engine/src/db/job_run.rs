//! The `job_runs` table: the history of scheduled job runs.

use sea_orm::entity::prelude::*;

/// One run of a scheduled job.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "job_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub job: String,
    pub tick: i64,
    pub instance: String,
    pub started_at: i64,
    pub duration_ms: i64,
    /// `ok` or `failed`.
    pub outcome: String,
    pub detail: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
