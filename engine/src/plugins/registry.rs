//! Loaded connector instances and the way the engine calls them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use uig_connector_api::reexports::{RArc, RResult, TD_Opaque};
use uig_connector_api::{
    load_connector_module, Capabilities, ConnectorBox, ConnectorError, DirectoryPage, DirectoryRequest, ErrorKind, FeedBatch, Host_TO, Manifest, Reply, SendRequest,
    PollRequest, StatusRequest,
};

use super::breaker::Breaker;
use super::host::{EngineHost, ExternalCache};
use crate::config::{Config, ConnectorConfig};
use crate::directory::DirectoryMap;

/// A loaded, configured connector instance.
pub struct ConnectorHandle {
    pub name: String,
    pub manifest: Manifest,
    pub config: ConnectorConfig,
    connector: Arc<ConnectorBox>,
    permits: Arc<Semaphore>,
    /// Stops calls for a while after too many transient failures.
    pub breaker: Breaker,
}

/// A configured connector that could not be loaded; messages to it are rejected.
#[derive(Debug, Clone)]
pub struct Unavailable {
    pub name: String,
    pub reason: String,
}

/// Failure of a plugin call, from the engine's side.
#[derive(Debug, Clone)]
pub enum CallError {
    /// The plugin returned an error.
    Connector(ConnectorError),
    /// The call ran past the connector's deadline.
    Deadline { deadline_ms: u64 },
    /// The connector's circuit breaker is open; the plugin was not called.
    CircuitOpen { retry_after_ms: u64 },
}

impl CallError {
    /// Converts the failure to a connector error; a missed deadline is transient.
    pub fn into_connector_error(self) -> ConnectorError {
        match self {
            CallError::Connector(error) => error,
            CallError::Deadline { deadline_ms } => {
                ConnectorError::transient(format!("plugin call exceeded its deadline of {deadline_ms} ms")).with_code("deadline_exceeded")
            }
            CallError::CircuitOpen { retry_after_ms } => ConnectorError::transient(format!(
                "the connector's circuit breaker is open after repeated failures; calls resume in {} s",
                retry_after_ms.div_ceil(1000)
            ))
            .with_code("circuit_open")
            .with_retry_after_ms(retry_after_ms),
        }
    }
}

/// All configured connectors: the loaded ones and the unavailable ones.
#[derive(Default)]
pub struct Connectors {
    loaded: BTreeMap<String, Arc<ConnectorHandle>>,
    unavailable: BTreeMap<String, Unavailable>,
}

impl Connectors {
    /// Loads every enabled connector of the config. An optional connector that fails is recorded
    /// as unavailable; a required one fails start-up with the loader's one-line reason.
    pub fn load(
        config: &Config,
        http: reqwest::Client,
        cache: ExternalCache,
        directories: DirectoryMap,
    ) -> anyhow::Result<Connectors> {
        let mut connectors = Connectors::default();
        for (name, connector_config) in config.connectors.iter().filter(|(_, c)| c.enabled) {
            let http = match connector_http(&http, &connector_config.ca_certificates) {
                Ok(http) => http,
                Err(reason) if connector_config.required => anyhow::bail!("required connector \"{name}\" cannot start: {reason}"),
                Err(reason) => {
                    tracing::error!(connector = %name, %reason, "optional connector unavailable");
                    connectors.unavailable.insert(name.clone(), Unavailable { name: name.clone(), reason });
                    continue;
                }
            };
            let host = EngineHost {
                connector: Arc::from(name.as_str()),
                runtime: tokio::runtime::Handle::current(),
                http,
                http_timeout: Duration::from_millis(connector_config.http_timeout_ms),
                allowed_urls: connector_config.allowed_urls.clone().into(),
                cache: cache.clone(),
                directories: directories.clone(),
            };
            match load_one(config, name, connector_config, host) {
                Ok(handle) => {
                    tracing::info!(
                        connector = %name,
                        plugin = %handle.manifest.name,
                        version = %handle.manifest.version,
                        capabilities = ?handle.manifest.capabilities.names(),
                        lookups = ?handle.config.lookups,
                        "connector loaded"
                    );
                    connectors.loaded.insert(name.clone(), Arc::new(handle));
                }
                Err(reason) if connector_config.required => {
                    anyhow::bail!("required connector \"{name}\" cannot start: {reason}");
                }
                Err(reason) => {
                    tracing::error!(connector = %name, %reason, "optional connector unavailable");
                    connectors.unavailable.insert(name.clone(), Unavailable { name: name.clone(), reason });
                }
            }
        }
        Ok(connectors)
    }

    /// Returns a loaded connector by name.
    pub fn get(&self, name: &str) -> Option<&Arc<ConnectorHandle>> {
        self.loaded.get(name)
    }

    /// Returns why a configured connector is unavailable, if it is.
    pub fn unavailable(&self, name: &str) -> Option<&Unavailable> {
        self.unavailable.get(name)
    }

    /// Names of the loaded connectors.
    pub fn names(&self) -> Vec<String> {
        self.loaded.keys().cloned().collect()
    }

    /// Returns all unavailable connectors.
    pub fn all_unavailable(&self) -> impl Iterator<Item = &Unavailable> {
        self.unavailable.values()
    }

    /// Returns all loaded connectors.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ConnectorHandle>> {
        self.loaded.values()
    }
}

/// Polls a plugin's future and turns a panic raised while polling it into a `panicked` error.
struct CatchPanic<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future<Output = RResult<Reply, ConnectorError>>> std::future::Future for CatchPanic<F> {
    type Output = Result<Reply, CallError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, context: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let future = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.poll(context))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(result)) => std::task::Poll::Ready(result.into_result().map_err(CallError::Connector)),
            Err(_) => std::task::Poll::Ready(Err(CallError::Connector(ConnectorError::new(ErrorKind::PANICKED, "plugin call aborted: the send_async future panicked")))),
        }
    }
}

/// Reports whether a call's outcome counts as a failure for the circuit breaker.
fn is_failure<T>(result: &Result<T, CallError>) -> bool {
    match result {
        Err(CallError::Connector(error)) => error.kind.is_retryable(),
        Err(CallError::Deadline { .. }) => true,
        Err(CallError::CircuitOpen { .. }) | Ok(_) => false,
    }
}

/// Returns the shared client, or for a connector with extra root certificates its own client that
/// trusts them besides the built-in roots.
fn connector_http(shared: &reqwest::Client, ca_certificates: &[std::path::PathBuf]) -> Result<reqwest::Client, String> {
    if ca_certificates.is_empty() {
        return Ok(shared.clone());
    }
    let mut builder = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(30)).redirect(reqwest::redirect::Policy::none());
    for path in ca_certificates {
        let pem = std::fs::read(path).map_err(|error| format!("cannot read CA certificate file {}: {error}", path.display()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|error| format!("CA certificate file {} is not PEM: {error}", path.display()))?;
        if certificates.is_empty() {
            return Err(format!("CA certificate file {} contains no certificate: give a PEM file with BEGIN CERTIFICATE blocks", path.display()));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|error| format!("cannot build the HTTP client with the CA certificates: {error}"))
}

fn load_one(config: &Config, name: &str, connector_config: &ConnectorConfig, host: EngineHost) -> Result<ConnectorHandle, String> {
    let path = config.library_path(connector_config);
    let module = load_connector_module(&path).map_err(|error| error.to_string())?;
    let manifest = (module.manifest())();
    let entities: Vec<&str> = manifest.entities.iter().map(|entity| entity.as_str()).collect();
    if let Some(unknown) = connector_config.lookups.iter().find(|lookup| !entities.contains(&lookup.as_str())) {
        return Err(format!(
            "connectors.{name}.lookups names entity \"{unknown}\", which plugin {} does not accept: valid entities are {}",
            path.display(),
            entities.join(", ")
        ));
    }

    let settings = serde_json::to_string(&connector_config.settings).map_err(|error| format!("settings cannot be passed to the plugin: {error}"))?;
    let host = Host_TO::from_ptr(RArc::new(host), TD_Opaque);
    let connector = (module.create())(settings.as_str().into(), host)
        .into_result()
        .map_err(|error| format!("plugin {} rejected connectors.{name}: {}", path.display(), error.message))?;

    Ok(ConnectorHandle {
        name: name.to_string(),
        manifest,
        config: connector_config.clone(),
        connector: Arc::new(connector),
        permits: Arc::new(Semaphore::new(connector_config.concurrency)),
        breaker: Breaker::new(connector_config.circuit_breaker.clone()),
    })
}

impl ConnectorHandle {
    /// Reports whether the plugin implements an operation.
    pub fn supports(&self, capability: Capabilities) -> bool {
        self.manifest.capabilities.contains(capability)
    }

    /// Reports whether the plugin declares `entity`.
    pub fn accepts_entity(&self, entity: &str) -> bool {
        self.manifest.entities.iter().any(|declared| declared.as_str() == entity)
    }

    /// Reports whether a send of `entity` only reads from the external system, so a sync send
    /// calls the plugin before its message is stored.
    pub fn is_lookup(&self, entity: &str) -> bool {
        self.config.lookups.iter().any(|lookup| lookup == entity)
    }

    /// Entities the plugin declares, for error messages.
    pub fn entities(&self) -> Vec<String> {
        self.manifest.entities.iter().map(|entity| entity.to_string()).collect()
    }

    /// Sends a message through the plugin: as a future on this runtime when the plugin declares
    /// `send_async`, on a blocking thread otherwise.
    pub async fn send(&self, request: SendRequest) -> Result<Reply, CallError> {
        if self.supports(Capabilities::SEND_ASYNC) {
            let permit = self.breaker.try_acquire().map_err(|retry_after_ms| CallError::CircuitOpen { retry_after_ms })?;
            let result = self.call_async(request).await;
            self.breaker.record(permit, is_failure(&result));
            return result;
        }
        self.call(move |connector| connector.send(request).into_result()).await
    }

    /// Polls the plugin's `send_async` future under the concurrency limit and the deadline. A call
    /// past its deadline is dropped, which cancels its HTTP request, and frees its slot at once.
    async fn call_async(&self, request: SendRequest) -> Result<Reply, CallError> {
        let deadline_ms = self.config.deadline_ms;
        let call = async {
            let _permit = self.permits.acquire().await.expect("connector semaphore is never closed");
            // The SDK turns a panic into an error. A plugin without it passes the panic on, and
            // async-ffi raises it here, so it is caught like a panicking blocking call.
            CatchPanic(Box::pin(self.connector.send_async(request))).await
        };
        tokio::time::timeout(Duration::from_millis(deadline_ms), call).await.unwrap_or(Err(CallError::Deadline { deadline_ms }))
    }

    /// Asks the plugin for the state of a pending message.
    pub async fn refresh_status(&self, request: StatusRequest) -> Result<Reply, CallError> {
        self.call(move |connector| connector.refresh_status(request).into_result()).await
    }

    /// Reads the next batch of a feed through the plugin.
    pub async fn poll_feed(&self, request: PollRequest) -> Result<FeedBatch, CallError> {
        self.call(move |connector| connector.poll_feed(request).into_result()).await
    }

    /// Reads one directory page through the plugin.
    pub async fn fetch_directory(&self, request: DirectoryRequest) -> Result<DirectoryPage, CallError> {
        self.call(move |connector| connector.fetch_directory(request).into_result()).await
    }

    /// Runs one plugin call on a blocking thread under the concurrency limit and the deadline.
    ///
    /// The permit moves into the blocking task, so a call that overruns its deadline keeps its
    /// slot until it really returns: a hanging plugin can exhaust its own connector's limit but no
    /// other connector's.
    async fn call<T, F>(&self, operation: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: FnOnce(&ConnectorBox) -> Result<T, ConnectorError> + Send + 'static,
    {
        let permit = self.breaker.try_acquire().map_err(|retry_after_ms| CallError::CircuitOpen { retry_after_ms })?;
        let result = self.call_plugin(operation).await;
        self.breaker.record(permit, is_failure(&result));
        result
    }

    /// Runs the plugin call itself, without the breaker.
    async fn call_plugin<T, F>(&self, operation: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: FnOnce(&ConnectorBox) -> Result<T, ConnectorError> + Send + 'static,
    {
        let deadline_ms = self.config.deadline_ms;
        let deadline = Duration::from_millis(deadline_ms);
        let started = tokio::time::Instant::now();

        let permit = tokio::time::timeout(deadline, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| CallError::Deadline { deadline_ms })?
            .expect("connector semaphore is never closed");
        let remaining = deadline.saturating_sub(started.elapsed());

        let connector = self.connector.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            operation(&connector)
        });
        match tokio::time::timeout(remaining, task).await {
            Err(_) => Err(CallError::Deadline { deadline_ms }),
            Ok(Err(join_error)) => Err(CallError::Connector(ConnectorError::new(
                ErrorKind::PANICKED,
                format!("plugin call aborted: {join_error}"),
            ))),
            Ok(Ok(result)) => result.map_err(CallError::Connector),
        }
    }
}
