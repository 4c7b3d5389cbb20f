//! Group commit: accepted messages and attempt results that arrive together are stored in one
//! transaction, so one fsync makes the whole batch durable. Each sender gets its reply only after
//! that commit.
//!
//! One thread serves new messages, results and the workers' claims, so a sync send's insert and
//! the results of earlier sends share a commit instead of taking turns on the single writer
//! connection. It runs each batch straight on the writer's SQLite handle
//! ([`Db::with_writer_handle`]).

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::claims::{Claim, Claims};
use crate::db::{write_transaction, Db};
use crate::finisher::{Finisher, Outcome, Reply};
use crate::intake::{Intake, Pending};
use crate::ledger::batch::{Batch, Finished};

/// Maximum number of messages, of results and of claims in one transaction.
const MAX_BATCH: usize = 256;

/// Room in each queue (messages, results, claims) for work waiting for the next batch. Senders
/// wait when it is full.
const QUEUE: usize = 4096;

/// Starts the group-commit thread and returns its handles. The thread runs until every handle is
/// dropped. It blocks in SQLite while a batch is stored, so it is not a runtime worker.
pub fn start(db: Db) -> (Intake, Finisher, Claims) {
    let (intake_sender, intake) = mpsc::channel(QUEUE);
    let (finisher_sender, results) = mpsc::channel(QUEUE);
    let (claims_sender, claims) = mpsc::channel(QUEUE);
    let queues = Queues { intake, results, claims };
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("uig-group-commit".to_string())
        .spawn(move || runtime.block_on(run(db, queues)))
        .expect("cannot start the group-commit thread");
    (Intake::new(intake_sender), Finisher::new(finisher_sender), Claims::new(claims_sender))
}

/// The receiving ends of the handles.
struct Queues {
    intake: mpsc::Receiver<Pending>,
    results: mpsc::Receiver<Outcome>,
    claims: mpsc::Receiver<Claim>,
}

/// The work of one batch.
#[derive(Default)]
struct Work {
    sends: Vec<Pending>,
    outcomes: Vec<Outcome>,
    claims: Vec<Claim>,
}

impl Work {
    fn is_empty(&self) -> bool {
        self.sends.is_empty() && self.outcomes.is_empty() && self.claims.is_empty()
    }

    /// Adds whatever is waiting in `queues`, up to [`MAX_BATCH`] items of each kind.
    fn take_waiting(&mut self, queues: &mut Queues) {
        take_waiting(&mut queues.intake, &mut self.sends);
        take_waiting(&mut queues.results, &mut self.outcomes);
        take_waiting(&mut queues.claims, &mut self.claims);
    }
}

/// Maximum time the thread keeps the writer connection locked while more work keeps arriving.
/// Other writes (reads marked by `get`, postponed deliveries, feeds) wait at most this long plus
/// one batch.
const HOLD: Duration = Duration::from_millis(4);

/// Waits for at least one message, result or claim, then locks the writer connection and commits
/// batches of whatever is waiting (at most [`MAX_BATCH`] items of each kind per batch) until the
/// queues are empty or [`HOLD`] has passed. Work that arrives during a commit forms the next batch.
/// Ends when every handle is dropped.
async fn run(db: Db, mut queues: Queues) {
    let mut work = Work::default();
    let (mut intake_open, mut results_open, mut claims_open) = (true, true, true);
    while intake_open || results_open || claims_open {
        tokio::select! {
            received = queues.intake.recv_many(&mut work.sends, MAX_BATCH), if intake_open => intake_open = received > 0,
            received = queues.results.recv_many(&mut work.outcomes, MAX_BATCH), if results_open => results_open = received > 0,
            received = queues.claims.recv_many(&mut work.claims, MAX_BATCH), if claims_open => claims_open = received > 0,
        }
        if work.is_empty() {
            continue;
        }
        let locked = db
            .with_writer_handle(|sqlite| {
                let started = Instant::now();
                loop {
                    work.take_waiting(&mut queues);
                    if work.is_empty() {
                        break;
                    }
                    let batch = std::mem::take(&mut work);
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit(sqlite, batch))).is_err() {
                        // The batch's reply channels were dropped, so its senders see an error.
                        // `with_writer_handle` rolls back the transaction the panic left open.
                        tracing::error!("storing a batch panicked; its open transaction is rolled back");
                        break;
                    }
                    if started.elapsed() >= HOLD {
                        break;
                    }
                }
            })
            .await;
        if let Err(error) = locked {
            reply_failed(&format!("cannot lock the writer connection: {error}"), std::mem::take(&mut work));
        }
    }
}

/// Moves waiting items from `queue` into `batch` until it has [`MAX_BATCH`].
fn take_waiting<T>(queue: &mut mpsc::Receiver<T>, batch: &mut Vec<T>) {
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
}

/// Stores one batch in one transaction on the locked writer and replies to every sender. Claims
/// run last, so they can take messages stored or made due by the same batch.
fn commit(sqlite: &rusqlite::Connection, work: Work) {
    let Work { sends, outcomes, claims } = work;
    let (messages, send_replies): (Vec<_>, Vec<_>) =
        sends.into_iter().map(|pending| ((pending.message, pending.idempotency_since, pending.result), pending.reply)).unzip();
    let (finishes, result_replies): (Vec<_>, Vec<Reply>) = outcomes.into_iter().map(Outcome::split).unzip();
    let claim_count = claims.len();
    let mut claim_replies = Vec::with_capacity(claim_count);

    let stored = write_transaction(sqlite, |connection| {
        let mut batch = Batch::new(connection);
        let stored = messages
            .iter()
            .map(|(message, since, result)| match result {
                None => batch.insert(message, *since),
                Some((attempt, result)) => batch.insert_with_result(message, *since, attempt, result),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let finished = finishes.into_iter().map(|finish| batch.finish(finish)).collect::<Result<Vec<_>, _>>()?;
        let mut claimed = Vec::with_capacity(claims.len());
        for claim in claims {
            let (rows, reply) = match claim {
                Claim::Deliveries { owner, pool, limit, lease_ms, reply } => (batch.claim_deliveries(&owner, &pool, limit, lease_ms)?, reply),
                Claim::Callbacks { limit, lease_ms, reply } => (batch.claim_callbacks(limit, lease_ms)?, reply),
            };
            claimed.push(rows);
            claim_replies.push(reply);
        }
        batch.complete()?;
        Ok((stored, finished, claimed))
    });

    let (stored, finished, claimed) = match stored {
        Ok(done) => done,
        Err(error) => {
            let error = format!("storing a batch failed: {error}");
            tracing::error!(%error, messages = send_replies.len(), results = result_replies.len(), claims = claim_count, "none of the batch is stored");
            for reply in send_replies {
                let _ = reply.send(Err(error.clone()));
            }
            // Claims taken before the failure are undone with the rest.
            for reply in claim_replies {
                let _ = reply.send(Err(error.clone()));
            }
            // The results' senders get no reply, as in `reply_failed`.
            return;
        }
    };
    for (reply, rows) in claim_replies.into_iter().zip(claimed) {
        let _ = reply.send(Ok(rows));
    }
    for (reply, stored) in send_replies.into_iter().zip(stored) {
        let _ = reply.send(Ok(stored));
    }
    for (reply, finished) in result_replies.into_iter().zip(finished) {
        match (reply, finished) {
            (Reply::Flag(reply), Finished::Delivery(lease_held)) => {
                let _ = reply.send(Ok(lease_held));
            }
            (Reply::Flag(reply), _) => {
                let _ = reply.send(Ok(true));
            }
            (Reply::Message(reply), Finished::Sync(stored)) => {
                let _ = reply.send(Ok(*stored));
            }
            (Reply::Message(reply), _) => {
                tracing::error!("a sync send's result was stored but came back as another kind of result");
                let _ = reply.send(Err("the stored result is not the message of a sync send".to_string()));
            }
        }
    }
}

/// Replies to the senders of a batch that was not stored. The senders of messages and claims get
/// `error`. The senders of results get no reply, and the rows keep their leases, which run out so
/// that the messages are claimed and delivered again (at least once). A sync client gets 503, and
/// the worker finishes its message after the lease.
fn reply_failed(error: &str, work: Work) {
    tracing::error!(%error, messages = work.sends.len(), results = work.outcomes.len(), claims = work.claims.len(), "none of the batch is stored");
    for pending in work.sends {
        let _ = pending.reply.send(Err(error.to_string()));
    }
    for claim in work.claims {
        let (Claim::Deliveries { reply, .. } | Claim::Callbacks { reply, .. }) = claim;
        let _ = reply.send(Err(error.to_string()));
    }
}
