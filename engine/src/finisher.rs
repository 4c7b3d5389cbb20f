//! Results of delivery, callback and sync attempts, handed to the group-commit task
//! ([`crate::group_commit`]), which stores the results of concurrent attempts in one transaction.

use tokio::sync::{mpsc, oneshot};

use crate::db::message;
use crate::ledger::batch::Finish;
use crate::ledger::{AttemptRecord, DeliveryResult};

/// One result to store.
pub(crate) enum Outcome {
    /// A delivery attempt; the reply is false when `owner` no longer had the lease.
    Delivery { owner: String, attempt: AttemptRecord, result: DeliveryResult, reply: oneshot::Sender<Result<bool, String>> },
    /// A callback attempt and the callback's next state.
    Callback { attempt: AttemptRecord, state: &'static str, next_at: Option<i64>, reply: oneshot::Sender<Result<bool, String>> },
    /// The one attempt of a sync send; the reply is the stored message.
    Sync { attempt: AttemptRecord, result: DeliveryResult, reply: oneshot::Sender<Result<message::Model, String>> },
}

/// The channel that receives one outcome's result once its batch is committed.
pub(crate) enum Reply {
    Flag(oneshot::Sender<Result<bool, String>>),
    Message(oneshot::Sender<Result<message::Model, String>>),
}

impl Outcome {
    pub(crate) fn split(self) -> (Finish, Reply) {
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
    pub(crate) fn new(sender: mpsc::Sender<Outcome>) -> Finisher {
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
        self.sender.send(outcome).await.map_err(|_| "the group-commit task has stopped".to_string())?;
        answer.await.map_err(|_| "the group-commit task dropped the result; its batch was not stored".to_string())?
    }
}
