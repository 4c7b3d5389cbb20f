//! The connector SDK: write a plain Rust type, export it with [`export_connector!`](crate::export_connector).
//!
//! The macro generates the root module. The SDK around it catches panics (a panicking call fails
//! with [`ErrorKind::PANICKED`] and the engine keeps running), parses the connector's `settings`
//! into the author's type with field-path errors, and forwards log lines into the engine's tracing.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec};
use async_ffi::{FfiFuture, FutureExt};
use serde::de::DeserializeOwned;

use crate::connector::{Connector, ConnectorBox, Connector_TO};
use crate::host::HostBox;
use crate::types::{
    Capabilities, ConnectorError, DirectoryPage, DirectoryRequest, ErrorKind, FeedBatch,
    HttpError, HttpRequest, HttpResponse, LogLevel, Manifest, PollRequest, Reply, SendRequest,
    StatusRequest,
};

/// Static description of a plugin, turned into a [`Manifest`] by the macro.
pub struct PluginInfo {
    /// Plugin name, lowercase.
    pub name: &'static str,
    /// Plugin version, usually `env!("CARGO_PKG_VERSION")`.
    pub version: &'static str,
    /// One line saying which system the plugin reaches.
    pub description: &'static str,
    /// Operations implemented.
    pub capabilities: Capabilities,
    /// Entities accepted by `send`.
    pub entities: &'static [&'static str],
    /// JSON Schema of the `settings` table, as JSON text.
    pub config_schema: &'static str,
}

impl PluginInfo {
    /// Builds the FFI-safe manifest.
    pub fn to_manifest(&self) -> Manifest {
        Manifest {
            name: self.name.into(),
            version: self.version.into(),
            description: self.description.into(),
            capabilities: self.capabilities,
            entities: self.entities.iter().map(|entity| RString::from(*entity)).collect(),
            config_schema: self.config_schema.into(),
        }
    }
}

/// A connector written in plain Rust; [`export_connector!`](crate::export_connector) makes it a plugin.
pub trait PluginConnector: Send + Sync + Sized + 'static {
    /// The connector's `settings`, deserialized from the config file; use `#[serde(deny_unknown_fields)]`.
    type Settings: DeserializeOwned;

    /// Describes the plugin.
    const INFO: PluginInfo;

    /// Creates an instance; called once per configured connector at engine start.
    fn create(settings: Self::Settings, host: HostContext) -> Result<Self, ConnectorError>;

    /// Delivers an outbound message.
    fn send(&self, request: &SendRequest) -> Result<Reply, ConnectorError>;

    /// Delivers an outbound message without holding a thread while HTTP requests run: the engine
    /// polls the future on its runtime. Declare [`Capabilities::SEND_ASYNC`] in
    /// [`PluginInfo::capabilities`] to have the engine call it instead of [`send`](Self::send).
    ///
    /// The future runs on the engine's runtime threads, so it must not block: HTTP goes through
    /// [`HostContext::http_async`], and CPU work stays short (parsing a reply is fine). The cache,
    /// directory and log calls of [`HostContext`] return at once and may be used. The engine drops
    /// the future when the connector's deadline passes, which cancels the request in flight.
    fn send_async(self: Arc<Self>, request: SendRequest) -> impl Future<Output = Result<Reply, ConnectorError>> + Send + 'static {
        let _ = request;
        async { Err(ConnectorError::unsupported("send_async")) }
    }

    /// Asks the recipient for the state of a pending message.
    fn refresh_status(&self, request: &StatusRequest) -> Result<Reply, ConnectorError> {
        let _ = request;
        Err(ConnectorError::unsupported("refresh_status"))
    }

    /// Reads the next batch of a feed.
    fn poll_feed(&self, request: &PollRequest) -> Result<FeedBatch, ConnectorError> {
        let _ = request;
        Err(ConnectorError::unsupported("poll_feed"))
    }

    /// Reads one page of a directory.
    fn fetch_directory(&self, request: &DirectoryRequest) -> Result<DirectoryPage, ConnectorError> {
        let _ = request;
        Err(ConnectorError::unsupported("fetch_directory"))
    }
}

/// The plugin's handle on the engine's host services, with plain Rust signatures.
#[derive(Clone)]
pub struct HostContext {
    host: HostBox,
}

impl HostContext {
    /// Wraps the FFI handle.
    pub fn new(host: HostBox) -> Self {
        HostContext { host }
    }

    /// Executes an HTTP request through the engine, blocking the calling thread.
    pub fn http(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.host.http(request).into_result()
    }

    /// Executes an HTTP request through the engine without blocking, for
    /// [`PluginConnector::send_async`].
    pub fn http_async(&self, request: HttpRequest) -> impl Future<Output = Result<HttpResponse, HttpError>> + Send + 'static {
        let response = self.host.http_async(request);
        async move { response.await.into_result() }
    }

    /// Returns a cached value.
    pub fn cache_get(&self, key: &str) -> Option<String> {
        self.host.cache_get(key.into()).into_option().map(String::from)
    }

    /// Stores a value for `ttl_seconds` seconds.
    pub fn cache_put(&self, key: &str, value: String, ttl_seconds: u64) {
        self.host.cache_put(key.into(), value.into(), ttl_seconds)
    }

    /// Maps an external code to the internal one.
    pub fn map_to_internal(&self, directory: &str, external_code: &str) -> Option<String> {
        self.host.map_to_internal(directory.into(), external_code.into()).into_option().map(String::from)
    }

    /// Maps an internal code to this connector's external one.
    pub fn map_to_external(&self, directory: &str, internal_code: &str) -> Option<String> {
        self.host.map_to_external(directory.into(), internal_code.into()).into_option().map(String::from)
    }

    /// Logs at debug level.
    pub fn debug(&self, message: &str) {
        self.host.log(LogLevel::DEBUG, message.into())
    }

    /// Logs at info level.
    pub fn info(&self, message: &str) {
        self.host.log(LogLevel::INFO, message.into())
    }

    /// Logs at warn level.
    pub fn warn(&self, message: &str) {
        self.host.log(LogLevel::WARN, message.into())
    }

    /// Logs at error level.
    pub fn error(&self, message: &str) {
        self.host.log(LogLevel::ERROR, message.into())
    }
}

/// Parses `settings` JSON text into `T`, naming the failing field path (`settings.api_key: ...`).
pub fn parse_settings<T: DeserializeOwned>(settings: &str) -> Result<T, ConnectorError> {
    let deserializer = &mut serde_json::Deserializer::from_str(settings);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." { "settings".to_string() } else { format!("settings.{path}") };
        ConnectorError::config(format!("{field}: {}", error.inner()))
    })
}

/// Runs `call`, turning a panic into an [`ErrorKind::PANICKED`] error with the panic message.
pub fn guard<T>(operation: &str, call: impl FnOnce() -> Result<T, ConnectorError>) -> RResult<T, ConnectorError> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(result) => result.into(),
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-text panic payload".to_string());
            RResult::RErr(ConnectorError::new(ErrorKind::PANICKED, format!("plugin panicked in {operation}: {detail}")))
        }
    }
}

/// Polls a future, turning a panic into an [`ErrorKind::PANICKED`] error, like [`guard`]. It also
/// drops the future under `catch_unwind`, because the engine drops it at the deadline and a panic
/// must not cross the plugin boundary.
struct Guard<F> {
    operation: &'static str,
    future: Option<Pin<Box<F>>>,
}

impl<T, F: Future<Output = Result<T, ConnectorError>>> Future for Guard<F> {
    type Output = RResult<T, ConnectorError>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let operation = self.operation;
        let Some(future) = self.future.as_mut() else {
            return Poll::Ready(RResult::RErr(ConnectorError::new(ErrorKind::PANICKED, format!("{operation} polled after it panicked"))));
        };
        match guard(operation, || Ok(future.as_mut().poll(context))) {
            RResult::ROk(Poll::Pending) => Poll::Pending,
            RResult::ROk(Poll::Ready(result)) => Poll::Ready(result.into()),
            RResult::RErr(panicked) => {
                // Dropped here, under the guard, rather than later by the engine.
                let future = self.future.take();
                let _ = catch_unwind(AssertUnwindSafe(move || drop(future)));
                Poll::Ready(RResult::RErr(panicked))
            }
        }
    }
}

impl<F> Drop for Guard<F> {
    fn drop(&mut self) {
        let future = self.future.take();
        // A panic in the plugin's destructor is dropped with its payload; the call is over anyway.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(future)));
    }
}

/// Adapter from [`PluginConnector`] to the FFI [`Connector`] trait, with panic catching.
struct Guarded<C>(Arc<C>);

impl<C: PluginConnector> Connector for Guarded<C> {
    fn send(&self, request: SendRequest) -> RResult<Reply, ConnectorError> {
        guard("send", || self.0.send(&request))
    }

    fn send_async(&self, request: SendRequest) -> FfiFuture<RResult<Reply, ConnectorError>> {
        let connector = self.0.clone();
        match guard("send_async", move || Ok(connector.send_async(request))) {
            RResult::ROk(future) => Guard { operation: "send_async", future: Some(Box::pin(future)) }.into_ffi(),
            RResult::RErr(panicked) => async move { RResult::RErr(panicked) }.into_ffi(),
        }
    }

    fn refresh_status(&self, request: StatusRequest) -> RResult<Reply, ConnectorError> {
        guard("refresh_status", || self.0.refresh_status(&request))
    }

    fn poll_feed(&self, request: PollRequest) -> RResult<FeedBatch, ConnectorError> {
        guard("poll_feed", || self.0.poll_feed(&request))
    }

    fn fetch_directory(&self, request: DirectoryRequest) -> RResult<DirectoryPage, ConnectorError> {
        guard("fetch_directory", || self.0.fetch_directory(&request))
    }
}

/// Body of the generated `create` function: parses settings and builds the guarded connector.
pub fn create_connector<C: PluginConnector>(settings: RStr<'_>, host: HostBox) -> RResult<ConnectorBox, ConnectorError> {
    guard("create", || {
        let settings = parse_settings::<C::Settings>(settings.as_str())?;
        let connector = C::create(settings, HostContext::new(host))?;
        Ok(Connector_TO::from_value(Guarded(Arc::new(connector)), TD_Opaque))
    })
}

/// Body of the generated `manifest` function.
pub fn manifest_of<C: PluginConnector>() -> Manifest {
    C::INFO.to_manifest()
}

/// Helpers for building FFI values in connector code.
pub fn some_string(value: impl Into<String>) -> ROption<RString> {
    ROption::RSome(RString::from(value.into()))
}

/// Collects strings into an FFI vector.
pub fn string_vec<I: IntoIterator<Item = String>>(values: I) -> RVec<RString> {
    values.into_iter().map(RString::from).collect()
}

/// Exports a [`PluginConnector`] type as this library's connector plugin.
///
/// ```ignore
/// uig_connector_api::export_connector!(MyConnector);
/// ```
///
/// It expands to what abi_stable's `#[export_root_module]` generates, spelled with `$crate` paths so
/// that plugin crates need no direct abi_stable dependency. A test pins the symbol name to abi_stable's.
#[macro_export]
macro_rules! export_connector {
    ($connector:ty) => {
        /// Builds this plugin's root module; abi_stable calls it once, when the engine loads the file.
        pub fn uig_connector_root_module() -> $crate::ConnectorModuleRef {
            use $crate::reexports::abi_stable::prefix_type::PrefixTypeTrait;

            extern "C" fn manifest() -> $crate::Manifest {
                $crate::sdk::manifest_of::<$connector>()
            }

            extern "C" fn create(
                settings: $crate::reexports::RStr<'_>,
                host: $crate::HostBox,
            ) -> $crate::reexports::RResult<$crate::ConnectorBox, $crate::ConnectorError> {
                $crate::sdk::create_connector::<$connector>(settings, host)
            }

            $crate::ConnectorModule { manifest, create }.leak_into_prefix()
        }

        #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
        pub static UIG_CONNECTOR_LIB_HEADER: $crate::reexports::abi_stable::library::LibHeader = {
            extern "C" fn erased_root_module() -> $crate::reexports::abi_stable::library::RootModuleResult {
                $crate::reexports::abi_stable::library::__call_root_module_loader(uig_connector_root_module)
            }

            unsafe {
                $crate::reexports::abi_stable::library::LibHeader::from_constructor::<$crate::ConnectorModuleRef>(
                    erased_root_module,
                    $crate::reexports::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}
