//! Tests of settings parsing, validation and endpoint URLs.

use serde_json::Value;
use uig_connector_api::sdk::parse_settings;
use uig_connector_api::ErrorKind;

use super::*;

const PASSWORD: &str = "s3cret-impact-pass";

fn settings_for_test() -> Settings {
    parse_settings(&format!(
        r#"{{"base_url": "http://127.0.0.1:9090/impact", "username": "gateway", "password": "{PASSWORD}"}}"#
    ))
    .unwrap()
}

fn config_error(settings: &Settings) -> ConnectorError {
    let error = settings.validate().unwrap_err();
    assert_eq!(error.kind, ErrorKind::CONFIG, "{error}");
    assert!(!error.message.contains(PASSWORD), "{error}");
    error
}

#[test]
fn defaults_apply_when_omitted() {
    let settings = settings_for_test();

    assert_eq!(settings.submit_path, "/api/v1/messages");
    assert_eq!(settings.status_path, "/api/v1/messages/{id}");
    assert_eq!(settings.idempotency_header, "Idempotency-Key");
    assert_eq!(settings.entities, ["claim", "policy", "payment"]);
    assert_eq!(settings.timeout_ms, 10_000);
    assert_eq!(settings.validate(), Ok(()));
}

#[test]
fn unknown_key_rejected_with_path() {
    let error = parse_settings::<Settings>(
        r#"{"base_url": "http://127.0.0.1:9090", "username": "u", "password": "p", "submit_url": "/x"}"#,
    )
    .unwrap_err();

    assert_eq!(error.kind, ErrorKind::CONFIG);
    assert!(error.message.contains("submit_url"), "{}", error.message);
}

#[test]
fn missing_password_rejected_with_path() {
    let error = parse_settings::<Settings>(r#"{"base_url": "http://127.0.0.1:9090", "username": "u"}"#).unwrap_err();

    assert_eq!(error.kind, ErrorKind::CONFIG);
    assert!(error.message.contains("password"), "{}", error.message);
}

#[test]
fn wrong_type_names_nested_path() {
    let error = parse_settings::<Settings>(
        r#"{"base_url": "http://127.0.0.1:9090", "username": "u", "password": "p", "entities": ["claim", 7]}"#,
    )
    .unwrap_err();

    assert_eq!(error.kind, ErrorKind::CONFIG);
    assert!(error.message.starts_with("settings.entities[1]"), "{}", error.message);
}

#[test]
fn validate_rejects_bad_base_urls() {
    for base_url in ["127.0.0.1:9090", "ftp://127.0.0.1", "http://", "http://127.0.0.1:9090/?a=1", "http://127.0.0.1#x"] {
        let settings = Settings { base_url: base_url.to_string(), ..settings_for_test() };

        let error = config_error(&settings);

        assert!(error.message.contains("settings.base_url"), "{}", error.message);
    }
}

#[test]
fn validate_rejects_bad_credentials() {
    let cases = [
        (Settings { username: " ".to_string(), ..settings_for_test() }, "settings.username is empty"),
        (Settings { username: "a:b".to_string(), ..settings_for_test() }, "contains \":\""),
        (Settings { password: String::new(), ..settings_for_test() }, "settings.password is empty"),
    ];
    for (settings, expected) in cases {
        let error = config_error(&settings);

        assert!(error.message.contains(expected), "{}", error.message);
    }
}

#[test]
fn validate_rejects_bad_paths() {
    let cases = [
        (Settings { submit_path: "api/v1/messages".to_string(), ..settings_for_test() }, "settings.submit_path"),
        (Settings { submit_path: "/api/v1/mes sages".to_string(), ..settings_for_test() }, "whitespace"),
        (Settings { submit_path: "/api/v1/messages#top".to_string(), ..settings_for_test() }, "fragment"),
        (Settings { status_path: "/api/v1/messages".to_string(), ..settings_for_test() }, "no {id} placeholder"),
        (Settings { status_path: "{id}".to_string(), ..settings_for_test() }, "settings.status_path"),
    ];
    for (settings, expected) in cases {
        let error = config_error(&settings);

        assert!(error.message.contains(expected), "{}", error.message);
    }
}

#[test]
fn validate_rejects_bad_header_names() {
    for name in ["", "Idempotency Key", "Idempotency-Key:", "Ключ", "authorization", "Content-Type"] {
        let settings = Settings { idempotency_header: name.to_string(), ..settings_for_test() };

        let error = config_error(&settings);

        assert!(error.message.contains("settings.idempotency_header"), "{name:?}: {}", error.message);
    }
}

#[test]
fn validate_accepts_custom_header_name() {
    let settings = Settings { idempotency_header: "X-Request-Id".to_string(), ..settings_for_test() };

    assert_eq!(settings.validate(), Ok(()));
}

#[test]
fn validate_rejects_bad_entities() {
    let cases: [(&[&str], &str); 3] = [
        (&[], "settings.entities is empty"),
        (&["claim", "vehicle"], "settings.entities[1] \"vehicle\" is not an entity"),
        (&["claim", "policy", "claim"], "settings.entities[2] \"claim\" is listed twice"),
    ];
    for (entities, expected) in cases {
        let entities = entities.iter().map(|entity| entity.to_string()).collect();
        let settings = Settings { entities, ..settings_for_test() };

        let error = config_error(&settings);

        assert!(error.message.contains(expected), "{}", error.message);
    }
}

#[test]
fn narrowed_entities_accepted() {
    let settings = Settings { entities: vec!["payment".to_string()], ..settings_for_test() };

    assert_eq!(settings.validate(), Ok(()));
    assert!(settings.accepts("payment"));
    assert!(!settings.accepts("claim"));
}

#[test]
fn urls_join_base_and_paths() {
    let settings = Settings { base_url: " http://127.0.0.1:9090/impact/ ".to_string(), ..settings_for_test() };

    assert_eq!(settings.submit_url(), "http://127.0.0.1:9090/impact/api/v1/messages");
    assert_eq!(settings.status_url("IMP-000001"), "http://127.0.0.1:9090/impact/api/v1/messages/IMP-000001");
}

#[test]
fn status_url_encodes_id_as_segment() {
    let settings = Settings { status_path: "/v2/status/{id}?full=1".to_string(), ..settings_for_test() };

    let url = settings.status_url("a/b?c d#é");

    assert_eq!(url, "http://127.0.0.1:9090/impact/v2/status/a%2Fb%3Fc%20d%23%C3%A9?full=1");
}

#[test]
fn debug_hides_password() {
    let printed = format!("{:?}", settings_for_test());

    assert!(!printed.contains(PASSWORD), "{printed}");
    assert!(printed.contains("<redacted>"), "{printed}");
    assert!(printed.contains("gateway"), "{printed}");
}

#[test]
fn schema_lists_every_field() {
    let schema: Value = serde_json::from_str(CONFIG_SCHEMA).unwrap();
    let properties = schema["properties"].as_object().unwrap();

    let names: Vec<&str> = properties.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["base_url", "username", "password", "submit_path", "status_path", "idempotency_header", "entities", "timeout_ms"]
    );
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(properties["submit_path"]["default"], "/api/v1/messages");
    assert_eq!(properties["status_path"]["default"], "/api/v1/messages/{id}");
    assert_eq!(properties["idempotency_header"]["default"], "Idempotency-Key");
    assert_eq!(properties["entities"]["default"], serde_json::json!(SUPPORTED_ENTITIES));
    assert_eq!(properties["entities"]["items"]["enum"], serde_json::json!(SUPPORTED_ENTITIES));
    assert_eq!(properties["timeout_ms"]["default"], 10_000);
}
