//! Tests of the mapping of IMPACT responses to replies and errors.

use serde_json::{json, Value};
use uig_connector_api::reexports::{RString, RVec, Tuple2};

use super::*;

fn response(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    let mut all_headers = vec![Tuple2(RString::from("content-type"), RString::from("application/json"))];
    all_headers.extend(headers.iter().map(|(name, value)| Tuple2(RString::from(*name), RString::from(*value))));
    HttpResponse { status, headers: RVec::from(all_headers), body: RVec::from(body.as_bytes().to_vec()) }
}

fn error_body(code: &str, message: &str) -> String {
    json!({"error": {"code": code, "message": message}}).to_string()
}

fn data(reply: &Reply) -> Value {
    serde_json::from_str(&reply.data).unwrap()
}

#[test]
fn queued_submit_is_pending() {
    let reply = submit_reply(&response(202, &[], r#"{"Status": "QUEUED", "id": "IMP-000007"}"#)).unwrap();

    assert_eq!(reply.state, RemoteState::PENDING);
    assert_eq!(reply.external_id.as_ref().map(|id| id.as_str()).into_option(), Some("IMP-000007"));
    assert_eq!(data(&reply), json!({"id": "IMP-000007", "status": "QUEUED"}));
}

#[test]
fn done_submit_is_finished() {
    let body = r#"{"Status": "DONE", "id": "IMP-1", "result": {"number": "CLM-1", "sum": 12345678901234567890.50}}"#;

    let reply = submit_reply(&response(200, &[], body)).unwrap();

    assert_eq!(reply.state, RemoteState::DONE);
    assert_eq!(
        reply.data.as_str(),
        r#"{"id":"IMP-1","status":"DONE","result":{"number": "CLM-1", "sum": 12345678901234567890.50}}"#
    );
}

#[test]
fn numeric_id_and_lower_case_status_accepted() {
    let reply = submit_reply(&response(201, &[], r#"{"status": "processing", "id": 42}"#)).unwrap();

    assert_eq!(reply.state, RemoteState::PENDING);
    assert_eq!(data(&reply), json!({"id": "42", "status": "PROCESSING"}));
}

#[test]
fn error_status_is_failed_reply() {
    let body = r#"{"Status": "ERROR", "id": "IMP-2", "error": {"code": "rejected", "message": "policy expired"}}"#;

    let reply = status_reply(&response(200, &[], body), "IMP-2").unwrap();

    assert_eq!(reply.state, RemoteState::FAILED);
    assert_eq!(
        data(&reply),
        json!({"id": "IMP-2", "status": "ERROR", "error": {"code": "rejected", "message": "policy expired"}})
    );
}

#[test]
fn result_kept_only_when_done() {
    let body = r#"{"Status": "PROCESSING", "id": "IMP-3", "result": {"partial": true}, "error": null}"#;

    let reply = status_reply(&response(200, &[], body), "IMP-3").unwrap();

    assert_eq!(data(&reply), json!({"id": "IMP-3", "status": "PROCESSING"}));
}

#[test]
fn status_without_id_uses_requested_id() {
    let reply = status_reply(&response(200, &[], r#"{"Status": "DONE", "result": 1}"#), "IMP-4").unwrap();

    assert_eq!(data(&reply), json!({"id": "IMP-4", "status": "DONE", "result": 1}));
}

#[test]
fn malformed_bodies_are_transient() {
    let cases = [
        (202, "<html>Bad gateway</html>", "is not the IMPACT status document"),
        (202, r#"{"id": "IMP-1"}"#, "\"Status\" is missing"),
        (202, r#"{"Status": "QUEUED"}"#, "\"id\" is missing"),
        (202, r#"{"Status": "QUEUED", "id": ""}"#, "\"id\" is neither"),
        (202, r#"{"Status": "CANCELLED", "id": "IMP-1"}"#, "\"CANCELLED\", expected QUEUED"),
        (204, "", "is not the IMPACT status document"),
    ];
    for (status, body, expected) in cases {
        let error = submit_reply(&response(status, &[], body)).unwrap_err();

        assert_eq!(error.kind, ErrorKind::TRANSIENT, "{body}");
        assert_eq!(error.code.as_str(), INVALID_RESPONSE);
        assert!(error.message.contains(expected), "{body}: {}", error.message);
        assert!(error.message.contains(&format!("HTTP {status}")), "{}", error.message);
    }
}

#[test]
fn status_for_other_id_is_transient() {
    let error = status_reply(&response(200, &[], r#"{"Status": "DONE", "id": "IMP-9"}"#), "IMP-1").unwrap_err();

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert!(error.message.contains("\"IMP-9\", not the requested \"IMP-1\""), "{}", error.message);
}

#[test]
fn long_body_quoted_shortly() {
    let body = "x".repeat(1000);

    let error = submit_reply(&response(200, &[], &body)).unwrap_err();

    assert!(error.message.contains("1000 bytes"), "{}", error.message);
    assert!(error.message.len() < 400, "{}", error.message);
}

#[test]
fn client_errors_are_permanent_with_impact_code() {
    let cases = [
        (400, "invalid_request", "bad_request"),
        (409, "idempotency_conflict", "conflict"),
        (422, "invalid_payload", "unprocessable_entity"),
    ];
    for (status, impact_code, default_code) in cases {
        let with_body = failure(&response(status, &[], &error_body(impact_code, "Поле amount обязательно")), Operation::Submit);
        let without_body = failure(&response(status, &[], ""), Operation::Submit);

        assert_eq!(with_body.kind, ErrorKind::PERMANENT);
        assert_eq!(with_body.code.as_str(), impact_code);
        assert!(with_body.message.contains("Поле amount обязательно"), "{}", with_body.message);
        assert!(with_body.message.contains(&format!("HTTP {status}")), "{}", with_body.message);
        assert_eq!(without_body.kind, ErrorKind::PERMANENT);
        assert_eq!(without_body.code.as_str(), default_code);
    }
}

#[test]
fn numeric_impact_code_kept_as_text() {
    let body = r#"{"error": {"code": 1042, "message": "bad"}}"#;

    let error = failure(&response(422, &[], body), Operation::Submit);

    assert_eq!(error.code.as_str(), "1042");
}

#[test]
fn auth_statuses_are_auth_errors() {
    for (status, code) in [(401, "unauthorized"), (403, "forbidden")] {
        let error = failure(&response(status, &[], ""), Operation::Status);

        assert_eq!(error.kind, ErrorKind::AUTH);
        assert_eq!(error.code.as_str(), code);
    }
}

#[test]
fn not_found_depends_on_body() {
    let status_known = failure(&response(404, &[], &error_body("not_found", "no such message")), Operation::Status);
    let submit_known = failure(&response(404, &[], &error_body("unknown_policy", "no such policy")), Operation::Submit);
    let status_route = failure(&response(404, &[("content-type", "text/html")], "<h1>404</h1>"), Operation::Status);
    let submit_route = failure(&response(404, &[], ""), Operation::Submit);

    assert_eq!(status_known.kind, ErrorKind::PERMANENT);
    assert_eq!(status_known.code.as_str(), "not_found");
    assert_eq!(submit_known.kind, ErrorKind::PERMANENT);
    assert_eq!(submit_known.code.as_str(), "unknown_policy");
    assert_eq!(status_route.kind, ErrorKind::CONFIG);
    assert!(status_route.message.contains("settings.status_path"), "{}", status_route.message);
    assert_eq!(submit_route.kind, ErrorKind::CONFIG);
    assert!(submit_route.message.contains("settings.submit_path"), "{}", submit_route.message);
}

#[test]
fn server_errors_are_transient_with_hint() {
    for status in [408, 429, 500, 502, 503, 504] {
        let error = failure(&response(status, &[("retry-after", "7")], ""), Operation::Submit);

        assert_eq!(error.kind, ErrorKind::TRANSIENT, "{status}");
        assert_eq!(error.retry_after_ms.into_option(), Some(7_000), "{status}");
    }
}

#[test]
fn server_error_without_hint() {
    let error = failure(&response(500, &[], &error_body("internal", "database down")), Operation::Status);

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert_eq!(error.code.as_str(), "internal");
    assert_eq!(error.retry_after_ms.into_option(), None);
    assert!(error.message.contains("database down"), "{}", error.message);
}

#[test]
fn undefined_status_is_permanent() {
    let error = failure(&response(418, &[], ""), Operation::Submit);

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert!(error.message.contains("HTTP 418"), "{}", error.message);
}

#[test]
fn retry_after_forms() {
    assert_eq!(parse_retry_after_ms(" 3 "), Some(3_000));
    assert_eq!(parse_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT"), Some(0));
    assert_eq!(parse_retry_after_ms("soon"), None);

    let in_a_minute = (chrono::Utc::now() + chrono::Duration::seconds(60)).to_rfc2822();
    let milliseconds = parse_retry_after_ms(&in_a_minute).unwrap();
    assert!((55_000..=60_000).contains(&milliseconds), "{milliseconds}");
}

#[test]
fn submit_body_embeds_payload_exactly() {
    let payload = RawValue::from_string(r#"{"sum": 1.10, "big": 123456789012345678901234567890}"#.to_string()).unwrap();
    let body = SubmitBody { entity: "claim", external_id: "uig-5", payload: &payload };

    let text = serde_json::to_string(&body).unwrap();

    assert_eq!(
        text,
        r#"{"type":"claim","externalId":"uig-5","payload":{"sum": 1.10, "big": 123456789012345678901234567890}}"#
    );
}
