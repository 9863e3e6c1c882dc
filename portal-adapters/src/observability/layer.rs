//! `JournalLayer`: an opt-in `tracing` layer that files the host's own spans and events
//! under the request id, so the host's logs join the request's timeline.
//!
//! The host opens a span carrying a `request_id` field (the string form `req_…`, as
//! [`RequestContext::request_id`](portal_core::RequestContext::request_id) displays it),
//! optionally with `org` and `actor`. Every event inside that span or its children
//! becomes a [`EventKind::Host`] diagnostic event with the event's fields as detail, and
//! the span itself, when it closes, a [`EventKind::Request`] event with its duration.
//! Events outside such a span, and the library's own events (target `portal`), are
//! ignored. Fields whose names suggest a secret (`password`, `token`, `secret`,
//! `authorization`, `cookie`, `api_key`) are redacted.

use std::sync::Arc;
use std::time::Instant;

use portal_core::Principal;
use portal_core::diagnostics::{DiagnosticEvent, DiagnosticSink, EventKind, Outcome, schemas};
use portal_core::ids::{OrgId, RequestId};
use portal_core::time::{Clock, SystemClock};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The `tracing` layer that journals the host's spans and events by request id.
///
/// ```no_run
/// use std::sync::Arc;
/// use portal_adapters::observability::{JournalLayer, MemoryJournal};
/// use tracing_subscriber::prelude::*;
///
/// let journal = Arc::new(MemoryJournal::default());
/// tracing_subscriber::registry().with(JournalLayer::new(journal)).init();
/// let span = tracing::info_span!("handle", request_id = "req_01jd5x8y6kf3w9q2m7c4t0vbnr");
/// let _entered = span.enter();
/// tracing::info!(rows = 3, "loaded the cart");
/// ```
#[derive(Clone)]
pub struct JournalLayer {
    sink: Arc<dyn DiagnosticSink>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for JournalLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalLayer").finish_non_exhaustive()
    }
}

impl JournalLayer {
    /// A layer recording into `sink` (usually a `BufferedJournalSink`), with the system clock.
    pub fn new(sink: Arc<dyn DiagnosticSink>) -> Self {
        Self {
            sink,
            clock: Arc::new(SystemClock),
        }
    }

    /// The same layer with another clock (the portal's, in tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// What a span under a request knows: kept in the span's extensions.
#[derive(Debug, Clone)]
struct RequestScope {
    request_id: RequestId,
    org: Option<OrgId>,
    actor: Option<Principal>,
    /// Whether this span carries the request id itself (and is journaled when it closes).
    owner: bool,
    opened_at: OffsetDateTime,
    opened: Instant,
    fields: Map<String, Value>,
}

/// Collects fields as JSON, redacting secret-named ones.
#[derive(Default)]
struct Fields(Map<String, Value>);

fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "authorization",
        "cookie",
        "api_key",
        "apikey",
    ]
    .iter()
    .any(|s| name.contains(s))
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        let value = if is_secret(field.name()) {
            Value::from("[redacted]")
        } else {
            value
        };
        self.0.insert(field.name().to_owned(), value);
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
}

impl<S> Layer<S> for JournalLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let own = fields
            .text("request_id")
            .and_then(|text| text.parse::<RequestId>().ok());
        let scope = match own {
            Some(request_id) => Some(RequestScope {
                request_id,
                org: fields.text("org").and_then(|o| o.parse().ok()),
                actor: fields.text("actor").and_then(|a| a.parse().ok()),
                owner: true,
                opened_at: self.clock.now(),
                opened: Instant::now(),
                fields: fields.0,
            }),
            None => span.parent().and_then(|parent| {
                parent.extensions().get::<RequestScope>().map(|scope| RequestScope {
                    owner: false,
                    fields: Map::new(),
                    ..scope.clone()
                })
            }),
        };
        if let Some(scope) = scope {
            span.extensions_mut().insert(scope);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(scope) = extensions.get_mut::<RequestScope>().filter(|s| s.owner) {
            let mut fields = Fields::default();
            values.record(&mut fields);
            if let Some(org) = fields.text("org").and_then(|o| o.parse().ok()) {
                scope.org = Some(org);
            }
            scope.fields.extend(fields.0);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        if metadata.target() == "portal" {
            return;
        }
        let Some(scope) = ctx
            .event_scope(event)
            .and_then(|mut spans| spans.find_map(|span| span.extensions().get::<RequestScope>().cloned()))
        else {
            return;
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut detail = Map::new();
        detail.insert("level".to_owned(), Value::from(metadata.level().as_str()));
        detail.insert("target".to_owned(), Value::from(metadata.target()));
        detail.extend(fields.0);
        let mut journaled =
            DiagnosticEvent::detached(self.clock.now(), scope.request_id, EventKind::Host, metadata.target())
                .with_detail(schemas::HOST_EVENT_V1, Value::Object(detail));
        journaled.org = scope.org;
        journaled.actor = scope.actor;
        if *metadata.level() == Level::ERROR {
            journaled.outcome = Outcome::Failed;
        }
        self.sink.record(journaled);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(scope) = span.extensions_mut().remove::<RequestScope>().filter(|s| s.owner) else {
            return;
        };
        let mut detail = Map::new();
        detail.insert("span".to_owned(), Value::from(span.name()));
        detail.extend(scope.fields);
        let mut journaled =
            DiagnosticEvent::detached(scope.opened_at, scope.request_id, EventKind::Request, span.name())
                .with_duration(scope.opened.elapsed())
                .with_detail(schemas::HOST_SPAN_V1, Value::Object(detail));
        journaled.org = scope.org;
        journaled.actor = scope.actor;
        self.sink.record(journaled);
    }
}
