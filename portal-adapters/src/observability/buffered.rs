//! `BufferedJournalSink`: recording that never waits on the journal.
//!
//! `record` pushes the event on a bounded lock-free queue and returns; a background task
//! takes events off in batches and appends them to a [`Journal`]. A full buffer drops the
//! event and counts it, a failed write counts its events; the count is reported as a
//! `diagnostics.dropped` event in the journal (at every flush and every
//! [`BufferConfig::report_every`]) and through [`DiagnosticSink::dropped`].
//!
//! What `record` costs the request is kept small:
//!
//! - it wakes no thread in the common case: the writer looks at the queue every
//!   [`BufferConfig::linger`] while events come in, and is woken only when the queue is
//!   half full or when it had gone idle (an empty queue), so one recorded event costs a
//!   queue push and a few atomic loads;
//! - the event moves into the queue, it is not cloned;
//! - an event recorded with [`DiagnosticSink::record_deferred`] (the access decisions)
//!   has its detail built by the writer: building that JSON, and freeing it, was most of
//!   what recording cost a request (see `docs/benchmarks.md`).
//!
//! Readers of the journal see what the writer has written; [`FlushingJournal`] makes each
//! of its reads wait for the writer to write what was recorded before it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use crossbeam_queue::ArrayQueue;
use portal_core::diagnostics::{
    DeferredDetail, DiagnosticEvent, DiagnosticSink, EventKind, Journal, Outcome, RequestQuery, TimelineQuery, schemas,
};
use portal_core::ids::{OrgId, RandomIds, RequestId};
use portal_core::store::StoreError;
use portal_core::time::{Clock, SystemClock};
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc, oneshot};
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
    /// How long the writer waits, after writing what it found, before it looks again.
    /// While it waits, `record` wakes no thread (unless the buffer is half full); once it
    /// finds nothing, it waits for the next event instead. 10 ms by default (an event is
    /// in the journal about that long after it happened); zero makes the writer look
    /// again at once.
    ///
    /// Each look that finds events is one append: one write transaction. On SQLite a
    /// longer linger makes fewer, larger transactions, and what a commit costs beyond its
    /// rows (the B-trees' last pages written again, the WAL frames, a wake-up of the
    /// writer and of the connection's thread) is paid less often: at 2 ms the HTTP
    /// benchmark's authorized read reached 58–59% of the bare handler, at 10 ms 62–67%,
    /// at 25 ms 66–68% (`docs/benchmarks.md`).
    pub linger: Duration,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            batch: 500,
            report_every: Duration::from_secs(10),
            linger: Duration::from_millis(10),
        }
    }
}

/// What the [`JournalWriter`] asks of the background writer.
enum Control {
    Flush(oneshot::Sender<()>),
    Stop(oneshot::Sender<()>),
}

/// An event waiting in the queue: whole, or with its detail still to be built by the writer.
#[expect(
    clippy::large_enum_variant,
    reason = "events wait inline in the queue's slots: boxing one is an allocation on the request thread freed on the writer's"
)]
enum Queued {
    Event(DiagnosticEvent),
    Deferred(DiagnosticEvent, DeferredDetail),
}

impl Queued {
    fn into_event(self) -> DiagnosticEvent {
        match self {
            Queued::Event(event) => event,
            Queued::Deferred(event, detail) => detail.apply(event),
        }
    }
}

/// The state the recording threads and the writer share.
#[derive(Debug)]
struct Shared {
    /// Events waiting to be written.
    queue: ArrayQueue<Queued>,
    /// Refused because the buffer was full or the writer had stopped.
    dropped: AtomicU64,
    /// Lost because the journal refused the append.
    failed: AtomicU64,
    /// Set once the writer has stopped (or its task is gone): `record` drops and counts.
    stopped: AtomicBool,
    /// Set while the writer waits for an event without a timeout: the next `record` wakes it.
    idle: AtomicBool,
    /// Wakes the writer.
    wake: Notify,
    /// The queue length at which `record` wakes a lingering writer.
    wake_at: usize,
}

impl Shared {
    fn lost(&self) -> u64 {
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
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BufferedJournalSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferedJournalSink")
            .field("queued", &self.shared.queue.len())
            .field("dropped", &self.shared.dropped)
            .field("failed", &self.shared.failed)
            .finish_non_exhaustive()
    }
}

/// The handle of a [`BufferedJournalSink`]'s background writer: flush it, stop it.
#[derive(Debug)]
pub struct JournalWriter {
    control: mpsc::Sender<Control>,
    task: JoinHandle<()>,
    shared: Arc<Shared>,
}

impl BufferedJournalSink {
    /// Starts the background writer on the current Tokio runtime, appending to `journal`.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (`tokio::spawn`'s own condition).
    pub fn spawn(journal: Arc<dyn Journal>, config: BufferConfig) -> (Self, JournalWriter) {
        let capacity = config.capacity.max(1);
        let shared = Arc::new(Shared {
            queue: ArrayQueue::new(capacity),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            idle: AtomicBool::new(false),
            wake: Notify::new(),
            wake_at: capacity.div_ceil(2),
        });
        let (control, rx) = mpsc::channel(8);
        let worker = Worker {
            journal,
            shared: shared.clone(),
            batch: config.batch.max(1),
            reported: 0,
            ids: RandomIds::default(),
        };
        let task = tokio::spawn(worker.run(rx, config.report_every, config.linger));
        let sink = Self { shared: shared.clone() };
        (sink, JournalWriter { control, task, shared })
    }
}

impl BufferedJournalSink {
    fn enqueue(&self, item: Queued) {
        let shared = &*self.shared;
        if shared.stopped.load(Ordering::SeqCst) {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if shared.queue.push(item).is_err() {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if shared.stopped.load(Ordering::SeqCst) {
            // The writer stopped while this event went in: its last drain may have missed
            // it. Take one event back out and count it, so that every event is either
            // written or counted (if the writer did take this one, the one taken here is
            // another it would have missed).
            if shared.queue.pop().is_some() {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        if (shared.idle.load(Ordering::SeqCst) && shared.idle.swap(false, Ordering::SeqCst))
            || shared.queue.len() >= shared.wake_at
        {
            shared.wake.notify_one();
        }
    }
}

impl DiagnosticSink for BufferedJournalSink {
    fn record(&self, event: DiagnosticEvent) {
        self.enqueue(Queued::Event(event));
    }

    /// Queues the event with its detail unbuilt: the writer builds it, off the request.
    fn record_deferred(&self, event: DiagnosticEvent, detail: DeferredDetail) {
        self.enqueue(Queued::Deferred(event, detail));
    }

    fn dropped(&self) -> u64 {
        self.shared.lost()
    }
}

impl JournalWriter {
    /// Waits until every event recorded before the call is written (or counted as
    /// lost), and any drops are reported in the journal.
    pub async fn flush(&self) {
        flush(&self.control).await;
    }

    /// A handle that flushes this writer ([`flush`](Self::flush)) and nothing else, for
    /// whoever reads the journal ([`FlushingJournal`]). While one exists, dropping this
    /// handle does not stop the writer (it stops once every sink and flusher is gone).
    pub fn flusher(&self) -> JournalFlusher {
        JournalFlusher {
            control: self.control.clone(),
        }
    }

    /// Flushes, then stops the writer; events recorded afterwards are dropped and counted.
    pub async fn shutdown(self) {
        let (done, wait) = oneshot::channel();
        if self.control.send(Control::Stop(done)).await.is_ok() {
            let _ = wait.await;
        }
        let _ = self.task.await;
    }

    /// Events lost so far: dropped on a full buffer, or refused by the journal.
    pub fn dropped(&self) -> u64 {
        self.shared.lost()
    }
}

/// Asks the writer behind `control` to write what is queued, and waits until it has (at
/// once if the writer has stopped).
async fn flush(control: &mpsc::Sender<Control>) {
    let (done, wait) = oneshot::channel();
    if control.send(Control::Flush(done)).await.is_ok() {
        let _ = wait.await;
    }
}

/// Flushes a [`BufferedJournalSink`]'s writer ([`JournalWriter::flusher`]); cheap to clone.
#[derive(Debug, Clone)]
pub struct JournalFlusher {
    control: mpsc::Sender<Control>,
}

impl JournalFlusher {
    /// Waits until every event recorded before the call is written (or counted as lost),
    /// as [`JournalWriter::flush`].
    pub async fn flush(&self) {
        flush(&self.control).await;
    }
}

/// The journal a [`BufferedJournalSink`] writes to, as its readers should see it: each
/// read (and purge) first waits for the writer to write what was recorded before it
/// ([`JournalFlusher::flush`]), so support looking up a request a customer just made
/// finds all of its events, however long the writer lingers ([`BufferConfig::linger`]).
/// Appends go straight to the journal.
///
/// A read waits for the append in progress and for what is queued to be written (a few
/// milliseconds on SQLite); reads are support's lookups, rare beside the requests they
/// look up.
///
/// ```no_run
/// # async fn run() {
/// use std::sync::Arc;
/// use portal_adapters::observability::{BufferConfig, BufferedJournalSink, FlushingJournal, MemoryJournal};
///
/// let journal = Arc::new(MemoryJournal::default());
/// let (sink, writer) = BufferedJournalSink::spawn(journal.clone(), BufferConfig::default());
/// let read = Arc::new(FlushingJournal::new(journal, writer.flusher()));
/// // Build the portal with `.diagnostics(Arc::new(sink)).journal(read)`.
/// # let _ = (sink, read);
/// # }
/// ```
#[derive(Clone)]
pub struct FlushingJournal {
    journal: Arc<dyn Journal>,
    flusher: JournalFlusher,
}

impl std::fmt::Debug for FlushingJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushingJournal").finish_non_exhaustive()
    }
}

impl FlushingJournal {
    /// `journal`, read after `flusher`'s writer has written what is queued.
    pub fn new(journal: Arc<dyn Journal>, flusher: JournalFlusher) -> Self {
        Self { journal, flusher }
    }
}

#[async_trait]
impl Journal for FlushingJournal {
    async fn append(&self, batch: &mut Vec<DiagnosticEvent>) -> Result<(), StoreError> {
        self.journal.append(batch).await
    }

    async fn by_request(&self, query: &RequestQuery) -> Result<Vec<DiagnosticEvent>, StoreError> {
        self.flusher.flush().await;
        self.journal.by_request(query).await
    }

    async fn timeline(&self, query: &TimelineQuery) -> Result<Vec<DiagnosticEvent>, StoreError> {
        self.flusher.flush().await;
        self.journal.timeline(query).await
    }

    /// Flushes first, so that no event older than `before` is written after the purge.
    async fn purge(&self, org: OrgId, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.flusher.flush().await;
        self.journal.purge(org, before).await
    }
}

struct Worker {
    journal: Arc<dyn Journal>,
    shared: Arc<Shared>,
    batch: usize,
    /// The loss count the journal was last told of.
    reported: u64,
    ids: RandomIds,
}

impl Drop for Worker {
    /// Whether the writer stopped, failed or its runtime went away, later events are
    /// dropped and counted rather than queued for no one.
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
    }
}

impl Worker {
    async fn run(mut self, mut control: mpsc::Receiver<Control>, report_every: Duration, linger: Duration) {
        let mut tick = tokio::time::interval(report_every.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(self.batch);
        // Whether the `JournalWriter` still exists: without it the writer goes on until
        // every sink is gone.
        let mut handle = true;
        loop {
            let found = self.drain(&mut batch).await;
            if !handle && Arc::strong_count(&self.shared) == 1 {
                // No sink and no handle is left: nothing more can come.
                self.stop(&mut batch).await;
                return;
            }
            let idle = found == 0 || linger.is_zero();
            if idle {
                // Nothing came in since the last look: wait for the next event.
                self.shared.idle.store(true, Ordering::SeqCst);
                if !self.shared.queue.is_empty() {
                    self.shared.idle.store(false, Ordering::SeqCst);
                    continue;
                }
            }
            let message = tokio::select! {
                message = control.recv(), if handle => message,
                () = self.shared.wake.notified() => continue,
                _ = tick.tick() => {
                    self.report().await;
                    continue;
                }
                () = tokio::time::sleep(linger), if !idle => continue,
            };
            match message {
                Some(Control::Flush(done)) => {
                    self.drain(&mut batch).await;
                    self.report().await;
                    let _ = done.send(());
                }
                Some(Control::Stop(done)) => {
                    self.stop(&mut batch).await;
                    let _ = done.send(());
                    return;
                }
                None => handle = false,
            }
        }
    }

    /// Writes everything in the queue, in batches; returns how many events it took.
    async fn drain(&self, batch: &mut Vec<DiagnosticEvent>) -> usize {
        let mut taken = 0;
        while let Some(item) = self.shared.queue.pop() {
            batch.push(item.into_event());
            taken += 1;
            if batch.len() >= self.batch {
                self.write(batch).await;
            }
        }
        self.write(batch).await;
        taken
    }

    /// Refuses further events, writes what was recorded before, and reports the drops.
    async fn stop(&mut self, batch: &mut Vec<DiagnosticEvent>) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.drain(batch).await;
        self.report().await;
    }

    /// Appends the batch, retrying once when the journal is unavailable; events that
    /// still fail are counted as lost.
    async fn write(&self, batch: &mut Vec<DiagnosticEvent>) {
        if batch.is_empty() {
            return;
        }
        // A successful append takes the events and leaves the batch empty; a failed one
        // leaves it whole, for the retry.
        let mut result = self.journal.append(batch).await;
        if matches!(&result, Err(err) if err.is_retryable()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            result = self.journal.append(batch).await;
        }
        if let Err(err) = result {
            self.shared.failed.fetch_add(batch.len() as u64, Ordering::Relaxed);
            tracing::warn!(target: "portal", error = %err, events = batch.len(), "diagnostic events could not be journaled");
        }
        batch.clear();
    }

    /// Appends a `diagnostics.dropped` event if events were lost since the last report.
    async fn report(&mut self) {
        let total = self.shared.lost();
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
        if self.journal.append(&mut vec![event]).await.is_ok() {
            self.reported = total;
        }
    }
}
