//! The engine's side of the `Host` trait: HTTP, cache, directory mapping and logging for plugins.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use tokio::runtime::Handle;
use uig_connector_api::reexports::async_ffi::{FfiFuture, FutureExt};
use uig_connector_api::reexports::{ROption, RResult, RStr, RString, RVec, Tuple2};
use uig_connector_api::{Host, HttpError, HttpErrorKind, HttpRequest, HttpResponse, LogLevel};

use crate::directory::DirectoryMap;

/// Cached value with its own time to live.
#[derive(Clone)]
pub struct CacheEntry {
    pub value: Arc<str>,
    pub ttl: Duration,
}

/// Expiry policy that gives each entry the TTL the plugin asked for.
pub struct PerEntryTtl;

impl moka::Expiry<String, CacheEntry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &CacheEntry, _created_at: std::time::Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Shared cache of external data; keys are namespaced by connector.
pub type ExternalCache = Cache<String, CacheEntry>;

/// Builds the external data cache bounded to `max_entries`.
pub fn build_cache(max_entries: u64) -> ExternalCache {
    Cache::builder().max_capacity(max_entries).expire_after(PerEntryTtl).build()
}

/// Host services bound to one connector instance.
#[derive(Clone)]
pub struct EngineHost {
    pub connector: Arc<str>,
    pub runtime: Handle,
    pub http: reqwest::Client,
    pub http_timeout: Duration,
    pub allowed_urls: Arc<[String]>,
    pub cache: ExternalCache,
    pub directories: DirectoryMap,
}

impl EngineHost {
    fn cache_key(&self, key: &str) -> String {
        format!("{}\u{1f}{}", self.connector, key)
    }

    fn is_allowed(&self, url: &str) -> bool {
        self.allowed_urls.iter().any(|prefix| url_has_prefix(url, prefix))
    }

    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let denied = |message: String| HttpError { kind: HttpErrorKind::DENIED, message: RString::from(message) };
        let url = request.url.as_str();
        if !self.is_allowed(url) {
            return Err(denied(format!(
                "request to {} refused: add its base URL to connectors.{}.allowed_urls",
                strip_query(url),
                self.connector
            )));
        }
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| denied(format!("invalid HTTP method \"{}\"", request.method)))?;

        let timeout = if request.timeout_ms == 0 { self.http_timeout } else { Duration::from_millis(request.timeout_ms) };
        let mut builder = self.http.request(method, url).timeout(timeout).body(request.body.to_vec());
        for Tuple2(name, value) in request.headers.iter() {
            builder = builder.header(name.as_str(), value.as_str());
        }

        let started = std::time::Instant::now();
        let idempotent = request.idempotent;
        let response = builder.send().await.map_err(|error| classify(&error, url, idempotent))?;
        let status = response.status().as_u16();
        let headers: RVec<Tuple2<RString, RString>> = response
            .headers()
            .iter()
            .filter_map(|(name, value)| value.to_str().ok().map(|value| Tuple2(RString::from(name.as_str()), RString::from(value))))
            .collect();
        let body = response.bytes().await.map_err(|error| classify(&error, url, idempotent))?;
        tracing::debug!(connector = %self.connector, url = %strip_query(url), status, elapsed_ms = started.elapsed().as_millis() as u64, "plugin http request");

        Ok(HttpResponse { status, headers, body: RVec::from(body.to_vec()) })
    }
}

/// Polls a future inside the engine's runtime context, so that the HTTP client finds its reactor
/// and timers even when a plugin polls the future from a thread of its own.
struct InRuntime<F> {
    runtime: Handle,
    future: std::pin::Pin<Box<F>>,
}

impl<F: std::future::Future> std::future::Future for InRuntime<F> {
    type Output = F::Output;

    fn poll(mut self: std::pin::Pin<&mut Self>, context: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        let _entered = self.runtime.enter();
        self.future.as_mut().poll(context)
    }
}

/// Reports whether `url` lies under `prefix` (same scheme and authority, path below the prefix's).
fn url_has_prefix(url: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    match url.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'),
        None => false,
    }
}

/// Drops the query string, which may carry API keys, before a URL reaches a log or message.
pub fn strip_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// Joins the causes below a reqwest error ("client error (Connect): invalid peer certificate:
/// UnknownIssuer"), so the message names the real reason.
fn error_chain(error: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        // Each level often repeats the one below it in parentheses; keep only new text.
        if !causes.iter().any(|known: &String| known.contains(&text)) {
            causes.push(text);
        }
        source = cause.source();
    }
    if causes.is_empty() {
        return "request failed".to_string();
    }
    causes.join(": ")
}

/// Sorts a failed exchange. A connect failure (its timeout included) sent nothing, so it stays safe
/// to repeat. A later timeout or break of a request not marked idempotent is uncertain.
fn classify(error: &reqwest::Error, url: &str, idempotent: bool) -> HttpError {
    let mut kind = if error.is_connect() {
        HttpErrorKind::CONNECT
    } else if error.is_timeout() {
        HttpErrorKind::TIMEOUT
    } else if error.is_request() || error.is_body() || error.is_decode() {
        HttpErrorKind::INTERRUPTED
    } else {
        HttpErrorKind::OTHER
    };
    if !idempotent && (kind == HttpErrorKind::TIMEOUT || kind == HttpErrorKind::INTERRUPTED) {
        kind = HttpErrorKind::UNCERTAIN;
    }
    // reqwest's Display includes the full URL, query and all: rebuild the text without it.
    let cause = error_chain(error);
    let failure = match kind {
        HttpErrorKind::TIMEOUT => "timed out",
        HttpErrorKind::CONNECT => "connection failed",
        HttpErrorKind::INTERRUPTED => "interrupted after sending",
        HttpErrorKind::UNCERTAIN if error.is_timeout() => "timed out after sending",
        _ => "failed",
    };
    HttpError { kind, message: RString::from(format!("request to {} {failure}: {}", strip_query(url), cause.replace(url, strip_query(url)))) }
}

impl Host for EngineHost {
    fn http(&self, request: HttpRequest) -> RResult<HttpResponse, HttpError> {
        // Blocking calls run on blocking threads, where waiting on the runtime is allowed. On a
        // runtime thread (a plugin calling `http` inside `send_async`) tokio panics instead, and a
        // panic must not cross the plugin boundary, so it becomes an error.
        let url = strip_query(request.url.as_str()).to_string();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.runtime.block_on(self.execute(request)))) {
            Ok(result) => result.into(),
            Err(_) => {
                tracing::error!(connector = %self.connector, %url, "plugin called the blocking host.http on a runtime thread; it must use http_async in send_async");
                RResult::RErr(HttpError {
                    kind: HttpErrorKind::OTHER,
                    message: RString::from(format!("request to {url} not sent: the blocking host.http cannot run inside send_async; use http_async")),
                })
            }
        }
    }

    fn cache_get(&self, key: RStr<'_>) -> ROption<RString> {
        self.cache.get(&self.cache_key(key.as_str())).map(|entry| RString::from(&*entry.value)).into()
    }

    fn cache_put(&self, key: RStr<'_>, value: RString, ttl_seconds: u64) {
        if ttl_seconds == 0 {
            return;
        }
        let entry = CacheEntry { value: Arc::from(value.as_str()), ttl: Duration::from_secs(ttl_seconds) };
        self.cache.insert(self.cache_key(key.as_str()), entry);
    }

    fn map_to_internal(&self, directory: RStr<'_>, external_code: RStr<'_>) -> ROption<RString> {
        self.directories.to_internal(&self.connector, directory.as_str(), external_code.as_str()).map(RString::from).into()
    }

    fn map_to_external(&self, directory: RStr<'_>, internal_code: RStr<'_>) -> ROption<RString> {
        self.directories.to_external(&self.connector, directory.as_str(), internal_code.as_str()).map(RString::from).into()
    }

    fn http_async(&self, request: HttpRequest) -> FfiFuture<RResult<HttpResponse, HttpError>> {
        let host = self.clone();
        let runtime = self.runtime.clone();
        InRuntime { runtime, future: Box::pin(async move { host.execute(request).await.into() }) }.into_ffi()
    }

    fn log(&self, level: LogLevel, message: RStr<'_>) {
        let connector = &*self.connector;
        let message = message.as_str();
        match level {
            LogLevel::ERROR => tracing::error!(connector, "{message}"),
            LogLevel::WARN => tracing::warn!(connector, "{message}"),
            LogLevel::INFO => tracing::info!(connector, "{message}"),
            _ => tracing::debug!(connector, "{message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_match_respects_path_boundaries() {
        assert!(url_has_prefix("http://127.0.0.1:9090/api/v1/vehicle?key=x", "http://127.0.0.1:9090"));
        assert!(url_has_prefix("http://127.0.0.1:9090/api", "http://127.0.0.1:9090/api/"));
        assert!(!url_has_prefix("http://127.0.0.1:90901/api", "http://127.0.0.1:9090"));
        assert!(!url_has_prefix("http://127.0.0.1:9090.evil.test/api", "http://127.0.0.1:9090"));
        assert!(!url_has_prefix("http://127.0.0.1:9090/apix", "http://127.0.0.1:9090/api"));
    }

    #[test]
    fn query_is_stripped_from_logged_urls() {
        assert_eq!(strip_query("http://h/api?key=secret"), "http://h/api");
    }
}
