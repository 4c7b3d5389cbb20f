//! Leased messages keep the end of their lease in `next_attempt_at` as well, so that a delivery
//! claim finds expired leases through the same index range as due messages. Rows leased before
//! this migration get the value here; the engine sets it from now on.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261205_000005_lease_due_time"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE messages SET next_attempt_at = lease_until \
                 WHERE status = 'processing' AND lease_owner IS NOT NULL AND lease_until IS NOT NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Older engines find expired leases without this value, so there is nothing to undo.
        Ok(())
    }
}
