//! Mock of IMPACT (JSON REST).
//!
//! Skeleton: the routes are added with the connector.

use axum::Router;

/// Credentials and runtime state of the mock Impact.
#[derive(Clone, Default)]
pub struct ImpactState {}

impl ImpactState {
    /// Creates the state with the credentials from the command line.
    pub fn new(_options: &ImpactOptions) -> Self {
        ImpactState {}
    }
}

/// Command-line settings of the mock Impact.
#[derive(Clone, Debug, clap::Args)]
pub struct ImpactOptions {}

/// Builds the router of the mock Impact, control endpoints included.
pub fn router(state: ImpactState) -> Router {
    let _ = state;
    Router::new()
}
