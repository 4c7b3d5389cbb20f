//! Directory mapping: internal codes <-> each connector's external codes, kept in the database and
//! served to plugins from an in-memory snapshot.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use sea_orm::sea_query::OnConflict;
use sea_orm::{DbErr, EntityTrait, Set};
use serde::Deserialize;

use crate::db::{directory_mapping, Db};
use crate::ledger::now_ms;

type Key = (String, String, String);

#[derive(Default)]
struct Snapshot {
    /// (connector, directory, external) -> internal
    to_internal: HashMap<Key, String>,
    /// (connector, directory, internal) -> external
    to_external: HashMap<Key, String>,
}

/// Read-mostly snapshot of all directory mappings, shared by every connector host.
#[derive(Clone, Default)]
pub struct DirectoryMap {
    snapshot: Arc<RwLock<Snapshot>>,
    /// Row count and newest `updated_at` of the table when the snapshot was loaded.
    version: Arc<RwLock<(i64, i64)>>,
}

impl DirectoryMap {
    /// Maps an external code of a connector's directory to the internal code.
    pub fn to_internal(&self, connector: &str, directory: &str, external_code: &str) -> Option<String> {
        let key = (connector.to_string(), directory.to_string(), external_code.to_string());
        self.snapshot.read().expect("directory snapshot lock").to_internal.get(&key).cloned()
    }

    /// Maps an internal code to a connector's external code.
    pub fn to_external(&self, connector: &str, directory: &str, internal_code: &str) -> Option<String> {
        let key = (connector.to_string(), directory.to_string(), internal_code.to_string());
        self.snapshot.read().expect("directory snapshot lock").to_external.get(&key).cloned()
    }

    /// Replaces the snapshot with the database's current mappings; returns how many were loaded.
    pub async fn reload(&self, db: &Db) -> Result<usize, DbErr> {
        let rows = directory_mapping::Entity::find().all(&db.reader).await?;
        let mut snapshot = Snapshot::default();
        for row in &rows {
            snapshot
                .to_internal
                .insert((row.connector.clone(), row.directory.clone(), row.external_code.clone()), row.internal_code.clone());
            snapshot
                .to_external
                .insert((row.connector.clone(), row.directory.clone(), row.internal_code.clone()), row.external_code.clone());
        }
        let version = (rows.len() as i64, rows.iter().map(|row| row.updated_at).max().unwrap_or(0));
        *self.snapshot.write().expect("directory snapshot lock") = snapshot;
        *self.version.write().expect("directory version lock") = version;
        Ok(rows.len())
    }

    /// Reloads the snapshot if the table changed since the last load (another instance synchronised
    /// a directory); returns whether it reloaded.
    pub async fn refresh(&self, db: &Db) -> Result<bool, DbErr> {
        use sea_orm::sea_query::Expr;
        use sea_orm::QuerySelect;

        let current: Option<(i64, Option<i64>)> = directory_mapping::Entity::find()
            .select_only()
            .column_as(Expr::col(directory_mapping::Column::Id).count(), "rows")
            .column_as(Expr::col(directory_mapping::Column::UpdatedAt).max(), "newest")
            .into_tuple()
            .one(&db.reader)
            .await?;
        let current = current.map(|(rows, newest)| (rows, newest.unwrap_or(0))).unwrap_or((0, 0));
        if current == *self.version.read().expect("directory version lock") {
            return Ok(false);
        }
        self.reload(db).await?;
        Ok(true)
    }
}

/// One row of a mapping CSV file.
#[derive(Debug, Deserialize)]
struct CsvRow {
    connector: String,
    directory: String,
    internal_code: String,
    external_code: String,
    #[serde(default)]
    name: Option<String>,
}

/// Imports a CSV file with header `connector,directory,internal_code,external_code,name` into the
/// database, replacing rows with the same connector, directory and external code; returns the count.
pub async fn import_csv(db: &Db, path: &Path) -> anyhow::Result<usize> {
    let mut reader = csv::Reader::from_path(path).map_err(|error| anyhow::anyhow!("cannot read directory file {}: {error}", path.display()))?;
    let now = now_ms();
    let mut models = Vec::new();
    for (index, record) in reader.deserialize::<CsvRow>().enumerate() {
        let row = record.map_err(|error| anyhow::anyhow!("directory file {} row {}: {error}", path.display(), index + 2))?;
        models.push(directory_mapping::ActiveModel {
            connector: Set(row.connector),
            directory: Set(row.directory),
            internal_code: Set(row.internal_code),
            external_code: Set(row.external_code),
            name: Set(row.name),
            updated_at: Set(now),
            ..Default::default()
        });
    }
    let count = models.len();
    for chunk in models.chunks(200) {
        directory_mapping::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([
                    directory_mapping::Column::Connector,
                    directory_mapping::Column::Directory,
                    directory_mapping::Column::ExternalCode,
                ])
                .update_columns([directory_mapping::Column::InternalCode, directory_mapping::Column::Name, directory_mapping::Column::UpdatedAt])
                .to_owned(),
            )
            .exec(&db.writer)
            .await?;
    }
    Ok(count)
}

/// Most pages read in one directory synchronisation, so a plugin that never ends its paging cannot
/// loop forever.
const MAX_DIRECTORY_PAGES: usize = 10_000;

/// Reads a whole directory of a connector into `directory_entries` and the mapping table, then
/// reloads this instance's snapshot. Returns a one-line summary.
///
/// The connector's codes become the internal codes of directory `into`: the connector maps each
/// code to itself, and each linked connector maps an entry's alternative code to the entry's code.
/// The synchronised rows replace the earlier rows of those connectors and that directory.
pub async fn sync(engine: &crate::engine::Engine, job: &crate::config::SyncDirectoryJob) -> Result<String, String> {
    use sea_orm::{ColumnTrait, QueryFilter, TransactionTrait};
    use uig_connector_api::reexports::ROption;
    use uig_connector_api::DirectoryRequest;

    use crate::db::directory_entry;

    let Some(connector) = engine.connectors.get(&job.connector) else {
        return Err(format!("connector \"{}\" is not loaded on this instance", job.connector));
    };
    let into = job.into.clone().unwrap_or_else(|| job.directory.clone());

    let mut entries = Vec::new();
    let mut page_token: Option<String> = None;
    for page_number in 1.. {
        if page_number > MAX_DIRECTORY_PAGES {
            return Err(format!("directory {}/{} did not end after {MAX_DIRECTORY_PAGES} pages", job.connector, job.directory));
        }
        let request = DirectoryRequest { directory: job.directory.as_str().into(), page_token: page_token.clone().map(Into::into).into() };
        let page = connector
            .fetch_directory(request)
            .await
            .map_err(|error| format!("directory {}/{} page {page_number}: {}", job.connector, job.directory, error.into_connector_error()))?;
        entries.extend(page.entries);
        match page.next_page_token {
            ROption::RSome(token) => page_token = Some(token.to_string()),
            ROption::RNone => break,
        }
    }

    let now = now_ms();
    let storage = |error: DbErr| format!("ledger error: {error}");
    let transaction = engine.db.writer.begin().await.map_err(storage)?;
    directory_entry::Entity::delete_many()
        .filter(directory_entry::Column::Connector.eq(&job.connector))
        .filter(directory_entry::Column::Directory.eq(&job.directory))
        .exec(&transaction)
        .await
        .map_err(storage)?;
    let mut mapped_connectors = vec![job.connector.clone()];
    mapped_connectors.extend(job.link.iter().cloned());
    directory_mapping::Entity::delete_many()
        .filter(directory_mapping::Column::Connector.is_in(mapped_connectors))
        .filter(directory_mapping::Column::Directory.eq(&into))
        .exec(&transaction)
        .await
        .map_err(storage)?;

    let mut rows = Vec::with_capacity(entries.len());
    let mut mappings = Vec::new();
    let mut linked = 0usize;
    for entry in &entries {
        let alt_code = entry.alt_code.clone().into_option().map(|code| code.to_string()).filter(|code| !code.is_empty());
        rows.push(directory_entry::ActiveModel {
            connector: Set(job.connector.clone()),
            directory: Set(job.directory.clone()),
            code: Set(entry.code.to_string()),
            name: Set(entry.name.to_string()),
            parent: Set(entry.parent.clone().into_option().map(|code| code.to_string())),
            alt_code: Set(alt_code.clone()),
            synced_at: Set(now),
            ..Default::default()
        });
        let mapping = |connector: &str, external: &str| directory_mapping::ActiveModel {
            connector: Set(connector.to_string()),
            directory: Set(into.clone()),
            internal_code: Set(entry.code.to_string()),
            external_code: Set(external.to_string()),
            name: Set(Some(entry.name.to_string())),
            updated_at: Set(now),
            ..Default::default()
        };
        mappings.push(mapping(&job.connector, entry.code.as_str()));
        if let Some(alt_code) = &alt_code {
            for link in &job.link {
                mappings.push(mapping(link, alt_code));
                linked += 1;
            }
        }
    }
    for chunk in rows.chunks(200) {
        directory_entry::Entity::insert_many(chunk.to_vec()).exec(&transaction).await.map_err(storage)?;
    }
    for chunk in mappings.chunks(200) {
        directory_mapping::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([
                    directory_mapping::Column::Connector,
                    directory_mapping::Column::Directory,
                    directory_mapping::Column::ExternalCode,
                ])
                .update_columns([directory_mapping::Column::InternalCode, directory_mapping::Column::Name, directory_mapping::Column::UpdatedAt])
                .to_owned(),
            )
            .exec(&transaction)
            .await
            .map_err(storage)?;
    }
    transaction.commit().await.map_err(storage)?;
    // Other instances sharing the database notice the change within their scheduler's refresh interval.
    engine.directories.reload(&engine.db).await.map_err(storage)?;
    Ok(format!("{} entries of {}/{} stored as directory \"{into}\", {linked} codes linked", entries.len(), job.connector, job.directory))
}
