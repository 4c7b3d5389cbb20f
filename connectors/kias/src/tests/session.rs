//! Session handling: authentication, reuse, expiry with one re-authentication, and secrets.

use std::time::Duration;

use uig_connector_api::{ErrorKind, HttpError, HttpErrorKind};

use super::*;
use crate::client::password_hash;

#[test]
fn first_call_authenticates() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result("<ISN>9000001</ISN>");
    let kias = connector(&host, settings_for_test());

    kias.send(&notify_request()).unwrap();

    let calls = host.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].procedure, "Auth");
    assert_eq!(calls[0].app_id, "1001");
    assert_eq!(calls[0].param_names(), ["Name", "Pwd"]);
    assert_eq!(calls[0].param("Name"), Some("demo"));
    assert_eq!(calls[0].param("Pwd"), Some(password_hash(PASSWORD).as_str()));
    assert_eq!(calls[1].procedure, "User_NotifyEvent");
    assert_eq!(calls[1].param("Sid"), Some(SID));
    let requests = host.requests();
    assert!(requests[0].idempotent);
    assert!(!requests[1].idempotent);
    assert!(host.logs_at(LogLevel::INFO).iter().any(|line| line.contains("authenticated with KIAS as user \"demo\"")));
}

#[test]
fn session_reused_between_calls() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result("<ISN>1</ISN>");
    host.queue_result("<ISN>2</ISN>");
    let kias = connector(&host, settings_for_test());

    kias.send(&notify_request()).unwrap();
    kias.send(&notify_request()).unwrap();

    let procedures: Vec<String> = host.calls().into_iter().map(|call| call.procedure).collect();
    assert_eq!(procedures, ["Auth", "User_NotifyEvent", "User_NotifyEvent"]);
}

#[test]
fn expired_session_reauthenticates_once() {
    let host = FakeHost::default();
    host.queue_auth("OLD-SID");
    host.queue_result("<ISN>1</ISN>");
    host.queue_error("001", "Сессия истекла");
    host.queue_auth("NEW-SID");
    host.queue_result("<ISN>2</ISN>");
    let kias = connector(&host, settings_for_test());

    kias.send(&notify_request()).unwrap();
    let reply = kias.send(&notify_request()).unwrap();

    assert_eq!(reply_json(&reply), json!({"isn": "2"}));
    let calls = host.calls();
    let procedures: Vec<&str> = calls.iter().map(|call| call.procedure.as_str()).collect();
    assert_eq!(procedures, ["Auth", "User_NotifyEvent", "User_NotifyEvent", "Auth", "User_NotifyEvent"]);
    assert_eq!(calls[2].param("Sid"), Some("OLD-SID"));
    assert_eq!(calls[4].param("Sid"), Some("NEW-SID"));
    assert_eq!(calls[4].param("EVENT"), Some("POLICY_ISSUED"));
    let warnings = host.logs_at(LogLevel::WARN);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("session expired (error 001)"), "{}", warnings[0]);
    assert!(warnings[0].contains("message_id=42 attempt=1"), "{}", warnings[0]);
}

#[test]
fn expiry_right_after_auth_fails() {
    let host = FakeHost::default();
    host.queue_auth("SID-1");
    host.queue_error("001", "Сессия истекла");
    host.queue_auth("SID-2");
    host.queue_error("001", "Сессия истекла");
    let kias = connector(&host, settings_for_test());

    let error = kias.send(&notify_request()).unwrap_err();

    assert_eq!(error.kind, ErrorKind::AUTH);
    assert_eq!(error.code.as_str(), "001");
    assert_eq!(host.requests().len(), 4);
}

#[test]
fn session_ttl_forces_new_auth() {
    let host = FakeHost::default();
    host.queue_auth("SID-1");
    host.queue_result("<ISN>1</ISN>");
    host.queue_auth("SID-2");
    host.queue_result("<ISN>2</ISN>");
    let kias = connector(&host, Settings { session_ttl_seconds: 1, ..settings_for_test() });

    kias.send(&notify_request()).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    kias.send(&notify_request()).unwrap();

    let calls = host.calls();
    assert_eq!(calls[2].procedure, "Auth");
    assert_eq!(calls[3].param("Sid"), Some("SID-2"));
}

#[test]
fn wrong_password_is_auth_error() {
    let host = FakeHost::default();
    host.queue_error("002", "Неверное имя пользователя или пароль");
    let kias = connector(&host, settings_for_test());

    let error = kias.send(&notify_request()).unwrap_err();

    assert_eq!(error.kind, ErrorKind::AUTH);
    assert_eq!(error.code.as_str(), "002");
    assert!(error.message.contains("user \"demo\""), "{}", error.message);
    assert!(error.message.contains("Неверное имя пользователя"), "{}", error.message);
    assert!(error.message.contains("settings.password"), "{}", error.message);
    assert_eq!(host.requests().len(), 1);
}

#[test]
fn auth_system_error_is_transient() {
    let host = FakeHost::default();
    host.queue_error("900", "База данных недоступна");
    let kias = connector(&host, settings_for_test());

    let error = kias.send(&notify_request()).unwrap_err();

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert_eq!(error.code.as_str(), "900");
}

#[test]
fn auth_without_sid_is_transient() {
    let host = FakeHost::default();
    host.queue_result("<Status>OK</Status>");
    let kias = connector(&host, settings_for_test());

    let error = kias.send(&notify_request()).unwrap_err();

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert_eq!(error.code.as_str(), "malformed_response");
    assert!(error.message.contains("without a Sid"), "{}", error.message);
}

#[test]
fn failed_auth_retried_on_next_call() {
    let host = FakeHost::default();
    host.queue(Ok(response_bytes(502, "text/html", b"<html>Bad Gateway</html>".to_vec())));
    host.queue_auth(SID);
    host.queue_result("<ISN>1</ISN>");
    let kias = connector(&host, settings_for_test());

    let first = kias.send(&notify_request()).unwrap_err();
    kias.send(&notify_request()).unwrap();

    assert_eq!(first.kind, ErrorKind::TRANSIENT);
    let procedures: Vec<String> = host.calls().into_iter().map(|call| call.procedure).collect();
    assert_eq!(procedures, ["Auth", "Auth", "User_NotifyEvent"]);
}

#[test]
fn secrets_absent_from_errors_and_logs() {
    let host = FakeHost::default();
    let hash = password_hash(PASSWORD);
    host.queue_auth(SID);
    let echo = format!("bad request Sid={SID} Pwd={hash} password={PASSWORD}");
    host.queue(Ok(soap_response(
        500,
        &format!(
            "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><soap:Fault>\
             <faultcode>soap:Client{SID}</faultcode><faultstring>{echo}</faultstring></soap:Fault></soap:Body>\
             </soap:Envelope>"
        ),
    )));
    host.queue(Err(HttpError {
        kind: HttpErrorKind::INTERRUPTED,
        message: format!("connection reset while sending Sid {SID}").into(),
    }));
    host.queue_error("101", &format!("Сессия {SID} пароль {PASSWORD}"));
    let kias = connector(&host, settings_for_test());

    let errors: Vec<ConnectorError> = (0..3).map(|_| kias.send(&notify_request()).unwrap_err()).collect();

    assert_eq!(errors[0].kind, ErrorKind::PERMANENT);
    assert_eq!(errors[1].kind, ErrorKind::TRANSIENT);
    assert_eq!(errors[2].kind, ErrorKind::PERMANENT);
    for error in &errors {
        let text = error.to_string();
        for secret in [SID, PASSWORD, hash.as_str()] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("***"), "{text}");
    }
    let logs = host.all_logs();
    for secret in [SID, PASSWORD, hash.as_str()] {
        assert!(!logs.contains(secret), "{logs}");
    }
}
