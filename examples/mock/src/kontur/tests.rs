//! Tests of the mock Kontur that drive its router in-process and, for `reset`, over a socket.

use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::Parser;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::state::MAX_EVENTS_PER_BOX;
use super::*;

const CLIENT_ID: &str = "test-kontur";
const CLIENT_SECRET: &str = "test-kontur-secret";
const FOREIGN_BOX: &str = "11111111-2222-4333-8444-555555555555";

fn options() -> KonturOptions {
    KonturOptions {
        kontur_client_id: CLIENT_ID.to_owned(),
        kontur_client_secret: CLIENT_SECRET.to_owned(),
        kontur_token_lifetime: DEFAULT_TOKEN_LIFETIME_SECONDS,
    }
}

fn test_app() -> (Router, KonturState) {
    let state = KonturState::new(&options());
    (router(state.clone()), state)
}

/// A response read whole: status, headers and body, with the body parsed as JSON when it is.
struct Reply {
    status: StatusCode,
    headers: header::HeaderMap,
    text: String,
    json: Value,
}

async fn call(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        json,
    }
}

fn basic(client_id: &str, client_secret: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{client_id}:{client_secret}"))
    )
}

fn token_request(authorization: Option<&str>, form: &str) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/connect/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(authorization) = authorization {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    request.body(Body::from(form.to_owned())).unwrap()
}

async fn token(app: &Router) -> String {
    let answer = call(
        app,
        token_request(
            Some(&basic(CLIENT_ID, CLIENT_SECRET)),
            "grant_type=client_credentials&scope=medi_api",
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.json["access_token"].as_str().unwrap().to_owned()
}

fn api_request(
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match body {
        Some(json) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    request.body(body).unwrap()
}

async fn api_get(app: &Router, uri: &str, token: &str) -> Reply {
    call(app, api_request(Method::GET, uri, Some(token), None)).await
}

async fn control(app: &Router, method: Method, path: &str, body: Option<Value>) -> Reply {
    call(
        app,
        api_request(method, &format!("/_mock/kontur/{path}"), None, body),
    )
    .await
}

async fn inject(app: &Router, body: Value) -> Reply {
    control(app, Method::POST, "inbox", Some(body)).await
}

fn events_uri(medi_id: &str, pointer: Option<&str>, count: u32) -> String {
    match pointer {
        Some(pointer) => {
            format!("/V2/events?mediId={medi_id}&lastEventPointer={pointer}&count={count}")
        }
        None => format!("/V2/events?mediId={medi_id}&count={count}"),
    }
}

fn error_code(answer: &Reply) -> &str {
    answer.json["error"]["errorCode"]
        .as_str()
        .unwrap_or("<no error.errorCode>")
}

#[tokio::test]
async fn token_issued_for_client_credentials() {
    let (app, _) = test_app();

    let answer = call(
        &app,
        token_request(
            Some(&basic(CLIENT_ID, CLIENT_SECRET)),
            "grant_type=client_credentials&scope=medi_api",
        ),
    )
    .await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["token_type"], "Bearer");
    assert_eq!(answer.json["expires_in"], 3600);
    assert_eq!(answer.json["scope"], "medi_api");
    assert!(answer.json["access_token"].as_str().unwrap().len() >= 32);
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn token_request_checks() {
    let (app, state) = test_app();
    let good = basic(CLIENT_ID, CLIENT_SECRET);
    let form = "grant_type=client_credentials&scope=medi_api";
    let cases = [
        (None, form, StatusCode::UNAUTHORIZED, "invalid_client"),
        (
            Some(basic(CLIENT_ID, "wrong")),
            form,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            Some("Bearer abc".to_owned()),
            form,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            Some(good.clone()),
            "grant_type=password&scope=medi_api",
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            Some(good.clone()),
            "scope=medi_api",
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            Some(good.clone()),
            "grant_type=client_credentials&scope=other",
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            Some(good.clone()),
            "grant_type=client_credentials",
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
    ];
    for (authorization, form, status, code) in cases {
        let answer = call(&app, token_request(authorization.as_deref(), form)).await;

        assert_eq!(
            answer.status, status,
            "{authorization:?} {form}: {}",
            answer.text
        );
        assert_eq!(answer.json["error"], code, "{authorization:?} {form}");
        if status == StatusCode::UNAUTHORIZED {
            assert!(answer.headers.contains_key(header::WWW_AUTHENTICATE));
        }
    }

    let stats = state.stats();
    assert_eq!(stats["token_requests"], 7);
    assert_eq!(stats["tokens_issued"], 0);
}

#[tokio::test]
async fn basic_credentials_form_decoded() {
    let state = KonturState::new(&KonturOptions {
        kontur_client_id: "id:1".to_owned(),
        kontur_client_secret: "p&ss word".to_owned(),
        ..options()
    });
    let app = router(state);

    let encoded = basic("id%3A1", "p%26ss+word");
    let answer = call(
        &app,
        token_request(
            Some(&encoded),
            "grant_type=client_credentials&scope=medi_api",
        ),
    )
    .await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}

#[tokio::test]
async fn api_requires_valid_bearer() {
    let (app, state) = test_app();
    let uri = events_uri(INSURER_MEDI_ID, None, 10);

    let missing = call(&app, api_request(Method::GET, &uri, None, None)).await;
    let unknown = api_get(&app, &uri, "not-a-token").await;

    for answer in [&missing, &unknown] {
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(error_code(answer), "Unauthorized");
        assert_eq!(answer.json["innerErrors"], json!([]));
        assert_eq!(
            answer.headers[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
    }
    assert!(missing.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("missing bearer token"));
    assert_eq!(state.stats()["unauthorized"], 2);
    assert_eq!(state.stats()["events_requests"], 2);
}

#[tokio::test]
async fn parties_list_both_boxes() {
    let (app, _) = test_app();
    let token = token(&app).await;

    let list = api_get(&app, "/V2/parties", &token).await;
    let one = api_get(
        &app,
        &format!("/V2/parties/{}", CLINIC_MEDI_ID.to_uppercase()),
        &token,
    )
    .await;
    let foreign = api_get(&app, &format!("/V2/parties/{FOREIGN_BOX}"), &token).await;

    assert_eq!(list.status, StatusCode::OK);
    let ids: Vec<&str> = list.json["parties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|party| party["mediId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [INSURER_MEDI_ID, CLINIC_MEDI_ID]);
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json["mediId"], CLINIC_MEDI_ID);
    assert_eq!(one.json["partyType"], "Clinic");
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&foreign), "HasNoAccessToMediId");
}

#[tokio::test]
async fn events_paged_by_pointer() {
    let (app, _) = test_app();
    let token = token(&app).await;
    let injected = inject(&app, json!({"mediId": INSURER_MEDI_ID, "count": 3})).await;
    assert_eq!(injected.status, StatusCode::OK, "{}", injected.text);
    let injected_ids: Vec<&str> = injected.json["injected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["eventId"].as_str().unwrap())
        .collect();

    let first = api_get(&app, &events_uri(INSURER_MEDI_ID, None, 2), &token).await;
    let pointer = first.json["lastEventPointer"].as_str().unwrap().to_owned();
    let second = api_get(
        &app,
        &events_uri(INSURER_MEDI_ID, Some(&pointer), 2),
        &token,
    )
    .await;
    let last_pointer = second.json["lastEventPointer"].as_str().unwrap().to_owned();
    let third = api_get(
        &app,
        &events_uri(INSURER_MEDI_ID, Some(&last_pointer), 2),
        &token,
    )
    .await;
    let clinic = api_get(&app, &events_uri(CLINIC_MEDI_ID, None, 10), &token).await;

    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.json["count"], 2);
    let events = first.json["events"].as_array().unwrap();
    assert_eq!(events[0]["eventId"], injected_ids[0]);
    assert_eq!(events[1]["eventId"], injected_ids[1]);
    assert_eq!(events[1]["eventPointer"], pointer.as_str());
    assert_eq!(events[0]["eventType"], "NewInboxMessage");
    assert_eq!(events[0]["mediId"], INSURER_MEDI_ID);
    assert!(events[0]["eventContent"]["messageId"].is_string());
    assert!(
        chrono::DateTime::parse_from_rfc3339(events[0]["eventDateTime"].as_str().unwrap()).is_ok()
    );

    assert_eq!(second.json["count"], 1);
    assert_eq!(second.json["events"][0]["eventId"], injected_ids[2]);
    assert_eq!(third.json["count"], 0);
    assert_eq!(third.json["events"], json!([]));
    assert_eq!(third.json["lastEventPointer"], last_pointer.as_str());
    assert_eq!(clinic.json["count"], 0);
    assert_eq!(clinic.json["lastEventPointer"], Value::Null);
}

#[tokio::test]
async fn events_query_checks() {
    let (app, _) = test_app();
    let token = token(&app).await;
    inject(&app, json!({"mediId": CLINIC_MEDI_ID})).await;
    let clinic = api_get(&app, &events_uri(CLINIC_MEDI_ID, None, 1), &token).await;
    let clinic_pointer = clinic.json["lastEventPointer"].as_str().unwrap().to_owned();
    let cases = [
        (
            events_uri(INSURER_MEDI_ID, None, 0),
            StatusCode::BAD_REQUEST,
            "BadEventsCount",
        ),
        (
            events_uri(INSURER_MEDI_ID, None, 1001),
            StatusCode::BAD_REQUEST,
            "BadEventsCount",
        ),
        (
            format!("/V2/events?mediId={INSURER_MEDI_ID}&count=ten"),
            StatusCode::BAD_REQUEST,
            "BadEventsCount",
        ),
        (
            "/V2/events?count=10".to_owned(),
            StatusCode::BAD_REQUEST,
            "InvalidMediId",
        ),
        (
            events_uri(FOREIGN_BOX, None, 10),
            StatusCode::FORBIDDEN,
            "HasNoAccessToMediId",
        ),
        (
            events_uri(INSURER_MEDI_ID, Some("garbage"), 10),
            StatusCode::BAD_REQUEST,
            "InvalidLastEventPointer",
        ),
        (
            events_uri(INSURER_MEDI_ID, Some(&clinic_pointer), 10),
            StatusCode::BAD_REQUEST,
            "InvalidLastEventPointer",
        ),
    ];
    for (uri, status, code) in cases {
        let answer = api_get(&app, &uri, &token).await;

        assert_eq!(answer.status, status, "{uri}: {}", answer.text);
        assert_eq!(error_code(&answer), code, "{uri}");
    }

    let default_count = api_get(
        &app,
        &format!("/V2/events?mediId={INSURER_MEDI_ID}"),
        &token,
    )
    .await;
    assert_eq!(default_count.status, StatusCode::OK);
}

#[tokio::test]
async fn pointer_invalid_after_reset() {
    let (app, _) = test_app();
    inject(&app, json!({"mediId": INSURER_MEDI_ID, "count": 2})).await;
    let token_before = token(&app).await;
    let page = api_get(&app, &events_uri(INSURER_MEDI_ID, None, 1), &token_before).await;
    let pointer = page.json["lastEventPointer"].as_str().unwrap().to_owned();

    control(&app, Method::POST, "reset", None).await;
    inject(&app, json!({"mediId": INSURER_MEDI_ID, "count": 2})).await;
    let token_after = token(&app).await;
    let answer = api_get(
        &app,
        &events_uri(INSURER_MEDI_ID, Some(&pointer), 10),
        &token_after,
    )
    .await;

    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&answer), "InvalidLastEventPointer");
}

#[tokio::test]
async fn injected_document_fetched() {
    let (app, _) = test_app();
    let token = token(&app).await;
    let body = json!({
        "mediId": INSURER_MEDI_ID,
        "documentType": "GuaranteeLetterRequest",
        "documentNumber": "GL-7",
        "documentDate": "2025-06-01",
        "text": "Запрос гарантийного письма № GL-7",
        "eventDateTime": "2025-06-02T09:15:00+03:00",
    });
    let injected = inject(&app, body).await;
    let message_id = injected.json["injected"][0]["messageId"]
        .as_str()
        .unwrap()
        .to_owned();

    let events = api_get(&app, &events_uri(INSURER_MEDI_ID, None, 10), &token).await;
    let message = api_get(&app, &format!("/V2/messages/{message_id}"), &token).await;
    let missing = api_get(
        &app,
        "/V2/messages/00000000-0000-4000-8000-000000000000",
        &token,
    )
    .await;

    assert_eq!(injected.json["mediId"], INSURER_MEDI_ID);
    assert_eq!(injected.json["injected"][0]["documentNumber"], "GL-7");
    assert_eq!(
        events.json["events"][0]["eventDateTime"],
        "2025-06-02T09:15:00+03:00"
    );
    assert_eq!(
        events.json["events"][0]["eventContent"]["messageId"],
        message_id.as_str()
    );
    assert_eq!(message.status, StatusCode::OK, "{}", message.text);
    let meta = &message.json["meta"];
    assert_eq!(meta["messageId"], message_id.as_str());
    assert_eq!(meta["mediId"], INSURER_MEDI_ID);
    assert_eq!(meta["senderMediId"], CLINIC_MEDI_ID);
    assert_eq!(meta["direction"], "Inbox");
    assert_eq!(
        meta["documentDetails"],
        json!({"documentType": "GuaranteeLetterRequest", "documentNumber": "GL-7", "documentDate": "2025-06-01"})
    );
    let content = STANDARD
        .decode(message.json["data"]["content"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(content).unwrap(),
        "Запрос гарантийного письма № GL-7"
    );
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&missing), "MessageNotFound");
}

#[tokio::test]
async fn inject_defaults_and_shared_time() {
    let (app, _) = test_app();
    let token = token(&app).await;

    inject(&app, json!({"mediId": INSURER_MEDI_ID, "count": 2})).await;
    inject(
        &app,
        json!({"mediId": INSURER_MEDI_ID, "count": 3, "eventDateTime": "2025-01-31T23:59:59Z"}),
    )
    .await;
    let events = api_get(&app, &events_uri(INSURER_MEDI_ID, None, 10), &token).await;

    let events = events.json["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 5);
    let times: Vec<&str> = events[2..]
        .iter()
        .map(|event| event["eventDateTime"].as_str().unwrap())
        .collect();
    assert_eq!(times, ["2025-01-31T23:59:59Z"; 3]);
    let mut numbers = Vec::new();
    for event in &events {
        let message_id = event["eventContent"]["messageId"].as_str().unwrap();
        let message = api_get(&app, &format!("/V2/messages/{message_id}"), &token).await;
        let details = &message.json["meta"]["documentDetails"];
        assert_eq!(details["documentType"], "Invoice");
        assert_eq!(details["documentDate"].as_str().unwrap().len(), 10);
        numbers.push(details["documentNumber"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        numbers,
        [
            "INV-00001",
            "INV-00002",
            "INV-00003",
            "INV-00004",
            "INV-00005"
        ]
    );
}

#[tokio::test]
async fn inject_checks() {
    let (app, _) = test_app();
    let cases = [
        (json!({"mediId": FOREIGN_BOX}), "unknown mediId"),
        (
            json!({"mediId": INSURER_MEDI_ID, "count": 0}),
            "count 0 is out of range",
        ),
        (
            json!({"mediId": INSURER_MEDI_ID, "count": 1001}),
            "count 1001 is out of range",
        ),
        (
            json!({"mediId": INSURER_MEDI_ID, "eventDateTime": "yesterday"}),
            "not RFC 3339",
        ),
        (
            json!({"mediId": INSURER_MEDI_ID, "documentKind": "x"}),
            "unknown field",
        ),
        (json!({"count": 1}), "missing field"),
    ];
    for (body, fragment) in cases {
        let answer = inject(&app, body.clone()).await;

        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        let message = answer.json["error"].as_str().unwrap();
        assert!(message.contains(fragment), "{body}: {message}");
    }
}

#[tokio::test]
async fn posted_message_stored_with_events() {
    let (app, state) = test_app();
    let token = token(&app).await;
    let content = STANDARD.encode("<invoice number=\"1\"/>");

    let posted = call(
        &app,
        api_request(
            Method::POST,
            "/V2/messages",
            Some(&token),
            Some(json!({"mediId": INSURER_MEDI_ID, "message": content})),
        ),
    )
    .await;
    let message_id = posted.json["messageId"].as_str().unwrap().to_owned();
    let events = api_get(&app, &events_uri(INSURER_MEDI_ID, None, 10), &token).await;
    let message = api_get(&app, &format!("/V2/messages/{message_id}"), &token).await;

    assert_eq!(posted.status, StatusCode::OK, "{}", posted.text);
    assert_eq!(posted.json["mediId"], INSURER_MEDI_ID);
    assert!(posted.json["documentCirculationId"].is_string());
    let types: Vec<&str> = events.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["NewOutboxMessage", "MessageDelivered"]);
    for event in events.json["events"].as_array().unwrap() {
        assert_eq!(event["eventContent"]["messageId"], message_id.as_str());
    }
    assert_eq!(message.json["data"]["content"], content.as_str());
    assert_eq!(message.json["meta"]["direction"], "Outbox");
    let stats = state.stats();
    assert_eq!(stats["message_posts"], 1);
    assert_eq!(stats["message_fetches"], 1);
    assert_eq!(stats["events_by_box"][INSURER_MEDI_ID], 2);
    assert_eq!(stats["events_by_box"][CLINIC_MEDI_ID], 0);
    assert_eq!(stats["messages_stored"], 1);
}

#[tokio::test]
async fn post_message_checks() {
    let (app, _) = test_app();
    let token = token(&app).await;
    let cases = [
        (
            json!({"message": "AA=="}),
            StatusCode::BAD_REQUEST,
            "InvalidMediId",
        ),
        (
            json!({"mediId": FOREIGN_BOX, "message": "AA=="}),
            StatusCode::FORBIDDEN,
            "HasNoAccessToMediId",
        ),
        (
            json!({"mediId": INSURER_MEDI_ID}),
            StatusCode::BAD_REQUEST,
            "InvalidMessage",
        ),
        (
            json!({"mediId": INSURER_MEDI_ID, "message": "not base64!"}),
            StatusCode::BAD_REQUEST,
            "InvalidMessage",
        ),
        (json!([1, 2]), StatusCode::BAD_REQUEST, "InvalidMediId"),
    ];
    for (body, status, code) in cases {
        let answer = call(
            &app,
            api_request(
                Method::POST,
                "/V2/messages",
                Some(&token),
                Some(body.clone()),
            ),
        )
        .await;

        assert_eq!(answer.status, status, "{body}: {}", answer.text);
        assert_eq!(error_code(&answer), code, "{body}");
    }
}

#[tokio::test]
async fn expired_tokens_rejected() {
    let (app, state) = test_app();
    let old = token(&app).await;
    let uri = events_uri(INSURER_MEDI_ID, None, 10);
    assert_eq!(api_get(&app, &uri, &old).await.status, StatusCode::OK);

    let expired = control(&app, Method::POST, "expire-tokens", None).await;
    let rejected = api_get(&app, &uri, &old).await;
    let fresh = token(&app).await;
    let accepted = api_get(&app, &uri, &fresh).await;

    assert_eq!(expired.json, json!({"expired": 1}));
    assert_eq!(rejected.status, StatusCode::UNAUTHORIZED);
    assert!(rejected.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unknown or expired"));
    assert_eq!(accepted.status, StatusCode::OK);
    let stats = state.stats();
    assert_eq!(stats["token_requests"], 2);
    assert_eq!(stats["tokens_issued"], 2);
    assert_eq!(stats["live_tokens"], 1);
}

#[tokio::test]
async fn token_lifetime_applies_to_new_tokens() {
    let (app, _) = test_app();
    let long_lived = token(&app).await;

    let set = control(
        &app,
        Method::PUT,
        "token-lifetime",
        Some(json!({"seconds": 1})),
    )
    .await;
    let short = call(
        &app,
        token_request(
            Some(&basic(CLIENT_ID, CLIENT_SECRET)),
            "grant_type=client_credentials&scope=medi_api",
        ),
    )
    .await;
    let short_lived = short.json["access_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let uri = events_uri(INSURER_MEDI_ID, None, 10);

    assert_eq!(set.json, json!({"seconds": 1}));
    assert_eq!(short.json["expires_in"], 1);
    assert_eq!(
        api_get(&app, &uri, &short_lived).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api_get(&app, &uri, &long_lived).await.status,
        StatusCode::OK
    );
    let read = control(&app, Method::GET, "token-lifetime", None).await;
    assert_eq!(read.json, json!({"seconds": 1}));
    for seconds in [0, 86_401] {
        let rejected = control(
            &app,
            Method::PUT,
            "token-lifetime",
            Some(json!({"seconds": seconds})),
        )
        .await;
        assert_eq!(rejected.status, StatusCode::BAD_REQUEST, "{seconds}");
    }
}

#[tokio::test]
async fn error_500_mode_has_no_effect() {
    let (app, state) = test_app();
    let token = token(&app).await;
    control(
        &app,
        Method::PUT,
        "mode",
        Some(json!({"mode": "error_500"})),
    )
    .await;

    let posted = call(
        &app,
        api_request(
            Method::POST,
            "/V2/messages",
            Some(&token),
            Some(json!({"mediId": INSURER_MEDI_ID, "message": "AA=="})),
        ),
    )
    .await;
    let token_answer = call(
        &app,
        token_request(
            Some(&basic(CLIENT_ID, CLIENT_SECRET)),
            "grant_type=client_credentials&scope=medi_api",
        ),
    )
    .await;

    assert_eq!(posted.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_code(&posted), "InternalServerError");
    assert_eq!(token_answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(token_answer.json["error"], "server_error");
    let stats = state.stats();
    assert_eq!(stats["message_posts"], 1);
    assert_eq!(stats["messages_stored"], 0);
    assert_eq!(stats["mode"], "error_500");
}

#[tokio::test]
async fn malformed_mode_truncates_after_effect() {
    let (app, state) = test_app();
    let token = token(&app).await;
    control(
        &app,
        Method::PUT,
        "mode",
        Some(json!({"mode": "malformed"})),
    )
    .await;

    let posted = call(
        &app,
        api_request(
            Method::POST,
            "/V2/messages",
            Some(&token),
            Some(json!({"mediId": INSURER_MEDI_ID, "message": "AA=="})),
        ),
    )
    .await;

    assert_eq!(posted.status, StatusCode::OK);
    assert!(posted.text.starts_with("{\"mediId\""), "{}", posted.text);
    assert!(
        serde_json::from_str::<Value>(&posted.text).is_err(),
        "{}",
        posted.text
    );
    assert_eq!(state.stats()["messages_stored"], 1);
}

#[tokio::test]
async fn slow_mode_delays_response() {
    let (app, _) = test_app();
    let token = token(&app).await;
    let set = control(
        &app,
        Method::PUT,
        "mode",
        Some(json!({"mode": "slow", "delay_ms": 300})),
    )
    .await;
    assert_eq!(set.json, json!({"mode": "slow", "delay_ms": 300}));

    let started = Instant::now();
    let answer = api_get(&app, &events_uri(INSURER_MEDI_ID, None, 10), &token).await;

    assert_eq!(answer.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    control(&app, Method::GET, "stats", None).await;
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "control endpoints ignore the mode"
    );
}

#[tokio::test]
async fn mode_endpoint_validates_and_reports() {
    let (app, _) = test_app();

    let unknown = control(&app, Method::PUT, "mode", Some(json!({"mode": "outage"}))).await;
    let too_slow = control(
        &app,
        Method::PUT,
        "mode",
        Some(json!({"mode": "slow", "delay_ms": 120_001})),
    )
    .await;
    let extra = control(
        &app,
        Method::PUT,
        "mode",
        Some(json!({"mode": "normal", "code": 1})),
    )
    .await;
    let current = control(&app, Method::GET, "mode", None).await;

    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.json["error"]
        .as_str()
        .unwrap()
        .contains("normal, error_500, slow, reset, malformed"));
    assert_eq!(too_slow.status, StatusCode::BAD_REQUEST);
    assert_eq!(extra.status, StatusCode::BAD_REQUEST);
    assert_eq!(current.json, json!({"mode": "normal"}));
}

#[tokio::test]
async fn reset_restores_start_state() {
    let (app, state) = test_app();
    let token = token(&app).await;
    inject(&app, json!({"mediId": INSURER_MEDI_ID, "count": 2})).await;
    control(
        &app,
        Method::PUT,
        "mode",
        Some(json!({"mode": "slow", "delay_ms": 10})),
    )
    .await;
    control(
        &app,
        Method::PUT,
        "token-lifetime",
        Some(json!({"seconds": 5})),
    )
    .await;

    let reset = control(&app, Method::POST, "reset", None).await;
    let after = api_get(&app, &events_uri(INSURER_MEDI_ID, None, 10), &token).await;

    assert_eq!(reset.status, StatusCode::NO_CONTENT);
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "tokens are dropped");
    let stats = state.stats();
    assert_eq!(stats["mode"], "normal");
    assert_eq!(stats["token_lifetime_seconds"], 3600);
    assert_eq!(stats["token_requests"], 0);
    assert_eq!(stats["events_requests"], 1);
    assert_eq!(stats["events_by_box"][INSURER_MEDI_ID], 0);
    assert_eq!(stats["messages_stored"], 0);
}

#[tokio::test]
async fn events_bounded_per_box() {
    let (app, state) = test_app();
    let document = model::InboundDocument {
        medi_id: CLINIC_MEDI_ID,
        details: model::DocumentDetails::default(),
        text: Some("x".to_owned()),
        event_date_time: None,
    };
    let rounds = MAX_EVENTS_PER_BOX / 1000 + 1;
    let mut first_ids = Vec::new();
    for _ in 0..rounds {
        let injected = state.inject(&document, 1000);
        first_ids.push(injected[0].event_id.clone());
    }
    let token = token(&app).await;

    let page = api_get(&app, &events_uri(CLINIC_MEDI_ID, None, 1), &token).await;

    assert_eq!(
        state.stats()["events_by_box"][CLINIC_MEDI_ID],
        rounds * 1000
    );
    assert_eq!(
        page.json["events"][0]["eventId"],
        first_ids[1].as_str(),
        "the oldest 1000 events are dropped"
    );
}

#[tokio::test]
async fn reset_mode_closes_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (app, _) = test_app();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let base = format!("http://{address}");

    client
        .put(format!("{base}/_mock/kontur/mode"))
        .json(&json!({"mode": "reset"}))
        .send()
        .await
        .unwrap();
    let closed = client
        .post(format!("{base}/connect/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", "medi_api")])
        .send()
        .await;
    client
        .put(format!("{base}/_mock/kontur/mode"))
        .json(&json!({"mode": "normal"}))
        .send()
        .await
        .unwrap();
    let responded = client
        .post(format!("{base}/connect/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", "medi_api")])
        .send()
        .await
        .unwrap();

    let error = closed.expect_err("the reset mode sent a response");
    assert!(!error.is_timeout(), "{error}");
    assert_eq!(responded.status(), reqwest::StatusCode::OK);
    let stats: Value = client
        .get(format!("{base}/_mock/kontur/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["token_requests"], 2);
    assert_eq!(stats["tokens_issued"], 1);

    server.abort();
}

#[test]
fn command_line_options() {
    let defaults = crate::Cli::try_parse_from(["uig-mock"]).unwrap();
    assert_eq!(defaults.kontur.kontur_client_id, "demo-kontur");
    assert_eq!(defaults.kontur.kontur_client_secret, "demo-kontur-secret");
    assert_eq!(defaults.kontur.kontur_token_lifetime, 3600);

    let custom = crate::Cli::try_parse_from([
        "uig-mock",
        "--kontur-client-id",
        "other",
        "--kontur-client-secret",
        "other-secret",
        "--kontur-token-lifetime",
        "60",
    ])
    .unwrap();
    assert_eq!(custom.kontur.kontur_client_id, "other");
    assert_eq!(custom.kontur.kontur_client_secret, "other-secret");
    assert_eq!(custom.kontur.kontur_token_lifetime, 60);

    for arguments in [
        ["uig-mock", "--kontur-client-id", ""],
        ["uig-mock", "--kontur-token-lifetime", "0"],
        ["uig-mock", "--kontur-token-lifetime", "86401"],
    ] {
        assert!(
            crate::Cli::try_parse_from(arguments).is_err(),
            "{arguments:?}"
        );
    }
}
