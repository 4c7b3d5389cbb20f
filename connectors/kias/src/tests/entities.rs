//! The entities through the connector: parameters sent, replies, and no double effect on retry.

use uig_connector_api::ErrorKind;

use super::*;

const RECEIPT: &str = "<ISN>8800001</ISN><SERIES>7000</SERIES><NUMBER>0012345</NUMBER><STATUS>SPENT</STATUS>\
                       <AGENTISN>3366201</AGENTISN><POLICYISN>5500123</POLICYISN><AMOUNT>12500.50</AMOUNT>\
                       <PAYER>Иванов Иван Иванович</PAYER><DATEPAY>01.03.2025</DATEPAY>\
                       <EXTERNALKEY>UIG-42</EXTERNALKEY>";

const CONFIRMATION: &str = "<ISN>7700123</ISN><STATUS>CONFIRMED</STATUS><AMOUNT>4500.00</AMOUNT>\
                            <DATEPAY>02.03.2025</DATEPAY><CONFIRMED>02.03.2025 10:00:00</CONFIRMED>\
                            <EXTERNALKEY>UIG-42</EXTERNALKEY>";

fn a7_request(attempt: u32) -> SendRequest {
    send_request(
        "a7_create",
        json!({
            "series": "7000",
            "number": "0012345",
            "agent_isn": "3366201",
            "policy_isn": "5500123",
            "amount": 12500.5,
            "payer": "Иванов Иван Иванович",
            "date": "2025-03-01"
        }),
        attempt,
    )
}

fn payment_request(attempt: u32) -> SendRequest {
    send_request("payment_confirm", json!({"payment_isn": "7700123", "amount": "4500", "date": "2025-03-02"}), attempt)
}

fn receipt_json() -> Value {
    json!({
        "isn": "8800001",
        "series": "7000",
        "number": "0012345",
        "status": "SPENT",
        "agentisn": "3366201",
        "policyisn": "5500123",
        "amount": "12500.50",
        "payer": "Иванов Иван Иванович",
        "datepay": "2025-03-01",
        "externalkey": "UIG-42"
    })
}

fn procedures(host: &FakeHost) -> Vec<String> {
    host.calls().into_iter().map(|call| call.procedure).collect()
}

#[test]
fn notify_params_converted() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result("<ISN>9000001</ISN>");
    let kias = connector(&host, settings_for_test());
    let request = send_request(
        "notify",
        json!({"event": "PAYMENT_RECEIVED", "date": "2025-03-01", "paid": true, "amount": 100.5, "note": null,
               "comment": "Клиент «Иванов» & <сын>"}),
        1,
    );

    let reply = kias.send(&request).unwrap();

    assert_eq!(reply_json(&reply), json!({"isn": "9000001"}));
    let call = &host.calls()[1];
    assert_eq!(call.param_names(), ["Sid", "EVENT", "DATE", "PAID", "AMOUNT", "NOTE", "COMMENT"]);
    assert_eq!(call.param("DATE"), Some("01.03.2025"));
    assert_eq!(call.param("PAID"), Some("Y"));
    assert_eq!(call.param("AMOUNT"), Some("100.5"));
    assert_eq!(call.param("NOTE"), Some(""));
    assert_eq!(call.param("COMMENT"), Some("Клиент «Иванов» & <сын>"));
    let body = std::str::from_utf8(&host.requests()[1].body).unwrap().to_string();
    assert!(body.contains("&lt;COMMENT&gt;Клиент «Иванов» &amp;amp; &amp;lt;сын&amp;gt;&lt;/COMMENT&gt;"), "{body}");
}

#[test]
fn notify_procedure_name_configurable() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result("<ISN>1</ISN>");
    let mut settings = settings_for_test();
    settings.procedures.notify = "INS_EVENTS.Notify".to_string();
    let kias = connector(&host, settings);

    kias.send(&notify_request()).unwrap();

    assert_eq!(procedures(&host), ["Auth", "INS_EVENTS.Notify"]);
}

#[test]
fn invalid_payloads_send_nothing() {
    let cases = [
        ("notify", json!({"policy_isn": 1}), "field \"event\" is missing"),
        ("notify", json!({"event": ""}), "field \"event\" must be a non-empty string"),
        ("notify", json!({"event": "X", "sid": "forged"}), "field \"sid\" is reserved"),
        ("notify", json!({"event": "X", "date": "2025-02-30"}), "field \"date\" \"2025-02-30\" is not a valid date"),
        ("notify", json!(["event"]), "must be a JSON object"),
        ("a7_create", json!({"series": "7000"}), "field \"number\" is missing"),
        ("payment_confirm", json!({"payment_isn": "abc", "amount": 1, "date": "2025-03-02"}), "field \"payment_isn\""),
    ];

    for (entity, payload, expected) in cases {
        let host = FakeHost::default();
        let kias = connector(&host, settings_for_test());

        let error = kias.send(&send_request(entity, payload, 1)).unwrap_err();

        assert_eq!(error.kind, ErrorKind::PERMANENT, "{entity}");
        assert_eq!(error.code.as_str(), "invalid_payload", "{entity}");
        assert!(error.message.contains(expected), "{entity}: {}", error.message);
        assert!(error.message.starts_with(&format!("invalid {entity} payload")), "{}", error.message);
        assert!(host.requests().is_empty());
    }
}

#[test]
fn unknown_entity_rejected() {
    let host = FakeHost::default();
    let kias = connector(&host, settings_for_test());

    let error = kias.send(&send_request("policy", json!({}), 1)).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "invalid_payload");
    assert!(error.message.contains("unknown entity \"policy\""), "{}", error.message);
    assert!(error.message.contains("notify, a7_create, payment_confirm"), "{}", error.message);
    assert!(host.requests().is_empty());
}

#[test]
fn a7_first_attempt_creates_directly() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result(RECEIPT);
    let kias = connector(&host, settings_for_test());

    let reply = kias.send(&a7_request(1)).unwrap();

    assert_eq!(reply_json(&reply), receipt_json());
    assert_eq!(procedures(&host), ["Auth", "User_A7Create"]);
    let call = &host.calls()[1];
    assert_eq!(call.param("AMOUNT"), Some("12500.50"));
    assert_eq!(call.param("DATEPAY"), Some("01.03.2025"));
    assert_eq!(call.param("EXTERNALKEY"), Some("UIG-42"));
    assert!(!host.requests()[1].idempotent);
}

#[test]
fn a7_retry_returns_existing_receipt() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result(&format!("<ROWSET><row>{RECEIPT}</row></ROWSET>"));
    let kias = connector(&host, settings_for_test());

    let reply = kias.send(&a7_request(2)).unwrap();

    assert_eq!(reply_json(&reply), receipt_json());
    assert_eq!(procedures(&host), ["Auth", "User_A7Find"]);
    let find = &host.calls()[1];
    assert_eq!(find.param_names(), ["Sid", "SERIES", "NUMBER"]);
    assert_eq!(find.param("NUMBER"), Some("0012345"));
    assert!(host.requests()[1].idempotent);
    let infos = host.logs_at(LogLevel::INFO);
    assert!(infos.iter().any(|line| line.contains("external key UIG-42 from an earlier attempt")), "{infos:?}");
}

#[test]
fn a7_retry_creates_when_not_found() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result("<ROWSET/>");
    host.queue_result(&format!("<ROWSET><row>{RECEIPT}</row></ROWSET>"));
    let kias = connector(&host, settings_for_test());

    let reply = kias.send(&a7_request(3)).unwrap();

    assert_eq!(reply_json(&reply), receipt_json());
    assert_eq!(procedures(&host), ["Auth", "User_A7Find", "User_A7Create"]);
}

#[test]
fn a7_retry_leaves_foreign_receipt_to_kias() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result(&format!("<ROWSET><row>{}</row></ROWSET>", RECEIPT.replace("UIG-42", "UIG-7")));
    host.queue_error("101", "Квитанция А-7 серии 7000 № 0012345 уже зарегистрирована");
    let kias = connector(&host, settings_for_test());

    let error = kias.send(&a7_request(2)).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "101");
    assert_eq!(procedures(&host), ["Auth", "User_A7Find", "User_A7Create"]);
}

#[test]
fn a7_lookup_failure_is_returned() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue(Ok(response_bytes(503, "text/html", b"busy".to_vec())));
    let kias = connector(&host, settings_for_test());

    let error = kias.send(&a7_request(2)).unwrap_err();

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert_eq!(procedures(&host), ["Auth", "User_A7Find"]);
}

#[test]
fn a7_lookup_without_rowset_is_error() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result(RECEIPT);
    let kias = connector(&host, settings_for_test());

    let error = kias.send(&a7_request(2)).unwrap_err();

    assert_eq!(error.code.as_str(), "malformed_response");
    assert!(error.message.contains("User_A7Find"), "{}", error.message);
}

#[test]
fn payment_first_attempt_confirms() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result(CONFIRMATION);
    let kias = connector(&host, settings_for_test());

    let reply = kias.send(&payment_request(1)).unwrap();

    assert_eq!(reply_json(&reply)["confirmed"], "2025-03-02T10:00:00");
    assert_eq!(procedures(&host), ["Auth", "User_PaymentConfirm"]);
    let call = &host.calls()[1];
    assert_eq!(call.param_names(), ["Sid", "PAYMENTISN", "AMOUNT", "DATEPAY", "EXTERNALKEY"]);
    assert_eq!(call.param("AMOUNT"), Some("4500.00"));
}

#[test]
fn payment_retry_returns_existing_confirmation() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result(&format!("<ROWSET><row>{CONFIRMATION}</row></ROWSET>"));
    let kias = connector(&host, settings_for_test());

    let reply = kias.send(&payment_request(2)).unwrap();

    assert_eq!(reply_json(&reply)["externalkey"], "UIG-42");
    assert_eq!(reply_json(&reply)["status"], "CONFIRMED");
    assert_eq!(procedures(&host), ["Auth", "User_PaymentFind"]);
    assert_eq!(host.calls()[1].param("PAYMENTISN"), Some("7700123"));
}

#[test]
fn payment_retry_confirms_unconfirmed_payment() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result("<ROWSET><row><ISN>7700123</ISN><STATUS>NEW</STATUS><EXTERNALKEY/></row></ROWSET>");
    host.queue_result(CONFIRMATION);
    let kias = connector(&host, settings_for_test());

    kias.send(&payment_request(2)).unwrap();

    assert_eq!(procedures(&host), ["Auth", "User_PaymentFind", "User_PaymentConfirm"]);
}

#[test]
fn configured_lookup_procedures_used() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result("<ROWSET/>");
    host.queue_result(CONFIRMATION);
    let mut settings = settings_for_test();
    settings.procedures.payment_find = "INS_PAY.Find".to_string();
    settings.procedures.payment_confirm = "INS_PAY.Confirm".to_string();
    let kias = connector(&host, settings);

    kias.send(&payment_request(2)).unwrap();

    assert_eq!(procedures(&host), ["Auth", "INS_PAY.Find", "INS_PAY.Confirm"]);
}

#[test]
fn create_through_sdk_and_send() {
    let host = FakeHost::default();
    host.queue_auth(SID);
    host.queue_result("<ISN>1</ISN>");
    let settings = json!({
        "endpoint": "http://127.0.0.1:9090/kiasSvc.asmx",
        "app_id": 1001,
        "user": "demo",
        "password": PASSWORD
    })
    .to_string();

    let connector =
        uig_connector_api::sdk::create_connector::<Kias>(settings.as_str().into(), host.host_box()).unwrap();
    let reply = connector.send(notify_request()).unwrap();

    assert_eq!(reply_json(&reply), json!({"isn": "1"}));
    assert_eq!(host.requests()[0].timeout_ms, 10_000);
    assert!(!host.all_logs().contains(PASSWORD), "{}", host.all_logs());
}

#[test]
fn create_rejects_invalid_settings() {
    let host = FakeHost::default();
    let settings = json!({"endpoint": "127.0.0.1/kiasSvc.asmx", "app_id": 1, "user": "u", "password": "p"}).to_string();

    let result =
        uig_connector_api::sdk::create_connector::<Kias>(settings.as_str().into(), host.host_box()).into_result();

    let Err(error) = result else { panic!("create accepted an endpoint without a scheme") };
    assert_eq!(error.kind, ErrorKind::CONFIG);
    assert!(error.message.contains("settings.endpoint"), "{}", error.message);
}

#[test]
fn manifest_describes_plugin() {
    let manifest = Kias::INFO.to_manifest();

    assert_eq!(manifest.name.as_str(), "kias");
    assert_eq!(manifest.capabilities, Capabilities::SEND | Capabilities::FETCH_DIRECTORY);
    let entities: Vec<&str> = manifest.entities.iter().map(|entity| entity.as_str()).collect();
    assert_eq!(entities, ["notify", "a7_create", "payment_confirm"]);
    serde_json::from_str::<Value>(&manifest.config_schema).unwrap();
}
