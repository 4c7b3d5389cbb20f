//! Tests of the AVINFO response mapping with real-shaped protocol bodies.

use super::*;
use serde_json::json;
use uig_connector_api::reexports::{RString, RVec, Tuple2};

const SUCCESS_BODY: &str = r#"{
  "success": 1,
  "balance": 997,
  "data": {
    "vin": "XTA21099043765432",
    "plate": "А123ВС77",
    "brand": {"code": "VAZ", "name": "LADA (ВАЗ)"},
    "model": "2109",
    "year": 2004,
    "category": "B",
    "power": {"hp": 70, "kw": 51.5},
    "engine_volume": 1499,
    "color": "Белый",
    "osago": [
      {"insurer": "АО «СОГАЗ»", "policy": "ХХХ 0123456789", "date_from": "2025-03-01",
       "date_to": "2026-02-28", "status": "active"}
    ]
  }
}"#;

fn response(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    let mut all_headers: Vec<(&str, &str)> = headers.to_vec();
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
        all_headers.push(("content-type", "application/json"));
    }
    HttpResponse {
        status,
        headers: all_headers.iter().map(|(name, value)| Tuple2(RString::from(*name), RString::from(*value))).collect(),
        body: RVec::from(body.as_bytes().to_vec()),
    }
}

fn error_body(code: &str, message: &str) -> String {
    json!({"success": 0, "error": {"code": code, "message": message}}).to_string()
}

fn vin_lookup() -> Lookup {
    Lookup::Vin("XTA21099043765432".to_string())
}

fn error_for(response: &HttpResponse) -> ConnectorError {
    vehicle_data(response, &vin_lookup()).unwrap_err()
}

#[test]
fn success_returns_data_object() {
    let data = serde_json::to_value(vehicle_data(&response(200, &[], SUCCESS_BODY), &vin_lookup()).unwrap()).unwrap();

    assert_eq!(data["vin"], "XTA21099043765432");
    assert_eq!(data["brand"]["code"], "VAZ");
}

#[test]
fn status_401_is_auth() {
    let error = error_for(&response(401, &[], &error_body("invalid_key", "Неверный ключ API")));

    assert_eq!(error.kind, ErrorKind::AUTH);
    assert_eq!(error.code.as_str(), "invalid_key");
    assert!(error.message.contains("settings.api_key"), "{}", error.message);
    assert!(error.message.contains("Неверный ключ API"), "{}", error.message);
}

#[test]
fn status_401_without_body_keeps_code() {
    let error = error_for(&response(401, &[("content-type", "text/plain")], "Unauthorized"));

    assert_eq!(error.kind, ErrorKind::AUTH);
    assert_eq!(error.code.as_str(), "invalid_key");
}

#[test]
fn status_400_is_permanent_with_avinfo_code() {
    let error = error_for(&response(400, &[], &error_body("invalid_vin", "VIN не соответствует формату")));

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "invalid_vin");
    assert!(error.message.contains("vin \"XTA21099043765432\""), "{}", error.message);
}

#[test]
fn status_402_is_permanent_no_balance() {
    let error = error_for(&response(402, &[], &error_body("no_balance", "Недостаточно средств")));

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "no_balance");
}

#[test]
fn status_404_is_permanent_not_found() {
    let error = error_for(&response(404, &[], &error_body("not_found", "Автомобиль не найден")));

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "not_found");
    assert!(error.message.contains("no vehicle with vin"), "{}", error.message);
}

#[test]
fn status_404_without_avinfo_body_is_config() {
    let error = error_for(&response(404, &[("content-type", "text/html")], "<html>Not Found</html>"));

    assert_eq!(error.kind, ErrorKind::CONFIG);
    assert!(error.message.contains("settings.base_url"), "{}", error.message);
    assert!(!error.message.contains("<html>"), "{}", error.message);
}

#[test]
fn source_unavailable_is_transient() {
    let error = error_for(&response(200, &[], &error_body("source_unavailable", "Источник ГИБДД недоступен")));

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert_eq!(error.code.as_str(), "source_unavailable");
    assert!(error.message.contains("Источник ГИБДД недоступен"), "{}", error.message);
}

#[test]
fn status_429_honours_retry_after() {
    let error =
        error_for(&response(429, &[("retry-after", "30")], &error_body("rate_limited", "Слишком много запросов")));

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert_eq!(error.code.as_str(), "rate_limited");
    assert_eq!(error.retry_after_ms.into_option(), Some(30_000));
}

#[test]
fn status_503_honours_retry_after() {
    let error = error_for(&response(503, &[("Retry-After", " 5 ")], ""));

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert_eq!(error.retry_after_ms.into_option(), Some(5_000));
}

#[test]
fn retry_after_ignored_when_not_seconds() {
    let error = error_for(&response(503, &[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")], ""));

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert_eq!(error.retry_after_ms.into_option(), None);
}

#[test]
fn status_500_family_is_transient() {
    for status in [500, 502, 503, 504] {
        let error = error_for(&response(status, &[("retry-after", "7")], &error_body("internal", "Ошибка")));

        assert_eq!(error.kind, ErrorKind::TRANSIENT, "HTTP {status}");
        assert_eq!(error.code.as_str(), "internal", "HTTP {status}");
        let expected_retry = if status == 503 { Some(7_000) } else { None };
        assert_eq!(error.retry_after_ms.into_option(), expected_retry, "HTTP {status}");
    }
}

#[test]
fn unexpected_status_is_permanent() {
    let error = error_for(&response(418, &[], ""));

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert!(error.message.contains("HTTP 418"), "{}", error.message);
}

#[test]
fn non_json_200_is_transient() {
    let error = error_for(&response(200, &[("content-type", "text/html")], "<html>proxy error</html>"));

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert!(error.message.contains("not the AVINFO JSON envelope"), "{}", error.message);
    assert!(error.message.contains("text/html"), "{}", error.message);
    assert!(!error.message.contains("proxy error"), "{}", error.message);
}

#[test]
fn success_without_data_is_transient() {
    let error = error_for(&response(200, &[], r#"{"success": 1, "balance": 5}"#));

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert!(error.message.contains("\"data\" is missing"), "{}", error.message);
}

#[test]
fn success_flag_missing_is_transient() {
    let error = error_for(&response(200, &[], r#"{"data": {"vin": "XTA21099043765432"}}"#));

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert!(error.message.contains("\"success\" is missing"), "{}", error.message);
}

#[test]
fn data_of_wrong_shape_is_transient() {
    let error = error_for(&response(200, &[], r#"{"success": 1, "data": {"year": "2004"}}"#));

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert!(error.message.contains("does not match the documented shape"), "{}", error.message);
}

#[test]
fn reshape_maps_codes_and_keeps_osago() {
    let data = vehicle_data(&response(200, &[], SUCCESS_BODY), &vin_lookup()).unwrap();
    let osago = serde_json::to_value(&data.osago).unwrap();
    assert!(osago.is_array(), "the sample body has OSAGO policies");
    let mut requested = Vec::new();

    let reply = reshaped(data, |directory, code| {
        requested.push(format!("{directory}:{code}"));
        match (directory, code) {
            ("brand", "VAZ") => Some("lada".to_string()),
            ("vehicle_category", "B") => Some("passenger_car".to_string()),
            _ => None,
        }
    });

    assert_eq!(requested, ["brand:VAZ", "vehicle_category:B"]);
    assert_eq!(
        reply,
        json!({
            "vin": "XTA21099043765432",
            "plate": "А123ВС77",
            "brand": {"code": "lada", "name": "LADA (ВАЗ)", "avinfo_code": "VAZ"},
            "model": "2109",
            "year": 2004,
            "category": {"code": "passenger_car", "avinfo_code": "B"},
            "power_hp": 70,
            "power_kw": 51.5,
            "engine_volume": 1499,
            "color": "Белый",
            "osago": osago,
            "source": "avinfo",
        })
    );
}

#[test]
fn reshape_unmapped_code_is_null() {
    let data = vehicle_data(&response(200, &[], SUCCESS_BODY), &vin_lookup()).unwrap();

    let reply = reshaped(data, |_, _| None);

    assert_eq!(reply["brand"]["code"], Value::Null);
    assert_eq!(reply["brand"]["avinfo_code"], "VAZ");
    assert_eq!(reply["category"]["code"], Value::Null);
}

#[test]
fn reshape_missing_members_are_null() {
    let reply = reshaped(parse_vehicle(r#"{"vin": "XTA21099043765432"}"#).unwrap(), |_, _| None);

    assert_eq!(reply["brand"], Value::Null);
    assert_eq!(reply["category"], Value::Null);
    assert_eq!(reply["power_hp"], Value::Null);
    assert_eq!(reply["osago"], Value::Null);
    assert_eq!(reply["source"], "avinfo");
}

/// Reshapes `vehicle` and parses the reply's text back into JSON for the assertions.
fn reshaped(vehicle: VehicleData, map_to_internal: impl FnMut(&str, &str) -> Option<String>) -> Value {
    serde_json::from_str(&reshape(vehicle, map_to_internal)).expect("the reply is JSON")
}

#[test]
fn cached_data_reshapes_like_fresh_data() {
    let fresh = || vehicle_data(&response(200, &[], SUCCESS_BODY), &vin_lookup()).unwrap();
    let cached = serde_json::to_string(&fresh()).unwrap();
    // Entries written by earlier versions hold AVINFO's `data` object as it came.
    let body: Value = serde_json::from_str(SUCCESS_BODY).unwrap();
    let upstream = body["data"].to_string();

    let expected = reshaped(fresh(), |_, _| None);
    assert_eq!(reshaped(parse_cached(&cached).unwrap(), |_, _| None), expected);
    assert_eq!(reshaped(parse_cached(&upstream).unwrap(), |_, _| None), expected);
    assert_eq!(expected["vin"], "XTA21099043765432");
}

#[test]
fn unreadable_cached_data_is_an_error() {
    let error = parse_cached(r#"{"year": "two thousand"}"#).unwrap_err();
    assert!(error.contains("does not match the documented shape"), "{error}");

    // serde would read a struct from an array by position.
    let error = parse_cached(r#"["XTA21099043765432"]"#).unwrap_err();
    assert!(error.contains("not an object"), "{error}");
}

#[test]
fn data_that_is_not_an_object_is_transient() {
    let error = error_for(&response(200, &[], r#"{"success": 1, "data": ["XTA21099043765432"]}"#));

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert!(error.message.contains("\"data\" is not an object"), "{}", error.message);
}
