//! The message ledger: every read and write of messages and attempts goes through here.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, TransactionTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, FromQueryResult,
    Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select, Set,
};

use crate::db::{attempt, message, Db};
use crate::status::Status;
use rusqlite::OptionalExtension;
use unread::{UnreadWalk, Walk, WalkError};

pub mod batch;
pub mod unread;

/// Current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A message to store for a client.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub client_id: i32,
    pub recipient: String,
    pub entity: String,
    pub message: String,
    pub status: Status,
    pub callback_url: Option<String>,
    pub request_hash: Option<String>,
    /// The time the request was signed for, in Unix milliseconds: with `request_hash`, it finds
    /// a repeated request.
    pub request_ts: Option<i64>,
    pub idempotency_key: Option<String>,
    /// Worker pool that delivers the message.
    pub pool: String,
    /// Lease for a message stored as `processing` (a sync send): owner and length in milliseconds.
    /// If the instance dies during the call, a worker re-claims the message when the lease ends.
    pub lease: Option<(String, i64)>,
}

impl NewMessage {
    /// When the worker next looks at the message stored at `now`: at once when queued, and when
    /// its lease runs out when leased.
    pub(crate) fn next_attempt_at(&self, now: i64) -> Option<i64> {
        match &self.lease {
            Some((_, length_ms)) => Some(now + length_ms),
            None => (self.status == Status::Queued).then_some(now),
        }
    }
}

/// Sort order of a listing, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOrder {
    Asc,
    Desc,
}

/// One listing request.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub client_id: i32,
    pub unread_only: bool,
    /// Keyset anchor: start after (asc) or before (desc) this id.
    pub anchor: Option<i64>,
    pub order: ListOrder,
    /// Page number from the anchor, starting at 1.
    pub page: u64,
    pub per_page: u64,
}

/// The columns a listing shows of each message; reading only these keeps a page cheap when
/// messages carry large bodies.
#[derive(Debug, Clone, FromQueryResult)]
pub struct ListedMessage {
    pub id: i64,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub rows: Vec<ListedMessage>,
    /// True when more rows follow this page.
    pub has_more: bool,
}

/// Result of storing a message that may repeat an earlier request.
#[derive(Debug, Clone)]
pub enum Stored {
    /// A new message was stored.
    Created(message::Model),
    /// An earlier request with the same hash or idempotency key stored this message.
    Existing(message::Model),
}

/// Outcome of one delivery attempt, as the worker records it.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub message_id: i64,
    pub kind: &'static str,
    pub number: i32,
    pub started_at: i64,
    pub duration_ms: i64,
    pub outcome: String,
    pub error: Option<String>,
}

#[derive(Debug, FromQueryResult)]
struct IdRow {
    id: i64,
}

/// Stores a message unless the same client already sent the same request hash or idempotency key.
pub async fn insert_message(db: &Db, new: NewMessage, idempotency_since: i64) -> Result<Stored, DbErr> {
    if let Some(existing) = find_repeat(&db.writer, &new, idempotency_since).await? {
        return Ok(Stored::Existing(existing));
    }

    let model = new_model(&new, now_ms());

    match insert_with_sequence(db, model).await {
        Ok(stored) => Ok(Stored::Created(stored)),
        // A concurrent request with the same hash or key won the unique index, so return its message.
        Err(error) if is_unique_violation(&error) => match find_repeat(&db.writer, &new, 0).await? {
            Some(existing) => Ok(Stored::Existing(existing)),
            None => Err(error),
        },
        Err(error) => Err(error),
    }
}

/// Stores a batch of messages in one transaction, so that one commit (one fsync) makes them all
/// durable; returns one result per message, in order. Repeats are found as in [`insert_message`],
/// also among earlier messages of the same batch. If the transaction fails, nothing is stored.
///
/// It blocks the calling thread while SQLite runs ([`Db::with_writer_handle`]), so the engine
/// stores messages through the group-commit thread and only tests call this.
///
/// NOTE: on SQLite the single writer connection serializes batches. A backend with concurrent
/// writers must lock each client's last row to keep the sequence dense.
pub async fn insert_batch(db: &Db, messages: &[NewMessage], idempotency_since: i64) -> Result<Vec<Stored>, DbErr> {
    db.write_batch(|connection| {
        let mut batch = batch::Batch::new(connection);
        let stored = messages.iter().map(|new| batch.insert(new, idempotency_since)).collect::<Result<Vec<_>, _>>()?;
        batch.complete()?;
        Ok(stored)
    })
    .await
}

/// Builds the row of a new outbound message stored at `now`.
fn new_model(new: &NewMessage, now: i64) -> message::ActiveModel {
    let next_attempt_at = new.next_attempt_at(now);
    message::ActiveModel {
        client_id: Set(new.client_id),
        client_seq: Set(0),
        direction: Set("outbound".to_string()),
        recipient: Set(new.recipient.clone()),
        entity: Set(new.entity.clone()),
        message: Set(new.message.clone()),
        status: Set(new.status.as_str().to_string()),
        data: Set(None),
        error: Set(None),
        external_id: Set(None),
        attempts: Set(0),
        next_attempt_at: Set(next_attempt_at),
        lease_owner: Set(new.lease.as_ref().map(|(owner, _)| owner.clone())),
        lease_until: Set(new.lease.as_ref().map(|(_, length_ms)| now + length_ms)),
        callback_url: Set(new.callback_url.clone()),
        callback_state: Set(None),
        callback_attempts: Set(0),
        callback_next_at: Set(None),
        request_hash: Set(new.request_hash.clone()),
        request_ts: Set(new.request_ts),
        idempotency_key: Set(new.idempotency_key.clone()),
        read_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        pool: Set(new.pool.clone()),
        ..Default::default()
    }
}

/// Inserts a message with the next sequence number of its client, in one transaction.
///
/// NOTE: on SQLite the single writer connection serializes these transactions. A backend with
/// concurrent writers must lock the client's last row (`SELECT ... FOR UPDATE`) to keep the
/// sequence dense.
async fn insert_with_sequence(db: &Db, model: message::ActiveModel) -> Result<message::Model, DbErr> {
    let transaction = db.writer.begin().await?;
    let stored = insert_sequenced(&transaction, model).await?;
    transaction.commit().await?;
    Ok(stored)
}

/// Inserts a message as the next in its owner's sequence, and counts it in `unread_counts` when it
/// is unread. Call it inside a write transaction, so that no other insert takes the same sequence
/// number in between and the count commits with the row.
pub async fn insert_sequenced<C: ConnectionTrait>(connection: &C, mut model: message::ActiveModel) -> Result<message::Model, DbErr> {
    let client_id = model.client_id.clone().unwrap();
    model.client_seq = Set(last_sequence(connection, client_id).await? + 1);
    let stored = model.insert(connection).await?;
    if stored.read_at.is_none() {
        let mut unread = unread::NewUnread::default();
        unread.add(stored.client_id, stored.client_seq);
        unread.store_on(connection).await?;
    }
    Ok(stored)
}

/// Returns the client's highest sequence number, 0 when it has no message.
async fn last_sequence<C: ConnectionTrait>(connection: &C, client_id: i32) -> Result<i64, DbErr> {
    let last: Option<i64> = message::Entity::find()
        .select_only()
        .column(message::Column::ClientSeq)
        .filter(message::Column::ClientId.eq(client_id))
        .order_by_desc(message::Column::ClientSeq)
        .limit(1)
        .into_tuple()
        .one(connection)
        .await?;
    Ok(last.unwrap_or(0))
}

fn is_unique_violation(error: &DbErr) -> bool {
    let text = error.to_string();
    text.contains("UNIQUE constraint failed") || text.contains("Duplicate entry") || text.contains("duplicate key")
}

async fn find_repeat<C: ConnectionTrait>(connection: &C, new: &NewMessage, idempotency_since: i64) -> Result<Option<message::Model>, DbErr> {
    if let Some(key) = &new.idempotency_key {
        let found = message::Entity::find()
            .filter(message::Column::ClientId.eq(new.client_id))
            .filter(message::Column::IdempotencyKey.eq(key.as_str()))
            .filter(message::Column::CreatedAt.gte(idempotency_since))
            .one(connection)
            .await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    let Some(hash) = &new.request_hash else {
        return Ok(None);
    };
    // Each lookup reads one range of a partial unique index: signed rows by time and hash, rows
    // stored before migration 6 (no signed time) by hash.
    if let Some(signed_at) = new.request_ts {
        let found = message::Entity::find()
            .filter(message::Column::ClientId.eq(new.client_id))
            .filter(message::Column::RequestTs.eq(signed_at))
            .filter(message::Column::RequestHash.eq(hash.as_str()))
            .one(connection)
            .await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    message::Entity::find()
        .filter(message::Column::ClientId.eq(new.client_id))
        .filter(message::Column::RequestTs.is_null())
        .filter(message::Column::RequestHash.eq(hash.as_str()))
        .one(connection)
        .await
}

/// Returns the client's message `id`, or none if it does not exist or belongs to another client.
pub async fn find_for_client(db: &Db, client_id: i32, id: i64) -> Result<Option<message::Model>, DbErr> {
    message::Entity::find_by_id(id).filter(message::Column::ClientId.eq(client_id)).one(&db.reader).await
}

/// Returns a message by id, regardless of its owner.
pub async fn find(db: &Db, id: i64) -> Result<Option<message::Model>, DbErr> {
    message::Entity::find_by_id(id).one(&db.reader).await
}

/// Lists a page of a client's messages by keyset anchor and page number.
///
/// Unread listings take the page's ids from the `(client_id, read_at, id)` index alone, so their cost
/// does not depend on the table size. A page number above 1 is found through the unread counts
/// per block of the client's sequence ([`unread`]), so its cost does not depend on the page number
/// either. Full listings go through [`list_by_sequence`], whose cost depends on neither.
pub async fn list(db: &Db, query: &ListQuery) -> Result<ListPage, DbErr> {
    if !query.unread_only {
        return list_by_sequence(db, query).await;
    }
    if query.page == 1 {
        return list_unread_first(&db.reader, query).await;
    }
    // One read transaction on the reader's own SQLite handle, so that the counts and the page
    // come from the same snapshot, and each of the walk's short queries costs SQLite's work only.
    let walk = match query.order {
        ListOrder::Asc => Walk::Up,
        ListOrder::Desc => Walk::Down,
    };
    let skip = (query.page - 1) * query.per_page;
    db.with_reader_handle(|sqlite| {
        crate::db::read_transaction(sqlite, |sqlite| {
            let Some(start) = walk_start(sqlite, query)? else {
                return Ok(ListPage { rows: Vec::new(), has_more: false });
            };
            match (UnreadWalk { sqlite, client_id: query.client_id, walk }).locate(start, skip)? {
                Some(first) => Ok(unread_page_from(sqlite, query, first)?),
                None => Ok(ListPage { rows: Vec::new(), has_more: false }),
            }
        })
    })
    .await?
    .map_err(|error: WalkError| DbErr::Custom(format!("listing page {} of unread messages failed: {error}", query.page)))
}

/// The sequence number of client `?1`'s first message after id `?2`.
const WALK_START_UP: &str = "SELECT client_seq FROM messages WHERE client_id = ?1 AND id > ?2 ORDER BY id LIMIT 1";
/// The sequence number of client `?1`'s last message before id `?2`.
const WALK_START_DOWN: &str = "SELECT client_seq FROM messages WHERE client_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT 1";
/// Up to `?3` unread messages of client `?1` from id `?2` upward, included.
const UNREAD_PAGE_UP: &str = "SELECT id, status, created_at, updated_at FROM messages WHERE client_id = ?1 AND read_at IS NULL AND id >= ?2 \
                              ORDER BY id LIMIT ?3";
/// Up to `?3` unread messages of client `?1` from id `?2` downward, included.
const UNREAD_PAGE_DOWN: &str = "SELECT id, status, created_at, updated_at FROM messages WHERE client_id = ?1 AND read_at IS NULL AND id <= ?2 \
                                ORDER BY id DESC LIMIT ?3";

/// Returns the sequence number where a walk through the client's unread messages starts. Upward it
/// is the first one after the anchor, downward one above the last one before the anchor. Returns
/// none when no message lies beyond the anchor.
fn walk_start(sqlite: &rusqlite::Connection, query: &ListQuery) -> rusqlite::Result<Option<i64>> {
    let (sql, anchor) = match query.order {
        ListOrder::Asc => (WALK_START_UP, query.anchor.unwrap_or(i64::MIN)),
        ListOrder::Desc => (WALK_START_DOWN, query.anchor.unwrap_or(i64::MAX)),
    };
    let sequence: Option<i64> = sqlite.prepare_cached(sql)?.query_row((query.client_id, anchor), |row| row.get(0)).optional()?;
    Ok(sequence.map(|sequence| match query.order {
        ListOrder::Asc => sequence,
        ListOrder::Desc => sequence + 1,
    }))
}

/// Lists one page of unread messages in the query's order from the message `first`, included.
fn unread_page_from(sqlite: &rusqlite::Connection, query: &ListQuery, first: i64) -> rusqlite::Result<ListPage> {
    let sql = match query.order {
        ListOrder::Asc => UNREAD_PAGE_UP,
        ListOrder::Desc => UNREAD_PAGE_DOWN,
    };
    let mut statement = sqlite.prepare_cached(sql)?;
    // One row past the page shows whether more follow.
    let listed = statement.query_map((query.client_id, first, query.per_page as i64 + 1), |row| {
        Ok(ListedMessage { id: row.get(0)?, status: row.get(1)?, created_at: row.get(2)?, updated_at: row.get(3)? })
    })?;
    let mut rows = listed.collect::<rusqlite::Result<Vec<_>>>()?;
    let has_more = rows.len() as u64 > query.per_page;
    rows.truncate(query.per_page as usize);
    Ok(ListPage { rows, has_more })
}

/// Lists the first page of unread messages after the query's anchor, in the query's order.
async fn list_unread_first<C: ConnectionTrait>(connection: &C, query: &ListQuery) -> Result<ListPage, DbErr> {
    let mut ids = message::Entity::find()
        .select_only()
        .column(message::Column::Id)
        .filter(message::Column::ClientId.eq(query.client_id))
        .filter(message::Column::ReadAt.is_null());
    ids = match (query.order, query.anchor) {
        (_, None) => ids,
        (ListOrder::Asc, Some(anchor)) => ids.filter(message::Column::Id.gt(anchor)),
        (ListOrder::Desc, Some(anchor)) => ids.filter(message::Column::Id.lt(anchor)),
    };
    let order = match query.order {
        ListOrder::Asc => Order::Asc,
        ListOrder::Desc => Order::Desc,
    };
    let id_rows = ids.order_by(message::Column::Id, order.clone()).limit(query.per_page + 1).into_model::<IdRow>().all(connection).await?;

    let has_more = id_rows.len() as u64 > query.per_page;
    let page_ids: Vec<i64> = id_rows.into_iter().take(query.per_page as usize).map(|row| row.id).collect();
    if page_ids.is_empty() {
        return Ok(ListPage { rows: Vec::new(), has_more: false });
    }

    let rows = listed_columns()
        .filter(message::Column::Id.is_in(page_ids))
        .order_by(message::Column::Id, order)
        .into_model::<ListedMessage>()
        .all(connection)
        .await?;
    Ok(ListPage { rows, has_more })
}

/// Lists all of a client's messages through the dense per-client sequence. The anchor gives the
/// first sequence number in one index lookup, and page N is one index range from there. So the
/// cost depends on neither the table size nor the page number.
///
/// NOTE: this relies on the sequence having no gaps above the anchor. Deleting messages from the
/// middle of a client's history (rather than its oldest ones) would shift later pages.
async fn list_by_sequence(db: &Db, query: &ListQuery) -> Result<ListPage, DbErr> {
    let mut first = message::Entity::find()
        .select_only()
        .column(message::Column::ClientSeq)
        .filter(message::Column::ClientId.eq(query.client_id));
    first = match (query.order, query.anchor) {
        (ListOrder::Asc, Some(anchor)) => first.filter(message::Column::Id.gt(anchor)).order_by_asc(message::Column::Id),
        (ListOrder::Asc, None) => first.order_by_asc(message::Column::Id),
        (ListOrder::Desc, Some(anchor)) => first.filter(message::Column::Id.lt(anchor)).order_by_desc(message::Column::Id),
        (ListOrder::Desc, None) => first.order_by_desc(message::Column::Id),
    };
    let Some(start) = first.limit(1).into_tuple::<i64>().one(&db.reader).await? else {
        return Ok(ListPage { rows: Vec::new(), has_more: false });
    };

    let skip = ((query.page - 1) * query.per_page) as i64;
    let span = query.per_page as i64;
    // One row past the page shows whether more follow.
    let (low, high, order) = match query.order {
        ListOrder::Asc => (start + skip, start + skip + span, Order::Asc),
        ListOrder::Desc => (start - skip - span, start - skip, Order::Desc),
    };
    let mut rows = listed_columns()
        .filter(message::Column::ClientId.eq(query.client_id))
        .filter(message::Column::ClientSeq.between(low, high))
        .order_by(message::Column::ClientSeq, order)
        .into_model::<ListedMessage>()
        .all(&db.reader)
        .await?;
    let has_more = rows.len() as u64 > query.per_page;
    rows.truncate(query.per_page as usize);
    Ok(ListPage { rows, has_more })
}

fn listed_columns() -> sea_orm::Select<message::Entity> {
    message::Entity::find()
        .select_only()
        .column(message::Column::Id)
        .column(message::Column::Status)
        .column(message::Column::CreatedAt)
        .column(message::Column::UpdatedAt)
}

/// Marks a message read by its owner (first read only) and returns the stored row.
pub async fn mark_read(db: &Db, message: message::Model) -> Result<message::Model, DbErr> {
    if message.read_at.is_some() {
        return Ok(message);
    }
    let now = now_ms();
    message::Entity::update_many()
        .col_expr(message::Column::ReadAt, Expr::value(now))
        .filter(message::Column::Id.eq(message.id))
        .filter(message::Column::ReadAt.is_null())
        .exec(&db.writer)
        .await?;
    Ok(message::Model { read_at: Some(now), ..message })
}

/// Final or intermediate result of a delivery, applied by [`finish_delivery`].
#[derive(Debug, Clone)]
pub enum DeliveryResult {
    /// The recipient returned its reply.
    Delivered { data: String },
    /// The recipient accepted and is still processing under `external_id`.
    Pending { data: String, external_id: Option<String> },
    /// Try again at `next_attempt_at`.
    Retry { error: String, next_attempt_at: i64 },
    /// Give up.
    Failed { error: String },
}

/// Records an attempt and applies its result, releasing the lease held by `owner`. A callback, if
/// requested, becomes due when the message reaches a terminal status.
///
/// Returns false when the lease was lost meanwhile (another worker re-claimed the message), in
/// which case nothing is changed but the attempt row.
pub async fn finish_delivery(db: &Db, owner: &str, attempt: AttemptRecord, result: DeliveryResult) -> Result<bool, DbErr> {
    let transaction = db.writer.begin().await?;
    let lease_held = finish_delivery_on(&transaction, owner, attempt, result).await?;
    transaction.commit().await?;
    Ok(lease_held)
}

/// Does the work of [`finish_delivery`] on `connection`, inside the caller's transaction.
pub async fn finish_delivery_on<C: ConnectionTrait>(connection: &C, owner: &str, attempt: AttemptRecord, result: DeliveryResult) -> Result<bool, DbErr> {
    let now = now_ms();
    let message_id = attempt.message_id;
    insert_attempt(connection, attempt).await?;

    let mut update = message::Entity::update_many()
        .col_expr(message::Column::Attempts, Expr::col(message::Column::Attempts).add(1))
        .col_expr(message::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(message::Column::LeaseUntil, Expr::value(Option::<i64>::None))
        .col_expr(message::Column::UpdatedAt, Expr::value(now));
    let callback_due = callback_due_expr();
    update = match result {
        DeliveryResult::Delivered { data } => update
            .col_expr(message::Column::Status, Expr::value(Status::Delivered.as_str()))
            .col_expr(message::Column::Data, Expr::value(data))
            .col_expr(message::Column::Error, Expr::value(Option::<String>::None))
            .col_expr(message::Column::NextAttemptAt, Expr::value(Option::<i64>::None))
            .col_expr(message::Column::CallbackState, callback_due)
            .col_expr(message::Column::CallbackNextAt, Expr::value(now)),
        DeliveryResult::Pending { data, external_id } => update
            .col_expr(message::Column::Status, Expr::value(Status::Processing.as_str()))
            .col_expr(message::Column::Data, Expr::value(data))
            .col_expr(message::Column::ExternalId, Expr::value(external_id))
            .col_expr(message::Column::NextAttemptAt, Expr::value(Option::<i64>::None)),
        DeliveryResult::Retry { error, next_attempt_at } => update
            .col_expr(message::Column::Status, Expr::value(Status::Retrying.as_str()))
            .col_expr(message::Column::Error, Expr::value(error))
            .col_expr(message::Column::NextAttemptAt, Expr::value(next_attempt_at)),
        DeliveryResult::Failed { error } => update
            .col_expr(message::Column::Status, Expr::value(Status::Failed.as_str()))
            .col_expr(message::Column::Error, Expr::value(error))
            .col_expr(message::Column::NextAttemptAt, Expr::value(Option::<i64>::None))
            .col_expr(message::Column::CallbackState, callback_due)
            .col_expr(message::Column::CallbackNextAt, Expr::value(now)),
    };

    let result = update
        .filter(message::Column::Id.eq(message_id))
        .filter(message::Column::LeaseOwner.eq(owner))
        .exec(connection)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Sets `callback_state` to `pending` for messages that asked for a callback, and leaves it null otherwise.
fn callback_due_expr() -> sea_orm::sea_query::SimpleExpr {
    Expr::cust_with_values("CASE WHEN callback_url IS NOT NULL THEN ? ELSE NULL END", [sea_orm::Value::from("pending")])
}

/// Applies the result of a status refresh to a `processing` message that no worker holds.
pub async fn finish_refresh(db: &Db, attempt: AttemptRecord, result: DeliveryResult) -> Result<(), DbErr> {
    let message_id = attempt.message_id;
    insert_attempt(&db.writer, attempt).await?;
    let now = now_ms();
    let update = message::Entity::update_many().col_expr(message::Column::UpdatedAt, Expr::value(now));
    let callback_due = callback_due_expr();
    let update = match result {
        DeliveryResult::Delivered { data } => update
            .col_expr(message::Column::Status, Expr::value(Status::Delivered.as_str()))
            .col_expr(message::Column::Data, Expr::value(data))
            .col_expr(message::Column::Error, Expr::value(Option::<String>::None))
            .col_expr(message::Column::CallbackState, callback_due)
            .col_expr(message::Column::CallbackNextAt, Expr::value(now)),
        DeliveryResult::Failed { error } => update
            .col_expr(message::Column::Status, Expr::value(Status::Failed.as_str()))
            .col_expr(message::Column::Error, Expr::value(error))
            .col_expr(message::Column::CallbackState, callback_due)
            .col_expr(message::Column::CallbackNextAt, Expr::value(now)),
        // Still pending, or a transient refresh error: keep the status, remember the error.
        DeliveryResult::Pending { data, .. } => update.col_expr(message::Column::Data, Expr::value(data)),
        DeliveryResult::Retry { error, .. } => update.col_expr(message::Column::Error, Expr::value(error)),
    };
    update
        .filter(message::Column::Id.eq(message_id))
        .filter(message::Column::Status.eq(Status::Processing.as_str()))
        .filter(message::Column::LeaseOwner.is_null())
        .exec(&db.writer)
        .await?;
    Ok(())
}

/// Stores the result of a synchronous send (one attempt made inline by the API handler).
pub async fn finish_sync(db: &Db, attempt: AttemptRecord, result: DeliveryResult) -> Result<message::Model, DbErr> {
    let transaction = db.writer.begin().await?;
    let stored = finish_sync_on(&transaction, attempt, result).await?;
    transaction.commit().await?;
    Ok(stored)
}

/// Does the work of [`finish_sync`] on `connection`, inside the caller's transaction.
pub async fn finish_sync_on<C: ConnectionTrait>(connection: &C, attempt: AttemptRecord, result: DeliveryResult) -> Result<message::Model, DbErr> {
    let message_id = attempt.message_id;
    insert_attempt(connection, attempt).await?;
    let update = message::Entity::update_many()
        .col_expr(message::Column::Attempts, Expr::value(1))
        .col_expr(message::Column::UpdatedAt, Expr::value(now_ms()))
        .col_expr(message::Column::NextAttemptAt, Expr::value(Option::<i64>::None))
        .col_expr(message::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(message::Column::LeaseUntil, Expr::value(Option::<i64>::None));
    let update = match result {
        DeliveryResult::Delivered { data } => update
            .col_expr(message::Column::Status, Expr::value(Status::Delivered.as_str()))
            .col_expr(message::Column::Data, Expr::value(data)),
        DeliveryResult::Pending { data, external_id } => update
            .col_expr(message::Column::Status, Expr::value(Status::Processing.as_str()))
            .col_expr(message::Column::Data, Expr::value(data))
            .col_expr(message::Column::ExternalId, Expr::value(external_id)),
        DeliveryResult::Retry { error, .. } | DeliveryResult::Failed { error } => update
            .col_expr(message::Column::Status, Expr::value(Status::Failed.as_str()))
            .col_expr(message::Column::Error, Expr::value(error)),
    };
    // One statement updates the row and returns it.
    update
        .filter(message::Column::Id.eq(message_id))
        .exec_with_returning(connection)
        .await?
        .pop()
        .ok_or_else(|| DbErr::RecordNotFound(format!("message {message_id}")))
}

/// Builds the row of an attempt.
fn attempt_row(attempt: AttemptRecord) -> attempt::ActiveModel {
    attempt::ActiveModel {
        message_id: Set(attempt.message_id),
        kind: Set(attempt.kind.to_string()),
        number: Set(attempt.number),
        started_at: Set(attempt.started_at),
        duration_ms: Set(attempt.duration_ms),
        outcome: Set(attempt.outcome),
        error: Set(attempt.error),
        ..Default::default()
    }
}

async fn insert_attempt(connection: &impl ConnectionTrait, attempt: AttemptRecord) -> Result<(), DbErr> {
    attempt_row(attempt).insert(connection).await?;
    Ok(())
}

/// Returns all attempts of a message, oldest first.
pub async fn attempts_of(db: &Db, message_id: i64) -> Result<Vec<attempt::Model>, DbErr> {
    attempt::Entity::find()
        .filter(attempt::Column::MessageId.eq(message_id))
        .order_by_asc(attempt::Column::Id)
        .all(&db.reader)
        .await
}

/// Records a callback attempt and sets the callback's next state: `delivered`, `failed`, or
/// `pending` again at `next_at`.
pub async fn finish_callback(db: &Db, attempt: AttemptRecord, state: &str, next_at: Option<i64>) -> Result<(), DbErr> {
    let transaction = db.writer.begin().await?;
    finish_callback_on(&transaction, attempt, state, next_at).await?;
    transaction.commit().await
}

/// Does the work of [`finish_callback`] on `connection`, inside the caller's transaction.
pub async fn finish_callback_on<C: ConnectionTrait>(connection: &C, attempt: AttemptRecord, state: &str, next_at: Option<i64>) -> Result<(), DbErr> {
    let message_id = attempt.message_id;
    insert_attempt(connection, attempt).await?;
    message::Entity::update_many()
        .col_expr(message::Column::CallbackState, Expr::value(state))
        .col_expr(message::Column::CallbackNextAt, Expr::value(next_at))
        .col_expr(message::Column::CallbackAttempts, Expr::col(message::Column::CallbackAttempts).add(1))
        .filter(message::Column::Id.eq(message_id))
        .exec(connection)
        .await?;
    Ok(())
}

/// Puts failed messages back in the queue; returns how many were re-queued.
pub async fn requeue_failed(db: &Db, ids: &[i64]) -> Result<u64, DbErr> {
    let now = now_ms();
    let result = message::Entity::update_many()
        .col_expr(message::Column::Status, Expr::value(Status::Queued.as_str()))
        .col_expr(message::Column::NextAttemptAt, Expr::value(now))
        .col_expr(message::Column::Attempts, Expr::value(0))
        .col_expr(message::Column::UpdatedAt, Expr::value(now))
        .filter(message::Column::Id.is_in(ids.iter().copied()))
        .filter(message::Column::Status.eq(Status::Failed.as_str()))
        .exec(&db.writer)
        .await?;
    Ok(result.rows_affected)
}

/// Counts all stored messages, for the CLI. SQLite counts the entries of a covering index, not
/// the rows of the table.
pub async fn count_all(db: &Db) -> Result<u64, DbErr> {
    message::Entity::find().count(&db.reader).await
}

/// Rows deleted by one retention run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Retained {
    pub messages: u64,
    pub job_runs: u64,
    pub feed_events: u64,
}

/// Deletes finished messages created before `cutoff` (with their attempts), job runs and seen feed
/// events older than it.
///
/// Per client only a prefix of the sequence goes: messages up to the first one that is newer or
/// still in delivery. So the remaining sequence has no gaps and list-all paging stays exact.
pub async fn delete_older_than(db: &Db, cutoff: i64) -> Result<Retained, DbErr> {
    use crate::db::{feed_event, job_run};

    let mut retained = Retained::default();
    let client_ids: Vec<i32> = message::Entity::find()
        .select_only()
        .column(message::Column::ClientId)
        .distinct()
        .filter(message::Column::CreatedAt.lt(cutoff))
        .into_tuple()
        .all(&db.reader)
        .await?;
    let finished = [Status::Delivered.as_str(), Status::Failed.as_str(), Status::Received.as_str()];
    for client_id in client_ids {
        // The first message of this client that must stay: newer than the cutoff or unfinished.
        let keep_from: Option<i64> = message::Entity::find()
            .select_only()
            .column(message::Column::ClientSeq)
            .filter(message::Column::ClientId.eq(client_id))
            .filter(
                Condition::any()
                    .add(message::Column::CreatedAt.gte(cutoff))
                    .add(message::Column::Status.is_not_in(finished))
                    .add(message::Column::CallbackState.eq("pending")),
            )
            .order_by_asc(message::Column::ClientSeq)
            .limit(1)
            .into_tuple()
            .one(&db.reader)
            .await?;
        let mut doomed = message::Entity::find().select_only().column(message::Column::Id).filter(message::Column::ClientId.eq(client_id));
        if let Some(keep_from) = keep_from {
            doomed = doomed.filter(message::Column::ClientSeq.lt(keep_from));
        }
        let ids: Vec<i64> = doomed.into_tuple().all(&db.reader).await?;
        for chunk in ids.chunks(500) {
            let transaction = db.writer.begin().await?;
            attempt::Entity::delete_many().filter(attempt::Column::MessageId.is_in(chunk.iter().copied())).exec(&transaction).await?;
            let deleted = message::Entity::delete_many().filter(message::Column::Id.is_in(chunk.iter().copied())).exec(&transaction).await?;
            transaction.commit().await?;
            retained.messages += deleted.rows_affected;
        }
    }
    retained.job_runs = job_run::Entity::delete_many().filter(job_run::Column::StartedAt.lt(cutoff)).exec(&db.writer).await?.rows_affected;
    retained.feed_events =
        feed_event::Entity::delete_many().filter(feed_event::Column::ReceivedAt.lt(cutoff)).exec(&db.writer).await?.rows_affected;
    Ok(retained)
}

/// Puts a claimed message back into the queue, due at `next_attempt_at`, without an attempt;
/// returns false when this instance no longer holds its lease.
pub async fn postpone(db: &Db, owner: &str, message: &message::Model, next_attempt_at: i64) -> Result<bool, DbErr> {
    let status = if message.attempts == 0 { Status::Queued } else { Status::Retrying };
    let result = message::Entity::update_many()
        .col_expr(message::Column::Status, Expr::value(status.as_str()))
        .col_expr(message::Column::NextAttemptAt, Expr::value(next_attempt_at))
        .col_expr(message::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(message::Column::LeaseUntil, Expr::value(Option::<i64>::None))
        .col_expr(message::Column::UpdatedAt, Expr::value(now_ms()))
        .filter(message::Column::Id.eq(message.id))
        .filter(message::Column::LeaseOwner.eq(owner))
        .exec(&db.writer)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Selects messages waiting for delivery (queued or retrying), due or not.
///
/// A waiting message always has a due time. The condition on it lets SQLite read the partial
/// index of messages with one (`ix_messages_pool_due_nonnull`) instead of the whole table.
pub fn waiting() -> Select<message::Entity> {
    message::Entity::find()
        .filter(message::Column::Status.is_in([Status::Queued.as_str(), Status::Retrying.as_str()]))
        .filter(message::Column::NextAttemptAt.is_not_null())
}

/// Selects messages due for delivery at `now`, in every pool, expired leases included. A leased
/// message keeps the end of its lease in `next_attempt_at` too, so both kinds are read from the
/// partial index of messages with a due time, as in [`waiting`].
pub fn due(now: i64) -> Select<message::Entity> {
    let due = Condition::any()
        .add(message::Column::Status.is_in([Status::Queued.as_str(), Status::Retrying.as_str()]))
        .add(Condition::all().add(message::Column::Status.eq(Status::Processing.as_str())).add(message::Column::LeaseUntil.lt(now)));
    message::Entity::find().filter(message::Column::NextAttemptAt.lte(now)).filter(due)
}

/// Counts messages waiting for delivery ([`waiting`]).
pub async fn count_waiting(db: &Db) -> Result<u64, DbErr> {
    waiting().count(&db.reader).await
}

/// Counts messages due for delivery now ([`due`]).
pub async fn count_due(db: &Db) -> Result<u64, DbErr> {
    due(now_ms()).count(&db.reader).await
}

#[cfg(test)]
mod tests {
    use super::unread::{COUNTS_DOWN, COUNTS_UP, COUNT_BETWEEN, NTH_DOWN, NTH_UP};
    use super::{UNREAD_PAGE_DOWN, UNREAD_PAGE_UP, WALK_START_DOWN, WALK_START_UP};
    use crate::db::Db;

    /// Returns SQLite's query plan for `sql`, one step per line.
    fn plan(sqlite: &rusqlite::Connection, sql: &str) -> String {
        let mut explain = sqlite.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        // The plan does not depend on the values, so every parameter is NULL.
        let nulls = rusqlite::params_from_iter(std::iter::repeat_n(rusqlite::types::Null, explain.parameter_count()));
        let steps = explain.query_map(nulls, |row| row.get::<_, String>(3)).unwrap();
        steps.collect::<rusqlite::Result<Vec<_>>>().unwrap().join("\n")
    }

    /// Every statement of a list-new page by number reads an index range, so its cost does not
    /// grow with the ledger. The page and the walk's entries come from the index of unread
    /// messages, and sequence numbers from the unique `(client_id, client_seq)` index.
    #[tokio::test]
    async fn page_statements_use_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("plans.db").display())).await.unwrap();
        db.migrate().await.unwrap();
        let plans: Vec<(&str, String)> = db
            .with_reader_handle(|sqlite| {
                [UNREAD_PAGE_UP, UNREAD_PAGE_DOWN, WALK_START_UP, WALK_START_DOWN, COUNT_BETWEEN, NTH_UP, NTH_DOWN, COUNTS_UP, COUNTS_DOWN]
                    .into_iter()
                    .map(|sql| (sql, plan(sqlite, sql)))
                    .collect()
            })
            .await
            .unwrap();
        for (sql, plan) in &plans {
            assert!(!plan.lines().any(|step| step.starts_with("SCAN")), "a full scan in the plan of {sql}:\n{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "a sort in the plan of {sql}:\n{plan}");
        }
        for (sql, plan) in &plans[..2] {
            assert!(plan.contains("ix_messages_client_unread"), "the page does not read the unread index: {sql}:\n{plan}");
        }
        for (sql, plan) in &plans[4..7] {
            assert!(plan.contains("ix_messages_client_unread"), "unread entries not read from their index: {sql}:\n{plan}");
            assert!(plan.contains("ux_messages_client_seq"), "sequence numbers not read from their index: {sql}:\n{plan}");
        }
    }
}
