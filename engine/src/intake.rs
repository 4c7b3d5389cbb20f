//! Group commit of accepted messages: concurrent sends are stored together in one transaction, so
//! one fsync makes a whole batch durable, and each response is sent only after that commit.

use tokio::sync::{mpsc, oneshot};

use crate::db::Db;
use crate::ledger::{self, NewMessage, Stored};

/// Largest number of messages stored in one transaction.
const MAX_BATCH: usize = 256;

/// Room for requests waiting for the next batch; senders wait when it is full.
const QUEUE: usize = 4096;

struct Pending {
    message: NewMessage,
    idempotency_since: i64,
    reply: oneshot::Sender<Result<Stored, String>>,
}

/// Handle of the group-commit task.
#[derive(Clone)]
pub struct Intake {
    sender: mpsc::Sender<Pending>,
}

impl Intake {
    /// Starts the group-commit task on the current runtime.
    pub fn start(db: Db) -> Intake {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, receiver));
        Intake { sender }
    }

    /// Stores a message in the next batch and returns once that batch is committed. An error means
    /// the message was not stored.
    pub async fn store(&self, message: NewMessage, idempotency_since: i64) -> Result<Stored, String> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending { message, idempotency_since, reply };
        self.sender.send(pending).await.map_err(|_| "the intake task has stopped".to_string())?;
        answer.await.map_err(|_| "the intake task dropped the request".to_string())?
    }
}

/// Takes whatever requests are waiting (at least one, at most [`MAX_BATCH`]) and commits them
/// together; requests that arrive during a commit form the next batch.
async fn run(db: Db, mut receiver: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // Requests of one batch share the newest idempotency window; a repeat older than that is
        // a new message for every one of them alike.
        let since = batch.iter().map(|pending| pending.idempotency_since).max().unwrap_or(0);
        let (messages, replies): (Vec<NewMessage>, Vec<_>) = batch.drain(..).map(|pending| (pending.message, pending.reply)).unzip();
        match ledger::insert_batch(&db, &messages, since).await {
            Ok(stored) => {
                for (reply, stored) in replies.into_iter().zip(stored) {
                    let _ = reply.send(Ok(stored));
                }
            }
            Err(error) => {
                tracing::error!(%error, messages = messages.len(), "storing a batch of messages failed; none of them is stored");
                for reply in replies {
                    let _ = reply.send(Err(error.to_string()));
                }
            }
        }
    }
}
