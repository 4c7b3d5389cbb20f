//! Checks `engine/openapi.json` against the real `uig` binary: the gateway serves it at
//! `/openapi.json`, it lists exactly the router's routes, and real responses, successes and
//! rejections alike, match the status codes, headers and schemas it documents.

mod common;

use std::collections::BTreeSet;

use common::{sign_with, uig, Gateway, GatewayOptions, Mock};
use serde_json::Value;

/// The document as compiled into the binary.
const DOCUMENT: &str = include_str!("../openapi.json");

/// Every route of `uig_engine::api::app`, as (method, path). A new route goes into the router, this
/// list and the document together: the tests fail while the three differ.
const ROUTES: [(&str, &str); 9] = [
    ("POST", "/async/message/send"),
    ("POST", "/sync/message/send"),
    ("GET", "/sync/message/list-all"),
    ("GET", "/sync/message/list-new"),
    ("GET", "/sync/message/get"),
    ("PUT", "/sync/message/status"),
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/openapi.json"),
];

const SEND_ASYNC: &str = "/async/message/send";
const SEND_SYNC: &str = "/sync/message/send";
const LIST_ALL: &str = "/sync/message/list-all";
const LIST_NEW: &str = "/sync/message/list-new";
const GET: &str = "/sync/message/get";
const STATUS: &str = "/sync/message/status";
const VIN_MESSAGE: &str = r#"{"vin":"XTA21099043765432"}"#;

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("engine/openapi.json is valid JSON")
}

fn start() -> (Mock, Gateway) {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);
    (mock, gateway)
}

// ---- Requests ----

/// A response with its headers and its body parsed as JSON, or kept as a string.
struct HttpResponse {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

/// The body of a request: its content type and bytes.
enum Body {
    None,
    Form(Vec<(String, String)>),
    Json(Vec<(String, String)>),
    Raw(&'static str, Vec<u8>),
}

/// Sends one request. `query` goes into the query string, `body` into the body.
fn send(gateway: &Gateway, method: &str, path: &str, query: &[(String, String)], body: Body, headers: &[(&str, &str)]) -> HttpResponse {
    let client = reqwest::blocking::Client::new();
    let mut request = client.request(method.parse().unwrap(), format!("{}{path}", gateway.url)).query(query);
    request = match body {
        Body::None => request,
        Body::Form(params) => request.header("content-type", "application/x-www-form-urlencoded").body(form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).finish()),
        Body::Json(params) => {
            let object: serde_json::Map<String, Value> = params.into_iter().map(|(name, value)| (name, Value::String(value))).collect();
            request.header("content-type", "application/json").body(Value::Object(object).to_string())
        }
        Body::Raw(content_type, bytes) => request.header("content-type", content_type).body(bytes),
    };
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    HttpResponse { status, headers, body }
}

/// Sends a signed request: parameters in the query string for GET, in a form body otherwise.
fn signed(gateway: &Gateway, method: &str, path: &str, params: &[(&str, &str)]) -> HttpResponse {
    let params = gateway.sign(method, path, params);
    if method == "GET" {
        send(gateway, method, path, &params, Body::None, &[])
    } else {
        send(gateway, method, path, &[], Body::Form(params), &[])
    }
}

// ---- Checking responses against the document ----

/// Checks that `response` is documented for `method path` and matches the documented content
/// type, required headers and body schema. Panics listing every mismatch otherwise.
#[track_caller]
fn assert_documented(document: &Value, method: &str, path: &str, response: &HttpResponse) {
    let errors = documented_mismatches(document, method, path, response);
    assert!(errors.is_empty(), "{method} {path} answered {} {}:\n{}", response.status, response.body, errors.join("\n"));
}

/// Checks the response like [`assert_documented`], then its status and `error.code`.
#[track_caller]
fn assert_rejected(document: &Value, method: &str, path: &str, response: &HttpResponse, status: u16, code: &str) {
    assert_documented(document, method, path, response);
    assert_eq!(response.status, status, "{method} {path}: {}", response.body);
    assert_eq!(response.body["error"]["code"], code, "{method} {path}: {}", response.body);
}

fn documented_mismatches(document: &Value, method: &str, path: &str, response: &HttpResponse) -> Vec<String> {
    let validator = Validator { document };
    let Some(operation) = document["paths"][path].get(method.to_ascii_lowercase()) else {
        return vec![format!("{method} {path} is not documented")];
    };
    let Some(documented) = operation["responses"].get(response.status.to_string()) else {
        return vec![format!("status {} is not documented", response.status)];
    };
    let documented = validator.resolve(documented);
    let mut errors = Vec::new();

    let headers = documented["headers"].as_object().into_iter().flatten();
    for (name, header) in headers {
        let header = validator.resolve(header);
        match response.headers.get(name.as_str()).map(|value| value.to_str().unwrap_or("")) {
            None if header["required"] == true => errors.push(format!("required header {name} is missing")),
            None => {}
            Some(text) => {
                // Header values are text, so integer headers are parsed before validation.
                let value = text.parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::from(text));
                validator.check(&header["schema"], &value, &format!("header {name}"), &mut errors);
            }
        }
    }

    let content_type = response.headers.get("content-type").and_then(|value| value.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    match documented["content"].get(media_type) {
        None => errors.push(format!("content type \"{content_type}\" is not documented")),
        Some(content) => validator.check(&content["schema"], &response.body, "body", &mut errors),
    }
    errors
}

/// Validates values against the part of OpenAPI 3.0 schemas that the document uses. A keyword
/// it does not know is reported as a mismatch, so no documented constraint goes unchecked.
struct Validator<'a> {
    document: &'a Value,
}

impl<'a> Validator<'a> {
    /// Follows `$ref` pointers inside the document.
    fn resolve(&self, mut schema: &'a Value) -> &'a Value {
        while let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("external $ref {reference} is not supported"));
            schema = self.document.pointer(pointer).unwrap_or_else(|| panic!("$ref {reference} does not resolve"));
        }
        schema
    }

    fn check(&self, schema: &'a Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        let Some(keywords) = schema.as_object() else {
            errors.push(format!("{at}: schema {schema} is not an object"));
            return;
        };
        if value.is_null() && (schema["nullable"] == true || !keywords.contains_key("type")) {
            return;
        }

        for (keyword, constraint) in keywords {
            match keyword.as_str() {
                "type" => self.check_type(constraint, value, at, errors),
                "enum" if !constraint.as_array().unwrap().contains(value) => errors.push(format!("{at}: {value} is not one of {constraint}")),
                "required" => {
                    for name in constraint.as_array().unwrap() {
                        if value.is_object() && value.get(name.as_str().unwrap()).is_none() {
                            errors.push(format!("{at}: required property {name} is missing"));
                        }
                    }
                }
                "properties" => {
                    let properties = value.as_object().into_iter().flatten();
                    for (name, item) in properties {
                        if let Some(property) = constraint.get(name) {
                            self.check(property, item, &format!("{at}.{name}"), errors);
                        }
                    }
                }
                "additionalProperties" => {
                    let declared = &schema["properties"];
                    let extra = value.as_object().into_iter().flatten().filter(|(name, _)| declared.get(name.as_str()).is_none());
                    for (name, item) in extra {
                        match constraint {
                            Value::Bool(false) => errors.push(format!("{at}: property \"{name}\" is not documented")),
                            Value::Bool(true) => {}
                            _ => self.check(constraint, item, &format!("{at}.{name}"), errors),
                        }
                    }
                }
                "items" => {
                    for (index, item) in value.as_array().into_iter().flatten().enumerate() {
                        self.check(constraint, item, &format!("{at}[{index}]"), errors);
                    }
                }
                "maxItems" if value.as_array().is_some_and(|items| items.len() as u64 > constraint.as_u64().unwrap()) => errors.push(format!("{at}: more than {constraint} items")),
                "minimum" if value.as_f64().is_some_and(|number| number < constraint.as_f64().unwrap()) => errors.push(format!("{at}: {value} is below {constraint}")),
                "maximum" if value.as_f64().is_some_and(|number| number > constraint.as_f64().unwrap()) => errors.push(format!("{at}: {value} is above {constraint}")),
                "minLength" if value.as_str().is_some_and(|text| (text.chars().count() as u64) < constraint.as_u64().unwrap()) => errors.push(format!("{at}: shorter than {constraint}")),
                "maxLength" if value.as_str().is_some_and(|text| text.chars().count() as u64 > constraint.as_u64().unwrap()) => errors.push(format!("{at}: longer than {constraint}")),
                "format" => check_format(constraint.as_str().unwrap(), value, at, errors),
                "oneOf" | "anyOf" => {
                    let matching = constraint
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|alternative| {
                            let mut alternative_errors = Vec::new();
                            self.check(alternative, value, at, &mut alternative_errors);
                            alternative_errors.is_empty()
                        })
                        .count();
                    let valid = if keyword == "oneOf" { matching == 1 } else { matching >= 1 };
                    if !valid {
                        errors.push(format!("{at}: {value} matches {matching} of the {keyword} alternatives"));
                    }
                }
                "enum" | "maxItems" | "minimum" | "maximum" | "minLength" | "maxLength" => {}
                "nullable" | "description" | "example" | "default" => {}
                other => errors.push(format!("{at}: the test's validator does not support the keyword \"{other}\"")),
            }
        }
    }

    fn check_type(&self, expected: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let matches = match expected.as_str().unwrap() {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            other => panic!("unknown type \"{other}\" in the document"),
        };
        if !matches {
            errors.push(format!("{at}: {value} is not of type {expected}"));
        }
    }
}

fn check_format(format: &str, value: &Value, at: &str, errors: &mut Vec<String>) {
    match (format, value) {
        ("date-time", Value::String(text)) if chrono::DateTime::parse_from_rfc3339(text).is_err() => errors.push(format!("{at}: \"{text}\" is not an RFC 3339 date-time")),
        ("int64", value) if value.is_u64() && value.as_i64().is_none() => errors.push(format!("{at}: {value} exceeds int64")),
        ("date-time" | "int64", _) => {}
        (other, _) => errors.push(format!("{at}: the test's validator does not support the format \"{other}\"")),
    }
}

// ---- The document and the router ----

/// Returns (method, path) of every operation in the document.
fn documented_routes(document: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    routes
}

/// Reads the `.route("PATH", METHOD(handler)...)` calls of `src/api/mod.rs`.
fn router_source_routes() -> BTreeSet<(String, String)> {
    let source = std::fs::read_to_string(common::workspace().join("engine/src/api/mod.rs")).unwrap();
    let mut routes = BTreeSet::new();
    for call in source.split(".route(\"").skip(1) {
        let (path, rest) = call.split_once('"').unwrap();
        let mut rest = rest.trim_start().strip_prefix(',').unwrap().trim_start();
        // The method router is a chain such as `get(a).post(b)`.
        loop {
            let (method, after) = rest.split_once('(').unwrap();
            routes.insert((method.trim().to_ascii_uppercase(), path.to_string()));
            rest = skip_parenthesized(after);
            match rest.strip_prefix('.') {
                Some(next) => rest = next,
                None => break,
            }
        }
    }
    routes
}

/// Returns the text after the `)` that closes an already opened `(`.
fn skip_parenthesized(text: &str) -> &str {
    let mut depth = 1;
    for (index, character) in text.char_indices() {
        match character {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            return &text[index + 1..];
        }
    }
    panic!("unbalanced parentheses in a .route call");
}

fn listed_routes() -> BTreeSet<(String, String)> {
    ROUTES.iter().map(|(method, path)| (method.to_string(), path.to_string())).collect()
}

/// Collects every `$ref` value in the document.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get("$ref") {
                found.push(reference.clone());
            }
            object.values().for_each(|item| references(item, found));
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

#[test]
fn document_served_as_json() {
    let (_mock, gateway) = start();

    let response = send(&gateway, "GET", "/openapi.json", &[], Body::None, &[]);

    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.headers["content-type"], "application/json");
    assert_eq!(response.body, document());
    assert_eq!(response.body["openapi"], "3.0.3");
    assert_eq!(response.body["info"]["version"], env!("CARGO_PKG_VERSION"), "update info.version with the crate version");
    assert_documented(&document(), "GET", "/openapi.json", &response);
}

#[test]
fn document_lists_router_routes() {
    let document = document();
    let documented = documented_routes(&document);
    let listed = listed_routes();
    let in_router = router_source_routes();

    let undocumented: Vec<_> = listed.difference(&documented).collect();
    assert!(undocumented.is_empty(), "routes missing from engine/openapi.json: {undocumented:?}");
    let unlisted: Vec<_> = documented.difference(&listed).collect();
    assert!(unlisted.is_empty(), "documented operations missing from ROUTES: {unlisted:?}");
    let not_in_router: Vec<_> = listed.difference(&in_router).collect();
    assert!(not_in_router.is_empty(), "ROUTES entries missing from src/api/mod.rs: {not_in_router:?}");
    let not_listed: Vec<_> = in_router.difference(&listed).collect();
    assert!(not_listed.is_empty(), "src/api/mod.rs routes missing from ROUTES: {not_listed:?}");

    let mut found = Vec::new();
    references(&document, &mut found);
    assert!(!found.is_empty());
    for reference in found {
        let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("external $ref {reference}"));
        assert!(document.pointer(pointer).is_some(), "$ref {reference} does not resolve");
    }
}

#[test]
fn every_route_served_as_documented() {
    let document = document();
    let (_mock, gateway) = start();

    // Unsigned, so signed operations return 401 and the others 200: both documented, neither 404 nor 405.
    for (method, path) in ROUTES {
        let response = send(&gateway, method, path, &[], Body::None, &[]);

        assert_documented(&document, method, path, &response);
        assert!(![404, 405].contains(&response.status), "{method} {path} is not served: {}", response.status);
    }
}

#[test]
fn message_responses_match_document() {
    let document = document();
    let (_mock, gateway) = start();
    let vehicle = [("recipient", "avinfo"), ("entity", "vehicle"), ("message", VIN_MESSAGE)];

    let queued = signed(&gateway, "POST", SEND_ASYNC, &vehicle);
    assert_documented(&document, "POST", SEND_ASYNC, &queued);
    assert_eq!(queued.status, 202, "{}", queued.body);
    let queued_id = queued.body["id"].as_i64().unwrap();

    let params = gateway.sign("POST", SEND_ASYNC, &[("recipient", "testkit"), ("entity", "echo"), ("message", "[1, 2]")]);
    let first = send(&gateway, "POST", SEND_ASYNC, &[], Body::Json(params.clone()), &[]);
    let replayed = send(&gateway, "POST", SEND_ASYNC, &[], Body::Json(params), &[]);
    for response in [&first, &replayed] {
        assert_documented(&document, "POST", SEND_ASYNC, response);
        assert_eq!(response.status, 202, "{}", response.body);
    }
    assert_eq!(replayed.headers["idempotent-replayed"], "true");

    let delivered = signed(&gateway, "POST", SEND_SYNC, &vehicle);
    assert_documented(&document, "POST", SEND_SYNC, &delivered);
    assert_eq!(delivered.body["status"], "delivered", "{}", delivered.body);

    let failed = signed(&gateway, "POST", SEND_SYNC, &[("recipient", "testkit"), ("entity", "fail"), ("message", r#"{"kind":"permanent"}"#)]);
    assert_documented(&document, "POST", SEND_SYNC, &failed);
    assert_eq!(failed.body["status"], "failed", "{}", failed.body);
    assert_eq!(failed.body["error"]["kind"], "permanent", "{}", failed.body);
    let failed_id = failed.body["id"].as_i64().unwrap().to_string();

    let pending = signed(&gateway, "POST", SEND_SYNC, &[("recipient", "testkit"), ("entity", "pending"), ("message", "{}")]);
    assert_documented(&document, "POST", SEND_SYNC, &pending);
    assert_eq!(pending.body["status"], "processing", "{}", pending.body);
    let pending_id = pending.body["id"].as_i64().unwrap().to_string();

    gateway.wait_status(queued_id, &["delivered"], std::time::Duration::from_secs(10));
    for path in [LIST_ALL, LIST_NEW] {
        for params in [&[][..], &[("order", "desc"), ("per_page", "10"), ("id", "100")][..]] {
            let page = signed(&gateway, "GET", path, params);
            assert_documented(&document, "GET", path, &page);
            assert_eq!(page.status, 200, "{}", page.body);
        }
    }

    for id in [&failed_id, &pending_id] {
        let message = signed(&gateway, "GET", GET, &[("id", id)]);
        assert_documented(&document, "GET", GET, &message);
        assert_eq!(message.status, 200, "{}", message.body);
    }

    // Testkit refreshes the pending message. The token comes as a bearer header instead of a parameter.
    let mut params = gateway.sign("PUT", STATUS, &[("id", &pending_id)]);
    params.retain(|(name, _)| name != "token");
    let bearer = format!("Bearer {}", gateway.token);
    let refreshed = send(&gateway, "PUT", STATUS, &[], Body::Json(params), &[("authorization", &bearer)]);
    assert_documented(&document, "PUT", STATUS, &refreshed);
    assert_eq!(refreshed.body["status"], "delivered", "{}", refreshed.body);

    for path in ["/health/live", "/health/ready"] {
        let health = send(&gateway, "GET", path, &[], Body::None, &[]);
        assert_documented(&document, "GET", path, &health);
        assert_eq!(health.status, 200, "{}", health.body);
    }
}

#[test]
fn rejections_match_document() {
    let document = document();
    let (_mock, gateway) = start();
    let vehicle = [("recipient", "avinfo"), ("entity", "vehicle"), ("message", VIN_MESSAGE)];

    let with = |name: &str, value: &str| -> Vec<(String, String)> {
        let mut params = gateway.sign("POST", SEND_ASYNC, &vehicle);
        params.retain(|(key, _)| key != name);
        params.push((name.to_string(), value.to_string()));
        params
    };
    let without = |name: &str| -> Vec<(String, String)> {
        let mut params = gateway.sign("POST", SEND_ASYNC, &vehicle);
        params.retain(|(key, _)| key != name);
        params
    };
    let stale = (chrono::Utc::now() - chrono::TimeDelta::seconds(3600)).to_rfc3339();
    let oversize = format!("message={}", "x".repeat(1024 * 1024 + 1)).into_bytes();
    let long_key = "k".repeat(256);

    // (body, extra headers, expected status, expected code) of one POST /async/message/send each.
    let sends: Vec<(Body, Vec<(&str, &str)>, u16, &str)> = vec![
        (Body::Form(without("token")), vec![], 401, "missing_token"),
        (Body::Form(without("hash")), vec![], 401, "missing_signature"),
        (Body::Form(with("hash", &"0".repeat(64))), vec![], 401, "invalid_signature"),
        (Body::Form(with("token", "unknown-token")), vec![], 401, "invalid_token"),
        (Body::Form(sign_with(&gateway.token, &gateway.secret, "POST", SEND_ASYNC, &[vehicle[0], vehicle[1], vehicle[2], ("timestamp", stale.as_str())])), vec![], 401, "timestamp_out_of_window"),
        (Body::Form(with("timestamp", "yesterday")), vec![], 400, "invalid_timestamp"),
        (Body::Form(without("timestamp")), vec![], 400, "missing_parameter"),
        (Body::Form(gateway.sign("POST", SEND_ASYNC, &vehicle)), vec![("authorization", "Bearer other-token")], 400, "conflicting_token"),
        (Body::Form([gateway.sign("POST", SEND_ASYNC, &vehicle), vec![("entity".into(), "vehicle".into())]].concat()), vec![], 400, "duplicate_parameter"),
        (Body::Raw("application/x-www-form-urlencoded", b"entity=%D0".to_vec()), vec![], 400, "invalid_encoding"),
        (Body::Raw("application/json", b"[1, 2]".to_vec()), vec![], 400, "invalid_json_body"),
        (Body::Raw("text/plain", b"recipient=avinfo".to_vec()), vec![], 415, "unsupported_content_type"),
        (Body::Raw("application/x-www-form-urlencoded", oversize), vec![], 413, "body_too_large"),
        (Body::Form(gateway.sign("POST", SEND_ASYNC, &[("recipient", "nobody"), vehicle[1], vehicle[2]])), vec![], 422, "unknown_recipient"),
        (Body::Form(gateway.sign("POST", SEND_ASYNC, &[vehicle[0], ("entity", "boat"), vehicle[2]])), vec![], 422, "unsupported_entity"),
        (Body::Form(gateway.sign("POST", SEND_ASYNC, &[vehicle[0], vehicle[1], ("message", "{vin")])), vec![], 422, "invalid_message"),
        (Body::Form(gateway.sign("POST", SEND_ASYNC, &[vehicle[0], vehicle[1], vehicle[2], ("callback", "http://127.0.0.2:9/hook")])), vec![], 422, "callback_not_allowed"),
        (Body::Form(gateway.sign("POST", SEND_ASYNC, &[vehicle[0], vehicle[1], vehicle[2], ("callback", "not a url")])), vec![], 400, "invalid_parameter"),
        (Body::Form(gateway.sign("POST", SEND_ASYNC, &vehicle)), vec![("idempotency-key", long_key.as_str())], 400, "invalid_parameter"),
    ];
    for (body, headers, status, code) in sends {
        let response = send(&gateway, "POST", SEND_ASYNC, &[], body, &headers);
        assert_rejected(&document, "POST", SEND_ASYNC, &response, status, code);
    }

    let sync_callback = signed(&gateway, "POST", SEND_SYNC, &[vehicle[0], vehicle[1], vehicle[2], ("callback", "http://127.0.0.1:9/hook")]);
    assert_rejected(&document, "POST", SEND_SYNC, &sync_callback, 400, "invalid_parameter");

    // A second client that may send to testkit only.
    let created: Value = serde_json::from_str(&uig(&["client", "add", "limited", "--config", gateway.config_path.to_str().unwrap(), "--allow", "testkit", "--json"])).unwrap();
    let limited = sign_with(created["token"].as_str().unwrap(), created["secret"].as_str().unwrap(), "POST", SEND_SYNC, &vehicle);
    let forbidden = send(&gateway, "POST", SEND_SYNC, &[], Body::Form(limited), &[]);
    assert_rejected(&document, "POST", SEND_SYNC, &forbidden, 403, "recipient_not_allowed");

    let reads: [(&str, &str, Vec<(&str, &str)>, u16, &str); 8] = [
        ("GET", LIST_ALL, vec![("per_page", "9")], 400, "invalid_parameter"),
        ("GET", LIST_NEW, vec![("page", "0")], 400, "invalid_parameter"),
        ("GET", LIST_ALL, vec![("order", "sideways")], 400, "invalid_parameter"),
        ("GET", LIST_NEW, vec![("id", "-1")], 400, "invalid_parameter"),
        ("GET", GET, vec![], 400, "missing_parameter"),
        ("GET", GET, vec![("id", "abc")], 400, "invalid_parameter"),
        ("GET", GET, vec![("id", "987654")], 404, "message_not_found"),
        ("PUT", STATUS, vec![("id", "987654")], 404, "message_not_found"),
    ];
    for (method, path, params, status, code) in reads {
        let response = signed(&gateway, method, path, &params);
        assert_rejected(&document, method, path, &response, status, code);
    }

    // The body is read before the method is considered, so a GET with a large body gets 413 too.
    let large_get = send(&gateway, "GET", LIST_ALL, &gateway.sign("GET", LIST_ALL, &[]), Body::Raw("application/json", vec![b' '; 1024 * 1024 + 1]), &[]);
    assert_rejected(&document, "GET", LIST_ALL, &large_get, 413, "body_too_large");

    // A request head over the gateway's limits (8 KiB of target, 16 KiB of headers) must get a
    // documented response, whichever check rejects it first.
    let long_query = [("pad".to_string(), "x".repeat(9 * 1024))];
    let long_target = send(&gateway, "GET", "/health/live", &long_query, Body::None, &[]);
    assert_documented(&document, "GET", "/health/live", &long_target);
    let large_header = "x".repeat(17 * 1024);
    let large_head = send(&gateway, "GET", GET, &[], Body::None, &[("x-padding", &large_header)]);
    assert_documented(&document, "GET", GET, &large_head);

    let english = send(&gateway, "GET", GET, &[], Body::None, &[("accept-language", "en")]);
    assert_rejected(&document, "GET", GET, &english, 401, "missing_token");
    assert_eq!(english.headers["content-language"], "en");
}

#[test]
fn limit_responses_match_document() {
    let document = document();
    let mock = Mock::start();
    let options = GatewayOptions {
        extra_config: "[limits]\nclient_rate_per_second = 1\nclient_burst = 7\nmax_queue_depth = 1\n\n[connectors.ghost]\nlibrary = \"libuig_connector_missing.so\"\n".into(),
        ..GatewayOptions::default()
    };
    // No worker, so the first message stays queued and fills the queue. Testkit's breaker opens
    // after two failed calls. The optional connector `ghost` has no plugin file, so it is unavailable.
    let gateway = Gateway::start_edited(&mock, options, |text| {
        text.replace("[worker]\n", "[worker]\nenabled = false\n")
            .replace("[connectors.testkit]\n", "[connectors.testkit]\ncircuit_breaker = { min_calls = 2, failure_rate = 0.5, open_seconds = 30 }\n")
    });
    let echo = [("recipient", "testkit"), ("entity", "echo"), ("message", "{}")];

    let queued = signed(&gateway, "POST", SEND_ASYNC, &echo);
    assert_documented(&document, "POST", SEND_ASYNC, &queued);
    assert_eq!(queued.status, 202, "{}", queued.body);
    let full = signed(&gateway, "POST", SEND_ASYNC, &[echo[0], echo[1], ("message", "[]")]);
    assert_rejected(&document, "POST", SEND_ASYNC, &full, 503, "queue_full");

    for _ in 0..2 {
        let failed = signed(&gateway, "POST", SEND_SYNC, &[("recipient", "testkit"), ("entity", "fail"), ("message", r#"{"kind":"transient"}"#)]);
        assert_documented(&document, "POST", SEND_SYNC, &failed);
        assert_eq!(failed.body["status"], "failed", "{}", failed.body);
    }
    let paused = signed(&gateway, "POST", SEND_SYNC, &echo);
    assert_rejected(&document, "POST", SEND_SYNC, &paused, 503, "circuit_open");

    let unavailable = signed(&gateway, "POST", SEND_SYNC, &[("recipient", "ghost"), echo[1], echo[2]]);
    assert_rejected(&document, "POST", SEND_SYNC, &unavailable, 503, "connector_unavailable");

    let ready = send(&gateway, "GET", "/health/ready", &[], Body::None, &[]);
    assert_documented(&document, "GET", "/health/ready", &ready);
    let connectors = ready.body["connectors"].as_array().unwrap();
    assert_eq!(connectors.iter().find(|item| item["name"] == "testkit").unwrap()["circuit"], "open");
    assert_eq!(connectors.iter().find(|item| item["name"] == "ghost").unwrap()["status"], "unavailable");

    // The burst of 7 is spent by now or within a few more requests.
    let limited = (0..7).map(|_| signed(&gateway, "GET", LIST_ALL, &[])).find(|response| response.status == 429).expect("no 429 within the burst");
    assert_rejected(&document, "GET", LIST_ALL, &limited, 429, "rate_limited");
}
