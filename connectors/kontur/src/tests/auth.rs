//! Token requests, caching, renewal on HTTP 401 and token endpoint errors.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use uig_connector_api::{ErrorKind, HttpErrorKind, SendRequest};

use super::*;
use crate::auth::TokenSource;

fn send_request() -> SendRequest {
    let payload = json!({"mediId": INSURER_BOX, "document": "Счёт № 17"}).to_string();
    SendRequest { message_id: 7, entity: "message".into(), payload: payload.into(), attempt: 1 }
}

fn posted() -> Value {
    json!({"mediId": INSURER_BOX, "messageId": MESSAGE_ID, "documentCirculationId": "dc-1"})
}

#[test]
fn token_request_uses_basic_and_form() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    host.queue_json(200, posted());
    let kontur = connector(&host);

    kontur.send(&send_request()).unwrap();

    let requests = host.requests();
    let token_request = &requests[0];
    assert_eq!(token_request.method.as_str(), "POST");
    assert_eq!(token_request.url.as_str(), TOKEN_URL);
    assert_eq!(token_request.timeout_ms, 2_500);
    assert_eq!(header(token_request, "content-type").as_deref(), Some("application/x-www-form-urlencoded"));
    assert_eq!(body_text(token_request), "grant_type=client_credentials&scope=medi_api");
    let authorization = header(token_request, "authorization").unwrap();
    let credentials = STANDARD.decode(authorization.strip_prefix("Basic ").unwrap()).unwrap();
    assert_eq!(String::from_utf8(credentials).unwrap(), format!("{CLIENT_ID}:{CLIENT_SECRET}"));

    let api_request = &requests[1];
    assert_eq!(header(api_request, "authorization").as_deref(), Some("Bearer token-a"));
}

#[test]
fn custom_scope_requested() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    host.queue_json(200, posted());
    let kontur = connector_with(&host, Settings { scope: "medi_api openid".to_string(), ..settings_for_test() });

    kontur.send(&send_request()).unwrap();

    assert_eq!(body_text(&host.requests()[0]), "grant_type=client_credentials&scope=medi_api+openid");
}

#[test]
fn token_cached_across_calls() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    for _ in 0..3 {
        host.queue_json(200, posted());
    }
    let kontur = connector(&host);

    for _ in 0..3 {
        kontur.send(&send_request()).unwrap();
    }

    let requests = host.requests();
    assert_eq!(requests.len(), 4);
    let token_requests = requests.iter().filter(|request| request.url.as_str() == TOKEN_URL).count();
    assert_eq!(token_requests, 1);
    for request in &requests[1..] {
        assert_eq!(header(request, "authorization").as_deref(), Some("Bearer token-a"));
    }
    let cache = host.cache();
    let cached: Vec<&(String, u64)> = cache.values().collect();
    assert_eq!(cached, [&("token-a".to_string(), 3540)]);
}

#[test]
fn expired_cache_entry_requests_new_token() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    host.queue_json(200, posted());
    host.queue_token("token-b");
    host.queue_json(200, posted());
    let kontur = connector(&host);

    kontur.send(&send_request()).unwrap();
    host.expire_cache();
    kontur.send(&send_request()).unwrap();

    let requests = host.requests();
    assert_eq!(requests[2].url.as_str(), TOKEN_URL);
    assert_eq!(header(&requests[3], "authorization").as_deref(), Some("Bearer token-b"));
}

#[test]
fn short_token_cached_for_half_lifetime() {
    let host = FakeHost::default();
    host.queue_json(200, token_body("token-a", 90));
    host.queue_json(200, posted());
    let kontur = connector(&host);

    kontur.send(&send_request()).unwrap();

    let cache = host.cache();
    assert_eq!(cache.values().next().unwrap().1, 45);
}

#[test]
fn missing_expires_in_assumes_default() {
    let host = FakeHost::default();
    host.queue_json(200, json!({"access_token": "token-a", "token_type": "bearer"}));
    host.queue_json(200, posted());
    let kontur = connector(&host);

    kontur.send(&send_request()).unwrap();

    assert_eq!(host.cache().values().next().unwrap().1, 240);
    let warnings = host.logs_at(LogLevel::WARN);
    assert!(warnings.iter().any(|line| line.contains("no valid expires_in")), "{warnings:?}");
}

#[test]
fn token_renewed_once_on_401() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    host.queue_json(401, vendor_error("Unauthorized", "token expired"));
    host.queue_token("token-b");
    host.queue_json(200, posted());
    let kontur = connector(&host);

    let reply = kontur.send(&send_request()).unwrap();

    assert_eq!(reply_json(&reply)["messageId"], MESSAGE_ID);
    let requests = host.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[2].url.as_str(), TOKEN_URL);
    assert_eq!(header(&requests[3], "authorization").as_deref(), Some("Bearer token-b"));
    assert_eq!(body_text(&requests[3]), body_text(&requests[1]));
    assert_eq!(host.cache().values().next().unwrap().0, "token-b");
    let infos = host.logs_at(LogLevel::INFO);
    assert!(infos.iter().any(|line| line.contains("renewing the access token")), "{infos:?}");
}

#[test]
fn second_401_is_auth_error() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    host.queue_json(401, vendor_error("Unauthorized", "token expired"));
    host.queue_token("token-b");
    host.queue_json(401, vendor_error("Unauthorized", "token has no access to Medi"));
    let kontur = connector(&host);

    let error = kontur.send(&send_request()).unwrap_err();

    assert_eq!(error.kind, ErrorKind::AUTH);
    assert_eq!(error.code.as_str(), "Unauthorized");
    assert!(error.message.contains("HTTP 401, Unauthorized: token has no access to Medi"), "{}", error.message);
    assert_eq!(host.requests().len(), 4);
}

#[test]
fn renew_reuses_token_replaced_by_another_call() {
    let host = FakeHost::default();
    let tokens = TokenSource::new(&settings_for_test(), HostContext::new(host.host_box()));
    host.queue_token("token-a");
    let rejected = tokens.current().unwrap();

    // Another call renews the token first, so the cache already contains a different one.
    host.queue_token("token-b");
    assert_eq!(tokens.renew(&rejected).unwrap(), "token-b");
    assert_eq!(tokens.renew(&rejected).unwrap(), "token-b");

    assert_eq!(host.requests().len(), 2);
}

#[test]
fn token_endpoint_errors_mapped() {
    let cases = [
        (401, json!({"error": "invalid_client"}), ErrorKind::AUTH, "invalid_client", "settings.client_secret"),
        (400, json!({"error": "invalid_client"}), ErrorKind::AUTH, "invalid_client", "settings.client_id"),
        (400, json!({"error": "invalid_scope"}), ErrorKind::AUTH, "invalid_scope", "settings.scope"),
        (400, json!({"error": "unsupported_grant_type"}), ErrorKind::AUTH, "unsupported_grant_type", "HTTP 400"),
        (401, json!("denied"), ErrorKind::AUTH, "", "without an OAuth error body"),
        (500, json!({"error": "server_error"}), ErrorKind::TRANSIENT, "server_error", "retry later"),
        (404, json!({}), ErrorKind::CONFIG, "", "settings.token_url"),
        (200, json!({"token_type": "Bearer"}), ErrorKind::TRANSIENT, "", "no access_token"),
        (200, json!({"access_token": "t", "token_type": "MAC"}), ErrorKind::CONFIG, "unsupported_token_type", "Bearer"),
    ];
    for (status, body, kind, code, fragment) in cases {
        let host = FakeHost::default();
        host.queue_json(status, body.clone());
        let kontur = connector(&host);

        let error = kontur.send(&send_request()).unwrap_err();

        assert_eq!(error.kind, kind, "HTTP {status} {body}");
        assert_eq!(error.code.as_str(), code, "HTTP {status} {body}");
        assert!(error.message.contains(fragment), "HTTP {status} {body}: {}", error.message);
        assert_eq!(host.requests().len(), 1, "no API request after a failed token request");
        assert!(host.cache().is_empty());
    }
}

#[test]
fn token_endpoint_outage_honours_retry_after() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(503, &[("retry-after", "30")], "")));
    let kontur = connector(&host);

    let error = kontur.send(&send_request()).unwrap_err();

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert_eq!(error.retry_after_ms.into_option(), Some(30_000));
}

#[test]
fn malformed_token_body_is_transient() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(200, &[], r#"{"access_token": "tok"#)));
    let kontur = connector(&host);

    let error = kontur.send(&send_request()).unwrap_err();

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert!(error.message.contains("token endpoint returned a malformed JSON body"), "{}", error.message);
    assert!(!error.message.contains("tok\""), "{}", error.message);
}

#[test]
fn token_transport_errors_mapped() {
    let cases = [(HttpErrorKind::CONNECT, ErrorKind::TRANSIENT), (HttpErrorKind::DENIED, ErrorKind::CONFIG)];
    for (http_kind, kind) in cases {
        let host = FakeHost::default();
        host.queue(Err(HttpError {
            kind: http_kind,
            message: "request to http://127.0.0.1:9091/connect/token failed".into(),
        }));
        let kontur = connector(&host);

        let error = kontur.send(&send_request()).unwrap_err();

        assert_eq!(error.kind, kind);
        assert!(error.message.starts_with("token request to Kontur failed"), "{}", error.message);
    }
}

#[test]
fn secrets_absent_from_errors_and_logs() {
    let host = FakeHost::default();
    let echo = format!("client secret {CLIENT_SECRET} is wrong");
    host.queue_json(401, json!({"error": "invalid_client", "error_description": echo}));
    host.queue_token("token-secret-value");
    host.queue_json(401, vendor_error("Unauthorized", "expired"));
    host.queue_token("token-second-value");
    host.queue_json(403, vendor_error("HasNoAccessToMediId", "no access"));
    let kontur = connector(&host);

    let first = kontur.send(&send_request()).unwrap_err();
    let second = kontur.send(&send_request()).unwrap_err();

    assert!(first.message.contains("***"), "{}", first.message);
    for error in [&first, &second] {
        let text = error.to_string();
        for secret in [CLIENT_SECRET, "token-secret-value", "token-second-value"] {
            assert!(!text.contains(secret), "{text}");
        }
    }
    let logs = host.all_logs();
    for secret in [CLIENT_SECRET, "token-secret-value", "token-second-value"] {
        assert!(!logs.contains(secret), "{logs}");
    }
    assert_eq!(host.queued_responses_left(), 0);
}
