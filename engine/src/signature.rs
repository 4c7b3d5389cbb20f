//! Request signature version 1 and outgoing webhook signatures, the engine's only implementation of both.
//!
//! A client signs a request as follows:
//!
//! ```text
//! string_to_sign = METHOD + "\n" + PATH + "\n" + CANONICAL + "\n" + TOKEN
//! CANONICAL      = every parameter except `hash` and `token`, each as enc(name) + "=" + enc(value),
//!                  sorted by enc(name), joined with "&"
//! enc            = RFC 3986 percent-encoding of the UTF-8 bytes: A-Z a-z 0-9 - . _ ~ stay,
//!                  every other byte becomes %XX with upper-case hex
//! hash           = lower-case hex HMAC-SHA256(key = client secret, string_to_sign)
//! ```

use base64::engine::general_purpose::STANDARD as BASE64_STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes that RFC 3986 percent-encodes: everything except the unreserved characters
/// `A-Z a-z 0-9 - . _ ~`.
const RFC3986_RESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Parameter names that never enter the canonical string: the signature itself and the token,
/// which is appended to the string to sign on its own line.
const UNSIGNED_PARAMETERS: [&str; 2] = ["hash", "token"];

/// Percent-encodes `text` as RFC 3986 does, with upper-case hex digits.
fn encode(text: &str) -> String {
    utf8_percent_encode(text, RFC3986_RESERVED).to_string()
}

/// Creates an HMAC-SHA256 instance keyed with `secret`.
fn new_hmac(secret: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// Builds the canonical parameter string: every parameter except `hash` and `token`, as
/// `enc(name)=enc(value)`, sorted by the encoded name and joined with `&`.
///
/// Sorting compares the encoded names byte by byte. Parameters with equal encoded names are
/// ordered by encoded value so that the result does not depend on arrival order, although
/// request parsing rejects duplicate names before a signature is checked.
pub fn canonical_parameters(params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .filter(|(name, _)| !UNSIGNED_PARAMETERS.contains(&name.as_str()))
        .map(|(name, value)| (encode(name), encode(value)))
        .collect();
    encoded.sort();

    let pairs: Vec<String> = encoded
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    pairs.join("&")
}

/// Builds the string to sign: `METHOD\nPATH\nCANONICAL\nTOKEN`.
///
/// `method` and `path` are used exactly as given, so the caller passes the request method in
/// upper case and the path without the query string.
pub fn string_to_sign(
    method: &str,
    path: &str,
    params: &[(String, String)],
    token: &str,
) -> String {
    let canonical = canonical_parameters(params);
    format!("{method}\n{path}\n{canonical}\n{token}")
}

/// Signs `string_to_sign` with the client secret and returns the HMAC-SHA256 as 64 lower-case
/// hex digits.
pub fn sign(secret: &[u8], string_to_sign: &str) -> String {
    let mut mac = new_hmac(secret);
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks `hash` against the HMAC-SHA256 of `string_to_sign` in constant time.
///
/// Hex digits are accepted in either case, because the hash encodes the same bytes either way.
/// A hash that is not hex or does not decode to 32 bytes returns false.
pub fn verify(secret: &[u8], string_to_sign: &str, hash: &str) -> bool {
    let Ok(expected) = hex::decode(hash) else {
        return false;
    };

    let mut mac = new_hmac(secret);
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&expected).is_ok()
}

/// Computes the Standard Webhooks `webhook-signature` header value for an outgoing webhook:
/// `v1,` followed by the standard base64 of HMAC-SHA256(secret, `{webhook_id}.{timestamp}.{body}`).
///
/// `timestamp` is in Unix seconds and `body` is signed byte for byte, so it need not be UTF-8.
/// `secret` is the raw key: a `whsec_`-prefixed secret must be base64-decoded by the caller.
pub fn webhook_signature(secret: &[u8], webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = new_hmac(secret);
    mac.update(format!("{webhook_id}.{timestamp}.").as_bytes());
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("v1,{}", BASE64_STANDARD.encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    /// Returns the parameters of the test vector that `examples/clients/sign.py --vector` and
    /// `sign.php --vector` reproduce.
    fn vector_params() -> Vec<(String, String)> {
        pairs(&[
            ("timestamp", "2026-12-04T12:00:00+03:00"),
            ("recipient", "avinfo"),
            ("entity", "vehicle"),
            (
                "message",
                r#"{"vin":"XTA21099043765432","fio":"Иванов П.","phone":"+7 495"}"#,
            ),
            ("token", "tok-demo"),
        ])
    }

    const VECTOR_CANONICAL: &str = "entity=vehicle&message=%7B%22vin%22%3A%22XTA21099043765432%22%2C%22fio%22%3A%22%D0%98%D0%B2%D0%B0%D0%BD%D0%BE%D0%B2%20%D0%9F.%22%2C%22phone%22%3A%22%2B7%20495%22%7D&recipient=avinfo&timestamp=2026-12-04T12%3A00%3A00%2B03%3A00";
    const VECTOR_HASH: &str = "4109d4839532cf0163ee877a5a61601720cbd31e0409c3dd4e32d8c23a9aa0f0";

    #[test]
    fn vector_canonical_string() {
        assert_eq!(canonical_parameters(&vector_params()), VECTOR_CANONICAL);
    }

    #[test]
    fn vector_string_to_sign() {
        let text = string_to_sign("POST", "/async/message/send", &vector_params(), "tok-demo");
        let expected = format!("POST\n/async/message/send\n{VECTOR_CANONICAL}\ntok-demo");
        assert_eq!(text, expected);
    }

    #[test]
    fn vector_hash() {
        let text = string_to_sign("POST", "/async/message/send", &vector_params(), "tok-demo");
        assert_eq!(sign(b"secret-demo", &text), VECTOR_HASH);
    }

    #[test]
    fn hash_and_token_excluded() {
        let params = pairs(&[("a", "1"), ("hash", "abc"), ("token", "t")]);
        assert_eq!(canonical_parameters(&params), "a=1");
    }

    #[test]
    fn sort_by_encoded_name() {
        // Raw "Z" (0x5A) sorts before raw "é" (0xC3 0xA9), but the encoded "%C3%A9" starts with
        // "%" (0x25) and sorts first.
        let params = pairs(&[("Z", "1"), ("é", "2")]);
        assert_eq!(canonical_parameters(&params), "%C3%A9=2&Z=1");

        // Sorting whole "name=value" pairs would put "a-b=" before "a=" because "-" < "=".
        let params = pairs(&[("a-b", "2"), ("a", "1")]);
        assert_eq!(canonical_parameters(&params), "a=1&a-b=2");
    }

    #[test]
    fn unreserved_characters_kept() {
        let params = pairs(&[("n", "AZaz09-._~ +/*")]);
        assert_eq!(canonical_parameters(&params), "n=AZaz09-._~%20%2B%2F%2A");
    }

    #[test]
    fn empty_parameters_canonical() {
        assert_eq!(canonical_parameters(&[]), "");
        assert_eq!(string_to_sign("GET", "/p", &[], "t"), "GET\n/p\n\nt");
    }

    #[test]
    fn verify_accepts_own_signature() {
        let text = string_to_sign("POST", "/async/message/send", &vector_params(), "tok-demo");
        assert!(verify(b"secret-demo", &text, VECTOR_HASH));
    }

    #[test]
    fn verify_rejects_changed_value() {
        let mut params = vector_params();
        params[1].1 = "kias".to_string();
        let text = string_to_sign("POST", "/async/message/send", &params, "tok-demo");
        assert!(!verify(b"secret-demo", &text, VECTOR_HASH));
    }

    #[test]
    fn verify_rejects_wrong_secret() {
        let text = string_to_sign("POST", "/async/message/send", &vector_params(), "tok-demo");
        assert!(!verify(b"secret-other", &text, VECTOR_HASH));
    }

    #[test]
    fn verify_accepts_uppercase_hex() {
        let text = string_to_sign("POST", "/async/message/send", &vector_params(), "tok-demo");
        assert!(verify(b"secret-demo", &text, &VECTOR_HASH.to_uppercase()));
    }

    #[test]
    fn verify_rejects_malformed_hash() {
        let text = string_to_sign("POST", "/async/message/send", &vector_params(), "tok-demo");
        let truncated = &VECTOR_HASH[..62];
        let extended = format!("{VECTOR_HASH}00");
        let non_hex = format!("{}zz", &VECTOR_HASH[..62]);
        let odd_length = &VECTOR_HASH[..63];

        assert!(!verify(b"secret-demo", &text, truncated));
        assert!(!verify(b"secret-demo", &text, &extended));
        assert!(!verify(b"secret-demo", &text, &non_hex));
        assert!(!verify(b"secret-demo", &text, odd_length));
        assert!(!verify(b"secret-demo", &text, ""));
    }

    #[test]
    fn webhook_signature_matches_python() {
        // Computed independently with Python 3.11:
        // python3 -c 'import hmac,hashlib,base64; print("v1," + base64.b64encode(hmac.new(
        //   b"whsecret-demo", b"msg_2b1c.1764842400.{\"status\":\"delivered\"}",
        //   hashlib.sha256).digest()).decode())'
        let signature = webhook_signature(
            b"whsecret-demo",
            "msg_2b1c",
            1_764_842_400,
            br#"{"status":"delivered"}"#,
        );
        assert_eq!(signature, "v1,gSw4S0K+9CcD2NjvLLaCbGRTA+1YKn53cbnXDcimZOY=");
    }
}
