//! Database schema of the UIG message ledger, as sea-orm migrations.
//!
//! Times are stored as Unix milliseconds (`BIGINT`) so that ordering and comparisons behave the
//! same on SQLite, MariaDB and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261204_000001_create_ledger;
mod m20261204_000002_feeds_jobs_pools;
mod m20261204_000003_client_secrets;
mod m20261204_000004_unread_counts;
mod m20261205_000005_lease_due_time;
mod m20261205_000006_request_time;
mod m20261205_000007_partial_indexes;
mod m20261205_000008_unread_insert_in_code;
mod m20261206_000009_waiting_index;

/// All migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261204_000001_create_ledger::Migration),
            Box::new(m20261204_000002_feeds_jobs_pools::Migration),
            Box::new(m20261204_000003_client_secrets::Migration),
            Box::new(m20261204_000004_unread_counts::Migration),
            Box::new(m20261205_000005_lease_due_time::Migration),
            Box::new(m20261205_000006_request_time::Migration),
            Box::new(m20261205_000007_partial_indexes::Migration),
            Box::new(m20261205_000008_unread_insert_in_code::Migration),
            Box::new(m20261206_000009_waiting_index::Migration),
        ]
    }
}
