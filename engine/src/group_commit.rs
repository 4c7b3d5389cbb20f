//! Group commit: accepted messages and attempt results that arrive together are stored in one
//! transaction, so one fsync makes the whole batch durable. Each sender gets its reply only after
//! that commit.
//!
//! One thread serves both kinds of work, so a sync send's insert and the results of earlier sends
//! share a commit instead of taking turns on the single writer connection. It runs each batch
//! straight on the writer's SQLite handle ([`Db::write_batch`]).

use tokio::sync::mpsc;

use crate::db::Db;
use crate::finisher::{Finisher, Outcome, Reply};
use crate::intake::{Intake, Pending};
use crate::ledger::batch::{Batch, Finished};
use crate::ledger::NewMessage;

/// Largest number of messages, and of results, stored in one transaction.
const MAX_BATCH: usize = 256;

/// Room for messages, and for results, waiting for the next batch; senders wait when it is full.
const QUEUE: usize = 4096;

/// Starts the group-commit thread and returns its two handles. The thread runs until both
/// handles are dropped; it blocks in SQLite while a batch is stored, so it is not a runtime worker.
pub fn start(db: Db) -> (Intake, Finisher) {
    let (intake_sender, intake) = mpsc::channel(QUEUE);
    let (finisher_sender, results) = mpsc::channel(QUEUE);
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("uig-group-commit".to_string())
        .spawn(move || runtime.block_on(run(db, intake, results)))
        .expect("cannot start the group-commit thread");
    (Intake::new(intake_sender), Finisher::new(finisher_sender))
}

/// Waits for at least one message or result, takes whatever else is waiting (at most
/// [`MAX_BATCH`] of each) and commits them together. Work that arrives during a commit forms the
/// next batch. Ends when both handles are dropped.
async fn run(db: Db, mut intake: mpsc::Receiver<Pending>, mut results: mpsc::Receiver<Outcome>) {
    let mut sends = Vec::with_capacity(MAX_BATCH);
    let mut outcomes = Vec::with_capacity(MAX_BATCH);
    let (mut intake_open, mut results_open) = (true, true);
    while intake_open || results_open {
        tokio::select! {
            received = intake.recv_many(&mut sends, MAX_BATCH), if intake_open => intake_open = received > 0,
            received = results.recv_many(&mut outcomes, MAX_BATCH), if results_open => results_open = received > 0,
        }
        while sends.len() < MAX_BATCH {
            match intake.try_recv() {
                Ok(pending) => sends.push(pending),
                Err(_) => break,
            }
        }
        while outcomes.len() < MAX_BATCH {
            match results.try_recv() {
                Ok(outcome) => outcomes.push(outcome),
                Err(_) => break,
            }
        }
        if !sends.is_empty() || !outcomes.is_empty() {
            commit(&db, std::mem::take(&mut sends), std::mem::take(&mut outcomes)).await;
        }
    }
}

async fn commit(db: &Db, sends: Vec<Pending>, outcomes: Vec<Outcome>) {
    let mut since = Vec::with_capacity(sends.len());
    let (messages, send_replies): (Vec<NewMessage>, Vec<_>) = sends
        .into_iter()
        .map(|pending| {
            since.push(pending.idempotency_since);
            (pending.message, pending.reply)
        })
        .unzip();
    let (finishes, result_replies): (Vec<_>, Vec<Reply>) = outcomes.into_iter().map(Outcome::split).unzip();

    let stored = db
        .write_batch(|connection| {
            let mut batch = Batch::new(connection);
            let stored = messages.iter().zip(&since).map(|(message, since)| batch.insert(message, *since)).collect::<Result<Vec<_>, _>>()?;
            let finished = finishes.into_iter().map(|finish| batch.finish(finish)).collect::<Result<Vec<_>, _>>()?;
            Ok((stored, finished))
        })
        .await;

    match stored {
        Ok((stored, finished)) => {
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
        Err(error) => {
            // No message of the batch is stored, and its senders get the error. The senders of
            // results get no reply, and the rows keep their leases, which run out so that the
            // messages are claimed and delivered again (at least once). A sync client gets 503,
            // and the worker finishes its message after the lease.
            tracing::error!(%error, messages = messages.len(), results = result_replies.len(), "storing a batch failed; none of it is stored");
            for reply in send_replies {
                let _ = reply.send(Err(error.to_string()));
            }
        }
    }
}
