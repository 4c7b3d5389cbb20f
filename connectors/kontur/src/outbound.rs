//! Parsing and validation of the `message` payload that `send` delivers to Kontur.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Value};
use uig_connector_api::ConnectorError;

/// Error code of every payload the connector rejects before calling Kontur.
pub const INVALID_PAYLOAD: &str = "invalid_payload";

/// Members that a `message` payload may contain.
const KNOWN_MEMBERS: [&str; 3] = ["mediId", "message", "document"];

/// Example quoted in payload errors.
const EXAMPLE: &str = r#"{"mediId": "6f1c0b7e-3d2a-4c59-9a41-2b8e5d7f0a13", "document": "<text>"}"#;

/// One outbound message, valid for `POST /V2/messages`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundMessage {
    /// The sender's box, a GUID in its canonical hyphenated form.
    pub medi_id: String,
    /// The message in standard base64 with padding and without line breaks.
    pub message_base64: String,
}

impl OutboundMessage {
    /// Parses the client's JSON payload: `mediId` and exactly one of `message` (base64) and
    /// `document` (UTF-8 text that the connector base64-encodes).
    ///
    /// Whitespace inside `message`, such as MIME line breaks, is removed. Errors are permanent,
    /// with code [`INVALID_PAYLOAD`] and a message naming the field and the fix.
    pub fn from_payload(payload: &str) -> Result<OutboundMessage, ConnectorError> {
        let document: Value = serde_json::from_str(payload).map_err(|error| {
            invalid_payload(format!("payload is not valid JSON ({error}): send an object such as {EXAMPLE}"))
        })?;
        let Value::Object(members) = document else {
            return Err(invalid_payload(format!("payload is not a JSON object: send an object such as {EXAMPLE}")));
        };

        if let Some(unknown) = members.keys().find(|name| !KNOWN_MEMBERS.contains(&name.as_str())) {
            return Err(invalid_payload(format!(
                "payload has unknown member {unknown:?}: the members are mediId, and message or document"
            )));
        }

        let medi_id = parse_medi_id(&members)?;
        let message_base64 = match (present(&members, "message"), present(&members, "document")) {
            (Some(message), None) => parse_base64(message)?,
            (None, Some(document)) => encode_document(document)?,
            (Some(_), Some(_)) => return Err(invalid_payload(
                "payload has both \"message\" and \"document\": send the base64 message or the text document, not both",
            )),
            (None, None) => {
                return Err(invalid_payload(format!(
                    "payload has neither \"message\" nor \"document\": send one of them, such as {EXAMPLE}"
                )))
            }
        };

        Ok(OutboundMessage { medi_id, message_base64 })
    }
}

/// Returns member `name` unless it is missing or `null`.
fn present<'a>(members: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    members.get(name).filter(|value| !value.is_null())
}

fn parse_medi_id(members: &Map<String, Value>) -> Result<String, ConnectorError> {
    let Some(value) = present(members, "mediId") else {
        return Err(invalid_payload(format!("payload has no \"mediId\": name the sender's box, such as {EXAMPLE}")));
    };
    let Some(text) = value.as_str() else {
        return Err(invalid_payload("payload.mediId is not a string: send the box GUID as a JSON string"));
    };

    canonical_medi_id(text).ok_or_else(|| {
        invalid_payload(format!(
            "payload.mediId {:?} is not a GUID: a box id looks like \"6f1c0b7e-3d2a-4c59-9a41-2b8e5d7f0a13\"",
            quote_limit(text)
        ))
    })
}

/// Returns the canonical lowercase hyphenated form of a box id, or `None` unless it is a GUID.
pub fn canonical_medi_id(text: &str) -> Option<String> {
    let guid = uuid::Uuid::parse_str(text.trim()).ok()?;
    Some(guid.hyphenated().to_string())
}

fn parse_base64(value: &Value) -> Result<String, ConnectorError> {
    let Some(text) = value.as_str() else {
        return Err(invalid_payload("payload.message is not a string: send the message as a base64 JSON string"));
    };
    let compact: String = text.chars().filter(|character| !character.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(invalid_payload("payload.message is empty: send the message bytes in base64"));
    }

    if let Err(error) = STANDARD.decode(&compact) {
        return Err(invalid_payload(format!(
            "payload.message is not valid base64 ({error}): use the standard alphabet with = padding (RFC 4648)"
        )));
    }
    Ok(compact)
}

fn encode_document(value: &Value) -> Result<String, ConnectorError> {
    let Some(text) = value.as_str() else {
        return Err(invalid_payload("payload.document is not a string: send the document as JSON text"));
    };
    if text.trim().is_empty() {
        return Err(invalid_payload("payload.document is empty: send the document text"));
    }
    Ok(STANDARD.encode(text.as_bytes()))
}

/// Cuts a client value to 60 characters for quoting in an error message.
fn quote_limit(text: &str) -> String {
    text.chars().take(60).collect()
}

fn invalid_payload(message: impl Into<String>) -> ConnectorError {
    ConnectorError::permanent(message).with_code(INVALID_PAYLOAD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uig_connector_api::ErrorKind;

    const BOX: &str = "6f1c0b7e-3d2a-4c59-9a41-2b8e5d7f0a13";

    #[test]
    fn document_text_encoded_as_utf8_base64() {
        let payload = format!(r#"{{"mediId": "{BOX}", "document": "Счёт №1"}}"#);

        let message = OutboundMessage::from_payload(&payload).unwrap();

        assert_eq!(message.medi_id, BOX);
        assert_eq!(STANDARD.decode(&message.message_base64).unwrap(), "Счёт №1".as_bytes());
    }

    #[test]
    fn base64_message_kept_without_line_breaks() {
        let payload = format!(r#"{{"mediId": "{}", "message": "PGRv\r\nYz48L2RvYz4=\n"}}"#, BOX.to_uppercase());

        let message = OutboundMessage::from_payload(&payload).unwrap();

        assert_eq!(message.medi_id, BOX);
        assert_eq!(message.message_base64, "PGRvYz48L2RvYz4=");
    }

    #[test]
    fn null_member_counts_as_absent() {
        let payload = format!(r#"{{"mediId": "{BOX}", "message": null, "document": "text"}}"#);

        assert!(OutboundMessage::from_payload(&payload).is_ok());
    }

    #[test]
    fn invalid_payloads_name_the_field() {
        let cases = [
            ("not json".to_string(), "payload is not valid JSON"),
            ("[1, 2]".to_string(), "payload is not a JSON object"),
            (r#"{"document": "text"}"#.to_string(), "payload has no \"mediId\""),
            (r#"{"mediId": 42, "document": "text"}"#.to_string(), "payload.mediId is not a string"),
            (r#"{"mediId": "box-1", "document": "text"}"#.to_string(), "payload.mediId \"box-1\" is not a GUID"),
            (format!(r#"{{"mediId": "{BOX}"}}"#), "neither \"message\" nor \"document\""),
            (
                format!(r#"{{"mediId": "{BOX}", "message": "AA==", "document": "x"}}"#),
                "both \"message\" and \"document\"",
            ),
            (format!(r#"{{"mediId": "{BOX}", "message": "not base64!"}}"#), "payload.message is not valid base64"),
            (format!(r#"{{"mediId": "{BOX}", "message": "AAA"}}"#), "payload.message is not valid base64"),
            (format!(r#"{{"mediId": "{BOX}", "message": " \n "}}"#), "payload.message is empty"),
            (format!(r#"{{"mediId": "{BOX}", "message": 12}}"#), "payload.message is not a string"),
            (format!(r#"{{"mediId": "{BOX}", "document": "  "}}"#), "payload.document is empty"),
            (format!(r#"{{"mediId": "{BOX}", "document": {{"a": 1}}}}"#), "payload.document is not a string"),
            (format!(r#"{{"mediId": "{BOX}", "documnet": "x"}}"#), "unknown member \"documnet\""),
        ];
        for (payload, expected) in cases {
            let error = OutboundMessage::from_payload(&payload).unwrap_err();

            assert_eq!(error.kind, ErrorKind::PERMANENT, "{payload}");
            assert_eq!(error.code.as_str(), INVALID_PAYLOAD, "{payload}");
            assert!(error.message.contains(expected), "{payload}: {}", error.message);
        }
    }

    #[test]
    fn canonical_medi_id_normalizes_guid() {
        assert_eq!(canonical_medi_id(" 6F1C0B7E-3D2A-4C59-9A41-2B8E5D7F0A13 ").as_deref(), Some(BOX));
        assert_eq!(canonical_medi_id("6f1c0b7e3d2a4c599a412b8e5d7f0a13").as_deref(), Some(BOX));
        assert_eq!(canonical_medi_id("../V2/parties"), None);
    }
}
