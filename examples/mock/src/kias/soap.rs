//! The SOAP layer of the mock KIAS: reading `ExecProc` requests in SOAP 1.1 and 1.2, writing
//! responses and faults, and the WSDL.

use std::io;

use axum::http::HeaderMap;
use quick_xml::escape::escape;
use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use super::xml::XmlNode;

/// Target namespace of the kiasSvc service.
pub const SERVICE_NAMESPACE: &str = "http://inslab.ru/";

/// SOAP action of `ExecProc`.
pub const EXEC_PROC_ACTION: &str = "http://inslab.ru/ExecProc";

/// Envelope namespace of SOAP 1.1.
pub const SOAP11_NAMESPACE: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// Envelope namespace of SOAP 1.2.
pub const SOAP12_NAMESPACE: &str = "http://www.w3.org/2003/05/soap-envelope";

/// SOAP version of a request, from its content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoapVersion {
    Soap11,
    Soap12,
}

impl SoapVersion {
    /// Returns the version number, `1.1` or `1.2`.
    pub fn name(self) -> &'static str {
        match self {
            SoapVersion::Soap11 => "1.1",
            SoapVersion::Soap12 => "1.2",
        }
    }

    /// Returns the media type of this version's messages.
    pub fn media_type(self) -> &'static str {
        match self {
            SoapVersion::Soap11 => "text/xml",
            SoapVersion::Soap12 => "application/soap+xml",
        }
    }

    fn envelope_namespace(self) -> &'static str {
        match self {
            SoapVersion::Soap11 => SOAP11_NAMESPACE,
            SoapVersion::Soap12 => SOAP12_NAMESPACE,
        }
    }
}

/// Reason that a request is not a valid `ExecProc` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The content type is neither SOAP 1.1 nor SOAP 1.2: HTTP 415.
    UnsupportedMediaType(String),
    /// A SOAP-level error, returned as a Fault of the given code (`Client`, `VersionMismatch`).
    Fault {
        version: SoapVersion,
        code: &'static str,
        reason: String,
    },
}

impl RequestError {
    fn client(version: SoapVersion, reason: impl Into<String>) -> Self {
        RequestError::Fault {
            version,
            code: "Client",
            reason: reason.into(),
        }
    }
}

/// A parsed `ExecProc` call.
#[derive(Clone, Debug)]
pub struct ExecRequest {
    pub version: SoapVersion,
    /// The `pData` document's `request` element.
    pub request: XmlNode,
}

impl ExecRequest {
    /// Returns the procedure name (`reqName`).
    pub fn procedure(&self) -> &str {
        self.request.child_text("reqName").unwrap_or_default()
    }

    /// Returns the `params` element, or an empty one.
    pub fn params(&self) -> XmlNode {
        self.request
            .child("params")
            .cloned()
            .unwrap_or_else(|| XmlNode::parent("params", Vec::new()))
    }
}

/// Reads an `ExecProc` request: checks the content type, the action and the envelope version,
/// and parses `pData`, given as escaped text or as child elements.
pub fn read_request(headers: &HeaderMap, body: &[u8]) -> Result<ExecRequest, RequestError> {
    let content_type = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let version = match media_type.as_str() {
        "text/xml" => SoapVersion::Soap11,
        "application/soap+xml" => SoapVersion::Soap12,
        _ => return Err(RequestError::UnsupportedMediaType(content_type.to_owned())),
    };

    let action = match version {
        SoapVersion::Soap11 => headers
            .get("soapaction")
            .and_then(|value| value.to_str().ok())
            .map(|value| value.trim().trim_matches('"').to_owned()),
        SoapVersion::Soap12 => content_type_parameter(content_type, "action"),
    };
    match (version, action.as_deref()) {
        (_, Some(EXEC_PROC_ACTION)) | (SoapVersion::Soap12, None) => {}
        (_, action) => {
            return Err(RequestError::client(
                version,
                format!(
                    "Server did not recognize the value of the SOAP action: {:?}",
                    action.unwrap_or_default()
                ),
            ))
        }
    }

    let charset = content_type_parameter(content_type, "charset").unwrap_or("utf-8".to_owned());
    let text = decode(body, &charset)
        .ok_or_else(|| RequestError::client(version, format!("the body is not valid {charset}")))?;
    let document = roxmltree::Document::parse(&text)
        .map_err(|error| RequestError::client(version, format!("the body is not XML: {error}")))?;

    let envelope = document.root_element();
    if envelope.tag_name().name() != "Envelope" {
        return Err(RequestError::client(
            version,
            "the root element is not a SOAP Envelope",
        ));
    }
    if envelope.tag_name().namespace() != Some(version.envelope_namespace()) {
        return Err(RequestError::Fault {
            version,
            code: "VersionMismatch",
            reason: format!(
                "Possible SOAP version mismatch: the envelope namespace is not {}, which the content type {media_type} requires",
                version.envelope_namespace()
            ),
        });
    }

    let exec_proc = envelope
        .children()
        .find(|node| node.has_tag_name((version.envelope_namespace(), "Body")))
        .and_then(|body| {
            body.children()
                .find(|node| node.has_tag_name((SERVICE_NAMESPACE, "ExecProc")))
        })
        .ok_or_else(|| {
            RequestError::client(
                version,
                "the Body has no ExecProc element of http://inslab.ru/",
            )
        })?;
    let pdata = exec_proc
        .children()
        .find(|node| node.has_tag_name((SERVICE_NAMESPACE, "pData")))
        .ok_or_else(|| RequestError::client(version, "ExecProc has no pData"))?;

    let data = match pdata.children().find(|node| node.is_element()) {
        Some(element) => XmlNode::from_roxmltree(element),
        None => parse_pdata_text(pdata.text().unwrap_or_default()),
    }
    .map_err(|reason| RequestError::client(version, format!("pData is not valid: {reason}")))?;
    if data.name != "data" {
        return Err(RequestError::client(
            version,
            "the root element of pData is not <data>",
        ));
    }
    let request = data
        .child("request")
        .cloned()
        .ok_or_else(|| RequestError::client(version, "pData has no <request>"))?;
    Ok(ExecRequest { version, request })
}

fn parse_pdata_text(text: &str) -> Result<XmlNode, String> {
    let document = roxmltree::Document::parse(text.trim()).map_err(|error| error.to_string())?;
    XmlNode::from_roxmltree(document.root_element())
}

fn decode(body: &[u8], charset: &str) -> Option<String> {
    let encoding = encoding_rs::Encoding::for_label(charset.as_bytes())?;
    let (text, _, had_errors) = encoding.decode(body);
    (!had_errors).then(|| text.into_owned())
}

/// Returns a parameter of a `Content-Type` value, unquoted.
fn content_type_parameter(content_type: &str, name: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|parameter| {
        let (key, value) = parameter.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// Writes the response envelope of a call: `ExecProcResult` contains the `data` document as
/// child elements, as ASP.NET writes an `XmlNode` result. `declared` is the encoding label of
/// the XML declaration.
pub fn response_document(
    version: SoapVersion,
    data: &XmlNode,
    declared: &str,
) -> io::Result<String> {
    write_envelope(version, declared, |writer| {
        writer
            .create_element("ExecProcResponse")
            .with_attribute(("xmlns", SERVICE_NAMESPACE))
            .write_inner_content(|writer| {
                writer
                    .create_element("ExecProcResult")
                    .write_inner_content(|writer| data.write(writer))?;
                Ok(())
            })?;
        Ok(())
    })
}

/// Writes a SOAP Fault. `code` is the local name (`Server`, `Client`, `VersionMismatch`), and
/// SOAP 1.2 calls `Server` and `Client` `Receiver` and `Sender`.
pub fn fault_document(
    version: SoapVersion,
    code: &str,
    reason: &str,
    declared: &str,
) -> io::Result<String> {
    write_envelope(version, declared, |writer| {
        writer
            .create_element("soap:Fault")
            .write_inner_content(|writer| match version {
                SoapVersion::Soap11 => {
                    writer
                        .create_element("faultcode")
                        .write_text_content(BytesText::new(&format!("soap:{code}")))?;
                    writer
                        .create_element("faultstring")
                        .write_text_content(BytesText::new(reason))?;
                    writer.create_element("detail").write_empty()?;
                    Ok(())
                }
                SoapVersion::Soap12 => {
                    let code = match code {
                        "Server" => "Receiver",
                        "Client" => "Sender",
                        other => other,
                    };
                    writer
                        .create_element("soap:Code")
                        .write_inner_content(|writer| {
                            writer
                                .create_element("soap:Value")
                                .write_text_content(BytesText::new(&format!("soap:{code}")))?;
                            Ok(())
                        })?;
                    writer
                        .create_element("soap:Reason")
                        .write_inner_content(|writer| {
                            writer
                                .create_element("soap:Text")
                                .with_attribute(("xml:lang", "en"))
                                .write_text_content(BytesText::new(reason))?;
                            Ok(())
                        })?;
                    writer.create_element("soap:Detail").write_empty()?;
                    Ok(())
                }
            })?;
        Ok(())
    })
}

fn write_envelope(
    version: SoapVersion,
    declared: &str,
    body: impl FnOnce(&mut Writer<Vec<u8>>) -> io::Result<()>,
) -> io::Result<String> {
    let mut writer = Writer::new(Vec::new());
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some(declared), None)))?;
    writer
        .create_element("soap:Envelope")
        .with_attribute(("xmlns:soap", version.envelope_namespace()))
        .with_attribute(("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"))
        .with_attribute(("xmlns:xsd", "http://www.w3.org/2001/XMLSchema"))
        .write_inner_content(|writer| {
            writer
                .create_element("soap:Body")
                .write_inner_content(body)?;
            Ok(())
        })?;
    String::from_utf8(writer.into_inner())
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

/// Returns the WSDL of kiasSvc with both bindings, addressed at `location`.
pub fn wsdl(location: &str) -> String {
    let location = escape(location);
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/"
    xmlns:s="http://www.w3.org/2001/XMLSchema"
    xmlns:tns="{SERVICE_NAMESPACE}"
    targetNamespace="{SERVICE_NAMESPACE}">
  <wsdl:types>
    <s:schema elementFormDefault="qualified" targetNamespace="{SERVICE_NAMESPACE}">
      <s:element name="ExecProc">
        <s:complexType>
          <s:sequence>
            <s:element minOccurs="0" maxOccurs="1" name="pData" type="s:string"/>
          </s:sequence>
        </s:complexType>
      </s:element>
      <s:element name="ExecProcResponse">
        <s:complexType>
          <s:sequence>
            <s:element minOccurs="0" maxOccurs="1" name="ExecProcResult">
              <s:complexType mixed="true">
                <s:sequence>
                  <s:any/>
                </s:sequence>
              </s:complexType>
            </s:element>
          </s:sequence>
        </s:complexType>
      </s:element>
    </s:schema>
  </wsdl:types>
  <wsdl:message name="ExecProcSoapIn">
    <wsdl:part name="parameters" element="tns:ExecProc"/>
  </wsdl:message>
  <wsdl:message name="ExecProcSoapOut">
    <wsdl:part name="parameters" element="tns:ExecProcResponse"/>
  </wsdl:message>
  <wsdl:portType name="kiasSvcSoap">
    <wsdl:operation name="ExecProc">
      <wsdl:input message="tns:ExecProcSoapIn"/>
      <wsdl:output message="tns:ExecProcSoapOut"/>
    </wsdl:operation>
  </wsdl:portType>
  <wsdl:binding name="kiasSvcSoap" type="tns:kiasSvcSoap">
    <soap:binding transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="ExecProc">
      <soap:operation soapAction="{EXEC_PROC_ACTION}" style="document"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input>
      <wsdl:output><soap:body use="literal"/></wsdl:output>
    </wsdl:operation>
  </wsdl:binding>
  <wsdl:binding name="kiasSvcSoap12" type="tns:kiasSvcSoap">
    <soap12:binding transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="ExecProc">
      <soap12:operation soapAction="{EXEC_PROC_ACTION}" style="document"/>
      <wsdl:input><soap12:body use="literal"/></wsdl:input>
      <wsdl:output><soap12:body use="literal"/></wsdl:output>
    </wsdl:operation>
  </wsdl:binding>
  <wsdl:service name="kiasSvc">
    <wsdl:port name="kiasSvcSoap" binding="tns:kiasSvcSoap">
      <soap:address location="{location}"/>
    </wsdl:port>
    <wsdl:port name="kiasSvcSoap12" binding="tns:kiasSvcSoap12">
      <soap12:address location="{location}"/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"#
    )
}
