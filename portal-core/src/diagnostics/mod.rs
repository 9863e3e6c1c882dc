//! Diagnostics: one structured event per request step, keyed by request id, org and actor.
//!
//! Services record a [`DiagnosticEvent`] through the [`DiagnosticSink`] port for every
//! operation, denial and failure. Sinks in `portal-adapters` emit them as `tracing`
//! events or keep them in a queryable [`Journal`]; the [`TriageService`](crate::triage::TriageService) reads the journal
//! back for support: one request, a timeline, an explanation of a failure, a support bundle.
//!
//! Each event's `detail` has a versioned schema named in `schema`; [`schemas`] lists them.

mod decision;
mod detail;
mod journal;
pub mod schemas;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::context::{ClientRequestId, Principal, RequestContext};
use crate::error::{ErrorCode, PortalError};
use crate::ids::{EventId, IdGenerator, OrgId, RandomIds, RequestId};

pub(crate) use decision::DecisionDetail;
#[cfg(test)]
pub(crate) use decision::INLINE_TEXT;
pub use detail::Detail;
#[cfg(feature = "mock")]
pub use journal::MockJournal;
pub use journal::{EventPosition, Journal, RequestQuery, TimelineQuery};

/// What kind of step an event records.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A request as a whole, at the host's edge.
    Request,
    /// A sign-in, session or API key event.
    Authentication,
    /// An access decision.
    PermissionDecision,
    /// A read of portal data (an org, a member list), recorded for the audit trail.
    Query,
    /// A change to organizations, users, memberships or invitations.
    TenancyChange,
    /// A workflow transition.
    WorkflowTransition,
    /// A store failing.
    StorageFault,
    /// A span or event of the host's own code, filed under the request by the tracing
    /// layer of `portal-adapters`.
    Host,
    /// The diagnostics pipeline itself, such as a report of dropped events.
    Diagnostics,
}

impl EventKind {
    /// The kind's name as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Request => "request",
            EventKind::Authentication => "authentication",
            EventKind::PermissionDecision => "permission_decision",
            EventKind::Query => "query",
            EventKind::TenancyChange => "tenancy_change",
            EventKind::WorkflowTransition => "workflow_transition",
            EventKind::StorageFault => "storage_fault",
            EventKind::Host => "host",
            EventKind::Diagnostics => "diagnostics",
        }
    }

    /// Every kind, in declaration order.
    pub const ALL: &'static [EventKind] = &[
        EventKind::Request,
        EventKind::Authentication,
        EventKind::PermissionDecision,
        EventKind::Query,
        EventKind::TenancyChange,
        EventKind::WorkflowTransition,
        EventKind::StorageFault,
        EventKind::Host,
        EventKind::Diagnostics,
    ];

    /// Parses the stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|kind| kind.as_str() == text)
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It did what was asked.
    Succeeded,
    /// Access was denied.
    Denied,
    /// The input or the state of things made it impossible (a validation error, a
    /// conflict, an expired invitation).
    Rejected,
    /// Something failed (storage, a bug).
    Failed,
}

impl Outcome {
    /// The outcome's name as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Denied => "denied",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
        }
    }

    /// Parses the stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [Outcome::Succeeded, Outcome::Denied, Outcome::Rejected, Outcome::Failed]
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
    }

    /// The outcome an error code stands for.
    pub fn of_code(code: ErrorCode) -> Self {
        match code {
            ErrorCode::AccessDenied => Outcome::Denied,
            code if code.http_status() >= 500 => Outcome::Failed,
            _ => Outcome::Rejected,
        }
    }
}

/// One recorded step.
///
/// `detail` is built by the library from typed values that never hold secrets (tokens
/// and passwords are `secrecy` types and are not `Serialize`); its shape is named by
/// `schema`, such as `tenancy.member.v1`, and versioned (see [`schemas`]).
///
/// Journals store the JSON of [`write_json`](Self::write_json), which is its `Serialize`
/// written without the generic path (a property test holds the two to the same bytes: a
/// field added here is written there too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnosticEvent {
    /// The event's own id; it sorts by the time it was made, and orders events of one
    /// instant in a journal.
    pub id: EventId,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The request it belongs to.
    pub request_id: RequestId,
    /// The id the client gave the request, if it sent a valid one: recorded, never a key
    /// (see [`ClientRequestId`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<ClientRequestId>,
    /// The caller's W3C trace id, if it sent one.
    pub trace_id: Option<String>,
    /// The org it happened in, if any.
    pub org: Option<OrgId>,
    /// Whose authority was used.
    pub actor: Option<Principal>,
    /// Who actually acted, when support staff act for a customer.
    pub real_actor: Option<Principal>,
    /// What kind of step.
    pub kind: EventKind,
    /// The operation, such as `tenancy.member.remove` (borrowed when it is a constant, as
    /// the library's names are, so recording one allocates nothing for it).
    pub name: Cow<'static, str>,
    /// How it ended.
    pub outcome: Outcome,
    /// The error code, if it did not succeed.
    pub code: Option<ErrorCode>,
    /// How long it took.
    pub duration: Option<Duration>,
    /// The versioned schema of `detail` (borrowed when it is a constant).
    pub schema: Cow<'static, str>,
    /// Structured detail, free of secrets: JSON to whoever reads it (it dereferences to a
    /// [`serde_json::Value`]), kept as its typed value until then when it was made with
    /// [`Detail::deferred`].
    pub detail: Detail,
}

impl DiagnosticEvent {
    /// An event for a step of the request `ctx`, at the request's time, succeeded, with
    /// no detail; set the rest with the `with_*` methods.
    pub fn new(ctx: &RequestContext, kind: EventKind, name: impl Into<Cow<'static, str>>) -> Self {
        Self {
            id: EventId::generate(&*EVENT_IDS, ctx.now()),
            at: ctx.now(),
            request_id: ctx.request_id(),
            client_request_id: ctx.client_request_id().cloned(),
            trace_id: ctx.trace().map(|t| t.trace_id()),
            org: ctx.org(),
            actor: Some(ctx.principal().clone()),
            real_actor: ctx.real_actor().cloned(),
            kind,
            name: name.into(),
            outcome: Outcome::Succeeded,
            code: None,
            duration: None,
            schema: Cow::Borrowed(""),
            detail: Detail::null(),
        }
    }

    /// An event outside any request context (the diagnostics pipeline's own reports, the
    /// host's logs): at `at`, under `request_id`, with no org or actor, succeeded.
    pub fn detached(
        at: OffsetDateTime,
        request_id: RequestId,
        kind: EventKind,
        name: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            id: EventId::generate(&*EVENT_IDS, at),
            at,
            request_id,
            client_request_id: None,
            trace_id: None,
            org: None,
            actor: None,
            real_actor: None,
            kind,
            name: name.into(),
            outcome: Outcome::Succeeded,
            code: None,
            duration: None,
            schema: Cow::Borrowed(""),
            detail: Detail::null(),
        }
    }

    /// The same event under a new id, for a second event derived from a first.
    pub fn with_new_id(mut self) -> Self {
        self.id = EventId::generate(&*EVENT_IDS, self.at);
        self
    }

    /// Sets the org.
    pub fn with_org(mut self, org: OrgId) -> Self {
        self.org = Some(org);
        self
    }

    /// Sets the outcome and code from an error code.
    pub fn with_error(mut self, code: ErrorCode) -> Self {
        self.outcome = Outcome::of_code(code);
        self.code = Some(code);
        self
    }

    /// Sets the duration.
    pub fn with_duration(mut self, duration: Duration) -> Self {
        self.duration = Some(duration);
        self
    }

    /// Sets the detail (a [`serde_json::Value`] or a [`Detail`]) and its schema.
    pub fn with_detail(mut self, schema: impl Into<Cow<'static, str>>, detail: impl Into<Detail>) -> Self {
        self.schema = schema.into();
        self.detail = detail.into();
        self
    }

    /// Appends the event's JSON to `out`: the same JSON as its [`Serialize`] (the same
    /// keys, in the same order, with the same values), which a journal stores and
    /// [`Deserialize`] reads back. Written field by field into `out` by code made for each
    /// field's type: no intermediate `String` for the time, and a [`Detail::deferred`]
    /// written by code made for its type rather than through an erased serializer.
    ///
    /// ```
    /// use portal_core::diagnostics::{DiagnosticEvent, EventKind};
    /// use portal_core::ids::{RandomIds, RequestId};
    ///
    /// let at = time::OffsetDateTime::now_utc();
    /// let event = DiagnosticEvent::detached(at, RequestId::generate(&RandomIds::default(), at), EventKind::Host, "job.run")
    ///     .with_detail("job.run.v1", serde_json::json!({ "rows": 3 }));
    /// let mut out = Vec::new();
    /// event.write_json(&mut out)?;
    /// let read: serde_json::Value = serde_json::from_slice(&out)?;
    /// assert_eq!(read, serde_json::to_value(&event)?);
    /// assert_eq!(serde_json::from_slice::<DiagnosticEvent>(&out)?, event);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As serializing the event fails: a time whose year is outside 0 to 9,999 (RFC 3339
    /// cannot write it), or a deferred detail that is not JSON (a map with keys that are not
    /// strings). `out` then holds part of the event.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        out.extend_from_slice(b"{\"id\":");
        serde_json::to_writer(&mut *out, &self.id)?;
        // RFC 3339 is digits, `-`, `:`, `.`, `T`, `Z` and `+`: nothing to escape.
        out.extend_from_slice(b",\"at\":\"");
        self.at
            .format_into(&mut *out, &time::format_description::well_known::Rfc3339)
            .map_err(<serde_json::Error as serde::ser::Error>::custom)?;
        out.extend_from_slice(b"\",\"request_id\":");
        serde_json::to_writer(&mut *out, &self.request_id)?;
        if let Some(client) = &self.client_request_id {
            out.extend_from_slice(b",\"client_request_id\":");
            serde_json::to_writer(&mut *out, client.as_str())?;
        }
        out.extend_from_slice(b",\"trace_id\":");
        serde_json::to_writer(&mut *out, &self.trace_id)?;
        out.extend_from_slice(b",\"org\":");
        serde_json::to_writer(&mut *out, &self.org)?;
        out.extend_from_slice(b",\"actor\":");
        serde_json::to_writer(&mut *out, &self.actor)?;
        out.extend_from_slice(b",\"real_actor\":");
        serde_json::to_writer(&mut *out, &self.real_actor)?;
        out.extend_from_slice(b",\"kind\":");
        serde_json::to_writer(&mut *out, self.kind.as_str())?;
        out.extend_from_slice(b",\"name\":");
        serde_json::to_writer(&mut *out, &*self.name)?;
        out.extend_from_slice(b",\"outcome\":");
        serde_json::to_writer(&mut *out, self.outcome.as_str())?;
        out.extend_from_slice(b",\"code\":");
        serde_json::to_writer(&mut *out, &self.code)?;
        out.extend_from_slice(b",\"duration\":");
        serde_json::to_writer(&mut *out, &self.duration)?;
        out.extend_from_slice(b",\"schema\":");
        serde_json::to_writer(&mut *out, &*self.schema)?;
        out.extend_from_slice(b",\"detail\":");
        self.detail.write_json(out)?;
        out.push(b'}');
        Ok(())
    }

    /// The event's JSON as a `String`: [`write_json`](Self::write_json) into a new one.
    ///
    /// # Errors
    ///
    /// As [`write_json`](Self::write_json).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut out = Vec::with_capacity(JSON_CAPACITY);
        self.write_json(&mut out)?;
        // `serde_json` and RFC 3339 write UTF-8 only: this never fails.
        String::from_utf8(out).map_err(serde::ser::Error::custom)
    }
}

/// Receives diagnostic events.
///
/// Recording never blocks the caller and never fails the request: a sink that cannot
/// keep up drops events and counts the drops (see
/// [`dropped`](DiagnosticSink::dropped)).
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait DiagnosticSink: Send + Sync + 'static {
    /// Records one event.
    fn record(&self, event: DiagnosticEvent);

    /// Records one event whose detail is still to be built.
    ///
    /// The library records its costliest detail (an access decision with its explanation)
    /// this way. By default the detail is built at once and the event goes to
    /// [`record`](Self::record); a sink that writes off the request path builds it there
    /// instead (the buffered journal sink's writer), and a sink that keeps nothing never
    /// builds it. The event recorded is the same either way.
    fn record_deferred(&self, event: DiagnosticEvent, detail: DeferredDetail) {
        self.record(detail.apply(event));
    }

    /// How many events this sink has dropped since it was made.
    fn dropped(&self) -> u64 {
        0
    }
}

/// An event's detail and its schema, set on the event when [`apply`](Self::apply) is
/// called: see [`DiagnosticSink::record_deferred`]. Made from a closure that builds the
/// JSON ([`new`](Self::new)), or from a typed value that becomes a [`Detail::deferred`]
/// ([`typed`](Self::typed): nothing is built until the detail is read).
///
/// ```
/// use portal_core::diagnostics::{DeferredDetail, DiagnosticEvent, EventKind};
/// use portal_core::ids::{RandomIds, RequestId};
///
/// let at = time::OffsetDateTime::now_utc();
/// let event = DiagnosticEvent::detached(at, RequestId::generate(&RandomIds::default(), at), EventKind::Host, "job.run");
/// let rows = 3;
/// let detail = DeferredDetail::new("job.run.v1", move || serde_json::json!({ "rows": rows }));
/// let event = detail.apply(event);
/// assert_eq!(event.schema, "job.run.v1");
/// assert_eq!(event.detail["rows"], 3);
/// ```
pub struct DeferredDetail {
    schema: &'static str,
    build: Build,
}

/// How a [`DeferredDetail`] becomes a [`Detail`].
#[expect(
    clippy::large_enum_variant,
    reason = "the decision is inline on purpose: boxing it is the allocation this avoids"
)]
enum Build {
    Closure(Box<dyn FnOnce() -> serde_json::Value + Send>),
    Typed(Detail),
    /// An access decision, the detail recorded on nearly every request: held inline, so
    /// that recording it allocates nothing until [`apply`](DeferredDetail::apply), which a
    /// buffered sink calls on its writer. A block allocated on the request thread and
    /// freed on another costs the request thread a cold one next time (see
    /// `docs/benchmarks.md`, "Diagnostics").
    Decision(DecisionDetail),
}

impl DeferredDetail {
    /// A detail under `schema` that `build` makes from what it owns.
    pub fn new(schema: &'static str, build: impl FnOnce() -> serde_json::Value + Send + 'static) -> Self {
        Self {
            schema,
            build: Build::Closure(Box::new(build)),
        }
    }

    /// A detail under `schema` kept as `typed` (a [`Detail::deferred`]): applying it
    /// builds nothing; its JSON is built when somebody reads it, and a journal serializes
    /// `typed` directly.
    ///
    /// ```
    /// use portal_core::diagnostics::{DeferredDetail, DiagnosticEvent, EventKind};
    /// use portal_core::ids::{RandomIds, RequestId};
    ///
    /// #[derive(serde::Serialize)]
    /// struct Run {
    ///     rows: u32,
    /// }
    ///
    /// let at = time::OffsetDateTime::now_utc();
    /// let event = DiagnosticEvent::detached(at, RequestId::generate(&RandomIds::default(), at), EventKind::Host, "job.run");
    /// let event = DeferredDetail::typed("job.run.v1", Run { rows: 3 }).apply(event);
    /// assert!(event.detail.is_deferred(), "nothing built yet");
    /// assert_eq!(event.schema, "job.run.v1");
    /// assert_eq!(event.detail["rows"], 3);
    /// ```
    pub fn typed<T: Serialize + Send + Sync + 'static>(schema: &'static str, typed: T) -> Self {
        Self {
            schema,
            build: Build::Typed(Detail::deferred(typed)),
        }
    }

    /// An access decision's detail, kept inline until applied.
    pub(crate) fn decision(detail: DecisionDetail) -> Self {
        Self {
            schema: schemas::ACCESS_DECISION_V1,
            build: Build::Decision(detail),
        }
    }

    /// The schema the detail will have.
    pub fn schema(&self) -> &'static str {
        self.schema
    }

    /// Sets the detail (built now, if it was made with [`new`](Self::new)) and its schema
    /// on `event`.
    pub fn apply(self, event: DiagnosticEvent) -> DiagnosticEvent {
        let detail = match self.build {
            Build::Closure(build) => Detail::from(build()),
            Build::Typed(detail) => detail,
            Build::Decision(decision) => Detail::deferred(decision),
        };
        event.with_detail(self.schema, detail)
    }
}

impl std::fmt::Debug for DeferredDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredDetail")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// The bytes [`DiagnosticEvent::to_json`] reserves: more than a request's usual event
/// takes (the three events of an authorized read are 500 to 700 bytes), so that writing
/// one rarely grows its buffer.
const JSON_CAPACITY: usize = 1024;

/// Makes event ids: UUIDv7 from the event's time, increasing within the process.
static EVENT_IDS: LazyLock<RandomIds> = LazyLock::new(RandomIds::default);

/// A new event id for an event at `at`, as [`DiagnosticEvent::new`] makes them.
pub fn new_event_id(at: OffsetDateTime) -> EventId {
    EventId::generate(&*EVENT_IDS as &dyn IdGenerator, at)
}

/// Records how an operation ended, the one way every service does it.
///
/// `event` is the operation's event (name, kind, org, duration already set). On success it
/// gets `detail` under the schema `<name>.v1`. On failure it gets the error's code and an
/// `error.v1` detail (message, details, offending `param`); when storage failed, a
/// `storage_fault` event naming the operation and the whole error chain is recorded first.
///
/// `detail` makes a [`serde_json::Value`] or a [`Detail`]: a [`Detail::deferred`] typed
/// value is built on the request thread with no JSON map and written to a journal straight
/// from its type (the library's most frequent details are made so).
///
/// The [`Gate`](crate::gate::Gate) records every operation's outcome through it
/// ([`Operation::finish`](crate::gate::Operation::finish)); the result is borrowed, so the
/// error recorded is the one the caller receives, with its whole chain of sources.
pub fn record_outcome<T, D: Into<Detail>>(
    sink: &dyn DiagnosticSink,
    event: DiagnosticEvent,
    result: Result<&T, &PortalError>,
    detail: impl FnOnce(&T) -> D,
) {
    match result {
        Ok(value) => {
            let schema = match &event.name {
                Cow::Borrowed(name) => Cow::Borrowed(constant_schema(name)),
                Cow::Owned(name) => Cow::Owned(format!("{name}.v1")),
            };
            sink.record(event.with_detail(schema, detail(value)));
        }
        Err(err) => {
            let code = err.code();
            if matches!(code, ErrorCode::StorageUnavailable | ErrorCode::StorageFailure) {
                let fault = DiagnosticEvent {
                    kind: EventKind::StorageFault,
                    ..event.clone()
                }
                .with_new_id()
                .with_error(code)
                .with_detail(
                    "storage.fault.v1",
                    serde_json::json!({ "operation": event.name, "error": error_chain(err) }),
                );
                sink.record(fault);
            }
            let mut detail = serde_json::json!({ "message": err.message() });
            if !err.details().is_empty() {
                detail["details"] = serde_json::json!(err.details());
            }
            if let Some(param) = err.param() {
                detail["param"] = serde_json::json!(param);
            }
            sink.record(event.with_error(code).with_detail("error.v1", detail));
        }
    }
}

/// `<name>.v1` for a constant event name, made the first time and kept: names are nearly
/// always constants, one small string per distinct constant (a fixed set), so recording
/// an outcome allocates nothing for its schema. Each thread remembers
/// the schemas it has used (by the name's address and length: the exact constant), so the
/// shared table is locked only the first time a thread meets a name.
fn constant_schema(name: &'static str) -> &'static str {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::sync::{Mutex, PoisonError};

    /// Every constant name's schema made so far, by the name's text.
    static MADE: LazyLock<Mutex<HashMap<&'static str, &'static str>>> = LazyLock::new(Mutex::default);
    thread_local! {
        static USED: RefCell<HashMap<(usize, usize), &'static str>> = RefCell::new(HashMap::new());
    }
    USED.with_borrow_mut(|used| {
        *used.entry((name.as_ptr() as usize, name.len())).or_insert_with(|| {
            let mut made = MADE.lock().unwrap_or_else(PoisonError::into_inner);
            made.entry(name)
                .or_insert_with(|| Box::leak(format!("{name}.v1").into_boxed_str()))
        })
    })
}

/// The error and its sources, for support (never shown to customers).
pub(crate) fn error_chain(err: &PortalError) -> String {
    let mut out = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
