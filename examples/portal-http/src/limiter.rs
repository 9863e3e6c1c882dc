//! The sign-in rate limiter: a token bucket per client source (governor's GCRA), so a
//! burst of sign-ins from one address answers `429` with `Retry-After` before any
//! password is hashed. It sits in front of the identity service's own throttling, which
//! counts failures per account and per source and refuses (as
//! `auth.invalid_credentials`) past its limits.

use std::num::NonZeroU32;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use portal_core::identity::ThrottleKey;

use crate::error::ApiError;

/// How many sign-ins one source may attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimit {
    /// Attempts per minute, sustained.
    pub per_minute: NonZeroU32,
    /// Attempts allowed at once before the rate applies.
    pub burst: NonZeroU32,
}

impl Default for SignInLimit {
    /// 10 a minute, in bursts of 5.
    fn default() -> Self {
        Self {
            per_minute: NonZeroU32::MIN.saturating_add(9),
            burst: NonZeroU32::MIN.saturating_add(4),
        }
    }
}

/// Keeps at most this many sources before forgetting those whose buckets are full again.
const MAX_TRACKED_SOURCES: usize = 10_000;

/// A keyed rate limiter: sign-in attempts by source, password-reset requests by source and
/// by address.
#[derive(Debug)]
pub struct SignInLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl SignInLimiter {
    /// A limiter allowing `limit` per source.
    pub fn new(limit: SignInLimit) -> Self {
        let quota = Quota::per_minute(limit.per_minute).allow_burst(limit.burst);
        Self {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one attempt for `source`, counted as the identity throttle counts it
    /// ([`ThrottleKey::bucket`]: an IPv6 client by its /64, an IPv4-mapped address as its
    /// IPv4 address).
    ///
    /// # Errors
    ///
    /// `rate_limit.exceeded` (429) with the time until the next attempt is allowed.
    pub fn check(&self, source: &str) -> Result<(), ApiError> {
        if self.limiter.len() > MAX_TRACKED_SOURCES {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&ThrottleKey::bucket(source))
            .map_err(|not_until| ApiError::rate_limited(not_until.wait_time_from(self.clock.now())))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_source_past_its_burst_waits_and_others_do_not() {
        let limiter = SignInLimiter::new(SignInLimit {
            per_minute: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(2).unwrap(),
        });
        limiter.check("10.0.0.1").unwrap();
        limiter.check("10.0.0.1").unwrap();
        let err = limiter.check("10.0.0.1").unwrap_err();
        assert_eq!(err.status(), 429);
        let wait = err.retry_after().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        limiter.check("10.0.0.2").unwrap();
    }
}
