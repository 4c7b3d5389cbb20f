//! The entities that `send` accepts, and the checks their payloads share.

pub mod a7;
pub mod notify;
pub mod payment;

use serde_json::{Map, Value};
use uig_connector_api::ConnectorError;

use crate::params::{FieldError, INVALID_PAYLOAD};
use crate::values::{invalid_xml_char, is_isn, iso_to_kias, IsoText};
use crate::xml::Element;

/// Entity `notify`: notifies KIAS of an event.
pub const NOTIFY: &str = "notify";

/// Entity `a7_create`: registers an A-7 receipt for a premium paid in cash.
pub const A7_CREATE: &str = "a7_create";

/// Entity `payment_confirm`: confirms a payment.
pub const PAYMENT_CONFIRM: &str = "payment_confirm";

/// Every entity, in the order of the manifest.
pub const ENTITIES: [&str; 3] = [NOTIFY, A7_CREATE, PAYMENT_CONFIRM];

/// Parameter that carries the external key of an effect: the ledger's message id.
pub const EXTERNAL_KEY_PARAM: &str = "EXTERNALKEY";

/// Returns the external key sent with effects of message `message_id`, such as `UIG-42`. It is
/// stable across attempts, so an attempt can recognize the effect of an earlier one.
pub fn external_key(message_id: i64) -> String {
    format!("UIG-{message_id}")
}

/// Parses the payload as a JSON object.
pub fn payload_object(payload: &str, entity: &str) -> Result<Map<String, Value>, ConnectorError> {
    match serde_json::from_str::<Value>(payload) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ConnectorError::permanent(format!("invalid {entity} payload: it must be a JSON object"))
            .with_code(INVALID_PAYLOAD)),
        Err(error) => Err(ConnectorError::permanent(format!("invalid {entity} payload: it is not JSON: {error}"))
            .with_code(INVALID_PAYLOAD)),
    }
}

/// Typed access to the members of a payload object, with errors that name the member.
pub struct Fields<'a> {
    object: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// Checks that every member is one of `accepted`, and wraps the object.
    pub fn new(object: &'a Map<String, Value>, accepted: &[&str]) -> Result<Self, FieldError> {
        if let Some(unknown) = object.keys().find(|key| !accepted.contains(&key.as_str())) {
            return Err(FieldError::new(unknown, format!("is not accepted: the fields are {}", accepted.join(", "))));
        }
        Ok(Fields { object })
    }

    /// Returns a member, treating `null` as absent.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.object.get(name).filter(|value| !value.is_null())
    }

    /// Returns a required string member, trimmed and non-empty, of at most `max_chars` characters.
    pub fn text(&self, name: &str, max_chars: usize) -> Result<String, FieldError> {
        self.optional_text(name, max_chars)?.ok_or_else(|| FieldError::new(name, "is missing"))
    }

    /// Returns an optional string member, trimmed, of at most `max_chars` characters.
    pub fn optional_text(&self, name: &str, max_chars: usize) -> Result<Option<String>, FieldError> {
        let Some(value) = self.get(name) else { return Ok(None) };
        let Some(text) = value.as_str() else { return Err(FieldError::new(name, "must be a string")) };

        let text = text.trim();
        if text.is_empty() {
            return Err(FieldError::new(name, "is empty"));
        }
        if text.chars().count() > max_chars {
            return Err(FieldError::new(name, format!("is longer than {max_chars} characters")));
        }
        if let Some(invalid) = invalid_xml_char(text) {
            return Err(FieldError::new(
                name,
                format!("contains the control character U+{:04X}, which XML cannot carry", u32::from(invalid)),
            ));
        }
        Ok(Some(text.to_string()))
    }

    /// Returns a required ISN: a string of digits or a non-negative JSON integer.
    pub fn isn(&self, name: &str) -> Result<String, FieldError> {
        self.optional_isn(name)?.ok_or_else(|| FieldError::new(name, "is missing"))
    }

    /// Returns an optional ISN.
    pub fn optional_isn(&self, name: &str) -> Result<Option<String>, FieldError> {
        let Some(value) = self.get(name) else { return Ok(None) };
        let text = match value {
            Value::String(text) => text.trim().to_string(),
            Value::Number(number) if number.is_u64() => number.to_string(),
            _ => String::new(),
        };
        if !is_isn(&text) || text.bytes().all(|byte| byte == b'0') {
            return Err(FieldError::new(name, "must be a KIAS ISN: a positive number of up to 20 digits"));
        }
        Ok(Some(text))
    }

    /// Returns a required digit string of 1 to `max_digits` digits, leading zeros kept, given as a
    /// string or a non-negative JSON integer.
    pub fn digits(&self, name: &str, max_digits: usize) -> Result<String, FieldError> {
        let value = self.get(name).ok_or_else(|| FieldError::new(name, "is missing"))?;
        let text = match value {
            Value::String(text) => text.trim().to_string(),
            Value::Number(number) if number.is_u64() => number.to_string(),
            _ => String::new(),
        };
        let valid = (1..=max_digits).contains(&text.len()) && text.bytes().all(|byte| byte.is_ascii_digit());
        if !valid {
            return Err(FieldError::new(name, format!("must be 1 to {max_digits} digits")));
        }
        Ok(text)
    }

    /// Returns a required ISO date (`yyyy-mm-dd`) in KIAS form (`dd.mm.yyyy`).
    pub fn date(&self, name: &str) -> Result<String, FieldError> {
        let value = self.get(name).ok_or_else(|| FieldError::new(name, "is missing"))?;
        let text = value.as_str().unwrap_or_default();
        match iso_to_kias(text) {
            IsoText::Converted(kias) if text.len() == "yyyy-mm-dd".len() => Ok(kias),
            IsoText::InvalidDate => Err(FieldError::new(name, format!("{text:?} is not a valid date"))),
            _ => Err(FieldError::new(name, "must be a date in the form yyyy-mm-dd")),
        }
    }

    /// Returns a required positive amount of money with at most two decimals, given as a JSON
    /// number or a string with `.` or `,` as the decimal separator, in the form `12500.50`.
    pub fn amount(&self, name: &str) -> Result<String, FieldError> {
        self.optional_amount(name)?.ok_or_else(|| FieldError::new(name, "is missing"))
    }

    /// Returns an optional amount, as [`Fields::amount`] reads it.
    ///
    /// NOTE: serde_json reads a JSON number as `f64`, which keeps its decimal spelling only up to
    /// 15 significant digits, so larger amounts with kopecks must come as strings.
    pub fn optional_amount(&self, name: &str) -> Result<Option<String>, FieldError> {
        let Some(value) = self.get(name) else { return Ok(None) };
        let text = match value {
            Value::String(text) => text.trim().replace(',', "."),
            Value::Number(number) => number.to_string(),
            _ => String::new(),
        };
        normalize_amount(&text)
            .map(Some)
            .ok_or_else(|| FieldError::new(name, "must be a positive amount with at most 2 decimals, such as 12500.50"))
    }
}

/// Maximum number of integer digits of an amount.
const AMOUNT_MAX_INTEGER_DIGITS: usize = 15;

/// Normalizes `123`, `123.5` or `0123.45` to two decimals (`123.00`, `123.50`, `123.45`), or
/// returns `None` for anything else, zero included.
fn normalize_amount(text: &str) -> Option<String> {
    let (integer, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits_only = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if integer.is_empty() || !digits_only(integer) || !digits_only(fraction) || fraction.len() > 2 {
        return None;
    }
    if text.contains('.') && fraction.is_empty() {
        return None;
    }

    let integer = integer.trim_start_matches('0');
    let integer = if integer.is_empty() { "0" } else { integer };
    if integer.len() > AMOUNT_MAX_INTEGER_DIGITS {
        return None;
    }
    let amount = format!("{integer}.{fraction:0<2}");
    (amount != "0.00").then_some(amount)
}

/// Returns the record of a create or confirm result: the element itself, or its only row when
/// the procedure returns a `ROWSET` of one.
pub fn single_record(result: &Element) -> &Element {
    match result.rows() {
        Some(rows) if rows.len() == 1 => rows[0],
        _ => result,
    }
}

/// Returns the rows of a lookup result, treating a blank `result` as no rows.
///
/// Errors describe a result that is neither.
pub fn lookup_rows<'e>(result: &'e Element, procedure: &str) -> Result<Vec<&'e Element>, ConnectorError> {
    if let Some(rows) = result.rows() {
        return Ok(rows);
    }
    if result.children.is_empty() && result.text.trim().is_empty() {
        return Ok(Vec::new());
    }
    Err(ConnectorError::transient(format!(
        "KIAS procedure {procedure} returned a result without a ROWSET, so the lookup cannot be read: check \
         settings.procedures"
    ))
    .with_code(crate::soap::MALFORMED_RESPONSE))
}

/// Returns the row of a lookup result whose external key is `key`.
pub fn row_with_key<'e>(found: &'e Element, key: &str, procedure: &str) -> Result<Option<&'e Element>, ConnectorError> {
    let rows = lookup_rows(found, procedure)?;
    Ok(rows.into_iter().find(|row| row.child_text(EXTERNAL_KEY_PARAM) == Some(key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields_of(value: &Value) -> Fields<'_> {
        let object = value.as_object().unwrap();
        let accepted: Vec<&str> = object.keys().map(String::as_str).collect();
        Fields::new(object, &accepted).unwrap()
    }

    #[test]
    fn amounts_normalized() {
        let cases = [
            ("123", Some("123.00")),
            ("123.5", Some("123.50")),
            ("0123.45", Some("123.45")),
            ("0.01", Some("0.01")),
            ("0", None),
            ("0.00", None),
            ("-5", None),
            ("1.234", None),
            ("1.", None),
            (".5", None),
            ("1e3", None),
            ("12 500", None),
            ("", None),
            ("1000000000000000", None),
        ];

        for (text, expected) in cases {
            assert_eq!(normalize_amount(text).as_deref(), expected, "{text:?}");
        }
    }

    #[test]
    fn amount_accepts_numbers_and_comma() {
        let value = json!({"a": 12500.5, "b": "12500,5", "c": 7, "d": true});
        let fields = fields_of(&value);

        assert_eq!(fields.amount("a").unwrap(), "12500.50");
        assert_eq!(fields.amount("b").unwrap(), "12500.50");
        assert_eq!(fields.amount("c").unwrap(), "7.00");
        assert_eq!(fields.amount("d").unwrap_err().field, "d");
        assert!(fields.amount("missing").unwrap_err().reason.contains("missing"));
    }

    #[test]
    fn isn_accepts_digits_and_integers() {
        let value = json!({"a": "3366101", "b": 3366101, "c": "33-66", "d": -1, "e": "000", "f": 1.5});
        let fields = fields_of(&value);

        assert_eq!(fields.isn("a").unwrap(), "3366101");
        assert_eq!(fields.isn("b").unwrap(), "3366101");
        for name in ["c", "d", "e", "f"] {
            let error = fields.isn(name).unwrap_err();
            assert_eq!(error.field, name);
            assert!(error.reason.contains("ISN"), "{}", error.reason);
        }
    }

    #[test]
    fn dates_must_be_iso_dates() {
        let value =
            json!({"a": "2025-03-01", "b": "01.03.2025", "c": "2025-02-30", "d": "2025-03-01T10:00:00", "e": 20250301});
        let fields = fields_of(&value);

        assert_eq!(fields.date("a").unwrap(), "01.03.2025");
        assert!(fields.date("b").unwrap_err().reason.contains("yyyy-mm-dd"));
        assert!(fields.date("c").unwrap_err().reason.contains("not a valid date"));
        assert!(fields.date("d").unwrap_err().reason.contains("yyyy-mm-dd"));
        assert!(fields.date("e").unwrap_err().reason.contains("yyyy-mm-dd"));
    }

    #[test]
    fn text_checked() {
        let value = json!({"a": "  Иванов  ", "b": " ", "c": 5, "d": "x\u{0}", "e": "abcdef", "n": null});
        let fields = fields_of(&value);

        assert_eq!(fields.text("a", 10).unwrap(), "Иванов");
        assert!(fields.text("b", 10).unwrap_err().reason.contains("empty"));
        assert!(fields.text("c", 10).unwrap_err().reason.contains("string"));
        assert!(fields.text("d", 10).unwrap_err().reason.contains("U+0000"));
        assert!(fields.text("e", 5).unwrap_err().reason.contains("longer than 5"));
        assert!(fields.text("n", 5).unwrap_err().reason.contains("missing"));
        assert_eq!(fields.optional_text("n", 5).unwrap(), None);
    }

    #[test]
    fn digits_keep_leading_zeros() {
        let value = json!({"a": "0012345", "b": 12345, "c": "12a", "d": "12345678901"});
        let fields = fields_of(&value);

        assert_eq!(fields.digits("a", 10).unwrap(), "0012345");
        assert_eq!(fields.digits("b", 10).unwrap(), "12345");
        assert!(fields.digits("c", 10).is_err());
        assert!(fields.digits("d", 10).is_err());
    }

    #[test]
    fn unknown_member_named() {
        let value = json!({"series": "7000", "seria": "1"});

        let error = Fields::new(value.as_object().unwrap(), &["series", "number"]).err().unwrap();

        assert_eq!(error.field, "seria");
        assert!(error.reason.contains("series, number"), "{}", error.reason);
    }

    #[test]
    fn payload_must_be_object() {
        for payload in ["[1]", "\"x\"", "{", ""] {
            let error = payload_object(payload, "notify").unwrap_err();

            assert_eq!(error.code.as_str(), INVALID_PAYLOAD, "{payload}");
            assert!(error.message.starts_with("invalid notify payload"), "{}", error.message);
        }
    }

    #[test]
    fn single_row_result_unwrapped() {
        let rowset = Element::parse_document("<result><ROWSET><row><ISN>1</ISN></row></ROWSET></result>").unwrap();
        let record = Element::parse_document("<result><ISN>2</ISN></result>").unwrap();

        assert_eq!(single_record(&rowset).child_text("ISN"), Some("1"));
        assert_eq!(single_record(&record).child_text("ISN"), Some("2"));
    }

    #[test]
    fn lookup_rows_shapes() {
        let blank = Element::parse_document("<result/>").unwrap();
        let rows = Element::parse_document("<result><ROWSET><row/><row/></ROWSET></result>").unwrap();
        let record = Element::parse_document("<result><ISN>1</ISN></result>").unwrap();

        assert!(lookup_rows(&blank, "P").unwrap().is_empty());
        assert_eq!(lookup_rows(&rows, "P").unwrap().len(), 2);
        let error = lookup_rows(&record, "User_A7Find").unwrap_err();
        assert!(error.message.contains("User_A7Find"), "{}", error.message);
    }

    #[test]
    fn row_found_only_with_own_key() {
        let found = Element::parse_document(
            "<result><ROWSET><row><ISN>1</ISN><EXTERNALKEY>UIG-7</EXTERNALKEY></row>\
             <row><ISN>2</ISN><EXTERNALKEY>UIG-42</EXTERNALKEY></row></ROWSET></result>",
        )
        .unwrap();

        let row = row_with_key(&found, "UIG-42", "User_A7Find").unwrap().unwrap();

        assert_eq!(row.child_text("ISN"), Some("2"));
        assert!(row_with_key(&found, "UIG-4", "User_A7Find").unwrap().is_none());
    }
}
