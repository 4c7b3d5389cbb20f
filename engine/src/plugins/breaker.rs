//! Circuit breaker of one connector: after too many transient failures it stops calls for a while,
//! then lets a few probe calls decide whether the external system is back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::BreakerConfig;

#[derive(Debug)]
enum State {
    /// Calls pass; outcomes are counted in the current window.
    Closed { window_start: Instant, calls: u32, failures: u32 },
    /// Calls are rejected until `until`.
    Open { until: Instant },
    /// Up to `probes` calls pass; one success closes the breaker, one failure opens it again.
    HalfOpen { in_flight: u32 },
}

/// Breaker state shared by every call of one connector.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: Mutex<State>,
}

/// Permission for one call; hand it back with [`Breaker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// An ordinary call in the closed state (or with the breaker turned off).
    Normal,
    /// A probe call in the half-open state.
    Probe,
}

impl Breaker {
    /// Creates a closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Breaker { config, state: Mutex::new(State::Closed { window_start: Instant::now(), calls: 0, failures: 0 }) }
    }

    /// Lets a call through, or returns how many milliseconds the breaker stays open.
    pub fn try_acquire(&self) -> Result<Permit, u64> {
        if !self.config.enabled {
            return Ok(Permit::Normal);
        }
        let now = Instant::now();
        let mut state = self.state.lock().expect("breaker lock");
        match &mut *state {
            State::Closed { .. } => Ok(Permit::Normal),
            State::Open { until } if now < *until => Err((*until - now).as_millis().max(1) as u64),
            State::Open { .. } => {
                *state = State::HalfOpen { in_flight: 1 };
                Ok(Permit::Probe)
            }
            State::HalfOpen { in_flight } if *in_flight < self.config.half_open_probes => {
                *in_flight += 1;
                Ok(Permit::Probe)
            }
            // The probes are still out: wait about one probe's worth.
            State::HalfOpen { .. } => Err(1000),
        }
    }

    /// Returns how long the breaker stays open, without taking a probe slot; none when calls may pass.
    pub fn open_for(&self) -> Option<Duration> {
        if !self.config.enabled {
            return None;
        }
        match &*self.state.lock().expect("breaker lock") {
            State::Open { until } => until.checked_duration_since(Instant::now()),
            _ => None,
        }
    }

    /// Records the outcome of a call; `failed` means a transient failure (timeout, outage, 5xx).
    pub fn record(&self, permit: Permit, failed: bool) {
        if !self.config.enabled {
            return;
        }
        let now = Instant::now();
        let open = State::Open { until: now + Duration::from_secs(self.config.open_seconds) };
        let mut state = self.state.lock().expect("breaker lock");
        match (&mut *state, permit) {
            (State::HalfOpen { .. }, Permit::Probe) if failed => {
                tracing::warn!("circuit breaker probe failed; the breaker opens again");
                *state = open;
            }
            (State::HalfOpen { .. }, Permit::Probe) => {
                tracing::info!("circuit breaker probe succeeded; the breaker closes");
                *state = State::Closed { window_start: now, calls: 0, failures: 0 };
            }
            (State::Closed { window_start, calls, failures }, Permit::Normal) => {
                if now.duration_since(*window_start) > Duration::from_secs(self.config.window_seconds) {
                    *window_start = now;
                    *calls = 0;
                    *failures = 0;
                }
                *calls += 1;
                *failures += u32::from(failed);
                let rate = f64::from(*failures) / f64::from(*calls);
                if *calls >= self.config.min_calls && rate >= self.config.failure_rate {
                    tracing::warn!(calls = *calls, failures = *failures, open_seconds = self.config.open_seconds, "circuit breaker opens");
                    *state = open;
                }
            }
            // An outcome of a call that started in an earlier state changes nothing.
            _ => {}
        }
    }

    /// Returns the state name for `/health/ready`: `closed`, `open` or `half_open`.
    pub fn state_name(&self) -> &'static str {
        match &*self.state.lock().expect("breaker lock") {
            State::Closed { .. } => "closed",
            State::Open { until } if Instant::now() < *until => "open",
            State::Open { .. } | State::HalfOpen { .. } => "half_open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(open_seconds: u64) -> Breaker {
        Breaker::new(BreakerConfig { enabled: true, failure_rate: 0.5, min_calls: 4, window_seconds: 60, open_seconds, half_open_probes: 1 })
    }

    fn fail(breaker: &Breaker, times: u32) {
        for _ in 0..times {
            let permit = breaker.try_acquire().unwrap();
            breaker.record(permit, true);
        }
    }

    #[test]
    fn opens_after_failure_rate() {
        let breaker = breaker(60);
        fail(&breaker, 3);
        assert_eq!(breaker.state_name(), "closed", "below min_calls");
        fail(&breaker, 1);
        assert_eq!(breaker.state_name(), "open");
        let wait = breaker.try_acquire().unwrap_err();
        assert!(wait > 59_000, "{wait}");
    }

    #[test]
    fn successes_keep_it_closed() {
        let breaker = breaker(60);
        for index in 0..20 {
            let permit = breaker.try_acquire().unwrap();
            breaker.record(permit, index % 4 == 3);
        }
        assert_eq!(breaker.state_name(), "closed");
    }

    #[test]
    fn probe_success_closes_and_failure_reopens() {
        let breaker = breaker(0);
        fail(&breaker, 4);
        let probe = breaker.try_acquire().unwrap();
        assert_eq!(probe, Permit::Probe);
        assert_eq!(breaker.try_acquire(), Err(1000), "only one probe at a time");
        breaker.record(probe, true);
        let probe = breaker.try_acquire().unwrap();
        breaker.record(probe, false);
        assert_eq!(breaker.state_name(), "closed");
        assert_eq!(breaker.try_acquire(), Ok(Permit::Normal));
    }

    #[test]
    fn disabled_breaker_never_opens() {
        let breaker = Breaker::new(BreakerConfig { enabled: false, ..BreakerConfig::default() });
        fail(&breaker, 100);
        assert_eq!(breaker.try_acquire(), Ok(Permit::Normal));
    }
}
