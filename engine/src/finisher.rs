//! Group commit of delivery and callback results: the outcomes of concurrent attempts are stored
//! together in one transaction, so one fsync makes a whole batch durable.

use tokio::sync::{mpsc, oneshot};

use crate::db::{message, Db};
use crate::ledger::batch::{finish_batch, Finish, Finished};
use crate::ledger::{AttemptRecord, DeliveryResult};

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
    /// The one attempt of a sync send; the reply is the stored message.
    Sync { attempt: AttemptRecord, result: DeliveryResult, reply: oneshot::Sender<Result<message::Model, String>> },
}

/// The channel that receives one outcome's result once its batch is committed.
enum Reply {
    Flag(oneshot::Sender<Result<bool, String>>),
    Message(oneshot::Sender<Result<message::Model, String>>),
}

impl Outcome {
    fn split(self) -> (Finish, Reply) {
        match self {
            Outcome::Delivery { owner, attempt, result, reply } => (Finish::Delivery { owner, attempt, result }, Reply::Flag(reply)),
            Outcome::Callback { attempt, state, next_at, reply } => (Finish::Callback { attempt, state, next_at }, Reply::Flag(reply)),
            Outcome::Sync { attempt, result, reply } => (Finish::Sync { attempt, result }, Reply::Message(reply)),
        }
    }
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

    /// Stores a delivery attempt and its result as [`crate::ledger::finish_delivery`] does, in the next
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

    /// Stores the attempt of a sync send and its result as [`crate::ledger::finish_sync`] does, in the
    /// next batch, and returns the stored message.
    pub async fn sync(&self, attempt: AttemptRecord, result: DeliveryResult) -> Result<message::Model, String> {
        let (reply, answer) = oneshot::channel();
        self.submit(Outcome::Sync { attempt, result, reply }, answer).await
    }

    async fn submit<T>(&self, outcome: Outcome, answer: oneshot::Receiver<Result<T, String>>) -> Result<T, String> {
        self.sender.send(outcome).await.map_err(|_| "the result task has stopped".to_string())?;
        answer.await.map_err(|_| "the result task dropped the result; its batch was not stored".to_string())?
    }
}

async fn run(db: Db, mut receiver: mpsc::Receiver<Outcome>) {
    use sea_orm::TransactionTrait;

    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (finishes, replies): (Vec<Finish>, Vec<Reply>) = batch.drain(..).map(Outcome::split).unzip();
        let stored = async {
            let transaction = db.writer.begin().await?;
            let finished = finish_batch(&transaction, finishes).await?;
            transaction.commit().await?;
            Ok::<_, sea_orm::DbErr>(finished)
        }
        .await;
        match stored {
            Ok(finished) => {
                for (reply, finished) in replies.into_iter().zip(finished) {
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
                            let _ = reply.send(Err("the stored result is not the message of a sync send".to_string()));
                        }
                    }
                }
            }
            // The senders of a failed batch get no reply, and the rows keep their leases, which
            // run out so that the messages are claimed and delivered again (at least once). A
            // sync client gets 503, and the worker finishes its message after the lease.
            Err(error) => tracing::error!(%error, "storing a batch of results failed; the leases expire and the work is redone"),
        }
    }
}
