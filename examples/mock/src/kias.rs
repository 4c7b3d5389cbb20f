//! Mock of KIAS (SOAP service kiasSvc).
//!
//! Skeleton: the routes are added with the connector.

use axum::Router;

/// Credentials and runtime state of the mock Kias.
#[derive(Clone, Default)]
pub struct KiasState {}

impl KiasState {
    /// Creates the state with the credentials from the command line.
    pub fn new(_options: &KiasOptions) -> Self {
        KiasState {}
    }
}

/// Command-line settings of the mock Kias.
#[derive(Clone, Debug, clap::Args)]
pub struct KiasOptions {}

/// Builds the router of the mock Kias, control endpoints included.
pub fn router(state: KiasState) -> Router {
    let _ = state;
    Router::new()
}
