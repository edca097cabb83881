//! Warnings a client can cause, said at most once per period: each stalled
//! call or refused connection is a line an attacker would otherwise write
//! into our logs at will. Counters (metrics) still count every one.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota};

#[derive(Debug)]
pub struct LogLimit {
    allowed: DefaultDirectRateLimiter,
    /// Warnings held back since the last one said.
    held_back: AtomicU64,
}

impl LogLimit {
    /// At most one warning every `period`.
    pub fn every(period: Duration) -> Self {
        let quota = Quota::with_period(period).expect("a non-zero period").allow_burst(NonZeroU32::MIN);
        Self { allowed: DefaultDirectRateLimiter::direct(quota), held_back: AtomicU64::new(0) }
    }

    /// `Some(how many were held back before this one)` when this warning may
    /// be said now; `None` when it is held back.
    pub fn allow(&self) -> Option<u64> {
        if self.allowed.check().is_ok() {
            Some(self.held_back.swap(0, Ordering::Relaxed))
        } else {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_period_and_the_next_says_how_many_were_held_back() {
        let limit = LogLimit::every(Duration::from_millis(200));
        assert_eq!(limit.allow(), Some(0));
        for _ in 0..5 {
            assert_eq!(limit.allow(), None);
        }
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(limit.allow(), Some(5));
    }
}
