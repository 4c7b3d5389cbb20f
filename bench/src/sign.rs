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

/// Returns `params` with a timestamp of now, the token and the hash, form-encoded (for a body or a
/// query string).
pub fn signed_form(credentials: &Credentials, method: &str, path: &str, params: &[(&str, &str)]) -> String {
    let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut all: Vec<(&str, &str)> = params.to_vec();
    all.push(("timestamp", &timestamp));
    let hash = signature(credentials, method, path, &all);

    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(all)
        .append_pair("token", &credentials.token)
        .append_pair("hash", &hash)
        .finish()
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

    #[test]
    fn signed_form_carries_token_and_hash() {
        let credentials = Credentials { token: "t".to_string(), secret: "s".to_string() };
        let form = signed_form(&credentials, "GET", "/sync/message/list-all", &[("per_page", "100")]);
        let pairs: Vec<(String, String)> = form_urlencoded::parse(form.as_bytes()).into_owned().collect();
        let names: Vec<&str> = pairs.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["per_page", "timestamp", "token", "hash"]);
    }
}
