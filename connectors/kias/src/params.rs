//! Parameters of a KIAS request and their conversion from a client's JSON object.
//!
//! The generic conversion (used by `notify`) turns each JSON member into one parameter:
//!
//! - the member name, checked and uppercased, is the element name (`policy_isn` → `POLICY_ISN`);
//! - a string is sent as it is, except ISO dates and date-times, which become `dd.mm.yyyy` and
//!   `dd.mm.yyyy hh:mm:ss`;
//! - `true`/`false` become `Y`/`N`, numbers keep their JSON spelling, `null` is an empty element;
//! - an object becomes nested parameters, and an array becomes `ROWSET` with one `row` per item.

use serde_json::{Map, Value};
use uig_connector_api::ConnectorError;

use crate::values::{invalid_xml_char, iso_to_kias, kias_boolean, IsoText};

/// Error code of every payload that the connector rejects before calling KIAS.
pub const INVALID_PAYLOAD: &str = "invalid_payload";

/// Maximum number of characters of a member name used as a parameter name.
const NAME_MAX_CHARS: usize = 64;

/// Parameter name that carries the session and is never taken from a payload.
pub const SID_PARAM: &str = "Sid";

/// Value of one parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamValue {
    /// Text content, escaped when written.
    Text(String),
    /// An empty element, which KIAS reads as NULL.
    Null,
    /// Nested parameters.
    Group(Vec<Param>),
    /// A `ROWSET` element with one `row` per item.
    Rows(Vec<ParamValue>),
}

/// One named parameter of a KIAS request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// Element name, a valid XML name.
    pub name: String,
    /// Element content.
    pub value: ParamValue,
}

impl Param {
    /// Creates a text parameter.
    pub fn text(name: &str, value: impl Into<String>) -> Self {
        Param { name: name.to_string(), value: ParamValue::Text(value.into()) }
    }
}

/// A payload member that cannot become a parameter, named by its JSON path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the member, such as `vehicle.owners[1].birth_date`.
    pub field: String,
    /// Description of the problem and of the expected value.
    pub reason: String,
}

impl FieldError {
    /// Creates an error for `field`.
    pub fn new(field: &str, reason: impl Into<String>) -> Self {
        FieldError { field: field.to_string(), reason: reason.into() }
    }

    /// Converts into the permanent connector error for `entity`.
    pub fn into_connector_error(self, entity: &str) -> ConnectorError {
        ConnectorError::permanent(format!("invalid {entity} payload: field \"{}\" {}", self.field, self.reason))
            .with_code(INVALID_PAYLOAD)
    }
}

/// Converts a JSON object into parameters by the generic rules of this module.
pub fn params_from_object(object: &Map<String, Value>) -> Result<Vec<Param>, FieldError> {
    object_params(object, "", 1)
}

fn object_params(object: &Map<String, Value>, prefix: &str, depth: usize) -> Result<Vec<Param>, FieldError> {
    let mut params = Vec::with_capacity(object.len());
    for (key, value) in object {
        let field = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        let name = parameter_name(key, &field)?;
        if depth == 1 && name.eq_ignore_ascii_case(SID_PARAM) {
            return Err(FieldError::new(&field, "is reserved: the connector sends the session id itself"));
        }
        params.push(Param { name, value: param_value(value, &field, depth)? });
    }
    Ok(params)
}

fn param_value(value: &Value, field: &str, depth: usize) -> Result<ParamValue, FieldError> {
    if depth > crate::xml::MAX_DEPTH / 2 {
        return Err(FieldError::new(field, "is nested too deeply"));
    }

    match value {
        Value::Null => Ok(ParamValue::Null),
        Value::Bool(flag) => Ok(ParamValue::Text(kias_boolean(*flag).to_string())),
        Value::Number(number) => Ok(ParamValue::Text(number.to_string())),
        Value::String(text) => text_value(text, field).map(ParamValue::Text),
        Value::Object(object) => object_params(object, field, depth + 1).map(ParamValue::Group),
        Value::Array(items) => {
            let mut rows = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let item_field = format!("{field}[{index}]");
                if item.is_array() {
                    return Err(FieldError::new(
                        &item_field,
                        "is an array inside an array, which KIAS rows cannot carry",
                    ));
                }
                rows.push(param_value(item, &item_field, depth + 1)?);
            }
            Ok(ParamValue::Rows(rows))
        }
    }
}

/// Checks a string and converts ISO dates to KIAS form.
pub fn text_value(text: &str, field: &str) -> Result<String, FieldError> {
    if let Some(invalid) = invalid_xml_char(text) {
        return Err(FieldError::new(
            field,
            format!("contains the control character U+{:04X}, which XML cannot carry", u32::from(invalid)),
        ));
    }
    match iso_to_kias(text) {
        IsoText::Converted(kias) => Ok(kias),
        IsoText::InvalidDate => Err(FieldError::new(field, format!("{text:?} is not a valid date"))),
        IsoText::Other => Ok(text.to_string()),
    }
}

/// Returns the uppercased parameter name of a member, or why the member name cannot be one.
fn parameter_name(key: &str, field: &str) -> Result<String, FieldError> {
    let valid = key.starts_with(|c: char| c.is_ascii_alphabetic())
        && key.len() <= NAME_MAX_CHARS
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(FieldError::new(
            field,
            format!(
                "has an invalid name: a KIAS parameter name starts with a Latin letter and contains only Latin \
                 letters, digits and '_', at most {NAME_MAX_CHARS} characters"
            ),
        ));
    }
    Ok(key.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn convert(value: Value) -> Result<Vec<Param>, FieldError> {
        params_from_object(value.as_object().unwrap())
    }

    #[test]
    fn scalars_converted() {
        let params = convert(json!({
            "event": "POLICY_ISSUED",
            "policy_isn": 5500123,
            "issued": "2025-03-01",
            "signed_at": "2025-03-01T10:15:00",
            "paid": true,
            "cancelled": false,
            "amount": 12500.5,
            "note": null,
            "comment": "Клиент «Иванов» & <сын>"
        }))
        .unwrap();

        assert_eq!(
            params,
            vec![
                Param::text("EVENT", "POLICY_ISSUED"),
                Param::text("POLICY_ISN", "5500123"),
                Param::text("ISSUED", "01.03.2025"),
                Param::text("SIGNED_AT", "01.03.2025 10:15:00"),
                Param::text("PAID", "Y"),
                Param::text("CANCELLED", "N"),
                Param::text("AMOUNT", "12500.5"),
                Param { name: "NOTE".to_string(), value: ParamValue::Null },
                Param::text("COMMENT", "Клиент «Иванов» & <сын>"),
            ]
        );
    }

    #[test]
    fn objects_and_arrays_nested() {
        let params = convert(json!({
            "vehicle": {"vin": "XTA21099043765432", "year": 2004},
            "drivers": [{"name": "Петров", "born": "1980-05-17"}, {"name": "Сидорова"}],
            "tags": ["a", null]
        }))
        .unwrap();

        assert_eq!(
            params,
            vec![
                Param {
                    name: "VEHICLE".to_string(),
                    value: ParamValue::Group(vec![
                        Param::text("VIN", "XTA21099043765432"),
                        Param::text("YEAR", "2004")
                    ]),
                },
                Param {
                    name: "DRIVERS".to_string(),
                    value: ParamValue::Rows(vec![
                        ParamValue::Group(vec![Param::text("NAME", "Петров"), Param::text("BORN", "17.05.1980")]),
                        ParamValue::Group(vec![Param::text("NAME", "Сидорова")]),
                    ]),
                },
                Param {
                    name: "TAGS".to_string(),
                    value: ParamValue::Rows(vec![ParamValue::Text("a".to_string()), ParamValue::Null]),
                },
            ]
        );
    }

    #[test]
    fn invalid_date_names_field() {
        let error = convert(json!({"drivers": [{"born": "1980-02-30"}]})).unwrap_err();

        assert_eq!(error.field, "drivers[0].born");
        assert!(error.reason.contains("\"1980-02-30\" is not a valid date"), "{}", error.reason);
    }

    #[test]
    fn invalid_names_rejected() {
        for key in ["1st", "имя", "a-b", "a b", "", "_x", &"x".repeat(65)] {
            let mut object = Map::new();
            object.insert(key.to_string(), json!(1));

            let error = params_from_object(&object).unwrap_err();

            assert_eq!(error.field, key);
            assert!(error.reason.contains("invalid name"), "{}", error.reason);
        }
    }

    #[test]
    fn sid_member_rejected() {
        for key in ["sid", "Sid", "SID"] {
            let mut object = Map::new();
            object.insert(key.to_string(), json!("x"));

            let error = params_from_object(&object).unwrap_err();

            assert_eq!(error.field, key);
            assert!(error.reason.contains("reserved"), "{}", error.reason);
        }
    }

    #[test]
    fn nested_sid_allowed() {
        let params = convert(json!({"session": {"sid": "x"}})).unwrap();

        assert_eq!(params[0].value, ParamValue::Group(vec![Param::text("SID", "x")]));
    }

    #[test]
    fn control_characters_rejected() {
        let error = convert(json!({"comment": "bell\u{7}"})).unwrap_err();

        assert_eq!(error.field, "comment");
        assert!(error.reason.contains("U+0007"), "{}", error.reason);
    }

    #[test]
    fn nested_arrays_rejected() {
        let error = convert(json!({"matrix": [[1, 2]]})).unwrap_err();

        assert_eq!(error.field, "matrix[0]");
    }

    #[test]
    fn deep_nesting_rejected() {
        let mut value = json!(1);
        for _ in 0..40 {
            value = json!({"a": value});
        }

        let error = convert(value).unwrap_err();

        assert!(error.reason.contains("nested too deeply"), "{}", error.reason);
        assert!(error.field.starts_with("a.a.a"), "{}", error.field);
    }

    #[test]
    fn field_error_is_permanent_invalid_payload() {
        let error = FieldError::new("date", "is missing").into_connector_error("a7_create");

        assert_eq!(error.kind, uig_connector_api::ErrorKind::PERMANENT);
        assert_eq!(error.code.as_str(), INVALID_PAYLOAD);
        assert_eq!(error.message.as_str(), "invalid a7_create payload: field \"date\" is missing");
    }
}
