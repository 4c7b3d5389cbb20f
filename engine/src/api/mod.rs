//! The HTTP API: routes, health endpoints and request ids.

pub mod error;
pub mod guard;
pub mod messages;
pub mod openapi;
pub mod request;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::engine::Engine;

/// Builds the router of the whole API; the binary only binds it, tests may drive it directly.
pub fn app(engine: Arc<Engine>) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/async/message/send", post(messages::send_async))
        .route("/sync/message/send", post(messages::send_sync))
        .route("/sync/message/list-all", get(messages::list_all))
        .route("/sync/message/list-new", get(messages::list_new))
        .route("/sync/message/get", get(messages::get))
        .route("/sync/message/status", put(messages::refresh_status))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/openapi.json", get(openapi::document))
        .with_state(engine)
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                let id = request.headers().get("x-request-id").and_then(|value| value.to_str().ok()).unwrap_or("-");
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
            }),
        )
        .layer(axum::middleware::from_fn(guard::limit_request_head))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

async fn live() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Reports ready when the database responds, and lists loaded and unavailable connectors and the
/// feeds whose last poll failed, for monitoring to alert on.
async fn ready(State(engine): State<Arc<Engine>>) -> impl IntoResponse {
    let database = engine.db.reader.ping().await;
    let failing_feeds: Vec<_> = match crate::feeds::list(&engine.db).await {
        Ok(feeds) => feeds
            .into_iter()
            .filter_map(|feed| {
                let error = feed.last_error.as_deref()?;
                let error: serde_json::Value = serde_json::from_str(error).unwrap_or_else(|_| json!(error));
                Some(json!({"feed": format!("{}/{}", feed.connector, feed.feed), "error": error}))
            })
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "reading feed states for /health/ready failed");
            Vec::new()
        }
    };
    let connectors: Vec<_> = engine.connectors.all().map(|handle| json!({"name": handle.name, "plugin": handle.manifest.name.as_str(), "version": handle.manifest.version.as_str(), "status": "loaded", "circuit": handle.breaker.state_name()})).collect();
    let unavailable: Vec<_> = engine.connectors.all_unavailable().map(|item| json!({"name": item.name, "status": "unavailable", "reason": item.reason})).collect();
    let status = if database.is_ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if database.is_ok() { "ready" } else { "not_ready" },
        "database": if database.is_ok() { "ok" } else { "unreachable" },
        "connectors": connectors.into_iter().chain(unavailable).collect::<Vec<_>>(),
        "failing_feeds": failing_feeds,
        "queue": {"waiting": engine.limits.queue().1, "max": engine.limits.queue().0},
    });
    (status, Json(body))
}
