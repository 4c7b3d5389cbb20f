//! Request signature version 1, computed the way a client does (README "Signature, version 1").

use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;

/// Bytes that RFC 3986 percent-encodes: all but `A-Z a-z 0-9 - . _ ~`.
const RFC3986_RESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Token and secret of the benchmark's gateway client.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub token: String,
    pub secret: String,
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, RFC3986_RESERVED).to_string()
}

/// Returns the lower-case hex HMAC-SHA256 of `METHOD\nPATH\nCANONICAL\nTOKEN`, where CANONICAL is
/// every parameter as `enc(name)=enc(value)`, sorted by the encoded name and joined with `&`.
///
/// `params` must not contain `hash` or `token`.
pub fn signature(credentials: &Credentials, method: &str, path: &str, params: &[(&str, &str)]) -> String {
    let mut encoded: Vec<(String, String)> = params.iter().map(|(name, value)| (encode(name), encode(value))).collect();
    encoded.sort();
    let canonical: Vec<String> = encoded.iter().map(|(name, value)| format!("{name}={value}")).collect();
    let string_to_sign = format!("{method}\n{path}\n{}\n{}", canonical.join("&"), credentials.token);

    let mut mac = Hmac::<Sha256>::new_from_slice(credentials.secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Returns the current time as a request timestamp: RFC 3339 in UTC with milliseconds.
pub fn timestamp_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Returns `params` with a timestamp of now, the token and the hash, form-encoded (for a body or a
/// query string).
pub fn signed_form(credentials: &Credentials, method: &str, path: &str, params: &[(&str, &str)]) -> String {
    signed_form_at(credentials, method, path, params, &timestamp_now())
}

/// Like [`signed_form`], with the given timestamp.
pub fn signed_form_at(credentials: &Credentials, method: &str, path: &str, params: &[(&str, &str)], timestamp: &str) -> String {
    let mut all: Vec<(&str, &str)> = params.to_vec();
    all.push(("timestamp", timestamp));
    let hash = signature(credentials, method, path, &all);

    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(all)
        .append_pair("token", &credentials.token)
        .append_pair("hash", &hash)
        .finish()
}

/// A signed form whose timestamp is added when the request is sent, as a client signs it.
///
/// Everything but the timestamp is done in advance: the parameters are encoded and sorted, and the
/// HMAC has already read the string to sign up to the timestamp. [`LateSigned::finish`] adds the
/// timestamp, the rest of the string and the hash. So a load generator can build its requests
/// before the clock starts and still send the time of sending, as real clients do. The gateway's
/// index of repeated requests is ordered by that time, so clustered timestamps would change its cost.
#[derive(Clone)]
pub struct LateSigned {
    /// HMAC keyed with the secret that has read the string to sign up to `timestamp=`.
    mac: Hmac<Sha256>,
    /// The rest of the string to sign after the timestamp's value.
    tail: String,
    /// The form-encoded parameters, to which the timestamp, token and hash are appended.
    form: String,
    token: String,
}

impl LateSigned {
    /// Prepares `params`, which must not contain `timestamp`, `hash` or `token`.
    pub fn new(credentials: &Credentials, method: &str, path: &str, params: &[(&str, &str)]) -> LateSigned {
        let mut encoded: Vec<(String, String)> = params.iter().map(|(name, value)| (encode(name), encode(value))).collect();
        encoded.sort();
        let pairs = |list: &[(String, String)]| list.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("&");
        // "timestamp" encodes to itself, so it sorts among the encoded names as it is.
        let split = encoded.partition_point(|(name, _)| name.as_str() < "timestamp");
        let (before, after) = encoded.split_at(split);

        let mut head = format!("{method}\n{path}\n{}", pairs(before));
        if !before.is_empty() {
            head.push('&');
        }
        head.push_str("timestamp=");
        let mut tail = String::new();
        if !after.is_empty() {
            tail.push('&');
            tail.push_str(&pairs(after));
        }
        tail.push('\n');
        tail.push_str(&credentials.token);

        let mut mac = Hmac::<Sha256>::new_from_slice(credentials.secret.as_bytes()).expect("HMAC accepts keys of any length");
        mac.update(head.as_bytes());
        let form = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        LateSigned { mac, tail, form, token: credentials.token.clone() }
    }

    /// Returns the form-encoded parameters with `timestamp`, the token and the hash, as
    /// [`signed_form_at`] does.
    pub fn finish(&self, timestamp: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(encode(timestamp).as_bytes());
        mac.update(self.tail.as_bytes());
        let hash = hex::encode(mac.finalize().into_bytes());

        let mut body = String::with_capacity(self.form.len() + self.token.len() + 140);
        body.push_str(&self.form);
        // A non-empty target is taken as pairs already written, so the serializer adds the `&`.
        form_urlencoded::Serializer::new(body).append_pair("timestamp", timestamp).append_pair("token", &self.token).append_pair("hash", &hash).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector that README.md and `engine/src/signature.rs` pin.
    #[test]
    fn signature_matches_readme_vector() {
        let credentials = Credentials { token: "tok-demo".to_string(), secret: "secret-demo".to_string() };
        let params = [
            ("timestamp", "2026-12-04T12:00:00+03:00"),
            ("recipient", "avinfo"),
            ("entity", "vehicle"),
            ("message", r#"{"vin":"XTA21099043765432","fio":"Иванов П.","phone":"+7 495"}"#),
        ];
        let hash = signature(&credentials, "POST", "/async/message/send", &params);
        assert_eq!(hash, "4109d4839532cf0163ee877a5a61601720cbd31e0409c3dd4e32d8c23a9aa0f0");
    }

    /// The late form equals the one signed in one step, whether the timestamp sorts first, in
    /// between or last, with characters that need encoding, and with a repeated name.
    #[test]
    fn late_signed_form_matches_signed_form() {
        let credentials = Credentials { token: "tok demo+1".to_string(), secret: "secret-demo".to_string() };
        let timestamp = "2026-12-05T10:00:00.123+03:00";
        let cases: [&[(&str, &str)]; 7] = [
            &[("recipient", "avinfo"), ("entity", "vehicle"), ("message", r#"{"vin":"XTA 1","ref":7}"#)],
            &[("zeta", "last"), ("alpha", "first")],
            &[("zeta", "ü&=")],
            // "über" sorts after "timestamp" as text, but its encoding "%C3%BCber" sorts before.
            &[("über", "1"), ("zeta", "2")],
            // Upper-case names sort before every lower-case one.
            &[("Zeta", "1"), ("alpha", "2")],
            // Two parameters with one name are ordered by value.
            &[("tag", "b"), ("tag", "a")],
            &[],
        ];
        for params in cases {
            let late = LateSigned::new(&credentials, "POST", "/sync/message/send", params).finish(timestamp);
            assert_eq!(late, signed_form_at(&credentials, "POST", "/sync/message/send", params, timestamp), "params {params:?}");
        }
    }

    #[test]
    fn signed_form_carries_token_and_hash() {
        let credentials = Credentials { token: "t".to_string(), secret: "s".to_string() };
        let form = signed_form(&credentials, "GET", "/sync/message/list-all", &[("per_page", "100")]);
        let pairs: Vec<(String, String)> = form_urlencoded::parse(form.as_bytes()).into_owned().collect();
        let names: Vec<&str> = pairs.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["per_page", "timestamp", "token", "hash"]);
    }
}
