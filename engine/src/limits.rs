//! Admission limits of the API: a request rate per client and a bound on the delivery queue.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::sync::watch;

use crate::config::LimitsConfig;
use crate::engine::Engine;

/// How often the queue depth is counted in the database.
const QUEUE_COUNT_INTERVAL: Duration = Duration::from_millis(500);

/// Per-client token buckets and the last counted queue depth.
pub struct Limits {
    clients: Option<DefaultKeyedRateLimiter<i32>>,
    clock: DefaultClock,
    max_queue_depth: u64,
    /// Messages waiting for delivery at the last count, plus those accepted since.
    queue_depth: AtomicU64,
}

impl Limits {
    /// Builds the limits; a rate of 0 turns the per-client limit off.
    pub fn new(config: &LimitsConfig) -> Self {
        let clients = NonZeroU32::new(config.client_rate_per_second).map(|rate| {
            let burst = NonZeroU32::new(config.client_burst).unwrap_or(rate);
            DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Limits { clients, clock: DefaultClock::default(), max_queue_depth: config.max_queue_depth, queue_depth: AtomicU64::new(0) }
    }

    /// Takes one request from the client's bucket; an empty bucket gives the seconds to wait.
    pub fn admit_client(&self, client_id: i32) -> Result<(), u64> {
        let Some(limiter) = &self.clients else {
            return Ok(());
        };
        limiter.check_key(&client_id).map_err(|not_until| not_until.wait_time_from(self.clock.now()).as_secs().max(1))
    }

    /// Reports whether one more queued message fits; when it does not, gives the seconds to wait.
    pub fn admit_queued(&self) -> Result<(), u64> {
        if self.max_queue_depth == 0 {
            return Ok(());
        }
        let depth = self.queue_depth.fetch_add(1, Ordering::Relaxed);
        if depth >= self.max_queue_depth {
            self.queue_depth.fetch_sub(1, Ordering::Relaxed);
            return Err(5);
        }
        Ok(())
    }

    /// Returns the configured queue bound and the current estimate, for `/health/ready`.
    pub fn queue(&self) -> (u64, u64) {
        (self.max_queue_depth, self.queue_depth.load(Ordering::Relaxed))
    }

    fn set_queue_depth(&self, depth: u64) {
        self.queue_depth.store(depth, Ordering::Relaxed);
    }
}

/// Counts the waiting messages every half second until `shutdown`, and drops idle client buckets.
pub async fn run(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    loop {
        match crate::ledger::count_waiting(&engine.db).await {
            Ok(depth) => engine.limits.set_queue_depth(depth),
            Err(error) => tracing::warn!(%error, "counting the delivery queue failed"),
        }
        if let Some(limiter) = &engine.limits.clients {
            limiter.retain_recent();
        }
        tokio::select! {
            _ = tokio::time::sleep(QUEUE_COUNT_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u32, burst: u32, depth: u64) -> Limits {
        Limits::new(&LimitsConfig { client_rate_per_second: rate, client_burst: burst, max_queue_depth: depth })
    }

    #[test]
    fn client_bucket_allows_burst_then_rejects() {
        let limits = limits(1, 3, 0);
        for _ in 0..3 {
            assert_eq!(limits.admit_client(7), Ok(()));
        }
        assert_eq!(limits.admit_client(7), Err(1));
        assert_eq!(limits.admit_client(8), Ok(()), "another client has its own bucket");
    }

    #[test]
    fn zero_rate_turns_client_limit_off() {
        let limits = limits(0, 0, 0);
        for _ in 0..10_000 {
            assert_eq!(limits.admit_client(1), Ok(()));
        }
    }

    #[test]
    fn queue_bound_counts_admitted_messages() {
        let limits = limits(0, 0, 2);
        assert_eq!(limits.admit_queued(), Ok(()));
        assert_eq!(limits.admit_queued(), Ok(()));
        assert_eq!(limits.admit_queued(), Err(5));
        limits.set_queue_depth(0);
        assert_eq!(limits.admit_queued(), Ok(()));
    }
}
