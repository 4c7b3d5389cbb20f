//! Outbound messages: payload checks, the request sent and the mapping of Kontur's errors.

use base64::Engine as _;
use uig_connector_api::sdk::create_connector;
use uig_connector_api::{ConnectorError, ErrorKind, HttpErrorKind, RemoteState, Reply, SendRequest};

use super::*;

fn message_request(payload: Value) -> SendRequest {
    SendRequest { message_id: 42, entity: "message".into(), payload: payload.to_string().into(), attempt: 1 }
}

fn document_request() -> SendRequest {
    message_request(json!({"mediId": INSURER_BOX, "document": "Гарантийное письмо № 5"}))
}

fn posted() -> Value {
    json!({"mediId": INSURER_BOX, "messageId": MESSAGE_ID, "documentCirculationId": "4d2c8a10-5b7e-4f3a-9e61-0c2b7d9f8e14"})
}

/// Queues a token and one API response, then sends `request`.
fn send_with_api_response(request: &SendRequest, response: HttpResponse) -> (FakeHost, Result<Reply, ConnectorError>) {
    let host = FakeHost::default();
    host.queue_token("token-a");
    host.queue(Ok(response));
    let kontur = connector(&host);
    let result = kontur.send(request);
    (host, result)
}

#[test]
fn document_posted_as_base64() {
    let (host, result) = send_with_api_response(&document_request(), json_response(200, &[], &posted().to_string()));

    let reply = result.unwrap();
    assert_eq!(reply.state, RemoteState::DONE);
    assert_eq!(reply_json(&reply), posted());
    let request = &host.requests()[1];
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.as_str(), "http://127.0.0.1:9090/V2/messages");
    assert!(!request.idempotent);
    assert_eq!(request.timeout_ms, 2_500);
    assert_eq!(header(request, "content-type").as_deref(), Some("application/json; charset=utf-8"));
    assert_eq!(header(request, "accept").as_deref(), Some("application/json"));
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode("Гарантийное письмо № 5".as_bytes());
    assert_eq!(body, json!({"mediId": INSURER_BOX, "message": encoded}));
}

#[test]
fn base64_message_posted_as_given() {
    let request = message_request(json!({"mediId": INSURER_BOX.to_uppercase(), "message": "PGRvYy8+"}));

    let (host, result) = send_with_api_response(&request, json_response(200, &[], &posted().to_string()));

    result.unwrap();
    let body: Value = serde_json::from_slice(&host.requests()[1].body).unwrap();
    assert_eq!(body, json!({"mediId": INSURER_BOX, "message": "PGRvYy8+"}));
}

#[test]
fn reply_fills_missing_members() {
    let body = json!({"messageId": MESSAGE_ID}).to_string();

    let (_, result) = send_with_api_response(&document_request(), json_response(200, &[], &body));

    let reply = reply_json(&result.unwrap());
    assert_eq!(reply, json!({"mediId": INSURER_BOX, "messageId": MESSAGE_ID, "documentCirculationId": null}));
}

#[test]
fn reply_without_message_id_is_transient() {
    let (_, result) = send_with_api_response(&document_request(), json_response(200, &[], "{}"));

    let error = result.unwrap_err();
    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert!(error.message.contains("returned no messageId"), "{}", error.message);
}

#[test]
fn invalid_payload_sends_no_request() {
    let host = FakeHost::default();
    let kontur = connector(&host);

    let error = kontur.send(&message_request(json!({"mediId": "clinic", "document": "x"}))).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "invalid_payload");
    assert!(error.message.contains("payload.mediId"), "{}", error.message);
    assert!(host.requests().is_empty());
}

#[test]
fn unknown_entity_rejected() {
    let host = FakeHost::default();
    let kontur = connector(&host);
    let request = SendRequest { entity: "document".into(), ..document_request() };

    let error = kontur.send(&request).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "invalid_payload");
    assert!(error.message.contains("unknown entity \"document\""), "{}", error.message);
    assert!(host.requests().is_empty());
}

#[test]
fn vendor_errors_mapped() {
    let cases = [
        (400, "InvalidMessage", ErrorKind::PERMANENT),
        (403, "HasNoAccessToMediId", ErrorKind::CONFIG),
        (404, "MediIdNotFound", ErrorKind::PERMANENT),
        (500, "InternalServerError", ErrorKind::TRANSIENT),
        (502, "BadGateway", ErrorKind::TRANSIENT),
    ];
    for (status, code, kind) in cases {
        let body = vendor_error(code, "подробности").to_string();

        let (_, result) = send_with_api_response(&document_request(), json_response(status, &[], &body));

        let error = result.unwrap_err();
        assert_eq!(error.kind, kind, "HTTP {status}");
        assert_eq!(error.code.as_str(), code, "HTTP {status}");
        assert!(error.message.contains(code), "{}", error.message);
        assert!(error.message.contains(&format!("sending a message from box {INSURER_BOX}")), "{}", error.message);
    }
}

#[test]
fn rate_limit_honours_retry_after() {
    let body = vendor_error("TooManyRequests", "slow down").to_string();

    let (_, result) = send_with_api_response(&document_request(), json_response(429, &[("retry-after", "12")], &body));

    let error = result.unwrap_err();
    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert_eq!(error.retry_after_ms.into_option(), Some(12_000));
}

#[test]
fn malformed_reply_is_transient() {
    let (_, result) = send_with_api_response(&document_request(), json_response(200, &[], r#"{"mediId": "6f1c"#));

    let error = result.unwrap_err();
    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert!(error.message.contains("malformed JSON body for sending a message"), "{}", error.message);
}

#[test]
fn transport_failure_is_transient() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    host.queue(Err(HttpError {
        kind: HttpErrorKind::INTERRUPTED,
        message: "request to http://127.0.0.1:9090/V2/messages interrupted after sending: connection reset".into(),
    }));
    let kontur = connector(&host);

    let error = kontur.send(&document_request()).unwrap_err();

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert!(error.message.starts_with("sending a message from box"), "{}", error.message);
    assert!(error.message.contains("connection reset"), "{}", error.message);
}

#[test]
fn create_through_sdk_and_send() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    host.queue_json(200, posted());
    let settings = json!({
        "base_url": BASE_URL,
        "token_url": TOKEN_URL,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    })
    .to_string();

    let connector = create_connector::<Kontur>(settings.as_str().into(), host.host_box()).unwrap();
    let reply = connector.send(document_request()).unwrap();

    assert_eq!(reply_json(&reply)["messageId"], MESSAGE_ID);
    assert_eq!(host.requests()[1].timeout_ms, 10_000);
    assert!(!host.all_logs().contains(CLIENT_SECRET));
}

#[test]
fn create_rejects_invalid_settings() {
    let host = FakeHost::default();
    let settings = json!({
        "base_url": BASE_URL,
        "token_url": TOKEN_URL,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "events_count": 5000,
    })
    .to_string();

    let result = create_connector::<Kontur>(settings.as_str().into(), host.host_box()).into_result();

    let Err(error) = result else { panic!("create accepted events_count 5000") };
    assert_eq!(error.kind, ErrorKind::CONFIG);
    assert!(error.message.contains("settings.events_count"), "{}", error.message);
}
