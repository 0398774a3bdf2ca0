//! When a failed request is sent again, and how long to wait first. Pure:
//! the randomness of the jitter is passed in, so that the rules are testable.

use std::time::Duration;

/// How one attempt ended, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response came back with this status and, maybe, a registry `error_code`.
    Status(u16, Option<i64>),
    /// No response within the request timeout.
    Timeout,
    /// The connection (or its TLS handshake) could not be made or broke.
    Connect,
}

/// Whether an attempt that ended so is worth sending again: server errors
/// (5xx except 501, `50001`-`50003`), 429, timeouts and connection errors.
/// Other 4xx are the request's fault and would fail the same way again.
pub fn is_retryable(outcome: Outcome) -> bool {
    match outcome {
        Outcome::Timeout | Outcome::Connect => true,
        Outcome::Status(_, Some(50001..=50003)) => true,
        Outcome::Status(429, _) => true,
        Outcome::Status(501, _) => false,
        Outcome::Status(status, _) => (500..=599).contains(&status),
    }
}

/// Bounded exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    /// Wait before the second attempt (before jitter).
    pub base_delay: Duration,
    /// Upper bound of any one wait.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based): half of
    /// `base * 2^(attempt-1)` (capped) for sure, the other half scaled by
    /// `jitter` in `[0, 1)`, so that clients retrying together spread out.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(16);
        let full = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let half = full / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// [`Self::delay`], but at least what the server asked for with
    /// `Retry-After` (a 429 or 503), within `max_delay`.
    pub fn delay_after(
        &self,
        attempt: u32,
        jitter: f64,
        retry_after: Option<Duration>,
    ) -> Duration {
        let own = self.delay(attempt, jitter);
        match retry_after {
            Some(asked) => own.max(asked.min(self.max_delay)),
            None => own,
        }
    }

    /// Whether another attempt follows attempt number `attempt` ending in `outcome`.
    pub fn should_retry(&self, attempt: u32, outcome: Outcome) -> bool {
        attempt < self.max_attempts && is_retryable(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_timeouts_and_connection_errors_are_retried_client_errors_not() {
        for outcome in [
            Outcome::Timeout,
            Outcome::Connect,
            Outcome::Status(500, Some(50001)),
            Outcome::Status(500, Some(50002)),
            Outcome::Status(500, Some(50003)),
            Outcome::Status(502, None),
            Outcome::Status(503, None),
            Outcome::Status(504, None),
            Outcome::Status(429, None),
        ] {
            assert!(is_retryable(outcome), "{outcome:?}");
        }
        for outcome in [
            Outcome::Status(400, Some(400)),
            Outcome::Status(401, Some(401)),
            Outcome::Status(403, None),
            Outcome::Status(404, Some(40401)),
            Outcome::Status(409, Some(40901)),
            Outcome::Status(422, Some(42205)),
            Outcome::Status(501, None),
            Outcome::Status(200, None),
        ] {
            assert!(!is_retryable(outcome), "{outcome:?}");
        }
    }

    #[test]
    fn attempts_are_bounded() {
        let p = RetryPolicy::default();
        assert!(p.should_retry(1, Outcome::Timeout));
        assert!(p.should_retry(4, Outcome::Timeout));
        assert!(!p.should_retry(5, Outcome::Timeout));
        assert!(!p.should_retry(1, Outcome::Status(404, Some(40401))));
    }

    #[test]
    fn delays_grow_exponentially_within_jitter_and_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        assert_eq!(p.delay(1, 0.0), Duration::from_millis(50));
        assert_eq!(p.delay(1, 1.0), Duration::from_millis(100));
        assert_eq!(p.delay(2, 0.0), Duration::from_millis(100));
        assert_eq!(p.delay(3, 0.5), Duration::from_millis(300));
        // capped at max_delay, whatever the attempt
        assert_eq!(p.delay(9, 1.0), Duration::from_secs(1));
        assert_eq!(p.delay(u32::MAX, 0.0), Duration::from_millis(500));
        // a server's Retry-After is waited for, within max_delay
        assert_eq!(
            p.delay_after(1, 0.0, Some(Duration::from_millis(700))),
            Duration::from_millis(700)
        );
        assert_eq!(
            p.delay_after(9, 1.0, Some(Duration::from_millis(10))),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.delay_after(1, 0.0, Some(Duration::from_secs(60))),
            Duration::from_secs(1)
        );
        assert_eq!(p.delay_after(2, 0.0, None), p.delay(2, 0.0));
        for attempt in 1..10 {
            assert!(p.delay(attempt, 0.999) <= p.max_delay);
            assert!(p.delay(attempt, 0.0) <= p.delay(attempt + 1, 0.0));
        }
    }
}
