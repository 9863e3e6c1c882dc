//! `TriageService`: what support asks of the journal: one request, a timeline, why a
//! request failed, and a support bundle; plus retention and export.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::access::{Domain, Permission, SUPPORT_READONLY_ROLE, SUPPORT_ROLE};
use crate::context::{Principal, RequestContext};
use crate::diagnostics::{DiagnosticEvent, EventKind, EventPosition, Journal, Outcome, RequestQuery, TimelineQuery};
use crate::error::{ErrorCode, PortalError};
use crate::gate::Gate;
use crate::ids::{OrgId, RequestId, SessionId, UserId};
use crate::store::{Page, PageRequest, StoreError};
use crate::tenancy::TenancyStore;

/// The permissions triage asks for.
///
/// In an org, the built-in `owner` (everything), `admin`, `support_readonly` and `support`
/// hold `diagnostics read`; only `owner` holds `diagnostics purge`. On the platform
/// ([`Scope::Platform`]) a service principal of the host, or whoever the policy allows.
pub use crate::access::permissions;

use permissions as perm;

/// Where a triage read looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "org")]
pub enum Scope {
    /// One org's events, for its admins (redacted) or support staff with a grant.
    Org(OrgId),
    /// Every org's events, for the vendor's platform (a service principal, or staff the
    /// policy allows `diagnostics read` on the platform).
    Platform,
}

/// Who reads, which decides what is redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Viewer {
    /// The vendor's support staff (through a support grant) or platform: everything.
    Support,
    /// The org's own admins: the customer-visible audit log. Authentication failure
    /// reasons, policy rules, the roles behind a decision, storage error chains and host
    /// log details are removed.
    Customer,
}

/// Retention and reading limits.
#[derive(Debug, Clone)]
pub struct TriageConfig {
    /// How long an org's events are kept when it has no setting of its own: 90 days.
    pub default_retention: Duration,
    /// Per-org retention windows.
    pub retention: BTreeMap<OrgId, Duration>,
    /// How far back a support bundle looks: 7 days.
    pub bundle_window: Duration,
    /// The most events a support bundle reads: 20,000.
    pub bundle_scan: usize,
}

impl Default for TriageConfig {
    fn default() -> Self {
        Self {
            default_retention: Duration::days(90),
            retention: BTreeMap::new(),
            bundle_window: Duration::days(7),
            bundle_scan: 20_000,
        }
    }
}

impl TriageConfig {
    /// How long `org`'s events are kept.
    pub fn retention_of(&self, org: OrgId) -> Duration {
        self.retention.get(&org).copied().unwrap_or(self.default_retention)
    }
}

/// Which events a timeline holds: those of the scope in `[from, until)`, of `user` if
/// given (as actor or real actor), of `kinds` if any are given.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// Only this user's events.
    pub user: Option<UserId>,
    /// From this time (inclusive).
    pub from: OffsetDateTime,
    /// Until this time (exclusive).
    pub until: OffsetDateTime,
    /// Only these kinds; every kind if empty.
    pub kinds: Vec<EventKind>,
}

/// Why a request failed: the root-cause code, a one-paragraph summary, the evidence and
/// a suggested next step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The request.
    pub request_id: RequestId,
    /// Who it was explained to.
    pub viewer: Viewer,
    /// How many of its events the reader may see (at most the first 5,000 are read).
    pub events: usize,
    /// The code that caused the failure; `None` if nothing failed (or nothing is known).
    pub root_cause: Option<ErrorCode>,
    /// The operation that failed, such as `workflow.transition`.
    pub failed_step: Option<String>,
    /// One paragraph for a person.
    pub summary: String,
    /// What the events show.
    pub evidence: Vec<Evidence>,
    /// What to do about it.
    pub next_step: Option<String>,
}

/// One piece of evidence for an [`Explanation`], taken from the events as they were
/// recorded at the time.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    /// The authorizer denied an action.
    PermissionDenial {
        /// The object, such as `cases/wf_…`.
        object: String,
        /// The action, such as `write`.
        action: String,
        /// The roles the actor held there; empty for customers.
        roles: Vec<String>,
        /// What decided it (the deny rule, or no grant); `None` for customers.
        reason: Option<Value>,
        /// Roles that would have granted it; empty for customers.
        would_grant: Vec<String>,
    },
    /// An API key was denied an action: a key holds no roles, only its scopes.
    KeyScopeDenial {
        /// The key, as `key_…@org_…`.
        key: Option<String>,
        /// The object, such as `cases/wf_…`.
        object: String,
        /// The action, such as `approve`.
        action: String,
        /// The scopes the key held, such as `cases/* read`.
        scopes: Vec<String>,
        /// The scope that would have allowed the request, such as `cases/* approve`.
        would_allow: Option<String>,
    },
    /// The actor tried to reach an org it is not a member of and holds no support grant for.
    OutsideOrg {
        /// The org it tried to reach.
        org: Option<OrgId>,
        /// The actor.
        principal: Option<String>,
        /// The org the request was made from, if another.
        home_org: Option<OrgId>,
    },
    /// A workflow transition was refused in the instance's state.
    WorkflowState {
        /// The instance.
        instance: Option<String>,
        /// Its state at that moment.
        state: Option<String>,
        /// The transitions that could leave that state at that moment.
        available: Vec<String>,
    },
    /// The resource had changed since the caller read it.
    VersionConflict {
        /// The version the store held.
        current_version: Option<u64>,
    },
    /// The idempotency key had been used for another request.
    IdempotencyKeyReused {
        /// The key.
        key: Option<String>,
    },
    /// A store operation failed.
    StorageFailure {
        /// The operation.
        operation: Option<String>,
        /// The error chain; `None` for customers.
        error: Option<String>,
    },
    /// Authentication failed.
    AuthenticationFailure {
        /// The step, such as `auth.sign_in`.
        step: String,
        /// Why, such as `locked` or `expired`; `None` for customers.
        reason: Option<String>,
    },
    /// Any other failure: the error as recorded.
    Error {
        /// The step.
        step: String,
        /// The message.
        message: Option<String>,
        /// The error's details.
        details: Value,
    },
}

/// Failures of one cause: the same code at the same place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureGroup {
    /// The code.
    pub code: ErrorCode,
    /// Where: the operation's name.
    pub place: String,
    /// How many.
    pub count: u64,
    /// The first one's time.
    #[serde(with = "time::serde::rfc3339")]
    pub first_at: OffsetDateTime,
    /// The last one's time.
    #[serde(with = "time::serde::rfc3339")]
    pub last_at: OffsetDateTime,
    /// The last one's request, to explain.
    pub last_request: RequestId,
}

/// A member and their roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberRoles {
    /// The org.
    pub org: OrgId,
    /// The member.
    pub user: UserId,
    /// Their roles there.
    pub roles: Vec<String>,
}

/// A session, as a [`SessionDirectory`] describes it to support.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionSummary {
    /// The session.
    pub id: SessionId,
    /// Whose.
    pub user: UserId,
    /// When it began.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it ends.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// Where a support bundle finds sessions: implemented by the host's identity store.
///
/// Optional: without one, a bundle's `sessions` is `None`.
///
/// # Errors
///
/// [`StoreError`] when the sessions cannot be read.
#[async_trait]
pub trait SessionDirectory: Send + Sync + 'static {
    /// The sessions of `user`, or of every member of `org` when `user` is `None`. A
    /// bundle is a bounded snapshot: an implementation reads at most a page
    /// ([`MAX_PAGE_SIZE`](crate::store::MAX_PAGE_SIZE)) of members and, of each, at most a
    /// page of their newest sessions.
    async fn sessions(&self, org: Option<OrgId>, user: Option<UserId>) -> Result<Vec<SessionSummary>, StoreError>;
}

/// What support needs to start on a customer's problem.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SupportBundle {
    /// Whose.
    pub scope: Scope,
    /// The user, for a user's bundle.
    pub user: Option<UserId>,
    /// Who reads it.
    pub viewer: Viewer,
    /// The window looked at.
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    /// Its end.
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    /// Recent failures, grouped by cause, most frequent first.
    pub failures: Vec<FailureGroup>,
    /// Whether more events were in the window than the bundle read.
    pub truncated: bool,
    /// Memberships and roles: the user's, or the org's members (the first 200).
    pub memberships: Vec<MemberRoles>,
    /// Sessions, if a [`SessionDirectory`] is wired.
    pub sessions: Option<Vec<SessionSummary>>,
}

/// Reads the journal for support and for org admins.
///
/// Every read is permission-checked through the authorizer (`diagnostics read` in the
/// org, or on the platform for [`Scope::Platform`]) and recorded as a `query` event, so
/// the reading itself is in the audit trail. Org admins read their own org, redacted
/// ([`Viewer::Customer`]); support staff need an active support grant for the org; the
/// org-scoped reads never return another org's events, nor org-less ones (sign-ins,
/// session events: those are for the platform only).
#[derive(Clone)]
pub struct TriageService {
    journal: Arc<dyn Journal>,
    tenancy: Arc<dyn TenancyStore>,
    gate: Gate,
    sessions: Option<Arc<dyn SessionDirectory>>,
    config: TriageConfig,
}

impl std::fmt::Debug for TriageService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TriageService")
            .field("config", &self.config)
            .field("sessions", &self.sessions.is_some())
            .finish_non_exhaustive()
    }
}

/// The most events one journal read returns.
const PAGE: usize = 500;

/// The most events of one request `explain` reads (in pages of [`PAGE`]).
const EXPLAINED: usize = 5_000;

impl TriageService {
    /// Assembles the service from its ports and the portal's [`Gate`] (support staff
    /// reach an org's journal through the grants the gate lets in).
    pub fn new(journal: Arc<dyn Journal>, tenancy: Arc<dyn TenancyStore>, gate: Gate, config: TriageConfig) -> Self {
        Self {
            journal,
            tenancy,
            gate,
            sessions: None,
            config,
        }
    }

    /// The same service, with sessions in support bundles.
    pub fn with_sessions(mut self, sessions: Arc<dyn SessionDirectory>) -> Self {
        self.sessions = Some(sessions);
        self
    }

    /// The settings.
    pub fn config(&self) -> &TriageConfig {
        &self.config
    }

    /// A page of the events of one request the reader may see, in journal order: a
    /// request with more events than a page (at most [`MAX_PAGE_SIZE`](crate::store::MAX_PAGE_SIZE))
    /// is read page by page with the `next` cursor.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (`limit`, `cursor`); `org.not_found` (the actor cannot
    /// reach the org); `access.denied`; `storage.*`.
    pub async fn by_request(
        &self,
        ctx: &RequestContext,
        scope: Scope,
        request_id: RequestId,
        page: &PageRequest,
    ) -> Result<Page<DiagnosticEvent>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "diagnostics.by_request");
        let result = async {
            let viewer = self.authorize(ctx, scope, perm::DIAGNOSTICS_READ).await?;
            let size = page.size()?;
            let after = after_cursor(page)?;
            let events = self.request_page(scope, request_id, after, size + 1).await?;
            let page = Page::from_overfetch(events, size, |e| EventPosition::of(e).to_cursor());
            Ok(Page {
                items: page.items.into_iter().map(|e| view(e, viewer)).collect(),
                next: page.next,
            })
        }
        .await;
        op.in_org(scope_org(scope)).finish(
            &result,
            |events| json!({ "request_id": request_id, "events": events.items.len() }),
        );
        result
    }

    /// A page of the scope's (or one user's) events in a window, in journal order.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (`until` not after `from`, `limit`, `cursor`);
    /// `org.not_found`; `access.denied`; `storage.*`.
    pub async fn timeline(
        &self,
        ctx: &RequestContext,
        scope: Scope,
        filter: &Timeline,
        page: &PageRequest,
    ) -> Result<Page<DiagnosticEvent>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "diagnostics.timeline");
        let result = async {
            let viewer = self.authorize(ctx, scope, perm::DIAGNOSTICS_READ).await?;
            if filter.until <= filter.from {
                return Err(PortalError::invalid_field(
                    "until",
                    "the window must end after it starts",
                ));
            }
            let size = page.size()?;
            let after = after_cursor(page)?;
            let query = TimelineQuery {
                org: scope_org(scope),
                actor: filter.user.map(Principal::User),
                from: filter.from,
                until: filter.until,
                kinds: filter.kinds.clone(),
                after,
                limit: size + 1,
            };
            let events = self.journal.timeline(&query).await?;
            let page = Page::from_overfetch(events, size, |e| EventPosition::of(e).to_cursor());
            Ok(Page {
                items: page.items.into_iter().map(|e| view(e, viewer)).collect(),
                next: page.next,
            })
        }
        .await;
        op.in_org(scope_org(scope)).finish(
            &result,
            |p| json!({ "user": filter.user, "kinds": filter.kinds, "events": p.items.len() }),
        );
        result
    }

    /// Why the request `request_id` failed, from its events as the reader may see them.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `storage.*`.
    pub async fn explain(
        &self,
        ctx: &RequestContext,
        scope: Scope,
        request_id: RequestId,
    ) -> Result<Explanation, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "diagnostics.explain");
        let result = async {
            let viewer = self.authorize(ctx, scope, perm::DIAGNOSTICS_READ).await?;
            let events = self.request_events(scope, viewer, request_id).await?;
            Ok(explain_events(request_id, viewer, &events))
        }
        .await;
        op.in_org(scope_org(scope)).finish(
            &result,
            |x| json!({ "request_id": request_id, "root_cause": x.root_cause, "events": x.events }),
        );
        result
    }

    /// Recent failures grouped by cause, memberships and roles, and sessions, of an org
    /// (`user` `None`) or of one user, over the last [`TriageConfig::bundle_window`].
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (`user`: a platform bundle is of one user);
    /// `member.not_found` (`user` is not a member of the scope's org, whether or not the
    /// user exists); `org.not_found`; `access.denied`; `storage.*`.
    pub async fn support_bundle(
        &self,
        ctx: &RequestContext,
        scope: Scope,
        user: Option<UserId>,
    ) -> Result<SupportBundle, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "diagnostics.support_bundle");
        let result = async {
            let viewer = self.authorize(ctx, scope, perm::DIAGNOSTICS_READ).await?;
            if scope == Scope::Platform && user.is_none() {
                return Err(PortalError::invalid_field(
                    "user",
                    "a platform support bundle is of one user",
                ));
            }
            // In an org, a user's bundle is of one of its members: anyone else (another
            // org's user, or no user at all) answers the same not-found, so the bundle
            // neither shows another tenant's sessions nor tells who exists.
            if let (Scope::Org(org), Some(user)) = (scope, user)
                && self.tenancy.get_membership(org, user).await?.is_none()
            {
                return Err(member_not_found());
            }
            let until = ctx.now() + Duration::microseconds(1);
            let from = ctx.now() - self.config.bundle_window;
            let (failures, truncated) = self.failures(scope, user, from, until).await?;
            let memberships = self.memberships(scope, user).await?;
            let sessions = match &self.sessions {
                Some(directory) => Some(directory.sessions(scope_org(scope), user).await?),
                None => None,
            };
            Ok(SupportBundle {
                scope,
                user,
                viewer,
                from,
                until,
                failures,
                truncated,
                memberships,
                sessions,
            })
        }
        .await;
        op.in_org(scope_org(scope)).finish(
            &result,
            |b| json!({ "user": b.user, "failure_groups": b.failures.len(), "memberships": b.memberships.len() }),
        );
        result
    }

    /// Removes `org`'s events older than its retention window, and returns how many.
    /// Asks `diagnostics purge`.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `storage.*`.
    pub async fn purge_expired(&self, ctx: &RequestContext, org: OrgId) -> Result<u64, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "diagnostics.purge");
        let before = ctx.now() - self.config.retention_of(org);
        let result = async {
            self.authorize(ctx, Scope::Org(org), perm::DIAGNOSTICS_PURGE).await?;
            Ok(self.journal.purge(org, before).await?)
        }
        .await;
        op.in_org(org)
            .finish(&result, |n| json!({ "before": before.unix_timestamp(), "purged": n }));
        result
    }

    /// Writes `org`'s events in `[from, until)` to `out` as JSON lines (one event per
    /// line, journal order), redacted for customers, and returns how many.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (`until`); `org.not_found`; `access.denied`;
    /// `storage.*`; `internal.error` if `out` fails.
    pub async fn export_jsonl(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        from: OffsetDateTime,
        until: OffsetDateTime,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<u64, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "diagnostics.export");
        let result = async {
            let viewer = self.authorize(ctx, Scope::Org(org), perm::DIAGNOSTICS_READ).await?;
            if until <= from {
                return Err(PortalError::invalid_field(
                    "until",
                    "the window must end after it starts",
                ));
            }
            let mut query = TimelineQuery {
                org: Some(org),
                actor: None,
                from,
                until,
                kinds: Vec::new(),
                after: None,
                limit: PAGE,
            };
            let mut written = 0u64;
            loop {
                let events = self.journal.timeline(&query).await?;
                let full = events.len() == PAGE;
                query.after = events.last().map(EventPosition::of);
                for event in events {
                    let line = serde_json::to_string(&view(event, viewer)).map_err(internal)?;
                    out.write_all(line.as_bytes()).map_err(internal)?;
                    out.write_all(b"\n").map_err(internal)?;
                    written += 1;
                }
                if !full {
                    break;
                }
            }
            out.flush().map_err(internal)?;
            Ok(written)
        }
        .await;
        op.in_org(org).finish(
            &result,
            |n| json!({ "from": from.unix_timestamp(), "until": until.unix_timestamp(), "events": n }),
        );
        result
    }

    /// Checks `permission` for the scope and says who reads.
    async fn authorize(
        &self,
        ctx: &RequestContext,
        scope: Scope,
        permission: Permission,
    ) -> Result<Viewer, PortalError> {
        match scope {
            Scope::Platform => {
                self.gate
                    .decide(ctx, Domain::Platform, &[], permission.object, permission.action)?;
                Ok(Viewer::Support)
            }
            Scope::Org(org) => {
                let roles = self.gate.authorize(ctx, org, permission, org_not_found).await?;
                let support = matches!(ctx.principal(), Principal::Service(_))
                    || roles
                        .iter()
                        .any(|r| r.as_str() == SUPPORT_ROLE || r.as_str() == SUPPORT_READONLY_ROLE);
                Ok(if support { Viewer::Support } else { Viewer::Customer })
            }
        }
    }

    /// Up to `limit` of the request's events the scope holds, after `after`. In an org:
    /// only the events of that org (the journal filters them). Org-less events (sign-ins,
    /// session events) are the platform's alone: merged into an org's view, anyone who
    /// got a request of theirs filed under another principal's request id would read that
    /// principal's sign-in.
    async fn request_page(
        &self,
        scope: Scope,
        request_id: RequestId,
        after: Option<EventPosition>,
        limit: usize,
    ) -> Result<Vec<DiagnosticEvent>, PortalError> {
        let query = RequestQuery {
            request_id,
            org: scope_org(scope),
            after,
            limit,
        };
        let events = self.journal.by_request(&query).await?;
        // The journal filters by org; this keeps the promise even if one did not.
        Ok(match scope {
            Scope::Platform => events,
            Scope::Org(org) => events.into_iter().filter(|e| e.org == Some(org)).collect(),
        })
    }

    /// The request's events the scope holds, as `viewer` sees them, read page by page:
    /// at most [`EXPLAINED`] of them.
    async fn request_events(
        &self,
        scope: Scope,
        viewer: Viewer,
        request_id: RequestId,
    ) -> Result<Vec<DiagnosticEvent>, PortalError> {
        let mut events = Vec::new();
        let mut after = None;
        loop {
            let page = self.request_page(scope, request_id, after, PAGE).await?;
            let full = page.len() == PAGE;
            after = page.last().map(EventPosition::of);
            events.extend(page.into_iter().map(|e| view(e, viewer)));
            if !full || events.len() >= EXPLAINED {
                break;
            }
        }
        events.truncate(EXPLAINED);
        Ok(events)
    }

    /// The failures in the window, grouped by code and place.
    async fn failures(
        &self,
        scope: Scope,
        user: Option<UserId>,
        from: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<(Vec<FailureGroup>, bool), PortalError> {
        let mut query = TimelineQuery {
            org: scope_org(scope),
            actor: user.map(Principal::User),
            from,
            until,
            kinds: Vec::new(),
            after: None,
            limit: PAGE,
        };
        let mut groups: BTreeMap<(ErrorCode, String), FailureGroup> = BTreeMap::new();
        let mut read = 0usize;
        let truncated = loop {
            let events = self.journal.timeline(&query).await?;
            let full = events.len() == PAGE;
            query.after = events.last().map(EventPosition::of);
            read += events.len();
            for event in events {
                let (Some(code), false) = (event.code, event.outcome == Outcome::Succeeded) else {
                    continue;
                };
                groups
                    .entry((code, event.name.to_string()))
                    .and_modify(|g| {
                        g.count += 1;
                        g.last_at = event.at;
                        g.last_request = event.request_id;
                    })
                    .or_insert_with(|| FailureGroup {
                        code,
                        place: event.name.to_string(),
                        count: 1,
                        first_at: event.at,
                        last_at: event.at,
                        last_request: event.request_id,
                    });
            }
            if !full {
                break false;
            }
            if read >= self.config.bundle_scan {
                break true;
            }
        };
        let mut groups: Vec<FailureGroup> = groups.into_values().collect();
        groups.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_at.cmp(&a.last_at)));
        Ok((groups, truncated))
    }

    /// The user's memberships (in the scope's org only, for an org), or the org's members.
    async fn memberships(&self, scope: Scope, user: Option<UserId>) -> Result<Vec<MemberRoles>, PortalError> {
        let of = |m: &crate::tenancy::Membership| MemberRoles {
            org: m.org,
            user: m.user,
            roles: m.roles.iter().map(|r| r.as_str().to_owned()).collect(),
        };
        Ok(match (scope, user) {
            (Scope::Org(org), Some(user)) => self.tenancy.get_membership(org, user).await?.iter().map(of).collect(),
            (Scope::Org(org), None) => self
                .tenancy
                .list_members(org, None, 200)
                .await?
                .iter()
                .map(of)
                .collect(),
            (Scope::Platform, Some(user)) => self
                .tenancy
                .list_user_orgs(user, None, 200)
                .await?
                .iter()
                .map(|(_, m)| of(m))
                .collect(),
            (Scope::Platform, None) => Vec::new(),
        })
    }
}

fn org_not_found() -> PortalError {
    PortalError::new(ErrorCode::OrgNotFound, "organization not found")
}

/// The journal position a page's cursor names.
fn after_cursor(page: &PageRequest) -> Result<Option<EventPosition>, PortalError> {
    page.after
        .as_ref()
        .map(|cursor| {
            EventPosition::from_cursor(cursor.as_str())
                .ok_or_else(|| PortalError::invalid_field("cursor", "the cursor is not one this listing returned"))
        })
        .transpose()
}

fn member_not_found() -> PortalError {
    PortalError::new(ErrorCode::MemberNotFound, "no such member in this organization").with_param("user")
}

fn scope_org(scope: Scope) -> Option<OrgId> {
    match scope {
        Scope::Org(org) => Some(org),
        Scope::Platform => None,
    }
}

fn internal(err: impl std::error::Error + Send + Sync + 'static) -> PortalError {
    PortalError::new(ErrorCode::Internal, "the export could not be written").with_source(err)
}

/// The event as `viewer` may see it.
pub(crate) fn view(event: DiagnosticEvent, viewer: Viewer) -> DiagnosticEvent {
    match viewer {
        Viewer::Support => event,
        Viewer::Customer => redact(event),
    }
}

/// The customer-visible form of an event: no authentication failure reason, no policy
/// behind a decision (its rule, reason, the roles the actor held or the roles that would
/// have granted it: what [`Decision::redacted`](crate::access::Decision::redacted) keeps
/// from customers), no storage error chain, no host log detail.
pub(crate) fn redact(mut event: DiagnosticEvent) -> DiagnosticEvent {
    const REDACTED: &str = "redacted";
    match event.kind {
        EventKind::Authentication => {
            if let Some(failure) = event.detail.get_mut("failure") {
                *failure = json!(REDACTED);
            }
        }
        EventKind::PermissionDecision => {
            if let Some(decision) = event.detail.get_mut("decision").and_then(Value::as_object_mut) {
                for key in ["reason", "rule", "via", "roles", "would_grant"] {
                    decision.remove(key);
                }
            }
        }
        EventKind::StorageFault => {
            if let Some(error) = event.detail.get_mut("error") {
                *error = json!(REDACTED);
            }
        }
        EventKind::Host => event.detail = json!(REDACTED).into(),
        _ => {}
    }
    event
}

fn text(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_owned)
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn is_decision(event: &DiagnosticEvent, name: &str) -> bool {
    event.kind == EventKind::PermissionDecision && event.name == name && event.outcome != Outcome::Succeeded
}

/// Explains a request from its events (in journal order, already as the viewer sees them).
pub(crate) fn explain_events(request_id: RequestId, viewer: Viewer, events: &[DiagnosticEvent]) -> Explanation {
    let failures: Vec<&DiagnosticEvent> = events.iter().filter(|e| e.outcome != Outcome::Succeeded).collect();
    let mut out = Explanation {
        request_id,
        viewer,
        events: events.len(),
        root_cause: None,
        failed_step: None,
        summary: String::new(),
        evidence: Vec::new(),
        next_step: None,
    };
    if events.is_empty() {
        out.summary = format!("No events of request {request_id} are visible here.");
        return out;
    }
    if failures.is_empty() {
        out.summary = format!(
            "Request {request_id} succeeded: its {} events record no denial, rejection or failure.",
            events.len()
        );
        return out;
    }
    // The operation's own outcome: the last failing event that is not a decision or a fault.
    let operation = failures
        .iter()
        .rev()
        .find(|e| !matches!(e.kind, EventKind::PermissionDecision | EventKind::StorageFault))
        .or(failures.last())
        .copied();
    let step_of = |e: &DiagnosticEvent| e.name.to_string();
    let (cause, evidence) = if let Some(auth) = failures.iter().find(|e| e.kind == EventKind::Authentication) {
        let evidence = Evidence::AuthenticationFailure {
            step: step_of(auth),
            reason: text(auth.detail.get("failure")).filter(|r| r != "redacted"),
        };
        (auth.code.unwrap_or(ErrorCode::InvalidCredentials), evidence)
    } else if let Some(fault) = failures.iter().find(|e| e.kind == EventKind::StorageFault) {
        let evidence = Evidence::StorageFailure {
            operation: text(fault.detail.get("operation")),
            error: text(fault.detail.get("error")).filter(|r| r != "redacted"),
        };
        (fault.code.unwrap_or(ErrorCode::StorageFailure), evidence)
    } else if let Some(denial) = failures.iter().find(|e| is_decision(e, "access.check")) {
        let decision = denial.detail.get("decision");
        let evidence = if let Some(scopes) = denial.detail.get("scopes") {
            Evidence::KeyScopeDenial {
                key: text(denial.detail.get("principal")),
                object: text(denial.detail.get("object")).unwrap_or_default(),
                action: text(denial.detail.get("action")).unwrap_or_default(),
                scopes: strings(Some(scopes)),
                would_allow: text(denial.detail.get("would_allow")),
            }
        } else {
            Evidence::PermissionDenial {
                object: text(denial.detail.get("object")).unwrap_or_default(),
                action: text(denial.detail.get("action")).unwrap_or_default(),
                roles: strings(decision.and_then(|d| d.get("roles"))),
                reason: decision.and_then(|d| d.get("reason")).cloned(),
                would_grant: strings(decision.and_then(|d| d.get("would_grant"))),
            }
        };
        (ErrorCode::AccessDenied, evidence)
    } else if let Some(reach) = failures.iter().find(|e| is_decision(e, "access.reach")) {
        let evidence = Evidence::OutsideOrg {
            org: reach.org,
            principal: text(reach.detail.get("principal")),
            home_org: text(reach.detail.get("home_org")).and_then(|o| o.parse().ok()),
        };
        let code = operation
            .filter(|op| op.kind != EventKind::PermissionDecision)
            .and_then(|op| op.code)
            .unwrap_or(ErrorCode::OrgNotFound);
        (code, evidence)
    } else {
        let op = operation.unwrap_or(failures[0]);
        let code = op.code.unwrap_or(ErrorCode::Internal);
        let details = op.detail.get("details");
        let detail = |key: &str| details.and_then(|d| d.get(key));
        let evidence = match code {
            ErrorCode::TransitionNotAllowed => Evidence::WorkflowState {
                instance: text(detail("instance")),
                state: text(detail("state")),
                available: strings(detail("available")),
            },
            ErrorCode::VersionConflict => Evidence::VersionConflict {
                current_version: detail("current_version").and_then(Value::as_u64),
            },
            ErrorCode::IdempotencyKeyReused => Evidence::IdempotencyKeyReused {
                key: text(detail("idempotency_key")),
            },
            _ => Evidence::Error {
                step: step_of(op),
                message: text(op.detail.get("message")),
                details: details.cloned().unwrap_or(Value::Null),
            },
        };
        (code, evidence)
    };
    let step = operation.map(step_of).unwrap_or_else(|| step_of(failures[0]));
    out.summary = format!(
        "Request {request_id} failed at `{step}` with `{cause}` ({}). {} It recorded {} events, {} of them not successful; the first was `{}`.",
        cause.meaning(),
        describe(&evidence, viewer),
        events.len(),
        failures.len(),
        failures[0].name,
    );
    out.next_step = Some(next_step(cause, &evidence).to_owned());
    out.root_cause = Some(cause);
    out.failed_step = Some(step);
    out.evidence.push(evidence);
    out
}

/// One sentence for a piece of evidence, as `viewer` may read it.
fn describe(evidence: &Evidence, viewer: Viewer) -> String {
    match evidence {
        Evidence::PermissionDenial { object, action, .. } if viewer == Viewer::Customer => {
            format!("The actor was denied `{action}` on `{object}`.")
        }
        Evidence::PermissionDenial {
            object,
            action,
            roles,
            would_grant,
            ..
        } => format!(
            "The actor, holding [{}], was denied `{action}` on `{object}`; roles that would grant it: [{}].",
            roles.join(", "),
            would_grant.join(", ")
        ),
        Evidence::KeyScopeDenial {
            key,
            object,
            action,
            scopes,
            would_allow,
        } => format!(
            "The API key {}, holding the scopes [{}], was denied `{action}` on `{object}`; {}.",
            key.as_deref().unwrap_or("(unknown)"),
            scopes.join(", "),
            would_allow.as_deref().map_or_else(
                || "no scope names this action".to_owned(),
                |scope| format!("the scope `{scope}` would allow it")
            )
        ),
        Evidence::OutsideOrg { org, principal, .. } => format!(
            "The actor {} is not a member of {} and holds no active support grant there.",
            principal.as_deref().unwrap_or("(unknown)"),
            org.map_or_else(|| "the org".to_owned(), |o| o.to_string())
        ),
        Evidence::WorkflowState {
            instance,
            state,
            available,
        } => format!(
            "Instance {} was in state `{}`, from which only [{}] could be fired.",
            instance.as_deref().unwrap_or("(unknown)"),
            state.as_deref().unwrap_or("(unknown)"),
            available.join(", ")
        ),
        Evidence::VersionConflict { current_version } => format!(
            "The instance had moved on to version {} since the caller read it.",
            current_version.map_or_else(|| "(unknown)".to_owned(), |v| v.to_string())
        ),
        Evidence::IdempotencyKeyReused { key } => format!(
            "The idempotency key `{}` had already been used for a different request.",
            key.as_deref().unwrap_or("(unknown)")
        ),
        Evidence::StorageFailure { operation, error } => format!(
            "The store failed during `{}`{}.",
            operation.as_deref().unwrap_or("(unknown)"),
            error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        ),
        Evidence::AuthenticationFailure { step, reason } => format!(
            "Authentication at `{step}` was refused{}.",
            reason
                .as_deref()
                .map(|r| format!(" because the credential was {r}"))
                .unwrap_or_default()
        ),
        Evidence::Error { message, .. } => format!("The error said: {}.", message.as_deref().unwrap_or("(nothing)")),
    }
}

/// The suggested next step for a root cause.
fn next_step(code: ErrorCode, evidence: &Evidence) -> &'static str {
    match (code, evidence) {
        (_, Evidence::OutsideOrg { .. }) => {
            "Check that the caller addressed the right organization; to let the user in, invite them to the org (or give support staff a support grant)."
        }
        (_, Evidence::AuthenticationFailure { reason: Some(r), .. }) if r == "locked" => {
            "The account is locked after failed sign-ins: confirm the user's identity, then unlock it or let the lock expire."
        }
        (_, Evidence::AuthenticationFailure { reason: Some(r), .. }) if r == "expired" => {
            "The session expired: the user signs in again; if sessions expire too early, check the session lifetime."
        }
        (ErrorCode::InvalidCredentials, _) => {
            "Ask the user to sign in again; if it keeps failing, support can see the reason."
        }
        (ErrorCode::AccessDenied, Evidence::KeyScopeDenial { .. }) => {
            "Give the integration a key whose scopes cover the action (whoever creates it must hold that permission), or have a user who holds it act."
        }
        (ErrorCode::AccessDenied, _) => {
            "Give the actor one of the roles that would grant the action (an org admin can), or have someone who holds one do it."
        }
        (ErrorCode::TransitionNotAllowed, _) => {
            "Reload the instance and fire one of the transitions available from its current state."
        }
        (ErrorCode::VersionConflict, _) => {
            "Reload the instance to get its current version, then retry the change on it."
        }
        (ErrorCode::IdempotencyKeyReused, _) => {
            "Send a new idempotency key for a different request; reuse a key only to retry the very same request."
        }
        (ErrorCode::StorageUnavailable, _) => {
            "Storage was unreachable: check the database's health and connection pool, then retry (the error is retryable)."
        }
        (ErrorCode::StorageFailure, _) => {
            "Storage failed: read the error chain and the database's logs; a retry will not help."
        }
        _ => "Look the code up in docs/errors.md and correct the request accordingly.",
    }
}

#[cfg(test)]
mod tests;
