//! Tests that drive the whole router, in-process through `oneshot` and over a loopback socket.

use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use clap::{CommandFactory, Parser};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::control::MockState;
use crate::{avinfo_router, parse_loopback_address, Cli};

const KEY: &str = "test-avinfo-key";
const VIN: &str = "XTA21099043765432";
const PLATE: &str = "А123ВС77";

fn test_app() -> (Router, MockState) {
    let state = MockState::new(KEY);
    (avinfo_router(state.clone()), state)
}

async fn send(app: &Router, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(json) => {
            request = request.header("content-type", "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };

    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, json)
}

async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    send(app, Method::GET, uri, None).await
}

async fn set_mode(app: &Router, body: Value) -> (StatusCode, Value) {
    send(app, Method::PUT, "/_mock/avinfo/mode", Some(body)).await
}

fn encode(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

fn vin_uri(vin: &str) -> String {
    format!("/api/v1/vehicle?key={KEY}&vin={}", encode(vin))
}

fn plate_uri(plate: &str) -> String {
    format!("/api/v1/vehicle?key={KEY}&plate={}", encode(plate))
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error.code>")
}

#[tokio::test]
async fn vin_lookup_returns_record() {
    let (app, _) = test_app();
    let (status, body) = get(&app, &vin_uri(VIN)).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], 1);
    assert_eq!(body["balance"], 999);
    let data = &body["data"];
    assert_eq!(data["vin"], VIN);
    assert_eq!(data["brand"], json!({"code": "VAZ", "name": "LADA (ВАЗ)"}));
    assert!(data["plate"].as_str().unwrap().chars().count() >= 8);
    assert!(data["model"].is_string());
    let year = data["year"].as_u64().unwrap();
    assert!((1995..=2025).contains(&year));
    assert!(["A", "B", "C", "D"].contains(&data["category"].as_str().unwrap()));
    let hp = data["power"]["hp"].as_f64().unwrap();
    let kw = data["power"]["kw"].as_f64().unwrap();
    assert_eq!(kw, (hp * 0.7355 * 10.0).round() / 10.0);
    assert!(data["engine_volume"].as_u64().unwrap() > 1000);
    assert!(data["color"].is_string());
    assert!(data["osago"].as_array().unwrap().len() <= 3);

    let (_, second) = get(&app, &vin_uri(VIN)).await;
    assert_eq!(second["balance"], 998);
}

#[tokio::test]
async fn plate_lookup_decodes_cyrillic() {
    let (app, _) = test_app();
    // А123ВС77 percent-encoded by hand: А = D0 90, В = D0 92, С = D0 A1.
    let uri = format!("/api/v1/vehicle?key={KEY}&plate=%D0%90123%D0%92%D0%A177");
    let (status, body) = get(&app, &uri).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["plate"], PLATE);
    let vin = body["data"]["vin"].as_str().unwrap();
    assert_eq!(vin.len(), 17);

    // The VIN that the plate lookup derives is itself a valid lookup with the same vehicle.
    let (status, by_vin) = get(&app, &vin_uri(vin)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_vin["data"]["brand"], body["data"]["brand"]);
    assert_eq!(by_vin["data"]["model"], body["data"]["model"]);
}

#[tokio::test]
async fn equal_lookups_give_equal_data() {
    let (app, _) = test_app();
    let (_, first) = get(&app, &vin_uri(VIN)).await;
    let (_, second) = get(&app, &vin_uri(VIN)).await;
    assert_eq!(first["data"], second["data"]);

    let (_, first_plate) = get(&app, &plate_uri(PLATE)).await;
    let (_, second_plate) = get(&app, &plate_uri(PLATE)).await;
    assert_eq!(first_plate["data"], second_plate["data"]);

    let (_, other) = get(&app, &vin_uri("XTA21099043765433")).await;
    assert_ne!(first["data"], other["data"]);
}

#[tokio::test]
async fn wrong_or_missing_key_gets_401() {
    let (app, state) = test_app();
    let uris = [
        format!("/api/v1/vehicle?key=wrong&vin={VIN}"),
        format!("/api/v1/vehicle?vin={VIN}"),
        format!("/api/v1/vehicle?key=&vin={VIN}"),
    ];
    for uri in uris {
        let (status, body) = get(&app, &uri).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(body["success"], 0, "{uri}");
        assert_eq!(error_code(&body), "invalid_key", "{uri}");
    }

    let (_, stats) = get(&app, "/_mock/stats").await;
    assert_eq!(
        stats["avinfo"]["balance"], 1000,
        "rejected requests must not charge"
    );
    assert_eq!(state.avinfo_key(), KEY);
}

#[tokio::test]
async fn bad_input_gets_400() {
    let (app, _) = test_app();
    let cases = [
        (vin_uri("XTA2109904376543"), "invalid_vin"),
        (vin_uri("XTA2109904376543I"), "invalid_vin"),
        (plate_uri("A123BC77"), "invalid_plate"),
        (plate_uri("А123ВС7777"), "invalid_plate"),
        (format!("/api/v1/vehicle?key={KEY}"), "invalid_request"),
        (
            format!(
                "/api/v1/vehicle?key={KEY}&vin={VIN}&plate={}",
                encode(PLATE)
            ),
            "invalid_request",
        ),
        (
            format!("/api/v1/vehicle?key={KEY}&vin={VIN}&vin={VIN}"),
            "invalid_request",
        ),
    ];
    for (uri, code) in cases {
        let (status, body) = get(&app, &uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(body["success"], 0, "{uri}");
        assert_eq!(error_code(&body), code, "{uri}");
        assert!(
            body["error"]["message"].as_str().unwrap().len() > 10,
            "{uri}"
        );
    }
}

#[tokio::test]
async fn not_found_markers_get_404() {
    let (app, _) = test_app();
    for uri in [vin_uri("XTA21099000000000"), plate_uri("А000АА77")] {
        let (status, body) = get(&app, &uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(error_code(&body), "not_found", "{uri}");
    }

    let (_, stats) = get(&app, "/_mock/stats").await;
    assert_eq!(
        stats["avinfo"]["balance"], 1000,
        "not_found must not charge"
    );
}

#[tokio::test]
async fn no_balance_mode_gets_402() {
    let (app, _) = test_app();
    let (status, body) = set_mode(&app, json!({"mode": "no_balance"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"mode": "no_balance"}));

    let (status, body) = get(&app, &vin_uri(VIN)).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(body["success"], 0);
    assert_eq!(error_code(&body), "no_balance");
}

#[tokio::test]
async fn exhausted_balance_gets_402() {
    let (app, state) = test_app();
    state.set_balance(1);

    let (status, body) = get(&app, &vin_uri(VIN)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["balance"], 0);

    let (status, body) = get(&app, &vin_uri(VIN)).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(error_code(&body), "no_balance");
}

#[tokio::test]
async fn outage_mode_gets_source_unavailable() {
    let (app, _) = test_app();
    set_mode(&app, json!({"mode": "outage"})).await;

    let (status, body) = get(&app, &plate_uri(PLATE)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], 0);
    assert_eq!(error_code(&body), "source_unavailable");
    assert!(body.get("data").is_none());
}

#[tokio::test]
async fn error_500_mode_gets_json_error() {
    let (app, _) = test_app();
    set_mode(&app, json!({"mode": "error_500"})).await;

    let (status, body) = get(&app, &vin_uri(VIN)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["success"], 0);
    assert!(body["error"]["code"].is_string());
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn slow_mode_delays_response() {
    let (app, _) = test_app();
    let (status, body) = set_mode(&app, json!({"mode": "slow", "delay_ms": 300})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"mode": "slow", "delay_ms": 300}));

    let started = Instant::now();
    let (status, body) = get(&app, &vin_uri(VIN)).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], 1);
}

#[tokio::test]
async fn mode_endpoint_validates_and_reports() {
    let (app, _) = test_app();
    let (_, body) = get(&app, "/_mock/avinfo/mode").await;
    assert_eq!(body, json!({"mode": "normal"}));

    let (status, body) = set_mode(&app, json!({"mode": "broken"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("\"broken\""), "{message}");
    for mode in ["normal", "outage", "no_balance", "error_500", "slow"] {
        assert!(message.contains(mode), "{message} does not name {mode}");
    }

    let (status, _) = set_mode(&app, json!({"mode": "slow", "delay_ms": 10_000_000})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = set_mode(&app, json!({"mod": "slow"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    set_mode(&app, json!({"mode": "slow"})).await;
    let (_, body) = get(&app, "/_mock/avinfo/mode").await;
    assert_eq!(body, json!({"mode": "slow", "delay_ms": 2000}));
}

#[tokio::test]
async fn stats_count_each_lookup() {
    let (app, _) = test_app();
    get(&app, &vin_uri(VIN)).await;
    get(&app, &vin_uri(VIN)).await;
    get(&app, &plate_uri(PLATE)).await;
    get(&app, &vin_uri("XTA2109904376543")).await;
    get(&app, &format!("/api/v1/vehicle?key={KEY}")).await;

    let (status, stats) = get(&app, "/_mock/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["avinfo"]["requests"], 5);
    assert_eq!(stats["avinfo"]["by_key"][format!("vin:{VIN}")], 2);
    assert_eq!(stats["avinfo"]["by_key"][format!("plate:{PLATE}")], 1);
    assert_eq!(stats["avinfo"]["by_key"]["vin:XTA2109904376543"], 1);
    assert_eq!(stats["avinfo"]["by_key"].as_object().unwrap().len(), 3);
    assert_eq!(stats["avinfo"]["balance"], 997);
}

#[tokio::test]
async fn reset_restores_start_state() {
    let (app, _) = test_app();
    get(&app, &vin_uri(VIN)).await;
    set_mode(&app, json!({"mode": "outage"})).await;
    send(
        &app,
        Method::POST,
        "/_mock/callbacks",
        Some(json!({"event": "x"})),
    )
    .await;
    send(
        &app,
        Method::PUT,
        "/_mock/callbacks/mode",
        Some(json!({"fail_next": 2})),
    )
    .await;

    let (status, _) = send(&app, Method::POST, "/_mock/reset", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (_, stats) = get(&app, "/_mock/stats").await;
    assert_eq!(stats["avinfo"]["requests"], 0);
    assert_eq!(stats["avinfo"]["by_key"], json!({}));
    assert_eq!(stats["avinfo"]["balance"], 1000);
    assert_eq!(stats["avinfo"]["mode"], "normal");
    assert_eq!(stats["callbacks"]["received"], 0);
    assert_eq!(stats["callbacks"]["fail_next"], 0);
    let (_, callbacks) = get(&app, "/_mock/callbacks").await;
    assert_eq!(callbacks, json!([]));
}

#[tokio::test]
async fn callback_sink_stores_requests() {
    let (app, _) = test_app();
    let body = r#"{"type":"vehicle.found","data":{"vin":"XTA21099043765432"}}"#;
    let request = Request::post("/_mock/callbacks")
        .header("content-type", "application/json")
        .header("webhook-id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")
        .header("webhook-timestamp", "1735689600")
        .header(
            "webhook-signature",
            "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
        )
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    send(
        &app,
        Method::POST,
        "/_mock/callbacks",
        Some(json!({"second": true})),
    )
    .await;

    let (status, callbacks) = get(&app, "/_mock/callbacks").await;
    assert_eq!(status, StatusCode::OK);
    let callbacks = callbacks.as_array().unwrap();
    assert_eq!(callbacks.len(), 2);

    let first = &callbacks[0];
    assert_eq!(first["status"], 200);
    assert_eq!(first["body"], body);
    assert_eq!(
        first["headers"]["webhook-id"],
        "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
    );
    assert_eq!(first["headers"]["webhook-timestamp"], "1735689600");
    assert_eq!(
        first["headers"]["webhook-signature"],
        "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
    );
    assert!(first["received_at"].as_str().unwrap().contains('T'));

    let second = &callbacks[1];
    assert_eq!(second["body"], r#"{"second":true}"#, "newest must be last");
    assert_eq!(second["headers"]["webhook-id"], Value::Null);
}

#[tokio::test]
async fn fail_next_returns_500_then_200() {
    let (app, _) = test_app();
    let (status, body) = send(
        &app,
        Method::PUT,
        "/_mock/callbacks/mode",
        Some(json!({"fail_next": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"fail_next": 2}));

    let mut statuses = Vec::new();
    for attempt in 0..3 {
        let payload = json!({"attempt": attempt});
        let (status, _) = send(&app, Method::POST, "/_mock/callbacks", Some(payload)).await;
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::OK
        ]
    );

    let (_, callbacks) = get(&app, "/_mock/callbacks").await;
    let stored: Vec<u64> = callbacks
        .as_array()
        .unwrap()
        .iter()
        .map(|callback| callback["status"].as_u64().unwrap())
        .collect();
    assert_eq!(stored, [500, 500, 200]);
    let (_, mode) = get(&app, "/_mock/callbacks/mode").await;
    assert_eq!(mode, json!({"fail_next": 0}));

    let (status, _) = send(
        &app,
        Method::PUT,
        "/_mock/callbacks/mode",
        Some(json!({"fail_next": -1})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn serves_over_loopback_socket() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (app, _) = test_app();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let base = format!("http://{address}");

    // reqwest percent-encodes the Cyrillic plate itself, as the connector's client does.
    let response = client
        .get(format!("{base}/api/v1/vehicle"))
        .query(&[("key", KEY), ("plate", PLATE)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["plate"], PLATE);

    client
        .put(format!("{base}/_mock/callbacks/mode"))
        .json(&json!({"fail_next": 1}))
        .send()
        .await
        .unwrap();
    let failed = client
        .post(format!("{base}/_mock/callbacks"))
        .header("webhook-id", "msg_1")
        .body("first")
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), reqwest::StatusCode::INTERNAL_SERVER_ERROR);
    let retried = client
        .post(format!("{base}/_mock/callbacks"))
        .header("webhook-id", "msg_1")
        .body("first")
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), reqwest::StatusCode::OK);

    let stats: Value = client
        .get(format!("{base}/_mock/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["avinfo"]["by_key"][format!("plate:{PLATE}")], 1);
    assert_eq!(stats["callbacks"]["received"], 2);

    server.abort();
}

#[test]
fn listen_accepts_only_loopback() {
    for address in ["127.0.0.1:9090", "127.0.0.2:9090", "[::1]:9090"] {
        let parsed = parse_loopback_address(address);
        assert_eq!(parsed, Ok(address.parse().unwrap()), "{address}");
    }
    for address in ["0.0.0.0:9090", "192.168.1.10:9090", "[::]:9090"] {
        let error = parse_loopback_address(address).unwrap_err();
        assert!(error.contains("only on loopback"), "{address}: {error}");
    }
    let error = parse_loopback_address("localhost").unwrap_err();
    assert!(error.contains("not an IP address and port"), "{error}");

    let parsed = Cli::try_parse_from(["uig-mock", "--listen", "0.0.0.0:9090"]);
    assert!(parsed.is_err(), "the command line accepted 0.0.0.0");
    let parsed = Cli::try_parse_from(["uig-mock", "--avinfo-key", ""]);
    assert!(parsed.is_err(), "the command line accepted an empty key");
    let defaults = Cli::try_parse_from(["uig-mock"]).unwrap();
    assert_eq!(defaults.listen, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(defaults.avinfo_key, "demo-avinfo-key");
}

#[test]
fn help_documents_cli_and_markers() {
    Cli::command().debug_assert();
    let help = Cli::command().render_long_help().to_string();
    assert!(help.contains("--listen"));
    assert!(help.contains("--avinfo-key"));
    assert!(help.contains("00000"));
    assert!(help.contains("127.0.0.1:9090"));
}
