//! `PgPolicyStore`: policy lines, their change log and the revision counter in Postgres,
//! with every change announced to the other replicas by `NOTIFY`.

use std::collections::HashSet;
use std::fmt;

use async_trait::async_trait;
use portal_core::access::{Domain, PolicyChange, PolicyLine, PolicyStore, Revision};
use portal_core::audit::AuditEvent;
use portal_core::policy::AuditedPolicyStore;
use portal_core::store::StoreError;
use serde::Deserialize;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres};

use super::BACKEND;
use super::audit::insert_event;
use super::codec::{db, get};
use crate::policy_lines::{
    LineColumns, candidates, line_from_columns, lines_from_json, lines_json, plan, revision_from, revision_value,
};

/// The largest `NOTIFY` payload, in bytes, that carries a whole change. Postgres refuses
/// payloads of 8,000 bytes or more; a change whose JSON is longer than this is announced
/// by its revision alone, and listeners read it from the log.
pub const NOTIFY_PAYLOAD_LIMIT: usize = 7_000;

/// The name of a Postgres notification channel policy changes are announced on.
///
/// Every replica's [`PgPolicyStore`] and [`PgPolicyListener`](super::PgPolicyListener)
/// on one policy must use the same channel; the default is `portal_policy`. Deployments
/// that keep several portals' tables in one database (one schema each) give each its own
/// channel, because channels are per database, not per schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NotifyChannel(String);

impl NotifyChannel {
    /// The channel used unless another is chosen.
    pub const DEFAULT: &'static str = "portal_policy";

    /// The longest name Postgres accepts, in bytes.
    pub const MAX_LEN: usize = 63;

    /// A channel named `name`: 1 to [`MAX_LEN`](Self::MAX_LEN) bytes, without NUL.
    ///
    /// # Errors
    ///
    /// [`InvalidChannelError`] if `name` is empty, too long or holds a NUL byte.
    pub fn new(name: &str) -> Result<Self, InvalidChannelError> {
        let reason = if name.is_empty() {
            "it is empty"
        } else if name.len() > Self::MAX_LEN {
            "it is longer than 63 bytes"
        } else if name.contains('\0') {
            "it holds a NUL byte"
        } else {
            return Ok(Self(name.to_owned()));
        };
        Err(InvalidChannelError {
            name: name.to_owned(),
            reason,
        })
    }

    /// The channel's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for NotifyChannel {
    fn default() -> Self {
        Self(Self::DEFAULT.to_owned())
    }
}

impl fmt::Display for NotifyChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A notification channel name Postgres would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid notification channel `{name}`: {reason}")]
pub struct InvalidChannelError {
    name: String,
    reason: &'static str,
}

/// A [`PolicyStore`] on a Postgres database migrated with [`migrate`](super::migrate),
/// for many replicas of the host service sharing one database.
///
/// Every `apply` is one transaction that first locks the single row of
/// `policy_revision` (`SELECT … FOR UPDATE`), so writers on every replica take turns:
/// each sees the lines as the previous writer left them, gets the next revision, and
/// commits before the next writer reads. The same transaction sends the change on the
/// store's [`NotifyChannel`] (`pg_notify`), which Postgres delivers at commit, in commit
/// order, to every [`PgPolicyListener`](super::PgPolicyListener). The payload is the
/// change as JSON (`{"revision": n, "added": [...], "removed": [...]}`), or only
/// `{"revision": n}` when that would exceed [`NOTIFY_PAYLOAD_LIMIT`].
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use portal_adapters::postgres::{self, PgPolicyListener, PgPolicyStore};
/// use portal_core::access::PolicyStore;
///
/// let pool = postgres::connect("postgres://portal@localhost/portal").await?;
/// postgres::migrate(&pool).await?;
/// let store = PgPolicyStore::new(pool.clone());
/// // Start listening from the revision the in-memory copy was built at.
/// let (revision, lines) = store.load().await?;
/// let mut listener = PgPolicyListener::connect(&pool, store.channel().clone(), revision).await?;
/// # let _ = (lines, &mut listener);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PgPolicyStore {
    pool: PgPool,
    channel: NotifyChannel,
}

impl PgPolicyStore {
    /// A store on `pool`, whose connections must see the migrated tables on their
    /// `search_path`, announcing changes on the default channel.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            channel: NotifyChannel::default(),
        }
    }

    /// The same store, announcing changes on `channel` instead.
    pub fn with_channel(self, channel: NotifyChannel) -> Self {
        Self { channel, ..self }
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The channel changes are announced on.
    pub fn channel(&self) -> &NotifyChannel {
        &self.channel
    }
}

/// Reads the line in columns `domain`, `ptype`, `subject`, `object`, `action` and
/// `effect`, or `None` if they are NULL (the row of an outer join that matched no line).
fn line_from_row(row: &PgRow) -> Result<Option<PolicyLine>, StoreError> {
    let Some(ptype) = get::<Option<String>>(row, "ptype")? else {
        return Ok(None);
    };
    let domain: String = get(row, "domain")?;
    let effect: String = get(row, "effect")?;
    line_from_columns(
        BACKEND,
        &ptype,
        get(row, "subject")?,
        &domain,
        get(row, "object")?,
        get(row, "action")?,
        &effect,
    )
    .map(Some)
}

/// Lines as six parallel arrays, one per column, for `UNNEST($1::text[], …)`: one
/// statement handles any number of lines.
#[derive(Default)]
struct Columns {
    domain: Vec<String>,
    ptype: Vec<&'static str>,
    subject: Vec<String>,
    object: Vec<String>,
    action: Vec<String>,
    effect: Vec<&'static str>,
}

impl Columns {
    fn of<'l>(lines: impl IntoIterator<Item = &'l PolicyLine>) -> Self {
        let mut out = Self::default();
        for line in lines {
            let c = LineColumns::of(line);
            out.domain.push(c.domain);
            out.ptype.push(c.ptype);
            out.subject.push(c.subject);
            out.object.push(c.object);
            out.action.push(c.action);
            out.effect.push(c.effect);
        }
        out
    }

    /// Binds the six arrays as `$1` to `$6`.
    fn bind(self, query: PgQuery<'_>) -> PgQuery<'_> {
        query
            .bind(self.domain)
            .bind(self.ptype)
            .bind(self.subject)
            .bind(self.object)
            .bind(self.action)
            .bind(self.effect)
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// Reads every line and the revision they form, on `conn`, from one snapshot.
pub(super) async fn load_on(conn: &mut PgConnection) -> Result<(Revision, Vec<PolicyLine>), StoreError> {
    // One statement reads the counter and the lines from one snapshot; the outer join
    // keeps the counter's row when there are no lines.
    let rows = sqlx::query(
        "SELECT r.value AS revision, l.domain, l.ptype, l.subject, l.object, l.action, l.effect
         FROM policy_revision r LEFT JOIN policy_lines l ON TRUE",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let Some(first) = rows.first() else {
        return Err(BACKEND.corrupt("policy revision counter (its row is missing)"));
    };
    let revision = revision_from(BACKEND, get(first, "revision")?)?;
    let mut lines = Vec::with_capacity(rows.len());
    for row in &rows {
        lines.extend(line_from_row(row)?);
    }
    Ok((revision, lines))
}

/// Reads the changes after `revision`, on `conn`, from one snapshot; `None` if the log
/// was trimmed past `revision`.
pub(super) async fn changes_since_on(
    conn: &mut PgConnection,
    revision: Revision,
) -> Result<Option<Vec<PolicyChange>>, StoreError> {
    // One statement, so the trim mark and the log are read from one snapshot.
    let rows = sqlx::query(
        "SELECT r.trimmed_through, c.revision, c.added::text AS added, c.removed::text AS removed
         FROM policy_revision r LEFT JOIN policy_changes c ON c.revision > $1
         ORDER BY c.revision",
    )
    .bind(revision_value(revision))
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let Some(first) = rows.first() else {
        return Err(BACKEND.corrupt("policy revision counter (its row is missing)"));
    };
    if revision_from(BACKEND, get(first, "trimmed_through")?)? > revision {
        return Ok(None);
    }
    let mut changes = Vec::with_capacity(rows.len());
    for row in &rows {
        let Some(value) = get::<Option<i64>>(row, "revision")? else {
            continue;
        };
        let revision = revision_from(BACKEND, value)?;
        let added: String = get(row, "added")?;
        let removed: String = get(row, "removed")?;
        changes.push(PolicyChange {
            revision,
            added: lines_from_json(BACKEND, &added, "added", revision)?,
            removed: lines_from_json(BACKEND, &removed, "removed", revision)?,
        });
    }
    Ok(Some(changes))
}

/// The `NOTIFY` payload announcing `change`: the change itself, or only its revision if
/// that is longer than [`NOTIFY_PAYLOAD_LIMIT`].
pub(super) fn notify_payload(change: &PolicyChange) -> Result<String, StoreError> {
    let full = serde_json::to_string(change).map_err(|err| StoreError::Backend {
        backend: BACKEND.name(),
        source: Box::new(err),
    })?;
    if full.len() <= NOTIFY_PAYLOAD_LIMIT {
        Ok(full)
    } else {
        Ok(format!("{{\"revision\":{}}}", change.revision.0))
    }
}

/// A `NOTIFY` payload as listeners read it: a whole change, or a revision alone.
#[derive(Debug, Deserialize)]
pub(super) struct Payload {
    pub(super) revision: Revision,
    #[serde(default)]
    pub(super) added: Option<Vec<PolicyLine>>,
    #[serde(default)]
    pub(super) removed: Option<Vec<PolicyLine>>,
}

impl Payload {
    /// The change the payload carries, if it carries one whole.
    pub(super) fn into_change(self) -> Option<PolicyChange> {
        Some(PolicyChange {
            revision: self.revision,
            added: self.added?,
            removed: self.removed?,
        })
    }
}

impl PgPolicyStore {
    /// `apply`, and `event` (if given) written with the change in its transaction when a
    /// line changed (the outbox), with its webhook deliveries.
    async fn apply_with(
        &self,
        added: &[PolicyLine],
        removed: &[PolicyLine],
        event: Option<&AuditEvent>,
    ) -> Result<Revision, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // The lock orders this call after every other apply (on any replica) that got
        // there first, and before every one that comes later.
        let current: i64 = sqlx::query_scalar("SELECT value FROM policy_revision FOR UPDATE")
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let current = revision_from(BACKEND, current)?;

        let candidates = candidates(added, removed);
        let found = Columns::of(candidates.iter().copied())
            .bind(sqlx::query(
                "SELECT c.i FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                     WITH ORDINALITY AS c(domain, ptype, subject, object, action, effect, i)
                 WHERE EXISTS (
                     SELECT 1 FROM policy_lines l
                     WHERE (l.domain, l.ptype, l.subject, l.object, l.action, l.effect)
                         = (c.domain, c.ptype, c.subject, c.object, c.action, c.effect))",
            ))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let mut present = HashSet::new();
        for row in &found {
            let i: i64 = get(row, "i")?;
            // `WITH ORDINALITY` counts from 1.
            let line = usize::try_from(i - 1).ok().and_then(|i| candidates.get(i));
            present.insert(*line.ok_or_else(|| BACKEND.corrupt(format!("policy line position `{i}`")))?);
        }
        let plan = plan(added, removed, |line| present.contains(line));
        if plan.is_empty() {
            tx.rollback().await.map_err(db)?;
            return Ok(current);
        }

        if !plan.removed.is_empty() {
            Columns::of(&plan.removed)
                .bind(sqlx::query(
                    "DELETE FROM policy_lines l
                     USING UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                         AS c(domain, ptype, subject, object, action, effect)
                     WHERE (l.domain, l.ptype, l.subject, l.object, l.action, l.effect)
                         = (c.domain, c.ptype, c.subject, c.object, c.action, c.effect)",
                ))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        if !plan.added.is_empty() {
            Columns::of(&plan.added)
                .bind(sqlx::query(
                    "INSERT INTO policy_lines (domain, ptype, subject, object, action, effect)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])",
                ))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let value: i64 = sqlx::query_scalar("UPDATE policy_revision SET value = value + 1 RETURNING value")
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let change = PolicyChange {
            revision: revision_from(BACKEND, value)?,
            added: plan.added,
            removed: plan.removed,
        };
        sqlx::query("INSERT INTO policy_changes (revision, added, removed) VALUES ($1, $2::jsonb, $3::jsonb)")
            .bind(value)
            .bind(lines_json(BACKEND, &change.added)?)
            .bind(lines_json(BACKEND, &change.removed)?)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if let Some(event) = event {
            insert_event(&mut tx, event).await?;
        }
        // Delivered to listeners when the transaction commits, in commit order.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(self.channel.as_str())
            .bind(notify_payload(&change)?)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(change.revision)
    }
}

#[async_trait]
impl AuditedPolicyStore for PgPolicyStore {
    async fn apply_audited(
        &self,
        added: &[PolicyLine],
        removed: &[PolicyLine],
        event: &AuditEvent,
    ) -> Result<Revision, StoreError> {
        self.apply_with(added, removed, Some(event)).await
    }
}

#[async_trait]
impl PolicyStore for PgPolicyStore {
    async fn load(&self) -> Result<(Revision, Vec<PolicyLine>), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        load_on(&mut conn).await
    }

    async fn load_domain(&self, domain: Domain) -> Result<Vec<PolicyLine>, StoreError> {
        let rows =
            sqlx::query("SELECT domain, ptype, subject, object, action, effect FROM policy_lines WHERE domain = $1")
                .bind(domain.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        let mut lines = Vec::with_capacity(rows.len());
        for row in &rows {
            lines.extend(line_from_row(row)?);
        }
        Ok(lines)
    }

    async fn apply(&self, added: &[PolicyLine], removed: &[PolicyLine]) -> Result<Revision, StoreError> {
        self.apply_with(added, removed, None).await
    }

    async fn changes_since(&self, revision: Revision) -> Result<Option<Vec<PolicyChange>>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        changes_since_on(&mut conn, revision).await
    }

    async fn trim_changes(&self, through: Revision) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Updating the counter's row takes the lock `apply` takes, so a trim and an apply
        // take turns.
        sqlx::query(
            "UPDATE policy_revision SET trimmed_through = LEAST(value, $1)
             WHERE trimmed_through < LEAST(value, $1)",
        )
        .bind(revision_value(through))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("DELETE FROM policy_changes WHERE revision <= (SELECT trimmed_through FROM policy_revision)")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use portal_core::access::{Effect, PolicyRule};

    use super::*;

    fn line(n: usize) -> PolicyLine {
        PolicyLine::Permission(PolicyRule {
            subject: format!("role-{n}").into(),
            domain: Domain::Platform,
            object: "cases/*".into(),
            action: "read".into(),
            effect: Effect::Allow,
        })
    }

    #[test]
    fn small_changes_travel_whole_and_large_ones_by_revision() {
        let small = PolicyChange {
            revision: Revision(3),
            added: vec![line(1)],
            removed: vec![line(2)],
        };
        let payload: Payload = serde_json::from_str(&notify_payload(&small).unwrap()).unwrap();
        assert_eq!(payload.into_change(), Some(small));

        let large = PolicyChange {
            revision: Revision(4),
            added: (0..200).map(line).collect(),
            removed: Vec::new(),
        };
        let text = notify_payload(&large).unwrap();
        assert_eq!(text, r#"{"revision":4}"#);
        let payload: Payload = serde_json::from_str(&text).unwrap();
        assert_eq!(payload.revision, Revision(4));
        assert_eq!(payload.into_change(), None);
    }

    #[test]
    fn channel_names_are_checked() {
        assert_eq!(NotifyChannel::default().as_str(), "portal_policy");
        assert!(NotifyChannel::new("portal_test_0123").is_ok());
        assert!(NotifyChannel::new(&"x".repeat(63)).is_ok());
        for bad in ["", "a\0b", &"x".repeat(64)] {
            let err = NotifyChannel::new(bad).unwrap_err();
            assert!(err.to_string().starts_with("invalid notification channel `"), "{err}");
        }
    }
}
