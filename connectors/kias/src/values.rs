//! Conversions of scalar values between the gateway's JSON and KIAS text: dates and booleans.
//!
//! JSON uses ISO 8601 (`2025-03-01`, `2025-03-01T14:30:00`) and `true`/`false`. KIAS writes dates
//! as `dd.mm.yyyy`, date-times as `dd.mm.yyyy hh:mm:ss` and booleans as `Y`/`N`.

use chrono::{NaiveDate, NaiveDateTime};

const ISO_DATE: &str = "%Y-%m-%d";
const ISO_DATE_TIME: &str = "%Y-%m-%dT%H:%M:%S";
const KIAS_DATE: &str = "%d.%m.%Y";
const KIAS_DATE_TIME: &str = "%d.%m.%Y %H:%M:%S";

/// Shape of a text in digits (`9`) and literal characters, compared byte by byte.
fn has_shape(text: &str, shape: &str) -> bool {
    text.len() == shape.len()
        && text.bytes().zip(shape.bytes()).all(|(byte, expected)| match expected {
            b'9' => byte.is_ascii_digit(),
            literal => byte == literal,
        })
}

/// Result of reading a JSON string as an ISO date.
#[derive(Debug, PartialEq, Eq)]
pub enum IsoText {
    /// The text is an ISO date or date-time, converted to KIAS form.
    Converted(String),
    /// The text has the shape of an ISO date but names no real day, such as `2025-02-30`.
    InvalidDate,
    /// The text is not shaped like an ISO date and goes to KIAS unchanged.
    Other,
}

/// Converts `yyyy-mm-dd` to `dd.mm.yyyy` and `yyyy-mm-ddThh:mm:ss` to `dd.mm.yyyy hh:mm:ss`.
///
/// Other shapes, including date-times with a zone or fractions of a second, are [`IsoText::Other`],
/// because KIAS keeps local times without a zone and the connector does not pick one.
pub fn iso_to_kias(text: &str) -> IsoText {
    if has_shape(text, "9999-99-99") {
        return match NaiveDate::parse_from_str(text, ISO_DATE) {
            Ok(date) => IsoText::Converted(date.format(KIAS_DATE).to_string()),
            Err(_) => IsoText::InvalidDate,
        };
    }
    if has_shape(text, "9999-99-99T99:99:99") {
        return match NaiveDateTime::parse_from_str(text, ISO_DATE_TIME) {
            Ok(moment) => IsoText::Converted(moment.format(KIAS_DATE_TIME).to_string()),
            Err(_) => IsoText::InvalidDate,
        };
    }
    IsoText::Other
}

/// Converts `dd.mm.yyyy` to `yyyy-mm-dd` and `dd.mm.yyyy hh:mm:ss` to `yyyy-mm-ddThh:mm:ss`.
/// Returns `None` for every other text, including shapes that name no real day.
pub fn kias_to_iso(text: &str) -> Option<String> {
    if has_shape(text, "99.99.9999") {
        let date = NaiveDate::parse_from_str(text, KIAS_DATE).ok()?;
        return Some(date.format(ISO_DATE).to_string());
    }
    if has_shape(text, "99.99.9999 99:99:99") {
        let moment = NaiveDateTime::parse_from_str(text, KIAS_DATE_TIME).ok()?;
        return Some(moment.format(ISO_DATE_TIME).to_string());
    }
    None
}

/// Returns a JSON boolean as KIAS writes it.
pub fn kias_boolean(value: bool) -> &'static str {
    if value {
        "Y"
    } else {
        "N"
    }
}

/// Returns the first character that XML 1.0 does not allow in text, if any. Such characters
/// (most C0 controls, U+FFFE, U+FFFF) would make the whole request unreadable for KIAS.
pub fn invalid_xml_char(text: &str) -> Option<char> {
    text.chars().find(|c| {
        let code = u32::from(*c);
        let control = code < 0x20 && !matches!(c, '\t' | '\n' | '\r');
        control || code == 0xFFFE || code == 0xFFFF
    })
}

/// Checks that a text is a KIAS key: an ISN of 1 to 20 ASCII digits.
pub fn is_isn(text: &str) -> bool {
    (1..=20).contains(&text.len()) && text.bytes().all(|byte| byte.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_converted() {
        assert_eq!(iso_to_kias("2025-03-01"), IsoText::Converted("01.03.2025".to_string()));
        assert_eq!(iso_to_kias("2024-02-29"), IsoText::Converted("29.02.2024".to_string()));
        assert_eq!(iso_to_kias("2025-03-01T14:05:09"), IsoText::Converted("01.03.2025 14:05:09".to_string()));
    }

    #[test]
    fn impossible_iso_dates_detected() {
        assert_eq!(iso_to_kias("2025-02-29"), IsoText::InvalidDate);
        assert_eq!(iso_to_kias("2025-13-01"), IsoText::InvalidDate);
        assert_eq!(iso_to_kias("2025-03-01T25:00:00"), IsoText::InvalidDate);
    }

    #[test]
    fn other_texts_left_alone() {
        for text in
            ["", "2025-3-1", "01.03.2025", "2025-03-01T14:05:09Z", "2025-03-01 14:05:09", "ХХХ 0123456789", "20250301"]
        {
            assert_eq!(iso_to_kias(text), IsoText::Other, "{text:?}");
        }
    }

    #[test]
    fn kias_dates_converted() {
        assert_eq!(kias_to_iso("01.03.2025").as_deref(), Some("2025-03-01"));
        assert_eq!(kias_to_iso("31.12.1999 23:59:58").as_deref(), Some("1999-12-31T23:59:58"));
    }

    #[test]
    fn non_dates_not_converted() {
        for text in ["", "1.3.2025", "31.02.2025", "01.03.25", "3366101", "01.03.2025 25:00:00", "01-03-2025"] {
            assert_eq!(kias_to_iso(text), None, "{text:?}");
        }
    }

    #[test]
    fn dates_round_trip() {
        for iso in ["2025-03-01", "2000-01-31T00:00:00"] {
            let IsoText::Converted(kias) = iso_to_kias(iso) else { panic!("{iso} not converted") };

            assert_eq!(kias_to_iso(&kias).as_deref(), Some(iso));
        }
    }

    #[test]
    fn booleans_are_y_and_n() {
        assert_eq!(kias_boolean(true), "Y");
        assert_eq!(kias_boolean(false), "N");
    }

    #[test]
    fn invalid_xml_chars_found() {
        assert_eq!(invalid_xml_char("Иванов\tИ.\r\n"), None);
        assert_eq!(invalid_xml_char("a\u{0}b"), Some('\u{0}'));
        assert_eq!(invalid_xml_char("a\u{1b}[31m"), Some('\u{1b}'));
        assert_eq!(invalid_xml_char("\u{FFFF}"), Some('\u{FFFF}'));
    }

    #[test]
    fn isn_shape() {
        assert!(is_isn("3366101"));
        assert!(!is_isn(""));
        assert!(!is_isn("33661O1"));
        assert!(!is_isn("-1"));
        assert!(!is_isn(&"9".repeat(21)));
    }
}
