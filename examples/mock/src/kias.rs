//! Mock of KIAS, the insurers' core system, behind its SOAP service kiasSvc, as
//! docs/kias-api.md describes it.
//!
//! `POST /kiasSvc.asmx` runs `ExecProc` over SOAP 1.1 and 1.2: `Auth` with the user and the
//! SHA-512 of the password from the command line opens a session, and the default `User_*`
//! procedures and `GETDICTILIST` work on in-memory state. `GET /kiasSvc.asmx?WSDL` describes
//! the service. Control endpoints under `/_mock/kias` switch fault modes and response encodings,
//! expire sessions, list the stored state and reset it.

mod api;
mod control;
mod directory;
mod encoding;
mod procedures;
mod soap;
mod state;
mod xml;

#[cfg(test)]
mod tests;

use axum::routing::{get, post};
use axum::Router;

pub use state::KiasState;

/// Default lifetime of KIAS sessions, in seconds.
pub const DEFAULT_SESSION_LIFETIME_SECONDS: u64 = 1200;

/// Maximum session lifetime that the command line accepts, in seconds (one day).
pub const MAX_SESSION_LIFETIME_SECONDS: u64 = 86_400;

/// Command-line settings of the mock KIAS.
#[derive(Clone, Debug, clap::Args)]
pub struct KiasOptions {
    /// User name that KIAS `Auth` requests must send in `Name`.
    #[arg(
        long,
        value_name = "USER",
        default_value = "demo",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub kias_user: String,

    /// Password whose SHA-512 (hex) KIAS `Auth` requests must send in `Pwd`.
    #[arg(
        long,
        value_name = "PASSWORD",
        default_value = "demo-kias-password",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub kias_password: String,

    /// Lifetime of KIAS sessions in seconds (1 to 86400). A call with an older `Sid` gets error 001.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = DEFAULT_SESSION_LIFETIME_SECONDS,
        value_parser = clap::value_parser!(u64).range(1..=MAX_SESSION_LIFETIME_SECONDS)
    )]
    pub kias_session_lifetime: u64,
}

/// Builds the router of the mock KIAS, control endpoints included.
pub fn router(state: KiasState) -> Router {
    Router::new()
        .route("/kiasSvc.asmx", post(api::exec_proc).get(api::describe))
        .route(
            "/_mock/kias/mode",
            get(control::get_mode).put(control::put_mode),
        )
        .route(
            "/_mock/kias/encoding",
            get(control::get_encoding).put(control::put_encoding),
        )
        .route("/_mock/kias/state", get(control::get_state))
        .route(
            "/_mock/kias/expire-sessions",
            post(control::expire_sessions),
        )
        .route("/_mock/kias/reset", post(control::post_reset))
        .with_state(state)
}
