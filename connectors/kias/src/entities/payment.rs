//! Entity `payment_confirm`: confirms a payment stored in KIAS, such as one matched from a bank
//! statement.
//!
//! The call is safe to retry. Every confirmation carries the external key `UIG-{message_id}`.
//! From the second attempt on, the connector first looks the payment up. When KIAS lists it as
//! confirmed with this message's key, the earlier attempt succeeded after all, and that
//! confirmation is the reply, so the payment is not confirmed twice.

use uig_connector_api::{ConnectorError, Reply, SendRequest};

use crate::client::{Call, KiasClient};
use crate::entities::{
    external_key, payload_object, row_with_key, single_record, Fields, EXTERNAL_KEY_PARAM, PAYMENT_CONFIRM,
};
use crate::params::{FieldError, Param};
use crate::reply::element_to_json;
use crate::settings::Procedures;

/// Members of the payload.
const FIELDS: [&str; 5] = ["payment_isn", "amount", "date", "policy_isn", "document"];

/// Maximum number of characters of a payment document number (bank order number).
const DOCUMENT_MAX_CHARS: usize = 50;

/// A validated `payment_confirm` payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentConfirmation {
    /// ISN of the payment in KIAS.
    pub payment_isn: String,
    /// Confirmed amount, `12500.50`.
    pub amount: String,
    /// Date of the payment, `dd.mm.yyyy`.
    pub date: String,
    /// ISN of the policy the payment is for, when the client names it.
    pub policy_isn: Option<String>,
    /// Number of the payment document, when the client names it.
    pub document: Option<String>,
}

impl PaymentConfirmation {
    /// Validates the payload.
    pub fn from_payload(payload: &str) -> Result<Self, ConnectorError> {
        let object = payload_object(payload, PAYMENT_CONFIRM)?;
        let parse = || -> Result<Self, FieldError> {
            let fields = Fields::new(&object, &FIELDS)?;
            Ok(PaymentConfirmation {
                payment_isn: fields.isn("payment_isn")?,
                amount: fields.amount("amount")?,
                date: fields.date("date")?,
                policy_isn: fields.optional_isn("policy_isn")?,
                document: fields.optional_text("document", DOCUMENT_MAX_CHARS)?,
            })
        };
        parse().map_err(|error| error.into_connector_error(PAYMENT_CONFIRM))
    }

    /// Returns the parameters of the confirm procedure.
    pub fn confirm_params(&self, external_key: &str) -> Vec<Param> {
        let mut params = vec![
            Param::text("PAYMENTISN", self.payment_isn.as_str()),
            Param::text("AMOUNT", self.amount.as_str()),
            Param::text("DATEPAY", self.date.as_str()),
        ];
        if let Some(policy_isn) = &self.policy_isn {
            params.push(Param::text("POLICYISN", policy_isn.as_str()));
        }
        if let Some(document) = &self.document {
            params.push(Param::text("DOCNO", document.as_str()));
        }
        params.push(Param::text(EXTERNAL_KEY_PARAM, external_key));
        params
    }
}

/// Confirms the payment, or on a retry returns the confirmation an earlier attempt made.
pub fn send(
    client: &KiasClient,
    procedures: &Procedures,
    request: &SendRequest,
    context: &str,
) -> Result<Reply, ConnectorError> {
    let confirmation = PaymentConfirmation::from_payload(&request.payload)?;
    let key = external_key(request.message_id);

    if request.attempt > 1 {
        let find_params = [Param::text("PAYMENTISN", confirmation.payment_isn.as_str())];
        let call = Call { procedure: &procedures.payment_find, params: &find_params, idempotent: true, context };
        let found = client.exec(&call)?;
        if let Some(existing) = row_with_key(&found, &key, &procedures.payment_find)? {
            client.host().info(&format!(
                "KIAS already contains the confirmation with external key {key} from an earlier attempt: replying with it ({context})"
            ));
            return Ok(Reply::done(element_to_json(existing).to_string()));
        }
    }

    let params = confirmation.confirm_params(&key);
    let call = Call { procedure: &procedures.payment_confirm, params: &params, idempotent: false, context };
    let result = client.exec(&call)?;
    Ok(Reply::done(element_to_json(single_record(&result)).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payload_parsed() {
        let payload = json!({"payment_isn": 7700123, "amount": 4500, "date": "2025-03-02", "document": "п/п 15"});

        let confirmation = PaymentConfirmation::from_payload(&payload.to_string()).unwrap();

        assert_eq!(
            confirmation,
            PaymentConfirmation {
                payment_isn: "7700123".to_string(),
                amount: "4500.00".to_string(),
                date: "02.03.2025".to_string(),
                policy_isn: None,
                document: Some("п/п 15".to_string()),
            }
        );
        let names: Vec<String> = confirmation.confirm_params("UIG-9").into_iter().map(|param| param.name).collect();
        assert_eq!(names, ["PAYMENTISN", "AMOUNT", "DATEPAY", "DOCNO", "EXTERNALKEY"]);
    }

    #[test]
    fn missing_and_invalid_members_named() {
        let cases = [
            (json!({"amount": 1, "date": "2025-03-02"}), "payment_isn", "missing"),
            (json!({"payment_isn": "1", "date": "2025-03-02"}), "amount", "missing"),
            (json!({"payment_isn": "1", "amount": "1"}), "date", "missing"),
            (json!({"payment_isn": "x", "amount": 1, "date": "2025-03-02"}), "payment_isn", "ISN"),
            (json!({"payment_isn": "1", "amount": -1, "date": "2025-03-02"}), "amount", "positive"),
            (json!({"payment_isn": "1", "amount": 1, "date": "2025-03-02", "sum": 1}), "sum", "not accepted"),
        ];

        for (payload, field, expected) in cases {
            let error = PaymentConfirmation::from_payload(&payload.to_string()).unwrap_err();

            assert!(error.message.contains(&format!("field \"{field}\"")), "{}", error.message);
            assert!(error.message.contains(expected), "{}", error.message);
        }
    }
}
