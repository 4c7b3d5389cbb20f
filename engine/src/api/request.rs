//! Reading and authenticating an API request: parameters, token, timestamp and signature.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, Method, StatusCode};

use super::error::{ApiError, Language};
use crate::clients::Client;
use crate::engine::Engine;
use crate::params::{self, Params};
use crate::signature;
use crate::timestamp;

/// An authenticated API request.
pub struct SignedRequest {
    pub client: Arc<Client>,
    pub params: Params,
    /// The verified signature, used to detect repeated sends.
    pub hash: String,
    /// The request's `timestamp` in Unix milliseconds, with a local time read as UTC. It keys
    /// repeated requests together with `hash`, so it must not depend on the configured time zone.
    pub signed_at_ms: i64,
    pub headers: HeaderMap,
    pub language: Language,
}

/// Rejection of a request, rendered in the request's language.
pub struct Rejection(pub ApiError, pub Language);

impl axum::response::IntoResponse for Rejection {
    fn into_response(self) -> axum::response::Response {
        self.0.into_response_in(self.1)
    }
}

impl FromRequest<Arc<Engine>> for SignedRequest {
    type Rejection = Rejection;

    async fn from_request(request: Request, engine: &Arc<Engine>) -> Result<Self, Self::Rejection> {
        let language = Language::from_headers(request.headers());
        authenticate(request, engine).await.map_err(|error| Rejection(error, language))
    }
}

async fn authenticate(request: Request, engine: &Arc<Engine>) -> Result<SignedRequest, ApiError> {
    let (parts, body) = request.into_parts();
    let language = Language::from_headers(&parts.headers);
    let params = read_params(&parts.method, parts.uri.query(), &parts.headers, body, engine.config.max_body_bytes).await?;

    let token = token_of(&params, &parts.headers)?;
    let hash = params.get("hash").ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_signature",
            "Не передана подпись «hash»: вычислите её, как описано в README (раздел «Подпись»).",
            "missing signature \"hash\": compute it as the README's signature section describes",
        )
        .field("hash")
    })?;
    let timestamp_text = params.get("timestamp").ok_or_else(|| ApiError::missing("timestamp"))?;
    let at = timestamp::parse(timestamp_text, engine.config.time_zone)?;
    timestamp::check_window(at, chrono::Utc::now(), engine.config.timestamp_window_seconds)?;

    let client = engine
        .clients
        .authenticate(&token)
        .await
        .map_err(|error| {
            tracing::error!(%error, "client lookup failed");
            ApiError::internal()
        })?
        .ok_or_else(ApiError::invalid_token)?;

    let string_to_sign = signature::string_to_sign(parts.method.as_str(), parts.uri.path(), params.entries(), &token);
    // Each active secret is tried, so requests keep passing while a client switches after a rotation.
    if !client.active_secrets().any(|secret| signature::verify(secret.as_bytes(), &string_to_sign, hash)) {
        tracing::info!(client = %client.name, path = parts.uri.path(), "signature mismatch");
        return Err(ApiError::invalid_signature());
    }
    if let Err(seconds) = engine.limits.admit_client(client.id) {
        tracing::info!(client = %client.name, retry_after = seconds, "client request rate exceeded");
        return Err(ApiError::rate_limited(seconds));
    }

    // The key of repeated requests depends on the text alone: a local time without an offset is
    // read as UTC here, so instances with another `time_zone` still find the same request.
    let signed_at_ms = timestamp::parse(timestamp_text, chrono_tz::UTC).unwrap_or(at).timestamp_millis();
    Ok(SignedRequest { client, hash: hash.to_ascii_lowercase(), signed_at_ms, params, headers: parts.headers, language })
}

/// Collects parameters from the query string and the body (form or JSON), rejecting duplicates.
async fn read_params(method: &Method, query: Option<&str>, headers: &HeaderMap, body: Body, limit: usize) -> Result<Params, ApiError> {
    let query_params = params::from_query(query.unwrap_or(""))?;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| ApiError::body_too_large(limit))?;
    if bytes.is_empty() || method == Method::GET {
        return Ok(params::merge(query_params, Vec::new())?);
    }

    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let body_params = match media_type.as_str() {
        "application/x-www-form-urlencoded" => params::from_form(&bytes)?,
        "application/json" => params::from_json(&bytes)?,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_content_type",
                format!("Тип тела «{content_type}» не поддерживается: используйте application/x-www-form-urlencoded или application/json."),
                format!("unsupported body type \"{content_type}\": send application/x-www-form-urlencoded or application/json"),
            ))
        }
    };
    Ok(params::merge(query_params, body_params)?)
}

/// Returns the token from the `token` parameter or the `Authorization: Bearer` header.
fn token_of(params: &Params, headers: &HeaderMap) -> Result<String, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .map(str::trim);
    match (params.get("token"), bearer) {
        (Some(parameter), Some(header)) if parameter != header => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "conflicting_token",
            "Токен в параметре «token» и в заголовке Authorization различается: передайте один токен.",
            "the \"token\" parameter and the Authorization header carry different tokens: send one token",
        )
        .field("token")),
        (Some(token), _) | (None, Some(token)) if !token.is_empty() => Ok(token.to_string()),
        _ => Err(ApiError::missing_token()),
    }
}
