//! Fuzz harness for the KIAS connector's response body decoding, XML parsing and reply reading.
//!
//! Input layout: line 1 is the HTTP status (200 when it is not a number), line 2 the
//! `Content-Type` value (no header when the line is empty), and every byte after the second `\n`
//! is the response body.

use encoding_rs::{Encoding, REPLACEMENT, UTF_8};
use uig_connector_api::reexports::{RString, RVec, Tuple2};
use uig_connector_api::{ErrorKind, HttpResponse};
use uig_connector_kias::data::read_data;
use uig_connector_kias::encoding::{charset_parameter, decode_xml_body, DecodeError};
use uig_connector_kias::reply::element_to_json;
use uig_connector_kias::soap::{self, INVALID_ENCODING, MALFORMED_RESPONSE};
use uig_connector_kias::xml::{Element, MAX_DEPTH};

use super::input::Lines;

const DEFAULT_STATUS: u16 = 200;

/// Stack size of the thread that runs each input. Recursion without a depth limit overflows it
/// with a few hundred nested elements, about 1 KB of input. The 2 MiB stack of a tokio blocking
/// thread, where the connector runs, took about 3,000 levels in roxmltree 0.20 (measured with the
/// optimized fuzz build). The regression tests run unoptimized,
/// with larger stack frames, so they get 1 MiB. cargo-fuzz sets `cfg(fuzzing)`.
#[allow(unexpected_cfgs)]
const STACK_BYTES: usize = if cfg!(fuzzing) {
    256 * 1024
} else {
    1024 * 1024
};

/// Runs one fuzz input through body decoding, `Element::parse_document`, the reply conversion
/// and `soap::read_response`, on a thread with a small stack.
pub fn check(data: &[u8]) {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .stack_size(STACK_BYTES)
            .spawn_scoped(scope, || check_on_current_thread(data))
            .expect("failed to start the harness thread");
        if let Err(panic) = worker.join() {
            std::panic::resume_unwind(panic);
        }
    });
}

fn check_on_current_thread(data: &[u8]) {
    let mut lines = Lines::new(data);
    let status = lines.next_text().parse().unwrap_or(DEFAULT_STATUS);
    let content_type = lines.next_text();
    let content_type = (!content_type.is_empty()).then_some(content_type);
    let body = lines.rest();

    let decoded = decode_xml_body(body, content_type.as_deref());
    match &decoded {
        Ok(text) => {
            check_decoded_text(body, content_type.as_deref(), text);
            check_document(text);
        }
        Err(error) => assert!(!error.to_string().is_empty(), "empty message for {error:?}"),
    }

    check_response(status, content_type, body, &decoded);
}

/// Checks decoded text against the body where the `Content-Type` charset alone decides the
/// encoding: UTF-8 text is the body itself, and single-byte text encodes back to the body.
fn check_decoded_text(body: &[u8], content_type: Option<&str>, text: &str) {
    if Encoding::for_bom(body).is_some() {
        return;
    }
    let Some(label) = content_type.and_then(charset_parameter) else {
        return;
    };
    let Some(encoding) =
        Encoding::for_label(label.as_bytes()).filter(|encoding| *encoding != REPLACEMENT)
    else {
        return;
    };

    if encoding == UTF_8 {
        assert_eq!(text.as_bytes(), body, "UTF-8 body changed by decoding");
    }
    if encoding.is_single_byte() {
        let non_ascii_utf8 = !body.is_ascii() && std::str::from_utf8(body).is_ok();
        assert!(!non_ascii_utf8, "UTF-8 body decoded as {}", encoding.name());

        let (encoded, _, unmappable) = encoding.encode(text);
        assert!(
            !unmappable,
            "decoded {} text does not encode back",
            encoding.name()
        );
        assert_eq!(
            &encoded[..],
            body,
            "{} body changed by decoding and encoding",
            encoding.name()
        );
    }
}

/// Parses decoded text as the connector does and runs the reply conversions on the result.
fn check_document(text: &str) {
    let parsed = Element::parse_document(text);
    if parsed.is_ok() {
        assert!(
            roxmltree::Document::parse(text).is_ok(),
            "a document that roxmltree rejects was accepted"
        );
    }
    let Ok(root) = parsed else {
        return;
    };

    assert!(
        depth(&root) <= MAX_DEPTH,
        "a document deeper than {MAX_DEPTH} levels was accepted"
    );
    let _ = element_to_json(&root);
    let _ = read_data(&root);
    let _ = soap::find_fault(&root);
}

fn depth(element: &Element) -> usize {
    1 + element.children.iter().map(depth).max().unwrap_or(0)
}

/// Checks `soap::read_response` on the whole response, and for a 2xx status the error class of
/// a body that does not decode.
fn check_response(
    status: u16,
    content_type: Option<String>,
    body: &[u8],
    decoded: &Result<String, DecodeError>,
) {
    let headers: Vec<Tuple2<RString, RString>> = content_type
        .into_iter()
        .map(|value| Tuple2(RString::from("content-type"), RString::from(value)))
        .collect();
    let response = HttpResponse {
        status,
        headers: RVec::from(headers),
        body: RVec::from(body.to_vec()),
    };

    let result = soap::read_response(&response);
    if let Ok(data) = &result {
        assert!(
            depth(data) <= MAX_DEPTH,
            "a data document deeper than {MAX_DEPTH} levels was returned"
        );
        let _ = element_to_json(data);
        let _ = read_data(data);
    }

    let Err(decode_error) = decoded else {
        return;
    };
    if !(200..300).contains(&status) {
        return;
    }
    let error = result.expect_err("a body that does not decode was read");
    match decode_error {
        DecodeError::Truncated { .. } => {
            assert_eq!(error.kind, ErrorKind::TRANSIENT, "{error:?}");
            assert_eq!(error.code.as_str(), MALFORMED_RESPONSE, "{error:?}");
        }
        _ => {
            assert_eq!(error.kind, ErrorKind::PERMANENT, "{error:?}");
            assert_eq!(error.code.as_str(), INVALID_ENCODING, "{error:?}");
        }
    }
}
