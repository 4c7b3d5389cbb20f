//! Fuzz harness for request parameter decoding and the canonical string to sign.
//!
//! Input layout: line 1 is the HTTP method, line 2 the `Content-Type` value, line 3 the query
//! string without `?`, and every byte after the third `\n` is the body. A missing line is empty.
//! Besides panics, the harness checks the contracts that `uig_engine::params` and
//! `uig_engine::signature` document.

use serde::de::IgnoredAny;
use serde_json::Value;
use uig_engine::params::{self, Param, ParamError};
use uig_engine::signature;

use super::input::Lines;

const PATH: &str = "/async/message/send";
const TOKEN: &str = "tok-fuzz";
const SECRET: &[u8] = b"secret-fuzz";
const OTHER_SECRET: &[u8] = b"secret-other";

/// Characters that the canonical string may contain: the RFC 3986 unreserved characters, `%` of
/// the escapes and the `=` and `&` separators.
const CANONICAL_BYTES: &[u8] = b"-._~%=&";

/// Messages of serde_json errors that parsing into `Value` raises but syntax checking does not.
const VALUE_ONLY_ERRORS: [&str; 5] = [
    "recursion limit exceeded",
    "number out of range",
    "lone leading surrogate in hex escape",
    "unexpected end of hex escape",
    "invalid unicode code point",
];

/// Runs one fuzz input through the parameter decoding and signing steps of an API request.
pub fn check(data: &[u8]) {
    let mut lines = Lines::new(data);
    let method = lines.next_text();
    let content_type = lines.next_line();
    let query = lines.next_text();
    let body = lines.rest();

    check_json_value_kept_as_member(body);

    let Some(entries) = collect(&method, content_type, &query, body) else {
        return;
    };
    check_signature(&method, &entries);
}

/// Collects the parameters as `api::request::read_params` does, checking each decoder's output on
/// the way. Returns `None` when the request would be rejected.
fn collect(method: &str, content_type: &[u8], query: &str, body: &[u8]) -> Option<Vec<Param>> {
    let query_params = accepted(params::from_query(query))?;
    check_form_round_trip(&query_params);

    let body_params = if body.is_empty() || method == "GET" {
        Vec::new()
    } else {
        let content_type = header_text(content_type);
        let media_type = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media_type.as_str() {
            "application/x-www-form-urlencoded" => {
                let body_params = accepted(params::from_form(body))?;
                check_form_round_trip(&body_params);
                body_params
            }
            "application/json" => {
                let result = params::from_json(body);
                check_json_against_value(body, &result);
                accepted(result)?
            }
            _ => return None,
        }
    };

    let all: Vec<Param> = query_params.iter().chain(&body_params).cloned().collect();
    let merged = params::merge(query_params, body_params);
    check_merge(&all, &merged);
    Some(accepted(merged)?.entries().to_vec())
}

/// Returns the header value as `HeaderValue::to_str` in the `http` crate does: the text when every
/// byte is visible ASCII or a tab, else an empty string, as `read_params` treats an unreadable value.
fn header_text(value: &[u8]) -> &str {
    let readable = value
        .iter()
        .all(|&byte| byte == b'\t' || (0x20..0x7f).contains(&byte));
    match std::str::from_utf8(value) {
        Ok(text) if readable => text,
        _ => "",
    }
}

/// Returns the parameters of an accepted result. For a rejection it checks that the error has an
/// API error code and a message, and returns `None`.
fn accepted<T>(result: Result<T, ParamError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            let code = error.code();
            assert!(
                [
                    "duplicate_parameter",
                    "invalid_encoding",
                    "invalid_json_body"
                ]
                .contains(&code),
                "unexpected error code {code:?} for {error:?}"
            );
            assert!(!error.to_string().is_empty(), "empty message for {error:?}");
            None
        }
    }
}

/// Checks that decoded form parameters, encoded again by `form_urlencoded`, decode to themselves.
fn check_form_round_trip(decoded: &[Param]) {
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(decoded)
        .finish();
    let again = params::from_form(encoded.as_bytes());
    assert_eq!(again.as_deref(), Ok(decoded), "re-encoded form {encoded:?}");
}

/// Checks `from_json` against `serde_json::Value`: the same bodies parse, a non-object is
/// `NotAnObject`, a string member is its unescaped text and any other member is its JSON text as
/// sent, which parses to the same value.
fn check_json_against_value(body: &[u8], result: &Result<Vec<Param>, ParamError>) {
    let value = match serde_json::from_slice::<Value>(body) {
        Ok(value) => value,
        Err(error) => {
            // serde_json::Value rejects more than 128 nested levels, numbers beyond the f64 range
            // and \u escapes that are no Unicode scalar value. from_json keeps values other than
            // strings as raw text, which serde_json checks for syntax only, so it may accept them.
            let message = error.to_string();
            let value_only = VALUE_ONLY_ERRORS
                .iter()
                .any(|known| message.contains(known));
            if !value_only {
                assert!(
                    matches!(result, Err(ParamError::InvalidJson { .. })),
                    "serde_json rejects the body ({error}), from_json returned {result:?}"
                );
            }
            return;
        }
    };

    let Value::Object(object) = value else {
        assert_eq!(
            result,
            &Err(ParamError::NotAnObject),
            "body parses to {value}"
        );
        return;
    };
    let members = match result {
        Ok(members) => members,
        Err(error) => panic!("serde_json parses the object, from_json returned {error:?}"),
    };
    let body_text = std::str::from_utf8(body).expect("a parsed JSON body is UTF-8");

    for (name, expected) in &object {
        // With duplicate names serde_json keeps the last value.
        let (_, value) = members
            .iter()
            .rev()
            .find(|(member, _)| member == name)
            .unwrap_or_else(|| panic!("member {name:?} missing from {members:?}"));

        match expected {
            Value::String(text) => assert_eq!(value, text, "string member {name:?}"),
            _ => {
                assert!(
                    body_text.contains(value.as_str()),
                    "member {name:?} value {value:?} is not text of the body"
                );
                let reparsed: Value = serde_json::from_str(value).unwrap_or_else(|error| {
                    panic!("member {name:?} value {value:?} is not JSON: {error}")
                });
                assert_eq!(&reparsed, expected, "member {name:?}");
            }
        }
    }
}

/// Checks the promise that a JSON value other than a string survives as the `message` member byte
/// for byte. The body, when it is any JSON value, is wrapped as that member.
fn check_json_value_kept_as_member(body: &[u8]) {
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    if serde_json::from_str::<IgnoredAny>(text).is_err() {
        return;
    }
    let trimmed = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
    let is_string = trimmed.starts_with('"');
    let unescaped = match is_string {
        // A string member is unescaped, and one with an escape that is no Unicode scalar value,
        // such as "\ud800", is rejected.
        true => match serde_json::from_str::<String>(trimmed) {
            Ok(unescaped) => unescaped,
            Err(_) => return,
        },
        false => String::new(),
    };

    let wrapped = format!("{{\"recipient\":\"avinfo\",\"message\": {text} }}");
    let members = match params::from_json(wrapped.as_bytes()) {
        Ok(members) => members,
        Err(error) => panic!("the wrapped JSON value {text:?} is rejected: {error:?}"),
    };
    let message = &members.last().expect("two members").1;

    let expected = if is_string {
        unescaped.as_str()
    } else {
        trimmed
    };
    assert_eq!(message, expected);
}

/// Checks `merge`: accepted names are unique and keep arrival order, and a rejected name occurs
/// twice.
fn check_merge(all: &[Param], merged: &Result<params::Params, ParamError>) {
    match merged {
        Ok(merged) => {
            assert_eq!(merged.entries(), all, "merge changed the parameters");
            for (index, (name, value)) in all.iter().enumerate() {
                let earlier = all[..index].iter().any(|(other, _)| other == name);
                assert!(!earlier, "duplicate name {name:?} accepted");
                assert_eq!(merged.get(name), Some(value.as_str()));
            }
        }
        Err(ParamError::Duplicate { name }) => {
            let count = all.iter().filter(|(other, _)| other == name).count();
            assert!(
                count >= 2,
                "name {name:?} occurs {count} times but is reported as duplicate"
            );
        }
        Err(error) => panic!("merge returned {error:?}"),
    }
}

/// Checks the string to sign of accepted parameters: it is deterministic, independent of
/// parameter order, decodes back to the signed parameters, and its signature verifies with the
/// same secret only.
fn check_signature(method: &str, entries: &[Param]) {
    let text = signature::string_to_sign(method, PATH, entries, TOKEN);
    assert_eq!(
        text,
        signature::string_to_sign(method, PATH, entries, TOKEN),
        "not deterministic"
    );

    let reversed: Vec<Param> = entries.iter().rev().cloned().collect();
    assert_eq!(
        text,
        signature::string_to_sign(method, PATH, &reversed, TOKEN),
        "depends on order"
    );

    let canonical = signature::canonical_parameters(entries);
    assert_eq!(text, format!("{method}\n{PATH}\n{canonical}\n{TOKEN}"));
    check_canonical_decodes(&canonical, entries);

    let hash = signature::sign(SECRET, &text);
    assert_eq!(hash.len(), 64);
    assert!(
        hash.bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)),
        "hash {hash:?}"
    );
    assert!(signature::verify(SECRET, &text, &hash));
    assert!(signature::verify(SECRET, &text, &hash.to_ascii_uppercase()));
    assert!(!signature::verify(OTHER_SECRET, &text, &hash));

    // The hash that a client sent is arbitrary text, which verify must handle without a panic.
    if let Some((_, sent)) = entries.iter().find(|(name, _)| name == "hash") {
        let _ = signature::verify(SECRET, &text, sent);
    }

    if let Some(index) = entries
        .iter()
        .position(|(name, _)| name != "hash" && name != "token")
    {
        let mut changed = entries.to_vec();
        changed[index].1.push('x');
        let changed_text = signature::string_to_sign(method, PATH, &changed, TOKEN);
        assert_ne!(
            changed_text, text,
            "a changed value keeps the string to sign"
        );
        assert!(!signature::verify(SECRET, &changed_text, &hash));
    }
}

/// Checks that the canonical string uses only its own alphabet, is sorted by encoded name and
/// percent-decodes to the signed parameters, which excludes `hash` and `token`.
fn check_canonical_decodes(canonical: &str, entries: &[Param]) {
    assert!(
        canonical
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || CANONICAL_BYTES.contains(&byte)),
        "canonical string {canonical:?}"
    );

    let pairs: Vec<(&str, &str)> = if canonical.is_empty() {
        Vec::new()
    } else {
        canonical
            .split('&')
            .map(|pair| {
                pair.split_once('=')
                    .unwrap_or_else(|| panic!("pair {pair:?} without '='"))
            })
            .collect()
    };
    assert!(
        pairs.windows(2).all(|window| window[0].0 <= window[1].0),
        "not sorted: {canonical:?}"
    );

    let mut decoded: Vec<Param> = pairs
        .iter()
        .map(|(name, value)| (percent_decode(name), percent_decode(value)))
        .collect();
    let mut signed: Vec<Param> = entries
        .iter()
        .filter(|(name, _)| name != "hash" && name != "token")
        .cloned()
        .collect();
    decoded.sort();
    signed.sort();
    assert_eq!(decoded, signed, "canonical string {canonical:?}");
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .expect("encoded from UTF-8")
        .into_owned()
}
