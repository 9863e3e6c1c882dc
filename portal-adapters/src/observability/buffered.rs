//! `BufferedJournalSink`: recording that never waits on the journal.
//!
//! `record` puts the event on a bounded channel and returns; a background task takes
//! events off in batches and appends them to a [`Journal`]. A full buffer drops the
//! event and counts it, a failed write counts its events; the count is reported as a
//! `diagnostics.dropped` event in the journal (at every flush and every
//! [`BufferConfig::report_every`]) and through [`DiagnosticSink::dropped`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use portal_core::diagnostics::{DiagnosticEvent, DiagnosticSink, EventKind, Journal, Outcome, schemas};
use portal_core::ids::{RandomIds, RequestId};
use portal_core::time::{Clock, SystemClock};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Settings of a [`BufferedJournalSink`].
#[derive(Debug, Clone)]
pub struct BufferConfig {
    /// How many events may wait to be written; more are dropped. 10,000 by default.
    pub capacity: usize,
    /// The most events one append writes. 500 by default.
    pub batch: usize,
    /// How often dropped events are reported, if there were any. 10 s by default.
    pub report_every: Duration,
    /// How long the writer waits after draining the buffer before it looks again. While it
    /// waits it is not parked on the channel, so `record` wakes no thread. 2 ms by default.
    pub linger: Duration,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            batch: 500,
            report_every: Duration::from_secs(10),
            linger: Duration::from_millis(2),
        }
    }
}

#[allow(
    clippy::large_enum_variant,
    reason = "almost every message is an event; boxing it would add an allocation to every record"
)]
enum Message {
    Event(DiagnosticEvent),
    Flush(oneshot::Sender<()>),
    Stop(oneshot::Sender<()>),
}

#[derive(Debug, Default)]
struct Counters {
    /// Refused because the buffer was full or the writer had stopped.
    dropped: AtomicU64,
    /// Lost because the journal refused the append.
    failed: AtomicU64,
}

impl Counters {
    fn total(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
}

/// A [`DiagnosticSink`] that hands events to a background writer and never waits.
///
/// Made with [`spawn`](Self::spawn) inside a Tokio runtime, together with the
/// [`JournalWriter`] that flushes and stops the writer. Cheap to clone; every clone
/// feeds the same writer.
///
/// ```no_run
/// # async fn run() {
/// use std::sync::Arc;
/// use portal_adapters::observability::{BufferConfig, BufferedJournalSink, MemoryJournal};
///
/// let journal = Arc::new(MemoryJournal::default());
/// let (sink, writer) = BufferedJournalSink::spawn(journal.clone(), BufferConfig::default());
/// // Build the portal with `.diagnostics(Arc::new(sink)).journal(journal)`, serve requests, then:
/// writer.shutdown().await;
/// # }
/// ```
#[derive(Clone)]
pub struct BufferedJournalSink {
    tx: mpsc::Sender<Message>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for BufferedJournalSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferedJournalSink")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// The handle of a [`BufferedJournalSink`]'s background writer: flush it, stop it.
#[derive(Debug)]
pub struct JournalWriter {
    tx: mpsc::Sender<Message>,
    task: JoinHandle<()>,
    counters: Arc<Counters>,
}

impl BufferedJournalSink {
    /// Starts the background writer on the current Tokio runtime, appending to `journal`.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (`tokio::spawn`'s own condition).
    pub fn spawn(journal: Arc<dyn Journal>, config: BufferConfig) -> (Self, JournalWriter) {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            journal,
            counters: counters.clone(),
            batch: config.batch.max(1),
            reported: 0,
            ids: RandomIds::default(),
        };
        let task = tokio::spawn(worker.run(rx, config.report_every, config.linger));
        let sink = Self {
            tx: tx.clone(),
            counters: counters.clone(),
        };
        (sink, JournalWriter { tx, task, counters })
    }
}

impl DiagnosticSink for BufferedJournalSink {
    fn record(&self, event: DiagnosticEvent) {
        if self.tx.try_send(Message::Event(event)).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn dropped(&self) -> u64 {
        self.counters.total()
    }
}

impl JournalWriter {
    /// Waits until every event recorded before the call is written (or counted as
    /// lost), and any drops are reported in the journal.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Flushes, then stops the writer; events recorded afterwards are dropped and counted.
    pub async fn shutdown(self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Stop(done)).await.is_ok() {
            let _ = wait.await;
        }
        let _ = self.task.await;
    }

    /// Events lost so far: dropped on a full buffer, or refused by the journal.
    pub fn dropped(&self) -> u64 {
        self.counters.total()
    }
}

struct Worker {
    journal: Arc<dyn Journal>,
    counters: Arc<Counters>,
    batch: usize,
    /// The loss count the journal was last told of.
    reported: u64,
    ids: RandomIds,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::Receiver<Message>, report_every: Duration, linger: Duration) {
        let mut tick = tokio::time::interval(report_every.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(self.batch);
        loop {
            let message = tokio::select! {
                message = rx.recv() => message,
                _ = tick.tick() => {
                    self.report().await;
                    continue;
                }
            };
            let control = match message {
                None => {
                    self.report().await;
                    return;
                }
                Some(Message::Event(event)) => {
                    batch.push(event);
                    let mut control = None;
                    while batch.len() < self.batch {
                        match rx.try_recv() {
                            Ok(Message::Event(event)) => batch.push(event),
                            Ok(other) => {
                                control = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let drained = batch.len() < self.batch && control.is_none();
                    self.write(&mut batch).await;
                    if drained && !linger.is_zero() {
                        tokio::time::sleep(linger).await;
                    }
                    control
                }
                Some(other) => Some(other),
            };
            match control {
                Some(Message::Flush(done)) => {
                    self.report().await;
                    let _ = done.send(());
                }
                Some(Message::Stop(done)) => {
                    // Whatever was recorded before the stop is already in the channel.
                    while let Ok(message) = rx.try_recv() {
                        if let Message::Event(event) = message {
                            batch.push(event);
                            if batch.len() >= self.batch {
                                self.write(&mut batch).await;
                            }
                        }
                    }
                    self.write(&mut batch).await;
                    self.report().await;
                    let _ = done.send(());
                    return;
                }
                Some(Message::Event(_)) | None => {}
            }
        }
    }

    /// Appends the batch, retrying once when the journal is unavailable; events that
    /// still fail are counted as lost.
    async fn write(&self, batch: &mut Vec<DiagnosticEvent>) {
        if batch.is_empty() {
            return;
        }
        let mut result = self.journal.append(batch).await;
        if matches!(&result, Err(err) if err.is_retryable()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            result = self.journal.append(batch).await;
        }
        if let Err(err) = result {
            self.counters.failed.fetch_add(batch.len() as u64, Ordering::Relaxed);
            tracing::warn!(target: "portal", error = %err, events = batch.len(), "diagnostic events could not be journaled");
        }
        batch.clear();
    }

    /// Appends a `diagnostics.dropped` event if events were lost since the last report.
    async fn report(&mut self) {
        let total = self.counters.total();
        if total <= self.reported {
            return;
        }
        let now = SystemClock.now();
        let mut event = DiagnosticEvent::detached(
            now,
            RequestId::generate(&self.ids, now),
            EventKind::Diagnostics,
            "diagnostics.dropped",
        )
        .with_detail(
            schemas::DROPPED_V1,
            serde_json::json!({ "dropped": total - self.reported, "total": total }),
        );
        event.outcome = Outcome::Failed;
        if self.journal.append(&[event]).await.is_ok() {
            self.reported = total;
        }
    }
}
