//! `list-new` page numbers found through the unread counts agree with a plain `OFFSET` over the
//! unread messages, across block boundaries of both count levels, in both orders, with anchors,
//! after reads, re-reads and deletions. The counts follow the engine's inserts, batched and not.

use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect, Statement};
use uig_engine::crypto::MasterKey;
use uig_engine::db::{unread_count, Db};
use uig_engine::ledger::{self, AttemptRecord, DeliveryResult, ListOrder, ListQuery, NewMessage, Stored};
use uig_engine::status::Status;

/// Messages of the client under test: more than two level-2 blocks (65,536 each).
const MESSAGES: i64 = 140_000;

async fn open() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("uig.db").display())).await.unwrap();
    db.migrate().await.unwrap();
    (dir, db)
}

async fn execute(db: &Db, sql: &str) -> u64 {
    db.writer.execute(Statement::from_string(DbBackend::Sqlite, sql)).await.unwrap().rows_affected()
}

async fn add_client(db: &Db, name: &str) -> i32 {
    let key = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
    uig_engine::clients::create(db, &key, name, &[], &[], None, None).await.unwrap().id
}

/// Appends `count` unread messages to `client_id`, continuing its sequence, with plain SQL beside
/// the engine, then counts the unread messages again.
async fn append(db: &Db, client_id: i32, count: i64) {
    execute(
        db,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
             INSERT INTO messages (client_id, client_seq, direction, recipient, entity, message, status, attempts, \
             callback_attempts, created_at, updated_at, pool) \
             SELECT {client_id}, (SELECT coalesce(max(client_seq), 0) FROM messages WHERE client_id = {client_id}) + i, \
             'outbound', 'echo', 'ping', '{{}}', 'delivered', 1, 0, i, i, 'worker' FROM n"
        ),
    )
    .await;
    ledger::unread::recount(&db.writer).await.unwrap();
}

/// Returns a queued message of `client_id` to insert through the engine, distinct by `index`.
fn new_message(client_id: i32, index: i64) -> NewMessage {
    NewMessage {
        client_id,
        recipient: "echo".to_string(),
        entity: "ping".to_string(),
        message: format!(r#"{{"n":{index}}}"#),
        status: Status::Queued,
        callback_url: None,
        request_hash: Some(format!("{index:064x}")),
        request_ts: Some(index),
        idempotency_key: None,
        pool: "worker".to_string(),
        lease: None,
    }
}

#[derive(Debug, FromQueryResult)]
struct IdRow {
    id: i64,
}

/// Returns the page as a plain `OFFSET` over the unread messages finds it.
async fn reference(db: &Db, query: &ListQuery) -> (Vec<i64>, bool) {
    let (bound, order) = match (query.order, query.anchor) {
        (ListOrder::Asc, Some(anchor)) => (format!("AND id > {anchor}"), "ASC"),
        (ListOrder::Asc, None) => (String::new(), "ASC"),
        (ListOrder::Desc, Some(anchor)) => (format!("AND id < {anchor}"), "DESC"),
        (ListOrder::Desc, None) => (String::new(), "DESC"),
    };
    let sql = format!(
        "SELECT id FROM messages WHERE client_id = {} AND read_at IS NULL {bound} ORDER BY id {order} LIMIT {} OFFSET {}",
        query.client_id,
        query.per_page + 1,
        (query.page - 1) * query.per_page
    );
    let mut ids: Vec<i64> =
        IdRow::find_by_statement(Statement::from_string(DbBackend::Sqlite, sql)).all(&db.reader).await.unwrap().into_iter().map(|row| row.id).collect();
    let has_more = ids.len() as u64 > query.per_page;
    ids.truncate(query.per_page as usize);
    (ids, has_more)
}

/// Fails when a stored count differs from a count of the rows themselves.
async fn assert_counts_match_rows(db: &Db) {
    #[derive(Debug, FromQueryResult, PartialEq)]
    struct Count {
        client_id: i32,
        level: i16,
        bucket: i64,
        unread: i64,
    }
    let stored: Vec<Count> = unread_count::Entity::find()
        .order_by_asc(unread_count::Column::ClientId)
        .order_by_asc(unread_count::Column::Level)
        .order_by_asc(unread_count::Column::Bucket)
        .into_model::<Count>()
        .all(&db.reader)
        .await
        .unwrap()
        .into_iter()
        .filter(|count| count.unread != 0)
        .collect();
    let counted = Count::find_by_statement(Statement::from_string(
        DbBackend::Sqlite,
        "SELECT client_id, 1 AS level, client_seq >> 8 AS bucket, count(*) AS unread FROM messages WHERE read_at IS NULL GROUP BY 1, 3 \
         UNION ALL SELECT client_id, 2, client_seq >> 16, count(*) FROM messages WHERE read_at IS NULL GROUP BY 1, 3 \
         ORDER BY 1, 2, 3",
    ))
    .all(&db.reader)
    .await
    .unwrap();
    assert!(stored.iter().all(|count| count.unread > 0), "a count below zero: {:?}", stored.iter().find(|count| count.unread < 0));
    assert_eq!(stored.len(), counted.len(), "stored and counted blocks differ in number");
    assert!(stored == counted, "stored unread counts differ from the rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_new_page_numbers_match_offset() {
    let (_dir, db) = open().await;
    let client = add_client(&db, "ledger").await;
    let other = add_client(&db, "other").await;

    // Runs of the two clients interleave, so the tested client's ids have gaps.
    let mut appended = 0;
    while appended < MESSAGES {
        let run = (MESSAGES - appended).min(9_000);
        append(&db, client, run).await;
        append(&db, other, 1_700).await;
        appended += run;
    }

    // Reads: every third message below 120,000, almost all of a stretch that crosses the first
    // level-2 boundary, and every seventh. A few messages are unread again. Then the oldest ones
    // are deleted as retention does, up to a sequence number inside a block.
    execute(&db, &format!("UPDATE messages SET read_at = 1 WHERE client_id = {client} AND client_seq % 3 = 0 AND client_seq < 120000")).await;
    execute(
        &db,
        &format!("UPDATE messages SET read_at = 1 WHERE client_id = {client} AND client_seq BETWEEN 40000 AND 90000 AND client_seq % 1001 <> 0"),
    )
    .await;
    execute(&db, &format!("UPDATE messages SET read_at = NULL WHERE client_id = {client} AND client_seq BETWEEN 60000 AND 60010")).await;
    execute(&db, &format!("UPDATE messages SET read_at = 2 WHERE client_id = {client} AND client_seq % 7 = 0")).await;
    execute(&db, &format!("DELETE FROM messages WHERE client_id = {client} AND client_seq <= 700")).await;
    execute(&db, &format!("DELETE FROM messages WHERE client_id = {other} AND client_seq <= 300")).await;
    assert_counts_match_rows(&db).await;

    let ids: Vec<i64> = IdRow::find_by_statement(Statement::from_string(
        DbBackend::Sqlite,
        format!("SELECT id FROM messages WHERE client_id = {client} ORDER BY id"),
    ))
    .all(&db.reader)
    .await
    .unwrap()
    .into_iter()
    .map(|row| row.id)
    .collect();
    let unread_total: u64 = reference(&db, &ListQuery { client_id: client, unread_only: true, anchor: None, order: ListOrder::Asc, page: 1, per_page: 1_000_000 })
        .await
        .0
        .len() as u64;
    assert!(unread_total > 50_000, "the fixture should leave many unread messages, left {unread_total}");

    // Anchors: none, ids near each end, in the mostly-read stretch, at the level-2 boundary, and
    // one id of the other client (not in this client's sequence).
    let first_other: i64 = ids.windows(2).find(|pair| pair[1] != pair[0] + 1).map(|pair| pair[0] + 1).unwrap();
    let anchors = [None, Some(ids[0]), Some(ids[10]), Some(ids[45_000]), Some(ids[65_000]), Some(ids[ids.len() - 3]), Some(first_other)];
    let mut compared = 0;
    for per_page in [10u64, 100, 1000] {
        let last_page = unread_total.div_ceil(per_page);
        let mut pages = vec![2, 3, 7, 26, 257, last_page / 2, last_page - 1, last_page, last_page + 1];
        pages.retain(|page| *page >= 2);
        for order in [ListOrder::Asc, ListOrder::Desc] {
            for anchor in anchors {
                for &page in &pages {
                    let query = ListQuery { client_id: client, unread_only: true, anchor, order, page, per_page };
                    let listed = ledger::list(&db, &query).await.unwrap();
                    let listed_ids: Vec<i64> = listed.rows.iter().map(|row| row.id).collect();
                    let (expected, has_more) = reference(&db, &query).await;
                    assert_eq!(listed_ids, expected, "page differs for {query:?}");
                    assert_eq!(listed.has_more, has_more, "has_more differs for {query:?}");
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, 3 * 2 * 7 * 9);
}

/// Messages stored through the group-commit thread, as the API stores them, are counted: plain
/// sends and sync lookups stored with their result, in batches of many concurrent senders, across
/// level-1 blocks, with repeats that must not be counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_counts_new_messages() {
    let (_dir, db) = open().await;
    let client = add_client(&db, "committed").await;
    let (intake, _finisher, _claims) = uig_engine::group_commit::start(db.clone());

    let mut senders = Vec::new();
    for index in 1..=700 {
        let intake = intake.clone();
        senders.push(tokio::spawn(async move {
            // Every seventh request repeats an earlier one.
            let message = new_message(client, if index % 7 == 0 { index - 1 } else { index });
            if index % 5 == 0 {
                let attempt = AttemptRecord { message_id: 0, kind: "sync", number: 1, started_at: 0, duration_ms: 1, outcome: "delivered".to_string(), error: None };
                intake.store_with_result(message, 0, attempt, DeliveryResult::Delivered { data: "{}".to_string() }).await
            } else {
                intake.store(message, 0).await
            }
        }));
    }
    let mut created = 0;
    for sender in senders {
        if let Stored::Created(_) = sender.await.unwrap().unwrap() {
            created += 1;
        }
    }
    assert_eq!(created, 600, "100 of the 700 requests repeat an earlier one");
    assert_counts_match_rows(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_counts_follow_inserts_reads_and_deletes() {
    let (_dir, db) = open().await;
    let client = add_client(&db, "counted").await;
    let other = add_client(&db, "other").await;
    append(&db, client, 65_400).await;
    assert_counts_match_rows(&db).await;

    // Batches of the group-commit path that cross the level-2 boundary at 65,536, with a second
    // client and a repeat in the same batch, which must not be counted.
    for first in [65_401, 65_501, 65_601] {
        let mut batch: Vec<NewMessage> = (first..first + 100).map(|index| new_message(client, index)).collect();
        batch.push(new_message(other, first));
        batch.push(new_message(client, first));
        let stored = ledger::insert_batch(&db, &batch, 0).await.unwrap();
        assert!(matches!(stored.last(), Some(Stored::Existing(_))), "the repeat is found");
    }
    // The single-insert path (`insert_sequenced`), which feeds use.
    let single = ledger::insert_message(&db, new_message(client, 70_000), 0).await.unwrap();
    assert!(matches!(single, Stored::Created(_)), "a new message is stored");
    assert_counts_match_rows(&db).await;
    append(&db, client, 4_299).await;

    execute(&db, &format!("UPDATE messages SET read_at = 5 WHERE client_id = {client} AND client_seq % 2 = 0")).await;
    // Setting read_at again on read messages changes no count.
    execute(&db, &format!("UPDATE messages SET read_at = 6 WHERE client_id = {client} AND client_seq % 4 = 0")).await;
    assert_counts_match_rows(&db).await;

    execute(&db, &format!("UPDATE messages SET read_at = NULL WHERE client_id = {client} AND client_seq % 8 = 0")).await;
    execute(&db, &format!("DELETE FROM messages WHERE client_id = {client} AND client_seq BETWEEN 65000 AND 66000")).await;
    assert_counts_match_rows(&db).await;

    // The ledger's own read marking goes through the same trigger.
    let message = ledger::find(&db, 3).await.unwrap().expect("message 3 exists");
    assert!(message.read_at.is_none());
    ledger::mark_read(&db, message).await.unwrap();
    assert_counts_match_rows(&db).await;
    let level1: Option<(i64,)> = unread_count::Entity::find()
        .select_only()
        .column(unread_count::Column::Unread)
        .filter(unread_count::Column::ClientId.eq(client))
        .filter(unread_count::Column::Level.eq(1))
        .filter(unread_count::Column::Bucket.eq(0))
        .into_tuple()
        .one(&db.reader)
        .await
        .unwrap();
    // Block 0 holds sequence numbers 1..=255: 128 odd ones and 31 multiples of 8, less message 3.
    assert_eq!(level1, Some((158,)));
}
