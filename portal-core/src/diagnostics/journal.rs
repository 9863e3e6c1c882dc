//! The `Journal` port: an append-only, queryable store of diagnostic events.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{DiagnosticEvent, EventKind};
use crate::context::Principal;
use crate::ids::{EventId, OrgId, RequestId};
use crate::store::StoreError;

/// A place in a journal's order: events sort by time, then by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventPosition {
    /// The event's time.
    pub at: OffsetDateTime,
    /// The event's id.
    pub id: EventId,
}

impl EventPosition {
    /// The position of `event`.
    pub fn of(event: &DiagnosticEvent) -> Self {
        Self {
            at: event.at,
            id: event.id,
        }
    }

    /// The cursor text: Unix microseconds, a dot, and the event id.
    pub fn to_cursor(&self) -> String {
        format!("{}.{}", crate::time::to_unix_micros(self.at), self.id)
    }

    /// Parses [`to_cursor`](Self::to_cursor)'s text; `None` if it is not one.
    pub fn from_cursor(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('.')?;
        Some(Self {
            at: crate::time::from_unix_micros(micros.parse().ok()?)?,
            id: id.parse().ok()?,
        })
    }
}

/// Which events a [`Journal`] timeline returns: those in `[from, until)`, of the org
/// and the actor if given, of the kinds if any are given, after the position `after`,
/// at most `limit`, in journal order (time, then id).
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineQuery {
    /// Only events of this org.
    pub org: Option<OrgId>,
    /// Only events with this actor or real actor.
    pub actor: Option<Principal>,
    /// Only events at or after this time.
    pub from: OffsetDateTime,
    /// Only events before this time.
    pub until: OffsetDateTime,
    /// Only events of these kinds; all kinds if empty.
    pub kinds: Vec<EventKind>,
    /// Only events after this position (the last event of the previous page).
    pub after: Option<EventPosition>,
    /// At most this many events.
    pub limit: usize,
}

impl TimelineQuery {
    /// Whether `event` matches the query's filters (not its `after` or `limit`).
    pub fn matches(&self, event: &DiagnosticEvent) -> bool {
        self.org.is_none_or(|org| event.org == Some(org))
            && self
                .actor
                .as_ref()
                .is_none_or(|actor| event.actor.as_ref() == Some(actor) || event.real_actor.as_ref() == Some(actor))
            && event.at >= self.from
            && event.at < self.until
            && (self.kinds.is_empty() || self.kinds.contains(&event.kind))
            && self.after.is_none_or(|after| EventPosition::of(event) > after)
    }
}

/// Which events of one request a [`Journal`] returns: those of `request_id`, of the org
/// if given (only that org's: never org-less ones), after the position `after`, at most
/// `limit`, in journal order. A request with more events than a page is read page by page.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestQuery {
    /// The request.
    pub request_id: RequestId,
    /// Only events of this org.
    pub org: Option<OrgId>,
    /// Only events after this position (the last event of the previous page).
    pub after: Option<EventPosition>,
    /// At most this many events.
    pub limit: usize,
}

impl RequestQuery {
    /// The first `limit` events of `request_id`, of every org.
    pub fn first(request_id: RequestId, limit: usize) -> Self {
        Self {
            request_id,
            org: None,
            after: None,
            limit,
        }
    }

    /// Whether `event` matches the query's filters (not its `after` or `limit`).
    pub fn matches(&self, event: &DiagnosticEvent) -> bool {
        event.request_id == self.request_id
            && self.org.is_none_or(|org| event.org == Some(org))
            && self.after.is_none_or(|after| EventPosition::of(event) > after)
    }
}

/// A queryable, append-only store of diagnostic events.
///
/// Events are never changed once appended; the only removal is [`purge`](Self::purge),
/// which applies an org's retention window. Every listing is in journal order: time,
/// then event id. Every implementation must pass `portal_core::testing::journal`.
///
/// # Errors
///
/// Every method may return [`StoreError::Unavailable`] (the backend cannot be reached;
/// nothing was written) or [`StoreError::Backend`]; a stored event that no longer decodes
/// is [`StoreError::Corrupt`].
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Journal: Send + Sync + 'static {
    /// Appends the events of `batch` atomically: all of them or none. An event whose id is
    /// already stored is skipped, so a batch retried after an unknown outcome is stored once.
    ///
    /// The journal takes the events: on success `batch` is left empty (its allocation kept
    /// for the caller's next batch), so a journal that holds events in memory moves them in
    /// instead of copying them. On failure nothing was stored and `batch` is left as it
    /// was, so the caller can retry it.
    async fn append(&self, batch: &mut Vec<DiagnosticEvent>) -> Result<(), StoreError>;

    /// One page of the events of one request (see [`RequestQuery`]), in journal order:
    /// never more than `query.limit`, however many the request has.
    async fn by_request(&self, query: &RequestQuery) -> Result<Vec<DiagnosticEvent>, StoreError>;

    /// Events matching `query`, in journal order.
    async fn timeline(&self, query: &TimelineQuery) -> Result<Vec<DiagnosticEvent>, StoreError>;

    /// Removes the events of `org` from before `before`, and returns how many.
    async fn purge(&self, org: OrgId, before: OffsetDateTime) -> Result<u64, StoreError>;
}
