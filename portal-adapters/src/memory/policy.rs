//! `InMemoryPolicyStore`: the reference `PolicyStore`, and `InMemoryPolicyFeed`, which
//! follows its changes.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use portal_core::access::{Domain, PolicyChange, PolicyEvent, PolicyFeed, PolicyLine, PolicyStore, Revision};
use portal_core::audit::AuditEvent;
use portal_core::policy::AuditedPolicyStore;
use portal_core::store::StoreError;
use tokio::sync::watch;

use super::InMemoryAuditLog;

use crate::policy_lines::plan;

/// A [`PolicyStore`] that keeps every line and the change log in memory.
///
/// Every method takes one lock and releases it before it returns, so each call is atomic
/// and isolated, and concurrent `apply` calls take turns: each that changes a line gets
/// the next revision. Nothing is persisted; the policy lives as long as the store.
///
/// Clones share one policy, as clones of a connection pool share one database, and
/// [`feed`](Self::feed) follows its changes, so a test can run several "replicas" of a
/// service on one in-memory store.
///
/// It is the reference implementation: the SQL stores must answer exactly as it does.
///
/// ```
/// use portal_adapters::memory::InMemoryPolicyStore;
/// use portal_core::access::{Domain, Effect, PolicyLine, PolicyRule, PolicyStore, Revision};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), portal_core::StoreError> {
/// let store = InMemoryPolicyStore::new();
/// let line = PolicyLine::Permission(PolicyRule {
///     subject: "admin".into(),
///     domain: Domain::Platform,
///     object: "orgs".into(),
///     action: "create".into(),
///     effect: Effect::Allow,
/// });
/// assert_eq!(store.apply(&[line.clone()], &[]).await?, Revision(1));
/// // Adding it again changes nothing, so the revision stays.
/// assert_eq!(store.apply(&[line.clone()], &[]).await?, Revision(1));
/// assert_eq!(store.load().await?, (Revision(1), vec![line]));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct InMemoryPolicyStore {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// The current revision, published after every change so feeds wake up.
    revision: watch::Sender<Revision>,
    /// Where custom role changes write their audit events.
    audit: InMemoryAuditLog,
}

impl Default for InMemoryPolicyStore {
    fn default() -> Self {
        Self::with_audit_log(InMemoryAuditLog::new())
    }
}

impl InMemoryPolicyStore {
    /// An empty store, at [`Revision::ZERO`], with its own audit log.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that writes the audit events of
    /// [`apply_audited`](AuditedPolicyStore::apply_audited) to `audit` (shared with
    /// other stores).
    pub fn with_audit_log(audit: InMemoryAuditLog) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                revision: watch::Sender::new(Revision::ZERO),
                audit,
            }),
        }
    }

    /// The audit log this store writes to.
    pub fn audit_log(&self) -> InMemoryAuditLog {
        self.shared.audit.clone()
    }

    /// A feed of the changes committed after `after` through this store or any of its
    /// clones: usually the revision [`load`](PolicyStore::load) returned. If the log no
    /// longer holds them all (see [`trim_changes`](PolicyStore::trim_changes)) the feed
    /// starts with a [`PolicyEvent::Resync`].
    pub fn feed(&self, after: Revision) -> InMemoryPolicyFeed {
        InMemoryPolicyFeed {
            store: self.clone(),
            revision: self.shared.revision.subscribe(),
            last: after,
            queue: VecDeque::new(),
        }
    }

    /// Locks the state. A panic in another thread while it held the lock cannot leave
    /// the state half-changed, because `apply` computes its change before it mutates and
    /// the mutations themselves cannot panic, so a poisoned lock is safe to take over.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `apply`, and `event` (if given) appended to the audit log under the policy's lock
    /// when a line changed, after the duplicate-id check and before anything changed.
    fn apply_with(
        &self,
        added: &[PolicyLine],
        removed: &[PolicyLine],
        event: Option<&AuditEvent>,
    ) -> Result<Revision, StoreError> {
        let mut state = self.lock();
        let plan = plan(added, removed, |line| state.lines.contains(line));
        if plan.is_empty() {
            return Ok(state.revision);
        }
        if let Some(event) = event {
            self.shared.audit.check(event)?;
        }
        let revision = state.revision.next();
        for line in &plan.removed {
            state.lines.remove(line);
        }
        state.lines.extend(plan.added.iter().cloned());
        state.revision = revision;
        state.log.push_back(PolicyChange {
            revision,
            added: plan.added,
            removed: plan.removed,
        });
        if let Some(event) = event {
            self.shared.audit.append(event);
        }
        // Published while the lock is held, so feeds see revisions in order.
        self.shared.revision.send_replace(revision);
        Ok(revision)
    }
}

impl fmt::Debug for InMemoryPolicyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("InMemoryPolicyStore")
            .field("revision", &state.revision.0)
            .field("lines", &state.lines.len())
            .field("logged_changes", &state.log.len())
            .finish()
    }
}

/// Everything the store holds. `log` holds the changes after `trimmed_through`, in
/// revision order, the last one at `revision`.
#[derive(Default)]
struct State {
    lines: HashSet<PolicyLine>,
    revision: Revision,
    log: VecDeque<PolicyChange>,
    trimmed_through: Revision,
}

impl State {
    fn changes_since(&self, revision: Revision) -> Option<Vec<PolicyChange>> {
        if revision < self.trimmed_through {
            return None;
        }
        Some(
            self.log
                .iter()
                .filter(|change| change.revision > revision)
                .cloned()
                .collect(),
        )
    }
}

#[async_trait]
impl PolicyStore for InMemoryPolicyStore {
    async fn load(&self) -> Result<(Revision, Vec<PolicyLine>), StoreError> {
        let state = self.lock();
        Ok((state.revision, state.lines.iter().cloned().collect()))
    }

    async fn load_domain(&self, domain: Domain) -> Result<Vec<PolicyLine>, StoreError> {
        let state = self.lock();
        Ok(state
            .lines
            .iter()
            .filter(|line| line.domain() == domain)
            .cloned()
            .collect())
    }

    async fn apply(&self, added: &[PolicyLine], removed: &[PolicyLine]) -> Result<Revision, StoreError> {
        self.apply_with(added, removed, None)
    }

    async fn changes_since(&self, revision: Revision) -> Result<Option<Vec<PolicyChange>>, StoreError> {
        Ok(self.lock().changes_since(revision))
    }

    async fn trim_changes(&self, through: Revision) -> Result<(), StoreError> {
        let mut state = self.lock();
        let through = through.min(state.revision);
        if through <= state.trimmed_through {
            return Ok(());
        }
        while state.log.front().is_some_and(|change| change.revision <= through) {
            state.log.pop_front();
        }
        state.trimmed_through = through;
        Ok(())
    }
}

#[async_trait]
impl AuditedPolicyStore for InMemoryPolicyStore {
    async fn apply_audited(
        &self,
        added: &[PolicyLine],
        removed: &[PolicyLine],
        event: &AuditEvent,
    ) -> Result<Revision, StoreError> {
        self.apply_with(added, removed, Some(event))
    }
}

/// A [`PolicyFeed`] of an [`InMemoryPolicyStore`]'s changes, made by
/// [`InMemoryPolicyStore::feed`].
///
/// It wakes on every change and reads the log after the last revision it delivered, so
/// it never misses or repeats a change; when the log was trimmed past that revision it
/// delivers a [`PolicyEvent::Resync`] instead.
pub struct InMemoryPolicyFeed {
    store: InMemoryPolicyStore,
    revision: watch::Receiver<Revision>,
    last: Revision,
    queue: VecDeque<PolicyEvent>,
}

impl fmt::Debug for InMemoryPolicyFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryPolicyFeed")
            .field("revision", &self.last.0)
            .field("queued", &self.queue.len())
            .finish()
    }
}

impl InMemoryPolicyFeed {
    /// Waits for the next event; see [`PolicyFeed::next`].
    ///
    /// # Errors
    ///
    /// None in practice: the store it reads cannot fail. The signature is the port's.
    /// Cancel-safe: dropping the future loses no event.
    pub async fn next(&mut self) -> Result<PolicyEvent, StoreError> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                self.last = event.revision();
                return Ok(event);
            }
            // Marking the revision seen before reading the log means a change committed
            // after the read wakes the wait below.
            let current = *self.revision.borrow_and_update();
            if current > self.last {
                self.catch_up();
                continue;
            }
            // The feed holds the store, which owns the sender, so the channel cannot
            // close; the error is mapped rather than assumed away.
            self.revision.changed().await.map_err(|err| StoreError::Backend {
                backend: "memory",
                source: Box::new(err),
            })?;
        }
    }

    /// The revision of the last event delivered, or the starting revision.
    pub fn revision(&self) -> Revision {
        self.last
    }

    /// Queues the changes after the last delivered revision, or a resync if the log no
    /// longer holds them all.
    fn catch_up(&mut self) {
        let state = self.store.lock();
        match state.changes_since(self.last) {
            Some(changes) => self.queue.extend(changes.into_iter().map(PolicyEvent::Change)),
            None => self.queue.push_back(PolicyEvent::Resync {
                revision: state.revision,
                lines: state.lines.iter().cloned().collect(),
            }),
        }
    }
}

#[async_trait]
impl PolicyFeed for InMemoryPolicyFeed {
    async fn next(&mut self) -> Result<PolicyEvent, StoreError> {
        InMemoryPolicyFeed::next(self).await
    }

    fn revision(&self) -> Revision {
        InMemoryPolicyFeed::revision(self)
    }
}
