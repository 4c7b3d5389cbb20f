//! Group commit of delivery and callback results: the outcomes of concurrent attempts are stored
//! together in one transaction, so one fsync makes a whole batch durable.

use tokio::sync::{mpsc, oneshot};

use crate::db::Db;
use crate::ledger::{self, AttemptRecord, DeliveryResult};

/// Largest number of results stored in one transaction.
const MAX_BATCH: usize = 256;

/// Room for results waiting for the next batch; workers wait when it is full.
const QUEUE: usize = 4096;

/// One result to store.
enum Outcome {
    /// A delivery attempt; the reply is false when `owner` no longer had the lease.
    Delivery { owner: String, attempt: AttemptRecord, result: DeliveryResult, reply: oneshot::Sender<Result<bool, String>> },
    /// A callback attempt and the callback's next state.
    Callback { attempt: AttemptRecord, state: &'static str, next_at: Option<i64>, reply: oneshot::Sender<Result<bool, String>> },
}

/// Handle of the group-commit task for results.
#[derive(Clone)]
pub struct Finisher {
    sender: mpsc::Sender<Outcome>,
}

impl Finisher {
    /// Starts the task on the current runtime.
    pub fn start(db: Db) -> Finisher {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, receiver));
        Finisher { sender }
    }

    /// Stores a delivery attempt and its result as [`ledger::finish_delivery`] does, in the next
    /// batch; returns false when the lease was lost.
    pub async fn delivery(&self, owner: &str, attempt: AttemptRecord, result: DeliveryResult) -> Result<bool, String> {
        let (reply, answer) = oneshot::channel();
        self.submit(Outcome::Delivery { owner: owner.to_string(), attempt, result, reply }, answer).await
    }

    /// Stores a callback attempt and the callback's next state, in the next batch.
    pub async fn callback(&self, attempt: AttemptRecord, state: &'static str, next_at: Option<i64>) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.submit(Outcome::Callback { attempt, state, next_at, reply }, answer).await.map(|_| ())
    }

    async fn submit(&self, outcome: Outcome, answer: oneshot::Receiver<Result<bool, String>>) -> Result<bool, String> {
        self.sender.send(outcome).await.map_err(|_| "the result task has stopped".to_string())?;
        answer.await.map_err(|_| "the result task dropped the result".to_string())?
    }
}

async fn run(db: Db, mut receiver: mpsc::Receiver<Outcome>) {
    use sea_orm::TransactionTrait;

    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let stored = async {
            let transaction = db.writer.begin().await?;
            let mut replies = Vec::with_capacity(batch.len());
            for outcome in batch.drain(..) {
                match outcome {
                    Outcome::Delivery { owner, attempt, result, reply } => {
                        let held = ledger::finish_delivery_on(&transaction, &owner, attempt, result).await?;
                        replies.push((reply, held));
                    }
                    Outcome::Callback { attempt, state, next_at, reply } => {
                        ledger::finish_callback_on(&transaction, attempt, state, next_at).await?;
                        replies.push((reply, true));
                    }
                }
            }
            transaction.commit().await?;
            Ok::<_, sea_orm::DbErr>(replies)
        }
        .await;
        match stored {
            Ok(replies) => {
                for (reply, held) in replies {
                    let _ = reply.send(Ok(held));
                }
            }
            // The senders of a failed batch get no reply, and the rows keep their leases, which
            // run out so that the messages are claimed and delivered again (at least once).
            Err(error) => tracing::error!(%error, "storing a batch of results failed; the leases expire and the work is redone"),
        }
    }
}
