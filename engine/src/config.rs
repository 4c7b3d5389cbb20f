//! The `uig.toml` config file: every key documented, unknown keys rejected with their path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Top level of `uig.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP API listens on. Default `127.0.0.1:8080`; env `UIG_LISTEN` overrides.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,

    /// Database URL. Default `sqlite://uig.db` (relative to the working directory); env
    /// `UIG_DATABASE_URL` overrides.
    #[serde(default = "default_database_url")]
    pub database_url: String,

    /// File with the 32-byte master key (64 hex characters) that encrypts client secrets at rest.
    /// Env `UIG_MASTER_KEY` (the hex itself) takes precedence. Relative paths are resolved from the
    /// config file's directory.
    #[serde(default)]
    pub master_key_file: Option<PathBuf>,

    /// Folder with connector plugin libraries; relative paths are resolved from the config file's
    /// directory. Default `plugins`.
    #[serde(default = "default_plugins_dir")]
    pub plugins_dir: PathBuf,

    /// Time zone of timestamps sent as `YYYY-MM-DD HH:MM:SS` (IANA name). Default `Europe/Moscow`.
    #[serde(default = "default_time_zone")]
    pub time_zone: chrono_tz::Tz,

    /// How far a request timestamp may be from the server clock, in seconds, either way. Default 300.
    #[serde(default = "default_timestamp_window")]
    pub timestamp_window_seconds: i64,

    /// Largest accepted request body in bytes; larger bodies get 413. Default 1048576 (1 MiB).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,

    /// CSV files of directory mappings imported at start (`connector,directory,internal_code,external_code,name`);
    /// relative paths are resolved from the config file's directory. Default none.
    #[serde(default)]
    pub directory_files: Vec<PathBuf>,

    /// Delivery worker settings.
    #[serde(default)]
    pub worker: WorkerConfig,

    /// Callback delivery settings.
    #[serde(default)]
    pub callbacks: CallbackConfig,

    /// Cache of external data shared by all connectors.
    #[serde(default)]
    pub cache: CacheConfig,

    /// Admission limits of the API.
    #[serde(default)]
    pub limits: LimitsConfig,

    /// Connector instances by name; the name is the `recipient` clients send to.
    #[serde(default)]
    pub connectors: BTreeMap<String, ConnectorConfig>,

    /// Named worker pools, each with its own concurrency, so a slow system cannot starve the
    /// others. Pool `worker` always exists and takes every message not routed elsewhere.
    #[serde(default)]
    pub pools: BTreeMap<String, PoolConfig>,

    /// Scheduled jobs by name.
    #[serde(default)]
    pub jobs: BTreeMap<String, JobConfig>,

    /// Routing rules of inbound events to client inboxes and other connectors.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// Largest accepted `timestamp_window_seconds`: one day. A wider window would make replay
/// protection, which remembers requests by their signature, meaningless.
pub const MAX_TIMESTAMP_WINDOW_SECONDS: i64 = 86_400;

/// Name of the pool that always exists.
pub const DEFAULT_POOL: &str = "worker";

/// One named worker pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Most messages of this pool delivered at once by one instance. Default: `worker.claim_batch`.
    #[serde(default)]
    pub concurrency: Option<u64>,
}

/// One scheduled job: a cron schedule and exactly one task table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// Cron expression with an optional seconds field first (`*/10 * * * * *` runs every 10 s,
    /// `0 3 * * *` daily at 03:00), in the configured `time_zone`.
    pub schedule: String,
    /// Whether the job runs. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Maximum run time in seconds; after it the run is abandoned. Default 600.
    #[serde(default = "default_job_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Polls an external feed from its stored pointer.
    #[serde(default)]
    pub poll_feed: Option<PollFeedJob>,
    /// Reads a directory of a connector into the mapping tables.
    #[serde(default)]
    pub sync_directory: Option<SyncDirectoryJob>,
    /// Wakes every worker pool to deliver due messages and to re-claim expired leases.
    #[serde(default)]
    pub retry_due: Option<EmptyTask>,
    /// Drops expired entries of the external data cache.
    #[serde(default)]
    pub cache_expiry: Option<EmptyTask>,
    /// Deletes old finished messages, job runs and seen feed events.
    #[serde(default)]
    pub retention: Option<RetentionJob>,
}

/// Task without settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyTask {}

/// Feed poll task.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollFeedJob {
    /// Connector that reads the feed.
    pub connector: String,
    /// Feed name in the connector's terms (for Kontur: the mediId of the mailbox).
    pub feed: String,
    /// Most events asked for per batch. Default 100.
    #[serde(default = "default_feed_batch")]
    pub batch: u32,
    /// Most batches read in one run while full batches keep coming. Default 10.
    #[serde(default = "default_feed_batches_per_run")]
    pub max_batches: u32,
}

/// Directory synchronisation task.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncDirectoryJob {
    /// Connector whose directory is read; its codes become the internal codes.
    pub connector: String,
    /// Directory name in the connector's terms (`car_make`).
    pub directory: String,
    /// Internal directory name the mappings are stored under (`brand`). Default: `directory`.
    #[serde(default)]
    pub into: Option<String>,
    /// Connectors whose codes are linked through each entry's alternative code: for each entry with
    /// one, the mapping `connector, into, internal = code, external = alt_code` is stored.
    #[serde(default)]
    pub link: Vec<String>,
}

/// Retention task.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionJob {
    /// Finished messages, job runs and seen feed events older than this many days are deleted.
    pub keep_days: u32,
}

/// One routing rule for inbound events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Connector the events come from.
    pub connector: String,
    /// Entity of the events; every entity when absent.
    #[serde(default)]
    pub entity: Option<String>,
    /// Feed of the events; every feed of the connector when absent.
    #[serde(default)]
    pub feed: Option<String>,
    /// Clients (by name) whose inbox gets each event as a `received` message.
    #[serde(default)]
    pub clients: Vec<String>,
    /// Outbound messages made from each event.
    #[serde(default)]
    pub forward: Vec<ForwardConfig>,
}

/// An outbound message made from an inbound event.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// Connector that delivers the new message.
    pub recipient: String,
    /// Entity of the new message.
    pub entity: String,
    /// Client (by name) that owns the new message; it appears in this client's listings.
    pub client: String,
    /// Top-level fields of the event copied into the message; all fields when absent.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// Fields added with fixed values.
    #[serde(default = "empty_table")]
    pub set: toml::Table,
}

/// Delivery worker settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Whether this instance runs the delivery and callback workers. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How often the worker looks for due messages when nothing wakes it, in milliseconds. Default 500.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Most messages claimed in one database round trip. Default 64.
    #[serde(default = "default_claim_batch")]
    pub claim_batch: u64,
    /// How long a claimed message stays reserved for this instance, in seconds; must exceed every
    /// connector's `deadline_ms`. Default 300.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
}

/// Callback delivery settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackConfig {
    /// Timeout of one callback POST in milliseconds. Default 10000.
    #[serde(default = "default_callback_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts before a callback is given up. Default 12.
    #[serde(default = "default_callback_attempts")]
    pub max_attempts: u32,
    /// Backoff between callback attempts.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Callback POSTs in flight at once on this instance. Default 128.
    #[serde(default = "default_callback_concurrency")]
    pub concurrency: usize,
}

/// Cache of external data.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Most entries kept across all connectors; the least recently used go first. Default 100000.
    #[serde(default = "default_cache_entries")]
    pub max_entries: u64,
}

/// Circuit breaker of one connector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Whether the breaker is on. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Share of transient failures among the calls of a window that opens the breaker. Default 0.5.
    #[serde(default = "default_failure_rate")]
    pub failure_rate: f64,
    /// Minimum number of calls in a window before the failure rate counts. Default 20.
    #[serde(default = "default_breaker_min_calls")]
    pub min_calls: u32,
    /// Length of a counting window in seconds. Default 30.
    #[serde(default = "default_breaker_window")]
    pub window_seconds: u64,
    /// How long an open breaker rejects calls before probing, in seconds. Default 30.
    #[serde(default = "default_breaker_open")]
    pub open_seconds: u64,
    /// Probe calls let through at once when half open. Default 1.
    #[serde(default = "default_breaker_probes")]
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            enabled: true,
            failure_rate: default_failure_rate(),
            min_calls: default_breaker_min_calls(),
            window_seconds: default_breaker_window(),
            open_seconds: default_breaker_open(),
            half_open_probes: default_breaker_probes(),
        }
    }
}

fn default_failure_rate() -> f64 {
    0.5
}
fn default_breaker_min_calls() -> u32 {
    20
}
fn default_breaker_window() -> u64 {
    30
}
fn default_breaker_open() -> u64 {
    30
}
fn default_breaker_probes() -> u32 {
    1
}

/// Admission limits of the API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests per second each client may make, on average; more get 429 with `Retry-After`.
    /// 0 turns the limit off. Default 200.
    #[serde(default = "default_client_rate")]
    pub client_rate_per_second: u32,
    /// Requests a client may make at once above its rate. Default 400.
    #[serde(default = "default_client_burst")]
    pub client_burst: u32,
    /// Messages waiting for delivery (queued or retrying) above which async sends get 503 with
    /// `Retry-After`. 0 turns the bound off. Default 100000.
    #[serde(default = "default_max_queue_depth")]
    pub max_queue_depth: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig { client_rate_per_second: default_client_rate(), client_burst: default_client_burst(), max_queue_depth: default_max_queue_depth() }
    }
}

fn default_client_rate() -> u32 {
    200
}
fn default_client_burst() -> u32 {
    400
}
fn default_max_queue_depth() -> u64 {
    100_000
}

/// Retry schedule: exponential backoff with full jitter, capped.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Delay before the second attempt, in milliseconds. Default 1000.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Largest delay between attempts, in milliseconds. Default 300000 (5 minutes).
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Growth factor of the delay per attempt. Default 2.0.
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
}

/// One connector instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// Plugin library file name (or path), relative to `plugins_dir`.
    pub library: PathBuf,
    /// Whether the connector is loaded. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Whether start-up fails when the plugin cannot be loaded. Default false: the connector is
    /// marked unavailable and messages to it are rejected with 503.
    #[serde(default)]
    pub required: bool,
    /// Most plugin calls running at once. Default 8.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Deadline of one plugin call in milliseconds; a call past it fails as transient. Default 30000.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Default timeout of the plugin's HTTP requests in milliseconds. Default 10000.
    #[serde(default = "default_http_timeout_ms")]
    pub http_timeout_ms: u64,
    /// URL prefixes the plugin may reach through the host HTTP client; anything else is refused.
    #[serde(default)]
    pub allowed_urls: Vec<String>,
    /// PEM files of extra root certificates trusted for this connector's HTTPS only (for example
    /// the Russian Trusted Root CA), besides the built-in roots. Relative paths are resolved from
    /// the config file's directory. There is no switch that accepts invalid certificates.
    #[serde(default)]
    pub ca_certificates: Vec<PathBuf>,
    /// Delivery attempts before a message becomes `failed`. Default 5.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Backoff between delivery attempts.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Age in seconds after which a message is not retried any more and becomes `failed`. Default
    /// 86400 (one day).
    #[serde(default = "default_max_age_seconds")]
    pub max_age_seconds: u64,
    /// Circuit breaker of the connector's calls.
    #[serde(default)]
    pub circuit_breaker: BreakerConfig,
    /// Worker pool of this connector's messages. Default `worker`.
    #[serde(default)]
    pub pool: Option<String>,
    /// Worker pools of single entities, overriding `pool` (`a7_create = "create-a7"`).
    #[serde(default)]
    pub entity_pools: BTreeMap<String, String>,
    /// Entities whose sends only read from the external system (`["vehicle"]`). A sync send of one
    /// calls the plugin first and is stored once, with its result. Default none.
    #[serde(default)]
    pub lookups: Vec<String>,
    /// The plugin's own settings, passed to it as JSON and checked by the plugin.
    #[serde(default = "empty_table")]
    pub settings: toml::Table,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_database_url() -> String {
    "sqlite://uig.db".to_string()
}
fn default_plugins_dir() -> PathBuf {
    PathBuf::from("plugins")
}
fn default_time_zone() -> chrono_tz::Tz {
    chrono_tz::Europe::Moscow
}
fn default_timestamp_window() -> i64 {
    300
}
fn default_max_body_bytes() -> usize {
    1024 * 1024
}
fn default_true() -> bool {
    true
}
fn default_poll_interval_ms() -> u64 {
    500
}
fn default_claim_batch() -> u64 {
    64
}
fn default_lease_seconds() -> u64 {
    300
}
fn default_callback_concurrency() -> usize {
    128
}

fn default_callback_timeout_ms() -> u64 {
    10_000
}
fn default_callback_attempts() -> u32 {
    12
}
fn default_cache_entries() -> u64 {
    100_000
}
fn default_initial_backoff_ms() -> u64 {
    1000
}
fn default_max_backoff_ms() -> u64 {
    300_000
}
fn default_multiplier() -> f64 {
    2.0
}
fn default_concurrency() -> usize {
    8
}
fn default_deadline_ms() -> u64 {
    30_000
}
fn default_http_timeout_ms() -> u64 {
    10_000
}
fn default_max_attempts() -> u32 {
    5
}
fn default_max_age_seconds() -> u64 {
    86_400
}
fn default_job_timeout_seconds() -> u64 {
    600
}
fn default_feed_batch() -> u32 {
    100
}
fn default_feed_batches_per_run() -> u32 {
    10
}
fn empty_table() -> toml::Table {
    toml::Table::new()
}

/// Parses a job schedule: cron with an optional leading seconds field.
pub fn parse_schedule(schedule: &str) -> Result<croner::Cron, String> {
    croner::Cron::new(schedule)
        .with_seconds_optional()
        .parse()
        .map_err(|error| format!("\"{schedule}\" is not a cron expression ({error}); for example \"*/30 * * * * *\" or \"0 3 * * *\""))
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            enabled: true,
            poll_interval_ms: default_poll_interval_ms(),
            claim_batch: default_claim_batch(),
            lease_seconds: default_lease_seconds(),
        }
    }
}

impl Default for CallbackConfig {
    fn default() -> Self {
        CallbackConfig {
            timeout_ms: default_callback_timeout_ms(),
            max_attempts: default_callback_attempts(),
            retry: RetryConfig::default(),
            concurrency: default_callback_concurrency(),
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { max_entries: default_cache_entries() }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            multiplier: default_multiplier(),
        }
    }
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not valid TOML or has a wrong or unknown key.
    #[error("invalid config file {path}: {key}: {message}")]
    Invalid { path: PathBuf, key: String, message: String },
}

impl Config {
    /// Reads and checks the config file, applies environment overrides (`UIG_LISTEN`,
    /// `UIG_DATABASE_URL`) and resolves relative paths against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let mut config = Self::parse(&text).map_err(|(key, message)| ConfigError::Invalid { path: path.to_path_buf(), key, message })?;

        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        config.resolve_paths(&base);
        config.apply_env().map_err(|(key, message)| ConfigError::Invalid { path: path.to_path_buf(), key, message })?;
        Ok(config)
    }

    /// Parses TOML text; an error is the failing key path and the message.
    pub fn parse(text: &str) -> Result<Config, (String, String)> {
        let deserializer = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let key = error.path().to_string();
            let message = error.inner().message().to_string();
            (key, message)
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        if !(1..=MAX_TIMESTAMP_WINDOW_SECONDS).contains(&self.timestamp_window_seconds) {
            return Err((
                "timestamp_window_seconds".into(),
                format!("must be 1 to {MAX_TIMESTAMP_WINDOW_SECONDS} seconds (one day); 300 is the usual value"),
            ));
        }
        for (name, connector) in &self.connectors {
            let valid_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !valid_name {
                return Err((format!("connectors.{name}"), "connector names use lowercase letters, digits, - and _".into()));
            }
            if connector.concurrency == 0 {
                return Err((format!("connectors.{name}.concurrency"), "must be at least 1".into()));
            }
            if connector.max_attempts == 0 {
                return Err((format!("connectors.{name}.max_attempts"), "must be at least 1".into()));
            }
            if connector.deadline_ms >= self.worker.lease_seconds * 1000 {
                return Err((
                    format!("connectors.{name}.deadline_ms"),
                    format!("must be below worker.lease_seconds ({} s), or a slow call could be claimed twice", self.worker.lease_seconds),
                ));
            }
            for (entity, pool) in connector.pool.iter().map(|pool| ("", pool)).chain(connector.entity_pools.iter().map(|(e, p)| (e.as_str(), p))) {
                if !self.has_pool(pool) {
                    let key = if entity.is_empty() { format!("connectors.{name}.pool") } else { format!("connectors.{name}.entity_pools.{entity}") };
                    return Err((key, format!("no pool \"{pool}\": add [pools.{pool}] or use \"{DEFAULT_POOL}\"")));
                }
            }
        }
        for (name, pool) in &self.pools {
            if pool.concurrency == Some(0) {
                return Err((format!("pools.{name}.concurrency"), "must be at least 1".into()));
            }
        }
        for (name, job) in &self.jobs {
            self.validate_job(name, job)?;
        }
        for (index, route) in self.routes.iter().enumerate() {
            if !self.connectors.contains_key(&route.connector) {
                return Err((format!("routes[{index}].connector"), format!("no connector \"{}\" in [connectors]", route.connector)));
            }
            if route.clients.is_empty() && route.forward.is_empty() {
                return Err((format!("routes[{index}]"), "names neither clients nor forward: the events would go nowhere".into()));
            }
            for (position, forward) in route.forward.iter().enumerate() {
                if !self.connectors.contains_key(&forward.recipient) {
                    return Err((
                        format!("routes[{index}].forward[{position}].recipient"),
                        format!("no connector \"{}\" in [connectors]", forward.recipient),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_job(&self, name: &str, job: &JobConfig) -> Result<(), (String, String)> {
        if let Err(error) = parse_schedule(&job.schedule) {
            return Err((format!("jobs.{name}.schedule"), error));
        }
        let tasks = [
            job.poll_feed.is_some(),
            job.sync_directory.is_some(),
            job.retry_due.is_some(),
            job.cache_expiry.is_some(),
            job.retention.is_some(),
        ];
        if tasks.iter().filter(|set| **set).count() != 1 {
            return Err((
                format!("jobs.{name}"),
                "needs exactly one task: poll_feed, sync_directory, retry_due, cache_expiry or retention".into(),
            ));
        }
        if let Some(poll) = &job.poll_feed {
            if !self.connectors.contains_key(&poll.connector) {
                return Err((format!("jobs.{name}.poll_feed.connector"), format!("no connector \"{}\" in [connectors]", poll.connector)));
            }
            if poll.batch == 0 || poll.max_batches == 0 {
                return Err((format!("jobs.{name}.poll_feed"), "batch and max_batches must be at least 1".into()));
            }
        }
        if let Some(sync) = &job.sync_directory {
            for connector in std::iter::once(&sync.connector).chain(&sync.link) {
                if !self.connectors.contains_key(connector) {
                    return Err((format!("jobs.{name}.sync_directory"), format!("no connector \"{connector}\" in [connectors]")));
                }
            }
        }
        if let Some(retention) = &job.retention {
            if retention.keep_days == 0 {
                return Err((format!("jobs.{name}.retention.keep_days"), "must be at least 1".into()));
            }
        }
        Ok(())
    }

    /// Reports whether pool `name` exists (`worker` always does).
    pub fn has_pool(&self, name: &str) -> bool {
        name == DEFAULT_POOL || self.pools.contains_key(name)
    }

    /// Returns every pool with its concurrency, the default pool first.
    pub fn pool_concurrency(&self) -> Vec<(String, u64)> {
        let default = self.worker.claim_batch;
        let mut pools = vec![(DEFAULT_POOL.to_string(), self.pools.get(DEFAULT_POOL).and_then(|pool| pool.concurrency).unwrap_or(default))];
        for (name, pool) in &self.pools {
            if name != DEFAULT_POOL {
                pools.push((name.clone(), pool.concurrency.unwrap_or(default)));
            }
        }
        pools
    }

    /// Returns the pool that delivers messages of `entity` to `connector`.
    pub fn pool_for(&self, connector: &str, entity: &str) -> String {
        let Some(config) = self.connectors.get(connector) else {
            return DEFAULT_POOL.to_string();
        };
        config.entity_pools.get(entity).or(config.pool.as_ref()).cloned().unwrap_or_else(|| DEFAULT_POOL.to_string())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        resolve(&mut self.plugins_dir);
        if let Some(file) = self.master_key_file.as_mut() {
            resolve(file);
        }
        for file in &mut self.directory_files {
            resolve(file);
        }
        for connector in self.connectors.values_mut() {
            for file in &mut connector.ca_certificates {
                resolve(file);
            }
        }
    }

    fn apply_env(&mut self) -> Result<(), (String, String)> {
        if let Ok(listen) = std::env::var("UIG_LISTEN") {
            self.listen = listen.parse().map_err(|_| ("UIG_LISTEN".to_string(), format!("\"{listen}\" is not an address like 127.0.0.1:8080")))?;
        }
        if let Ok(url) = std::env::var("UIG_DATABASE_URL") {
            self.database_url = url;
        }
        Ok(())
    }

    /// Returns the path of a connector's plugin library.
    pub fn library_path(&self, connector: &ConnectorConfig) -> PathBuf {
        self.plugins_dir.join(&connector.library)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_to_empty_file() {
        let config = Config::parse("").unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.timestamp_window_seconds, 300);
        assert!(config.connectors.is_empty());
    }

    #[test]
    fn unknown_key_names_its_path() {
        let (key, message) = Config::parse("[connectors.avinfo]\nlibrary = \"x.so\"\nconcurrensy = 3\n").unwrap_err();
        assert_eq!(key, "connectors.avinfo.concurrensy");
        assert!(message.contains("unknown field `concurrensy`"), "{message}");
    }

    #[test]
    fn wrong_type_names_its_path() {
        let (key, _) = Config::parse("[worker]\nlease_seconds = \"long\"\n").unwrap_err();
        assert_eq!(key, "worker.lease_seconds");
    }

    #[test]
    fn deadline_must_be_below_lease() {
        let (key, message) = Config::parse("[connectors.a]\nlibrary = \"a.so\"\ndeadline_ms = 400000\n").unwrap_err();
        assert_eq!(key, "connectors.a.deadline_ms");
        assert!(message.contains("lease_seconds"));
    }

    const TWO_CONNECTORS: &str = "[connectors.kontur]\nlibrary = \"k.so\"\n\n[connectors.kias]\nlibrary = \"s.so\"\nentity_pools = { notify = \"notify-kias\" }\n\n[pools.notify-kias]\nconcurrency = 2\n";

    #[test]
    fn entity_pool_wins_over_connector_pool() {
        let config = Config::parse(TWO_CONNECTORS).unwrap();
        assert_eq!(config.pool_for("kias", "notify"), "notify-kias");
        assert_eq!(config.pool_for("kias", "a7_create"), "worker");
        assert_eq!(config.pool_for("unknown", "x"), "worker");
        assert_eq!(config.pool_concurrency(), vec![("worker".to_string(), 64), ("notify-kias".to_string(), 2)]);
    }

    #[test]
    fn job_needs_exactly_one_task() {
        let text = format!("{TWO_CONNECTORS}\n[jobs.x]\nschedule = \"* * * * *\"\n");
        let (key, message) = Config::parse(&text).unwrap_err();
        assert_eq!(key, "jobs.x");
        assert!(message.contains("exactly one task"), "{message}");

        let text = format!("{TWO_CONNECTORS}\n[jobs.x]\nschedule = \"* * * * *\"\nretry_due = {{}}\ncache_expiry = {{}}\n");
        let (key, _) = Config::parse(&text).unwrap_err();
        assert_eq!(key, "jobs.x");
    }

    #[test]
    fn job_schedule_error_names_key() {
        let text = format!("{TWO_CONNECTORS}\n[jobs.x]\nschedule = \"every hour\"\nretry_due = {{}}\n");
        let (key, message) = Config::parse(&text).unwrap_err();
        assert_eq!(key, "jobs.x.schedule");
        assert!(message.contains("not a cron expression"), "{message}");
    }

    #[test]
    fn poll_job_names_unknown_connector() {
        let text = format!("{TWO_CONNECTORS}\n[jobs.x]\nschedule = \"*/5 * * * * *\"\npoll_feed = {{ connector = \"medi\", feed = \"box\" }}\n");
        let (key, message) = Config::parse(&text).unwrap_err();
        assert_eq!(key, "jobs.x.poll_feed.connector");
        assert!(message.contains("no connector \"medi\""), "{message}");
    }

    #[test]
    fn route_without_target_is_rejected() {
        let text = format!("{TWO_CONNECTORS}\n[[routes]]\nconnector = \"kontur\"\n");
        let (key, message) = Config::parse(&text).unwrap_err();
        assert_eq!(key, "routes[0]");
        assert!(message.contains("neither clients nor forward"), "{message}");
    }

    #[test]
    fn route_forward_names_unknown_recipient() {
        let text = format!(
            "{TWO_CONNECTORS}\n[[routes]]\nconnector = \"kontur\"\nclients = [\"crm\"]\n\n[[routes.forward]]\nrecipient = \"kiass\"\nentity = \"notify\"\nclient = \"crm\"\n"
        );
        let (key, _) = Config::parse(&text).unwrap_err();
        assert_eq!(key, "routes[0].forward[0].recipient");
    }

    #[test]
    fn demo_config_parses() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/uig.toml")).unwrap();
        let config = Config::parse(&text).unwrap();
        assert!(config.connectors.contains_key("avinfo"));
    }
}
