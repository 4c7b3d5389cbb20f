//! Parsing and validation of the `vehicle` payload: a VIN or a Russian plate number.

use std::fmt;

use serde_json::Value;
use uig_connector_api::ConnectorError;

/// Error code of every payload the connector rejects before calling AVINFO.
pub const INVALID_PAYLOAD: &str = "invalid_payload";

/// Hint appended to every VIN error.
const VIN_RULE: &str = "a VIN has 17 letters and digits without I, O and Q";

/// Hint appended to plate format errors.
const PLATE_RULE: &str =
    "a plate is one letter, 3 digits, 2 letters and a region of 2 or 3 digits, such as \"А123ВС77\"";

/// The 12 Cyrillic capitals used on Russian plates, in the order of [`LATIN_LOOK_ALIKES`].
const PLATE_LETTERS: [char; 12] = ['А', 'В', 'Е', 'К', 'М', 'Н', 'О', 'Р', 'С', 'Т', 'У', 'Х'];

/// Latin capitals that look like [`PLATE_LETTERS`] and are converted to them.
const LATIN_LOOK_ALIKES: [char; 12] = ['A', 'B', 'E', 'K', 'M', 'H', 'O', 'P', 'C', 'T', 'Y', 'X'];

/// Maximum number of characters of a client value quoted in an error message.
const QUOTED_VALUE_MAX_CHARS: usize = 40;

/// One vehicle lookup, normalized and valid for AVINFO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A 17-character VIN in Latin capitals and digits.
    Vin(String),
    /// A plate number in Cyrillic capitals and digits, without spaces (`А123ВС77`).
    Plate(String),
}

impl Lookup {
    /// Parses the client's JSON payload, which must contain exactly one of `vin` and `plate`.
    ///
    /// Other members (`fio`, `phone`) are ignored, and a member set to `null` counts as absent.
    /// Errors are permanent, with code [`INVALID_PAYLOAD`] and a message naming the field and the fix.
    pub fn from_payload(payload: &str) -> Result<Lookup, ConnectorError> {
        let document: Value = serde_json::from_str(payload).map_err(|error| {
            invalid_payload(format!(
                "payload is not valid JSON ({error}): send an object such as {{\"vin\": \"XTA21099043765432\"}}"
            ))
        })?;
        let Value::Object(members) = document else {
            return Err(invalid_payload(format!(
                "payload is a JSON {}, not an object: send an object such as {{\"vin\": \"XTA21099043765432\"}}",
                json_type_name(&document)
            )));
        };

        let vin = members.get("vin").filter(|value| !value.is_null());
        let plate = members.get("plate").filter(|value| !value.is_null());

        match (vin, plate) {
            (Some(vin), None) => parse_vin(string_member("vin", vin)?).map(Lookup::Vin),
            (None, Some(plate)) => parse_plate(string_member("plate", plate)?).map(Lookup::Plate),
            (Some(_), Some(_)) => {
                Err(invalid_payload("payload has both \"vin\" and \"plate\": send exactly one of them"))
            }
            (None, None) => Err(invalid_payload(
                "payload has neither \"vin\" nor \"plate\": send {\"vin\": \"...\"} or {\"plate\": \"...\"}",
            )),
        }
    }

    /// Returns the AVINFO query parameter name: `vin` or `plate`.
    pub fn parameter(&self) -> &'static str {
        match self {
            Lookup::Vin(_) => "vin",
            Lookup::Plate(_) => "plate",
        }
    }

    /// Returns the normalized VIN or plate.
    pub fn value(&self) -> &str {
        match self {
            Lookup::Vin(value) | Lookup::Plate(value) => value,
        }
    }

    /// Returns the cache key, `vin:{VIN}` or `plate:{PLATE}`.
    pub fn cache_key(&self) -> String {
        format!("{}:{}", self.parameter(), self.value())
    }
}

/// Formats as `vin "XTA21099043765432"` or `plate "А123ВС77"`, for messages.
impl fmt::Display for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.parameter(), self.value())
    }
}

/// Normalizes (trim, uppercase) and validates a VIN.
///
/// Errors are permanent, with code [`INVALID_PAYLOAD`], and name the wrong length or the first
/// character that a VIN cannot contain, with its 1-based position.
pub fn parse_vin(raw: &str) -> Result<String, ConnectorError> {
    let trimmed = raw.trim();
    let vin = trimmed.to_uppercase();

    let length = vin.chars().count();
    if length != 17 {
        return Err(invalid_payload(format!("vin {} has {length} characters: {VIN_RULE}", quote(trimmed))));
    }

    for (index, character) in vin.chars().enumerate() {
        let position = index + 1;
        let fix = match character {
            '0'..='9' | 'A'..='H' | 'J'..='N' | 'P' | 'R'..='Z' => continue,
            'I' => format!("{VIN_RULE}, so I is probably the digit 1"),
            'O' | 'Q' => format!("{VIN_RULE}, so {character} is probably the digit 0"),
            'А'..='я' | 'Ё' | 'ё' => "write the VIN in Latin letters".to_string(),
            _ => VIN_RULE.to_string(),
        };
        return Err(invalid_payload(format!(
            "vin {} contains {character:?} at position {position}: {fix}",
            quote(trimmed)
        )));
    }

    Ok(vin)
}

/// Normalizes and validates a Russian plate number.
///
/// Normalization trims, uppercases, removes whitespace and converts the Latin look-alikes
/// `A B E K M H O P C T Y X` to their Cyrillic letters. Errors are permanent, with code
/// [`INVALID_PAYLOAD`], and name the first character that plates do not use or the format.
pub fn parse_plate(raw: &str) -> Result<String, ConnectorError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(invalid_payload(format!("plate is empty: {PLATE_RULE}")));
    }

    let mut plate = String::with_capacity(trimmed.len());
    for character in trimmed.chars().filter(|character| !character.is_whitespace()) {
        let upper = character.to_uppercase().next().unwrap_or(character);
        let cyrillic =
            LATIN_LOOK_ALIKES.iter().position(|latin| *latin == upper).map_or(upper, |index| PLATE_LETTERS[index]);

        let allowed = cyrillic.is_ascii_digit() || PLATE_LETTERS.contains(&cyrillic);
        if !allowed {
            let fix = if cyrillic.is_alphabetic() {
                "Russian plates use only the letters А, В, Е, К, М, Н, О, Р, С, Т, У, Х"
            } else {
                "a plate contains only letters and digits"
            };
            return Err(invalid_payload(format!("plate {} contains {character:?}: {fix}", quote(trimmed))));
        }
        plate.push(cyrillic);
    }

    if !matches_plate_format(&plate) {
        return Err(invalid_payload(format!("plate {} does not match the format: {PLATE_RULE}", quote(trimmed))));
    }

    Ok(plate)
}

/// Reports whether `plate`, already limited to plate letters and digits, has the form letter,
/// 3 digits, 2 letters and a region of 2 or 3 digits.
fn matches_plate_format(plate: &str) -> bool {
    let characters: Vec<char> = plate.chars().collect();
    if !(8..=9).contains(&characters.len()) {
        return false;
    }

    let is_letter = |character: &char| PLATE_LETTERS.contains(character);
    let is_digit = |character: &char| character.is_ascii_digit();

    is_letter(&characters[0])
        && characters[1..4].iter().all(is_digit)
        && characters[4..6].iter().all(is_letter)
        && characters[6..].iter().all(is_digit)
}

/// Returns the value of member `name` as a string, or an error naming the JSON type found.
fn string_member<'a>(name: &str, value: &'a Value) -> Result<&'a str, ConnectorError> {
    value.as_str().ok_or_else(|| {
        invalid_payload(format!(
            "{name} is a JSON {}: send it as a string, such as {{\"{name}\": \"...\"}}",
            json_type_name(value)
        ))
    })
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Quotes a client value for a message, cut to [`QUOTED_VALUE_MAX_CHARS`] characters.
fn quote(value: &str) -> String {
    if value.chars().count() <= QUOTED_VALUE_MAX_CHARS {
        return format!("{value:?}");
    }
    let head: String = value.chars().take(QUOTED_VALUE_MAX_CHARS).collect();
    format!("{head:?}...")
}

fn invalid_payload(message: impl Into<String>) -> ConnectorError {
    ConnectorError::permanent(message).with_code(INVALID_PAYLOAD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uig_connector_api::ErrorKind;

    fn assert_invalid(result: Result<impl fmt::Debug, ConnectorError>, expected_fragment: &str) {
        let error = result.unwrap_err();
        assert_eq!(error.kind, ErrorKind::PERMANENT);
        assert_eq!(error.code.as_str(), INVALID_PAYLOAD);
        assert!(error.message.contains(expected_fragment), "message: {}", error.message);
    }

    #[test]
    fn vin_valid() {
        assert_eq!(parse_vin("XTA21099043765432").unwrap(), "XTA21099043765432");
    }

    #[test]
    fn vin_lowercase_and_spaces_normalized() {
        assert_eq!(parse_vin("  xta21099043765432 \n").unwrap(), "XTA21099043765432");
    }

    #[test]
    fn vin_of_16_characters_rejected() {
        let error = parse_vin("XTA2109904376543").unwrap_err();

        assert_eq!(error.kind, ErrorKind::PERMANENT);
        assert_eq!(error.code.as_str(), INVALID_PAYLOAD);
        assert_eq!(
            error.message.as_str(),
            "vin \"XTA2109904376543\" has 16 characters: a VIN has 17 letters and digits without I, O and Q"
        );
    }

    #[test]
    fn vin_of_18_characters_rejected() {
        assert_invalid(parse_vin("XTA210990437654321"), "has 18 characters");
    }

    #[test]
    fn vin_with_i_o_q_rejected() {
        assert_invalid(parse_vin("ITA21099043765432"), "contains 'I' at position 1");
        assert_invalid(parse_vin("XTA21099O43765432"), "contains 'O' at position 9");
        assert_invalid(parse_vin("XTA2109904376543Q"), "contains 'Q' at position 17");
        assert_invalid(parse_vin("XTA21099O43765432"), "probably the digit 0");
        assert_invalid(parse_vin("xta21099043765432i"), "has 18 characters");
    }

    #[test]
    fn vin_with_cyrillic_letter_rejected() {
        // The first letter is the Cyrillic Х, which looks like the Latin X.
        assert_invalid(parse_vin("ХTA21099043765432"), "write the VIN in Latin letters");
    }

    #[test]
    fn vin_with_punctuation_rejected() {
        assert_invalid(parse_vin("XTA-1099043765432"), "contains '-' at position 4");
    }

    #[test]
    fn plate_valid_with_two_digit_region() {
        assert_eq!(parse_plate("А123ВС77").unwrap(), "А123ВС77");
    }

    #[test]
    fn plate_valid_with_three_digit_region() {
        assert_eq!(parse_plate("Х001ХХ777").unwrap(), "Х001ХХ777");
    }

    #[test]
    fn plate_latin_look_alikes_converted() {
        let plate = parse_plate("A123BC77").unwrap();

        assert_eq!(plate, "А123ВС77");
        assert!(plate.chars().filter(|c| c.is_alphabetic()).all(|c| PLATE_LETTERS.contains(&c)));
        assert_eq!(parse_plate("K777EH199").unwrap(), "К777ЕН199");
        assert_eq!(parse_plate("M001OP50").unwrap(), "М001ОР50");
        assert_eq!(parse_plate("T456YX102").unwrap(), "Т456УХ102");
    }

    #[test]
    fn plate_lowercase_and_spaces_normalized() {
        assert_eq!(parse_plate(" а 123 вс 77 ").unwrap(), "А123ВС77");
        assert_eq!(parse_plate("a123bc 777").unwrap(), "А123ВС777");
    }

    #[test]
    fn plate_with_foreign_letter_rejected() {
        assert_invalid(parse_plate("Д123ВС77"), "contains 'Д'");
        assert_invalid(parse_plate("D123BC77"), "only the letters А, В, Е");
    }

    #[test]
    fn plate_with_punctuation_rejected() {
        assert_invalid(parse_plate("А123-ВС77"), "contains only letters and digits");
    }

    #[test]
    fn plate_with_wrong_format_rejected() {
        for plate in ["А12ВС77", "А123ВС7", "А123ВС7777", "1234ВС77", "АА23ВС77", "А123В177"] {
            assert_invalid(parse_plate(plate), "does not match the format");
        }
    }

    #[test]
    fn plate_empty_rejected() {
        assert_invalid(parse_plate("   "), "plate is empty");
    }

    #[test]
    fn payload_with_vin_and_extra_members() {
        let lookup =
            Lookup::from_payload(r#"{"vin": "xta21099043765432", "fio": "Иванов И. И.", "phone": "+79990000000"}"#)
                .unwrap();

        assert_eq!(lookup, Lookup::Vin("XTA21099043765432".to_string()));
        assert_eq!(lookup.cache_key(), "vin:XTA21099043765432");
    }

    #[test]
    fn payload_with_plate() {
        let lookup = Lookup::from_payload(r#"{"plate": "a123bc77"}"#).unwrap();

        assert_eq!(lookup, Lookup::Plate("А123ВС77".to_string()));
        assert_eq!(lookup.cache_key(), "plate:А123ВС77");
        assert_eq!(lookup.to_string(), "plate \"А123ВС77\"");
    }

    #[test]
    fn payload_null_member_counts_as_absent() {
        let lookup = Lookup::from_payload(r#"{"vin": null, "plate": "А123ВС77"}"#).unwrap();

        assert_eq!(lookup.parameter(), "plate");
    }

    #[test]
    fn payload_with_both_keys_rejected() {
        assert_invalid(
            Lookup::from_payload(r#"{"vin": "XTA21099043765432", "plate": "А123ВС77"}"#),
            "both \"vin\" and \"plate\"",
        );
    }

    #[test]
    fn payload_with_neither_key_rejected() {
        assert_invalid(Lookup::from_payload(r#"{"fio": "Иванов"}"#), "neither \"vin\" nor \"plate\"");
    }

    #[test]
    fn payload_not_json_or_not_object_rejected() {
        assert_invalid(Lookup::from_payload("vin=XTA21099043765432"), "not valid JSON");
        assert_invalid(Lookup::from_payload(r#"["XTA21099043765432"]"#), "JSON array, not an object");
    }

    #[test]
    fn payload_non_string_value_rejected() {
        assert_invalid(Lookup::from_payload(r#"{"vin": 12345}"#), "vin is a JSON number");
    }

    #[test]
    fn long_value_cut_in_message() {
        let error = parse_vin(&"X".repeat(1000)).unwrap_err();

        assert!(error.message.len() < 200, "message: {}", error.message);
        assert!(error.message.contains("has 1000 characters"), "message: {}", error.message);
    }
}
