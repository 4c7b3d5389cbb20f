//! Settings of the Kontur connector, their JSON Schema and their checks.

use std::fmt;

use serde::Deserialize;
use uig_connector_api::ConnectorError;

/// JSON Schema of [`Settings`], published in the plugin manifest.
pub const CONFIG_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Kontur.Strakhovanie connector settings",
  "type": "object",
  "additionalProperties": false,
  "required": ["base_url", "token_url", "client_id", "client_secret"],
  "properties": {
    "base_url": {
      "type": "string",
      "pattern": "^https?://[^?#]+$",
      "description": "Base URL of the Kontur Medi API without query or fragment. The connector appends /V2/...",
      "examples": ["http://127.0.0.1:9090"]
    },
    "token_url": {
      "type": "string",
      "pattern": "^https?://[^?#]+$",
      "description": "Full URL of the OpenID Connect token endpoint, which is a separate host in production",
      "examples": ["http://127.0.0.1:9090/connect/token"]
    },
    "client_id": {
      "type": "string",
      "minLength": 1,
      "description": "OpenID Connect client id issued by Kontur"
    },
    "client_secret": {
      "type": "string",
      "minLength": 1,
      "writeOnly": true,
      "description": "OpenID Connect client secret issued by Kontur, never logged"
    },
    "scope": {
      "type": "string",
      "minLength": 1,
      "default": "medi_api",
      "description": "Scope requested with the client credentials grant"
    },
    "events_count": {
      "type": "integer",
      "minimum": 1,
      "maximum": 1000,
      "default": 100,
      "description": "Maximum number of events read per feed poll, sent as the count query parameter"
    },
    "timeout_ms": {
      "type": "integer",
      "minimum": 0,
      "default": 10000,
      "description": "Timeout of one HTTP exchange with Kontur in milliseconds. 0 uses the engine's default"
    }
  }
}"#;

/// Largest `count` that the events endpoint accepts.
pub const MAX_EVENTS_COUNT: u32 = 1000;

/// The connector's `settings` table.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Base URL of the Kontur Medi API, such as `http://127.0.0.1:9090`. Required. It must start
    /// with `http://` or `https://` and have no query or fragment. A trailing `/` is ignored.
    pub base_url: String,

    /// Full URL of the OpenID Connect token endpoint, such as
    /// `http://127.0.0.1:9090/connect/token`. Required, with the same rules as `base_url`. In
    /// production it is on a separate identity host, which must also be in `allowed_urls`.
    pub token_url: String,

    /// OpenID Connect client id. Required and non-empty.
    pub client_id: String,

    /// OpenID Connect client secret. Required and non-empty. Never logged and never part of an
    /// error message.
    pub client_secret: String,

    /// Scope requested with the client credentials grant. Default `medi_api`.
    #[serde(default = "default_scope")]
    pub scope: String,

    /// Maximum number of events read per feed poll, sent as `count`. Default 100, valid 1 to
    /// 1000. A poll requests the smaller of this and the engine's batch limit.
    #[serde(default = "default_events_count")]
    pub events_count: u32,

    /// Timeout of one HTTP exchange with Kontur in milliseconds, token requests included.
    /// Default 10000, and 0 uses the engine's default HTTP timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_scope() -> String {
    "medi_api".to_string()
}

fn default_events_count() -> u32 {
    100
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl Settings {
    /// Checks the values that deserialization accepts but the connector cannot use.
    ///
    /// Errors are [`ConnectorError::config`] naming the field path and the fix.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        check_url("base_url", &self.base_url, "http://127.0.0.1:9090")?;
        check_url("token_url", &self.token_url, "http://127.0.0.1:9090/connect/token")?;

        if self.client_id.trim().is_empty() {
            return Err(ConnectorError::config(
                "settings.client_id is empty: set it to the OpenID Connect client id that Kontur issued",
            ));
        }
        if self.client_secret.trim().is_empty() {
            return Err(ConnectorError::config(
                "settings.client_secret is empty: set it to the OpenID Connect client secret that Kontur issued",
            ));
        }
        if self.scope.trim().is_empty() {
            return Err(ConnectorError::config(
                "settings.scope is empty: remove the key to use the default \"medi_api\", or set the scope Kontur granted",
            ));
        }

        if !(1..=MAX_EVENTS_COUNT).contains(&self.events_count) {
            return Err(ConnectorError::config(format!(
                "settings.events_count {} is out of range: the events endpoint accepts 1 to {MAX_EVENTS_COUNT}",
                self.events_count
            )));
        }

        Ok(())
    }

    /// Returns the base URL without surrounding whitespace and trailing `/`.
    pub fn api_root(&self) -> &str {
        self.base_url.trim().trim_end_matches('/')
    }

    /// Returns the token endpoint without surrounding whitespace.
    pub fn token_endpoint(&self) -> &str {
        self.token_url.trim()
    }

    /// Returns the scope without surrounding whitespace.
    pub fn requested_scope(&self) -> &str {
        self.scope.trim()
    }
}

/// Checks that `settings.{field}` is an absolute http(s) URL with a host and without a query or
/// fragment.
fn check_url(field: &str, value: &str, example: &str) -> Result<(), ConnectorError> {
    let url = value.trim();
    let has_scheme = url.starts_with("http://") || url.starts_with("https://");
    if !has_scheme {
        return Err(ConnectorError::config(format!(
            "settings.{field} {url:?} is invalid: it must start with http:// or https://, such as {example:?}"
        )));
    }

    let after_scheme = url.split_once("://").map(|(_, rest)| rest).unwrap_or_default();
    if after_scheme.trim_matches('/').is_empty() || after_scheme.starts_with('/') {
        return Err(ConnectorError::config(format!(
            "settings.{field} {url:?} has no host: set it to an address such as {example:?}"
        )));
    }

    if url.contains(['?', '#']) {
        return Err(ConnectorError::config(format!(
            "settings.{field} {url:?} contains a query or fragment: remove everything from \"?\" or \"#\" on"
        )));
    }

    Ok(())
}

/// Prints every field except the client secret, so settings can go into logs and test failures.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("base_url", &self.base_url)
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scope", &self.scope)
            .field("events_count", &self.events_count)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uig_connector_api::sdk::parse_settings;
    use uig_connector_api::ErrorKind;

    const MINIMAL: &str = r#"{
        "base_url": "http://127.0.0.1:9090",
        "token_url": "http://127.0.0.1:9090/connect/token",
        "client_id": "demo-kontur",
        "client_secret": "s3cret-value-42"
    }"#;

    fn settings_for_test() -> Settings {
        parse_settings(MINIMAL).unwrap()
    }

    #[test]
    fn defaults_apply_when_omitted() {
        let settings = settings_for_test();

        assert_eq!(settings.scope, "medi_api");
        assert_eq!(settings.events_count, 100);
        assert_eq!(settings.timeout_ms, 10_000);
        assert_eq!(settings.validate(), Ok(()));
    }

    #[test]
    fn unknown_key_rejected_with_path() {
        let text = MINIMAL.replace("\"client_id\"", "\"clientId\"");

        let error = parse_settings::<Settings>(&text).unwrap_err();

        assert_eq!(error.kind, ErrorKind::CONFIG);
        assert!(error.message.contains("clientId"), "{}", error.message);
    }

    #[test]
    fn missing_required_keys_rejected() {
        for key in ["base_url", "token_url", "client_id", "client_secret"] {
            let mut document: serde_json::Value = serde_json::from_str(MINIMAL).unwrap();
            document.as_object_mut().unwrap().remove(key);

            let error = parse_settings::<Settings>(&document.to_string()).unwrap_err();

            assert_eq!(error.kind, ErrorKind::CONFIG, "{key}");
            assert!(error.message.contains(key), "{key}: {}", error.message);
        }
    }

    #[test]
    fn wrong_type_named_with_path() {
        let text = MINIMAL.replace("\"demo-kontur\"", "\"demo-kontur\", \"events_count\": \"many\"");

        let error = parse_settings::<Settings>(&text).unwrap_err();

        assert_eq!(error.kind, ErrorKind::CONFIG);
        assert!(error.message.starts_with("settings.events_count"), "{}", error.message);
    }

    #[test]
    fn validate_rejects_bad_urls() {
        let cases = [
            ("base_url", "127.0.0.1:9090"),
            ("base_url", "ftp://127.0.0.1"),
            ("base_url", "http://"),
            ("base_url", "http:///V2"),
            ("base_url", "http://127.0.0.1:9090/?a=1"),
            ("token_url", "http://127.0.0.1:9090/connect/token#x"),
            ("token_url", ""),
        ];
        for (field, url) in cases {
            let mut settings = settings_for_test();
            match field {
                "base_url" => settings.base_url = url.to_string(),
                _ => settings.token_url = url.to_string(),
            }

            let error = settings.validate().unwrap_err();

            assert_eq!(error.kind, ErrorKind::CONFIG, "{url}");
            assert!(error.message.starts_with(&format!("settings.{field} ")), "{}", error.message);
        }
    }

    #[test]
    fn validate_rejects_blank_values() {
        for field in ["client_id", "client_secret", "scope"] {
            let mut settings = settings_for_test();
            match field {
                "client_id" => settings.client_id = " ".to_string(),
                "client_secret" => settings.client_secret = String::new(),
                _ => settings.scope = "  ".to_string(),
            }

            let error = settings.validate().unwrap_err();

            assert_eq!(error.kind, ErrorKind::CONFIG, "{field}");
            assert!(error.message.starts_with(&format!("settings.{field} is empty")), "{}", error.message);
        }
    }

    #[test]
    fn validate_checks_events_count_range() {
        for (events_count, valid) in [(0, false), (1, true), (1000, true), (1001, false)] {
            let settings = Settings { events_count, ..settings_for_test() };

            let outcome = settings.validate();

            assert_eq!(outcome.is_ok(), valid, "events_count {events_count}: {outcome:?}");
            if let Err(error) = outcome {
                assert!(error.message.contains("settings.events_count"), "{}", error.message);
            }
        }
    }

    #[test]
    fn endpoints_trimmed() {
        let settings = Settings {
            base_url: " http://127.0.0.1:9090/ ".to_string(),
            token_url: " http://127.0.0.1:9090/connect/token ".to_string(),
            scope: " medi_api ".to_string(),
            ..settings_for_test()
        };

        assert_eq!(settings.api_root(), "http://127.0.0.1:9090");
        assert_eq!(settings.token_endpoint(), "http://127.0.0.1:9090/connect/token");
        assert_eq!(settings.requested_scope(), "medi_api");
    }

    #[test]
    fn debug_hides_client_secret() {
        let printed = format!("{:?}", settings_for_test());

        assert!(!printed.contains("s3cret-value-42"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
        assert!(printed.contains("demo-kontur"), "{printed}");
    }

    #[test]
    fn schema_lists_every_field() {
        let schema: serde_json::Value = serde_json::from_str(CONFIG_SCHEMA).unwrap();
        let properties = schema["properties"].as_object().unwrap();

        let names: Vec<&str> = properties.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["base_url", "token_url", "client_id", "client_secret", "scope", "events_count", "timeout_ms"]
        );
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(properties["scope"]["default"], "medi_api");
        assert_eq!(properties["events_count"]["default"], 100);
        assert_eq!(properties["events_count"]["maximum"], MAX_EVENTS_COUNT);
        assert_eq!(properties["timeout_ms"]["default"], 10_000);
    }
}
