//! Messages stored by the mock IMPACT: idempotent submits and the progress of each message
//! through `QUEUED`, `PROCESSING` and `DONE` or `ERROR`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Message types the mock accepts. `reject` is accepted and then ends in `ERROR`.
pub const MESSAGE_TYPES: [&str; 4] = ["claim", "policy", "payment", "reject"];

/// Status queries after which a new message is finished, unless `PUT /_mock/impact/progress`
/// sets another number.
pub const DEFAULT_STATUS_QUERIES_UNTIL_DONE: u32 = 2;

/// Maximum number of stored messages. Submits beyond it get HTTP 503 until a reset, because
/// dropping old messages would silently break the idempotency of their keys.
pub const MAX_MESSAGES: usize = 10_000;

/// Maximum length of an idempotency key in characters.
pub const MAX_KEY_CHARS: usize = 255;

/// State of a message in IMPACT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImpactStatus {
    /// Accepted, not looked at yet.
    Queued,
    /// Being processed.
    Processing,
    /// Finished, and the status document carries `result`.
    Done,
    /// Finished with a failure, and the status document carries `error`.
    Error,
}

impl ImpactStatus {
    /// Returns the name IMPACT sends in `Status`.
    pub fn name(self) -> &'static str {
        match self {
            ImpactStatus::Queued => "QUEUED",
            ImpactStatus::Processing => "PROCESSING",
            ImpactStatus::Done => "DONE",
            ImpactStatus::Error => "ERROR",
        }
    }
}

/// A validated submit: the members of the request body that the mock keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct Submission {
    /// The message type (`type`).
    pub message_type: String,
    /// The sender's own id of the message (`externalId`).
    pub external_id: String,
    /// The message content (`payload`), a JSON object.
    pub payload: Value,
}

impl Submission {
    /// Reports whether the message must end in `ERROR`: its type is `reject`, or its payload has
    /// `"reject": true`.
    pub fn is_rejected(&self) -> bool {
        self.message_type == "reject" || self.payload.get("reject") == Some(&Value::Bool(true))
    }
}

/// One stored message.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    /// IMPACT's id, `IMP-` and a six-digit sequence number.
    pub id: String,
    /// The idempotency key it was submitted under.
    pub key: String,
    /// Content of the first submit.
    pub submission: Submission,
    /// Sequence number, starting at 1, from which the id and the result number derive.
    pub number: u64,
    /// Status queries received so far.
    pub status_queries: u32,
    /// Status queries after which the message is finished, taken from the progress setting at
    /// submit time. 0 finishes it at once.
    pub queries_until_done: u32,
    /// Submits received under the key, the first one included.
    pub submit_count: u64,
}

impl StoredMessage {
    /// Returns the current state: `QUEUED` before the first status query, `PROCESSING` until
    /// `queries_until_done` queries, then `DONE` or `ERROR`.
    pub fn status(&self) -> ImpactStatus {
        let finished = self.status_queries >= self.queries_until_done;
        match (finished, self.submission.is_rejected()) {
            (true, true) => ImpactStatus::Error,
            (true, false) => ImpactStatus::Done,
            (false, _) if self.status_queries == 0 => ImpactStatus::Queued,
            (false, _) => ImpactStatus::Processing,
        }
    }

    /// Builds the status document that both endpoints return.
    pub fn document(&self) -> Value {
        let status = self.status();
        let mut document = json!({
            "Status": status.name(),
            "id": self.id,
            "type": self.submission.message_type,
            "externalId": self.submission.external_id,
        });
        match status {
            ImpactStatus::Done => document["result"] = self.result(),
            ImpactStatus::Error => {
                document["error"] = json!({
                    "code": "rejected",
                    "message": format!(
                        "IMPACT rejected {} {}: the mock rejects type reject and payloads with \"reject\": true",
                        self.submission.message_type, self.id
                    ),
                })
            }
            ImpactStatus::Queued | ImpactStatus::Processing => {}
        }
        document
    }

    /// Builds the result of a finished message. It depends only on the sequence number and the
    /// submission, so equal runs give equal results.
    pub fn result(&self) -> Value {
        let prefix = match self.submission.message_type.as_str() {
            "claim" => "CLM",
            "policy" => "POL",
            "payment" => "PAY",
            _ => "MSG",
        };
        let digest = Sha256::digest(self.submission.payload.to_string().as_bytes());
        let checksum: String = digest
            .iter()
            .take(8)
            .map(|byte| format!("{byte:02x}"))
            .collect();
        json!({
            "number": format!("{prefix}-{:06}", self.number),
            "type": self.submission.message_type,
            "externalId": self.submission.external_id,
            "payloadSha256": checksum,
            "decision": "accepted",
        })
    }
}

/// Outcome of a submit.
#[derive(Debug)]
pub enum SubmitOutcome {
    /// A new message was stored.
    Created(StoredMessage),
    /// The key was seen before with the same content: nothing new was stored.
    Replayed(StoredMessage),
    /// The key was seen before with other content.
    Conflict(StoredMessage),
    /// The store contains [`MAX_MESSAGES`] messages.
    Full,
}

/// One row of `GET /_mock/impact/state`.
#[derive(Debug, Serialize)]
pub struct MessageView {
    pub id: String,
    pub key: String,
    #[serde(rename = "type")]
    pub message_type: String,
    #[serde(rename = "externalId")]
    pub external_id: String,
    pub status: &'static str,
    pub status_queries: u32,
    pub queries_until_done: u32,
    pub submit_count: u64,
}

/// The stored messages, by id, and the index of idempotency keys.
#[derive(Debug, Default)]
pub struct MessageStore {
    messages: BTreeMap<String, StoredMessage>,
    ids_by_key: BTreeMap<String, String>,
}

impl MessageStore {
    /// Stores `submission` under `key` unless the key is known. A known key with equal content
    /// counts one more submit and returns the stored message.
    pub fn submit(
        &mut self,
        key: &str,
        submission: Submission,
        queries_until_done: u32,
    ) -> SubmitOutcome {
        if let Some(id) = self.ids_by_key.get(key) {
            let Some(stored) = self.messages.get_mut(id) else {
                return SubmitOutcome::Full;
            };
            stored.submit_count += 1;
            if stored.submission != submission {
                return SubmitOutcome::Conflict(stored.clone());
            }
            return SubmitOutcome::Replayed(stored.clone());
        }
        if self.messages.len() >= MAX_MESSAGES {
            return SubmitOutcome::Full;
        }

        let number = self.messages.len() as u64 + 1;
        let stored = StoredMessage {
            id: format!("IMP-{number:06}"),
            key: key.to_string(),
            submission,
            number,
            status_queries: 0,
            queries_until_done,
            submit_count: 1,
        };
        self.ids_by_key.insert(key.to_string(), stored.id.clone());
        self.messages.insert(stored.id.clone(), stored.clone());
        SubmitOutcome::Created(stored)
    }

    /// Counts one status query of message `id` and returns the message, or `None` when unknown.
    /// A finished message stays finished.
    pub fn query(&mut self, id: &str) -> Option<StoredMessage> {
        let stored = self.messages.get_mut(id)?;
        stored.status_queries = stored.status_queries.saturating_add(1);
        Some(stored.clone())
    }

    /// Returns every stored message in submit order.
    pub fn views(&self) -> Vec<MessageView> {
        self.messages
            .values()
            .map(|stored| MessageView {
                id: stored.id.clone(),
                key: stored.key.clone(),
                message_type: stored.submission.message_type.clone(),
                external_id: stored.submission.external_id.clone(),
                status: stored.status().name(),
                status_queries: stored.status_queries,
                queries_until_done: stored.queries_until_done,
                submit_count: stored.submit_count,
            })
            .collect()
    }

    /// Returns the number of submits per idempotency key.
    pub fn submit_counts(&self) -> BTreeMap<String, u64> {
        self.messages
            .values()
            .map(|stored| (stored.key.clone(), stored.submit_count))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submission(message_type: &str, payload: Value) -> Submission {
        Submission {
            message_type: message_type.to_string(),
            external_id: "uig-1".to_string(),
            payload,
        }
    }

    fn created(outcome: SubmitOutcome) -> StoredMessage {
        match outcome {
            SubmitOutcome::Created(stored) => stored,
            other => panic!("expected a new message, got {other:?}"),
        }
    }

    #[test]
    fn status_progresses_with_queries() {
        let mut store = MessageStore::default();
        let stored = created(store.submit("k", submission("claim", json!({})), 2));

        assert_eq!(stored.status(), ImpactStatus::Queued);
        assert_eq!(
            store.query(&stored.id).unwrap().status(),
            ImpactStatus::Processing
        );
        assert_eq!(
            store.query(&stored.id).unwrap().status(),
            ImpactStatus::Done
        );
        assert_eq!(
            store.query(&stored.id).unwrap().status(),
            ImpactStatus::Done
        );
    }

    #[test]
    fn zero_queries_finish_at_submit() {
        let mut store = MessageStore::default();

        let stored = created(store.submit("k", submission("payment", json!({})), 0));

        assert_eq!(stored.status(), ImpactStatus::Done);
        assert_eq!(stored.document()["result"]["number"], "PAY-000001");
    }

    #[test]
    fn rejected_messages_end_in_error() {
        let mut store = MessageStore::default();
        let by_type = created(store.submit("a", submission("reject", json!({})), 1));
        let by_flag = created(store.submit("b", submission("claim", json!({"reject": true})), 1));
        let not_flag = created(store.submit("c", submission("claim", json!({"reject": "yes"})), 1));

        for stored in [&by_type, &by_flag] {
            let document = store.query(&stored.id).unwrap().document();
            assert_eq!(document["Status"], "ERROR");
            assert_eq!(document["error"]["code"], "rejected");
            assert!(document.get("result").is_none());
        }
        assert_eq!(
            store.query(&not_flag.id).unwrap().document()["Status"],
            "DONE"
        );
    }

    #[test]
    fn repeated_key_stores_once() {
        let mut store = MessageStore::default();
        let first = created(store.submit("uig-1", submission("claim", json!({"a": 1})), 2));

        let repeat = store.submit("uig-1", submission("claim", json!({"a": 1})), 2);

        let SubmitOutcome::Replayed(replayed) = repeat else {
            panic!("expected a replay, got {repeat:?}")
        };
        assert_eq!(replayed.id, first.id);
        assert_eq!(replayed.submit_count, 2);
        assert_eq!(store.views().len(), 1);
        assert_eq!(store.submit_counts()["uig-1"], 2);
    }

    #[test]
    fn repeated_key_with_other_content_conflicts() {
        let mut store = MessageStore::default();
        created(store.submit("uig-1", submission("claim", json!({"a": 1})), 2));

        let repeat = store.submit("uig-1", submission("claim", json!({"a": 2})), 2);

        assert!(matches!(repeat, SubmitOutcome::Conflict(_)), "{repeat:?}");
        assert_eq!(store.views().len(), 1);
    }

    #[test]
    fn result_is_deterministic() {
        let mut first_store = MessageStore::default();
        let mut second_store = MessageStore::default();

        let first = created(first_store.submit("k", submission("claim", json!({"sum": 10})), 0));
        let second = created(second_store.submit("k", submission("claim", json!({"sum": 10})), 0));
        let other = created(second_store.submit("l", submission("claim", json!({"sum": 11})), 0));

        assert_eq!(first.result(), second.result());
        assert_eq!(first.result()["number"], "CLM-000001");
        assert_eq!(other.result()["number"], "CLM-000002");
        assert_ne!(
            first.result()["payloadSha256"],
            other.result()["payloadSha256"]
        );
    }

    #[test]
    fn unknown_id_not_found() {
        let mut store = MessageStore::default();

        assert!(store.query("IMP-000001").is_none());
    }
}
