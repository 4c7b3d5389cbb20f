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
        *self.snapshot.write().expect("directory snapshot lock") = snapshot;
        Ok(rows.len())
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
