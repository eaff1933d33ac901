//! A background task that purges expired sessions.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::{Error, SessionInterface};
use tokio::task::JoinHandle;

/// When [`spawn_cleanup`] runs `delete_expired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupSchedule {
    /// Time between successful runs. Default 5 min.
    pub period: Duration,
    /// Wait after the first failed run; it doubles with every further consecutive
    /// failure, up to `period`. Default 1 s.
    pub initial_backoff: Duration,
}

impl Default for CleanupSchedule {
    fn default() -> Self {
        Self {
            period: Duration::from_secs(300),
            initial_backoff: Duration::from_secs(1),
        }
    }
}

impl CleanupSchedule {
    /// A schedule that runs every `period`, with the default backoff.
    pub fn every(period: Duration) -> Self {
        Self {
            period,
            ..Self::default()
        }
    }
}

/// Spawns a task that calls `store.delete_expired()` on `schedule` until `shutdown`
/// completes (e.g. a `CancellationToken`'s `cancelled()`, a `oneshot` receiver, or
/// `tokio::signal::ctrl_c()`).
///
/// Errors are logged (`tracing`, target `session_core::cleanup`) and the task
/// keeps going with exponential backoff — a database that is down for a minute does
/// not end the cleanup for the life of the process. The one exception is
/// [`Error::Unsupported`]: a store that cannot purge will never start to, so the task
/// logs it and ends. A shutdown while a purge is running cancels it between
/// statements' results (each batch is its own statement, so nothing is half done).
pub fn spawn_cleanup(
    store: Arc<dyn SessionInterface>,
    schedule: CleanupSchedule,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown => tracing::debug!("session cleanup stopped"),
            () = run(store, schedule) => {}
        }
    })
}

async fn run(store: Arc<dyn SessionInterface>, schedule: CleanupSchedule) {
    let mut failures: u32 = 0;
    loop {
        let wait = if failures == 0 {
            schedule.period
        } else {
            // 1×, 2×, 4×, … the initial backoff, never longer than the period.
            let factor = 1u32 << (failures - 1).min(20);
            schedule
                .initial_backoff
                .saturating_mul(factor)
                .min(schedule.period)
        };
        tokio::time::sleep(wait).await;
        match store.delete_expired().await {
            Ok(n) => {
                failures = 0;
                tracing::debug!(removed = n, "purged expired sessions");
            }
            Err(e @ Error::Unsupported { .. }) => {
                tracing::warn!(error = %e, "store cannot purge expired sessions; cleanup ends");
                return;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(
                    error = %e,
                    retryable = e.is_retryable(),
                    consecutive_failures = failures,
                    "purging expired sessions failed; will retry"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;
    use time::OffsetDateTime;

    use crate::{Capabilities, NewRecord, SaveMode, StorageKey, StoredRecord, Version};

    use super::*;

    /// A store whose purge fails its first `failures` calls.
    /// What [`Scripted`]'s next purge does.
    #[derive(Clone, Copy)]
    enum Outcome {
        Purge,
        Fail,
        Unsupported,
    }

    /// A store whose purges follow a script (then succeed), reporting the
    /// (virtual) instant of each call.
    struct Scripted {
        script: Vec<Outcome>,
        calls: AtomicU32,
        at: tokio::sync::mpsc::UnboundedSender<tokio::time::Instant>,
    }

    #[async_trait]
    impl SessionInterface for Scripted {
        async fn load(&self, _: &StorageKey) -> Result<Option<StoredRecord>, Error> {
            Ok(None)
        }
        async fn save(&self, _: &StorageKey, _: &NewRecord, _: SaveMode) -> Result<Version, Error> {
            Err(Error::NotFound)
        }
        async fn expire(&self, _: &StorageKey) -> Result<(), Error> {
            Ok(())
        }
        async fn touch(&self, _: &StorageKey, _: OffsetDateTime) -> Result<bool, Error> {
            Ok(false)
        }
        async fn delete_expired(&self) -> Result<u64, Error> {
            let _ = self.at.send(tokio::time::Instant::now());
            let n = self.calls.fetch_add(1, Ordering::SeqCst) as usize;
            match self.script.get(n).copied().unwrap_or(Outcome::Purge) {
                Outcome::Purge => Ok(0),
                Outcome::Fail => Err(Error::retryable("database down")),
                Outcome::Unsupported => Err(Error::unsupported("delete_expired")),
            }
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::full()
        }
    }

    fn scripted(
        script: Vec<Outcome>,
    ) -> (
        Arc<Scripted>,
        tokio::sync::mpsc::UnboundedReceiver<tokio::time::Instant>,
    ) {
        let (at, calls) = tokio::sync::mpsc::unbounded_channel();
        let store = Arc::new(Scripted {
            script,
            calls: AtomicU32::new(0),
            at,
        });
        (store, calls)
    }

    /// Waits `period` before each purge, `initial_backoff` doubling per consecutive failure (never above `period`) after a failure, and `period` again after a success.
    #[tokio::test(start_paused = true)]
    async fn the_wait_is_the_period_or_a_doubling_backoff_capped_at_the_period() {
        use Outcome::{Fail, Purge};
        let script = [vec![Fail; 8], vec![Purge, Fail, Purge]].concat();
        let (store, mut calls) = scripted(script);
        let schedule = CleanupSchedule {
            period: Duration::from_secs(100),
            initial_backoff: Duration::from_secs(1),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let started = tokio::time::Instant::now();
        let task = spawn_cleanup(store, schedule, async move {
            let _ = stopped.await;
        });
        let mut waits = Vec::new();
        let mut last = started;
        for _ in 0..12 {
            let at = calls.recv().await.unwrap();
            waits.push((at - last).as_secs());
            last = at;
        }
        // Purge, then (failures) 1, 2, 4, … capped at the period; a success
        // resets the backoff.
        assert_eq!(waits, [100, 1, 2, 4, 8, 16, 32, 64, 100, 100, 1, 100]);
        stop.send(()).unwrap();
        task.await.unwrap();
        assert_eq!(
            CleanupSchedule::default(),
            CleanupSchedule {
                period: Duration::from_secs(300),
                initial_backoff: Duration::from_secs(1),
            }
        );
        assert_eq!(
            CleanupSchedule::every(Duration::from_secs(7)).initial_backoff,
            Duration::from_secs(1)
        );
    }

    /// A store that answers `Unsupported` ends the task by itself (no shutdown needed), after that one call.
    #[tokio::test(start_paused = true)]
    async fn a_store_that_cannot_purge_ends_the_task() {
        let (store, mut calls) = scripted(vec![Outcome::Unsupported; 100]);
        let task = spawn_cleanup(
            store.clone(),
            CleanupSchedule::every(Duration::from_secs(60)),
            std::future::pending(),
        );
        // Virtual time: a task that kept going would run out this hour in an instant.
        tokio::time::timeout(Duration::from_secs(3600), task)
            .await
            .expect("the cleanup task kept running")
            .unwrap();
        assert_eq!(store.calls.load(Ordering::SeqCst), 1);
        assert!(calls.recv().await.is_some());
    }

    /// Errors do not end the task (it keeps purging after them), and shutdown does.
    #[tokio::test(start_paused = true)]
    async fn keeps_going_after_errors_and_stops_on_shutdown() {
        let (store, _calls) = scripted(vec![Outcome::Fail; 3]);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let schedule = CleanupSchedule {
            period: Duration::from_millis(20),
            initial_backoff: Duration::from_millis(2),
        };
        let task = spawn_cleanup(store.clone(), schedule, async move {
            let _ = stopped.await;
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let calls = store.calls.load(Ordering::SeqCst);
        assert!(calls > 5, "the task died after an error: {calls} calls");
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("did not stop on shutdown")
            .unwrap();
        let after = store.calls.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            store.calls.load(Ordering::SeqCst),
            after,
            "ran after shutdown"
        );
    }
}
