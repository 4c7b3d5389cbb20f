//! Accepted messages, handed to the group-commit task ([`crate::group_commit`]), which stores
//! concurrent sends in one transaction and replies to each only after that commit.

use tokio::sync::{mpsc, oneshot};

use crate::ledger::{AttemptRecord, DeliveryResult, NewMessage, Stored};

/// A message waiting for the next batch.
pub(crate) struct Pending {
    pub(crate) message: NewMessage,
    pub(crate) idempotency_since: i64,
    /// The attempt and result of a sync lookup, which was sent before it is stored.
    pub(crate) result: Option<(AttemptRecord, DeliveryResult)>,
    pub(crate) reply: oneshot::Sender<Result<Stored, String>>,
}

/// Handle of the group-commit task.
#[derive(Clone)]
pub struct Intake {
    sender: mpsc::Sender<Pending>,
}

impl Intake {
    pub(crate) fn new(sender: mpsc::Sender<Pending>) -> Intake {
        Intake { sender }
    }

    /// Stores a message in the next batch and returns once that batch is committed. An error means
    /// the message was not stored.
    pub async fn store(&self, message: NewMessage, idempotency_since: i64) -> Result<Stored, String> {
        self.submit(message, idempotency_since, None).await
    }

    /// Stores a message together with its attempt that has already run (a sync lookup) in the
    /// next batch, and returns once that batch is committed. A repeated request returns the earlier
    /// message, and this attempt is not stored.
    pub async fn store_with_result(&self, message: NewMessage, idempotency_since: i64, attempt: AttemptRecord, result: DeliveryResult) -> Result<Stored, String> {
        self.submit(message, idempotency_since, Some((attempt, result))).await
    }

    async fn submit(&self, message: NewMessage, idempotency_since: i64, result: Option<(AttemptRecord, DeliveryResult)>) -> Result<Stored, String> {
        let (reply, stored) = oneshot::channel();
        let pending = Pending { message, idempotency_since, result, reply };
        self.sender.send(pending).await.map_err(|_| "the group-commit task has stopped".to_string())?;
        stored.await.map_err(|_| "the group-commit task dropped the request".to_string())?
    }
}
