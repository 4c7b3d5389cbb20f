//! Accounts for every message a scenario sent: the responses the client got, the ledger's rows,
//! and the requests that the callback sink and the recipient received.
//!
//! - accepted: distinct ids the client got in a 202 or 200 response.
//! - delivered, failed: accepted ids with that final status in the ledger.
//! - lost: accepted ids missing from the ledger, not finished, or whose requested callback never
//!   arrived with a 2xx response from the sink.
//! - duplicated (unexplained): a second ledger message for one `Idempotency-Key`, one id returned
//!   for two keys, or a callback or recipient request naming an id the ledger does not have.
//! - redelivered (explained, at-least-once): further callbacks that got a 2xx response, and
//!   further requests at the recipient, carrying the id of a message already delivered once.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::client::Ticket;
use crate::ledger::MessageRow;
use crate::sink::Receipt;

/// Everything a scenario observed.
pub struct Evidence<'a> {
    pub tickets: &'a [Ticket],
    pub rows: &'a [MessageRow],
    /// Requests at the callback sink, when the messages asked for callbacks.
    pub callbacks: Option<&'a [Receipt]>,
    /// Requests at the recipient (testkit `post` to a mock), one per delivery attempt that reached it.
    pub deliveries: Option<&'a [Receipt]>,
}

/// Counts of one scenario and the problems behind them.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub accepted: u64,
    pub delivered: u64,
    pub failed: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub redelivered: u64,
    /// Failed messages without a stored error.
    pub failed_without_error: u64,
    /// Ledger messages of sends whose client never got a 2xx response (it gave up).
    pub unacknowledged: u64,
    /// Callbacks whose body disagrees with the ledger, and delivered messages the recipient never
    /// received.
    pub mismatched: u64,
    /// One line per problem, for the report.
    pub problems: Vec<String>,
}

impl Tally {
    fn problem(&mut self, text: String) {
        self.problems.push(text);
    }
}

/// Accounts for `evidence`.
pub fn account(evidence: &Evidence) -> Tally {
    let mut tally = Tally::default();
    let by_id: HashMap<i64, &MessageRow> = evidence.rows.iter().map(|row| (row.id, row)).collect();

    let mut key_of_id: BTreeMap<i64, &str> = BTreeMap::new();
    for ticket in evidence.tickets {
        let Some(id) = ticket.id else { continue };
        if let Some(other) = key_of_id.insert(id, &ticket.key) {
            tally.duplicated += 1;
            tally.problem(format!("id {id} was returned for two keys, {other} and {}", ticket.key));
        }
    }
    tally.accepted = key_of_id.len() as u64;
    count_duplicate_rows(&mut tally, evidence);

    let callbacks_by_id = group_by_message(evidence.callbacks.unwrap_or_default());
    for &id in key_of_id.keys() {
        let Some(row) = by_id.get(&id) else {
            tally.lost += 1;
            tally.problem(format!("id {id} was accepted but is not in the ledger"));
            continue;
        };
        match row.status.as_str() {
            "delivered" => tally.delivered += 1,
            "failed" => {
                tally.failed += 1;
                if row.error.is_none() {
                    tally.failed_without_error += 1;
                    tally.problem(format!("id {id} failed without an error"));
                }
            }
            other => {
                tally.lost += 1;
                tally.problem(format!("id {id} is still {other} after the drain"));
                continue;
            }
        }
        let callback_missing = evidence.callbacks.is_some()
            && row.callback_url.is_some()
            && !callbacks_by_id.get(&id).is_some_and(|receipts| receipts.iter().any(|receipt| is_success(receipt.status)));
        if callback_missing {
            tally.lost += 1;
            tally.problem(format!("id {id} is {} but its callback never got a 2xx response (callback state {:?})", row.status, row.callback_state));
        }
    }

    if let Some(callbacks) = evidence.callbacks {
        check_callbacks(&mut tally, callbacks, &by_id);
    }
    if let Some(deliveries) = evidence.deliveries {
        check_deliveries(&mut tally, deliveries, &by_id);
    }
    tally
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

fn group_by_message(receipts: &[Receipt]) -> HashMap<i64, Vec<&Receipt>> {
    let mut grouped: HashMap<i64, Vec<&Receipt>> = HashMap::new();
    for receipt in receipts {
        if let Some(id) = receipt.message_id() {
            grouped.entry(id).or_default().push(receipt);
        }
    }
    grouped
}

/// Counts ledger messages beyond the first under one `Idempotency-Key`, and the stored messages
/// of sends that never got a 2xx response.
fn count_duplicate_rows(tally: &mut Tally, evidence: &Evidence) {
    let mut rows_by_key: HashMap<&str, Vec<i64>> = HashMap::new();
    for row in evidence.rows {
        if let Some(key) = &row.idempotency_key {
            rows_by_key.entry(key.as_str()).or_default().push(row.id);
        }
    }
    for (key, ids) in &rows_by_key {
        if ids.len() > 1 {
            tally.duplicated += ids.len() as u64 - 1;
            tally.problem(format!("key {key} has {} ledger messages: {ids:?}", ids.len()));
        }
    }
    for ticket in evidence.tickets.iter().filter(|ticket| ticket.id.is_none()) {
        tally.unacknowledged += rows_by_key.get(ticket.key.as_str()).map_or(0, |ids| ids.len() as u64);
    }
}

fn check_callbacks(tally: &mut Tally, callbacks: &[Receipt], by_id: &HashMap<i64, &MessageRow>) {
    for (id, receipts) in group_by_message(callbacks) {
        let Some(row) = by_id.get(&id) else {
            tally.duplicated += receipts.len() as u64;
            tally.problem(format!("{} callbacks name id {id}, which the ledger does not have", receipts.len()));
            continue;
        };
        let successes = receipts.iter().filter(|receipt| is_success(receipt.status)).count() as u64;
        tally.redelivered += successes.saturating_sub(1);
        for receipt in receipts {
            let body: Value = serde_json::from_str(&receipt.body).unwrap_or_default();
            if body["id"].as_i64() != Some(id) || body["status"].as_str() != Some(row.status.as_str()) {
                tally.mismatched += 1;
                tally.problem(format!("callback with webhook-id {id} has body id {} status {}, the ledger says {}", body["id"], body["status"], row.status));
            }
        }
    }
    let unnamed = callbacks.iter().filter(|receipt| receipt.message_id().is_none()).count() as u64;
    if unnamed > 0 {
        tally.duplicated += unnamed;
        tally.problem(format!("{unnamed} requests at the callback sink name no message id"));
    }
}

fn check_deliveries(tally: &mut Tally, deliveries: &[Receipt], by_id: &HashMap<i64, &MessageRow>) {
    let grouped = group_by_message(deliveries);
    for (id, receipts) in &grouped {
        if !by_id.contains_key(id) {
            tally.duplicated += receipts.len() as u64;
            tally.problem(format!("the recipient got {} requests for id {id}, which the ledger does not have", receipts.len()));
            continue;
        }
        tally.redelivered += receipts.len() as u64 - 1;
    }
    for row in by_id.values().filter(|row| row.status == "delivered") {
        if !grouped.contains_key(&row.id) {
            tally.mismatched += 1;
            tally.problem(format!("id {} is delivered but the recipient never got it", row.id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(key: &str, id: Option<i64>) -> Ticket {
        Ticket {
            key: key.to_string(),
            id,
            replayed: false,
            rejections: Vec::new(),
            no_responses: 0,
            last_no_response: None,
            started_at: chrono::Utc::now(),
            accepted_at: None,
        }
    }

    fn row(id: i64, key: &str, status: &str, callback: bool) -> MessageRow {
        MessageRow {
            id,
            status: status.to_string(),
            error: (status == "failed").then(|| "{}".to_string()),
            attempts: 1,
            callback_url: callback.then(|| "http://127.0.0.1:1/_mock/callbacks".to_string()),
            callback_state: callback.then(|| "delivered".to_string()),
            callback_attempts: 1,
            idempotency_key: Some(key.to_string()),
            created_at: 0,
        }
    }

    fn callback(id: i64, status: &str) -> Receipt {
        Receipt {
            received_at: chrono::Utc::now(),
            status: 200,
            webhook_id: Some(id.to_string()),
            body: format!("{{\"id\":{id},\"status\":\"{status}\"}}"),
        }
    }

    #[test]
    fn clean_run_counts_only_outcomes() {
        let tickets = [ticket("a", Some(1)), ticket("b", Some(2))];
        let rows = [row(1, "a", "delivered", true), row(2, "b", "failed", true)];
        let callbacks = [callback(1, "delivered"), callback(2, "failed"), callback(1, "delivered")];
        let tally = account(&Evidence { tickets: &tickets, rows: &rows, callbacks: Some(&callbacks), deliveries: None });
        assert_eq!((tally.accepted, tally.delivered, tally.failed), (2, 1, 1));
        assert_eq!((tally.lost, tally.duplicated), (0, 0), "{:?}", tally.problems);
        assert_eq!(tally.redelivered, 1);
    }

    #[test]
    fn missing_row_and_callback_are_lost() {
        let tickets = [ticket("a", Some(1)), ticket("b", Some(2))];
        let rows = [row(2, "b", "delivered", true)];
        let tally = account(&Evidence { tickets: &tickets, rows: &rows, callbacks: Some(&[]), deliveries: None });
        assert_eq!(tally.lost, 2, "{:?}", tally.problems);
    }

    #[test]
    fn unfinished_message_is_lost() {
        let tickets = [ticket("a", Some(1))];
        let rows = [row(1, "a", "retrying", false)];
        let tally = account(&Evidence { tickets: &tickets, rows: &rows, callbacks: None, deliveries: None });
        assert_eq!(tally.lost, 1);
    }

    #[test]
    fn second_row_for_key_is_duplicate() {
        let tickets = [ticket("a", Some(1))];
        let rows = [row(1, "a", "delivered", false), row(2, "a", "delivered", false)];
        let tally = account(&Evidence { tickets: &tickets, rows: &rows, callbacks: None, deliveries: None });
        assert_eq!(tally.duplicated, 1);
    }

    #[test]
    fn repeated_delivery_is_redelivery() {
        let tickets = [ticket("a", Some(1))];
        let rows = [row(1, "a", "delivered", false)];
        let request = Receipt { received_at: chrono::Utc::now(), status: 200, webhook_id: None, body: "message 1".to_string() };
        let unknown = Receipt { body: "message 9".to_string(), ..request.clone() };
        let deliveries = [request.clone(), request, unknown];
        let tally = account(&Evidence { tickets: &tickets, rows: &rows, callbacks: None, deliveries: Some(&deliveries) });
        assert_eq!(tally.redelivered, 1);
        assert_eq!(tally.duplicated, 1, "a request for an id outside the ledger is unexplained");
    }

    #[test]
    fn callback_disagreeing_with_ledger_is_mismatch() {
        let tickets = [ticket("a", Some(1))];
        let rows = [row(1, "a", "delivered", true)];
        let callbacks = [callback(1, "failed")];
        let tally = account(&Evidence { tickets: &tickets, rows: &rows, callbacks: Some(&callbacks), deliveries: None });
        assert_eq!(tally.mismatched, 1);
    }
}
