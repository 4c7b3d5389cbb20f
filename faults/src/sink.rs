//! Records every request that a mock's callback sink stored.
//!
//! The sink keeps only its newest 10,000 requests, so a background thread reads
//! `GET /_mock/callbacks` every half second and keeps each request it has not seen before.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// How many requests `uig-mock` keeps (`MAX_STORED_CALLBACKS` in its control module).
const SINK_CAPACITY: usize = 10_000;

/// Interval between two reads of the sink.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// One request stored by the sink.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub received_at: DateTime<Utc>,
    /// Status the sink responded with: 200, or 500 while `fail_next` was above zero.
    pub status: u16,
    /// The `webhook-id` header; none for requests that are not gateway callbacks.
    pub webhook_id: Option<String>,
    pub body: String,
}

impl Receipt {
    /// Message id that the request names: the `webhook-id` of a callback, or N of the body
    /// `message N` that the testkit `post` entity sends.
    pub fn message_id(&self) -> Option<i64> {
        match &self.webhook_id {
            Some(id) => id.parse().ok(),
            None => self.body.strip_prefix("message ")?.trim().parse().ok(),
        }
    }
}

#[derive(Default)]
struct Recorded {
    seen: HashSet<u64>,
    receipts: Vec<Receipt>,
    /// Set when one read found the sink full of requests never seen before, so some may have been
    /// dropped between two reads.
    overflowed: bool,
}

/// A background reader of one sink.
pub struct SinkRecorder {
    url: String,
    recorded: Arc<Mutex<Recorded>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SinkRecorder {
    /// Starts reading the sink of the mock at `mock_url`.
    pub fn start(mock_url: &str) -> SinkRecorder {
        let url = format!("{mock_url}/_mock/callbacks");
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (url, recorded, stop) = (url.clone(), recorded.clone(), stop.clone());
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    poll(&http, &url, &recorded);
                    std::thread::sleep(POLL_INTERVAL);
                }
            })
        };
        SinkRecorder { url, recorded, stop, thread: Some(thread) }
    }

    /// Reads the sink once more and returns every request recorded so far, oldest first.
    pub fn receipts(&self) -> Vec<Receipt> {
        poll(&reqwest::blocking::Client::new(), &self.url, &self.recorded);
        let recorded = self.recorded.lock().expect("recorder lock");
        let mut receipts = recorded.receipts.clone();
        receipts.sort_by_key(|receipt| receipt.received_at);
        receipts
    }

    /// Reports whether some requests may have been dropped by the sink before they were read.
    pub fn overflowed(&self) -> bool {
        self.recorded.lock().expect("recorder lock").overflowed
    }
}

impl Drop for SinkRecorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn poll(http: &reqwest::blocking::Client, url: &str, recorded: &Mutex<Recorded>) {
    let listed = http.get(url).timeout(Duration::from_secs(30)).send().and_then(|response| response.error_for_status()).and_then(|response| response.json::<Vec<Value>>());
    let listed = match listed {
        Ok(listed) => listed,
        // A failed read is repeated half a second later; overflow detection covers a long gap.
        Err(_) => return,
    };

    let mut recorded = recorded.lock().expect("recorder lock");
    let had_any = !recorded.seen.is_empty();
    let mut new = 0;
    for entry in &listed {
        if recorded.seen.insert(fingerprint(entry)) {
            new += 1;
            if let Some(receipt) = parse(entry) {
                recorded.receipts.push(receipt);
            }
        }
    }
    if had_any && listed.len() >= SINK_CAPACITY && new == listed.len() {
        recorded.overflowed = true;
    }
}

/// Identifies a stored request by all it has: the receive time has nanoseconds, so two requests
/// never share it together with the headers and the body.
fn fingerprint(entry: &Value) -> u64 {
    let mut hasher = DefaultHasher::new();
    entry.to_string().hash(&mut hasher);
    hasher.finish()
}

fn parse(entry: &Value) -> Option<Receipt> {
    let received_at = DateTime::parse_from_rfc3339(entry["received_at"].as_str()?).ok()?.with_timezone(&Utc);
    Some(Receipt {
        received_at,
        status: entry["status"].as_u64()? as u16,
        webhook_id: entry["headers"]["webhook-id"].as_str().map(str::to_string),
        body: entry["body"].as_str().unwrap_or_default().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(webhook_id: Option<&str>, body: &str) -> Receipt {
        Receipt { received_at: Utc::now(), status: 200, webhook_id: webhook_id.map(str::to_string), body: body.to_string() }
    }

    #[test]
    fn callback_names_message_by_webhook_id() {
        assert_eq!(receipt(Some("42"), "{}").message_id(), Some(42));
    }

    #[test]
    fn testkit_post_names_message_in_body() {
        assert_eq!(receipt(None, "message 7").message_id(), Some(7));
        assert_eq!(receipt(None, "something else").message_id(), None);
    }

    #[test]
    fn stored_request_parses() {
        let entry = serde_json::json!({
            "received_at": "2026-12-04T09:00:00.123456789+00:00",
            "status": 500,
            "headers": {"webhook-id": "5", "webhook-timestamp": "1", "webhook-signature": "v1,x"},
            "body": "{\"id\":5}",
        });
        let receipt = parse(&entry).unwrap();
        assert_eq!(receipt.status, 500);
        assert_eq!(receipt.message_id(), Some(5));
    }
}
