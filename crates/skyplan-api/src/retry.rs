//! When to retry a SkySQL API call, and how long to wait first.
//!
//! Every failure is sorted into a [`RetryClass`]:
//! - `Refused`: the server certainly did not act (429, 425, the "pending state" refusal, a
//!   connection that never opened). Safe to retry for every request.
//! - `Ambiguous`: the server may have acted (500/502/503/504, a timeout or a connection lost
//!   after the request was sent). Safe to retry only for idempotent requests; a non-idempotent
//!   one (create a service) must first check whether its effect already happened.
//! - `Fatal`: retrying cannot help (other 4xx, unexpected statuses).
//!
//! The waits are exponential backoff with full jitter (AWS architecture blog, "Exponential
//! Backoff And Jitter"): attempt n waits a uniform random time in `[0, min(cap, base * 2^n))`,
//! so many clients retrying together spread out instead of hammering the API in lockstep.
//! A server's `Retry-After` is honoured instead of the backoff when it is longer.

use std::time::Duration;

use rand::Rng;

/// How hard to retry. Tests use [`RetryPolicy::fast`] so they do not sleep for real.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included. 1 = never retry.
    pub max_attempts: u32,
    /// Backoff of the first retry (before jitter).
    pub base_delay: Duration,
    /// Upper bound of any backoff (before jitter).
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is not waited for: the call fails instead, because a
    /// plan that silently hangs for an hour is worse than an error that says why.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub fn never() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Same attempts as the default, with millisecond waits: for tests.
    pub fn fast() -> RetryPolicy {
        RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        }
    }

    /// The backoff ceiling before the retry that follows attempt `attempts_made` (1-based):
    /// `min(max_delay, base_delay * 2^(attempts_made - 1))`.
    pub fn ceiling(&self, attempts_made: u32) -> Duration {
        let exponent = attempts_made.saturating_sub(1).min(31);
        self.base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay)
    }

    /// Full jitter, with the random draw passed in (`unit` in `[0, 1)`) so it is testable.
    pub fn backoff_with(&self, attempts_made: u32, unit: f64) -> Duration {
        self.ceiling(attempts_made).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The wait before the next attempt: the jittered backoff, or the server's `Retry-After`
    /// when that is longer.
    pub fn delay(&self, attempts_made: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.backoff_with(attempts_made, rand::thread_rng().gen::<f64>());
        match retry_after {
            Some(server) => server.max(backoff),
            None => backoff,
        }
    }

    /// Whether another attempt is allowed after `attempts_made`.
    pub fn allows_another(&self, attempts_made: u32) -> bool {
        attempts_made < self.max_attempts
    }
}

/// Whether repeating a request can do harm. Chosen per call by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Repeating it has the same effect as doing it once (GET, DELETE, PUT-like updates).
    Idempotent,
    /// Repeating it may do it twice (create a service). Retried only when the server certainly
    /// did not act; ambiguous failures go back to the caller, who checks and decides.
    NotIdempotent,
}

/// What a failure means for retrying. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    Refused { retry_after: Option<Duration> },
    Ambiguous,
    Fatal,
}

impl RetryClass {
    /// Whether a request of this idempotency may simply be sent again.
    pub fn retryable_for(self, idempotency: Idempotency) -> bool {
        match self {
            RetryClass::Refused { .. } => true,
            RetryClass::Ambiguous => idempotency == Idempotency::Idempotent,
            RetryClass::Fatal => false,
        }
    }

    pub fn retry_after(self) -> Option<Duration> {
        match self {
            RetryClass::Refused { retry_after } => retry_after,
            _ => None,
        }
    }
}

/// Classify an HTTP error status. `message` is the API's error text (the "pending state"
/// refusal is recognised by it); `retry_after` is the parsed `Retry-After` header.
pub fn classify_status(status: u16, message: &str, retry_after: Option<Duration>) -> RetryClass {
    match status {
        // 425 Too Early: a busy service (the spec declares it for the storage routes).
        429 | 425 => RetryClass::Refused { retry_after },
        400 | 409 if is_pending_state(message) => RetryClass::Refused { retry_after },
        500 | 502 | 503 | 504 => RetryClass::Ambiguous,
        _ => RetryClass::Fatal,
    }
}

/// Classify a transport failure. `connect_failed`: the connection never opened, so the
/// request cannot have reached the server.
pub fn classify_transport(connect_failed: bool) -> RetryClass {
    if connect_failed {
        RetryClass::Refused { retry_after: None }
    } else {
        RetryClass::Ambiguous
    }
}

/// SkySQL refuses a mutation of a service that is busy with another one with a message like
/// "service is in pending state"; it clears by itself, so it is worth waiting for.
pub fn is_pending_state(message: &str) -> bool {
    message.to_ascii_lowercase().contains("pending state")
}

/// `Retry-After` in delay-seconds form. The HTTP-date form is not used by SkySQL; it (and any
/// garbage) yields `None`, which falls back to the normal backoff.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_from_base_up_to_the_cap() {
        let p = RetryPolicy::default();
        let ms = |n| p.ceiling(n).as_millis();
        assert_eq!(
            (ms(1), ms(2), ms(3), ms(4), ms(5), ms(6)),
            (250, 500, 1000, 2000, 4000, 8000)
        );
        assert_eq!(ms(7), 10_000);
        assert_eq!(ms(100), 10_000, "no overflow on large attempt counts");
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff_with(3, 0.0), Duration::ZERO);
        assert_eq!(p.backoff_with(3, 0.5), Duration::from_millis(500));
        assert!(p.delay(3, None) <= Duration::from_secs(1));
    }

    #[test]
    fn retry_after_wins_when_longer_than_the_backoff() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn attempts_are_bounded() {
        let p = RetryPolicy::default();
        assert!(p.allows_another(7));
        assert!(!p.allows_another(8));
        assert!(!RetryPolicy::never().allows_another(1));
    }

    #[test]
    fn statuses_are_classified() {
        let after = Some(Duration::from_secs(2));
        assert_eq!(
            classify_status(429, "", after),
            RetryClass::Refused { retry_after: after }
        );
        assert_eq!(
            classify_status(425, "", None),
            RetryClass::Refused { retry_after: None }
        );
        for s in [500, 502, 503, 504] {
            assert_eq!(classify_status(s, "", None), RetryClass::Ambiguous, "{s}");
        }
        for s in [400, 401, 402, 403, 404, 409, 422, 501] {
            assert_eq!(
                classify_status(s, "bad size", None),
                RetryClass::Fatal,
                "{s}"
            );
        }
        let pending = "Service is in Pending State, try later";
        assert!(matches!(
            classify_status(400, pending, None),
            RetryClass::Refused { .. }
        ));
        assert!(matches!(
            classify_status(409, pending, None),
            RetryClass::Refused { .. }
        ));
        assert_eq!(classify_status(404, pending, None), RetryClass::Fatal);
    }

    #[test]
    fn ambiguous_failures_are_retried_only_when_idempotent() {
        assert!(RetryClass::Ambiguous.retryable_for(Idempotency::Idempotent));
        assert!(!RetryClass::Ambiguous.retryable_for(Idempotency::NotIdempotent));
        assert!(classify_transport(true).retryable_for(Idempotency::NotIdempotent));
        assert!(!classify_transport(false).retryable_for(Idempotency::NotIdempotent));
        assert!(!RetryClass::Fatal.retryable_for(Idempotency::Idempotent));
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
