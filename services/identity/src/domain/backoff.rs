//! Brute force is bounded by failed logins, not by attempts, so a stranger
//! cannot lock an account's owner out by guessing wrong on purpose.
//!
//! Each key (an account and the address trying it; or an account from
//! everywhere, with a larger allowance) may fail a few times freely; after
//! that, each further failure doubles the wait before the next attempt is
//! heard (1 s, 2 s, 4 s, … up to a cap). The wait applies only to that key:
//! the owner, from an address that has not failed, logs in at once. A
//! success clears its key; failures are forgotten after a quiet window.
//!
//! governor (used for the per-address attempt limits) meters attempts and
//! cannot count only some of them, so this small counter is our own.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The wait after the first failure beyond the free ones.
const FIRST_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

#[derive(Debug)]
pub struct FailureBackoff<K> {
    /// Failures allowed before any wait (0: this backoff is off).
    free: u32,
    max_wait: Duration,
    /// Failures older than this are forgotten.
    window: Duration,
    failures: Mutex<HashMap<K, Failures>>,
}

impl<K: Hash + Eq + Clone> FailureBackoff<K> {
    pub fn new(free: u32, max_wait: Duration, window: Duration) -> Self {
        Self { free, max_wait, window, failures: Mutex::default() }
    }

    fn wait_after(&self, count: u32) -> Duration {
        let beyond = count.saturating_sub(self.free).min(30);
        FIRST_WAIT.saturating_mul(1 << beyond).min(self.max_wait)
    }

    /// How long `key` must still wait before its next attempt is heard.
    pub fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        if self.free == 0 {
            return None;
        }
        let failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let recorded = failures.get(key)?;
        if recorded.count < self.free || now.duration_since(recorded.last) >= self.window {
            return None;
        }
        let ready_at = recorded.last + self.wait_after(recorded.count);
        (ready_at > now).then(|| ready_at - now)
    }

    pub fn failed(&self, key: K, now: Instant) {
        if self.free == 0 {
            return;
        }
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let recorded = failures.entry(key).or_insert(Failures { count: 0, last: now });
        if now.duration_since(recorded.last) >= self.window {
            recorded.count = 0;
        }
        recorded.count = recorded.count.saturating_add(1);
        recorded.last = now;
    }

    pub fn succeeded(&self, key: &K) {
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(key);
    }

    /// Drops failures older than the window, so memory stays bounded.
    pub fn forget_old(&self, now: Instant) {
        let window = self.window;
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|_, recorded| now.duration_since(recorded.last) < window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> FailureBackoff<&'static str> {
        FailureBackoff::new(3, Duration::from_secs(60), Duration::from_secs(900))
    }

    #[test]
    fn free_failures_then_doubling_waits_up_to_the_cap() {
        let backoff = backoff();
        let start = Instant::now();
        for n in 0..3 {
            assert_eq!(backoff.wait(&"ann", start), None, "failure {n} is free");
            backoff.failed("ann", start);
        }
        assert_eq!(backoff.wait(&"ann", start), Some(Duration::from_secs(1)));
        assert_eq!(backoff.wait(&"ann", start + Duration::from_secs(1)), None);
        backoff.failed("ann", start + Duration::from_secs(1));
        assert_eq!(backoff.wait(&"ann", start + Duration::from_secs(1)), Some(Duration::from_secs(2)));
        for _ in 0..20 {
            backoff.failed("ann", start + Duration::from_secs(1));
        }
        assert_eq!(backoff.wait(&"ann", start + Duration::from_secs(1)), Some(Duration::from_secs(60)), "capped");
        assert_eq!(backoff.wait(&"bob", start), None, "other keys are not affected");
    }

    #[test]
    fn a_success_or_a_quiet_window_clears_the_failures() {
        let backoff = backoff();
        let start = Instant::now();
        for _ in 0..5 {
            backoff.failed("ann", start);
        }
        assert!(backoff.wait(&"ann", start).is_some());
        assert_eq!(backoff.wait(&"ann", start + Duration::from_secs(900)), None);
        backoff.forget_old(start + Duration::from_secs(900));
        backoff.failed("ann", start + Duration::from_secs(900));
        assert_eq!(backoff.wait(&"ann", start + Duration::from_secs(900)), None, "counting starts again");
        for _ in 0..5 {
            backoff.failed("ann", start);
        }
        backoff.succeeded(&"ann");
        assert_eq!(backoff.wait(&"ann", start), None);
    }

    #[test]
    fn zero_free_failures_turns_it_off() {
        let backoff = FailureBackoff::new(0, Duration::from_secs(60), Duration::from_secs(900));
        for _ in 0..100 {
            backoff.failed("ann", Instant::now());
        }
        assert_eq!(backoff.wait(&"ann", Instant::now()), None);
    }
}
