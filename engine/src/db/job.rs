//! The `jobs` table: the last claimed tick of each scheduled job and its last outcome.

use sea_orm::entity::prelude::*;

/// State of one scheduled job, shared by every engine instance.
#[derive(Clone, Debug, Default, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// Scheduled time of the last tick an instance claimed; a tick runs once across the deployment.
    pub last_tick: Option<i64>,
    pub lease_owner: Option<String>,
    /// End of the running tick's lease; a later tick is skipped while the lease holds.
    pub lease_until: Option<i64>,
    pub last_started_at: Option<i64>,
    pub last_duration_ms: Option<i64>,
    /// `ok` or `failed`.
    pub last_outcome: Option<String>,
    pub last_detail: Option<String>,
    pub runs: i64,
    pub failures: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
