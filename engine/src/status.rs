//! Message statuses and the transitions between them, in one place.
//!
//! Outbound: `queued` -> `processing` -> `delivered` | `retrying` -> `processing` ... | `failed`.
//! A message the recipient accepted but has not finished stays `processing` until a status refresh
//! reports the result. Inbound messages from feeds are `received`. Read/unread is separate.

use std::fmt;
use std::str::FromStr;

/// Status of a message in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Stored, waiting for the worker.
    Queued,
    /// A worker is delivering it, or the recipient is still processing it.
    Processing,
    /// The last attempt failed transiently; another attempt is scheduled.
    Retrying,
    /// The recipient replied, and `data` contains the reply.
    Delivered,
    /// Delivery failed for good, and `error` contains the last error.
    Failed,
    /// An inbound message taken from an external feed.
    Received,
}

impl Status {
    /// Returns the status as stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Processing => "processing",
            Status::Retrying => "retrying",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
            Status::Received => "received",
        }
    }

    /// Reports whether no further delivery attempt will change the status.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Delivered | Status::Failed | Status::Received)
    }

    /// Reports whether the ledger may move a message from `self` to `next`.
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        matches!(
            (self, next),
            (Queued, Processing)
                | (Retrying, Processing)
                | (Processing, Processing)
                | (Processing, Delivered)
                | (Processing, Retrying)
                | (Processing, Failed)
                | (Failed, Queued)
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(match value {
            "queued" => Status::Queued,
            "processing" => Status::Processing,
            "retrying" => Status::Retrying,
            "delivered" => Status::Delivered,
            "failed" => Status::Failed,
            "received" => Status::Received,
            other => return Err(format!("unknown message status \"{other}\"")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for status in [Status::Queued, Status::Processing, Status::Retrying, Status::Delivered, Status::Failed, Status::Received] {
            assert_eq!(status.as_str().parse::<Status>().unwrap(), status);
        }
    }

    #[test]
    fn terminal_statuses_do_not_go_back() {
        assert!(!Status::Delivered.can_become(Status::Processing));
        assert!(!Status::Received.can_become(Status::Processing));
        assert!(Status::Failed.can_become(Status::Queued));
        assert!(Status::Queued.can_become(Status::Processing));
    }
}
