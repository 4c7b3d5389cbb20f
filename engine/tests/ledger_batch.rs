//! The group-commit writer (`ledger::batch`, raw SQLite through rusqlite) leaves the ledger exactly
//! as the sea-orm functions do: every delivery, sync and callback outcome, a lost lease, two results
//! for one message in a batch, and new messages with their repeats.

use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, QueryOrder, Statement, TransactionTrait};
use uig_engine::crypto::MasterKey;
use uig_engine::db::{attempt, message, Db};
use uig_engine::ledger::batch::{Batch, Finish, Finished};
use uig_engine::ledger::{self, AttemptRecord, DeliveryResult, NewMessage};
use uig_engine::status::Status;

/// The signed time of the requests below that carry a hash.
const SIGNED_AT: i64 = 1_796_400_000_000;

async fn open(path: &std::path::Path) -> Db {
    let db = Db::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    db.migrate().await.unwrap();
    db
}

/// Stores one message of each kind the results below touch; returns their ids in order.
async fn fill(db: &Db) -> Vec<i64> {
    let key = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
    let client_id = uig_engine::clients::create(db, &key, "batch", &[], &[], None, None).await.unwrap().id;
    let new = |index: usize, status: Status, lease: Option<&str>, callback: bool| NewMessage {
        client_id,
        recipient: "testkit".to_string(),
        entity: "echo".to_string(),
        message: format!(r#"{{"n":{index}}}"#),
        status,
        callback_url: callback.then(|| "http://127.0.0.1:9/hook".to_string()),
        request_hash: None,
        request_ts: None,
        idempotency_key: None,
        pool: "worker".to_string(),
        lease: lease.map(|owner| (owner.to_string(), 60_000)),
    };
    let batch = vec![
        new(0, Status::Processing, Some("w1"), true),
        new(1, Status::Processing, Some("w1"), false),
        new(2, Status::Processing, Some("w1"), true),
        new(3, Status::Processing, Some("w1"), true),
        new(4, Status::Processing, Some("w1"), false),
        new(5, Status::Processing, Some("w2"), true),
        new(6, Status::Processing, Some("sync"), false),
        new(7, Status::Processing, Some("sync"), false),
        new(8, Status::Processing, Some("sync"), false),
        new(9, Status::Processing, Some("sync"), false),
        new(10, Status::Delivered, None, true),
        new(11, Status::Failed, None, true),
    ];
    let stored = ledger::insert_batch(db, &batch, 0).await.unwrap();
    // Values from an earlier attempt, so that each result visibly keeps or replaces them.
    db.writer
        .execute_unprepared(r#"UPDATE messages SET data = '{"earlier":true}', external_id = 'earlier-ext', error = 'earlier error'"#)
        .await
        .unwrap();
    stored
        .into_iter()
        .map(|stored| match stored {
            ledger::Stored::Created(row) => row.id,
            ledger::Stored::Existing(row) => panic!("message {} stored twice", row.id),
        })
        .collect()
}

fn attempt(message_id: i64, kind: &'static str, outcome: &str) -> AttemptRecord {
    AttemptRecord { message_id, kind, number: 1, started_at: 1_000, duration_ms: 7, outcome: outcome.to_string(), error: None }
}

/// Returns one result of every kind, for the messages of [`fill`].
fn results(ids: &[i64]) -> Vec<Finish> {
    let delivery = |index: usize, owner: &str, result: DeliveryResult| Finish::Delivery { owner: owner.to_string(), attempt: attempt(ids[index], "delivery", "done"), result };
    let sync = |index: usize, result: DeliveryResult| Finish::Sync { attempt: attempt(ids[index], "sync", "done"), result };
    vec![
        delivery(0, "w1", DeliveryResult::Delivered { data: r#"{"ok":0}"#.to_string() }),
        delivery(1, "w1", DeliveryResult::Delivered { data: r#"{"ok":1}"#.to_string() }),
        delivery(2, "w1", DeliveryResult::Pending { data: r#"{"wait":2}"#.to_string(), external_id: Some("ext-2".to_string()) }),
        delivery(3, "w1", DeliveryResult::Retry { error: "timed out".to_string(), next_attempt_at: 5 }),
        delivery(4, "w1", DeliveryResult::Failed { error: "rejected".to_string() }),
        // Message 5 is leased by w2, so w1's result changes nothing but the attempt.
        delivery(5, "w1", DeliveryResult::Delivered { data: r#"{"late":5}"#.to_string() }),
        sync(6, DeliveryResult::Delivered { data: r#"{"sync":6}"#.to_string() }),
        sync(7, DeliveryResult::Pending { data: r#"{"sync":7}"#.to_string(), external_id: None }),
        sync(8, DeliveryResult::Retry { error: "upstream down".to_string(), next_attempt_at: 9 }),
        sync(9, DeliveryResult::Failed { error: "bad vin".to_string() }),
        Finish::Callback { attempt: attempt(ids[10], "callback", "200"), state: "delivered", next_at: None },
        Finish::Callback { attempt: attempt(ids[11], "callback", "500"), state: "pending", next_at: Some(77) },
    ]
}

/// Stores `batch` as the finisher did before batching: each result with its own statements.
async fn finish_one_by_one(db: &Db, batch: Vec<Finish>) -> Vec<Finished> {
    let transaction = db.writer.begin().await.unwrap();
    let mut finished = Vec::new();
    for finish in batch {
        finished.push(match finish {
            Finish::Delivery { owner, attempt, result } => Finished::Delivery(ledger::finish_delivery_on(&transaction, &owner, attempt, result).await.unwrap()),
            Finish::Sync { attempt, result } => Finished::Sync(Box::new(ledger::finish_sync_on(&transaction, attempt, result).await.unwrap())),
            Finish::Callback { attempt, state, next_at } => {
                ledger::finish_callback_on(&transaction, attempt, state, next_at).await.unwrap();
                Finished::Callback
            }
        });
    }
    transaction.commit().await.unwrap();
    finished
}

async fn finish_together(db: &Db, batch: Vec<Finish>) -> Vec<Finished> {
    db.write_batch(|connection| {
        let mut writer = Batch::new(connection);
        batch.into_iter().map(|finish| writer.finish(finish)).collect()
    })
    .await
    .unwrap()
}

/// Clears the times set to "now" while storing results, which differ by milliseconds between
/// the two databases.
fn without_times(mut row: message::Model, since: i64) -> message::Model {
    if row.updated_at >= since {
        row.updated_at = 0;
    }
    if row.callback_next_at.is_some_and(|at| at >= since) {
        row.callback_next_at = Some(0);
    }
    row
}

/// Summarises results for comparison: the lease flags and the stored sync messages.
fn summary(finished: Vec<Finished>, since: i64) -> Vec<String> {
    finished
        .into_iter()
        .map(|finished| match finished {
            Finished::Delivery(lease_held) => format!("delivery lease_held={lease_held}"),
            Finished::Callback => "callback".to_string(),
            Finished::Sync(row) => format!("sync {:?}", without_times(*row, since)),
        })
        .collect()
}

async fn ledger_state(db: &Db, since: i64) -> (Vec<message::Model>, Vec<attempt::Model>) {
    let messages = message::Entity::find().order_by_asc(message::Column::Id).all(&db.reader).await.unwrap();
    let attempts = attempt::Entity::find().order_by_asc(attempt::Column::Id).all(&db.reader).await.unwrap();
    (messages.into_iter().map(|row| without_times(row, since)).collect(), attempts)
}

/// Stores `make(ids)` one by one in one copy of a filled ledger and per batch in another, and
/// compares the results and both ledgers.
async fn compare(make: impl Fn(&[i64]) -> Vec<Finish>) -> (Vec<String>, Vec<message::Model>) {
    let dir = tempfile::tempdir().unwrap();
    let (one_path, batch_path) = (dir.path().join("one.db"), dir.path().join("batch.db"));
    let ids = {
        let db = open(&one_path).await;
        let ids = fill(&db).await;
        db.writer.close().await.unwrap();
        db.reader.close().await.unwrap();
        ids
    };
    std::fs::copy(&one_path, &batch_path).unwrap();
    let (one, batch) = (open(&one_path).await, open(&batch_path).await);

    let since = ledger::now_ms();
    let finished_one = summary(finish_one_by_one(&one, make(&ids)).await, since);
    let finished_batch = summary(finish_together(&batch, make(&ids)).await, since);
    assert_eq!(finished_batch, finished_one);

    let (messages_one, attempts_one) = ledger_state(&one, since).await;
    let (messages_batch, attempts_batch) = ledger_state(&batch, since).await;
    assert_eq!(attempts_batch, attempts_one);
    for (batch_row, one_row) in messages_batch.iter().zip(&messages_one) {
        assert_eq!(batch_row, one_row);
    }
    assert_eq!(messages_batch.len(), messages_one.len());
    (finished_batch, messages_batch)
}

#[tokio::test]
async fn batch_matches_one_by_one() {
    let (finished, messages) = compare(results).await;

    // The comparison covers each kind of change, not only unchanged rows.
    assert_eq!(finished[5], "delivery lease_held=false");
    assert_eq!(finished[0], "delivery lease_held=true");
    let status = |index: usize| messages[index].status.as_str();
    assert_eq!(
        (0..10).map(status).collect::<Vec<_>>(),
        ["delivered", "delivered", "processing", "retrying", "failed", "processing", "delivered", "processing", "failed", "failed"]
    );
    assert_eq!(messages[0].callback_state.as_deref(), Some("pending"));
    assert_eq!(messages[1].callback_state, None);
    assert_eq!(messages[2].external_id.as_deref(), Some("ext-2"));
    assert_eq!(messages[2].error.as_deref(), Some("earlier error"));
    assert_eq!(messages[0].error, None);
    assert_eq!(messages[3].data.as_deref(), Some(r#"{"earlier":true}"#));
    assert_eq!(messages[3].next_attempt_at, Some(5));
    assert_eq!(messages[5].lease_owner.as_deref(), Some("w2"));
    assert_eq!(messages[8].error.as_deref(), Some("upstream down"));
    assert_eq!(messages[11].callback_next_at, Some(77));
    assert_eq!(messages[11].callback_attempts, 1);
}

#[tokio::test]
async fn batch_with_two_results_for_one_message() {
    // A late sync result and the worker's redelivery of the same message.
    let (finished, messages) = compare(|ids| {
        let mut batch = results(ids);
        batch.push(Finish::Delivery {
            owner: "sync".to_string(),
            attempt: attempt(ids[6], "delivery", "done"),
            result: DeliveryResult::Delivered { data: r#"{"again":6}"#.to_string() },
        });
        batch
    })
    .await;
    assert_eq!(finished.len(), 13);
    assert_eq!(messages[6].data.as_deref(), Some(r#"{"sync":6}"#));
}

/// New messages with request hashes and idempotency keys: repeats of stored messages, repeats
/// within the batch, a key older than the window, and two clients.
#[tokio::test]
async fn batch_insert_matches_insert_message() {
    let dir = tempfile::tempdir().unwrap();
    let (one, batch) = (open(&dir.path().join("one.db")).await, open(&dir.path().join("batch.db")).await);
    let key = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
    let mut clients = Vec::new();
    for db in [&one, &batch] {
        let first = uig_engine::clients::create(db, &key, "first", &[], &[], None, None).await.unwrap().id;
        let second = uig_engine::clients::create(db, &key, "second", &[], &[], None, None).await.unwrap().id;
        clients.push((first, second));
    }
    assert_eq!(clients[0], clients[1]);
    let (first, second) = clients[0];

    let new = |client_id: i32, index: usize, hash: Option<&str>, key: Option<&str>| NewMessage {
        client_id,
        recipient: "testkit".to_string(),
        entity: "echo".to_string(),
        message: format!(r#"{{"n":{index}}}"#),
        status: if index % 2 == 0 { Status::Queued } else { Status::Processing },
        callback_url: (index % 3 == 0).then(|| "http://127.0.0.1:9/hook".to_string()),
        request_hash: hash.map(str::to_string),
        // A repeated request repeats its signed time along with its hash.
        request_ts: hash.map(|_| SIGNED_AT),
        idempotency_key: key.map(str::to_string),
        pool: "worker".to_string(),
        lease: (index % 2 == 1).then(|| ("sync".to_string(), 60_000)),
    };
    // Stored first, in one batch on each side, so that the key window below can leave them out.
    // Message 12 has no signed time, as rows stored before migration 6.
    let earlier = vec![
        new(first, 0, Some("h0"), Some("k0")),
        new(first, 1, Some("h1"), None),
        new(second, 2, None, Some("k2")),
        NewMessage { request_ts: None, ..new(first, 12, Some("h12"), None) },
    ];
    // The key window starts after `earlier`, so "k0" is outside it. "h1" repeats at any age, and
    // so does "h12" of the unsigned row.
    let later = vec![
        new(first, 3, Some("h3"), Some("k0")),
        new(first, 4, Some("h1"), None),
        new(second, 5, Some("h5"), Some("k2")),
        new(first, 6, Some("h6"), Some("k6")),
        new(first, 7, Some("h7"), Some("k6")),
        new(second, 8, Some("h6"), None),
        new(second, 9, Some("h5"), Some("k9")),
        new(first, 10, None, None),
        new(second, 11, None, None),
        new(first, 13, Some("h12"), None),
        // A signed repeat of message 8 within the same batch.
        new(second, 14, Some("h6"), None),
        // A signed repeat of message 1 with the key of message 0, which is outside the window:
        // the repeated request wins over the old key.
        new(first, 15, Some("h1"), Some("k0")),
    ];

    let describe = |stored: ledger::Stored| match stored {
        ledger::Stored::Created(row) => format!("created {} seq {}", row.id, row.client_seq),
        ledger::Stored::Existing(row) => format!("existing {}", row.id),
    };
    let mut one_results = Vec::new();
    for message in &earlier {
        one_results.push(describe(ledger::insert_message(&one, message.clone(), 0).await.unwrap()));
    }
    let mut batch_results: Vec<String> = ledger::insert_batch(&batch, &earlier, 0).await.unwrap().into_iter().map(describe).collect();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let window = ledger::now_ms();
    for message in &later {
        one_results.push(describe(ledger::insert_message(&one, message.clone(), window).await.unwrap()));
    }
    batch_results.extend(ledger::insert_batch(&batch, &later, window).await.unwrap().into_iter().map(describe));
    assert_eq!(batch_results, one_results);
    // "k0" is outside the window but still in the unique index, so message 1 is returned.
    // Message 5 repeats "k2", so its "h5" is never stored and message 9 is new.
    assert_eq!(
        batch_results,
        [
            "created 1 seq 1", "created 2 seq 2", "created 3 seq 1", "created 4 seq 3", "existing 1", "existing 2", "existing 3",
            "created 5 seq 4", "existing 5", "created 6 seq 2", "created 7 seq 3", "created 8 seq 5", "created 9 seq 4", "existing 4",
            "existing 6", "existing 2",
        ]
    );

    let (messages_one, attempts_one) = ledger_state(&one, 0).await;
    let (messages_batch, attempts_batch) = ledger_state(&batch, 0).await;
    assert!(attempts_one.is_empty());
    assert!(attempts_batch.is_empty());
    assert_eq!(messages_batch.len(), messages_one.len());
    for (batch_row, one_row) in messages_batch.iter().zip(&messages_one) {
        // Only the times differ, by the milliseconds between the two inserts.
        let times = |row: &message::Model| (row.created_at, row.updated_at, row.next_attempt_at, row.lease_until);
        let (batch_times, one_times) = (times(batch_row), times(one_row));
        let same = message::Model { created_at: 0, updated_at: 0, next_attempt_at: batch_row.next_attempt_at.map(|_| 0), lease_until: batch_row.lease_until.map(|_| 0), ..batch_row.clone() };
        let expected = message::Model { created_at: 0, updated_at: 0, next_attempt_at: one_row.next_attempt_at.map(|_| 0), lease_until: one_row.lease_until.map(|_| 0), ..one_row.clone() };
        assert_eq!(same, expected);
        assert!(batch_times.0 > 0);
        assert!(one_times.0 > 0);
    }
}

/// A batch whose last step fails is rolled back whole: the messages inserted before it are gone.
#[tokio::test]
async fn failed_batch_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("failed.db")).await;
    let ids = fill(&db).await;
    let before = ledger_state(&db, 0).await;

    let key = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
    let client_id = uig_engine::clients::create(&db, &key, "rollback", &[], &[], None, None).await.unwrap().id;
    let new = NewMessage {
        client_id,
        recipient: "testkit".to_string(),
        entity: "echo".to_string(),
        message: "{}".to_string(),
        status: Status::Queued,
        callback_url: None,
        request_hash: Some("rolled-back".to_string()),
        request_ts: Some(SIGNED_AT),
        idempotency_key: None,
        pool: "worker".to_string(),
        lease: None,
    };
    let missing = ids.iter().max().unwrap() + 1_000;
    let failed = db
        .write_batch(|connection| {
            let mut batch = Batch::new(connection);
            batch.insert(&new, 0)?;
            batch.finish(Finish::Callback { attempt: attempt(ids[10], "callback", "200"), state: "delivered", next_at: None })?;
            // A sync result for a message that does not exist fails the batch.
            batch.finish(Finish::Sync { attempt: attempt(missing, "sync", "done"), result: DeliveryResult::Failed { error: "x".to_string() } })
        })
        .await;
    assert!(failed.is_err());

    let after = ledger_state(&db, 0).await;
    assert_eq!(after.0, before.0);
    assert_eq!(after.1, before.1);
    // The writer connection is usable again, outside any transaction.
    let stored = ledger::insert_batch(&db, &[new], 0).await.unwrap();
    assert!(matches!(stored[0], ledger::Stored::Created(_)));
}

/// Work that leaves a transaction open, or panics inside one, is rolled back, and the writer
/// connection takes the next write.
#[tokio::test]
async fn open_transaction_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("open.db")).await;
    let ids = fill(&db).await;
    let count = |db: Db| async move { message::Entity::find().all(&db.reader).await.unwrap().len() };
    let before = count(db.clone()).await;

    // A sea-orm write on the same connection commits only if no transaction was left open.
    let write_commits = |db: Db, id: i64, error: &'static str| async move {
        db.writer.execute_unprepared(&format!("UPDATE messages SET error = '{error}' WHERE id = {id}")).await.unwrap();
        let row = message::Entity::find_by_id(id).one(&db.reader).await.unwrap().unwrap();
        row.error.as_deref() == Some(error)
    };

    db.with_writer_handle(|sqlite| {
        sqlite.execute_batch("BEGIN IMMEDIATE").unwrap();
        sqlite.execute("DELETE FROM messages WHERE id = ?1", [ids[0]]).unwrap();
    })
    .await
    .unwrap();
    assert!(write_commits(db.clone(), ids[2], "after the open transaction").await);
    assert_eq!(count(db.clone()).await, before);

    let writer = db.clone();
    let doomed = ids[1];
    let batch = std::panic::AssertUnwindSafe(async move {
        writer
            .with_writer_handle(|sqlite| {
                sqlite.execute_batch("BEGIN IMMEDIATE").unwrap();
                sqlite.execute("DELETE FROM messages WHERE id = ?1", [doomed]).unwrap();
                panic!("a batch failed halfway");
            })
            .await
    });
    assert!(panics(batch).await);
    assert!(write_commits(db.clone(), ids[3], "after the panic").await);
    assert_eq!(count(db.clone()).await, before);
}

/// A read transaction left open on a reader connection is rolled back, so no later read on that
/// connection reads the old snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_read_transaction_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("read.db")).await;
    let ids = fill(&db).await;
    let count = "SELECT count(*) FROM messages";
    let before: i64 = db
        .with_reader_handle(|sqlite| {
            sqlite.execute_batch("BEGIN").unwrap();
            sqlite.query_row(count, [], |row| row.get(0)).unwrap()
        })
        .await
        .unwrap();
    db.writer.execute_unprepared(&format!("DELETE FROM messages WHERE id = {}", ids[0])).await.unwrap();
    // Reads one after another reuse the idle connection, the one that was left open among them.
    for _ in 0..16 {
        let (now, autocommit): (i64, bool) =
            db.with_reader_handle(|sqlite| (sqlite.query_row(count, [], |row| row.get(0)).unwrap(), sqlite.is_autocommit())).await.unwrap();
        assert_eq!(now, before - 1, "a read saw the snapshot of the transaction left open");
        assert!(autocommit);
    }
}

/// Returns true when `future` panics. It runs as a local task, because the writer's locked
/// handle is not `Send`.
async fn panics<F: std::future::Future + 'static>(future: std::panic::AssertUnwindSafe<F>) -> bool {
    let local = tokio::task::LocalSet::new();
    let outcome = local.run_until(async move { tokio::task::spawn_local(async move { future.await; }).await }).await;
    outcome.is_err_and(|error| error.is_panic())
}

/// Delivery claims take due messages of the pool, earliest due first: queued and retrying ones
/// whose time has come and processing ones whose lease ran out. Callback claims take due
/// callbacks, earliest first, and move them ahead by the lease.
#[tokio::test]
async fn claims_take_due_work_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("claims.db")).await;
    let ids = fill(&db).await;
    let now = ledger::now_ms();
    let set = |id: i64, columns: String| {
        let db = db.clone();
        async move { db.writer.execute_unprepared(&format!("UPDATE messages SET {columns} WHERE id = {id}")).await.unwrap() }
    };
    let queued = |at: i64| format!("status = 'queued', next_attempt_at = {at}, lease_owner = NULL, lease_until = NULL");
    set(ids[0], queued(now - 1_000)).await;
    set(ids[1], queued(now + 60_000)).await;
    set(ids[2], format!("status = 'retrying', next_attempt_at = {}, lease_owner = NULL, lease_until = NULL", now - 1)).await;
    // A leased message keeps the end of its lease in `next_attempt_at`, as the engine stores it.
    let leased = |owner: &str, until: i64| format!("status = 'processing', lease_owner = '{owner}', lease_until = {until}, next_attempt_at = {until}");
    set(ids[3], leased("dead", now - 1)).await;
    set(ids[4], leased("alive", now + 60_000)).await;
    // Still processing at the recipient: no lease, nothing due.
    set(ids[5], "status = 'processing', lease_owner = NULL, lease_until = NULL, next_attempt_at = NULL".to_string()).await;
    set(ids[6], format!("{}, pool = 'other'", queued(now - 1_000))).await;
    set(ids[7], "status = 'delivered', lease_owner = NULL, lease_until = NULL, next_attempt_at = NULL".to_string()).await;
    // The earliest due, though not the oldest message.
    set(ids[8], queued(now - 5_000)).await;
    set(ids[9], "status = 'failed', lease_owner = NULL, lease_until = NULL, next_attempt_at = NULL".to_string()).await;

    let claim = |limit: u64| {
        let db = db.clone();
        async move { db.write_batch(|connection| Batch::new(connection).claim_deliveries("me", "worker", limit, 30_000)).await.unwrap() }
    };
    // Earliest due first: 8, then 0, then 2 before 3 (same due time, lower id).
    let first = claim(3).await;
    assert_eq!(first.iter().map(|row| row.id).collect::<Vec<_>>(), [ids[0], ids[2], ids[8]]);
    for row in &first {
        assert_eq!(row.status, "processing");
        assert_eq!(row.lease_owner.as_deref(), Some("me"));
        assert!(row.lease_until.unwrap() >= now + 30_000);
        assert_eq!(row.next_attempt_at, row.lease_until, "a claimed message is next due when its lease ends");
    }
    let rest = claim(10).await;
    assert_eq!(rest.iter().map(|row| row.id).collect::<Vec<_>>(), [ids[3]]);
    assert!(claim(10).await.is_empty());

    // The callbacks of 10 and 11 are due, and 11's is older. The callback of 0 is due later, and 1's
    // was delivered already.
    set(ids[10], format!("callback_state = 'pending', callback_next_at = {}", now - 10)).await;
    set(ids[11], format!("callback_state = 'pending', callback_next_at = {}", now - 500)).await;
    set(ids[0], format!("callback_state = 'pending', callback_next_at = {}", now + 60_000)).await;
    set(ids[1], format!("callback_state = 'delivered', callback_next_at = {}", now - 500)).await;
    let claim_callbacks = |limit: u64| {
        let db = db.clone();
        async move { db.write_batch(|connection| Batch::new(connection).claim_callbacks(limit, 40_000)).await.unwrap() }
    };
    let first = claim_callbacks(1).await;
    assert_eq!(first.iter().map(|row| row.id).collect::<Vec<_>>(), [ids[11]]);
    assert!(first[0].callback_next_at.unwrap() >= now + 40_000);
    let rest = claim_callbacks(10).await;
    assert_eq!(rest.iter().map(|row| row.id).collect::<Vec<_>>(), [ids[10]]);
    assert!(claim_callbacks(10).await.is_empty());
}

/// A claim reads index ranges of due work only: its cost does not grow with the finished messages
/// of the pool. SQLite's progress handler counts the virtual machine's steps of each claim.
#[tokio::test]
async fn claim_work_does_not_grow_with_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("claim-cost.db")).await;
    let ids = fill(&db).await;
    let now = ledger::now_ms();
    db.writer.execute_unprepared("UPDATE messages SET status = 'delivered', lease_owner = NULL, lease_until = NULL, next_attempt_at = NULL").await.unwrap();

    // Steps of one claim that takes two due messages, with `finished` more delivered messages.
    let steps_of_claim = |finished: i64| {
        let db = db.clone();
        let ids = ids.clone();
        async move {
            db.writer
                .execute_unprepared(&format!(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {finished}) \
                     INSERT INTO messages (client_id, client_seq, direction, recipient, entity, message, status, pool, created_at, updated_at) \
                     SELECT m.client_id, (SELECT MAX(client_seq) FROM messages) + n.i, 'outbound', m.recipient, m.entity, m.message, 'delivered', 'worker', 0, 0 \
                     FROM n, messages m WHERE m.id = {}",
                    ids[7]
                ))
                .await
                .unwrap();
            for id in [ids[0], ids[1]] {
                db.writer.execute_unprepared(&format!("UPDATE messages SET status = 'queued', next_attempt_at = {} WHERE id = {id}", now - 1)).await.unwrap();
            }
            db.write_batch(|connection| {
                let steps = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
                let counter = steps.clone();
                connection.progress_handler(
                    10,
                    Some(move || {
                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        false
                    }),
                );
                let claimed = Batch::new(connection).claim_deliveries("me", "worker", 64, 30_000);
                connection.progress_handler(0, None::<fn() -> bool>);
                assert_eq!(claimed?.len(), 2);
                Ok(steps.load(std::sync::atomic::Ordering::Relaxed) * 10)
            })
            .await
            .unwrap()
        }
    };
    let small = steps_of_claim(10).await;
    let large = steps_of_claim(20_000).await;
    // A scan of the pool would take several steps per message, over 100,000 here.
    assert!(large < small * 2 + 200, "a claim took {large} steps with 20,010 finished messages and {small} with 10");
}

/// New messages carry a client's signed time in front of the hash in the index of repeated
/// requests, so a batch of them adds to the end of the client's range of that index. A hash-ordered index would put
/// each new message on a random page and write one more WAL page per message. The test counts
/// the WAL pages that one batch of 100 signed messages writes beside 20,000 stored ones.
#[tokio::test]
async fn new_messages_write_few_index_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pages.db");
    let db = open(&path).await;
    let key = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
    let client_id = uig_engine::clients::create(&db, &key, "pages", &[], &[], None, None).await.unwrap().id;
    db.writer
        .execute_unprepared(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
             INSERT INTO messages (client_id, client_seq, direction, recipient, entity, message, status, request_hash, request_ts, \
             pool, created_at, updated_at) \
             SELECT {client_id}, i, 'outbound', 'testkit', 'echo', '{{}}', 'delivered', lower(hex(randomblob(32))), {SIGNED_AT} - 20000 + i, \
             'worker', 0, 0 FROM n"
        ))
        .await
        .unwrap();
    db.writer.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)").await.unwrap();

    let batch: Vec<NewMessage> = (0..100)
        .map(|index| NewMessage {
            client_id,
            recipient: "testkit".to_string(),
            entity: "echo".to_string(),
            message: format!(r#"{{"n":{index}}}"#),
            status: Status::Queued,
            callback_url: None,
            // Spread over the whole range, as the hex digits of an HMAC are.
            request_hash: Some(format!("{0:032x}{0:032x}", (index as u128 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))),
            request_ts: Some(SIGNED_AT + index / 10),
            idempotency_key: None,
            pool: "worker".to_string(),
            lease: None,
        })
        .collect();
    let stored = ledger::insert_batch(&db, &batch, 0).await.unwrap();
    assert!(stored.iter().all(|stored| matches!(stored, ledger::Stored::Created(_))));

    let wal_bytes = std::fs::metadata(dir.path().join("pages.db-wal")).unwrap().len();
    let pages = wal_bytes.saturating_sub(32) / (4096 + 24);
    // The rows, the other indexes and the unread counts take 35 pages here. The two full indexes
    // of due messages that migration 9 replaced made it 43. Full indexes on the idempotency key and
    // the callback state, which list every NULL, made it 51, and an index ordered by hash alone
    // over 400.
    assert!(pages < 40, "a batch of 100 new messages wrote {pages} WAL pages");
}

/// A sync send is stored leased to its instance. If the instance dies during the plugin call, a
/// delivery claim takes the message once the lease runs out, and not before.
#[tokio::test]
async fn leased_insert_claimed_after_lease() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("lease.db")).await;
    let key = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
    let client_id = uig_engine::clients::create(&db, &key, "lease", &[], &[], None, None).await.unwrap().id;
    let leased = |lease_ms: i64| NewMessage {
        client_id,
        recipient: "testkit".to_string(),
        entity: "echo".to_string(),
        message: format!(r#"{{"lease_ms":{lease_ms}}}"#),
        status: Status::Processing,
        callback_url: None,
        request_hash: None,
        request_ts: None,
        idempotency_key: None,
        pool: "worker".to_string(),
        lease: Some(("dead-instance".to_string(), lease_ms)),
    };
    let stored = ledger::insert_batch(&db, &[leased(50), leased(60_000)], 0).await.unwrap();
    let ids: Vec<i64> = stored
        .iter()
        .map(|stored| match stored {
            ledger::Stored::Created(row) => row.id,
            ledger::Stored::Existing(row) => panic!("message {} stored twice", row.id),
        })
        .collect();
    let claim = || {
        let db = db.clone();
        async move { db.write_batch(|connection| Batch::new(connection).claim_deliveries("me", "worker", 10, 30_000)).await.unwrap() }
    };

    assert!(claim().await.is_empty(), "a lease that has not run out is not claimed");
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    let claimed = claim().await;
    assert_eq!(claimed.iter().map(|row| row.id).collect::<Vec<_>>(), [ids[0]]);
    assert_eq!(claimed[0].lease_owner.as_deref(), Some("me"));
}

/// A sync lookup is stored once, with its result and attempt (`Batch::insert_with_result`). The row
/// and the attempt are the ones a sync send leaves after its insert and its result, for every kind
/// of result, and a repeated request stores nothing.
#[tokio::test]
async fn insert_with_result_matches_two_steps() {
    let dir = tempfile::tempdir().unwrap();
    let (two_steps, one_step) = (open(&dir.path().join("two.db")).await, open(&dir.path().join("one_step.db")).await);
    let key = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
    let mut client_ids = Vec::new();
    for db in [&two_steps, &one_step] {
        client_ids.push(uig_engine::clients::create(db, &key, "lookup", &[], &[], None, None).await.unwrap().id);
    }
    assert_eq!(client_ids[0], client_ids[1]);
    let new = |index: i64, lease: Option<(String, i64)>| NewMessage {
        client_id: client_ids[0],
        recipient: "avinfo".to_string(),
        entity: "vehicle".to_string(),
        message: format!(r#"{{"vin":"XTA2109904376543{index}"}}"#),
        status: Status::Processing,
        callback_url: None,
        request_hash: Some(format!("{index:064x}")),
        request_ts: Some(SIGNED_AT + index),
        idempotency_key: (index == 2).then(|| "key-2".to_string()),
        pool: "worker".to_string(),
        lease,
    };
    let results = [
        DeliveryResult::Delivered { data: r#"{"brand":"LADA"}"#.to_string() },
        DeliveryResult::Pending { data: "null".to_string(), external_id: Some("ext-1".to_string()) },
        DeliveryResult::Retry { error: r#"{"kind":"transient"}"#.to_string(), next_attempt_at: 9 },
        DeliveryResult::Failed { error: r#"{"kind":"permanent"}"#.to_string() },
    ];
    let attempt_of = |message_id: i64, index: usize| AttemptRecord { message_id, outcome: format!("outcome-{index}"), ..attempt(message_id, "delivery", "") };

    // Two steps: stored leased before the call, then the result.
    let leased: Vec<NewMessage> = (0..4).map(|index| new(index, Some(("sync".to_string(), 60_000)))).collect();
    let stored = ledger::insert_batch(&two_steps, &leased, 0).await.unwrap();
    for (index, (stored, result)) in stored.iter().zip(&results).enumerate() {
        let ledger::Stored::Created(row) = stored else { panic!("message {index} stored twice") };
        ledger::finish_sync(&two_steps, attempt_of(row.id, index), result.clone()).await.unwrap();
    }

    // One step: stored with the result. The API passes the lease of a sync send here too, and the
    // result must drop it.
    let inserted: Vec<ledger::Stored> = one_step
        .write_batch(|connection| {
            let mut batch = Batch::new(connection);
            let stored = (0..4)
                .map(|index| batch.insert_with_result(&new(index as i64, Some(("sync".to_string(), 60_000))), 0, &attempt_of(0, index), &results[index]))
                .collect::<Result<Vec<_>, _>>()?;
            batch.complete()?;
            Ok(stored)
        })
        .await
        .unwrap();
    // The returned rows are the stored ones, column by column.
    for stored in &inserted {
        let ledger::Stored::Created(row) = stored else { panic!("a new request was taken for a repeat") };
        let read_back = ledger::find(&one_step, row.id).await.unwrap().unwrap();
        assert_eq!(row, &read_back);
    }

    let state = |db: Db| async move {
        let (messages, attempts) = ledger_state(&db, 0).await;
        let messages: Vec<message::Model> = messages.into_iter().map(|row| message::Model { created_at: 0, updated_at: 0, ..row }).collect();
        (messages, attempts)
    };
    let (messages_two, attempts_two) = state(two_steps.clone()).await;
    let (messages_one_step, attempts_one_step) = state(one_step.clone()).await;
    assert_eq!(messages_one_step, messages_two);
    assert_eq!(attempts_one_step, attempts_two);
    let counts = |db: Db| async move {
        let sql = "SELECT client_id, level, bucket, unread FROM unread_counts ORDER BY client_id, level, bucket";
        let rows = db.reader.query_all(Statement::from_string(DbBackend::Sqlite, sql)).await.unwrap();
        rows.iter().map(|row| (row.try_get_by_index::<i64>(2).unwrap(), row.try_get_by_index::<i64>(3).unwrap())).collect::<Vec<_>>()
    };
    let counts_one_step = counts(one_step.clone()).await;
    assert_eq!(counts_one_step, counts(two_steps.clone()).await);
    assert_eq!(counts_one_step, [(0, 4), (0, 4)], "four unread messages in block 0 of both levels");
    let statuses: Vec<&str> = messages_one_step.iter().map(|row| row.status.as_str()).collect();
    assert_eq!(statuses, ["delivered", "processing", "failed", "failed"]);
    assert_eq!(messages_one_step[1].external_id.as_deref(), Some("ext-1"));
    assert!(messages_one_step.iter().all(|row| row.attempts == 1 && row.lease_owner.is_none() && row.next_attempt_at.is_none()));
    assert_eq!(attempts_one_step.iter().map(|row| row.message_id).collect::<Vec<_>>(), messages_one_step.iter().map(|row| row.id).collect::<Vec<_>>());

    // A repeat by hash and one by idempotency key return the earlier messages and store no attempt.
    let repeats: Vec<ledger::Stored> = one_step
        .write_batch(|connection| {
            let mut batch = Batch::new(connection);
            let by_key = NewMessage { request_hash: Some("f".repeat(64)), ..new(2, None) };
            [new(0, None), by_key].iter().map(|repeat| batch.insert_with_result(repeat, 0, &attempt_of(0, 9), &results[0])).collect()
        })
        .await
        .unwrap();
    let repeated_ids: Vec<i64> = repeats
        .iter()
        .map(|stored| match stored {
            ledger::Stored::Existing(row) => row.id,
            ledger::Stored::Created(row) => panic!("repeat stored as message {}", row.id),
        })
        .collect();
    assert_eq!(repeated_ids, [messages_one_step[0].id, messages_one_step[2].id]);
    let (messages_after, attempts_after) = state(one_step).await;
    assert_eq!(messages_after, messages_one_step);
    assert_eq!(attempts_after.len(), 4);
}

/// The bundled SQLite is built with the options that `.cargo/config.toml` sets, among them no
/// count of allocated memory (a global mutex on every allocation).
///
/// NOTE: Cargo reads that file only when it runs inside the workspace, and a `LIBSQLITE3_FLAGS`
/// already set in the environment replaces it, so such a build fails this test.
#[tokio::test]
async fn sqlite_built_with_the_workspace_options() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("options.db")).await;
    let rows = db.writer.query_all(Statement::from_string(DbBackend::Sqlite, "PRAGMA compile_options")).await.unwrap();
    let options: Vec<String> = rows.iter().map(|row| row.try_get_by_index::<String>(0).unwrap()).collect();
    assert!(options.iter().any(|option| option == "DEFAULT_MEMSTATUS=0"), "{options:?}");
}

/// A writer that keeps a transaction open almost all the time, as the group-commit thread does
/// under load, still gets its WAL file started over. Once the WAL has the frames it is given,
/// `checkpoint_wal` finishes the checkpoint on the writer connection between two transactions.
/// With a checkpoint on a reader connection alone, the WAL grew by every frame written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_restarts_under_constant_writes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Stops the writer thread when the test ends, failed or not.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    // Far below `uig serve`'s WAL_RESTART_FRAMES, so that a few seconds of writes restart often.
    const RESTART_FRAMES: i64 = 1024;
    const RESTARTS: usize = 4;
    const ROW_BYTES: u64 = 16_000;

    let folder = tempfile::tempdir().unwrap();
    let db = open(&folder.path().join("ledger.db")).await;
    let wal = folder.path().join("ledger.db-wal");
    db.write_batch(|sqlite| sqlite.execute_batch("CREATE TABLE filler (id INTEGER PRIMARY KEY, body BLOB)")).await.unwrap();

    // Transactions back to back, each holding the writer for 2 ms and adding a row of four pages.
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let runtime = tokio::runtime::Handle::current();
    let writer = std::thread::spawn({
        let (db, stop) = (db.clone(), stop.0.clone());
        move || {
            while !stop.load(Ordering::Relaxed) {
                runtime
                    .block_on(db.write_batch(|sqlite| {
                        sqlite.execute("INSERT INTO filler (body) VALUES (zeroblob(?1))", [ROW_BYTES as i64])?;
                        std::thread::sleep(Duration::from_millis(2));
                        Ok(())
                    }))
                    .unwrap();
            }
        }
    });

    // Checkpoints until the WAL has started over a few times, or a slow machine's deadline.
    let mut frames_seen = Vec::new();
    let mut largest_wal = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let restarts = |frames: &[i64]| frames.windows(2).filter(|pair| pair[1] < pair[0]).count();
    while restarts(&frames_seen) < RESTARTS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let (frames, _copied) = db.checkpoint_wal(RESTART_FRAMES).await.unwrap();
        frames_seen.push(frames);
        largest_wal = largest_wal.max(std::fs::metadata(&wal).unwrap().len());
    }
    drop(stop);
    writer.join().unwrap();

    assert_eq!(restarts(&frames_seen), RESTARTS, "the WAL did not start over {RESTARTS} times in 60 s; frames after each checkpoint: {frames_seen:?}");
    let rows: i64 = db
        .with_reader_handle(|sqlite| sqlite.query_row("SELECT COUNT(*) FROM filler", [], |row| row.get(0)).unwrap())
        .await
        .unwrap();
    // The file keeps only what was written since a restart, far less than all the rows' bytes.
    let written = rows as u64 * ROW_BYTES;
    assert!(largest_wal < written / 2, "the WAL file reached {largest_wal} bytes for {written} bytes of rows; frames after each checkpoint: {frames_seen:?}");
}
