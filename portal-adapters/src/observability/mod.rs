//! Diagnostic sinks: `tracing` events, an in-memory journal, fan-out to several sinks, a
//! buffered sink that writes batches to any [`Journal`] off the request path, and a
//! `tracing` layer that files the host's own spans and events under the request id.
//!
//! A library emits events and never installs a subscriber: [`TracingSink`] writes to
//! whatever subscriber the host set up, and does nothing if there is none.

mod buffered;
mod layer;

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use portal_core::StoreError;
use portal_core::diagnostics::{
    DiagnosticEvent, DiagnosticSink, EventPosition, Journal, Outcome, RequestQuery, TimelineQuery,
};
use portal_core::ids::{EventId, OrgId};
use time::OffsetDateTime;

pub use buffered::{BufferConfig, BufferedJournalSink, FlushingJournal, JournalFlusher, JournalWriter};
pub use layer::JournalLayer;

/// Emits each diagnostic event as a `tracing` event with target `portal`.
///
/// Levels follow outcomes: `INFO` for succeeded, `WARN` for denied and rejected, `ERROR`
/// for failed. Fields: `request_id`, `trace_id`, `org`, `actor`, `real_actor`, `kind`,
/// `name`, `outcome`, `code`, `duration_us`, `schema`, `detail` (JSON). The detail never
/// holds secrets: the events are built from types that cannot serialize one.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingSink;

macro_rules! emit {
    ($level:expr, $event:expr) => {{
        let e = $event;
        tracing::event!(
            target: "portal",
            $level,
            request_id = %e.request_id,
            trace_id = e.trace_id.as_deref(),
            org = e.org.map(tracing::field::display),
            actor = e.actor.as_ref().map(tracing::field::display),
            real_actor = e.real_actor.as_ref().map(tracing::field::display),
            kind = e.kind.as_str(),
            name = %e.name,
            outcome = e.outcome.as_str(),
            code = e.code.map(|c| c.as_str()),
            duration_us = e.duration.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            schema = %e.schema,
            detail = %e.detail,
            "{}", e.name
        )
    }};
}

impl DiagnosticSink for TracingSink {
    fn record(&self, event: DiagnosticEvent) {
        match event.outcome {
            Outcome::Succeeded => emit!(tracing::Level::INFO, &event),
            Outcome::Denied | Outcome::Rejected => emit!(tracing::Level::WARN, &event),
            Outcome::Failed => emit!(tracing::Level::ERROR, &event),
        }
    }
}

/// Sends every event to each of several sinks.
#[derive(Clone, Default)]
pub struct FanOutSink {
    sinks: Vec<Arc<dyn DiagnosticSink>>,
}

impl std::fmt::Debug for FanOutSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanOutSink").field("sinks", &self.sinks.len()).finish()
    }
}

impl FanOutSink {
    /// A fan-out to `sinks`.
    pub fn new(sinks: Vec<Arc<dyn DiagnosticSink>>) -> Self {
        Self { sinks }
    }
}

impl DiagnosticSink for FanOutSink {
    fn record(&self, event: DiagnosticEvent) {
        if let Some((last, rest)) = self.sinks.split_last() {
            for sink in rest {
                sink.record(event.clone());
            }
            last.record(event);
        }
    }

    fn dropped(&self) -> u64 {
        self.sinks.iter().map(|s| s.dropped()).sum()
    }
}

/// A journal kept in memory, bounded: for tests, demos and single-process tools.
///
/// Recording takes a short lock and never waits on I/O. Once `capacity` events are
/// held, new events are dropped and counted in [`dropped`](DiagnosticSink::dropped).
/// It is also the reference [`Journal`] the SQL journals are compared with.
#[derive(Debug)]
pub struct MemoryJournal {
    inner: Mutex<Held>,
    capacity: usize,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct Held {
    events: VecDeque<DiagnosticEvent>,
    ids: HashSet<EventId>,
}

impl Default for MemoryJournal {
    fn default() -> Self {
        Self::with_capacity(100_000)
    }
}

impl MemoryJournal {
    /// A journal holding at most `capacity` events.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Held::default()),
            capacity,
            dropped: AtomicU64::new(0),
        }
    }

    /// A copy of every event held, in recording order.
    pub fn events(&self) -> Vec<DiagnosticEvent> {
        self.lock().events.iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(held: &mut Held, capacity: usize, dropped: &AtomicU64, event: DiagnosticEvent) {
        if held.events.len() >= capacity {
            if !held.ids.contains(&event.id) {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
        } else if held.ids.insert(event.id) {
            // One hash lookup: `insert` is false for an id already held, which is skipped.
            held.events.push_back(event);
        }
    }

    /// The events `keep` selects, in journal order (time, then id).
    fn select(&self, keep: impl Fn(&DiagnosticEvent) -> bool) -> Vec<DiagnosticEvent> {
        let mut found: Vec<DiagnosticEvent> = self.lock().events.iter().filter(|e| keep(e)).cloned().collect();
        found.sort_by_key(EventPosition::of);
        found
    }
}

impl DiagnosticSink for MemoryJournal {
    fn record(&self, event: DiagnosticEvent) {
        Self::push(&mut self.lock(), self.capacity, &self.dropped, event);
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Journal for MemoryJournal {
    /// Moves the batch's events in (nothing is copied) and leaves `batch` empty.
    async fn append(&self, batch: &mut Vec<DiagnosticEvent>) -> Result<(), StoreError> {
        let mut held = self.lock();
        for event in batch.drain(..) {
            Self::push(&mut held, self.capacity, &self.dropped, event);
        }
        Ok(())
    }

    async fn by_request(&self, query: &RequestQuery) -> Result<Vec<DiagnosticEvent>, StoreError> {
        let mut found = self.select(|e| query.matches(e));
        found.truncate(query.limit);
        Ok(found)
    }

    async fn timeline(&self, query: &TimelineQuery) -> Result<Vec<DiagnosticEvent>, StoreError> {
        let mut found = self.select(|e| query.matches(e));
        found.truncate(query.limit);
        Ok(found)
    }

    async fn purge(&self, org: OrgId, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut held = self.lock();
        let Held { events, ids } = &mut *held;
        let mut purged = 0;
        events.retain(|e| {
            let keep = !(e.org == Some(org) && e.at < before);
            if !keep {
                ids.remove(&e.id);
                purged += 1;
            }
            keep
        });
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_core::context::{Principal, RequestContext, ServiceName};
    use portal_core::diagnostics::EventKind;
    use portal_core::ids::SequentialIds;
    use portal_core::time::ManualClock;
    use time::OffsetDateTime;

    fn event(clock: &ManualClock, ids: &SequentialIds) -> DiagnosticEvent {
        let ctx = RequestContext::builder(Principal::Service(ServiceName::new("t").unwrap())).build(clock, ids);
        DiagnosticEvent::new(&ctx, EventKind::Query, "test.read")
    }

    #[test]
    fn a_full_journal_drops_and_counts() {
        let (clock, ids) = (ManualClock::new(OffsetDateTime::UNIX_EPOCH), SequentialIds::default());
        let journal = MemoryJournal::with_capacity(2);
        for _ in 0..5 {
            journal.record(event(&clock, &ids));
        }
        assert_eq!(journal.events().len(), 2);
        assert_eq!(journal.dropped(), 3);
    }

    #[test]
    fn fan_out_reaches_every_sink_and_sums_drops() {
        let (clock, ids) = (ManualClock::new(OffsetDateTime::UNIX_EPOCH), SequentialIds::default());
        let a = Arc::new(MemoryJournal::with_capacity(1));
        let b = Arc::new(MemoryJournal::default());
        let fan = FanOutSink::new(vec![a.clone(), b.clone(), Arc::new(TracingSink)]);
        fan.record(event(&clock, &ids));
        fan.record(event(&clock, &ids));
        assert_eq!(a.events().len(), 1);
        assert_eq!(b.events().len(), 2);
        assert_eq!(fan.dropped(), 1);
    }

    #[tokio::test]
    async fn by_request_finds_only_that_request() {
        let (clock, ids) = (ManualClock::new(OffsetDateTime::UNIX_EPOCH), SequentialIds::default());
        let journal = MemoryJournal::default();
        let first = event(&clock, &ids);
        journal.record(first.clone());
        journal.record(event(&clock, &ids));
        let found = journal
            .by_request(&RequestQuery::first(first.request_id, 10))
            .await
            .unwrap();
        assert_eq!(found, vec![first]);
    }
}
