//! The mocked vendor routes: `POST /connect/token` and the Medi API v2 under `/V2`.

use axum::body::Bytes;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::info;

use super::model::{party, PARTIES};
use super::state::{InvalidPointer, KonturState};

/// The only scope that the token endpoint grants.
pub const MEDI_API_SCOPE: &str = "medi_api";

/// Largest `count` of `GET /V2/events`.
pub const MAX_EVENTS_COUNT: i64 = 1000;

/// `count` of `GET /V2/events` when the query has none.
pub const DEFAULT_EVENTS_COUNT: i64 = 100;

/// Builds a vendor error response, `{"error": {"errorCode", "message"}, "innerErrors": []}`,
/// and logs it.
pub fn vendor_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let message = message.into();
    info!(status = status.as_u16(), code, error = %message, "kontur request rejected");
    let body = json!({
        "error": { "errorCode": code, "message": message },
        "innerErrors": [],
    });
    (status, Json(body)).into_response()
}

/// Builds an OAuth 2.0 error response (RFC 6749, section 5.2) and logs it.
fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    info!(
        status = status.as_u16(),
        code,
        error = description,
        "kontur token request rejected"
    );
    let body = json!({ "error": code, "error_description": description });
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"kontur-identity\""),
        );
    }
    response
}

/// Form body of a token request.
#[derive(Debug, Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    scope: Option<String>,
}

/// Reads the HTTP Basic client credentials. RFC 6749 (section 2.3.1) form-urlencodes the id and
/// the secret before joining and base64-encoding them, so each part is decoded again here.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (client_id, client_secret) = decoded.split_once(':')?;
    Some((form_decode(client_id)?, form_decode(client_secret)?))
}

/// Decodes one `application/x-www-form-urlencoded` value with axum's own query parser.
fn form_decode(encoded: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Single {
        value: String,
    }

    if encoded.contains(['&', '#']) {
        return None;
    }
    let uri: Uri = format!("/?value={encoded}").parse().ok()?;
    let Query(single) = Query::<Single>::try_from_uri(&uri).ok()?;
    Some(single.value)
}

/// `POST /connect/token`: the OpenID Connect client credentials grant.
///
/// The client authenticates with HTTP Basic, the form body has `grant_type=client_credentials`
/// and `scope=medi_api`. The response is `{access_token, expires_in, token_type: "Bearer", scope}`.
pub async fn issue_token(
    State(state): State<KonturState>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let Some((client_id, client_secret)) = basic_credentials(&headers) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed: send the client id and secret with HTTP Basic",
        );
    };
    if !state.is_client(&client_id, &client_secret) {
        info!(
            client_id,
            "kontur token request with unknown client credentials"
        );
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed: unknown client id or wrong secret",
        );
    }

    let Ok(Form(form)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded with grant_type and scope",
        );
    };
    if form.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only grant_type=client_credentials is supported",
        );
    }
    let scope = form.scope.unwrap_or_default();
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if scopes.is_empty() || scopes.iter().any(|scope| *scope != MEDI_API_SCOPE) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "the client may request only scope=medi_api",
        );
    }

    let (token, lifetime) = state.issue_token();
    info!(
        client_id,
        expires_in = lifetime.as_secs(),
        "kontur access token issued"
    );
    let body = json!({
        "access_token": token,
        "expires_in": lifetime.as_secs(),
        "token_type": "Bearer",
        "scope": MEDI_API_SCOPE,
    });
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// Checks the bearer token of a `/V2` request. Returns the HTTP 401 response when the token is
/// missing, unknown or expired, else `None`.
fn unauthorized_response(state: &KonturState, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());

    let message = match token {
        Some(token) if state.is_valid_token(token) => return None,
        Some(_) => "the access token is unknown or expired: get a new one from POST /connect/token",
        None => "missing bearer token: send Authorization: Bearer <access_token>",
    };
    state.record_unauthorized();
    let mut response = vendor_error(StatusCode::UNAUTHORIZED, "Unauthorized", message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    Some(response)
}

fn no_access(medi_id: &str) -> Response {
    vendor_error(
        StatusCode::FORBIDDEN,
        "HasNoAccessToMediId",
        format!("the client has no access to box {medi_id}"),
    )
}

/// `GET /V2/parties`: lists the boxes that the client may use.
pub async fn list_parties(State(state): State<KonturState>, headers: HeaderMap) -> Response {
    if let Some(response) = unauthorized_response(&state, &headers) {
        return response;
    }
    Json(json!({ "parties": PARTIES })).into_response()
}

/// `GET /V2/parties/{mediId}`: one box, or `HasNoAccessToMediId` for a box the client may not use.
pub async fn get_party(
    State(state): State<KonturState>,
    headers: HeaderMap,
    Path(medi_id): Path<String>,
) -> Response {
    if let Some(response) = unauthorized_response(&state, &headers) {
        return response;
    }
    match party(&medi_id) {
        Some(party) => Json(party).into_response(),
        None => no_access(&medi_id),
    }
}

/// Query of `GET /V2/events`. Every value is text, because the handler checks them itself.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsQuery {
    medi_id: Option<String>,
    last_event_pointer: Option<String>,
    count: Option<String>,
}

/// `GET /V2/events?mediId=&lastEventPointer=&count=`: events of a box after a pointer.
///
/// Checks run in this order: the token, `mediId` (400 `InvalidMediId`, 403
/// `HasNoAccessToMediId`), `count` (400 `BadEventsCount` outside 1 to 1000, default 100) and
/// the pointer (400 `InvalidLastEventPointer` for one this mock did not issue for the box).
pub async fn list_events(
    State(state): State<KonturState>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Response {
    if let Some(response) = unauthorized_response(&state, &headers) {
        return response;
    }
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => {
            return vendor_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("invalid query string: {}", rejection.body_text()),
            )
        }
    };

    let Some(medi_id) = query.medi_id.filter(|medi_id| !medi_id.trim().is_empty()) else {
        return vendor_error(
            StatusCode::BAD_REQUEST,
            "InvalidMediId",
            "the mediId query parameter is required",
        );
    };
    let Some(party) = party(&medi_id) else {
        return no_access(&medi_id);
    };

    let count = match query.count.as_deref().map(str::trim) {
        None => DEFAULT_EVENTS_COUNT,
        Some(text) => match text.parse::<i64>() {
            Ok(count) if (1..=MAX_EVENTS_COUNT).contains(&count) => count,
            _ => {
                return vendor_error(
                    StatusCode::BAD_REQUEST,
                    "BadEventsCount",
                    format!("count \"{text}\" is invalid: it must be an integer from 1 to {MAX_EVENTS_COUNT}"),
                )
            }
        },
    };

    let pointer = query
        .last_event_pointer
        .as_deref()
        .filter(|pointer| !pointer.is_empty());
    let limit = usize::try_from(count).unwrap_or(1);
    match state.events_after(party.medi_id, pointer, limit) {
        Ok((events, last_event_pointer)) => {
            info!(
                medi_id = party.medi_id,
                count = events.len(),
                "kontur events served"
            );
            Json(json!({
                "events": events,
                "count": events.len(),
                "lastEventPointer": last_event_pointer,
            }))
            .into_response()
        }
        Err(InvalidPointer) => vendor_error(
            StatusCode::BAD_REQUEST,
            "InvalidLastEventPointer",
            format!("lastEventPointer was not issued for box {}: continue from a pointer that this API returned", party.medi_id),
        ),
    }
}

/// `POST /V2/messages` with `{mediId, message}`: stores a base64 message sent from a box and
/// returns `{mediId, messageId, documentCirculationId}`.
pub async fn post_message(
    State(state): State<KonturState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(response) = unauthorized_response(&state, &headers) {
        return response;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return vendor_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the body must be a JSON object {\"mediId\", \"message\"}",
        );
    };

    let Some(medi_id) = body.get("mediId").and_then(Value::as_str) else {
        return vendor_error(
            StatusCode::BAD_REQUEST,
            "InvalidMediId",
            "mediId is required and must be a string",
        );
    };
    let Some(party) = party(medi_id) else {
        return no_access(medi_id);
    };

    let message = body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if message.is_empty() || STANDARD.decode(message).is_err() {
        return vendor_error(
            StatusCode::BAD_REQUEST,
            "InvalidMessage",
            "message is required and must be non-empty standard base64",
        );
    }

    let stored = state.post_message(party.medi_id, message.to_owned());
    info!(
        medi_id = party.medi_id,
        message_id = stored.message_id,
        bytes = message.len(),
        "kontur message stored"
    );
    Json(json!({
        "mediId": stored.medi_id,
        "messageId": stored.message_id,
        "documentCirculationId": stored.document_circulation_id,
    }))
    .into_response()
}

/// `GET /V2/messages/{messageId}`: one message with its `meta` and base64 `data.content`.
pub async fn get_message(
    State(state): State<KonturState>,
    headers: HeaderMap,
    Path(message_id): Path<String>,
) -> Response {
    if let Some(response) = unauthorized_response(&state, &headers) {
        return response;
    }
    match state.message(&message_id) {
        Some(body) => Json(body).into_response(),
        None => vendor_error(
            StatusCode::NOT_FOUND,
            "MessageNotFound",
            format!("message {message_id} not found"),
        ),
    }
}
