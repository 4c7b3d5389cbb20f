//! Tests of the SOAP layer: envelopes, and every kind of response KIAS or a proxy in front of it
//! returns.

use uig_connector_api::reexports::{RString, RVec, Tuple2};

use super::*;

const DATA: &str = "<data><result><ISN>3366101</ISN><NAME>Квитанция «А-7» &amp; ко</NAME></result></data>";

fn response(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> HttpResponse {
    let headers = vec![Tuple2(RString::from("content-type"), RString::from(content_type))];
    HttpResponse { status, headers: RVec::from(headers), body: RVec::from(body.into()) }
}

fn soap11(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"{SOAP11_NAMESPACE}\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soap:Body>{body}</soap:Body></soap:Envelope>"
    )
}

fn soap12(body: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><env:Envelope xmlns:env=\"{SOAP12_NAMESPACE}\"><env:Body>{body}</env:Body></env:Envelope>")
}

fn exec_response(result: &str) -> String {
    format!(
        "<ExecProcResponse xmlns=\"{SERVICE_NAMESPACE}\"><ExecProcResult>{result}</ExecProcResult></ExecProcResponse>"
    )
}

fn html_502() -> Vec<u8> {
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>".to_vec()
}

#[test]
fn soap11_envelope_carries_escaped_pdata() {
    let pdata = "<data><request><reqName>Auth</reqName><params><Name>Иванов &amp; сын</Name></params></request></data>";

    let bytes = envelope(SoapVersion::Soap11, pdata).unwrap();

    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope"), "{text}");
    assert!(text.contains("&lt;data&gt;&lt;request&gt;"), "{text}");
    assert!(text.contains("Иванов &amp;amp; сын"), "{text}");
    let document = roxmltree::Document::parse(&text).unwrap();
    let root = document.root_element();
    assert_eq!(root.tag_name().namespace(), Some(SOAP11_NAMESPACE));
    let exec = root.descendants().find(|node| node.has_tag_name((SERVICE_NAMESPACE, "ExecProc"))).unwrap();
    let pdata_node = exec.children().find(|node| node.has_tag_name((SERVICE_NAMESPACE, "pData"))).unwrap();
    assert_eq!(pdata_node.text(), Some(pdata));
}

#[test]
fn soap12_envelope_namespace() {
    let text = String::from_utf8(envelope(SoapVersion::Soap12, "<data/>").unwrap()).unwrap();

    let document = roxmltree::Document::parse(&text).unwrap();
    assert_eq!(document.root_element().tag_name().namespace(), Some(SOAP12_NAMESPACE));
    assert_eq!(document.root_element().tag_name().name(), "Envelope");
}

#[test]
fn headers_per_version() {
    assert_eq!(
        request_headers(SoapVersion::Soap11),
        vec![
            ("Content-Type", "text/xml; charset=utf-8".to_string()),
            ("SOAPAction", "\"http://inslab.ru/ExecProc\"".to_string())
        ]
    );
    assert_eq!(
        request_headers(SoapVersion::Soap12),
        vec![("Content-Type", "application/soap+xml; charset=utf-8; action=\"http://inslab.ru/ExecProc\"".to_string())]
    );
}

#[test]
fn result_as_child_elements() {
    let body = soap11(&exec_response(DATA));

    let data = read_response(&response(200, "text/xml; charset=utf-8", body)).unwrap();

    assert!(data.is("data"));
    let result = data.child("result").unwrap();
    assert_eq!(result.child_text("NAME"), Some("Квитанция «А-7» & ко"));
}

#[test]
fn result_as_escaped_text() {
    let escaped = quick_xml::escape::escape(DATA).into_owned();
    let body = soap12(&exec_response(&escaped));

    let data = read_response(&response(200, "application/soap+xml; charset=utf-8", body)).unwrap();

    assert_eq!(data.child("result").unwrap().child_text("ISN"), Some("3366101"));
}

#[test]
fn windows_1251_response_decoded() {
    let body = soap11(&exec_response(DATA)).replace("encoding=\"utf-8\"", "encoding=\"windows-1251\"");
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(&body);

    let data = read_response(&response(200, "text/xml", bytes.into_owned())).unwrap();

    assert_eq!(data.child("result").unwrap().child_text("NAME"), Some("Квитанция «А-7» & ко"));
}

#[test]
fn contradicting_charset_is_permanent() {
    let body = soap11(&exec_response(DATA)).replace("encoding=\"utf-8\"", "encoding=\"windows-1251\"");
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(&body);

    let error = read_response(&response(200, "text/xml; charset=utf-8", bytes.into_owned())).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), INVALID_ENCODING);
    assert!(error.message.contains("cannot be decoded"), "{}", error.message);
    assert!(error.message.contains("not valid UTF-8"), "{}", error.message);
    assert!(error.message.contains("windows-1251"), "{}", error.message);
    assert!(!error.message.contains('\u{FFFD}'), "{}", error.message);
}

#[test]
fn soap11_fault_on_500_is_permanent() {
    let body = soap11(
        "<soap:Fault><faultcode>soap:Server</faultcode><faultstring>Server was unable to process request. ---&gt; \
         ORA-20001: Полис не найден</faultstring><detail/></soap:Fault>",
    );

    let error = read_response(&response(500, "text/xml; charset=utf-8", body)).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "soap:Server");
    assert!(error.message.contains("SOAP Fault soap:Server with HTTP 500"), "{}", error.message);
    assert!(error.message.contains("ORA-20001: Полис не найден"), "{}", error.message);
}

#[test]
fn soap12_fault_on_500_is_permanent() {
    let body = soap12(
        "<env:Fault><env:Code><env:Value>env:Receiver</env:Value></env:Code>\
         <env:Reason><env:Text xml:lang=\"ru\">Ошибка сервера</env:Text></env:Reason></env:Fault>",
    );

    let error = read_response(&response(500, "application/soap+xml; charset=utf-8", body)).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "env:Receiver");
    assert!(error.message.contains("Ошибка сервера"), "{}", error.message);
}

#[test]
fn fault_with_http_200_is_permanent() {
    let body = soap11("<soap:Fault><faultcode>soap:Client</faultcode><faultstring>bad</faultstring></soap:Fault>");

    let error = read_response(&response(200, "text/xml", body)).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "soap:Client");
}

#[test]
fn version_mismatch_fault_is_config() {
    let body = soap11(
        "<soap:Fault><faultcode>soap:VersionMismatch</faultcode><faultstring>Possible SOAP version mismatch\
         </faultstring></soap:Fault>",
    );

    let error = read_response(&response(500, "text/xml", body)).unwrap_err();

    assert_eq!(error.kind, ErrorKind::CONFIG);
    assert!(error.message.contains("settings.soap_version"), "{}", error.message);
}

#[test]
fn fault_behind_503_is_transient() {
    let body = soap11("<soap:Fault><faultcode>soap:Server</faultcode><faultstring>busy</faultstring></soap:Fault>");

    let error = read_response(&response(503, "text/xml", body)).unwrap_err();

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
}

#[test]
fn html_502_is_transient() {
    let error = read_response(&response(502, "text/html", html_502())).unwrap_err();

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert!(error.message.contains("HTTP 502"), "{}", error.message);
    assert!(!error.message.contains("Bad Gateway</h1>"), "{}", error.message);
}

#[test]
fn html_500_without_fault_is_transient() {
    let error = read_response(&response(500, "text/html; charset=utf-8", html_502())).unwrap_err();

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
}

#[test]
fn xml_500_without_fault_is_transient() {
    let error = read_response(&response(500, "text/xml", "<oops/>")).unwrap_err();

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
}

#[test]
fn retry_after_kept_on_503() {
    let mut overloaded = response(503, "text/html", html_502());
    overloaded.headers.push(Tuple2(RString::from("retry-after"), RString::from("7")));

    let error = read_response(&overloaded).unwrap_err();

    assert_eq!(error.retry_after_ms.into_option(), Some(7_000));
}

#[test]
fn html_page_with_200_is_malformed() {
    let error = read_response(&response(200, "text/html", html_502())).unwrap_err();

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert_eq!(error.code.as_str(), MALFORMED_RESPONSE);
}

#[test]
fn truncated_xml_is_malformed() {
    let body = soap11(&exec_response(DATA));
    let truncated = &body[..body.find("<NAME>").unwrap()];

    let error = read_response(&response(200, "text/xml; charset=utf-8", truncated)).unwrap_err();

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert_eq!(error.code.as_str(), MALFORMED_RESPONSE);
    assert!(error.message.contains("not well-formed XML"), "{}", error.message);
}

#[test]
fn body_cut_inside_character_is_malformed() {
    let body = soap11(&exec_response(DATA));
    let cut = body.find("Квитанция").unwrap() + 1;

    let error = read_response(&response(200, "text/xml; charset=utf-8", &body.as_bytes()[..cut])).unwrap_err();

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert_eq!(error.code.as_str(), MALFORMED_RESPONSE);
    assert!(error.message.contains("cut off"), "{}", error.message);
}

#[test]
fn unexpected_envelope_shapes_are_malformed() {
    let cases = [
        ("<data><result/></data>".to_string(), "not a SOAP Envelope"),
        (soap11("<Other/>"), "no ExecProcResponse"),
        (soap11(&format!("<ExecProcResponse xmlns=\"{SERVICE_NAMESPACE}\"/>")), "no ExecProcResult"),
        (soap11(&exec_response("  ")), "ExecProcResult is empty"),
        (soap11(&exec_response("&lt;data&gt;")), "text of ExecProcResult is not well-formed"),
    ];

    for (body, expected) in cases {
        let error = read_response(&response(200, "text/xml", body)).unwrap_err();

        assert_eq!(error.code.as_str(), MALFORMED_RESPONSE, "{expected}");
        assert!(error.message.contains(expected), "{}", error.message);
    }
}

#[test]
fn http_statuses_classified() {
    let cases = [
        (401, ErrorKind::AUTH),
        (403, ErrorKind::AUTH),
        (404, ErrorKind::CONFIG),
        (415, ErrorKind::CONFIG),
        (400, ErrorKind::PERMANENT),
        (408, ErrorKind::TRANSIENT),
        (429, ErrorKind::TRANSIENT),
        (504, ErrorKind::TRANSIENT),
        (302, ErrorKind::PERMANENT),
    ];

    for (status, kind) in cases {
        let error = read_response(&response(status, "text/html", "<html/>")).unwrap_err();

        assert_eq!(error.kind, kind, "HTTP {status}");
        assert!(error.message.contains(&format!("HTTP {status}")), "{}", error.message);
    }
}
