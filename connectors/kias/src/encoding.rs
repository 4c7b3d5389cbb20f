//! Decoding of KIAS response bodies into text before XML parsing.
//!
//! KIAS installations respond in UTF-8, UTF-16 with a byte order mark, or windows-1251, named in the
//! `Content-Type` charset, in the XML declaration, or by the BOM alone. The rules, in order:
//!
//! 1. A BOM decides the encoding. A `Content-Type` charset naming another encoding is an error.
//!    The XML declaration is ignored then, as XML 1.0 (appendix F) lets the BOM win.
//! 2. Without a BOM, the `Content-Type` charset decides (RFC 7303 puts it above the declaration),
//!    then the XML declaration, then UTF-8, the XML default.
//! 3. Bytes that are invalid in the chosen encoding are an error, never replacement characters.
//! 4. Non-ASCII bytes that form valid UTF-8 under a single-byte charset such as windows-1251 are an
//!    error too, because decoding them would produce mojibake.

use std::fmt;

use encoding_rs::{Encoding, REPLACEMENT, UTF_16BE, UTF_16LE, UTF_8};

/// Number of leading bytes searched for the XML declaration.
const DECLARATION_SEARCH_BYTES: usize = 256;

/// Source of the encoding chosen for a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodingSource {
    /// The byte order mark.
    Bom,
    /// The `charset` parameter of the `Content-Type` header.
    Header,
    /// The `encoding` pseudo-attribute of the XML declaration.
    Declaration,
    /// Nothing named an encoding, so the XML default UTF-8 applies.
    Default,
}

impl fmt::Display for EncodingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncodingSource::Bom => "byte order mark",
            EncodingSource::Header => "Content-Type charset",
            EncodingSource::Declaration => "XML declaration",
            EncodingSource::Default => "XML default",
        })
    }
}

/// A body that could not be decoded without guessing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The header or the declaration names an encoding this connector does not know.
    UnsupportedEncoding { label: String, source: EncodingSource },
    /// The BOM and the `Content-Type` charset name different encodings.
    BomContradictsHeader { bom: &'static str, charset: String },
    /// A byte sequence is invalid in the chosen encoding.
    InvalidBytes {
        encoding: &'static str,
        source: EncodingSource,
        /// Offset of the first invalid byte, when known.
        offset: Option<usize>,
        /// The encoding that the XML declaration names, when it differs from the chosen one.
        declared: Option<String>,
    },
    /// The body ends inside a multi-byte character, so it was cut off rather than mislabeled.
    Truncated { encoding: &'static str },
    /// The body is valid UTF-8 with non-ASCII characters, but a single-byte encoding was named.
    Utf8UnderSingleByte { encoding: &'static str, source: EncodingSource },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnsupportedEncoding { label, source } => {
                write!(f, "the {source} names encoding {label:?}, which is not supported")
            }
            DecodeError::BomContradictsHeader { bom, charset } => write!(
                f,
                "the Content-Type charset {charset:?} contradicts the body, which starts with a {bom} byte order mark"
            ),
            DecodeError::InvalidBytes { encoding, source, offset, declared } => {
                write!(f, "the body is not valid {encoding}, the encoding that the {source} names")?;
                if let Some(offset) = offset {
                    write!(f, " (first invalid byte at offset {offset})")?;
                }
                if let Some(declared) = declared {
                    write!(f, ", while the XML declaration names {declared:?}")?;
                }
                Ok(())
            }
            DecodeError::Truncated { encoding } => {
                write!(f, "the body ends inside a {encoding} character, so it was cut off")
            }
            DecodeError::Utf8UnderSingleByte { encoding, source } => write!(
                f,
                "the {source} names {encoding}, but the body is UTF-8 text, which {encoding} would turn into mojibake"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes an XML body into text by the rules in this module's documentation. A BOM is removed.
/// `content_type` is the raw `Content-Type` header value, if any.
pub fn decode_xml_body(body: &[u8], content_type: Option<&str>) -> Result<String, DecodeError> {
    let header_label = content_type.and_then(charset_parameter);
    let header_encoding = match &header_label {
        Some(label) => Some(known_encoding(label, EncodingSource::Header)?),
        None => None,
    };

    if let Some((bom_encoding, bom_length)) = Encoding::for_bom(body) {
        if let (Some(label), Some(encoding)) = (&header_label, header_encoding) {
            if !bom_matches_charset(bom_encoding, encoding, label) {
                return Err(DecodeError::BomContradictsHeader { bom: bom_encoding.name(), charset: label.clone() });
            }
        }
        return decode_strict(&body[bom_length..], bom_encoding, EncodingSource::Bom, None);
    }

    let declared_label = declared_encoding(body);
    let (encoding, source) = match (header_encoding, &declared_label) {
        (Some(encoding), _) => (encoding, EncodingSource::Header),
        (None, Some(label)) => (known_encoding(label, EncodingSource::Declaration)?, EncodingSource::Declaration),
        (None, None) => (UTF_8, EncodingSource::Default),
    };
    let declared_differs = declared_label
        .filter(|label| Encoding::for_label(label.as_bytes()) != Some(encoding))
        .filter(|_| source != EncodingSource::Declaration);

    if encoding.is_single_byte() && !body.is_ascii() && std::str::from_utf8(body).is_ok() {
        return Err(DecodeError::Utf8UnderSingleByte { encoding: encoding.name(), source });
    }
    decode_strict(body, encoding, source, declared_differs)
}

/// Decodes `bytes` in `encoding`, rejecting any invalid sequence.
fn decode_strict(
    bytes: &[u8],
    encoding: &'static Encoding,
    source: EncodingSource,
    declared: Option<String>,
) -> Result<String, DecodeError> {
    if encoding == UTF_8 {
        return std::str::from_utf8(bytes).map(str::to_string).map_err(|error| match error.error_len() {
            None => DecodeError::Truncated { encoding: UTF_8.name() },
            Some(_) => DecodeError::InvalidBytes {
                encoding: UTF_8.name(),
                source,
                offset: Some(error.valid_up_to()),
                declared,
            },
        });
    }

    match encoding.decode_without_bom_handling_and_without_replacement(bytes) {
        Some(text) => Ok(text.into_owned()),
        None => Err(DecodeError::InvalidBytes { encoding: encoding.name(), source, offset: None, declared }),
    }
}

/// Looks an encoding label up, rejecting unknown labels and the WHATWG "replacement" encoding,
/// which decodes everything to a single error character.
fn known_encoding(label: &str, source: EncodingSource) -> Result<&'static Encoding, DecodeError> {
    match Encoding::for_label(label.as_bytes()) {
        Some(encoding) if encoding != REPLACEMENT => Ok(encoding),
        _ => Err(DecodeError::UnsupportedEncoding { label: label.to_string(), source }),
    }
}

/// Checks that a BOM agrees with the header charset. The label `utf-16` names both byte orders,
/// although the encoding registry resolves it to little-endian.
fn bom_matches_charset(bom: &'static Encoding, charset: &'static Encoding, label: &str) -> bool {
    if bom == charset {
        return true;
    }
    let generic_utf16 = label.eq_ignore_ascii_case("utf-16") || label.eq_ignore_ascii_case("unicode");
    generic_utf16 && (bom == UTF_16BE || bom == UTF_16LE)
}

/// Returns the `charset` parameter of a `Content-Type` value, unquoted, or `None`.
pub fn charset_parameter(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("charset") {
            return None;
        }
        let value = value.trim().trim_matches('"').trim();
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// Returns the `encoding` of the XML declaration at the start of an ASCII-compatible body.
fn declared_encoding(body: &[u8]) -> Option<String> {
    let head = &body[..body.len().min(DECLARATION_SEARCH_BYTES)];
    let head = std::str::from_utf8(head).unwrap_or_else(|error| {
        // The prefix may end inside a multi-byte character or contain other bytes after the
        // declaration. The declaration itself is ASCII, so the valid prefix is enough.
        std::str::from_utf8(&head[..error.valid_up_to()]).unwrap_or_default()
    });
    let declaration = head.trim_start().strip_prefix("<?xml")?;
    let declaration = &declaration[..declaration.find("?>")?];

    let after_name = &declaration[declaration.find("encoding")? + "encoding".len()..];
    let after_equals = after_name.trim_start().strip_prefix('=')?.trim_start();
    let quote = after_equals.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &after_equals[1..];
    let value = &value[..value.find(quote)?];
    (!value.is_empty()).then(|| value.to_string())
}

#[cfg(test)]
mod tests;
