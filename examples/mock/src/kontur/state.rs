//! In-memory state of the mock Kontur: tokens, boxes with their events, stored messages and
//! request counters, each bounded so that a long demo cannot exhaust memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::faults::KonturMode;
use super::model::{
    default_text, DocumentDetails, InboundDocument, StoredIds, StoredMessage, PARTIES,
};
use super::{KonturOptions, CLINIC_MEDI_ID};
use crate::control::DEFAULT_SLOW_DELAY_MS;

/// Maximum number of events kept per box. The oldest are dropped first, and a pointer to a
/// dropped event still reads on from the oldest kept one.
pub const MAX_EVENTS_PER_BOX: usize = 20_000;

/// Maximum number of stored messages. The oldest are dropped first.
pub const MAX_STORED_MESSAGES: usize = 10_000;

/// Maximum total size of stored message content in base64 bytes. The oldest messages are
/// dropped first.
pub const MAX_STORED_CONTENT_BYTES: usize = 64 * 1024 * 1024;

/// Maximum number of unexpired tokens. Issuing one more drops the one that expires first.
pub const MAX_LIVE_TOKENS: usize = 10_000;

/// Kind of a counted request, one per vendor route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    Token,
    Parties,
    Events,
    MessageFetch,
    MessagePost,
}

/// Request counters, as `GET /_mock/kontur/stats` shows them.
#[derive(Clone, Debug, Default, Serialize)]
struct Counters {
    token_requests: u64,
    tokens_issued: u64,
    parties_requests: u64,
    events_requests: u64,
    message_fetches: u64,
    message_posts: u64,
    unauthorized: u64,
}

/// One event of a box, with its position in the mock's global event sequence.
#[derive(Clone, Debug)]
struct StoredEvent {
    sequence: u64,
    body: Value,
}

#[derive(Debug, Default)]
struct Mailbox {
    events: VecDeque<StoredEvent>,
    /// Events ever appended to the box, dropped ones included.
    appended: u64,
}

/// A `lastEventPointer` that the mock did not issue for this box, or issued before a reset.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidPointer;

/// Everything that `POST /_mock/kontur/reset` returns to its start value.
#[derive(Debug)]
struct Runtime {
    /// Random id that changes on every reset and is part of every pointer, so pointers issued
    /// before a reset are invalid afterwards.
    generation: String,
    mode: KonturMode,
    slow_delay: Duration,
    token_lifetime: Duration,
    /// Issued tokens and their expiry.
    tokens: HashMap<String, Instant>,
    next_sequence: u64,
    boxes: BTreeMap<&'static str, Mailbox>,
    messages: HashMap<String, StoredMessage>,
    /// Message ids, oldest first, for dropping the oldest messages.
    message_order: VecDeque<String>,
    stored_content_bytes: usize,
    next_document_number: u64,
    counters: Counters,
}

impl Runtime {
    fn new(token_lifetime: Duration) -> Self {
        Runtime {
            generation: Uuid::new_v4().simple().to_string()[..12].to_string(),
            mode: KonturMode::Normal,
            slow_delay: Duration::from_millis(DEFAULT_SLOW_DELAY_MS),
            token_lifetime,
            tokens: HashMap::new(),
            next_sequence: 1,
            boxes: PARTIES
                .iter()
                .map(|party| (party.medi_id, Mailbox::default()))
                .collect(),
            messages: HashMap::new(),
            message_order: VecDeque::new(),
            stored_content_bytes: 0,
            next_document_number: 1,
            counters: Counters::default(),
        }
    }

    fn pointer(&self, medi_id: &str, sequence: u64) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{medi_id}.{sequence}", self.generation))
    }

    /// Returns the sequence number that `pointer` names, if this state issued it for `medi_id`.
    fn pointer_sequence(&self, medi_id: &str, pointer: &str) -> Option<u64> {
        let decoded = URL_SAFE_NO_PAD.decode(pointer.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let mut parts = text.splitn(3, '.');
        let generation = parts.next()?;
        let pointer_box = parts.next()?;
        let sequence: u64 = parts.next()?.parse().ok()?;

        let issued = generation == self.generation
            && pointer_box == medi_id
            && sequence > 0
            && sequence < self.next_sequence;
        issued.then_some(sequence)
    }

    /// Appends an event to box `medi_id` and returns its id and pointer.
    fn append_event(
        &mut self,
        medi_id: &'static str,
        event_type: &str,
        event_date_time: &str,
        content: Value,
    ) -> (String, String) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let event_id = Uuid::new_v4().to_string();
        let pointer = self.pointer(medi_id, sequence);
        let body = json!({
            "mediId": medi_id,
            "eventId": event_id,
            "eventPointer": pointer,
            "eventDateTime": event_date_time,
            "eventType": event_type,
            "eventContent": content,
        });

        let mailbox = self.boxes.entry(medi_id).or_default();
        if mailbox.events.len() >= MAX_EVENTS_PER_BOX {
            mailbox.events.pop_front();
        }
        mailbox.events.push_back(StoredEvent { sequence, body });
        mailbox.appended += 1;
        (event_id, pointer)
    }

    fn store_message(&mut self, message: StoredMessage) {
        self.stored_content_bytes += message.content_base64.len();
        self.message_order.push_back(message.message_id.clone());
        self.messages.insert(message.message_id.clone(), message);

        while self.messages.len() > MAX_STORED_MESSAGES
            || self.stored_content_bytes > MAX_STORED_CONTENT_BYTES
        {
            let Some(oldest) = self.message_order.pop_front() else {
                break;
            };
            if let Some(dropped) = self.messages.remove(&oldest) {
                self.stored_content_bytes -= dropped.content_base64.len();
            }
        }
    }
}

/// Client credentials and the resettable runtime state, shared by all handlers.
#[derive(Clone, Debug)]
pub struct KonturState {
    client_id: Arc<str>,
    client_secret: Arc<str>,
    start_token_lifetime: Duration,
    runtime: Arc<Mutex<Runtime>>,
}

impl KonturState {
    /// Creates the state with the credentials and token lifetime from the command line.
    pub fn new(options: &KonturOptions) -> Self {
        let start_token_lifetime = Duration::from_secs(options.kontur_token_lifetime);
        KonturState {
            client_id: Arc::from(options.kontur_client_id.as_str()),
            client_secret: Arc::from(options.kontur_client_secret.as_str()),
            start_token_lifetime,
            runtime: Arc::new(Mutex::new(Runtime::new(start_token_lifetime))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Runtime> {
        // Each update under the lock writes whole values, so the state stays consistent and
        // usable even if a panic poisoned the lock.
        self.runtime.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks the client credentials of a token request.
    pub fn is_client(&self, client_id: &str, client_secret: &str) -> bool {
        client_id == &*self.client_id && client_secret == &*self.client_secret
    }

    /// Issues a new token and returns it with its lifetime.
    pub fn issue_token(&self) -> (String, Duration) {
        let token = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        let now = Instant::now();

        let mut runtime = self.lock();
        runtime.tokens.retain(|_, expiry| *expiry > now);
        if runtime.tokens.len() >= MAX_LIVE_TOKENS {
            let first_to_expire = runtime
                .tokens
                .iter()
                .min_by_key(|(_, expiry)| **expiry)
                .map(|(token, _)| token.clone());
            if let Some(first_to_expire) = first_to_expire {
                runtime.tokens.remove(&first_to_expire);
            }
        }
        let lifetime = runtime.token_lifetime;
        runtime.tokens.insert(token.clone(), now + lifetime);
        runtime.counters.tokens_issued += 1;
        (token, lifetime)
    }

    /// Checks that `token` was issued and has not expired.
    pub fn is_valid_token(&self, token: &str) -> bool {
        let runtime = self.lock();
        runtime
            .tokens
            .get(token)
            .is_some_and(|expiry| *expiry > Instant::now())
    }

    /// Invalidates every issued token and returns how many were still valid.
    pub fn expire_tokens(&self) -> usize {
        let now = Instant::now();
        let mut runtime = self.lock();
        let valid = runtime
            .tokens
            .values()
            .filter(|expiry| **expiry > now)
            .count();
        runtime.tokens.clear();
        valid
    }

    /// Returns the lifetime of tokens issued from now on.
    pub fn token_lifetime(&self) -> Duration {
        self.lock().token_lifetime
    }

    /// Sets the lifetime of tokens issued from now on. Issued tokens keep their expiry.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().token_lifetime = lifetime;
    }

    /// Returns the current fault mode and the delay of the `slow` mode.
    pub fn mode(&self) -> (KonturMode, Duration) {
        let runtime = self.lock();
        (runtime.mode, runtime.slow_delay)
    }

    /// Sets the fault mode and the delay of the `slow` mode.
    pub fn set_mode(&self, mode: KonturMode, slow_delay: Duration) {
        let mut runtime = self.lock();
        runtime.mode = mode;
        runtime.slow_delay = slow_delay;
    }

    /// Counts one request to a vendor route.
    pub fn record_request(&self, kind: RequestKind) {
        let counters = &mut self.lock().counters;
        match kind {
            RequestKind::Token => counters.token_requests += 1,
            RequestKind::Parties => counters.parties_requests += 1,
            RequestKind::Events => counters.events_requests += 1,
            RequestKind::MessageFetch => counters.message_fetches += 1,
            RequestKind::MessagePost => counters.message_posts += 1,
        }
    }

    /// Counts one request rejected with HTTP 401 for a missing, unknown or expired token.
    pub fn record_unauthorized(&self) {
        self.lock().counters.unauthorized += 1;
    }

    /// Returns up to `count` events of box `medi_id` after `pointer` (from the oldest kept event
    /// when `None`) and the `lastEventPointer` for the response: that of the last returned event,
    /// or `pointer` itself when there is none.
    pub fn events_after(
        &self,
        medi_id: &'static str,
        pointer: Option<&str>,
        count: usize,
    ) -> Result<(Vec<Value>, Option<String>), InvalidPointer> {
        let runtime = self.lock();
        let after = match pointer {
            Some(pointer) => runtime
                .pointer_sequence(medi_id, pointer)
                .ok_or(InvalidPointer)?,
            None => 0,
        };

        let events: Vec<Value> = runtime
            .boxes
            .get(medi_id)
            .map(|mailbox| {
                mailbox
                    .events
                    .iter()
                    .filter(|event| event.sequence > after)
                    .take(count)
                    .map(|event| event.body.clone())
                    .collect()
            })
            .unwrap_or_default();

        let last_pointer = match events.last() {
            Some(last) => last["eventPointer"].as_str().map(str::to_owned),
            None => pointer.map(str::to_owned),
        };
        Ok((events, last_pointer))
    }

    /// Stores a message sent from box `sender` and appends `NewOutboxMessage` and then
    /// `MessageDelivered` to that box.
    pub fn post_message(&self, sender: &'static str, content_base64: String) -> StoredIds {
        let now = now_rfc3339();
        let message = StoredMessage {
            message_id: Uuid::new_v4().to_string(),
            medi_id: sender,
            sender_medi_id: sender,
            recipient_medi_id: None,
            direction: "Outbox",
            document_circulation_id: Uuid::new_v4().to_string(),
            sent_date_time: now.clone(),
            details: DocumentDetails::default(),
            content_base64,
        };
        let ids = json!({
            "messageId": message.message_id,
            "documentCirculationId": message.document_circulation_id,
        });

        let mut runtime = self.lock();
        let (event_id, event_pointer) =
            runtime.append_event(sender, "NewOutboxMessage", &now, ids.clone());
        runtime.append_event(sender, "MessageDelivered", &now, ids);
        let stored = StoredIds {
            medi_id: sender.to_owned(),
            message_id: message.message_id.clone(),
            document_circulation_id: message.document_circulation_id.clone(),
            event_id,
            event_pointer,
            document_number: None,
        };
        runtime.store_message(message);
        stored
    }

    /// Stores `count` inbound documents in box `document.medi_id`, sent by the other box, and
    /// appends a `NewInboxMessage` event for each.
    ///
    /// A missing document number becomes `INV-00001`, `INV-00002` and so on, a missing text is
    /// generated from the details, and a missing event time is the time of injection.
    pub fn inject(&self, document: &InboundDocument, count: u32) -> Vec<StoredIds> {
        let sender = PARTIES
            .iter()
            .find(|party| party.medi_id != document.medi_id)
            .map_or(CLINIC_MEDI_ID, |party| party.medi_id);

        let mut runtime = self.lock();
        let mut injected = Vec::new();
        for _ in 0..count {
            let mut details = document.details.clone();
            if details.document_number.is_none() {
                details.document_number = Some(format!("INV-{:05}", runtime.next_document_number));
                runtime.next_document_number += 1;
            }
            let text = document
                .text
                .clone()
                .unwrap_or_else(|| default_text(&details));
            let event_date_time = document.event_date_time.clone().unwrap_or_else(now_rfc3339);

            let message = StoredMessage {
                message_id: Uuid::new_v4().to_string(),
                medi_id: document.medi_id,
                sender_medi_id: sender,
                recipient_medi_id: Some(document.medi_id),
                direction: "Inbox",
                document_circulation_id: Uuid::new_v4().to_string(),
                sent_date_time: event_date_time.clone(),
                details: details.clone(),
                content_base64: base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
            };
            let content = json!({
                "messageId": message.message_id,
                "documentCirculationId": message.document_circulation_id,
            });
            let (event_id, event_pointer) = runtime.append_event(
                document.medi_id,
                "NewInboxMessage",
                &event_date_time,
                content,
            );

            injected.push(StoredIds {
                medi_id: document.medi_id.to_owned(),
                message_id: message.message_id.clone(),
                document_circulation_id: message.document_circulation_id.clone(),
                event_id,
                event_pointer,
                document_number: details.document_number.clone(),
            });
            runtime.store_message(message);
        }
        injected
    }

    /// Returns the body of `GET /V2/messages/{messageId}`, or `None` for an unknown message.
    pub fn message(&self, message_id: &str) -> Option<Value> {
        let runtime = self.lock();
        let message = runtime.messages.get(message_id.trim())?;
        Some(json!({
            "meta": {
                "messageId": message.message_id,
                "mediId": message.medi_id,
                "senderMediId": message.sender_medi_id,
                "recipientMediId": message.recipient_medi_id,
                "direction": message.direction,
                "documentCirculationId": message.document_circulation_id,
                "sentDateTime": message.sent_date_time,
                "documentDetails": message.details,
            },
            "data": { "content": message.content_base64 },
        }))
    }

    /// Returns the counters, the events appended per box, the stored messages, the mode and the
    /// token lifetime.
    pub fn stats(&self) -> Value {
        let runtime = self.lock();
        let now = Instant::now();
        let events_by_box: BTreeMap<&str, u64> = runtime
            .boxes
            .iter()
            .map(|(medi_id, mailbox)| (*medi_id, mailbox.appended))
            .collect();

        let mut stats = serde_json::to_value(&runtime.counters).unwrap_or_else(|_| json!({}));
        stats["events_by_box"] = json!(events_by_box);
        stats["messages_stored"] = json!(runtime.messages.len());
        stats["live_tokens"] = json!(runtime
            .tokens
            .values()
            .filter(|expiry| **expiry > now)
            .count());
        stats["token_lifetime_seconds"] = json!(runtime.token_lifetime.as_secs());
        stats["mode"] = json!(runtime.mode.name());
        stats
    }

    /// Drops every token, event and message, zeroes the counters, sets the mode to `normal`
    /// and the token lifetime to its start value. Pointers issued before become invalid.
    pub fn reset(&self) {
        *self.lock() = Runtime::new(self.start_token_lifetime);
    }
}

/// Returns the current time in RFC 3339 with seconds and a `Z` offset.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
