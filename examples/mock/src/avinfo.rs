//! Mock AVINFO vehicle lookup, `GET /api/v1/vehicle`, as docs/avinfo-api.md specifies it.
//!
//! Any valid VIN or plate gets the record that `vehicle` derives from it, except the
//! "not found" markers: a VIN ending in `00000` (`XTA21099000000000`) and a plate with the number
//! `000` (`А000АА77`) get HTTP 404 `not_found`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::info;

use crate::control::{AvinfoMode, MockState};
use crate::vehicle::{vehicle_for_plate, vehicle_for_vin, Vehicle, PLATE_LETTERS, VIN_ALPHABET};

/// Expected plate format, quoted in `invalid_plate` messages.
const PLATE_FORMAT: &str = "a plate is one letter, three digits, two letters and a region of 2 or \
     3 digits, with letters from the Cyrillic capitals А В Е К М Н О Р С Т У Х, such as А123ВС77";

/// Query parameters of a lookup. An empty `vin` or `plate` counts as absent.
#[derive(Debug, Deserialize)]
pub struct LookupQuery {
    key: Option<String>,
    vin: Option<String>,
    plate: Option<String>,
}

/// The VIN or plate that a request looks up, with surrounding whitespace trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Lookup {
    Vin(String),
    Plate(String),
}

impl Lookup {
    /// Key of this lookup in `GET /_mock/stats`, such as `vin:XTA21099043765432` or
    /// `plate:А123ВС77`.
    fn counter_key(&self) -> String {
        match self {
            Lookup::Vin(vin) => format!("vin:{vin}"),
            Lookup::Plate(plate) => format!("plate:{plate}"),
        }
    }

    /// Checks whether this is a "not found" marker: a VIN ending in `00000` or a plate
    /// numbered `000`.
    fn is_unregistered(&self) -> bool {
        match self {
            Lookup::Vin(vin) => vin.ends_with("00000"),
            Lookup::Plate(plate) => plate.chars().skip(1).take(3).all(|c| c == '0'),
        }
    }
}

/// Successful AVINFO response, HTTP 200.
#[derive(Debug, Serialize)]
struct Success {
    success: u8,
    balance: u64,
    data: Vehicle,
}

/// AVINFO error response: `{"success": 0, "error": {"code": ..., "message": ...}}` with `status`.
#[derive(Debug)]
struct AvinfoError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl AvinfoError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AvinfoError {
            status,
            code,
            message: message.into(),
        }
    }

    /// HTTP 400 `invalid_request`: the query names no single VIN or plate or cannot be parsed.
    /// The protocol does not list this code because the connector always sends one of them.
    fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
}

impl IntoResponse for AvinfoError {
    fn into_response(self) -> Response {
        let body = json!({
            "success": 0,
            "error": { "code": self.code, "message": self.message },
        });
        (self.status, Json(body)).into_response()
    }
}

fn non_empty(value: &Option<String>) -> Option<String> {
    let trimmed = value.as_deref()?.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// Returns the lookup that a query requests, or `invalid_request` unless exactly one of `vin` and
/// `plate` is given.
fn requested_lookup(query: &LookupQuery) -> Result<Lookup, AvinfoError> {
    match (non_empty(&query.vin), non_empty(&query.plate)) {
        (Some(vin), None) => Ok(Lookup::Vin(vin)),
        (None, Some(plate)) => Ok(Lookup::Plate(plate)),
        (None, None) => Err(AvinfoError::invalid_request(
            "missing vin or plate: pass exactly one of the query parameters vin and plate",
        )),
        (Some(_), Some(_)) => Err(AvinfoError::invalid_request(
            "both vin and plate given: pass exactly one of the query parameters vin and plate",
        )),
    }
}

/// Checks the VIN format: 17 characters, digits and Latin capitals except `I`, `O` and `Q`.
fn check_vin(vin: &str) -> Result<(), AvinfoError> {
    let invalid_vin =
        |message: String| AvinfoError::new(StatusCode::BAD_REQUEST, "invalid_vin", message);

    let length = vin.chars().count();
    if length != 17 {
        return Err(invalid_vin(format!(
            "VIN \"{vin}\" has {length} characters, expected 17"
        )));
    }

    let invalid_character = vin
        .chars()
        .enumerate()
        .find(|(_, character)| !VIN_ALPHABET.contains(*character));
    if let Some((index, character)) = invalid_character {
        return Err(invalid_vin(format!(
            "VIN \"{vin}\" contains '{character}' at position {}: a VIN contains only digits and \
             Latin capitals except I, O and Q",
            index + 1
        )));
    }
    Ok(())
}

/// Checks the plate format: letter, three digits, two letters, region of 2 or 3 digits, with
/// letters from the 12 Cyrillic capitals in `PLATE_LETTERS`.
fn check_plate(plate: &str) -> Result<(), AvinfoError> {
    let characters: Vec<char> = plate.chars().collect();
    let is_letter = |character: &char| PLATE_LETTERS.contains(*character);

    let is_valid = matches!(characters.len(), 8 | 9)
        && is_letter(&characters[0])
        && characters[1..4].iter().all(char::is_ascii_digit)
        && characters[4..6].iter().all(is_letter)
        && characters[6..].iter().all(char::is_ascii_digit);
    if is_valid {
        return Ok(());
    }

    let hint = if plate
        .chars()
        .any(|character| character.is_ascii_alphabetic())
    {
        " because it contains Latin letters where Cyrillic ones are expected"
    } else {
        ""
    };
    Err(AvinfoError::new(
        StatusCode::BAD_REQUEST,
        "invalid_plate",
        format!("plate \"{plate}\" is invalid{hint}: {PLATE_FORMAT}"),
    ))
}

/// Builds the response to one lookup in the current fault mode. Checks run in this order:
/// the `slow` delay, `error_500`, the API key, the query, the VIN or plate format, `no_balance`,
/// `outage`, the "not found" markers and finally the balance.
async fn build_response(
    state: &MockState,
    query: Result<LookupQuery, AvinfoError>,
) -> Result<Success, AvinfoError> {
    let (mode, slow_delay) = state.avinfo_mode();
    if mode == AvinfoMode::Slow {
        tokio::time::sleep(slow_delay).await;
    }
    if mode == AvinfoMode::Error500 {
        return Err(AvinfoError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal server error (mock mode error_500)",
        ));
    }

    let query = query?;
    let Some(key) = query.key.as_deref().filter(|key| !key.is_empty()) else {
        return Err(AvinfoError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_key",
            "missing API key: pass it in the key query parameter",
        ));
    };
    if key != state.avinfo_key() {
        return Err(AvinfoError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_key",
            "invalid API key: it does not match the --avinfo-key that uig-mock was started with",
        ));
    }

    let lookup = requested_lookup(&query)?;
    match &lookup {
        Lookup::Vin(vin) => check_vin(vin)?,
        Lookup::Plate(plate) => check_plate(plate)?,
    }

    if mode == AvinfoMode::NoBalance {
        return Err(no_balance());
    }
    if mode == AvinfoMode::Outage {
        return Err(AvinfoError::new(
            StatusCode::OK,
            "source_unavailable",
            "the vehicle register is temporarily unavailable (mock mode outage), retry later",
        ));
    }
    if lookup.is_unregistered() {
        return Err(AvinfoError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no vehicle found for {}", lookup.counter_key()),
        ));
    }
    let Some(balance) = state.charge_request() else {
        return Err(no_balance());
    };

    let data = match &lookup {
        Lookup::Vin(vin) => vehicle_for_vin(vin),
        Lookup::Plate(plate) => vehicle_for_plate(plate),
    };
    Ok(Success {
        success: 1,
        balance,
        data,
    })
}

fn no_balance() -> AvinfoError {
    AvinfoError::new(
        StatusCode::PAYMENT_REQUIRED,
        "no_balance",
        "the account has no paid requests left",
    )
}

/// `GET /api/v1/vehicle?key=KEY&vin=VIN` or `&plate=PLATE`: counts the request, then responds
/// as the current fault mode dictates.
pub async fn get_vehicle(
    State(state): State<MockState>,
    query: Result<Query<LookupQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(query)| query).map_err(|rejection| {
        AvinfoError::invalid_request(format!("invalid query string: {}", rejection.body_text()))
    });

    let counter_key = query
        .as_ref()
        .ok()
        .and_then(|query| requested_lookup(query).ok())
        .map(|lookup| lookup.counter_key());
    state.record_avinfo_request(counter_key.as_deref());
    let lookup = counter_key.as_deref().unwrap_or("-");

    match build_response(&state, query).await {
        Ok(success) => {
            info!(lookup, balance = success.balance, "avinfo lookup succeeded");
            Json(success).into_response()
        }
        Err(error) => {
            info!(
                lookup,
                status = error.status.as_u16(),
                code = error.code,
                "avinfo lookup returned an error"
            );
            error.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(vin: Option<&str>, plate: Option<&str>) -> LookupQuery {
        LookupQuery {
            key: Some("key".to_owned()),
            vin: vin.map(str::to_owned),
            plate: plate.map(str::to_owned),
        }
    }

    #[test]
    fn vin_format_cases() {
        let cases = [
            ("XTA21099043765432", None),
            ("WVWZZZ1KZ6W000001", None),
            ("XTA2109904376543", Some("has 16 characters")),
            ("XTA210990437654321", Some("has 18 characters")),
            ("XTA2109904376543I", Some("'I' at position 17")),
            ("XTO21099043765432", Some("'O' at position 3")),
            ("xta21099043765432", Some("'x' at position 1")),
            ("ХТА21099043765432", Some("'Х' at position 1")),
        ];
        for (vin, expected) in cases {
            let outcome = check_vin(vin);
            match expected {
                None => assert!(outcome.is_ok(), "VIN {vin} rejected: {outcome:?}"),
                Some(fragment) => {
                    let error = outcome.expect_err(vin);
                    assert_eq!(error.code, "invalid_vin");
                    assert!(error.message.contains(fragment), "{vin}: {}", error.message);
                }
            }
        }
    }

    #[test]
    fn plate_format_cases() {
        let valid = ["А123ВС77", "Х001ХХ777", "М999ММ50", "У456КТ199"];
        for plate in valid {
            assert!(check_plate(plate).is_ok(), "plate {plate} rejected");
        }

        let invalid = [
            "A123BC77",
            "а123вс77",
            "Б123ВС77",
            "А123ВС7",
            "А123ВС7777",
            "А12ВС77",
            "АА123ВС77",
            "А123В77",
            "",
        ];
        for plate in invalid {
            let error = check_plate(plate).expect_err(plate);
            assert_eq!(error.code, "invalid_plate");
            assert!(
                error.message.contains("А123ВС77"),
                "{plate}: {}",
                error.message
            );
        }
    }

    #[test]
    fn latin_plate_message_names_cause() {
        let error = check_plate("A123BC77").unwrap_err();
        assert!(error.message.contains("Latin letters"), "{}", error.message);
    }

    #[test]
    fn lookup_needs_exactly_one_value() {
        assert_eq!(
            requested_lookup(&query(Some(" XTA21099043765432 "), None)).unwrap(),
            Lookup::Vin("XTA21099043765432".to_owned())
        );
        assert_eq!(
            requested_lookup(&query(None, Some("А123ВС77"))).unwrap(),
            Lookup::Plate("А123ВС77".to_owned())
        );
        assert_eq!(
            requested_lookup(&query(Some(""), Some("А123ВС77"))).unwrap(),
            Lookup::Plate("А123ВС77".to_owned())
        );

        let neither = requested_lookup(&query(None, Some("  "))).unwrap_err();
        assert_eq!(neither.code, "invalid_request");
        assert!(neither.message.starts_with("missing vin or plate"));

        let both =
            requested_lookup(&query(Some("XTA21099043765432"), Some("А123ВС77"))).unwrap_err();
        assert_eq!(both.code, "invalid_request");
        assert!(both.message.starts_with("both vin and plate"));
    }

    #[test]
    fn not_found_markers() {
        assert!(Lookup::Vin("XTA21099000000000".to_owned()).is_unregistered());
        assert!(!Lookup::Vin("XTA21099000000001".to_owned()).is_unregistered());
        assert!(Lookup::Plate("А000АА77".to_owned()).is_unregistered());
        assert!(!Lookup::Plate("А001АА77".to_owned()).is_unregistered());
    }
}
