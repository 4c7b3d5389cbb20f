//! Settings of the AVINFO connector, their JSON Schema and their checks.

use std::fmt;

use serde::Deserialize;
use uig_connector_api::ConnectorError;

/// JSON Schema of [`Settings`], published in the plugin manifest.
pub const CONFIG_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "AVINFO connector settings",
  "type": "object",
  "additionalProperties": false,
  "required": ["base_url", "api_key"],
  "properties": {
    "base_url": {
      "type": "string",
      "pattern": "^https?://[^?#]+$",
      "description": "Base URL of the AVINFO API without query or fragment. The connector appends /api/v1/vehicle",
      "examples": ["http://127.0.0.1:9090"]
    },
    "api_key": {
      "type": "string",
      "minLength": 1,
      "writeOnly": true,
      "description": "AVINFO API key, sent in the key query parameter and never logged"
    },
    "cache_ttl_seconds": {
      "type": "integer",
      "minimum": 0,
      "default": 86400,
      "description": "Time in seconds that a successful lookup stays cached. 0 disables caching"
    },
    "timeout_ms": {
      "type": "integer",
      "minimum": 0,
      "default": 10000,
      "description": "Timeout of one HTTP exchange with AVINFO in milliseconds. 0 uses the engine's default"
    }
  }
}"#;

/// The connector's `settings` table.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Base URL of the AVINFO API, such as `http://127.0.0.1:9090`. Required. It must start with
    /// `http://` or `https://` and have no query or fragment. A trailing `/` is ignored.
    pub base_url: String,

    /// AVINFO API key, sent in the `key` query parameter. Required and non-empty. Never logged,
    /// and removed from every error message the connector returns.
    pub api_key: String,

    /// Time in seconds that a successful lookup stays cached. Default 86400 (one day), and 0
    /// disables caching.
    #[serde(default = "default_cache_ttl_seconds")]
    pub cache_ttl_seconds: u64,

    /// Timeout of one HTTP exchange with AVINFO in milliseconds. Default 10000, and 0 uses the
    /// engine's default HTTP timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_cache_ttl_seconds() -> u64 {
    86_400
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl Settings {
    /// Checks the values that deserialization accepts but the connector cannot use.
    ///
    /// Errors are [`ConnectorError::config`] naming the field path and the fix.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let base_url = self.base_url.trim();
        let has_scheme = base_url.starts_with("http://") || base_url.starts_with("https://");
        if !has_scheme {
            return Err(ConnectorError::config(format!(
                "settings.base_url {base_url:?} is invalid: it must start with http:// or https://, \
                 such as \"http://127.0.0.1:9090\""
            )));
        }

        let host_part = base_url.split_once("://").map(|(_, rest)| rest).unwrap_or_default();
        if host_part.trim_matches('/').is_empty() {
            return Err(ConnectorError::config(format!(
                "settings.base_url {base_url:?} has no host: set it to the AVINFO address, \
                 such as \"http://127.0.0.1:9090\""
            )));
        }

        if base_url.contains(['?', '#']) {
            return Err(ConnectorError::config(format!(
                "settings.base_url {base_url:?} contains a query or fragment: remove everything from \"?\" \
                 or \"#\" on, because the connector adds the query itself"
            )));
        }

        if self.api_key.trim().is_empty() {
            return Err(ConnectorError::config(
                "settings.api_key is empty: set it to the API key that AVINFO issued for this account",
            ));
        }

        Ok(())
    }

    /// Returns the vehicle endpoint, `{base_url}/api/v1/vehicle`, without a query.
    pub fn vehicle_endpoint(&self) -> String {
        format!("{}/api/v1/vehicle", self.base_url.trim().trim_end_matches('/'))
    }
}

/// Prints every field except the API key, so settings can go into logs and test failures.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("cache_ttl_seconds", &self.cache_ttl_seconds)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uig_connector_api::sdk::parse_settings;
    use uig_connector_api::ErrorKind;

    fn settings_for_test() -> Settings {
        Settings {
            base_url: "http://127.0.0.1:9090".to_string(),
            api_key: "test-key-0123456789".to_string(),
            cache_ttl_seconds: 86_400,
            timeout_ms: 10_000,
        }
    }

    #[test]
    fn defaults_apply_when_omitted() {
        let settings: Settings = parse_settings(r#"{"base_url": "http://127.0.0.1:9090", "api_key": "k"}"#).unwrap();

        assert_eq!(settings.cache_ttl_seconds, 86_400);
        assert_eq!(settings.timeout_ms, 10_000);
    }

    #[test]
    fn unknown_key_rejected_with_path() {
        let error =
            parse_settings::<Settings>(r#"{"base_url": "http://127.0.0.1:9090", "api_key": "k", "cache_ttl": 5}"#)
                .unwrap_err();

        assert_eq!(error.kind, ErrorKind::CONFIG);
        assert!(error.message.contains("cache_ttl"), "{}", error.message);
    }

    #[test]
    fn missing_api_key_rejected() {
        let error = parse_settings::<Settings>(r#"{"base_url": "http://127.0.0.1:9090"}"#).unwrap_err();

        assert_eq!(error.kind, ErrorKind::CONFIG);
        assert!(error.message.contains("api_key"), "{}", error.message);
    }

    #[test]
    fn validate_accepts_loopback_url() {
        assert_eq!(settings_for_test().validate(), Ok(()));
    }

    #[test]
    fn validate_rejects_bad_base_urls() {
        for base_url in
            ["127.0.0.1:9090", "ftp://127.0.0.1", "http://", "http://127.0.0.1:9090/?a=1", "http://127.0.0.1#x"]
        {
            let settings = Settings { base_url: base_url.to_string(), ..settings_for_test() };

            let error = settings.validate().unwrap_err();

            assert_eq!(error.kind, ErrorKind::CONFIG, "{base_url}");
            assert!(error.message.contains("settings.base_url"), "{}", error.message);
        }
    }

    #[test]
    fn validate_rejects_blank_api_key() {
        let settings = Settings { api_key: "  ".to_string(), ..settings_for_test() };

        let error = settings.validate().unwrap_err();

        assert_eq!(error.kind, ErrorKind::CONFIG);
        assert!(error.message.contains("settings.api_key"), "{}", error.message);
    }

    #[test]
    fn endpoint_ignores_trailing_slash() {
        let settings = Settings { base_url: "http://127.0.0.1:9090/".to_string(), ..settings_for_test() };

        assert_eq!(settings.vehicle_endpoint(), "http://127.0.0.1:9090/api/v1/vehicle");
    }

    #[test]
    fn debug_hides_api_key() {
        let printed = format!("{:?}", settings_for_test());

        assert!(!printed.contains("test-key-0123456789"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    #[test]
    fn schema_lists_every_field() {
        let schema: serde_json::Value = serde_json::from_str(CONFIG_SCHEMA).unwrap();
        let properties = schema["properties"].as_object().unwrap();

        let names: Vec<&str> = properties.keys().map(String::as_str).collect();
        assert_eq!(names, ["base_url", "api_key", "cache_ttl_seconds", "timeout_ms"]);
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(properties["cache_ttl_seconds"]["default"], 86_400);
        assert_eq!(properties["timeout_ms"]["default"], 10_000);
    }
}
