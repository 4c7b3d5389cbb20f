//! Responses through the whole connector: encodings, faults, gateway pages, malformed XML,
//! KIAS error codes and transport failures.

use uig_connector_api::{ErrorKind, HttpError, HttpErrorKind};

use super::*;

const RESULT: &str = "<ISN>9000001</ISN><STATUSNAME>Уведомление «принято» &amp; учтено</STATUSNAME>\
                      <RECEIVED>01.03.2025</RECEIVED>";

fn expected_reply() -> Value {
    json!({"isn": "9000001", "statusname": "Уведомление «принято» & учтено", "received": "2025-03-01"})
}

/// Sends a notification whose response is `body` with `content_type`, after a plain UTF-8 `Auth`.
fn notify_with_response(content_type: &str, body: Vec<u8>) -> Result<Reply, ConnectorError> {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue(Ok(response_bytes(200, content_type, body)));
    connector(&host, settings_for_test()).send(&notify_request())
}

fn envelope_declaring(encoding: &str) -> String {
    exec_envelope(&format!("<data><result>{RESULT}</result></data>"))
        .replace("encoding=\"utf-8\"", &format!("encoding=\"{encoding}\""))
}

fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
    let units = std::iter::once(0xFEFF_u16).chain(text.encode_utf16());
    units.flat_map(|unit| if big_endian { unit.to_be_bytes() } else { unit.to_le_bytes() }).collect()
}

fn cp1251(text: &str) -> Vec<u8> {
    encoding_rs::WINDOWS_1251.encode(text).0.into_owned()
}

#[test]
fn every_encoding_variant_decoded() {
    let mut utf8_bom = vec![0xEF, 0xBB, 0xBF];
    utf8_bom.extend_from_slice(envelope_declaring("utf-8").as_bytes());
    let variants = [
        ("utf8", "text/xml; charset=utf-8", envelope_declaring("utf-8").into_bytes()),
        ("utf8_bom", "text/xml; charset=utf-8", utf8_bom),
        ("utf16le_bom", "text/xml; charset=utf-16", utf16(&envelope_declaring("utf-16"), false)),
        ("utf16be_bom", "application/soap+xml; charset=utf-16", utf16(&envelope_declaring("utf-16"), true)),
        ("cp1251_header", "text/xml; charset=windows-1251", cp1251(&envelope_declaring("windows-1251"))),
        ("cp1251_declaration", "text/xml", cp1251(&envelope_declaring("windows-1251"))),
    ];

    for (name, content_type, body) in variants {
        let reply = notify_with_response(content_type, body).unwrap_or_else(|error| panic!("{name}: {error}"));

        assert_eq!(reply_json(&reply), expected_reply(), "{name}");
    }
}

#[test]
fn contradicting_charset_fails_clearly() {
    let body = cp1251(&envelope_declaring("windows-1251"));

    let error = notify_with_response("text/xml; charset=utf-8", body).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "invalid_encoding");
    assert!(error.message.contains("Content-Type charset"), "{}", error.message);
    assert!(error.message.contains("not valid UTF-8"), "{}", error.message);
}

#[test]
fn bom_contradicting_charset_fails() {
    let body = utf16(&envelope_declaring("utf-16"), false);

    let error = notify_with_response("text/xml; charset=windows-1251", body).unwrap_err();

    assert_eq!(error.code.as_str(), "invalid_encoding");
    assert!(error.message.contains("byte order mark"), "{}", error.message);
}

#[test]
fn fault_is_permanent_without_second_call() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue(Ok(soap_response(
        500,
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><soap:Fault>\
         <faultcode>soap:Server</faultcode><faultstring>Процедура завершилась с ошибкой</faultstring>\
         </soap:Fault></soap:Body></soap:Envelope>",
    )));
    let kias = connector(&host, settings_for_test());

    let error = kias.send(&notify_request()).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "soap:Server");
    assert!(error.message.contains("Процедура завершилась с ошибкой"), "{}", error.message);
    assert_eq!(host.requests().len(), 2);
}

#[test]
fn gateway_page_is_transient() {
    let page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>".to_vec();

    let error = notify_with_response_status(502, "text/html", page);

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert!(error.message.contains("HTTP 502"), "{}", error.message);
}

fn notify_with_response_status(status: u16, content_type: &str, body: Vec<u8>) -> ConnectorError {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue(Ok(response_bytes(status, content_type, body)));
    connector(&host, settings_for_test()).send(&notify_request()).unwrap_err()
}

#[test]
fn malformed_xml_is_transient() {
    let body = exec_envelope("<data><result><ISN>1</ISN>");

    let error = notify_with_response("text/xml; charset=utf-8", body.into_bytes()).unwrap_err();

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert_eq!(error.code.as_str(), "malformed_response");
}

#[test]
fn unexpected_data_document_is_transient() {
    let body = exec_envelope("<answer>ok</answer>");

    let error = notify_with_response("text/xml", body.into_bytes()).unwrap_err();

    assert_eq!(error.code.as_str(), "malformed_response");
    assert!(error.message.contains("root element is <answer>"), "{}", error.message);
}

#[test]
fn kias_error_codes_mapped() {
    let cases = [
        ("101", ErrorKind::PERMANENT),
        ("003", ErrorKind::CONFIG),
        ("901", ErrorKind::TRANSIENT),
        ("ORA-20001", ErrorKind::PERMANENT),
    ];

    for (code, kind) in cases {
        let host = FakeHost::default();
        host.queue_auth(SID);
        host.queue_error(code, "Ошибка «бизнес-правила»");
        let kias = connector(&host, settings_for_test());

        let error = kias.send(&notify_request()).unwrap_err();

        assert_eq!(error.kind, kind, "{code}");
        assert_eq!(error.code.as_str(), code);
        assert!(error.message.contains("User_NotifyEvent"), "{}", error.message);
        assert!(error.message.contains("Ошибка «бизнес-правила»"), "{}", error.message);
    }
}

#[test]
fn transport_failures_classified() {
    let cases = [
        (HttpErrorKind::TIMEOUT, ErrorKind::TRANSIENT),
        (HttpErrorKind::CONNECT, ErrorKind::TRANSIENT),
        (HttpErrorKind::INTERRUPTED, ErrorKind::TRANSIENT),
        (HttpErrorKind::DENIED, ErrorKind::CONFIG),
    ];

    for (http_kind, kind) in cases {
        let host = FakeHost::default();
        host.queue(Err(HttpError {
            kind: http_kind,
            message: "request to http://127.0.0.1:9090/kiasSvc.asmx failed".into(),
        }));
        let kias = connector(&host, settings_for_test());

        let error = kias.send(&notify_request()).unwrap_err();

        assert_eq!(error.kind, kind, "{http_kind:?}");
        assert!(error.message.contains("request to KIAS for procedure Auth failed"), "{}", error.message);
    }
}

#[test]
fn request_shape_soap11() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result("<ISN>1</ISN>");
    let kias = connector(&host, settings_for_test());

    kias.send(&notify_request()).unwrap();

    for request in host.requests() {
        assert_eq!(request.method.as_str(), "POST");
        assert_eq!(request.url.as_str(), "http://127.0.0.1:9090/kiasSvc.asmx");
        assert_eq!(request.timeout_ms, 2500);
        let headers: Vec<(String, String)> =
            request.headers.iter().map(|Tuple2(name, value)| (name.to_string(), value.to_string())).collect();
        assert_eq!(
            headers,
            [
                ("Content-Type".to_string(), "text/xml; charset=utf-8".to_string()),
                ("SOAPAction".to_string(), "\"http://inslab.ru/ExecProc\"".to_string()),
            ]
        );
    }
}

#[test]
fn request_shape_soap12() {
    let host = FakeHost::default();
    let soap12 = |data: &str| {
        format!(
            "<env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\"><env:Body>\
             <ExecProcResponse xmlns=\"http://inslab.ru/\"><ExecProcResult>{data}</ExecProcResult></ExecProcResponse>\
             </env:Body></env:Envelope>"
        )
    };
    let content_type = "application/soap+xml; charset=utf-8";
    host.queue(Ok(response_bytes(
        200,
        content_type,
        soap12("<data><result><Sid>S</Sid></result></data>").into_bytes(),
    )));
    host.queue(Ok(response_bytes(
        200,
        content_type,
        soap12("<data><result><ISN>1</ISN></result></data>").into_bytes(),
    )));
    let kias = connector(&host, Settings { soap_version: settings::SoapVersion::Soap12, ..settings_for_test() });

    let reply = kias.send(&notify_request()).unwrap();

    assert_eq!(reply_json(&reply), json!({"isn": "1"}));
    let request = &host.requests()[1];
    let headers: Vec<(String, String)> =
        request.headers.iter().map(|Tuple2(name, value)| (name.to_string(), value.to_string())).collect();
    assert_eq!(
        headers,
        [(
            "Content-Type".to_string(),
            "application/soap+xml; charset=utf-8; action=\"http://inslab.ru/ExecProc\"".to_string()
        )]
    );
    let body = std::str::from_utf8(&request.body).unwrap();
    assert!(body.contains("xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\""), "{body}");
}

#[test]
fn rowset_result_becomes_array() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result("<ROWSET><row><ISN>1</ISN><D>02.01.2025</D></row><row><ISN>2</ISN><D/></row></ROWSET>");
    let kias = connector(&host, settings_for_test());

    let reply = kias.send(&notify_request()).unwrap();

    assert_eq!(reply_json(&reply), json!([{"isn": "1", "d": "2025-01-02"}, {"isn": "2", "d": null}]));
}

#[test]
fn mock_windows_1251_reply_decoded() {
    let body = include_bytes!("fixtures/notify_windows_1251.xml").to_vec();

    let reply = notify_with_response("text/xml; charset=windows-1251", body).unwrap();

    let data = reply_json(&reply);
    assert_eq!(data["statusname"], "Уведомление принято");
    assert_eq!(data["params"]["comment"], "Клиент «Иванов» & <сын>");
    assert_eq!(data["params"]["issued"], "2025-03-01");
    assert_eq!(data["received"], "2026-12-04T21:05:48");
}
