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
    /// Messages waiting for delivery at the last count in the database.
    counted: AtomicU64,
    /// Sends admitted since start, a running total.
    admitted: AtomicU64,
    /// `admitted` as it was one count before the last: every send admitted since then may be
    /// missing from `counted`, so the estimate adds them.
    admitted_before: AtomicU64,
    /// `admitted` as it was when the last count started.
    admitted_at_count: AtomicU64,
}

impl Limits {
    /// Builds the limits; a rate of 0 turns the per-client limit off.
    pub fn new(config: &LimitsConfig) -> Self {
        let clients = NonZeroU32::new(config.client_rate_per_second).map(|rate| {
            let burst = NonZeroU32::new(config.client_burst).unwrap_or(rate);
            DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Limits {
            clients,
            clock: DefaultClock::default(),
            max_queue_depth: config.max_queue_depth,
            counted: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
            admitted_before: AtomicU64::new(0),
            admitted_at_count: AtomicU64::new(0),
        }
    }

    /// Takes one request from the client's bucket; an empty bucket gives the seconds to wait.
    pub fn admit_client(&self, client_id: i32) -> Result<(), u64> {
        let Some(limiter) = &self.clients else {
            return Ok(());
        };
        limiter.check_key(&client_id).map_err(|not_until| not_until.wait_time_from(self.clock.now()).as_secs().max(1))
    }

    /// Reports whether one more queued message fits; when it does not, gives the seconds to wait.
    ///
    /// The estimate is the last database count plus every send admitted since the count before it,
    /// so a send admitted while a count ran is never missed. It may run over the true depth by
    /// about one count interval's sends, never under it.
    pub fn admit_queued(&self) -> Result<(), u64> {
        if self.max_queue_depth == 0 {
            return Ok(());
        }
        let mut admitted = self.admitted.load(Ordering::Acquire);
        loop {
            if self.estimate(admitted) >= self.max_queue_depth {
                return Err(5);
            }
            match self.admitted.compare_exchange_weak(admitted, admitted + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(current) => admitted = current,
            }
        }
    }

    fn estimate(&self, admitted: u64) -> u64 {
        let since = admitted.saturating_sub(self.admitted_before.load(Ordering::Acquire));
        self.counted.load(Ordering::Acquire) + since
    }

    /// Returns the configured queue bound and the current estimate, for `/health/ready`.
    pub fn queue(&self) -> (u64, u64) {
        (self.max_queue_depth, self.estimate(self.admitted.load(Ordering::Acquire)))
    }

    /// Marks the start of a database count.
    fn count_started(&self) {
        let previous = self.admitted_at_count.swap(self.admitted.load(Ordering::Acquire), Ordering::AcqRel);
        self.admitted_before.store(previous, Ordering::Release);
    }

    /// Stores the result of a count that started with [`Limits::count_started`].
    fn set_counted(&self, depth: u64) {
        self.counted.store(depth, Ordering::Release);
    }
}

/// Counts the waiting messages every half second until `shutdown`, and drops idle client buckets.
pub async fn run(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    loop {
        engine.limits.count_started();
        match crate::ledger::count_waiting(&engine.db).await {
            Ok(depth) => engine.limits.set_counted(depth),
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

        // A count that started after both admissions and found them stored: they are not counted
        // twice once a second count has started.
        limits.count_started();
        limits.set_counted(2);
        assert_eq!(limits.admit_queued(), Err(5), "the two admitted before the count may be missing from it");
        limits.count_started();
        limits.set_counted(0);
        assert_eq!(limits.admit_queued(), Ok(()), "both were delivered");
    }

    #[test]
    fn send_admitted_during_count_is_not_missed() {
        let limits = limits(0, 0, 2);
        limits.count_started();
        // Admitted while the count runs; the count does not see it.
        assert_eq!(limits.admit_queued(), Ok(()));
        limits.set_counted(0);
        assert_eq!(limits.admit_queued(), Ok(()));
        assert_eq!(limits.admit_queued(), Err(5));
    }
}
