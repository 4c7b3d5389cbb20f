//! Connector plugins: loading, host services and calls under concurrency limits and deadlines.

pub mod breaker;
pub mod host;
mod registry;

pub use registry::{CallError, ConnectorHandle, Connectors, Unavailable};
