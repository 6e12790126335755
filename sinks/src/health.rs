//! Whether a sink is ready and, when it is not, why: the one place its readiness is decided.
//!
//! A sink is ready while it runs and nothing holds it up. What can hold it up is a [`Blocker`]:
//! the schema registry (unreachable, or not knowing a record's schema id), the target, the
//! dead-letter topic (each reported with a sentence by the loop that retries it, and cleared when
//! that loop gets through), and being stuck: a batch in hand that has not been written for longer
//! than `SINK_STUCK_AFTER_MS`, which also catches a hang that returns no error (a locked table, a
//! database that accepts connections and never answers). The sentences are logged when they
//! appear and readable through [`Progress::not_ready_reason`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use auction_process::Readiness;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::destination::WriteOutcome;
use crate::metrics as m;

/// Counts of what a run did, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Records written as new.
    pub written: usize,
    /// Records the target already had.
    pub duplicates: usize,
    /// Records sent to the dead-letter topic.
    pub dead_letters: usize,
}

/// What holds a sink up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Blocker {
    /// The registry cannot be reached, or does not know a record's schema id.
    Registry,
    /// The target fails (and is retried).
    Target,
    /// A dead letter cannot be written (and is retried).
    DeadLetters,
    /// A batch has waited longer than the stuck limit.
    Stuck,
}

#[derive(Debug, Default)]
struct Status {
    summary: RunSummary,
    running: bool,
    blockers: BTreeMap<Blocker, String>,
    /// When the batch in hand was handed to the writer, and how many records it holds.
    batch_since: Option<(Instant, usize)>,
}

/// What a running sink has done so far and what holds it up, readable while it runs (the
/// benchmark and the fault audit watch it instead of scraping `/metrics`).
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Mutex<Status>>);

impl Progress {
    /// The counts now.
    pub fn snapshot(&self) -> RunSummary {
        self.lock().summary
    }

    /// Why the sink is not ready now (one sentence per cause, joined by " | "); `None` when
    /// nothing holds it up.
    pub fn not_ready_reason(&self) -> Option<String> {
        let status = self.lock();
        (!status.blockers.is_empty()).then(|| {
            status
                .blockers
                .values()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(" | ")
        })
    }

    pub(crate) fn add(&self, outcome: WriteOutcome, dead_letters: usize) {
        let summary = &mut self.lock().summary;
        summary.written += outcome.written;
        summary.duplicates += outcome.duplicates;
        summary.dead_letters += dead_letters;
    }

    fn lock(&self) -> MutexGuard<'_, Status> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sets readiness (the `/readyz` flag and the `sink_ready` gauge) from the running state and the
/// blockers.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    kind: &'static str,
    readiness: Readiness,
    progress: Progress,
}

impl Health {
    pub(crate) fn new(kind: &'static str, readiness: Readiness, progress: Progress) -> Self {
        Self {
            kind,
            readiness,
            progress,
        }
    }

    pub(crate) fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The sink consumes (`true`, after start-up) or has stopped consuming.
    pub(crate) fn running(&self, running: bool) {
        let mut status = self.progress.lock();
        status.running = running;
        self.refresh(&status);
    }

    /// `blocker` holds the sink up, for the reason `sentence`; logged when it is new.
    pub(crate) fn block(&self, blocker: Blocker, sentence: String) {
        let mut status = self.progress.lock();
        if !status.blockers.contains_key(&blocker) {
            tracing::warn!(sink = self.kind, "not ready: {sentence}");
        }
        status.blockers.insert(blocker, sentence);
        self.refresh(&status);
    }

    /// `blocker` no longer holds the sink up.
    pub(crate) fn clear(&self, blocker: Blocker) {
        let mut status = self.progress.lock();
        if status.blockers.remove(&blocker).is_some() {
            tracing::info!(sink = self.kind, cause = ?blocker, "no longer held up");
            self.refresh(&status);
        }
    }

    /// A batch of `records` was handed to the writer.
    pub(crate) fn batch_started(&self, records: usize) {
        self.progress.lock().batch_since = Some((Instant::now(), records));
    }

    /// The batch in hand is written and its offsets stored: the position moved.
    pub(crate) fn batch_done(&self) {
        self.progress.lock().batch_since = None;
        self.clear(Blocker::Stuck);
    }

    fn refresh(&self, status: &Status) {
        let ready = status.running && status.blockers.is_empty();
        self.readiness.set(ready);
        metrics::gauge!(m::READY, "sink" => self.kind).set(if ready { 1.0 } else { 0.0 });
        let stuck = status.blockers.contains_key(&Blocker::Stuck);
        metrics::gauge!(m::STUCK, "sink" => self.kind).set(if stuck { 1.0 } else { 0.0 });
    }

    /// Until `stop`: reports the sink stuck while the batch in hand has waited longer than
    /// `stuck_after`, and clears it once the batch is written.
    pub(crate) async fn watch_for_stalls(self, stuck_after: Duration, stop: CancellationToken) {
        let tick = (stuck_after / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(tick) => {}
            }
            let waiting = self.progress.lock().batch_since;
            match waiting {
                Some((since, records)) if since.elapsed() >= stuck_after => {
                    let sentence = format!(
                        "stuck: a batch of {records} records has waited {} s to be written \
                         (SINK_STUCK_AFTER_MS is {} ms); nothing after it is committed",
                        since.elapsed().as_secs(),
                        stuck_after.as_millis()
                    );
                    self.block(Blocker::Stuck, sentence);
                }
                _ => self.clear(Blocker::Stuck),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_while_running_with_nothing_holding_it_up() {
        let readiness = Readiness::default();
        let health = Health::new("csv", readiness.clone(), Progress::default());
        assert!(!readiness.get());
        health.running(true);
        assert!(readiness.get());
        health.block(Blocker::Registry, "registry".to_owned());
        health.block(Blocker::Target, "target".to_owned());
        assert!(!readiness.get());
        assert_eq!(
            health.progress().not_ready_reason().as_deref(),
            Some("registry | target")
        );
        health.clear(Blocker::Registry);
        assert!(!readiness.get());
        health.clear(Blocker::Target);
        assert!(readiness.get());
        assert_eq!(health.progress().not_ready_reason(), None);
        health.running(false);
        assert!(!readiness.get());
    }

    #[tokio::test]
    async fn a_batch_waiting_past_the_limit_is_stuck_until_it_is_written() {
        let readiness = Readiness::default();
        let health = Health::new("csv", readiness.clone(), Progress::default());
        health.running(true);
        let stop = CancellationToken::new();
        let watcher = tokio::spawn(
            health
                .clone()
                .watch_for_stalls(Duration::from_millis(100), stop.clone()),
        );
        health.batch_started(7);
        for _ in 0..200 {
            if !readiness.get() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!readiness.get(), "stuck");
        let reason = health.progress().not_ready_reason().unwrap();
        assert!(reason.contains("a batch of 7 records"), "{reason}");
        health.batch_done();
        assert!(readiness.get());
        stop.cancel();
        watcher.await.unwrap();
    }
}
