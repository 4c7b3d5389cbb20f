//! The `messages` table: the ledger of every message, outbound and inbound.

use sea_orm::entity::prelude::*;

/// One message with its delivery and callback state. Times are Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Owner: the sending client (outbound) or the client the routing names (inbound).
    pub client_id: i32,
    /// Position among the owner's messages: 1, 2, 3... without gaps, in id order.
    pub client_seq: i64,
    /// `outbound` or `inbound`.
    pub direction: String,
    /// Connector name.
    pub recipient: String,
    pub entity: String,
    /// The client's message text exactly as sent.
    pub message: String,
    /// One of the statuses in `crate::status::Status`.
    pub status: String,
    /// The recipient's reply (outbound) or the received content (inbound), JSON text.
    pub data: Option<String>,
    /// The last error as JSON text `{"kind", "code", "message"}`.
    pub error: Option<String>,
    /// The recipient's id of the message, for status refreshes.
    pub external_id: Option<String>,
    /// Delivery attempts made so far.
    pub attempts: i32,
    /// When the next delivery attempt is due.
    pub next_attempt_at: Option<i64>,
    /// Worker instance that holds the lease.
    pub lease_owner: Option<String>,
    /// End of the current lease; after it another worker may claim the message.
    pub lease_until: Option<i64>,
    pub callback_url: Option<String>,
    /// `pending`, `delivered` or `failed`; none when no callback was requested or it is not due yet.
    pub callback_state: Option<String>,
    pub callback_attempts: i32,
    pub callback_next_at: Option<i64>,
    /// The request's signature hash, for replay detection.
    pub request_hash: Option<String>,
    /// The client's `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// When the owner first read the message with `get`; none while unread.
    pub read_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Worker pool that delivers the message (`worker` unless the config routes it elsewhere).
    pub pool: String,
    /// The time the request was signed for (its `timestamp` parameter), in Unix milliseconds.
    /// Replays are found by this time and `request_hash`. None for messages stored before
    /// migration 6 and for messages that did not come through the API.
    pub request_ts: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
