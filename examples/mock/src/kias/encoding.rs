//! Encodings of the mock KIAS's SOAP responses, switched by `PUT /_mock/kias/encoding`.

/// Encoding and charset labels of SOAP responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseEncoding {
    /// UTF-8, named in the header and the declaration.
    Utf8,
    /// UTF-8 with a byte order mark.
    Utf8Bom,
    /// UTF-16 little-endian with a byte order mark, `charset=utf-16`.
    Utf16LeBom,
    /// UTF-16 big-endian with a byte order mark, `charset=utf-16`.
    Utf16BeBom,
    /// windows-1251, named in the header and the declaration.
    Cp1251Header,
    /// windows-1251, named only in the XML declaration.
    Cp1251Declaration,
    /// windows-1251 bytes under a `charset=utf-8` header, the misconfiguration that clients
    /// must detect instead of showing mojibake.
    ContradictingHeader,
}

impl ResponseEncoding {
    const ALL: [ResponseEncoding; 7] = [
        ResponseEncoding::Utf8,
        ResponseEncoding::Utf8Bom,
        ResponseEncoding::Utf16LeBom,
        ResponseEncoding::Utf16BeBom,
        ResponseEncoding::Cp1251Header,
        ResponseEncoding::Cp1251Declaration,
        ResponseEncoding::ContradictingHeader,
    ];

    /// Returns the name used in the control API's JSON.
    pub fn name(self) -> &'static str {
        match self {
            ResponseEncoding::Utf8 => "utf8",
            ResponseEncoding::Utf8Bom => "utf8_bom",
            ResponseEncoding::Utf16LeBom => "utf16le_bom",
            ResponseEncoding::Utf16BeBom => "utf16be_bom",
            ResponseEncoding::Cp1251Header => "cp1251_header",
            ResponseEncoding::Cp1251Declaration => "cp1251_declaration",
            ResponseEncoding::ContradictingHeader => "contradicting_header",
        }
    }

    /// Returns the encoding named `name`, or `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|encoding| encoding.name() == name)
    }

    /// Returns the valid names, comma-separated, for error messages.
    pub fn valid_names() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|encoding| encoding.name()).collect();
        names.join(", ")
    }

    /// Returns the label written in the XML declaration.
    pub fn declared_label(self) -> &'static str {
        match self {
            ResponseEncoding::Utf8 | ResponseEncoding::Utf8Bom => "utf-8",
            ResponseEncoding::Utf16LeBom | ResponseEncoding::Utf16BeBom => "utf-16",
            ResponseEncoding::Cp1251Header
            | ResponseEncoding::Cp1251Declaration
            | ResponseEncoding::ContradictingHeader => "windows-1251",
        }
    }

    /// Returns the `charset` parameter of the `Content-Type` header, or `None` when the header
    /// names no charset.
    pub fn header_charset(self) -> Option<&'static str> {
        match self {
            ResponseEncoding::Utf8
            | ResponseEncoding::Utf8Bom
            | ResponseEncoding::ContradictingHeader => Some("utf-8"),
            ResponseEncoding::Utf16LeBom | ResponseEncoding::Utf16BeBom => Some("utf-16"),
            ResponseEncoding::Cp1251Header => Some("windows-1251"),
            ResponseEncoding::Cp1251Declaration => None,
        }
    }

    /// Returns the `Content-Type` of a response whose media type is `media_type`.
    pub fn content_type(self, media_type: &str) -> String {
        match self.header_charset() {
            Some(charset) => format!("{media_type}; charset={charset}"),
            None => media_type.to_owned(),
        }
    }

    /// Encodes a document, which must already declare [`Self::declared_label`]. Characters that
    /// windows-1251 lacks become numeric character references, which XML text allows.
    pub fn encode(self, document: &str) -> Vec<u8> {
        match self {
            ResponseEncoding::Utf8 => document.as_bytes().to_vec(),
            ResponseEncoding::Utf8Bom => {
                let mut bytes = vec![0xEF, 0xBB, 0xBF];
                bytes.extend_from_slice(document.as_bytes());
                bytes
            }
            ResponseEncoding::Utf16LeBom => utf16(document, u16::to_le_bytes),
            ResponseEncoding::Utf16BeBom => utf16(document, u16::to_be_bytes),
            ResponseEncoding::Cp1251Header
            | ResponseEncoding::Cp1251Declaration
            | ResponseEncoding::ContradictingHeader => {
                let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(document);
                bytes.into_owned()
            }
        }
    }
}

fn utf16(document: &str, to_bytes: fn(u16) -> [u8; 2]) -> Vec<u8> {
    std::iter::once(0xFEFF)
        .chain(document.encode_utf16())
        .flat_map(to_bytes)
        .collect()
}
