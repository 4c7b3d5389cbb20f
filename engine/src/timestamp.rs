//! Parsing of the request `timestamp` parameter and the check that it lies within the replay window.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// The accepted formats, quoted in parse errors.
const ACCEPTED_FORMATS: &str = "expected RFC 3339 with an offset (2026-12-04T12:00:00+03:00), \
    \"YYYY-MM-DD HH:MM:SS\" in the configured time zone, or Unix seconds";

/// An invalid request timestamp or one outside the replay window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// The value matches none of the accepted formats.
    #[error("invalid timestamp \"{value}\": {ACCEPTED_FORMATS}")]
    Invalid { value: String },

    /// The value has an accepted format but lies outside the range that chrono represents.
    #[error("timestamp \"{value}\" is out of range: {ACCEPTED_FORMATS}")]
    OutOfRange { value: String },

    /// A local time that occurs twice in `zone`, because clocks were set back.
    #[error("timestamp \"{value}\" is ambiguous in {zone} because clocks are set back at that time: send RFC 3339 with an offset")]
    Ambiguous { value: String, zone: String },

    /// A local time that does not exist in `zone`, because clocks were set forward.
    #[error("timestamp \"{value}\" does not exist in {zone} because clocks are set forward at that time: send RFC 3339 with an offset")]
    Nonexistent { value: String, zone: String },

    /// The timestamp is older than the window allows. Both fields are in seconds, and
    /// `age_seconds` is rounded up.
    #[error("timestamp is {age_seconds} s older than the server time, more than the allowed {window_seconds} s: check the client clock and send a fresh timestamp")]
    TooOld {
        age_seconds: i64,
        window_seconds: i64,
    },

    /// The timestamp is further ahead of the server time than the window allows. Both fields
    /// are in seconds, and `ahead_seconds` is rounded up.
    #[error("timestamp is {ahead_seconds} s ahead of the server time, more than the allowed {window_seconds} s: check the client clock")]
    InFuture {
        ahead_seconds: i64,
        window_seconds: i64,
    },
}

impl TimestampError {
    /// Returns the stable machine-readable error code for API responses.
    pub fn code(&self) -> &'static str {
        match self {
            TimestampError::Invalid { .. }
            | TimestampError::OutOfRange { .. }
            | TimestampError::Ambiguous { .. }
            | TimestampError::Nonexistent { .. } => "invalid_timestamp",
            TimestampError::TooOld { .. } | TimestampError::InFuture { .. } => {
                "timestamp_out_of_window"
            }
        }
    }
}

/// Parses a request timestamp.
///
/// Accepted formats:
/// - RFC 3339 with an offset or `Z`, with optional fractional seconds, for example
///   `2026-12-04T12:00:00+03:00` or `2026-12-04T09:00:00.250Z`;
/// - `YYYY-MM-DD HH:MM:SS`, read as local time in `zone`;
/// - Unix seconds as ASCII digits only, without sign or fraction.
///
/// Surrounding whitespace is not accepted.
///
/// # Errors
///
/// `Invalid` when no format matches, `OutOfRange` when the value cannot be represented,
/// `Ambiguous` or `Nonexistent` for a local time that a daylight saving change in `zone`
/// repeats or skips.
pub fn parse(value: &str, zone: Tz) -> Result<DateTime<Utc>, TimestampError> {
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        return parse_unix_seconds(value);
    }

    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Ok(at.with_timezone(&Utc));
    }

    if is_local_date_time_shape(value) {
        return parse_local(value, zone);
    }

    Err(TimestampError::Invalid {
        value: value.to_owned(),
    })
}

fn parse_unix_seconds(value: &str) -> Result<DateTime<Utc>, TimestampError> {
    let out_of_range = || TimestampError::OutOfRange {
        value: value.to_owned(),
    };

    let seconds: i64 = value.parse().map_err(|_| out_of_range())?;
    DateTime::from_timestamp(seconds, 0).ok_or_else(out_of_range)
}

/// Checks that `value` has the exact shape `DDDD-DD-DD DD:DD:DD`. chrono 0.4's format parser
/// alone also accepts a tab or several spaces as the separator, a signed year and one-digit fields.
fn is_local_date_time_shape(value: &str) -> bool {
    const SHAPE: &[u8; 19] = b"0000-00-00 00:00:00";

    let bytes = value.as_bytes();
    if bytes.len() != SHAPE.len() {
        return false;
    }

    bytes
        .iter()
        .zip(SHAPE)
        .all(|(byte, expected)| match expected {
            b'0' => byte.is_ascii_digit(),
            _ => byte == expected,
        })
}

fn parse_local(value: &str, zone: Tz) -> Result<DateTime<Utc>, TimestampError> {
    let naive = NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S").map_err(|_| {
        TimestampError::Invalid {
            value: value.to_owned(),
        }
    })?;

    match zone.from_local_datetime(&naive) {
        LocalResult::Single(at) => Ok(at.with_timezone(&Utc)),
        LocalResult::Ambiguous(_, _) => Err(TimestampError::Ambiguous {
            value: value.to_owned(),
            zone: zone.name().to_owned(),
        }),
        LocalResult::None => Err(TimestampError::Nonexistent {
            value: value.to_owned(),
            zone: zone.name().to_owned(),
        }),
    }
}

/// Checks that `at` differs from `now` by at most `window_seconds` in either direction.
/// A difference of exactly `window_seconds` is accepted.
///
/// # Errors
///
/// `TooOld` when `at` is more than the window before `now`, `InFuture` when it is more than the
/// window after `now`. Both report the difference in whole seconds, rounded up.
pub fn check_window(
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    window_seconds: i64,
) -> Result<(), TimestampError> {
    // A window too large for a TimeDelta accepts every timestamp; the config caps it far below.
    let window = TimeDelta::try_seconds(window_seconds).unwrap_or(TimeDelta::MAX);
    let age = now - at;

    if age > window {
        return Err(TimestampError::TooOld {
            age_seconds: whole_seconds_rounded_up(age),
            window_seconds,
        });
    }

    let ahead = -age;
    if ahead > window {
        return Err(TimestampError::InFuture {
            ahead_seconds: whole_seconds_rounded_up(ahead),
            window_seconds,
        });
    }

    Ok(())
}

/// Rounds a positive duration up to whole seconds, so that 300.2 s is reported as 301 s and
/// never reads as within a 300 s window.
fn whole_seconds_rounded_up(duration: TimeDelta) -> i64 {
    let seconds = duration.num_seconds();
    if duration > TimeDelta::seconds(seconds) {
        seconds + 1
    } else {
        seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::{Berlin, Moscow};

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn rfc3339_with_offset() {
        let at = parse("2026-12-04T12:00:00+03:00", Berlin).unwrap();
        assert_eq!(at, utc("2026-12-04T09:00:00Z"));

        // RFC 3339 permits a space in place of "T", and chrono accepts it.
        let with_space = parse("2026-12-04 12:00:00+03:00", Berlin).unwrap();
        assert_eq!(with_space, utc("2026-12-04T09:00:00Z"));
    }

    #[test]
    fn rfc3339_with_z() {
        let at = parse("2026-12-04T09:00:00Z", Berlin).unwrap();
        assert_eq!(at.timestamp(), 1_796_374_800);
    }

    #[test]
    fn rfc3339_fractional_seconds() {
        let at = parse("2026-12-04T09:00:00.250Z", Berlin).unwrap();
        assert_eq!(at.timestamp(), 1_796_374_800);
        assert_eq!(at.timestamp_subsec_millis(), 250);
    }

    #[test]
    fn local_time_in_zone() {
        // Moscow is UTC+3 all year.
        let at = parse("2026-12-04 12:00:00", Moscow).unwrap();
        assert_eq!(at, utc("2026-12-04T09:00:00Z"));

        // Berlin is UTC+1 in December and UTC+2 in July.
        let winter = parse("2026-12-04 12:00:00", Berlin).unwrap();
        let summer = parse("2026-07-04 12:00:00", Berlin).unwrap();
        assert_eq!(winter, utc("2026-12-04T11:00:00Z"));
        assert_eq!(summer, utc("2026-07-04T10:00:00Z"));
    }

    #[test]
    fn local_time_ambiguous() {
        // Berlin sets clocks back from 03:00 to 02:00 on 2026-10-25.
        let error = parse("2026-10-25 02:30:00", Berlin).unwrap_err();
        let expected = TimestampError::Ambiguous {
            value: "2026-10-25 02:30:00".into(),
            zone: "Europe/Berlin".into(),
        };
        assert_eq!(error, expected);
        assert_eq!(error.code(), "invalid_timestamp");
    }

    #[test]
    fn local_time_nonexistent() {
        // Berlin sets clocks forward from 02:00 to 03:00 on 2026-03-29.
        let error = parse("2026-03-29 02:30:00", Berlin).unwrap_err();
        let expected = TimestampError::Nonexistent {
            value: "2026-03-29 02:30:00".into(),
            zone: "Europe/Berlin".into(),
        };
        assert_eq!(error, expected);
    }

    #[test]
    fn unix_seconds() {
        assert_eq!(
            parse("1796374800", Berlin).unwrap(),
            utc("2026-12-04T09:00:00Z")
        );
        assert_eq!(parse("0", Berlin).unwrap(), utc("1970-01-01T00:00:00Z"));
    }

    #[test]
    fn unix_seconds_out_of_range() {
        let too_large_for_i64 = "99999999999999999999";
        let too_large_for_chrono = "9000000000000000";
        for value in [too_large_for_i64, too_large_for_chrono] {
            let error = parse(value, Berlin).unwrap_err();
            assert_eq!(
                error,
                TimestampError::OutOfRange {
                    value: value.into()
                }
            );
        }
    }

    #[test]
    fn garbage_rejected() {
        let values = [
            "",
            " ",
            "yesterday",
            "-1796374800",
            "1796374800.5",
            " 1796374800",
            "2026-12-04T12:00:00",
            "2026-12-04",
            "2026-12-04  12:00:00",
            "2026-12-04\t12:00:00",
            "2026-12-04 12:00",
            "2026-13-04 12:00:00",
            "2026-02-30 12:00:00",
            "2026-12-04 24:00:00",
            "+2026-12-04 12:00:00",
            "2026-12-04T12:00:00+03:00 ",
            "04.12.2026 12:00:00",
        ];
        for value in values {
            let error = parse(value, Berlin).unwrap_err();
            assert_eq!(
                error,
                TimestampError::Invalid {
                    value: value.into()
                },
                "value {value:?}"
            );
        }
    }

    #[test]
    fn invalid_error_names_formats() {
        let message = parse("yesterday", Berlin).unwrap_err().to_string();
        assert!(message.contains("\"yesterday\""), "message: {message}");
        assert!(message.contains("RFC 3339"), "message: {message}");
        assert!(
            message.contains("YYYY-MM-DD HH:MM:SS"),
            "message: {message}"
        );
        assert!(message.contains("Unix seconds"), "message: {message}");
    }

    #[test]
    fn window_boundaries_past() {
        let now = utc("2026-12-04T09:00:00Z");
        let exactly = now - TimeDelta::seconds(300);
        let one_more = now - TimeDelta::seconds(301);
        let fraction_more = now - TimeDelta::milliseconds(300_200);

        assert_eq!(check_window(exactly, now, 300), Ok(()));
        assert_eq!(
            check_window(one_more, now, 300),
            Err(TimestampError::TooOld {
                age_seconds: 301,
                window_seconds: 300
            })
        );
        assert_eq!(
            check_window(fraction_more, now, 300),
            Err(TimestampError::TooOld {
                age_seconds: 301,
                window_seconds: 300
            })
        );
    }

    #[test]
    fn window_boundaries_future() {
        let now = utc("2026-12-04T09:00:00Z");
        let exactly = now + TimeDelta::seconds(300);
        let one_more = now + TimeDelta::seconds(301);

        assert_eq!(check_window(exactly, now, 300), Ok(()));
        assert_eq!(
            check_window(one_more, now, 300),
            Err(TimestampError::InFuture {
                ahead_seconds: 301,
                window_seconds: 300
            })
        );
    }

    #[test]
    fn window_accepts_same_instant() {
        let now = utc("2026-12-04T09:00:00Z");
        assert_eq!(check_window(now, now, 300), Ok(()));
        assert_eq!(check_window(now, now, 0), Ok(()));
    }

    #[test]
    fn window_error_messages() {
        let too_old = TimestampError::TooOld {
            age_seconds: 301,
            window_seconds: 300,
        };
        let in_future = TimestampError::InFuture {
            ahead_seconds: 400,
            window_seconds: 300,
        };

        assert_eq!(too_old.code(), "timestamp_out_of_window");
        assert_eq!(in_future.code(), "timestamp_out_of_window");
        assert!(too_old.to_string().starts_with("timestamp is 301 s older"));
        assert!(in_future
            .to_string()
            .starts_with("timestamp is 400 s ahead"));
    }
}
