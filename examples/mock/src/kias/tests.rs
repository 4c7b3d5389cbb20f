//! Tests of the mock KIAS, driving its router in-process and, for the `reset` mode, over a
//! loopback socket.

use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use clap::Parser;
use quick_xml::escape::escape;
use serde_json::{json, Value};
use sha2::{Digest, Sha512};
use tower::ServiceExt;

use super::soap::{EXEC_PROC_ACTION, SOAP11_NAMESPACE, SOAP12_NAMESPACE};
use super::xml::XmlNode;
use super::{router, KiasOptions, KiasState};

const USER: &str = "demo";
const PASSWORD: &str = "test-kias-password";

fn options(session_lifetime: u64) -> KiasOptions {
    KiasOptions {
        kias_user: USER.to_owned(),
        kias_password: PASSWORD.to_owned(),
        kias_session_lifetime: session_lifetime,
    }
}

fn test_app() -> Router {
    router(KiasState::new(&options(1200)))
}

fn password_hash(password: &str) -> String {
    Sha512::digest(password.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Builds the `pData` document of a call; `params` are written as they are.
fn pdata(procedure: &str, params: &str) -> String {
    format!(
        "<data><request><reqName>{procedure}</reqName><AppId>1001</AppId><params>{params}</params></request></data>"
    )
}

fn envelope(namespace: &str, pdata: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"{namespace}\"><soap:Body>\
         <ExecProc xmlns=\"http://inslab.ru/\"><pData>{}</pData></ExecProc></soap:Body></soap:Envelope>",
        escape(pdata)
    )
}

/// A response with its status, content type and raw body.
struct Reply {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    /// Returns the `data` element of a UTF-8 SOAP response.
    fn data(&self) -> XmlNode {
        let text = self.text();
        let document = roxmltree::Document::parse(&text).unwrap();
        let data = document
            .descendants()
            .find(|node| node.has_tag_name("data"))
            .unwrap_or_else(|| panic!("no data element in {text}"));
        XmlNode::from_roxmltree(data).unwrap()
    }
}

async fn request(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Reply {
        status,
        content_type,
        body,
    }
}

async fn soap11(app: &Router, pdata: &str) -> Reply {
    let request_body = envelope(SOAP11_NAMESPACE, pdata);
    let http_request = Request::post("/kiasSvc.asmx")
        .header("content-type", "text/xml; charset=utf-8")
        .header("soapaction", format!("\"{EXEC_PROC_ACTION}\""))
        .body(Body::from(request_body))
        .unwrap();
    request(app, http_request).await
}

async fn soap12(app: &Router, pdata: &str) -> Reply {
    let request_body = envelope(SOAP12_NAMESPACE, pdata);
    let http_request = Request::post("/kiasSvc.asmx")
        .header(
            "content-type",
            format!("application/soap+xml; charset=utf-8; action=\"{EXEC_PROC_ACTION}\""),
        )
        .body(Body::from(request_body))
        .unwrap();
    request(app, http_request).await
}

async fn control(
    app: &Router,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut builder = Request::builder().method(method).uri(path);
    let body = match body {
        Some(json) => {
            builder = builder.header("content-type", "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let reply = request(app, builder.body(body).unwrap()).await;
    let json = if reply.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&reply.body).unwrap()
    };
    (reply.status, json)
}

async fn state(app: &Router) -> Value {
    control(app, Method::GET, "/_mock/kias/state", None).await.1
}

async fn set_mode(app: &Router, body: Value) -> (StatusCode, Value) {
    control(app, Method::PUT, "/_mock/kias/mode", Some(body)).await
}

async fn set_encoding(app: &Router, encoding: &str) -> (StatusCode, Value) {
    control(
        app,
        Method::PUT,
        "/_mock/kias/encoding",
        Some(json!({ "encoding": encoding })),
    )
    .await
}

async fn auth(app: &Router) -> String {
    let params = format!("<Name>{USER}</Name><Pwd>{}</Pwd>", password_hash(PASSWORD));
    let reply = soap11(app, &pdata("Auth", &params)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    text_of(&reply.data(), "Sid").unwrap_or_else(|| panic!("no Sid in {}", reply.text()))
}

/// Calls `procedure` in a new session and returns the reply.
async fn call(app: &Router, procedure: &str, params: &str) -> Reply {
    let sid = auth(app).await;
    soap11(app, &pdata(procedure, &format!("<Sid>{sid}</Sid>{params}"))).await
}

/// Returns the first descendant named `name`, depth first.
fn find<'a>(node: &'a XmlNode, name: &str) -> Option<&'a XmlNode> {
    node.children.iter().find_map(|child| {
        if child.name == name {
            Some(child)
        } else {
            find(child, name)
        }
    })
}

fn text_of(node: &XmlNode, name: &str) -> Option<String> {
    find(node, name).map(|found| found.text.clone())
}

/// Counts the descendants named `name`.
fn count(node: &XmlNode, name: &str) -> usize {
    node.children
        .iter()
        .map(|child| usize::from(child.name == name) + count(child, name))
        .sum()
}

/// Returns the error code of a `data` reply, or `None` for a result.
fn error_code(reply: &Reply) -> Option<String> {
    reply
        .data()
        .child("error")
        .and_then(|error| error.child_text("code"))
        .map(str::to_owned)
}

fn receipt_params(series: &str, number: &str, key: &str) -> String {
    format!(
        "<SERIES>{series}</SERIES><NUMBER>{number}</NUMBER><AGENTISN>3366201</AGENTISN><POLICYISN>5500123</POLICYISN>\
         <AMOUNT>12500.50</AMOUNT><PAYER>Иванов Иван Иванович</PAYER><DATEPAY>01.03.2025</DATEPAY>\
         <STATUS>SPENT</STATUS><EXTERNALKEY>{key}</EXTERNALKEY>"
    )
}

#[tokio::test]
async fn auth_opens_session() {
    let app = test_app();

    let sid = auth(&app).await;

    assert_eq!(sid.len(), 32);
    let state = state(&app).await;
    assert_eq!(state["auth_count"], 1);
    assert_eq!(state["sessions"], 1);
    assert_eq!(state["calls"]["Auth"], 1);
    assert_eq!(state["requests"]["by_soap_version"]["1.1"], 1);
}

#[tokio::test]
async fn auth_accepts_uppercase_hash() {
    let app = test_app();
    let params = format!(
        "<Name>{USER}</Name><Pwd>{}</Pwd>",
        password_hash(PASSWORD).to_uppercase()
    );

    let reply = soap11(&app, &pdata("Auth", &params)).await;

    assert_eq!(error_code(&reply), None, "{}", reply.text());
}

#[tokio::test]
async fn wrong_password_rejected() {
    let app = test_app();
    let params = format!("<Name>{USER}</Name><Pwd>{}</Pwd>", password_hash("wrong"));

    let reply = soap11(&app, &pdata("Auth", &params)).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(error_code(&reply).as_deref(), Some("002"));
    assert_eq!(state(&app).await["auth_count"], 0);
}

#[tokio::test]
async fn call_without_session_rejected() {
    let app = test_app();

    let reply = soap11(
        &app,
        &pdata("User_NotifyEvent", "<Sid>NOPE</Sid><EVENT>X</EVENT>"),
    )
    .await;

    assert_eq!(error_code(&reply).as_deref(), Some("001"));
    assert_eq!(state(&app).await["notifications"], json!([]));
}

#[tokio::test]
async fn expired_sessions_rejected() {
    let app = test_app();
    let sid = auth(&app).await;

    let (status, expired) = control(&app, Method::POST, "/_mock/kias/expire-sessions", None).await;
    let reply = soap11(
        &app,
        &pdata(
            "User_NotifyEvent",
            &format!("<Sid>{sid}</Sid><EVENT>X</EVENT>"),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(expired, json!({"expired": 1}));
    assert_eq!(error_code(&reply).as_deref(), Some("001"));
}

#[tokio::test]
async fn session_lifetime_enforced() {
    let app = router(KiasState::new(&options(1)));
    let sid = auth(&app).await;

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reply = soap11(
        &app,
        &pdata(
            "User_NotifyEvent",
            &format!("<Sid>{sid}</Sid><EVENT>X</EVENT>"),
        ),
    )
    .await;

    assert_eq!(error_code(&reply).as_deref(), Some("001"));
    assert_eq!(state(&app).await["sessions"], 0);
}

#[tokio::test]
async fn notify_stored_and_echoed() {
    let app = test_app();

    let reply = call(
        &app,
        "User_NotifyEvent",
        "<EVENT>POLICY_ISSUED</EVENT><COMMENT>Клиент «Иванов» &amp; &lt;сын&gt;</COMMENT>",
    )
    .await;

    assert_eq!(reply.status, StatusCode::OK);
    let data = reply.data();
    assert_eq!(text_of(&data, "EVENT").as_deref(), Some("POLICY_ISSUED"));
    assert_eq!(
        text_of(&data, "STATUSNAME").as_deref(),
        Some("Уведомление принято")
    );
    assert_eq!(
        text_of(&data, "COMMENT").as_deref(),
        Some("Клиент «Иванов» & <сын>")
    );
    let notifications = &state(&app).await["notifications"];
    assert_eq!(notifications[0]["event"], "POLICY_ISSUED");
    assert_eq!(
        notifications[0]["params"]["COMMENT"],
        "Клиент «Иванов» & <сын>"
    );
    assert!(notifications[0]["params"].get("Sid").is_none());
}

#[tokio::test]
async fn notify_needs_event() {
    let app = test_app();

    let reply = call(&app, "User_NotifyEvent", "<COMMENT>x</COMMENT>").await;

    assert_eq!(error_code(&reply).as_deref(), Some("100"));
}

#[tokio::test]
async fn a7_receipt_unique_by_series_and_number() {
    let app = test_app();

    let first = call(
        &app,
        "User_A7Create",
        &receipt_params("7000", "0012345", "UIG-1"),
    )
    .await;
    let duplicate = call(
        &app,
        "User_A7Create",
        &receipt_params("7000", "0012345", "UIG-2"),
    )
    .await;
    let other_number = call(
        &app,
        "User_A7Create",
        &receipt_params("7000", "0012346", "UIG-3"),
    )
    .await;

    assert_eq!(error_code(&first), None, "{}", first.text());
    assert_eq!(text_of(&first.data(), "ISN").as_deref(), Some("8800001"));
    assert_eq!(
        text_of(&first.data(), "STATUSNAME").as_deref(),
        Some("Использована")
    );
    assert_eq!(error_code(&duplicate).as_deref(), Some("101"));
    assert_eq!(error_code(&other_number), None);
    let receipts = &state(&app).await["receipts"];
    assert_eq!(receipts.as_array().unwrap().len(), 2);
    assert_eq!(receipts[0]["payer"], "Иванов Иван Иванович");
    assert_eq!(receipts[0]["external_key"], "UIG-1");
}

#[tokio::test]
async fn a7_create_validates_params() {
    let app = test_app();
    let cases = [
        receipt_params("7000", "1", "K").replace(
            "<DATEPAY>01.03.2025</DATEPAY>",
            "<DATEPAY>2025-03-01</DATEPAY>",
        ),
        receipt_params("7000", "1", "K").replace("<PAYER>Иванов Иван Иванович</PAYER>", ""),
        receipt_params("7000", "1", "K").replace("<STATUS>SPENT</STATUS>", "<STATUS>USED</STATUS>"),
        receipt_params("7000", "1", "K")
            .replace("<AGENTISN>3366201</AGENTISN>", "<AGENTISN>agent</AGENTISN>"),
        "<NUMBER>1</NUMBER>".to_owned(),
    ];

    for params in cases {
        let reply = call(&app, "User_A7Create", &params).await;

        assert_eq!(error_code(&reply).as_deref(), Some("100"), "{params}");
    }
    assert_eq!(state(&app).await["receipts"], json!([]));
}

#[tokio::test]
async fn a7_lost_receipt_needs_no_payment() {
    let app = test_app();
    let params = "<SERIES>7000</SERIES><NUMBER>5</NUMBER><AGENTISN>3366201</AGENTISN><DATEPAY>01.03.2025</DATEPAY>\
                  <STATUS>LOST</STATUS>";

    let reply = call(&app, "User_A7Create", params).await;

    assert_eq!(error_code(&reply), None, "{}", reply.text());
    assert_eq!(state(&app).await["receipts"][0]["status"], "LOST");
}

#[tokio::test]
async fn a7_find_by_number_or_key() {
    let app = test_app();
    call(
        &app,
        "User_A7Create",
        &receipt_params("7000", "0012345", "UIG-1"),
    )
    .await;

    let by_number = call(
        &app,
        "User_A7Find",
        "<SERIES>7000</SERIES><NUMBER>0012345</NUMBER>",
    )
    .await;
    let by_key = call(&app, "User_A7Find", "<EXTERNALKEY>UIG-1</EXTERNALKEY>").await;
    let missing = call(
        &app,
        "User_A7Find",
        "<SERIES>7000</SERIES><NUMBER>9</NUMBER>",
    )
    .await;
    let unnamed = call(&app, "User_A7Find", "<SERIES>7000</SERIES>").await;

    for reply in [&by_number, &by_key] {
        let data = reply.data();
        assert_eq!(count(&data, "row"), 1, "{}", reply.text());
        assert_eq!(text_of(&data, "EXTERNALKEY").as_deref(), Some("UIG-1"));
    }
    let missing = missing.data();
    assert_eq!(count(&missing, "ROWSET"), 1);
    assert_eq!(count(&missing, "row"), 0);
    assert_eq!(error_code(&unnamed).as_deref(), Some("100"));
}

#[tokio::test]
async fn payment_confirmed_once() {
    let app = test_app();
    let params =
        "<PAYMENTISN>7700123</PAYMENTISN><AMOUNT>4500.00</AMOUNT><DATEPAY>02.03.2025</DATEPAY>\
                  <DOCNO>п/п 15</DOCNO><EXTERNALKEY>UIG-9</EXTERNALKEY>";

    let first = call(&app, "User_PaymentConfirm", params).await;
    let second = call(&app, "User_PaymentConfirm", params).await;

    assert_eq!(error_code(&first), None, "{}", first.text());
    assert_eq!(
        text_of(&first.data(), "STATUS").as_deref(),
        Some("CONFIRMED")
    );
    assert_eq!(error_code(&second).as_deref(), Some("103"));
    let payments = &state(&app).await["payments"];
    assert_eq!(payments.as_array().unwrap().len(), 1);
    assert_eq!(payments[0]["document"], "п/п 15");
}

#[tokio::test]
async fn unknown_payment_not_found() {
    let app = test_app();
    let params = "<PAYMENTISN>7700000</PAYMENTISN><AMOUNT>1</AMOUNT><DATEPAY>02.03.2025</DATEPAY>";

    let reply = call(&app, "User_PaymentConfirm", params).await;

    assert_eq!(error_code(&reply).as_deref(), Some("102"));
}

#[tokio::test]
async fn payment_find_shows_status() {
    let app = test_app();
    let confirm = "<PAYMENTISN>7700123</PAYMENTISN><AMOUNT>1</AMOUNT><DATEPAY>02.03.2025</DATEPAY>\
                   <EXTERNALKEY>UIG-9</EXTERNALKEY>";
    let before = call(&app, "User_PaymentFind", "<PAYMENTISN>7700123</PAYMENTISN>").await;
    call(&app, "User_PaymentConfirm", confirm).await;

    let after = call(&app, "User_PaymentFind", "<PAYMENTISN>7700123</PAYMENTISN>").await;
    let unknown = call(&app, "User_PaymentFind", "<PAYMENTISN>7700000</PAYMENTISN>").await;

    assert_eq!(text_of(&before.data(), "STATUS").as_deref(), Some("NEW"));
    assert_eq!(
        text_of(&after.data(), "STATUS").as_deref(),
        Some("CONFIRMED")
    );
    assert_eq!(
        text_of(&after.data(), "EXTERNALKEY").as_deref(),
        Some("UIG-9")
    );
    assert_eq!(count(&unknown.data(), "row"), 0);
}

#[tokio::test]
async fn unknown_procedure_rejected() {
    let app = test_app();

    let reply = call(&app, "User_Unknown", "").await;

    assert_eq!(error_code(&reply).as_deref(), Some("003"));
}

/// Returns the rows of a `GETDICTILIST` reply as (ISN, PARENTISN, CODE, FULLNAME, N_CHILDREN).
async fn dictionary(app: &Router, isn: u64) -> Vec<(String, String, String, String, String)> {
    let reply = call(app, "GETDICTILIST", &format!("<DictiISN>{isn}</DictiISN>")).await;
    let data = reply.data();
    let rowset = find(&data, "ROWSET").unwrap_or_else(|| panic!("no ROWSET in {}", reply.text()));
    let field = |row: &XmlNode, name: &str| {
        row.child(name)
            .map(|node| node.text.clone())
            .unwrap_or_default()
    };
    rowset
        .children
        .iter()
        .map(|row| {
            (
                field(row, "ISN"),
                field(row, "PARENTISN"),
                field(row, "CODE"),
                field(row, "FULLNAME"),
                field(row, "N_CHILDREN"),
            )
        })
        .collect()
}

#[tokio::test]
async fn car_makes_carry_avinfo_codes() {
    let app = test_app();

    let makes = dictionary(&app, 2001).await;

    let codes: Vec<&str> = makes.iter().map(|make| make.2.as_str()).collect();
    let avinfo_codes: Vec<&str> = crate::catalog::BRANDS
        .iter()
        .map(|brand| brand.code)
        .collect();
    assert_eq!(codes, avinfo_codes);
    assert_eq!(
        makes[0],
        (
            "3366101".to_owned(),
            "2001".to_owned(),
            "VAZ".to_owned(),
            "LADA (ВАЗ)".to_owned(),
            "8".to_owned()
        )
    );
}

#[tokio::test]
async fn make_lists_its_models() {
    let app = test_app();

    let models = dictionary(&app, 3_366_101).await;

    assert_eq!(models.len(), 8);
    assert_eq!(
        models[0],
        (
            "3367001".to_owned(),
            "3366101".to_owned(),
            String::new(),
            "2107".to_owned(),
            "0".to_owned()
        )
    );
    assert!(dictionary(&app, 3_367_001).await.is_empty());
}

#[tokio::test]
async fn regions_grouped_by_district() {
    let app = test_app();

    let districts = dictionary(&app, 2002).await;
    let central = dictionary(&app, districts[0].0.parse().unwrap()).await;
    let documents = dictionary(&app, 2003).await;

    assert_eq!(districts[0].2, "ЦФО");
    assert_eq!(central[0].2, "77");
    assert_eq!(central[0].3, "г. Москва");
    assert_eq!(documents[0].2, "21");
}

#[tokio::test]
async fn unknown_directory_rejected() {
    let app = test_app();

    let reply = call(&app, "GETDICTILIST", "<DictiISN>9999</DictiISN>").await;
    let not_number = call(&app, "GETDICTILIST", "<DictiISN>abc</DictiISN>").await;

    assert_eq!(error_code(&reply).as_deref(), Some("104"));
    assert_eq!(error_code(&not_number).as_deref(), Some("100"));
}

#[tokio::test]
async fn soap12_request_answered_in_soap12() {
    let app = test_app();
    let params = format!("<Name>{USER}</Name><Pwd>{}</Pwd>", password_hash(PASSWORD));

    let reply = soap12(&app, &pdata("Auth", &params)).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "application/soap+xml; charset=utf-8");
    let text = reply.text();
    let document = roxmltree::Document::parse(&text).unwrap();
    assert_eq!(
        document.root_element().tag_name().namespace(),
        Some(SOAP12_NAMESPACE)
    );
    assert!(text_of(&reply.data(), "Sid").is_some());
    assert_eq!(state(&app).await["requests"]["by_soap_version"]["1.2"], 1);
}

#[tokio::test]
async fn pdata_as_child_elements_accepted() {
    let app = test_app();
    let params = format!("<Name>{USER}</Name><Pwd>{}</Pwd>", password_hash(PASSWORD));
    let body = format!(
        "<soap:Envelope xmlns:soap=\"{SOAP11_NAMESPACE}\"><soap:Body><ExecProc xmlns=\"http://inslab.ru/\"><pData>{}</pData>\
         </ExecProc></soap:Body></soap:Envelope>",
        pdata("Auth", &params)
    );
    let http_request = Request::post("/kiasSvc.asmx")
        .header("content-type", "text/xml")
        .header("soapaction", EXEC_PROC_ACTION)
        .body(Body::from(body))
        .unwrap();

    let reply = request(&app, http_request).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(text_of(&reply.data(), "Sid").is_some());
}

#[tokio::test]
async fn soap_errors_are_faults() {
    let app = test_app();
    let auth = pdata("Auth", "<Name>demo</Name>");
    let cases = [
        (
            "text/xml",
            Some("\"http://inslab.ru/Other\""),
            envelope(SOAP11_NAMESPACE, &auth),
            "soap:Client",
        ),
        (
            "text/xml",
            None,
            envelope(SOAP11_NAMESPACE, &auth),
            "soap:Client",
        ),
        (
            "text/xml",
            Some(EXEC_PROC_ACTION),
            envelope(SOAP12_NAMESPACE, &auth),
            "soap:VersionMismatch",
        ),
        (
            "text/xml",
            Some(EXEC_PROC_ACTION),
            envelope(SOAP11_NAMESPACE, "<data><request>"),
            "soap:Client",
        ),
        (
            "text/xml",
            Some(EXEC_PROC_ACTION),
            "<Envelope/>".to_owned(),
            "soap:VersionMismatch",
        ),
        (
            "text/xml",
            Some(EXEC_PROC_ACTION),
            "<Other/>".to_owned(),
            "soap:Client",
        ),
        (
            "application/soap+xml",
            None,
            envelope(SOAP12_NAMESPACE, "<other/>"),
            "soap:Sender",
        ),
    ];

    for (content_type, action, body, code) in cases {
        let mut builder = Request::post("/kiasSvc.asmx").header("content-type", content_type);
        if let Some(action) = action {
            builder = builder.header("soapaction", action);
        }

        let reply = request(&app, builder.body(Body::from(body)).unwrap()).await;

        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{code}");
        let text = reply.text();
        assert!(text.contains(&format!(">{code}<")), "{text}");
    }
    assert_eq!(state(&app).await["auth_count"], 0);
}

#[tokio::test]
async fn other_content_type_rejected() {
    let app = test_app();
    let http_request = Request::post("/kiasSvc.asmx")
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();

    let reply = request(&app, http_request).await;

    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn fault_mode_has_no_effect() {
    let app = test_app();
    let sid = auth(&app).await;
    set_mode(&app, json!({"mode": "fault", "count": 1})).await;

    let reply = soap11(
        &app,
        &pdata(
            "User_NotifyEvent",
            &format!("<Sid>{sid}</Sid><EVENT>X</EVENT>"),
        ),
    )
    .await;

    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        reply.text().contains("<faultcode>soap:Server</faultcode>"),
        "{}",
        reply.text()
    );
    let state = state(&app).await;
    assert_eq!(state["notifications"], json!([]));
    assert_eq!(state["mode"], json!({"mode": "normal"}));
}

#[tokio::test]
async fn html_502_mode_has_no_effect() {
    let app = test_app();
    let sid = auth(&app).await;
    set_mode(&app, json!({"mode": "html_502"})).await;

    let reply = soap11(
        &app,
        &pdata(
            "User_NotifyEvent",
            &format!("<Sid>{sid}</Sid><EVENT>X</EVENT>"),
        ),
    )
    .await;

    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(
        reply.content_type.starts_with("text/html"),
        "{}",
        reply.content_type
    );
    assert_eq!(state(&app).await["notifications"], json!([]));
}

#[tokio::test]
async fn fail_after_commit_performs_call() {
    let app = test_app();
    let sid = auth(&app).await;
    set_mode(
        &app,
        json!({"mode": "fail_after_commit", "count": 1, "procedure": "User_A7Create"}),
    )
    .await;
    let create = pdata(
        "User_A7Create",
        &format!("<Sid>{sid}</Sid>{}", receipt_params("7000", "1", "UIG-1")),
    );

    let failed = soap11(&app, &create).await;
    let retried = soap11(&app, &create).await;

    assert_eq!(failed.status, StatusCode::BAD_GATEWAY);
    assert_eq!(error_code(&retried).as_deref(), Some("101"));
    let state = state(&app).await;
    assert_eq!(state["receipts"].as_array().unwrap().len(), 1);
    assert_eq!(state["mode"], json!({"mode": "normal"}));
}

#[tokio::test]
async fn procedure_filter_spares_others() {
    let app = test_app();
    set_mode(
        &app,
        json!({"mode": "html_502", "count": 2, "procedure": "User_A7Create"}),
    )
    .await;

    let sid = auth(&app).await;
    let notify = soap11(
        &app,
        &pdata(
            "User_NotifyEvent",
            &format!("<Sid>{sid}</Sid><EVENT>X</EVENT>"),
        ),
    )
    .await;

    assert_eq!(notify.status, StatusCode::OK);
    let (_, mode) = control(&app, Method::GET, "/_mock/kias/mode", None).await;
    assert_eq!(
        mode,
        json!({"mode": "html_502", "count": 2, "procedure": "User_A7Create"})
    );
}

#[tokio::test]
async fn count_returns_to_normal() {
    let app = test_app();
    set_mode(&app, json!({"mode": "html_502", "count": 2})).await;
    let params = format!("<Name>{USER}</Name><Pwd>{}</Pwd>", password_hash(PASSWORD));

    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(soap11(&app, &pdata("Auth", &params)).await.status);
    }

    assert_eq!(
        statuses,
        [
            StatusCode::BAD_GATEWAY,
            StatusCode::BAD_GATEWAY,
            StatusCode::OK
        ]
    );
}

#[tokio::test]
async fn malformed_mode_cuts_envelope() {
    let app = test_app();
    set_mode(&app, json!({"mode": "malformed"})).await;
    let params = format!("<Name>{USER}</Name><Pwd>{}</Pwd>", password_hash(PASSWORD));

    let reply = soap11(&app, &pdata("Auth", &params)).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert!(roxmltree::Document::parse(&reply.text()).is_err());
    assert_eq!(state(&app).await["auth_count"], 0);
}

#[tokio::test]
async fn slow_mode_delays() {
    let app = test_app();
    set_mode(&app, json!({"mode": "slow", "delay_ms": 200})).await;
    let params = format!("<Name>{USER}</Name><Pwd>{}</Pwd>", password_hash(PASSWORD));
    let started = Instant::now();

    let reply = soap11(&app, &pdata("Auth", &params)).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn reset_mode_closes_connection() {
    let app = test_app();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let base = format!("http://{address}");
    client
        .put(format!("{base}/_mock/kias/mode"))
        .json(&json!({"mode": "reset", "count": 1}))
        .send()
        .await
        .unwrap();
    let params = format!("<Name>{USER}</Name><Pwd>{}</Pwd>", password_hash(PASSWORD));
    let send = || {
        client
            .post(format!("{base}/kiasSvc.asmx"))
            .header("content-type", "text/xml; charset=utf-8")
            .header("soapaction", EXEC_PROC_ACTION)
            .body(envelope(SOAP11_NAMESPACE, &pdata("Auth", &params)))
            .send()
    };

    let reset = send().await;
    let after = send().await.unwrap();

    assert!(reset.is_err(), "{reset:?}");
    assert_eq!(after.status(), reqwest::StatusCode::OK);
    let state: Value = client
        .get(format!("{base}/_mock/kias/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["auth_count"], 1);
}

#[tokio::test]
async fn every_encoding_labeled_and_decodable() {
    let cases: [(&str, &str, &'static encoding_rs::Encoding, usize); 6] = [
        ("utf8", "text/xml; charset=utf-8", encoding_rs::UTF_8, 0),
        ("utf8_bom", "text/xml; charset=utf-8", encoding_rs::UTF_8, 3),
        (
            "utf16le_bom",
            "text/xml; charset=utf-16",
            encoding_rs::UTF_16LE,
            2,
        ),
        (
            "utf16be_bom",
            "text/xml; charset=utf-16",
            encoding_rs::UTF_16BE,
            2,
        ),
        (
            "cp1251_header",
            "text/xml; charset=windows-1251",
            encoding_rs::WINDOWS_1251,
            0,
        ),
        (
            "cp1251_declaration",
            "text/xml",
            encoding_rs::WINDOWS_1251,
            0,
        ),
    ];

    for (name, content_type, encoding, bom_length) in cases {
        let app = test_app();
        set_encoding(&app, "utf8").await;
        let sid = auth(&app).await;
        set_encoding(&app, name).await;

        let reply = soap11(
            &app,
            &pdata(
                "User_NotifyEvent",
                &format!("<Sid>{sid}</Sid><EVENT>Событие</EVENT>"),
            ),
        )
        .await;

        assert_eq!(reply.content_type, content_type, "{name}");
        if bom_length > 0 {
            assert_eq!(
                encoding_rs::Encoding::for_bom(&reply.body).map(|(found, _)| found),
                Some(encoding),
                "{name}"
            );
        }
        let (text, had_errors) = encoding.decode_without_bom_handling(&reply.body[bom_length..]);
        assert!(!had_errors, "{name}");
        let expected_label = match encoding {
            encoding if encoding == encoding_rs::UTF_8 => "utf-8",
            encoding if encoding == encoding_rs::WINDOWS_1251 => "windows-1251",
            _ => "utf-16",
        };
        assert!(
            text.starts_with(&format!(
                "<?xml version=\"1.0\" encoding=\"{expected_label}\"?>"
            )),
            "{name}: {text}"
        );
        assert!(
            text.contains("<STATUSNAME>Уведомление принято</STATUSNAME>"),
            "{name}: {text}"
        );
        assert!(text.contains("<EVENT>Событие</EVENT>"), "{name}: {text}");
    }
}

#[tokio::test]
async fn contradicting_header_sends_cp1251_as_utf8() {
    let app = test_app();
    let sid = auth(&app).await;
    set_encoding(&app, "contradicting_header").await;

    let reply = soap11(
        &app,
        &pdata(
            "User_NotifyEvent",
            &format!("<Sid>{sid}</Sid><EVENT>X</EVENT>"),
        ),
    )
    .await;

    assert_eq!(reply.content_type, "text/xml; charset=utf-8");
    assert!(std::str::from_utf8(&reply.body).is_err());
    let (text, _, had_errors) = encoding_rs::WINDOWS_1251.decode(&reply.body);
    assert!(!had_errors);
    assert!(text.contains("Уведомление принято"), "{text}");
}

#[tokio::test]
async fn encoding_applies_to_faults() {
    let app = test_app();
    set_encoding(&app, "cp1251_header").await;
    set_mode(&app, json!({"mode": "fault"})).await;
    let params = format!("<Name>{USER}</Name><Pwd>{}</Pwd>", password_hash(PASSWORD));

    let reply = soap11(&app, &pdata("Auth", &params)).await;

    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.content_type, "text/xml; charset=windows-1251");
}

#[tokio::test]
async fn control_rejects_bad_bodies() {
    let app = test_app();
    let cases = [
        (
            "/_mock/kias/mode",
            json!({"mode": "broken"}),
            "unknown mode",
        ),
        (
            "/_mock/kias/mode",
            json!({"mode": "fault", "count": 0}),
            "count 0",
        ),
        (
            "/_mock/kias/mode",
            json!({"mode": "slow", "delay_ms": 999_999}),
            "too large",
        ),
        (
            "/_mock/kias/mode",
            json!({"mode": "fault", "procedure": " "}),
            "procedure is empty",
        ),
        (
            "/_mock/kias/mode",
            json!({"mode": "fault", "times": 1}),
            "invalid JSON body",
        ),
        (
            "/_mock/kias/encoding",
            json!({"encoding": "koi8-r"}),
            "unknown encoding",
        ),
    ];

    for (path, body, expected) in cases {
        let (status, reply) = control(&app, Method::PUT, path, Some(body)).await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{expected}");
        let message = reply["error"].as_str().unwrap();
        assert!(message.contains(expected), "{message}");
    }
}

#[tokio::test]
async fn reset_clears_state() {
    let app = test_app();
    call(&app, "User_NotifyEvent", "<EVENT>X</EVENT>").await;
    set_mode(&app, json!({"mode": "slow", "delay_ms": 10})).await;
    set_encoding(&app, "utf16le_bom").await;

    let (status, _) = control(&app, Method::POST, "/_mock/kias/reset", None).await;

    assert_eq!(status, StatusCode::NO_CONTENT);
    let state = state(&app).await;
    assert_eq!(state["auth_count"], 0);
    assert_eq!(state["sessions"], 0);
    assert_eq!(state["notifications"], json!([]));
    assert_eq!(state["mode"], json!({"mode": "normal"}));
    assert_eq!(state["encoding"], "utf8");
}

#[tokio::test]
async fn wsdl_describes_both_bindings() {
    let app = test_app();
    let http_request = Request::get("/kiasSvc.asmx?WSDL")
        .header("host", "127.0.0.1:9090")
        .body(Body::empty())
        .unwrap();

    let reply = request(&app, http_request).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "text/xml; charset=utf-8");
    let text = reply.text();
    let document = roxmltree::Document::parse(&text).unwrap();
    let wsdl = "http://schemas.xmlsoap.org/wsdl/";
    let bindings: Vec<&str> = document
        .descendants()
        .filter(|node| node.has_tag_name((wsdl, "binding")))
        .filter_map(|node| node.attribute("name"))
        .collect();
    assert_eq!(bindings, ["kiasSvcSoap", "kiasSvcSoap12"]);
    let actions: Vec<&str> = document
        .descendants()
        .filter(|node| node.tag_name().name() == "operation")
        .filter_map(|node| node.attribute("soapAction"))
        .collect();
    assert_eq!(actions, [EXEC_PROC_ACTION, EXEC_PROC_ACTION]);
    let locations: Vec<&str> = document
        .descendants()
        .filter(|node| node.tag_name().name() == "address")
        .filter_map(|node| node.attribute("location"))
        .collect();
    assert_eq!(locations, ["http://127.0.0.1:9090/kiasSvc.asmx"; 2]);
    assert!(document
        .descendants()
        .any(|node| node.attribute("name") == Some("pData")));
}

#[tokio::test]
async fn service_page_without_wsdl_query() {
    let app = test_app();

    let reply = request(
        &app,
        Request::get("/kiasSvc.asmx").body(Body::empty()).unwrap(),
    )
    .await;

    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.content_type.starts_with("text/html"));
    assert!(reply.text().contains("?WSDL"));
}

#[test]
fn command_line_defaults() {
    let cli = crate::Cli::try_parse_from(["uig-mock"]).unwrap();

    assert_eq!(cli.kias.kias_user, "demo");
    assert_eq!(cli.kias.kias_password, "demo-kias-password");
    assert_eq!(cli.kias.kias_session_lifetime, 1200);
}

#[test]
fn command_line_rejects_bad_values() {
    for args in [
        ["uig-mock", "--kias-user", ""],
        ["uig-mock", "--kias-password", ""],
        ["uig-mock", "--kias-session-lifetime", "0"],
    ] {
        assert!(crate::Cli::try_parse_from(args).is_err(), "{args:?}");
    }
}
