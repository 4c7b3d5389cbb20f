//! Settings of the relay connector: the `[connectors.NAME.settings]` table of uig.toml.

use std::fmt;

use serde::Deserialize;
use uig_connector_api::ConnectorError;

/// JSON Schema of [`Settings`], published in the plugin manifest. Keep it in step with the struct:
/// a unit test compares the property names.
pub const CONFIG_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Relay connector settings",
  "type": "object",
  "additionalProperties": false,
  "required": ["base_url"],
  "properties": {
    "base_url": {
      "type": "string",
      "pattern": "^https?://[^?#]+$",
      "description": "Base URL of the recipient without query or fragment. It must also be listed in the connector's allowed_urls",
      "examples": ["http://127.0.0.1:9090"]
    },
    "path": {
      "type": "string",
      "pattern": "^/",
      "default": "/",
      "description": "Path of the endpoint, appended to base_url"
    },
    "api_key": {
      "type": "string",
      "minLength": 1,
      "writeOnly": true,
      "description": "Bearer token sent in the Authorization header, never logged. Omit it for an endpoint without authentication"
    },
    "timeout_ms": {
      "type": "integer",
      "minimum": 0,
      "default": 10000,
      "description": "Timeout of one HTTP exchange in milliseconds. 0 uses the engine's default"
    }
  }
}"#;

/// The connector's `settings` table. `deny_unknown_fields` makes a misspelt key a start-up error
/// that names the key, instead of a silently ignored setting.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Base URL of the recipient, such as `http://127.0.0.1:9090`. Required. It must start with
    /// `http://` or `https://` and have no query or fragment. A trailing `/` is ignored.
    pub base_url: String,

    /// Path of the endpoint, appended to `base_url`. Default `/`. It must start with `/`.
    #[serde(default = "default_path")]
    pub path: String,

    /// Bearer token for the `Authorization` header. Default none, which sends no such header.
    /// Never logged, and removed from every error message the connector returns.
    #[serde(default)]
    pub api_key: Option<String>,

    /// Timeout of one HTTP exchange in milliseconds. Default 10000, and 0 uses the engine's
    /// default HTTP timeout (`http_timeout_ms` of the connector).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_path() -> String {
    "/".to_string()
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl Settings {
    /// Checks what deserialization accepts but the connector cannot use. Errors are
    /// [`ConnectorError::config`] naming the field path and the fix, so the engine refuses to
    /// start the connector with a message an operator can act on.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let base_url = self.base_url.trim();
        let host = base_url
            .strip_prefix("http://")
            .or_else(|| base_url.strip_prefix("https://"))
            .map(|rest| rest.trim_matches('/'));
        match host {
            None => {
                return Err(ConnectorError::config(format!(
                    "settings.base_url {base_url:?} is invalid: it must start with http:// or https://, \
                     such as \"http://127.0.0.1:9090\""
                )))
            }
            Some("") => {
                return Err(ConnectorError::config(format!(
                    "settings.base_url {base_url:?} has no host: set it to the recipient's address"
                )))
            }
            Some(_) => {}
        }
        if base_url.contains(['?', '#']) {
            return Err(ConnectorError::config(format!(
                "settings.base_url {base_url:?} contains a query or fragment: put a query into settings.path"
            )));
        }

        if !self.path.starts_with('/') || self.path.contains(char::is_whitespace) {
            return Err(ConnectorError::config(format!(
                "settings.path {:?} must start with \"/\" and contain no whitespace, such as \"/api/records\"",
                self.path
            )));
        }

        if self.api_key.as_deref().is_some_and(|key| key.trim().is_empty()) {
            return Err(ConnectorError::config(
                "settings.api_key is empty: set the token, or remove the key for an endpoint without authentication",
            ));
        }
        Ok(())
    }

    /// Returns the endpoint URL, `{base_url}{path}`.
    pub fn endpoint(&self) -> String {
        format!("{}{}", self.base_url.trim().trim_end_matches('/'), self.path)
    }
}

/// Prints every field except the API key, so settings can go into logs and test failures.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("base_url", &self.base_url)
            .field("path", &self.path)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}
