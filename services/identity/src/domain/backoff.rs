//! Brute force is bounded by failed logins, not by attempts, so a stranger
//! cannot lock an account's owner out by guessing wrong on purpose.
//!
//! Each key (an account and the address trying it; or an account from
//! everywhere, with a larger allowance) may fail a few times freely; after
//! that, each further failure doubles the wait before the next attempt is
//! heard (1 s, 2 s, 4 s, … up to a cap). The wait applies only to that key,
//! and the account-wide wait only to addresses that have themselves failed
//! on the account and never logged in to it: the owner, from an address that
//! has not failed or from one they logged in from before, logs in at once.
//! A success clears its key; failures are forgotten after a quiet window.
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

    /// Whether `key` has failed within the window.
    pub fn has_failed(&self, key: &K, now: Instant) -> bool {
        let failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        failures.get(key).is_some_and(|recorded| recorded.count > 0 && now.duration_since(recorded.last) < self.window)
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

/// Addresses each account has logged in from lately, at most a few per
/// account: the owner coming back from one of them is never slowed by what
/// strangers did to the account.
#[derive(Debug)]
pub struct KnownAddresses<K, A> {
    per_key: usize,
    /// An address not used for this long is forgotten.
    window: Duration,
    seen: Mutex<HashMap<K, Vec<(A, Instant)>>>,
}

impl<K: Hash + Eq, A: PartialEq + Copy> KnownAddresses<K, A> {
    pub fn new(per_key: usize, window: Duration) -> Self {
        Self { per_key, window, seen: Mutex::default() }
    }

    pub fn remember(&self, key: K, address: A, now: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let addresses = seen.entry(key).or_default();
        addresses.retain(|(known, _)| *known != address);
        if addresses.len() >= self.per_key {
            addresses.remove(0);
        }
        addresses.push((address, now));
    }

    pub fn knows(&self, key: &K, address: A, now: Instant) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.get(key).is_some_and(|addresses| {
            addresses.iter().any(|(known, at)| *known == address && now.duration_since(*at) < self.window)
        })
    }

    /// Drops addresses older than the window, so memory stays bounded.
    pub fn forget_old(&self, now: Instant) {
        let window = self.window;
        let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.retain(|_, addresses| {
            addresses.retain(|(_, at)| now.duration_since(*at) < window);
            !addresses.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_addresses_are_few_per_account_and_expire() {
        let known = KnownAddresses::new(2, Duration::from_secs(60));
        let start = Instant::now();
        known.remember("ann", 1, start);
        known.remember("ann", 2, start);
        assert!(known.knows(&"ann", 1, start) && known.knows(&"ann", 2, start));
        assert!(!known.knows(&"bob", 1, start));
        known.remember("ann", 3, start);
        assert!(!known.knows(&"ann", 1, start), "the oldest makes room");
        assert!(!known.knows(&"ann", 3, start + Duration::from_secs(60)), "expired");
        known.forget_old(start + Duration::from_secs(60));
        assert!(known.seen.lock().unwrap().is_empty());
    }

    #[test]
    fn has_failed_only_within_the_window() {
        let backoff = backoff();
        let start = Instant::now();
        assert!(!backoff.has_failed(&"ann", start));
        backoff.failed("ann", start);
        assert!(backoff.has_failed(&"ann", start));
        assert!(!backoff.has_failed(&"ann", start + Duration::from_secs(900)));
    }

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
