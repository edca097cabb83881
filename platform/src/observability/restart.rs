//! Work that must keep running (an event listener, the search indexer, an
//! event-stream consumer): run again whenever it stops, after a wait that
//! grows with each quick failure (backon's exponential backoff, 0.1 s to
//! 5 s) and starts over once a run has lasted a while.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use tokio::time::Instant;

/// A run lasting this long counts as healthy: the next failure waits the
/// shortest time again.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// The waits between tries: 0.1 s, doubling, at most 5 s, never ending.
pub fn backoff() -> impl Iterator<Item = Duration> {
    backoff_up_to(Duration::from_secs(5))
}

/// The waits between tries: 0.1 s, doubling, at most `longest`, never ending.
pub fn backoff_up_to(longest: Duration) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100).min(longest))
        .with_max_delay(longest)
        .without_max_times()
        .build()
}

/// Runs `run` again and again; `Ok(())` from it ends the loop (it was told
/// to stop), an error is logged as `what` and tried again after the wait.
pub async fn keep_running<E, F, Fut>(what: &'static str, mut run: F)
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut waits = backoff();
    loop {
        let started = Instant::now();
        match run().await {
            Ok(()) => return,
            Err(error) => tracing::warn!(error = %error, "{what} stopped; starting over"),
        }
        if started.elapsed() >= HEALTHY_RUN {
            waits = backoff();
        }
        tokio::time::sleep(waits.next().unwrap_or(Duration::from_secs(5))).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn waits_grow_from_a_tenth_of_a_second_to_five() {
        let waits: Vec<Duration> = backoff().take(10).collect();
        assert_eq!(waits[0], Duration::from_millis(100));
        assert!(waits.windows(2).all(|pair| pair[0] <= pair[1]), "{waits:?}");
        assert_eq!(*waits.last().unwrap(), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn failed_runs_are_tried_again_until_one_ends_well() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        keep_running("a test loop", move || {
            let run = counted.fetch_add(1, Ordering::SeqCst);
            async move { if run < 2 { Err("not yet") } else { Ok(()) } }
        })
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
