//! The running engine: config, database, connectors, clients and the wake-up signals of workers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::clients::ClientRegistry;
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::db::Db;
use crate::directory::{self, DirectoryMap};
use crate::plugins::host::{build_cache, ExternalCache};
use crate::plugins::Connectors;

/// Shared state of one engine instance.
pub struct Engine {
    pub config: Config,
    pub db: Db,
    pub connectors: Connectors,
    pub clients: ClientRegistry,
    pub directories: DirectoryMap,
    /// Group commit of accepted messages.
    pub intake: crate::intake::Intake,
    /// Group commit of delivery and callback results.
    pub finisher: crate::finisher::Finisher,
    /// Claims of due deliveries and callbacks, run in the group-commit batches.
    pub claims: crate::claims::Claims,
    /// Per-client request rate and the delivery queue bound.
    pub limits: crate::limits::Limits,
    /// Cache of external data shared by the connector hosts.
    pub cache: ExternalCache,
    /// Client for callbacks: no redirects, so a callback never reaches a host off the allow-list.
    pub callback_http: reqwest::Client,
    /// Wake-up signal of each worker pool's delivery loop, by pool name.
    pub pools: HashMap<String, Arc<Notify>>,
    /// Wakes the callback worker when a callback becomes due.
    pub callback_due: Notify,
    /// Name of this instance in leases (`hostname-pid-random`).
    pub instance_id: String,
}

/// Reads the master key from `UIG_MASTER_KEY` or the configured file.
pub fn master_key(config: &Config) -> anyhow::Result<MasterKey> {
    if let Ok(hex) = std::env::var("UIG_MASTER_KEY") {
        return Ok(MasterKey::from_hex(&hex)?);
    }
    let Some(path) = &config.master_key_file else {
        anyhow::bail!("no master key: set UIG_MASTER_KEY or master_key_file in the config (generate a key with `uig keygen`)");
    };
    let text = std::fs::read_to_string(path)
        .map_err(|error| anyhow::anyhow!("cannot read master key file {}: {error}", path.display()))?;
    Ok(MasterKey::from_hex(&text)?)
}

impl Engine {
    /// Opens the database, applies migrations, imports directory files and loads the connectors.
    pub async fn start(config: Config) -> anyhow::Result<Arc<Engine>> {
        let key = master_key(&config)?;
        let db = Db::connect(&config.database_url).await?;
        db.migrate().await?;

        let directories = DirectoryMap::default();
        for file in &config.directory_files {
            let count = directory::import_csv(&db, file).await?;
            tracing::info!(file = %file.display(), rows = count, "directory file imported");
        }
        let mappings = directories.reload(&db).await?;
        tracing::info!(mappings, "directory mappings loaded");

        let plugin_http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let cache = build_cache(config.cache.max_entries);
        let connectors = Connectors::load(&config, plugin_http, cache.clone(), directories.clone())?;

        let callback_http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(config.callbacks.timeout_ms))
            .build()?;

        let (intake, finisher, claims) = crate::group_commit::start(db.clone());
        let instance_id = format!("{}-{}-{:04x}", hostname(), std::process::id(), rand::random::<u16>());
        Ok(Arc::new(Engine {
            clients: ClientRegistry::new(db.clone(), key),
            limits: crate::limits::Limits::new(&config.limits),
            intake,
            finisher,
            claims,
            pools: config.pool_concurrency().into_iter().map(|(name, _)| (name, Arc::new(Notify::new()))).collect(),
            config,
            db,
            connectors,
            directories,
            cache,
            callback_http,
            callback_due: Notify::new(),
            instance_id,
        }))
    }
}

impl Engine {
    /// Wakes the delivery loop of `pool`, after a message of that pool was queued.
    pub fn wake_pool(&self, pool: &str) {
        if let Some(signal) = self.pools.get(pool) {
            signal.notify_one();
        }
    }

    /// Wakes the delivery loop of every pool.
    pub fn wake_all_pools(&self) {
        for signal in self.pools.values() {
            signal.notify_one();
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|name| name.trim().to_string()).unwrap_or_else(|_| "uig".to_string())
}
