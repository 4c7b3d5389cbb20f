//! Claims of due deliveries and callbacks, handed to the group-commit thread
//! ([`crate::group_commit`]). It runs them in its next batch after that batch's new messages and
//! results, so a message accepted or finished in the same batch can be claimed at once.

use tokio::sync::{mpsc, oneshot};

use crate::db::message;

/// Reply channel of a claim: the claimed messages, or why the batch failed.
pub(crate) type Claimed = oneshot::Sender<Result<Vec<message::Model>, String>>;

/// One claim to run.
pub(crate) enum Claim {
    /// Due messages of `pool`, leased to `owner` for `lease_ms`.
    Deliveries { owner: String, pool: String, limit: u64, lease_ms: i64, reply: Claimed },
    /// Messages whose callback is due. Each is not due again for `lease_ms`.
    Callbacks { limit: u64, lease_ms: i64, reply: Claimed },
}

/// Handle of the group-commit thread for claims.
#[derive(Clone)]
pub struct Claims {
    sender: mpsc::Sender<Claim>,
}

impl Claims {
    pub(crate) fn new(sender: mpsc::Sender<Claim>) -> Claims {
        Claims { sender }
    }

    /// Leases up to `limit` due messages of `pool` to `owner`, earliest due first. Due are queued
    /// and retrying messages whose time has come, and processing messages whose lease ran out.
    pub async fn deliveries(&self, owner: &str, pool: &str, limit: u64, lease_ms: i64) -> Result<Vec<message::Model>, String> {
        let (reply, answer) = oneshot::channel();
        self.submit(Claim::Deliveries { owner: owner.to_string(), pool: pool.to_string(), limit, lease_ms, reply }, answer).await
    }

    /// Takes up to `limit` messages whose callback is due, earliest first, and moves their next
    /// callback time `lease_ms` ahead, so no other claim takes them while the POST runs.
    pub async fn callbacks(&self, limit: u64, lease_ms: i64) -> Result<Vec<message::Model>, String> {
        let (reply, answer) = oneshot::channel();
        self.submit(Claim::Callbacks { limit, lease_ms, reply }, answer).await
    }

    async fn submit(&self, claim: Claim, answer: oneshot::Receiver<Result<Vec<message::Model>, String>>) -> Result<Vec<message::Model>, String> {
        self.sender.send(claim).await.map_err(|_| "the group-commit thread has stopped".to_string())?;
        answer.await.map_err(|_| "the group-commit thread dropped the claim".to_string())?
    }
}
