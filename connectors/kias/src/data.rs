//! The KIAS data documents inside `ExecProc`: the `pData` request and the `data` reply, and the
//! mapping of KIAS error codes to connector errors.

use std::io;

use quick_xml::events::BytesText;
use quick_xml::Writer;
use uig_connector_api::ConnectorError;

use crate::params::{Param, ParamValue, SID_PARAM};
use crate::xml::Element;

/// Error code of an expired or unknown session.
pub const SESSION_EXPIRED: &str = "001";

/// Error code of a wrong user name or password in `Auth`.
pub const INVALID_CREDENTIALS: &str = "002";

/// Error code of an unknown procedure or one the user may not call.
pub const UNKNOWN_PROCEDURE: &str = "003";

/// Maximum number of characters of a KIAS error text copied into a connector error.
const TEXT_MAX_CHARS: usize = 300;

/// Writes the `pData` document of one call:
/// `<data><request><reqName/><AppId/><params><Sid/>…</params></request></data>`.
///
/// `sid` is `None` only for `Auth`. Text is escaped by quick-xml, so values may contain `<`, `&`
/// and any Unicode character that XML allows.
pub fn request_document(procedure: &str, app_id: u64, sid: Option<&str>, params: &[Param]) -> io::Result<String> {
    let mut writer = Writer::new(Vec::new());
    writer.create_element("data").write_inner_content(|writer| {
        writer.create_element("request").write_inner_content(|writer| {
            writer.create_element("reqName").write_text_content(BytesText::new(procedure))?;
            writer.create_element("AppId").write_text_content(BytesText::new(&app_id.to_string()))?;
            writer.create_element("params").write_inner_content(|writer| {
                if let Some(sid) = sid {
                    writer.create_element(SID_PARAM).write_text_content(BytesText::new(sid))?;
                }
                write_params(writer, params)
            })?;
            Ok(())
        })?;
        Ok(())
    })?;

    String::from_utf8(writer.into_inner()).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

fn write_params(writer: &mut Writer<Vec<u8>>, params: &[Param]) -> io::Result<()> {
    for param in params {
        write_value(writer, &param.name, &param.value)?;
    }
    Ok(())
}

fn write_value(writer: &mut Writer<Vec<u8>>, name: &str, value: &ParamValue) -> io::Result<()> {
    let element = writer.create_element(name);
    match value {
        ParamValue::Text(text) => element.write_text_content(BytesText::new(text))?,
        ParamValue::Null => element.write_empty()?,
        ParamValue::Group(params) => element.write_inner_content(|writer| write_params(writer, params))?,
        ParamValue::Rows(rows) => element.write_inner_content(|writer| {
            writer.create_element("ROWSET").write_inner_content(|writer| {
                for row in rows {
                    write_value(writer, "row", row)?;
                }
                Ok(())
            })?;
            Ok(())
        })?,
    };
    Ok(())
}

/// Content of a `data` reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataReply {
    /// The `result` element of a successful call.
    Result(Element),
    /// The `error` element of a failed call.
    Error(KiasError),
}

/// An error that KIAS reported inside `data`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KiasError {
    /// KIAS error code, such as `001`, or empty when KIAS sent none.
    pub code: String,
    /// KIAS error text, usually in Russian.
    pub text: String,
}

impl KiasError {
    /// Checks for error `001`, an expired or unknown session.
    pub fn is_session_expired(&self) -> bool {
        self.code == SESSION_EXPIRED
    }

    /// Checks for the `9xx` codes of temporary KIAS failures: database unavailable, lock timeout.
    pub fn is_system_error(&self) -> bool {
        let code = self.code.as_str();
        code.len() == 3 && code.starts_with('9') && code.bytes().all(|byte| byte.is_ascii_digit())
    }

    /// Returns the error text, trimmed and cut to the length that error messages carry.
    pub fn short_text(&self) -> String {
        self.text.trim().chars().take(TEXT_MAX_CHARS).collect()
    }

    /// Maps the error to a connector error for a call of `procedure`, by the code table in
    /// `docs/kias-api.md`: `002` is an auth error, `003` a config error, `9xx` transient, and every
    /// other code a permanent business error.
    pub fn into_connector_error(self, procedure: &str) -> ConnectorError {
        let text = self.short_text();
        let detail = if self.code.is_empty() {
            format!("KIAS procedure {procedure} failed without an error code: {text}")
        } else {
            format!("KIAS procedure {procedure} failed with error {}: {text}", self.code)
        };

        let error = match self.code.as_str() {
            SESSION_EXPIRED => ConnectorError::auth(format!(
                "{detail} (the session expired again right after authentication, so KIAS does not keep sessions)"
            )),
            INVALID_CREDENTIALS => {
                ConnectorError::auth(format!("{detail} (check settings.user and settings.password)"))
            }
            UNKNOWN_PROCEDURE => ConnectorError::config(format!(
                "{detail} (check settings.procedures and the rights of settings.user in KIAS)"
            )),
            _ if self.is_system_error() => ConnectorError::transient(detail),
            _ => ConnectorError::permanent(detail),
        };
        error.with_code(self.code)
    }
}

/// Reads a `data` document: its `error` child or its `result` child.
///
/// Errors describe a document of another shape.
pub fn read_data(root: &Element) -> Result<DataReply, String> {
    if !root.is("data") {
        return Err(format!("the root element is <{}>, not <data>", root.name));
    }
    if let Some(error) = root.child("error") {
        let code = error.child_text("code").unwrap_or_default().to_string();
        let text = error.child_text("text").unwrap_or_else(|| error.text.trim()).to_string();
        return Ok(DataReply::Error(KiasError { code, text }));
    }
    match root.child("result") {
        Some(result) => Ok(DataReply::Result(result.clone())),
        None => Err("<data> has neither <result> nor <error>".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uig_connector_api::ErrorKind;

    #[test]
    fn document_layout() {
        let params = vec![Param::text("SERIES", "7000"), Param { name: "NOTE".to_string(), value: ParamValue::Null }];

        let document = request_document("User_A7Create", 1001, Some("SID-1"), &params).unwrap();

        assert_eq!(
            document,
            "<data><request><reqName>User_A7Create</reqName><AppId>1001</AppId>\
             <params><Sid>SID-1</Sid><SERIES>7000</SERIES><NOTE/></params></request></data>"
        );
    }

    #[test]
    fn auth_document_has_no_sid() {
        let params = vec![Param::text("Name", "demo"), Param::text("Pwd", "ab12")];

        let document = request_document("Auth", 7, None, &params).unwrap();

        assert_eq!(
            document,
            "<data><request><reqName>Auth</reqName><AppId>7</AppId>\
             <params><Name>demo</Name><Pwd>ab12</Pwd></params></request></data>"
        );
    }

    #[test]
    fn text_escaped_and_cyrillic_kept() {
        let params = vec![Param::text("PAYER", "ООО «Ромашка» <&> \"кавычки\" 'апостроф'")];

        let document = request_document("User_NotifyEvent", 1, Some("s<&>"), &params).unwrap();

        assert!(document.contains("<Sid>s&lt;&amp;&gt;</Sid>"), "{document}");
        assert!(
            document.contains("<PAYER>ООО «Ромашка» &lt;&amp;&gt; &quot;кавычки&quot; &apos;апостроф&apos;</PAYER>"),
            "{document}"
        );
        let parsed = Element::parse_document(&document).unwrap();
        let params = parsed.child("request").unwrap().child("params").unwrap();
        assert_eq!(params.child("PAYER").unwrap().text, "ООО «Ромашка» <&> \"кавычки\" 'апостроф'");
        assert_eq!(params.child("Sid").unwrap().text, "s<&>");
    }

    #[test]
    fn nested_params_and_rows_written() {
        let params = vec![
            Param { name: "VEHICLE".to_string(), value: ParamValue::Group(vec![Param::text("VIN", "X")]) },
            Param {
                name: "DRIVERS".to_string(),
                value: ParamValue::Rows(vec![
                    ParamValue::Group(vec![Param::text("NAME", "Петров")]),
                    ParamValue::Text("b".to_string()),
                    ParamValue::Null,
                ]),
            },
        ];

        let document = request_document("P", 1, Some("s"), &params).unwrap();

        assert!(
            document.contains(
                "<VEHICLE><VIN>X</VIN></VEHICLE><DRIVERS><ROWSET><row><NAME>Петров</NAME></row><row>b</row><row/>\
                 </ROWSET></DRIVERS>"
            ),
            "{document}"
        );
    }

    #[test]
    fn result_read() {
        let root = Element::parse_document("<data><result><Sid>abc</Sid></result></data>").unwrap();

        let DataReply::Result(result) = read_data(&root).unwrap() else { panic!("no result") };

        assert_eq!(result.child_text("Sid"), Some("abc"));
    }

    #[test]
    fn error_read() {
        let root =
            Element::parse_document("<data><error><code>001</code><text>Сессия истекла</text></error></data>").unwrap();

        let reply = read_data(&root).unwrap();

        let expected = KiasError { code: "001".to_string(), text: "Сессия истекла".to_string() };
        assert_eq!(reply, DataReply::Error(expected.clone()));
        assert!(expected.is_session_expired());
    }

    #[test]
    fn error_without_children_read() {
        let root = Element::parse_document("<data><error> Ошибка БД </error></data>").unwrap();

        assert_eq!(
            read_data(&root).unwrap(),
            DataReply::Error(KiasError { code: String::new(), text: "Ошибка БД".to_string() })
        );
    }

    #[test]
    fn other_shapes_rejected() {
        for (xml, expected) in [
            ("<answer><result/></answer>", "root element is <answer>"),
            ("<data><status>ok</status></data>", "neither <result> nor <error>"),
        ] {
            let root = Element::parse_document(xml).unwrap();

            let error = read_data(&root).unwrap_err();

            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn error_codes_mapped() {
        let cases = [
            ("001", ErrorKind::AUTH),
            ("002", ErrorKind::AUTH),
            ("003", ErrorKind::CONFIG),
            ("101", ErrorKind::PERMANENT),
            ("900", ErrorKind::TRANSIENT),
            ("901", ErrorKind::TRANSIENT),
            ("9", ErrorKind::PERMANENT),
            ("9000", ErrorKind::PERMANENT),
            ("ORA-01400", ErrorKind::PERMANENT),
            ("", ErrorKind::PERMANENT),
        ];

        for (code, kind) in cases {
            let error = KiasError { code: code.to_string(), text: "текст".to_string() }.into_connector_error("User_X");

            assert_eq!(error.kind, kind, "{code}");
            assert_eq!(error.code.as_str(), code);
            assert!(error.message.contains("User_X"), "{}", error.message);
            assert!(error.message.contains("текст"), "{}", error.message);
        }
    }

    #[test]
    fn error_messages_name_the_fix() {
        let auth =
            KiasError { code: "002".to_string(), text: "Неверный пароль".to_string() }.into_connector_error("Auth");
        let config =
            KiasError { code: "003".to_string(), text: "Нет процедуры".to_string() }.into_connector_error("User_Y");

        assert!(auth.message.contains("settings.password"), "{}", auth.message);
        assert!(config.message.contains("settings.procedures"), "{}", config.message);
    }

    #[test]
    fn long_error_text_truncated() {
        let error = KiasError { code: "100".to_string(), text: "я".repeat(1000) }.into_connector_error("P");

        assert_eq!(error.message.chars().filter(|c| *c == 'я').count(), 300);
    }
}
