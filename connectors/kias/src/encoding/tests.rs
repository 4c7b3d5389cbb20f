//! Tests of body decoding: every encoding KIAS uses, and every way the labels can disagree.

use super::*;

const TEXT: &str = "Квитанция «А-7» № 1234567 &amp; ёлка";

fn document(declared: Option<&str>) -> String {
    let declaration = match declared {
        Some(label) => format!("<?xml version=\"1.0\" encoding=\"{label}\"?>"),
        None => String::new(),
    };
    format!("{declaration}<data><result><NAME>{TEXT}</NAME></result></data>")
}

fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    let units = bom.then_some('\u{feff}' as u16).into_iter().chain(text.encode_utf16());
    for unit in units {
        let pair = if big_endian { unit.to_be_bytes() } else { unit.to_le_bytes() };
        bytes.extend_from_slice(&pair);
    }
    bytes
}

fn cp1251(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1251.encode(text);
    assert!(!unmappable, "test text must fit windows-1251");
    bytes.into_owned()
}

#[test]
fn utf8_with_header() {
    let body = document(Some("utf-8"));

    let text = decode_xml_body(body.as_bytes(), Some("text/xml; charset=utf-8")).unwrap();

    assert_eq!(text, body);
}

#[test]
fn utf8_without_any_label() {
    let body = document(None);

    let text = decode_xml_body(body.as_bytes(), Some("text/xml")).unwrap();

    assert_eq!(text, body);
}

#[test]
fn utf8_without_content_type() {
    let body = document(None);

    assert_eq!(decode_xml_body(body.as_bytes(), None).unwrap(), body);
}

#[test]
fn utf8_bom_removed() {
    let body = document(Some("utf-8"));
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend_from_slice(body.as_bytes());

    let text = decode_xml_body(&bytes, Some("text/xml; charset=utf-8")).unwrap();

    assert_eq!(text, body);
    assert!(!text.starts_with('\u{feff}'));
}

#[test]
fn utf16_le_with_bom() {
    let body = document(Some("utf-16"));
    let bytes = utf16(&body, false, true);

    let text = decode_xml_body(&bytes, Some("text/xml; charset=utf-16")).unwrap();

    assert_eq!(text, body);
}

#[test]
fn utf16_be_with_bom() {
    let body = document(Some("utf-16"));
    let bytes = utf16(&body, true, true);

    let text = decode_xml_body(&bytes, Some("application/soap+xml; charset=\"UTF-16\"; action=\"x\"")).unwrap();

    assert_eq!(text, body);
}

#[test]
fn utf16_bom_without_charset() {
    let body = document(Some("utf-16"));

    assert_eq!(decode_xml_body(&utf16(&body, true, true), Some("text/xml")).unwrap(), body);
    assert_eq!(decode_xml_body(&utf16(&body, false, true), None).unwrap(), body);
}

#[test]
fn utf16_le_named_by_header_without_bom() {
    let body = document(None);

    let text = decode_xml_body(&utf16(&body, false, false), Some("text/xml; charset=utf-16le")).unwrap();

    assert_eq!(text, body);
}

#[test]
fn utf16_bom_ignores_wrong_declaration() {
    let body = document(Some("utf-8"));

    let text = decode_xml_body(&utf16(&body, false, true), None).unwrap();

    assert_eq!(text, body);
}

#[test]
fn cp1251_from_header() {
    let body = document(Some("windows-1251"));

    let text = decode_xml_body(&cp1251(&body), Some("text/xml; charset=windows-1251")).unwrap();

    assert_eq!(text, body);
}

#[test]
fn cp1251_header_label_variants() {
    let body = document(None);

    for content_type in
        ["text/xml;charset=cp1251", "text/xml; CHARSET = \"Windows-1251\"", "text/xml; charset=x-cp1251"]
    {
        let text = decode_xml_body(&cp1251(&body), Some(content_type)).unwrap();

        assert_eq!(text, body, "{content_type}");
    }
}

#[test]
fn cp1251_from_declaration_only() {
    let body = document(Some("windows-1251"));

    let text = decode_xml_body(&cp1251(&body), Some("text/xml")).unwrap();

    assert_eq!(text, body);
}

#[test]
fn cp1251_declaration_in_single_quotes() {
    let body = format!("<?xml version='1.0' encoding='windows-1251' standalone='yes'?>\n<data>{TEXT}</data>");

    let text = decode_xml_body(&cp1251(&body), None).unwrap();

    assert_eq!(text, body);
}

#[test]
fn header_utf8_with_cp1251_bytes_rejected() {
    let body = document(Some("windows-1251"));
    let bytes = cp1251(&body);

    let error = decode_xml_body(&bytes, Some("text/xml; charset=utf-8")).unwrap_err();

    let first_cyrillic = body.find('К').unwrap();
    assert_eq!(
        error,
        DecodeError::InvalidBytes {
            encoding: "UTF-8",
            source: EncodingSource::Header,
            offset: Some(first_cyrillic),
            declared: Some("windows-1251".to_string()),
        }
    );
    let message = error.to_string();
    assert!(message.contains("not valid UTF-8"), "{message}");
    assert!(message.contains("Content-Type charset"), "{message}");
    assert!(message.contains("windows-1251"), "{message}");
}

#[test]
fn undeclared_cp1251_bytes_rejected() {
    let body = document(None);

    let error = decode_xml_body(&cp1251(&body), Some("text/xml")).unwrap_err();

    assert!(
        matches!(error, DecodeError::InvalidBytes { source: EncodingSource::Default, declared: None, .. }),
        "{error:?}"
    );
}

#[test]
fn header_cp1251_with_utf8_bytes_rejected() {
    let body = document(None);

    let error = decode_xml_body(body.as_bytes(), Some("text/xml; charset=windows-1251")).unwrap_err();

    assert_eq!(error, DecodeError::Utf8UnderSingleByte { encoding: "windows-1251", source: EncodingSource::Header });
    assert!(error.to_string().contains("mojibake"), "{error}");
}

#[test]
fn declared_cp1251_with_utf8_bytes_rejected() {
    let body = document(Some("windows-1251"));

    let error = decode_xml_body(body.as_bytes(), None).unwrap_err();

    assert_eq!(
        error,
        DecodeError::Utf8UnderSingleByte { encoding: "windows-1251", source: EncodingSource::Declaration }
    );
}

#[test]
fn ascii_body_under_cp1251_accepted() {
    let body = "<?xml version=\"1.0\" encoding=\"windows-1251\"?><data><result/></data>";

    assert_eq!(decode_xml_body(body.as_bytes(), Some("text/xml; charset=windows-1251")).unwrap(), body);
}

#[test]
fn header_beats_declaration_when_bytes_agree() {
    let body = document(Some("windows-1251"));

    let text = decode_xml_body(body.as_bytes(), Some("text/xml; charset=utf-8")).unwrap();

    assert_eq!(text, body);
}

#[test]
fn utf8_bom_contradicts_cp1251_header() {
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend_from_slice(document(None).as_bytes());

    let error = decode_xml_body(&bytes, Some("text/xml; charset=windows-1251")).unwrap_err();

    assert_eq!(error, DecodeError::BomContradictsHeader { bom: "UTF-8", charset: "windows-1251".to_string() });
    assert!(error.to_string().contains("contradicts"), "{error}");
}

#[test]
fn utf16_bom_contradicts_utf8_header() {
    let bytes = utf16(&document(None), false, true);

    let error = decode_xml_body(&bytes, Some("text/xml; charset=utf-8")).unwrap_err();

    assert_eq!(error, DecodeError::BomContradictsHeader { bom: "UTF-16LE", charset: "utf-8".to_string() });
}

#[test]
fn utf16_be_bom_contradicts_le_header() {
    let bytes = utf16(&document(None), true, true);

    let error = decode_xml_body(&bytes, Some("text/xml; charset=utf-16le")).unwrap_err();

    assert_eq!(error, DecodeError::BomContradictsHeader { bom: "UTF-16BE", charset: "utf-16le".to_string() });
}

#[test]
fn unpaired_surrogate_rejected() {
    let mut bytes = utf16("<data>", false, true);
    bytes.extend_from_slice(&0xD800u16.to_le_bytes());
    bytes.extend_from_slice(&utf16("</data>", false, false));

    let error = decode_xml_body(&bytes, None).unwrap_err();

    assert!(
        matches!(error, DecodeError::InvalidBytes { encoding: "UTF-16LE", source: EncodingSource::Bom, .. }),
        "{error:?}"
    );
}

#[test]
fn invalid_utf8_after_bom_rejected() {
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend_from_slice(b"<data>\xC0\xAF</data>");

    let error = decode_xml_body(&bytes, None).unwrap_err();

    assert_eq!(
        error,
        DecodeError::InvalidBytes { encoding: "UTF-8", source: EncodingSource::Bom, offset: Some(6), declared: None }
    );
}

#[test]
fn utf8_cut_inside_character_is_truncated() {
    let body = document(None);
    let cut = body.find('К').unwrap() + 1;

    let error = decode_xml_body(&body.as_bytes()[..cut], Some("text/xml; charset=utf-8")).unwrap_err();

    assert_eq!(error, DecodeError::Truncated { encoding: "UTF-8" });
    assert!(error.to_string().contains("cut off"), "{error}");
}

#[test]
fn unknown_header_charset_rejected() {
    let error = decode_xml_body(b"<data/>", Some("text/xml; charset=klingon")).unwrap_err();

    assert_eq!(
        error,
        DecodeError::UnsupportedEncoding { label: "klingon".to_string(), source: EncodingSource::Header }
    );
    assert!(error.to_string().contains("\"klingon\""), "{error}");
}

#[test]
fn replacement_encoding_rejected() {
    let body = "<?xml version=\"1.0\" encoding=\"iso-2022-kr\"?><data/>";

    let error = decode_xml_body(body.as_bytes(), None).unwrap_err();

    assert_eq!(
        error,
        DecodeError::UnsupportedEncoding { label: "iso-2022-kr".to_string(), source: EncodingSource::Declaration }
    );
}

#[test]
fn charset_parameter_parsing() {
    assert_eq!(charset_parameter("text/xml; charset=utf-8"), Some("utf-8".to_string()));
    assert_eq!(charset_parameter("text/xml;Charset=\"windows-1251\""), Some("windows-1251".to_string()));
    assert_eq!(
        charset_parameter("application/soap+xml; action=\"http://inslab.ru/ExecProc\"; charset=utf-16"),
        Some("utf-16".to_string())
    );
    assert_eq!(charset_parameter("text/xml"), None);
    assert_eq!(charset_parameter("text/xml; charset="), None);
    assert_eq!(charset_parameter("charset=utf-8"), None);
}

#[test]
fn declaration_parsing() {
    assert_eq!(
        declared_encoding(b"<?xml version=\"1.0\" encoding=\"windows-1251\"?><a/>"),
        Some("windows-1251".into())
    );
    assert_eq!(declared_encoding(b"  \n<?xml version='1.0' encoding = 'UTF-8'?>"), Some("UTF-8".into()));
    assert_eq!(declared_encoding(b"<?xml version=\"1.0\"?><a encoding=\"x\"/>"), None);
    assert_eq!(declared_encoding(b"<a/>"), None);
    assert_eq!(declared_encoding(b"<?xml version=\"1.0\" encoding=\"utf-8"), None);
    assert_eq!(declared_encoding(b"<?xml version=\"1.0\" encoding=utf-8?>"), None);
    assert_eq!(
        declared_encoding(b"<?xml version=\"1.0\" encoding=\"windows-1251\"?>\xC0\xC1"),
        Some("windows-1251".into())
    );
}

#[test]
fn decoded_text_parses_as_xml() {
    for (bytes, content_type) in [
        (cp1251(&document(Some("windows-1251"))), Some("text/xml")),
        (utf16(&document(Some("utf-16")), true, true), None),
    ] {
        let text = decode_xml_body(&bytes, content_type).unwrap();

        let parsed = roxmltree::Document::parse(&text).unwrap();
        let name = parsed.descendants().find(|node| node.has_tag_name("NAME")).unwrap();
        assert_eq!(name.text(), Some(TEXT.replace("&amp;", "&").as_str()));
    }
}
