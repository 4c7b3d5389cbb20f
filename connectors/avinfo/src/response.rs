//! Mapping of AVINFO HTTP responses to vehicle data or connector errors, and the reply shape.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Number, Value};
use uig_connector_api::{ConnectorError, ErrorKind, HttpResponse};

use crate::lookup::Lookup;

/// Directory of AVINFO brand codes in the gateway's directory mapping.
pub const BRAND_DIRECTORY: &str = "brand";

/// Directory of AVINFO vehicle category codes in the gateway's directory mapping.
pub const CATEGORY_DIRECTORY: &str = "vehicle_category";

/// Maximum number of characters of an AVINFO error message copied into a connector error.
const UPSTREAM_MESSAGE_MAX_CHARS: usize = 300;

/// Top level of every AVINFO body: `success` is 1 with `data`, or 0 with `error`.
#[derive(Deserialize)]
struct Envelope {
    success: Option<i64>,
    /// Kept as text, so that it is read straight into [`VehicleData`].
    data: Option<Box<RawValue>>,
    error: Option<UpstreamError>,
}

/// AVINFO's `error` object.
#[derive(Deserialize)]
struct UpstreamError {
    code: Option<String>,
    message: Option<String>,
}

/// AVINFO's `data` object. Every member may be missing, and unknown members are ignored. The
/// cache keeps it serialized, and an entry written as AVINFO's own `data` reads back the same.
#[derive(Debug, Deserialize, Serialize)]
pub struct VehicleData {
    vin: Option<String>,
    plate: Option<String>,
    brand: Option<Brand>,
    model: Option<String>,
    year: Option<u16>,
    category: Option<String>,
    power: Option<Power>,
    engine_volume: Option<Number>,
    color: Option<String>,
    osago: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize, Serialize)]
struct Brand {
    code: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
struct Power {
    hp: Option<Number>,
    kw: Option<Number>,
}

/// Maps an AVINFO response to its vehicle data, or to the connector error for it.
///
/// The kinds follow the AVINFO protocol table. HTTP 401 is an auth error. HTTP 400, 402 and 404
/// are permanent. HTTP 408, 429, 5xx and `success: 0` with HTTP 200 are transient, and so is an
/// HTTP 200 body that is not the documented JSON. A `Retry-After` in seconds on 429 and 503
/// becomes the retry hint. A 404 without AVINFO's error body means that the URL is wrong, which
/// is a config error. Any other status is permanent.
pub fn vehicle_data(response: &HttpResponse, lookup: &Lookup) -> Result<VehicleData, ConnectorError> {
    let status = response.status;
    let envelope: Option<Envelope> = serde_json::from_slice(&response.body).ok();
    let upstream_error = envelope.as_ref().and_then(|envelope| envelope.error.as_ref());

    match status {
        200 => success_data(response, envelope, lookup),
        400 => Err(upstream_failure(
            ErrorKind::PERMANENT,
            "bad_request",
            format!("AVINFO rejected {lookup} as invalid"),
            status,
            upstream_error,
        )),
        401 => Err(upstream_failure(
            ErrorKind::AUTH,
            "invalid_key",
            "AVINFO rejected the API key: check settings.api_key".to_string(),
            status,
            upstream_error,
        )),
        402 => Err(upstream_failure(
            ErrorKind::PERMANENT,
            "no_balance",
            "the AVINFO account has no paid requests left: top up the balance, then send the request again".to_string(),
            status,
            upstream_error,
        )),
        404 if upstream_error.is_some() => Err(upstream_failure(
            ErrorKind::PERMANENT,
            "not_found",
            format!("AVINFO has no vehicle with {lookup}"),
            status,
            upstream_error,
        )),
        404 => Err(ConnectorError::config(format!(
            "AVINFO returned HTTP 404 without its JSON error body, so the vehicle endpoint does not exist at this \
             address: check settings.base_url ({})",
            describe_body(response)
        ))),
        408 | 429 | 500..=599 => {
            let summary = match status {
                408 => "AVINFO timed out reading the request, retry later",
                429 => "AVINFO rate limit exceeded, retry later",
                _ => "AVINFO failed, retry later",
            };
            let mut error = upstream_failure(ErrorKind::TRANSIENT, "", summary.to_string(), status, upstream_error);
            if matches!(status, 429 | 503) {
                if let Some(seconds) = response.header("retry-after").and_then(parse_retry_after) {
                    error = error.with_retry_after_ms(seconds.saturating_mul(1000));
                }
            }
            Err(error)
        }
        _ => Err(upstream_failure(
            ErrorKind::PERMANENT,
            "",
            "AVINFO returned an HTTP status that its protocol does not define".to_string(),
            status,
            upstream_error,
        )),
    }
}

/// Handles HTTP 200: `success: 1` with a valid `data` object, or `success: 0` with an error.
fn success_data(response: &HttpResponse, envelope: Option<Envelope>, lookup: &Lookup) -> Result<VehicleData, ConnectorError> {
    let Some(envelope) = envelope else {
        return Err(unexpected_body(response, "the body is not the AVINFO JSON envelope"));
    };

    match envelope.success {
        Some(1) => {}
        Some(0) => {
            let upstream_error = envelope.error.as_ref();
            let code = upstream_error.and_then(|error| error.code.as_deref()).unwrap_or_default();
            let summary = if code == "source_unavailable" {
                format!("a register behind AVINFO is unavailable for {lookup}, retry later")
            } else {
                format!("AVINFO reported an error for {lookup} with HTTP 200")
            };
            return Err(upstream_failure(ErrorKind::TRANSIENT, "", summary, 200, upstream_error));
        }
        _ => return Err(unexpected_body(response, "\"success\" is missing or neither 0 nor 1")),
    }

    let Some(data) = envelope.data else {
        return Err(unexpected_body(response, "\"success\" is 1 but \"data\" is missing"));
    };
    parse_vehicle(data.get()).map_err(|reason| unexpected_body(response, &reason))
}

/// The reply the gateway's clients receive, in the order of its members.
#[derive(Serialize)]
struct Reshaped {
    vin: Option<String>,
    plate: Option<String>,
    brand: Option<ReshapedBrand>,
    model: Option<String>,
    year: Option<u16>,
    category: Option<ReshapedCategory>,
    power_hp: Option<Number>,
    power_kw: Option<Number>,
    engine_volume: Option<Number>,
    color: Option<String>,
    osago: Option<Vec<Value>>,
    source: &'static str,
}

#[derive(Serialize)]
struct ReshapedBrand {
    code: Option<String>,
    name: Option<String>,
    avinfo_code: Option<String>,
}

#[derive(Serialize)]
struct ReshapedCategory {
    code: Option<String>,
    avinfo_code: String,
}

/// Reshapes AVINFO's vehicle data into the JSON text of the reply the gateway's clients receive.
///
/// `map_to_internal(directory, external_code)` returns the internal code of an AVINFO code, or
/// `None`, which puts `null` into the reply's `code`.
pub fn reshape(vehicle: VehicleData, mut map_to_internal: impl FnMut(&str, &str) -> Option<String>) -> String {
    let brand = vehicle.brand.map(|brand| ReshapedBrand {
        code: brand.code.as_deref().and_then(|code| map_to_internal(BRAND_DIRECTORY, code)),
        name: brand.name,
        avinfo_code: brand.code,
    });
    let category = vehicle.category.map(|category| ReshapedCategory {
        code: map_to_internal(CATEGORY_DIRECTORY, &category),
        avinfo_code: category,
    });
    let (power_hp, power_kw) = match vehicle.power {
        Some(power) => (power.hp, power.kw),
        None => (None, None),
    };
    let reshaped = Reshaped {
        vin: vehicle.vin,
        plate: vehicle.plate,
        brand,
        model: vehicle.model,
        year: vehicle.year,
        category,
        power_hp,
        power_kw,
        engine_volume: vehicle.engine_volume,
        color: vehicle.color,
        osago: vehicle.osago,
        source: "avinfo",
    };
    serde_json::to_string(&reshaped).expect("the reply has only strings, numbers and JSON values")
}

/// Parses AVINFO's `data` object (JSON text) into [`VehicleData`], or returns why it does not fit.
fn parse_vehicle(data: &str) -> Result<VehicleData, String> {
    read_vehicle(data, "\"data\"")
}

/// Parses a cached `data` object (JSON text) into [`VehicleData`].
pub fn parse_cached(text: &str) -> Result<VehicleData, String> {
    read_vehicle(text, "the cached data")
}

/// Reads `text` into [`VehicleData`]. It must be an object, because serde would also read the
/// struct from an array by position. `what` names the text in the error.
fn read_vehicle(text: &str, what: &str) -> Result<VehicleData, String> {
    if !text.starts_with('{') {
        return Err(format!("{what} is not an object"));
    }
    serde_json::from_str(text).map_err(|error| format!("{what} does not match the documented shape: {error}"))
}

/// Builds the error for an AVINFO error response.
///
/// The code is AVINFO's `error.code` when given, else `default_code`. The message is `summary`
/// followed by the HTTP status, the code and AVINFO's own message in brackets.
fn upstream_failure(
    kind: ErrorKind,
    default_code: &str,
    summary: String,
    status: u16,
    upstream_error: Option<&UpstreamError>,
) -> ConnectorError {
    let upstream_code = upstream_error.and_then(|error| error.code.as_deref()).filter(|code| !code.is_empty());
    let code = upstream_code.unwrap_or(default_code);

    let mut detail = format!("HTTP {status}");
    if !code.is_empty() {
        detail.push_str(&format!(", {code}"));
    }
    if let Some(message) = upstream_error.and_then(|error| error.message.as_deref()) {
        let message: String = message.chars().take(UPSTREAM_MESSAGE_MAX_CHARS).collect();
        detail.push_str(&format!(": {message}"));
    }

    ConnectorError::new(kind, format!("{summary} ({detail})")).with_code(code)
}

/// Builds the transient error for an HTTP 200 body that is not what the protocol documents.
fn unexpected_body(response: &HttpResponse, reason: &str) -> ConnectorError {
    ConnectorError::transient(format!(
        "AVINFO returned an unexpected body with HTTP 200: {reason} ({})",
        describe_body(response)
    ))
}

/// Describes a body by status, content type and size, without copying its content, which may
/// echo the request URL and with it the API key.
fn describe_body(response: &HttpResponse) -> String {
    let content_type = response.header("content-type").unwrap_or("no content-type");
    format!("HTTP {}, {}, {} bytes", response.status, content_type, response.body.len())
}

/// Parses a `Retry-After` value in seconds.
///
/// NOTE: a `Retry-After` in the HTTP-date form is ignored, so such a response carries no retry hint.
fn parse_retry_after(value: &str) -> Option<u64> {
    value.trim().parse().ok()
}

#[cfg(test)]
mod tests;
