//! `GET /openapi.json`: the OpenAPI 3.0.3 document of the HTTP API, served without authentication.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, compiled into the binary from `engine/openapi.json`. `tests/openapi.rs` checks
/// that it lists every route and that real responses match its schemas.
const DOCUMENT: &str = include_str!("../../openapi.json");

/// Returns the OpenAPI document as `application/json`.
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
