//! The `feed_cursors` table: the stored pointer of each external feed and the lease of its poller.

use sea_orm::entity::prelude::*;

/// One feed of one connector instance. Times are Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "feed_cursors")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub connector: String,
    pub feed: String,
    /// Pointer after the last stored batch; none before the first batch.
    pub cursor: Option<String>,
    /// Instance that is polling the feed now.
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub last_polled_at: Option<i64>,
    /// The last poll's error as JSON text `{"kind", "code", "message"}`; none after a good poll.
    pub last_error: Option<String>,
    /// New events stored from this feed so far.
    pub events_total: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
