//! Mock of Kontur.Strakhovanie (Kontur Medi API v2).
//!
//! Skeleton: the routes are added with the connector.

use axum::Router;

/// Credentials and runtime state of the mock Kontur.
#[derive(Clone, Default)]
pub struct KonturState {}

impl KonturState {
    /// Creates the state with the credentials from the command line.
    pub fn new(_options: &KonturOptions) -> Self {
        KonturState {}
    }
}

/// Command-line settings of the mock Kontur.
#[derive(Clone, Debug, clap::Args)]
pub struct KonturOptions {}

/// Builds the router of the mock Kontur, control endpoints included.
pub fn router(state: KonturState) -> Router {
    let _ = state;
    Router::new()
}
