//! Fuzz harness for request timestamp parsing and the replay window check.
//!
//! Input layout: line 1 is an IANA time zone name, line 2 the window in seconds, line 3 the
//! server time in Unix seconds, and every byte after the third `\n` is the timestamp text. An
//! unknown zone name picks a zone by the sum of its bytes, so every input has a zone. A window
//! that is not a positive integer becomes 300 s, and an unreadable server time becomes
//! 2026-12-04T09:00:00Z.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use chrono_tz::{Tz, TZ_VARIANTS};
use uig_engine::timestamp::{self, TimestampError};

use super::input::Lines;

const DEFAULT_WINDOW_SECONDS: i64 = 300;
const DEFAULT_NOW_SECONDS: i64 = 1_796_374_800;
const LOCAL_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Runs one fuzz input through `timestamp::parse` and `timestamp::check_window`.
pub fn check(data: &[u8]) {
    let mut lines = Lines::new(data);
    let zone = zone_named(lines.next_line());
    let window_seconds = window_of(&lines.next_text());
    let now = now_of(&lines.next_text());
    let value = String::from_utf8_lossy(lines.rest());

    let parsed = timestamp::parse(&value, zone);
    match &parsed {
        Ok(at) => check_round_trip(&value, zone, *at),
        Err(error) => check_rejection(&value, zone, error),
    }

    let Ok(at) = parsed else {
        return;
    };
    check_window(at, now, window_seconds);
}

fn zone_named(name: &[u8]) -> Tz {
    if let Some(zone) = std::str::from_utf8(name)
        .ok()
        .and_then(|name| name.parse::<Tz>().ok())
    {
        return zone;
    }
    let sum: usize = name.iter().map(|&byte| usize::from(byte)).sum();
    TZ_VARIANTS[sum % TZ_VARIANTS.len()]
}

/// Returns the window: any positive number of seconds. The configuration caps the window at one
/// day, but `check_window` is public and must accept any window without a panic.
fn window_of(text: &str) -> i64 {
    match text.parse::<i64>() {
        Ok(seconds) if seconds > 0 => seconds,
        _ => DEFAULT_WINDOW_SECONDS,
    }
}

fn now_of(text: &str) -> DateTime<Utc> {
    let default =
        || DateTime::from_timestamp(DEFAULT_NOW_SECONDS, 0).expect("a valid default time");
    match text.parse::<i64>() {
        Ok(seconds) => DateTime::from_timestamp(seconds, 0).unwrap_or_else(default),
        Err(_) => default(),
    }
}

/// Checks that an accepted value reads back as the same instant in the format it was sent in.
fn check_round_trip(value: &str, zone: Tz, at: DateTime<Utc>) {
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        let digits = value.trim_start_matches('0');
        let expected = if digits.is_empty() { "0" } else { digits };
        assert_eq!(
            at.timestamp().to_string(),
            expected,
            "Unix seconds {value:?}"
        );
        assert_eq!(at.timestamp_subsec_nanos(), 0, "Unix seconds {value:?}");
        return;
    }

    if let Ok(sent) = DateTime::parse_from_rfc3339(value) {
        assert_eq!(at, sent, "RFC 3339 value {value:?}");
        // RFC 3339 has four-digit years, so later instants have no RFC 3339 text to compare.
        let written = at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        if let Ok(again) = DateTime::parse_from_rfc3339(&written) {
            assert_eq!(
                timestamp::parse(&written, zone),
                Ok(again.with_timezone(&Utc)),
                "written as {written:?}"
            );
        }
        return;
    }

    let local = at.with_timezone(&zone).format(LOCAL_FORMAT).to_string();
    assert_eq!(local, value, "local time in {zone}");
}

/// Checks that a rejection names the value and has an API error code.
fn check_rejection(value: &str, zone: Tz, error: &TimestampError) {
    assert_eq!(error.code(), "invalid_timestamp", "{error:?}");
    match error {
        TimestampError::Invalid { value: named } | TimestampError::OutOfRange { value: named } => {
            assert_eq!(named, value);
        }
        TimestampError::Ambiguous {
            value: named,
            zone: zone_name,
        }
        | TimestampError::Nonexistent {
            value: named,
            zone: zone_name,
        } => {
            assert_eq!(named, value);
            assert_eq!(zone_name, zone.name());
        }
        TimestampError::TooOld { .. } | TimestampError::InFuture { .. } => {
            panic!("parse returned a window error: {error:?}")
        }
    }
    assert!(
        error.to_string().contains(value),
        "message {error} does not name {value:?}"
    );
}

/// Checks `check_window` against the difference computed here: accepted exactly when the
/// distance is at most the window, and a rejection reports the distance rounded up.
fn check_window(at: DateTime<Utc>, now: DateTime<Utc>, window_seconds: i64) {
    let result = timestamp::check_window(at, now, window_seconds);

    let age = now - at;
    let window = TimeDelta::try_seconds(window_seconds);
    let within = window.is_none_or(|window| age <= window && -age <= window);

    match result {
        Ok(()) => assert!(
            within,
            "age {age} accepted in a window of {window_seconds} s"
        ),
        Err(TimestampError::TooOld {
            age_seconds,
            window_seconds: reported,
        }) => {
            assert!(!within, "age {age} within the window rejected as too old");
            assert!(age > TimeDelta::zero(), "age {age} rejected as too old");
            assert_eq!(reported, window_seconds);
            assert!(
                age_seconds > window_seconds,
                "age {age_seconds} s within {window_seconds} s"
            );
            assert_rounded_up(age, age_seconds);
        }
        Err(TimestampError::InFuture {
            ahead_seconds,
            window_seconds: reported,
        }) => {
            assert!(!within, "age {age} within the window rejected as ahead");
            assert!(age < TimeDelta::zero(), "age {age} rejected as ahead");
            assert_eq!(reported, window_seconds);
            assert!(
                ahead_seconds > window_seconds,
                "ahead {ahead_seconds} s within {window_seconds} s"
            );
            assert_rounded_up(-age, ahead_seconds);
        }
        Err(error) => panic!("check_window returned {error:?}"),
    }
}

/// Checks that `seconds` is `distance` rounded up to whole seconds.
fn assert_rounded_up(distance: TimeDelta, seconds: i64) {
    let whole = TimeDelta::seconds(seconds);
    assert!(distance <= whole, "{distance} reported as {seconds} s");
    assert!(
        whole - distance < TimeDelta::seconds(1),
        "{distance} reported as {seconds} s"
    );
}
