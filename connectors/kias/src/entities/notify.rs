//! Entity `notify`: passes an event to KIAS, as the previous gateway's `notify-kias` service did.
//!
//! The payload is a JSON object of event fields with a required `event` string. Every member
//! becomes a parameter by the generic rules of [`crate::params`].
//!
//! NOTE: a retry after a lost response notifies KIAS again, because KIAS offers no lookup of
//! notifications. The procedure receives no external key, since the payload's members are the
//! only parameters that it expects.

use serde_json::Value;
use uig_connector_api::{ConnectorError, Reply, SendRequest};

use crate::client::{Call, KiasClient};
use crate::entities::{payload_object, NOTIFY};
use crate::params::{params_from_object, FieldError};
use crate::reply::element_to_json;

/// Maximum number of characters of `event`.
const EVENT_MAX_CHARS: usize = 100;

/// Sends the notification and returns the procedure's result as the reply.
pub fn send(
    client: &KiasClient,
    procedure: &str,
    request: &SendRequest,
    context: &str,
) -> Result<Reply, ConnectorError> {
    let object = payload_object(&request.payload, NOTIFY)?;
    let error = |field: FieldError| field.into_connector_error(NOTIFY);

    match object.get("event") {
        Some(Value::String(event)) if !event.trim().is_empty() && event.chars().count() <= EVENT_MAX_CHARS => {}
        Some(_) => {
            return Err(error(FieldError::new(
                "event",
                format!("must be a non-empty string of at most {EVENT_MAX_CHARS} characters"),
            )))
        }
        None => return Err(error(FieldError::new("event", "is missing: name the event, such as \"POLICY_ISSUED\""))),
    }
    let params = params_from_object(&object).map_err(error)?;

    let result = client.exec(&Call { procedure, params: &params, idempotent: false, context })?;
    Ok(Reply::done(element_to_json(&result).to_string()))
}
