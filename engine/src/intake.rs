//! Accepted messages, handed to the group-commit task ([`crate::group_commit`]), which stores
//! concurrent sends in one transaction and replies to each only after that commit.

use tokio::sync::{mpsc, oneshot};

use crate::ledger::{NewMessage, Stored};

/// A message waiting for the next batch.
pub(crate) struct Pending {
    pub(crate) message: NewMessage,
    pub(crate) idempotency_since: i64,
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
        let (reply, answer) = oneshot::channel();
        let pending = Pending { message, idempotency_since, reply };
        self.sender.send(pending).await.map_err(|_| "the group-commit task has stopped".to_string())?;
        answer.await.map_err(|_| "the group-commit task dropped the request".to_string())?
    }
}
