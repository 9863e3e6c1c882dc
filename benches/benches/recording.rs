//! Diagnostics: what recording adds to a request, through the buffered journal sink.
//!
//! Run with `cargo bench -p portal-benches --bench recording -- --noplot`. Needs no
//! database: the buffered sink's writer appends to a [`MemoryJournal`] (purged every
//! 50,000 events so memory stays bounded; the purge runs on the writer, off the request).
//!
//! - **per request**: `TenancyService::get_org` on memory stores, which records two events
//!   (the `access.check` decision and the `tenancy.org.read` query), with the buffered
//!   journal sink against the same request with a sink that discards. Rounds of 20,000
//!   calls alternate between the two portals in one process; the figures are medians of
//!   the rounds. The buffer holds 100,000 events, so that a round never drops; between
//!   rounds the writer is flushed (outside the timing). The program also reports the
//!   on-CPU time of the calling thread and of the whole process (writer included), read
//!   from `/proc`, which a loaded machine disturbs less than wall-clock.
//! - **per event**: `record(event.clone())` of the real `access.check` event of such a
//!   request, in rounds of 4,000 (well under the buffer's capacity, so nothing is dropped),
//!   beside the clone alone; and a flood of 1,000,000 records with no pause, which the
//!   writer cannot keep up with: the drops are counted, the caller never waits.
//!
//! `PORTAL_BENCH_CAPACITY=N` sets the buffer's capacity (100,000 by default); the events
//! dropped in the whole run, criterion's included, are printed at the end.
//!
//! With `PORTAL_BENCH_RECORDING=buffered` (or `discard`) the program only runs 20,000
//! `get_org` calls with that sink, for `valgrind --tool=callgrind`; with
//! `PORTAL_BENCH_RECORDING=none` it runs the same set-up without the calls, to subtract.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "a benchmark program fails loudly and prints its report"
)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::Criterion;
use portal_adapters::memory::InMemoryTenancyStore;
use portal_adapters::observability::{BufferConfig, BufferedJournalSink, JournalWriter, MemoryJournal};
use portal_core::Portal;
use portal_core::context::{Principal, ServiceName};
use portal_core::diagnostics::{DeferredDetail, DiagnosticEvent, DiagnosticSink, Journal, TimelineQuery};
use portal_core::ids::OrgId;
use portal_core::store::StoreError;
use portal_core::tenancy::{NewOrg, NewUser};
use time::OffsetDateTime;

/// Calls per timed round of `get_org`.
const CALLS: u32 = 20_000;
/// Rounds per portal; the report gives medians.
const ROUNDS: usize = 7;

/// A sink that drops every event, and never builds a deferred detail: the request
/// without recording's cost.
struct Discard;

impl DiagnosticSink for Discard {
    fn record(&self, _event: DiagnosticEvent) {}
    fn record_deferred(&self, _event: DiagnosticEvent, _detail: DeferredDetail) {}
}

/// A sink that drops every event after building its detail's JSON on the request: the
/// baseline of the earlier runs, in which every detail was built on the request.
struct DiscardBuilt;

impl DiagnosticSink for DiscardBuilt {
    fn record(&self, event: DiagnosticEvent) {
        black_box(event.detail.value());
    }

    fn record_deferred(&self, event: DiagnosticEvent, detail: DeferredDetail) {
        self.record(detail.apply(event));
    }
}

/// A sink that keeps the events it is given, to take a real request's events as samples.
#[derive(Default)]
struct Collect(Mutex<Vec<DiagnosticEvent>>);

impl DiagnosticSink for Collect {
    fn record(&self, event: DiagnosticEvent) {
        self.0.lock().unwrap().push(event);
    }
}

/// A [`MemoryJournal`] that purges its org's events every 50,000 appended events, so a
/// long run keeps writing without holding millions of events.
struct Rolling {
    inner: MemoryJournal,
    appended: AtomicU64,
    org: Mutex<Option<OrgId>>,
}

impl Rolling {
    fn new() -> Self {
        Self {
            inner: MemoryJournal::with_capacity(100_000),
            appended: AtomicU64::new(0),
            org: Mutex::new(None),
        }
    }
}

#[async_trait]
impl Journal for Rolling {
    async fn append(&self, batch: &mut Vec<DiagnosticEvent>) -> Result<(), StoreError> {
        let count = batch.len() as u64;
        self.inner.append(batch).await?;
        let before = self.appended.fetch_add(count, Ordering::Relaxed);
        if before / 50_000 != (before + count) / 50_000 {
            let org = *self.org.lock().unwrap();
            if let Some(org) = org {
                self.inner
                    .purge(org, OffsetDateTime::now_utc() + time::Duration::days(1))
                    .await?;
            }
        }
        Ok(())
    }
    async fn by_request(
        &self,
        query: &portal_core::diagnostics::RequestQuery,
    ) -> Result<Vec<DiagnosticEvent>, StoreError> {
        self.inner.by_request(query).await
    }
    async fn timeline(&self, query: &TimelineQuery) -> Result<Vec<DiagnosticEvent>, StoreError> {
        self.inner.timeline(query).await
    }
    async fn purge(&self, org: OrgId, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.purge(org, before).await
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A portal on memory stores recording into `sink`, and an org its owner reads.
async fn request_portal(sink: Arc<dyn DiagnosticSink>) -> (Portal, Principal, OrgId) {
    let portal = Portal::builder()
        .tenancy_store(Arc::new(InMemoryTenancyStore::new()))
        .diagnostics(sink)
        .build()
        .unwrap();
    let signup = Principal::Service(ServiceName::new("signup").unwrap());
    let owner = portal
        .tenancy()
        .create_user(
            &portal.context(signup).build(),
            NewUser {
                email: "owner@example.com".to_owned(),
                display_name: "Owner".to_owned(),
            },
        )
        .await
        .unwrap();
    let principal = Principal::User(owner.id);
    let org = portal
        .tenancy()
        .create_org(
            &portal.context(principal.clone()).build(),
            NewOrg {
                slug: "bench".to_owned(),
                name: "Bench".to_owned(),
                ..NewOrg::default()
            },
        )
        .await
        .unwrap();
    (portal, principal, org.id)
}

/// One portal under measurement.
struct Subject {
    portal: Portal,
    principal: Principal,
    org: OrgId,
}

impl Subject {
    async fn new(sink: Arc<dyn DiagnosticSink>) -> Self {
        let (portal, principal, org) = request_portal(sink).await;
        Self { portal, principal, org }
    }

    async fn get_org(&self) {
        let ctx = self.portal.context(self.principal.clone()).build();
        black_box(self.portal.tenancy().get_org(&ctx, self.org).await.unwrap());
    }

    /// Nanoseconds per call over `calls` calls: wall-clock, on-CPU time of the calling
    /// thread, and on-CPU time of the whole process (the writer included).
    async fn round(&self, calls: u32) -> Round {
        let (thread, process) = (thread_cpu_ns(), process_cpu_ns());
        let started = Instant::now();
        for _ in 0..calls {
            self.get_org().await;
        }
        let per_call = |ns: u64| ns as f64 / f64::from(calls);
        Round {
            wall: started.elapsed().as_nanos() as f64 / f64::from(calls),
            thread: per_call(thread_cpu_ns() - thread),
            process: per_call(process_cpu_ns() - process),
        }
    }
}

/// One timed round, nanoseconds per call.
#[derive(Debug, Clone, Copy)]
struct Round {
    wall: f64,
    thread: f64,
    process: f64,
}

/// Nanoseconds the calling thread has run on a CPU (Linux `schedstat`; 0 elsewhere):
/// unlike wall-clock, it does not count the time the thread waited for a CPU while other
/// programs ran.
fn thread_cpu_ns() -> u64 {
    schedstat("/proc/thread-self/schedstat")
}

/// Nanoseconds all the process's threads have run on a CPU.
fn process_cpu_ns() -> u64 {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .map(|task| schedstat(&format!("{}/schedstat", task.path().display())))
                .sum()
        })
        .unwrap_or(0)
}

fn schedstat(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.split_whitespace().next().and_then(|ns| ns.parse().ok()))
        .unwrap_or(0)
}

/// The buffered sink over a rolling memory journal, its writer, and the journal.
fn buffered() -> (Arc<BufferedJournalSink>, JournalWriter, Arc<Rolling>) {
    let journal = Arc::new(Rolling::new());
    // Room for a whole round (40,000 events): in a loop of nothing but requests the writer
    // (which builds the deferred details, clones each event into the memory journal and
    // frees the originals) is slower than the requests, and a full buffer would drop
    // events, which is cheaper than keeping them and would flatter the figure.
    let config = BufferConfig {
        capacity: std::env::var("PORTAL_BENCH_CAPACITY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000),
        ..BufferConfig::default()
    };
    let (sink, writer) = BufferedJournalSink::spawn(journal.clone(), config);
    (Arc::new(sink), writer, journal)
}

fn median(mut figures: Vec<f64>) -> f64 {
    figures.sort_by(f64::total_cmp);
    figures[figures.len() / 2]
}

/// `PORTAL_BENCH_RECORDING=buffered|discard|none`: a fixed run for callgrind.
fn profile(rt: &tokio::runtime::Runtime, which: &str) {
    rt.block_on(async {
        let (sink, writer, journal): (Arc<dyn DiagnosticSink>, Option<JournalWriter>, Option<Arc<Rolling>>) =
            match which {
                "buffered" | "none" => {
                    let (sink, writer, journal) = buffered();
                    (sink, Some(writer), Some(journal))
                }
                "discard" => (Arc::new(Discard), None, None),
                "built" => (Arc::new(DiscardBuilt), None, None),
                other => panic!("PORTAL_BENCH_RECORDING={other}: buffered, discard, built or none"),
            };
        let subject = Subject::new(sink.clone()).await;
        if let Some(journal) = &journal {
            *journal.org.lock().unwrap() = Some(subject.org);
        }
        if which != "none" {
            black_box(subject.round(CALLS).await);
        }
        if let Some(writer) = writer {
            writer.shutdown().await;
        }
        println!("{which}: {CALLS} calls, dropped {}", sink.dropped());
        // Freeing the journal's events at exit is no part of a request.
        std::mem::forget(journal);
    });
}

fn main() {
    let rt = runtime();
    if let Ok(which) = std::env::var("PORTAL_BENCH_RECORDING") {
        profile(&rt, &which);
        return;
    }

    let (sink, writer, journal) = rt.block_on(async { buffered() });
    let with_journal = rt.block_on(Subject::new(sink.clone()));
    *journal.org.lock().unwrap() = Some(with_journal.org);
    let without = rt.block_on(Subject::new(Arc::new(Discard)));
    let built = rt.block_on(Subject::new(Arc::new(DiscardBuilt)));

    // The real events of one request, as samples.
    let collect = Arc::new(Collect::default());
    let sampled = rt.block_on(Subject::new(collect.clone()));
    collect.0.lock().unwrap().clear();
    rt.block_on(sampled.get_org());
    let sample = collect.0.lock().unwrap()[0].clone();
    assert_eq!(sample.name, "access.check");

    // Per request, alternating rounds.
    rt.block_on(async {
        with_journal.round(2_000).await;
        without.round(2_000).await;
        built.round(2_000).await;
    });
    rt.block_on(writer.flush());
    let mut buffered_rounds = Vec::new();
    let mut discard_rounds = Vec::new();
    let mut built_rounds = Vec::new();
    for _ in 0..ROUNDS {
        buffered_rounds.push(rt.block_on(with_journal.round(CALLS)));
        rt.block_on(writer.flush());
        discard_rounds.push(rt.block_on(without.round(CALLS)));
        built_rounds.push(rt.block_on(built.round(CALLS)));
    }
    println!(
        "get_org (2 events), ns per request, medians of {ROUNDS} rounds of {CALLS}; dropped {}",
        sink.dropped()
    );
    println!(
        "| measure | buffered journal sink | discarding sink | difference | discarding sink, details built | difference |\n|---|---:|---:|---:|---:|---:|"
    );
    for (name, of) in [
        ("wall-clock", (|r: &Round| r.wall) as fn(&Round) -> f64),
        ("on-CPU, request thread", |r: &Round| r.thread),
        ("on-CPU, whole process (writer included)", |r: &Round| r.process),
    ] {
        let b: Vec<f64> = buffered_rounds.iter().map(of).collect();
        let d: Vec<f64> = discard_rounds.iter().map(of).collect();
        let e: Vec<f64> = built_rounds.iter().map(of).collect();
        let vs_discard = b.iter().zip(&d).map(|(b, d)| b - d).collect();
        let vs_built = b.iter().zip(&e).map(|(b, e)| b - e).collect();
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            median(b.clone()),
            median(d),
            median(vs_discard),
            median(e),
            median(vs_built)
        );
    }
    for (name, rounds) in [
        ("buffered", &buffered_rounds),
        ("discard", &discard_rounds),
        ("built", &built_rounds),
    ] {
        println!(
            "  wall-clock rounds, {name}: {:.0?}",
            rounds.iter().map(|r| r.wall).collect::<Vec<_>>()
        );
    }

    // Per event, paced under the capacity.
    let mut record_ns = Vec::new();
    let mut clone_ns = Vec::new();
    for _ in 0..ROUNDS {
        let batch = 4_000u32;
        let started = Instant::now();
        for _ in 0..batch {
            sink.record(black_box(sample.clone()));
        }
        record_ns.push(started.elapsed().as_nanos() as f64 / f64::from(batch));
        rt.block_on(writer.flush());
        let started = Instant::now();
        for _ in 0..batch {
            black_box(sample.clone());
        }
        clone_ns.push(started.elapsed().as_nanos() as f64 / f64::from(batch));
    }
    println!(
        "record (clone + record), per event: {:.0} ns; the clone alone {:.0} ns (medians of {ROUNDS} rounds of 4,000); dropped {}",
        median(record_ns),
        median(clone_ns),
        sink.dropped()
    );

    // A flood: more than the writer can take.
    let before = sink.dropped();
    let rounds = 1_000_000u32;
    let started = Instant::now();
    for _ in 0..rounds {
        sink.record(black_box(sample.clone()));
    }
    let flood_ns = started.elapsed().as_nanos() as f64 / f64::from(rounds);
    rt.block_on(writer.flush());
    println!(
        "flood: {flood_ns:.0} ns per record (clone included); dropped and counted {} of {rounds}",
        sink.dropped() - before
    );

    let mut c = Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    c.bench_function("recording/get_org/buffered", |bench| {
        bench.to_async(&rt).iter(|| with_journal.get_org())
    });
    c.bench_function("recording/get_org/discard", |bench| {
        bench.to_async(&rt).iter(|| without.get_org())
    });
    c.bench_function("recording/get_org/discard_built", |bench| {
        bench.to_async(&rt).iter(|| built.get_org())
    });
    c.bench_function("recording/record", |bench| {
        bench.iter(|| sink.record(black_box(sample.clone())))
    });
    c.final_summary();
    println!("dropped in all: {}", sink.dropped());
    rt.block_on(writer.shutdown());
}
