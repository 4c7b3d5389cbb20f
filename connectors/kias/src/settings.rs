//! Settings of the KIAS connector, their JSON Schema and their checks.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use uig_connector_api::ConnectorError;

/// JSON Schema of [`Settings`], published in the plugin manifest.
pub const CONFIG_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "KIAS connector settings",
  "type": "object",
  "additionalProperties": false,
  "required": ["endpoint", "app_id", "user", "password"],
  "properties": {
    "endpoint": {
      "type": "string",
      "pattern": "^https?://[^?#]+$",
      "description": "URL of the kiasSvc.asmx service, without query or fragment",
      "examples": ["http://127.0.0.1:9090/kiasSvc.asmx"]
    },
    "soap_version": {
      "type": "string",
      "enum": ["1.1", "1.2"],
      "default": "1.1",
      "description": "SOAP binding: 1.1 (text/xml with a SOAPAction header) or 1.2 (application/soap+xml)"
    },
    "app_id": {
      "type": "integer",
      "minimum": 1,
      "description": "AppId that KIAS issued to this gateway, sent in every request"
    },
    "user": {
      "type": "string",
      "minLength": 1,
      "description": "KIAS user name of the Auth request"
    },
    "password": {
      "type": "string",
      "minLength": 1,
      "writeOnly": true,
      "description": "KIAS password. Only its SHA-512 is sent, and neither is logged"
    },
    "procedures": {
      "type": "object",
      "additionalProperties": false,
      "description": "Names of the insurer's User_* procedures, one per operation",
      "properties": {
        "notify": {"type": "string", "default": "User_NotifyEvent"},
        "a7_create": {"type": "string", "default": "User_A7Create"},
        "a7_find": {"type": "string", "default": "User_A7Find"},
        "payment_confirm": {"type": "string", "default": "User_PaymentConfirm"},
        "payment_find": {"type": "string", "default": "User_PaymentFind"}
      }
    },
    "directories": {
      "type": "object",
      "additionalProperties": {"type": "integer", "minimum": 1},
      "default": {},
      "description": "Directory name to the DictiISN of its root in KIAS, such as {\"car_make\": 2001}"
    },
    "session_ttl_seconds": {
      "type": "integer",
      "minimum": 1,
      "default": 900,
      "description": "Seconds a KIAS session (Sid) is reused before the connector authenticates again"
    },
    "timeout_ms": {
      "type": "integer",
      "minimum": 0,
      "default": 10000,
      "description": "Timeout of one HTTP exchange with KIAS in milliseconds. 0 uses the engine's default"
    }
  }
}"#;

/// Maximum number of characters of a name in `settings.procedures`.
const PROCEDURE_NAME_MAX_CHARS: usize = 128;

/// SOAP binding of the requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum SoapVersion {
    /// SOAP 1.1: `text/xml` with a `SOAPAction` header.
    #[serde(rename = "1.1")]
    Soap11,
    /// SOAP 1.2: `application/soap+xml` with the action in the content type.
    #[serde(rename = "1.2")]
    Soap12,
}

impl SoapVersion {
    /// Returns the version as the settings spell it.
    pub fn name(self) -> &'static str {
        match self {
            SoapVersion::Soap11 => "1.1",
            SoapVersion::Soap12 => "1.2",
        }
    }
}

/// The connector's `settings` table.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// URL of the `kiasSvc.asmx` service, such as `http://127.0.0.1:9090/kiasSvc.asmx`. Required.
    /// It must start with `http://` or `https://` and have no query or fragment.
    pub endpoint: String,

    /// SOAP binding, `"1.1"` (default) or `"1.2"`.
    #[serde(default = "default_soap_version")]
    pub soap_version: SoapVersion,

    /// AppId that KIAS issued to this gateway, sent as `AppId` in every request. Required, at least 1.
    pub app_id: u64,

    /// KIAS user name, sent as `Name` in the `Auth` request. Required and non-empty.
    pub user: String,

    /// KIAS password. Required and non-empty. Only its SHA-512 in lowercase hex is sent (`Pwd`),
    /// and neither the password nor the hash appears in logs or error messages.
    pub password: String,

    /// Names of the insurer's procedures. Each defaults to the name the mock uses.
    #[serde(default)]
    pub procedures: Procedures,

    /// Directories that `fetch_directory` serves: name to the DictiISN of the directory's root in
    /// KIAS, such as `car_make = 2001`. Default empty.
    #[serde(default)]
    pub directories: BTreeMap<String, u64>,

    /// Seconds a session (`Sid`) is reused before the connector authenticates again. Default 900,
    /// at least 1. KIAS may end a session sooner. Then it returns error `001`, and the connector
    /// authenticates once more and repeats the call.
    #[serde(default = "default_session_ttl_seconds")]
    pub session_ttl_seconds: u64,

    /// Timeout of one HTTP exchange with KIAS in milliseconds. Default 10000, and 0 uses the
    /// engine's default HTTP timeout. One send makes up to five exchanges (`Auth`, a lookup on
    /// retry, the call, and `Auth` and the call again after error `001`), so keep this well below
    /// the connector's `deadline_ms` in the engine config.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// The `settings.procedures` table: each insurer names its `User_*` procedures differently.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Procedures {
    /// Procedure of the `notify` entity. Default `User_NotifyEvent`.
    pub notify: String,
    /// Procedure that registers an A-7 receipt (`a7_create`). Default `User_A7Create`.
    pub a7_create: String,
    /// Procedure that looks an A-7 receipt up by series and number. Default `User_A7Find`.
    pub a7_find: String,
    /// Procedure that confirms a payment (`payment_confirm`). Default `User_PaymentConfirm`.
    pub payment_confirm: String,
    /// Procedure that looks a payment up by its ISN. Default `User_PaymentFind`.
    pub payment_find: String,
}

impl Default for Procedures {
    fn default() -> Self {
        Procedures {
            notify: "User_NotifyEvent".to_string(),
            a7_create: "User_A7Create".to_string(),
            a7_find: "User_A7Find".to_string(),
            payment_confirm: "User_PaymentConfirm".to_string(),
            payment_find: "User_PaymentFind".to_string(),
        }
    }
}

impl Procedures {
    /// Returns each setting key with its procedure name, in the schema's order.
    pub fn entries(&self) -> [(&'static str, &str); 5] {
        [
            ("notify", &self.notify),
            ("a7_create", &self.a7_create),
            ("a7_find", &self.a7_find),
            ("payment_confirm", &self.payment_confirm),
            ("payment_find", &self.payment_find),
        ]
    }
}

fn default_soap_version() -> SoapVersion {
    SoapVersion::Soap11
}

fn default_session_ttl_seconds() -> u64 {
    900
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl Settings {
    /// Checks the values that deserialization accepts but the connector cannot use.
    ///
    /// Errors are [`ConnectorError::config`] naming the field path and the fix.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        validate_endpoint(&self.endpoint)?;

        if self.app_id == 0 {
            return Err(ConnectorError::config(
                "settings.app_id is 0: set it to the AppId that KIAS issued for this gateway",
            ));
        }
        if self.user.trim().is_empty() {
            return Err(ConnectorError::config("settings.user is empty: set it to the KIAS user name"));
        }
        if self.password.is_empty() {
            return Err(ConnectorError::config("settings.password is empty: set it to the KIAS user's password"));
        }

        for (key, procedure) in self.procedures.entries() {
            validate_procedure_name(key, procedure)?;
        }

        for (name, root_isn) in &self.directories {
            let valid_name =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_name {
                return Err(ConnectorError::config(format!(
                    "settings.directories key {name:?} is invalid: use Latin letters, digits, '_' and '-', \
                     such as \"car_make\""
                )));
            }
            if *root_isn == 0 {
                return Err(ConnectorError::config(format!(
                    "settings.directories.{name} is 0: set it to the DictiISN of the directory's root in KIAS"
                )));
            }
        }

        if self.session_ttl_seconds == 0 {
            return Err(ConnectorError::config("settings.session_ttl_seconds is 0: set it to at least 1, such as 900"));
        }

        Ok(())
    }

    /// Returns the endpoint without surrounding whitespace.
    pub fn endpoint_url(&self) -> &str {
        self.endpoint.trim()
    }
}

fn validate_endpoint(endpoint: &str) -> Result<(), ConnectorError> {
    let endpoint = endpoint.trim();
    let example = "such as \"http://127.0.0.1:9090/kiasSvc.asmx\"";

    let Some((_, rest)) = endpoint.split_once("://").filter(|(scheme, _)| matches!(*scheme, "http" | "https")) else {
        return Err(ConnectorError::config(format!(
            "settings.endpoint {endpoint:?} is invalid: it must start with http:// or https://, {example}"
        )));
    };
    if rest.split('/').next().unwrap_or_default().is_empty() {
        return Err(ConnectorError::config(format!(
            "settings.endpoint {endpoint:?} has no host: set it to the kiasSvc.asmx URL, {example}"
        )));
    }
    if endpoint.contains(['?', '#']) {
        return Err(ConnectorError::config(format!(
            "settings.endpoint {endpoint:?} contains a query or fragment: remove everything from \"?\" or \"#\" on"
        )));
    }
    Ok(())
}

/// Checks a procedure name: KIAS procedure names are identifiers, possibly qualified by a package.
fn validate_procedure_name(key: &str, procedure: &str) -> Result<(), ConnectorError> {
    let valid = !procedure.is_empty()
        && procedure.chars().count() <= PROCEDURE_NAME_MAX_CHARS
        && procedure.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && procedure.starts_with(|c: char| c.is_ascii_alphabetic());
    if valid {
        return Ok(());
    }
    Err(ConnectorError::config(format!(
        "settings.procedures.{key} {procedure:?} is invalid: a KIAS procedure name starts with a Latin letter and \
         contains only Latin letters, digits, '_' and '.', such as \"User_A7Create\""
    )))
}

/// Prints every field except the password, so settings can go into logs and test failures.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint)
            .field("soap_version", &self.soap_version)
            .field("app_id", &self.app_id)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("procedures", &self.procedures)
            .field("directories", &self.directories)
            .field("session_ttl_seconds", &self.session_ttl_seconds)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uig_connector_api::sdk::parse_settings;
    use uig_connector_api::ErrorKind;

    const MINIMAL: &str =
        r#"{"endpoint": "http://127.0.0.1:9090/kiasSvc.asmx", "app_id": 1001, "user": "demo", "password": "p"}"#;

    fn settings_for_test() -> Settings {
        parse_settings(MINIMAL).unwrap()
    }

    fn with(extra: &str) -> String {
        format!("{},{extra}}}", MINIMAL.trim_end_matches('}'))
    }

    #[test]
    fn defaults_apply_when_omitted() {
        let settings = settings_for_test();

        assert_eq!(settings.soap_version, SoapVersion::Soap11);
        assert_eq!(settings.procedures, Procedures::default());
        assert_eq!(settings.procedures.notify, "User_NotifyEvent");
        assert_eq!(settings.procedures.payment_find, "User_PaymentFind");
        assert!(settings.directories.is_empty());
        assert_eq!(settings.session_ttl_seconds, 900);
        assert_eq!(settings.timeout_ms, 10_000);
        assert_eq!(settings.validate(), Ok(()));
    }

    #[test]
    fn full_settings_parse() {
        let text = with(
            r#""soap_version": "1.2", "procedures": {"a7_create": "INS_A7.Create"},
               "directories": {"car_make": 2001, "region": 2002}, "session_ttl_seconds": 60, "timeout_ms": 0"#,
        );

        let settings: Settings = parse_settings(&text).unwrap();

        assert_eq!(settings.soap_version, SoapVersion::Soap12);
        assert_eq!(settings.procedures.a7_create, "INS_A7.Create");
        assert_eq!(settings.procedures.a7_find, "User_A7Find");
        assert_eq!(settings.directories["car_make"], 2001);
        assert_eq!(settings.directories["region"], 2002);
        assert_eq!(settings.session_ttl_seconds, 60);
        assert_eq!(settings.timeout_ms, 0);
        assert_eq!(settings.validate(), Ok(()));
    }

    #[test]
    fn unknown_key_rejected_with_path() {
        let error = parse_settings::<Settings>(&with(r#""pasword": "x""#)).unwrap_err();

        assert_eq!(error.kind, ErrorKind::CONFIG);
        assert!(error.message.contains("pasword"), "{}", error.message);
    }

    #[test]
    fn unknown_procedure_key_rejected_with_path() {
        let error = parse_settings::<Settings>(&with(r#""procedures": {"a7_creat": "X"}"#)).unwrap_err();

        assert_eq!(error.kind, ErrorKind::CONFIG);
        assert!(error.message.starts_with("settings.procedures"), "{}", error.message);
        assert!(error.message.contains("a7_creat"), "{}", error.message);
    }

    #[test]
    fn bad_soap_version_rejected() {
        let error = parse_settings::<Settings>(&with(r#""soap_version": "1.3""#)).unwrap_err();

        assert_eq!(error.kind, ErrorKind::CONFIG);
        assert!(error.message.starts_with("settings.soap_version"), "{}", error.message);
        assert!(error.message.contains("1.3"), "{}", error.message);
    }

    #[test]
    fn directory_isn_must_be_integer() {
        let error = parse_settings::<Settings>(&with(r#""directories": {"car_make": "abc"}"#)).unwrap_err();

        assert_eq!(error.kind, ErrorKind::CONFIG);
        assert!(error.message.starts_with("settings.directories.car_make"), "{}", error.message);
    }

    #[test]
    fn missing_password_rejected() {
        let error = parse_settings::<Settings>(
            r#"{"endpoint": "http://127.0.0.1:9090/kiasSvc.asmx", "app_id": 1, "user": "demo"}"#,
        )
        .unwrap_err();

        assert_eq!(error.kind, ErrorKind::CONFIG);
        assert!(error.message.contains("password"), "{}", error.message);
    }

    #[test]
    fn validate_rejects_bad_endpoints() {
        for endpoint in [
            "127.0.0.1:9090/kiasSvc.asmx",
            "ftp://127.0.0.1/k",
            "http://",
            "http:///kiasSvc.asmx",
            "http://127.0.0.1/k?WSDL",
            "http://127.0.0.1/k#a",
        ] {
            let settings = Settings { endpoint: endpoint.to_string(), ..settings_for_test() };

            let error = settings.validate().unwrap_err();

            assert_eq!(error.kind, ErrorKind::CONFIG, "{endpoint}");
            assert!(error.message.starts_with("settings.endpoint"), "{}", error.message);
        }
    }

    #[test]
    fn validate_rejects_bad_values() {
        let cases: [(&str, Settings); 6] = [
            ("settings.app_id", Settings { app_id: 0, ..settings_for_test() }),
            ("settings.user", Settings { user: " ".to_string(), ..settings_for_test() }),
            ("settings.password", Settings { password: String::new(), ..settings_for_test() }),
            ("settings.session_ttl_seconds", Settings { session_ttl_seconds: 0, ..settings_for_test() }),
            (
                "settings.procedures.payment_find",
                Settings {
                    procedures: Procedures { payment_find: "User Payment; drop".to_string(), ..Procedures::default() },
                    ..settings_for_test()
                },
            ),
            (
                "settings.directories",
                Settings { directories: BTreeMap::from([("car make".to_string(), 2001)]), ..settings_for_test() },
            ),
        ];

        for (field, settings) in cases {
            let error = settings.validate().unwrap_err();

            assert_eq!(error.kind, ErrorKind::CONFIG, "{field}");
            assert!(error.message.starts_with(field), "{field}: {}", error.message);
        }
    }

    #[test]
    fn validate_rejects_zero_directory_isn() {
        let settings = Settings { directories: BTreeMap::from([("car_make".to_string(), 0)]), ..settings_for_test() };

        let error = settings.validate().unwrap_err();

        assert!(error.message.starts_with("settings.directories.car_make"), "{}", error.message);
    }

    #[test]
    fn debug_hides_password() {
        let settings = Settings { password: "s3cret-kias-pass".to_string(), ..settings_for_test() };

        let printed = format!("{settings:?}");

        assert!(!printed.contains("s3cret-kias-pass"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    #[test]
    fn schema_lists_every_field() {
        let schema: serde_json::Value = serde_json::from_str(CONFIG_SCHEMA).unwrap();
        let properties = schema["properties"].as_object().unwrap();

        let names: Vec<&str> = properties.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "endpoint",
                "soap_version",
                "app_id",
                "user",
                "password",
                "procedures",
                "directories",
                "session_ttl_seconds",
                "timeout_ms"
            ]
        );
        let procedures: Vec<&str> =
            properties["procedures"]["properties"].as_object().unwrap().keys().map(String::as_str).collect();
        let defaults = Procedures::default();
        let expected: Vec<&str> = defaults.entries().iter().map(|(key, _)| *key).collect();
        assert_eq!(procedures, expected);
        for (key, name) in defaults.entries() {
            assert_eq!(properties["procedures"]["properties"][key]["default"], name, "{key}");
        }
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(properties["session_ttl_seconds"]["default"], 900);
        assert_eq!(properties["timeout_ms"]["default"], 10_000);
    }
}
