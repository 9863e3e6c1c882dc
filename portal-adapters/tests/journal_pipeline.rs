//! The recording pipeline: the buffered journal sink (never blocks, counts and reports
//! drops, flushes, survives a failing journal), the flushing journal its readers read
//! through, and the tracing layer that files the host's spans and events under the
//! request id.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code asserts")]

use std::sync::Arc;
use std::time::Duration;

use portal_adapters::observability::{BufferConfig, BufferedJournalSink, FlushingJournal, JournalLayer, MemoryJournal};
use portal_core::context::{Principal, RequestContext, ServiceName};
use portal_core::diagnostics::{
    DeferredDetail, DiagnosticEvent, DiagnosticSink, EventKind, Journal, MockJournal, Outcome, RequestQuery,
};
use portal_core::ids::{OrgId, RandomIds, RequestId};
use portal_core::store::StoreError;
use portal_core::time::ManualClock;
use time::macros::datetime;
use tracing_subscriber::prelude::*;

fn event() -> DiagnosticEvent {
    let clock = ManualClock::new(datetime!(2030-01-01 00:00 UTC));
    let ctx = RequestContext::builder(Principal::Service(ServiceName::new("t").unwrap()))
        .build(&clock, &RandomIds::default());
    DiagnosticEvent::new(&ctx, EventKind::Query, "test.read")
}

#[tokio::test]
async fn recorded_events_reach_the_journal_at_flush() {
    let journal = Arc::new(MemoryJournal::default());
    let (sink, writer) = BufferedJournalSink::spawn(journal.clone(), BufferConfig::default());
    let events: Vec<DiagnosticEvent> = (0..1200).map(|_| event()).collect();
    for e in &events {
        sink.record(e.clone());
    }
    writer.flush().await;
    assert_eq!(journal.events(), events, "every event, in recording order");
    assert_eq!(sink.dropped(), 0);
    writer.shutdown().await;
    sink.record(event());
    assert_eq!(sink.dropped(), 1, "after shutdown, events are dropped and counted");
}

/// Waits (up to two seconds) until `journal` holds `count` events, without a flush.
async fn until_written(journal: &MemoryJournal, count: usize) -> Vec<DiagnosticEvent> {
    for _ in 0..200 {
        let events = journal.events();
        if events.len() >= count {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    journal.events()
}

#[tokio::test]
async fn a_deferred_detail_is_built_by_the_writer_and_journaled_whole() {
    let journal = Arc::new(MemoryJournal::default());
    let (sink, writer) = BufferedJournalSink::spawn(journal.clone(), BufferConfig::default());
    let base = event();
    let rows = 3;
    let expected = DeferredDetail::new("test.read.v1", move || serde_json::json!({ "rows": rows })).apply(base.clone());
    sink.record_deferred(
        base,
        DeferredDetail::new("test.read.v1", move || serde_json::json!({ "rows": rows })),
    );
    writer.flush().await;
    assert_eq!(journal.events(), vec![expected]);
    assert_eq!(journal.events()[0].detail["rows"], 3);
    writer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_writer_is_woken_by_the_next_event() {
    let journal = Arc::new(MemoryJournal::default());
    let (sink, writer) = BufferedJournalSink::spawn(journal.clone(), BufferConfig::default());
    sink.record(event());
    assert_eq!(until_written(&journal, 1).await.len(), 1, "written without a flush");
    // Long past the linger: the writer found the queue empty and waits for a wake-up.
    tokio::time::sleep(Duration::from_millis(50)).await;
    sink.record(event());
    assert_eq!(
        until_written(&journal, 2).await.len(),
        2,
        "the event after a pause wakes the writer"
    );
    writer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_keeps_writing_when_its_handle_is_dropped() {
    let journal = Arc::new(MemoryJournal::default());
    let (sink, writer) = BufferedJournalSink::spawn(journal.clone(), BufferConfig::default());
    drop(writer);
    for _ in 0..3 {
        sink.record(event());
    }
    assert_eq!(until_written(&journal, 3).await.len(), 3);
    assert_eq!(sink.dropped(), 0);
}

/// A journal that blocks until released, so the buffer fills.
struct Gate {
    inner: MemoryJournal,
    open: tokio::sync::Semaphore,
}

#[async_trait::async_trait]
impl Journal for Gate {
    async fn append(&self, batch: &mut Vec<DiagnosticEvent>) -> Result<(), StoreError> {
        let _permit = self.open.acquire().await.unwrap();
        self.inner.append(batch).await
    }
    async fn by_request(
        &self,
        query: &portal_core::diagnostics::RequestQuery,
    ) -> Result<Vec<DiagnosticEvent>, StoreError> {
        self.inner.by_request(query).await
    }
    async fn timeline(
        &self,
        query: &portal_core::diagnostics::TimelineQuery,
    ) -> Result<Vec<DiagnosticEvent>, StoreError> {
        self.inner.timeline(query).await
    }
    async fn purge(&self, org: OrgId, before: time::OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.purge(org, before).await
    }
}

#[tokio::test]
async fn a_full_buffer_drops_without_blocking_and_reports_the_drops() {
    let gate = Arc::new(Gate {
        inner: MemoryJournal::default(),
        open: tokio::sync::Semaphore::new(0),
    });
    let config = BufferConfig {
        capacity: 4,
        batch: 2,
        report_every: Duration::from_secs(3600),
        linger: Duration::ZERO,
    };
    let (sink, writer) = BufferedJournalSink::spawn(gate.clone(), config);
    // Let the writer take its first batch and block in the journal.
    sink.record(event());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    for _ in 0..20 {
        sink.record(event());
    }
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "recording never waits on the journal"
    );
    assert_eq!(sink.dropped(), 20 - 4, "four fit in the buffer, the rest are counted");
    gate.open.add_permits(1000);
    writer.flush().await;
    let events = gate.inner.events();
    let report = events
        .iter()
        .find(|e| e.name == "diagnostics.dropped")
        .expect("the drops are reported in the journal");
    assert_eq!(report.kind, EventKind::Diagnostics);
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(report.detail["dropped"], 16);
    assert_eq!(report.detail["total"], 16);
    assert_eq!(events.len(), 1 + 4 + 1, "the first, the four buffered, and the report");
}

#[tokio::test]
async fn a_failing_journal_counts_its_events_as_lost() {
    let mut journal = MockJournal::new();
    journal.expect_append().returning(|events| {
        if events.iter().any(|e| e.name == "diagnostics.dropped") {
            events.clear();
            Ok(())
        } else {
            Err(StoreError::Backend {
                backend: "test",
                source: "disk full".into(),
            })
        }
    });
    let (sink, writer) = BufferedJournalSink::spawn(Arc::new(journal), BufferConfig::default());
    for _ in 0..3 {
        sink.record(event());
    }
    writer.flush().await;
    assert_eq!(sink.dropped(), 3);
    assert_eq!(writer.dropped(), 3);
}

/// A journal whose first append fails as unavailable (nothing stored), then works.
struct FlakyOnce {
    inner: MemoryJournal,
    failed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Journal for FlakyOnce {
    async fn append(&self, batch: &mut Vec<DiagnosticEvent>) -> Result<(), StoreError> {
        if !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable {
                backend: "test",
                source: "connection reset".into(),
            });
        }
        self.inner.append(batch).await
    }
    async fn by_request(
        &self,
        query: &portal_core::diagnostics::RequestQuery,
    ) -> Result<Vec<DiagnosticEvent>, StoreError> {
        self.inner.by_request(query).await
    }
    async fn timeline(
        &self,
        query: &portal_core::diagnostics::TimelineQuery,
    ) -> Result<Vec<DiagnosticEvent>, StoreError> {
        self.inner.timeline(query).await
    }
    async fn purge(&self, org: OrgId, before: time::OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.purge(org, before).await
    }
}

#[tokio::test]
async fn a_batch_refused_as_unavailable_is_retried_whole() {
    let journal = Arc::new(FlakyOnce {
        inner: MemoryJournal::default(),
        failed: std::sync::atomic::AtomicBool::new(false),
    });
    let (sink, writer) = BufferedJournalSink::spawn(journal.clone(), BufferConfig::default());
    let events: Vec<DiagnosticEvent> = (0..3).map(|_| event()).collect();
    for e in &events {
        sink.record(e.clone());
    }
    writer.flush().await;
    assert_eq!(
        journal.inner.events(),
        events,
        "the failed append left the batch whole and the retry wrote every event"
    );
    assert_eq!(sink.dropped(), 0, "nothing was lost");
    writer.shutdown().await;
}

#[tokio::test]
async fn the_layer_files_host_events_under_the_request_id() {
    let journal = Arc::new(MemoryJournal::default());
    let subscriber = tracing_subscriber::registry().with(JournalLayer::new(journal.clone()));
    let request = RequestId::generate(&RandomIds::default(), time::OffsetDateTime::now_utc());
    let org = OrgId::generate(&RandomIds::default(), time::OffsetDateTime::now_utc());
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("outside any request");
        let span = tracing::info_span!("checkout", request_id = %request, org = %org, cart = 7);
        let _entered = span.enter();
        tracing::info!(items = 3, password = "hunter2", "loaded the cart");
        {
            let child = tracing::debug_span!("price");
            let _entered = child.enter();
            tracing::error!(error = "tax service timed out", "pricing failed");
        }
        tracing::info!(target: "portal", "the library's own event is not filed twice");
    });
    let events = journal
        .by_request(&portal_core::diagnostics::RequestQuery::first(request, 100))
        .await
        .unwrap();
    let host: Vec<&DiagnosticEvent> = events.iter().filter(|e| e.kind == EventKind::Host).collect();
    assert_eq!(host.len(), 2, "{events:?}");
    assert_eq!(host[0].detail["message"], "loaded the cart");
    assert_eq!(host[0].detail["items"], 3);
    assert_eq!(
        host[0].detail["password"], "[redacted]",
        "secret-named fields are redacted"
    );
    assert_eq!(host[0].org, Some(org));
    assert_eq!(host[1].outcome, Outcome::Failed, "an error event is a failure");
    assert_eq!(host[1].detail["error"], "tax service timed out");
    let span = events
        .iter()
        .find(|e| e.kind == EventKind::Request)
        .expect("the request's span is journaled when it closes");
    assert_eq!(span.name, "checkout");
    assert_eq!(span.detail["cart"], 7);
    assert!(span.duration.is_some());
    assert_eq!(journal.events().len(), 3, "nothing outside the request span was filed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushing_journal_reads_what_was_recorded_before_the_read() {
    let journal = Arc::new(MemoryJournal::default());
    let config = BufferConfig {
        linger: Duration::from_secs(30),
        ..BufferConfig::default()
    };
    let (sink, writer) = BufferedJournalSink::spawn(journal.clone(), config);
    let read = FlushingJournal::new(journal.clone(), writer.flusher());
    // Once the writer has gone idle (its drop report's first tick, which comes at once, is
    // past), the first event wakes it; it writes the event and then lingers 30 s.
    tokio::time::sleep(Duration::from_millis(100)).await;
    sink.record(event());
    assert_eq!(until_written(&journal, 1).await.len(), 1);
    // The next one waits out the linger in the queue: the journal has not got it...
    let next = event();
    sink.record(next.clone());
    let query = RequestQuery::first(next.request_id, 10);
    assert!(
        journal.by_request(&query).await.unwrap().is_empty(),
        "the writer lingers: without a flush the read misses the event"
    );
    // ...and a read through the flushing journal finds it.
    assert_eq!(read.by_request(&query).await.unwrap(), vec![next.clone()]);
    // With the writer's handle gone the flusher still reaches the writer, which goes on
    // while a sink or a flusher is left: a read still finds what was just recorded, and
    // still answers once every sink is gone (the flusher keeps the writer running).
    let last = event();
    drop(writer);
    sink.record(last.clone());
    let query = RequestQuery::first(last.request_id, 10);
    assert_eq!(read.by_request(&query).await.unwrap(), vec![last]);
    drop(sink);
    assert_eq!(read.by_request(&query).await.unwrap().len(), 1);
}

/// Once the writer has shut down, a flushing read does not wait for it: the flush finds no
/// writer and the read answers from the journal at once, with what the shutdown wrote.
#[tokio::test]
async fn a_flushing_read_after_the_writer_shut_down_answers_at_once() {
    let journal = Arc::new(MemoryJournal::default());
    let config = BufferConfig {
        linger: Duration::from_secs(30),
        ..BufferConfig::default()
    };
    let (sink, writer) = BufferedJournalSink::spawn(journal.clone(), config);
    let read = FlushingJournal::new(journal.clone(), writer.flusher());
    let recorded = event();
    sink.record(recorded.clone());
    writer.shutdown().await;
    let query = RequestQuery::first(recorded.request_id, 10);
    let answer = tokio::time::timeout(Duration::from_secs(5), read.by_request(&query))
        .await
        .expect("the read does not wait for a stopped writer")
        .unwrap();
    assert_eq!(answer, vec![recorded], "the shutdown wrote what was queued");
    // What is recorded after the shutdown is lost, and the read still answers at once.
    let late = event();
    sink.record(late.clone());
    let query = RequestQuery::first(late.request_id, 10);
    let answer = tokio::time::timeout(Duration::from_secs(5), read.by_request(&query))
        .await
        .expect("the read does not wait for a stopped writer")
        .unwrap();
    assert!(answer.is_empty());
}
