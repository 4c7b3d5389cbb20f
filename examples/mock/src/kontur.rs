//! Mock of Kontur.Strakhovanie: the Kontur Medi API v2 and its OpenID Connect token endpoint, as
//! docs/kontur-api.md describes them.
//!
//! `POST /connect/token` issues bearer tokens for the client credentials from the command line.
//! The `/V2` routes serve two boxes, an insurer and a clinic, with their events and messages in
//! memory. Control endpoints under `/_mock/kontur` inject inbound documents, expire tokens and
//! switch fault modes.

mod api;
mod control;
mod faults;
mod model;
mod state;

#[cfg(test)]
mod tests;

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

pub use state::KonturState;

/// Box of the insurer, the gateway's own side of the document exchange.
pub const INSURER_MEDI_ID: &str = "6f1c0b7e-3d2a-4c59-9a41-2b8e5d7f0a13";

/// Box of the clinic, the insurer's counterparty. Injected inbound documents come from it.
pub const CLINIC_MEDI_ID: &str = "c3a9e2d4-8b71-4f06-b5d2-7e1f9a0c4b68";

/// Default lifetime of issued access tokens, in seconds.
pub const DEFAULT_TOKEN_LIFETIME_SECONDS: u64 = 3600;

/// Maximum token lifetime that the command line and `PUT /_mock/kontur/token-lifetime` accept,
/// in seconds (one day).
pub const MAX_TOKEN_LIFETIME_SECONDS: u64 = 86_400;

/// Command-line settings of the mock Kontur.
#[derive(Clone, Debug, clap::Args)]
pub struct KonturOptions {
    /// Client id that Kontur token requests must send with HTTP Basic authentication.
    #[arg(
        long,
        value_name = "ID",
        default_value = "demo-kontur",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub kontur_client_id: String,

    /// Client secret that Kontur token requests must send with HTTP Basic authentication.
    #[arg(
        long,
        value_name = "SECRET",
        default_value = "demo-kontur-secret",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub kontur_client_secret: String,

    /// Lifetime of the access tokens that the mock Kontur issues, in seconds (1 to 86400).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = DEFAULT_TOKEN_LIFETIME_SECONDS,
        value_parser = clap::value_parser!(u64).range(1..=MAX_TOKEN_LIFETIME_SECONDS)
    )]
    pub kontur_token_lifetime: u64,
}

/// Builds the router of the mock Kontur, control endpoints included.
///
/// The fault modes and the request counters apply to the token endpoint and the `/V2` routes,
/// never to the control endpoints.
pub fn router(state: KonturState) -> Router {
    let vendor = Router::new()
        .route("/connect/token", post(api::issue_token))
        .route("/V2/parties", get(api::list_parties))
        .route("/V2/parties/{medi_id}", get(api::get_party))
        .route("/V2/events", get(api::list_events))
        .route("/V2/messages", post(api::post_message))
        .route("/V2/messages/{message_id}", get(api::get_message))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            faults::count_and_apply_mode,
        ));

    let control = Router::new()
        .route("/_mock/kontur/inbox", post(control::inject_inbox))
        .route("/_mock/kontur/expire-tokens", post(control::expire_tokens))
        .route(
            "/_mock/kontur/token-lifetime",
            get(control::get_token_lifetime).put(control::put_token_lifetime),
        )
        .route(
            "/_mock/kontur/mode",
            get(control::get_mode).put(control::put_mode),
        )
        .route("/_mock/kontur/stats", get(control::get_stats))
        .route("/_mock/kontur/reset", post(control::post_reset));

    vendor.merge(control).with_state(state)
}
