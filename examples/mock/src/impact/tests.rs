//! Tests of the mock IMPACT through its router, in-process and over a loopback socket.

use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use clap::Parser;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;
use crate::Cli;

const USER: &str = "test-impact";
const PASSWORD: &str = "test-impact-password";
const SUBMIT: &str = "/impact/api/v1/messages";

fn test_app() -> Router {
    let options = ImpactOptions {
        impact_user: USER.to_string(),
        impact_password: PASSWORD.to_string(),
    };
    router(ImpactState::new(&options))
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{user}:{password}")))
}

/// Sends a request with the given headers and returns the status, the headers and the body text.
async fn exchange(
    app: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, String)],
    body: Option<String>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let body = body.map(Body::from).unwrap_or_else(Body::empty);
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();

    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

fn parse(text: &str) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(text).unwrap_or_else(|error| panic!("body is not JSON ({error}): {text}"))
}

async fn submit_as(
    app: &Router,
    authorization: &str,
    key: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut headers = vec![
        ("authorization", authorization.to_string()),
        ("content-type", "application/json".to_string()),
    ];
    if let Some(key) = key {
        headers.push(("idempotency-key", key.to_string()));
    }
    let (status, _, text) =
        exchange(app, Method::POST, SUBMIT, &headers, Some(body.to_string())).await;
    (status, parse(&text))
}

async fn submit(app: &Router, key: &str, body: Value) -> (StatusCode, Value) {
    submit_as(app, &basic(USER, PASSWORD), Some(key), body).await
}

async fn query(app: &Router, id: &str) -> (StatusCode, Value) {
    let headers = [("authorization", basic(USER, PASSWORD))];
    let (status, _, text) =
        exchange(app, Method::GET, &format!("{SUBMIT}/{id}"), &headers, None).await;
    (status, parse(&text))
}

async fn control(
    app: &Router,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let headers = [("content-type", "application/json".to_string())];
    let (status, _, text) = exchange(
        app,
        method,
        path,
        &headers,
        body.map(|body| body.to_string()),
    )
    .await;
    (status, parse(&text))
}

fn claim(external_id: &str, payload: Value) -> Value {
    json!({"type": "claim", "externalId": external_id, "payload": payload})
}

#[tokio::test]
async fn submit_then_status_progresses() {
    let app = test_app();

    let (status, submitted) = submit(&app, "uig-1", claim("uig-1", json!({"amount": 100}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{submitted}");
    assert_eq!(submitted["Status"], "QUEUED");
    assert_eq!(submitted["id"], "IMP-000001");
    assert_eq!(submitted["externalId"], "uig-1");

    let (status, first) = query(&app, "IMP-000001").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["Status"], "PROCESSING");
    assert!(first.get("result").is_none(), "{first}");

    let (_, second) = query(&app, "IMP-000001").await;
    assert_eq!(second["Status"], "DONE");
    assert_eq!(second["result"]["number"], "CLM-000001");
    assert_eq!(second["result"]["externalId"], "uig-1");

    let (_, third) = query(&app, "IMP-000001").await;
    assert_eq!(third, second);
}

#[tokio::test]
async fn repeated_key_stores_once() {
    let app = test_app();
    let body = claim("uig-7", json!({"amount": 1}));

    let (first_status, first) = submit(&app, "uig-7", body.clone()).await;
    let (second_status, second) = submit(&app, "uig-7", body).await;

    assert_eq!(first_status, StatusCode::ACCEPTED);
    assert_eq!(second_status, StatusCode::OK);
    assert_eq!(second["id"], first["id"]);
    let (_, state) = control(&app, Method::GET, "/_mock/impact/state", None).await;
    assert_eq!(state["submissions"].as_array().unwrap().len(), 1, "{state}");
    assert_eq!(state["submissions"][0]["submit_count"], 2);
    assert_eq!(state["submit_counts"]["uig-7"], 2);
    assert_eq!(state["requests"]["submit"], 2);
}

#[tokio::test]
async fn repeat_marked_replayed() {
    let app = test_app();
    let headers = [
        ("authorization", basic(USER, PASSWORD)),
        ("idempotency-key", "uig-3".to_string()),
    ];
    let body = claim("uig-3", json!({})).to_string();

    let (_, first_headers, _) =
        exchange(&app, Method::POST, SUBMIT, &headers, Some(body.clone())).await;
    let (_, second_headers, _) = exchange(&app, Method::POST, SUBMIT, &headers, Some(body)).await;

    assert!(first_headers.get("idempotent-replayed").is_none());
    assert_eq!(second_headers["idempotent-replayed"], "true");
}

#[tokio::test]
async fn reused_key_with_other_body_conflicts() {
    let app = test_app();
    submit(&app, "uig-2", claim("uig-2", json!({"amount": 1}))).await;

    let (status, body) = submit(&app, "uig-2", claim("uig-2", json!({"amount": 2}))).await;

    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_conflict");
}

#[tokio::test]
async fn bad_credentials_get_401() {
    let app = test_app();
    let cases = [
        basic(USER, "wrong"),
        basic("someone", PASSWORD),
        "Bearer token".to_string(),
        "Basic not-base64!".to_string(),
        format!("Basic {}", BASE64.encode("no-colon")),
    ];
    for authorization in cases {
        let (status, body) = submit_as(
            &app,
            &authorization,
            Some("uig-1"),
            claim("uig-1", json!({})),
        )
        .await;

        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization}");
        assert_eq!(body["error"]["code"], "unauthorized", "{authorization}");
        assert!(!body.to_string().contains(PASSWORD), "{body}");
    }

    let (status, _, _) = exchange(
        &app,
        Method::GET,
        &format!("{SUBMIT}/IMP-000001"),
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, state) = control(&app, Method::GET, "/_mock/impact/state", None).await;
    assert_eq!(state["submissions"], json!([]));
}

#[tokio::test]
async fn unauthorized_names_basic_scheme() {
    let app = test_app();

    let (_, headers, _) = exchange(&app, Method::POST, SUBMIT, &[], Some("{}".to_string())).await;

    assert_eq!(headers["www-authenticate"], "Basic realm=\"IMPACT\"");
}

#[tokio::test]
async fn invalid_submits_rejected() {
    let app = test_app();
    let cases = [
        (json!([1, 2]), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            json!({"externalId": "uig-1", "payload": {}}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"type": "claim", "payload": {}}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"type": "claim", "externalId": "uig-1"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"type": "vehicle", "externalId": "uig-1", "payload": {}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_type",
        ),
        (
            claim("uig-1", json!("text")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
        ),
    ];
    for (body, expected_status, expected_code) in cases {
        let (status, response) = submit(&app, "uig-1", body.clone()).await;

        assert_eq!(status, expected_status, "{body}");
        assert_eq!(response["error"]["code"], expected_code, "{body}");
    }

    let (status, response) = submit_as(
        &app,
        &basic(USER, PASSWORD),
        None,
        claim("uig-1", json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(response["error"]["code"], "invalid_idempotency_key");
    let (status, _) = submit(&app, &"k".repeat(256), claim("uig-1", json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_id_gets_404() {
    let app = test_app();

    let (status, body) = query(&app, "IMP-999999").await;

    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn reject_type_and_flag_end_in_error() {
    let app = test_app();
    let by_type = json!({"type": "reject", "externalId": "uig-1", "payload": {}});
    let by_flag = claim("uig-2", json!({"reject": true}));
    submit(&app, "uig-1", by_type).await;
    submit(&app, "uig-2", by_flag).await;

    for id in ["IMP-000001", "IMP-000002"] {
        query(&app, id).await;
        let (_, document) = query(&app, id).await;

        assert_eq!(document["Status"], "ERROR", "{document}");
        assert_eq!(document["error"]["code"], "rejected");
        assert!(document["error"]["message"].as_str().unwrap().contains(id));
    }
}

#[tokio::test]
async fn progress_setting_applies_to_new_messages() {
    let app = test_app();
    submit(&app, "uig-1", claim("uig-1", json!({}))).await;

    let (status, body) = control(
        &app,
        Method::PUT,
        "/_mock/impact/progress",
        Some(json!({"status_queries_until_done": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, at_once) = submit(&app, "uig-2", claim("uig-2", json!({}))).await;
    let (_, older) = query(&app, "IMP-000001").await;

    assert_eq!(at_once["Status"], "DONE");
    assert_eq!(at_once["result"]["number"], "CLM-000002");
    assert_eq!(older["Status"], "PROCESSING");
    let (_, progress) = control(&app, Method::GET, "/_mock/impact/progress", None).await;
    assert_eq!(progress, json!({"status_queries_until_done": 0}));
}

#[tokio::test]
async fn progress_endpoint_validates() {
    let app = test_app();
    let bodies = [
        json!({"status_queries_until_done": 1001}),
        json!({"status_queries_until_done": -1}),
        json!({"queries": 3}),
    ];
    for body in bodies {
        let (status, response) = control(
            &app,
            Method::PUT,
            "/_mock/impact/progress",
            Some(body.clone()),
        )
        .await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(response["error"].is_string(), "{response}");
    }
}

#[tokio::test]
async fn error_500_mode_stores_then_fails() {
    let app = test_app();
    control(
        &app,
        Method::PUT,
        "/_mock/impact/mode",
        Some(json!({"mode": "error_500"})),
    )
    .await;

    let (status, body) = submit(&app, "uig-5", claim("uig-5", json!({}))).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["code"], "internal_error");

    control(
        &app,
        Method::PUT,
        "/_mock/impact/mode",
        Some(json!({"mode": "normal"})),
    )
    .await;
    let (status, repeated) = submit(&app, "uig-5", claim("uig-5", json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{repeated}");
    assert_eq!(repeated["id"], "IMP-000001");
    let (_, state) = control(&app, Method::GET, "/_mock/impact/state", None).await;
    assert_eq!(state["submissions"].as_array().unwrap().len(), 1);
    assert_eq!(state["submit_counts"]["uig-5"], 2);
}

#[tokio::test]
async fn malformed_mode_truncates_body() {
    let app = test_app();
    control(
        &app,
        Method::PUT,
        "/_mock/impact/mode",
        Some(json!({"mode": "malformed"})),
    )
    .await;
    let headers = [
        ("authorization", basic(USER, PASSWORD)),
        ("idempotency-key", "uig-1".to_string()),
    ];

    let (status, _, text) = exchange(
        &app,
        Method::POST,
        SUBMIT,
        &headers,
        Some(claim("uig-1", json!({})).to_string()),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
}

#[tokio::test]
async fn slow_mode_delays_response() {
    let app = test_app();
    let (status, mode) = control(
        &app,
        Method::PUT,
        "/_mock/impact/mode",
        Some(json!({"mode": "slow", "delay_ms": 200})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mode, json!({"mode": "slow", "delay_ms": 200}));

    let started = Instant::now();
    let (status, _) = query(&app, "IMP-000001").await;

    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn mode_endpoint_validates() {
    let app = test_app();
    let bodies = [
        json!({"mode": "outage"}),
        json!({"mode": "slow", "delay_ms": 120_001}),
        json!({"mode": "slow", "delay": 5}),
    ];
    for body in bodies {
        let (status, response) =
            control(&app, Method::PUT, "/_mock/impact/mode", Some(body.clone())).await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(response["error"].is_string(), "{response}");
    }
    let (status, response) = control(
        &app,
        Method::PUT,
        "/_mock/impact/mode",
        Some(json!({"mode": "outage"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        response["error"]
            .as_str()
            .unwrap()
            .contains("normal, error_500, slow, reset, malformed"),
        "{response}"
    );

    let (_, mode) = control(&app, Method::GET, "/_mock/impact/mode", None).await;
    assert_eq!(mode, json!({"mode": "normal"}));
}

#[tokio::test]
async fn reset_restores_start_state() {
    let app = test_app();
    submit(&app, "uig-1", claim("uig-1", json!({}))).await;
    control(
        &app,
        Method::PUT,
        "/_mock/impact/mode",
        Some(json!({"mode": "error_500"})),
    )
    .await;
    control(
        &app,
        Method::PUT,
        "/_mock/impact/progress",
        Some(json!({"status_queries_until_done": 5})),
    )
    .await;

    let (status, _) = control(&app, Method::POST, "/_mock/impact/reset", None).await;

    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, state) = control(&app, Method::GET, "/_mock/impact/state", None).await;
    assert_eq!(
        state,
        json!({
            "mode": {"mode": "normal"},
            "status_queries_until_done": 2,
            "requests": {"submit": 0, "status": 0},
            "submissions": [],
            "submit_counts": {},
        })
    );
}

#[tokio::test]
async fn reset_mode_breaks_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, test_app()).await });
    let client = reqwest::Client::new();
    let base = format!("http://{address}");
    client
        .put(format!("{base}/_mock/impact/mode"))
        .json(&json!({"mode": "reset"}))
        .send()
        .await
        .unwrap();

    let outcome = async {
        let response = client
            .post(format!("{base}{SUBMIT}"))
            .basic_auth(USER, Some(PASSWORD))
            .header("idempotency-key", "uig-1")
            .json(&claim("uig-1", json!({})))
            .send()
            .await?;
        response.bytes().await
    }
    .await;

    assert!(
        outcome.is_err(),
        "the reset mode delivered a whole response: {outcome:?}"
    );
    let state: Value = client
        .get(format!("{base}/_mock/impact/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["submit_counts"]["uig-1"], 1, "{state}");
    server.abort();
}

#[test]
fn command_line_sets_credentials() {
    let defaults = Cli::try_parse_from(["uig-mock"]).unwrap();
    assert_eq!(defaults.impact.impact_user, "demo-impact");
    assert_eq!(defaults.impact.impact_password, "demo-impact-password");

    let custom =
        Cli::try_parse_from(["uig-mock", "--impact-user", "u", "--impact-password", "p"]).unwrap();
    assert_eq!(custom.impact.impact_user, "u");
    assert_eq!(custom.impact.impact_password, "p");

    let empty = Cli::try_parse_from(["uig-mock", "--impact-password", ""]);
    assert!(
        empty.is_err(),
        "the command line accepted an empty password"
    );
}
