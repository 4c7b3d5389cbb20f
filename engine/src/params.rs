//! Request parameters decoded from the query string, a form body or a JSON body, in arrival order.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A request parameter as a `(name, value)` pair after transport decoding.
pub type Param = (String, String);

/// An error in the transport encoding of request parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A parameter name occurs more than once in the query, in the body, or in both.
    #[error("duplicate parameter \"{name}\": send each parameter once, either in the query or in the body")]
    Duplicate { name: String },

    /// A percent-decoded name or value is not valid UTF-8. `name` is the parameter name, with
    /// invalid bytes replaced by U+FFFD when the name itself is invalid.
    #[error("invalid UTF-8 in parameter \"{name}\" after percent-decoding: encode text as UTF-8 before percent-encoding it")]
    InvalidUtf8 { name: String },

    /// The JSON body does not parse. `detail` is the serde_json message with line and column.
    #[error("invalid JSON body: {detail}")]
    InvalidJson { detail: String },

    /// The JSON body parses but is not an object.
    #[error(
        "invalid JSON body: expected an object of parameters such as {{\"recipient\": \"avinfo\"}}"
    )]
    NotAnObject,
}

impl ParamError {
    /// Returns the stable machine-readable error code for API responses.
    pub fn code(&self) -> &'static str {
        match self {
            ParamError::Duplicate { .. } => "duplicate_parameter",
            ParamError::InvalidUtf8 { .. } => "invalid_encoding",
            ParamError::InvalidJson { .. } | ParamError::NotAnObject => "invalid_json_body",
        }
    }
}

/// Request parameters from the query and the body, with unique names, in arrival order: query
/// parameters first, then body parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    entries: Vec<Param>,
}

impl Params {
    /// Returns the value of the parameter `name`, or `None` when the request lacks it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(entry_name, _)| entry_name == name)
            .map(|(_, value)| value.as_str())
    }

    /// Returns all parameters in arrival order.
    pub fn entries(&self) -> &[Param] {
        &self.entries
    }

    /// Returns the number of parameters.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns true when the request has no parameters.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Decodes a URL query string (without the leading `?`) as `application/x-www-form-urlencoded`.
///
/// `+` decodes to a space and `%2B` to a plus sign. Empty `&`-separated segments are skipped and
/// a segment without `=` has an empty value. Duplicate names are kept, and `merge` rejects them.
///
/// # Errors
///
/// `ParamError::InvalidUtf8` when a decoded name or value is not valid UTF-8.
pub fn from_query(query: &str) -> Result<Vec<Param>, ParamError> {
    from_form(query.as_bytes())
}

/// Decodes an `application/x-www-form-urlencoded` body by the same rules as `from_query`.
///
/// # Errors
///
/// `ParamError::InvalidUtf8` when a decoded name or value is not valid UTF-8.
pub fn from_form(body: &[u8]) -> Result<Vec<Param>, ParamError> {
    let segments = body
        .split(|&byte| byte == b'&')
        .filter(|segment| !segment.is_empty());

    let mut params = Vec::new();
    for segment in segments {
        let mut raw_parts = segment.splitn(2, |&byte| byte == b'=');
        let name = decode_component(raw_parts.next().unwrap_or_default());
        let value = decode_component(raw_parts.next().unwrap_or_default());
        match (name, value) {
            (Ok(name), Ok(value)) => params.push((name, value)),
            (name, _) => {
                let name = name.unwrap_or_else(|bytes| String::from_utf8_lossy(&bytes).into_owned());
                return Err(ParamError::InvalidUtf8 { name });
            }
        }
    }
    Ok(params)
}

/// Decodes one name or value of a form: `+` becomes a space, then percent escapes are decoded.
/// Returns the decoded bytes when they are not UTF-8. A lossy decoder would turn them into
/// U+FFFD, which could not be distinguished from a U+FFFD that the client sent.
fn decode_component(raw: &[u8]) -> Result<String, Vec<u8>> {
    let spaced: Cow<[u8]> = if raw.contains(&b'+') {
        Cow::Owned(raw.iter().map(|&byte| if byte == b'+' { b' ' } else { byte }).collect())
    } else {
        Cow::Borrowed(raw)
    };
    let decoded: Cow<[u8]> = percent_encoding::percent_decode(&spaced).into();
    String::from_utf8(decoded.into_owned()).map_err(|error| error.into_bytes())
}

/// Decodes a JSON body, which must be an object, into parameters in member order.
///
/// A string member's value is the unescaped string. Any other member's value is its JSON text
/// exactly as sent, so key order, spacing, escapes such as `\/` and `\u0418`, numbers beyond
/// the f64 range of exact integers and decimals such as `1500.10` survive unchanged. Duplicate
/// member names are kept, and `merge` rejects them.
///
/// # Errors
///
/// `ParamError::InvalidJson` when the body does not parse and `ParamError::NotAnObject` when
/// it parses but is not an object.
pub fn from_json(body: &[u8]) -> Result<Vec<Param>, ParamError> {
    let first_byte = body
        .iter()
        .find(|byte| !matches!(byte, b' ' | b'\t' | b'\r' | b'\n'));

    if first_byte != Some(&b'{') {
        // Distinguish well-formed JSON that is not an object from broken JSON.
        return match serde_json::from_slice::<IgnoredAny>(body) {
            Ok(_) => Err(ParamError::NotAnObject),
            Err(error) => Err(invalid_json(error)),
        };
    }

    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let members = deserializer
        .deserialize_map(MemberVisitor)
        .map_err(invalid_json)?;
    deserializer.end().map_err(invalid_json)?;
    Ok(members)
}

fn invalid_json(error: serde_json::Error) -> ParamError {
    ParamError::InvalidJson {
        detail: error.to_string(),
    }
}

/// Collects the members of a JSON object in order, keeping non-string values as raw JSON text.
/// A map type would drop duplicate names and reformat values, so members are visited one by one.
struct MemberVisitor;

impl<'de> Visitor<'de> for MemberVisitor {
    type Value = Vec<Param>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let raw: &'de RawValue = map.next_value()?;
            let text = raw.get();

            let value = if text.starts_with('"') {
                serde_json::from_str::<String>(text).map_err(de::Error::custom)?
            } else {
                text.to_owned()
            };
            members.push((name, value));
        }
        Ok(members)
    }
}

/// Joins query and body parameters into `Params`, query parameters first.
///
/// # Errors
///
/// `ParamError::Duplicate` naming the first name that occurs twice, whether within the query,
/// within the body, or in both.
pub fn merge(query: Vec<Param>, body: Vec<Param>) -> Result<Params, ParamError> {
    let mut entries: Vec<Param> = Vec::with_capacity(query.len() + body.len());
    // A set of the names seen keeps the duplicate check linear in the number of parameters, which
    // matters because it runs before authentication on bodies up to max_body_bytes.
    let mut names = std::collections::HashSet::with_capacity(entries.capacity());
    for (name, value) in query.into_iter().chain(body) {
        if !names.insert(name.clone()) {
            return Err(ParamError::Duplicate { name });
        }
        entries.push((name, value));
    }
    Ok(Params { entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<Param> {
        items
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn query_plus_is_space() {
        let params = from_query("phone=%2B7+495&note=a%20b").unwrap();
        assert_eq!(params, pairs(&[("phone", "+7 495"), ("note", "a b")]));
    }

    #[test]
    fn query_keeps_arrival_order() {
        let params = from_query("z=1&a=2&m=3").unwrap();
        assert_eq!(params, pairs(&[("z", "1"), ("a", "2"), ("m", "3")]));
    }

    #[test]
    fn query_empty_segments_skipped() {
        let params = from_query("&a=1&&flag&b=").unwrap();
        assert_eq!(params, pairs(&[("a", "1"), ("flag", ""), ("b", "")]));
        assert_eq!(from_query("").unwrap(), Vec::<Param>::new());
    }

    #[test]
    fn query_value_may_contain_equals() {
        let params = from_query("filter=a=b").unwrap();
        assert_eq!(params, pairs(&[("filter", "a=b")]));
    }

    #[test]
    fn form_decodes_cyrillic() {
        let body = "fio=%D0%98%D0%B2%D0%B0%D0%BD%D0%BE%D0%B2+%D0%9F.";
        let params = from_form(body.as_bytes()).unwrap();
        assert_eq!(params, pairs(&[("fio", "Иванов П.")]));
    }

    #[test]
    fn form_accepts_raw_utf8() {
        let params = from_form("fio=Иванов".as_bytes()).unwrap();
        assert_eq!(params, pairs(&[("fio", "Иванов")]));
    }

    #[test]
    fn form_keeps_sent_replacement_character() {
        let params = from_form(b"note=%EF%BF%BD").unwrap();
        assert_eq!(params, pairs(&[("note", "\u{FFFD}")]));
    }

    #[test]
    fn form_invalid_utf8_value() {
        let error = from_form(b"a=1&fio=%D0").unwrap_err();
        assert_eq!(error, ParamError::InvalidUtf8 { name: "fio".into() });
        assert_eq!(error.code(), "invalid_encoding");
        assert!(error.to_string().contains("\"fio\""));
    }

    #[test]
    fn form_invalid_utf8_raw_byte() {
        let error = from_form(b"fio=\xff").unwrap_err();
        assert_eq!(error, ParamError::InvalidUtf8 { name: "fio".into() });
    }

    #[test]
    fn form_invalid_utf8_name() {
        let error = from_form(b"f%FFo=1").unwrap_err();
        assert_eq!(
            error,
            ParamError::InvalidUtf8 {
                name: "f\u{FFFD}o".into()
            }
        );
    }

    #[test]
    fn json_string_unescaped() {
        let body = r#"{"fio": "\u0418\u0432\u0430\u043d\u043e\u0432 \"П.\"", "url": "a\/b"}"#;
        let params = from_json(body.as_bytes()).unwrap();
        assert_eq!(params, pairs(&[("fio", "Иванов \"П.\""), ("url", "a/b")]));
    }

    #[test]
    fn json_nested_object_raw() {
        let message = r#"{"vin":"XTA21099043765432", "fio" : "\u0418\u0432\/", "z":1,"a":[1, 2]}"#;
        let body = format!(r#"{{"recipient":"avinfo","message": {message} }}"#);
        let params = from_json(body.as_bytes()).unwrap();
        assert_eq!(
            params,
            pairs(&[("recipient", "avinfo"), ("message", message)])
        );
    }

    #[test]
    fn json_numbers_raw() {
        let body = r#"{"id": 9007199254740993, "price": 1500.10, "rate": 1e-3, "neg": -0}"#;
        let params = from_json(body.as_bytes()).unwrap();
        let expected = pairs(&[
            ("id", "9007199254740993"),
            ("price", "1500.10"),
            ("rate", "1e-3"),
            ("neg", "-0"),
        ]);
        assert_eq!(params, expected);
    }

    #[test]
    fn json_literals_raw() {
        let body = br#"{"a": true, "b": null, "c": [ ], "d": {}}"#;
        let params = from_json(body).unwrap();
        let expected = pairs(&[("a", "true"), ("b", "null"), ("c", "[ ]"), ("d", "{}")]);
        assert_eq!(params, expected);
    }

    #[test]
    fn json_keeps_member_order() {
        let params = from_json(br#"{"z": "1", "a": "2"}"#).unwrap();
        assert_eq!(params, pairs(&[("z", "1"), ("a", "2")]));
    }

    #[test]
    fn json_empty_object() {
        assert_eq!(from_json(b" {} \n").unwrap(), Vec::<Param>::new());
    }

    #[test]
    fn json_duplicate_members_kept() {
        let params = from_json(br#"{"a": "1", "a": "2"}"#).unwrap();
        assert_eq!(params, pairs(&[("a", "1"), ("a", "2")]));
    }

    #[test]
    fn json_not_an_object() {
        for body in [&b"[1, 2]"[..], b"\"text\"", b"42", b" null "] {
            let error = from_json(body).unwrap_err();
            assert_eq!(error, ParamError::NotAnObject, "body {body:?}");
            assert_eq!(error.code(), "invalid_json_body");
        }
    }

    #[test]
    fn json_syntax_error_position() {
        let error = from_json(b"{\n  \"a\": 1,\n  \"b\": }").unwrap_err();
        let ParamError::InvalidJson { detail } = &error else {
            panic!("expected InvalidJson, got {error:?}");
        };
        assert!(detail.contains("line 3 column 8"), "detail: {detail}");
        assert_eq!(error.code(), "invalid_json_body");
    }

    #[test]
    fn json_invalid_inputs() {
        let bodies: [&[u8]; 7] = [
            b"",
            b"   ",
            b"{",
            b"{\"a\": 1} x",
            b"[1,",
            b"{\"a\": \"\xff\"}",
            br#"{"a": "\ud800"}"#,
        ];
        for body in bodies {
            let error = from_json(body).unwrap_err();
            assert!(
                matches!(error, ParamError::InvalidJson { .. }),
                "body {body:?} gave {error:?}"
            );
        }
    }

    #[test]
    fn merge_query_then_body() {
        let query = pairs(&[("token", "t")]);
        let body = pairs(&[("recipient", "avinfo"), ("entity", "vehicle")]);
        let params = merge(query, body).unwrap();

        assert_eq!(params.len(), 3);
        assert!(!params.is_empty());
        assert_eq!(params.get("recipient"), Some("avinfo"));
        assert_eq!(params.get("missing"), None);
        assert_eq!(params.entries()[0], ("token".to_string(), "t".to_string()));
    }

    #[test]
    fn merge_duplicate_in_query() {
        let query = from_query("a=1&b=2&a=3").unwrap();
        let error = merge(query, Vec::new()).unwrap_err();
        assert_eq!(error, ParamError::Duplicate { name: "a".into() });
        assert_eq!(error.code(), "duplicate_parameter");
        assert!(error.to_string().contains("\"a\""));
    }

    #[test]
    fn merge_duplicate_in_body() {
        let body = from_json(br#"{"a": "1", "a": "1"}"#).unwrap();
        let error = merge(Vec::new(), body).unwrap_err();
        assert_eq!(error, ParamError::Duplicate { name: "a".into() });
    }

    #[test]
    fn merge_duplicate_across_query_and_body() {
        let query = from_query("token=t").unwrap();
        let body = from_form(b"token=t").unwrap();
        let error = merge(query, body).unwrap_err();
        assert_eq!(
            error,
            ParamError::Duplicate {
                name: "token".into()
            }
        );
    }

    #[test]
    fn merge_duplicate_after_decoding() {
        // "a+b" and "a%20b" both decode to "a b".
        let query = from_query("a+b=1&a%20b=2").unwrap();
        let error = merge(query, Vec::new()).unwrap_err();
        assert_eq!(error, ParamError::Duplicate { name: "a b".into() });
    }

    #[test]
    fn error_messages_lowercase() {
        let errors = [
            ParamError::Duplicate { name: "a".into() },
            ParamError::InvalidUtf8 { name: "a".into() },
            ParamError::InvalidJson {
                detail: "EOF while parsing".into(),
            },
            ParamError::NotAnObject,
        ];
        for error in errors {
            let message = error.to_string();
            assert!(
                message.starts_with(char::is_lowercase),
                "message: {message}"
            );
            assert!(!message.ends_with('.'), "message: {message}");
        }
    }
}
