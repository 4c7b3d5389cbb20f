//! The `Connector` trait object that every plugin returns.

use abi_stable::sabi_trait;
use abi_stable::std_types::{RBox, RResult};
use async_ffi::{FfiFuture, FutureExt};

use crate::types::{
    ConnectorError, DirectoryPage, DirectoryRequest, FeedBatch, PollRequest, Reply, SendRequest,
    StatusRequest,
};

/// One configured connector instance: the plugin's side of every call the engine makes.
///
/// The engine calls these methods from blocking threads, several at once, under a per-connector
/// concurrency limit and deadline, so implementations must be thread-safe and may block on
/// [`crate::Host`] services. The exception is [`send_async`](Connector::send_async), whose future
/// runs on the engine's runtime and must not block. New methods are added at the end with a
/// default body.
#[sabi_trait]
pub trait Connector: Send + Sync {
    /// Delivers an outbound message and returns the recipient's reply.
    fn send(&self, request: SendRequest) -> RResult<Reply, ConnectorError>;

    /// Asks the recipient for the state of a message it is still processing.
    fn refresh_status(&self, request: StatusRequest) -> RResult<Reply, ConnectorError> {
        let _ = request;
        RResult::RErr(ConnectorError::unsupported("refresh_status"))
    }

    /// Reads the next batch of an external feed after a cursor.
    fn poll_feed(&self, request: PollRequest) -> RResult<FeedBatch, ConnectorError> {
        let _ = request;
        RResult::RErr(ConnectorError::unsupported("poll_feed"))
    }

    /// Reads one page of a reference directory of the recipient.
    #[sabi(last_prefix_field)]
    fn fetch_directory(&self, request: DirectoryRequest) -> RResult<DirectoryPage, ConnectorError> {
        let _ = request;
        RResult::RErr(ConnectorError::unsupported("fetch_directory"))
    }

    /// Delivers an outbound message as a future that the engine polls on its own runtime, with
    /// HTTP through [`crate::Host::http_async`]. The engine calls it instead of
    /// [`send`](Connector::send) only for plugins that declare [`crate::Capabilities::SEND_ASYNC`].
    /// The future must not block its thread.
    fn send_async(&self, request: SendRequest) -> FfiFuture<RResult<Reply, ConnectorError>> {
        let _ = request;
        async { RResult::RErr(ConnectorError::unsupported("send_async")) }.into_ffi()
    }
}

/// Owned, type-erased connector as it crosses the plugin boundary.
pub type ConnectorBox = Connector_TO<'static, RBox<()>>;
