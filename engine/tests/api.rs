//! HTTP API tests against the real `uig` binary: rejections, error language, parameter values,
//! listings, replays, the example client scripts and concurrent use of SQLite.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::{sign_with, Gateway, Mock};
use serde_json::Value;

const SEND: &str = "/async/message/send";
const VIN_MESSAGE: &str = r#"{"vin":"XTA21099043765432"}"#;

/// The parameters of a send that the gateway accepts.
const VALID_SEND: [(&str, &str); 3] = [("recipient", "avinfo"), ("entity", "vehicle"), ("message", VIN_MESSAGE)];

fn start() -> (Mock, Gateway) {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);
    (mock, gateway)
}

/// Checks an error response: HTTP status, `error.code` and, when given, `error.field`.
#[track_caller]
fn assert_error(actual: (u16, &Value), status: u16, code: &str, field: Option<&str>) {
    let (actual_status, body) = actual;
    assert_eq!(actual_status, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    if let Some(field) = field {
        assert_eq!(body["error"]["field"], field, "{body}");
    }
}

/// Signs the parameters of a send, then removes `name` from the signed list.
fn signed_without(gateway: &Gateway, params: &[(&str, &str)], name: &str) -> Vec<(String, String)> {
    let mut signed = gateway.sign("POST", SEND, params);
    signed.retain(|(key, _)| key != name);
    signed
}

/// Returns `signed` with the value of `name` replaced.
fn with_value(mut signed: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
    for (key, old) in signed.iter_mut() {
        if key == name {
            *old = value.to_string();
        }
    }
    signed
}

/// An HTTP response with its headers and its body parsed as JSON (or kept as a string).
struct HttpResponse {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

/// Sends one request with a query string, an optional typed body and extra headers.
fn request(gateway: &Gateway, method: &str, path: &str, query: &str, body: Option<(&str, Vec<u8>)>, headers: &[(&str, &str)]) -> HttpResponse {
    let client = reqwest::blocking::Client::new();
    let url = if query.is_empty() { format!("{}{path}", gateway.url) } else { format!("{}{path}?{query}", gateway.url) };
    let mut builder = client.request(method.parse().unwrap(), url);
    if let Some((content_type, bytes)) = body {
        builder = builder.header("content-type", content_type).body(bytes);
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = builder.send().unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    HttpResponse { status, headers, body }
}

fn form(params: &[(String, String)]) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish().into_bytes()
}

/// Posts `signed` as a form body to the send endpoint with extra headers.
fn post_form(gateway: &Gateway, signed: &[(String, String)], headers: &[(&str, &str)]) -> HttpResponse {
    request(gateway, "POST", SEND, "", Some(("application/x-www-form-urlencoded", form(signed))), headers)
}

fn shifted_timestamp(seconds: i64) -> String {
    (chrono::Utc::now() + chrono::TimeDelta::seconds(seconds)).to_rfc3339()
}

fn id_of(body: &Value) -> i64 {
    body["id"].as_i64().unwrap_or_else(|| panic!("no id in {body}"))
}

fn ids_of(body: &Value) -> Vec<i64> {
    body["data"].as_array().unwrap_or_else(|| panic!("no data in {body}")).iter().map(id_of).collect()
}

// ---- Rejections: exact status and code, nothing stored ----

#[test]
fn wrong_hash_rejected() {
    let (_mock, gateway) = start();
    let signed = gateway.sign("POST", SEND, &VALID_SEND);
    let signed = with_value(signed, "hash", &"0".repeat(64));

    let (status, body) = gateway.send_raw("POST", SEND, &signed, &[]);

    assert_error((status, &body), 401, "invalid_signature", Some("hash"));
    assert_eq!(gateway.count_messages(), 0);
}

#[test]
fn changed_value_rejected() {
    let (_mock, gateway) = start();
    let signed = gateway.sign("POST", SEND, &VALID_SEND);
    let signed = with_value(signed, "message", r#"{"vin":"XTA21099043765433"}"#);

    let (status, body) = gateway.send_raw("POST", SEND, &signed, &[]);

    assert_error((status, &body), 401, "invalid_signature", Some("hash"));
    assert_eq!(gateway.count_messages(), 0);
}

#[test]
fn missing_hash_rejected() {
    let (_mock, gateway) = start();
    let signed = signed_without(&gateway, &VALID_SEND, "hash");

    let (status, body) = gateway.send_raw("POST", SEND, &signed, &[]);

    assert_error((status, &body), 401, "missing_signature", Some("hash"));
    assert_eq!(gateway.count_messages(), 0);
}

#[test]
fn stale_timestamp_rejected() {
    let (_mock, gateway) = start();
    let timestamp = shifted_timestamp(-400);
    let mut params = VALID_SEND.to_vec();
    params.push(("timestamp", &timestamp));

    let (status, body) = gateway.call("POST", SEND, &params);

    assert_error((status, &body), 401, "timestamp_out_of_window", Some("timestamp"));
    assert_eq!(gateway.count_messages(), 0);
}

#[test]
fn future_timestamp_rejected() {
    let (_mock, gateway) = start();
    let timestamp = shifted_timestamp(400);
    let mut params = VALID_SEND.to_vec();
    params.push(("timestamp", &timestamp));

    let (status, body) = gateway.call("POST", SEND, &params);

    assert_error((status, &body), 401, "timestamp_out_of_window", Some("timestamp"));
    assert_eq!(gateway.count_messages(), 0);
}

#[test]
fn garbage_timestamp_rejected() {
    let (_mock, gateway) = start();
    let mut params = VALID_SEND.to_vec();
    params.push(("timestamp", "yesterday at noon"));

    let (status, body) = gateway.call("POST", SEND, &params);

    assert_error((status, &body), 400, "invalid_timestamp", Some("timestamp"));
    assert_eq!(gateway.count_messages(), 0);
}

#[test]
fn missing_send_parameters_rejected() {
    let (_mock, gateway) = start();

    for missing in ["recipient", "entity", "message"] {
        let params: Vec<(&str, &str)> = VALID_SEND.iter().copied().filter(|(name, _)| *name != missing).collect();
        let (status, body) = gateway.call("POST", SEND, &params);
        assert_error((status, &body), 400, "missing_parameter", Some(missing));
    }

    assert_eq!(gateway.count_messages(), 0);
}

#[test]
fn per_page_out_of_range() {
    let (_mock, gateway) = start();

    for per_page in ["9", "1001"] {
        let (status, body) = gateway.call("GET", "/sync/message/list-all", &[("per_page", per_page)]);
        assert_error((status, &body), 400, "invalid_parameter", Some("per_page"));
    }

    assert_eq!(gateway.count_messages(), 0);
}

#[test]
fn unknown_recipient_rejected() {
    let (_mock, gateway) = start();
    let params = [("recipient", "avinfoo"), ("entity", "vehicle"), ("message", VIN_MESSAGE)];

    let (status, body) = gateway.call("POST", SEND, &params);

    assert_error((status, &body), 422, "unknown_recipient", Some("recipient"));
    assert_eq!(gateway.count_messages(), 0);
}

#[test]
fn invalid_message_json_rejected() {
    let (_mock, gateway) = start();
    let params = [("recipient", "avinfo"), ("entity", "vehicle"), ("message", r#"{"vin":"XTA21099043765432""#)];

    let (status, body) = gateway.call("POST", SEND, &params);

    assert_error((status, &body), 422, "invalid_message", Some("message"));
    assert_eq!(gateway.count_messages(), 0);
}

#[test]
fn unsupported_entity_rejected() {
    let (_mock, gateway) = start();
    let params = [("recipient", "avinfo"), ("entity", "echo"), ("message", VIN_MESSAGE)];

    let (status, body) = gateway.call("POST", SEND, &params);

    assert_error((status, &body), 422, "unsupported_entity", Some("entity"));
    assert_eq!(gateway.count_messages(), 0);
}

#[test]
fn callback_host_not_allowed() {
    let (_mock, gateway) = start();
    // The test client may call back 127.0.0.1 only. 127.0.0.2 is loopback too, but not on its allow-list.
    let mut params = VALID_SEND.to_vec();
    params.push(("callback", "http://127.0.0.2:9/hook"));

    let (status, body) = gateway.call("POST", SEND, &params);

    assert_error((status, &body), 422, "callback_not_allowed", Some("callback"));
    assert_eq!(gateway.count_messages(), 0);
}

#[test]
fn foreign_message_not_found() {
    let (_mock, gateway) = start();
    let config = gateway.config_path.to_str().unwrap();
    let other: Value = serde_json::from_str(&common::uig(&["client", "add", "other", "--config", config, "--allow", "*", "--json"])).unwrap();
    let other_token = other["token"].as_str().unwrap();
    let other_secret = other["secret"].as_str().unwrap();

    let (status, body) = gateway.call("POST", SEND, &VALID_SEND);
    assert_eq!(status, 202, "{body}");
    let id = id_of(&body).to_string();
    let signed = sign_with(other_token, other_secret, "GET", "/sync/message/get", &[("id", &id)]);
    let (status, body) = gateway.send_raw("GET", "/sync/message/get", &signed, &[]);

    assert_error((status, &body), 404, "message_not_found", Some("id"));
    assert_eq!(gateway.count_messages(), 1);
}

#[test]
fn oversize_body_rejected() {
    let (_mock, gateway) = start();
    let filler = "x".repeat(1024 * 1024 + 1);
    let message = format!(r#"{{"vin":"XTA21099043765432","note":"{filler}"}}"#);
    let params = [("recipient", "avinfo"), ("entity", "vehicle"), ("message", message.as_str())];

    let (status, body) = gateway.call("POST", SEND, &params);

    assert_error((status, &body), 413, "body_too_large", None);
    assert_eq!(gateway.count_messages(), 0);
}

#[test]
fn duplicate_parameter_rejected() {
    let (_mock, gateway) = start();
    let signed = gateway.sign("POST", SEND, &VALID_SEND);

    let response = request(&gateway, "POST", SEND, "recipient=avinfo", Some(("application/x-www-form-urlencoded", form(&signed))), &[]);

    assert_error((response.status, &response.body), 400, "duplicate_parameter", Some("recipient"));
    assert_eq!(gateway.count_messages(), 0);
}

#[test]
fn missing_token_rejected() {
    let (_mock, gateway) = start();
    let signed = signed_without(&gateway, &VALID_SEND, "token");

    let (status, body) = gateway.send_raw("POST", SEND, &signed, &[]);

    assert_error((status, &body), 401, "missing_token", Some("token"));
    assert_eq!(gateway.count_messages(), 0);
}

#[test]
fn unknown_token_rejected() {
    let (_mock, gateway) = start();
    let signed = sign_with("tok-unknown", &gateway.secret, "POST", SEND, &VALID_SEND);

    let (status, body) = gateway.send_raw("POST", SEND, &signed, &[]);

    assert_error((status, &body), 401, "invalid_token", Some("token"));
    assert_eq!(gateway.count_messages(), 0);
}

// ---- Error language ----

fn has_cyrillic(text: &str) -> bool {
    text.chars().any(|c| ('\u{0400}'..='\u{04FF}').contains(&c))
}

#[test]
fn error_language_follows_header() {
    let (_mock, gateway) = start();
    let params = [("recipient", "avinfoo"), ("entity", "vehicle"), ("message", VIN_MESSAGE)];

    let russian = post_form(&gateway, &gateway.sign("POST", SEND, &params), &[]);
    let english = post_form(&gateway, &gateway.sign("POST", SEND, &params), &[("accept-language", "en")]);

    let russian_text = russian.body["error"]["message"].as_str().unwrap();
    let english_text = english.body["error"]["message"].as_str().unwrap();
    assert!(has_cyrillic(russian_text), "{russian_text}");
    assert!(!has_cyrillic(english_text), "{english_text}");
    assert!(english_text.contains("unknown recipient \"avinfoo\""), "{english_text}");
    assert_eq!(russian.body["error"]["code"], "unknown_recipient");
    assert_eq!(english.body["error"]["code"], russian.body["error"]["code"]);
    assert_eq!(russian.headers["content-language"], "ru");
    assert_eq!(english.headers["content-language"], "en");
}

// ---- Parameter values ----

#[test]
fn form_values_kept_exactly() {
    let (_mock, gateway) = start();
    let message = r#"{"fio":"Иванов П.","phone":"+7 495 123-45-67","note":"a+b=c"}"#;
    let signed = gateway.sign("POST", SEND, &[("recipient", "testkit"), ("entity", "echo"), ("message", message)]);
    // The body encodes a space as "+" and a plus as "%2B", the way HTML forms do.
    let body = form(&signed);
    let body_text = String::from_utf8(body.clone()).unwrap();
    assert!(body_text.contains("%2B7+495"), "{body_text}");

    let response = request(&gateway, "POST", SEND, "", Some(("application/x-www-form-urlencoded", body)), &[]);
    assert_eq!(response.status, 202, "{}", response.body);
    let id = id_of(&response.body).to_string();
    let (status, stored) = gateway.call("GET", "/sync/message/get", &[("id", &id)]);

    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["message"].as_str().unwrap(), message);
}

/// A message with member order, spacing, escapes and numbers that parsing and re-serializing would change.
const RAW_MESSAGE: &str = r#"{"z": 1, "url":"http:\/\/example.com\/a" ,"fio":"\u0416уков", "id": 9007199254740993, "price": 1500.10}"#;

fn json_body(signed: &[(String, String)], message: &str) -> Vec<u8> {
    let mut members = Vec::new();
    for (name, value) in signed {
        let value = if name == "message" { message.to_string() } else { serde_json::to_string(value).unwrap() };
        members.push(format!("{}: {value}", serde_json::to_string(name).unwrap()));
    }
    format!("{{{}}}", members.join(", ")).into_bytes()
}

#[test]
fn json_message_kept_raw() {
    let (_mock, gateway) = start();
    let signed = gateway.sign("POST", SEND, &[("recipient", "testkit"), ("entity", "echo"), ("message", RAW_MESSAGE)]);

    let response = request(&gateway, "POST", SEND, "", Some(("application/json", json_body(&signed, RAW_MESSAGE))), &[]);
    assert_eq!(response.status, 202, "{}", response.body);
    let id = id_of(&response.body).to_string();
    let (status, stored) = gateway.call("GET", "/sync/message/get", &[("id", &id)]);

    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["message"].as_str().unwrap(), RAW_MESSAGE);
}

#[test]
fn json_signature_over_raw_text() {
    let (_mock, gateway) = start();
    // Signing the re-serialized message instead of the raw text must fail.
    let parsed: Value = serde_json::from_str(RAW_MESSAGE).unwrap();
    let reserialized = parsed.to_string();
    assert_ne!(reserialized, RAW_MESSAGE);
    let signed = gateway.sign("POST", SEND, &[("recipient", "testkit"), ("entity", "echo"), ("message", &reserialized)]);

    let response = request(&gateway, "POST", SEND, "", Some(("application/json", json_body(&signed, RAW_MESSAGE))), &[]);

    assert_error((response.status, &response.body), 401, "invalid_signature", Some("hash"));
    assert_eq!(gateway.count_messages(), 0);
}

#[test]
fn bearer_token_accepted() {
    let (_mock, gateway) = start();
    let signed = signed_without(&gateway, &VALID_SEND, "token");
    let authorization = format!("Bearer {}", gateway.token);

    let (status, body) = gateway.send_raw("POST", SEND, &signed, &[("authorization", &authorization)]);

    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "queued");
    assert_eq!(gateway.count_messages(), 1);
}

// ---- Listings ----

/// Sends `count` async echo messages and returns their ids in sending order.
fn send_echoes(gateway: &Gateway, count: usize) -> Vec<i64> {
    (0..count)
        .map(|index| {
            let message = format!(r#"{{"n":{index}}}"#);
            let (status, body) = gateway.call("POST", SEND, &[("recipient", "testkit"), ("entity", "echo"), ("message", &message)]);
            assert_eq!(status, 202, "{body}");
            id_of(&body)
        })
        .collect()
}

fn list(gateway: &Gateway, path: &str, params: &[(&str, &str)]) -> Value {
    let (status, body) = gateway.call("GET", path, params);
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn list_all_pages() {
    let (_mock, gateway) = start();
    let ids = send_echoes(&gateway, 25);
    let mut descending = ids.clone();
    descending.reverse();

    for (order, expected) in [("asc", &ids), ("desc", &descending)] {
        for (page, range, has_more) in [("1", 0..10, true), ("2", 10..20, true), ("3", 20..25, false)] {
            let body = list(&gateway, "/sync/message/list-all", &[("per_page", "10"), ("page", page), ("order", order)]);
            assert_eq!(ids_of(&body), expected[range].to_vec(), "order {order} page {page}");
            assert_eq!(body["meta"]["has_more"], has_more, "order {order} page {page}");
        }
    }
}

#[test]
fn list_all_keyset_anchor() {
    let (_mock, gateway) = start();
    let ids = send_echoes(&gateway, 25);

    let anchor = ids[9].to_string();
    let body = list(&gateway, "/sync/message/list-all", &[("per_page", "10"), ("id", &anchor), ("order", "asc")]);
    assert_eq!(ids_of(&body), ids[10..20].to_vec());
    assert_eq!(body["meta"]["has_more"], true);
    assert_eq!(body["meta"]["next_id"], ids[19]);

    let anchor = ids[15].to_string();
    let body = list(&gateway, "/sync/message/list-all", &[("per_page", "10"), ("id", &anchor), ("order", "desc")]);
    let expected: Vec<i64> = ids[5..15].iter().rev().copied().collect();
    assert_eq!(ids_of(&body), expected);
    assert_eq!(body["meta"]["has_more"], true);

    let anchor = ids[4].to_string();
    let body = list(&gateway, "/sync/message/list-all", &[("per_page", "10"), ("id", &anchor), ("order", "desc")]);
    let expected: Vec<i64> = ids[0..4].iter().rev().copied().collect();
    assert_eq!(ids_of(&body), expected);
    assert_eq!(body["meta"]["has_more"], false);
}

#[test]
fn list_new_drops_read() {
    let (_mock, gateway) = start();
    let ids = send_echoes(&gateway, 25);
    let unread = |gateway: &Gateway| ids_of(&list(gateway, "/sync/message/list-new", &[("per_page", "100")]));
    assert_eq!(unread(&gateway), ids);

    let read_id = ids[3].to_string();
    let (status, body) = gateway.call("GET", "/sync/message/get", &[("id", &read_id)]);
    assert_eq!(status, 200, "{body}");
    let after_first_get = unread(&gateway);
    let (status, body) = gateway.call("GET", "/sync/message/get", &[("id", &read_id)]);
    assert_eq!(status, 200, "{body}");
    let after_second_get = unread(&gateway);

    let mut expected = ids.clone();
    expected.remove(3);
    assert_eq!(after_first_get, expected);
    assert_eq!(after_second_get, expected);
    assert_eq!(list(&gateway, "/sync/message/list-all", &[("per_page", "100")])["meta"]["count"], 25);
}

#[test]
fn list_new_page_numbers_skip_read_messages() {
    let (_mock, gateway) = start();
    let ids = send_echoes(&gateway, 40);
    for index in [0, 5, 6, 17, 30, 39] {
        let (status, body) = gateway.call("GET", "/sync/message/get", &[("id", &ids[index].to_string())]);
        assert_eq!(status, 200, "{body}");
    }
    let unread: Vec<i64> = ids.iter().enumerate().filter(|(index, _)| ![0, 5, 6, 17, 30, 39].contains(index)).map(|(_, id)| *id).collect();
    assert_eq!(unread.len(), 34);

    let page = |page: &str, order: &str, anchor: Option<i64>| {
        let anchor = anchor.map(|id| id.to_string());
        let mut params = vec![("per_page", "10"), ("page", page), ("order", order)];
        if let Some(anchor) = &anchor {
            params.push(("id", anchor));
        }
        list(&gateway, "/sync/message/list-new", &params)
    };
    let body = page("2", "asc", None);
    assert_eq!(ids_of(&body), unread[10..20]);
    assert_eq!(body["meta"]["has_more"], true);
    let body = page("4", "asc", None);
    assert_eq!(ids_of(&body), unread[30..34]);
    assert_eq!(body["meta"]["has_more"], false);
    assert_eq!(ids_of(&page("5", "asc", None)), Vec::<i64>::new());

    let newest_first: Vec<i64> = unread.iter().rev().copied().collect();
    assert_eq!(ids_of(&page("3", "desc", None)), newest_first[20..30]);
    // Page 2 after message ids[6], an anchor that is itself read.
    let after_anchor: Vec<i64> = unread.iter().copied().filter(|id| *id > ids[6]).collect();
    assert_eq!(ids_of(&page("2", "asc", Some(ids[6]))), after_anchor[10..20]);
    let before_anchor: Vec<i64> = newest_first.iter().copied().filter(|id| *id < ids[30]).collect();
    assert_eq!(ids_of(&page("2", "desc", Some(ids[30]))), before_anchor[10..20]);
}

#[test]
fn get_reads_only_the_query() {
    let (_mock, gateway) = start();
    let ids = send_echoes(&gateway, 12);
    let path = "/sync/message/list-all";
    let signed = gateway.sign("GET", path, &[("per_page", "10"), ("page", "1")]);
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(&signed).finish();
    // The body names page 2 (and repeats "page"), yet only the query sets the response.
    let response = reqwest::blocking::Client::new()
        .get(format!("{}{path}?{query}", gateway.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("page=2")
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().unwrap();
    assert_eq!(ids_of(&body), ids[..10]);
    assert_eq!(body["meta"]["page"], 1);
}

#[test]
fn page_number_out_of_range_rejected() {
    let (_mock, gateway) = start();
    for page in ["0", "1000001"] {
        let (status, body) = gateway.call("GET", "/sync/message/list-new", &[("page", page)]);
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "invalid_parameter");
        assert_eq!(body["error"]["field"], "page");
    }
    let (status, body) = gateway.call("GET", "/sync/message/list-new", &[("page", "1000000")]);
    assert_eq!(status, 200, "{body}");
}

// ---- Replays ----

#[test]
fn same_request_stored_once() {
    let (_mock, gateway) = start();
    let signed = gateway.sign("POST", SEND, &VALID_SEND);

    let first = post_form(&gateway, &signed, &[]);
    let second = post_form(&gateway, &signed, &[]);

    assert_eq!(first.status, 202, "{}", first.body);
    assert_eq!(second.status, 202, "{}", second.body);
    assert_eq!(id_of(&second.body), id_of(&first.body));
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(second.headers["idempotent-replayed"], "true");
    assert_eq!(gateway.count_messages(), 1);
}

#[test]
fn idempotency_key_stored_once() {
    let (_mock, gateway) = start();
    let params = [VALID_SEND[0], VALID_SEND[1], VALID_SEND[2], ("timestamp", "")];
    let earlier = shifted_timestamp(-5);
    let later = shifted_timestamp(0);
    let first = gateway.sign("POST", SEND, &with_timestamp(&params, &earlier));
    let second = gateway.sign("POST", SEND, &with_timestamp(&params, &later));
    assert_ne!(first.last(), second.last(), "the two requests must have different hashes");
    let key = [("idempotency-key", "order-2026-0001")];

    let (first_status, first_body) = gateway.send_raw("POST", SEND, &first, &key);
    let (second_status, second_body) = gateway.send_raw("POST", SEND, &second, &key);

    assert_eq!(first_status, 202, "{first_body}");
    assert_eq!(second_status, 202, "{second_body}");
    assert_eq!(id_of(&second_body), id_of(&first_body));
    assert_eq!(gateway.count_messages(), 1);
}

fn with_timestamp<'a>(params: &[(&'a str, &'a str)], timestamp: &'a str) -> Vec<(&'a str, &'a str)> {
    params.iter().map(|&(name, value)| if name == "timestamp" { (name, timestamp) } else { (name, value) }).collect()
}

// ---- Example client scripts ----

/// Runs an example signing script with `--url` and returns its exit status and output.
fn run_example(gateway: &Gateway, program: &str, script: &str) -> (bool, String) {
    let script_path = common::workspace().join("examples/clients").join(script);
    let message = r#"message={"vin":"XTA21099043765432","fio":"Иванов П.","phone":"+7 495"}"#;
    let output = Command::new(program)
        .arg(&script_path)
        .args(["--url", &gateway.url, "--token", &gateway.token, "--secret", &gateway.secret])
        .args(["POST", SEND, "recipient=avinfo", "entity=vehicle", message])
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program} (install it, for example php-cli): {error}"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[test]
fn python_client_accepted() {
    let (_mock, gateway) = start();

    let (success, output) = run_example(&gateway, "python3", "sign.py");

    assert!(success, "{output}");
    assert_eq!(output.lines().next(), Some("202"), "{output}");
    assert_eq!(gateway.count_messages(), 1);
}

#[test]
fn php_client_accepted() {
    let (_mock, gateway) = start();

    let (success, output) = run_example(&gateway, "php", "sign.php");

    assert!(success, "{output}");
    assert_eq!(output.lines().next(), Some("202"), "{output}");
    assert_eq!(gateway.count_messages(), 1);
}

// ---- Concurrency on SQLite ----

type CallLog = Mutex<Vec<(&'static str, u16, Value)>>;

/// Counts status refreshes that moved a message to delivered.
fn refreshed_count(calls: &CallLog) -> usize {
    calls.lock().unwrap().iter().filter(|(call, _, body)| *call == "status" && body["status"] == "delivered").count()
}

#[test]
fn concurrent_sends_on_sqlite() {
    let (_mock, gateway) = start();
    let gateway = Arc::new(gateway);
    let senders = 100;
    let barrier = Arc::new(Barrier::new(senders));
    let sending = Arc::new(AtomicBool::new(true));
    let calls: Arc<CallLog> = Arc::new(Mutex::new(Vec::new()));

    // Readers list the oldest unread messages and refresh the status of five of them, in a loop.
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (gateway, sending, calls) = (gateway.clone(), sending.clone(), calls.clone());
            std::thread::spawn(move || {
                while sending.load(Ordering::SeqCst) {
                    let (status, body) = gateway.call("GET", "/sync/message/list-new", &[("per_page", "20"), ("order", "asc")]);
                    let ids = if status == 200 { ids_of(&body) } else { Vec::new() };
                    calls.lock().unwrap().push(("list-new", status, body));
                    for id in ids.into_iter().take(5) {
                        let (status, body) = gateway.call("PUT", "/sync/message/status", &[("id", &id.to_string())]);
                        calls.lock().unwrap().push(("status", status, body));
                    }
                }
            })
        })
        .collect();

    // The pending entity leaves messages processing, so a status refresh writes to the database.
    let sends: Vec<_> = (0..senders)
        .map(|index| {
            let (gateway, barrier) = (gateway.clone(), barrier.clone());
            std::thread::spawn(move || {
                let message = format!(r#"{{"n":{index}}}"#);
                barrier.wait();
                gateway.call("POST", SEND, &[("recipient", "testkit"), ("entity", "pending"), ("message", &message)])
            })
        })
        .collect();
    let send_results: Vec<(u16, Value)> = sends.into_iter().map(|handle| handle.join().unwrap()).collect();
    // Readers stop once the sends are done and a status refresh has written to the database.
    let deadline = Instant::now() + Duration::from_secs(10);
    while refreshed_count(&calls) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    sending.store(false, Ordering::SeqCst);
    for reader in readers {
        reader.join().unwrap();
    }

    for (status, body) in &send_results {
        assert_eq!(*status, 202, "{body}");
    }
    assert!(refreshed_count(&calls) > 0, "no status refresh delivered a message");
    let calls = calls.lock().unwrap();
    for (call, status, body) in calls.iter() {
        assert!(*status < 500, "{call} answered {status}: {body}");
    }
    assert_eq!(gateway.count_messages(), 100);
    assert!(!gateway.log().contains("database is locked"), "the gateway log mentions \"database is locked\"");
}

#[test]
fn concurrent_repeats_store_one_message() {
    let (_mock, gateway) = start();
    let gateway = Arc::new(gateway);
    let signed = Arc::new(gateway.sign("POST", "/async/message/send", &[("recipient", "testkit"), ("entity", "echo"), ("message", r#"{"n":1}"#)]));
    let barrier = Arc::new(Barrier::new(20));

    // Twenty copies of one signed request arrive together, so most of them share a commit batch.
    let answers: Vec<(u16, Value)> = (0..20)
        .map(|_| {
            let (gateway, signed, barrier) = (gateway.clone(), signed.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                gateway.send_raw("POST", "/async/message/send", &signed, &[])
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .collect();

    let ids: std::collections::HashSet<i64> = answers.iter().map(|(status, body)| {
        assert_eq!(*status, 202, "{body}");
        id_of(body)
    }).collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    assert_eq!(gateway.count_messages(), 1);
}

/// A lookup repeated with the same `Idempotency-Key` and another message calls the plugin again,
/// but returns the first message with its stored result, not the new call's.
#[test]
fn lookup_repeated_by_key_returns_first_result() {
    let (_mock, gateway) = start();
    let send = |value: &str| {
        let message = format!(r#"{{"value":"{value}"}}"#);
        let signed = gateway.sign("POST", "/sync/message/send", &[("recipient", "testkit"), ("entity", "lookup"), ("message", message.as_str())]);
        let body = Some(("application/x-www-form-urlencoded", form(&signed)));
        request(&gateway, "POST", "/sync/message/send", "", body, &[("idempotency-key", "lookup-key-1")])
    };
    let first = send("first");
    let second = send("second");
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.headers["idempotent-replayed"], "true");
    assert_eq!(id_of(&second.body), id_of(&first.body));
    assert_eq!(second.body["data"]["looked_up"], "first");
    assert_eq!(gateway.count_messages(), 1);
}

/// A repeated sync send returns the first message, both for an entity stored before the call
/// (`echo`) and for a lookup, which is called again but stored only once.
#[test]
fn repeated_sync_send_is_marked_replayed() {
    let (_mock, gateway) = start();
    for (entity, message) in [("echo", r#"{"n":1}"#), ("lookup", r#"{"value":1}"#)] {
        let signed = gateway.sign("POST", "/sync/message/send", &[("recipient", "testkit"), ("entity", entity), ("message", message)]);
        let send = || request(&gateway, "POST", "/sync/message/send", "", Some(("application/x-www-form-urlencoded", form(&signed))), &[]);
        let first = send();
        let second = send();
        assert_eq!(first.status, 200, "{entity}: {}", first.body);
        assert_eq!(second.status, 200, "{entity}: {}", second.body);
        assert!(first.headers.get("idempotent-replayed").is_none());
        assert_eq!(second.headers["idempotent-replayed"], "true");
        assert_eq!(id_of(&first.body), id_of(&second.body));
        assert_eq!(first.body, second.body, "{entity}");
    }
    assert_eq!(gateway.count_messages(), 2);
}

/// The test harness moves a restarted gateway to a new port when its old one was taken, so a port
/// race between parallel tests does not fail them.
#[test]
fn restart_moves_off_taken_port() {
    let (_mock, mut gateway) = start();
    gateway.kill();
    let taken = gateway.url.trim_start_matches("http://").to_string();
    let _holder = std::net::TcpListener::bind(&taken).unwrap();

    gateway.spawn();
    assert_ne!(gateway.url.trim_start_matches("http://"), taken);
    let (status, body) = gateway.call("GET", "/sync/message/list-all", &[]);
    assert_eq!(status, 200, "{body}");
}
