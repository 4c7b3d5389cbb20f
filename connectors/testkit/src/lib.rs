//! Test connector plugin: echoes, fails, panics, sleeps and reports pending work on request.
//!
//! The engine's integration tests load it through the real loader to exercise paths that a real
//! recipient cannot trigger on demand. Entities:
//! - `echo`: returns `{"echo": <payload>}`.
//! - `fail`: payload `{"kind": "transient"|"permanent"|"auth", "times": N}` fails the first N attempts
//!   (every attempt when `times` is missing), then returns `{"attempt": N}`.
//! - `panic`: panics inside the plugin.
//! - `sleep`: payload `{"ms": N}` blocks for N milliseconds, then returns `{"slept_ms": N}`.
//! - `pending`: returns a pending reply with external id `ext-{message_id}`. A status refresh then
//!   returns done with `{"refreshed": "ext-..."}`.
//! - `fetch`: payload `{"url": "..."}` performs a GET through the host and returns
//!   `{"status": N, "body": "..."}`.
//! - `post`: payload `{"url": "...", "idempotent": bool}` performs a POST through the host, marked
//!   idempotent or not, and returns `{"status": N}`.
//! - `garbage`: returns a reply whose data is not JSON, as a broken plugin might.
//! - `lookup`: for a connector whose config lists it in `lookups`, so that a sync send calls it
//!   before the message is stored. Payload
//!   `{"value": ..., "sleep_ms": N, "fail": "transient"|"permanent"}`, where all members are
//!   optional: it blocks for N milliseconds, fails when asked, and otherwise returns
//!   `{"looked_up": <value>, "message_id": <the id it was given>}`.
//! - `fetch_blocking`: like `fetch`. Under `async-send` it calls the blocking host HTTP inside the
//!   future, the mistake the engine must turn into an error instead of a crash.
//!
//! Built with the `async-send` feature, the plugin declares `SEND_ASYNC`, so the engine polls
//! [`PluginConnector::send_async`] instead of calling `send` on a blocking thread. The entities stay
//! the same: `sleep` then waits on a timer thread without blocking the engine's thread, `panic`
//! panics inside the future, and `fetch` and `post` use the host's asynchronous HTTP.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use serde::Deserialize;
use uig_connector_api::sdk::{HostContext, PluginConnector, PluginInfo};
use uig_connector_api::{Capabilities, ConnectorError, ErrorKind, HttpRequest, Reply, SendRequest, StatusRequest};

/// Settings of the test connector.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Text added to every echo reply as `label`. Default none.
    #[serde(default)]
    pub label: Option<String>,
}

/// The test connector.
pub struct Testkit {
    settings: Settings,
    host: HostContext,
}

#[derive(Deserialize)]
struct FailPayload {
    kind: String,
    times: Option<u32>,
}

#[derive(Deserialize)]
struct SleepPayload {
    ms: u64,
}

#[derive(Deserialize)]
struct LookupPayload {
    #[serde(default)]
    value: serde_json::Value,
    #[serde(default)]
    sleep_ms: u64,
    fail: Option<String>,
}

#[derive(Deserialize)]
struct FetchPayload {
    url: String,
}

#[derive(Deserialize)]
struct PostPayload {
    url: String,
    idempotent: bool,
}

fn parse<T: for<'de> Deserialize<'de>>(payload: &str) -> Result<T, ConnectorError> {
    serde_json::from_str(payload)
        .map_err(|error| ConnectorError::permanent(format!("invalid payload: {error}")).with_code("invalid_payload"))
}

#[cfg(not(feature = "async-send"))]
const CAPABILITIES: Capabilities = Capabilities(Capabilities::SEND.0 | Capabilities::REFRESH_STATUS.0);

#[cfg(feature = "async-send")]
const CAPABILITIES: Capabilities = Capabilities(Capabilities::SEND.0 | Capabilities::SEND_ASYNC.0 | Capabilities::REFRESH_STATUS.0);

impl PluginConnector for Testkit {
    type Settings = Settings;

    const INFO: PluginInfo = PluginInfo {
        name: "testkit",
        version: env!("CARGO_PKG_VERSION"),
        description: "test connector that echoes, fails, panics, sleeps and reports pending work",
        capabilities: CAPABILITIES,
        entities: &["echo", "fail", "panic", "sleep", "pending", "fetch", "fetch_blocking", "post", "garbage", "lookup"],
        config_schema: r#"{"type":"object","properties":{"label":{"type":"string"}},"additionalProperties":false}"#,
    };

    fn create(settings: Settings, host: HostContext) -> Result<Self, ConnectorError> {
        host.info("testkit connector created");
        Ok(Testkit { settings, host })
    }

    fn send(&self, request: &SendRequest) -> Result<Reply, ConnectorError> {
        match request.entity.as_str() {
            "echo" => {
                let payload: serde_json::Value = parse(&request.payload)?;
                let answer = serde_json::json!({"echo": payload, "label": self.settings.label});
                Ok(Reply::done(answer.to_string()))
            }
            "fail" => {
                let payload: FailPayload = parse(&request.payload)?;
                let failing = payload.times.is_none_or(|times| request.attempt <= times);
                if !failing {
                    return Ok(Reply::done(serde_json::json!({"attempt": request.attempt}).to_string()));
                }
                let kind = match payload.kind.as_str() {
                    "transient" => ErrorKind::TRANSIENT,
                    "auth" => ErrorKind::AUTH,
                    _ => ErrorKind::PERMANENT,
                };
                Err(ConnectorError::new(kind, format!("failing attempt {} as asked", request.attempt)).with_code("test_failure"))
            }
            "panic" => panic!("testkit was asked to panic for message {}", request.message_id),
            "sleep" => {
                let payload: SleepPayload = parse(&request.payload)?;
                std::thread::sleep(Duration::from_millis(payload.ms));
                Ok(Reply::done(serde_json::json!({"slept_ms": payload.ms}).to_string()))
            }
            "pending" => Ok(Reply::pending(format!("ext-{}", request.message_id), "null")),
            "fetch" | "fetch_blocking" => {
                let payload: FetchPayload = parse(&request.payload)?;
                let response = self.host.http(HttpRequest::get(payload.url)).map_err(|error| error.into_connector_error())?;
                let body = String::from_utf8_lossy(&response.body).to_string();
                Ok(Reply::done(serde_json::json!({"status": response.status, "body": body}).to_string()))
            }
            "post" => {
                let payload: PostPayload = parse(&request.payload)?;
                let mut post = HttpRequest::post(payload.url, format!("message {}", request.message_id).into_bytes());
                post.idempotent = payload.idempotent;
                let response = self.host.http(post).map_err(|error| error.into_connector_error())?;
                Ok(Reply::done(serde_json::json!({"status": response.status}).to_string()))
            }
            "garbage" => Ok(Reply::done("{\"unterminated\": ")),
            "lookup" => {
                let payload: LookupPayload = parse(&request.payload)?;
                std::thread::sleep(Duration::from_millis(payload.sleep_ms));
                match payload.fail.as_deref() {
                    Some("transient") => Err(ConnectorError::new(ErrorKind::TRANSIENT, "lookup failed as requested").with_code("test_failure")),
                    Some(_) => Err(ConnectorError::permanent("lookup failed as requested").with_code("test_failure")),
                    None => Ok(Reply::done(serde_json::json!({"looked_up": payload.value, "message_id": request.message_id}).to_string())),
                }
            }
            other => Err(ConnectorError::permanent(format!("unknown entity \"{other}\"")).with_code("unknown_entity")),
        }
    }

    fn send_async(self: Arc<Self>, request: SendRequest) -> impl Future<Output = Result<Reply, ConnectorError>> + Send + 'static {
        async move {
            match request.entity.as_str() {
                "panic" => {
                    Timer::after(Duration::from_millis(1)).await;
                    panic!("testkit was asked to panic inside the future of message {}", request.message_id)
                }
                "sleep" => {
                    let payload: SleepPayload = parse(&request.payload)?;
                    Timer::after(Duration::from_millis(payload.ms)).await;
                    Ok(Reply::done(serde_json::json!({"slept_ms": payload.ms, "async": true}).to_string()))
                }
                "fetch" => {
                    let payload: FetchPayload = parse(&request.payload)?;
                    let response = self.host.http_async(HttpRequest::get(payload.url)).await.map_err(|error| error.into_connector_error())?;
                    let body = String::from_utf8_lossy(&response.body).to_string();
                    Ok(Reply::done(serde_json::json!({"status": response.status, "body": body, "async": true}).to_string()))
                }
                "post" => {
                    let payload: PostPayload = parse(&request.payload)?;
                    let mut post = HttpRequest::post(payload.url, format!("message {}", request.message_id).into_bytes());
                    post.idempotent = payload.idempotent;
                    let response = self.host.http_async(post).await.map_err(|error| error.into_connector_error())?;
                    Ok(Reply::done(serde_json::json!({"status": response.status}).to_string()))
                }
                // The other entities return at once, so the blocking code serves them.
                _ => self.send(&request),
            }
        }
    }

    fn refresh_status(&self, request: &StatusRequest) -> Result<Reply, ConnectorError> {
        let Some(external_id) = request.external_id.as_ref().into_option() else {
            return Err(ConnectorError::permanent("no external id to refresh"));
        };
        Ok(Reply::done(serde_json::json!({"refreshed": external_id.as_str()}).to_string()))
    }
}

/// A future that completes after a delay. A thread of its own sleeps for the delay, so polling
/// does not block, and the plugin needs no async runtime.
struct Timer {
    state: Arc<Mutex<(bool, Option<Waker>)>>,
}

impl Timer {
    fn after(delay: Duration) -> Timer {
        let state = Arc::new(Mutex::new((false, None::<Waker>)));
        let shared = state.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let mut state = shared.lock().unwrap();
            state.0 = true;
            if let Some(waker) = state.1.take() {
                waker.wake();
            }
        });
        Timer { state }
    }
}

impl Future for Timer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        let mut state = self.state.lock().unwrap();
        if state.0 {
            return Poll::Ready(());
        }
        state.1 = Some(context.waker().clone());
        Poll::Pending
    }
}

uig_connector_api::export_connector!(Testkit);
