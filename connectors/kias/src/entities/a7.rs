//! Entity `a7_create`: registers an A-7 receipt, the strict-accountability form that an agent
//! fills in when a client pays a premium in cash.
//!
//! The call is safe to retry. Every create carries the external key `UIG-{message_id}`. From the
//! second attempt on, the connector first looks the receipt up by series and number. When KIAS
//! already contains it with this message's key, the earlier attempt succeeded after all, and that
//! receipt is the reply, so nothing is created twice.

use uig_connector_api::{ConnectorError, Reply, SendRequest};

use crate::client::{Call, KiasClient};
use crate::entities::{
    external_key, payload_object, row_with_key, single_record, Fields, A7_CREATE, EXTERNAL_KEY_PARAM,
};
use crate::params::{FieldError, Param};
use crate::reply::element_to_json;
use crate::settings::Procedures;

/// Members of the payload.
const FIELDS: [&str; 8] = ["series", "number", "agent_isn", "policy_isn", "amount", "payer", "date", "status"];

/// Maximum number of characters of a receipt series.
const SERIES_MAX_CHARS: usize = 10;

/// Most digits of a receipt number.
const NUMBER_MAX_DIGITS: usize = 10;

/// Maximum number of characters of a payer name.
const PAYER_MAX_CHARS: usize = 255;

/// State of an A-7 form in KIAS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum A7Status {
    /// Issued to the agent, not filled in yet.
    New,
    /// Filled in for a payment.
    Spent,
    /// Lost by the agent.
    Lost,
    /// Spoiled while filling in.
    Broken,
}

impl A7Status {
    const ALL: [A7Status; 4] = [A7Status::New, A7Status::Spent, A7Status::Lost, A7Status::Broken];

    /// Returns the name KIAS uses.
    pub fn name(self) -> &'static str {
        match self {
            A7Status::New => "NEW",
            A7Status::Spent => "SPENT",
            A7Status::Lost => "LOST",
            A7Status::Broken => "BROKEN",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.name().eq_ignore_ascii_case(text))
    }
}

/// A validated `a7_create` payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct A7Receipt {
    pub series: String,
    pub number: String,
    pub agent_isn: String,
    pub policy_isn: Option<String>,
    pub amount: Option<String>,
    pub payer: Option<String>,
    /// Date of the payment, `dd.mm.yyyy`.
    pub date: String,
    pub status: A7Status,
}

impl A7Receipt {
    /// Validates the payload. `status` defaults to `SPENT`, and a `SPENT` receipt needs
    /// `policy_isn`, `amount` and `payer`, because it records a payment.
    pub fn from_payload(payload: &str) -> Result<Self, ConnectorError> {
        let object = payload_object(payload, A7_CREATE)?;
        Self::from_fields(&object).map_err(|error| error.into_connector_error(A7_CREATE))
    }

    fn from_fields(object: &serde_json::Map<String, serde_json::Value>) -> Result<Self, FieldError> {
        let fields = Fields::new(object, &FIELDS)?;

        let series = fields.text("series", SERIES_MAX_CHARS)?;
        if !series.chars().all(char::is_alphanumeric) {
            return Err(FieldError::new("series", "must contain only letters and digits"));
        }
        let status = match fields.optional_text("status", 10)? {
            None => A7Status::Spent,
            Some(text) => A7Status::parse(&text)
                .ok_or_else(|| FieldError::new("status", format!("{text:?} is not one of NEW, SPENT, LOST, BROKEN")))?,
        };

        let receipt = A7Receipt {
            series,
            number: fields.digits("number", NUMBER_MAX_DIGITS)?,
            agent_isn: fields.isn("agent_isn")?,
            policy_isn: fields.optional_isn("policy_isn")?,
            amount: fields.optional_amount("amount")?,
            payer: fields.optional_text("payer", PAYER_MAX_CHARS)?,
            date: fields.date("date")?,
            status,
        };

        if status == A7Status::Spent {
            for (name, present) in [
                ("policy_isn", receipt.policy_isn.is_some()),
                ("amount", receipt.amount.is_some()),
                ("payer", receipt.payer.is_some()),
            ] {
                if !present {
                    return Err(FieldError::new(name, "is missing: a SPENT receipt records a payment"));
                }
            }
        }
        Ok(receipt)
    }

    /// Returns the parameters of the create procedure.
    pub fn create_params(&self, external_key: &str) -> Vec<Param> {
        let mut params = vec![
            Param::text("SERIES", self.series.as_str()),
            Param::text("NUMBER", self.number.as_str()),
            Param::text("AGENTISN", self.agent_isn.as_str()),
        ];
        let optional = [("POLICYISN", &self.policy_isn), ("AMOUNT", &self.amount), ("PAYER", &self.payer)];
        for (name, value) in optional {
            if let Some(value) = value {
                params.push(Param::text(name, value.as_str()));
            }
        }
        params.push(Param::text("DATEPAY", self.date.as_str()));
        params.push(Param::text("STATUS", self.status.name()));
        params.push(Param::text(EXTERNAL_KEY_PARAM, external_key));
        params
    }

    /// Returns the parameters of the lookup procedure.
    pub fn find_params(&self) -> Vec<Param> {
        vec![Param::text("SERIES", self.series.as_str()), Param::text("NUMBER", self.number.as_str())]
    }
}

/// Registers the receipt, or on a retry returns the receipt an earlier attempt registered.
pub fn send(
    client: &KiasClient,
    procedures: &Procedures,
    request: &SendRequest,
    context: &str,
) -> Result<Reply, ConnectorError> {
    let receipt = A7Receipt::from_payload(&request.payload)?;
    let key = external_key(request.message_id);

    if request.attempt > 1 {
        let find_params = receipt.find_params();
        let call = Call { procedure: &procedures.a7_find, params: &find_params, idempotent: true, context };
        let found = client.exec(&call)?;
        if let Some(existing) = row_with_key(&found, &key, &procedures.a7_find)? {
            client.host().info(&format!(
                "KIAS already contains the receipt with external key {key} from an earlier attempt: replying with it ({context})"
            ));
            return Ok(Reply::done(element_to_json(existing).to_string()));
        }
    }

    let params = receipt.create_params(&key);
    let call = Call { procedure: &procedures.a7_create, params: &params, idempotent: false, context };
    let result = client.exec(&call)?;
    Ok(Reply::done(element_to_json(single_record(&result)).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spent_payload() -> serde_json::Value {
        json!({
            "series": "7000",
            "number": "0012345",
            "agent_isn": "3366201",
            "policy_isn": 5500123,
            "amount": "12500.5",
            "payer": "Иванов Иван Иванович",
            "date": "2025-03-01"
        })
    }

    fn parse(value: &serde_json::Value) -> Result<A7Receipt, ConnectorError> {
        A7Receipt::from_payload(&value.to_string())
    }

    #[test]
    fn spent_receipt_parsed() {
        let receipt = parse(&spent_payload()).unwrap();

        assert_eq!(
            receipt,
            A7Receipt {
                series: "7000".to_string(),
                number: "0012345".to_string(),
                agent_isn: "3366201".to_string(),
                policy_isn: Some("5500123".to_string()),
                amount: Some("12500.50".to_string()),
                payer: Some("Иванов Иван Иванович".to_string()),
                date: "01.03.2025".to_string(),
                status: A7Status::Spent,
            }
        );
    }

    #[test]
    fn create_params_in_order() {
        let receipt = parse(&spent_payload()).unwrap();

        let names: Vec<(String, String)> = receipt
            .create_params("UIG-42")
            .into_iter()
            .map(|param| match param.value {
                crate::params::ParamValue::Text(text) => (param.name, text),
                other => panic!("unexpected {other:?}"),
            })
            .collect();

        let expected = [
            ("SERIES", "7000"),
            ("NUMBER", "0012345"),
            ("AGENTISN", "3366201"),
            ("POLICYISN", "5500123"),
            ("AMOUNT", "12500.50"),
            ("PAYER", "Иванов Иван Иванович"),
            ("DATEPAY", "01.03.2025"),
            ("STATUS", "SPENT"),
            ("EXTERNALKEY", "UIG-42"),
        ];
        let expected: Vec<(String, String)> =
            expected.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn lost_receipt_needs_no_payment() {
        let payload =
            json!({"series": "7000", "number": 1, "agent_isn": "3366201", "date": "2025-03-01", "status": "lost"});

        let receipt = parse(&payload).unwrap();

        assert_eq!(receipt.status, A7Status::Lost);
        let names: Vec<String> = receipt.create_params("UIG-1").into_iter().map(|param| param.name).collect();
        assert_eq!(names, ["SERIES", "NUMBER", "AGENTISN", "DATEPAY", "STATUS", "EXTERNALKEY"]);
    }

    #[test]
    fn spent_receipt_needs_payment_fields() {
        for field in ["policy_isn", "amount", "payer"] {
            let mut payload = spent_payload();
            payload.as_object_mut().unwrap().remove(field);

            let error = parse(&payload).unwrap_err();

            assert!(error.message.contains(&format!("field \"{field}\" is missing")), "{}", error.message);
        }
    }

    #[test]
    fn invalid_members_named() {
        let cases = [
            ("series", json!("70-00"), "letters and digits"),
            ("series", json!("12345678901"), "longer than 10"),
            ("number", json!("12a"), "digits"),
            ("agent_isn", json!("агент"), "ISN"),
            ("amount", json!(0), "positive amount"),
            ("date", json!("01.03.2025"), "yyyy-mm-dd"),
            ("status", json!("USED"), "NEW, SPENT, LOST, BROKEN"),
            ("serial", json!("1"), "not accepted"),
        ];

        for (field, value, expected) in cases {
            let mut payload = spent_payload();
            payload.as_object_mut().unwrap().insert(field.to_string(), value);

            let error = parse(&payload).unwrap_err();

            assert_eq!(error.code.as_str(), "invalid_payload", "{field}");
            assert!(error.message.contains(&format!("field \"{field}\"")), "{}", error.message);
            assert!(error.message.contains(expected), "{field}: {}", error.message);
        }
    }
}
