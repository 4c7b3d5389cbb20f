//! The retry schedule: exponential backoff with full jitter, capped, honouring `Retry-After`.

use rand::Rng;

use crate::config::RetryConfig;

/// Returns the delay in milliseconds before attempt `next_attempt` (2 for the first retry).
///
/// The un-jittered delay is `initial * multiplier^(next_attempt - 2)`, capped at `max_backoff_ms`;
/// the result is drawn uniformly from the upper half of it, so retries of many messages spread out
/// while each still waits at least half the nominal delay. A `retry_after_ms` from the recipient is
/// a floor.
pub fn backoff_ms(policy: &RetryConfig, next_attempt: u32, retry_after_ms: Option<u64>) -> u64 {
    let exponent = next_attempt.saturating_sub(2).min(60) as i32;
    let nominal = (policy.initial_backoff_ms as f64) * policy.multiplier.max(1.0).powi(exponent);
    let capped = nominal.min(policy.max_backoff_ms as f64).max(1.0) as u64;
    let jittered = rand::thread_rng().gen_range(capped / 2..=capped);
    jittered.max(retry_after_ms.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryConfig {
        RetryConfig { initial_backoff_ms: 1000, max_backoff_ms: 10_000, multiplier: 2.0 }
    }

    #[test]
    fn delay_grows_then_caps() {
        for _ in 0..100 {
            let first = backoff_ms(&policy(), 2, None);
            assert!((500..=1000).contains(&first), "{first}");
            let third = backoff_ms(&policy(), 4, None);
            assert!((2000..=4000).contains(&third), "{third}");
            let late = backoff_ms(&policy(), 30, None);
            assert!((5000..=10_000).contains(&late), "{late}");
        }
    }

    #[test]
    fn retry_after_is_a_floor() {
        assert!(backoff_ms(&policy(), 2, Some(60_000)) >= 60_000);
    }
}
