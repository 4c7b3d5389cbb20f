//! Services the engine offers to plugins: HTTP, cache, directory mapping and logging.

use abi_stable::sabi_trait;
use abi_stable::std_types::{RArc, ROption, RResult, RStr, RString};
use async_ffi::{FfiFuture, FutureExt};

use crate::types::{HttpError, HttpRequest, HttpResponse, LogLevel};

/// Host services of the engine, one handle per connector instance.
///
/// The engine owns all I/O: plugins link no async runtime and make no network calls of their own.
/// Every method but [`http_async`](Host::http_async) blocks the calling thread until the engine
/// finishes.
#[sabi_trait]
pub trait Host: Send + Sync + Clone {
    /// Executes an HTTP request with the engine's client (pool, timeouts, TLS, tracing). URLs outside
    /// the connector's configured base URLs are refused with [`crate::HttpErrorKind::DENIED`].
    fn http(&self, request: HttpRequest) -> RResult<HttpResponse, HttpError>;

    /// Returns the cached value under `key` in this connector's namespace, unless missing or expired.
    fn cache_get(&self, key: RStr<'_>) -> ROption<RString>;

    /// Stores `value` under `key` in this connector's namespace for `ttl_seconds` seconds.
    fn cache_put(&self, key: RStr<'_>, value: RString, ttl_seconds: u64);

    /// Maps an external code of `directory` to the internal code, if a mapping exists.
    fn map_to_internal(&self, directory: RStr<'_>, external_code: RStr<'_>) -> ROption<RString>;

    /// Maps an internal code of `directory` to this connector's external code, if a mapping exists.
    fn map_to_external(&self, directory: RStr<'_>, internal_code: RStr<'_>) -> ROption<RString>;

    /// Writes a line into the engine's log, tagged with the connector's name.
    #[sabi(last_prefix_field)]
    fn log(&self, level: LogLevel, message: RStr<'_>);

    /// Executes an HTTP request like [`http`](Host::http), as a future that completes when the
    /// response is read. It does not block the polling thread; [`crate::Connector::send_async`]
    /// uses it.
    ///
    /// An engine older than this method runs the blocking [`http`](Host::http) at once instead.
    fn http_async(&self, request: HttpRequest) -> FfiFuture<RResult<HttpResponse, HttpError>> {
        let response = self.http(request);
        async move { response }.into_ffi()
    }
}

/// Shared, type-erased host handle as it crosses the plugin boundary.
pub type HostBox = Host_TO<'static, RArc<()>>;
