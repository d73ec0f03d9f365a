//! Time as the daemon sees it: the system clock, or a manual one that tests move by hand (no
//! test waits for a cron minute).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A future that completes at (or after) a deadline.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Wall-clock time in Unix milliseconds, and waiting for it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in Unix milliseconds.
    fn now_ms(&self) -> i64;
    /// Completes when [`Clock::now_ms`] reaches `deadline_ms`. The system clock re-checks the
    /// wall clock at least every `MAX_NAP` so a clock that jumps is noticed.
    fn sleep_until(&self, deadline_ms: i64) -> Sleep;
}

/// The longest the system clock sleeps before looking at the wall clock again.
pub const MAX_NAP: Duration = Duration::from_secs(60);

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
    }

    fn sleep_until(&self, deadline_ms: i64) -> Sleep {
        let wait = deadline_ms.saturating_sub(self.now_ms()).max(0) as u64;
        let nap = Duration::from_millis(wait).min(MAX_NAP);
        Box::pin(tokio::time::sleep(nap))
    }
}

/// A clock that moves only when told to: [`ManualClock::set`] and [`ManualClock::advance`]
/// wake every sleeper whose deadline has come.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<i64>>,
    tick: Arc<tokio::sync::watch::Sender<i64>>,
}

impl ManualClock {
    /// A clock standing at `now_ms`.
    pub fn new(now_ms: i64) -> ManualClock {
        let (tick, _) = tokio::sync::watch::channel(now_ms);
        ManualClock { now: Arc::new(Mutex::new(now_ms)), tick: Arc::new(tick) }
    }

    /// Moves the clock to `now_ms` (backwards too: a clock can jump either way).
    pub fn set(&self, now_ms: i64) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = now_ms;
        self.tick.send_replace(now_ms);
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let now = self.now_ms() + d.as_millis() as i64;
        self.set(now);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sleep_until(&self, deadline_ms: i64) -> Sleep {
        let mut rx = self.tick.subscribe();
        Box::pin(async move {
            // A closed channel means the clock is gone: nothing will ever wake us again.
            let _ = rx.wait_for(|&now| now >= deadline_ms).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_sleeper_wakes_only_when_the_clock_reaches_its_deadline() {
        let clock = ManualClock::new(1_000);
        let sleep = clock.sleep_until(5_000);
        let handle = tokio::spawn(sleep);
        clock.advance(Duration::from_millis(3_000));
        tokio::task::yield_now().await;
        assert!(!handle.is_finished());
        clock.set(5_000);
        tokio::time::timeout(Duration::from_secs(5), handle).await.unwrap().unwrap();
        assert_eq!(clock.now_ms(), 5_000);
    }

    #[tokio::test]
    async fn a_past_deadline_is_ready_at_once() {
        let clock = ManualClock::new(10);
        tokio::time::timeout(Duration::from_secs(5), clock.sleep_until(5)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), SystemClock.sleep_until(0)).await.unwrap();
    }
}
