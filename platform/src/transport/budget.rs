//! A concurrency budget for one expensive kind of work (catalog's index
//! searches, deep listings): at most so many run at once, a few more may
//! wait a moment, and the rest are refused at once with a retryable error
//! instead of queueing without end.
//!
//! The permit is meant to travel with the work itself (into the blocking
//! pool, say) rather than stay with the call: a caller that gives up frees
//! nothing until the work it started has stopped, so giving up early buys a
//! caller no extra share.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Longest a call waits for a turn before it is refused.
const LONGEST_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct WorkBudget {
    /// What the work is, for the refusal: "index searches".
    kind: &'static str,
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
}

/// No turn came free: the call is refused (RESOURCE_EXHAUSTED).
#[derive(Debug, Clone, thiserror::Error)]
#[error("too many {kind} are running; retry shortly")]
pub struct Busy {
    pub kind: &'static str,
}

/// A turn of work; the turn ends when this is dropped.
pub type Turn = OwnedSemaphorePermit;

/// Takes one place in the wait, given back on drop.
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WorkBudget {
    /// `concurrency` pieces of work at once (at least one), and up to
    /// `max_waiting` calls waiting for a turn.
    pub fn new(kind: &'static str, concurrency: usize, max_waiting: usize) -> Self {
        Self {
            kind,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting,
        }
    }

    /// A turn now, or after a short wait if few others wait; else [`Busy`].
    pub async fn take(&self) -> Result<Turn, Busy> {
        if let Ok(turn) = self.permits.clone().try_acquire_owned() {
            return Ok(turn);
        }
        let busy = Busy { kind: self.kind };
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(busy);
        }
        let _waiting = Waiting(self.waiting.clone());
        match tokio::time::timeout(LONGEST_WAIT, self.permits.clone().acquire_owned()).await {
            Ok(Ok(turn)) => Ok(turn),
            _ => Err(busy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_beyond_the_budget_and_its_queue_is_refused_until_a_turn_ends() {
        let budget = WorkBudget::new("index searches", 1, 1);
        let running = budget.take().await.expect("a free turn");
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.take().await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = budget.take().await.expect_err("the queue is full");
        assert_eq!(refused.to_string(), "too many index searches are running; retry shortly");
        drop(running);
        waiter.await.unwrap().expect("the waiter gets the freed turn");
        let _turn = budget.take().await.expect("free again");
    }

    #[tokio::test]
    async fn a_wait_is_bounded() {
        let budget = WorkBudget::new("deep listings", 1, 8);
        let _running = budget.take().await.unwrap();
        assert!(budget.take().await.is_err(), "refused after the longest wait");
        assert_eq!(budget.waiting.load(Ordering::SeqCst), 0);
    }
}
