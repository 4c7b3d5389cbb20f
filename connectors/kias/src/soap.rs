//! The SOAP layer of `kiasSvc.ExecProc`: request envelopes for SOAP 1.1 and 1.2, and the
//! classification of HTTP responses into the `data` document, a SOAP Fault or a failure.

use std::io;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;
use uig_connector_api::{ConnectorError, ErrorKind, HttpResponse};

use crate::encoding::{decode_xml_body, DecodeError};
use crate::settings::SoapVersion;
use crate::xml::Element;

/// Target namespace of the kiasSvc service.
pub const SERVICE_NAMESPACE: &str = "http://inslab.ru/";

/// SOAP action of `ExecProc`.
pub const EXEC_PROC_ACTION: &str = "http://inslab.ru/ExecProc";

/// Envelope namespace of SOAP 1.1.
pub const SOAP11_NAMESPACE: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// Envelope namespace of SOAP 1.2.
pub const SOAP12_NAMESPACE: &str = "http://www.w3.org/2003/05/soap-envelope";

/// Error code of a response body that cannot be decoded into text.
pub const INVALID_ENCODING: &str = "invalid_encoding";

/// Error code of a response that is not the documented XML.
pub const MALFORMED_RESPONSE: &str = "malformed_response";

/// Maximum number of characters of a fault string copied into a connector error.
const FAULT_MAX_CHARS: usize = 300;

/// Writes the `ExecProc` envelope carrying `pdata`, which is escaped as the text of `<pData>`.
pub fn envelope(version: SoapVersion, pdata: &str) -> io::Result<Vec<u8>> {
    let namespace = match version {
        SoapVersion::Soap11 => SOAP11_NAMESPACE,
        SoapVersion::Soap12 => SOAP12_NAMESPACE,
    };

    let mut writer = Writer::new(Vec::new());
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
    writer.create_element("soap:Envelope").with_attribute(("xmlns:soap", namespace)).write_inner_content(|writer| {
        writer.create_element("soap:Body").write_inner_content(|writer| {
            writer.create_element("ExecProc").with_attribute(("xmlns", SERVICE_NAMESPACE)).write_inner_content(
                |writer| {
                    writer.create_element("pData").write_text_content(BytesText::new(pdata))?;
                    Ok(())
                },
            )?;
            Ok(())
        })?;
        Ok(())
    })?;
    Ok(writer.into_inner())
}

/// Returns the HTTP headers of an `ExecProc` request: the content type, and for SOAP 1.1 the
/// `SOAPAction` header. SOAP 1.2 carries the action in the content type.
pub fn request_headers(version: SoapVersion) -> Vec<(&'static str, String)> {
    match version {
        SoapVersion::Soap11 => vec![
            ("Content-Type", "text/xml; charset=utf-8".to_string()),
            ("SOAPAction", format!("\"{EXEC_PROC_ACTION}\"")),
        ],
        SoapVersion::Soap12 => {
            vec![("Content-Type", format!("application/soap+xml; charset=utf-8; action=\"{EXEC_PROC_ACTION}\""))]
        }
    }
}

/// A SOAP Fault, in either version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// `faultcode` (1.1) or `Code/Value` (1.2), such as `soap:Server`.
    pub code: String,
    /// `faultstring` (1.1) or `Reason/Text` (1.2).
    pub reason: String,
}

/// Reads an `ExecProc` response and returns the root of its `data` document.
///
/// HTTP 2xx must carry the envelope. A SOAP Fault with HTTP 500 (or 2xx) is a permanent error
/// coded with the fault code, and a `VersionMismatch` fault is a config error. An undecodable body
/// is permanent ([`INVALID_ENCODING`]), because every retry would get the same bytes. A malformed
/// envelope, or a body cut off inside a character, is transient ([`MALFORMED_RESPONSE`]). Other statuses are classified by
/// [`status_error`].
pub fn read_response(response: &HttpResponse) -> Result<Element, ConnectorError> {
    let status = response.status;

    if (200..300).contains(&status) {
        let envelope = parse_envelope(response)?;
        if let Some(fault) = find_fault(&envelope) {
            return Err(fault_error(status, &fault));
        }
        return exec_result(&envelope).map_err(|reason| malformed(response, &reason));
    }

    if looks_like_xml(response) {
        if let Ok(envelope) = parse_envelope(response) {
            if let Some(fault) = find_fault(&envelope) {
                return Err(fault_error(status, &fault));
            }
        }
    }
    Err(status_error(response))
}

/// Decodes the body and parses it into the envelope element.
fn parse_envelope(response: &HttpResponse) -> Result<Element, ConnectorError> {
    let text = decode_xml_body(&response.body, response.header("content-type")).map_err(|error| match error {
        DecodeError::Truncated { .. } => malformed(response, &error.to_string()),
        _ => ConnectorError::permanent(format!(
            "the KIAS response cannot be decoded: {error} ({})",
            describe_body(response)
        ))
        .with_code(INVALID_ENCODING),
    })?;

    let root = Element::parse_document(&text)
        .map_err(|reason| malformed(response, &format!("the body is not well-formed XML: {reason}")))?;
    if !root.is("Envelope") {
        return Err(malformed(response, &format!("the root element is <{}>, not a SOAP Envelope", root.name)));
    }
    Ok(root)
}

/// Returns the Fault in the envelope's Body, if any.
pub fn find_fault(envelope: &Element) -> Option<Fault> {
    let fault = envelope.child("Body")?.child("Fault")?;

    let soap11_code = fault.child_text("faultcode");
    let soap12_code = fault.child("Code").and_then(|code| code.child_text("Value"));
    let soap11_reason = fault.child_text("faultstring");
    let soap12_reason = fault.child("Reason").and_then(|reason| reason.child_text("Text"));

    Some(Fault {
        code: soap11_code.or(soap12_code).unwrap_or_default().to_string(),
        reason: soap11_reason.or(soap12_reason).unwrap_or_default().to_string(),
    })
}

fn fault_error(status: u16, fault: &Fault) -> ConnectorError {
    let reason: String = fault.reason.chars().take(FAULT_MAX_CHARS).collect();
    let local_code = fault.code.rsplit(':').next().unwrap_or_default();
    let detail = format!("KIAS returned SOAP Fault {} with HTTP {status}: {reason}", fault.code);

    let error = if local_code == "VersionMismatch" {
        ConnectorError::config(format!("{detail} (check settings.soap_version)"))
    } else {
        let kind = match status {
            401 | 403 => ErrorKind::AUTH,
            408 | 429 | 502..=504 => ErrorKind::TRANSIENT,
            _ => ErrorKind::PERMANENT,
        };
        ConnectorError::new(kind, detail)
    };
    error.with_code(fault.code.clone())
}

/// Returns the content of `Body/ExecProcResponse/ExecProcResult` as the `data` element. The
/// result contains the document as child elements (an ASP.NET `XmlNode`) or, from some
/// installations, as escaped text.
fn exec_result(envelope: &Element) -> Result<Element, String> {
    let body = envelope.child("Body").ok_or("the envelope has no Body")?;
    let response = body.child("ExecProcResponse").ok_or("the Body has no ExecProcResponse")?;
    let result = response.child("ExecProcResult").ok_or("ExecProcResponse has no ExecProcResult")?;

    if let Some(document) = result.children.first() {
        return Ok(document.clone());
    }
    let text = result.text.trim();
    if text.is_empty() {
        return Err("ExecProcResult is empty".to_string());
    }
    Element::parse_document(text)
        .map_err(|reason| format!("the text of ExecProcResult is not well-formed XML: {reason}"))
}

/// Classifies a response without a usable envelope by its HTTP status.
pub fn status_error(response: &HttpResponse) -> ConnectorError {
    let status = response.status;
    let body = describe_body(response);
    match status {
        401 | 403 => ConnectorError::auth(format!(
            "KIAS rejected the request with HTTP {status}: check the access to settings.endpoint ({body})"
        )),
        404 => ConnectorError::config(format!(
            "KIAS returned HTTP 404, so no kiasSvc service exists at this address: check settings.endpoint ({body})"
        )),
        415 => ConnectorError::config(format!(
            "KIAS rejected the content type with HTTP 415: check settings.soap_version ({body})"
        )),
        408 | 429 | 500..=599 => {
            let mut error = ConnectorError::transient(format!("KIAS failed with HTTP {status}, retry later ({body})"));
            if let Some(seconds) = response.header("retry-after").and_then(|value| value.trim().parse::<u64>().ok()) {
                error = error.with_retry_after_ms(seconds.saturating_mul(1000));
            }
            error
        }
        _ => ConnectorError::permanent(format!(
            "KIAS returned HTTP {status}, which the ExecProc protocol does not define ({body})"
        )),
    }
}

/// Builds the transient error of a response that is not the documented XML.
fn malformed(response: &HttpResponse, reason: &str) -> ConnectorError {
    ConnectorError::transient(format!("KIAS returned an unexpected response: {reason} ({})", describe_body(response)))
        .with_code(MALFORMED_RESPONSE)
}

fn looks_like_xml(response: &HttpResponse) -> bool {
    let content_type = response.header("content-type").unwrap_or_default().to_ascii_lowercase();
    content_type.contains("xml")
}

/// Describes a body by status, content type and size, without its content, which may echo the
/// request and with it the session id.
fn describe_body(response: &HttpResponse) -> String {
    let content_type = response.header("content-type").unwrap_or("no content-type");
    format!("HTTP {}, {}, {} bytes", response.status, content_type, response.body.len())
}

#[cfg(test)]
mod tests;
