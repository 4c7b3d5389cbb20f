//! FFI-safe values exchanged between the engine and connector plugins.

use std::fmt;

use abi_stable::std_types::{ROption, RString, RVec, Tuple2};
use abi_stable::StableAbi;

/// Kind of a connector failure, which decides whether the engine retries.
///
/// An open newtype rather than an enum: a plugin built against a newer interface may return a kind
/// this engine does not know, and the engine treats an unknown kind as [`ErrorKind::PERMANENT`].
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash)]
pub struct ErrorKind(pub u32);

impl ErrorKind {
    /// The recipient may succeed later (timeout, outage, 5xx): the engine retries with backoff.
    pub const TRANSIENT: ErrorKind = ErrorKind(1);
    /// The recipient rejected the message for good (invalid data, business error): no retry.
    pub const PERMANENT: ErrorKind = ErrorKind(2);
    /// The connector is configured wrongly; an operator must fix the config.
    pub const CONFIG: ErrorKind = ErrorKind(3);
    /// The recipient rejected the connector's credentials.
    pub const AUTH: ErrorKind = ErrorKind(4);
    /// The plugin panicked during the call; the SDK catches the panic and reports this kind.
    pub const PANICKED: ErrorKind = ErrorKind(5);
    /// The connector does not implement the requested operation.
    pub const UNSUPPORTED: ErrorKind = ErrorKind(6);

    /// Returns the stable lowercase name of the kind, or `unknown` for a value this build lacks.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::TRANSIENT => "transient",
            ErrorKind::PERMANENT => "permanent",
            ErrorKind::CONFIG => "config",
            ErrorKind::AUTH => "auth",
            ErrorKind::PANICKED => "panicked",
            ErrorKind::UNSUPPORTED => "unsupported",
            _ => "unknown",
        }
    }

    /// Reports whether the engine should try the same call again later.
    pub fn is_retryable(self) -> bool {
        self == ErrorKind::TRANSIENT
    }
}

impl fmt::Debug for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Failure of a connector call.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ConnectorError {
    /// Whether and how the engine may retry.
    pub kind: ErrorKind,
    /// The recipient's own error code, if it gave one (`invalid_vin`, `BadEventsCount`), else empty.
    pub code: RString,
    /// Human-readable cause, English, without secrets.
    pub message: RString,
    /// Earliest time to retry, in milliseconds from now, when the recipient sent one (`Retry-After`).
    pub retry_after_ms: ROption<u64>,
}

impl ConnectorError {
    /// Creates an error of `kind` with a message and no recipient code.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ConnectorError {
            kind,
            code: RString::new(),
            message: RString::from(message.into()),
            retry_after_ms: ROption::RNone,
        }
    }

    /// Creates a [`ErrorKind::TRANSIENT`] error.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::TRANSIENT, message)
    }

    /// Creates a [`ErrorKind::PERMANENT`] error.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PERMANENT, message)
    }

    /// Creates a [`ErrorKind::CONFIG`] error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::CONFIG, message)
    }

    /// Creates an [`ErrorKind::AUTH`] error.
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AUTH, message)
    }

    /// Creates an [`ErrorKind::UNSUPPORTED`] error naming the operation.
    pub fn unsupported(operation: &str) -> Self {
        Self::new(ErrorKind::UNSUPPORTED, format!("this connector does not support {operation}"))
    }

    /// Sets the recipient's own error code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = RString::from(code.into());
        self
    }

    /// Sets the earliest retry time in milliseconds from now.
    pub fn with_retry_after_ms(mut self, milliseconds: u64) -> Self {
        self.retry_after_ms = ROption::RSome(milliseconds);
        self
    }
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.code.is_empty() {
            write!(f, "{} error: {}", self.kind, self.message)
        } else {
            write!(f, "{} error {}: {}", self.kind, self.code, self.message)
        }
    }
}

impl std::error::Error for ConnectorError {}

/// Operations a connector implements, as bit flags.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct Capabilities(pub u64);

impl Capabilities {
    /// Delivers outbound messages ([`crate::Connector::send`]).
    pub const SEND: Capabilities = Capabilities(1);
    /// Asks the recipient for the state of a message it is still processing.
    pub const REFRESH_STATUS: Capabilities = Capabilities(1 << 1);
    /// Reads an external feed of inbound events from a cursor.
    pub const POLL_FEED: Capabilities = Capabilities(1 << 2);
    /// Reads pages of the recipient's reference directories.
    pub const FETCH_DIRECTORY: Capabilities = Capabilities(1 << 3);
    /// Delivers outbound messages as futures on the engine's runtime
    /// ([`crate::Connector::send_async`]) instead of on a blocking thread. Set with [`SEND`](Self::SEND).
    pub const SEND_ASYNC: Capabilities = Capabilities(1 << 4);

    /// Reports whether every flag of `other` is set.
    pub fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// Returns the names of the set flags, for logs and the manifest listing.
    pub fn names(self) -> Vec<&'static str> {
        let all = [
            (Capabilities::SEND, "send"),
            (Capabilities::REFRESH_STATUS, "refresh_status"),
            (Capabilities::POLL_FEED, "poll_feed"),
            (Capabilities::FETCH_DIRECTORY, "fetch_directory"),
            (Capabilities::SEND_ASYNC, "send_async"),
        ];
        all.iter().filter(|(flag, _)| self.contains(*flag)).map(|(_, name)| *name).collect()
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Capabilities;

    fn bitor(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }
}

/// Description of a plugin, read by the engine before it creates the connector.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct Manifest {
    /// Plugin name, lowercase (`avinfo`).
    pub name: RString,
    /// Plugin version (the plugin crate's semver).
    pub version: RString,
    /// One line saying which system the plugin reaches.
    pub description: RString,
    /// Operations the plugin implements.
    pub capabilities: Capabilities,
    /// Entities the plugin accepts in `send` (`vehicle`).
    pub entities: RVec<RString>,
    /// JSON Schema of the plugin's `settings` table, as JSON text.
    pub config_schema: RString,
}

/// Outbound message handed to [`crate::Connector::send`].
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct SendRequest {
    /// The ledger's message id, stable across retries: use it as an idempotency key upstream. It
    /// is 0 for a sync send of an entity that the connector's config lists in `lookups`, which is
    /// stored only after the call.
    pub message_id: i64,
    /// Entity the client named (`vehicle`).
    pub entity: RString,
    /// The client's message, JSON text exactly as the client sent it.
    pub payload: RString,
    /// Attempt number, starting at 1.
    pub attempt: u32,
}

/// Whether the recipient finished with a message.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq)]
pub struct RemoteState(pub u32);

impl RemoteState {
    /// The recipient finished, and the reply contains its result.
    pub const DONE: RemoteState = RemoteState(0);
    /// The recipient accepted the message and is still processing it: ask again with
    /// [`crate::Connector::refresh_status`].
    pub const PENDING: RemoteState = RemoteState(1);
    /// The recipient reports that processing failed for good.
    pub const FAILED: RemoteState = RemoteState(2);
}

/// Successful reply of [`crate::Connector::send`] or [`crate::Connector::refresh_status`].
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct Reply {
    /// State of the message at the recipient.
    pub state: RemoteState,
    /// The recipient's reply as JSON text (`null` when it has none yet).
    pub data: RString,
    /// The recipient's id for the message, kept by the engine for status refreshes.
    pub external_id: ROption<RString>,
}

impl Reply {
    /// Creates a finished reply with `data` (JSON text).
    pub fn done(data: impl Into<String>) -> Self {
        Reply { state: RemoteState::DONE, data: RString::from(data.into()), external_id: ROption::RNone }
    }

    /// Creates a reply for a message the recipient is still processing under `external_id`.
    pub fn pending(external_id: impl Into<String>, data: impl Into<String>) -> Self {
        Reply {
            state: RemoteState::PENDING,
            data: RString::from(data.into()),
            external_id: ROption::RSome(RString::from(external_id.into())),
        }
    }
}

/// Message whose state the engine requests from the recipient.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct StatusRequest {
    /// The ledger's message id.
    pub message_id: i64,
    /// Entity of the message.
    pub entity: RString,
    /// The recipient's id from the earlier [`Reply::external_id`], if any.
    pub external_id: ROption<RString>,
    /// The client's original message, JSON text.
    pub payload: RString,
}

/// Request for the next batch of an external feed.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct PollRequest {
    /// Feed name, as configured for the connector.
    pub feed: RString,
    /// Cursor stored after the previous batch; none on the first poll.
    pub cursor: ROption<RString>,
    /// Maximum number of items wanted.
    pub limit: u32,
}

/// One inbound event from an external feed.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FeedItem {
    /// The external system's id of the event, used to drop duplicates.
    pub external_id: RString,
    /// Entity of the inbound message (`document`).
    pub entity: RString,
    /// Content of the inbound message, JSON text.
    pub content: RString,
}

/// One batch of an external feed and the cursor to continue from.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FeedBatch {
    /// Events in feed order.
    pub items: RVec<FeedItem>,
    /// Cursor to store with the batch; none keeps the stored cursor.
    pub next_cursor: ROption<RString>,
}

/// Request for one page of a reference directory of the recipient.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct DirectoryRequest {
    /// Directory name (`brand`).
    pub directory: RString,
    /// Token from the previous page; none for the first page.
    pub page_token: ROption<RString>,
}

/// One entry of an external reference directory.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct DirectoryEntry {
    /// The external system's code.
    pub code: RString,
    /// Display name.
    pub name: RString,
    /// Code of the parent entry in a hierarchical directory.
    pub parent: ROption<RString>,
    /// A second code of the entry, when the system keeps one beside its key. KIAS keeps a numeric
    /// ISN as the key and a short `CODE` such as `VAZ`. The engine links other connectors'
    /// directories through it.
    pub alt_code: ROption<RString>,
}

/// One page of an external reference directory.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct DirectoryPage {
    /// Entries of this page.
    pub entries: RVec<DirectoryEntry>,
    /// Token of the next page; none on the last page.
    pub next_page_token: ROption<RString>,
}

/// HTTP request that a connector hands to the engine to execute.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct HttpRequest {
    /// Method in capitals (`GET`, `POST`).
    pub method: RString,
    /// Absolute URL; it must start with one of the connector's configured base URLs.
    pub url: RString,
    /// Header names and values.
    pub headers: RVec<Tuple2<RString, RString>>,
    /// Request body bytes.
    pub body: RVec<u8>,
    /// Timeout of the whole exchange in milliseconds; 0 means the connector's configured default.
    pub timeout_ms: u64,
    /// True when repeating the request cannot cause a second effect upstream.
    pub idempotent: bool,
}

impl HttpRequest {
    /// Creates a bodiless `GET` of `url` with the default timeout.
    pub fn get(url: impl Into<String>) -> Self {
        HttpRequest {
            method: RString::from("GET"),
            url: RString::from(url.into()),
            headers: RVec::new(),
            body: RVec::new(),
            timeout_ms: 0,
            idempotent: true,
        }
    }

    /// Creates a `POST` of `body` to `url` with the default timeout.
    pub fn post(url: impl Into<String>, body: Vec<u8>) -> Self {
        HttpRequest {
            method: RString::from("POST"),
            url: RString::from(url.into()),
            headers: RVec::new(),
            body: RVec::from(body),
            timeout_ms: 0,
            idempotent: false,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(Tuple2(RString::from(name), RString::from(value)));
        self
    }
}

/// HTTP response returned to a connector.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names (lowercase) and values.
    pub headers: RVec<Tuple2<RString, RString>>,
    /// Body bytes.
    pub body: RVec<u8>,
}

impl HttpResponse {
    /// Returns the first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|Tuple2(key, _)| key.eq_ignore_ascii_case(name))
            .map(|Tuple2(_, value)| value.as_str())
    }
}

/// Kind of a failed HTTP exchange.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq)]
pub struct HttpErrorKind(pub u32);

impl HttpErrorKind {
    /// No connection could be made; the request did not leave the engine.
    pub const CONNECT: HttpErrorKind = HttpErrorKind(1);
    /// The exchange exceeded its timeout.
    pub const TIMEOUT: HttpErrorKind = HttpErrorKind(2);
    /// The connection failed after the request was sent, so it may have arrived.
    pub const INTERRUPTED: HttpErrorKind = HttpErrorKind(3);
    /// The engine refused the request (URL outside the connector's base URLs, invalid method).
    pub const DENIED: HttpErrorKind = HttpErrorKind(4);
    /// Any other failure.
    pub const OTHER: HttpErrorKind = HttpErrorKind(5);
    /// A request not marked idempotent timed out or broke off after it was sent, so it may have
    /// taken effect: repeating it blindly could cause a second effect.
    pub const UNCERTAIN: HttpErrorKind = HttpErrorKind(6);
}

/// Failed HTTP exchange.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct HttpError {
    /// What failed.
    pub kind: HttpErrorKind,
    /// Cause, without secrets.
    pub message: RString,
}

impl HttpError {
    /// Converts the failure into the connector error the engine should see: denied requests are
    /// configuration errors, and a non-idempotent request that may have arrived fails for good
    /// with code `outcome_unknown` (an operator checks the recipient, then re-queues the message).
    /// Everything else is transient.
    pub fn into_connector_error(self) -> ConnectorError {
        match self.kind {
            HttpErrorKind::DENIED => ConnectorError::config(self.message.to_string()),
            HttpErrorKind::UNCERTAIN => ConnectorError::permanent(format!(
                "{}; the request may have taken effect and is not idempotent, so it is not repeated: check the recipient, then re-queue with `uig message retry`",
                self.message
            ))
            .with_code("outcome_unknown"),
            _ => ConnectorError::transient(self.message.to_string()),
        }
    }
}

/// Severity of a log line forwarded from a plugin.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq)]
pub struct LogLevel(pub u8);

impl LogLevel {
    /// Fine-grained detail.
    pub const DEBUG: LogLevel = LogLevel(1);
    /// Normal operation.
    pub const INFO: LogLevel = LogLevel(2);
    /// Something unexpected that the plugin handled.
    pub const WARN: LogLevel = LogLevel(3);
    /// A failure.
    pub const ERROR: LogLevel = LogLevel(4);
}
